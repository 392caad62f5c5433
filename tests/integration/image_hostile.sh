#!/bin/sh
# shellcheck disable=SC1091,SC2153
# image_hostile.sh — hostile image archives against a real pboxd: every kind
# mkimage.py knows (path traversal with "..", absolute names, symlinks and
# hardlinks aimed outside the layer, symlink-then-write-through, devices,
# setuid bits, forged xattrs, bad digests / sizes / diff ids, bad whiteouts,
# oversized manifests / configs / names, hostile outer archive members, not
# a tar at all).  A kind expected to be rejected must get a 4xx JSON error
# naming the culprit (entry or blob) and leave no layer, image record or
# staging dir behind; a kind the documented policy accepts (absolute names
# made relative, devices skipped, setuid stripped, symlinks replaced) must
# land entirely inside its layer.  After every load the sentinel trees
# outside the store ($TEST_TMP/outside, /tmp/pbox-hostile-sentinel-PID) and
# /etc/passwd are unchanged.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
IMG=$(busybox_image) || bail_out "no busybox image"
MK="$PBOX_SRCDIR/tests/integration/mkimage.py"
W=$TEST_TMP/hostile
mkdir -p "$W"

# Sentinels: hostile entries aim at SENT_TMP (absolute, outside TEST_TMP too).
SENT_IN=$TEST_TMP/outside
SENT_TMP=/tmp/pbox-hostile-sentinel-$$
mkdir -p "$SENT_IN/sub" "$SENT_TMP/sub"
at_cleanup "rm -rf '$SENT_TMP'"
for d in "$SENT_IN" "$SENT_TMP"; do
        printf 'original\n' >"$d/victim"
        printf 'original\n' >"$d/sub/file"
done

snapshot() {
        find "$SENT_IN" "$SENT_TMP" /etc/passwd /etc/shadow -printf '%p %y %s %m %U:%G %T@ %l\n' 2>/dev/null | sort
}
store_dirs() {
        find "$PBOXD_STATE/layers" "$PBOXD_STATE/images" -mindepth 1 -maxdepth 1 ! -name .lock | sort
}
tmp_count() {
        find "$PBOXD_STATE/tmp" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' '
}
contains() {
        case $1 in
        *"$2"*) return 0 ;;
        esac
        return 1
}

# The base layer is loaded first, so hostile images built on it hit the
# "layer already stored, verify only" path as well.
busybox_load || bail_out "cannot load busybox"

KINDS=$(python3 "$MK" hostile --list | awk '{print $1}')
check "mkimage lists hostile kinds" test -n "$KINDS"
for kind in $KINDS; do
        info=$(python3 "$MK" hostile "$kind" "$W/$kind.tar" --target "$SENT_TMP" --base "$IMG") || {
                check "mkimage builds hostile/$kind" false
                continue
        }
        expect=$(json_get .expect "$info")
        needle=$(json_get .needle "$info")
        before_snap=$(snapshot)
        before_store=$(store_dirs)

        api_call POST /v1/images -H 'Content-Type: application/x-tar' --data-binary "@$W/$kind.tar"
        if [ "$expect" = reject ]; then
                check_match "$kind: rejected with 4xx" '^4[0-9][0-9]$' "$API_STATUS"
                check_match "$kind: JSON error code" '^(bad_request|payload_too_large|unprocessable)$' \
                        "$(json_get .error.code 2>/dev/null)"
                msg=$(json_get .error.message 2>/dev/null)
                if [ -n "$needle" ]; then
                        check "$kind: error names '$needle'" contains "$msg" "$needle"
                fi
                check_eq "$kind: no new layer or image record" "$before_store" "$(store_dirs)"
        else
                check_eq "$kind: accepted by policy (201)" 201 "$API_STATUS"
                id=$(json_get .id)
                top=$(json_get '.layers[-1]')
                checks=$(printf '%s' "$info" | jq -c .checks)
                check "$kind: layer content as the policy says" \
                        python3 "$MK" check-layer "$PBOXD_STATE/layers/${top#sha256:}" "$checks"
                check "$kind: nothing in the layer is setuid/setgid" \
                        sh -c "[ -z \"\$(find '$PBOXD_STATE/layers/${top#sha256:}' -perm /6000 ! -type d)\" ]"
                case $kind in
                setuid | symlink-overwrite | abs-path)
                        if sandbox_create "$id"; then
                                case $kind in
                                setuid)
                                        pbox_exec "$SANDBOX_ID" stat -c %a /suid /sgid
                                        check_eq "setuid: bits stripped, seen inside" "755
755" "$EXEC_OUT" ;;
                                symlink-overwrite)
                                        pbox_exec "$SANDBOX_ID" cat /victim
                                        check_eq "symlink-overwrite: the file replaced the link" "replaced" "$EXEC_OUT" ;;
                                abs-path)
                                        pbox_exec "$SANDBOX_ID" cat "$SENT_TMP/abs-pwned"
                                        check_eq "abs-path: the entry is inside the sandbox's root" "x" "$EXEC_OUT" ;;
                                esac
                                pbox_cli rm -f "$SANDBOX_ID" >/dev/null 2>&1
                        else
                                check "$kind: sandbox from the accepted image" false
                        fi
                        ;;
                esac
                api_call DELETE "/v1/images/$id"
                check_eq "$kind: removed again" 200 "$API_STATUS"
        fi
        check_eq "$kind: tmp/ empty" 0 "$(tmp_count)"
        check_eq "$kind: sentinels and /etc/passwd unchanged" "$before_snap" "$(snapshot)"
done

check "no pwned file anywhere in the sentinels" \
        sh -c "[ -z \"\$(find '$SENT_IN' '$SENT_TMP' -name '*pwned*')\" ]"
check "no pwned file next to the store" \
        sh -c "[ -z \"\$(find '$TEST_TMP' -maxdepth 3 -name '*pwned*' ! -path '$PBOXD_STATE/*')\" ]"
api_call GET /v1/images
check_eq "only busybox is left" "busybox:latest" "$(json_get '[.images[].names[]] | join(" ")')"
done_testing
