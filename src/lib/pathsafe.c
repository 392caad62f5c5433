/* pathsafe.c — untrusted path handling: cleaning archive entry names,
 * classifying overlay whiteout entries, and opening a path beneath a root
 * directory without ever leaving it (openat2 RESOLVE_IN_ROOT, or a component
 * walk with O_NOFOLLOW that re-roots symlinks by hand on kernels without
 * openat2), or beneath a directory following no symlink at all.  See
 * pathsafe.h for the contracts. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "pathsafe.h"
#include "syscalls.h"
#include "util.h"

#define PATHSAFE_MAX_NAME 4096          /* raw entry name length, like PATH_MAX */
#define PATHSAFE_MAX_SYMLINKS 40        /* like the kernel's MAXSYMLINKS */
#define PATHSAFE_MAX_DEPTH 1024         /* directories deep during the fallback walk */

int pathsafe_clean_entry(const char *name, bool allow_root, char **ret, struct pbox_error *err)
{
        if (!name)
                return pbox_error_set(err, EINVAL, "entry without a name");
        size_t len = strnlen(name, PATHSAFE_MAX_NAME + 1);
        if (len > PATHSAFE_MAX_NAME)
                return pbox_error_set(err, ENAMETOOLONG, "entry '%.64s...': name longer than %d bytes",
                                      name, PATHSAFE_MAX_NAME);

        char *out = util_xmalloc(len + 1);
        size_t o = 0;
        const char *p = name;
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *end = strchrnul(p, '/');
                size_t clen = (size_t) (end - p);
                if (clen == 1 && p[0] == '.') {
                        p = end;
                        continue;
                }
                if (clen == 2 && p[0] == '.' && p[1] == '.') {
                        free(out);
                        return pbox_error_set(err, EINVAL, "entry '%s': '..' path components are not allowed", name);
                }
                if (clen > NAME_MAX) {
                        free(out);
                        return pbox_error_set(err, ENAMETOOLONG, "entry '%.64s...': a path component is longer than %d bytes",
                                              name, NAME_MAX);
                }
                if (o > 0)
                        out[o++] = '/';
                memcpy(out + o, p, clen);
                o += clen;
                p = end;
        }
        out[o] = '\0';
        if (o == 0 && !allow_root) {
                free(out);
                return pbox_error_set(err, EINVAL, "entry '%s': empty path", name);
        }
        *ret = out;
        return 0;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
        size_t pl = strlen(prefix);
        return len >= pl && memcmp(s, prefix, pl) == 0;
}

enum whiteout_kind pathsafe_whiteout(const char *clean_path, char **ret_target)
{
        const char *slash = strrchr(clean_path, '/');
        const char *base = slash ? slash + 1 : clean_path;
        size_t dir_len = slash ? (size_t) (slash - clean_path) : 0;

        /* A ".wh."-prefixed directory component is never valid: a whiteout is
         * a leaf and nothing can live beneath it. */
        for (const char *p = clean_path; p < base;) {
                const char *end = strchrnul(p, '/');
                if (has_prefix(p, (size_t) (end - p), ".wh."))
                        return WHITEOUT_INVALID;
                p = *end ? end + 1 : end;
        }

        size_t blen = strlen(base);
        if (!has_prefix(base, blen, ".wh."))
                return WHITEOUT_NONE;
        if (strcmp(base, ".wh..wh..opq") == 0) {
                if (ret_target)
                        *ret_target = strndup(clean_path, dir_len);
                if (ret_target && !*ret_target)
                        abort();
                return WHITEOUT_OPAQUE;
        }
        if (has_prefix(base, blen, ".wh..wh."))
                return WHITEOUT_INVALID;        /* aufs metadata or an unknown special */
        const char *name = base + 4;
        if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return WHITEOUT_INVALID;
        if (ret_target)
                *ret_target = dir_len > 0 ? util_xasprintf("%.*s/%s", (int) dir_len, clean_path, name)
                                          : util_xstrdup(name);
        return WHITEOUT_FILE;
}

/* ---- open beneath a root -------------------------------------------------- */

/* The fallback for kernels without openat2: walk the components by hand.
 * Every intermediate component is opened O_PATH|O_NOFOLLOW; a symlink is
 * read and its target spliced into the remaining path, re-rooted at root_fd
 * when absolute; ".." never climbs above the root (a stack of the ancestor
 * fds, as RESOLVE_IN_ROOT does). */
struct walk_stack {
        int *fds;
        size_t n, cap;
};

static void walk_stack_clear(struct walk_stack *s)
{
        for (size_t i = 0; i < s->n; i++)
                close(s->fds[i]);
        free(s->fds);
        s->fds = NULL;
        s->n = s->cap = 0;
}

static void walk_stack_push(struct walk_stack *s, int fd)
{
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 16;
                s->fds = util_xrealloc(s->fds, s->cap * sizeof(int));
        }
        s->fds[s->n++] = fd;
}

/* Replace the remaining path with "<target>/<rest>". */
static char *splice_symlink(const char *target, const char *rest)
{
        if (!*rest)
                return util_xstrdup(target);
        return util_xasprintf("%s/%s", target, rest);
}

static int read_link_at(int dirfd, const char *name, char **ret)
{
        char buf[PATH_MAX + 1];
        ssize_t n = readlinkat(dirfd, name, buf, sizeof buf);
        if (n < 0)
                return -errno;
        if ((size_t) n >= sizeof buf)
                return -ENAMETOOLONG;
        if (n == 0)
                return -ENOENT;
        buf[n] = '\0';
        *ret = util_xstrdup(buf);
        return 0;
}

int pathsafe_open_beneath_walk(int root_fd, const char *path, int flags, mode_t mode, bool no_symlinks)
{
        struct walk_stack stack = { 0 };
        int cur = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return -errno;
        char *remaining = util_xstrdup(path);
        unsigned nlinks = 0;
        int r;

        for (;;) {
                /* Next component of remaining. */
                char *p = remaining;
                while (*p == '/')
                        p++;
                if (!*p) {
                        /* Path ended on a directory we hold (root, or after ".."). */
                        r = openat(cur, ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
                        r = r < 0 ? -errno : r;
                        goto out;
                }
                char *end = strchrnul(p, '/');
                char *rest = end;
                while (*rest == '/')
                        rest++;
                bool last = *rest == '\0';
                char comp[NAME_MAX + 1];
                size_t clen = (size_t) (end - p);
                if (clen > NAME_MAX) {
                        r = -ENAMETOOLONG;
                        goto out;
                }
                memcpy(comp, p, clen);
                comp[clen] = '\0';

                if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
                        if (comp[1] == '.' && stack.n > 0) {
                                close(cur);
                                cur = stack.fds[--stack.n];
                        }
                        char *next = util_xstrdup(rest);
                        free(remaining);
                        remaining = next;
                        continue;
                }

                char *target = NULL;
                if (!last) {
                        int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                        if (fd < 0) {
                                r = -errno;
                                goto out;
                        }
                        struct stat st;
                        if (fstat(fd, &st) < 0) {
                                r = -errno;
                                close(fd);
                                goto out;
                        }
                        if (S_ISDIR(st.st_mode)) {
                                if (stack.n >= PATHSAFE_MAX_DEPTH) {
                                        close(fd);
                                        r = -ELOOP;
                                        goto out;
                                }
                                walk_stack_push(&stack, cur);
                                cur = fd;
                                char *next = util_xstrdup(rest);
                                free(remaining);
                                remaining = next;
                                continue;
                        }
                        if (!S_ISLNK(st.st_mode)) {
                                close(fd);
                                r = -ENOTDIR;
                                goto out;
                        }
                        close(fd);
                        if (no_symlinks) {
                                r = -ELOOP;
                                goto out;
                        }
                        r = read_link_at(cur, comp, &target);
                        if (r < 0)
                                goto out;
                } else {
                        int fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
                        if (fd >= 0) {
                                /* O_PATH|O_NOFOLLOW gives the symlink itself (as
                                 * openat2 does, even with RESOLVE_NO_SYMLINKS) */
                                struct stat st;
                                if (!(flags & O_PATH) || (flags & O_NOFOLLOW) || fstat(fd, &st) < 0 ||
                                    !S_ISLNK(st.st_mode)) {
                                        r = fd;
                                        goto out;
                                }
                                close(fd);      /* an O_PATH fd of a symlink: follow it below */
                        } else {
                                r = -errno;
                                if (r != -ELOOP && r != -ENOTDIR)
                                        goto out;
                                struct stat st;
                                if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
                                        goto out;
                                if (flags & O_NOFOLLOW)
                                        goto out;
                        }
                        if (no_symlinks) {
                                r = -ELOOP;
                                goto out;
                        }
                        r = read_link_at(cur, comp, &target);
                        if (r < 0)
                                goto out;
                }

                /* Splice a symlink target in. */
                if (++nlinks > PATHSAFE_MAX_SYMLINKS) {
                        free(target);
                        r = -ELOOP;
                        goto out;
                }
                if (target[0] == '/') {
                        close(cur);
                        cur = stack.n > 0 ? stack.fds[0] : -1;
                        if (stack.n > 0) {
                                for (size_t i = 1; i < stack.n; i++)
                                        close(stack.fds[i]);
                                stack.n = 0;
                        } else {
                                cur = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                                if (cur < 0) {
                                        r = -errno;
                                        free(target);
                                        goto out;
                                }
                        }
                }
                char *next = splice_symlink(target, rest);
                free(target);
                free(remaining);
                remaining = next;
        }
out:
        if (cur >= 0)
                close(cur);
        walk_stack_clear(&stack);
        free(remaining);
        return r;
}

int pathsafe_open_beneath(int root_fd, const char *path, int flags, mode_t mode, bool no_symlinks)
{
        if (!path)
                return -EINVAL;
        if (strnlen(path, PATH_MAX) >= PATH_MAX)
                return -ENAMETOOLONG;
        /* Leading slashes mean the root here; openat2 treats "/x" under
         * RESOLVE_IN_ROOT the same way, the walk strips them itself. */
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
                           (no_symlinks ? RESOLVE_NO_SYMLINKS : 0),
        };
        const char *p = *path ? path : ".";
        for (int attempt = 0; attempt < 16; attempt++) {
                int fd = sys_openat2(root_fd, p, &how, sizeof how);
                if (fd >= 0)
                        return fd;
                if (errno == EAGAIN)
                        continue;       /* a concurrent rename; the kernel asks us to retry */
                if (errno == ENOSYS || errno == E2BIG)
                        return pathsafe_open_beneath_walk(root_fd, path, flags, mode, no_symlinks);
                return -errno;
        }
        return -EAGAIN;
}

static bool no_openat2;        /* the kernel said ENOSYS/E2BIG once */

static int open_nofollow(int dir_fd, const char *path, int flags, bool no_xdev)
{
        if (!path)
                return -EINVAL;
        if (strnlen(path, PATH_MAX) >= PATH_MAX)
                return -ENAMETOOLONG;
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

int pathsafe_open_nofollow(int dir_fd, const char *path, int flags, bool no_xdev)
{
        int fd = open_nofollow(dir_fd, path, flags, no_xdev);
        if (fd >= 0 && (flags & O_PATH) && !(flags & O_DIRECTORY)) {
                /* O_PATH|O_NOFOLLOW opens a final symlink itself: refuse it too */
                struct stat st;
                if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
                        close(fd);
                        return -ELOOP;
                }
        }
        return fd;
}
