/* layer_store.c — unpacking untrusted layer tars beneath a staging root
 * (never through archive_write_disk, never by path from "/"), the diff id
 * computed over the uncompressed stream, and the commit / garbage collection
 * of STATE_DIR/layers/<diffid>/.  The policy is described in layer_store.h;
 * the rules every entry passes (names, types, links, the no-follow walk) are
 * tarentry.c's, what is a layer's own is here: owners shifted into the id
 * range, whiteouts, user.* xattrs, the verify-only mode, the layer root's
 * metadata and the replacement of anything an earlier entry made. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "digest.h"
#include "image_archive.h"
#include "layer_store.h"
#include "pathsafe.h"
#include "tarentry.h"
#include "util.h"

#define LAYER_MAX_XATTRS 128
#define LAYER_MAX_XATTR_SIZE 65536
#define STREAM_BUF 65536

struct unpack {
        const struct layer_unpack_opts *o;
        struct tarentry_root root;      /* root.fd -1: verify only */
        struct archive *raw;            /* decompressing reader (format "raw") */
        struct archive *tar;            /* the tar reader on top of it */
        struct digest_ctx *digest;
        uint64_t stream_bytes;
        uint64_t max_entries;
        bool over;                      /* max_bytes exceeded */
        bool raw_failed;
        char raw_error[256];
        char *buf;
        struct tarentry_dirs dirs;      /* mtimes of directories, set last */
        struct tarentry_owner owner;    /* of the current entry, shifted */
        struct layer_unpack_result res;
};

static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}
#define _cleanup_archive_ __attribute__((cleanup(archive_read_freep)))

/* The tar reader pulls the uncompressed stream through here: every byte is
 * hashed (the diff id) and counted (the per-layer limit). */
static la_ssize_t raw_read(struct archive *tar, void *data, const void **buf)
{
        struct unpack *u = data;
        la_ssize_t n = archive_read_data(u->raw, u->buf, STREAM_BUF);
        if (n < 0) {
                u->raw_failed = true;
                snprintf(u->raw_error, sizeof u->raw_error, "%s", archive_error_string(u->raw));
                archive_set_error(tar, EINVAL, "decompression failed: %s", u->raw_error);
                return -1;
        }
        u->stream_bytes += (uint64_t) n;
        if (u->o->max_bytes && u->stream_bytes > u->o->max_bytes) {
                u->over = true;
                archive_set_error(tar, EFBIG, "layer larger than the limit");
                return -1;
        }
        digest_update(u->digest, u->buf, (size_t) n);
        *buf = u->buf;
        return n;
}

static int limit_error(struct unpack *u, struct pbox_error *err)
{
        return pbox_error_set(err, EFBIG, "uncompressed layer is larger than the limit of %llu bytes",
                              (unsigned long long) u->o->max_bytes);
}

/* ---- entries (the shared rules are tarentry.c's) -------------------------- */

static int check_ids(struct unpack *u, struct archive_entry *e, const char *entry, struct tarentry_owner *ret,
                     struct pbox_error *err)
{
        la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
        if (uid < 0 || (uint64_t) uid >= u->o->id_count)
                return pbox_error_set(err, ERANGE, "entry '%s': owner uid %lld is outside the mapped range 0..%u",
                                      entry, (long long) uid, u->o->id_count - 1);
        if (gid < 0 || (uint64_t) gid >= u->o->id_count)
                return pbox_error_set(err, ERANGE, "entry '%s': group gid %lld is outside the mapped range 0..%u",
                                      entry, (long long) gid, u->o->id_count - 1);
        *ret = (struct tarentry_owner) { true, u->o->uid_base + (uid_t) uid, u->o->gid_base + (gid_t) gid };
        return 0;
}

/* Keep user.* xattrs (not user.overlay.*); drop everything else. */
static void apply_xattrs(int fd, struct archive_entry *e)
{
        const char *name;
        const void *value;
        size_t size;
        int n = 0;
        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                if (++n > LAYER_MAX_XATTRS)
                        break;
                if (strncmp(name, "user.", 5) != 0 || strncmp(name, "user.overlay.", 13) == 0 ||
                    size > LAYER_MAX_XATTR_SIZE)
                        continue;
                (void) fsetxattr(fd, name, value, size, 0);     /* best effort: fs may lack user xattrs */
        }
}

static void record_dir(struct unpack *u, const char *path, struct archive_entry *e)
{
        struct timespec ts[2];
        tarentry_times(e, ts);
        tarentry_dirs_add(&u->dirs, path, TARENTRY_PERM_KEEP, ts);     /* modes are set at once */
}

static int make_whiteout(struct unpack *u, const char *entry, const char *target, struct pbox_error *err)
{
        _cleanup_free_ char *dir = NULL;
        const char *base;
        tarentry_split_path(target, &dir, &base);
        int pfd = tarentry_open_parent(&u->root, entry, dir, err);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int parent = pfd;
        struct stat st;
        if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;       /* created by this layer: it already hides the lower layers */
        if (errno != ENOENT)
                return pbox_error_sys(err, errno, "entry '%s': stat whiteout target", entry);
        if (mknodat(parent, base, S_IFCHR | 0600, makedev(0, 0)) < 0)
                return pbox_error_sys(err, errno, "entry '%s': create whiteout", entry);
        if (fchownat(parent, base, u->o->uid_base, u->o->gid_base, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown whiteout", entry);
        return 0;
}

static int make_opaque(struct unpack *u, const char *entry, const char *dir, struct pbox_error *err)
{
        /* the directory itself, made if missing, never through a symlink */
        int pfd = tarentry_open_parent(&u->root, entry, dir, err);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int path_fd = pfd;
        _cleanup_close_ int dfd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "entry '%s': open directory", entry);
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set trusted.overlay.opaque", entry);
        return 0;
}

static int make_dir(void *data, const struct tarentry *t, int parent, struct pbox_error *err)
{
        struct unpack *u = data;
        struct archive_entry *e = t->entry;
        int pfd = tarentry_make_dir(&u->root, parent, t->base, t->path, &u->owner, err);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int path_fd = pfd;
        _cleanup_close_ int fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "entry '%s': open directory", t->path);
        if (fchmod(fd, tarentry_perm(e, true, 0)) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chmod", t->path);
        apply_xattrs(fd, e);
        record_dir(u, t->path, e);
        return 0;
}

static int make_file(void *data, const struct tarentry *t, int parent, struct pbox_error *err)
{
        struct unpack *u = data;
        struct archive_entry *e = t->entry;
        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (u->o->max_bytes && size > 0 && (uint64_t) size > u->o->max_bytes)
                return pbox_error_set(err, EFBIG, "entry '%s': file is larger than the layer limit of %llu bytes",
                                      t->path, (unsigned long long) u->o->max_bytes);
        int r = tarentry_create_file(&u->root, parent, t->base, t->path, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = r;
        r = tarentry_write_data(u->tar, fd, t->path, size, err);
        if (r < 0)
                return u->over ? limit_error(u, err) : r;
        struct timespec ts[2];
        tarentry_times(e, ts);
        r = tarentry_set_meta(fd, t->path, &u->owner, tarentry_perm(e, false, 0), ts, err);
        if (r < 0)
                return r;
        apply_xattrs(fd, e);    /* changes no mtime */
        u->res.size += (uint64_t) size;
        return 0;
}

static int unpack_entry(struct unpack *u, struct archive_entry *e, struct pbox_error *err)
{
        _cleanup_tarentry_ struct tarentry t = { 0 };
        int r = tarentry_read(e, LAYER_MAX_DEPTH, &t, err);
        if (r < 0)
                return r;
        r = check_ids(u, e, t.path, &u->owner, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *wh_target = NULL;
        enum whiteout_kind wh = pathsafe_whiteout(t.path, &wh_target);
        if (wh == WHITEOUT_INVALID)
                return pbox_error_set(err, EINVAL, "entry '%s': invalid whiteout name", t.path);

        if (u->root.fd < 0) {
                /* verify only */
                if (t.kind == TARENTRY_FILE && wh == WHITEOUT_NONE && archive_entry_size(e) > 0)
                        u->res.size += (uint64_t) archive_entry_size(e);
                return 0;
        }
        if (wh == WHITEOUT_FILE)
                return make_whiteout(u, t.path, wh_target, err);
        if (wh == WHITEOUT_OPAQUE)
                return make_opaque(u, t.path, wh_target, err);

        if (t.kind == TARENTRY_TOP) {
                /* the layer root itself ("./") */
                r = tarentry_set_meta(u->root.fd, "./", &u->owner, tarentry_perm(e, true, 0), NULL, err);
                if (r < 0)
                        return r;
                record_dir(u, "", e);
                return 0;
        }
        if (t.kind == TARENTRY_SPECIAL)
                return 0;       /* skipped by policy: devices, fifos, sockets (a sandbox gets its own /dev) */
        static const struct tarentry_ops ops = { .dir = make_dir, .file = make_file };
        return tarentry_make(&u->root, &t, &u->owner, &ops, u, err);
}

int layer_unpack(int src_fd, int root_fd, const struct layer_unpack_opts *opts,
                 struct layer_unpack_result *ret, struct pbox_error *err)
{
        struct unpack u = {
                .o = opts,
                .root = {
                        .fd = root_fd,
                        .replace_dirs = true,   /* what exists came from this layer */
                        .parent_mode = 0755,
                        .parent_owner = { true, opts->uid_base, opts->gid_base },
                },
                .max_entries = opts->max_entries ? opts->max_entries : LAYER_DEFAULT_MAX_ENTRIES,
        };
        if (opts->id_count == 0)
                return pbox_error_set(err, EINVAL, "layer unpack: empty id range");

        _cleanup_archive_ struct archive *raw = archive_read_new();
        _cleanup_archive_ struct archive *tar = archive_read_new();
        if (!raw || !tar)
                abort();
        int r = image_archive_enable_filters(raw, err);
        if (r < 0)
                return r;
        archive_read_support_format_raw(raw);
        if (archive_read_open_fd(raw, src_fd, STREAM_BUF) != ARCHIVE_OK)
                return pbox_error_set(err, EINVAL, "cannot read layer stream: %s", archive_error_string(raw));
        struct archive_entry *re;
        r = archive_read_next_header(raw, &re);
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
                return pbox_error_set(err, EINVAL, "cannot read layer stream: %s", archive_error_string(raw));

        u.raw = raw;
        u.digest = digest_new();
        u.buf = util_xmalloc(STREAM_BUF);
        if (root_fd >= 0 &&
            (fchown(root_fd, opts->uid_base, opts->gid_base) < 0 || fchmod(root_fd, 0755) < 0)) {
                r = pbox_error_sys(err, errno, "layer root");
                goto out;
        }

        u.tar = tar;
        archive_read_support_format_tar(tar);
        if (archive_read_open(tar, &u, NULL, raw_read, NULL) != ARCHIVE_OK) {
                if (u.over)
                        r = limit_error(&u, err);
                else
                        r = pbox_error_set(err, EINVAL, "not a tar stream: %s", archive_error_string(tar));
                goto out;
        }
        for (;;) {
                struct archive_entry *e;
                int ar = archive_read_next_header(tar, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        if (u.over)
                                r = limit_error(&u, err);
                        else
                                r = pbox_error_set(err, EINVAL, "bad tar stream after %llu entries: %s",
                                                   (unsigned long long) u.res.entries, archive_error_string(tar));
                        goto out;
                }
                if (++u.res.entries > u.max_entries) {
                        r = pbox_error_set(err, E2BIG, "layer has more than %llu entries",
                                           (unsigned long long) u.max_entries);
                        goto out;
                }
                r = unpack_entry(&u, e, err);
                if (r < 0)
                        goto out;
                /* consume data we did not write (verify mode, skipped entries) */
                if (archive_read_data_skip(tar) < ARCHIVE_WARN) {
                        if (u.over)
                                r = limit_error(&u, err);
                        else
                                r = pbox_error_set(err, EINVAL, "bad tar stream: %s", archive_error_string(tar));
                        goto out;
                }
        }
        /* Hash whatever follows the end-of-archive marker too: the diff id
         * covers the whole uncompressed stream. */
        for (;;) {
                la_ssize_t n = archive_read_data(raw, u.buf, STREAM_BUF);
                if (n == 0)
                        break;
                if (n < 0) {
                        r = pbox_error_set(err, EINVAL, "decompression failed: %s", archive_error_string(raw));
                        goto out;
                }
                u.stream_bytes += (uint64_t) n;
                if (opts->max_bytes && u.stream_bytes > opts->max_bytes) {
                        r = limit_error(&u, err);
                        goto out;
                }
                digest_update(u.digest, u.buf, (size_t) n);
        }
        if (root_fd >= 0)
                tarentry_dirs_apply(&u.dirs, &u.root);
        digest_final_hex(u.digest, u.res.diff_id);
        u.digest = NULL;
        *ret = u.res;
        r = 0;
out:
        digest_free(u.digest);
        free(u.buf);
        tarentry_dirs_free(&u.dirs);
        return r;
}

/* ---- commit and gc ---------------------------------------------------------- */

int layer_store_commit(int src_dirfd, const char *src_name, int layers_fd, const char *hex,
                       bool *ret_created, struct pbox_error *err)
{
        if (renameat2(src_dirfd, src_name, layers_fd, hex, RENAME_NOREPLACE) == 0) {
                *ret_created = true;
                return 0;
        }
        if (errno == EEXIST || errno == ENOTEMPTY) {
                *ret_created = false;
                return 0;
        }
        return pbox_error_sys(err, errno, "commit layer sha256:%s", hex);
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int layer_store_gc(int layers_fd, char *const *keep, struct pbox_error *err)
{
        size_t n = util_strv_len(keep);
        _cleanup_strv_ char **sorted = util_strv_dup(keep);
        qsort(sorted, n, sizeof(char *), str_cmp);

        int dfd = openat(layers_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "open layers directory");
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return pbox_error_sys(err, errno, "open layers directory");
        }
        /* Collect first: removing while reading a directory may skip names. */
        _cleanup_strv_ char **doomed = NULL;
        size_t nd = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strlen(de->d_name) != 64 || !util_is_hex(de->d_name, 64))
                        continue;
                const char *key = de->d_name;
                if (bsearch(&key, sorted, n, sizeof(char *), str_cmp))
                        continue;
                doomed = util_xrealloc(doomed, (nd + 2) * sizeof(char *));
                doomed[nd++] = util_xstrdup(de->d_name);
                doomed[nd] = NULL;
        }
        closedir(d);
        int ret = 0;
        for (size_t i = 0; i < nd; i++) {
                struct pbox_error e2 = PBOX_ERROR_INIT;
                if (util_rm_rf_at(layers_fd, doomed[i], &e2) < 0 && ret == 0)
                        ret = pbox_error_set(err, e2.code, "remove layer %s: %s", doomed[i], e2.message);
        }
        return ret;
}
