#!/bin/sh
# sandbox_isolation.sh — every isolation default of a busybox sandbox,
# asserted from inside the sandbox (pbox exec) and, where the fact is a
# host-side one (uid shift, overlay upper, cgroup), from the host:
# capabilities, no_new_privs, seccomp, user namespace maps, UTS, network,
# masked and read-only paths, /dev, pid namespace and init, fds, /proc/*/exe,
# mount/unshare refused, host filesystem invisible, cgroup namespace, IPC
# namespace, overlay root with copy-up into the per-sandbox upper dir.
# shellcheck disable=SC2016,SC2119  # SC2016: the '$...' in sandbox scripts expand inside the sandbox

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start
IMG=$(busybox_image) || bail_out "cannot build the busybox image"
busybox_load || bail_out "cannot load $IMG into pboxd"

# ---------------------------------------------------------------- fixtures on the host
MARKER=/tmp/pbox-host-marker-$$
echo "host secret" >"$MARKER"
at_cleanup "rm -f '$MARKER'"
MSQID=
if command -v ipcmk >/dev/null 2>&1; then
        MSQID=$(ipcmk -Q 2>/dev/null | sed -n 's/^Message queue id: *//p')
        [ -z "$MSQID" ] || at_cleanup "ipcrm -q '$MSQID' 2>/dev/null"
fi

sandbox_create --hostname judge1 busybox || bail_out "pbox create failed"
ID=$SANDBOX_ID
check_match "pbox create prints a 24-hex id" '^[0-9a-f]{24}$' "$ID"

# sb SCRIPT: run SCRIPT with /bin/sh inside the sandbox (EXEC_OUT/ERR/RC).
sb() {
        pbox_exec "$ID" /bin/sh -c "$1"
}

# ---------------------------------------------------------------- capabilities
# The documented default set: CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_FOWNER 3,
# CAP_FSETID 4, CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7, CAP_SETPCAP 8,
# CAP_NET_BIND_SERVICE 10, CAP_SYS_CHROOT 18.
mask=0
for bit in 0 1 3 4 5 6 7 8 10 18; do
        mask=$((mask | (1 << bit)))
done
CAPS=$(printf '%016x' "$mask")
check_eq "default capability mask computed" 00000000000405fb "$CAPS"

sb 'cat /proc/self/status'
check_eq "exec of /bin/sh succeeds" 0 "$EXEC_RC" ||
        bail_out "exec does not work (status $EXEC_RC: $EXEC_ERR): nothing else can be checked"
STATUS=$EXEC_OUT
field() { printf '%s\n' "$STATUS" | sed -n "s/^$1:[[:space:]]*//p"; }
check_eq "CapEff is the default set" "$CAPS" "$(field CapEff)"
check_eq "CapPrm is the default set" "$CAPS" "$(field CapPrm)"
check_eq "CapBnd is the default set" "$CAPS" "$(field CapBnd)"
check_eq "CapInh is empty" 0000000000000000 "$(field CapInh)"
check_eq "CapAmb is empty" 0000000000000000 "$(field CapAmb)"
check_eq "NoNewPrivs is set" 1 "$(field NoNewPrivs)"
check_eq "Seccomp is in filter mode" 2 "$(field Seccomp)"

# ---------------------------------------------------------------- user namespace
norm() { printf '%s\n' "$1" | tr -s ' \t' ' ' | sed 's/^ //; s/ $//'; }
sb 'cat /proc/self/uid_map'
check_eq "uid_map maps 0 to 100000 (65536 ids)" "0 100000 65536" "$(norm "$EXEC_OUT")"
sb 'cat /proc/self/gid_map'
check_eq "gid_map maps 0 to 100000 (65536 ids)" "0 100000 65536" "$(norm "$EXEC_OUT")"
sb 'id -u; id -g'
check_eq "root inside (uid 0, gid 0)" "0
0" "$EXEC_OUT"

# Through the API as well: argv, exit code, stdout.
api_json POST "/v1/sandboxes/$ID/exec" '{"argv": ["id", "-u"]}'
check_eq "API exec answers 200" 200 "$API_STATUS"
check_eq "API exec: exit_code 0" 0 "$(json_get .exit_code)"
check_eq "API exec: stdout" "0" "$(json_get .stdout)"

sb 'echo "$PATH"'
check_eq "the image's PATH is the exec environment" \
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$EXEC_OUT"

# ---------------------------------------------------------------- overlay root, copy-up
sb 'awk '\''$5 == "/" { for (i = 7; $i != "-"; i++) ; t = $(i + 1) } END { print t }'\'' /proc/self/mountinfo'
check_eq "the root filesystem is an overlay" overlay "$EXEC_OUT"

sb 'echo inside > /root/made-inside && echo x >> /etc/group && rm /usr/share/doc/busybox-static/copyright'
check_eq "writing into the rootfs works" 0 "$EXEC_RC"
UPPER=$PBOXD_STATE/sandboxes/$ID/upper
check "upper dir exists at \$PBOXD_STATE/sandboxes/<id>/upper" test -d "$UPPER"
check_eq "a file root made inside is owned by uid 100000 on the host" \
        "100000:100000" "$(stat -c %u:%g "$UPPER/root/made-inside" 2>&1)"
check_eq "its content is in the upper dir" inside "$(cat "$UPPER/root/made-inside" 2>&1)"
check_match "a modified image file is copied up" '^x$' "$(cat "$UPPER/etc/group" 2>&1)"
check_eq "a deleted image file leaves a whiteout (char 0:0) in upper" \
        "character special file 0:0" \
        "$(stat -c '%F %t:%T' "$UPPER/usr/share/doc/busybox-static/copyright" 2>&1)"
api_call GET /v1/images
LAYERS=$(json_get '.images[] | select(.names | index("busybox:latest")) | .layers[]' | sed 's/^sha256://')
check_match "the image record lists its layer" '^[0-9a-f]{64}$' "$LAYERS"
LOWER=$PBOXD_STATE/layers/$(printf '%s\n' "$LAYERS" | head -n 1)
check "layer dir exists at \$PBOXD_STATE/layers/<diffid>" test -d "$LOWER"
# The layer's root is that directory or one level below it.
for c in "$LOWER" "$LOWER"/*; do
        if [ -f "$c/bin/busybox" ]; then LOWER=$c; break; fi
done
check_eq "layer files are shifted to the sandbox's root (uid 100000)" "100000:100000" \
        "$(stat -c %u:%g "$LOWER/bin/busybox" 2>&1)"
check_eq "the layer's /etc/group is untouched" "root:x:0:
nogroup:x:65534:" "$(cat "$LOWER/etc/group" 2>&1)"
check "the layer keeps the file deleted inside" test -f "$LOWER/usr/share/doc/busybox-static/copyright"
check_eq "nothing made inside lands in any layer" "" \
        "$(find "$PBOXD_STATE/layers" -name made-inside 2>&1)"
sb 'cat /etc/group; ls /usr/share/doc/busybox-static/copyright 2>&1'
check_match "inside sees its own change" '^x$' "$EXEC_OUT"
check_match "inside the deleted file is gone" 'No such file' "$EXEC_OUT"

# ---------------------------------------------------------------- UTS
sb hostname
check_eq "hostname is the one given at create" judge1 "$EXEC_OUT"
api_json POST /v1/sandboxes '{"image": "busybox"}'
check_eq "create without hostname: 201" 201 "$API_STATUS"
ID2=$(json_get .id)
REC_HOST=$(json_get .hostname)
pbox_exec "$ID2" /bin/sh -c hostname
check_eq "default hostname is the record's" "$REC_HOST" "$EXEC_OUT"
check_no_match "default hostname is not the host's" "^$(hostname)\$" "$EXEC_OUT"
check_no_match "default hostname is not empty" '^$' "$EXEC_OUT"
sb 'hostname evil'
check "sethostname inside fails (no CAP_SYS_ADMIN)" test "$EXEC_RC" -ne 0
check "the host's hostname is unchanged" test "$(hostname)" != evil

# ---------------------------------------------------------------- network
sb 'ls /sys/class/net'
check_eq "/sys/class/net has only lo" lo "$EXEC_OUT"
sb 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'
check_eq "/proc/net/dev has only lo" lo "$EXEC_OUT"
sb 'echo $(( $(cat /sys/class/net/lo/flags) & 1 ))'
check_eq "lo is UP (IFF_UP in flags)" 1 "$EXEC_OUT"
sb 'ip link show lo'
check_match "ip link: lo is UP" '[<,]UP[,>]' "$EXEC_OUT"
sb 'tail -n +2 /proc/net/route | wc -l'
check_eq "no IPv4 route at all" 0 "$(norm "$EXEC_OUT")"
sb 'ip route show 2>&1'
check_eq "ip route: empty main table" "" "$EXEC_OUT"
sb 'grep -v " lo$" /proc/net/ipv6_route 2>/dev/null | wc -l'
check_eq "no IPv6 route but lo's" 0 "$(norm "$EXEC_OUT")"
# The host's pboxd listens on the host's loopback; the sandbox's is another.
sb "wget -q -T 3 -O - http://127.0.0.1:$PBOXD_PORT/v1/sandboxes"
check "the host's loopback (pboxd's port) is unreachable" test "$EXEC_RC" -ne 0

# ---------------------------------------------------------------- masked paths
# Masked: absent, or covered by a mount (so the mount table shows it) and
# empty.  masked PATH TEST prints "absent", "empty" or what is wrong.
masked() {
        sb "if [ ! -e $1 ]; then echo absent; exit; fi
            awk -v p=$1 '\$5 == p { f = 1 } END { if (!f) print \"not a mount point\" }' /proc/self/mountinfo
            n=\$($2)
            if [ \"\$n\" -eq 0 ]; then echo empty; else echo \"\$n bytes/entries\"; fi"
}
check_masked() {
        if [ "$EXEC_OUT" = absent ]; then
                check_eq "$1" absent "$EXEC_OUT"
        else
                check_eq "$1" empty "$EXEC_OUT"
        fi
}
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
        masked "$f" "head -c 64 $f 2>/dev/null | wc -c"
        check_masked "$f is masked (absent, or a mount point that reads empty)"
done
for d in /proc/acpi /proc/scsi /sys/firmware; do
        masked "$d" "ls -A $d 2>/dev/null | wc -l"
        check_masked "$d is masked (absent, or an empty mount point)"
done

# ---------------------------------------------------------------- read-only paths
# Each is a mount point whose (topmost) mount is read-only.  Writes are
# refused; where the file is writable by permissions (ns_last_pid is 0666),
# the refusal is EROFS.  (Files owned by host root fail with EACCES first
# inside the user namespace, so EROFS is only asserted where it must show.)
mount_opts() {
        sb "if [ ! -e $1 ]; then echo absent; exit; fi
            awk -v p=$1 '\$5 == p { o = \$6 } END { print (o == \"\" ? \"not a mount point\" : o) }' /proc/self/mountinfo"
}
for p in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus /proc/fs /sys; do
        mount_opts "$p"
        if [ "$EXEC_OUT" = absent ] && [ "$p" != /proc/sys ] && [ "$p" != /sys ]; then
                check_eq "$p (absent from this kernel) is absent inside" absent "$EXEC_OUT"
        else
                check_match "$p is a read-only mount" '^(.*,)?ro(,.*)?$' "$EXEC_OUT"
        fi
done
sb 'echo 1 > /proc/sys/kernel/ns_last_pid'
check "writing /proc/sys/kernel/ns_last_pid fails" test "$EXEC_RC" -ne 0
check_match "... with EROFS" 'Read-only file system' "$EXEC_ERR"
sb '[ ! -e /proc/sysrq-trigger ] || ! echo h > /proc/sysrq-trigger'
check "writing /proc/sysrq-trigger fails" test "$EXEC_RC" -eq 0
sb '! echo 1 > /proc/irq/default_smp_affinity'
check "writing /proc/irq/default_smp_affinity fails" test "$EXEC_RC" -eq 0
sb 'touch /sys/pbox-x; mkdir /sys/kernel/pbox-x'
check "creating in /sys fails" test "$EXEC_RC" -ne 0
check_match "... with EROFS" 'Read-only file system' "$EXEC_ERR"

# ---------------------------------------------------------------- /dev
sb 'ls -A /dev | sort | tr "\n" " "'
check_eq "/dev holds only the minimal set" \
        "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero " "$EXEC_OUT"
sb 'for d in null zero full random urandom tty; do printf "%s=%s " $d "$(stat -L -c "%F %t:%T" /dev/$d)"; done'
check_eq "device nodes are the right char devices" \
        "null=character special file 1:3 zero=character special file 1:5 full=character special file 1:7 random=character special file 1:8 urandom=character special file 1:9 tty=character special file 5:0 " \
        "$EXEC_OUT"
sb 'echo hello > /dev/null'
check_eq "writing /dev/null works" 0 "$EXEC_RC"
sb 'head -c 32 /dev/zero | od -v -An -tx1 | tr -d " \n"'
check_eq "/dev/zero reads zeros" 0000000000000000000000000000000000000000000000000000000000000000 "$EXEC_OUT"
sb 'head -c 32 /dev/urandom | wc -c'
check_eq "/dev/urandom reads" 32 "$(norm "$EXEC_OUT")"
sb 'echo x > /dev/full'
check_match "/dev/full gives ENOSPC" 'No space left on device' "$EXEC_ERR"
sb 'mknod /tmp/sda b 8 0'
check "mknod fails (no CAP_MKNOD)" test "$EXEC_RC" -ne 0

# ---------------------------------------------------------------- pid namespace, init
sb 'tr "\0" " " < /proc/1/cmdline'
check_match "pid 1 is the sandbox init" 'init' "$EXEC_OUT"
sb 'echo $$'
check "the exec'd shell is not pid 1" test "${EXEC_OUT:-1}" != 1
sb 'ls -d /proc/[0-9]* | wc -l'
check "few processes are visible (init, the shell, ls)" test "$(norm "$EXEC_OUT")" -le 5
sb 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" " "'
check_no_match "no host process (pboxd) is visible" 'pboxd' "$EXEC_OUT"
sb 'readlink /proc/1/exe'
check_no_match "init's exe is not a host path" "^$PBOX_BUILDDIR" "$EXEC_OUT"

# ---------------------------------------------------------------- fds, /proc/*/exe
sb 'ls /proc/self/fd | sort -n | tr "\n" " "'
check_eq "an exec has only fds 0 1 2 (+ ls's own 3)" "0 1 2 3 " "$EXEC_OUT"
# (no pipeline while looking: a shell holds pipe ends while it forks one)
sb 'ls /proc/$$/fd > /tmp/fds; sort -n /tmp/fds | tr "\n" " "'
check_match "the exec'd shell has only 0 1 2 (+ at most a private one)" '^0 1 2 ([0-9]+ )?$' "$EXEC_OUT"
sb 'echo x >> /proc/1/exe'
check "/proc/1/exe cannot be opened for writing" test "$EXEC_RC" -ne 0
sb 'echo x >> /proc/self/exe'
check "/proc/self/exe of a running exec cannot be opened for writing" test "$EXEC_RC" -ne 0

# ---------------------------------------------------------------- mount, namespaces
sb 'mount -t tmpfs x /tmp'
check "mount fails" test "$EXEC_RC" -ne 0
sb 'mount -o remount,rw /sys'
check "remounting /sys rw fails" test "$EXEC_RC" -ne 0
sb 'unshare -U true'
check "unshare -U fails" test "$EXEC_RC" -ne 0
sb 'unshare -m true'
check "unshare -m fails" test "$EXEC_RC" -ne 0
sb 'unshare -n true'
check "unshare -n fails" test "$EXEC_RC" -ne 0

# ---------------------------------------------------------------- host filesystem
sb 'ls -A / | tr "\n" " "'
check_eq "/ shows only the image's directories" \
        "bin dev etc home proc root run sbin sys tmp usr var " "$EXEC_OUT"
sb "ls -A /tmp; [ ! -e $MARKER ]"
check "a marker file in the host's /tmp is absent inside" test "$EXEC_RC" -eq 0
check_no_match "... and not listed in /tmp" 'pbox-host-marker' "$EXEC_OUT"
sb "[ ! -e $TEST_TMP ] && [ ! -e $PBOX_BUILDDIR/pboxd ]"
check "the test's state dir and the build tree are not visible" test "$EXEC_RC" -eq 0
sb 'awk '\''{ print $5 }'\'' /proc/self/mountinfo'
check_no_match "the old root is detached (mount points only under / /proc /sys /dev /etc /tmp /run)" \
        '^/.' "$(printf '%s\n' "$EXEC_OUT" | grep -Ev '^/((proc|sys|dev|etc|tmp|run)(/.*)?)?$')"

# ---------------------------------------------------------------- IPC namespace
if [ -n "$MSQID" ]; then
        sb 'tail -n +2 /proc/sysvipc/msg | wc -l'
        check_eq "the host's SysV message queue is not visible" 0 "$(norm "$EXEC_OUT")"
else
        skip_test "ipcmk not available: IPC namespace not checked"
fi

# ---------------------------------------------------------------- cgroups
sb 'grep "^0::" /proc/self/cgroup'
CG_INSIDE=$EXEC_OUT
check_match "cgroup v2 path inside is the namespace root" '^0::/' "$CG_INSIDE"
check_no_match "the host's cgroup path is not visible" "$PBOX_CGROUP_NAME" "$CG_INSIDE"
api_call GET "/v1/sandboxes/$ID"
INIT_PID=$(json_get .pid)
check_match "the record has the host pid of init" '^[0-9]+$' "$INIT_PID"
check_match "init is in the test's cgroup on the host" "^0::/(.*/)?$PBOX_CGROUP_NAME/" \
        "$(grep '^0::' "/proc/$INIT_PID/cgroup" 2>&1)"
check_eq "init runs as uid 100000 on the host" 100000 \
        "$(awk '/^Uid:/ { print $2 }' "/proc/$INIT_PID/status" 2>&1)"
# An exec'd process, seen from the host: same pid namespace as init, same
# cgroup subtree.
PIDNS=$(readlink "/proc/$INIT_PID/ns/pid")
pbox_cli exec "$ID" -- sleep 4 >/dev/null 2>&1 &
EXEC_BG=$!
# comm first, with the shell's read: a scan that forks per process takes
# longer than the sleep under software emulation (tests/vm).
find_exec_pid() {
        for p in /proc/[0-9]*; do
                [ "${p#/proc/}" != "$INIT_PID" ] || continue
                comm=
                { read -r comm <"$p/comm"; } 2>/dev/null
                [ "$comm" = sleep ] || continue
                [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$PIDNS" ] || continue
                echo "${p#/proc/}"
                return 0
        done
        return 1
}
if wait_until 10 find_exec_pid; then
        SLEEP_PID=$(find_exec_pid)
        check_match "an exec'd process is in the test's cgroup on the host" \
                "^0::/(.*/)?$PBOX_CGROUP_NAME/" "$(grep '^0::' "/proc/$SLEEP_PID/cgroup" 2>&1)"
        check_eq "an exec'd process runs as uid 100000 on the host" 100000 \
                "$(awk '/^Uid:/ { print $2 }' "/proc/$SLEEP_PID/status" 2>&1)"
        check_eq "an exec'd process has the default caps (host view)" "$CAPS" \
                "$(awk '/^CapEff:/ { print $2 }' "/proc/$SLEEP_PID/status" 2>&1)"
else
        check "an exec'd process appears in the sandbox's pid namespace" false
fi
wait "$EXEC_BG"
check_eq "the background exec finished with status 0" 0 "$?"

# ---------------------------------------------------------------- removal
api_call DELETE "/v1/sandboxes/$ID2?force=true"
check_eq "force-removing the second sandbox: 200" 200 "$API_STATUS"
api_call DELETE "/v1/sandboxes/$ID?force=true"
check_eq "force-removing the first sandbox: 200" 200 "$API_STATUS"
check "its state dir is gone" test ! -e "$PBOXD_STATE/sandboxes/$ID"
check "its init is gone" test ! -e "/proc/$INIT_PID"
check "pboxd stops cleanly on SIGTERM" pboxd_stop
check_no_leaks "no mount, process or daemon left behind"

done_testing
