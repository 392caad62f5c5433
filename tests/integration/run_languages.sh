#!/bin/sh
# run_languages.sh — one-shot runs (POST /v1/run and `pbox run --file`) of
# real Python, Node and C programs in the recipe images, Judge0 style: a
# correct answer, a compile error, a runtime error, a time limit.
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start
for r in python node gcc; do
        img=$(recipe_image "$r") || bail_out "cannot build the $r image"
        api_call POST "/v1/images?name=$r:latest" --data-binary "@$img"
        [ "$API_STATUS" = 201 ] || bail_out "cannot load the $r image ($API_STATUS)"
done

run() { api_json POST /v1/run "$1"; }
b64() { base64 -w0; }

# ---- Python
run '{"image":"python","files":[{"path":"/work/sol.py","content":"import sys\nn=int(sys.stdin.readline())\nprint(sum(range(n+1)))\n"}],
      "argv":["python3","/work/sol.py"],"stdin":"100\n","timeout_ms":10000}'
check_eq "python: a correct answer" "ok/5050" "$(json_get '.run.status + "/" + (.run.stdout|rtrimstr("\n"))')"
run '{"image":"python","files":[{"path":"/work/sol.py","content":"def f(:\n"}],"argv":["python3","/work/sol.py"],"timeout_ms":10000}'
check_eq "python: a syntax error is a runtime exit 1" "exit/1" "$(json_get '.run.status + "/" + (.run.exit_code|tostring)')"
check_match "... with the traceback on stderr" 'SyntaxError' "$(json_get .run.stderr)"
run '{"image":"python","files":[{"path":"/work/sol.py","content":"while True: pass\n"}],"argv":["python3","/work/sol.py"],"timeout_ms":1000,"grace_ms":200}'
check_eq "python: an endless loop hits the time limit" timeout "$(json_get .run.status)"
check "... having used about a second of CPU" test "$(json_get .run.cpu_ms)" -ge 300

# ---- Node
run '{"image":"node","files":[{"path":"/work/sol.js","content":"let d=\"\";process.stdin.on(\"data\",c=>d+=c).on(\"end\",()=>console.log(d.trim().split(/\\s+/).map(Number).reduce((a,b)=>a+b,0)))"}],
      "argv":["node","/work/sol.js"],"stdin":"1 2 3 4\n","timeout_ms":10000}'
check_eq "node: a correct answer" "ok/10" "$(json_get '.run.status + "/" + (.run.stdout|rtrimstr("\n"))')"
run '{"image":"node","files":[{"path":"/work/sol.js","content":"null.x"}],"argv":["node","/work/sol.js"],"timeout_ms":10000}'
check_eq "node: a runtime error exits 1" "exit/1" "$(json_get '.run.status + "/" + (.run.exit_code|tostring)')"
check_match "... with a TypeError" 'TypeError' "$(json_get .run.stderr)"

# ---- C
C_OK=$(printf '#include <stdio.h>\nint main(void){long a,b; if(scanf("%%ld %%ld",&a,&b)!=2) return 2; printf("%%ld\\n",a*b); return 0;}\n' | b64)
run "{\"image\":\"gcc\",\"files\":[{\"path\":\"/work/a.c\",\"content\":\"$C_OK\",\"encoding\":\"base64\"}],
      \"compile\":{\"argv\":[\"gcc\",\"-O2\",\"-o\",\"/work/a\",\"/work/a.c\"],\"timeout_ms\":30000},
      \"argv\":[\"/work/a\"],\"stdin\":\"6 7\",\"timeout_ms\":5000}"
check_eq "C: the compile step succeeds" ok "$(json_get .compile.status)"
check_eq "C: a correct answer" "ok/42" "$(json_get '.run.status + "/" + (.run.stdout|rtrimstr("\n"))')"
C_BAD=$(printf 'int main(void){ return x; }\n' | b64)
run "{\"image\":\"gcc\",\"files\":[{\"path\":\"/work/a.c\",\"content\":\"$C_BAD\",\"encoding\":\"base64\"}],
      \"compile\":{\"argv\":[\"gcc\",\"-o\",\"/work/a\",\"/work/a.c\"]},\"argv\":[\"/work/a\"]}"
check_eq "C: a compile error ends before the run" "exit/null" "$(json_get '.compile.status + "/" + (.run|tostring)')"
check_match "... and says why" 'x. undeclared' "$(json_get .compile.stderr)"
C_SEGV=$(printf 'int main(void){ volatile int *p = 0; return *p; }\n' | b64)
run "{\"image\":\"gcc\",\"files\":[{\"path\":\"/work/a.c\",\"content\":\"$C_SEGV\",\"encoding\":\"base64\"}],
      \"compile\":{\"argv\":[\"gcc\",\"-o\",\"/work/a\",\"/work/a.c\"]},\"argv\":[\"/work/a\"]}"
check_eq "C: a crash is signaled/11 (runtime error, not a time limit)" "signaled/11" "$(json_get '.run.status + "/" + (.run.signal|tostring)')"
C_FORK=$(printf '#include <unistd.h>\nint main(void){ if(fork()==0){ setsid(); for(;;); } for(;;); }\n' | b64)
run "{\"image\":\"gcc\",\"files\":[{\"path\":\"/work/a.c\",\"content\":\"$C_FORK\",\"encoding\":\"base64\"}],
      \"compile\":{\"argv\":[\"gcc\",\"-o\",\"/work/a\",\"/work/a.c\"]},\"argv\":[\"/work/a\"],\"timeout_ms\":800,\"grace_ms\":200}"
check_eq "C: a forking spinner hits the time limit" timeout "$(json_get .run.status)"

# ---- the CLI's one-shot run
printf 'print("hi from", __import__("sys").argv[1])\n' >"$TEST_TMP/hi.py"
out=$(pbox_cli run --timeout 10s --file "$TEST_TMP/hi.py" python -- python3 /work/hi.py judge 2>&1)
check_eq "pbox run --file runs a local file" "hi from judge" "$out"

api_call GET /v1/sandboxes
check_eq "every run removed its sandbox" 0 "$(json_get '.sandboxes | length')"
pboxd_stop
check_no_leaks "nothing left behind"
done_testing
