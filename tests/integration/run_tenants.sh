#!/bin/sh
# run_tenants.sh — one-shot runs (/v1/run), sandbox TTL / idle expiry and
# keepalive, tenants (isolation, quotas, image allowlists, admin-only
# operations), /healthz and /metrics, against a real pboxd.
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
pboxd_start "expired_keep_s = $(tscale 2)"
busybox_load

# ---- /v1/run
api_json POST /v1/run '{"image":"busybox",
  "files":[{"path":"/work/build.sh","content":"echo built > /work/prog.out; echo compiling"},
           {"path":"/work/prog.sh","content":"read n; echo \"n=$n\"; cat /work/prog.out; exit 4"},
           {"path":"data.bin","content":"AAEC/w==","encoding":"base64"}],
  "compile":{"argv":["sh","/work/build.sh"]},
  "argv":["sh","-c","sh /work/prog.sh; s=$?; od -An -tx1 data.bin | tr -d \" \\n\" >&2; exit $s"],
  "stdin":"42\n","timeout_ms":5000}'
check_eq "run answers 200" 200 "$API_STATUS"
check_eq "the compile step ran" "ok/compiling" "$(json_get '.compile.status + "/" + (.compile.stdout|rtrimstr("\n"))')"
check_eq "the run step saw the files and stdin" "exit/4/n=42
built" "$(json_get '.run.status + "/" + (.run.exit_code|tostring) + "/" + (.run.stdout|rtrimstr("\n"))')"
check_eq "binary files arrive intact (relative paths in the working dir)" "000102ff" "$(json_get .run.stderr)"
api_json POST /v1/run '{"image":"busybox","compile":{"argv":["sh","-c","echo syntax error >&2; exit 1"]},"argv":["true"]}'
check_eq "a failed compile step: compile result, no run" "exit/null" "$(json_get '.compile.status + "/" + (.run|tostring)')"
api_json POST /v1/run '{"image":"busybox","argv":["sh","-c","while :; do :; done"],"timeout_ms":400,"grace_ms":200}'
check_eq "a spinning program times out" timeout "$(json_get .run.status)"
check "... and its CPU time was counted" test "$(json_get .run.cpu_ms)" -gt 20
api_json POST /v1/run '{"image":"busybox","files":[{"path":"/tmp/../../../../etc/pbox-escape","content":"x"}],"argv":["true"]}'
check_eq "a file path with .. is refused" 400 "$API_STATUS"
check "... and nothing reached the host" test ! -e /etc/pbox-escape
api_json POST /v1/run '{"image":"busybox","files":[{"path":"/etc/passwd/x","content":"x"}],"argv":["true"]}'
check_match "a path through a file is refused" '^4[0-9][0-9]$' "$API_STATUS"
api_json POST /v1/run '{"image":"busybox","argv":["true"],"limits":{"memory":"64M"}}'
check_eq "an unknown limit is a bad request" 400 "$API_STATUS"
check_match "... naming the key" "memory" "$(json_get .error.message)"
api_call GET /v1/sandboxes
check_eq "every run removed its sandbox" 0 "$(json_get '.sandboxes | length')"

# ---- TTL, idle timeout, keepalive
# The test waits for the events themselves; the durations it sets scale with
# PBOX_TEST_TIME_SCALE (tests/vm: every request is ten times slower there).
api_json POST /v1/sandboxes '{"image":"busybox","ttl_s":1}'
TTL=$(json_get .id)
check_match "a TTL shows as expires_at" '^20' "$(json_get .expires_at)"
ttl_stopped() { api_call GET "/v1/sandboxes/$TTL" && [ "$(json_get .state)" = stopped ]; }
wait_until "$(tscale 5)" ttl_stopped
check_eq "the TTL sandbox was stopped on time" "stopped/ttl_expired" "$(json_get '.state + "/" + .stop_reason')"
check_match "... and the event is in its record" 'ttl_expired' "$(json_get '[.events[].type] | join(" ")')"
IDLE_S=$(tscale 2)
api_json POST /v1/sandboxes "{\"image\":\"busybox\",\"idle_timeout_s\":$IDLE_S}"
IDLE=$(json_get .id)
api_json POST /v1/sandboxes "{\"image\":\"busybox\",\"idle_timeout_s\":$IDLE_S}"
KEPT=$(json_get .id)
KEPT_T0=$(date +%s)
# Keepalives for KEPT until IDLE (made just before it) has been stopped for
# idleness and KEPT's own idle timeout has passed too; bounded.
deadline=$((KEPT_T0 + 4 * IDLE_S + 2))
while :; do
        sleep "$(tscale 0.5)"
        api_call POST "/v1/sandboxes/$KEPT/keepalive"
        KA_STATE=$(json_get .state)
        now=$(date +%s)
        api_call GET "/v1/sandboxes/$IDLE"
        [ "$(json_get .state)" = stopped ] && [ "$now" -gt $((KEPT_T0 + IDLE_S)) ] && break
        [ "$now" -lt "$deadline" ] || break
done
check_eq "keepalive answers with the record" running "$KA_STATE"
check_eq "the idle sandbox was stopped" "stopped/idle_expired" "$(json_get '.state + "/" + .stop_reason')"
api_call GET "/v1/sandboxes/$KEPT"
check_eq "the sandbox kept alive still runs (past its idle timeout)" running "$(json_get .state)"
wait_until "$(tscale 6)" sh -c "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")' '$PBOX_URL/v1/sandboxes/$TTL' | grep -q 404"
api_call GET "/v1/sandboxes/$TTL"
check_eq "an expired sandbox is removed after expired_keep_s" 404 "$API_STATUS"
check "... with its state dir" test ! -e "$PBOXD_STATE/sandboxes/$TTL"
api_call DELETE "/v1/sandboxes/$KEPT?force=true"
api_call DELETE "/v1/sandboxes/$IDLE"     # (unless its expired_keep_s ran out already)

# ---- tenants
api_json POST /v1/tenants '{"name":"alice","max_sandboxes":1,"max_execs":1,"images":["busybox"]}'
check_eq "the admin creates a tenant" 201 "$API_STATUS"
ALICE=$(json_get .token)
check_match "... and gets its token once" '^[0-9a-f]{64}$' "$ALICE"
check "only a hash of the token is stored" sh -c "! grep -rq '$ALICE' '$PBOXD_STATE/tenants'"
api_json POST /v1/tenants '{"name":"bob"}'
BOB=$(json_get .token)
as() { _as_tok=$1; shift; _as_m=$1; _as_p=$2; shift 2
       API_STATUS=$(curl -sS --max-time 30 -o "$TEST_TMP/.as" -w '%{http_code}' -X "$_as_m" \
               -H "Authorization: Bearer $_as_tok" "$@" "$PBOX_URL$_as_p"); API_BODY=$(cat "$TEST_TMP/.as"); }
as "$ALICE" POST /v1/sandboxes -d '{"image":"busybox"}'
check_eq "alice creates a sandbox" 201 "$API_STATUS"
A_SB=$(json_get .id)
check_eq "... owned by her" alice "$(json_get .tenant)"
as "$ALICE" POST /v1/sandboxes -d '{"image":"busybox"}'
check_eq "over her sandbox quota: 429" "429/too_many_requests" "$API_STATUS/$(json_get .error.code)"
as "$BOB" GET "/v1/sandboxes/$A_SB"
check_eq "bob cannot see alice's sandbox (404)" 404 "$API_STATUS"
as "$BOB" POST "/v1/sandboxes/$A_SB/exec" -d '{"argv":["id"]}'
check_eq "nor exec in it" 404 "$API_STATUS"
as "$BOB" DELETE "/v1/sandboxes/$A_SB?force=true"
check_eq "nor remove it" 404 "$API_STATUS"
as "$BOB" GET /v1/sandboxes
check_eq "bob's list is empty" 0 "$(json_get '.sandboxes | length')"
api_call GET /v1/sandboxes
check_eq "the admin sees alice's sandbox" "$A_SB" "$(json_get '[.sandboxes[] | select(.tenant == "alice") | .id] | join(" ")')"
as "$ALICE" POST "/v1/sandboxes/$A_SB/exec" -d '{"argv":["sleep","3"],"wait":false}'
check_eq "alice starts an exec" 202 "$API_STATUS"
as "$ALICE" POST "/v1/sandboxes/$A_SB/exec" -d '{"argv":["true"]}'
check_eq "over her exec quota: 429" 429 "$API_STATUS"
as "$BOB" POST /v1/images --data-binary "@$(busybox_image)"
check_eq "a tenant cannot load images (403)" 403 "$API_STATUS"
as "$BOB" POST /v1/tenants -d '{"name":"mallory"}'
check_eq "nor create tenants" 403 "$API_STATUS"
as "$BOB" GET /metrics
check_eq "nor read metrics" 403 "$API_STATUS"
api_json POST /v1/tenants '{"name":"carol","images":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}'
CAROL=$(json_get .token)
as "$CAROL" POST /v1/sandboxes -d '{"image":"busybox"}'
check_eq "an image outside a tenant's allowlist is 404" 404 "$API_STATUS"
as "$CAROL" GET /v1/images
check_eq "... and not listed for it" 0 "$(json_get '.images | length')"
as "0000000000000000000000000000000000000000000000000000000000000000" GET /v1/sandboxes
check_eq "an unknown token is 401" 401 "$API_STATUS"
api_call DELETE /v1/tenants/alice
check_eq "a tenant with sandboxes cannot be removed" 409 "$API_STATUS"
api_call DELETE "/v1/sandboxes/$A_SB?force=true"
api_call DELETE /v1/tenants/alice
check_eq "then it can" 200 "$API_STATUS"
as "$ALICE" GET /v1/sandboxes
check_eq "and its token no longer works" 401 "$API_STATUS"
pboxd_restart
as "$BOB" GET /v1/sandboxes
check_eq "tenants survive a restart" 200 "$API_STATUS"
# the CLI
DAVE=$(pbox_cli tenant add --max-sandboxes 1 --image busybox dave)
check_match "pbox tenant add prints the new token" '^[0-9a-f]{64}$' "$DAVE"
check_match "pbox tenant ls lists it with its quota" '^dave +1 ' "$(pbox_cli tenant ls)"
out=$(PBOX_TOKEN=$DAVE PBOX_TOKEN_FILE= pbox_cli run --rm busybox -- echo as-dave 2>&1)
check_eq "the tenant's token works with the CLI" as-dave "$out"
out=$(PBOX_TOKEN=$DAVE PBOX_TOKEN_FILE= pbox_cli tenant ls 2>&1)
check_match "a tenant cannot list tenants" 'admin token' "$out"
check "pbox tenant rm removes it" pbox_cli tenant rm dave

# ---- global backpressure: past max_running_execs, 503 with Retry-After
pboxd_restart "expired_keep_s = $(tscale 2)" "max_running_execs = 1"
api_json POST /v1/sandboxes '{"image":"busybox"}'
BP=$(json_get .id)
api_json POST "/v1/sandboxes/$BP/exec" '{"argv":["sleep","30"],"wait":false}'
BP_EID=$(json_get .id)
hdrs=$(curl -sS -D - -o "$TEST_TMP/.bp" -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" \
        -d '{"argv":["true"]}' "$PBOX_URL/v1/sandboxes/$BP/exec" | tr -d '\r')
check_match "a saturated pboxd answers 503" '^HTTP/1.1 503' "$hdrs"
check_match "... with Retry-After" '^Retry-After: [0-9]+' "$hdrs"
check_eq "... and a JSON error" unavailable "$(jq -r .error.code "$TEST_TMP/.bp")"
api_json POST "/v1/sandboxes/$BP/execs/$BP_EID/kill" '{"grace_ms":0}'
api_json POST "/v1/sandboxes/$BP/exec" '{"argv":["true"]}'
check_eq "once the exec is gone, execs run again" ok "$(json_get .status)"
api_call DELETE "/v1/sandboxes/$BP?force=true"

# ---- health and metrics
API_STATUS=$(curl -sS -o "$TEST_TMP/.h" -w '%{http_code}' "$PBOX_URL/healthz")
check_eq "/healthz needs no token" 200 "$API_STATUS"
check_eq "... and says ok" ok "$(jq -r .status "$TEST_TMP/.h")"
check_match "... and names the cgroup controllers" '"controllers"' "$(cat "$TEST_TMP/.h")"
api_call GET /metrics
check_eq "/metrics answers" 200 "$API_STATUS"
check_match "... sandboxes by state" '^pbox_sandboxes\{state="running"\}' "$API_BODY"
check_match "... execs by status" '^pbox_execs_total\{status="timeout"\}' "$API_BODY"
check_match "... a start latency histogram" '^pbox_sandbox_start_seconds_bucket' "$API_BODY"
check_match "... requests by code" '^pbox_api_requests_total\{code="429"\}' "$API_BODY"

pboxd_stop
check_no_leaks "nothing left behind"
done_testing
