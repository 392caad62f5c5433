#!/bin/sh
# shellcheck disable=SC1091
# api_errors.sh — the HTTP API's error contract against a real pboxd: every
# refusal (authentication, malformed or hostile JSON, unknown objects and
# endpoints, wrong methods, oversized bodies and uploads, request framing
# civetweb itself rejects, state conflicts) is a JSON body
# {"error":{"code":...}} with Content-Type application/json and the right
# status.  The execution API's routes (issue 3: execs, event streams,
# stdin, kill, keepalive, files, archives, run, tenants, /healthz,
# /metrics): malformed exec ids, wrong methods, missing or bad query
# parameters, oversized raw bodies, and the bound on concurrent event
# streams.  Also checks that the api process (the pboxd child that listens)
# runs unprivileged: not root, no capabilities in any set of any thread,
# no_new_privs, holding no fd of the state directory, and that it stops
# promptly while event streams are open.
#
# Checks marked [core] need the core side of issue 3 (the api process only
# routes; the core answers 404 "unknown operation" for ops it lacks).
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
# api_threads = 4: at most 3 event streams at once (a quarter of the
# workers, at least one, stays free for ordinary requests).
pboxd_start "max_image_bytes = 1048576" "api_threads = 4"
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
req token PUT /v1/sandboxes/abc
expect_error "PUT on a sandbox" 405 method_not_allowed
req none PUT /v1/sandboxes
expect_error "wrong method without a token" 405 method_not_allowed
req token GET '/v1/sandboxes?bogus=1'
expect_error "unknown query parameter" 400 bad_request

# ---------------------------------------------------------------- execution API routes
# Checked by the api process itself, before the core sees the request.
E=0123456789abcdef
for _bad in XYZ 0123456789ABCDEF 0123456789abcde 0123456789abcdef0 0123456789abcdeg %30123456789abcde; do
        req token GET "/v1/sandboxes/abc/execs/$_bad"
        expect_error "malformed exec id '$_bad'" 400 bad_request
done
req token POST "/v1/sandboxes/abc/execs/XYZ/stdin" --data-binary 'x'
expect_error "stdin of a malformed exec id" 400 bad_request
req token POST "/v1/sandboxes/abc/execs/XYZ/kill"
expect_error "kill of a malformed exec id" 400 bad_request
req token GET "/v1/sandboxes/-x/execs/$E/events"
expect_error "events in a malformed sandbox id" 400 bad_request
req token GET "/v1/sandboxes/abc/execs/$E/events/more"
expect_error "trailing segment after events" 404 not_found
req token GET "/v1/sandboxes/abc/execs/"
expect_error "empty exec id" 404 not_found
req token DELETE /v1/tenants/-bad
expect_error "malformed tenant name" 400 bad_request

while read -r _m _p; do
        req token "$_m" "$_p"
        expect_error "$_m $_p" 405 method_not_allowed
done <<EOF
DELETE /v1/sandboxes/abc/execs
POST /v1/sandboxes/abc/execs
DELETE /v1/sandboxes/abc/execs/$E
POST /v1/sandboxes/abc/execs/$E
POST /v1/sandboxes/abc/execs/$E/events
GET /v1/sandboxes/abc/execs/$E/stdin
PUT /v1/sandboxes/abc/execs/$E/stdin
GET /v1/sandboxes/abc/execs/$E/kill
GET /v1/sandboxes/abc/keepalive
POST /v1/sandboxes/abc/files?path=/x
DELETE /v1/sandboxes/abc/files?path=/x
PUT /v1/sandboxes/abc/ls?path=/
POST /v1/sandboxes/abc/archive?path=/
DELETE /v1/sandboxes/abc/archive?path=/
GET /v1/run
POST /healthz
POST /metrics
PUT /v1/tenants
GET /v1/tenants/alice
EOF
req token POST '/v1/sandboxes/abc/files?path=/x'
check_match "405 on files names GET and PUT" '^[Aa]llow: (GET, PUT|PUT, GET)' "$(tr -d '\r' <"$TEST_TMP/.r.hdr")"
req none GET /v1/run
expect_error "wrong method on run without a token" 405 method_not_allowed

req token GET /v1/sandboxes/abc/files
expect_error "GET files without path" 400 bad_request
check_match "... the message names the parameter" "'path'" "$R_BODY"
req token PUT /v1/sandboxes/abc/files --data-binary 'x'
expect_error "PUT files without path" 400 bad_request
req token GET '/v1/sandboxes/abc/files?mode=0644'
expect_error "files with mode but no path" 400 bad_request
req token GET /v1/sandboxes/abc/ls
expect_error "ls without path" 400 bad_request
req token GET /v1/sandboxes/abc/archive
expect_error "GET archive without path" 400 bad_request
req token PUT /v1/sandboxes/abc/archive --data-binary 'x'
expect_error "PUT archive without path" 400 bad_request
req token GET '/v1/sandboxes/abc/files?path=/a&path=/b'
expect_error "path given twice" 400 bad_request
req token GET '/v1/sandboxes/abc/files?path=/a%00b'
expect_error "path with an encoded NUL" 400 bad_request
req token GET '/v1/sandboxes/abc/files?path=/a%FF'
expect_error "path that is not UTF-8" 400 bad_request
req token GET "/v1/sandboxes/abc/files?path=/$(head -c 5000 /dev/zero | tr '\0' a)"
expect_error "path longer than 4096 bytes" 400 bad_request
req token GET '/v1/sandboxes/abc/files?path=/x&mode=0644'
expect_error "mode on a GET of a file" 400 bad_request
req token GET '/v1/sandboxes/abc/ls?path=/&bogus=1'
expect_error "unknown query parameter on ls" 400 bad_request
req token POST "/v1/sandboxes/abc/execs/$E/stdin?close=true&bogus=1"
expect_error "unknown query parameter on stdin" 400 bad_request
req token GET "/v1/sandboxes/abc/execs/$E/events" -H 'Content-Type: application/json' --data-binary '{}' -X GET
expect_error "a body on events" 400 bad_request

# Raw bodies (stdin, files, archives) are bounded by max_image_bytes (1 MiB here).
req token POST "/v1/sandboxes/abc/execs/$E/stdin" --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB of stdin" 413 payload_too_large
req token POST "/v1/sandboxes/abc/execs/$E/stdin?close=true" -H 'Transfer-Encoding: chunked' -H 'Expect:' \
        --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB of chunked stdin" 413 payload_too_large
req token PUT '/v1/sandboxes/abc/files?path=/tmp/big' --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB file upload" 413 payload_too_large
req token PUT '/v1/sandboxes/abc/archive?path=/tmp' --data-binary "@$TEST_TMP/big.bin"
expect_error "2 MiB archive upload" 413 payload_too_large
python3 -c 'import sys; sys.stdout.write("{\"image\":\"busybox\",\"argv\":[\"" + "a" * (2 << 20) + "\"]}")' \
        >"$TEST_TMP/bigrun.json"
req token POST /v1/run -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/bigrun.json"
expect_error "2 MiB run request (a JSON body)" 413 payload_too_large

# [core] the core answers these.
req none GET /healthz
check_eq "[core] /healthz needs no token" 200 "$R_STATUS"
check_match "[core] /healthz is JSON" '^application/json' "$R_TYPE"
check_eq "[core] /healthz says ok" ok "$(printf '%s' "$R_BODY" | jq -r .status 2>/dev/null)"
req bearer:wrong GET /healthz
check_eq "[core] /healthz ignores a wrong token" 200 "$R_STATUS"
req none GET /metrics
expect_error "[core] /metrics without a token" 401 unauthorized
req token GET /metrics
check_eq "[core] /metrics with the admin token" 200 "$R_STATUS"
check_eq "[core] /metrics is Prometheus text" 'text/plain; version=0.0.4' "$R_TYPE"
req none GET /v1/tenants
expect_error "[core] tenants without a token" 401 unauthorized
while read -r _m _p; do
        req token "$_m" "$_p"
        expect_error "[core] $_m $_p of an unknown sandbox" 404 not_found
done <<EOF
GET /v1/sandboxes/doesnotexist/execs
GET /v1/sandboxes/doesnotexist/execs/$E
GET /v1/sandboxes/doesnotexist/execs/$E/events
POST /v1/sandboxes/doesnotexist/execs/$E/stdin
POST /v1/sandboxes/doesnotexist/execs/$E/kill
POST /v1/sandboxes/doesnotexist/keepalive
GET /v1/sandboxes/doesnotexist/files?path=/etc/passwd
PUT /v1/sandboxes/doesnotexist/files?path=/tmp/x
GET /v1/sandboxes/doesnotexist/ls?path=/
GET /v1/sandboxes/doesnotexist/archive?path=/
PUT /v1/sandboxes/doesnotexist/archive?path=/
EOF
# shellcheck disable=SC2086
{
req token POST /v1/run $J --data-binary '{"image":'
expect_error "[core] run with truncated JSON" 400 bad_request
req token POST /v1/run $J --data-binary '{}'
expect_error "[core] run without image and argv" '400|422' 'bad_request|unprocessable'
req token POST /v1/run $J --data-binary '{"image":"busybox","argv":["true"],"bogus":1}'
expect_error "[core] run with an unknown field" '400|422' 'bad_request|unprocessable'
req token POST /v1/tenants $J --data-binary '{"name":'
expect_error "[core] tenant create with truncated JSON" 400 bad_request
}

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
        EID=$(printf '%s' "$R_BODY" | jq -r '.id')
        # [core] the execution API of a running sandbox.
        check_match "[core] a sync exec result carries the exec id" '^[0-9a-f]{16}$' "$EID"
        for _p in "execs/$E" "execs/$E/events"; do
                req token GET "/v1/sandboxes/$SID/$_p"
                expect_error "[core] GET $_p of an unknown exec" 404 not_found
        done
        req token POST "/v1/sandboxes/$SID/execs/$E/stdin" --data-binary 'x'
        expect_error "[core] stdin of an unknown exec" 404 not_found
        req token POST "/v1/sandboxes/$SID/execs/$E/kill"
        expect_error "[core] kill of an unknown exec" 404 not_found
        req token POST "/v1/sandboxes/$SID/execs/$EID/stdin" --data-binary 'late'
        expect_error "[core] stdin of an exec without a stdin stream" 409 conflict
        req token POST "/v1/sandboxes/$SID/execs/$EID/kill" -H 'Content-Type: application/json' \
                --data-binary '{"signal":'
        expect_error "[core] kill with truncated JSON" 400 bad_request
        req token POST "/v1/sandboxes/$SID/execs/$EID/kill" -H 'Content-Type: application/json' \
                --data-binary '{"bogus":1}'
        expect_error "[core] kill with an unknown field" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/keepalive" -H 'Content-Type: application/json' --data-binary '[1]'
        expect_error "[core] keepalive with a JSON array" 400 bad_request
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["true"],"timeout_ms":999999999999}'
        expect_error "[core] a timeout above the maximum" 422 unprocessable
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["true"],"timeout_ms":"1s"}'
        expect_error "[core] a timeout that is not a number" '400|422' 'bad_request|unprocessable'
        req token POST "/v1/sandboxes/$SID/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["true"],"user":"root"}'
        expect_error "[core] a user that is not numeric" '400|422' 'bad_request|unprocessable'
        req token GET "/v1/sandboxes/$SID/execs/$EID/events"
        check_eq "[core] events of an exited exec: 200" 200 "$R_STATUS"
        check_match "[core] ... as text/event-stream" '^text/event-stream' "$R_TYPE"
        check_match "[core] ... not cached" '^[Cc]ache-[Cc]ontrol: no-cache' "$(tr -d '\r' <"$TEST_TMP/.r.hdr")"
        check_eq "[core] ... start, then exit, then the end" "start exit" \
                "$(printf '%s\n' "$R_BODY" | sed -n 's/^event: //p' | tr '\n' ' ' | sed 's/ $//')"
        req token GET "/v1/sandboxes/$SID/files?path=/etc/passwd"
        check_eq "[core] a file download is application/octet-stream" "200 application/octet-stream" \
                "$R_STATUS $R_TYPE"
        req token GET "/v1/sandboxes/$SID/archive?path=/etc"
        check_eq "[core] an archive download is application/x-tar" "200 application/x-tar" "$R_STATUS $R_TYPE"
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

# ---------------------------------------------------------------- event streams
# [core] Each open stream holds an api worker; with api_threads = 4 at most 3
# run at once, the 4th gets 503 with Retry-After, and ordinary requests
# still get a worker.  A client that goes away frees its worker at once.
STREAM_PIDS=
SID2=
stream_open() {
        curl -sS -N --noproxy '*' --max-time 120 -H "Authorization: Bearer $TOKEN" \
                "$PBOX_URL/v1/sandboxes/$SID2/execs/$SEID/events" >"$TEST_TMP/stream.$1" 2>&1 &
        eval "STREAM_PID_$1=\$!"
        STREAM_PIDS="$STREAM_PIDS $!"
}
stream_started() { grep -q '^event: start' "$TEST_TMP/stream.$1"; }
if busybox_load; then
        req token POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary '{"image":"busybox:latest"}'
        SID2=$(printf '%s' "$R_BODY" | jq -r '.id')
        req token POST "/v1/sandboxes/$SID2/exec" -H 'Content-Type: application/json' \
                --data-binary '{"argv":["sleep","100"],"wait":false,"timeout_ms":110000}'
        check_eq "[core] an async exec to stream" 202 "$R_STATUS"
        SEID=$(printf '%s' "$R_BODY" | jq -r '.id')
        for _i in 1 2 3; do
                stream_open "$_i"
                check "[core] event stream $_i is open" wait_until 10 stream_started "$_i"
        done
        req token GET "/v1/sandboxes/$SID2/execs/$SEID/events" --max-time 5
        expect_error "[core] a 4th stream with api_threads = 4" 503 unavailable
        check_match "... with Retry-After" '^[Rr]etry-[Aa]fter: [0-9]+$' "$(tr -d '\r' <"$TEST_TMP/.r.hdr")"
        req token GET /v1/sandboxes
        check_eq "[core] ordinary requests still get a worker" 200 "$R_STATUS"
        # shellcheck disable=SC2153,SC2154
        kill "$STREAM_PID_1" 2>/dev/null
        stream_open 4
        check "[core] a client that left frees its worker at once" wait_until 3 stream_started 4
else
        skip_test "busybox image could not be loaded: event stream checks"
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

# [core] SIGTERM with event streams open: the api process does not wait for
# them; the clients see their streams end.
if [ -n "$SID2" ]; then
        _t0=$(date +%s%N)
        pboxd_stop
        check_eq "pboxd stops cleanly with streams open" 0 "$?"
        check "... within 3 s" test $((($(date +%s%N) - _t0) / 1000000)) -lt 3000
        for _p in $STREAM_PIDS; do
                check "... stream client $_p is done" wait_until 5 eval "! _pid_alive $_p"
        done
        pboxd_restart
        req token DELETE "/v1/sandboxes/$SID2?force=true"
        check_eq "the streamed sandbox is removed after the restart" 200 "$R_STATUS"
fi
done_testing
