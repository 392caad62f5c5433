# debs.sh — shell helpers for rootfs recipes: find, verify and unpack Debian
# packages without network beyond apt.  Sourced (POSIX sh) by recipe build
# scripts:  . "$(dirname "$0")/../lib/debs.sh"
#
#   recipe_die MSG...                   print "RECIPE: MSG" on stderr, exit 1
#   recipe_log MSG...                   print "RECIPE: MSG" on stderr
#   recipe_deb_version PKG              version apt would use (candidate, else installed)
#   recipe_fetch_deb PKG DIR            print the path of PKG's .deb, copied into DIR
#                                       from $PBOX_DEB_DIR, apt's cache, or apt-get download
#   recipe_unpack_pkg PKG DIR           unpack PKG's files into DIR (dpkg-deb -x); without a
#                                       .deb, copy the installed files (dpkg -L) instead
#   recipe_epoch_of FILE                mtime of FILE in seconds (for SOURCE_DATE_EPOCH)
#
# RECIPE (the name used in messages) defaults to the recipe directory's name.

: "${RECIPE:=$(basename "$(dirname "$0")")}"

recipe_log() {
        printf '%s: %s\n' "$RECIPE" "$*" >&2
}

recipe_die() {
        recipe_log "$@"
        exit 1
}

recipe_deb_arch() {
        dpkg --print-architecture
}

recipe_deb_version() {
        _v=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        if [ -z "$_v" ] || [ "$_v" = "(none)" ]; then
                _v=$(dpkg-query -W -f '${Version}' "$1" 2>/dev/null) || _v=
        fi
        [ -n "$_v" ] || return 1
        printf '%s\n' "$_v"
}

# The SHA256 apt knows for PKG=VERSION, empty when apt has no record of it.
recipe_deb_sha256() {
        apt-cache show --no-all-versions "$1=$2" 2>/dev/null | sed -n 's/^SHA256: *//p' | head -n 1
}

# recipe_fetch_deb PKG DIR: print the path of a verified .deb of PKG in DIR.
recipe_fetch_deb() {
        _pkg=$1 _dir=$2
        _ver=$(recipe_deb_version "$_pkg") || { recipe_log "apt knows no version of $_pkg"; return 1; }
        _arch=$(recipe_deb_arch)
        # apt's file name: the epoch colon is written %3a.
        _file="${_pkg}_$(printf '%s' "$_ver" | sed 's/:/%3a/g')_${_arch}.deb"
        _sum=$(recipe_deb_sha256 "$_pkg" "$_ver")
        for _cand in ${PBOX_DEB_DIR:+"$PBOX_DEB_DIR/$_file"} "/var/cache/apt/archives/$_file"; do
                [ -f "$_cand" ] || continue
                if [ -n "$_sum" ] && [ "$(sha256sum < "$_cand" | cut -d' ' -f1)" != "$_sum" ]; then
                        recipe_log "ignoring $_cand: sha256 differs from apt's record"
                        continue
                fi
                cp "$_cand" "$_dir/$_file"
                printf '%s\n' "$_dir/$_file"
                return 0
        done
        # apt-get download verifies the file against the signed index itself.
        # The _apt user must be able to write the directory, or apt warns.
        chmod 0755 "$_dir"
        if getent passwd _apt >/dev/null 2>&1; then
                chown _apt "$_dir" 2>/dev/null || true
        fi
        if (cd "$_dir" && apt-get -q=2 download "$_pkg=$_ver") >&2; then
                _got=$(find "$_dir" -maxdepth 1 -name "${_pkg}_*.deb" | head -n 1)
                if [ -n "$_got" ]; then
                        printf '%s\n' "$_got"
                        return 0
                fi
        fi
        recipe_log "could not get $_pkg $_ver (not in apt's cache, apt-get download failed)"
        return 1
}

# recipe_unpack_pkg PKG DIR [WORKDIR]
recipe_unpack_pkg() {
        _pkg=$1 _dest=$2 _work=${3:-$2/..}
        if _deb=$(recipe_fetch_deb "$_pkg" "$_work"); then
                recipe_log "unpacking $(basename "$_deb")"
                dpkg-deb -x "$_deb" "$_dest" || return 1
                return 0
        fi
        if dpkg-query -W -f '${Status}' "$_pkg" 2>/dev/null | grep -q 'ok installed'; then
                recipe_log "no .deb of $_pkg: copying the installed files (the result now depends on this host)"
                dpkg -L "$_pkg" | while IFS= read -r _p; do
                        [ "$_p" = "/." ] && continue
                        # Directories are made, not copied (on a merged-/usr host
                        # /bin is a symlink to usr/bin; the package means a directory).
                        if [ -d "$_p" ]; then
                                mkdir -p "$_dest$_p"
                        elif [ -e "$_p" ] || [ -L "$_p" ]; then
                                mkdir -p "$_dest$(dirname "$_p")"
                                cp -a "$_p" "$_dest$_p"
                        fi
                done
                return 0
        fi
        recipe_log "$_pkg is neither downloadable nor installed"
        return 1
}

recipe_epoch_of() {
        stat -c %Y "$1"
}
