#!/bin/sh
# shellcheck disable=SC1091,SC2153,SC2016
# files.sh — the file API (PUT/GET .../files, GET .../ls, PUT/GET .../archive)
# against a real pboxd and real sandboxes: round trips of text, binary and
# empty files, modes and owners (inside the sandbox and on the host), listings,
# archives of trees with symlinks, error statuses, limits; then escapes, each
# attacked for real from inside the sandbox: symlinks to host paths (absolute,
# ".." chains, /proc/1/root magic links, loops), writes through them, hostile
# archives ("..", absolute names, symlink-then-write-through, hardlinks out,
# devices, setuid), and a sandbox process swapping a directory for symlinks
# to / and to host paths in a tight loop while the test PUTs and GETs through
# it 200 times.  Host sentinels ($SENT, outside $TEST_TMP; a marker nobody
# inside can know) must stay untouched and never be returned.  Last, `pbox cp`
# when the CLI has it.
. "$PBOX_SRCDIR/tests/integration/lib.sh"

pbox_test_init
pboxd_start
busybox_load || bail_out "cannot load the busybox image"
PY=python3

sandbox_create busybox || bail_out "cannot create a sandbox"
SB=$SANDBOX_ID
U=$PBOXD_STATE/sandboxes/$SB/upper
[ -d "$U" ] || bail_out "no upper directory at $U"

# ---------------------------------------------------------------- helpers

TOKEN=$(cat "$PBOX_TOKEN_FILE")
uri() { jq -rn --arg v "$1" '$v|@uri'; }
# raw_get URLPATH OUT: GET into a file (binary safe); sets API_STATUS
raw_get() {
        API_STATUS=$(curl -sS --noproxy '*' --max-time "$API_TIMEOUT" -o "$2" -w '%{http_code}' \
                -H "Authorization: Bearer $TOKEN" "$PBOX_URL$1")
        [ -n "$API_STATUS" ] || API_STATUS=000
}
# put_file SANDBOX PATH FILE [QUERY]: PUT FILE to PATH; API_STATUS/API_BODY
put_file() {
        api_call PUT "/v1/sandboxes/$1/files?path=$(uri "$2")${4:+&$4}" \
                -H 'Content-Type: application/octet-stream' --data-binary "@$3"
}
# get_file SANDBOX PATH OUT
get_file() { raw_get "/v1/sandboxes/$1/files?path=$(uri "$2")" "$3"; }
put_archive() {
        api_call PUT "/v1/sandboxes/$1/archive?path=$(uri "$2")${4:+&$4}" \
                -H 'Content-Type: application/x-tar' --data-binary "@$3"
}
get_archive() { raw_get "/v1/sandboxes/$1/archive?path=$(uri "$2")" "$3"; }
ls_dir() { api_call GET "/v1/sandboxes/$1/ls?path=$(uri "$2")"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# in_sb CMD...: run CMD in $SB, EXEC_OUT has its output
in_sb() { pbox_exec "$SB" "$@"; }

W=$TEST_TMP/w
mkdir -p "$W"

# Host sentinels: outside $TEST_TMP (a second absolute root for symlinks to
# aim at), with a marker nothing inside can know.
MARK=pbox-host-marker-$(_rand_hex 8)
SENT=/tmp/pbox-files-sentinel-$$
at_cleanup "rm -rf '$SENT'"
mkdir -p "$SENT/dir" "$SENT/racedir"
printf '%s\n' "$MARK" >"$SENT/secret"
printf '%s\n' "$MARK" >"$SENT/dir/secret"
printf '%s\n' "$MARK" >"$SENT/racedir/secret"
printf '%s\n' "$MARK" >"$TEST_TMP/secret"
snapshot() {
        find "$SENT" "$TEST_TMP/secret" /etc/passwd /etc/hostname -printf '%p %y %s %m %U:%G %T@\n' 2>/dev/null | sort
        find / /etc -maxdepth 1 -name '*pbox*' 2>/dev/null | sort
}
SNAP0=$(snapshot)
# no_marker FILE: the host marker is not in FILE
no_marker() { ! grep -qF "$MARK" "$1"; }

# ---------------------------------------------------------------- round trips

printf 'hello, sandbox\nline two\n' >"$W/text"
put_file "$SB" /tmp/text "$W/text"
check_eq "PUT a text file: 200" 200 "$API_STATUS"
check_eq "... the answer describes it" '/tmp/text 24 0644 true' \
        "$(json_get '"\(.path) \(.size) \(.mode) \(.created)"')"
in_sb cat /tmp/text
check_eq "... the sandbox sees its contents" "$(cat "$W/text")" "$EXEC_OUT"
get_file "$SB" /tmp/text "$W/text.out"
check_eq "GET it back: 200" 200 "$API_STATUS"
check_eq "... the same bytes" "$(sha "$W/text")" "$(sha "$W/text.out")"

head -c 3000000 /dev/urandom >"$W/bin"
printf '\000\377\000' >>"$W/bin"
put_file "$SB" /tmp/bin "$W/bin"
check_eq "PUT a 3 MB binary file: 200" 200 "$API_STATUS"
in_sb sha256sum /tmp/bin
check_eq "... sha256 inside the sandbox is the same" "$(sha "$W/bin")" "${EXEC_OUT%% *}"
get_file "$SB" /tmp/bin "$W/bin.out"
check_eq "GET the binary file: 200" 200 "$API_STATUS"
check_eq "... sha256 of the round trip is the same" "$(sha "$W/bin")" "$(sha "$W/bin.out")"

: >"$W/empty"
put_file "$SB" /tmp/empty "$W/empty"
check_eq "PUT an empty file: 200" 200 "$API_STATUS"
get_file "$SB" /tmp/empty "$W/empty.out"
check_eq "GET an empty file: 200, nothing" "200 0" "$API_STATUS $(wc -c <"$W/empty.out")"

printf 'new contents\n' >"$W/text2"
put_file "$SB" /tmp/text "$W/text2"
check_eq "PUT over an existing file replaces it (created: false)" "200 false" "$API_STATUS $(json_get .created)"
in_sb sh -c 'cat /tmp/text; ls -a /tmp | grep -c pbox-put || true'
check_eq "... new contents, no temporary file left" "new contents
0" "$EXEC_OUT"

# ---------------------------------------------------------------- modes and owners

put_file "$SB" /tmp/mode750 "$W/text" "mode=0750"
check_eq "PUT with mode=0750: 200" 200 "$API_STATUS"
in_sb stat -c '%a %u:%g' /tmp/mode750
check_eq "... mode 750, owned by sandbox root" "750 0:0" "$EXEC_OUT"
check_eq "... on the host: owned by uid_base, mode 750" "100000:100000 750" "$(stat -c '%u:%g %a' "$U/tmp/mode750")"
in_sb stat -c '%a' /tmp/text
check_eq "the default mode is 0644" "644" "$EXEC_OUT"
put_file "$SB" /tmp/suid "$W/text" "mode=4755"
check_eq "a setuid mode is refused (400)" 400 "$API_STATUS"
put_file "$SB" /tmp/sgid "$W/text" "mode=2755"
check_eq "a setgid mode is refused (400)" 400 "$API_STATUS"
put_file "$SB" /tmp/badmode "$W/text" "mode=rwx"
check_eq "a non-octal mode is refused (400)" 400 "$API_STATUS"
put_file "$SB" /tmp/owned "$W/text" "uid=1000&gid=2000&mode=0600"
check_eq "PUT with uid=1000 gid=2000: 200" 200 "$API_STATUS"
in_sb stat -c '%u:%g %a' /tmp/owned
check_eq "... owned by 1000:2000 inside" "1000:2000 600" "$EXEC_OUT"
check_eq "... 101000:102000 on the host" "101000:102000" "$(stat -c '%u:%g' "$U/tmp/owned")"
put_file "$SB" /tmp/bad-uid "$W/text" "uid=65536"
check_eq "a uid outside the mapped range is refused (400)" 400 "$API_STATUS"
check "... and nothing was written" test ! -e "$U/tmp/bad-uid"

# Files of other mapped ids are as reachable as for sandbox root.
in_sb sh -c 'echo private > /tmp/priv && chown 1234:1234 /tmp/priv && chmod 600 /tmp/priv &&
        mkdir -p /tmp/pdir && chown 1234:1234 /tmp/pdir && chmod 700 /tmp/pdir'
get_file "$SB" /tmp/priv "$W/priv"
check_eq "GET a 0600 file of uid 1234 inside: 200" "200 private" "$API_STATUS $(cat "$W/priv")"
put_file "$SB" /tmp/pdir/new "$W/text"
check_eq "PUT into a 0700 directory of uid 1234: 200" 200 "$API_STATUS"

# ---------------------------------------------------------------- listing

in_sb sh -c 'mkdir -p /l/sub && echo 12345 > /l/f && ln -s f /l/link && chmod 640 /l/f && mkfifo /l/fifo'
ls_dir "$SB" /l
check_eq "ls: 200" 200 "$API_STATUS"
check_eq "ls: names, sorted" "f fifo link sub" "$(json_get '[.entries[].name] | join(" ")')"
check_eq "ls: a file's type, size, mode, owner" "file 6 0640 0 0" \
        "$(json_get '.entries[] | select(.name == "f") | "\(.type) \(.size) \(.mode) \(.uid) \(.gid)"')"
check_eq "ls: types of dir, symlink (with target), fifo" "dir symlink:f other" \
        "$(json_get '[(.entries[] | select(.name == "sub") | .type),
                      (.entries[] | select(.name == "link") | "\(.type):\(.target)"),
                      (.entries[] | select(.name == "fifo") | .type)] | join(" ")')"
check_match "ls: mtime is RFC 3339" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' \
        "$(json_get '.entries[] | select(.name == "f") | .mtime')"
check_eq "ls: not truncated" false "$(json_get .truncated)"
ls_dir "$SB" /
check_match "ls of / lists the sandbox's root" '"bin"' "$API_BODY"

# ---------------------------------------------------------------- errors

get_file "$SB" /tmp/nonexistent "$W/x"
check_eq "GET a missing file: 404" 404 "$API_STATUS"
check_eq "... a JSON error not_found" not_found "$(jq -r .error.code "$W/x")"
get_file "$SB" /tmp "$W/x"
check_eq "GET a directory: 409" 409 "$API_STATUS"
get_file "$SB" /tmp/text/below "$W/x"
check_eq "GET below a file: 404" 404 "$API_STATUS"
ls_dir "$SB" /tmp/text
check_eq "ls of a file: 409" 409 "$API_STATUS"
ls_dir "$SB" /nonexistent
check_eq "ls of a missing directory: 404" 404 "$API_STATUS"
put_file "$SB" /nodir/sub/file "$W/text"
check_eq "PUT with a missing parent: 404" 404 "$API_STATUS"
put_file "$SB" /nodir/sub/file "$W/text" "mkdirs=true"
check_eq "... with mkdirs=true: 200" 200 "$API_STATUS"
in_sb cat /nodir/sub/file
check_eq "... the file is there" "$(cat "$W/text")" "$EXEC_OUT"
put_file "$SB" /tmp "$W/text"
check_eq "PUT over a directory: 409" 409 "$API_STATUS"
put_file "$SB" /tmp/text/below "$W/text"
check_eq "PUT below a file: 409" 409 "$API_STATUS"
put_file "$SB" /tmp/ "$W/text"
check_eq "PUT to a path ending in /: 400" 400 "$API_STATUS"
put_file "$SB" tmp/relative "$W/text"
check_eq "a relative path: 400" 400 "$API_STATUS"
api_call GET "/v1/sandboxes/$SB/files"
check_eq "no path: 400" 400 "$API_STATUS"
get_archive "$SB" /tmp/text "$W/x"
check_eq "archive GET of a file: 409" 409 "$API_STATUS"
get_file 0123456789abcdef01234567 /tmp/text "$W/x"
check_eq "an unknown sandbox: 404" 404 "$API_STATUS"
get_file "$SB" /l/fifo "$W/x"
check_eq "GET of a fifo: refused at once, never blocks (409)" 409 "$API_STATUS"
in_sb dd if=/dev/zero of=/tmp/sparse bs=1 count=1 seek=3000000000
get_file "$SB" /tmp/sparse "$W/x"
check_eq "GET of a 3 GB (sparse) file: 413" 413 "$API_STATUS"
in_sb rm /tmp/sparse

# ---------------------------------------------------------------- archives

in_sb sh -c '
        mkdir -p /src/a/b /src/empty /src/a/deep/er/est &&
        echo one > /src/a/b/file && echo two > /src/top && chmod 700 /src/top &&
        head -c 200000 /dev/urandom > /src/a/bin &&
        ln -s b/file /src/a/rel && ln -s /etc/passwd /src/abs && ln -s a /src/dirlink &&
        ln -s /nonexistent /src/dangling && mkfifo /src/fifo && ln /src/top /src/hardlink &&
        chown 7:8 /src/a/b/file'
get_archive "$SB" /src "$W/src.tar"
check_eq "archive GET of a tree: 200" 200 "$API_STATUS"
tar -tvf "$W/src.tar" >"$W/src.list" 2>&1
check_match "... symlinks are stored as symlinks" '^l.* abs -> /etc/passwd$' "$(cat "$W/src.list")"
check_match "... relative ones too" '^l.* a/rel -> b/file$' "$(cat "$W/src.list")"
check_match "... owners are the sandbox's ids" '^-.* 7/8 .* a/b/file$' "$(cat "$W/src.list")"
check_no_match "... the fifo is skipped" ' fifo$' "$(cat "$W/src.list")"
check_no_match "... no absolute or .. names" '( /|\.\./)[^ ]*$' "$(tar -tf "$W/src.tar")"
check "... nothing of /etc/passwd's contents was followed into it" sh -c "! tar -xOf '$W/src.tar' abs 2>/dev/null | grep -q root"
put_archive "$SB" /dst "$W/src.tar" "mkdirs=true"
check_eq "archive PUT of it into a new directory: 200" 200 "$API_STATUS"
check_eq "... counts: entries, skipped" "14 0" "$(json_get '"\(.entries) \(.skipped)"')"
in_sb sh -c 'cd /src && find . ! -name fifo | sort | while read -r f; do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")";
        elif [ -f "$f" ]; then echo "$f $(stat -c %a "$f") $(sha256sum < "$f")";
        else echo "$f $(stat -c %a "$f")"; fi; done'
SRC_TREE=$EXEC_OUT
in_sb sh -c 'cd /dst && find . | sort | while read -r f; do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")";
        elif [ -f "$f" ]; then echo "$f $(stat -c %a "$f") $(sha256sum < "$f")";
        else echo "$f $(stat -c %a "$f")"; fi; done'
check_eq "... the copy has the same names, modes, contents and symlinks" "$SRC_TREE" "$EXEC_OUT"
in_sb stat -c '%u:%g' /dst/a/b/file
check_eq "... owned by sandbox root (the archive's owners are not used)" "0:0" "$EXEC_OUT"
put_archive "$SB" /dst2 "$W/src.tar" "mkdirs=true&uid=33&gid=44"
in_sb stat -c '%u:%g' /dst2/a/b/file /dst2/abs /dst2/a
check_eq "archive PUT with uid=33 gid=44: everything made is theirs" "33:44
33:44
33:44" "$EXEC_OUT"
put_archive "$SB" /missing "$W/src.tar"
check_eq "archive PUT into a missing directory: 404" 404 "$API_STATUS"
printf 'not a tar archive at all, just text\n' >"$W/notar"
put_archive "$SB" /tmp "$W/notar"
check_eq "archive PUT of something that is not a tar: 400" 400 "$API_STATUS"
(cd "$W" && mkdir -p gz/d && echo gz > gz/d/f && tar -czf gz.tgz -C gz .)
put_archive "$SB" /gz "$W/gz.tgz" "mkdirs=true"
in_sb cat /gz/d/f
check_eq "a gzip-compressed tar is accepted" "200 gz" "$API_STATUS $EXEC_OUT"

# ---------------------------------------------------------------- escapes: reads

in_sb sh -c "
        echo sandbox-hostname > /etc/hostname
        ln -s /etc /tmp/e
        ln -s ../../../../../../etc /tmp/r
        ln -s /proc/1/root /tmp/p
        ln -s /proc/self/root /tmp/ps
        ln -s loop2 /tmp/loop1 && ln -s loop1 /tmp/loop2
        ln -s $SENT /tmp/sent
        ln -s ../../../../../../..$SENT/secret /tmp/sentrel
        ln -s $TEST_TMP/secret /tmp/ts
        ln -s / /tmp/root"
in_sb cat /etc/passwd
SB_PASSWD=$EXEC_OUT
get_file "$SB" /tmp/e/hostname "$W/r1"
check_eq "GET /tmp/e/hostname (e -> /etc): the sandbox's /etc/hostname" "200 sandbox-hostname" \
        "$API_STATUS $(cat "$W/r1")"
get_file "$SB" /tmp/r/passwd "$W/r2"
check_eq "GET /tmp/r/passwd (r -> ../../../../../../etc): the sandbox's passwd" "200 $SB_PASSWD" \
        "$API_STATUS $(cat "$W/r2")"
get_file "$SB" /tmp/root/etc/passwd "$W/r3"
check_eq "GET through a symlink to /: the sandbox's passwd" "200 $SB_PASSWD" "$API_STATUS $(cat "$W/r3")"
for p in /tmp/sent/secret /tmp/sentrel /tmp/ts "$SENT/secret" "/../../../..$SENT/secret" \
         "/tmp/../../..$TEST_TMP/secret" /tmp/sent/dir/secret; do
        get_file "$SB" "$p" "$W/r4"
        check_eq "GET $p (aimed at a host file): 404" 404 "$API_STATUS"
        check "... the host's marker is not in the answer" no_marker "$W/r4"
done
for p in /tmp/p/etc/passwd /tmp/ps/etc/passwd /proc/self/environ /proc/1/root/etc/passwd \
         /proc/self/root/etc/passwd /proc/1/environ /sys/kernel/hostname /dev/null; do
        get_file "$SB" "$p" "$W/r5"
        check_match "GET $p (proc, sys, dev, magic links): refused (4xx)" '^4[0-9][0-9]$' "$API_STATUS"
        check "... the host's marker is not in the answer" no_marker "$W/r5"
done
get_file "$SB" /tmp/loop1 "$W/r6"
check_eq "GET through a symlink loop: 400" 400 "$API_STATUS"
ls_dir "$SB" /tmp/sent
check_eq "ls through a symlink to a host directory: 404" 404 "$API_STATUS"
ls_dir "$SB" /tmp/e
in_sb ls -a /etc
check_eq "ls /tmp/e lists the sandbox's /etc" "$(printf '%s\n' "$EXEC_OUT" | grep -v '^\.\.\?$' | sort | tr '\n' ' ')" \
        "$(json_get '.entries[].name' | sort | tr '\n' ' ')"
get_archive "$SB" /tmp/e "$W/etc.tar"
check_eq "archive GET through /tmp/e: 200" 200 "$API_STATUS"
check_eq "... it is the sandbox's /etc" "$(json_get '.entries[].name' | sort | tr '\n' ' ')" \
        "$(tar -tf "$W/etc.tar" | sort | tr '\n' ' ')"
in_sb sh -c "mkdir -p /hl && ln -s $SENT /hl/host && ln -s ../../../../..$SENT/dir /hl/hostrel"
get_archive "$SB" /hl "$W/hl.tar"
check_eq "archive GET of a directory with symlinks to host directories: 200" 200 "$API_STATUS"
check "... the marker is not in it (links stored, never followed)" no_marker "$W/hl.tar"
check_eq "... only the two links" "hl-host hl-hostrel" \
        "$(tar -tvf "$W/hl.tar" | awk '{print substr($1,1,1) "-" $6}' | sed 's/^l-/hl-/' | sort | tr '\n' ' ' | sed 's/ $//')"

# ---------------------------------------------------------------- escapes: writes

printf 'pwned\n' >"$W/pwned"
put_file "$SB" /tmp/e/pbox-pwned "$W/pwned"
check_eq "PUT /tmp/e/pbox-pwned (e -> /etc): 200" 200 "$API_STATUS"
check "... not on the host's /etc" test ! -e /etc/pbox-pwned
in_sb cat /etc/pbox-pwned
check_eq "... but in the sandbox's /etc" pwned "$EXEC_OUT"
put_file "$SB" /tmp/r/pbox-pwned2 "$W/pwned"
check "PUT through ../../../../../../etc: not on the host" test ! -e /etc/pbox-pwned2
in_sb cat /etc/pbox-pwned2
check_eq "... in the sandbox's /etc" pwned "$EXEC_OUT"
put_file "$SB" /tmp/sent/pwned "$W/pwned"
check_eq "PUT through a symlink to a host directory: 404" 404 "$API_STATUS"
put_file "$SB" /tmp/sent/pwned "$W/pwned" "mkdirs=true"
check_eq "... with mkdirs=true too (a dangling link is not made a directory, as with mkdir -p)" 404 "$API_STATUS"
put_file "$SB" "$SENT/pwned" "$W/pwned" "mkdirs=true"
check_eq "PUT $SENT/pwned with mkdirs=true: 200" 200 "$API_STATUS"
get_file "$SB" /tmp/sent/pwned "$W/r7"
check_eq "... made inside the sandbox, where the link now leads" "200 pwned" "$API_STATUS $(cat "$W/r7")"
check "... not on the host" test ! -e "$SENT/pwned"
put_file "$SB" /tmp/ts "$W/pwned"
check_eq "PUT onto a symlink to a host file: 200" 200 "$API_STATUS"
in_sb sh -c 'test -f /tmp/ts && ! test -L /tmp/ts && cat /tmp/ts'
check_eq "... replaces the link with a file inside (never written through)" pwned "$EXEC_OUT"
put_file "$SB" /tmp/p/pwned "$W/pwned"
check_match "PUT through /proc/1/root: refused" '^4[0-9][0-9]$' "$API_STATUS"
put_file "$SB" /proc/self/pwned "$W/pwned"
check_match "PUT into /proc: refused or made in the sandbox's own empty /proc dir" '^(200|4[0-9][0-9])$' "$API_STATUS"
put_file "$SB" /tmp/loop1/x "$W/pwned"
check_eq "PUT through a symlink loop: 400" 400 "$API_STATUS"
check_eq "the host sentinels and /etc are unchanged" "$SNAP0" "$(snapshot)"

# ---------------------------------------------------------------- escapes: archives in

# mktar OUT JSON: a tar from a list of entries, made with python's tarfile.
mktar() {
        $PY - "$1" "$2" <<'EOF'
import io, json, sys, tarfile
out, spec = sys.argv[1], json.loads(sys.argv[2])
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for e in spec:
        ti = tarfile.TarInfo(e["name"])
        ti.mode = e.get("mode", 0o644)
        data = e.get("data", "").encode()
        kind = e.get("type", "file")
        if kind == "file":
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
            continue
        ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                   "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
        ti.linkname = e.get("target", "")
        ti.devmajor, ti.devminor = 1, 3
        t.addfile(ti)
EOF
}
in_sb mkdir -p /in /in/planted && in_sb ln -s "$SENT/dir" /in/planted/host && in_sb ln -s /etc /in/planted/etc
n=0
hostile() {
        # hostile DESC EXPECT(reject|contain) JSON
        n=$((n + 1))
        mktar "$W/h$n.tar" "$3" || bail_out "mktar failed"
        put_archive "$SB" /in "$W/h$n.tar"
        if [ "$2" = reject ]; then
                check_match "hostile archive, $1: rejected (4xx)" '^4[0-9][0-9]$' "$API_STATUS"
                check_match "... with a message naming the entry" "entry|archive" "$(json_get .error.message)"
        else
                check_eq "hostile archive, $1: contained (200)" 200 "$API_STATUS"
        fi
        check_eq "... host sentinels and /etc unchanged" "$SNAP0" "$(snapshot)"
}
hostile "../escape" reject '[{"name":"../escape","data":"x"}]'
hostile "a/../../escape" reject '[{"name":"a/../../escape","data":"x"}]'
hostile "absolute $SENT/abs" contain "[{\"name\":\"$SENT/abs\",\"data\":\"x\"}]"
in_sb cat "/in$SENT/abs"
check_eq "... the absolute name landed beneath the target directory" x "$EXEC_OUT"
hostile "symlink to $SENT, then a file through it" reject \
        "[{\"name\":\"lnk\",\"type\":\"symlink\",\"target\":\"$SENT\"},{\"name\":\"lnk/pwned\",\"data\":\"x\"}]"
hostile "symlink to /etc, then a file through it" reject \
        '[{"name":"lnk2","type":"symlink","target":"/etc"},{"name":"lnk2/pbox-pwned3","data":"x"}]'
in_sb test -e /etc/pbox-pwned3
check "... not even in the sandbox's /etc" test "$EXEC_RC" -ne 0
hostile "a file through a planted symlink to a host dir" reject '[{"name":"planted/host/pwned","data":"x"}]'
hostile "a file through a planted symlink to /etc" reject '[{"name":"planted/etc/pbox-pwned4","data":"x"}]'
hostile "a symlink replaced by a directory entry of its name" reject '[{"name":"planted/host","type":"dir"}]'
in_sb readlink /in/planted/host
check_eq "... the planted link is still a link" "$SENT/dir" "$EXEC_OUT"
hostile "hardlink to ../../etc/passwd" reject '[{"name":"hl","type":"hardlink","target":"../../etc/passwd"}]'
hostile "hardlink to /etc/passwd (absolute: beneath the target, absent)" reject \
        '[{"name":"hl2","type":"hardlink","target":"/etc/passwd"}]'
hostile "hardlink through a planted symlink" reject '[{"name":"hl3","type":"hardlink","target":"planted/host/secret"}]'
hostile "device node, fifo (skipped), setuid file (stripped)" contain \
        '[{"name":"dev","type":"chr"},{"name":"fifo","type":"fifo"},{"name":"suid","data":"x","mode":3565}]'
in_sb sh -c 'test -e /in/dev || test -e /in/fifo || echo none; stat -c %a /in/suid'
check_eq "... no device or fifo made, setuid/setgid stripped" "none
755" "$EXEC_OUT"
check_eq "... skipped counts them" 2 "$(json_get .skipped)"
hostile "a file named like a directory entry then a file below it (file over dir)" reject \
        '[{"name":"d2","type":"dir"},{"name":"d2","data":"x"}]'

# ---------------------------------------------------------------- escapes: a racing sandbox

# Inside: /race/d is, in turn, a directory, a symlink to /, a symlink to a host
# directory (absolute and by ..), over and over, until /race/stop appears.
mkdir -p "$SENT/racedir"
RACENAME=pbox-race-$(_rand_hex 6)
in_sb mkdir -p /race
RACE_SCRIPT="i=0; while [ ! -e /race/stop ] && [ \$i -lt 2000000 ]; do
        rm -rf /race/d; mkdir /race/d; echo inside > /race/d/secret
        rm -rf /race/d; ln -s / /race/d
        rm -f /race/d; ln -s $SENT/racedir /race/d
        rm -f /race/d; ln -s ../../../../../..$SENT/racedir /race/d
        i=\$((i+1)); done; echo \$i > /race/done"
api_json POST "/v1/sandboxes/$SB/exec" \
        "$(jq -n --arg s "$RACE_SCRIPT" --argjson t "$(tscale 300000)" '{argv: ["sh", "-c", $s], wait: false, timeout_ms: $t}')"
check_eq "the racing loop starts (async exec)" 202 "$API_STATUS"
printf 'race\n' >"$W/race"
i=0
put_ok=0
get_inside=0
leak=0
# The loop forks only curl: under software emulation (tests/vm) every
# jq, grep or cat costs 50-250 ms, and the racing sandbox takes half the CPU.
RACE_PUT=/v1/sandboxes/$SB/files?path=$(uri "/race/d/$RACENAME")
RACE_GET=/v1/sandboxes/$SB/files?path=$(uri /race/d/secret)
# Under emulation (PBOX_TEST_TIME_SCALE > 1) fewer rounds: each costs ~2 s there.
race_rounds=$((200 / ${PBOX_TEST_TIME_SCALE:-1}))
[ "$race_rounds" -ge 50 ] || race_rounds=50
while [ $i -lt "$race_rounds" ]; do
        api_call PUT "$RACE_PUT" -H 'Content-Type: application/octet-stream' --data-binary "@$W/race"
        [ "$API_STATUS" = 200 ] && put_ok=$((put_ok + 1))
        : >"$W/rg"
        raw_get "$RACE_GET" "$W/rg"
        rg_text=
        while IFS= read -r rg_line || [ -n "$rg_line" ]; do
                rg_text="$rg_text$rg_line
"
        done <"$W/rg"
        case $rg_text in *"$MARK"*) leak=$((leak + 1)) ;; esac
        [ "$API_STATUS" = 200 ] && [ "$rg_text" = "inside
" ] && get_inside=$((get_inside + 1))
        i=$((i + 1))
done
printf '# race: %s PUTs succeeded, %s GETs read the inside file\n' "$put_ok" "$get_inside"
printf 'x' >"$W/stop"
put_file "$SB" /race/stop "$W/stop"
race_done() { get_file "$SB" /race/done "$W/rd" && [ "$API_STATUS" = 200 ]; }
wait_until "$(tscale 20)" race_done
printf '# race loop iterations: %s\n' "$(cat "$W/rd")"
check_eq "$race_rounds GETs raced against the swapping loop: the host marker never came back" 0 "$leak"
check "... and the race was real (some requests went through the directory)" test "$((put_ok + get_inside))" -gt 0
check "no file was written into the host's racedir" test ! -e "$SENT/racedir/$RACENAME"
check "... nor into the host's /" test ! -e "/$RACENAME"
check_eq "the host sentinels and /etc are unchanged after the race" "$SNAP0" "$(snapshot)"
in_sb sh -c "test -e /$RACENAME || test -e /race/d/$RACENAME || ls $SENT/racedir/$RACENAME" 
check "... the PUTs landed inside the sandbox (its / or its own $SENT)" test "$EXEC_RC" -eq 0 -o "$put_ok" -eq 0

# ---------------------------------------------------------------- a stopped sandbox

sandbox_create busybox || bail_out "cannot create a second sandbox"
SB2=$SANDBOX_ID
api_call POST "/v1/sandboxes/$SB2/stop"
check_eq "stop the second sandbox" stopped "$(json_get .state)"
put_file "$SB2" /tmp/while-stopped "$W/text"
check_eq "PUT into a stopped sandbox: 200" 200 "$API_STATUS"
get_file "$SB2" /tmp/while-stopped "$W/ws"
check_eq "GET from a stopped sandbox: the same bytes" "200 $(sha "$W/text")" "$API_STATUS $(sha "$W/ws")"
ls_dir "$SB2" /tmp
check_eq "ls in a stopped sandbox" "200 while-stopped" "$API_STATUS $(json_get '[.entries[].name] | join(" ")')"
get_archive "$SB2" /etc "$W/s2.tar"
check_eq "archive GET from a stopped sandbox: 200" 200 "$API_STATUS"
api_call DELETE "/v1/sandboxes/$SB2"
check_eq "remove it" 200 "$API_STATUS"
get_file "$SB2" /tmp/while-stopped "$W/ws"
check_eq "GET from a removed sandbox: 404" 404 "$API_STATUS"

# ---------------------------------------------------------------- pbox cp (once the CLI has it)

if pbox_cli cp --help >/dev/null 2>&1; then
        printf 'cp text\n' >"$W/cp1"
        check "pbox cp LOCAL ID:PATH" pbox_cli cp "$W/cp1" "$SB:/tmp/cp1"
        in_sb cat /tmp/cp1
        check_eq "... the file is in the sandbox" "cp text" "$EXEC_OUT"
        check "pbox cp LOCAL ID:DIR/ puts it into the directory" pbox_cli cp "$W/bin" "$SB:/tmp/"
        in_sb sha256sum /tmp/bin
        check_eq "... same bytes" "$(sha "$W/bin")" "${EXEC_OUT%% *}"
        rm -f "$W/cp1.back"
        check "pbox cp ID:PATH LOCAL" pbox_cli cp "$SB:/tmp/bin" "$W/cp1.back"
        check_eq "... same bytes back" "$(sha "$W/bin")" "$(sha "$W/cp1.back")"
        mkdir -p "$W/cpdir"
        check "pbox cp ID:PATH LOCALDIR puts it into the directory" pbox_cli cp "$SB:/tmp/text" "$W/cpdir"
        check_eq "... as LOCALDIR/text" "new contents" "$(cat "$W/cpdir/text")"
        check "pbox cp ID:PATH - writes to standard output" sh -c "'$PBOX' cp '$SB:/tmp/text' - > '$W/cp-stdout'"
        check_eq "... the contents" "new contents" "$(cat "$W/cp-stdout")"
        mkdir -p "$W/tree/sub"
        printf 'a\n' >"$W/tree/a"
        printf 'b\n' >"$W/tree/sub/b"
        chmod 750 "$W/tree/a"
        ln -s sub/b "$W/tree/lnk"
        check "pbox cp LOCALDIR ID:NEWDIR (a directory, recursively)" pbox_cli cp "$W/tree" "$SB:/cptree"
        in_sb sh -c 'cat /cptree/a /cptree/sub/b; readlink /cptree/lnk; stat -c %a /cptree/a'
        check_eq "... its files, symlinks and modes" "a
b
sub/b
750" "$EXEC_OUT"
        check "pbox cp LOCALDIR ID:EXISTINGDIR copies it into it" pbox_cli cp "$W/tree" "$SB:/cptree"
        in_sb cat /cptree/tree/sub/b
        check_eq "... as EXISTINGDIR/tree" b "$EXEC_OUT"
        check "pbox cp ID:DIR LOCAL (new local directory)" pbox_cli cp "$SB:/src" "$W/srcback"
        check_eq "... files and symlinks" "one b/file /etc/passwd" \
                "$(cat "$W/srcback/a/b/file") $(readlink "$W/srcback/a/rel") $(readlink "$W/srcback/abs")"
        check "... the symlink to /etc/passwd was not followed on the way" test -L "$W/srcback/abs"
        check "pbox cp ID:DIR LOCALDIR (existing) copies it into it" pbox_cli cp "$SB:/hl" "$W/cpdir"
        check_eq "... links to host paths arrive as links, nothing written through them" "$SENT" \
                "$(readlink "$W/cpdir/hl/host")"
        check_eq "... host sentinels unchanged" "$SNAP0" "$(snapshot)"
        pbox_cli cp "$SB:/nonexistent" "$W/none" 2>"$W/cp.err"
        check_eq "pbox cp of a missing file: exit 1" 1 "$?"
        check_match "... with a message" '^pbox: ' "$(cat "$W/cp.err")"
        pbox_cli cp "$W/cp1" "$W/cp2" 2>/dev/null
        check_eq "pbox cp with no ID:PATH side: exit 1" 1 "$?"
else
        skip_test "pbox cp is not wired into the CLI yet"
fi

# ---------------------------------------------------------------- limits (413)

pboxd_restart "max_image_bytes = 2000000"
head -c 2500000 /dev/urandom >"$W/big"
put_file "$SB" /tmp/big "$W/big"
check_eq "PUT of a file above max_image_bytes: 413" 413 "$API_STATUS"
in_sb sh -c 'head -c 2500000 /dev/zero > /big/f 2>/dev/null || { mkdir -p /big && head -c 2500000 /dev/zero > /big/f; }'
get_file "$SB" /big/f "$W/x"
check_eq "GET of a file above max_image_bytes: 413" 413 "$API_STATUS"
get_archive "$SB" /big "$W/x"
check_eq "archive GET of a directory above max_image_bytes: 413" 413 "$API_STATUS"
$PY - "$W/bomb.tar.gz" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    ti = tarfile.TarInfo("zeros"); ti.size = 3000000
    t.addfile(ti, io.BytesIO(bytes(3000000)))
EOF
put_archive "$SB" /bomb "$W/bomb.tar.gz" "mkdirs=true"
check_eq "archive PUT whose files are above max_image_bytes (a small gzip): 413" 413 "$API_STATUS"

check_eq "the host sentinels and /etc are unchanged at the end" "$SNAP0" "$(snapshot)"
api_call DELETE "/v1/sandboxes/$SB?force=true"
check_eq "remove the sandbox" 200 "$API_STATUS"
pboxd_stop
check_no_leaks "nothing left behind"
done_testing
