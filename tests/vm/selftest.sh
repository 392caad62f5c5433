#!/bin/sh
# tests/vm/selftest.sh — checks, inside the VM of tests/vm/run, that the
# guest is what the cgroup tests need: a pure cgroup2 hierarchy whose memory
# and pids limits really hold, the build tree read-only, a scratch /tmp with
# user and trusted xattrs, no network device but lo.  TAP.  Outside the VM
# it skips (77; with CI=true it fails).  Owned by the VM harness.
#
#   tests/vm/run-tests tests/vm/selftest.sh      (or through tests/vm/maybe-vm)
#
# needs-cgroup-controllers: memory pids cpu io
set -u

n=0 failed=0
ok() {
        n=$((n + 1))
        if [ "$1" -eq 0 ]; then
                printf 'ok %d - %s\n' "$n" "$2"
        else
                failed=$((failed + 1))
                printf 'not ok %d - %s\n' "$n" "$2"
                [ -z "${3:-}" ] || printf '%s\n' "$3" | sed 's/^/# /'
        fi
}

if [ "${PBOX_VM:-}" != 1 ] || [ "$(id -u)" -ne 0 ]; then
        if [ "${CI:-}" = true ]; then
                echo "Bail out! not inside the pbox test VM as root (CI=true: a test that cannot run fails)"
                exit 1
        fi
        echo "1..0 # SKIP not inside the pbox test VM as root"
        exit 77
fi

CG=/sys/fs/cgroup
T=$CG/pbox-selftest-$$
cleanup() {
        [ -d "$T" ] || return 0
        for d in "$T"/*/; do
                [ -d "$d" ] || continue
                echo 1 >"$d/cgroup.kill" 2>/dev/null
        done
        sleep 0.5
        rmdir "$T"/*/ "$T" 2>/dev/null
}
trap cleanup EXIT

# ---------------------------------------------------------------- cgroup2
fstype=$(awk '$5 == "/sys/fs/cgroup" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo)
ok "$([ "$fstype" = cgroup2 ]; echo $?)" "cgroup2 is mounted at /sys/fs/cgroup" "fstype: $fstype"
ctl=" $(cat "$CG/cgroup.controllers") "
for c in cpuset cpu io memory pids; do
        case $ctl in *" $c "*) r=0 ;; *) r=1 ;; esac
        ok "$r" "controller $c is available" "have:$ctl"
done
ok "$(! grep -qv '^0::' /proc/self/cgroup; echo $?)" "no cgroup v1 hierarchy in /proc/self/cgroup" \
        "$(cat /proc/self/cgroup)"

mkdir "$T" "$T/mem" "$T/pids"
echo "+memory +pids +cpu" >"$T/cgroup.subtree_control"
# shellcheck disable=SC2320  # the status of that write is the point
ok $? "a child cgroup enables memory, pids and cpu for its children"

# A 64 MiB allocation under memory.max=32M, no swap: the OOM killer ends it.
echo 32M >"$T/mem/memory.max"
[ ! -e "$T/mem/memory.swap.max" ] || echo 0 >"$T/mem/memory.swap.max"
sh -c 'echo $$ >"$1/cgroup.procs" && exec python3 -c "b = b\"x\" * (64 << 20); print(len(b))"' \
        hog "$T/mem" >/dev/null 2>&1
rc=$?
kills=$(awk '$1 == "oom_kill" { print $2 }' "$T/mem/memory.events")
ok "$([ "$rc" -eq 137 ] && [ "${kills:-0}" -ge 1 ]; echo $?)" \
        "a 64 MiB allocation under memory.max=32M is OOM-killed" "status $rc, oom_kill ${kills:-?}"
peak=$(cat "$T/mem/memory.peak" 2>/dev/null || echo 0)
ok "$([ "$peak" -gt $((16 << 20)) ] && [ "$peak" -le $((32 << 20)) ]; echo $?)" \
        "... its memory.peak is near the limit" "memory.peak $peak"

# pids.max=8: the ninth process cannot be forked.
echo 8 >"$T/pids/pids.max"
out=$(sh -c 'echo $$ >"$1/cgroup.procs" && exec python3 -c "
import os, time
kids, fails = [], 0
for i in range(20):
    try:
        pid = os.fork()
    except BlockingIOError:
        fails += 1
        continue
    if pid == 0:
        time.sleep(10)
        os._exit(0)
    kids.append(pid)
print(len(kids), fails)
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)
"' pb "$T/pids" 2>&1)
ev=$(awk '$1 == "max" { print $2 }' "$T/pids/pids.events")
kids=${out% *} fails=${out#* }
ok "$([ "$kids" = 7 ] && [ "$fails" = 13 ] && [ "${ev:-0}" -ge 1 ]; echo $?)" \
        "pids.max=8: 7 forks succeed, 13 fail, pids.events counts them" "forks ok/failed: $out; pids.events max: ${ev:-?}"

# ---------------------------------------------------------------- files
src=$(cd "$(dirname "$0")/../.." && pwd -P)
err=$(touch "$src/.pbox-vm-selftest" 2>&1)
r=$?
ok "$([ "$r" -ne 0 ]; echo $?)" "the source tree is read-only in the guest" "$err"
ok "$(findmnt -n -o FSTYPE /tmp | grep -qx -e ext4 -e tmpfs; echo $?)" "/tmp is a scratch file system" \
        "$(findmnt -n -o FSTYPE /tmp)"
python3 - <<'EOF'
import os, sys, tempfile
fd, p = tempfile.mkstemp(dir="/tmp")
try:
    os.setxattr(p, "user.pbox", b"1")
    os.setxattr(p, "trusted.pbox", b"1")
    assert os.getxattr(p, "user.pbox") == b"1"
finally:
    os.unlink(p)
EOF
ok $? "/tmp holds user.* and trusted.* xattrs"
nets=$(cd /sys/class/net && echo *)
ok "$([ "$nets" = lo ]; echo $?)" "no network device but lo" "devices: $nets"
ok "$(ip -o link show lo | grep -q 'UP'; echo $?)" "lo is up"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
