#!/bin/sh
# runtime_cves.sh — one test per class of container-runtime escape pbox defends
# against, each attacked for real from inside (or through) a sandbox:
#   CVE-2024-21626  leaked daemon fds as working directory or command (runc)
#   CVE-2019-5736   overwriting the host runtime binary through /proc/*/exe (runc)
#   CVE-2021-30465  mount targets redirected through symlinks planted in the rootfs (runc)
# (CVE-2021-29136, unpacking through planted symlinks, is image_hostile.sh.)
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start
busybox_load
IMG=$(busybox_image) || bail_out "no busybox image"

sandbox_create busybox || bail_out "cannot create a sandbox"
SB=$SANDBOX_ID

# ---------------------------------------------------------------- CVE-2024-21626
# Every fd number a daemon could plausibly hold, as cwd and as the command.
escaped=0
exec_ok=0
n=0
while [ $n -le 64 ]; do
        api_json POST "/v1/sandboxes/$SB/exec" "{\"argv\":[\"sh\",\"-c\",\"pwd; ls -a\"],\"cwd\":\"/proc/self/fd/$n\"}"
        if [ "$(json_get .exit_code)" = 0 ]; then
                escaped=$((escaped + 1))
                printf '# cwd /proc/self/fd/%s was accepted: %s\n' "$n" "$(json_get .stdout | head -3)"
        fi
        api_json POST "/v1/sandboxes/$SB/exec" "{\"argv\":[\"/proc/self/fd/$n\"]}"
        [ "$(json_get .exit_code)" = 0 ] && exec_ok=$((exec_ok + 1))
        n=$((n + 1))
done
check_eq "no /proc/self/fd/N (N = 0..64) is usable as the working directory" 0 "$escaped"
check_eq "no /proc/self/fd/N (N = 0..64) can be executed" 0 "$exec_ok"
api_json POST "/v1/sandboxes/$SB/exec" '{"argv":["sh","-c","ls /proc/self/fd | sort -n | tr \"\\n\" \" \""]}'
check_eq "an exec'd process holds only fds 0 1 2 (and the one ls opens)" "0 1 2 3 " "$(json_get .stdout)"
api_json POST "/v1/sandboxes/$SB/exec" '{"argv":["readlink","/proc/self/cwd"]}'
check_eq "an exec's working directory is the sandbox root" "/" "$(json_get .stdout | tr -d '\n')"

# ---------------------------------------------------------------- CVE-2019-5736
sha_before=$(sha256sum "$PBOX_BUILDDIR/pboxd" "$PBOX_BUILDDIR/pbox-init" "$PBOX_BUILDDIR/pbox")
# An attacker inside hammers every /proc/*/exe with opens for writing while
# execs come and go, and records any success.
pbox_exec "$SB" sh -c '
        : > /tmp/hits
        ( end=$(( $(date +%s) + 4 ))
          while [ "$(date +%s)" -lt "$end" ]; do
                for e in /proc/[0-9]*/exe; do
                        if ( exec 3>>"$e" ) 2>/dev/null; then echo "$e" >> /tmp/hits; fi
                done
          done ) >/dev/null 2>&1 &'
i=0
while [ $i -lt 40 ]; do
        api_json POST "/v1/sandboxes/$SB/exec" '{"argv":["true"]}'
        i=$((i + 1))
done
sleep 4.5
pbox_exec "$SB" cat /tmp/hits
check_eq "no /proc/PID/exe was opened for writing from inside during 40 execs" "" "$EXEC_OUT"
pbox_exec "$SB" sh -c 'echo x >> /proc/1/exe'
check "writing /proc/1/exe (pbox-init) fails" test "$EXEC_RC" -ne 0
pbox_exec "$SB" sh -c 'cat /proc/1/exe > /dev/null'
check "reading /proc/1/exe fails too (init is not dumpable)" test "$EXEC_RC" -ne 0
pbox_exec "$SB" readlink /proc/1/exe
check "even the target of /proc/1/exe is hidden from the sandbox" test "$EXEC_RC" -ne 0
api_call GET "/v1/sandboxes/$SB"
init_pid=$(json_get .pid)
check_match "on the host, the init's exe is a sealed memfd, not a file" "^/memfd:pbox-init" "$(readlink "/proc/$init_pid/exe")"
check_eq "the host's pbox binaries are unchanged" "$sha_before" \
        "$(sha256sum "$PBOX_BUILDDIR/pboxd" "$PBOX_BUILDDIR/pbox-init" "$PBOX_BUILDDIR/pbox")"

# ---------------------------------------------------------------- CVE-2021-30465
# Images whose mount targets are symlinks out of the rootfs: the sandbox must
# be refused, with nothing mounted on the host and the host paths untouched.
mkdir -p "$TEST_TMP/victim"
echo untouched > "$TEST_TMP/victim/file"
# (only this test's mounts: other tests run in parallel)
mounts_of_test() { grep -c -F "$TEST_TMP" /proc/self/mountinfo; }
mountinfo_before=$(mounts_of_test)
for target in proc sys dev; do
        for link in /etc "../../../../../../../../$TEST_TMP/victim"; do
                python3 "$PBOX_SRCDIR/tests/integration/mkimage.py" oci "$TEST_TMP/evil.tar" \
                        --base "$IMG" --name "evil-$target:latest" \
                        --layer "[{\"type\":\"symlink\",\"path\":\"$target\",\"target\":\"$link\"}]" >/dev/null ||
                        bail_out "mkimage.py failed"
                api_call POST "/v1/images" --data-binary "@$TEST_TMP/evil.tar"
                check_eq "an image with /$target -> $link loads" 201 "$API_STATUS"
                api_json POST /v1/sandboxes "{\"image\":\"evil-$target\"}"
                check_match "creating a sandbox from it is refused (4xx/5xx)" '^[45][0-9][0-9]$' "$API_STATUS"
                check_match "... with an error naming the step" "$target|symlink|Too many levels|Not a directory" \
                        "$(json_get .error.message)"
                api_call DELETE "/v1/images/evil-$target"
        done
done
check_eq "no mount leaked on the host" "$mountinfo_before" "$(mounts_of_test)"
check_eq "the victim directory is untouched" "file" "$(ls "$TEST_TMP/victim")"
check "/etc on the host has no proc mounted on it" sh -c '! grep -q " /etc proc " /proc/self/mountinfo'
api_call GET /v1/sandboxes
check_eq "only the first sandbox exists (failed creates left nothing)" 1 "$(json_get '.sandboxes | length')"
check_eq "no sandbox directory was left behind" 1 "$(ls "$PBOXD_STATE/sandboxes" | wc -l)"

api_call DELETE "/v1/sandboxes/$SB?force=true"
check_eq "the sandbox is removed" 200 "$API_STATUS"
pboxd_stop
check_no_leaks "nothing left behind"
done_testing
