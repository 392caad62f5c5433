# shellcheck shell=sh disable=SC2016
# debian.sh — shell helpers for recipes whose image is a Debian 12 (bookworm)
# system: a debootstrap --variant=minbase tree (cached between recipes when
# $PBOX_RECIPE_CACHE names a directory), the recipe's packages installed by
# apt inside it with security updates, trimmed (no apt lists or caches, no
# docs but copyright files, no man pages or translations, no device nodes,
# no set-id bits) and packed by ociarchive.py with the owners it has.
#
# Sourced (POSIX sh) after debs.sh by a recipe that sets, then calls
# debian_recipe "$@":
#
#   DEBIAN_PACKAGES="python3"       packages on top of minbase (may be empty)
#   DEBIAN_CMD='["/usr/bin/python3"]'       config Cmd (JSON)
#   DEBIAN_VERSION_OF=python3       package whose version labels the image
#   DEBIAN_SMOKE='python3 -c "print(1+1)"'  sh command run in the finished
#                                   tree (chroot) before packing; must exit 0
#   recipe_customize ROOT           optional shell function, called after the
#                                   install and before the trim
#
# Functions usable on their own (all die on failure; DEBIAN_WORK must name a
# scratch directory for logs, debian_recipe makes one):
#   debian_mirrors                  set DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR
#   debian_base ROOT                make ROOT a configured minbase tree
#   debian_chroot ROOT CMD...       run CMD in ROOT (private mount namespace
#                                   with /proc, a small /dev, devpts)
#   debian_apt ROOT PKG...          apt-get update, upgrade, install PKG...
#   debian_epoch ROOT               Date of the newest InRelease in ROOT (s)
#   debian_trim ROOT [keep-lists]   the clean-up before packing
#
# Knobs (environment): PBOX_RECIPE_CACHE (directory for the minbase tarball,
# shared by recipes and runs; unset: no cache), PBOX_RECIPE_CACHE_MAX_AGE
# (days, default 7), PBOX_RECIPE_TMPFS (0: scratch tree under $TMPDIR on
# disk; 1: on a tmpfs; default: a tmpfs when 4 GiB of memory are available),
# PBOX_RECIPE_TMPFS_SIZE (3g), PBOX_RECIPE_GZIP_LEVEL (6),
# PBOX_DEBIAN_MIRROR / PBOX_DEBIAN_SECURITY_MIRROR
# (default: what apt on this host uses for bookworm, else deb.debian.org;
# the security one may be "none"), SOURCE_DATE_EPOCH (default: debian_epoch).
#
# Needs root, debootstrap, unshare (util-linux), chroot, python3; zstd for a
# compressed cache (optional).

DEBIAN_SUITE=bookworm
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEBIAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
: "${DEBIAN_PACKAGES:=}"
: "${DEBIAN_CMD:=[\"/bin/bash\"]}"
: "${DEBIAN_VERSION_OF:=base-files}"
: "${DEBIAN_SMOKE:=true}"

# A mirror URI goes into sources files and command lines: plain http(s) only.
_debian_valid_uri() {
        case $1 in
        http://?* | https://?*) ;;
        *) return 1 ;;
        esac
        case $1 in
        *[!A-Za-z0-9.:/_~%+@=-]*) return 1 ;;
        esac
        return 0
}

# The repository URI apt on this host uses for suite $1 ("deb" lines), or
# failing that for a repository with label $2.  Empty when none.
_debian_host_repo() {
        apt-get indextargets --format '$(TARGET_OF) $(RELEASE) $(LABEL) $(REPO_URI)' 2>/dev/null |
                awk -v suite="$1" -v label="$2" '
                        $1 != "deb" { next }
                        $2 == suite && exact == "" { exact = $NF }
                        $3 == label && bylabel == "" { bylabel = $NF }
                        END { if (exact != "") print exact; else if (bylabel != "") print bylabel }' |
                sed 's|/*$||'
}

debian_mirrors() {
        DEBIAN_MIRROR=${PBOX_DEBIAN_MIRROR:-$(_debian_host_repo "$DEBIAN_SUITE" Debian)}
        : "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
        DEBIAN_SECURITY_MIRROR=${PBOX_DEBIAN_SECURITY_MIRROR:-$(_debian_host_repo "$DEBIAN_SUITE-security" Debian-Security)}
        : "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
        DEBIAN_MIRROR=${DEBIAN_MIRROR%/}
        DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR%/}
        _debian_valid_uri "$DEBIAN_MIRROR" || recipe_die "refusing mirror '$DEBIAN_MIRROR'"
        [ "$DEBIAN_SECURITY_MIRROR" = none ] || _debian_valid_uri "$DEBIAN_SECURITY_MIRROR" ||
                recipe_die "refusing security mirror '$DEBIAN_SECURITY_MIRROR'"
}

# debian_chroot ROOT CMD...: CMD as root in ROOT, in a mount namespace of its
# own (nothing it mounts outlives it or is seen by the host): /proc, a tmpfs
# /dev with null zero full random urandom bound from the host, devpts, shm.
debian_chroot() {
        _dc_root=$1
        shift
        unshare --mount --propagation private -- /bin/sh -eu -c '
                r=$1
                shift
                mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
                mount -t tmpfs -o nosuid,noexec,mode=0755,size=1m tmpfs "$r/dev"
                for d in null zero full random urandom; do
                        : >"$r/dev/$d"
                        mount --bind "/dev/$d" "$r/dev/$d"
                done
                mkdir "$r/dev/pts" "$r/dev/shm"
                mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
                mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m tmpfs "$r/dev/shm"
                ln -s pts/ptmx "$r/dev/ptmx"
                ln -s /proc/self/fd "$r/dev/fd"
                exec chroot "$r" /usr/bin/env -i PATH="'"$DEBIAN_PATH"'" HOME=/root \
                        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
                        ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH} "$@"
        ' debian-chroot "$_dc_root" "$@"
}

# _debian_logged LOG CMD...: run CMD with its output in LOG; on failure
# print the end of LOG and fail.
_debian_logged() {
        _dl_log=$1
        shift
        "$@" >"$_dl_log" 2>&1 && return 0
        _dl_rc=$?
        recipe_log "$1 exited with status $_dl_rc; the end of its output:"
        tail -n 40 "$_dl_log" | sed 's/^/    /' >&2
        return "$_dl_rc"
}

# What the minbase tree is configured with before it is cached.
_debian_configure_base() {
        _cb_root=$1
        # Packages come from the suite, its updates and its security updates.
        rm -f "$_cb_root/etc/apt/sources.list"
        {
                printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n' \
                        "$DEBIAN_MIRROR" "$DEBIAN_SUITE" "$DEBIAN_SUITE" "$DEBIAN_KEYRING"
                if [ "$DEBIAN_SECURITY_MIRROR" != none ]; then
                        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
                                "$DEBIAN_SECURITY_MIRROR" "$DEBIAN_SUITE" "$DEBIAN_KEYRING"
                fi
        } >"$_cb_root/etc/apt/sources.list.d/debian.sources"
        chmod 0644 "$_cb_root/etc/apt/sources.list.d/debian.sources"
        # No translations of the indices; no recommends by default.
        cat >"$_cb_root/etc/apt/apt.conf.d/90pbox" <<'EOF'
// pbox rootfs-recipes: small images
Acquire::Languages "none";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
        # Later package installs (in the recipe or by whoever derives an image
        # from it) leave out docs, man pages and translations, as this tree
        # has them removed.
        cat >"$_cb_root/etc/dpkg/dpkg.cfg.d/90pbox-slim" <<'EOF'
# pbox rootfs-recipes: no documentation but copyright files, no manuals or
# translations (remove this file before installing packages to get them).
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
        chmod 0644 "$_cb_root/etc/apt/apt.conf.d/90pbox" "$_cb_root/etc/dpkg/dpkg.cfg.d/90pbox-slim"
        # Host facts debootstrap copied in.
        rm -f "$_cb_root/etc/hostname" "$_cb_root/etc/resolv.conf"
        # pbox provides /dev; debootstrap made device nodes there.
        find "$_cb_root/dev" -mindepth 1 -delete
        # Updates and security updates now, so that each recipe using the
        # cached tree has little to upgrade.
        debian_apt "$_cb_root"
        # The indices stay in the cached tree: apt-get update in a recipe
        # then only checks that they are current.
        debian_trim "$_cb_root" keep-lists
}

# debian_trim_docs ROOT: what dpkg's path-exclude would have left out.
debian_trim_docs() {
        find "$1/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
        find "$1/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
        for _td in man info locale lintian; do
                [ -d "$1/usr/share/$_td" ] && find "$1/usr/share/$_td" -mindepth 1 -delete
        done
        return 0
}

_debian_cache_key() {
        {
                printf 'suite %s arch %s\nmirror %s\nsecurity %s\n' "$DEBIAN_SUITE" "$(recipe_deb_arch)" \
                        "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR"
                debootstrap --version 2>/dev/null
                cat "$_debian_lib"
        } | sha256sum | cut -c1-16
}

# _debian_debootstrap ROOT: a fresh configured minbase tree in ROOT.
_debian_debootstrap() {
        _db_root=$1
        [ -f "$DEBIAN_KEYRING" ] || recipe_die "$DEBIAN_KEYRING missing (apt-get install debian-archive-keyring)"
        recipe_log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR"
        mkdir -p "$_db_root"
        # Its own mount namespace: the /proc and /sys it mounts in the target
        # go away with it, even when it is killed.
        _debian_logged "$DEBIAN_WORK/debootstrap.log" \
                unshare --mount --propagation private -- \
                debootstrap --variant=minbase --merged-usr --components=main \
                --arch="$(recipe_deb_arch)" --keyring="$DEBIAN_KEYRING" \
                "$DEBIAN_SUITE" "$_db_root" "$DEBIAN_MIRROR" ||
                recipe_die "debootstrap failed (log above)"
        _debian_configure_base "$_db_root"
}

# debian_base ROOT: ROOT (absent or empty) becomes a configured minbase tree,
# from the cache when there is a fresh one for this configuration.
debian_base() {
        _b_root=$1
        if [ -z "${PBOX_RECIPE_CACHE:-}" ]; then
                _debian_debootstrap "$_b_root"
                return 0
        fi
        mkdir -p "$PBOX_RECIPE_CACHE" || recipe_die "cannot make $PBOX_RECIPE_CACHE"
        _b_key=$(_debian_cache_key)
        _b_tar=$PBOX_RECIPE_CACHE/debian-base-$DEBIAN_SUITE-$(recipe_deb_arch).tar
        if command -v zstd >/dev/null 2>&1; then
                _b_tar=$_b_tar.zst
                _b_z="zstd -q -T0 -3"
                _b_unz="zstd -q -dc"
        else
                _b_z="cat"
                _b_unz="cat"
        fi
        # One builder at a time; the others wait and use its tarball.
        (
                flock -w 900 9 || recipe_die "timeout waiting for the lock of $_b_tar"
                if [ -s "$_b_tar" ] && [ "$(cat "$_b_tar.key" 2>/dev/null)" = "$_b_key" ] &&
                        [ -z "$(find "$_b_tar" -mtime "+${PBOX_RECIPE_CACHE_MAX_AGE:-7}")" ]; then
                        exit 0
                fi
                rm -f "$_b_tar" "$_b_tar.key"
                _debian_debootstrap "$DEBIAN_WORK/base"
                recipe_log "caching the minbase tree in $_b_tar"
                tar --numeric-owner --sort=name -C "$DEBIAN_WORK/base" -cf - . | $_b_z >"$_b_tar.tmp" ||
                        { rm -f "$_b_tar.tmp"; recipe_die "cannot write $_b_tar"; }
                mv "$_b_tar.tmp" "$_b_tar"
                printf '%s\n' "$_b_key" >"$_b_tar.key"
                rm -rf --one-file-system "$DEBIAN_WORK/base"
        ) 9>"$PBOX_RECIPE_CACHE/.debian-base.lock" || exit 1
        recipe_log "minbase from $_b_tar"
        mkdir -p "$_b_root"
        $_b_unz "$_b_tar" | tar --numeric-owner --same-owner -xpf - -C "$_b_root" ||
                recipe_die "cannot unpack $_b_tar"
}

# debian_apt ROOT PKG...: current indices, upgrade (security updates), install.
debian_apt() {
        _a_root=$1
        shift
        _a_opts="-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
        recipe_log "apt-get update, upgrade${1:+, install $*}"
        # Daemons a package may ship are never started in the build chroot.
        printf '#!/bin/sh\nexit 101\n' >"$_a_root/usr/sbin/policy-rc.d"
        chmod 0755 "$_a_root/usr/sbin/policy-rc.d"
        # apt in the chroot resolves the mirror as this host does.
        cat /etc/resolv.conf >"$_a_root/etc/resolv.conf" 2>/dev/null || : >"$_a_root/etc/resolv.conf"
        cat /etc/hosts >"$_a_root/etc/hosts" 2>/dev/null || : >"$_a_root/etc/hosts"
        # shellcheck disable=SC2086  # option words
        _debian_logged "$DEBIAN_WORK/apt.log" debian_chroot "$_a_root" /bin/sh -eu -c '
                apt-get -q --error-on=any update
                apt-get '"$_a_opts"' upgrade
                if [ $# -gt 0 ]; then apt-get '"$_a_opts"' install "$@"; fi
        ' apt "$@" || recipe_die "apt-get failed (log above)"
        rm -f "$_a_root/etc/resolv.conf" "$_a_root/etc/hosts" "$_a_root/usr/sbin/policy-rc.d"
}

# debian_epoch ROOT: the newest Date of the InRelease files apt fetched.
debian_epoch() {
        _e_max=0
        for _e_f in "$1"/var/lib/apt/lists/*InRelease; do
                [ -f "$_e_f" ] || continue
                _e_d=$(sed -n 's/^Date: *//p' "$_e_f" | head -n 1)
                [ -n "$_e_d" ] || continue
                _e_s=$(date -u -d "$_e_d" +%s 2>/dev/null) || continue
                [ "$_e_s" -gt "$_e_max" ] && _e_max=$_e_s
        done
        [ "$_e_max" -gt 0 ] || return 1
        printf '%s\n' "$_e_max"
}

# debian_trim ROOT [keep-lists]: what an image does not need and what must
# not be in it (keep-lists: but apt's indices, for the cached tree).
debian_trim() {
        _t_root=$1
        rm -f "$_t_root/usr/sbin/policy-rc.d"
        if [ "${2:-}" != keep-lists ]; then
                find "$_t_root/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -type d -delete
        fi
        find "$_t_root/var/cache/apt" -mindepth 1 \
                ! -name partial ! -path '*/partial/*' ! -name archives -delete 2>/dev/null || true
        find "$_t_root/var/cache/apt" "$_t_root/var/lib/apt/lists" -path '*/partial/*' -delete 2>/dev/null || true
        rm -f "$_t_root"/var/cache/debconf/*-old "$_t_root"/var/lib/dpkg/*-old \
                "$_t_root/var/cache/ldconfig/aux-cache" "$_t_root/etc/hostname" "$_t_root/etc/resolv.conf"
        find "$_t_root/var/log" -type f -delete
        for _t_d in dev proc sys tmp var/tmp run; do
                [ -d "$_t_root/$_t_d" ] && find "$_t_root/$_t_d" -mindepth 1 -delete
        done
        find "$_t_root/root" -mindepth 1 -name '.*_history' -delete
        [ -f "$_t_root/etc/machine-id" ] && : >"$_t_root/etc/machine-id"
        rm -f "$_t_root/var/lib/dbus/machine-id"
        debian_trim_docs "$_t_root"
        # No set-id programs: nothing in a sandbox may gain privileges.
        find "$_t_root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
        # pbox gives sandboxes no /etc/hosts; programs resolving localhost want one.
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$_t_root/etc/hosts"
        chmod 0644 "$_t_root/etc/hosts"
        chmod 1777 "$_t_root/tmp" "$_t_root/var/tmp"
}

# PBOX_RECIPE_TMPFS: 0 never, 1 always, else (auto) when 4 GiB are free.
_debian_want_tmpfs() {
        case ${PBOX_RECIPE_TMPFS:-auto} in
        0 | no | false) return 1 ;;
        1 | yes | true) return 0 ;;
        esac
        _wt_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null)
        [ "${_wt_kb:-0}" -ge 4194304 ]
}

_debian_pkg_version() {
        dpkg-query --admindir="$1/var/lib/dpkg" -W -f '${Version}' "$2" 2>/dev/null
}

# debian_recipe OUT.tar: the whole build of image $RECIPE:latest.
debian_recipe() {
        [ $# -eq 1 ] || { echo "usage: $0 OUT.tar" >&2; exit 2; }
        case $1 in
        /*) _r_out=$1 ;;
        *) _r_out=$(pwd)/$1 ;;
        esac
        [ -d "$(dirname "$_r_out")" ] || recipe_die "$(dirname "$_r_out"): no such directory"
        [ "$(id -u)" -eq 0 ] || recipe_die "must run as root (debootstrap, chroot)"
        for _r_tool in debootstrap unshare chroot dpkg-query python3; do
                command -v "$_r_tool" >/dev/null 2>&1 || recipe_die "$_r_tool is not installed"
        done
        # shellcheck disable=SC2154  # the recipe sets $here, its directory
        _debian_lib=$here/../lib/debian.sh
        # The scratch tree lives on a tmpfs of its own (creating tens of
        # thousands of small files is several times faster there than on
        # most disks), mounted in a private mount namespace, so that it goes
        # away with the build however the build ends.
        if [ -z "${_DEBIAN_NS:-}" ] && _debian_want_tmpfs; then
                _DEBIAN_NS=1
                export _DEBIAN_NS
                exec unshare --mount --propagation private -- "$0" "$@"
        fi
        _r_start=$(date +%s)

        umask 022
        DEBIAN_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pbox-recipe-$RECIPE.XXXXXX")
        # shellcheck disable=SC2064  # the path is fixed now
        trap "umount '$DEBIAN_WORK' 2>/dev/null || :; rm -rf --one-file-system '$DEBIAN_WORK'" EXIT
        trap 'exit 130' INT TERM HUP
        if [ "${_DEBIAN_NS:-}" = 1 ] &&
                ! mount -t tmpfs -o "size=${PBOX_RECIPE_TMPFS_SIZE:-3g},mode=0755" pbox-recipe "$DEBIAN_WORK"; then
                recipe_log "no tmpfs for the scratch tree: building in $DEBIAN_WORK"
        fi
        chmod 0755 "$DEBIAN_WORK"

        debian_mirrors
        _r_root=$DEBIAN_WORK/rootfs
        debian_base "$_r_root"
        # shellcheck disable=SC2086  # a list of package names
        debian_apt "$_r_root" $DEBIAN_PACKAGES

        if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
                SOURCE_DATE_EPOCH=$(debian_epoch "$_r_root") || recipe_die "no InRelease Date to take SOURCE_DATE_EPOCH from"
        fi
        export SOURCE_DATE_EPOCH

        if command -v recipe_customize >/dev/null 2>&1; then
                recipe_customize "$_r_root"
        fi
        _r_version=$(_debian_pkg_version "$_r_root" "$DEBIAN_VERSION_OF") ||
                recipe_die "$DEBIAN_VERSION_OF is not installed in the image"
        _r_debver=$(cat "$_r_root/etc/debian_version")
        debian_trim "$_r_root"

        recipe_log "smoke test: $DEBIAN_SMOKE"
        : >"$DEBIAN_WORK/smoke.stamp"
        _debian_logged "$DEBIAN_WORK/smoke.log" debian_chroot "$_r_root" /bin/sh -c "cd /tmp && $DEBIAN_SMOKE" ||
                recipe_die "the smoke test failed in the built tree"
        # Whatever the smoke test left behind (in /tmp, /root, byte code).
        find "$_r_root/tmp" -mindepth 1 -delete
        find "$_r_root" -xdev -newer "$DEBIAN_WORK/smoke.stamp" \( -type f -o -type l \) \
                \( -path "$_r_root/root/*" -o -name '*.pyc' \) -delete

        recipe_log "packing $RECIPE:latest (Debian $_r_debver, $DEBIAN_VERSION_OF $_r_version, $(du -sh "$_r_root" | cut -f1))"
        python3 "$here/../lib/ociarchive.py" \
                --rootfs "$_r_root" --output "$_r_out" --ref "$RECIPE:latest" \
                --keep-owners --compress-level "${PBOX_RECIPE_GZIP_LEVEL:-6}" \
                --env "PATH=$DEBIAN_PATH" --env LANG=C.UTF-8 \
                --cmd "$DEBIAN_CMD" \
                --label "org.opencontainers.image.version=$_r_version" \
                --label "org.opencontainers.image.base.name=debian:$DEBIAN_SUITE" \
                --label "io.pbox.recipe.packages=minbase${DEBIAN_PACKAGES:+ $DEBIAN_PACKAGES}" \
                --created-by "pbox rootfs-recipes/$RECIPE: debootstrap --variant=minbase $DEBIAN_SUITE (Debian $_r_debver)${DEBIAN_PACKAGES:+ + $DEBIAN_PACKAGES}" >&2 ||
                recipe_die "ociarchive.py failed"
        recipe_log "wrote $_r_out ($(du -h "$_r_out" | cut -f1), $(($(date +%s) - _r_start)) s, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
}
