/* layer_store.c — unpacking untrusted layer tars beneath a staging root
 * (never through archive_write_disk, never by path from "/"), the diff id
 * computed over the uncompressed stream, and the commit / garbage collection
 * of STATE_DIR/layers/<diffid>/.  The policy is described in layer_store.h. */
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
#include "util.h"

#define LAYER_MAX_XATTRS 128
#define LAYER_MAX_XATTR_SIZE 65536
#define STREAM_BUF 65536

struct dir_time {
        char *path;
        struct timespec mtime;
};

struct unpack {
        const struct layer_unpack_opts *o;
        int root_fd;                    /* -1: verify only */
        struct archive *raw;            /* decompressing reader (format "raw") */
        struct digest_ctx *digest;
        uint64_t stream_bytes;
        uint64_t max_entries;
        bool over;                      /* max_bytes exceeded */
        bool raw_failed;
        char raw_error[256];
        char *buf;
        struct dir_time *dirs;
        size_t n_dirs, cap_dirs;
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

/* ---- filesystem helpers (all relative to fds beneath the layer root) ----- */

static void split_path(const char *path, char **ret_dir, const char **ret_base)
{
        const char *slash = strrchr(path, '/');
        if (slash) {
                *ret_dir = strndup(path, (size_t) (slash - path));
                if (!*ret_dir)
                        abort();
                *ret_base = slash + 1;
        } else {
                *ret_dir = util_xstrdup("");
                *ret_base = path;
        }
}

/* Create the missing directories of dir (cleaned, relative) beneath the root,
 * never following a symlink; returns an O_PATH fd of dir. */
static int mkdir_parents(struct unpack *u, const char *entry, const char *dir, struct pbox_error *err)
{
        int cur = openat(u->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return pbox_error_sys(err, errno, "entry '%s': open layer root", entry);
        _cleanup_free_ char *copy = util_xstrdup(dir);
        for (char *p = copy; *p;) {
                char *end = strchrnul(p, '/');
                bool more = *end == '/';
                *end = '\0';
                int fd = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT) {
                        if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
                                int e = errno;
                                close(cur);
                                return pbox_error_sys(err, e, "entry '%s': create directory '%s'", entry, p);
                        }
                        if (fchownat(cur, p, u->o->uid_base, u->o->gid_base, AT_SYMLINK_NOFOLLOW) < 0) {
                                int e = errno;
                                close(cur);
                                return pbox_error_sys(err, e, "entry '%s': chown directory '%s'", entry, p);
                        }
                        fd = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (fd < 0) {
                        int e = errno;
                        close(cur);
                        if (e == ENOTDIR || e == ELOOP)
                                return pbox_error_set(err, ENOTDIR, "entry '%s': parent '%s' is not a directory (symlinks are not followed)",
                                                      entry, p);
                        return pbox_error_sys(err, e, "entry '%s': open directory '%s'", entry, p);
                }
                close(cur);
                cur = fd;
                p = more ? end + 1 : end;
        }
        return cur;
}

/* An O_PATH fd of the (cleaned) directory dir beneath the root, created if
 * missing; never through a symlink. */
static int open_parent(struct unpack *u, const char *entry, const char *dir, struct pbox_error *err)
{
        int fd = pathsafe_open_beneath(u->root_fd, dir, O_PATH | O_DIRECTORY, 0, true);
        if (fd >= 0)
                return fd;
        if (fd == -ENOENT)
                return mkdir_parents(u, entry, dir, err);
        if (fd == -ELOOP)
                return pbox_error_set(err, ELOOP, "entry '%s': path goes through a symlink", entry);
        if (fd == -ENOTDIR)
                return pbox_error_set(err, ENOTDIR, "entry '%s': a parent is not a directory", entry);
        return pbox_error_sys(err, -fd, "entry '%s': open parent directory", entry);
}

/* Remove parent/base if it exists (an earlier entry of this layer). */
static int remove_existing(int parent, const char *base, const char *entry, bool keep_dir,
                           struct pbox_error *err)
{
        struct stat st;
        if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pbox_error_sys(err, errno, "entry '%s': stat", entry);
        }
        if (S_ISDIR(st.st_mode)) {
                if (keep_dir)
                        return 1;
                struct pbox_error e2 = PBOX_ERROR_INIT;
                if (util_rm_rf_at(parent, base, &e2) < 0)
                        return pbox_error_set(err, e2.code, "entry '%s': replace directory: %s", entry, e2.message);
                return 0;
        }
        if (unlinkat(parent, base, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': replace", entry);
        return 0;
}

static int check_ids(struct unpack *u, struct archive_entry *e, const char *entry, uid_t *ret_uid, gid_t *ret_gid,
                     struct pbox_error *err)
{
        la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
        if (uid < 0 || (uint64_t) uid >= u->o->id_count)
                return pbox_error_set(err, ERANGE, "entry '%s': owner uid %lld is outside the mapped range 0..%u",
                                      entry, (long long) uid, u->o->id_count - 1);
        if (gid < 0 || (uint64_t) gid >= u->o->id_count)
                return pbox_error_set(err, ERANGE, "entry '%s': group gid %lld is outside the mapped range 0..%u",
                                      entry, (long long) gid, u->o->id_count - 1);
        *ret_uid = u->o->uid_base + (uid_t) uid;
        *ret_gid = u->o->gid_base + (gid_t) gid;
        return 0;
}

static mode_t entry_perm(struct archive_entry *e, bool is_dir)
{
        mode_t perm = archive_entry_perm(e) & 07777;
        perm &= ~(mode_t) S_ISUID;
        if (!is_dir)
                perm &= ~(mode_t) S_ISGID;
        return perm;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
        ts[1].tv_sec = archive_entry_mtime(e);
        ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
        if (ts[1].tv_nsec < 0 || ts[1].tv_nsec >= 1000000000)
                ts[1].tv_nsec = 0;
        ts[0] = ts[1];
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

static int set_meta_fd(int fd, const char *entry, uid_t uid, gid_t gid, mode_t perm, const struct timespec *ts,
                       struct pbox_error *err)
{
        if (fchown(fd, uid, gid) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", entry);
        if (fchmod(fd, perm) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chmod", entry);
        if (ts && futimens(fd, ts) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", entry);
        return 0;
}

static void record_dir(struct unpack *u, const char *path, struct archive_entry *e)
{
        if (u->n_dirs == u->cap_dirs) {
                u->cap_dirs = u->cap_dirs ? u->cap_dirs * 2 : 256;
                u->dirs = util_xrealloc(u->dirs, u->cap_dirs * sizeof *u->dirs);
        }
        struct timespec ts[2];
        entry_times(e, ts);
        u->dirs[u->n_dirs].path = util_xstrdup(path);
        u->dirs[u->n_dirs].mtime = ts[1];
        u->n_dirs++;
}

/* ---- entry kinds ------------------------------------------------------------ */

static int make_whiteout(struct unpack *u, const char *entry, const char *target, struct pbox_error *err)
{
        _cleanup_free_ char *dir = NULL;
        const char *base;
        split_path(target, &dir, &base);
        _cleanup_close_ int parent = open_parent(u, entry, dir, err);
        if (parent < 0)
                return parent;
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
        int fd = pathsafe_open_beneath(u->root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, true);
        if (fd == -ENOENT) {
                int pfd = mkdir_parents(u, entry, dir, err);
                if (pfd < 0)
                        return pfd;
                close(pfd);
                fd = pathsafe_open_beneath(u->root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, true);
        }
        if (fd < 0) {
                if (fd == -ELOOP || fd == -ENOTDIR)
                        return pbox_error_set(err, -fd, "entry '%s': opaque marker in something that is not a directory", entry);
                return pbox_error_sys(err, -fd, "entry '%s': open directory", entry);
        }
        _cleanup_close_ int dfd = fd;
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set trusted.overlay.opaque", entry);
        return 0;
}

static int make_dir(struct unpack *u, struct archive_entry *e, const char *path, int parent, const char *base,
                    uid_t uid, gid_t gid, struct pbox_error *err)
{
        int r = remove_existing(parent, base, path, true, err);
        if (r < 0)
                return r;
        if (r == 0 && mkdirat(parent, base, 0700) < 0)
                return pbox_error_sys(err, errno, "entry '%s': mkdir", path);
        _cleanup_close_ int fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "entry '%s': open directory", path);
        r = set_meta_fd(fd, path, uid, gid, entry_perm(e, true), NULL, err);
        if (r < 0)
                return r;
        apply_xattrs(fd, e);
        record_dir(u, path, e);
        return 0;
}

static int make_file(struct unpack *u, struct archive *tar, struct archive_entry *e, const char *path, int parent,
                     const char *base, uid_t uid, gid_t gid, struct pbox_error *err)
{
        if (archive_entry_size_is_set(e) && u->o->max_bytes && (uint64_t) archive_entry_size(e) > u->o->max_bytes)
                return pbox_error_set(err, EFBIG, "entry '%s': file is larger than the layer limit of %llu bytes",
                                      path, (unsigned long long) u->o->max_bytes);
        int r = remove_existing(parent, base, path, false, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "entry '%s': create", path);
        for (;;) {
                const void *blk;
                size_t len;
                la_int64_t off;
                int ar = archive_read_data_block(tar, &blk, &len, &off);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        if (u->over)
                                return limit_error(u, err);
                        return pbox_error_set(err, EINVAL, "entry '%s': %s", path, archive_error_string(tar));
                }
                if (off < 0 || (u->o->max_bytes && (uint64_t) off + len > u->o->max_bytes))
                        return pbox_error_set(err, EFBIG, "entry '%s': data beyond the layer limit", path);
                r = util_pwrite_all(fd, blk, len, (off_t) off);
                if (r < 0)
                        return pbox_error_sys(err, -r, "entry '%s': write", path);
        }
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
            ftruncate(fd, (off_t) archive_entry_size(e)) < 0)    /* a sparse tail */
                return pbox_error_sys(err, errno, "entry '%s': truncate", path);
        struct timespec ts[2];
        entry_times(e, ts);
        r = set_meta_fd(fd, path, uid, gid, entry_perm(e, false), NULL, err);
        if (r < 0)
                return r;
        apply_xattrs(fd, e);
        if (futimens(fd, ts) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", path);
        if (archive_entry_size(e) > 0)
                u->res.size += (uint64_t) archive_entry_size(e);
        return 0;
}

static int make_symlink(struct archive_entry *e, const char *path, int parent, const char *base, uid_t uid,
                        gid_t gid, struct pbox_error *err)
{
        const char *target = archive_entry_symlink(e);
        if (!target || !*target)
                return pbox_error_set(err, EINVAL, "entry '%s': symlink without a target", path);
        if (strlen(target) >= 4096)
                return pbox_error_set(err, ENAMETOOLONG, "entry '%s': symlink target too long", path);
        int r = remove_existing(parent, base, path, false, err);
        if (r < 0)
                return r;
        /* The target is stored verbatim: it is only ever resolved inside the
         * sandbox's own root, never by us. */
        if (symlinkat(target, parent, base) < 0)
                return pbox_error_sys(err, errno, "entry '%s': symlink", path);
        if (fchownat(parent, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", path);
        struct timespec ts[2];
        entry_times(e, ts);
        if (utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", path);
        return 0;
}

static int make_hardlink(struct unpack *u, const char *link_raw, const char *path, int parent, const char *base,
                         struct pbox_error *err)
{
        _cleanup_free_ char *target = NULL;
        int r = pathsafe_clean_entry(link_raw, false, &target, err);
        if (r < 0)
                return pbox_error_prefix(err, "entry '%s': hardlink target", path);
        if (strcmp(target, path) == 0)
                return 0;
        _cleanup_free_ char *tdir = NULL;
        const char *tbase;
        split_path(target, &tdir, &tbase);
        int tfd = pathsafe_open_beneath(u->root_fd, tdir, O_PATH | O_DIRECTORY, 0, true);
        if (tfd < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' is not in this layer (%s)", path,
                                      link_raw, tfd == -ELOOP ? "path goes through a symlink" : strerror(-tfd));
        _cleanup_close_ int tparent = tfd;
        struct stat st;
        if (fstatat(tparent, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' is not in this layer", path, link_raw);
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' is not a regular file or symlink",
                                      path, link_raw);
        r = remove_existing(parent, base, path, false, err);
        if (r < 0)
                return r;
        if (linkat(tparent, tbase, parent, base, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': link to '%s'", path, link_raw);
        return 0;
}

static int unpack_entry(struct unpack *u, struct archive *tar, struct archive_entry *e, struct pbox_error *err)
{
        const char *raw = archive_entry_pathname(e);
        if (!raw)
                return pbox_error_set(err, EINVAL, "entry with an unreadable name");
        _cleanup_free_ char *path = NULL;
        int r = pathsafe_clean_entry(raw, true, &path, err);
        if (r < 0)
                return r;
        size_t depth = *path ? 1 : 0;
        for (const char *p = path; *p; p++)
                depth += *p == '/';
        if (depth > LAYER_MAX_DEPTH)
                return pbox_error_set(err, ENAMETOOLONG, "entry '%.200s...': deeper than %d directories", path, LAYER_MAX_DEPTH);

        uid_t uid = 0;
        gid_t gid = 0;
        r = check_ids(u, e, path, &uid, &gid, err);
        if (r < 0)
                return r;
        const char *hardlink = archive_entry_hardlink(e);
        mode_t type = archive_entry_filetype(e);
        if (hardlink) {
                _cleanup_free_ char *t = NULL;
                r = pathsafe_clean_entry(hardlink, false, &t, err);
                if (r < 0)
                        return pbox_error_prefix(err, "entry '%s': hardlink target", path);
        } else if (type == AE_IFLNK) {
                const char *t = archive_entry_symlink(e);
                if (!t || !*t || strlen(t) >= 4096)
                        return pbox_error_set(err, EINVAL, "entry '%s': bad symlink target", path);
        } else if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFCHR && type != AE_IFBLK &&
                   type != AE_IFIFO && type != AE_IFSOCK) {
                return pbox_error_set(err, EINVAL, "entry '%s': unsupported entry type 0%o", path, (unsigned) type);
        }

        _cleanup_free_ char *wh_target = NULL;
        enum whiteout_kind wh = pathsafe_whiteout(path, &wh_target);
        if (wh == WHITEOUT_INVALID)
                return pbox_error_set(err, EINVAL, "entry '%s': invalid whiteout name", path);

        if (u->root_fd < 0) {
                /* verify only */
                if (type == AE_IFREG && !hardlink && wh == WHITEOUT_NONE && archive_entry_size(e) > 0)
                        u->res.size += (uint64_t) archive_entry_size(e);
                return 0;
        }

        if (wh == WHITEOUT_FILE)
                return make_whiteout(u, path, wh_target, err);
        if (wh == WHITEOUT_OPAQUE)
                return make_opaque(u, path, wh_target, err);

        if (!*path) {
                /* the layer root itself ("./") */
                if (hardlink || type != AE_IFDIR)
                        return pbox_error_set(err, EINVAL, "entry '%s': the layer root must be a directory", raw);
                r = set_meta_fd(u->root_fd, "./", uid, gid, entry_perm(e, true), NULL, err);
                if (r < 0)
                        return r;
                record_dir(u, "", e);
                return 0;
        }

        if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK))
                return 0;       /* skipped by policy: devices, fifos, sockets */

        _cleanup_free_ char *dir = NULL;
        const char *base;
        split_path(path, &dir, &base);
        _cleanup_close_ int parent = open_parent(u, path, dir, err);
        if (parent < 0)
                return parent;

        if (hardlink)
                return make_hardlink(u, hardlink, path, parent, base, err);
        switch (type) {
        case AE_IFDIR:
                return make_dir(u, e, path, parent, base, uid, gid, err);
        case AE_IFREG:
                return make_file(u, tar, e, path, parent, base, uid, gid, err);
        case AE_IFLNK:
                return make_symlink(e, path, parent, base, uid, gid, err);
        default:
                return pbox_error_set(err, EINVAL, "entry '%s': unsupported entry type", path);
        }
}

static void apply_dir_times(struct unpack *u)
{
        for (size_t i = u->n_dirs; i > 0; i--) {
                struct dir_time *d = &u->dirs[i - 1];
                int fd = pathsafe_open_beneath(u->root_fd, d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, true);
                if (fd < 0)
                        continue;       /* replaced by a later entry */
                struct timespec ts[2] = { d->mtime, d->mtime };
                (void) futimens(fd, ts);
                close(fd);
        }
}

int layer_unpack(int src_fd, int root_fd, const struct layer_unpack_opts *opts,
                 struct layer_unpack_result *ret, struct pbox_error *err)
{
        struct unpack u = {
                .o = opts,
                .root_fd = root_fd,
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
                r = unpack_entry(&u, tar, e, err);
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
                apply_dir_times(&u);
        digest_final_hex(u.digest, u.res.diff_id);
        u.digest = NULL;
        *ret = u.res;
        r = 0;
out:
        digest_free(u.digest);
        free(u.buf);
        for (size_t i = 0; i < u.n_dirs; i++)
                free(u.dirs[i].path);
        free(u.dirs);
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
