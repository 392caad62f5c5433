/* tartree.c — tar archives of untrusted directory trees, both ways (see
 * tartree.h for the policy).  Everything is relative to directory fds
 * opened beneath the caller's directory with pathsafe_open_nofollow (openat2
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, a component walk on old kernels);
 * nothing is ever opened by a path from "/", and no symlink is followed.
 * The rules every extracted entry passes are tarentry.c's (shared with the
 * image layers); what is the file API's own is here: the umask, the optional
 * owner, one_file_system, the skipped counter, the byte limit, and existing
 * directories that are never replaced. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "pathsafe.h"
#include "tarentry.h"
#include "tartree.h"
#include "util.h"

#define TARTREE_BUF (256 * 1024)
#define TARTREE_MAX_NAME 4096

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
                char target[TARENTRY_MAX_LINK];        /* what the extractors accept */
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
        int fd = pathsafe_open_nofollow(dfd, name, flags, c->o->one_file_system);
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

struct extractor {
        const struct tartree_opts *o;
        struct tarentry_root root;
        struct tarentry_owner owner;    /* of everything made (opts->chown) */
        struct archive *a;
        int src_fd;
        uint64_t src_len, src_off;
        char *buf;
        uint64_t stream_max;    /* uncompressed tar stream */
        struct tarentry_dirs dirs;      /* modes and mtimes of directories, set last */
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

static int extract_file(void *data, const struct tarentry *t, int parent, struct pbox_error *err)
{
        struct extractor *x = data;
        struct archive_entry *e = t->entry;
        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': negative size", t->path);
        if (x->o->max_bytes && (uint64_t) size > x->o->max_bytes - x->st.bytes)
                return pbox_error_set(err, EFBIG, "entry '%s': the files are larger than the limit of %llu bytes",
                                      t->path, (unsigned long long) x->o->max_bytes);
        int r = tarentry_create_file(&x->root, parent, t->base, t->path, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = r;
        r = tarentry_write_data(x->a, fd, t->path, size, err);
        if (r < 0)
                return r;
        x->st.bytes += (uint64_t) size;
        struct timespec ts[2];
        tarentry_times(e, ts);
        return tarentry_set_meta(fd, t->path, &x->owner, tarentry_perm(e, false, x->o->umask), ts, err);
}

static int extract_dir(void *data, const struct tarentry *t, int parent, struct pbox_error *err)
{
        struct extractor *x = data;
        int fd = tarentry_make_dir(&x->root, parent, t->base, t->path, &x->owner, err);
        if (fd < 0)
                return fd;
        close(fd);
        /* the mode last, so that a read-only directory can still be filled */
        struct timespec ts[2];
        tarentry_times(t->entry, ts);
        tarentry_dirs_add(&x->dirs, t->path, tarentry_perm(t->entry, true, x->o->umask), ts);
        return 0;
}

static int extract_entry(struct extractor *x, struct archive_entry *e, struct pbox_error *err)
{
        _cleanup_tarentry_ struct tarentry t = { 0 };
        int r = tarentry_read(e, TARTREE_MAX_DEPTH, &t, err);
        if (r < 0)
                return r;
        if (t.kind == TARENTRY_TOP)
                return 0;       /* the directory itself ("./"): its metadata stays as it is */
        if (t.kind == TARENTRY_SPECIAL) {
                x->st.skipped++;        /* by policy: devices, fifos, sockets */
                return 0;
        }
        static const struct tarentry_ops ops = { .dir = extract_dir, .file = extract_file };
        return tarentry_make(&x->root, &t, &x->owner, &ops, x, err);
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
                .root = {
                        .fd = dir_fd,
                        .no_xdev = opts->one_file_system,
                        .replace_dirs = false,  /* a live tree: a directory is never replaced */
                        .parent_mode = 0755 & ~opts->umask,
                        .parent_owner = { opts->chown, opts->uid, opts->gid },
                },
                .owner = { opts->chown, opts->uid, opts->gid },
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
        tarentry_dirs_apply(&x.dirs, &x.root);
        tarentry_dirs_free(&x.dirs);
        archive_read_free(x.a);
        free(x.buf);
        if (r < 0)
                return r;
        if (ret)
                *ret = x.st;
        return 0;
}
