#!/bin/sh
# shellcheck disable=SC1091
# api_errors.sh — the HTTP API's error contract against a real pboxd: every
# refusal (authentication, malformed or hostile JSON, unknown objects and
# endpoints, wrong methods, oversized bodies and uploads, request framing
# civetweb itself rejects, state conflicts) is a JSON body
# {"error":{"code":...}} with Content-Type application/json and the right
# status.  Also checks that the api process (the pboxd child that listens)
# runs unprivileged: not root, no capabilities in any set of any thread,
# no_new_privs, holding no fd of the state directory.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start "max_image_bytes = 1048576"
TOKEN=$(cat "$PBOX_TOKEN_FILE")

# req AUTH METHOD PATH [curl args...]: AUTH is "token" (the admin token),
# "none" or "bearer:VALUE".  Sets R_STATUS, R_TYPE (Content-Type), R_BODY
# and leaves the response headers in $TEST_TMP/.r.hdr.
req() {
        _r_auth=$1 _r_method=$2 _r_path=$3
        shift 3
        case $_r_auth in
        token) _r_hdr="Authorization: Bearer $TOKEN" ;;
        none) _r_hdr="X-Pbox-Test: no-auth" ;;
        bearer:*) _r_hdr="Authorization: Bearer ${_r_auth#bearer:}" ;;
        *) _r_hdr="Authorization: $_r_auth" ;;
        esac
        : >"$TEST_TMP/.r.body"
        : >"$TEST_TMP/.r.hdr"
        _r_out=$(curl -sS --noproxy '*' --max-time 60 -o "$TEST_TMP/.r.body" -D "$TEST_TMP/.r.hdr" \
                -w '%{http_code} %{content_type}' -X "$_r_method" -H "$_r_hdr" "$@" "$PBOX_URL$_r_path")
        R_STATUS=${_r_out%% *}
        R_TYPE=${_r_out#* }
        R_BODY=$(cat "$TEST_TMP/.r.body")
}

# expect_error DESC STATUS_ERE CODE_ERE: the last response is an error with a
# matching status, a JSON Content-Type and a matching .error.code.
expect_error() {
        check_match "$1: status" "^($2)\$" "$R_STATUS"
        check_match "$1: Content-Type application/json" '^application/json' "$R_TYPE"
        _e_code=$(printf '%s' "$R_BODY" | jq -r '.error.code' 2>/dev/null) || _e_code="<not JSON: $R_BODY>"
        check_match "$1: error.code" "^($3)\$" "$_e_code"
}

# raw_http BYTES: send BYTES (printf format) on a fresh connection and print
# the answer; bounded in time.
raw_http() {
        python3 - "$PBOXD_PORT" "$1" <<'EOF'
import socket, sys
port, data = int(sys.argv[1]), sys.argv[2].encode('latin1').decode('unicode_escape').encode('latin1')
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(data)
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except socket.timeout:
    pass
sys.stdout.write(out.decode('latin1').replace('\r', ''))
EOF
}

# raw_expect DESC BYTES STATUS CODE: raw request; the answer's status line,
# Content-Type and .error.code must match.
raw_expect() {
        _x_out=$(raw_http "$2")
        _x_status=$(printf '%s\n' "$_x_out" | sed -n '1s/^HTTP\/1\.[01] \([0-9]*\).*/\1/p')
        _x_type=$(printf '%s\n' "$_x_out" | sed -n 's/^[Cc]ontent-[Tt]ype: *//p' | head -n 1)
        _x_body=$(printf '%s\n' "$_x_out" | sed '1,/^$/d')
        check_eq "$1: status" "$3" "$_x_status"
        check_match "$1: Content-Type application/json" '^application/json' "$_x_type"
        check_eq "$1: error.code" "$4" "$(printf '%s' "$_x_body" | jq -r '.error.code' 2>/dev/null)"
}

# ---------------------------------------------------------------- authentication
req none GET /v1/sandboxes
expect_error "no token" 401 unauthorized
req bearer:0000000000000000000000000000000000000000000000000000000000000000 GET /v1/sandboxes
expect_error "wrong token" 401 unauthorized
req bearer:"${TOKEN}x" GET /v1/images
expect_error "token with a suffix" 401 unauthorized
req "Basic $(printf 'admin:%s' "$TOKEN" | base64 -w0)" GET /v1/sandboxes
expect_error "Basic instead of Bearer" 401 unauthorized
req none POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary '{"image":"busybox"}'
expect_error "create without a token" 401 unauthorized
req token GET /v1/sandboxes
check_eq "the admin token works" 200 "$R_STATUS"
check_match "success is JSON too" '^application/json' "$R_TYPE"

# ---------------------------------------------------------------- malformed JSON
J='-H Content-Type:application/json'
# shellcheck disable=SC2086
{
req token POST /v1/sandboxes $J --data-binary '{"image":'
expect_error "truncated JSON" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '[{"image":"busybox"}]'
expect_error "JSON array instead of an object" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '"busybox"'
expect_error "JSON string instead of an object" 400 bad_request
req token POST /v1/sandboxes $J --data-binary 'null'
expect_error "JSON null" 400 bad_request
req token POST /v1/sandboxes $J --data-binary ''
expect_error "empty body where one is required" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '{"image":"busybox","bogus":1}'
expect_error "unknown field" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '{"image":"busybox","image":"busybox"}'
expect_error "duplicate key" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '{"image":42}'
expect_error "image of the wrong type" 400 bad_request
req token POST /v1/sandboxes $J --data-binary '{}'
expect_error "image missing" 400 bad_request
}
python3 -c 'import sys; sys.stdout.write("{\"image\":\"busybox\",\"labels\":" + "[" * 5000 + "]" * 5000 + "}")' \
        >"$TEST_TMP/deep.json"
req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/deep.json"
expect_error "deeply nested JSON" 400 bad_request
printf '{"image":"busybox:latest","hostname":"h\377\376"}' >"$TEST_TMP/badutf8.json"
req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/badutf8.json"
expect_error "invalid UTF-8 in a string" 400 bad_request
printf '{"image":"busybox:latest"}\000' >"$TEST_TMP/nul.json"
req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/nul.json"
expect_error "NUL byte after the JSON" 400 bad_request

# ---------------------------------------------------------------- sizes
python3 -c 'import sys; sys.stdout.write("{\"image\":\"" + "a" * (2 << 20) + "\"}")' >"$TEST_TMP/big.json"
req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/big.json"
expect_error "2 MiB JSON body" 413 payload_too_large
req token POST /v1/sandboxes -H 'Content-Type: application/json' -H 'Expect:' --data-binary "@$TEST_TMP/big.json"
expect_error "2 MiB JSON body without Expect: 100-continue" 413 payload_too_large
req token POST /v1/sandboxes -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
        --data-binary "@$TEST_TMP/big.json"
expect_error "2 MiB JSON body, chunked (no Content-Length)" 413 payload_too_large
head -c $((2 << 20)) /dev/urandom >"$TEST_TMP/big.bin"
req token POST '/v1/images?name=toobig:latest' --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB upload over max_image_bytes = 1 MiB" 413 payload_too_large
req token POST '/v1/images?name=toobig:latest' -H 'Transfer-Encoding: chunked' -H 'Expect:' \
        --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB chunked upload over max_image_bytes" 413 payload_too_large
req token POST /v1/images --data-binary 'not a tar archive at all'
expect_error "small upload that is no image archive" '400|422' 'bad_request|unprocessable'
req token GET /v1/images
check_eq "nothing half-loaded appears after refused uploads" 0 "$(printf '%s' "$R_BODY" | jq '.images | length')"

# ---------------------------------------------------------------- routes
req token GET /v1/nope
expect_error "unknown path" 404 not_found
req token GET /v2/sandboxes
expect_error "unknown API version" 404 not_found
req token GET /
expect_error "root path" 404 not_found
req token GET /v1/sandboxes/abc/exec/extra
expect_error "trailing path segment" 404 not_found
req token GET /v1/sandboxes/
expect_error "trailing slash" 404 not_found
req token PUT /v1/sandboxes
expect_error "PUT on /v1/sandboxes" 405 method_not_allowed
check_match "405 names the allowed methods" '^[Aa]llow: .*GET.*POST' "$(tr -d '\r' <"$TEST_TMP/.r.hdr")"
req token DELETE /v1/images
expect_error "DELETE on /v1/images" 405 method_not_allowed
req token GET /v1/sandboxes/abc/exec
expect_error "GET on exec" 405 method_not_allowed
req token PATCH /v1/sandboxes/abc
expect_error "PATCH on a sandbox" 405 method_not_allowed
req none PUT /v1/sandboxes
expect_error "wrong method without a token" 405 method_not_allowed
req token GET '/v1/sandboxes?bogus=1'
expect_error "unknown query parameter" 400 bad_request

# ---------------------------------------------------------------- unknown objects, bad ids
req token GET /v1/sandboxes/doesnotexist
expect_error "unknown sandbox" 404 not_found
req token GET /v1/sandboxes/0123456789abcdef01234567
expect_error "unknown sandbox id (24 hex)" 404 not_found
req token POST /v1/sandboxes/doesnotexist/exec -H 'Content-Type: application/json' --data-binary '{"argv":["true"]}'
expect_error "exec in an unknown sandbox" 404 not_found
req token POST /v1/sandboxes/doesnotexist/stop
expect_error "stop an unknown sandbox" 404 not_found
req token DELETE /v1/sandboxes/doesnotexist
expect_error "remove an unknown sandbox" 404 not_found
req token DELETE /v1/images/doesnotexist:latest
expect_error "remove an unknown image" 404 not_found
req token DELETE "/v1/images/$(printf '%064d' 0)"
expect_error "remove an unknown image id" 404 not_found
req token GET '/v1/sandboxes/a%20b'
expect_error "sandbox id with an encoded space" '400|404' 'bad_request|not_found'
req token GET '/v1/sandboxes/..%2F..%2Fetc'
expect_error "sandbox id with encoded ../" '400|404' 'bad_request|not_found'
req token GET '/v1/sandboxes/../images' --path-as-is
expect_error "dot segments are not resolved" '400|404' 'bad_request|not_found'
req token GET "/v1/sandboxes/$(head -c 200 /dev/zero | tr '\0' a)"
expect_error "overlong sandbox id" '400|404' 'bad_request|not_found'
req token GET '/v1/sandboxes/-rf'
expect_error "sandbox id starting with a dash" '400|404' 'bad_request|not_found'
req token DELETE '/v1/images/a%00b'
expect_error "image ref with an encoded NUL" '400|404' 'bad_request|not_found'
req token DELETE '/v1/images/a%0Ab'
expect_error "image ref with an encoded newline" '400|404' 'bad_request|not_found'

# ---------------------------------------------------------------- HTTP framing
raw_expect "garbage request line" 'GARBAGE\r\n\r\n' 400 bad_request
raw_expect "Content-Length and Transfer-Encoding together" \
        'POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' \
        400 bad_request
raw_expect "two Content-Length headers" \
        'POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}' 400 bad_request
raw_expect "Content-Length with trailing garbage" \
        'POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\n{}' 400 bad_request
raw_expect "request header too large" \
        "GET /v1/images HTTP/1.1\\r\\nHost: x\\r\\nX-Big: $(head -c 20000 /dev/zero | tr '\0' a)\\r\\n\\r\\n" \
        '400' bad_request
# A body refused before it was read must not be parsed as the next request.
_smug=$(raw_http 'POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\n\r\nGET /v1/images HTTP/1.1\r\nHost: x\r\n\r\n')
check_eq "a refused body is not run as a second request" 1 "$(printf '%s\n' "$_smug" | grep -c '^HTTP/1')"

# ---------------------------------------------------------------- state conflicts
if busybox_load; then
        req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary '{"image":"busybox:latest"}'
        check_eq "create a sandbox" 201 "$R_STATUS"
        SID=$(printf '%s' "$R_BODY" | jq -r '.id')
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{"argv":[]}'
        expect_error "empty argv" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{}'
        expect_error "argv missing" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{"argv":"true"}'
        expect_error "argv a string" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{"argv":["true",1]}'
        expect_error "argv with a number" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["true"],"cwd":"relative"}'
        expect_error "relative cwd" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["true"],"stdin":"x","stdin_encoding":"rot13"}'
        expect_error "unknown stdin encoding" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{"argv":["true"]}'
        check_eq "exec works before the stop" 200 "$R_STATUS"
        req token DELETE "/v1/sandboxes/$SID"
        expect_error "remove a running sandbox without force" 409 conflict
        req token DELETE /v1/images/busybox:latest
        expect_error "remove an image in use" 409 conflict
        req token POST "/v1/sandboxes/$SID/stop" -H 'Content-Type: application/json' --data-binary '{"grace_ms":1000}'
        check_eq "stop the sandbox" 200 "$R_STATUS"
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' --data-binary '{"argv":["true"]}'
        expect_error "exec in a stopped sandbox" 409 conflict
        req token DELETE "/v1/sandboxes/$SID"
        check_eq "remove the stopped sandbox" 200 "$R_STATUS"
        req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary '{"image":"nosuchimage:latest"}'
        expect_error "create from an unknown image" '404|400|422' 'not_found|bad_request|unprocessable'
else
        skip_test "busybox image could not be loaded: state conflict checks"
fi

# ---------------------------------------------------------------- the api process
# The process listening on our port: a child of pboxd, not pboxd itself.
API_PID=
if command -v ss >/dev/null 2>&1; then
        API_PID=$(ss -Hltnp "sport = :$PBOXD_PORT" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
fi
if [ -z "$API_PID" ]; then
        for _c in $(pgrep -P "$PBOXD_PID"); do
                case $(cat "/proc/$_c/comm" 2>/dev/null) in pboxd*) API_PID=$_c ;; esac
        done
fi
check "found the api process" test -n "$API_PID"
check "the api process is a child of pboxd" sh -c "pgrep -P '$PBOXD_PID' | grep -qx '$API_PID'"
check_eq "pboxd itself does not listen" "" "$(ss -Hltnp "sport = :$PBOXD_PORT" 2>/dev/null | grep "pid=$PBOXD_PID,")"
NOBODY=$(id -u nobody)
st() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$API_PID/status" | tr -s ' \t' ' '; }
check_eq "api Uid (real effective saved fs) is nobody" "$NOBODY $NOBODY $NOBODY $NOBODY" "$(st Uid)"
check_match "api Gid is not root" '^[1-9][0-9]* [1-9][0-9]* [1-9][0-9]* [1-9][0-9]*$' "$(st Gid)"
check_eq "api has no supplementary groups" "" "$(st Groups)"
for _cap in CapInh CapPrm CapEff CapBnd CapAmb; do
        check_eq "api $_cap is empty" 0000000000000000 "$(st $_cap)"
done
check_eq "api NoNewPrivs" 1 "$(st NoNewPrivs)"
_bad_threads=
for _t in /proc/"$API_PID"/task/*; do
        _tu=$(sed -n 's/^Uid:[[:space:]]*//p' "$_t/status" | awk '{print $2}')
        _te=$(sed -n 's/^CapEff:[[:space:]]*//p' "$_t/status")
        _tb=$(sed -n 's/^CapBnd:[[:space:]]*//p' "$_t/status")
        _tn=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "$_t/status")
        [ "$_tu" = "$NOBODY" ] && [ "$_te" = 0000000000000000 ] && [ "$_tb" = 0000000000000000 ] &&
                [ "$_tn" = 1 ] || _bad_threads="$_bad_threads ${_t##*/}"
done
check_eq "every api thread is unprivileged" "" "$_bad_threads"
check_match "api runs more than one thread (civetweb workers were checked)" '^([2-9]|[1-9][0-9]+)$' \
        "$(st Threads)"
check_eq "api holds no fd under the state directory" "" \
        "$(for _f in /proc/"$API_PID"/fd/*; do readlink "$_f"; done 2>/dev/null | grep -F "$PBOXD_STATE")"
done_testing
