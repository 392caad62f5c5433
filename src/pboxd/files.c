/* files.c — file transfer into and out of a sandbox's root (files.h):
 * files.put / files.get (one regular file), files.list (a directory
 * listing), archive.put / archive.get (a tar of a directory's contents).
 *
 * The sandbox is hostile and runs while we work: its root is full of
 * symlinks it chose (/tmp/x -> /etc/shadow, ../../.., /proc/1/root), and it
 * can swap a directory for a symlink between two of our system calls.
 * Three things keep a request inside the sandbox.
 *
 * 1. Resolution.  target->rootfs is the host path of the sandbox's overlay
 *    mount.  In the core's mount namespace nothing is mounted below it
 *    (/proc, /dev, ... of a sandbox are mounts of its own mount namespace,
 *    and those do not propagate back), so what we see is exactly the
 *    sandbox's persistent root file system.  The worker opens it once,
 *    checks that the fd is the root of an overlay mount, and resolves every
 *    request path relative to that fd with openat2(RESOLVE_IN_ROOT:
 *    absolute symlinks and ".." stop at the sandbox's root, as they do for
 *    a process inside | RESOLVE_NO_MAGICLINKS: no /proc/PID/... jumps |
 *    RESOLVE_NO_XDEV: only the overlay, a mount below is refused).  The
 *    kernel resolves atomically with respect to the sandbox's renames (a
 *    directory swapped for a symlink is seen before or after the swap, and
 *    either way inside the root; a rename racing with ".." makes openat2
 *    fail with EAGAIN, and we retry).  Without openat2 (Linux < 5.6),
 *    pathsafe's component walk (O_NOFOLLOW at each step, symlinks re-rooted
 *    by hand) is used and the result must be on the overlay.  Once resolved,
 *    everything is relative to fds: the final name of a put is never
 *    followed (an existing symlink there is replaced, not written through),
 *    and archives are walked and extracted beneath the directory fd by
 *    tartree.c, which follows no symlink at all.  ".." in a request path is
 *    allowed: it resolves inside the root like any other component.
 *
 * 2. Identity.  The worker is a fork of the core (host root, every
 *    capability), and resolution alone would be all that stands between a
 *    bug and the host.  So the process that touches the sandbox's files has
 *    exactly the powers of the sandbox's root: the worker clones a child
 *    into a new user namespace with the sandbox's mapping (0 -> uid_base /
 *    gid_base, uid_count ids), which becomes uid and gid 0 there (host
 *    uid_base/gid_base) with no supplementary groups, keeps only
 *    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER (of
 *    that namespace; bounding set cut to them, no ambient, never
 *    CAP_SYS_ADMIN), sets no_new_privs and is not dumpable.
 *
 *    Why not setresuid(uid_base) in the host namespace with those
 *    capabilities kept (PR_SET_KEEPCAPS): a capability of the host
 *    namespace applies to every host inode, so CAP_DAC_OVERRIDE there would
 *    turn any resolution bug into read and write access to the whole host.
 *    A capability of a user namespace applies only to inodes whose owner
 *    and group are mapped in it (capable_wrt_inode_uidgid): with the
 *    sandbox's mapping that is exactly the sandbox's files (layers are
 *    shifted into the range at unpack time; the sandbox can only create
 *    files of mapped ids), and a host file (host root's or another user's:
 *    unmapped) is reachable only through its "other" permission bits, as
 *    for any unprivileged user -- as it would be for sandbox root itself.
 *    And why not setresuid(uid_base) with no capabilities at all: as safe,
 *    but weaker than sandbox root inside its own tree -- a 0600 file or a
 *    0700 directory of another uid inside the sandbox would be unreadable,
 *    and the requested uid/gid could not be set.  The namespace is a new
 *    one (a stopped sandbox has none left to join) but equivalent:
 *    permission checks depend on the mapping, not on which namespace holds
 *    it.  Files made are owned by sandbox root, or by the uid/gid (inside
 *    the sandbox, < uid_count) the request names, as if sandbox root had
 *    written them.
 *
 *    The child lives in the host pid namespace (invisible from inside the
 *    sandbox, so no sandbox process can name it for ptrace, kill or
 *    process_vm_readv), keeps only the fds it needs (0-2, the request
 *    channel, the root fd, the body) and wipes its copy of the admin token.
 *
 * 3. Bounds.  A file or archive out is at most max_image_bytes (413); so is
 *    the file data of an archive in, with at most 1,000,000 entries (413);
 *    a listing has at most FILES_LIST_MAX entries ("truncated": true).
 *    Every open is O_NONBLOCK: a fifo, or a file lease held by the
 *    sandbox, cannot make a transfer hang.  The core never blocks: the work
 *    runs in a forked worker (core_run_worker), which answers the request.
 *
 * Request bodies (files.put, archive.put) are read with pread(2) from
 * offset 0 of the sealed memfd the api sent (its offset is shared with the
 * api's copy, so it is never relied upon), or from the inline body. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#include "caps.h"
#include "files.h"
#include "json.h"
#include "log.h"
#include "pathsafe.h"
#include "syscalls.h"
#include "tartree.h"
#include "userns.h"
#include "util.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

#define FILES_MAX_PATH 4096
#define FILES_LIST_MAX 100000
#define FILES_ARCHIVE_MAX_ENTRIES 1000000
#define FILES_COPY_BUF (1024 * 1024)
#define FILES_RESOLVE_RETRIES 32
/* Exit status of the transfer process when it could not answer at all. */
#define FILES_EXIT_UNANSWERED 3

enum files_kind { FILES_PUT, FILES_GET, FILES_LIST, ARCHIVE_PUT, ARCHIVE_GET };

static const struct {
        const char *op;
        enum files_kind kind;
} files_ops[] = {
        { "files.put", FILES_PUT },     { "files.get", FILES_GET },       { "files.list", FILES_LIST },
        { "archive.put", ARCHIVE_PUT }, { "archive.get", ARCHIVE_GET },
};

/* The capabilities of sandbox root that file transfers need (see above). */
static const char *const files_cap_names[] = {
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", NULL,
};

/* Everything the worker needs; copied into it by the fork. */
struct files_job {
        enum files_kind kind;
        struct request *req;
        const char *rootfs;
        const char *path;               /* absolute, as given */
        mode_t mode;
        bool set_uid, set_gid;
        uid_t uid;                      /* inside the sandbox */
        gid_t gid;
        bool mkdirs;
        int body_fd;                    /* -1: body/body_len (inline) */
        const char *body;
        uint64_t body_len;
        uint64_t max_bytes;
        struct caps_plan caps;
};

/* The transfer process's view. */
struct files_ctx {
        struct files_job *job;
        int root_fd;
        int sent;                       /* result of the answer, once answered */
};

/* ---- answers (from the transfer process) --------------------------------- */

static int files_status(int code, const char **slug)
{
        switch (code) {
        case ENOENT:
                *slug = "not_found";
                return 404;
        case EINVAL: case ELOOP: case ENAMETOOLONG: case EILSEQ: case EBADMSG: case ERANGE:
                *slug = "bad_request";
                return 400;
        case ENOTDIR: case EISDIR: case EEXIST: case ENOTEMPTY: case EBUSY: case ETXTBSY: case EAGAIN:
        case EMEDIUMTYPE:       /* a fifo, socket or device where a regular file is wanted */
                *slug = "conflict";
                return 409;
        case EXDEV: case EACCES: case EPERM: case EROFS:
                *slug = "forbidden";
                return 403;
        case EFBIG: case E2BIG: case EMSGSIZE: case ENOSPC: case EDQUOT:
                *slug = "payload_too_large";
                return 413;
        default:
                *slug = "internal";
                return 500;
        }
}

static int send_json(struct request *req, int status, json_t *body)
{
        _cleanup_free_ char *text = json_dump_compact(body);
        return core_send_raw(req, status, "application/json", text, strlen(text), -1);
}

static int send_error(struct request *req, const struct pbox_error *err)
{
        const char *slug;
        int status = files_status(err->code, &slug);
        if (status >= 500)
                log_error("file transfer failed: %s", err->message);
        _cleanup_json_ json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", slug, "message",
                                                err->message[0] ? err->message : "internal error");
        return send_json(req, status, body);
}

/* Send the contents of memfd (sealed here) as the answer. */
static int send_memfd(struct files_ctx *fc, int memfd, const char *content_type, struct pbox_error *err)
{
        struct stat st;
        if (fstat(memfd, &st) < 0)
                return pbox_error_sys(err, errno, "fstat memfd");
        if (st.st_size == 0) {
                fc->sent = core_send_raw(fc->job->req, 200, content_type, "", 0, -1);
                return 1;
        }
        if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return pbox_error_sys(err, errno, "seal memfd");
        if (lseek(memfd, 0, SEEK_SET) < 0)
                return pbox_error_sys(err, errno, "lseek memfd");
        fc->sent = core_send_raw(fc->job->req, 200, content_type, NULL, 0, memfd);
        return 1;
}

/* ---- resolution ------------------------------------------------------------ */

static bool files_no_openat2;

static bool on_overlay(int fd)
{
        struct statfs sfs;
        return fstatfs(fd, &sfs) == 0 && (unsigned long) sfs.f_type == (unsigned long) OVERLAYFS_SUPER_MAGIC;
}

/* Open path (absolute or not: it is taken from the sandbox's root) beneath
 * root_fd, as a process inside the sandbox would see it, never leaving the
 * root's mount.  Returns an fd or -errno. */
static int files_resolve(int root_fd, const char *path, int flags)
{
        if (!files_no_openat2) {
                struct open_how how = {
                        .flags = (uint64_t) (flags | O_CLOEXEC),
                        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
                };
                for (int attempt = 0; attempt < FILES_RESOLVE_RETRIES; attempt++) {
                        int fd = sys_openat2(root_fd, path, &how, sizeof how);
                        if (fd >= 0)
                                return fd;
                        /* EAGAIN: a rename raced with the lookup (or, with
                         * O_NONBLOCK, a lease is being broken): retry. */
                        if (errno == EAGAIN)
                                continue;
                        if (errno != ENOSYS && errno != E2BIG)
                                return -errno;
                        files_no_openat2 = true;
                        break;
                }
                if (!files_no_openat2)
                        return -EAGAIN;
        }
        int fd = pathsafe_open_beneath_walk(root_fd, path, flags, 0, false);
        if (fd >= 0 && !on_overlay(fd)) {
                close(fd);
                return -EXDEV;
        }
        return fd;
}

/* Turn a resolution failure into a request error naming the path. */
static int path_error(struct pbox_error *err, int code, const char *path)
{
        switch (code) {
        case ENOENT:
                return pbox_error_set(err, ENOENT, "%s: no such file or directory", path);
        case ENOTDIR:
                return pbox_error_set(err, ENOTDIR, "%s: a component of the path is not a directory", path);
        case ELOOP:
                return pbox_error_set(err, ELOOP, "%s: too many levels of symbolic links", path);
        case EXDEV:
                return pbox_error_set(err, EXDEV, "%s: the path leaves the sandbox's root file system", path);
        case EAGAIN:
                return pbox_error_set(err, EAGAIN, "%s: busy (changing or leased), try again", path);
        default:
                return pbox_error_sys(err, code, "%s", path);
        }
}

/* ENOTDIR on the way to a file that is read means it does not exist. */
static int lookup_error(struct pbox_error *err, int code, const char *path)
{
        if (code == ENOTDIR)
                return pbox_error_set(err, ENOENT, "%s: no such file or directory", path);
        return path_error(err, code, path);
}

/* Make every missing directory of dir (absolute path inside the sandbox),
 * like `mkdir -p` run by sandbox root; returns an O_PATH fd of dir. */
static int make_dirs(struct files_ctx *fc, const char *dir, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        int cur = files_resolve(fc->root_fd, "/", O_PATH | O_DIRECTORY);
        if (cur < 0)
                return path_error(err, -cur, "/");
        _cleanup_free_ char *prefix = util_xmalloc(strlen(dir) + 2);
        size_t plen = 0;
        prefix[0] = '\0';
        for (const char *p = dir; *p;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                size_t clen = strcspn(p, "/");
                char comp[NAME_MAX + 1];
                if (clen > NAME_MAX) {
                        close(cur);
                        return pbox_error_set(err, ENAMETOOLONG, "%s: a component is longer than %d bytes", dir, NAME_MAX);
                }
                memcpy(comp, p, clen);
                comp[clen] = '\0';
                prefix[plen++] = '/';
                memcpy(prefix + plen, p, clen);
                plen += clen;
                prefix[plen] = '\0';
                p += clen;

                int fd = files_resolve(fc->root_fd, prefix, O_PATH | O_DIRECTORY);
                if (fd == -ENOENT) {
                        /* Relative to the directory resolved so far; a name
                         * that exists (a dangling symlink, "..") is left as
                         * it is and resolved again below. */
                        if (mkdirat(cur, comp, 0755) == 0) {
                                if ((job->set_uid || job->set_gid) &&
                                    fchownat(cur, comp, job->set_uid ? job->uid : (uid_t) -1,
                                             job->set_gid ? job->gid : (gid_t) -1, AT_SYMLINK_NOFOLLOW) < 0) {
                                        int e = errno;
                                        close(cur);
                                        return pbox_error_sys(err, e, "%s: chown", prefix);
                                }
                        } else if (errno != EEXIST) {
                                int e = errno;
                                close(cur);
                                return pbox_error_sys(err, e, "%s: mkdir", prefix);
                        }
                        fd = files_resolve(fc->root_fd, prefix, O_PATH | O_DIRECTORY);
                }
                close(cur);
                if (fd < 0)
                        return path_error(err, -fd, prefix);
                cur = fd;
        }
        return cur;
}

/* An O_PATH fd of the directory dir inside the sandbox (made with mkdirs). */
static int open_dir(struct files_ctx *fc, const char *dir, struct pbox_error *err)
{
        int fd = files_resolve(fc->root_fd, dir, O_PATH | O_DIRECTORY);
        if (fd >= 0)
                return fd;
        if (fd == -ENOENT && fc->job->mkdirs)
                return make_dirs(fc, dir, err);
        if (fd == -ENOENT)
                return pbox_error_set(err, ENOENT, "%s: no such directory (mkdirs=true creates it)", dir);
        return path_error(err, -fd, dir);
}

/* ---- the operations (in the transfer process) ------------------------------ */

static int copy_body(struct files_job *job, int out_fd, struct pbox_error *err)
{
        if (job->body_fd < 0) {
                int r = util_write_all(out_fd, job->body ? job->body : "", (size_t) job->body_len);
                return r < 0 ? pbox_error_sys(err, -r, "write") : 0;
        }
        _cleanup_free_ char *buf = util_xmalloc(FILES_COPY_BUF);
        uint64_t off = 0;
        while (off < job->body_len) {
                uint64_t left = job->body_len - off;
                size_t want = left < FILES_COPY_BUF ? (size_t) left : FILES_COPY_BUF;
                ssize_t n = pread(job->body_fd, buf, want, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return pbox_error_sys(err, errno, "read the request body");
                if (n == 0)
                        return pbox_error_set(err, EIO, "the request body ended early");
                int r = util_write_all(out_fd, buf, (size_t) n);
                if (r < 0)
                        return pbox_error_sys(err, -r, "write");
                off += (uint64_t) n;
        }
        return 0;
}

static int op_file_put(struct files_ctx *fc, json_t **ret_body, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        const char *slash = strrchr(job->path, '/');
        const char *base = slash + 1;
        if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
                return pbox_error_set(err, EINVAL, "%s: the path must name a file", job->path);
        _cleanup_free_ char *dir = slash == job->path ? util_xstrdup("/")
                                                      : strndup(job->path, (size_t) (slash - job->path));
        if (!dir)
                abort();
        int r = open_dir(fc, dir, err);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = r;

        struct stat st;
        bool existed = false;
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISDIR(st.st_mode))
                        return pbox_error_set(err, EISDIR, "%s is a directory", job->path);
                existed = true;
        } else if (errno != ENOENT) {
                return pbox_error_sys(err, errno, "%s", job->path);
        }

        /* Write a new file next to it, then rename it over the name: readers
         * see the old or the new file, never a part; the name itself is not
         * followed (a symlink there is replaced). */
        char hex[17], tmp[32];
        if (util_random_hex(hex, 8) < 0)
                return pbox_error_set(err, EIO, "no random bytes");
        snprintf(tmp, sizeof tmp, ".pbox-put-%s", hex);
        _cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "%s: create", job->path);
        r = copy_body(job, fd, err);
        if (r >= 0 && (job->set_uid || job->set_gid) &&
            fchown(fd, job->set_uid ? job->uid : (uid_t) -1, job->set_gid ? job->gid : (gid_t) -1) < 0)
                r = pbox_error_sys(err, errno, "%s: chown", job->path);
        if (r >= 0 && fchmod(fd, job->mode) < 0)
                r = pbox_error_sys(err, errno, "%s: chmod", job->path);
        if (r >= 0 && renameat(dfd, tmp, dfd, base) < 0) {
                if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
                        r = pbox_error_set(err, EISDIR, "%s is a directory", job->path);
                else
                        r = pbox_error_sys(err, errno, "%s: rename", job->path);
        }
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", (unsigned) job->mode);
        *ret_body = json_pack("{s:s,s:I,s:s,s:b}", "path", job->path, "size", (json_int_t) job->body_len, "mode", mode,
                              "created", !existed);
        return 0;
}

static int op_file_get(struct files_ctx *fc, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        int fd = files_resolve(fc->root_fd, job->path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return lookup_error(err, -fd, job->path);
        _cleanup_close_ int in = fd;
        struct stat st;
        if (fstat(in, &st) < 0)
                return pbox_error_sys(err, errno, "%s: stat", job->path);
        if (S_ISDIR(st.st_mode))
                return pbox_error_set(err, EISDIR, "%s is a directory (use ls or archive)", job->path);
        if (!S_ISREG(st.st_mode))
                return pbox_error_set(err, EMEDIUMTYPE, "%s is not a regular file", job->path);
        if ((uint64_t) st.st_size > job->max_bytes)
                return pbox_error_set(err, EFBIG, "%s is larger than the limit of %llu bytes", job->path,
                                      (unsigned long long) job->max_bytes);

        _cleanup_close_ int memfd = memfd_create("pbox-file", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0)
                return pbox_error_sys(err, errno, "memfd_create");
        _cleanup_free_ char *buf = util_xmalloc(FILES_COPY_BUF);
        uint64_t total = 0;
        for (;;) {
                ssize_t n = read(in, buf, FILES_COPY_BUF);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return pbox_error_sys(err, errno, "%s: read", job->path);
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > job->max_bytes)     /* it grew while we read */
                        return pbox_error_set(err, EFBIG, "%s is larger than the limit of %llu bytes", job->path,
                                              (unsigned long long) job->max_bytes);
                int r = util_write_all(memfd, buf, (size_t) n);
                if (r < 0)
                        return pbox_error_sys(err, -r, "write memfd");
        }
        return send_memfd(fc, memfd, "application/octet-stream", err);
}

static const char *type_name(mode_t m)
{
        if (S_ISREG(m))
                return "file";
        if (S_ISDIR(m))
                return "dir";
        if (S_ISLNK(m))
                return "symlink";
        return "other";
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int op_list(struct files_ctx *fc, json_t **ret_body, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        int fd = files_resolve(fc->root_fd, job->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
        if (fd == -ENOTDIR) {
                /* the last component is not a directory, or an earlier one */
                struct stat st;
                int f2 = files_resolve(fc->root_fd, job->path, O_PATH);
                bool exists = f2 >= 0 && fstat(f2, &st) == 0;
                if (f2 >= 0)
                        close(f2);
                if (exists)
                        return pbox_error_set(err, ENOTDIR, "%s is not a directory", job->path);
        }
        if (fd < 0)
                return lookup_error(err, -fd, job->path);
        DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                close(fd);
                return pbox_error_sys(err, e, "%s: opendir", job->path);
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        bool truncated = false;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == FILES_LIST_MAX) {
                        truncated = true;
                        break;
                }
                if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        names = util_xrealloc(names, cap * sizeof(char *));
                }
                names[n++] = util_xstrdup(de->d_name);
        }
        int r = 0;
        if (errno && !truncated)
                r = pbox_error_sys(err, errno, "%s: readdir", job->path);
        if (n)
                qsort(names, n, sizeof(char *), str_cmp);
        json_t *entries = json_array();
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (r < 0 || fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        free(names[i]);
                        continue;       /* gone meanwhile */
                }
                json_t *e = json_object();
                if (util_utf8_valid(names[i], strlen(names[i]))) {
                        json_object_set_new(e, "name", json_string(names[i]));
                } else {
                        /* JSON carries text only: such a name comes base64-encoded */
                        _cleanup_free_ char *b64 = util_base64_encode(names[i], strlen(names[i]));
                        json_object_set_new(e, "name", json_string(b64));
                        json_object_set_new(e, "name_encoding", json_string("base64"));
                }
                char mode[8], mtime[40];
                snprintf(mode, sizeof mode, "%04o", (unsigned) (st.st_mode & 07777));
                int64_t ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
                util_format_time(ms > 0 ? (uint64_t) ms : 0, mtime, sizeof mtime);
                json_object_set_new(e, "type", json_string(type_name(st.st_mode)));
                json_object_set_new(e, "size", json_integer((json_int_t) st.st_size));
                json_object_set_new(e, "mode", json_string(mode));
                json_object_set_new(e, "uid", json_integer((json_int_t) st.st_uid));
                json_object_set_new(e, "gid", json_integer((json_int_t) st.st_gid));
                json_object_set_new(e, "mtime", json_string(mtime));
                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t tl = readlinkat(dirfd(d), names[i], target, sizeof target - 1);
                        if (tl > 0) {
                                target[tl] = '\0';
                                if (util_utf8_valid(target, (size_t) tl))
                                        json_object_set_new(e, "target", json_string(target));
                        }
                }
                json_array_append_new(entries, e);
                free(names[i]);
        }
        free(names);
        closedir(d);
        if (r < 0) {
                json_decref(entries);
                return r;
        }
        *ret_body = json_pack("{s:s,s:o,s:b}", "path", job->path, "entries", entries, "truncated", truncated);
        return 0;
}

static int op_archive_get(struct files_ctx *fc, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        int fd = files_resolve(fc->root_fd, job->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
        if (fd == -ENOTDIR) {
                int f2 = files_resolve(fc->root_fd, job->path, O_PATH);
                if (f2 >= 0) {
                        close(f2);
                        return pbox_error_set(err, ENOTDIR, "%s is not a directory (use files)", job->path);
                }
        }
        if (fd < 0)
                return lookup_error(err, -fd, job->path);
        _cleanup_close_ int dfd = fd;
        _cleanup_close_ int memfd = memfd_create("pbox-archive", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0)
                return pbox_error_sys(err, errno, "memfd_create");
        struct tartree_opts o = {
                .max_bytes = job->max_bytes,
                .max_entries = FILES_ARCHIVE_MAX_ENTRIES,
                .one_file_system = true,
        };
        int r = tartree_create(dfd, memfd, &o, NULL, err);
        if (r < 0)
                return pbox_error_prefix(err, "%s", job->path);
        return send_memfd(fc, memfd, "application/x-tar", err);
}

static int op_archive_put(struct files_ctx *fc, json_t **ret_body, struct pbox_error *err)
{
        struct files_job *job = fc->job;
        int r = open_dir(fc, job->path, err);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = r;
        struct tartree_opts o = {
                .max_bytes = job->max_bytes,
                .max_entries = FILES_ARCHIVE_MAX_ENTRIES,
                .one_file_system = true,
                .chown = job->set_uid || job->set_gid,
                .uid = job->set_uid ? job->uid : 0,
                .gid = job->set_gid ? job->gid : 0,
        };
        struct tartree_stats st;
        r = tartree_extract(job->body_fd, job->body, job->body_len, dfd, &o, &st, err);
        if (r < 0)
                return pbox_error_prefix(err, "archive into %s", job->path);
        *ret_body = json_pack("{s:s,s:I,s:I,s:I}", "path", job->path, "entries", (json_int_t) st.entries, "bytes",
                              (json_int_t) st.bytes, "skipped", (json_int_t) st.skipped);
        return 0;
}

/* ---- the transfer process -------------------------------------------------- */

static void close_other_fds(int *keep, size_t n)
{
        /* insertion sort: a handful of fds */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
                        int t = keep[j];
                        keep[j] = keep[j - 1];
                        keep[j - 1] = t;
                }
        unsigned next = 0;
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < 0)
                        continue;
                if ((unsigned) keep[i] > next)
                        (void) sys_close_range(next, (unsigned) keep[i] - 1, 0);
                next = (unsigned) keep[i] + 1;
        }
        (void) sys_close_range(next, ~0U, 0);   /* ENOSYS: they stay (O_CLOEXEC, unused) */
}

/* Become sandbox root (see the top of this file). */
static int become_sandbox_root(struct core *core, struct files_ctx *fc, struct pbox_error *err)
{
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_DUMPABLE");
        if (setresgid(0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "setresgid");
        if (setresuid(0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "setresuid");
        int r = caps_plan_apply(&fc->job->caps);
        if (r < 0)
                return pbox_error_sys(err, -r, "drop capabilities");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_NO_NEW_PRIVS");
        /* The credential changes reset dumpable to the sysctl's value. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_DUMPABLE");
        explicit_bzero(core->admin_token, sizeof core->admin_token);
        int keep[] = { 0, 1, 2, fc->job->req->watch.fd, fc->root_fd, fc->job->body_fd };
        close_other_fds(keep, ARRAY_SIZE(keep));
        umask(0);
        return 0;
}

static _Noreturn void transfer_main(struct core *core, struct files_job *job, int root_fd, int sync_fd)
{
        char go;
        ssize_t n;
        do
                n = read(sync_fd, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                _exit(FILES_EXIT_UNANSWERED);   /* the worker failed: it answers */
        close(sync_fd);

        struct files_ctx fc = { .job = job, .root_fd = root_fd };
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *body = NULL;
        int r = become_sandbox_root(core, &fc, &err);
        if (r < 0) {
                pbox_error_prefix(&err, "file transfer set-up");
                err.code = EIO;
        } else {
                switch (job->kind) {
                case FILES_PUT: r = op_file_put(&fc, &body, &err); break;
                case FILES_GET: r = op_file_get(&fc, &err); break;
                case FILES_LIST: r = op_list(&fc, &body, &err); break;
                case ARCHIVE_PUT: r = op_archive_put(&fc, &body, &err); break;
                case ARCHIVE_GET: r = op_archive_get(&fc, &err); break;
                }
        }
        int sent;
        if (r == 1)
                sent = fc.sent;
        else if (r < 0)
                sent = send_error(job->req, &err);
        else {
                sent = send_json(job->req, 200, body ? body : json_object());
                json_decref(body);
        }
        _exit(sent < 0 ? 1 : 0);
}

/* The root of the sandbox's overlay: the mount itself, nothing else. */
static int open_sandbox_root(const char *rootfs, struct pbox_error *err)
{
        _cleanup_close_ int fd = open(rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open the sandbox's root file system");
        struct statx stx;
        if (!on_overlay(fd) ||
            (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0 &&
             (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)))
                return pbox_error_set(err, EIO, "the sandbox's root file system is not mounted");
        return TAKE_FD(fd);
}

/* A failure of the set-up is the server's, whatever errno said. */
static int worker_failed(struct pbox_error *err)
{
        log_error("file transfer: %s", err->message);
        pbox_error_set(err, EIO, "the file transfer could not be started");
        return -EIO;
}

/* In the forked worker (host root): open the root, then run the transfer
 * in a child in a user namespace with the sandbox's mapping, whose maps
 * this process writes.  The child answers the request. */
static int files_worker(struct core *core, void *arg, json_t **ret_body, struct pbox_error *err)
{
        struct files_job *job = arg;
        (void) ret_body;
        int r = open_sandbox_root(job->rootfs, err);
        if (r < 0)
                return worker_failed(err);
        _cleanup_close_ int root_fd = r;
        if (setgroups(0, NULL) < 0) {
                pbox_error_sys(err, errno, "setgroups");
                return worker_failed(err);
        }
        int sync[2];
        if (pipe2(sync, O_CLOEXEC) < 0)
                return pbox_error_sys(err, errno, "pipe");
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_NEWUSER;
        ca.exit_signal = SIGCHLD;
        pid_t pid = (pid_t) sys_clone3(&ca, sizeof ca);
        if (pid < 0) {
                int e = errno;
                close(sync[0]);
                close(sync[1]);
                pbox_error_sys(err, e, "clone a user namespace for the transfer");
                return worker_failed(err);
        }
        if (pid == 0) {
                close(sync[1]);
                transfer_main(core, job, root_fd, sync[0]);
        }
        close(sync[0]);
        r = userns_write_maps(pid, &core->map, err);
        if (r >= 0 && write(sync[1], "g", 1) != 1)
                r = pbox_error_sys(err, errno, "start the transfer");
        close(sync[1]);
        int status = 0;
        if (r < 0)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return pbox_error_sys(err, errno, "wait for the transfer");
        if (r < 0)
                return worker_failed(err);
        if (WIFEXITED(status) && WEXITSTATUS(status) != FILES_EXIT_UNANSWERED)
                return 1;       /* answered (or the client went away) */
        return pbox_error_set(err, EIO, "the file transfer process failed (%s %d)",
                              WIFSIGNALED(status) ? "signal" : "status",
                              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ---- the core side: arguments ---------------------------------------------- */

static int parse_path(json_t *args, const char **ret, struct pbox_error *err)
{
        json_t *v = json_object_get(args, "path");
        if (!v || !json_is_string(v))
                return pbox_error_set(err, EINVAL, "the path parameter is required");
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len != strlen(s))
                return pbox_error_set(err, EINVAL, "the path contains a NUL byte");
        if (len == 0 || s[0] != '/')
                return pbox_error_set(err, EINVAL, "the path must be absolute (inside the sandbox)");
        if (len > FILES_MAX_PATH)
                return pbox_error_set(err, ENAMETOOLONG, "the path is longer than %d bytes", FILES_MAX_PATH);
        for (const char *p = s; *p;) {
                size_t clen = strcspn(p, "/");
                if (clen > NAME_MAX)
                        return pbox_error_set(err, ENAMETOOLONG, "a component of the path is longer than %d bytes",
                                              NAME_MAX);
                p += clen;
                p += strspn(p, "/");
        }
        *ret = s;
        return 0;
}

static int parse_mode(const char *s, mode_t *ret, struct pbox_error *err)
{
        size_t n = strlen(s);
        if (n == 0 || n > 4 || strspn(s, "01234567") != n)
                return pbox_error_set(err, EINVAL, "mode must be octal, like 0644");
        mode_t m = (mode_t) strtoul(s, NULL, 8);
        if (m & (S_ISUID | S_ISGID))
                return pbox_error_set(err, EINVAL, "setuid and setgid modes are refused");
        *ret = m;
        return 0;
}

static int parse_id(const char *name, const char *s, uint32_t count, uint32_t *ret, struct pbox_error *err)
{
        size_t n = strlen(s);
        if (n == 0 || n > 10 || strspn(s, "0123456789") != n)
                return pbox_error_set(err, EINVAL, "%s must be a number (inside the sandbox)", name);
        unsigned long long v = strtoull(s, NULL, 10);
        if (v >= count)
                return pbox_error_set(err, ERANGE, "%s must be below %u (the ids mapped into the sandbox)", name, count);
        *ret = (uint32_t) v;
        return 0;
}

static int parse_bool(const char *name, const char *s, bool *ret, struct pbox_error *err)
{
        if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes"))
                *ret = true;
        else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !*s)
                *ret = false;
        else
                return pbox_error_set(err, EINVAL, "%s must be true or false", name);
        return 0;
}

static int parse_args(struct core *core, struct files_job *job, json_t *args, struct pbox_error *err)
{
        int r = parse_path(args, &job->path, err);
        if (r < 0)
                return r;
        const char *mode = NULL, *uid = NULL, *gid = NULL, *mkdirs = NULL;
        if (json_get_string(args, "mode", false, &mode, err) < 0 ||
            json_get_string(args, "uid", false, &uid, err) < 0 ||
            json_get_string(args, "gid", false, &gid, err) < 0 ||
            json_get_string(args, "mkdirs", false, &mkdirs, err) < 0)
                return -EINVAL;
        bool puts = job->kind == FILES_PUT || job->kind == ARCHIVE_PUT;
        if ((mode && job->kind != FILES_PUT) || (!puts && (uid || gid || mkdirs)))
                return pbox_error_set(err, EINVAL, "parameter not supported by this operation");
        job->mode = 0644;
        if (mode && (r = parse_mode(mode, &job->mode, err)) < 0)
                return r;
        uint32_t v;
        if (uid) {
                if ((r = parse_id("uid", uid, core->map.count, &v, err)) < 0)
                        return r;
                job->set_uid = true;
                job->uid = (uid_t) v;
        }
        if (gid) {
                if ((r = parse_id("gid", gid, core->map.count, &v, err)) < 0)
                        return r;
                job->set_gid = true;
                job->gid = (gid_t) v;
        }
        if (mkdirs && (r = parse_bool("mkdirs", mkdirs, &job->mkdirs, err)) < 0)
                return r;
        return 0;
}

void files_op(struct core *core, struct request *req, const char *op, const struct files_target *target,
              json_t *args, struct privsep_msg *msg)
{
        struct files_job job;
        memset(&job, 0, sizeof job);
        job.req = req;
        job.body_fd = -1;
        size_t i;
        for (i = 0; i < ARRAY_SIZE(files_ops); i++)
                if (!strcmp(files_ops[i].op, op))
                        break;
        if (i == ARRAY_SIZE(files_ops))
                return request_error(req, 404, "not_found", "unknown operation");
        job.kind = files_ops[i].kind;

        struct pbox_error err = PBOX_ERROR_INIT;
        if (parse_args(core, &job, args, &err) < 0)
                return request_fail(req, &err);
        if (!target->rootfs || !*target->rootfs)
                return request_error(req, 409, "conflict", "sandbox %s has no root file system", target->id);
        job.rootfs = target->rootfs;
        job.max_bytes = core->cfg->max_image_bytes;
        if (job.kind == FILES_PUT || job.kind == ARCHIVE_PUT) {
                if (msg->body_len > job.max_bytes)
                        return request_error(req, 413, "payload_too_large", "the body is larger than %llu bytes",
                                             (unsigned long long) job.max_bytes);
                job.body_fd = msg->body_fd;
                job.body = msg->body;
                job.body_len = msg->body_len;
        }
        if (caps_plan_from_names(files_cap_names, &job.caps, &err) < 0)
                return request_fail(req, &err);

        /* A file may be large and the sandbox's file system slow: a forked
         * worker does the transfer and answers; the core goes on. */
        int r = core_run_worker(core, req, "file transfer", files_worker, &job, 200);
        if (r < 0)
                return request_error(req, 503, "unavailable", "cannot start a file transfer: %s", strerror(-r));
        log_debug("%s %s in sandbox %s started", op, job.path, target->id);
}
