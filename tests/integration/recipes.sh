#!/bin/sh
# shellcheck disable=SC1091,SC2016,SC2119
# recipes.sh — the language images of rootfs-recipes (debian, python, node,
# gcc): each recipe builds an OCI archive (once per build tree, or once per
# $PBOX_RECIPE_CACHE, under a lock) that `skopeo inspect` accepts and whose
# layer holds no device node, no set-id file, no apt index and no owner
# outside 0..65535; pboxd loads it under NAME:latest; and real programs run
# in sandboxes made from it, under the default seccomp policy and capability
# set: bash, python3 (subprocess, threads, multiprocessing, sockets), node
# (child_process, worker_threads, net), gcc and g++ compiling into /tmp and
# running what they built, compile errors and runtime errors reported as such.
#
# Knobs: PBOX_RECIPE_CACHE (where the archives and the minbase tarball are
# kept; default $PBOX_BUILDDIR/tests/images), PBOX_RECIPES (the recipes to
# check, default "debian python node gcc").
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
for _tool in debootstrap skopeo unshare chroot; do
        command -v "$_tool" >/dev/null 2>&1 ||
                _skip_or_fail "$_tool is not installed (the Debian recipes need debootstrap, skopeo, util-linux)"
done

PBOX_RECIPE_CACHE=${PBOX_RECIPE_CACHE:-$PBOX_BUILDDIR/tests/images}
export PBOX_RECIPE_CACHE
RECIPES=${PBOX_RECIPES:-debian python node gcc}
W=$TEST_TMP/work
mkdir -p "$W"
T_START=$(date +%s)

# exec_in ID STDIN_FILE CMD...: pbox exec -i, stdin from STDIN_FILE; sets
# EXEC_OUT EXEC_ERR EXEC_RC like pbox_exec.
exec_in() {
        _ei_id=$1 _ei_in=$2
        shift 2
        pbox_cli exec -i "$_ei_id" -- "$@" <"$_ei_in" >"$TEST_TMP/.exec.out" 2>"$TEST_TMP/.exec.err"
        EXEC_RC=$?
        EXEC_OUT=$(cat "$TEST_TMP/.exec.out")
        EXEC_ERR=$(cat "$TEST_TMP/.exec.err")
}

# put ID PATH FILE: copy FILE to PATH inside sandbox ID.
put() {
        exec_in "$1" "$3" sh -c 'cat >"$1"' put "$2"
        [ "$EXEC_RC" -eq 0 ]
}

# layer_audit ARCHIVE: the single layer has no device node, fifo or socket,
# nothing under dev/ proc/ sys/ tmp/, no set-id file, no owner outside
# 0..65535, no apt index or .deb, no manual page; prints the problems.
layer_audit() {
        python3 - "$1" <<'EOF'
import json, sys, tarfile
outer = tarfile.open(sys.argv[1])
index = json.load(outer.extractfile("index.json"))
def blob(d):
    return outer.extractfile("blobs/sha256/" + d.split(":", 1)[1])
manifest = json.load(blob(index["manifests"][0]["digest"]))
bad = []
n = 0
for layer in manifest["layers"]:
    with tarfile.open(fileobj=blob(layer["digest"]), mode="r|*") as t:
        for m in t:
            n += 1
            p = m.name
            if m.ischr() or m.isblk() or m.isfifo():
                bad.append("device/fifo " + p)
            if p.split("/")[0] in ("dev", "proc", "sys", "tmp") and "/" in p:
                bad.append("under a mount point: " + p)
            if m.isfile() and m.mode & 0o6000:
                bad.append("set-id %o %s" % (m.mode, p))
            if not (0 <= m.uid < 65536 and 0 <= m.gid < 65536):
                bad.append("owner %d:%d %s" % (m.uid, m.gid, p))
            if m.isfile() and (p.startswith("var/lib/apt/lists/") or p.endswith(".deb")
                               or p.startswith("usr/share/man/") or p == "etc/resolv.conf"
                               or p == "etc/hostname"):
                bad.append("should be gone: " + p)
if n < 1000:
    bad.append("only %d entries" % n)
print("\n".join(bad[:20]))
sys.exit(1 if bad else 0)
EOF
}

pboxd_start

# ---------------------------------------------------------------- build, inspect, load
for r in $RECIPES; do
        t0=$(date +%s)
        img=$(recipe_image "$r")
        rc=$?
        printf '# %s: archive ready in %s s (%s)\n' "$r" "$(($(date +%s) - t0))" "$(du -h "$img" 2>/dev/null | cut -f1)"
        check "recipe $r builds an archive" test "$rc" -eq 0 -a -s "$img" || continue
        eval "IMG_$r=\$img"

        insp=$(skopeo inspect "oci-archive:$img" 2>&1)
        check_eq "skopeo inspect oci-archive:$r.tar" amd64-linux \
                "$(printf '%s' "$insp" | jq -r '.Architecture + "-" + .Os' 2>/dev/null)" ||
                printf '%s\n' "$insp" | head -n 5 | sed 's/^/# /'
        check "skopeo inspect oci-archive:$r.tar:$r:latest (by its ref.name)" \
                skopeo inspect "oci-archive:$img:$r:latest"
        cfg=$(skopeo inspect --config "oci-archive:$img" 2>/dev/null)
        check_match "$r: Env has LANG=C.UTF-8" '^LANG=C\.UTF-8$' "$(printf '%s' "$cfg" | jq -r '.config.Env[]?')"
        audit=$(layer_audit "$img" 2>&1)
        check "$r: layer has no devices, set-id files, foreign owners or apt leftovers" test -z "$audit" ||
                printf '%s\n' "$audit" | sed 's/^/# /'

        t0=$(date +%s)
        id=$(PBOX_CLI_TIMEOUT=300 pbox_cli image load "$img" 2>"$W/load.err")
        check_match "pbox image load $r.tar" '^[0-9a-f]{64}$' "$id" || cat "$W/load.err"
        printf '# %s: loaded in %s s\n' "$r" "$(($(date +%s) - t0))"
done

api_call GET /v1/images
for r in $RECIPES; do
        case $r in
        python) cmd='["/usr/bin/python3"]' ;;
        node) cmd='["/usr/bin/node"]' ;;
        *) cmd='["/bin/bash"]' ;;
        esac
        rec=$(json_get "[.images[] | select(.names | index(\"$r:latest\"))][0] // {}")
        check_eq "image record $r:latest: LANG=C.UTF-8, cmd $cmd" "1 $cmd" \
                "$(json_get '[.config.env[]? | select(. == "LANG=C.UTF-8")] | length' "$rec") $(printf '%s' "$rec" | jq -c .config.cmd)"
done
printf '# images built and loaded after %s s\n' "$(($(date +%s) - T_START))"

# ---------------------------------------------------------------- debian
if [ -n "${IMG_debian:-}" ] && sandbox_create debian:latest; then
        D=$SANDBOX_ID
        pbox_exec "$D" bash -c 'echo $((20 + 22)) $BASH_VERSION'
        check_match "debian: bash runs" '^42 5\.' "$EXEC_OUT"
        # Everything below runs under the default policy and capability set.
        pbox_exec "$D" sh -c 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr -s "\t " " "'
        check_eq "debian: commands run with no_new_privs and a seccomp filter" "NoNewPrivs: 1
Seccomp: 2" "$EXEC_OUT"
        pbox_exec "$D" cat /etc/debian_version
        check_match "debian: Debian 12" '^12\.' "$EXEC_OUT"
        pbox_exec "$D" sh -c 'find / -xdev -type f -perm /6000; find /var/lib/apt/lists /var/cache/apt /var/log -type f; echo end'
        check_eq "debian: no set-id programs, no apt lists, caches or logs" end "$EXEC_OUT"
        pbox_exec "$D" getent hosts localhost
        check_match "debian: localhost resolves (/etc/hosts)" '^(127\.0\.0\.1|::1) ' "$EXEC_OUT"
        pbox_exec "$D" sh -c 'echo "$LANG"'
        check_match "debian: LANG=C.UTF-8 in the environment" '^C\.UTF-8$' "$EXEC_OUT"
fi

# ---------------------------------------------------------------- an admin's own image
# What the README tells an admin: re-tag with skopeo copy (oci-archive and
# docker-archive), load, use under the new name.
if [ -n "${IMG_debian:-}" ]; then
        for dst in "oci-archive:$W/mine.tar:admin/debian:12" "docker-archive:$W/dock.tar:dock/debian:12"; do
                name=${dst#*.tar:}
                file=${dst#*:}
                file=${file%%.tar:*}.tar
                check "skopeo copy oci-archive:debian.tar ${dst%%:*}:...:$name" \
                        skopeo copy -q "oci-archive:$IMG_debian" "$dst"
                pbox_cli image load "$file" >"$W/load.out" 2>&1
                check_eq "pbox image load of the ${dst%%:*} ($name)" 0 "$?" || sed 's/^/# /' "$W/load.out"
                pbox_cli run --rm "$name" -- cat /etc/debian_version >"$W/run.out" 2>&1
                check_match "pbox run --rm $name" '^12\.' "$(cat "$W/run.out")"
        done
fi

# ---------------------------------------------------------------- python
cat >"$W/t.py" <<'EOF'
import concurrent.futures, multiprocessing, os, socket, subprocess, sys, threading

def square(x):
    return x * x

if __name__ == "__main__":
    print(subprocess.run(["echo", "sub"], capture_output=True, text=True, check=True).stdout.strip())
    print(subprocess.run("echo shell | tr a-z A-Z", shell=True, capture_output=True,
                         text=True, check=True).stdout.strip())
    p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    print(p.communicate("olleh")[0].strip(), p.returncode)
    done, lock = [], threading.Lock()
    def work(i):
        with lock:
            done.append(i)
        return sum(range(i * 1000))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("threads", len(done))
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        print("pool", len(list(ex.map(work, range(20)))))
    with multiprocessing.Pool(2) as mp:
        print("mp", mp.map(square, range(5)))
    a, b = socket.socketpair(); a.send(b"x"); print("socketpair", b.recv(1).decode())
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
    c = socket.create_connection(s.getsockname()); conn, _ = s.accept(); c.send(b"ping")
    print("tcp", conn.recv(4).decode())
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    import ctypes, sqlite3, ssl
    libc = ctypes.CDLL(None)
    cmp = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    arr = (ctypes.c_int * 4)(3, 1, 4, 2)
    libc.qsort(arr, 4, ctypes.sizeof(ctypes.c_int), cmp(lambda x, y: x[0] - y[0]))
    print("ctypes", list(arr), ssl.OPENSSL_VERSION.split()[0])
    print("sqlite", sqlite3.connect(":memory:").execute("select 1 + 1").fetchone()[0], "é")
EOF
cat >"$W/t.py.expected" <<'EOF'
sub
SHELL
hello 0
threads 16
pool 20
mp [0, 1, 4, 9, 16]
socketpair x
tcp ping
fork 7
ctypes [1, 2, 3, 4] OpenSSL
sqlite 2 é
EOF
if [ -n "${IMG_python:-}" ] && sandbox_create python:latest; then
        P=$SANDBOX_ID
        pbox_exec "$P" python3 -c 'print(1+1)'
        check_eq "python: python3 -c 'print(1+1)'" 2 "$EXEC_OUT"
        check "python: the script is copied to /tmp" put "$P" /tmp/t.py "$W/t.py"
        pbox_exec "$P" python3 /tmp/t.py
        check_eq "python: subprocess, threads, multiprocessing, sockets, fork, ctypes" \
                "$(cat "$W/t.py.expected")" "$EXEC_OUT" || printf '%s\n' "$EXEC_ERR" | tail -n 5 | sed 's/^/# /'
        exec_in "$P" "$W/t.py" python3 -
        check_eq "python: the same script on stdin" "$(cat "$W/t.py.expected")" "$EXEC_OUT"
        pbox_exec "$P" python3 -c 'raise ValueError("boom")'
        check_eq "python: an exception exits 1" 1 "$EXEC_RC"
        check_match "python: ... with a traceback on stderr" '^ValueError: boom' "$EXEC_ERR"
        # The same through the HTTP API, stdin in the request.
        api_json POST "/v1/sandboxes/$P/exec" \
                '{"argv":["python3","-c","import sys; print(sum(int(x) for x in sys.stdin.read().split()))"],"stdin":"1 2 3 4\n","cwd":"/tmp"}'
        check_eq "python: exec over the API with stdin" "200 0 10" \
                "$API_STATUS $(json_get .exit_code) $(json_get .stdout | tr -d '\n')"
fi

# ---------------------------------------------------------------- node
cat >"$W/t.js" <<'EOF'
const cp = require('child_process'), fs = require('fs'), net = require('net');
const { Worker } = require('worker_threads');
const out = [];
out.push('exec ' + cp.execSync('echo hi').toString().trim());
out.push('spawnSync ' + cp.spawnSync('sh', ['-c', 'echo $((6 * 7))']).stdout.toString().trim());
fs.writeFileSync('/tmp/n.txt', 'data');
out.push('fs ' + fs.readFileSync('/tmp/n.txt', 'utf8'));
out.push('crypto ' + require('crypto').createHash('sha256').update('x').digest('hex').slice(0, 8));
out.push('intl ' + new Intl.NumberFormat('de-DE').format(1234.5) + ' ' + 'straße'.toUpperCase());
const worker = new Promise((resolve, reject) => {
  const w = new Worker('require("worker_threads").parentPort.postMessage(21 * 2)', { eval: true });
  w.on('message', resolve); w.on('error', reject);
});
const spawned = new Promise((resolve) => {
  const c = cp.spawn('cat'); let s = '';
  c.stdout.on('data', (d) => { s += d; }); c.on('close', (code) => resolve(s + ' ' + code));
  c.stdin.end('piped');
});
const tcp = new Promise((resolve) => {
  const srv = net.createServer((s) => s.end('pong')).listen(0, '127.0.0.1', () => {
    net.connect(srv.address().port, '127.0.0.1').on('data', (d) => { srv.close(); resolve(d.toString()); });
  });
});
Promise.all([worker, spawned, tcp]).then(([w, s, t]) => {
  out.push('worker ' + w, 'spawn ' + s, 'tcp ' + t);
  console.log(out.join('\n'));
});
EOF
cat >"$W/t.js.expected" <<'EOF'
exec hi
spawnSync 42
fs data
crypto 2d711642
intl 1.234,5 STRASSE
worker 42
spawn piped 0
tcp pong
EOF
if [ -n "${IMG_node:-}" ] && sandbox_create node:latest; then
        N=$SANDBOX_ID
        pbox_exec "$N" node -e 'console.log(1+1)'
        check_eq "node: node -e 'console.log(1+1)'" 2 "$EXEC_OUT"
        check "node: the script is copied to /tmp" put "$N" /tmp/t.js "$W/t.js"
        pbox_exec "$N" node /tmp/t.js
        check_eq "node: child_process, worker_threads, fs, crypto, Intl, net" \
                "$(cat "$W/t.js.expected")" "$EXEC_OUT" || printf '%s\n' "$EXEC_ERR" | tail -n 5 | sed 's/^/# /'
        pbox_exec "$N" node -e 'null.x'
        check_eq "node: an uncaught TypeError exits 1" 1 "$EXEC_RC"
        check_match "node: ... with the error on stderr" '^TypeError' "$EXEC_ERR"
fi

# ---------------------------------------------------------------- gcc
cat >"$W/a.c" <<'EOF'
#include <math.h>
#include <pthread.h>
#include <stdio.h>
static void *twice(void *p) { *(int *) p *= 2; return p; }
int main(void)
{
        int x = 21;
        long n, sum = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, twice, &x) != 0 || pthread_join(t, NULL) != 0)
                return 2;
        while (scanf("%ld", &n) == 1)
                sum += n;
        printf("%d %.3f %ld\n", x, sqrt(2.0), sum);
        return 0;
}
EOF
cat >"$W/b.cc" <<'EOF'
#include <bits/stdc++.h>
int main()
{
        std::vector<long> v(100);
        std::iota(v.begin(), v.end(), 1);
        long s = 0;
        std::thread t([&] { s = std::accumulate(v.begin(), v.end(), 0L); });
        t.join();
        std::map<std::string, int> m{{"a", 1}};
        std::cout << s << ' ' << m["a"] << std::endl;
}
EOF
printf 'int main(void) { return x; }\n' >"$W/bad.c"
if [ -n "${IMG_gcc:-}" ] && sandbox_create gcc:latest; then
        G=$SANDBOX_ID
        put "$G" /tmp/a.c "$W/a.c" && put "$G" /tmp/b.cc "$W/b.cc" && put "$G" /tmp/bad.c "$W/bad.c"
        check_eq "gcc: sources copied to /tmp" 0 "$?"
        pbox_exec "$G" gcc -O2 -Wall -Werror -o /tmp/a /tmp/a.c -lm -pthread
        check_eq "gcc: compiles C into /tmp" "0 " "$EXEC_RC $EXEC_ERR"
        printf '1 2 3\n' >"$W/in"
        exec_in "$G" "$W/in" /tmp/a
        check_eq "gcc: the C program runs (threads, libm, stdin)" "42 1.414 6" "$EXEC_OUT"
        pbox_cli exec -w /tmp "$G" -- g++ -O2 -std=c++17 -Wall -o b b.cc -pthread >"$W/gpp.out" 2>&1
        check_eq "g++: compiles C++17 with <bits/stdc++.h> (cwd /tmp)" 0 "$?" || sed 's/^/# /' "$W/gpp.out"
        pbox_exec "$G" /tmp/b
        check_eq "g++: the C++ program runs (std::thread)" "5050 1" "$EXEC_OUT"
        pbox_exec "$G" sh -c 'cd /tmp && cc -static -o s a.c -lm && echo 5 | ./s && printf "all:\n\tc++ -o m b.cc -pthread\n" >Makefile && make -s && ./m'
        check_eq "gcc: static linking, cc/c++ alternatives, make" "42 1.414 5
5050 1" "$EXEC_OUT"
        pbox_exec "$G" gcc -o /tmp/bad /tmp/bad.c
        check_eq "gcc: a compile error exits 1" 1 "$EXEC_RC"
        check_match "gcc: ... and says why" "error: .x. undeclared" "$EXEC_ERR"
        # LeakSanitizer needs ptrace, which the default policy denies; the
        # rest of ASan and UBSan works.
        pbox_exec "$G" sh -c 'cd /tmp && gcc -g -fsanitize=address,undefined -o as a.c -lm -pthread && echo 1 | ASAN_OPTIONS=detect_leaks=0 ./as'
        check_eq "gcc: -fsanitize=address,undefined builds and runs (detect_leaks=0)" "42 1.414 1" "$EXEC_OUT"
fi

printf '# recipes.sh: %s s in all\n' "$(($(date +%s) - T_START))"
done_testing
