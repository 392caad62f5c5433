/* core.c — the privileged core of pboxd: start-up, the epoll loop, request
 * channels from the api process, authentication, dispatch, and the image
 * operations (theory of operation in core.h).
 *
 * Every request is checked here as if the api process were hostile: the
 * meta is parsed strictly, the op comes from a fixed table, the token is
 * compared in constant time, ids and refs are validated before use. */
#include "config.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core.h"
#include "files.h"
#include "limits.h"
#include "metrics.h"
#include "run.h"
#include "json.h"
#include "log.h"
#include "privsep.h"
#include "sandbox.h"
#include "spawn.h"
#include "tenants.h"
#include "syscalls.h"
#include "util.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int core_watch_add(struct core *core, struct watch *w, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = w };
        if (epoll_ctl(core->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
                return -errno;
        return 0;
}

int core_watch_mod(struct core *core, struct watch *w, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = w };
        if (epoll_ctl(core->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
                return -errno;
        return 0;
}

void core_watch_del(struct core *core, struct watch *w)
{
        if (w->fd >= 0)
                epoll_ctl(core->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        /* Events of this watch still to be handled in this batch are void:
         * its owner may be freed as soon as we return. */
        for (int j = core->batch_i + 1; j < core->batch_n; j++)
                if (core->batch[j].data.ptr == w)
                        core->batch[j].data.ptr = NULL;
}

/* ---- responses ---------------------------------------------------------- */

static int send_response(int fd, int status, json_t *body)
{
        char meta[64];
        /* Saturation is temporary: tell clients when to come back. */
        if (status == 503)
                snprintf(meta, sizeof meta, "{\"status\":%d,\"retry_after\":1}", status);
        else
                snprintf(meta, sizeof meta, "{\"status\":%d}", status);
        _cleanup_free_ char *text = json_dump_compact(body);
        struct pbox_error err = PBOX_ERROR_INIT;
        /* Never block on the api process: one datagram per channel fits its buffer. */
        int r = privsep_send_flags(fd, MSG_DONTWAIT, meta, text, strlen(text), -1, &err);
        if (r < 0)
                log_debug("response not delivered: %s", err.message);
        return r;
}

int core_stream_send(struct request *req, const char *meta, const void *data, size_t len)
{
        if (req->hangup)
                return -EPIPE;
        struct pbox_error err = PBOX_ERROR_INIT;
        /* Never block: -EAGAIN tells the caller to wait for room
         * (request_set_writable) and send the same message again. */
        int r = privsep_send_flags(req->watch.fd, MSG_DONTWAIT, meta, data, len, -1, &err);
        if (r < 0 && r != -EAGAIN)
                log_debug("stream message not delivered: %s", err.message);
        return r;
}

int core_send_raw(struct request *req, int status, const char *content_type, const void *data, size_t len,
                  int body_fd)
{
        _cleanup_json_ json_t *meta = json_pack("{s:i,s:s}", "status", status, "content_type", content_type);
        _cleanup_free_ char *text = json_dump_compact(meta);
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = privsep_send_flags(req->watch.fd, MSG_DONTWAIT, text, data, len, body_fd, &err);
        if (r < 0)
                log_debug("raw response not delivered: %s", err.message);
        return r;
}

void request_release(struct request *req)
{
        struct core *core = req->core;
        for (struct request **p = &core->requests; *p; p = &(*p)->next)
                if (*p == req) {
                        *p = req->next;
                        break;
                }
        core_watch_del(core, &req->watch);
        if (req->watch.fd >= 0)
                close(req->watch.fd);
        free(req);
}

void request_respond(struct request *req, int status, json_t *body)
{
        if (!body)
                body = json_object();
        if (!req->answered && !req->hangup) {
                metrics_count_response(status);
                send_response(req->watch.fd, status, body);
        }
        req->answered = true;
        json_decref(body);
        request_release(req);
}

static json_t *error_body(const char *code, const char *message)
{
        return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

void request_error(struct request *req, int status, const char *code, const char *fmt, ...)
{
        char msg[PBOX_ERROR_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        request_respond(req, status, error_body(code, msg));
}

static int status_from_errno(int code, const char **slug)
{
        switch (code) {
        case ENOENT: *slug = "not_found"; return 404;
        case EINVAL: case ERANGE: case E2BIG: case EBADMSG: case EILSEQ: case ELOOP:
        case ENAMETOOLONG: case ENOTDIR: case EISDIR: case EXDEV: case EPROTO: case EOVERFLOW:
                *slug = "bad_request"; return 400;
        case EEXIST: case EBUSY: case ENOTEMPTY: *slug = "conflict"; return 409;
        case EFBIG: case EMSGSIZE: *slug = "payload_too_large"; return 413;
        case EACCES: case EPERM: *slug = "forbidden"; return 403;
        case EAGAIN: case EUSERS: *slug = "unavailable"; return 503;
        default: *slug = "internal"; return 500;
        }
}

json_t *request_fail_body(const struct pbox_error *err, int *ret_status)
{
        const char *slug;
        int status = status_from_errno(err->code, &slug);
        if (status >= 500)
                log_error("request failed: %s", err->message);
        *ret_status = status;
        return error_body(slug, err->message[0] ? err->message : "internal error");
}

void request_fail(struct request *req, const struct pbox_error *err)
{
        int status;
        json_t *body = request_fail_body(err, &status);
        request_respond(req, status, body);
}

/* ---- validation helpers ------------------------------------------------- */

static bool valid_id(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 128 || !isalnum((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

static bool valid_ref(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

/* ---- image operations --------------------------------------------------- */

struct worker {
        struct watch watch;             /* pidfd of the worker */
        struct request *req;
        pid_t pid;
        char what[32];
};

static void worker_exited(struct core *core, struct watch *w, uint32_t events)
{
        struct worker *wk = w->data;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PIDFD, (id_t) w->fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        core_watch_del(core, w);
        close(w->fd);
        core->n_workers--;
        /* The worker answered on the channel itself; only a crash is ours to report. */
        if (si.si_code != CLD_EXITED || si.si_status != 0) {
                log_error("%s worker %d failed (code %d status %d)", wk->what, (int) wk->pid, si.si_code, si.si_status);
                request_error(wk->req, 500, "internal", "the %s failed unexpectedly", wk->what);
        } else {
                wk->req->answered = true;
                request_release(wk->req);
        }
        free(wk);
}

int core_run_worker(struct core *core, struct request *req, const char *what,
                    int (*fn)(struct core *core, void *arg, json_t **ret_body, struct pbox_error *err),
                    void *arg, int success_status)
{
        int pidfd = -1;
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_PIDFD;
        ca.pidfd = (uint64_t) (uintptr_t) &pidfd;
        ca.exit_signal = SIGCHLD;
        pid_t pid = (pid_t) sys_clone3(&ca, sizeof ca);
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                json_t *body = NULL;
                struct pbox_error werr = PBOX_ERROR_INIT;
                int r = fn(core, arg, &body, &werr), sent = 0;
                if (r == 1)
                        ;       /* fn answered itself (core_send_raw) */
                else if (r < 0) {
                        const char *slug;
                        int status = status_from_errno(werr.code, &slug);
                        json_t *eb = error_body(slug, werr.message);
                        sent = send_response(req->watch.fd, status, eb);
                        json_decref(eb);
                } else {
                        sent = send_response(req->watch.fd, success_status, body ? body : json_object());
                        json_decref(body);
                }
                _exit(sent < 0 ? 1 : 0);
        }
        struct worker *wk = util_xcalloc(1, sizeof *wk);
        wk->watch = (struct watch) { pidfd, worker_exited, wk };
        wk->req = req;
        wk->pid = pid;
        snprintf(wk->what, sizeof wk->what, "%s", what);
        req->deferred = true;
        core->n_workers++;
        if (core_watch_add(core, &wk->watch, EPOLLIN) < 0) {
                log_error("cannot watch a worker: %m");
                abort();
        }
        return 0;
}

struct image_load_args {
        int fd;
        const char *name;
};

static int image_load_worker(struct core *core, void *arg, json_t **ret_body, struct pbox_error *err)
{
        struct image_load_args *a = arg;
        return image_store_load(core->images, a->fd, a->name, ret_body, err);
}

static void op_image_load(struct core *core, struct request *req, json_t *args, struct privsep_msg *msg)
{
        const char *name = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        if (json_get_string(args, "name", false, &name, &err) < 0)
                return request_fail(req, &err);
        _cleanup_free_ char *norm = NULL;
        if (name && image_ref_normalize(name, &norm, &err) < 0)
                return request_fail(req, &err);

        _cleanup_close_ int fd = -1;
        if (msg->body_fd >= 0) {
                /* Our own open file description: the api's copy shares the
                 * offset of the one it sent (the seals already fix the content). */
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", msg->body_fd);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return request_error(req, 500, "internal", "cannot reopen the upload: %s", strerror(errno));
        } else {
                fd = memfd_create("pbox-upload", MFD_CLOEXEC);
                if (fd < 0 || util_write_all(fd, msg->body ? msg->body : "", msg->body_len) < 0 ||
                    lseek(fd, 0, SEEK_SET) < 0)
                        return request_error(req, 500, "internal", "cannot buffer the upload");
        }
        if (msg->body_len == 0)
                return request_error(req, 400, "bad_request", "the request body must be an image archive");

        /* Unpacking is long and uses libraries freely: a forked worker does it
         * and answers on the channel itself; the core stays responsive. */
        struct image_load_args a = { fd, norm };
        if (core_run_worker(core, req, "image load", image_load_worker, &a, 201) < 0)
                return request_error(req, 503, "unavailable", "cannot start an image load: %s", strerror(errno));
        log_info("image load started (%llu bytes)", (unsigned long long) msg->body_len);
}

static void op_image_list(struct core *core, struct request *req)
{
        json_t *arr = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        if (image_store_list(core->images, &arr, &err) < 0)
                return request_fail(req, &err);
        if (core->caller) {
                /* A tenant sees the images it may use. */
                json_t *mine = json_array();
                size_t i;
                json_t *img;
                json_array_foreach(arr, i, img) {
                        const char *id = json_string_value(json_object_get(img, "id"));
                        bool ok = id && tenant_may_use_image(core->caller, id, "");
                        size_t k;
                        json_t *name;
                        json_array_foreach(json_object_get(img, "names"), k, name)
                                ok = ok || (id && tenant_may_use_image(core->caller, id, json_string_value(name)));
                        if (ok)
                                json_array_append(mine, img);
                }
                json_decref(arr);
                arr = mine;
        }
        request_respond(req, 200, json_pack("{s:o}", "images", arr));
}

static void op_image_remove(struct core *core, struct request *req, json_t *args)
{
        const char *ref = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        if (json_get_string(args, "ref", true, &ref, &err) < 0)
                return request_fail(req, &err);
        if (!valid_ref(ref))
                return request_error(req, 400, "bad_request", "invalid image reference");
        struct image_info *info = NULL;
        if (image_store_resolve(core->images, ref, &info, &err) < 0)
                return request_fail(req, &err);
        bool used = sandbox_uses_image(core, info->id);
        image_info_free(info);
        if (used)
                return request_error(req, 409, "conflict", "image %s is used by a sandbox", ref);
        if (image_store_remove(core->images, ref, &err) < 0)
                return request_fail(req, &err);
        log_info("image %s removed", ref);
        request_respond(req, 200, json_pack("{s:s}", "removed", ref));
}

/* ---- request channels --------------------------------------------------- */

static int read_json_body(struct core *core, struct privsep_msg *msg, bool optional, json_t **ret,
                          struct pbox_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        const char *text = msg->body;
        if (msg->body_fd >= 0) {
                if (msg->body_len > core->cfg->max_json_body)
                        return pbox_error_set(err, EFBIG, "request body larger than %llu bytes",
                                              (unsigned long long) core->cfg->max_json_body);
                int r = util_read_all(msg->body_fd, core->cfg->max_json_body, &buf, &len);
                /* (the content is sealed; the offset is shared with the api, so a
                 * short read only hurts the request that caused it) */
                if (r < 0)
                        return pbox_error_sys(err, -r, "read the request body");
                text = buf;
        } else
                len = msg->body_len;
        if (len > core->cfg->max_json_body)
                return pbox_error_set(err, EFBIG, "request body larger than %llu bytes",
                                      (unsigned long long) core->cfg->max_json_body);
        if (len == 0) {
                if (optional) {
                        *ret = NULL;
                        return 0;
                }
                return pbox_error_set(err, EINVAL, "a JSON request body is required");
        }
        if (memchr(text, '\0', len))
                return pbox_error_set(err, EINVAL, "the request body contains a NUL byte");
        return json_parse_untrusted(text, len, true, ret, err);
}

static void dispatch_op(struct core *core, struct request *req, const char *op, json_t *args, struct privsep_msg *msg);

static void dispatch(struct core *core, struct request *req, struct privsep_msg *msg)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *meta = NULL;
        if (json_parse_untrusted(msg->meta, msg->meta_len, true, &meta, &err) < 0)
                return request_error(req, 400, "bad_request", "malformed request envelope");
        const char *op = NULL, *token = NULL;
        if (json_get_string(meta, "op", true, &op, &err) < 0 ||
            json_get_string(meta, "token", false, &token, &err) < 0)
                return request_error(req, 400, "bad_request", "malformed request envelope");
        json_t *args = json_object_get(meta, "args");
        if (args && !json_is_object(args))
                return request_error(req, 400, "bad_request", "malformed request envelope");
        _cleanup_json_ json_t *empty = json_object();
        if (!args)
                args = empty;
        const char *k;
        json_t *v;
        json_object_foreach(args, k, v)
                if (!json_is_string(v))
                        return request_error(req, 400, "bad_request", "malformed request envelope");

        if (!strcmp(op, "health"))
                return health_op(core, req);       /* the one unauthenticated operation */
        const struct tenant *caller = NULL;
        if (!token || (!util_secure_streq(token, core->admin_token) && !(caller = tenant_by_token(core, token))))
                return request_error(req, 401, "unauthorized", "a valid bearer token is required");
        bool admin_only = !strcmp(op, "image.load") || !strcmp(op, "image.remove") || !strncmp(op, "tenant.", 7) ||
                          !strcmp(op, "metrics");
        if (caller && admin_only)
                return request_error(req, 403, "forbidden", "this operation needs the admin token");
        core->caller = caller;
        dispatch_op(core, req, op, args, msg);
        core->caller = NULL;
}

static void dispatch_op(struct core *core, struct request *req, const char *op, json_t *args, struct privsep_msg *msg)
{
        struct pbox_error err = PBOX_ERROR_INIT;

        const char *id = NULL;
        if (json_get_string(args, "id", false, &id, &err) < 0)
                return request_fail(req, &err);
        if (id && !valid_id(id))
                return request_error(req, 404, "not_found", "no such sandbox");

        json_t *body = NULL;
        bool optional_json = !strcmp(op, "sandbox.stop") || !strcmp(op, "exec.kill") || !strcmp(op, "sandbox.keepalive");
        bool wants_json = optional_json || !strcmp(op, "sandbox.create") || !strcmp(op, "sandbox.exec") ||
                          !strcmp(op, "run") || !strcmp(op, "tenant.create") || !strcmp(op, "sandbox.limits");
        if (wants_json && read_json_body(core, msg, optional_json, &body, &err) < 0)
                return request_fail(req, &err);
        _cleanup_json_ json_t *body_ref = body;

        if ((!strcmp(op, "sandbox.get") || !strcmp(op, "sandbox.exec") || !strcmp(op, "sandbox.stop") ||
             !strncmp(op, "exec.", 5) || !strcmp(op, "sandbox.keepalive") ||
             !strcmp(op, "sandbox.remove") || !strcmp(op, "sandbox.limits") || !strncmp(op, "files.", 6) || !strncmp(op, "archive.", 8)) && !id)
                return request_error(req, 400, "bad_request", "missing sandbox id");

        if (!strcmp(op, "image.load"))
                op_image_load(core, req, args, msg);
        else if (!strcmp(op, "image.list"))
                op_image_list(core, req);
        else if (!strcmp(op, "image.remove"))
                op_image_remove(core, req, args);
        else if (!strcmp(op, "sandbox.create"))
                sandbox_op_create(core, req, body);
        else if (!strcmp(op, "sandbox.list"))
                sandbox_op_list(core, req);
        else if (!strcmp(op, "sandbox.get"))
                sandbox_op_get(core, req, id);
        else if (!strcmp(op, "sandbox.exec"))
                sandbox_op_exec(core, req, id, body);
        else if (!strcmp(op, "tenant.create"))
                tenant_op_create(core, req, body);
        else if (!strcmp(op, "tenant.list"))
                tenant_op_list(core, req);
        else if (!strcmp(op, "tenant.remove")) {
                const char *name = NULL;
                json_get_string(args, "name", false, &name, NULL);
                if (!name)
                        return request_error(req, 400, "bad_request", "missing tenant name");
                tenant_op_remove(core, req, name);
        } else if (!strcmp(op, "metrics"))
                metrics_op(core, req);
        else if (!strcmp(op, "run"))
                run_op(core, req, body);
        else if (!strcmp(op, "sandbox.keepalive"))
                sandbox_op_keepalive(core, req, id, body);
        else if (!strcmp(op, "sandbox.stop"))
                sandbox_op_stop(core, req, id, body);
        else if (!strcmp(op, "sandbox.limits")) {
                const char *patch = NULL;
                json_get_string(args, "patch", false, &patch, NULL);
                sandbox_op_limits(core, req, id, body, patch && !strcmp(patch, "true"));
        }
        else if (!strncmp(op, "exec.", 5)) {
                const char *eid = NULL;
                json_get_string(args, "eid", false, &eid, NULL);
                sandbox_op_exec_other(core, req, op, id, eid, args, body, msg);
        } else if (!strncmp(op, "files.", 6) || !strncmp(op, "archive.", 8)) {
                struct files_target t;
                if (sandbox_files_target(core, id, &t) < 0)
                        return request_error(req, 404, "not_found", "no such sandbox: %s", id);
                files_op(core, req, op, &t, args, msg);
        } else if (!strcmp(op, "sandbox.remove")) {
                const char *force = NULL;
                json_get_string(args, "force", false, &force, NULL);
                bool f = force && (!strcmp(force, "true") || !strcmp(force, "1") || !strcmp(force, "yes"));
                sandbox_op_remove(core, req, id, f);
        } else
                request_error(req, 404, "not_found", "unknown operation");
}

int request_set_writable(struct request *req, void (*fn)(struct request *req, void *arg), void *arg)
{
        bool was = req->writable != NULL;
        req->writable = fn;
        req->writable_arg = arg;
        if (req->hangup || was == (fn != NULL))
                return 0;
        return core_watch_mod(req->core, &req->watch, EPOLLIN | EPOLLRDHUP | (fn ? EPOLLOUT : 0));
}

static void request_event(struct core *core, struct watch *w, uint32_t events)
{
        struct request *req = w->data;
        if (req->deferred) {
                /* The api side closed while an operation holds the request. */
                if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
                        req->hangup = true;
                        core_watch_del(core, w);
                }
                /* A stream waiting for room: now it has some (or learns of
                 * the hangup and drops itself).  It may release req. */
                if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && req->writable)
                        req->writable(req, req->writable_arg);
                return;
        }
        struct privsep_msg msg = PRIVSEP_MSG_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        /* Non-blocking: the api created both ends, and a hostile one could
         * take the message away between our wake-up and this read. */
        int r = privsep_recv_flags(w->fd, MSG_DONTWAIT, &msg, &err);
        if (r == -EAGAIN)
                return;
        if (r < 0) {
                if (r != -ECONNRESET)
                        log_warning("bad request message from the api process: %s", err.message);
                req->hangup = true;
                request_release(req);
                return;
        }
        dispatch(core, req, &msg);
        privsep_msg_clear(&msg);
}

static void control_event(struct core *core, struct watch *w, uint32_t events)
{
        for (int i = 0; i < 64; i++) {
                int fd = -1;
                struct pbox_error err = PBOX_ERROR_INIT;
                int r = privsep_recv_channel(w->fd, &fd, &err);
                if (r == -EAGAIN)
                        return;
                if (r < 0) {
                        if (r == -ECONNRESET) {
                                log_error("the api process closed the control channel");
                                core->quit = true;
                                core_watch_del(core, w);
                        } else
                                log_warning("bad message on the control channel: %s", err.message);
                        return;
                }
                struct timeval tv = { 5, 0 };
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                struct request *req = util_xcalloc(1, sizeof *req);
                req->watch = (struct watch) { fd, request_event, req };
                req->core = core;
                req->next = core->requests;
                core->requests = req;
                if (core_watch_add(core, &req->watch, EPOLLIN | EPOLLRDHUP) < 0) {
                        log_error("cannot watch a request channel: %m");
                        request_release(req);
                }
        }
}

static void api_exited(struct core *core, struct watch *w, uint32_t events)
{
        siginfo_t si;
        memset(&si, 0, sizeof si);
        waitid(P_PIDFD, (id_t) w->fd, &si, WEXITED | WNOHANG);
        log_error("the api process exited (code %d, status %d); shutting down", si.si_code, si.si_status);
        core_watch_del(core, w);
        core->quit = true;
}

static void signal_event(struct core *core, struct watch *w, uint32_t events)
{
        struct signalfd_siginfo si;
        while (read(w->fd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                        log_notice("signal %d: shutting down (sandboxes keep running)", (int) si.ssi_signo);
                        core->quit = true;
                }
        }
}

/* ---- start-up ----------------------------------------------------------- */

static int load_or_create_token(struct core *core, struct pbox_error *err)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct pbox_error rerr = PBOX_ERROR_INIT;
        if (util_read_file_at(core->state_fd, "admin.token", 4096, &text, &len, &rerr) == 0) {
                while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                        text[--len] = '\0';
                if (len < 32 || len > 64)
                        return pbox_error_set(err, EINVAL, "%s/admin.token must hold 32 to 64 characters",
                                              core->cfg->state_dir);
                memcpy(core->admin_token, text, len + 1);
                return 0;
        }
        if (rerr.code != ENOENT)
                return pbox_error_set(err, rerr.code, "%s", rerr.message);
        util_random_hex(core->admin_token, 32);
        char line[80];
        snprintf(line, sizeof line, "%s\n", core->admin_token);
        int r = util_write_file_atomic_at(core->state_fd, "admin.token", line, strlen(line), 0600, err);
        if (r < 0)
                return r;
        log_notice("wrote a new admin token to %s/admin.token", core->cfg->state_dir);
        return 0;
}

/* A sealed in-memory copy of pbox-init: sandboxes execute it from here, so no
 * host file is ever reachable (let alone writable) through /proc/1/exe. */
static int load_init_memfd(const char *path, int *ret, struct pbox_error *err)
{
        _cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC);
        if (src < 0)
                return pbox_error_sys(err, errno, "open %s", path);
        struct stat st;
        if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (64 << 20))
                return pbox_error_set(err, EINVAL, "%s is not a plausible pbox-init binary", path);
        _cleanup_close_ int fd = memfd_create("pbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return pbox_error_sys(err, errno, "memfd_create");
        char buf[65536];
        ssize_t n;
        while ((n = read(src, buf, sizeof buf)) > 0)
                if (util_write_all(fd, buf, (size_t) n) < 0)
                        return pbox_error_sys(err, errno, "copy %s", path);
        if (n < 0)
                return pbox_error_sys(err, errno, "read %s", path);
        if (fchmod(fd, 0555) < 0)
                return pbox_error_sys(err, errno, "chmod memfd");
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return pbox_error_sys(err, errno, "seal the pbox-init memfd");
        *ret = TAKE_FD(fd);
        return 0;
}

static int ensure_dir(int parent, const char *name, mode_t mode, struct pbox_error *err)
{
        if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "mkdir %s", name);
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s", name);
        if (fchmod(fd, mode) < 0) {
                close(fd);
                return pbox_error_sys(err, errno, "chmod %s", name);
        }
        return fd;
}

static void log_cgroup_controllers(struct core *core)
{
        const struct cgroup_manager *m = core->cgroups;
        char enabled[64] = "", missing[64] = "";
        for (unsigned bit = 1; bit & CGROUP_CTRL_ALL; bit <<= 1) {
                char *buf = (m->enabled & bit) ? enabled : missing;
                size_t n = strlen(buf);
                snprintf(buf + n, sizeof enabled - n, "%s%s", n ? " " : "", cgroup_controller_name(bit));
        }
        log_info("cgroup subtree %s%s (controllers: %s)", m->base_path, m->delegated ? " (delegated)" : "",
                 m->controllers[0] ? m->controllers : "none");
        if (m->placement_note)
                log_notice("%s", m->placement_note);
        if (m->enable_error)
                log_info("enabling controllers: %s", m->enable_error);
        log_info("cgroup controllers for sandboxes: %s; missing: %s", enabled[0] ? enabled : "none",
                 missing[0] ? missing : "none");
        if (missing[0] && core->cfg->allow_unenforced_limits)
                log_notice("limits that need %s are accepted but not enforced (allow_unenforced_limits = yes)", missing);
        else if (missing[0])
                log_notice("requests for limits that need %s are refused on this host (422)", missing);
}

int core_init(struct core *core, struct pboxd_config *cfg, int control_fd, pid_t api_pid,
              struct pbox_error *err)
{
        int r;
        memset(core, 0, sizeof *core);
        core->cfg = cfg;
        core->epfd = core->state_fd = core->sandboxes_fd = core->init_memfd = core->null_fd = core->own_pidns_fd = -1;
        core->control.fd = core->api_exit.fd = core->signals.fd = -1;
        core->map = (struct userns_map) { cfg->uid_base, cfg->gid_base, cfg->uid_count };
        if ((r = userns_map_validate(&core->map, err)) < 0)
                return r;

        if ((r = util_mkdir_p(cfg->state_dir, 0711, err)) < 0)
                return r;
        core->state_fd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (core->state_fd < 0)
                return pbox_error_sys(err, errno, "open %s", cfg->state_dir);
        if (fchmod(core->state_fd, 0711) < 0)
                return pbox_error_sys(err, errno, "chmod %s", cfg->state_dir);
        if ((r = ensure_dir(core->state_fd, "sandboxes", 0711, err)) < 0)
                return r;
        core->sandboxes_fd = r;
        if ((r = load_or_create_token(core, err)) < 0)
                return r;

        core->runtime_sandboxes = util_xasprintf("%s/sandboxes", cfg->runtime_dir);
        if ((r = util_mkdir_p(core->runtime_sandboxes, 0711, err)) < 0)
                return r;

        struct image_store_options iopts = {
                .uid_base = cfg->uid_base, .gid_base = cfg->gid_base, .id_count = cfg->uid_count,
                .max_archive_bytes = cfg->max_image_bytes, .max_layer_bytes = cfg->max_layer_bytes,
        };
        if ((r = image_store_open(cfg->state_dir, &iopts, &core->images, err)) < 0)
                return pbox_error_prefix(err, "open the image store");
        if ((r = cgroup_manager_open_full(cfg->cgroup_name, (enum cgroup_delegation) cfg->cgroup_delegation,
                                          CGROUP_CTRL_ALL, &core->cgroups, err)) < 0)
                return pbox_error_prefix(err, "set up the cgroup subtree");
        log_cgroup_controllers(core);
        if ((r = limits_check_config(core, err)) < 0)
                return r;
        if ((r = caps_plan_from_names(caps_default_names, &core->caps, err)) < 0)
                return pbox_error_prefix(err, "capabilities");
        if ((r = seccomp_policy_compile_file(cfg->seccomp_policy, &core->seccomp, err)) < 0)
                return pbox_error_prefix(err, "seccomp policy %s", cfg->seccomp_policy);
        if ((r = load_init_memfd(cfg->init_path, &core->init_memfd, err)) < 0)
                return r;
        core->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (core->null_fd < 0)
                return pbox_error_sys(err, errno, "open /dev/null");
        core->own_pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (core->own_pidns_fd < 0)
                return pbox_error_sys(err, errno, "open /proc/self/ns/pid");
        core->pidfd_setns = spawn_probe_pidfd_setns();
        if (!core->pidfd_setns)
                log_notice("kernel without setns() on pidfds: joining namespaces through /proc/PID/ns");

        core->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (core->epfd < 0)
                return pbox_error_sys(err, errno, "epoll_create1");

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        core->signals = (struct watch) { signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), signal_event, NULL };
        if (core->signals.fd < 0 || core_watch_add(core, &core->signals, EPOLLIN) < 0)
                return pbox_error_sys(err, errno, "signalfd");

        int fl = fcntl(control_fd, F_GETFL);
        fcntl(control_fd, F_SETFL, fl | O_NONBLOCK);
        core->control = (struct watch) { control_fd, control_event, NULL };
        if (core_watch_add(core, &core->control, EPOLLIN) < 0)
                return pbox_error_sys(err, errno, "watch the control channel");
        core->api_pid = api_pid;
        if (api_pid > 0) {
                core->api_exit = (struct watch) { sys_pidfd_open(api_pid, 0), api_exited, NULL };
                if (core->api_exit.fd < 0 || core_watch_add(core, &core->api_exit, EPOLLIN) < 0)
                        return pbox_error_sys(err, errno, "watch the api process");
        }

        if ((r = tenants_load(core, err)) < 0)
                return r;
        if ((r = sandbox_recover_all(core, err)) < 0)
                return pbox_error_prefix(err, "recover sandboxes");
        if ((r = sandbox_start_reaper(core, err)) < 0)
                return r;
        return 0;
}

int core_run(struct core *core)
{
        struct epoll_event events[64];
        while (!core->quit) {
                int n = epoll_wait(core->epfd, events, 64, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("epoll_wait: %m");
                        return -errno;
                }
                core->batch = events;
                core->batch_n = n;
                for (core->batch_i = 0; core->batch_i < n; core->batch_i++) {
                        struct watch *w = events[core->batch_i].data.ptr;
                        if (w)
                                w->fn(core, w, events[core->batch_i].events);
                }
                core->batch = NULL;
                core->batch_n = core->batch_i = 0;
        }
        return 0;
}

void core_free(struct core *core)
{
        sandbox_free_all(core);
        tenants_free(core);
        while (core->requests) {
                struct request *req = core->requests;
                if (!req->answered && !req->deferred)
                        request_error(req, 503, "unavailable", "pboxd is shutting down");
                else
                        request_release(req);
        }
        image_store_free(core->images);
        cgroup_manager_free(core->cgroups);
        seccomp_program_free(core->seccomp);
        free(core->runtime_sandboxes);
        int fds[] = { core->epfd, core->state_fd, core->sandboxes_fd, core->init_memfd, core->null_fd,
                      core->own_pidns_fd, core->signals.fd, core->api_exit.fd, core->control.fd };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}
