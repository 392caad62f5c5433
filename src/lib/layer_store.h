/* layer_store.h — unpacking one untrusted layer stream (tar, optionally
 * gzip/zstd/xz/bzip2 compressed, detected by magic) into a private staging
 * directory, computing its diff id (sha256 of the uncompressed tar) on the
 * way; committing staged layers into STATE_DIR/layers/<diffid-hex>/ and
 * removing layers no image uses.
 *
 * Unpacking policy (docs/ARCHITECTURE.md has the reasoning; the rules
 * shared with tartree.c live in tarentry.c):
 *  - entry names are cleaned: a leading "/" is dropped (absolute names are
 *    made relative to the layer root, as GNU tar and docker do), "." and
 *    empty components are dropped, any ".." component rejects the layer;
 *  - every parent directory is resolved beneath the layer root without
 *    following any symlink (pathsafe_open_nofollow: openat2
 *    RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk): an
 *    entry "x/passwd" after a symlink entry "x -> /etc" rejects the layer;
 *    missing parents are created (0755, owned by the mapped root);
 *  - files are created with O_CREAT|O_EXCL|O_NOFOLLOW relative to the parent
 *    fd; an entry whose name exists (earlier entry of the same layer) replaces
 *    it (unlink, or recursive removal of a directory, then create); an
 *    existing directory for a directory entry only gets its metadata updated;
 *  - hardlinks must name an existing non-directory of the same layer
 *    (resolved the same way), linked with linkat relative to fds;
 *  - char/block devices, fifos and sockets are skipped (a sandbox gets its
 *    own /dev); whiteouts are made by us: ".wh.NAME" -> char device 0:0 at
 *    NAME, ".wh..wh..opq" -> trusted.overlay.opaque=y on the directory;
 *    other ".wh." names reject the layer; a whiteout whose NAME an earlier
 *    entry of the same layer created is ignored (that entry already hides
 *    the lower layers);
 *  - setuid and setgid are stripped from non-directories (no_new_privs makes
 *    them useless in a sandbox and they must never exist on the host
 *    executable by anyone); setgid on directories (group inheritance) and
 *    the sticky bit are kept;
 *  - owners are shifted: host uid = uid_base + uid; uid or gid >= id_count
 *    rejects the layer; mode bits and mtimes are kept;
 *  - xattrs: only user.* (not user.overlay.*) are kept, everything else
 *    (security.capability, trusted.*, ACLs) is dropped;
 *  - limits: entry name length 4096, depth 256, entries per layer, bytes of
 *    the uncompressed stream — each violation is an error naming it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define LAYER_DEFAULT_MAX_ENTRIES 1000000u
#define LAYER_MAX_DEPTH 256

struct layer_unpack_opts {
        uid_t uid_base;
        gid_t gid_base;
        uint32_t id_count;
        uint64_t max_bytes;     /* uncompressed stream, 0 = unlimited */
        uint64_t max_entries;   /* 0 = LAYER_DEFAULT_MAX_ENTRIES */
};

struct layer_unpack_result {
        char diff_id[65];       /* sha256 hex of the uncompressed stream */
        uint64_t size;          /* sum of regular file sizes */
        uint64_t entries;
};

/* Read the layer stream from src_fd (read(2) only) and unpack it beneath
 * root_fd, an empty directory opened O_RDONLY|O_DIRECTORY.  root_fd < 0 only
 * checks the stream (diff id, size, names, limits) without writing anything.
 * On failure the caller removes whatever was written beneath root_fd. */
int layer_unpack(int src_fd, int root_fd, const struct layer_unpack_opts *opts,
                 struct layer_unpack_result *ret, struct pbox_error *err);

/* Move the staged layer dir src_dirfd/src_name to layers_fd/<hex> unless a
 * layer with that name exists.  *ret_created tells which happened.  The
 * caller holds the store lock. */
int layer_store_commit(int src_dirfd, const char *src_name, int layers_fd, const char *hex,
                       bool *ret_created, struct pbox_error *err);

/* Remove every layers_fd/<64-hex> directory whose name is not in keep
 * (NULL-terminated).  The caller holds the store lock. */
int layer_store_gc(int layers_fd, char *const *keep, struct pbox_error *err);
