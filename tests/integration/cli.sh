#!/bin/sh
# shellcheck disable=SC1091,SC2016
# cli.sh — the pbox CLI against a real pboxd: image load/ls/rm (names with
# '/' and ':' percent-encoded), create/ls/inspect, exec (status and signal
# pass-through, stdout/stderr separation, binary output and input, -e, -w,
# -i, verbatim arguments), stop, rm with and without -f, run --rm, and the
# one-line errors for a bad token, a bad URL and unknown objects.  Then the
# execution API (issue 3; checks marked [core] need its core side): exec
# --timeout/--grace/--signal (exit 124, timing), streamed -i, exec -d with
# logs/attach/kill, --max-output, --user, keepalive, create --ttl, and
# one-shot runs with --file and --compile.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
IMG=$(busybox_image) || bail_out "no busybox image"

# run_cli ARGS...: the CLI; sets CLI_OUT, CLI_ERR (trailing newlines
# stripped) and CLI_RC.  Standard input is passed through.
run_cli() {
        pbox_cli "$@" >"$TEST_TMP/.cli.out" 2>"$TEST_TMP/.cli.err"
        CLI_RC=$?
        CLI_OUT=$(cat "$TEST_TMP/.cli.out")
        CLI_ERR=$(cat "$TEST_TMP/.cli.err")
}

lines() {
        printf '%s\n' "$1" | wc -l | tr -d ' '
}

HEX24='^[0-9a-f]{24}$'
HEX64='^[0-9a-f]{64}$'
IMGNAME=pbox-test/busybox:cli

# ---------------------------------------------------------------- usage
run_cli --version
check_eq "--version exits 0" 0 "$CLI_RC"
check_match "--version prints the version" '^pbox [0-9]+\.[0-9]+' "$CLI_OUT"
run_cli --help
check_eq "--help exits 0" 0 "$CLI_RC"
check_match "--help lists image load" 'image load' "$CLI_OUT"
run_cli exec --help
check_match "exec --help shows its usage" '^Usage: pbox exec' "$CLI_OUT"
run_cli ls --bogus
check_eq "unknown option of ls exits 1" 1 "$CLI_RC"
check_match "unknown option is named, with usage" "unknown option '--bogus'" "$CLI_ERR"
run_cli exec --bogus x true
check_eq "unknown option of exec exits 125" 125 "$CLI_RC"
run_cli stop --grace 5parsecs x
check_eq "bad duration is refused" 1 "$CLI_RC"
run_cli frobnicate
check_eq "unknown command exits 1" 1 "$CLI_RC"

# ---------------------------------------------------------------- images
run_cli image load --name "$IMGNAME" "$IMG"
check_eq "image load exits 0" 0 "$CLI_RC"
check_match "image load prints the image id" "$HEX64" "$CLI_OUT"
IMAGE_ID=$CLI_OUT

run_cli image ls
check_eq "image ls exits 0" 0 "$CLI_RC"
check_match "image ls has a header" '^ID +NAMES +SIZE +CREATED$' "$CLI_OUT"
check_match "image ls lists the image by name and short id" \
        "^$(printf '%.12s' "$IMAGE_ID") +[^ ]*pbox-test/busybox:cli" "$CLI_OUT"
run_cli image ls --json
check "image ls --json is an array holding the image" \
        jq -e --arg id "$IMAGE_ID" --arg n "$IMGNAME" \
        'type == "array" and any(.[]; .id == $id and (.names | index($n)))' "$TEST_TMP/.cli.out"
run_cli image ls -q
check_match "image ls -q prints full ids" "^$IMAGE_ID\$" "$CLI_OUT"

run_cli image load "$TEST_TMP/no-such-file"
check_eq "image load of a missing file fails" 1 "$CLI_RC"
check_match "and names the file" 'no-such-file' "$CLI_ERR"

# ---------------------------------------------------------------- create, ls, inspect
run_cli create --name cli-a --hostname cli-host -e FOO=bar --label team=qa "$IMGNAME"
check_eq "create exits 0" 0 "$CLI_RC"
check_match "create prints the sandbox id" "$HEX24" "$CLI_OUT"
ID=$CLI_OUT

run_cli ls
check_eq "ls exits 0" 0 "$CLI_RC"
check_match "ls has a header" '^ID +NAME +IMAGE +STATE +CREATED$' "$CLI_OUT"
check_match "ls shows the sandbox running" "^$ID +cli-a +[^ ]+ +running +" "$CLI_OUT"
run_cli ls --json
check "ls --json is an array with the running sandbox" \
        jq -e --arg id "$ID" 'type == "array" and any(.[]; .id == $id and .state == "running")' \
        "$TEST_TMP/.cli.out"
run_cli ls -q
check_match "ls -q prints the id" "^$ID\$" "$CLI_OUT"

run_cli inspect cli-a
check_eq "inspect by name exits 0" 0 "$CLI_RC"
check "inspect prints the record" \
        jq -e --arg id "$ID" '.id == $id and .name == "cli-a" and .state == "running"
                and .hostname == "cli-host" and .labels.team == "qa"' "$TEST_TMP/.cli.out"
check_eq "inspect output is indented" 3 "$(grep -c '^  "\(id\|name\|state\)"' "$TEST_TMP/.cli.out")"

run_cli inspect no-such-sandbox
check_eq "inspect of an unknown sandbox exits 1" 1 "$CLI_RC"
check_match "with the API error on one line" '^pbox: .*\(not_found\)$' "$CLI_ERR"
check_eq "one line" 1 "$(lines "$CLI_ERR")"

# ---------------------------------------------------------------- exec
pbox_exec "$ID" echo hello
check_eq "exec echo: status 0" 0 "$EXEC_RC"
check_eq "exec echo: stdout" hello "$EXEC_OUT"

pbox_exec "$ID" sh -c 'exit 3'
check_eq "exit status is passed through" 3 "$EXEC_RC"
# 137 is also what a CLI killed by timeout(1) -k gives: the empty stderr
# tells a real SIGKILL of the command apart.
pbox_exec "$ID" sh -c 'kill -9 $$'
check_eq "death by SIGKILL gives 137" 137 "$EXEC_RC"
check_eq "and no message from pbox" "" "$EXEC_ERR"
# The command must start with default signal dispositions and an empty mask.
pbox_exec "$ID" sh -c 'kill -TERM $$; echo survived'
check_eq "death by SIGTERM gives 143" 143 "$EXEC_RC"
check_eq "and the command did not survive it" "" "$EXEC_OUT"

pbox_exec "$ID" sh -c 'echo to-out; echo to-err >&2'
check_eq "stdout carries only stdout" to-out "$EXEC_OUT"
check_eq "stderr carries only stderr" to-err "$EXEC_ERR"

# Arguments after the ID are the command's, options included.
pbox_exec "$ID" printf '%s|' -x --help -- -e 'a b'
check_eq "arguments are passed verbatim" '-x|--help|--|-e|a b|' "$EXEC_OUT"
pbox_cli exec "$ID" printf '%s|' -i -w >"$TEST_TMP/noddash.out" 2>&1
check_eq "without --, words after the ID are still the command's" '-i|-w|' "$(cat "$TEST_TMP/noddash.out")"

# Binary output: bytes that are not UTF-8 (NUL, 0xff) come back exactly.
pbox_cli exec "$ID" -- printf 'a\000b\377\n' >"$TEST_TMP/nul.out"
check_eq "NUL and 0xff bytes round-trip" "61 00 62 ff 0a" \
        "$(od -An -tx1 "$TEST_TMP/nul.out" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')"
pbox_exec "$ID" sh -c 'head -c 262144 /dev/urandom >/tmp/blob && sha256sum /tmp/blob'
check_eq "random blob made in the sandbox" 0 "$EXEC_RC"
INSIDE_SUM=${EXEC_OUT%% *}
pbox_cli exec "$ID" -- cat /tmp/blob >"$TEST_TMP/blob.out"
check_eq "exec of binary output exits 0" 0 "$?"
OUTSIDE_SUM=$(sha256sum "$TEST_TMP/blob.out" | cut -d' ' -f1)
check_match "inside checksum is a sha256" "$HEX64" "$INSIDE_SUM"
check_eq "256 KiB of random bytes round-trip (sha256)" "$INSIDE_SUM" "$OUTSIDE_SUM"

# -e, -w, and the sandbox's own environment and host name.
pbox_cli exec -e X=1 -e 'Y=two words' "$ID" -- sh -c 'echo "$X|$Y|$FOO"' >"$TEST_TMP/env.out" 2>&1
check_eq "-e sets variables, create -e persists" '1|two words|bar' "$(cat "$TEST_TMP/env.out")"
(PBOXTEST_V=from-host && export PBOXTEST_V &&
        pbox_cli exec -e PBOXTEST_V "$ID" -- sh -c 'echo "$PBOXTEST_V"') >"$TEST_TMP/env2.out" 2>&1
check_eq "-e KEY takes the value from pbox's environment" from-host "$(cat "$TEST_TMP/env2.out")"
pbox_cli exec -w /tmp "$ID" -- pwd >"$TEST_TMP/pwd.out" 2>&1
check_eq "-w sets the working directory" /tmp "$(cat "$TEST_TMP/pwd.out")"
run_cli exec -w relative "$ID" -- pwd
check_eq "-w with a relative path is refused" 125 "$CLI_RC"
pbox_exec "$ID" hostname
check_eq "create --hostname is the sandbox's host name" cli-host "$EXEC_OUT"

# -i: the CLI's standard input, text and binary.
printf 'line1\nline2\nline3\n' >"$TEST_TMP/in.txt"
run_cli exec -i "$ID" -- wc -l <"$TEST_TMP/in.txt"
check_eq "-i sends text input" 3 "$(printf '%s' "$CLI_OUT" | tr -d ' ')"
head -c 65536 /dev/urandom >"$TEST_TMP/in.bin"
run_cli exec -i "$ID" -- sha256sum <"$TEST_TMP/in.bin"
check_eq "-i sends binary input exactly (sha256)" \
        "$(sha256sum "$TEST_TMP/in.bin" | cut -d' ' -f1)" "${CLI_OUT%% *}"
run_cli exec "$ID" -- cat <"$TEST_TMP/in.txt"
check_eq "without -i the command's stdin is empty" "" "$CLI_OUT"

pbox_exec "$ID" /no/such/program
check_eq "a missing program gives 127" 127 "$EXEC_RC"
check_match "with the daemon's message on stderr" '^pbox: ' "$EXEC_ERR"

run_cli exec no-such-sandbox true
check_eq "exec in an unknown sandbox exits 125" 125 "$CLI_RC"
check_match "with a not_found error" '\(not_found\)$' "$CLI_ERR"

# ---------------------------------------------------------------- execution API (issue 3)
# [core] The checks of this section need the core side of issue 3: exec
# timeouts and grace periods, async execs with event streams, streamed
# stdin, kill, output limits, user, keepalive, TTL, one-shot runs.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
HEX16='^[0-9a-f]{16}$'

t0=$(now_ms)
run_cli exec --timeout 1s --grace 2s "$ID" -- sleep 10
t1=$(now_ms)
check_eq "[core] exec --timeout: a timed-out command exits 124" 124 "$CLI_RC"
check_eq "[core] ... saying so: ended by SIGTERM" 'pbox: timed out after 1s (ended by SIGTERM)' "$CLI_ERR"
check "[core] ... not before the timeout (>= 0.9 s)" test $((t1 - t0)) -ge 900
check "[core] ... and without waiting for the grace period (< 2.5 s)" test $((t1 - t0)) -lt 2500

t0=$(now_ms)
run_cli exec --timeout 1s --grace 1s "$ID" -- sh -c 'trap "" TERM; sleep 30'
t1=$(now_ms)
check_eq "[core] SIGTERM ignored: still 124" 124 "$CLI_RC"
check_eq "[core] ... ended by SIGKILL" 'pbox: timed out after 1s (ended by SIGKILL)' "$CLI_ERR"
check "[core] ... after timeout + grace (>= 1.9 s)" test $((t1 - t0)) -ge 1900
check "[core] ... and not much later (< 4 s)" test $((t1 - t0)) -lt 4000

run_cli exec --timeout 500ms --signal INT "$ID" -- sleep 10
check_eq "[core] --signal picks the stop signal" '124|pbox: timed out after 0.5s (ended by SIGINT)' "$CLI_RC|$CLI_ERR"
run_cli exec --timeout 5parsecs "$ID" -- true
check_eq "a bad --timeout is a usage error (125)" 125 "$CLI_RC"

# -i streams standard input while the command runs.
printf 'one\ntwo\n' | pbox_cli exec -i "$ID" -- cat >"$TEST_TMP/cat.out" 2>&1
check_eq "[core] -i: cat echoes standard input" "one
two" "$(cat "$TEST_TMP/cat.out")"
head -c 300000 /dev/urandom >"$TEST_TMP/in300k.bin"
run_cli exec -i "$ID" -- sha256sum <"$TEST_TMP/in300k.bin"
check_eq "[core] -i: 300 KB of binary input in several chunks, exactly" \
        "$(sha256sum "$TEST_TMP/in300k.bin" | cut -d' ' -f1)" "${CLI_OUT%% *}"
# (The pipeline lasts as long as its sleep: time pbox alone.)
t0=$(now_ms)
(echo ping; sleep 4) | {
        pbox_cli exec -i "$ID" -- sh -c 'read a; echo "got $a"; exit 6' >"$TEST_TMP/ping.out" 2>&1
        echo "$?" >"$TEST_TMP/ping.rc"
        now_ms >"$TEST_TMP/ping.t"
}
check_eq "[core] -i: input reaches the command before pbox's stdin ends" "6|got ping" \
        "$(cat "$TEST_TMP/ping.rc")|$(cat "$TEST_TMP/ping.out")"
check "[core] ... and pbox ends with the command, not with its stdin (< 3 s)" \
        test $(($(cat "$TEST_TMP/ping.t") - t0)) -lt 3000
run_cli exec -i "$ID" -- sh -c 'echo out; echo err >&2; kill -TERM $$' </dev/null
check_eq "[core] -i: stdout, stderr and the signal status come through the stream" "143|out|err" \
        "$CLI_RC|$CLI_OUT|$CLI_ERR"

# Detached execs, logs, attach, kill.
run_cli exec -d "$ID" -- sh -c 'echo out; sleep 1; echo err >&2; exit 7'
check_match "[core] exec -d prints the exec id" "$HEX16" "$CLI_OUT"
EID=$CLI_OUT
run_cli logs "$ID" "$EID"
check_eq "[core] logs follows the exec to its end and exits with its status" "7|out|err" \
        "$CLI_RC|$CLI_OUT|$CLI_ERR"
run_cli logs "$ID" "$EID"
check_eq "[core] logs of an ended exec replays its output" "7|out|err" "$CLI_RC|$CLI_OUT|$CLI_ERR"
run_cli exec -d -i "$ID" -- sh -c 'read a; read b; echo "$b-$a"'
EID=$CLI_OUT
printf 'x\ny\n' | pbox_cli attach -i "$ID" "$EID" >"$TEST_TMP/attach.out" 2>&1
check_eq "[core] attach -i feeds a detached exec's stdin" "0|y-x" "$?|$(cat "$TEST_TMP/attach.out")"
run_cli exec -d "$ID" -- sh -c 'trap "" TERM; sleep 30'
EID=$CLI_OUT
t0=$(now_ms)
run_cli kill --grace 500ms "$ID" "$EID"
t1=$(now_ms)
check_eq "[core] kill waits for the end and says how it ended" "0|$EID killed (sigkill)" "$CLI_RC|$CLI_OUT"
check "[core] ... after the grace period (>= 0.4 s)" test $((t1 - t0)) -ge 400
run_cli logs "$ID" "$EID"
check_eq "[core] logs of a killed exec: 137" 137 "$CLI_RC"
check_match "[core] ... with a message" 'killed \(ended by SIGKILL\)' "$CLI_ERR"
run_cli kill "$ID" 0123456789abcdef
check_eq "[core] kill of an unknown exec fails (1)" 1 "$CLI_RC"
check_match "[core] ... with not_found" '\(not_found\)$' "$CLI_ERR"
run_cli logs "$ID" not-an-exec-id
check_eq "logs of a malformed exec id is a usage error" 125 "$CLI_RC"

# Output limits, users.
pbox_cli exec --max-output 1K "$ID" -- sh -c 'yes' >"$TEST_TMP/yes.out" 2>"$TEST_TMP/yes.err"
check_eq "[core] --max-output: killed, 128+SIGKILL" 137 "$?"
check_eq "[core] ... after exactly the limit of output" 1024 "$(wc -c <"$TEST_TMP/yes.out" | tr -d ' ')"
check_match "[core] ... saying so" 'more than 1024 bytes' "$(cat "$TEST_TMP/yes.err")"
run_cli exec --user 1234:2345 "$ID" -- sh -c 'echo "$(id -u):$(id -g)"'
check_eq "[core] --user UID:GID" 1234:2345 "$CLI_OUT"
run_cli exec --user root "$ID" -- true
check_eq "--user takes numbers only (usage error)" 125 "$CLI_RC"

# Keepalive, TTL, idle timeout.
run_cli keepalive "$ID"
check_eq "[core] keepalive prints the id" "0|$ID" "$CLI_RC|$CLI_OUT"
run_cli create --ttl 1h --idle-timeout 30s "$IMGNAME"
check_eq "[core] create --ttl --idle-timeout" 0 "$CLI_RC"
TTL_ID=$CLI_OUT
run_cli inspect "$TTL_ID"
check "[core] ... the record has expires_at and idle_timeout_s" \
        jq -e '(.expires_at | type == "string") and .idle_timeout_s == 30' "$TEST_TMP/.cli.out"
run_cli rm -f "$TTL_ID"

# One-shot runs (POST /v1/run): --file, --compile.
run_cli ls -q
BEFORE_RUNS=$CLI_OUT
printf '#!/bin/sh\necho "script $1: $(cat /work/data.txt)"\nexit 3\n' >"$TEST_TMP/script.sh"
printf 'some data\n' >"$TEST_TMP/data.txt"
run_cli run --file "$TEST_TMP/script.sh" --file "$TEST_TMP/data.txt" "$IMGNAME" -- sh /work/script.sh A
check_eq "[core] run --file: files land in /work, the status is the command's" "3|script A: some data" \
        "$CLI_RC|$CLI_OUT"
chmod 755 "$TEST_TMP/script.sh"
run_cli run --file "$TEST_TMP/script.sh:/opt/bin/" --file "$TEST_TMP/data.txt:/work/data.txt" "$IMGNAME" -- \
        /opt/bin/script.sh B
check_eq "[core] --file LOCAL:DIR/ keeps the name and the mode" "3|script B: some data" "$CLI_RC|$CLI_OUT"
printf 'a\000b\377' >"$TEST_TMP/bin.dat"
run_cli run --file "$TEST_TMP/bin.dat:/tmp/b" "$IMGNAME" -- sh -c 'od -An -tx1 /tmp/b | tr -d " \n"'
check_eq "[core] binary files arrive intact" 610062ff "$CLI_OUT"
run_cli run --file "$TEST_TMP/script.sh" --file "$TEST_TMP/data.txt" \
        --compile 'sh -c "echo compiled; echo \"a warning\" >&2"' "$IMGNAME" -- sh /work/script.sh C
check_eq "[core] --compile: its output first, then the command's" "3|compiled
script C: some data|a warning" "$CLI_RC|$CLI_OUT|$CLI_ERR"
run_cli run --file "$TEST_TMP/script.sh" --compile "sh -c 'echo broken >&2; exit 2'" "$IMGNAME" -- \
        sh -c 'echo should-not-run'
check_eq "[core] a failed compile step: its status, and the command does not run" "2||broken" \
        "$CLI_RC|$CLI_OUT|$CLI_ERR"
run_cli run --file "$TEST_TMP/data.txt" --compile 'sleep 5' --compile-timeout 500ms "$IMGNAME" -- true
check_eq "[core] a compile step that times out: 124" 124 "$CLI_RC"
check_match "[core] ... named in the message" '^pbox: compile step: timed out after 0.5s' "$CLI_ERR"
run_cli run --timeout 500ms --grace 200ms --file "$TEST_TMP/data.txt" "$IMGNAME" -- sleep 5
check_eq "[core] a one-shot command that times out: 124" 124 "$CLI_RC"
printf 'from stdin\n' | pbox_cli run -i --file "$TEST_TMP/data.txt" "$IMGNAME" -- sh -c 'read l; echo "$l"' \
        >"$TEST_TMP/run-i.out" 2>&1
check_eq "[core] a one-shot run takes -i" "from stdin" "$(cat "$TEST_TMP/run-i.out")"
run_cli ls -q
check_eq "[core] one-shot runs leave no sandbox" "$BEFORE_RUNS" "$CLI_OUT"
run_cli run --name x --file "$TEST_TMP/data.txt" "$IMGNAME" -- true
check_eq "--name does not go with --file (usage error)" 125 "$CLI_RC"
run_cli run --file "$TEST_TMP/no-such-file" "$IMGNAME" -- true
check_eq "--file of a missing file is a usage error" 125 "$CLI_RC"
run_cli run --rm --timeout 1s "$IMGNAME" -- sleep 5
check_eq "[core] run --rm --timeout (create + exec): 124" 124 "$CLI_RC"
run_cli ls -q
check_eq "[core] ... and the sandbox is removed" "$BEFORE_RUNS" "$CLI_OUT"

# ---------------------------------------------------------------- rm of a running sandbox
sandbox_create --name cli-b "$IMGNAME" || bail_out "create cli-b"
ID_B=$SANDBOX_ID
run_cli rm "$ID_B"
check_eq "rm of a running sandbox without -f fails" 1 "$CLI_RC"
check_match "with a conflict error on one line" '^pbox: .*\(conflict\)$' "$CLI_ERR"
run_cli ls -q
check_match "the running sandbox is still there" "^$ID_B\$" "$CLI_OUT"
run_cli rm -f cli-b
check_eq "rm -f of a running sandbox works" 0 "$CLI_RC"
check_eq "rm prints the removed id" "$ID_B" "$CLI_OUT"
run_cli ls -q
check_no_match "the sandbox is gone" "^$ID_B\$" "$CLI_OUT"

# ---------------------------------------------------------------- stop, exec after stop, rm
run_cli stop --grace 2s "$ID"
check_eq "stop --grace 2s exits 0" 0 "$CLI_RC"
check_eq "stop prints the id" "$ID" "$CLI_OUT"
run_cli inspect "$ID"
check "the sandbox is stopped" jq -e '.state == "stopped"' "$TEST_TMP/.cli.out"
run_cli ls
check_match "ls shows it stopped" "^$ID +cli-a +[^ ]+ +stopped +" "$CLI_OUT"
pbox_exec "$ID" echo too-late
check_eq "exec in a stopped sandbox exits 125" 125 "$EXEC_RC"
check_match "with a conflict error" '^pbox: .*\(conflict\)$' "$EXEC_ERR"
check_eq "and prints nothing on stdout" "" "$EXEC_OUT"

# ---------------------------------------------------------------- image in use
run_cli image rm "$IMGNAME"
check_eq "image rm of an image in use fails" 1 "$CLI_RC"
check_match "with a conflict error" '\(conflict\)$' "$CLI_ERR"

run_cli rm "$ID"
check_eq "rm of a stopped sandbox without -f works" 0 "$CLI_RC"
check_eq "and prints its id" "$ID" "$CLI_OUT"

# ---------------------------------------------------------------- run
run_cli ls -q
BEFORE=$CLI_OUT
run_cli run --rm --name cli-run "$IMGNAME" -- sh -c 'echo ran; echo oops >&2; exit 4'
check_eq "run --rm passes the exit status" 4 "$CLI_RC"
check_eq "run prints the command's stdout only" ran "$CLI_OUT"
check_eq "run prints the command's stderr" oops "$CLI_ERR"
run_cli ls -q
check_eq "run --rm leaves no sandbox" "$BEFORE" "$CLI_OUT"
run_cli inspect cli-run
check_eq "the run sandbox is gone" 1 "$CLI_RC"

run_cli run --rm "$IMGNAME" -- /no/such/program
check_eq "run --rm of a missing program gives 127" 127 "$CLI_RC"
run_cli ls -q
check_eq "and still removes the sandbox" "$BEFORE" "$CLI_OUT"

printf 'through run\n' | pbox_cli run --rm -i -w /tmp -e R=1 "$IMGNAME" -- sh -c 'read l; echo "$l|$PWD|$R"' \
        >"$TEST_TMP/run.out" 2>&1
check_eq "run takes -i, -w and -e" 'through run|/tmp|1' "$(cat "$TEST_TMP/run.out")"

# An interrupted run --rm still removes its sandbox, then ends by the signal.
"$PBOX" run --rm --name cli-intr "$IMGNAME" -- sleep 60 >/dev/null 2>&1 &
RUN_PID=$!
sleeping() {
        "$PBOX" exec cli-intr -- ps 2>/dev/null | grep -q 'sleep 60'
}
check "run --rm: the command runs" wait_until 20 sleeping
kill -TERM "$RUN_PID"
wait "$RUN_PID" 2>/dev/null
check_eq "run --rm interrupted by SIGTERM ends by SIGTERM" 143 "$?"
run_cli inspect cli-intr
check_eq "and the sandbox is removed" 1 "$CLI_RC"

run_cli run --name cli-keep "$IMGNAME" -- true
check_eq "run without --rm exits with the status" 0 "$CLI_RC"
run_cli inspect cli-keep
check "run without --rm keeps the sandbox" jq -e '.name == "cli-keep"' "$TEST_TMP/.cli.out"
run_cli rm -f cli-keep
check_eq "rm -f by name" 0 "$CLI_RC"

run_cli run --rm no-such-image:v0 -- true
check_eq "run of an unknown image exits 125" 125 "$CLI_RC"
check_match "with the API error on one line" '^pbox: .*\([a-z_]+\)$' "$CLI_ERR"
check_eq "one line" 1 "$(lines "$CLI_ERR")"

# ---------------------------------------------------------------- bad token, bad URL
printf 'not-the-token\n' >"$TEST_TMP/bad.token"
run_cli --token-file "$TEST_TMP/bad.token" ls
check_eq "a bad token fails" 1 "$CLI_RC"
check_match "with an unauthorized error" '^pbox: .*\(unauthorized\)$' "$CLI_ERR"
check_eq "on one line" 1 "$(lines "$CLI_ERR")"
run_cli --token-file "$TEST_TMP/bad.token" exec x true
check_eq "a bad token fails exec with 125" 125 "$CLI_RC"
run_cli --token-file "$TEST_TMP/missing.token" ls
check_eq "a missing token file fails" 1 "$CLI_RC"
check_match "naming the file, on one line" '^pbox: .*missing\.token' "$CLI_ERR"
check_eq "one line" 1 "$(lines "$CLI_ERR")"
TOKEN=$(cat "$PBOX_TOKEN_FILE")
(unset PBOX_TOKEN_FILE && PBOX_TOKEN=$TOKEN && export PBOX_TOKEN && pbox_cli ls -q) >/dev/null 2>&1
check_eq "PBOX_TOKEN works when no token file is named" 0 "$?"
(PBOX_TOKEN_FILE=$TEST_TMP/bad.token && PBOX_TOKEN=$TOKEN && export PBOX_TOKEN_FILE PBOX_TOKEN &&
        pbox_cli ls -q) >/dev/null 2>&1
check_eq "PBOX_TOKEN_FILE takes precedence over PBOX_TOKEN" 1 "$?"
run_cli --token-file "$TEST_TMP/bad.token" image load "$IMG"
check_eq "an upload with a bad token fails" 1 "$CLI_RC"
check_match "with an unauthorized error" '\(unauthorized\)$' "$CLI_ERR"

# A port nobody listens on: bind one, note it, close it.
DEAD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_cli --url "http://127.0.0.1:$DEAD_PORT" ls
check_eq "an unreachable daemon fails" 1 "$CLI_RC"
check_match "with one line naming the URL" "^pbox: cannot connect to http://127.0.0.1:$DEAD_PORT" "$CLI_ERR"
check_eq "one line" 1 "$(lines "$CLI_ERR")"
run_cli --url "http://127.0.0.1:$DEAD_PORT" exec x true
check_eq "an unreachable daemon fails exec with 125" 125 "$CLI_RC"
run_cli --url "https://127.0.0.1:$DEAD_PORT" ls
check_eq "https is refused" 1 "$CLI_RC"
check_match "with a clear message" '^pbox: https is not supported' "$CLI_ERR"
run_cli --url "http://127.0.0.1:$PBOXD_PORT/v1" ls
check_eq "a URL with a path is refused" 1 "$CLI_RC"
check_eq "on one line" 1 "$(lines "$CLI_ERR")"
run_cli --url "127.0.0.1:$PBOXD_PORT" ls
check_eq "a URL without scheme is refused" 1 "$CLI_RC"

# ---------------------------------------------------------------- limits (this host: 422 where a controller is missing)
run_cli create "$IMGNAME" --name cli-late-opts
check_eq "create takes options after IMAGE" 0 "$CLI_RC"
run_cli inspect cli-late-opts
check_match "... and applies them" '"name": *"cli-late-opts"' "$CLI_OUT"
run_cli create --memory 64X "$IMGNAME"
check_eq "a bad size is refused before any request" 1 "$CLI_RC"
check_match "... naming the flag" 'memory' "$CLI_ERR"
run_cli health
check_eq "pbox health exits 0" 0 "$CLI_RC"
check_match "pbox health names the controllers" '^(controllers|missing): ' "$CLI_OUT"
run_cli rm -f cli-late-opts
check_eq "rm -f of the sandbox" 0 "$CLI_RC"

# ---------------------------------------------------------------- image rm
run_cli image rm "$IMGNAME"
check_eq "image rm by a name with '/' and ':'" 0 "$CLI_RC"
check_match "image rm prints the reference" "^($IMGNAME|$IMAGE_ID)\$" "$CLI_OUT"
run_cli image ls --json
check "the image is gone" jq -e --arg n "$IMGNAME" 'all(.[]; (.names | index($n)) == null)' \
        "$TEST_TMP/.cli.out"
run_cli image rm "$IMGNAME"
check_eq "image rm of an unknown image fails" 1 "$CLI_RC"
check_match "with not_found" '\(not_found\)$' "$CLI_ERR"

done_testing
