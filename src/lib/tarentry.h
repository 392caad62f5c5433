/* tarentry.h — the checks every untrusted tar entry passes and the
 * no-follow directory walk both extractors use: layer_store.c (OCI image
 * layers) and tartree.c (the files API, `pbox cp`).  One place for the rules:
 *  - the name is cleaned (pathsafe_clean_entry: a leading "/" dropped, "."
 *    and empty components dropped, any ".." rejects) and at most max_depth
 *    components deep;
 *  - types: directories, regular files, symlinks and hardlinks are made;
 *    char/block devices, fifos and sockets are TARENTRY_SPECIAL (skipped by
 *    both callers); anything else is refused;
 *  - a symlink target is non-empty and shorter than TARENTRY_MAX_LINK; it
 *    is stored verbatim and never followed by us;
 *  - a hardlink target is cleaned like a name, and must be an existing
 *    regular file or symlink beneath the root, reached without a symlink;
 *  - the top entry ("./") must be a directory;
 *  - modes lose setuid, and setgid except on directories; times are the
 *    entry's mtime (nanoseconds when present and valid);
 *  - every parent is opened beneath the root with pathsafe_open_nofollow
 *    (no symlink is followed, with no_xdev no mount is crossed); missing
 *    parents are made one component at a time, each relative to the fd of
 *    the one before;
 *  - files are created O_CREAT|O_EXCL|O_NOFOLLOW relative to the parent fd
 *    after the name is cleared; file data must lie within the entry's size.
 * What differs between the callers is explicit in struct tarentry_root
 * (replace_dirs, owners, modes of missing parents, no_xdev); uid shifting,
 * whiteouts and xattrs (layers) or umask and byte limits (tartree) stay with
 * the callers.  Every error message names the entry. */
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

#define TARENTRY_MAX_LINK 4096          /* symlink targets: at most 4095 bytes (PATH_MAX with the NUL) */

enum tarentry_kind {
        TARENTRY_TOP,           /* "./": the root directory itself */
        TARENTRY_DIR,
        TARENTRY_FILE,
        TARENTRY_SYMLINK,
        TARENTRY_HARDLINK,
        TARENTRY_SPECIAL,       /* device, fifo, socket: skipped by policy */
};

struct tarentry {
        struct archive_entry *entry;    /* the entry read (the caller's) */
        const char *raw;        /* the name as archived (owned by the archive entry) */
        char *path;             /* cleaned; "" for TARENTRY_TOP */
        char *dir;              /* the directory part of path ("" at the top level) */
        const char *base;       /* the last component of path (points into path) */
        enum tarentry_kind kind;
        const char *symlink;    /* TARENTRY_SYMLINK: the target, verbatim */
        const char *link_raw;   /* TARENTRY_HARDLINK: the target as archived */
        char *link;             /* TARENTRY_HARDLINK: the target, cleaned */
};

/* Read and check entry e (name, depth, type, link targets, top entry).
 * On success *ret is filled (free with tarentry_done). */
int tarentry_read(struct archive_entry *e, unsigned max_depth, struct tarentry *ret, struct pbox_error *err);
void tarentry_done(struct tarentry *t);
#define _cleanup_tarentry_ __attribute__((cleanup(tarentry_done)))

/* "a/b/c" -> "a/b" and "c"; "c" -> "" and "c".  *ret_dir is malloc'd. */
void tarentry_split_path(const char *path, char **ret_dir, const char **ret_base);

/* The entry's permission bits without setuid (and setgid unless is_dir),
 * and without the bits of umask_bits. */
mode_t tarentry_perm(struct archive_entry *e, bool is_dir, mode_t umask_bits);

/* ts[0] = ts[1] = the entry's mtime. */
void tarentry_times(struct archive_entry *e, struct timespec ts[2]);

struct tarentry_owner {
        bool set;               /* false: leave the owner the creator's own */
        uid_t uid;
        gid_t gid;
};

/* Where and how entries are made. */
struct tarentry_root {
        int fd;                         /* the root, any directory fd */
        bool no_xdev;                   /* never cross into another mount */
        bool replace_dirs;              /* true: an entry replaces an existing directory (rm -rf) and a
                                         * directory entry an existing non-directory (layers: what exists
                                         * came from the same layer); false: both are refused, EISDIR /
                                         * EEXIST (tartree: extracting into a live tree) */
        mode_t parent_mode;             /* mode of missing parents that are made */
        struct tarentry_owner parent_owner;     /* owner of missing parents that are made */
};

/* An O_PATH fd of the directory dir (cleaned, relative) beneath the root;
 * missing directories are made, nothing is followed.  entry names the entry
 * in errors: ELOOP (a symlink), ENOTDIR, EXDEV (another mount). */
int tarentry_open_parent(const struct tarentry_root *root, const char *entry, const char *dir,
                         struct pbox_error *err);

/* Clear parent/base for an entry; is_dir: the entry is a directory.
 * Returns 0 (nothing there, or removed), 1 (a directory is there and the
 * entry is a directory: keep it) or a negative errno (see replace_dirs). */
int tarentry_clear(const struct tarentry_root *root, int parent, const char *base, const char *entry, bool is_dir,
                   struct pbox_error *err);

/* Set owner (when owner->set), permissions and times (when ts) of fd. */
int tarentry_set_meta(int fd, const char *entry, const struct tarentry_owner *owner, mode_t perm,
                      const struct timespec ts[2], struct pbox_error *err);

/* Make (or keep) the directory parent/base; returns an O_PATH fd of it,
 * owned by owner when owner->set; mode 0700 until the caller sets it. */
int tarentry_make_dir(const struct tarentry_root *root, int parent, const char *base, const char *entry,
                      const struct tarentry_owner *owner, struct pbox_error *err);

/* Create the regular file parent/base (mode 0600) for writing. */
int tarentry_create_file(const struct tarentry_root *root, int parent, const char *base, const char *entry,
                         struct pbox_error *err);

/* Write the data of the current entry of a (size bytes, holes stay holes)
 * to fd; data beyond size is an error. */
int tarentry_write_data(struct archive *a, int fd, const char *entry, int64_t size, struct pbox_error *err);

/* Make the symlink t->base -> t->symlink in parent, owned by owner when
 * owner->set, with times ts. */
int tarentry_symlink(const struct tarentry_root *root, const struct tarentry *t, int parent,
                     const struct tarentry_owner *owner, const struct timespec ts[2], struct pbox_error *err);

/* Link t->base in parent to the hardlink target t->link (see above); a
 * link to itself does nothing. */
int tarentry_hardlink(const struct tarentry_root *root, const struct tarentry *t, int parent,
                      struct pbox_error *err);

/* What differs in making directories and files is the caller's. */
struct tarentry_ops {
        int (*dir)(void *data, const struct tarentry *t, int parent, struct pbox_error *err);
        int (*file)(void *data, const struct tarentry *t, int parent, struct pbox_error *err);
};

/* Make t (TARENTRY_DIR, _FILE, _SYMLINK or _HARDLINK; the caller handles
 * _TOP and _SPECIAL) beneath the root: its parent is opened (missing ones
 * made) without following anything, links are made here (a symlink owned
 * by owner when owner->set, with the entry's time), directories and files
 * by ops with the parent's fd. */
int tarentry_make(const struct tarentry_root *root, const struct tarentry *t, const struct tarentry_owner *owner,
                  const struct tarentry_ops *ops, void *data, struct pbox_error *err);

/* Directory metadata applied after all entries, latest first, best effort
 * (an entry may have been replaced since). */
struct tarentry_dir_meta {
        char *path;
        mode_t perm;            /* TARENTRY_PERM_KEEP: leave as is */
        struct timespec mtime;
};
#define TARENTRY_PERM_KEEP ((mode_t) -1)

struct tarentry_dirs {
        struct tarentry_dir_meta *v;
        size_t n, cap;
};

void tarentry_dirs_add(struct tarentry_dirs *d, const char *path, mode_t perm, const struct timespec ts[2]);
void tarentry_dirs_apply(const struct tarentry_dirs *d, const struct tarentry_root *root);
void tarentry_dirs_free(struct tarentry_dirs *d);
