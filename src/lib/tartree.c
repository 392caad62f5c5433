/* tartree.c — tar archives of untrusted directory trees, both ways (see
 * tartree.h for the policy).  Everything is relative to directory fds
 * opened beneath the caller's directory with openat2
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (a component walk on old kernels);
 * nothing is ever opened by a path from "/", and no symlink is followed. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "pathsafe.h"
#include "syscalls.h"
#include "tartree.h"
#include "util.h"

#define TARTREE_BUF (256 * 1024)
#define TARTREE_MAX_NAME 4096
#define TARTREE_MAX_LINK 4096

static bool no_openat2;

/* Open path (relative; one or more components) beneath dir_fd without
 * following any symlink, a final one included, and, with no_xdev, without
 * crossing a mount.  Returns an fd or -errno. */
static int open_beneath(int dir_fd, const char *path, int flags, bool no_xdev)
{
        if (!*path)
                path = ".";
        /* A final symlink: ELOOP (RESOLVE_NO_SYMLINKS).  O_NOFOLLOW would
         * turn that into ENOTDIR for directories (O_PATH|O_NOFOLLOW opens the
         * link itself), a less telling error. */
        int nofollow = (flags & O_DIRECTORY) ? 0 : O_NOFOLLOW;
        if (!no_openat2) {
                struct open_how how = {
                        .flags = (uint64_t) (flags | nofollow | O_CLOEXEC),
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                                   (no_xdev ? RESOLVE_NO_XDEV : 0),
                };
                for (int attempt = 0; attempt < 16; attempt++) {
                        int fd = sys_openat2(dir_fd, path, &how, sizeof how);
                        if (fd >= 0)
                                return fd;
                        if (errno == EAGAIN)
                                continue;       /* a concurrent rename: retry */
                        if (errno != ENOSYS && errno != E2BIG)
                                return -errno;
                        no_openat2 = true;
                        break;
                }
                if (!no_openat2)
                        return -EAGAIN;
        }
        int fd = pathsafe_open_beneath_walk(dir_fd, path, flags | nofollow, 0, true);
        if (fd >= 0 && no_xdev) {
                /* Without openat2 only a directory on another file system is
                 * recognised (overlayfs reports its own device for directories). */
                struct stat a, b;
                if (fstat(fd, &b) < 0 || fstat(dir_fd, &a) < 0 || (S_ISDIR(b.st_mode) && a.st_dev != b.st_dev)) {
                        close(fd);
                        return -EXDEV;
                }
        }
        return fd;
}

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

static uint64_t max_entries_of(const struct tartree_opts *o)
{
        return o->max_entries ? o->max_entries : TARTREE_DEFAULT_MAX_ENTRIES;
}

/* ======================================================================== */
/* creating                                                                 */
/* ======================================================================== */

struct creator {
        const struct tartree_opts *o;
        struct archive *a;
        int out_fd;
        uint64_t out_bytes;
        bool over;              /* the tar would exceed max_bytes */
        int write_errno;
        char *buf;
        struct tartree_stats st;
};

static la_ssize_t creator_write(struct archive *a, void *data, const void *buf, size_t len)
{
        struct creator *c = data;
        if (c->o->max_bytes && c->out_bytes + len > c->o->max_bytes) {
                c->over = true;
                archive_set_error(a, EFBIG, "archive larger than the limit");
                return -1;
        }
        int r = util_write_all(c->out_fd, buf, len);
        if (r < 0) {
                c->write_errno = -r;
                archive_set_error(a, -r, "write: %s", strerror(-r));
                return -1;
        }
        c->out_bytes += len;
        return (la_ssize_t) len;
}

static int creator_error(struct creator *c, const char *rel, struct pbox_error *err)
{
        if (c->over)
                return pbox_error_set(err, EFBIG, "the archive is larger than the limit of %llu bytes",
                                      (unsigned long long) c->o->max_bytes);
        if (c->write_errno)
                return pbox_error_sys(err, c->write_errno, "write the archive");
        return pbox_error_set(err, EIO, "'%s': %s", rel, archive_error_string(c->a));
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The names in directory dfd, sorted (a stable archive for a stable tree). */
static int read_names(int dfd, char ***ret, size_t *ret_n)
{
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                close(fd);
                return -e;
        }
        char **v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 32;
                        v = util_xrealloc(v, cap * sizeof(char *));
                }
                v[n++] = util_xstrdup(de->d_name);
        }
        int e = errno;
        closedir(d);
        if (e) {
                for (size_t i = 0; i < n; i++)
                        free(v[i]);
                free(v);
                return -e;
        }
        if (n)
                qsort(v, n, sizeof(char *), str_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int write_header(struct creator *c, const char *rel, const struct stat *st, const char *link,
                        struct pbox_error *err)
{
        if (++c->st.entries > max_entries_of(c->o))
                return pbox_error_set(err, E2BIG, "more than %llu entries", (unsigned long long) max_entries_of(c->o));
        struct archive_entry *e = archive_entry_new();
        if (!e)
                abort();
        archive_entry_copy_pathname(e, rel);
        archive_entry_set_mode(e, st->st_mode);
        archive_entry_set_uid(e, st->st_uid);
        archive_entry_set_gid(e, st->st_gid);
        archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
        if (link)
                archive_entry_copy_symlink(e, link);
        int ar = archive_write_header(c->a, e);
        archive_entry_free(e);
        if (ar < ARCHIVE_WARN)
                return creator_error(c, rel, err);
        return 0;
}

/* Write exactly st->st_size bytes of fd: a file that shrinks meanwhile is
 * padded with zeros, one that grows is cut. */
static int write_data(struct creator *c, const char *rel, int fd, const struct stat *st, struct pbox_error *err)
{
        uint64_t left = (uint64_t) st->st_size, off = 0;
        bool eof = false;
        while (left > 0) {
                size_t want = left < TARTREE_BUF ? (size_t) left : TARTREE_BUF;
                ssize_t n = 0;
                if (!eof) {
                        n = pread(fd, c->buf, want, (off_t) off);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return pbox_error_sys(err, errno, "'%s': read", rel);
                }
                if (n == 0) {
                        eof = true;
                        memset(c->buf, 0, want);
                        n = (ssize_t) want;
                }
                la_ssize_t w = archive_write_data(c->a, c->buf, (size_t) n);
                if (w < 0)
                        return creator_error(c, rel, err);
                left -= (uint64_t) n;
                off += (uint64_t) n;
        }
        c->st.bytes += (uint64_t) st->st_size;
        if (archive_write_finish_entry(c->a) < ARCHIVE_WARN)
                return creator_error(c, rel, err);
        return 0;
}

static int create_dir(struct creator *c, int dfd, const char *prefix, unsigned depth, struct pbox_error *err);

static int create_one(struct creator *c, int dfd, const char *name, const char *rel, unsigned depth,
                      struct pbox_error *err)
{
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT) {
                        c->st.skipped++;        /* vanished */
                        return 0;
                }
                return pbox_error_sys(err, errno, "'%s': stat", rel);
        }
        if (S_ISLNK(st.st_mode)) {
                char target[TARTREE_MAX_LINK + 1];
                ssize_t n = readlinkat(dfd, name, target, sizeof target);
                if (n < 0 && (errno == ENOENT || errno == EINVAL)) {
                        c->st.skipped++;        /* vanished or replaced */
                        return 0;
                }
                if (n < 0)
                        return pbox_error_sys(err, errno, "'%s': readlink", rel);
                if ((size_t) n >= sizeof target || n == 0) {
                        c->st.skipped++;
                        return 0;
                }
                target[n] = '\0';
                return write_header(c, rel, &st, target, err);
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                c->st.skipped++;        /* fifo, socket, device */
                return 0;
        }

        int flags = S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY | O_NONBLOCK : O_RDONLY | O_NONBLOCK | O_NOCTTY;
        int fd = open_beneath(dfd, name, flags, c->o->one_file_system);
        if (fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR || fd == -EXDEV || fd == -EWOULDBLOCK) {
                /* vanished, replaced (by a symlink), another mount, a leased file */
                c->st.skipped++;
                return 0;
        }
        if (fd < 0)
                return pbox_error_sys(err, -fd, "'%s': open", rel);
        _cleanup_close_ int cfd = fd;
        /* The type and size that count are those of what we opened. */
        if (fstat(cfd, &st) < 0)
                return pbox_error_sys(err, errno, "'%s': stat", rel);
        if (S_ISDIR(st.st_mode)) {
                if (depth >= TARTREE_MAX_DEPTH)
                        return pbox_error_set(err, ENAMETOOLONG, "'%.200s...': deeper than %d directories", rel,
                                              TARTREE_MAX_DEPTH);
                int r = write_header(c, rel, &st, NULL, err);
                if (r < 0)
                        return r;
                return create_dir(c, cfd, rel, depth + 1, err);
        }
        if (!S_ISREG(st.st_mode)) {
                c->st.skipped++;
                return 0;
        }
        int r = write_header(c, rel, &st, NULL, err);
        if (r < 0)
                return r;
        return write_data(c, rel, cfd, &st, err);
}

static int create_dir(struct creator *c, int dfd, const char *prefix, unsigned depth, struct pbox_error *err)
{
        char **names = NULL;
        size_t n = 0;
        int r = read_names(dfd, &names, &n);
        if (r < 0)
                return pbox_error_sys(err, -r, "'%s': read directory", *prefix ? prefix : ".");
        for (size_t i = 0; i < n; i++) {
                if (r >= 0) {
                        _cleanup_free_ char *rel = *prefix ? util_xasprintf("%s/%s", prefix, names[i])
                                                           : util_xstrdup(names[i]);
                        if (strlen(rel) > TARTREE_MAX_NAME)
                                r = pbox_error_set(err, ENAMETOOLONG, "'%.200s...': name longer than %d bytes", rel,
                                                   TARTREE_MAX_NAME);
                        else
                                r = create_one(c, dfd, names[i], rel, depth, err);
                }
                free(names[i]);
        }
        free(names);
        return r < 0 ? r : 0;
}

int tartree_create(int dir_fd, int out_fd, const struct tartree_opts *opts, struct tartree_stats *ret,
                   struct pbox_error *err)
{
        struct creator c = { .o = opts, .out_fd = out_fd };
        c.a = archive_write_new();
        if (!c.a)
                abort();
        int r;
        if (archive_write_set_format_pax_restricted(c.a) != ARCHIVE_OK ||
            archive_write_open(c.a, &c, NULL, creator_write, NULL) != ARCHIVE_OK) {
                r = pbox_error_set(err, EIO, "cannot start the archive: %s", archive_error_string(c.a));
                archive_write_free(c.a);
                return r;
        }
        c.buf = util_xmalloc(TARTREE_BUF);
        r = create_dir(&c, dir_fd, "", 0, err);
        if (r >= 0 && archive_write_close(c.a) != ARCHIVE_OK)
                r = creator_error(&c, ".", err);
        archive_write_free(c.a);
        free(c.buf);
        if (r < 0)
                return r;
        if (ret)
                *ret = c.st;
        return 0;
}

/* ======================================================================== */
/* extracting                                                               */
/* ======================================================================== */

struct dir_meta {
        char *path;
        mode_t perm;
        struct timespec mtime;
};

struct extractor {
        const struct tartree_opts *o;
        int root_fd;
        struct archive *a;
        int src_fd;
        uint64_t src_len, src_off;
        char *buf;
        uint64_t stream_max;    /* uncompressed tar stream */
        struct dir_meta *dirs;
        size_t n_dirs, cap_dirs;
        struct tartree_stats st;
};

static la_ssize_t extractor_read(struct archive *a, void *data, const void **buf)
{
        struct extractor *x = data;
        uint64_t left = x->src_len - x->src_off;
        size_t want = left < TARTREE_BUF ? (size_t) left : TARTREE_BUF;
        if (want == 0)
                return 0;
        for (;;) {
                ssize_t n = pread(x->src_fd, x->buf, want, (off_t) x->src_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        archive_set_error(a, errno, "read: %s", strerror(errno));
                        return -1;
                }
                x->src_off += (uint64_t) n;
                *buf = x->buf;
                return n;
        }
}

static mode_t entry_perm(struct archive_entry *e, bool is_dir, mode_t umask_bits)
{
        mode_t perm = archive_entry_perm(e) & 07777;
        perm &= ~(mode_t) S_ISUID;
        if (!is_dir)
                perm &= ~(mode_t) S_ISGID;
        return perm & ~umask_bits;
}

static void entry_mtime(struct archive_entry *e, struct timespec ts[2])
{
        ts[1].tv_sec = archive_entry_mtime(e);
        ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
        if (ts[1].tv_nsec < 0 || ts[1].tv_nsec >= 1000000000)
                ts[1].tv_nsec = 0;
        ts[0] = ts[1];
}

static int chown_at(struct extractor *x, int dfd, const char *name, const char *entry, struct pbox_error *err)
{
        if (!x->o->chown)
                return 0;
        if (fchownat(dfd, name, x->o->uid, x->o->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", entry);
        return 0;
}

static int parent_error(int code, const char *entry, struct pbox_error *err)
{
        if (code == ELOOP)
                return pbox_error_set(err, ELOOP, "entry '%s': a parent directory is a symlink (never followed)", entry);
        if (code == ENOTDIR)
                return pbox_error_set(err, ENOTDIR, "entry '%s': a parent is not a directory (symlinks are never followed)",
                                      entry);
        if (code == EXDEV)
                return pbox_error_set(err, EXDEV, "entry '%s': a parent directory is another mount", entry);
        return pbox_error_sys(err, code, "entry '%s': open the parent directory", entry);
}

/* Make the missing directories of dir one component at a time, each
 * relative to the previous one; returns an O_PATH fd of dir. */
static int make_parents(struct extractor *x, const char *entry, const char *dir, struct pbox_error *err)
{
        int cur = open_beneath(x->root_fd, "", O_PATH | O_DIRECTORY, false);
        if (cur < 0)
                return parent_error(-cur, entry, err);
        _cleanup_free_ char *copy = util_xstrdup(dir);
        for (char *p = copy; *p;) {
                char *end = strchrnul(p, '/');
                bool more = *end == '/';
                *end = '\0';
                int fd = open_beneath(cur, p, O_PATH | O_DIRECTORY, x->o->one_file_system);
                if (fd == -ENOENT) {
                        if (mkdirat(cur, p, 0755 & ~x->o->umask) == 0) {
                                int r = chown_at(x, cur, p, entry, err);
                                if (r < 0) {
                                        close(cur);
                                        return r;
                                }
                        } else if (errno != EEXIST) {
                                int e = errno;
                                close(cur);
                                return pbox_error_sys(err, e, "entry '%s': create directory '%s'", entry, p);
                        }
                        fd = open_beneath(cur, p, O_PATH | O_DIRECTORY, x->o->one_file_system);
                }
                close(cur);
                if (fd < 0)
                        return parent_error(-fd, entry, err);
                cur = fd;
                p = more ? end + 1 : end;
        }
        return cur;
}

/* An O_PATH fd of dir (cleaned, relative) beneath the root; missing
 * directories are made, nothing is followed. */
static int open_parent(struct extractor *x, const char *entry, const char *dir, struct pbox_error *err)
{
        int fd = open_beneath(x->root_fd, dir, O_PATH | O_DIRECTORY, x->o->one_file_system);
        if (fd >= 0)
                return fd;
        if (fd == -ENOENT)
                return make_parents(x, entry, dir, err);
        return parent_error(-fd, entry, err);
}

/* What exists at parent/base: 0 nothing, 1 a directory, 2 something else
 * (which is then removed unless keep). */
static int clear_name(int parent, const char *base, const char *entry, struct pbox_error *err)
{
        struct stat st;
        if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pbox_error_sys(err, errno, "entry '%s': stat", entry);
        }
        if (S_ISDIR(st.st_mode))
                return pbox_error_set(err, EISDIR, "entry '%s': a directory of that name exists", entry);
        if (unlinkat(parent, base, 0) < 0 && errno != ENOENT)
                return pbox_error_sys(err, errno, "entry '%s': replace", entry);
        return 0;
}

static int extract_file(struct extractor *x, struct archive_entry *e, const char *path, int parent,
                        const char *base, struct pbox_error *err)
{
        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': negative size", path);
        if (x->o->max_bytes && (uint64_t) size > x->o->max_bytes - x->st.bytes)
                return pbox_error_set(err, EFBIG, "entry '%s': the files are larger than the limit of %llu bytes", path,
                                      (unsigned long long) x->o->max_bytes);
        int r = clear_name(parent, base, path, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "entry '%s': create", path);
        for (;;) {
                const void *blk;
                size_t len;
                la_int64_t off;
                int ar = archive_read_data_block(x->a, &blk, &len, &off);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return pbox_error_set(err, EINVAL, "entry '%s': %s", path, archive_error_string(x->a));
                if (off < 0 || (uint64_t) off > (uint64_t) size || len > (uint64_t) size - (uint64_t) off)
                        return pbox_error_set(err, EINVAL, "entry '%s': data beyond the entry's size", path);
                r = util_pwrite_all(fd, blk, len, (off_t) off);
                if (r < 0)
                        return pbox_error_sys(err, -r, "entry '%s': write", path);
        }
        if (size > 0 && ftruncate(fd, (off_t) size) < 0)        /* a sparse tail */
                return pbox_error_sys(err, errno, "entry '%s': truncate", path);
        x->st.bytes += (uint64_t) size;
        if (x->o->chown && fchown(fd, x->o->uid, x->o->gid) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", path);
        if (fchmod(fd, entry_perm(e, false, x->o->umask)) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chmod", path);
        struct timespec ts[2];
        entry_mtime(e, ts);
        if (futimens(fd, ts) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", path);
        return 0;
}

static int extract_symlink(struct extractor *x, struct archive_entry *e, const char *path, int parent,
                           const char *base, struct pbox_error *err)
{
        const char *target = archive_entry_symlink(e);
        if (!target || !*target || strlen(target) > TARTREE_MAX_LINK)
                return pbox_error_set(err, EINVAL, "entry '%s': bad symlink target", path);
        int r = clear_name(parent, base, path, err);
        if (r < 0)
                return r;
        /* Stored verbatim: it is never followed by us, only ever resolved
         * by whoever later looks inside the tree. */
        if (symlinkat(target, parent, base) < 0)
                return pbox_error_sys(err, errno, "entry '%s': symlink", path);
        r = chown_at(x, parent, base, path, err);
        if (r < 0)
                return r;
        struct timespec ts[2];
        entry_mtime(e, ts);
        (void) utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
}

static int extract_hardlink(struct extractor *x, const char *link_raw, const char *path, int parent,
                            const char *base, struct pbox_error *err)
{
        _cleanup_free_ char *target = NULL;
        int r = pathsafe_clean_entry(link_raw, false, &target, err);
        if (r < 0)
                return pbox_error_prefix(err, "entry '%s': hardlink target", path);
        if (!strcmp(target, path))
                return 0;
        _cleanup_free_ char *tdir = NULL;
        const char *tbase;
        split_path(target, &tdir, &tbase);
        int tfd = open_beneath(x->root_fd, tdir, O_PATH | O_DIRECTORY, x->o->one_file_system);
        if (tfd < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' cannot be reached (%s)", path,
                                      link_raw, tfd == -ELOOP ? "through a symlink" : strerror(-tfd));
        _cleanup_close_ int tparent = tfd;
        struct stat st;
        if (fstatat(tparent, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' does not exist", path, link_raw);
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' is not a regular file", path,
                                      link_raw);
        r = clear_name(parent, base, path, err);
        if (r < 0)
                return r;
        if (linkat(tparent, tbase, parent, base, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': link to '%s'", path, link_raw);
        return 0;
}

static int extract_dir(struct extractor *x, struct archive_entry *e, const char *path, int parent,
                       const char *base, struct pbox_error *err)
{
        struct stat st;
        if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return pbox_error_set(err, EEXIST, "entry '%s': exists and is not a directory", path);
        } else if (errno != ENOENT) {
                return pbox_error_sys(err, errno, "entry '%s': stat", path);
        } else if (mkdirat(parent, base, 0700) < 0) {
                return pbox_error_sys(err, errno, "entry '%s': mkdir", path);
        }
        int r = chown_at(x, parent, base, path, err);
        if (r < 0)
                return r;
        if (x->n_dirs == x->cap_dirs) {
                x->cap_dirs = x->cap_dirs ? x->cap_dirs * 2 : 64;
                x->dirs = util_xrealloc(x->dirs, x->cap_dirs * sizeof *x->dirs);
        }
        struct timespec ts[2];
        entry_mtime(e, ts);
        x->dirs[x->n_dirs++] = (struct dir_meta) { util_xstrdup(path), entry_perm(e, true, x->o->umask), ts[1] };
        return 0;
}

/* Modes and times of directories last, deepest (latest) first; best effort:
 * an entry may have been replaced since. */
static void apply_dir_meta(struct extractor *x)
{
        for (size_t i = x->n_dirs; i > 0; i--) {
                struct dir_meta *d = &x->dirs[i - 1];
                int fd = open_beneath(x->root_fd, d->path, O_RDONLY | O_DIRECTORY, x->o->one_file_system);
                if (fd < 0)
                        continue;
                (void) fchmod(fd, d->perm);
                struct timespec ts[2] = { d->mtime, d->mtime };
                (void) futimens(fd, ts);
                close(fd);
        }
}

static int extract_entry(struct extractor *x, struct archive_entry *e, struct pbox_error *err)
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
        if (depth > TARTREE_MAX_DEPTH)
                return pbox_error_set(err, ENAMETOOLONG, "entry '%.200s...': deeper than %d directories", path,
                                      TARTREE_MAX_DEPTH);

        const char *hardlink = archive_entry_hardlink(e);
        mode_t type = archive_entry_filetype(e);
        if (!*path) {
                /* the directory itself ("./"): its metadata stays as it is */
                if (hardlink || type != AE_IFDIR)
                        return pbox_error_set(err, EINVAL, "entry '%s': the top of the archive must be a directory", raw);
                return 0;
        }
        if (!hardlink) {
                if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK) {
                        x->st.skipped++;        /* by policy */
                        return 0;
                }
                if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
                        return pbox_error_set(err, EINVAL, "entry '%s': unsupported entry type 0%o", path, (unsigned) type);
        }

        _cleanup_free_ char *dir = NULL;
        const char *base;
        split_path(path, &dir, &base);
        int pfd = open_parent(x, path, dir, err);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int parent = pfd;
        if (hardlink)
                return extract_hardlink(x, hardlink, path, parent, base, err);
        switch (type) {
        case AE_IFDIR:
                return extract_dir(x, e, path, parent, base, err);
        case AE_IFREG:
                return extract_file(x, e, path, parent, base, err);
        default:
                return extract_symlink(x, e, path, parent, base, err);
        }
}

static int stream_check(struct extractor *x, struct pbox_error *err)
{
        if (x->stream_max && (uint64_t) archive_filter_bytes(x->a, 0) > x->stream_max)
                return pbox_error_set(err, EFBIG, "the uncompressed archive is larger than %llu bytes",
                                      (unsigned long long) x->stream_max);
        return 0;
}

int tartree_extract(int src_fd, const void *src_buf, uint64_t src_len, int dir_fd,
                    const struct tartree_opts *opts, struct tartree_stats *ret, struct pbox_error *err)
{
        struct extractor x = {
                .o = opts,
                .root_fd = dir_fd,
                .src_fd = src_fd,
                .src_len = src_len,
        };
        /* Headers (up to three 512-byte blocks per entry with pax) and
         * padding come on top of the file data. */
        if (opts->max_bytes)
                x.stream_max = opts->max_bytes + max_entries_of(opts) * 2048 + (64u << 20);
        x.a = archive_read_new();
        if (!x.a)
                abort();
        int r;
        static int (*const filters[])(struct archive *) = {
                archive_read_support_filter_gzip, archive_read_support_filter_zstd,
                archive_read_support_filter_xz, archive_read_support_filter_bzip2,
        };
        for (size_t i = 0; i < ARRAY_SIZE(filters); i++)
                (void) filters[i](x.a);         /* only built-in ones; ARCHIVE_WARN = external program */
        archive_read_support_format_tar(x.a);
        if (src_fd >= 0) {
                x.buf = util_xmalloc(TARTREE_BUF);
                r = archive_read_open(x.a, &x, NULL, extractor_read, NULL);
        } else {
                r = archive_read_open_memory(x.a, src_buf, (size_t) src_len);
        }
        if (r != ARCHIVE_OK) {
                r = pbox_error_set(err, EINVAL, "not a tar archive: %s", archive_error_string(x.a));
                goto out;
        }
        for (;;) {
                struct archive_entry *e;
                int ar = archive_read_next_header(x.a, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if ((r = stream_check(&x, err)) < 0)
                        goto out;
                if (ar < ARCHIVE_WARN) {
                        r = pbox_error_set(err, EINVAL, "bad tar archive after %llu entries: %s",
                                           (unsigned long long) x.st.entries, archive_error_string(x.a));
                        goto out;
                }
                if (++x.st.entries > max_entries_of(opts)) {
                        r = pbox_error_set(err, E2BIG, "the archive has more than %llu entries",
                                           (unsigned long long) max_entries_of(opts));
                        goto out;
                }
                r = extract_entry(&x, e, err);
                if (r < 0)
                        goto out;
                if (archive_read_data_skip(x.a) < ARCHIVE_WARN) {
                        r = pbox_error_set(err, EINVAL, "bad tar archive: %s", archive_error_string(x.a));
                        goto out;
                }
        }
        r = 0;
out:
        apply_dir_meta(&x);
        for (size_t i = 0; i < x.n_dirs; i++)
                free(x.dirs[i].path);
        free(x.dirs);
        archive_read_free(x.a);
        free(x.buf);
        if (r < 0)
                return r;
        if (ret)
                *ret = x.st;
        return 0;
}
