/* tartree.h — tar archives of directory trees whose contents are not
 * trusted, both ways: writing a tar of everything beneath a directory fd
 * without following a symlink, and extracting an untrusted tar beneath a
 * directory fd without ever leaving it.  Used by the file API of pboxd
 * (files.c: the sandbox is hostile and runs concurrently) and by `pbox cp`
 * (cp.c: the tar comes from a sandbox).
 *
 * Creating: entries are named relative to the directory ("a", "a/b"; the
 * directory itself has no entry); directories, regular files and symlinks
 * (stored as symlinks, never followed) are written; fifos, sockets and
 * devices are skipped, as are directories on another mount when
 * one_file_system is set, and entries that vanish or change type while
 * being read (the tree may change under us).  A hardlinked file is stored
 * once per name.  Owners are numeric (as stat(2) reports them to the
 * caller), modes and mtimes are kept, xattrs are not.
 *
 * Extracting (the policy of image layers, layer_store.h, without
 * whiteouts and ownership shifting; the shared rules live in tarentry.c):
 *  - names are cleaned (pathsafe_clean_entry): a leading "/" is dropped,
 *    any ".." component rejects the archive;
 *  - every parent is resolved beneath the directory without following any
 *    symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, a component walk
 *    with O_NOFOLLOW on old kernels): a symlink -- planted before, or made
 *    by an earlier entry -- is never followed, the entry is refused;
 *    missing parents are created (0755);
 *  - an existing non-directory of an entry's name is replaced (unlinked,
 *    then created with O_EXCL|O_NOFOLLOW relative to the parent fd); an
 *    existing directory only gets new metadata from a directory entry, and
 *    refuses any other kind of entry (EISDIR); a directory entry over a
 *    non-directory is refused (EEXIST);
 *  - hardlinks must name a regular file or symlink beneath the directory,
 *    resolved the same way;
 *  - fifos, sockets and devices are skipped;
 *  - setuid is stripped, setgid too except on directories; opts->umask
 *    is cleared from every mode; directory modes and mtimes are applied at
 *    the end (so that a read-only directory can still be filled);
 *  - owners: with opts->chown everything made gets uid/gid, otherwise the
 *    caller's own (the archive's owners are never used);
 *  - limits: entries (max_entries), bytes of file data (max_bytes), the
 *    uncompressed stream (a few times max_bytes), name length 4096, depth
 *    TARTREE_MAX_DEPTH; each violation is an error naming it.
 * A failed extraction leaves what was extracted before the failure.
 *
 * Errors: EINVAL (bad archive or entry), ELOOP (an entry goes through a
 * symlink), EEXIST/EISDIR/ENOTDIR (conflict with what exists), EFBIG
 * (bytes), E2BIG (entries), others from the file system. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define TARTREE_DEFAULT_MAX_ENTRIES 1000000u
#define TARTREE_MAX_DEPTH 256

struct tartree_opts {
        uint64_t max_bytes;     /* create: size of the tar; extract: file data; 0 = unlimited */
        uint64_t max_entries;   /* 0 = TARTREE_DEFAULT_MAX_ENTRIES */
        bool one_file_system;   /* never cross into another mount (RESOLVE_NO_XDEV) */
        /* extract only */
        bool chown;             /* give everything made this owner */
        uid_t uid;
        gid_t gid;
        mode_t umask;
};

struct tartree_stats {
        uint64_t entries;       /* entries written / extracted */
        uint64_t bytes;         /* regular file data */
        uint64_t skipped;       /* special files, other mounts, entries that vanished */
};

/* Write a tar (pax) of everything beneath dir_fd (opened O_RDONLY|O_DIRECTORY)
 * to out_fd with write(2). */
int tartree_create(int dir_fd, int out_fd, const struct tartree_opts *opts, struct tartree_stats *ret,
                   struct pbox_error *err);

/* Extract the tar (optionally gzip/zstd/xz/bzip2 compressed) of src_len
 * bytes -- read with pread(2) from offset 0 of src_fd when src_fd >= 0
 * (a shared file offset is left alone), from src_buf otherwise -- beneath
 * dir_fd (any directory fd, O_PATH is enough). */
int tartree_extract(int src_fd, const void *src_buf, uint64_t src_len, int dir_fd,
                    const struct tartree_opts *opts, struct tartree_stats *ret, struct pbox_error *err);
