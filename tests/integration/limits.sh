#!/bin/sh
# needs-cgroup-controllers: memory pids cpu
# shellcheck disable=SC1091,SC2016
# limits.sh — resource limits and accounting (issue 4) enforced for real, on
# a host whose cgroup2 hierarchy has the memory, pids and cpu controllers
# (make check runs it in the VM, tests/vm/, on hosts that lack them): each
# limit with a real workload in a real busybox sandbox, checked in the
# sandbox's cgroup files on the host and in the exec results:
#   a 100 MiB allocation under memory_bytes 64M ends "oom", pboxd and the
#   sandbox are fine after; a fork bomb under pids 64 never holds more than
#   64 pids and the sandbox runs commands after; a spinner under cpus 0.25
#   uses about a quarter of a CPU (and about all of one once the limit is
#   lifted live); cpu_limit_ms stops a spinner with "cpu_limit"; a disk
#   filler under disk_bytes 16M gets ENOSPC inside and nothing outside
#   fills; limits raised on a live sandbox take effect (pids 8 -> 64,
#   memory 64M -> 256M); a 100 MiB allocation shows memory_peak_bytes >=
#   100 MiB; per-exec memory and pids limits; /v1/run tells cpu_limit from
#   oom from a crash; /healthz and /metrics.
# Memory is allocated with busybox dd: `dd bs=100M count=1` mallocs a
# 100 MiB buffer and read(2) from /dev/zero touches every page of it.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
require_cgroup_controllers memory pids cpu
busybox_load || bail_out "cannot load the busybox image"

MIB=1048576
SPIN='while :; do :; done'
# spawn N SECONDS: N background sleeps, stdout closed, then "spawned N";
# busybox sh exits 2 ("can't fork") at the first refused fork.
spawn() { printf 'i=0; while [ $i -lt %s ]; do sleep %s </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo spawned $i' "$1" "$2"; }
# create JSON-LIMITS: a sandbox with those limits; sets SB and CG (its cgroup on the host).
create() {
        api_json POST /v1/sandboxes "{\"image\":\"busybox\",\"limits\":$1}"
        [ "$API_STATUS" = 201 ] || bail_out "create with limits $1: HTTP $API_STATUS $API_BODY"
        SB=$(json_get .id)
        CREATED=$API_BODY
        CG=$(sandbox_cgroup "$SB") || bail_out "no cgroup found for sandbox $SB"
        [ "${CG##*/}" = "$SB" ] || bail_out "the cgroup of sandbox $SB is $CG"
}
cgval() { head -n 1 "$CG/$1" 2>&1; }
cgkey() { sed -n "s/^$2 //p" "$CG/$1" 2>/dev/null; }
status_of() { json_get '.status + " " + (.signal|tostring)'; }
pboxd_fine() { _pid_alive "$PBOXD_PID" && api_call GET /healthz && [ "$API_STATUS" = 200 ]; }
# alive: the sandbox $SB still runs a command.
alive() {
        api_exec "$SB" '{"argv":["echo","alive"]}'
        [ "$(json_get '.status + " " + (.stdout|rtrimstr("\n"))')" = "ok alive" ]
}
# ratio: the last exec's cpu_ms / wall_ms, in hundredths.
ratio() { echo $(($(json_get .cpu_ms) * 100 / ($(json_get .wall_ms) + 1))); }

# ---------------------------------------------------------------- /healthz

api_call GET /healthz
check_eq "/healthz: cpu io memory pids enabled, none missing, limits enforced" "cpu io memory pids||true" \
        "$(json_get '"\([.cgroup.enabled[]? | select(. == "cpu" or . == "io" or . == "memory" or . == "pids")] | sort | join(" "))|\(.cgroup.missing // [] | join(" "))|\(.limits_enforced)"')"
check_eq "/healthz: memory.peak is known to exist (kernel $(uname -r))" "true" "$(json_get .cgroup.memory_peak)"
check_eq "/healthz: pids_peak is a boolean" boolean "$(json_get '.cgroup.pids_peak | type')"

# ---------------------------------------------------------------- memory: a hog ends oom

create "{\"memory_bytes\":$((64 * MIB))}"
check_eq "memory_bytes 64M: the record's limits (swap 0 by default)" "$((64 * MIB)) 0" \
        "$(json_get '"\(.limits.memory_bytes) \(.limits.swap_bytes)"' "$CREATED")"
check_eq "... memory.max of the sandbox's cgroup" $((64 * MIB)) "$(cgval memory.max)"
check_eq "... memory.swap.max 0" 0 "$(cgval memory.swap.max)"
api_exec "$SB" '{"argv":["sh","-c","cat /sys/fs/cgroup/memory.max 2>/dev/null || echo absent"]}'
if [ "$(json_get '.stdout|rtrimstr("\n")')" = absent ]; then
        printf '# no cgroup2 mounted inside the sandbox: checked from the host only\n'
else
        check_eq "... inside, the cgroup namespace's memory.max" $((64 * MIB)) "$(json_get '.stdout|rtrimstr("\n")')"
fi
api_exec "$SB" '{"argv":["dd","if=/dev/zero","of=/dev/null","bs=32M","count=1"]}'
check_eq "a 32 MiB allocation under 64M: ok" "ok null" "$(status_of)"
check "... memory_peak_bytes >= 32 MiB ($(json_get .usage.memory_peak_bytes))" \
        test "$(json_get '.usage.memory_peak_bytes // 0')" -ge $((32 * MIB))
api_exec "$SB" '{"argv":["dd","if=/dev/zero","of=/dev/null","bs=100M","count=1"]}'
check_eq "a 100 MiB allocation under 64M: status oom, SIGKILL" "oom 9" "$(status_of)"
check "... usage.oom_kills >= 1 ($(json_get .usage.oom_kills))" test "$(json_get '.usage.oom_kills // 0')" -ge 1
check "... memory.events of the sandbox counts the OOM kill" test "$(cgkey memory.events oom_kill)" -ge 1
check "... pboxd is fine" pboxd_fine
check "... the sandbox runs the next command" alive

# ---------------------------------------------------------------- live raise: memory, and the peak

api_json PATCH "/v1/sandboxes/$SB" "{\"limits\":{\"memory_bytes\":$((256 * MIB))}}"
check_eq "PATCH memory_bytes 256M on the live sandbox: 200, in the record" "200 $((256 * MIB))" \
        "$API_STATUS $(json_get .limits.memory_bytes)"
check_eq "... memory.max follows" $((256 * MIB)) "$(cgval memory.max)"
api_exec "$SB" '{"argv":["dd","if=/dev/zero","of=/dev/null","bs=100M","count=1"]}'
check_eq "the same 100 MiB allocation now: ok" "ok null" "$(status_of)"
PEAK=$(json_get '.usage.memory_peak_bytes // 0')
check "... the exec's memory_peak_bytes >= 100 MiB ($PEAK)" test "$PEAK" -ge $((100 * MIB))
check "... and plausible (< 200 MiB)" test "$PEAK" -lt $((200 * MIB))
api_call GET "/v1/sandboxes/$SB"
check "... the sandbox record's usage.memory_peak_bytes >= 100 MiB ($(json_get .usage.memory_peak_bytes))" \
        test "$(json_get '.usage.memory_peak_bytes // 0')" -ge $((100 * MIB))
check "... its usage.oom_kills >= 1 (the earlier hog)" test "$(json_get '.usage.oom_kills // 0')" -ge 1
check "... its usage.cpu_ms > 0" test "$(json_get '.usage.cpu_ms // 0')" -gt 0
api_call GET /metrics
check_match "/metrics: the sandbox's memory peak" "^pbox_sandbox_memory_peak_bytes\\{sandbox=\"$SB\"\\} [0-9]" "$API_BODY"
check_match "/metrics: oom hits counted" '^pbox_limit_hits_total\{limit="oom"\} [1-9]' "$API_BODY"
api_call DELETE "/v1/sandboxes/$SB?force=true"

# ---------------------------------------------------------------- pids: a fork bomb is contained

create '{"pids":64}'
check_eq "pids 64: pids.max of the sandbox's cgroup" 64 "$(cgval pids.max)"
cg_sample "$CG/pids.current" "$TEST_TMP/pids.samples"
# b | b: each level waits for two more; refused forks end branches, others regrow.
api_exec "$SB" '{"argv":["sh","-c","b() { b | b; }; b"],"timeout_ms":5000,"grace_ms":100}'
PMAX=$(cg_sample_stop "$TEST_TMP/pids.samples")
printf '# fork bomb: status %s, pids_limit_hits %s, most pids seen %s\n' \
        "$(json_get .status)" "$(json_get .usage.pids_limit_hits)" "$PMAX"
check_match "a fork bomb under pids 64: ended by the timeout (or pids_limit)" '^(timeout|pids_limit)$' "$(json_get .status)"
check "... forks were refused (usage.pids_limit_hits $(json_get .usage.pids_limit_hits))" \
        test "$(json_get '.usage.pids_limit_hits // 0')" -ge 1
check "... the sandbox never held more than 64 pids (max seen: $PMAX)" test "${PMAX:-999}" -le 64
check "... it did reach the limit (max seen >= 32)" test "${PMAX:-0}" -ge 32
check "... pboxd is fine" pboxd_fine
check "... the sandbox runs the next command" alive
api_call GET "/v1/sandboxes/$SB"
check "... the sandbox's record counts the refused forks (usage.pids_limit_hits $(json_get .usage.pids_limit_hits))" \
        test "$(json_get '.usage.pids_limit_hits // 0')" -ge 1
# A bounded spawner that exits when a fork is refused: status pids_limit;
# an exec running beside it, failing on its own, is not blamed for it.
api_exec "$SB" "{\"argv\":[\"sh\",\"-c\",\"sleep $(tscale 2); exit 3\"],\"wait\":false}"
BESIDE=$(json_get .id)
api_exec "$SB" "$(jq -n --arg s "$(spawn 100 3)" '{argv: ["sh", "-c", $s]}')"
check_eq "100 background sleeps under pids 64: status pids_limit" pids_limit "$(json_get .status)"
check_match "... the shell saw the refused fork" "can't fork|Resource temporarily unavailable" "$(json_get .stderr)"
beside_done() { api_call GET "/v1/sandboxes/$SB/execs/$BESIDE" && [ "$(json_get .state)" = exited ]; }
wait_until "$(tscale 30)" beside_done
check_eq "... an exec beside it that exits 3: exit, not pids_limit" "exit 3" \
        "$(json_get '.result.status + " " + (.result.exit_code|tostring)')"
wait_until 60 sh -c "[ \$(cat '$CG/pids.current') -le 2 ]"
check "... the sandbox runs the next command once they end" alive
api_call DELETE "/v1/sandboxes/$SB?force=true"

# ---------------------------------------------------------------- live raise: pids 8 -> 64

create '{"pids":8}'
api_exec "$SB" "$(jq -n --arg s "$(spawn 20 30)" '{argv: ["sh", "-c", $s]}')"
check_eq "20 background sleeps under pids 8: pids_limit, not all spawned" "pids_limit false" \
        "$(json_get '.status + " " + (.stdout | test("spawned 20") | tostring)')"
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"pids":64}}'
check_eq "PATCH pids 64 on the live sandbox: 200, in the record" "200 64" "$API_STATUS $(json_get .limits.pids)"
check_eq "... pids.max follows" 64 "$(cgval pids.max)"
api_exec "$SB" "$(jq -n --arg s "$(spawn 20 30)" '{argv: ["sh", "-c", $s]}')"
check_eq "the same 20 sleeps now: ok, all spawned" "ok spawned 20" "$(json_get '.status + " " + (.stdout|rtrimstr("\n"))')"
check "... the sandbox holds more than 8 pids now ($(cgval pids.current))" test "$(cgval pids.current)" -gt 8
api_json POST "/v1/sandboxes/$SB/limits" '{"pids":null}'
check_eq "POST .../limits pids null: no limit" "200 null max" "$API_STATUS $(json_get .limits.pids) $(cgval pids.max)"
api_exec "$SB" '{"argv":["killall","sleep"]}'

# ---------------------------------------------------------------- per-exec memory and pids

api_exec "$SB" "{\"argv\":[\"dd\",\"if=/dev/zero\",\"of=/dev/null\",\"bs=100M\",\"count=1\"],\"memory_bytes\":$((64 * MIB))}"
check_eq "exec memory_bytes 64M, 100 MiB allocation: oom" "oom 9" "$(status_of)"
check_eq "... the result's limits" "$((64 * MIB)) null" "$(json_get '"\(.limits.memory_bytes) \(.limits.cpu_limit_ms)"')"
api_exec "$SB" "$(jq -n --arg s "$(spawn 30 3)" '{argv: ["sh", "-c", $s], pids: 10}')"
check_eq "exec pids 10, 30 sleeps: pids_limit" pids_limit "$(json_get .status)"
check "... pids_limit_hits >= 1" test "$(json_get '.usage.pids_limit_hits // 0')" -ge 1
EXEC_HITS=$(json_get '.usage.pids_limit_hits // 0')
check "the sandbox itself is not limited by them (next command runs)" alive
api_call GET "/v1/sandboxes/$SB"
check "... its record counts them, the exec's cgroup gone ($(json_get .usage.pids_limit_hits) >= $EXEC_HITS)" \
        test "$(json_get '.usage.pids_limit_hits // 0')" -ge "$EXEC_HITS"
api_call DELETE "/v1/sandboxes/$SB?force=true"

# ---------------------------------------------------------------- cpu: 0.25 CPU, then none

create '{"cpus":0.25}'
check_eq "cpus 0.25: the record, and cpu.max 25000 100000" "0.25|25000 100000" \
        "$(json_get .limits.cpus "$CREATED")|$(cgval cpu.max)"
api_exec "$SB" "$(jq -n --arg s "$SPIN" '{argv: ["sh", "-c", $s], timeout_ms: 1000, grace_ms: 100}')"
R=$(ratio)
printf '# spinner under cpus 0.25: cpu_ms %s over wall_ms %s\n' "$(json_get .cpu_ms)" "$(json_get .wall_ms)"
check_eq "a spinner under cpus 0.25 for 1 s: ended by the timeout" timeout "$(json_get .status)"
check "... used about a quarter of a CPU (0.10 <= $R/100 <= 0.45)" test "$R" -ge 10 -a "$R" -le 45
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"cpus":null}}'
check_eq "PATCH cpus null: cpu.max back to max" "200 max 100000" "$API_STATUS $(cgval cpu.max)"
api_exec "$SB" "$(jq -n --arg s "$SPIN" '{argv: ["sh", "-c", $s], timeout_ms: 1000, grace_ms: 100}')"
R=$(ratio)
printf '# spinner without a limit: cpu_ms %s over wall_ms %s\n' "$(json_get .cpu_ms)" "$(json_get .wall_ms)"
check "... the same spinner now uses most of a CPU ($R/100 >= 0.55)" test "$R" -ge 55
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"cpu_weight":50}}'
check_eq "PATCH cpu_weight 50: cpu.weight" "200 50" "$API_STATUS $(cgval cpu.weight)"

# ---------------------------------------------------------------- cpu_limit_ms

api_exec "$SB" "$(jq -n --arg s "$SPIN" '{argv: ["sh", "-c", $s], cpu_limit_ms: 500, timeout_ms: 60000}')"
CPU=$(json_get .cpu_ms)
check_eq "cpu_limit_ms 500 stops a spinner: cpu_limit, by SIGKILL" "cpu_limit sigkill 9" \
        "$(json_get '.status + " " + .ended_by + " " + (.signal|tostring)')"
check "... after 500 ms of CPU or more ($CPU)" test "${CPU:-0}" -ge 500
check "... and not much more (< 1500)" test "${CPU:-99999}" -lt 1500
check_eq "... the result's limits" 500 "$(json_get .limits.cpu_limit_ms)"
api_call DELETE "/v1/sandboxes/$SB?force=true"

# ---------------------------------------------------------------- disk_bytes: ENOSPC inside only

create "{\"disk_bytes\":$((16 * MIB))}"
RW=$PBOXD_STATE/sandboxes/$SB/rw
check_eq "disk_bytes 16M: the writable layer is a 16 MiB tmpfs" "tmpfs $((16 * MIB))" \
        "$(stat -f -c '%T' "$RW" 2>&1) $(($(stat -f -c '%b * %S' "$RW" 2>/dev/null || echo 0)))"
DU0=$(du -skx "$TEST_TMP" | cut -f1)
DF0=$(df -k --output=used "$TEST_TMP" | tail -n 1)
api_exec "$SB" '{"argv":["dd","if=/dev/zero","of=/filler","bs=1M","count=64"]}'
check_eq "a disk filler under disk_bytes 16M fails" exit "$(json_get .status)"
check_match "... with ENOSPC inside" 'No space left on device' "$(json_get .stderr)"
check "... usage.disk_bytes near the limit (>= 12 MiB: $(json_get .usage.disk_bytes))" \
        test "$(json_get '.usage.disk_bytes // 0')" -ge $((12 * MIB))
api_exec "$SB" '{"argv":["sh","-c","df -k / | tail -n 1"]}'
check_match "... inside, / is 16 MiB and full (df: $(json_get '.stdout|rtrimstr("\n")'))" \
        '^[^ ]+ +16384 +1[56][0-9]{3} ' "$(json_get .stdout)"
DU1=$(du -skx "$TEST_TMP" | cut -f1)
DF1=$(df -k --output=used "$TEST_TMP" | tail -n 1)
check "... nothing outside filled: the test dir grew $((DU1 - DU0)) KiB (< 1024)" test $((DU1 - DU0)) -lt 1024
check "... its file system grew $((DF1 - DF0)) KiB (< 4096)" test $((DF1 - DF0)) -lt 4096
check "... the sandbox runs the next command" alive
api_json PATCH "/v1/sandboxes/$SB" "{\"limits\":{\"disk_bytes\":$((8 * MIB))}}"
check_eq "PATCH disk_bytes below what is used: 409" 409 "$API_STATUS"
api_json PATCH "/v1/sandboxes/$SB" "{\"limits\":{\"disk_bytes\":$((48 * MIB))}}"
check_eq "PATCH disk_bytes 48M: 200, the tmpfs grows" "200 $((48 * MIB))" \
        "$API_STATUS $(($(stat -f -c '%b * %S' "$RW" 2>/dev/null || echo 0)))"
api_exec "$SB" '{"argv":["sh","-c","dd if=/dev/zero of=/filler2 bs=1M count=24 2>/dev/null && echo wrote"]}'
check_eq "... 24 MiB more fit now" "ok wrote" "$(json_get '.status + " " + (.stdout|rtrimstr("\n"))')"
api_call DELETE "/v1/sandboxes/$SB?force=true"
check "... removing the sandbox unmounts its tmpfs" sh -c "! grep -qF ' $RW ' /proc/self/mountinfo"

# ---------------------------------------------------------------- io.max on the state dir's disk

api_json POST /v1/sandboxes "{\"image\":\"busybox\",\"limits\":{\"io_write_bps\":$((4 * MIB)),\"io_read_iops\":1000}}"
if [ "$API_STATUS" = 201 ]; then
        SB=$(json_get .id)
        CG=$(sandbox_cgroup "$SB")
        check_match "io_write_bps and io_read_iops: io.max of the state dir's disk" \
                "^[0-9]+:[0-9]+ .*wbps=$((4 * MIB)).*riops=1000|^[0-9]+:[0-9]+ .*riops=1000.*wbps=$((4 * MIB))" \
                "$(cat "$CG/io.max")"
        api_call DELETE "/v1/sandboxes/$SB?force=true"
else
        check_match "io limits: 201, or 422 when the state dir is not on a block device" \
                '^422 .*block device' "$API_STATUS $(json_get .error.message)"
fi

# ---------------------------------------------------------------- /v1/run: a judge's verdicts

run_status() {
        api_json POST /v1/run "$1"
        json_get '.run.status'
}
check_eq "/v1/run, sandbox memory 64M, 100 MiB allocation: oom (memory limit exceeded)" oom \
        "$(run_status "{\"image\":\"busybox\",\"limits\":{\"memory_bytes\":$((64 * MIB))},\"argv\":[\"dd\",\"if=/dev/zero\",\"of=/dev/null\",\"bs=100M\",\"count=1\"]}")"
check_eq "/v1/run, run memory_bytes 64M: oom" oom \
        "$(run_status "{\"image\":\"busybox\",\"memory_bytes\":$((64 * MIB)),\"argv\":[\"dd\",\"if=/dev/zero\",\"of=/dev/null\",\"bs=100M\",\"count=1\"]}")"
check_eq "/v1/run, cpu_limit_ms 300, a spinner: cpu_limit (time limit exceeded)" cpu_limit \
        "$(run_status "$(jq -n --arg s "$SPIN" '{image: "busybox", argv: ["sh", "-c", $s], cpu_limit_ms: 300, timeout_ms: 60000}')")"
check_eq "/v1/run, a crash: signaled" signaled \
        "$(run_status '{"image":"busybox","argv":["sh","-c","kill -SEGV $$"],"limits":{"memory_bytes":67108864}}')"
check_eq "/v1/run, a fork bomb under pids 32: pids_limit" pids_limit \
        "$(run_status "$(jq -n --arg s "$(spawn 100 3)" '{image: "busybox", argv: ["sh", "-c", $s], limits: {pids: 32}}')")"

# ---------------------------------------------------------------- CLI

sandbox_create --memory 64M --pids 64 --cpus 0.5 --disk 16M busybox
check "pbox create --memory 64M --pids 64 --cpus 0.5 --disk 16M" test -n "$SANDBOX_ID"
SB=$SANDBOX_ID
CG=$(sandbox_cgroup "$SB")
check_eq "... memory.max pids.max cpu.max" "$((64 * MIB)) 64 50000 100000" \
        "$(cgval memory.max) $(cgval pids.max) $(cgval cpu.max)"
check "pbox limits ID --pids 128 --memory 128M" pbox_cli limits "$SB" --pids 128 --memory 128M
check_eq "... pids.max memory.max" "128 $((128 * MIB))" "$(cgval pids.max) $(cgval memory.max)"
pbox_cli inspect "$SB" >"$TEST_TMP/inspect" 2>&1
check_match "pbox inspect shows the limits" "$((128 * MIB))|128M|128 ?MiB" "$(cat "$TEST_TMP/inspect")"
api_call GET /metrics
check_match "/metrics: pids_limit hits counted" '^pbox_limit_hits_total\{limit="pids_limit"\} [1-9]' "$API_BODY"
check_match "/metrics: cpu_limit hits counted" '^pbox_limit_hits_total\{limit="cpu_limit"\} [1-9]' "$API_BODY"
check_match "/metrics: the sandbox's memory" "^pbox_sandbox_memory_bytes\\{sandbox=\"$SB\"\\} [0-9]" "$API_BODY"
api_call DELETE "/v1/sandboxes/$SB?force=true"

check "pboxd is fine at the end" pboxd_fine
pboxd_stop
check_eq "pboxd stops cleanly" 0 "$PBOXD_EXIT_STATUS"
check_no_leaks "nothing left behind"
done_testing
