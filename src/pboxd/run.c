/* run.c — one-shot runs (run.h).
 *
 * The request is checked whole before anything is built: the sandbox body,
 * the files, and both exec bodies (with the same defaults and maximums as
 * POST .../exec).  Files are written by the core beneath the new sandbox's
 * root before any process but its init has run in it, so nothing inside can
 * race the writes; every component is opened with O_NOFOLLOW, so a symlink
 * in the image is refused rather than followed.  The steps then chain through
 * exec completion callbacks; the sandbox is discarded at the end, and the
 * answer sent once it is gone (a listing right after never shows it).
 *
 * Limits: "limits" (the sandbox's, as in POST /v1/sandboxes) goes with the
 * create body; "cpu_limit_ms", "memory_bytes" and "pids" are the run step's
 * per-exec limits.  The compile step is bound by the sandbox's limits and its
 * own timeout only (no per-exec limits, not even pbox.conf's defaults). */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "exec.h"
#include "json.h"
#include "log.h"
#include "pathsafe.h"
#include "run.h"
#include "sandbox.h"
#include "util.h"

#define RUN_MAX_FILES 1000

struct run {
        struct core *core;
        struct request *req;
        struct sandbox *sb;
        struct exec_params run_params;
        struct exec_params compile_params;
        bool has_compile;
        json_t *compile_result;
};

static void run_free(struct run *r)
{
        exec_params_clear(&r->run_params);
        exec_params_clear(&r->compile_params);
        json_decref(r->compile_result);
        free(r);
}

/* Copy the listed keys of src into a new object. */
static json_t *pick(json_t *src, const char *const *keys)
{
        json_t *o = json_object();
        for (const char *const *k = keys; *k; k++) {
                json_t *v = json_object_get(src, *k);
                if (v)
                        json_object_set(o, *k, v);
        }
        return o;
}

/* Write one file beneath root_fd as the sandbox's root, creating parent
 * directories; symlinks anywhere on the way are refused. */
static int run_write_file(int root_fd, const char *workdir, const char *path, const void *data, size_t len,
                          mode_t mode, uid_t uid, gid_t gid, struct pbox_error *err)
{
        _cleanup_free_ char *full = path[0] == '/' ? util_xstrdup(path) : util_xasprintf("%s/%s", workdir, path);
        _cleanup_free_ char *clean = NULL;
        int r = pathsafe_clean_entry(full, false, &clean, err);
        if (r < 0)
                return pbox_error_prefix(err, "file '%s'", path);
        int cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return pbox_error_sys(err, errno, "dup");
        char *p = clean;
        for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
                *slash = '\0';
                int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT) {
                        if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
                                r = pbox_error_sys(err, errno, "file '%s': create directory %s", path, p);
                                goto out;
                        }
                        if (fchownat(cur, p, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
                                r = pbox_error_sys(err, errno, "file '%s': chown directory %s", path, p);
                                goto out;
                        }
                        next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (next < 0) {
                        r = pbox_error_sys(err, errno == ELOOP ? ENOTDIR : errno,
                                           "file '%s': %s is not a directory of the image (symlinks are not followed)", path, p);
                        goto out;
                }
                close(cur);
                cur = next;
        }
        int fd = openat(cur, p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0) {
                r = pbox_error_sys(err, errno, "file '%s'", path);
                goto out;
        }
        r = util_write_all(fd, data, len);
        if (r == 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0))
                r = -errno;
        close(fd);
        if (r < 0)
                r = pbox_error_sys(err, -r, "file '%s'", path);
out:
        close(cur);
        return r;
}

static int run_write_files(struct core *core, struct sandbox *sb, json_t *files, struct pbox_error *err)
{
        _cleanup_close_ int root = open(sb->rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root < 0)
                return pbox_error_sys(err, errno, "open the sandbox root");
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f) {
                static const char *const keys[] = { "path", "content", "encoding", "mode", NULL };
                const char *path = NULL, *content = NULL, *enc = NULL;
                int64_t mode = 0644;
                if (!json_is_object(f))
                        return pbox_error_set(err, EINVAL, "files[%zu] must be an object", i);
                if (json_check_keys(f, keys, err) < 0 || json_get_string(f, "path", true, &path, err) < 0 ||
                    json_get_string(f, "content", true, &content, err) < 0 ||
                    json_get_string(f, "encoding", false, &enc, err) < 0 ||
                    json_get_int(f, "mode", false, 0, 0777, &mode, err) < 0)
                        return pbox_error_prefix(err, "files[%zu]", i);
                _cleanup_free_ unsigned char *bin = NULL;
                size_t len = strlen(content);
                const void *data = content;
                if (enc && !strcmp(enc, "base64")) {
                        if (util_base64_decode(content, len, &bin, &len) < 0)
                                return pbox_error_set(err, EINVAL, "files[%zu]: content is not valid base64", i);
                        data = bin;
                } else if (enc && strcmp(enc, "utf-8"))
                        return pbox_error_set(err, EINVAL, "files[%zu]: encoding must be \"utf-8\" or \"base64\"", i);
                int r = run_write_file(root, sb->workdir, path, data, len, (mode_t) mode, core->map.uid_base,
                                       core->map.gid_base, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void run_finish(struct run *r, json_t *run_result)
{
        json_t *out = json_object();
        if (r->compile_result)
                json_object_set(out, "compile", r->compile_result);
        if (run_result)
                json_object_set(out, "run", run_result);
        sandbox_discard_then_respond(r->sb, r->req, 200, out);
        run_free(r);
}

static void run_step_done(struct core *core, json_t *result, void *data)
{
        run_finish(data, result);
}

static void compile_done(struct core *core, json_t *result, void *data)
{
        struct run *r = data;
        r->compile_result = json_incref(result);
        const char *status = json_string_value(json_object_get(result, "status"));
        if (!status || strcmp(status, "ok") || r->sb->state != SB_RUNNING)
                return run_finish(r, NULL);
        exec_start(core, r->sb, &r->run_params, NULL, true, run_step_done, r);
}

void run_op(struct core *core, struct request *req, json_t *body)
{
        static const char *const keys[] = { "image", "files", "argv", "cwd", "stdin", "stdin_encoding", "env", "timeout_ms",
                                            "grace_ms", "max_output_bytes", "output_limit_action", "user", "compile",
                                            "limits", "cpu_limit_ms", "memory_bytes", "pids", NULL };
        static const char *const exec_keys[] = { "argv", "cwd", "stdin", "stdin_encoding", "timeout_ms", "grace_ms",
                                                 "max_output_bytes", "output_limit_action", "user", "cpu_limit_ms",
                                                 "memory_bytes", "pids", NULL };
        static const char *const compile_keys[] = { "argv", "timeout_ms", "grace_ms", "max_output_bytes", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        if (json_check_keys(body, keys, &err) < 0)
                return request_fail(req, &err);
        json_t *files = json_object_get(body, "files");
        if (files && !json_is_null(files) && (!json_is_array(files) || json_array_size(files) > RUN_MAX_FILES))
                return request_error(req, 400, "bad_request", "files must be an array of at most %d objects", RUN_MAX_FILES);
        json_t *compile = json_object_get(body, "compile");
        if (compile && !json_is_null(compile) && !json_is_object(compile))
                return request_error(req, 400, "bad_request", "compile must be an object");

        if (!sandbox_exec_admissible(core, req))
                return;
        struct run *r = util_xcalloc(1, sizeof *r);
        r->core = core;
        r->req = req;
        bool wait;
        _cleanup_json_ json_t *run_body = pick(body, exec_keys);
        if (!exec_parse_request(core, req, run_body, &r->run_params, &wait)) {
                run_free(r);
                return;
        }
        if (compile && json_is_object(compile)) {
                if (json_check_keys(compile, compile_keys, &err) < 0) {
                        run_free(r);
                        return request_fail(req, &err);
                }
                _cleanup_json_ json_t *cbody = pick(compile, compile_keys);
                json_t *user = json_object_get(body, "user");
                if (user)
                        json_object_set(cbody, "user", user);
                json_t *cwd = json_object_get(body, "cwd");
                if (cwd)
                        json_object_set(cbody, "cwd", cwd);
                if (!exec_parse_request(core, req, cbody, &r->compile_params, &wait)) {
                        run_free(r);
                        return;
                }
                limits_exec_init(&r->compile_params.limits);
                r->has_compile = true;
        }
        static const char *const create_keys[] = { "image", "env", "limits", NULL };
        _cleanup_json_ json_t *cbody = pick(body, create_keys);
        r->sb = sandbox_create_from_body(core, req, cbody);
        if (!r->sb) {
                run_free(r);
                return;
        }
        if (files && json_is_array(files) && run_write_files(core, r->sb, files, &err) < 0) {
                int status;
                json_t *reply = request_fail_body(&err, &status);
                sandbox_discard_then_respond(r->sb, req, status, reply);
                run_free(r);
                return;
        }
        req->deferred = true;
        sandbox_touch(r->sb);
        if (r->has_compile)
                exec_start(core, r->sb, &r->compile_params, NULL, true, compile_done, r);
        else
                exec_start(core, r->sb, &r->run_params, NULL, true, run_step_done, r);
}
