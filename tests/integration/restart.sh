#!/bin/sh
# restart.sh — a restart of pboxd loses no sandbox: after SIGTERM, and after
# kill -9 of the core and the api process, running sandboxes are re-adopted
# (their processes kept running, exec and stop work), a sandbox whose init
# died while pboxd was down is marked stopped/lost and can be removed, a
# half-created record is cleaned up, an unreadable record is kept, the files
# of a sandbox lost to a (played) host reboot can still be read, and kill -9
# at varied instants of four creates in flight leaves nothing half-made.
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start
busybox_load

state_of() { # ID -> state[/stop_reason]
        api_call GET "/v1/sandboxes/$1"
        json_get '.state + (if .stop_reason then "/" + .stop_reason else "" end)'
}

sandbox_create --name keeper busybox || bail_out "cannot create a sandbox"
A=$SANDBOX_ID
sandbox_create --name doomed busybox || bail_out "cannot create a sandbox"
B=$SANDBOX_ID
sandbox_create busybox || bail_out "cannot create a sandbox"
C=$SANDBOX_ID
api_json POST "/v1/sandboxes/$C/stop" '{"grace_ms": 0}'
check_eq "a third sandbox is stopped before the restarts" "stopped/killed" "$(state_of "$C")"

# A daemon inside A: it must survive every restart of pboxd.
pbox_exec "$A" sh -c 'sh -c "echo \$\$ > /tmp/beat.pid; i=0; while :; do i=\$((i+1)); echo \$i > /tmp/beat; sleep 0.1; done" >/dev/null 2>&1 &'
check_eq "a background loop was started in the sandbox" 0 "$EXEC_RC"
sleep 0.3
pbox_exec "$A" cat /tmp/beat.pid
LOOP_PID=$EXEC_OUT
api_call GET "/v1/sandboxes/$A"
A_PID=$(json_get .pid)
B_PID=$(api_call GET "/v1/sandboxes/$B" >/dev/null; json_get .pid)
api_call GET "/v1/sandboxes/$B"
B_PID=$(json_get .pid)

# ---- 1. a clean restart (SIGTERM)
pboxd_restart
check "pboxd came back after SIGTERM" _pid_alive "$PBOXD_PID"
check_eq "sandbox A is running after the restart" running "$(state_of "$A")"
check_eq "sandbox B is running after the restart" running "$(state_of "$B")"
check_eq "sandbox C is still stopped" "stopped/killed" "$(state_of "$C")"
api_call GET "/v1/sandboxes/$A"
check_eq "A kept its init (same host pid)" "$A_PID" "$(json_get .pid)"
pbox_exec "$A" cat /tmp/beat.pid
check_eq "exec works in a re-adopted sandbox" "$LOOP_PID" "$EXEC_OUT"
pbox_cli ls --json >"$TEST_TMP/ls.json"
check_eq "pbox ls shows all three sandboxes" 3 "$(jq 'length' "$TEST_TMP/ls.json")"

# ---- 2. kill -9 of the core and the api process; B's init dies while pboxd is down
API_PID=$(pgrep -P "$PBOXD_PID" | head -n 1)
check "the api process was found" test -n "$API_PID"
kill -KILL "$PBOXD_PID" "$API_PID" 2>/dev/null
wait_until 5 eval "! _pid_alive $PBOXD_PID"
kill -KILL "$B_PID"
wait_until 5 eval "! _pid_alive $B_PID"
pbox_exec_beat_before=$(cat "$PBOXD_STATE/sandboxes/$A/upper/tmp/beat" 2>/dev/null)
sleep 0.3
beat_during=$(cat "$PBOXD_STATE/sandboxes/$A/upper/tmp/beat" 2>/dev/null)
check "the sandbox's processes run on while pboxd is down" test "$beat_during" != "$pbox_exec_beat_before"

# A record caught mid-create, and one nobody can read.
HALF=0123456789abcdef01234567
mkdir -p "$PBOXD_STATE/sandboxes/$HALF/upper"
jq --arg id "$HALF" '.id = $id | .name = $id | .state = "creating"' \
        "$PBOXD_STATE/sandboxes/$A/state.json" >"$PBOXD_STATE/sandboxes/$HALF/state.json"
BROKEN=fedcba9876543210fedcba98
mkdir -p "$PBOXD_STATE/sandboxes/$BROKEN"
echo '{"this is": not json' >"$PBOXD_STATE/sandboxes/$BROKEN/state.json"
# Killed between the directory and its record: no state.json, a temp file.
NOREC=00112233445566778899aabb
mkdir -p "$PBOXD_STATE/sandboxes/$NOREC"
echo '{"id":' >"$PBOXD_STATE/sandboxes/$NOREC/.state.json.tmp"

pboxd_restart >/dev/null 2>&1
check "pboxd came back after kill -9" _pid_alive "$PBOXD_PID"
check_eq "A is running after kill -9 of pboxd" running "$(state_of "$A")"
api_call GET "/v1/sandboxes/$A"
check_eq "A kept its init after kill -9" "$A_PID" "$(json_get .pid)"
pbox_exec "$A" cat /tmp/beat.pid
check_eq "exec works after kill -9; the daemon inside is the same process" "$LOOP_PID" "$EXEC_OUT"
check_eq "B, whose init died meanwhile, is stopped/lost" "stopped/lost" "$(state_of "$B")"
check "the half-created sandbox was cleaned up" test ! -e "$PBOXD_STATE/sandboxes/$HALF"
api_call GET "/v1/sandboxes/$HALF"
check_eq "... and is not listed" 404 "$API_STATUS"
check "a sandbox directory with no record (a create killed before it) is cleaned up" \
        test ! -e "$PBOXD_STATE/sandboxes/$NOREC"
check "the unreadable record is kept on disk" test -s "$PBOXD_STATE/sandboxes/$BROKEN/state.json"
check_match "... and named in the log" "sandbox record $BROKEN|$BROKEN" "$(cat "$PBOXD_LOG")"
rm -rf "${PBOXD_STATE:?}/sandboxes/$BROKEN"

# ---- 3. the re-adopted and lost sandboxes can be stopped and removed
api_call DELETE "/v1/sandboxes/$B"
check_eq "the lost sandbox is removed" 200 "$API_STATUS"
check "... with its state dir" test ! -e "$PBOXD_STATE/sandboxes/$B"
check "... and its mount point" test ! -e "$PBOXD_RUNTIME/sandboxes/$B"
api_json POST "/v1/sandboxes/$A/stop" '{"grace_ms": 3000}'
check_eq "the re-adopted sandbox stops" 200 "$API_STATUS"
check_eq "... and is stopped" stopped "$(json_get .state)"
check "... its init is gone" eval "! _pid_alive $A_PID"
for id in "$A" "$C"; do
        api_call DELETE "/v1/sandboxes/$id"
        check_eq "sandbox $id removed" 200 "$API_STATUS"
done
# ---- 4. a stop cut short by kill -9 goes on after the restart, on schedule
sandbox_create busybox || bail_out "cannot create a sandbox"
D=$SANDBOX_ID
pbox_exec "$D" sh -c 'sh -c "trap \"\" TERM; sleep 300" >/dev/null 2>&1 &'
curl -s -o /dev/null --max-time 10 -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" \
        -d '{"grace_ms": 2500}' "$PBOX_URL/v1/sandboxes/$D/stop" &
sleep 0.5
pboxd_kill9
pboxd_restart >/dev/null 2>&1
wait_until 8 sh -c "curl -s -H 'Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")' '$PBOX_URL/v1/sandboxes/$D' | jq -e '.state == \"stopped\"'"
check_eq "a stop interrupted by kill -9 completes after the restart" "stopped/killed" "$(state_of "$D")"
api_call DELETE "/v1/sandboxes/$D"
check_eq "... and the sandbox is removed" 200 "$API_STATUS"

# ---- 5. a host reboot, as far as one can be played: pboxd and the
# sandbox's processes killed, the runtime dir (on /run) emptied with the
# overlay mount in it.  After the restart the sandbox is stopped/lost, and
# what it wrote (upper/, on the state dir's disk) can still be read.
sandbox_create busybox || bail_out "cannot create a sandbox"
E=$SANDBOX_ID
pbox_exec "$E" sh -c 'echo rescued > /root/work.txt'
api_call GET "/v1/sandboxes/$E"
E_PID=$(json_get .pid)
pboxd_kill9
kill -KILL "$E_PID"
wait_until 5 eval "! _pid_alive $E_PID"
umount -l "$PBOXD_RUNTIME/sandboxes/$E/rootfs"
rm -rf "${PBOXD_RUNTIME:?}/sandboxes/$E"
pboxd_restart >/dev/null 2>&1
check_eq "after a reboot the sandbox is stopped/lost" "stopped/lost" "$(state_of "$E")"
api_call GET "/v1/sandboxes/$E/files?path=/root/work.txt"
check_eq "... and what it wrote can still be read" "200 rescued" "$API_STATUS $API_BODY"
api_call DELETE "/v1/sandboxes/$E"
check_eq "... and it is removed" 200 "$API_STATUS"

# ---- 6. kill -9 in the middle of creates, at varied instants
# Four creates in flight, pboxd killed (core and api) after 0 to 150 ms: after
# the restart every sandbox it lists runs and takes an exec, none is stuck
# in "creating", and (checked at the end) whatever a cut-short create had
# made -- mount, cgroup, init process, state dir -- is gone once the listed
# sandboxes are removed.
for delay in 0 0.02 0.05 0.1 0.15; do
        for i in 1 2 3 4; do
                curl -s -o /dev/null --max-time 20 -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" \
                        -H 'Content-Type: application/json' -d '{"image":"busybox"}' "$PBOX_URL/v1/sandboxes" &
        done
        sleep "$(tscale "$delay")"
        pboxd_kill9
        wait
        pboxd_restart >/dev/null 2>&1
        api_call GET /v1/sandboxes
        check_eq "kill -9 $delay s into 4 creates: after the restart every listed sandbox runs" "" \
                "$(json_get '[.sandboxes[] | select(.state != "running") | .id + ":" + .state] | join(" ")')"
        ids=$(json_get '.sandboxes[].id')
        ok=0 n=0
        for id in $ids; do
                n=$((n + 1))
                pbox_exec "$id" echo alive
                [ "$EXEC_OUT" = alive ] && ok=$((ok + 1))
                api_call DELETE "/v1/sandboxes/$id?force=true"
        done
        check_eq "... and takes an exec ($n of 4 creates had got that far)" "$n" "$ok"
        check_eq "... no record is left half-made" "" \
                "$(grep -l '"creating"' "$PBOXD_STATE"/sandboxes/*/state.json 2>/dev/null)"
done

api_call GET /v1/sandboxes
check_eq "no sandbox is left" 0 "$(json_get '.sandboxes | length')"
check_eq "... no state dir" "" "$(ls -A "$PBOXD_STATE/sandboxes")"
check_eq "... no runtime dir" "" "$(ls -A "$PBOXD_RUNTIME/sandboxes")"
pboxd_stop
check_no_leaks "no mount, process or cgroup left after all restarts"
done_testing
