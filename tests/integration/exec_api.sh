#!/bin/sh
# exec_api.sh — the execution API against a real pboxd: timeouts with grace
# periods (a process that ignores SIGTERM dies after the grace and not
# before; double forks and setsid die with their exec), normalised statuses,
# cpu accounting, async execs, event streams in order (a slow reader gets
# every byte, late), streamed stdin, kill,
# output limits, configured maximums (422), and an exec that was running
# when pboxd was killed reported as lost.
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start "max_exec_timeout_ms = 20000" "max_grace_ms = 5000"
busybox_load
sandbox_create busybox || bail_out "cannot create a sandbox"
SB=$SANDBOX_ID
X=/v1/sandboxes/$SB

now_ms() { echo $(($(date +%s%N) / 1000000)); }
exec_json() { api_json POST "$X/exec" "$1"; }

# ---- statuses
exec_json '{"argv":["true"]}'
check_eq "exit 0 is ok" ok "$(json_get .status)"
check_match "the sync result carries the exec id" '^[0-9a-f]{16}$' "$(json_get .id)"
exec_json '{"argv":["sh","-c","exit 7"]}'
check_eq "a non-zero exit is exit" "exit/7" "$(json_get '.status + "/" + (.exit_code|tostring)')"
exec_json '{"argv":["sh","-c","kill -SEGV $$"]}'
check_eq "a signal death is signaled" "signaled/11" "$(json_get '.status + "/" + (.signal|tostring)')"
exec_json '{"argv":["/nonexistent"]}'
check_eq "a missing command is failed/127" "failed/127" "$(json_get '.status + "/" + (.exit_code|tostring)')"
exec_json '{"argv":["sh","-c","i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]}'
check "cpu_ms is measured from the exec's cgroup" test "$(json_get .cpu_ms)" -gt 50
check "cpu_ms is at most wall_ms plus slack" test "$(json_get .cpu_ms)" -le "$(($(json_get .wall_ms) + 50))"

# ---- timeouts and grace
t0=$(now_ms)
exec_json '{"argv":["sleep","30"],"timeout_ms":500,"grace_ms":3000}'
t1=$(now_ms)
check_eq "a timeout ended by SIGTERM" "timeout/signal/15" "$(json_get '.status + "/" + .ended_by + "/" + (.signal|tostring)')"
check "... soon after the timeout (not after the grace)" test $((t1 - t0)) -lt 2500

t0=$(now_ms)
exec_json '{"argv":["sh","-c","trap \"\" TERM; sleep 30 & wait; sleep 30"],"timeout_ms":500,"grace_ms":1500}'
t1=$(now_ms)
check_eq "SIGTERM ignored: ended by SIGKILL" "timeout/sigkill/9" "$(json_get '.status + "/" + .ended_by + "/" + (.signal|tostring)')"
check "... not before the grace period ran out (>= 1.9 s)" test $((t1 - t0)) -ge 1900
check "... and not much after it (< 4 s)" test $((t1 - t0)) -lt 4000

exec_json '{"argv":["sh","-c","(setsid sh -c \"trap \\\"\\\" TERM HUP; echo $$ > /tmp/orphan; exec sleep 300\" &) ; sleep 30"],"timeout_ms":500,"grace_ms":500}'
check_eq "a double-forking exec times out" timeout "$(json_get .status)"
pbox_exec "$SB" sh -c 'ps -o pid,args | grep -c "[s]leep 300"'
check_eq "its setsid'd grandchild died with it" 0 "$EXEC_OUT"

exec_json '{"argv":["true"],"timeout_ms":30000}'
check_eq "a timeout above the maximum is 422" 422 "$API_STATUS"
check_eq "... with a JSON error" unprocessable "$(json_get .error.code)"
exec_json '{"argv":["true"],"grace_ms":60000}'
check_eq "a grace above the maximum is 422" 422 "$API_STATUS"

# ---- output limits
exec_json '{"argv":["sh","-c","yes"],"max_output_bytes":4096}'
check_eq "output past the limit kills the exec" "output_limit/true/4096" \
        "$(json_get '.status + "/" + (.stdout_truncated|tostring) + "/" + (.stdout|length|tostring)')"
exec_json '{"argv":["sh","-c","head -c 10000 /dev/zero | tr \"\\0\" a; echo; echo done >&2"],"max_output_bytes":4096,"output_limit_action":"truncate"}'
check_eq "with truncate it runs to the end" "ok/true/done" \
        "$(json_get '.status + "/" + (.stdout_truncated|tostring) + "/" + (.stderr|rtrimstr("\n"))')"

# ---- async, events, kill, stdin
exec_json '{"argv":["sh","-c","echo a; sleep 0.3; echo b >&2; sleep 0.3; echo c; exit 3"],"wait":false}'
check_eq "an async exec answers 202" 202 "$API_STATUS"
EID=$(json_get .id)
check_eq "... running" running "$(json_get .state)"
curl -sS -N --max-time 10 -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" "$PBOX_URL$X/execs/$EID/events" >"$TEST_TMP/events"
check_eq "the event stream is start, stdout, stderr, stdout, exit in order" "start stdout stderr stdout exit" \
        "$(sed -n 's/^event: //p' "$TEST_TMP/events" | tr '\n' ' ' | sed 's/ $//')"
check_match "the exit event carries the status" '"status":"exit"' "$(grep -A1 '^event: exit' "$TEST_TMP/events")"
api_call GET "$X/execs/$EID"
check_eq "GET of the exec has its result" "exited/exit/3" "$(json_get '.state + "/" + .result.status + "/" + (.result.exit_code|tostring)')"
curl -sS -N --max-time 10 -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" "$PBOX_URL$X/execs/$EID/events" >"$TEST_TMP/events2"
check_eq "a late client gets the buffered output and the exit" "start stdout stderr stdout exit" \
        "$(sed -n 's/^event: //p' "$TEST_TMP/events2" | tr '\n' ' ' | sed 's/ $//')"
# A client that reads slowly: the exec writes 12 MiB while the client reads
# nothing for a while (a 4 KiB receive buffer, so the api process and the
# core's channel to it fill up); once it reads, it gets every byte and the
# exit, late, instead of a stream cut short.
exec_json '{"argv":["sh","-c","head -c 12582912 /dev/zero | tr \"\\000\" a; echo done >&2"],"max_output_bytes":16777216,"wait":false}'
SLOW=$(json_get .id)
python3 - "$PBOX_URL" "$X/execs/$SLOW/events" "$(cat "$PBOX_TOKEN_FILE")" "$(tscale 3)" >"$TEST_TMP/slow" 2>&1 <<'EOF'
import json, socket, sys, time
url, path, token, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
host, port = url.split("//")[1].split(":")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((host, int(port)))
s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
time.sleep(pause)
s.settimeout(120)
buf = bytearray()
while True:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    buf += chunk
text = buf.decode("utf-8", "replace")
body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
out = err = 0
events = []
for block in body.split("\n\n"):
    ev = data = None
    for line in block.split("\n"):
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
    if ev:
        events.append(ev)
        if ev in ("stdout", "stderr"):
            d = json.loads(data)["data"]
            if ev == "stdout":
                out += len(d)
            else:
                err += len(d)
        if ev == "exit":
            status = json.loads(data)["status"]
print(f"stdout={out} stderr={err} last={events[-1] if events else None} status={status if 'exit' in events else None}")
EOF
check_eq "a slow reader gets all 12 MiB of output, then the exit" "stdout=12582912 stderr=5 last=exit status=ok" \
        "$(tail -n 1 "$TEST_TMP/slow")"
api_call GET "$X/execs"
check "the exec list has it" sh -c "printf '%s' '$API_BODY' | jq -e '.execs | map(.id) | index(\"$EID\")' >/dev/null"

exec_json '{"argv":["sh","-c","while read l; do echo \"<$l>\"; done; echo eof"],"stdin_stream":true}'
EID=$(json_get .id)
api_call POST "$X/execs/$EID/stdin" --data-binary 'one
two
'
check_eq "stdin chunks are accepted" 8 "$(json_get .written)"
api_call POST "$X/execs/$EID/stdin?close=true" --data-binary 'three
'
wait_until 5 sh -c "curl -s -H 'Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")' '$PBOX_URL$X/execs/$EID' | jq -e '.state == \"exited\"'"
api_call GET "$X/execs/$EID"
check_eq "streamed stdin reached the command, and its close too" "<one>
<two>
<three>
eof" "$(json_get .result.stdout)"
api_call POST "$X/execs/$EID/stdin" --data-binary 'late'
check_eq "stdin after the end is 409" 409 "$API_STATUS"

exec_json '{"argv":["sh","-c","trap \"\" TERM; sleep 30"],"wait":false}'
EID=$(json_get .id)
api_json POST "$X/execs/$EID/kill" '{"signal":"SIGTERM","grace_ms":300}'
check_eq "kill of one exec: killed by SIGKILL after the grace" "killed/sigkill" "$(json_get '.result.status + "/" + .result.ended_by')"
exec_json '{"argv":["sleep","30"],"wait":false}'
EID=$(json_get .id)
api_json POST "$X/execs/$EID/kill" '{}'
check_eq "kill with the default SIGTERM" "killed/signal" "$(json_get '.result.status + "/" + .result.ended_by')"

# ---- an exec running when pboxd is killed is reported lost, not forgotten
exec_json '{"argv":["sh","-c","echo started; sleep 300"],"wait":false}'
EID=$(json_get .id)
sleep 0.3
pboxd_kill9
pboxd_restart >/dev/null 2>&1
api_call GET "$X/execs/$EID"
check_eq "the interrupted exec is reported lost" "exited/lost" "$(json_get '.state + "/" + .result.status')"
pbox_exec "$SB" sh -c 'ps -o args | grep -c "[s]leep 300"'
check_eq "... and what it left running was ended" 0 "$EXEC_OUT"
exec_json '{"argv":["echo","alive"]}'
check_eq "the sandbox still runs execs" "ok/alive" "$(json_get '.status + "/" + (.stdout|rtrimstr("\n"))')"

api_call DELETE "$X?force=true"
check_eq "the sandbox is removed" 200 "$API_STATUS"
pboxd_stop
check_no_leaks "nothing left behind"
done_testing
