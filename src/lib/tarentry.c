/* tarentry.c — the checks every untrusted tar entry passes and the no-follow
 * directory walk both tar extractors (layer_store.c, tartree.c) use: name
 * cleaning, depth, type policy, link targets, modes and times, parents
 * opened and made beneath the root without following a symlink, and the
 * replacement of what exists.  Everything is relative to directory fds; see
 * tarentry.h for the rules. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "pathsafe.h"
#include "tarentry.h"
#include "util.h"

int tarentry_read(struct archive_entry *e, unsigned max_depth, struct tarentry *ret, struct pbox_error *err)
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
        if (depth > max_depth)
                return pbox_error_set(err, ENAMETOOLONG, "entry '%.200s...': deeper than %u directories", path,
                                      max_depth);

        struct tarentry t = { .entry = e, .raw = raw };
        _cleanup_free_ char *link = NULL;
        const char *hardlink = archive_entry_hardlink(e);
        mode_t type = archive_entry_filetype(e);
        if (hardlink) {
                r = pathsafe_clean_entry(hardlink, false, &link, err);
                if (r < 0)
                        return pbox_error_prefix(err, "entry '%s': hardlink target", path);
                t.kind = TARENTRY_HARDLINK;
                t.link_raw = hardlink;
        } else {
                switch (type) {
                case AE_IFDIR:
                        t.kind = TARENTRY_DIR;
                        break;
                case AE_IFREG:
                        t.kind = TARENTRY_FILE;
                        break;
                case AE_IFLNK:
                        t.symlink = archive_entry_symlink(e);
                        if (!t.symlink || !*t.symlink)
                                return pbox_error_set(err, EINVAL, "entry '%s': symlink without a target", path);
                        if (strnlen(t.symlink, TARENTRY_MAX_LINK) >= TARENTRY_MAX_LINK)
                                return pbox_error_set(err, EINVAL, "entry '%s': symlink target longer than %d bytes",
                                                      path, TARENTRY_MAX_LINK - 1);
                        t.kind = TARENTRY_SYMLINK;
                        break;
                case AE_IFCHR:
                case AE_IFBLK:
                case AE_IFIFO:
                case AE_IFSOCK:
                        t.kind = TARENTRY_SPECIAL;
                        break;
                default:
                        return pbox_error_set(err, EINVAL, "entry '%s': unsupported entry type 0%o", path,
                                              (unsigned) type);
                }
        }
        if (!*path) {
                if (t.kind != TARENTRY_DIR)
                        return pbox_error_set(err, EINVAL, "entry '%s': the top of the archive must be a directory", raw);
                t.kind = TARENTRY_TOP;
        }
        t.path = TAKE_PTR(path);
        t.link = TAKE_PTR(link);
        tarentry_split_path(t.path, &t.dir, &t.base);
        *ret = t;
        return 0;
}

void tarentry_done(struct tarentry *t)
{
        free(t->path);
        free(t->dir);
        free(t->link);
        *t = (struct tarentry) { 0 };
}

void tarentry_split_path(const char *path, char **ret_dir, const char **ret_base)
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

mode_t tarentry_perm(struct archive_entry *e, bool is_dir, mode_t umask_bits)
{
        mode_t perm = archive_entry_perm(e) & 07777;
        perm &= ~(mode_t) S_ISUID;
        if (!is_dir)
                perm &= ~(mode_t) S_ISGID;
        return perm & ~umask_bits;
}

void tarentry_times(struct archive_entry *e, struct timespec ts[2])
{
        ts[1].tv_sec = archive_entry_mtime(e);
        ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
        if (ts[1].tv_nsec < 0 || ts[1].tv_nsec >= 1000000000)
                ts[1].tv_nsec = 0;
        ts[0] = ts[1];
}

/* ---- the walk ------------------------------------------------------------- */

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

static int chown_fd(int fd, const struct tarentry_owner *owner, const char *entry, struct pbox_error *err)
{
        if (!owner->set)
                return 0;
        /* AT_EMPTY_PATH: fd may be O_PATH */
        if (fchownat(fd, "", owner->uid, owner->gid, AT_EMPTY_PATH) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", entry);
        return 0;
}

/* Make the missing directories of dir one component at a time, each
 * relative to the fd of the previous one; returns an O_PATH fd of dir. */
static int make_parents(const struct tarentry_root *root, const char *entry, const char *dir,
                        struct pbox_error *err)
{
        int cur = pathsafe_open_nofollow(root->fd, "", O_PATH | O_DIRECTORY, false);
        if (cur < 0)
                return parent_error(-cur, entry, err);
        _cleanup_free_ char *copy = util_xstrdup(dir);
        for (char *p = copy; *p;) {
                char *end = strchrnul(p, '/');
                bool more = *end == '/';
                *end = '\0';
                int fd = pathsafe_open_nofollow(cur, p, O_PATH | O_DIRECTORY, root->no_xdev);
                if (fd == -ENOENT) {
                        bool made = mkdirat(cur, p, root->parent_mode) == 0;
                        if (!made && errno != EEXIST) {
                                int e = errno;
                                close(cur);
                                return pbox_error_sys(err, e, "entry '%s': create directory '%s'", entry, p);
                        }
                        fd = pathsafe_open_nofollow(cur, p, O_PATH | O_DIRECTORY, root->no_xdev);
                        if (fd >= 0 && made) {
                                int r = chown_fd(fd, &root->parent_owner, entry, err);
                                if (r < 0) {
                                        close(fd);
                                        close(cur);
                                        return r;
                                }
                        }
                }
                close(cur);
                if (fd < 0)
                        return parent_error(-fd, entry, err);
                cur = fd;
                p = more ? end + 1 : end;
        }
        return cur;
}

int tarentry_open_parent(const struct tarentry_root *root, const char *entry, const char *dir,
                         struct pbox_error *err)
{
        int fd = pathsafe_open_nofollow(root->fd, dir, O_PATH | O_DIRECTORY, root->no_xdev);
        if (fd >= 0)
                return fd;
        if (fd == -ENOENT)
                return make_parents(root, entry, dir, err);
        return parent_error(-fd, entry, err);
}

/* ---- making entries --------------------------------------------------------- */

int tarentry_clear(const struct tarentry_root *root, int parent, const char *base, const char *entry, bool is_dir,
                   struct pbox_error *err)
{
        struct stat st;
        if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pbox_error_sys(err, errno, "entry '%s': stat", entry);
        }
        if (S_ISDIR(st.st_mode)) {
                if (is_dir)
                        return 1;
                if (!root->replace_dirs)
                        return pbox_error_set(err, EISDIR, "entry '%s': a directory of that name exists", entry);
                struct pbox_error e2 = PBOX_ERROR_INIT;
                if (util_rm_rf_at(parent, base, &e2) < 0)
                        return pbox_error_set(err, e2.code, "entry '%s': replace directory: %s", entry, e2.message);
                return 0;
        }
        if (is_dir && !root->replace_dirs)
                return pbox_error_set(err, EEXIST, "entry '%s': exists and is not a directory", entry);
        if (unlinkat(parent, base, 0) < 0 && errno != ENOENT)
                return pbox_error_sys(err, errno, "entry '%s': replace", entry);
        return 0;
}

int tarentry_set_meta(int fd, const char *entry, const struct tarentry_owner *owner, mode_t perm,
                      const struct timespec ts[2], struct pbox_error *err)
{
        if (owner->set && fchown(fd, owner->uid, owner->gid) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", entry);
        if (fchmod(fd, perm) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chmod", entry);
        if (ts && futimens(fd, ts) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", entry);
        return 0;
}

int tarentry_make_dir(const struct tarentry_root *root, int parent, const char *base, const char *entry,
                      const struct tarentry_owner *owner, struct pbox_error *err)
{
        int r = tarentry_clear(root, parent, base, entry, true, err);
        if (r < 0)
                return r;
        if (r == 0 && mkdirat(parent, base, 0700) < 0)
                return pbox_error_sys(err, errno, "entry '%s': mkdir", entry);
        int fd = pathsafe_open_nofollow(parent, base, O_PATH | O_DIRECTORY, root->no_xdev);
        if (fd == -EXDEV)
                return pbox_error_set(err, EXDEV, "entry '%s': the directory is another mount", entry);
        if (fd < 0)
                return pbox_error_sys(err, -fd, "entry '%s': open directory", entry);
        r = chown_fd(fd, owner, entry, err);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int tarentry_create_file(const struct tarentry_root *root, int parent, const char *base, const char *entry,
                         struct pbox_error *err)
{
        int r = tarentry_clear(root, parent, base, entry, false, err);
        if (r < 0)
                return r;
        int fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "entry '%s': create", entry);
        return fd;
}

int tarentry_write_data(struct archive *a, int fd, const char *entry, int64_t size, struct pbox_error *err)
{
        if (size < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': negative size", entry);
        for (;;) {
                const void *blk;
                size_t len;
                la_int64_t off;
                int ar = archive_read_data_block(a, &blk, &len, &off);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return pbox_error_set(err, EINVAL, "entry '%s': %s", entry, archive_error_string(a));
                if (off < 0 || (uint64_t) off > (uint64_t) size || len > (uint64_t) size - (uint64_t) off)
                        return pbox_error_set(err, EINVAL, "entry '%s': data beyond the entry's size", entry);
                int r = util_pwrite_all(fd, blk, len, (off_t) off);
                if (r < 0)
                        return pbox_error_sys(err, -r, "entry '%s': write", entry);
        }
        if (size > 0 && ftruncate(fd, (off_t) size) < 0)        /* a sparse tail */
                return pbox_error_sys(err, errno, "entry '%s': truncate", entry);
        return 0;
}

int tarentry_symlink(const struct tarentry_root *root, const struct tarentry *t, int parent,
                     const struct tarentry_owner *owner, const struct timespec ts[2], struct pbox_error *err)
{
        int r = tarentry_clear(root, parent, t->base, t->path, false, err);
        if (r < 0)
                return r;
        /* Stored verbatim: it is never followed by us, only ever resolved by
         * whoever later looks inside the tree (the sandbox, in its own root). */
        if (symlinkat(t->symlink, parent, t->base) < 0)
                return pbox_error_sys(err, errno, "entry '%s': symlink", t->path);
        if (owner->set && fchownat(parent, t->base, owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': chown", t->path);
        if (utimensat(parent, t->base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_sys(err, errno, "entry '%s': set times", t->path);
        return 0;
}

int tarentry_hardlink(const struct tarentry_root *root, const struct tarentry *t, int parent,
                      struct pbox_error *err)
{
        if (!strcmp(t->link, t->path))
                return 0;
        _cleanup_free_ char *tdir = NULL;
        const char *tbase;
        tarentry_split_path(t->link, &tdir, &tbase);
        int tfd = pathsafe_open_nofollow(root->fd, tdir, O_PATH | O_DIRECTORY, root->no_xdev);
        if (tfd < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' cannot be reached (%s)", t->path,
                                      t->link_raw, tfd == -ELOOP ? "through a symlink" : strerror(-tfd));
        _cleanup_close_ int tparent = tfd;
        struct stat st;
        if (fstatat(tparent, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' does not exist beneath the root", t->path,
                                      t->link_raw);
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
                return pbox_error_set(err, EINVAL, "entry '%s': hardlink target '%s' is not a regular file or symlink",
                                      t->path, t->link_raw);
        int r = tarentry_clear(root, parent, t->base, t->path, false, err);
        if (r < 0)
                return r;
        if (linkat(tparent, tbase, parent, t->base, 0) < 0)
                return pbox_error_sys(err, errno, "entry '%s': link to '%s'", t->path, t->link_raw);
        return 0;
}

int tarentry_make(const struct tarentry_root *root, const struct tarentry *t, const struct tarentry_owner *owner,
                  const struct tarentry_ops *ops, void *data, struct pbox_error *err)
{
        int pfd = tarentry_open_parent(root, t->path, t->dir, err);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int parent = pfd;
        struct timespec ts[2];
        switch (t->kind) {
        case TARENTRY_HARDLINK:
                return tarentry_hardlink(root, t, parent, err);
        case TARENTRY_SYMLINK:
                tarentry_times(t->entry, ts);
                return tarentry_symlink(root, t, parent, owner, ts, err);
        case TARENTRY_DIR:
                return ops->dir(data, t, parent, err);
        case TARENTRY_FILE:
                return ops->file(data, t, parent, err);
        default:
                return pbox_error_set(err, EINVAL, "entry '%s': not made here (kind %d)", t->path, (int) t->kind);
        }
}

/* ---- directory metadata, last ------------------------------------------------- */

void tarentry_dirs_add(struct tarentry_dirs *d, const char *path, mode_t perm, const struct timespec ts[2])
{
        if (d->n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 64;
                d->v = util_xrealloc(d->v, d->cap * sizeof *d->v);
        }
        d->v[d->n++] = (struct tarentry_dir_meta) { util_xstrdup(path), perm, ts[1] };
}

void tarentry_dirs_apply(const struct tarentry_dirs *d, const struct tarentry_root *root)
{
        for (size_t i = d->n; i > 0; i--) {
                const struct tarentry_dir_meta *m = &d->v[i - 1];
                int fd = pathsafe_open_nofollow(root->fd, m->path, O_RDONLY | O_DIRECTORY, root->no_xdev);
                if (fd < 0)
                        continue;       /* replaced by a later entry, or by someone else */
                if (m->perm != TARENTRY_PERM_KEEP)
                        (void) fchmod(fd, m->perm);
                struct timespec ts[2] = { m->mtime, m->mtime };
                (void) futimens(fd, ts);
                close(fd);
        }
}

void tarentry_dirs_free(struct tarentry_dirs *d)
{
        for (size_t i = 0; i < d->n; i++)
                free(d->v[i].path);
        free(d->v);
        *d = (struct tarentry_dirs) { 0 };
}
