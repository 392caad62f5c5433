/* cp.c — `pbox cp`: files and directories between the local file system and
 * a sandbox, over the file API: PUT/GET /v1/sandboxes/{id}/files for a
 * regular file, PUT/GET .../archive (a tar of a directory's contents) for a
 * directory, GET .../ls to find out whether a sandbox path is a directory.
 *
 * What comes out of a sandbox is written by the sandbox, so it is hostile:
 * a downloaded tree is extracted with tartree (beneath the destination
 * directory only, no "..", no symlink ever followed, no devices, setuid
 * stripped, the local umask applied), and text from the server reaching the
 * terminal is sanitised.  Directories going up are archived with tartree
 * too (symlinks stored as symlinks, special files skipped). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "client.h"
#include "commands.h"
#include "cp.h"
#include "json.h"
#include "tartree.h"
#include "util.h"

enum { OPT_OWNER = 256 };

struct cp_opts {
        bool parents;
        const char *mode;       /* validated octal */
        const char *uid, *gid;  /* validated decimal, or NULL (pointing into owner) */
        char *owner;            /* --owner's copy */
};

/* ---------------------------------------------------------------- helpers */

/* "ID:PATH" -> id, path.  An argument is remote when what precedes its first
 * ':' is a valid sandbox ID or name (so "./a:b" or "/x:y" are local). */
static bool split_remote(const char *arg, char **ret_id, const char **ret_path)
{
        const char *colon = strchr(arg, ':');
        if (!colon || colon == arg || colon - arg > 128)
                return false;
        if (!((arg[0] >= 'a' && arg[0] <= 'z') || (arg[0] >= 'A' && arg[0] <= 'Z') || (arg[0] >= '0' && arg[0] <= '9')))
                return false;
        for (const char *p = arg; p < colon; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p))
                        return false;
        *ret_id = strndup(arg, (size_t) (colon - arg));
        if (!*ret_id)
                abort();
        *ret_path = colon + 1;
        return true;
}

/* The last component of a path ("" for "/"), without trailing slashes. */
static char *base_name(const char *path)
{
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                n--;
        const char *start = path + n;
        while (start > path && start[-1] != '/')
                start--;
        char *b = strndup(start, (size_t) (path + n - start));
        if (!b)
                abort();
        if (!strcmp(b, "/") || !strcmp(b, ".") || !strcmp(b, "..")) {
                free(b);
                return util_xstrdup("");
        }
        return b;
}

/* dir + "/" + name, without doubling the slash. */
static char *join(const char *dir, const char *name)
{
        size_t n = strlen(dir);
        return util_xasprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

/* /v1/sandboxes/ID/WHAT?path=PATH[&extra] */
static char *target_for(const char *id, const char *what, const char *path, const char *extra)
{
        _cleanup_free_ char *eid = pbox_uri_escape(id);
        _cleanup_free_ char *epath = pbox_uri_escape(path);
        return util_xasprintf("/v1/sandboxes/%s/%s?path=%s%s%s", eid, what, epath, extra && *extra ? "&" : "",
                              extra ? extra : "");
}

/* One exchange; non-2xx answers become errors.  The body is the caller's. */
static int exchange(struct pbox_cli *cli, const char *method, const char *target, const char *content_type,
                    int upload_fd, uint64_t upload_len, struct pbox_http_response *ret, struct pbox_error *err)
{
        struct pbox_http_request req = {
                .method = method,
                .target = target,
                .content_type = content_type,
                .upload_fd = upload_fd,
                .upload_len = upload_len,
                .timeout_ms = PBOX_TIMEOUT_NONE,
        };
        struct pbox_http_response resp = { 0 };
        int r = pbox_http_do(&cli->client, &req, &resp, err);
        if (r < 0)
                return r;
        if (resp.status < 200 || resp.status > 299) {
                r = pbox_client_api_error(&cli->client, &resp, err);
                pbox_http_response_done(&resp);
                return r;
        }
        *ret = resp;
        return 0;
}

enum remote_kind { REMOTE_MISSING, REMOTE_DIR, REMOTE_OTHER };

/* What is at PATH in the sandbox: GET .../ls answers 200 for a directory,
 * 409 for anything else, 404 when there is nothing. */
static int remote_kind(struct pbox_cli *cli, const char *id, const char *path, enum remote_kind *ret,
                       struct pbox_error *err)
{
        _cleanup_free_ char *target = target_for(id, "ls", path, NULL);
        struct pbox_http_request req = {
                .method = "GET",
                .target = target,
                .upload_fd = -1,
                .timeout_ms = PBOX_DEFAULT_TIMEOUT_MS,
        };
        struct pbox_http_response resp = { 0 };
        int r = pbox_http_do(&cli->client, &req, &resp, err);
        if (r < 0)
                return r;
        if (resp.status == 200)
                *ret = REMOTE_DIR;
        else if (resp.status == 409)
                *ret = REMOTE_OTHER;
        else if (resp.status == 404 && strstr(resp.body ? resp.body : "", "no such sandbox") == NULL)
                *ret = REMOTE_MISSING;
        else
                r = pbox_client_api_error(&cli->client, &resp, err);
        pbox_http_response_done(&resp);
        return r;
}

static char *owner_query(const struct cp_opts *o, bool mkdirs)
{
        char *q = util_xstrdup(mkdirs ? "mkdirs=true" : "");
        const char *names[2] = { "uid", "gid" }, *values[2] = { o->uid, o->gid };
        for (size_t i = 0; i < 2; i++) {
                if (!values[i])
                        continue;
                char *n = util_xasprintf("%s%s%s=%s", q, *q ? "&" : "", names[i], values[i]);
                free(q);
                q = n;
        }
        return q;
}

/* A temporary file for an archive to upload: unnamed in $TMPDIR, or memory. */
static int spool_fd(struct pbox_error *err)
{
        const char *dir = getenv("TMPDIR");
        int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
                fd = memfd_create("pbox-cp", MFD_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "cannot create a temporary file");
        return fd;
}

/* ---------------------------------------------------------------- upload */

static int upload(struct pbox_cli *cli, const struct cp_opts *o, const char *local, const char *id,
                  const char *path, struct pbox_error *err)
{
        if (!strcmp(local, "-"))
                return pbox_error_set(err, EINVAL, "copying from standard input is not supported");
        struct stat st;
        if (stat(local, &st) < 0)
                return pbox_error_sys(err, errno, "%s", local);
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                return pbox_error_set(err, EINVAL, "%s is not a regular file or a directory", local);

        _cleanup_free_ char *name = base_name(local);
        enum remote_kind kind = REMOTE_MISSING;
        size_t plen = strlen(path);
        bool into_dir = plen > 0 && path[plen - 1] == '/';
        if (!into_dir) {
                int r = remote_kind(cli, id, path, &kind, err);
                if (r < 0)
                        return r;
                into_dir = kind == REMOTE_DIR;
        }
        _cleanup_free_ char *dest = into_dir && *name ? join(path, name) : util_xstrdup(path);

        struct pbox_http_response resp = { 0 };
        if (S_ISREG(st.st_mode)) {
                if (into_dir && !*name)
                        return pbox_error_set(err, EINVAL, "%s: cannot name the file in %s", local, path);
                _cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return pbox_error_sys(err, errno, "%s", local);
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                        return pbox_error_set(err, EINVAL, "%s is not a regular file", local);
                char mode[8];
                snprintf(mode, sizeof mode, "%04o", (unsigned) (st.st_mode & 01777));
                _cleanup_free_ char *own = owner_query(o, o->parents);
                _cleanup_free_ char *extra = util_xasprintf("mode=%s%s%s", o->mode ? o->mode : mode, *own ? "&" : "", own);
                _cleanup_free_ char *target = target_for(id, "files", dest, extra);
                int r = exchange(cli, "PUT", target, "application/octet-stream", fd, (uint64_t) st.st_size, &resp, err);
                if (r < 0)
                        return pbox_error_prefix(err, "%s:%s", id, dest);
                pbox_http_response_done(&resp);
                return 0;
        }

        if (kind == REMOTE_OTHER)
                return pbox_error_set(err, ENOTDIR, "%s:%s exists and is not a directory", id, path);
        _cleanup_close_ int dfd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "%s", local);
        _cleanup_close_ int tfd = spool_fd(err);
        if (tfd < 0)
                return tfd;
        struct tartree_opts topts = { 0 };
        int r = tartree_create(dfd, tfd, &topts, NULL, err);
        if (r < 0)
                return pbox_error_prefix(err, "%s", local);
        off_t size = lseek(tfd, 0, SEEK_END);
        if (size < 0 || lseek(tfd, 0, SEEK_SET) < 0)
                return pbox_error_sys(err, errno, "temporary file");
        /* The destination directory is made if missing (only its parents
         * need --parents: the server's mkdirs makes all, so check). */
        if (!into_dir && !o->parents) {
                _cleanup_free_ char *parent = util_xstrdup(path);
                char *slash = strrchr(parent, '/');
                if (slash && slash != parent) {
                        *slash = '\0';
                        enum remote_kind pk;
                        r = remote_kind(cli, id, parent, &pk, err);
                        if (r < 0)
                                return r;
                        if (pk != REMOTE_DIR)
                                return pbox_error_set(err, ENOENT, "%s:%s: no such directory (--parents makes it)", id,
                                                      parent);
                }
        }
        _cleanup_free_ char *own = owner_query(o, true);
        _cleanup_free_ char *target = target_for(id, "archive", dest, own);
        r = exchange(cli, "PUT", target, "application/x-tar", tfd, (uint64_t) size, &resp, err);
        if (r < 0)
                return pbox_error_prefix(err, "%s:%s", id, dest);
        pbox_http_response_done(&resp);
        return 0;
}

/* ---------------------------------------------------------------- download */

static int write_out(int fd, const char *what, const char *buf, size_t len, struct pbox_error *err)
{
        int r = util_write_all(fd, buf, len);
        if (r < 0)
                return pbox_error_sys(err, -r, "cannot write %s", what);
        return 0;
}

static int download(struct pbox_cli *cli, const char *id, const char *path, const char *local,
                    struct pbox_error *err)
{
        enum remote_kind kind;
        int r = remote_kind(cli, id, path, &kind, err);
        if (r < 0)
                return r;
        if (kind == REMOTE_MISSING)
                return pbox_error_set(err, ENOENT, "%s:%s: no such file or directory", id, path);
        bool to_stdout = !strcmp(local, "-");
        _cleanup_free_ char *name = base_name(path);
        struct stat st;
        bool local_dir = !to_stdout && stat(local, &st) == 0 && S_ISDIR(st.st_mode);

        struct pbox_http_response resp = { 0 };
        _cleanup_free_ char *target = target_for(id, kind == REMOTE_DIR ? "archive" : "files", path, NULL);
        r = exchange(cli, "GET", target, NULL, -1, 0, &resp, err);
        if (r < 0)
                return pbox_error_prefix(err, "%s:%s", id, path);

        if (to_stdout) {
                fflush(stdout);
                r = write_out(STDOUT_FILENO, "standard output", resp.body, resp.body_len, err);
        } else if (kind != REMOTE_DIR) {
                _cleanup_free_ char *dest = local_dir && *name ? join(local, name) : util_xstrdup(local);
                _cleanup_close_ int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
                if (fd < 0)
                        r = pbox_error_sys(err, errno, "%s", dest);
                else
                        r = write_out(fd, dest, resp.body, resp.body_len, err);
                if (r >= 0 && close(TAKE_FD(fd)) < 0)
                        r = pbox_error_sys(err, errno, "%s", dest);
        } else {
                /* Into LOCAL/NAME when LOCAL is a directory, else LOCAL itself
                 * (made here; its parent must exist). */
                _cleanup_free_ char *dest = local_dir && *name ? join(local, name) : util_xstrdup(local);
                if (mkdir(dest, 0777) < 0 && errno != EEXIST)
                        r = pbox_error_sys(err, errno, "%s", dest);
                _cleanup_close_ int dfd = r < 0 ? -1 : open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (r >= 0 && dfd < 0)
                        r = pbox_error_sys(err, errno, "%s", dest);
                if (r >= 0) {
                        mode_t mask = umask(0);
                        umask(mask);
                        /* The server sends a plain tar: it cannot expand. */
                        struct tartree_opts topts = { .max_bytes = resp.body_len ? resp.body_len : 1, .umask = mask };
                        r = tartree_extract(-1, resp.body, resp.body_len, dfd, &topts, NULL, err);
                        if (r < 0)
                                pbox_error_prefix(err, "%s", dest);
                }
        }
        pbox_http_response_done(&resp);
        return r;
}

/* ---------------------------------------------------------------- the command */

static bool valid_octal_mode(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n <= 4 && strspn(s, "01234567") == n;
}

static bool valid_number(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n <= 10 && strspn(s, "0123456789") == n;
}

static int cp_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct cp_opts *o = ctx;
        switch (c) {
        case 'p':
                o->parents = true;
                return 0;
        case 'm':
                if (!valid_octal_mode(arg))
                        return pbox_error_set(err, EINVAL, "invalid mode '%s' (octal, like 0644)", arg);
                o->mode = arg;
                return 0;
        case OPT_OWNER: {
                free(o->owner);
                o->owner = util_xstrdup(arg);
                char *colon = strchr(o->owner, ':');
                if (colon)
                        *colon = '\0';
                if (!valid_number(o->owner) || (colon && !valid_number(colon + 1)))
                        return pbox_error_set(err, EINVAL, "invalid owner '%s' (UID or UID:GID, numbers)", arg);
                o->uid = o->owner;
                o->gid = colon ? colon + 1 : NULL;
                return 0;
        }
        case 'r':
        case 'R':
                return 0;
        default:
                return PBOX_OPT_OTHER;
        }
}

int cmd_cp(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "parents", no_argument, NULL, 'p' },
                { "mode", required_argument, NULL, 'm' },
                { "owner", required_argument, NULL, OPT_OWNER },
                { "recursive", no_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct cp_opts o = { 0 };
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, "+:pm:rRh", opts, cp_opt, &o);
        if (r != PBOX_OPTS_DONE) {
                free(o.owner);
                return r;
        }
        _cleanup_free_ char *owner = o.owner;
        if (argc - optind != 2)
                return pbox_cmd_usage(cmd, "expected a source and a destination");
        const char *src = argv[optind], *dst = argv[optind + 1];
        _cleanup_free_ char *src_id = NULL, *dst_id = NULL;
        const char *src_path = NULL, *dst_path = NULL;
        bool src_remote = split_remote(src, &src_id, &src_path);
        bool dst_remote = split_remote(dst, &dst_id, &dst_path);
        if (src_remote && dst_remote)
                return pbox_cmd_usage(cmd, "copying from one sandbox to another is not supported");
        if (!src_remote && !dst_remote)
                return pbox_cmd_usage(cmd, "one side must be ID:PATH (a path in a sandbox)");
        const char *rpath = src_remote ? src_path : dst_path;
        if (rpath[0] != '/')
                return pbox_cmd_usage(cmd, "the path in the sandbox must be absolute: '%s'", rpath);
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        r = src_remote ? download(cli, src_id, src_path, dst, &err) : upload(cli, &o, src, dst_id, dst_path, &err);
        if (r < 0)
                return pbox_cmd_fail(cmd, &err);
        return 0;
}
