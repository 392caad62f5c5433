#!/bin/sh
# shellcheck disable=SC1091
# image_load.sh — loading images into a real pboxd and using them: the
# busybox image (OCI, gzip), an OCI image made by mkimage.py on top of it with
# an uncompressed layer that adds files and a zstd layer that deletes one
# (whiteout) and makes a directory opaque — checked from inside a sandbox —,
# docker-save archives (blobs/ and legacy layouts), content-addressed layer
# storage (a layer is stored once however often it is loaded), image ls,
# image rm (refused with 409 while a sandbox uses the image), moving a name
# to a newer image, and no staging leftovers.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
IMG=$(busybox_image) || bail_out "no busybox image"
MK="$PBOX_SRCDIR/tests/integration/mkimage.py"
W=$TEST_TMP/images
mkdir -p "$W"

layer_count() {
        find "$PBOXD_STATE/layers" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' '
}
tmp_count() {
        find "$PBOXD_STATE/tmp" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' '
}
# upload FILE [QUERY]: POST the archive; API_STATUS / API_BODY
upload() {
        api_call POST "/v1/images${2:-}" -H 'Content-Type: application/x-tar' --data-binary "@$1"
}

# ---------------------------------------------------------------- busybox
upload "$IMG" '?name=busybox:latest'
check_eq "busybox image loads (201)" 201 "$API_STATUS"
check_eq "record names busybox:latest" "busybox:latest" "$(json_get '.names[0]')"
BB_ID=$(json_get .id)
check_match "image id is 64 hex" '^[0-9a-f]{64}$' "$BB_ID"
check_match "record has a manifest digest" '^sha256:[0-9a-f]{64}$' "$(json_get .digest)"
check_match "record has a positive size" '^[1-9][0-9]*$' "$(json_get .size)"
check_eq "record config cmd" '["/bin/sh"]' "$(printf '%s' "$API_BODY" | jq -c .config.cmd)"
N_BB=$(layer_count)
check_eq "layer dirs match the record" "$(json_get '.layers | length')" "$N_BB"
upload "$IMG" '?name=busybox:latest'
check_eq "loading busybox again succeeds" 201 "$API_STATUS"
check_eq "loading again stores no new layer" "$N_BB" "$(layer_count)"
check_eq "same image id" "$BB_ID" "$(json_get .id)"
check_eq "layers/ is private (0700)" 700 "$(stat -c %a "$PBOXD_STATE/layers")"
check_eq "tmp/ is private (0700)" 700 "$(stat -c %a "$PBOXD_STATE/tmp")"

# ---------------------------------------------------------------- OCI: whiteout + opaque
LOWER='[{"type":"dir","path":"etc"},
 {"type":"file","path":"etc/pbox-keep","data":"keep\n"},
 {"type":"file","path":"etc/pbox-gone","data":"gone\n"},
 {"type":"dir","path":"opt"},{"type":"dir","path":"opt/data"},
 {"type":"file","path":"opt/data/lower-only","data":"lower\n"},
 {"type":"file","path":"opt/data/shared","data":"lower\n"}]'
UPPER='[{"type":"whiteout","path":"etc/pbox-gone"},
 {"type":"opaque","path":"opt/data"},
 {"type":"file","path":"opt/data/upper-only","data":"upper\n"},
 {"type":"file","path":"opt/data/shared","data":"upper\n"}]'
check "mkimage builds the whiteout image" \
        python3 "$MK" oci "$W/wh.tar" --name test/whiteout:1 --base "$IMG" \
        --compress none --layer "$LOWER" --compress zstd --layer "$UPPER"
check "pbox image load (CLI) loads it" pbox_cli image load "$W/wh.tar"
check_eq "two new layers stored" "$((N_BB + 2))" "$(layer_count)"
check "pbox image load again" pbox_cli image load "$W/wh.tar"
check_eq "loading it again stores nothing new" "$((N_BB + 2))" "$(layer_count)"

if sandbox_create --name wh test/whiteout:1; then
        WH_SB=$SANDBOX_ID
        pbox_exec "$WH_SB" cat /etc/pbox-keep
        check_eq "file of the lower layer is visible" "keep" "$EXEC_OUT"
        pbox_exec "$WH_SB" ls /etc/pbox-gone
        check "whited-out file is absent" test "$EXEC_RC" -ne 0
        pbox_exec "$WH_SB" ls -a /etc
        check_no_match "no .wh. names inside" '\.wh\.' "$EXEC_OUT"
        pbox_exec "$WH_SB" ls /opt/data
        check_eq "opaque dir shows only the upper content" "shared
upper-only" "$EXEC_OUT"
        pbox_exec "$WH_SB" cat /opt/data/shared
        check_eq "upper file wins" "upper" "$EXEC_OUT"
        pbox_exec "$WH_SB" /bin/busybox true
        check_eq "busybox of the base layer runs" 0 "$EXEC_RC"
else
        WH_SB=
        check "sandbox from the whiteout image" false
fi

# ---------------------------------------------------------------- docker save
FILE_LAYER='[{"type":"dir","path":"etc"},{"type":"file","path":"etc/from-docker","data":"docker\n"}]'
check "mkimage builds a docker-save archive" \
        python3 "$MK" docker "$W/dock.tar" --name test/docker:1 --base "$IMG" --layer "$FILE_LAYER"
upload "$W/dock.tar"
check_eq "docker-save archive loads (201)" 201 "$API_STATUS"
check_eq "docker RepoTags name it" "test/docker:1" "$(json_get '.names[0]')"
check_eq "docker image adds one layer (base shared)" "$((N_BB + 3))" "$(layer_count)"
check "mkimage builds a legacy docker-save archive" \
        python3 "$MK" docker "$W/dock-legacy.tar" --docker-legacy --compress none --name test/docker:legacy \
        --base "$IMG" --layer "$FILE_LAYER"
upload "$W/dock-legacy.tar"
check_eq "legacy docker-save archive loads (201)" 201 "$API_STATUS"
check_eq "legacy docker layout stores nothing new (same diff ids)" "$((N_BB + 3))" "$(layer_count)"
if sandbox_create test/docker:1; then
        DK_SB=$SANDBOX_ID
        pbox_exec "$DK_SB" cat /etc/from-docker
        check_eq "file of the docker image layer inside" "docker" "$EXEC_OUT"
else
        DK_SB=
        check "sandbox from the docker image" false
fi

# ---------------------------------------------------------------- gzip / zstd / none alone
for c in gzip zstd none; do
        check "mkimage builds a $c image" python3 "$MK" oci "$W/c-$c.tar" --name "test/comp:$c" \
                --compress "$c" --layer "[{\"type\":\"file\",\"path\":\"only-$c\",\"data\":\"$c\"}]"
        upload "$W/c-$c.tar"
        check_eq "$c layer loads" 201 "$API_STATUS"
done

N_ALL=$(layer_count)

# ---------------------------------------------------------------- ls
api_call GET /v1/images
check_eq "GET /v1/images 200" 200 "$API_STATUS"
check_eq "images listed" "busybox:latest test/comp:gzip test/comp:none test/comp:zstd test/docker:1 test/docker:legacy test/whiteout:1" \
        "$(json_get '[.images[].names[]] | sort | join(" ")')"
check_match "pbox image ls shows busybox" 'busybox' "$(pbox_cli image ls 2>&1)"
check_eq "pbox image ls --json" "7" "$(pbox_cli image ls --json | jq '[.. | objects | select(has("names")) | .names[]] | length')"

# ---------------------------------------------------------------- rm
api_call DELETE /v1/images/test%2Fwhiteout%3A1
if [ -n "$WH_SB" ]; then
        check_eq "rm refused while a sandbox uses the image (409)" 409 "$API_STATUS"
        check_eq "409 is a conflict error" conflict "$(json_get .error.code)"
        # shellcheck disable=SC2016 # $PBOX is expanded by the inner sh
        check "pbox image rm fails too" sh -c '! timeout 60 "$PBOX" image rm test/whiteout:1'
        check "rm -f the sandbox" pbox_cli rm -f "$WH_SB"
        api_call DELETE /v1/images/test%2Fwhiteout%3A1
fi
check_eq "rm after the sandbox is gone (200)" 200 "$API_STATUS"
check_eq "removed names the ref" "test/whiteout:1" "$(json_get .removed)"
check_eq "its two own layers are gone, shared ones stay" "$((N_ALL - 2))" "$(layer_count)"
api_call DELETE /v1/images/test%2Fwhiteout%3A1
check_eq "rm again: 404" 404 "$API_STATUS"
[ -n "$DK_SB" ] && pbox_cli rm -f "$DK_SB" >/dev/null 2>&1
check "pbox image rm by name" pbox_cli image rm test/docker:1
check "pbox image rm of the second name" pbox_cli image rm test/docker:legacy
check_eq "docker layer gone with its last image" "$((N_ALL - 3))" "$(layer_count)"
api_call DELETE "/v1/images/$BB_ID"
check_eq "rm by id (200)" 200 "$API_STATUS"

# ---------------------------------------------------------------- moving a name
upload "$W/c-gzip.tar" '?name=moving:1'
OLD_ID=$(json_get .id)
upload "$W/c-zstd.tar" '?name=moving:1'
NEW_ID=$(json_get .id)
api_call GET /v1/images
check_eq "the name moved to the newer image" "$NEW_ID" \
        "$(json_get '[.images[] | select(.names | index("moving:1"))][0].id')"
check_eq "the older image stays, reachable by id" "$OLD_ID" \
        "$(json_get "[.images[] | select(.id == \"$OLD_ID\")][0].id")"

check_eq "nothing left in tmp/" 0 "$(tmp_count)"
api_call GET /v1/images
check_eq "daemon still answers" 200 "$API_STATUS"
done_testing
