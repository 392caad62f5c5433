#!/bin/sh
# systemd.sh — pboxd run by systemd with the unit pbox ships
# (systemd/pboxd.service, only ExecStart= pointed at the build tree): started
# by systemctl, its sandboxes get the cgroup controllers (a memory limit is
# enforced), and the unit can be restarted, killed with SIGKILL (Restart=
# brings it back), stopped and started again, and reloaded while sandboxes
# run: none is lost, none is killed, limits stay.  pboxd's log reaches the
# journal with its priorities.
#
# It installs a unit and kills pboxd, so it runs only as pid 1's guest: in
# the throw-away VM of tests/vm booted with systemd as pid 1 (tests/vm/run
# --systemd; maybe-vm and run-tests do that for the line below).  Debian 12's
# systemd (252) is the one tested; it predates DelegateSubgroup= (254).
# needs-vm: systemd
. "$PBOX_SRCDIR/tests/integration/lib.sh"
pbox_test_init
if [ "${PBOX_VM:-}" != 1 ] || [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
        _skip_or_fail "needs systemd as pid 1 in the test VM (tests/vm/run-tests $0)"
fi
printf '# %s\n' "$(systemctl --version | head -n 1)"

MIB=1048576
CGROOT=$(_cgroup2_root)
UNIT=/run/systemd/system/pboxd.service
PBOXD_STATE=$TEST_TMP/state
PBOXD_RUNTIME=$TEST_TMP/run
PBOXD_LOG=$TEST_TMP/pboxd.log # unused: the journal has the log
PBOXD_CONF=$TEST_TMP/pbox.conf
PBOX_TOKEN_FILE=$PBOXD_STATE/admin.token
PBOX_CGROUP_NAME=pbox-test-$(_rand_hex 6)
PBOXD_PORT=$(($(printf '%d' "0x$(_rand_hex 2)") % 30000 + 20000))
PBOX_URL=http://127.0.0.1:$PBOXD_PORT
export PBOXD_STATE PBOXD_RUNTIME PBOXD_LOG PBOXD_CONF PBOX_TOKEN_FILE PBOX_CGROUP_NAME PBOX_URL
: >"$PBOXD_LOG"
_pboxd_write_config
sed "s|^ExecStart=.*|ExecStart=$PBOX_BUILDDIR/pboxd --config $PBOXD_CONF --listen 127.0.0.1:$PBOXD_PORT \
--state-dir $PBOXD_STATE --runtime-dir $PBOXD_RUNTIME|" "$PBOX_SRCDIR/systemd/pboxd.service" >"$UNIT"
check "the shipped unit, ExecStart= pointed at the build tree" grep -q "^ExecStart=$PBOX_BUILDDIR/pboxd " "$UNIT"
at_cleanup '{ systemctl stop pboxd.service; systemctl reset-failed pboxd.service; rm -f /run/systemd/system/pboxd.service; } 2>/dev/null'
systemctl daemon-reload

main_pid() { systemctl show -p MainPID --value pboxd.service; }
show() { systemctl show -p "$1" --value pboxd.service; }
journal_tail() {
        printf '# ---- systemctl status pboxd; journalctl (last 40 lines)\n'
        { systemctl status pboxd.service --no-pager -l; journalctl --no-pager -n 40; } 2>&1 | sed 's/^/# | /'
}
# ready: active, answering, and MainPID is a pboxd (PBOXD_PID set to it).
ready() {
        [ "$(show ActiveState)" = active ] && _pboxd_ready || return 1
        PBOXD_PID=$(main_pid)
        [ "$PBOXD_PID" -gt 0 ] 2>/dev/null
}
# wait_ready: until ready; the test cannot go on otherwise.
wait_ready() {
        if ! wait_until "$(tscale 30)" ready; then
                journal_tail
                bail_out "pboxd.service is not running and answering (state $(show ActiveState))"
        fi
}
state_of() { # ID -> state
        api_call GET "/v1/sandboxes/$1"
        json_get .state
}
beat() { cat "$PBOXD_STATE/sandboxes/$A/upper/tmp/beat" 2>/dev/null; }
beating() { # the loop inside A has moved on since $1
        _b=$(beat)
        [ -n "$_b" ] && [ "$_b" != "$1" ]
}
# exec_ok LABEL: an exec in A works and the sandbox kept its init.
exec_ok() {
        pbox_exec "$A" cat /tmp/beat.pid
        check_eq "$1: exec works in the sandbox (its background loop is the same process)" "$LOOP_PID" "$EXEC_OUT"
        api_call GET "/v1/sandboxes/$A"
        check_eq "$1: the sandbox kept its init (same host pid)" "running $A_PID" "$(json_get '"\(.state) \(.pid)"')"
}
mem_max() { cat "$A_CG/memory.max" 2>/dev/null; }

# ---------------------------------------------------------------- start
systemctl start pboxd.service
check_eq "systemctl start pboxd: 0" 0 "$?"
wait_ready
check_eq "the unit is active and pboxd answers" active "$(show ActiveState)"
FIRST_PID=$PBOXD_PID
UNIT_CG=$(show ControlGroup)
printf '# unit cgroup %s, pboxd in %s\n' "$UNIT_CG" "$(sed -n 's/^0:://p' "/proc/$PBOXD_PID/cgroup")"
PBOXD_CG=$(sed -n 's/^0:://p' "/proc/$PBOXD_PID/cgroup")
check_match "pboxd runs in its unit's cgroup (or the leaf DelegateSubgroup= names)" "^$UNIT_CG(/supervisor)?\$" "$PBOXD_CG"
require_cgroup_controllers memory pids cpu
check_eq "/healthz: memory, pids and cpu for sandboxes" "cpu memory pids" \
        "$(json_get '[.cgroup.enabled[] | select(. == "cpu" or . == "memory" or . == "pids")] | sort | join(" ")')"

busybox_load || bail_out "cannot load busybox"
sandbox_create --memory 64M --pids 64 busybox || bail_out "cannot create a sandbox"
A=$SANDBOX_ID
A_CG=$(sandbox_cgroup "$A")
printf '# sandbox cgroup %s\n' "$A_CG"
check_eq "the sandbox's memory.max is 64 MiB" $((64 * MIB)) "$(mem_max)"
if [ "$PBOXD_CG" = "$UNIT_CG/supervisor" ]; then
        # systemd >= 254: DelegateSubgroup=supervisor took effect.
        check_eq "sandboxes live in the delegated unit cgroup" "$CGROOT$UNIT_CG/$PBOX_CGROUP_NAME/$A" "$A_CG"
else
        # Older systemd starts pboxd in the unit's own cgroup, every time:
        # it must stay a leaf (no controllers for children) or the next
        # start fails with 219/CGROUP.
        check_eq "the unit's cgroup stays a leaf: no controllers enabled for children" "" \
                "$(cat "$CGROOT$UNIT_CG/cgroup.subtree_control")"
        check_eq "... sandboxes live beside it" "$CGROOT${UNIT_CG%/*}/$PBOX_CGROUP_NAME/$A" "$A_CG"
        check "... the journal says why" sh -c "journalctl -u pboxd.service --no-pager -o cat | grep -q 'sandboxes go beside it'"
fi
api_exec "$A" '{"argv":["dd","if=/dev/zero","of=/dev/null","bs=100M","count=1"]}'
check_eq "a 100 MiB allocation under 64M ends oom" oom "$(json_get .status)"
pbox_exec "$A" sh -c 'sh -c "echo \$\$ > /tmp/beat.pid; i=0; while :; do i=\$((i+1)); echo \$i > /tmp/beat; sleep 0.1; done" >/dev/null 2>&1 &'
wait_until "$(tscale 5)" beating ""
pbox_exec "$A" cat /tmp/beat.pid
LOOP_PID=$EXEC_OUT
api_call GET "/v1/sandboxes/$A"
A_PID=$(json_get .pid)
check "a background loop runs in the sandbox (pid $LOOP_PID, init $A_PID)" test -n "$LOOP_PID" -a -n "$A_PID"

# ---------------------------------------------------------------- restart
systemctl restart pboxd.service
check_eq "systemctl restart pboxd with a sandbox running: 0" 0 "$?"
wait_ready
check_eq "... the unit is active again" active "$(show ActiveState)"
check "... with a new pboxd ($FIRST_PID -> $PBOXD_PID)" test "$PBOXD_PID" != "$FIRST_PID"
exec_ok "after systemctl restart"
check_eq "... memory.max is still 64 MiB" $((64 * MIB)) "$(mem_max)"

# ---------------------------------------------------------------- crash
restarts=$(show NRestarts)
before=$PBOXD_PID
kill -KILL "$before"
wait_until "$(tscale 20)" eval '[ "$(main_pid)" != "$before" ] && ready'
check_eq "kill -9 of pboxd: Restart=on-failure starts it again" "$((restarts + 1)) active" \
        "$(show NRestarts) $(show ActiveState)"
wait_ready
exec_ok "after kill -9"

# ---------------------------------------------------------------- stop, start
systemctl stop pboxd.service
check_eq "systemctl stop pboxd: 0" 0 "$?"
check_eq "... the unit is inactive" inactive "$(show ActiveState)"
check "... the sandbox's init lives on (KillMode=process)" _pid_alive "$A_PID"
b=$(beat)
check "... and its background loop goes on" wait_until "$(tscale 5)" beating "$b"
systemctl start pboxd.service
check_eq "systemctl start pboxd again: 0" 0 "$?"
wait_ready
exec_ok "after stop and start"

# ---------------------------------------------------------------- reload
systemctl daemon-reload
check_eq "systemctl daemon-reload: 0" 0 "$?"
check_eq "... the unit is still active" active "$(show ActiveState)"
check_eq "... memory.max is still 64 MiB" $((64 * MIB)) "$(mem_max)"
api_exec "$A" '{"argv":["dd","if=/dev/zero","of=/dev/null","bs=100M","count=1"]}'
check_eq "... and still enforced: a 100 MiB allocation ends oom" oom "$(json_get .status)"
exec_ok "after daemon-reload"

# ---------------------------------------------------------------- journal
journalctl --sync 2>/dev/null
check "the journal has pboxd's log (sandbox created)" \
        sh -c "journalctl -u pboxd.service --no-pager -o cat -p info | grep -q 'sandbox $A created'"
check "... at its priority (info: not among warnings)" \
        sh -c "! journalctl -u pboxd.service --no-pager -o cat -p warning | grep -q 'sandbox $A created'"

# ---------------------------------------------------------------- removal
api_call DELETE "/v1/sandboxes/$A?force=true"
check_eq "the sandbox is removed through the API" 200 "$API_STATUS"
check "... its cgroup is gone" test ! -d "$A_CG"
check "... and its init" eval "! _pid_alive $A_PID"
systemctl stop pboxd.service
check_eq "systemctl stop pboxd: inactive (not failed)" inactive "$(show ActiveState)"
PBOXD_PID=

# ---------------------------------------------------------------- a delegated subtree
# What systemd >= 254 does for DelegateSubgroup=supervisor (start pboxd in
# <unit>/supervisor), done by hand in a transient unit with Delegate=yes:
# pboxd then keeps its sandboxes inside its unit, in <unit>/<cgroup_name>.
PBOXD_STATE=$TEST_TMP/state2
PBOXD_RUNTIME=$TEST_TMP/run2
PBOX_TOKEN_FILE=$PBOXD_STATE/admin.token
PBOXD_PORT=$((PBOXD_PORT + 1))
PBOX_URL=http://127.0.0.1:$PBOXD_PORT
export PBOXD_STATE PBOXD_RUNTIME PBOX_TOKEN_FILE PBOX_URL
at_cleanup '{ systemctl stop pboxd-sub.service; systemctl reset-failed pboxd-sub.service; } 2>/dev/null'
# (systemd reads "$$" in a command line as "$": the shell moves itself by
# writing 0, which means "the writer".)
# shellcheck disable=SC2016  # expanded by the unit's shell
systemd-run --quiet --unit=pboxd-sub -p Delegate=yes -p KillMode=process /bin/sh -c \
        'cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); mkdir -p "$cg/supervisor" &&
         echo 0 >"$cg/supervisor/cgroup.procs" && exec "$0" "$@"' \
        "$PBOX_BUILDDIR/pboxd" --config "$PBOXD_CONF" --listen "127.0.0.1:$PBOXD_PORT" \
        --state-dir "$PBOXD_STATE" --runtime-dir "$PBOXD_RUNTIME"
check_eq "systemd-run -p Delegate=yes, pboxd started in <unit>/supervisor: 0" 0 "$?"
SUB_CG=$(systemctl show -p ControlGroup --value pboxd-sub.service)
if ! wait_until "$(tscale 30)" _pboxd_ready; then
        journalctl --no-pager -n 40 | sed 's/^/# | /'
        bail_out "pboxd in pboxd-sub.service did not start"
fi
PBOXD_PID=$(systemctl show -p MainPID --value pboxd-sub.service)
api_call GET /healthz
check_eq "/healthz: the subtree is delegated" true "$(json_get .cgroup.delegated)"
busybox_load || bail_out "cannot load busybox"
sandbox_create --memory 32M busybox || bail_out "cannot create a sandbox"
S=$SANDBOX_ID
check_eq "sandboxes live inside the unit's cgroup, <unit>/<cgroup_name>" "$CGROOT$SUB_CG/$PBOX_CGROUP_NAME/$S" \
        "$(sandbox_cgroup "$S")"
check_eq "... with their limits" $((32 * MIB)) "$(cat "$(sandbox_cgroup "$S")/memory.max")"
check_eq "... and pboxd stays in <unit>/supervisor" "$SUB_CG/supervisor" "$(sed -n 's/^0:://p' "/proc/$PBOXD_PID/cgroup")"
api_call DELETE "/v1/sandboxes/$S?force=true"
check_eq "the sandbox is removed" 200 "$API_STATUS"
systemctl stop pboxd-sub.service
PBOXD_PID=
done_testing
