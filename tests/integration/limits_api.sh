#!/bin/sh
# shellcheck disable=SC1091,SC2016
# limits_api.sh — the resource-limit API (issue 4) on a host whose cgroup2
# hierarchy lacks the controllers (the hybrid development and CI machines):
# every limit that needs a missing controller is refused with 422 naming it,
# malformed limits are 400 whatever the host, allow_unenforced_limits = yes
# creates the sandbox and lists what is not enforced, a configured default
# that needs a missing controller stops pboxd from starting, PATCH of a
# stopped sandbox is 409, /healthz lists what is missing, and what needs no
# controller works: cpu_limit_ms (cpu.stat is there without the cpu
# controller) stops a spinner, disk_bytes (a tmpfs) ends a disk filler
# with ENOSPC inside.
# No needs-cgroup-controllers line: this runs natively everywhere.  On a
# host that has the controllers (the VM: make check-vm) the same requests
# must succeed instead; tests/integration/limits.sh tests enforcement.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
busybox_load || bail_out "cannot load the busybox image"

MIB=1048576
NCPU=$(nproc)

# ---------------------------------------------------------------- /healthz

api_call GET /healthz
check_eq "/healthz: 200" 200 "$API_STATUS"
ENABLED=$(json_get '.cgroup.enabled | if type == "array" then sort | join(" ") else "<none>" end')
MISSING=$(json_get '.cgroup.missing | if type == "array" then sort | join(" ") else "<none>" end')
printf '# controllers: enabled [%s], missing [%s]\n' "$ENABLED" "$MISSING"
check_eq "/healthz: enabled and missing are lists that together name cpu io memory pids" "cpu io memory pids" \
        "$(json_get '((.cgroup.enabled // []) + (.cgroup.missing // [])) | sort | join(" ")')"
check_eq "/healthz: limits_enforced is true exactly when nothing is missing" \
        "$([ -z "$MISSING" ] && echo true || echo false)" "$(json_get .limits_enforced)"
check_eq "/healthz: delegated, memory_peak and pids_peak are booleans" "boolean boolean boolean" \
        "$(json_get '[.cgroup.delegated, .cgroup.memory_peak, .cgroup.pids_peak] | map(type) | join(" ")')"
HOST_CTL=$(cat "$(_cgroup2_root)$(sed -n 's/^0:://p' /proc/self/cgroup | sed 's|/[^/]*$||')/cgroup.controllers" 2>/dev/null)
for c in cpu io memory pids; do
        case " $HOST_CTL " in
        *" $c "*) ;;
        *) check_match "/healthz: '$c' (absent from this host's cgroup2 parent: '$HOST_CTL') is missing" \
                "(^| )$c( |\$)" "$MISSING" ;;
        esac
done

# has_ctl CONTROLLER: pboxd gives sandboxes CONTROLLER on this host.
has_ctl() {
        case " $ENABLED " in *" $1 "*) return 0 ;; esac
        return 1
}

create() { api_json POST /v1/sandboxes "$1"; }
# expect_400 DESC JSON: creating with JSON is a 400 bad_request.
expect_400() {
        create "$2"
        check_eq "$1: 400 bad_request" "400 bad_request" "$API_STATUS $(json_get .error.code 2>/dev/null)"
}

# ---------------------------------------------------------------- 400: malformed limits

expect_400 "limits not an object" '{"image":"busybox","limits":[1]}'
expect_400 "limits a string" '{"image":"busybox","limits":"64M"}'
expect_400 "an unknown key (memory)" '{"image":"busybox","limits":{"memory":67108864}}'
expect_400 "an unknown key next to a good one" '{"image":"busybox","limits":{"pids":64,"forks":1}}'
expect_400 "memory_bytes a string" '{"image":"busybox","limits":{"memory_bytes":"64M"}}'
expect_400 "memory_bytes a fraction" '{"image":"busybox","limits":{"memory_bytes":67108864.5}}'
expect_400 "memory_bytes a boolean" '{"image":"busybox","limits":{"memory_bytes":true}}'
expect_400 "memory_bytes below 4 MiB" "{\"image\":\"busybox\",\"limits\":{\"memory_bytes\":$((4 * MIB - 1))}}"
expect_400 "memory_bytes negative" '{"image":"busybox","limits":{"memory_bytes":-1}}'
expect_400 "memory_bytes beyond int64" '{"image":"busybox","limits":{"memory_bytes":18446744073709551616}}'
expect_400 "swap_bytes negative" '{"image":"busybox","limits":{"swap_bytes":-1}}'
expect_400 "pids 0" '{"image":"busybox","limits":{"pids":0}}'
expect_400 "pids above 4194304" '{"image":"busybox","limits":{"pids":4194305}}'
expect_400 "pids a string" '{"image":"busybox","limits":{"pids":"64"}}'
expect_400 "cpus 0" '{"image":"busybox","limits":{"cpus":0}}'
expect_400 "cpus below 0.01" '{"image":"busybox","limits":{"cpus":0.009}}'
expect_400 "cpus negative" '{"image":"busybox","limits":{"cpus":-1}}'
expect_400 "cpus above the host's $NCPU CPUs" "{\"image\":\"busybox\",\"limits\":{\"cpus\":$((NCPU + 1))}}"
expect_400 "cpus a string" '{"image":"busybox","limits":{"cpus":"0.5"}}'
expect_400 "cpu_weight 0" '{"image":"busybox","limits":{"cpu_weight":0}}'
expect_400 "cpu_weight 10001" '{"image":"busybox","limits":{"cpu_weight":10001}}'
expect_400 "io_read_bps 0" '{"image":"busybox","limits":{"io_read_bps":0}}'
expect_400 "io_write_iops a string" '{"image":"busybox","limits":{"io_write_iops":"1k"}}'
expect_400 "disk_bytes below 1 MiB" "{\"image\":\"busybox\",\"limits\":{\"disk_bytes\":$((MIB - 1))}}"
api_call GET /v1/sandboxes
check_eq "no malformed request left a sandbox behind" 0 "$(json_get '.sandboxes | length')"

# ---------------------------------------------------------------- 422: controllers this host lacks

# expect_422_ctl KEY VALUE CONTROLLER: a sandbox limit that needs CONTROLLER
# is 422 where it is missing (and 201 where it is there: the VM).
expect_422_ctl() {
        create "{\"image\":\"busybox\",\"limits\":{\"$1\":$2}}"
        if has_ctl "$3"; then
                check_eq "$1 with the $3 controller: 201" 201 "$API_STATUS"
                api_call DELETE "/v1/sandboxes/$(json_get .id)?force=true"
                return
        fi
        check_eq "$1 without the $3 controller: 422 unprocessable" "422 unprocessable" \
                "$API_STATUS $(json_get .error.code 2>/dev/null)"
        check_match "... the message names the controller '$3'" "'$3'" "$(json_get .error.message 2>/dev/null)"
}
expect_422_ctl memory_bytes $((64 * MIB)) memory
expect_422_ctl swap_bytes $((64 * MIB)) memory
expect_422_ctl pids 64 pids
expect_422_ctl cpus 0.5 cpu
expect_422_ctl cpu_weight 50 cpu
expect_422_ctl io_read_bps $((10 * MIB)) io
expect_422_ctl io_write_bps $((10 * MIB)) io
expect_422_ctl io_read_iops 100 io
expect_422_ctl io_write_iops 100 io
if ! has_ctl memory; then
        create '{"image":"busybox","limits":{"pids":64,"memory_bytes":67108864,"cpus":1}}'
        check_eq "several limits at once: 422" 422 "$API_STATUS"
        check_match "... naming one of the missing controllers" "'(memory|pids|cpu)'" "$(json_get .error.message)"
fi
api_call GET /v1/sandboxes
check_eq "no refused request left a sandbox behind" 0 "$(json_get '.sandboxes | length')"

# null means "no limit": allowed anywhere.
create '{"image":"busybox","limits":{"memory_bytes":null,"pids":null,"cpus":null,"swap_bytes":null,"cpu_weight":null,"io_read_bps":null,"io_write_bps":null,"io_read_iops":null,"io_write_iops":null,"disk_bytes":null}}'
check_eq "every limit null (none): 201" 201 "$API_STATUS"
SB=$(json_get .id)
check_eq "... the record lists all ten limits, each null" \
        "cpu_weight=null cpus=null disk_bytes=null io_read_bps=null io_read_iops=null io_write_bps=null io_write_iops=null memory_bytes=null pids=null swap_bytes=null" \
        "$(json_get '.limits | to_entries | sort_by(.key) | map("\(.key)=\(.value)") | join(" ")')"
check_eq "... and no unenforced_limits" null "$(json_get .unenforced_limits)"
create '{"image":"busybox"}'
check_eq "no limits object: 201" 201 "$API_STATUS"
SB_PLAIN=$(json_get .id)
check_eq "... effective limits: none (the defaults are none out of the box)" "true" \
        "$(json_get '[.limits[]] | all(. == null)')"

# ---------------------------------------------------------------- usage in records

api_call GET "/v1/sandboxes/$SB"
check_eq "a running sandbox's record has usage" object "$(json_get '.usage | type')"
check_match "... with cpu_ms, a number (cpu.stat needs no controller)" '^[0-9]+$' "$(json_get .usage.cpu_ms)"
if ! has_ctl memory; then
        check_eq "... memory figures null without the memory controller" "null null" \
                "$(json_get '"\(.usage.memory_peak_bytes) \(.usage.oom_kills)"')"
fi

# ---------------------------------------------------------------- exec limits

api_exec "$SB" '{"argv":["true"],"cpu_limit_ms":0}'
check_eq "exec cpu_limit_ms 0: 400" 400 "$API_STATUS"
api_exec "$SB" '{"argv":["true"],"cpu_limit_ms":"500"}'
check_eq "exec cpu_limit_ms a string: 400" 400 "$API_STATUS"
api_exec "$SB" "{\"argv\":[\"true\"],\"memory_bytes\":$((MIB))}"
check_eq "exec memory_bytes below 4 MiB: 400" 400 "$API_STATUS"
api_exec "$SB" '{"argv":["true"],"pids":0}'
check_eq "exec pids 0: 400" 400 "$API_STATUS"
for kc in memory_bytes:$((64 * MIB)):memory pids:16:pids; do
        k=${kc%%:*} v=${kc#*:} v=${v%%:*} c=${kc##*:}
        api_exec "$SB" "{\"argv\":[\"true\"],\"$k\":$v}"
        if has_ctl "$c"; then
                check_eq "exec $k with the $c controller: ok" "200 ok" "$API_STATUS $(json_get .status)"
                continue
        fi
        check_eq "exec $k without the $c controller: 422" 422 "$API_STATUS"
        check_match "... naming '$c'" "'$c'" "$(json_get .error.message)"
done

# cpu_limit_ms is measured in cpu.stat, which every cgroup2 has: it works here.
api_exec "$SB" '{"argv":["sh","-c","while :; do :; done"],"cpu_limit_ms":300,"timeout_ms":20000}'
check_eq "cpu_limit_ms 300 stops a spinner: 200, status cpu_limit, ended by sigkill" "200 cpu_limit sigkill" \
        "$API_STATUS $(json_get .status) $(json_get .ended_by)"
CPU=$(json_get .cpu_ms)
check "... after at least 300 ms of CPU (cpu_ms $CPU)" test "${CPU:-0}" -ge 300
check "... and not much more (< 800 ms; checked every <= 100 ms)" test "${CPU:-99999}" -lt 800
check "... long before the 20 s timeout (wall_ms $(json_get .wall_ms))" test "$(json_get .wall_ms)" -lt 10000
check_eq "... the result's limits say so" "300 null null" \
        "$(json_get '"\(.limits.cpu_limit_ms) \(.limits.memory_bytes) \(.limits.pids)"')"
check_eq "... usage.cpu_ms is the flat cpu_ms" "$CPU" "$(json_get .usage.cpu_ms)"
api_exec "$SB" '{"argv":["sh","-c","i=0; while [ $i -lt 1000 ]; do i=$((i+1)); done; echo done"],"cpu_limit_ms":20000}'
check_eq "a short command under a large cpu_limit_ms: ok" "ok done" "$(json_get '.status + " " + (.stdout|rtrimstr("\n"))')"
api_exec "$SB" '{"argv":["true"]}'
check_eq "without cpu_limit_ms the result's limits are null" "null" "$(json_get .limits.cpu_limit_ms)"
check_eq "the usage object has every figure" "" \
        "$(json_get '["cpu_ms","cpu_user_ms","cpu_system_ms","memory_peak_bytes","pids_peak","oom_kills","pids_limit_hits","io_read_bytes","io_write_bytes","disk_bytes"] - (.usage | keys) | join(" ")')"

api_call GET /metrics
check_match "/metrics counts the cpu_limit hit" '^pbox_limit_hits_total\{limit="cpu_limit"\} [1-9]' "$API_BODY"
check_match "/metrics has the sandbox's cpu seconds" "^pbox_sandbox_cpu_seconds_total\\{sandbox=\"$SB\"\\} [0-9]" "$API_BODY"

# ---------------------------------------------------------------- PATCH / POST .../limits

api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"pids":64},"name":"x"}'
check_eq "PATCH with a key other than limits: 400" 400 "$API_STATUS"
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"pids":-5}}'
check_eq "PATCH with a bad value: 400" 400 "$API_STATUS"
api_json PATCH /v1/sandboxes/0123456789abcdef01234567 '{"limits":{"pids":64}}'
check_eq "PATCH of an unknown sandbox: 404" 404 "$API_STATUS"
if ! has_ctl pids; then
        api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"pids":64}}'
        check_eq "PATCH pids without the pids controller: 422 naming it" "422 true" \
                "$API_STATUS $(json_get '.error.message | test("'"'pids'"'")')"
fi
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"disk_bytes":67108864}}'
check_eq "PATCH disk_bytes onto a sandbox created without it: 422" 422 "$API_STATUS"
check_match "... saying it can only be set at creation" 'created' "$(json_get .error.message)"
api_call POST "/v1/sandboxes/$SB/stop" -H 'Content-Type: application/json' --data-binary '{"grace_ms":100}'
check_eq "stop the sandbox" stopped "$(json_get .state)"
api_json PATCH "/v1/sandboxes/$SB" '{"limits":{"pids":null}}'
check_eq "PATCH of a stopped sandbox: 409 conflict" "409 conflict" "$API_STATUS $(json_get .error.code)"
api_json POST "/v1/sandboxes/$SB/limits" '{"pids":null}'
check_eq "POST .../limits of a stopped sandbox: 409" 409 "$API_STATUS"
api_call GET "/v1/sandboxes/$SB"
check_eq "a stopped sandbox's record keeps limits and usage" "object object" \
        "$(json_get '"\(.limits|type) \(.usage|type)"')"

# ---------------------------------------------------------------- disk_bytes (a tmpfs; no controller)

create "{\"image\":\"busybox\",\"limits\":{\"disk_bytes\":$((16 * MIB))}}"
check_eq "disk_bytes 16 MiB: 201 (needs no controller)" 201 "$API_STATUS"
SBD=$(json_get .id)
check_eq "... the record has it" $((16 * MIB)) "$(json_get .limits.disk_bytes)"
RW=$PBOXD_STATE/sandboxes/$SBD/rw
check_eq "... the writable layer is a tmpfs of 16 MiB at STATE/sandboxes/ID/rw" "tmpfs $((16 * MIB))" \
        "$(stat -f -c '%T' "$RW" 2>&1) $(($(stat -f -c '%b * %S' "$RW" 2>/dev/null || echo 0)))"
DU0=$(du -skx "$TEST_TMP" | cut -f1)
api_exec "$SBD" '{"argv":["dd","if=/dev/zero","of=/filler","bs=1M","count=64"]}'
check_eq "a disk filler under disk_bytes 16M: fails" exit "$(json_get .status)"
check_match "... with ENOSPC inside" 'No space left on device' "$(json_get .stderr)"
check "... usage.disk_bytes is near the limit (>= 12 MiB: $(json_get .usage.disk_bytes))" \
        test "$(json_get '.usage.disk_bytes // 0')" -ge $((12 * MIB))
DU1=$(du -skx "$TEST_TMP" | cut -f1)
check "... nothing outside filled (the test dir grew $((DU1 - DU0)) KiB, < 1024)" test $((DU1 - DU0)) -lt 1024
api_exec "$SBD" '{"argv":["sh","-c","rm /filler && dd if=/dev/zero of=/f2 bs=1M count=8 2>/dev/null && echo ok"]}'
check_eq "... after removing it, 8 MiB fit again" "ok" "$(json_get '.stdout|rtrimstr("\n")')"
api_call DELETE "/v1/sandboxes/$SBD?force=true"
check_eq "remove it" 200 "$API_STATUS"
check "... and its tmpfs is gone" sh -c "! grep -qF ' $RW ' /proc/self/mountinfo"

# ---------------------------------------------------------------- allow_unenforced_limits

if [ -n "$MISSING" ]; then
        # A default that needs a missing controller: pboxd refuses to start.
        pboxd_stop
        m=${MISSING%% *}
        case $m in
        memory) key=default_memory_bytes val=64M ;;
        pids) key=default_pids val=64 ;;
        cpu) key=default_cpus val=0.5 ;;
        io) key= ;;
        esac
        if [ -n "$key" ]; then
                _pboxd_write_config "$key = $val"
                timeout -k 5 30 "$PBOX_BUILDDIR/pboxd" --config "$PBOXD_CONF" --listen 127.0.0.1:1 \
                        --state-dir "$PBOXD_STATE" --runtime-dir "$PBOXD_RUNTIME" >"$TEST_TMP/refuse.log" 2>&1 </dev/null
                rc=$?
                check "pboxd with $key = $val and no '$m' controller refuses to start (status $rc)" \
                        sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ]"
                check_match "... its message names the controller" "'$m'|$m" "$(cat "$TEST_TMP/refuse.log")"
        fi
        pboxd_restart "allow_unenforced_limits = yes" "max_memory_bytes = 512M" "max_pids = 1000" \
                "max_exec_cpu_limit_ms = 10000"
        create "{\"image\":\"busybox\",\"limits\":{\"memory_bytes\":$((64 * MIB)),\"pids\":64,\"cpus\":0.5}}"
        check_eq "allow_unenforced_limits = yes: a sandbox with limits the host cannot enforce is 201" 201 "$API_STATUS"
        SBU=$(json_get .id)
        exp=
        for kc in memory_bytes:memory pids:pids cpus:cpu; do
                has_ctl "${kc#*:}" || exp="$exp ${kc%%:*}"
        done
        # shellcheck disable=SC2086  # a list of words
        exp=$(printf '%s\n' $exp | sort | tr '\n' ' ')
        exp=${exp% }
        check_eq "... its record lists unenforced_limits" "$exp" "$(json_get '.unenforced_limits | sort | join(" ")')"
        check_eq "... and the limits as asked" "$((64 * MIB)) 64 0.5" \
                "$(json_get '"\(.limits.memory_bytes) \(.limits.pids) \(.limits.cpus)"')"
        api_call GET "/v1/sandboxes/$SBU"
        check_eq "... also when read back" "$exp" "$(json_get '.unenforced_limits | sort | join(" ")')"
        api_exec "$SBU" '{"argv":["echo","runs"]}'
        check_eq "... and it runs commands" "ok runs" "$(json_get '.status + " " + (.stdout|rtrimstr("\n"))')"
        create "{\"image\":\"busybox\",\"limits\":{\"memory_bytes\":$((1024 * MIB))}}"
        check_eq "memory_bytes above max_memory_bytes: 422" 422 "$API_STATUS"
        check_match "... naming the config key" max_memory_bytes "$(json_get .error.message)"
        create '{"image":"busybox","limits":{"pids":1001}}'
        check_match "pids above max_pids: 422 naming the key" '^422 .*max_pids' "$API_STATUS $(json_get .error.message)"
        api_exec "$SBU" '{"argv":["true"],"cpu_limit_ms":10001}'
        check_match "exec cpu_limit_ms above max_exec_cpu_limit_ms: 422 naming the key" \
                '^422 .*max_exec_cpu_limit_ms' "$API_STATUS $(json_get .error.message)"
        api_json PATCH "/v1/sandboxes/$SBU" '{"limits":{"pids":128}}'
        check_eq "PATCH of a live sandbox: 200" 200 "$API_STATUS"
        check_eq "... the record has the merged limits" "128 $((64 * MIB))" \
                "$(json_get '"\(.limits.pids) \(.limits.memory_bytes)"')"
        api_json POST "/v1/sandboxes/$SBU/limits" '{"pids":null}'
        check_match "POST .../limits pids null (no limit) with max_pids set: 422 naming max_pids" \
                '^422 .*max_pids' "$API_STATUS $(json_get .error.message)"
        api_json POST "/v1/sandboxes/$SBU/limits" '{"pids":256}'
        check_eq "POST .../limits pids 256: 200" "200 256" "$API_STATUS $(json_get .limits.pids)"
        api_json POST /v1/run '{"image":"busybox","argv":["echo","ran"],"limits":{"memory_bytes":67108864}}'
        check_eq "/v1/run with limits, unenforced allowed: ran" "200 ran" \
                "$API_STATUS $(json_get '.run.stdout|rtrimstr("\n")')"
        pboxd_restart
        api_call GET "/v1/sandboxes/$SBU"
        check_eq "limits persist across a restart" "256 $((64 * MIB))" \
                "$(json_get '"\(.limits.pids) \(.limits.memory_bytes)"')"
        api_call DELETE "/v1/sandboxes/$SBU?force=true"
        pboxd_restart "# allow_unenforced_limits: no (the default)"
        if ! has_ctl memory; then
                api_json POST /v1/run '{"image":"busybox","argv":["true"],"limits":{"memory_bytes":67108864}}'
                check_match "/v1/run with a memory limit, unenforced not allowed: 422 naming 'memory'" \
                        "^422 .*'memory'" "$API_STATUS $(json_get .error.message)"
                api_json POST /v1/run '{"image":"busybox","argv":["true"],"memory_bytes":67108864}'
                check_match "/v1/run with an exec memory limit: 422 naming 'memory'" \
                        "^422 .*'memory'" "$API_STATUS $(json_get .error.message)"
        fi
else
        printf '# this host has every controller: allow_unenforced_limits does not apply\n'
fi

# ---------------------------------------------------------------- CLI

if ! has_ctl memory; then
        pbox_cli create --memory 64M busybox >"$TEST_TMP/cli.out" 2>"$TEST_TMP/cli.err"
        check_eq "pbox create --memory 64M here: exit 1" 1 "$?"
        check_match "... with a message naming the controller" "^pbox: .*memory" "$(cat "$TEST_TMP/cli.err")"
fi
pbox_cli limits "$SB_PLAIN" --memory none >/dev/null 2>"$TEST_TMP/cli.err"
check_eq "pbox limits ID --memory none on a live sandbox: exit 0" 0 "$?" || cat "$TEST_TMP/cli.err"
pbox_cli create --memory lots busybox >/dev/null 2>"$TEST_TMP/cli.err"
check_eq "pbox create --memory lots: exit 1" 1 "$?"

api_call GET /v1/sandboxes
for id in $(json_get '.sandboxes[].id'); do
        api_call DELETE "/v1/sandboxes/$id?force=true"
done
pboxd_stop
check_no_leaks "nothing left behind"
done_testing
