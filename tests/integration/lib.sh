# shellcheck shell=sh disable=SC2034
# lib.sh — the integration test harness: a private pboxd per test (own
# state/runtime dirs under $TEST_TMP, random loopback port, own cgroup name),
# the busybox test image, HTTP helpers, TAP output, and a cleanup that leaves
# nothing behind (sandboxes, processes, mounts, cgroups, files).
#
# Sourced by tests/integration/*.sh (POSIX sh: works under dash and bash, and
# with `set -u`).  Usage:
#
#   . "$PBOX_SRCDIR/tests/integration/lib.sh"
#   pbox_test_init             # not root (or pieces missing): exit 77; CI=true: fail
#   pboxd_start [LINE...]      # each LINE is appended to the generated pbox.conf
#   IMG=$(busybox_image) || bail_out "no busybox image"
#   check "desc" cmd args...   check_eq "desc" EXPECTED ACTUAL
#   check_match "desc" ERE ACTUAL  (true when a line of ACTUAL matches ERE, grep -E)
#   skip_test "why"            (a failure when CI=true)
#   done_testing               # "1..N", "N passed, N failed"; exit 1 on any failure
#
# Variables exported after pboxd_start: PBOX_URL PBOX_TOKEN_FILE PBOXD_STATE
# PBOXD_RUNTIME PBOXD_PID PBOXD_LOG PBOXD_CONF PBOX_CGROUP_NAME; after
# pbox_test_init: TEST_TMP PBOX (the CLI).
#
# Helpers: api_call METHOD PATH [curl args...] (sets API_STATUS, API_BODY),
# api_json METHOD PATH JSON, json_get FILTER [JSON] (jq -r, default API_BODY),
# busybox_load (loads the busybox image into the running pboxd once),
# pbox_cli ARGS... (the CLI, bounded by PBOX_CLI_TIMEOUT seconds),
# pbox_exec ID CMD... (CLI exec; sets EXEC_OUT EXEC_ERR EXEC_RC),
# sandbox_create [CLI create options] IMAGE (sets SANDBOX_ID),
# wait_until SECONDS cmd... , pboxd_stop, pboxd_restart [LINE...],
# at_cleanup "shell command" (host-side fixtures to undo at exit),
# check_no_leaks "desc" (after pboxd_stop: no mount under $TEST_TMP, no
# process left in the test cgroup), bail_out "why".
# Limits: api_exec ID JSON (POST .../exec), require_cgroup_controllers
# CTL... (skip/fail unless pboxd has them), sandbox_cgroup ID (host path of
# the sandbox's cgroup), cg_sample FILE OUT / cg_sample_stop OUT (sample a
# cgroup file in the background; prints the maximum).
#
# Also set: PBOXD_PORT (pboxd's port), PBOXD_EXIT_STATUS (after pboxd_stop).
# check_no_match "desc" ERE ACTUAL is the negation of check_match.
#
# Knobs (environment): CI=true (cannot-run and skip_test are failures),
# PBOXD_START_TIMEOUT (10 s), PBOXD_STOP_TIMEOUT (10 s), PBOX_CLI_TIMEOUT
# (30 s per CLI call), API_TIMEOUT (60 s per HTTP call),
# PBOX_EXEC_MAX_TIMEOUTS (3 timed-out pbox_exec calls, then bail out),
# PBOXD_WRAPPER (a command prefix for pboxd, e.g. "valgrind -q"),
# PBOX_TEST_TIME_SCALE (1; tscale multiplies durations by it),
# PBOX_TEST_KEEP=1 (keep $TEST_TMP after cleanup, for debugging).
#
# Counters live in this shell: call check* in the test's main shell, not in
# a pipeline or $(...).  Every wait is bounded; the only network peer is the
# pboxd on 127.0.0.1.

_T_N=0
_T_PASS=0
_T_FAIL=0
_T_DONE=0
_T_INIT=0
TEST_TMP=
PBOXD_PID=
PBOXD_PORT=
PBOXD_EXIT_STATUS=
PBOX_CGROUP_NAME=
API_STATUS=
API_BODY=
EXEC_OUT=
EXEC_ERR=
EXEC_RC=
SANDBOX_ID=

: "${PBOXD_START_TIMEOUT:=10}"
: "${PBOXD_STOP_TIMEOUT:=10}"
: "${PBOX_CLI_TIMEOUT:=30}"
: "${API_TIMEOUT:=60}"

# ---------------------------------------------------------------- TAP

_tap_diag() {
        # Prefix every line with "# ".
        printf '%s\n' "$*" | sed 's/^/# /'
}

_tap_result() {
        # _tap_result OK(0|1) DESC [DIRECTIVE]
        _T_N=$((_T_N + 1))
        if [ "$1" -eq 0 ]; then
                _T_PASS=$((_T_PASS + 1))
                printf 'ok %d - %s%s\n' "$_T_N" "$2" "${3:+ # $3}"
        else
                _T_FAIL=$((_T_FAIL + 1))
                printf 'not ok %d - %s%s\n' "$_T_N" "$2" "${3:+ # $3}"
        fi
}

# check DESC CMD [ARGS...]: ok when CMD exits 0; on failure its output (first
# 30 lines) and status are printed as diagnostics.
check() {
        _c_desc=$1
        shift
        _c_out=/dev/null
        [ -n "$TEST_TMP" ] && [ -d "$TEST_TMP" ] && _c_out=$TEST_TMP/.check.out
        "$@" >"$_c_out" 2>&1
        _c_rc=$?
        if [ "$_c_rc" -eq 0 ]; then
                _tap_result 0 "$_c_desc"
                return 0
        fi
        _tap_result 1 "$_c_desc"
        _tap_diag "command: $*"
        _tap_diag "exit status: $_c_rc"
        if [ "$_c_out" != /dev/null ] && [ -s "$_c_out" ]; then
                head -n 30 "$_c_out" | sed 's/^/#   /'
        fi
        return 1
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
        if [ "$2" = "$3" ]; then
                _tap_result 0 "$1"
                return 0
        fi
        _tap_result 1 "$1"
        _tap_diag "expected: '$2'"
        _tap_diag "     got: '$3'"
        return 1
}

# check_match DESC ERE ACTUAL: ok when a line of ACTUAL matches ERE (grep -E).
check_match() {
        if printf '%s\n' "$3" | grep -Eq -- "$2"; then
                _tap_result 0 "$1"
                return 0
        fi
        _tap_result 1 "$1"
        _tap_diag "expected to match: $2"
        _tap_diag "               got: '$3'"
        return 1
}

# check_no_match DESC ERE ACTUAL: ok when no line of ACTUAL matches ERE.
check_no_match() {
        if printf '%s\n' "$3" | grep -Eq -- "$2"; then
                _tap_result 1 "$1"
                _tap_diag "expected not to match: $2"
                _tap_diag "                  got: '$3'"
                return 1
        fi
        _tap_result 0 "$1"
        return 0
}

# skip_test WHY: a skipped test; with CI=true it counts as a failure.
skip_test() {
        if [ "${CI:-}" = true ]; then
                _tap_result 1 "$1" "SKIP (CI=true: a test that cannot run fails)"
                return 1
        fi
        _T_N=$((_T_N + 1))
        _T_PASS=$((_T_PASS + 1))
        printf 'ok %d # SKIP %s\n' "$_T_N" "$1"
        return 0
}

# at_cleanup CMD: run the shell command CMD (eval) during cleanup, after
# pboxd is stopped and before $TEST_TMP is removed; for host-side fixtures.
_T_AT_CLEANUP=
at_cleanup() {
        _T_AT_CLEANUP="$_T_AT_CLEANUP
$1"
}

# bail_out WHY: stop the test now (a failure).
bail_out() {
        printf 'Bail out! %s\n' "$*"
        exit 1
}

done_testing() {
        _T_DONE=1
        printf '1..%d\n' "$_T_N"
        printf '%d passed, %d failed\n' "$_T_PASS" "$_T_FAIL"
        if [ "$_T_FAIL" -gt 0 ] || [ "$_T_N" -eq 0 ]; then
                exit 1
        fi
        exit 0
}

# ---------------------------------------------------------------- small tools

_rand_hex() {
        od -An -N"${1:-4}" -tx1 /dev/urandom | tr -d ' \n'
}

# tscale SECONDS: SECONDS times PBOX_TEST_TIME_SCALE (default 1; tests/vm
# sets 4), for durations a test gives the daemon (timeouts, TTLs) and its
# own waits, which software emulation stretches.
tscale() {
        awk -v a="$1" -v s="${PBOX_TEST_TIME_SCALE:-1}" 'BEGIN { printf "%.12g\n", a * s }'
}

# wait_until SECONDS CMD [ARGS...]: poll CMD every 0.1 s until it succeeds.
wait_until() {
        _w_deadline=$(($(date +%s) + $1))
        shift
        while :; do
                "$@" >/dev/null 2>&1 && return 0
                [ "$(date +%s)" -lt "$_w_deadline" ] || return 1
                sleep 0.1
        done
}

# _pid_alive PID: true while PID exists and is not a zombie.
_pid_alive() {
        [ -n "$1" ] || return 1
        _pa_stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        # Field 3 follows the last ')' (the comm may contain anything).
        _pa_state=${_pa_stat##*) }
        _pa_state=${_pa_state%% *}
        [ "$_pa_state" != Z ] && [ "$_pa_state" != X ]
}

_skip_or_fail() {
        # _skip_or_fail WHY: this test cannot run here.
        if [ "${CI:-}" = true ]; then
                printf 'Bail out! %s (CI=true: a test that cannot run fails)\n' "$*"
                exit 1
        fi
        printf '1..0 # SKIP %s\n' "$*"
        _T_DONE=1
        exit 77
}

_check_loopback_url() {
        case ${PBOX_URL:-} in
        http://127.0.0.1:[0-9]* | http://localhost:[0-9]* | "http://[::1]:"[0-9]*) return 0 ;;
        esac
        printf '# refusing to talk to %s: tests only use loopback\n' "${PBOX_URL:-<unset>}" >&2
        return 1
}

# ---------------------------------------------------------------- init

pbox_test_init() {
        [ "$_T_INIT" -eq 0 ] || return 0
        _T_INIT=1
        : "${PBOX_SRCDIR:?PBOX_SRCDIR must name the source tree}"
        : "${PBOX_BUILDDIR:=$PBOX_SRCDIR}"
        export PBOX_SRCDIR PBOX_BUILDDIR
        PBOX=$PBOX_BUILDDIR/pbox
        export PBOX
        TEST_NAME=$(basename "$0" .sh)

        # Nothing from the caller's environment may point us elsewhere.
        unset PBOX_TOKEN http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
        unset PBOX_URL PBOX_TOKEN_FILE

        [ "$(id -u)" -eq 0 ] || _skip_or_fail "integration tests need root"
        for _i_tool in curl jq python3 flock timeout od; do
                command -v "$_i_tool" >/dev/null 2>&1 || _skip_or_fail "$_i_tool is not installed"
        done
        for _i_bin in pboxd pbox pbox-init; do
                [ -x "$PBOX_BUILDDIR/$_i_bin" ] || _skip_or_fail "$PBOX_BUILDDIR/$_i_bin is not built"
        done

        TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pbox-test.XXXXXXXX") || bail_out "mktemp failed"
        TEST_TMP=$(cd "$TEST_TMP" && pwd -P)
        # Sandboxes' mapped root (an unprivileged host uid) must be able to
        # traverse to the layers and the overlay dirs below.
        chmod 0755 "$TEST_TMP"
        export TEST_TMP
        trap _pbox_cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        trap 'exit 129' HUP
        printf '# %s: TEST_TMP=%s\n' "$TEST_NAME" "$TEST_TMP"
}

# ---------------------------------------------------------------- pboxd

_pboxd_write_config() {
        {
                printf '# generated by tests/integration/lib.sh for %s\n' "$TEST_NAME"
                printf 'init_path = %s\n' "$PBOX_BUILDDIR/pbox-init"
                printf 'seccomp_policy = %s\n' "$PBOX_SRCDIR/policies/default.json"
                printf 'cgroup_name = %s\n' "$PBOX_CGROUP_NAME"
                for _wc_line in "$@"; do
                        printf '%s\n' "$_wc_line"
                done
        } >"$PBOXD_CONF"
}

_pboxd_ready() {
        [ -s "$PBOX_TOKEN_FILE" ] || return 1
        _r_tok=
        { read -r _r_tok <"$PBOX_TOKEN_FILE"; } 2>/dev/null
        [ -n "$_r_tok" ] || return 1
        _r_code=$(curl -sS --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' \
                -H "Authorization: Bearer $_r_tok" "$PBOX_URL/v1/sandboxes" 2>/dev/null) || return 1
        [ "$_r_code" = 200 ]
}

_port_in_use() {
        command -v ss >/dev/null 2>&1 || return 1
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# _pboxd_launch PORT: start pboxd on PORT; 0 ready, 1 failed, 2 port taken.
_pboxd_launch() {
        PBOXD_PORT=$1
        PBOX_URL=http://127.0.0.1:$PBOXD_PORT
        export PBOX_URL
        printf -- '---- pboxd start %s (port %s)\n' "$(date '+%T')" "$PBOXD_PORT" >>"$PBOXD_LOG"
        _l_logstart=$(wc -l <"$PBOXD_LOG")
        # PBOXD_WRAPPER (e.g. "valgrind -q") is split into words on purpose.
        # shellcheck disable=SC2086
        ${PBOXD_WRAPPER:-} "$PBOX_BUILDDIR/pboxd" --config "$PBOXD_CONF" \
                --listen "127.0.0.1:$PBOXD_PORT" --state-dir "$PBOXD_STATE" \
                --runtime-dir "$PBOXD_RUNTIME" </dev/null >>"$PBOXD_LOG" 2>&1 &
        PBOXD_PID=$!
        export PBOXD_PID
        _l_deadline=$(($(date +%s) + PBOXD_START_TIMEOUT))
        while :; do
                if _pboxd_ready; then
                        return 0
                fi
                if ! _pid_alive "$PBOXD_PID"; then
                        wait "$PBOXD_PID" 2>/dev/null
                        PBOXD_EXIT_STATUS=$?
                        PBOXD_PID=
                        if tail -n "+$((_l_logstart + 1))" "$PBOXD_LOG" | grep -qi 'in use'; then
                                return 2
                        fi
                        printf '# pboxd exited with status %s during start-up\n' "$PBOXD_EXIT_STATUS"
                        return 1
                fi
                if [ "$(date +%s)" -ge "$_l_deadline" ]; then
                        printf '# pboxd not ready after %s s\n' "$PBOXD_START_TIMEOUT"
                        return 1
                fi
                sleep 0.1
        done
}

_pboxd_show_log() {
        [ -n "${PBOXD_LOG:-}" ] && [ -f "$PBOXD_LOG" ] || return 0
        printf '# ---- pboxd log (%s, last 300 lines)\n' "$PBOXD_LOG"
        tail -n 300 "$PBOXD_LOG" | sed 's/^/# | /'
        printf '# ---- end of pboxd log\n'
}

# _pboxd_start_on [PORT]: start with the current config; PORT first if given.
_pboxd_start_on() {
        _s_port=${1:-}
        _s_try=0
        while [ "$_s_try" -lt 8 ]; do
                _s_try=$((_s_try + 1))
                if [ -z "$_s_port" ] || _port_in_use "$_s_port"; then
                        _s_port=$(($(printf '%d' "0x$(_rand_hex 2)") % 30000 + 20000))
                        _port_in_use "$_s_port" && { _s_port=; continue; }
                fi
                _pboxd_launch "$_s_port"
                case $? in
                0) return 0 ;;
                2) _s_port= ; continue ;;
                *) break ;;
                esac
        done
        _pboxd_show_log
        # A running but unready daemon is stopped so the failure is clean.
        if [ -n "$PBOXD_PID" ]; then
                kill -KILL "$PBOXD_PID" 2>/dev/null
                wait "$PBOXD_PID" 2>/dev/null
                PBOXD_PID=
        fi
        bail_out "pboxd did not start"
}

# pboxd_start [CONFIG_LINE...]
pboxd_start() {
        [ "$_T_INIT" -eq 1 ] || pbox_test_init
        [ -z "$PBOXD_PID" ] || bail_out "pboxd_start: pboxd already running (pid $PBOXD_PID)"
        PBOXD_STATE=$TEST_TMP/state
        PBOXD_RUNTIME=$TEST_TMP/run
        PBOXD_LOG=$TEST_TMP/pboxd.log
        PBOXD_CONF=$TEST_TMP/pbox.conf
        PBOX_TOKEN_FILE=$PBOXD_STATE/admin.token
        [ -n "$PBOX_CGROUP_NAME" ] || PBOX_CGROUP_NAME=pbox-test-$(_rand_hex 6)
        export PBOXD_STATE PBOXD_RUNTIME PBOXD_LOG PBOXD_CONF PBOX_TOKEN_FILE PBOX_CGROUP_NAME
        : >>"$PBOXD_LOG"
        _pboxd_write_config "$@"
        _pboxd_start_on "$PBOXD_PORT"
}

# ---------------------------------------------------------------- recipe images

# recipe_image NAME: path of the NAME:latest archive built by
# rootfs-recipes/NAME/build, built once (under a lock) into $PBOX_RECIPE_CACHE
# (default $PBOX_BUILDDIR/tests/images) and rebuilt when the recipe changes.
: "${PBOX_RECIPE_CACHE:=${PBOX_BUILDDIR:-.}/tests/images}"
export PBOX_RECIPE_CACHE
recipe_image() {
        _ri_out=$PBOX_RECIPE_CACHE/$1.tar
        _ri_lib=$PBOX_SRCDIR/rootfs-recipes/lib
        _ri_recipe=$PBOX_SRCDIR/rootfs-recipes/$1/build
        mkdir -p "$PBOX_RECIPE_CACHE" || return 1
        (
                flock -w 900 9 || { echo "# recipe_image $1: lock timeout" >&2; exit 1; }
                if [ -s "$_ri_out" ] && [ -n "$(find "$_ri_out" -newer "$_ri_recipe" -newer "$_ri_lib/debian.sh" \
                        -newer "$_ri_lib/debs.sh" -newer "$_ri_lib/ociarchive.py")" ]; then
                        exit 0
                fi
                timeout -k 10 900 "$_ri_recipe" "$_ri_out" >&2
        ) 9>"$PBOX_RECIPE_CACHE/.$1.lock" || { echo "# recipe_image $1: the recipe failed" >&2; return 1; }
        printf '%s\n' "$_ri_out"
}


# pboxd_stop: SIGTERM, wait (bounded), SIGKILL if needed.  Returns 1 when
# pboxd had to be killed or exited non-zero; PBOXD_EXIT_STATUS has its status.
pboxd_stop() {
        [ -n "$PBOXD_PID" ] || return 0
        kill -TERM "$PBOXD_PID" 2>/dev/null
        _st_deadline=$(($(date +%s) + PBOXD_STOP_TIMEOUT))
        while _pid_alive "$PBOXD_PID" && [ "$(date +%s)" -lt "$_st_deadline" ]; do
                sleep 0.1
        done
        _st_rc=0
        if _pid_alive "$PBOXD_PID"; then
                printf '# pboxd did not stop within %s s of SIGTERM: killed\n' "$PBOXD_STOP_TIMEOUT"
                kill -KILL "$PBOXD_PID" 2>/dev/null
                _st_rc=1
        fi
        wait "$PBOXD_PID" 2>/dev/null
        PBOXD_EXIT_STATUS=$?
        PBOXD_PID=
        _B_LOADED_FOR=
        if [ "$_st_rc" -eq 0 ] && [ "$PBOXD_EXIT_STATUS" -ne 0 ]; then
                printf '# pboxd exited with status %s\n' "$PBOXD_EXIT_STATUS"
                _st_rc=1
        fi
        return "$_st_rc"
}

# pboxd_kill9: kill -9 of the core and of its api process, as a crash would
# (sandboxes live on), then wait for the core to be gone.  The api process
# is the core's child running as the api user (nobody): matching children
# by name alone could also hit a sandbox init or an exec the core is
# starting, which are named pboxd until they exec.
pboxd_kill9() {
        [ -n "$PBOXD_PID" ] || return 0
        kill -KILL "$PBOXD_PID" $(pgrep -x -P "$PBOXD_PID" -u "$(id -u nobody)" pboxd) 2>/dev/null
        wait_until 5 eval "! _pid_alive $PBOXD_PID"
}

# pboxd_restart [CONFIG_LINE...]: stop and start on the same state; without
# arguments the config is kept as is, with arguments it is regenerated.
pboxd_restart() {
        pboxd_stop
        _rs_rc=$?
        if [ $# -gt 0 ]; then
                _pboxd_write_config "$@"
        fi
        _pboxd_start_on "$PBOXD_PORT"
        return "$_rs_rc"
}

# ---------------------------------------------------------------- HTTP

# api_call METHOD PATH [curl args...]: sets API_STATUS (000 when no answer)
# and API_BODY.  Returns 0 when an HTTP answer came, whatever its status.
api_call() {
        _a_method=$1 _a_path=$2
        shift 2
        _check_loopback_url || return 1
        # read, not $(cat): a fork costs ~50 ms under emulation (tests/vm).
        _a_tok=
        { read -r _a_tok <"$PBOX_TOKEN_FILE"; } 2>/dev/null
        _a_body=$TEST_TMP/.api.body
        : >"$_a_body"
        API_STATUS=$(curl -sS --noproxy '*' --max-time "$API_TIMEOUT" -o "$_a_body" \
                -w '%{http_code}' -X "$_a_method" \
                -H "Authorization: Bearer $_a_tok" "$@" "$PBOX_URL$_a_path")
        _a_rc=$?
        API_BODY=$(cat "$_a_body")
        [ -n "$API_STATUS" ] || API_STATUS=000
        return "$_a_rc"
}

# api_json METHOD PATH JSON
api_json() {
        api_call "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"
}

# json_get FILTER [JSON]: jq -r FILTER of JSON (default: API_BODY).
json_get() {
        if [ $# -ge 2 ]; then
                printf '%s' "$2" | jq -r "$1"
        else
                printf '%s' "$API_BODY" | jq -r "$1"
        fi
}

# ---------------------------------------------------------------- images, CLI

# busybox_image: build (once, under a lock) the busybox OCI archive and
# print its path.  Rebuilt when the recipe is newer than the archive.
busybox_image() {
        _bi_dir=$PBOX_BUILDDIR/tests/images
        _bi_out=$_bi_dir/busybox.tar
        _bi_recipe=$PBOX_SRCDIR/rootfs-recipes/busybox/build
        _bi_helper=$PBOX_SRCDIR/rootfs-recipes/lib/ociarchive.py
        mkdir -p "$_bi_dir" || return 1
        (
                flock -w 300 9 || { echo "# busybox_image: lock timeout" >&2; exit 1; }
                if [ -s "$_bi_out" ] && [ -n "$(find "$_bi_out" -newer "$_bi_recipe" -newer "$_bi_helper" \
                        -newer "$PBOX_SRCDIR/rootfs-recipes/lib/debs.sh")" ]; then
                        exit 0
                fi
                timeout 600 "$_bi_recipe" "$_bi_out" >&2
        ) 9>"$_bi_dir/.busybox.lock" || { echo "# busybox_image: recipe failed" >&2; return 1; }
        printf '%s\n' "$_bi_out"
}

# busybox_load: load the busybox image into the running pboxd (once per start).
_B_LOADED_FOR=
busybox_load() {
        [ "$_B_LOADED_FOR" = "${PBOXD_PID:-x}" ] && return 0
        _bl_img=$(busybox_image) || return 1
        api_call POST '/v1/images?name=busybox:latest' \
                -H 'Content-Type: application/x-tar' --data-binary "@$_bl_img" || return 1
        if [ "$API_STATUS" != 201 ]; then
                printf '# loading busybox: HTTP %s %s\n' "$API_STATUS" "$API_BODY"
                return 1
        fi
        _B_LOADED_FOR=$PBOXD_PID
}

# pbox_cli ARGS...: the CLI against this test's pboxd, bounded in time.
pbox_cli() {
        timeout -k 5 "$PBOX_CLI_TIMEOUT" "$PBOX" "$@"
}

# pbox_exec ID CMD [ARGS...]: run CMD in sandbox ID through the CLI;
# sets EXEC_OUT, EXEC_ERR (trailing newlines stripped) and EXEC_RC.  A CLI
# that hangs is killed after PBOX_CLI_TIMEOUT s (EXEC_RC 124); after
# PBOX_EXEC_MAX_TIMEOUTS (3) such timeouts the test bails out, so that a
# stuck daemon costs a minute or two, not one timeout per check.
_EXEC_TIMEOUTS=0
: "${PBOX_EXEC_MAX_TIMEOUTS:=3}"
pbox_exec() {
        _e_id=$1
        shift
        _e_start=$(date +%s)
        pbox_cli exec "$_e_id" -- "$@" >"$TEST_TMP/.exec.out" 2>"$TEST_TMP/.exec.err"
        EXEC_RC=$?
        EXEC_OUT=$(cat "$TEST_TMP/.exec.out")
        EXEC_ERR=$(cat "$TEST_TMP/.exec.err")
        # 124/137 are also what a command killed inside the sandbox returns:
        # only a run as long as the CLI timeout is a timeout.
        if { [ "$EXEC_RC" -eq 124 ] || [ "$EXEC_RC" -eq 137 ]; } &&
           [ $(($(date +%s) - _e_start)) -ge "$PBOX_CLI_TIMEOUT" ]; then
                _EXEC_TIMEOUTS=$((_EXEC_TIMEOUTS + 1))
                printf '# pbox exec %s -- %s: no answer within %s s\n' "$_e_id" "$*" "$PBOX_CLI_TIMEOUT"
                [ "$_EXEC_TIMEOUTS" -lt "$PBOX_EXEC_MAX_TIMEOUTS" ] ||
                        bail_out "$_EXEC_TIMEOUTS exec timeouts: pboxd is stuck"
        fi
        return 0
}

# sandbox_create [create options] IMAGE: create through the CLI, set SANDBOX_ID.
sandbox_create() {
        SANDBOX_ID=$(pbox_cli create "$@" 2>"$TEST_TMP/.create.err")
        _sc_rc=$?
        if [ "$_sc_rc" -ne 0 ] || [ -z "$SANDBOX_ID" ]; then
                printf '# pbox create %s failed (%s): %s\n' "$*" "$_sc_rc" "$(cat "$TEST_TMP/.create.err")"
                SANDBOX_ID=
                return 1
        fi
        return 0
}

# ---------------------------------------------------------------- cgroup limits

# api_exec ID JSON: POST the exec request JSON to sandbox ID (API_STATUS, API_BODY).
api_exec() {
        api_json POST "/v1/sandboxes/$1/exec" "$2"
}

# require_cgroup_controllers CONTROLLER...: after pboxd_start, stop the test
# (skip; with CI=true fail) unless pboxd gives sandboxes every CONTROLLER
# (/healthz "cgroup"."enabled").  Tests that need them carry the line
# "# needs-cgroup-controllers: ..." so that tests/vm/maybe-vm runs them in
# the VM on hosts without them.
require_cgroup_controllers() {
        api_call GET /healthz || bail_out "GET /healthz failed"
        _rc_have=" $(json_get '(.cgroup.enabled // []) | join(" ")' 2>/dev/null) "
        _rc_missing=
        for _rc_c in "$@"; do
                case $_rc_have in *" $_rc_c "*) ;; *) _rc_missing="$_rc_missing $_rc_c" ;; esac
        done
        [ -z "$_rc_missing" ] ||
                _skip_or_fail "pboxd has no cgroup controller$_rc_missing here (run it in the VM: tests/vm/run-tests $0)"
}

# sandbox_cgroup ID: print the host path of sandbox ID's cgroup (the parent
# of its init's cgroup, read from /proc/PID/cgroup of the record's pid).
sandbox_cgroup() {
        _sg_pid=$(curl -sS --noproxy '*' --max-time "$API_TIMEOUT" \
                -H "Authorization: Bearer $(cat "$PBOX_TOKEN_FILE")" "$PBOX_URL/v1/sandboxes/$1" | jq -r .pid)
        case $_sg_pid in '' | *[!0-9]*) return 1 ;; esac
        _sg_cg=$(sed -n 's/^0:://p' "/proc/$_sg_pid/cgroup" 2>/dev/null)
        [ -n "$_sg_cg" ] || return 1
        printf '%s%s\n' "$(_cgroup2_root)" "${_sg_cg%/*}"
}

# cg_sample FILE OUT: in the background, append FILE's first line to OUT
# every 0.05 s until OUT.stop exists; cg_sample_stop OUT ends it and prints
# the largest number seen.
cg_sample() {
        (
                while [ ! -e "$2.stop" ]; do
                        { read -r _cs_v _cs_rest <"$1" && printf '%s\n' "$_cs_v"; } 2>/dev/null
                        sleep 0.05
                done
        ) >>"$2" &
        _CG_SAMPLER=$!
}
cg_sample_stop() {
        : >"$1.stop"
        [ -z "${_CG_SAMPLER:-}" ] || wait "$_CG_SAMPLER" 2>/dev/null
        _CG_SAMPLER=
        sort -n "$1" | tail -n 1
}

# ---------------------------------------------------------------- cleanup

# Mount points under $TEST_TMP in our mount namespace, deepest first, decoded.
_test_mounts() {
        [ -n "$TEST_TMP" ] || return 0
        awk -v root="$TEST_TMP" '
                $5 == root || index($5, root "/") == 1 {
                        n = gsub("/", "/", $5); print n "\t" $5
                }' /proc/self/mountinfo | sort -rn -k1,1 | cut -f2- |
                while IFS= read -r _tm_mp; do
                        # mountinfo escapes space, tab, newline and backslash as \ooo.
                        printf '%b\n' "$(printf '%s' "$_tm_mp" | sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g')"
                done
}

_cgroup2_root() {
        awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
               if ($(i + 1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo
}

# Directories of the test's cgroup (anywhere under the cgroup2 mount).
_test_cgroups() {
        [ -n "$PBOX_CGROUP_NAME" ] || return 0
        _tc_root=$(_cgroup2_root)
        [ -n "$_tc_root" ] && [ -d "$_tc_root" ] || return 0
        find "$_tc_root" -xdev -maxdepth 8 -type d \
                \( -name "$PBOX_CGROUP_NAME" -o -name "$PBOX_CGROUP_NAME.*" \) -prune -print 2>/dev/null
}

# Pids in cgroup DIR and below, one per line.
_cg_procs_of() {
        find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null
}

# Processes left in the test cgroup(s), one pid per line.
_test_cgroup_procs() {
        _test_cgroups | while IFS= read -r _tp_cg; do
                _cg_procs_of "$_tp_cg"
        done
}

# Processes whose command line names this test's pboxd config (pboxd and
# what it forked), other than this shell.
_test_pboxd_procs() {
        [ -n "${PBOXD_CONF:-}" ] || return 0
        # One grep for all of /proc (-z: NUL-separated arguments, -x: one
        # of them is exactly the path; the path comes from a file, so that
        # grep's own command line does not match): two forks per process
        # cost seconds under software emulation (tests/vm).
        printf '%s\n' "$PBOXD_CONF" >"$TEST_TMP/.pboxd-conf.pattern" || return 0
        grep -alxzF -f "$TEST_TMP/.pboxd-conf.pattern" /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n' |
                sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p' | grep -vx -- "$$"
}

# check_no_leaks DESC: after pboxd_stop with every sandbox removed, nothing
# may be left: no mount under $TEST_TMP, no process in the test cgroup, no
# pboxd process.
check_no_leaks() {
        _nl_m=$(_test_mounts)
        _nl_p=$(_test_cgroup_procs)
        _nl_d=$(_test_pboxd_procs)
        if [ -z "$_nl_m$_nl_p$_nl_d" ]; then
                _tap_result 0 "$1"
                return 0
        fi
        _tap_result 1 "$1"
        [ -z "$_nl_m" ] || _tap_diag "mounts left: $_nl_m"
        [ -z "$_nl_p" ] || _tap_diag "processes left in cgroup $PBOX_CGROUP_NAME: $_nl_p"
        [ -z "$_nl_d" ] || _tap_diag "pboxd processes left: $_nl_d"
        return 1
}

_pbox_cleanup() {
        _cl_status=$?
        trap - EXIT INT TERM HUP
        set +e
        if [ "$_T_DONE" -eq 0 ] && [ "$_cl_status" -ne 77 ]; then
                printf '# test exited (status %s) before done_testing\n' "$_cl_status"
                printf '1..%d\n%d passed, %d failed\n' "$_T_N" "$_T_PASS" "$_T_FAIL"
                [ "$_cl_status" -ne 0 ] || _cl_status=1
        fi
        [ -n "$TEST_TMP" ] && [ -d "$TEST_TMP" ] || exit "$_cl_status"

        # 1. Sandboxes, through the API, while the daemon is up.
        if [ -n "$PBOXD_PID" ] && _pid_alive "$PBOXD_PID"; then
                API_TIMEOUT=15
                if api_call GET /v1/sandboxes && [ "$API_STATUS" = 200 ]; then
                        for _cl_id in $(printf '%s' "$API_BODY" | jq -r '.sandboxes[]?.id' 2>/dev/null); do
                                case $_cl_id in *[!0-9a-zA-Z_-]*) continue ;; esac
                                api_call DELETE "/v1/sandboxes/$_cl_id?force=true"
                                [ "$API_STATUS" = 200 ] ||
                                        printf '# cleanup: DELETE sandbox %s: HTTP %s %s\n' "$_cl_id" "$API_STATUS" "$API_BODY"
                        done
                fi
        fi
        # 2. The daemon, and anything it forked.
        pboxd_stop
        for _cl_pid in $(_test_pboxd_procs); do
                printf '# cleanup: killing leftover pboxd process %s\n' "$_cl_pid"
                kill -KILL "$_cl_pid" 2>/dev/null
        done
        # 3. Sandbox processes still in the test cgroup.
        _cl_cgs=$(_test_cgroups)
        for _cl_cg in $_cl_cgs; do
                if [ -e "$_cl_cg/cgroup.kill" ]; then
                        echo 1 >"$_cl_cg/cgroup.kill" 2>/dev/null
                else
                        for _cl_pid in $(_cg_procs_of "$_cl_cg"); do
                                kill -KILL "$_cl_pid" 2>/dev/null
                        done
                fi
        done
        if [ -n "$_cl_cgs" ] && ! wait_until 5 _cl_no_cgroup_procs; then
                printf '# cleanup: processes remain in cgroup %s: %s\n' "$PBOX_CGROUP_NAME" "$(_test_cgroup_procs | tr '\n' ' ')"
        fi
        # 4. Mounts under TEST_TMP, deepest first.
        _cl_try=0
        while [ "$_cl_try" -lt 3 ]; do
                _cl_mounts=$(_test_mounts)
                [ -n "$_cl_mounts" ] || break
                printf '# cleanup: unmounting leftovers: %s\n' "$(printf '%s' "$_cl_mounts" | tr '\n' ' ')"
                # Unmounting a parent lazily detaches its children too, so
                # later ones may fail; what still remains is reported below.
                printf '%s\n' "$_cl_mounts" | while IFS= read -r _cl_mp; do
                        umount -l -- "$_cl_mp" 2>/dev/null
                done
                _cl_try=$((_cl_try + 1))
        done
        # 5. The test cgroup directories, depth first.
        for _cl_cg in $_cl_cgs; do
                find "$_cl_cg" -depth -type d -exec rmdir {} \; 2>/dev/null
                [ ! -d "$_cl_cg" ] || printf '# cleanup: could not remove cgroup %s\n' "$_cl_cg"
        done
        # 6. The test's own fixtures.
        if [ -n "$_T_AT_CLEANUP" ]; then
                eval "$_T_AT_CLEANUP"
        fi
        # 7. The log on failure, then the files.
        if [ "$_cl_status" -ne 0 ] && [ "$_cl_status" -ne 77 ]; then
                _pboxd_show_log
        fi
        if [ -n "$(_test_mounts)" ]; then
                # Never rm -rf across a mount: it could be a bind of host files.
                printf '# cleanup: mounts remain under %s; leaving it in place\n' "$TEST_TMP"
        elif [ "${PBOX_TEST_KEEP:-}" = 1 ]; then
                printf '# PBOX_TEST_KEEP=1: leaving %s\n' "$TEST_TMP"
        else
                rm -rf --one-file-system -- "$TEST_TMP"
        fi
        exit "$_cl_status"
}

_cl_no_cgroup_procs() {
        [ -z "$(_test_cgroup_procs)" ]
}
