/* api.c — the HTTP front end of pboxd: the unprivileged api process.
 *
 * It owns everything between the network and the privsep protocol: civetweb
 * setup, the privilege drop, routing (method + path -> privsep op), bounded
 * body reading (JSON bodies in memory, image uploads streamed into a sealed
 * memfd), forwarding each request to the core over its own request channel,
 * and writing the core's answer (or a JSON error) back.  It judges no token
 * and parses no request JSON: the core does, treating all of it as hostile.
 *
 * Privilege drop and civetweb threads.  Credentials and capabilities are
 * per thread in the kernel; glibc's setresuid/setresgid/setgroups broadcast
 * to all threads, but capset, the bounding set, no_new_privs and dumpable do
 * not.  So the drop must happen while the process has exactly one thread,
 * yet after the listening socket is bound (a port < 1024 needs root).
 * civetweb 1.15's mg_start2 binds the listening sockets (set_ports_option),
 * then calls the init_context callback, and only then creates the master and
 * worker threads (this build has no timer thread; Debian's is built without
 * USE_TIMERS).  We drop everything in init_context, after checking that the
 * process really has one thread, and fail closed (_exit) if anything does
 * not stick; every new civetweb thread re-checks in init_thread.  civetweb's
 * own "run_as_user" option is not used: it only does setgid/setgroups/setuid
 * by user name and leaves the bounding set, ambient set and no_new_privs
 * alone, and it cannot fail the start in a way we could see before threads
 * run.  Any port works this way, including ports < 1024.
 *
 * Routes (api_paths, api_routes) map method + path to a privsep op; path
 * parameters ({id}, {eid}, {name}, {ref}) and the route's query parameters
 * become string args, checked for shape only.  /healthz forwards no token
 * (the core answers it unauthenticated).  Raw bodies (image uploads, file
 * and archive uploads, streamed stdin) go through a sealed memfd, bounded
 * by max_image_body; JSON bodies through memory, bounded by max_json_body.
 * Answers carry the core's content type (downloads, metrics) and, on 503,
 * its Retry-After.
 *
 * Event streams (exec.events): when the core's first answer says
 * "stream", the worker writes the head (no length, Connection: close) and
 * then passes every chunk through as it arrives, until the core's "end",
 * the core closing the channel, the client hanging up (seen on the
 * connection's socket, found by its addresses since civetweb does not
 * expose it; failing that, by the next write: a comment line every 15 s
 * keeps quiet streams written), or the api stopping (the shutdown
 * shuts down both the channel and the client socket, so no worker stays
 * blocked).  Closing the channel tells the core to stop.  Each stream
 * holds a worker, so at most api_threads minus a quarter of them (at
 * least one kept free) are open at once; more get 503 with Retry-After.
 *
 * Every request goes through the begin_request callback, which civetweb
 * calls before any of its own request processing (authentication, file
 * serving, CGI, websocket upgrade, CORS preflight): none of that is
 * reachable.  Errors civetweb raises itself (malformed request line, header
 * too large, bad method) come through the http_error callback and are sent
 * as JSON too. */
#include <config.h>

#include <civetweb.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "api.h"
#include "json.h"
#include "privsep.h"
#include "syscalls.h"
#include "util.h"

#define API_MAX_TOKEN 1024
#define API_MAX_PARAM 255
#define API_MAX_TEXT_PARAM 4096
#define API_MAX_ID 128
#define API_IO_CHUNK (64 * 1024)
/* An event stream quiet for this long gets an SSE comment line. */
#define API_STREAM_PING_MS 15000
/* After an error sent before the request body was read, read and discard
 * at most this much so that the client sees the answer instead of a reset. */
#define API_DRAIN_MAX (8u << 20)

/* ---- logging ------------------------------------------------------------ */

static void api_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void api_log(int level, const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        /* Messages may quote client input: one line, printable only. */
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
                        *p = '?';
        fprintf(stderr, "<%d>pboxd-api: %s\n", level, buf);
}

/* ---- operations and routes ---------------------------------------------- */

enum api_op {
#define X(id, name) API_OP_##id,
        PRIVSEP_OPS(X)
#undef X
        API_OP_COUNT
};

static const char *const api_op_names[API_OP_COUNT] = {
#define X(id, name) [API_OP_##id] = name,
        PRIVSEP_OPS(X)
#undef X
};

enum api_body {
        API_BODY_NONE,          /* no body accepted */
        API_BODY_JSON,          /* JSON, forwarded as bytes, may be empty */
        API_BODY_UPLOAD,        /* raw bytes streamed into a memfd */
};

/* Path shapes: literal segments and parameter segments written "{name}".
 * The parameter's name says how it is checked and is its key in args:
 *   {id}    sandbox id or name, [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, raw
 *   {eid}   exec id, [a-f0-9]{16}, raw
 *   {name}  tenant name, like {id}
 *   {ref}   image reference, URL-decoded, printable ASCII, <= 255 bytes */
#define API_MAX_SEGS 7
#define API_MAX_PATH_PARAMS 2

enum api_path_id {
        P_IMAGES, P_IMAGE, P_SANDBOXES, P_SANDBOX, P_EXEC, P_STOP, P_EXECS, P_EXEC_ONE,
        P_EXEC_EVENTS, P_EXEC_STDIN, P_EXEC_KILL, P_KEEPALIVE, P_FILES, P_LS, P_ARCHIVE,
        P_RUN, P_TENANTS, P_TENANT, P_HEALTHZ, P_METRICS, P_LIMITS,
};

static const char *const api_paths[][API_MAX_SEGS] = {
        [P_IMAGES] = { "v1", "images" },
        [P_IMAGE] = { "v1", "images", "{ref}" },
        [P_SANDBOXES] = { "v1", "sandboxes" },
        [P_SANDBOX] = { "v1", "sandboxes", "{id}" },
        [P_EXEC] = { "v1", "sandboxes", "{id}", "exec" },
        [P_STOP] = { "v1", "sandboxes", "{id}", "stop" },
        [P_EXECS] = { "v1", "sandboxes", "{id}", "execs" },
        [P_EXEC_ONE] = { "v1", "sandboxes", "{id}", "execs", "{eid}" },
        [P_EXEC_EVENTS] = { "v1", "sandboxes", "{id}", "execs", "{eid}", "events" },
        [P_EXEC_STDIN] = { "v1", "sandboxes", "{id}", "execs", "{eid}", "stdin" },
        [P_EXEC_KILL] = { "v1", "sandboxes", "{id}", "execs", "{eid}", "kill" },
        [P_KEEPALIVE] = { "v1", "sandboxes", "{id}", "keepalive" },
        [P_FILES] = { "v1", "sandboxes", "{id}", "files" },
        [P_LS] = { "v1", "sandboxes", "{id}", "ls" },
        [P_ARCHIVE] = { "v1", "sandboxes", "{id}", "archive" },
        [P_RUN] = { "v1", "run" },
        [P_TENANTS] = { "v1", "tenants" },
        [P_TENANT] = { "v1", "tenants", "{name}" },
        [P_HEALTHZ] = { "healthz" },
        [P_METRICS] = { "metrics" },
        [P_LIMITS] = { "v1", "sandboxes", "{id}", "limits" },
};

enum {
        API_F_NO_AUTH = 1 << 0, /* no token is forwarded (the core decides) */
        API_F_STREAM = 1 << 1,  /* the core may answer with an event stream */
};

#define API_MAX_QUERY 6

struct api_route {
        enum api_path_id path;
        const char *method;
        enum api_op op;
        enum api_body body;
        const char *query[API_MAX_QUERY];  /* allowed query parameters, NULL-terminated */
        const char *required;              /* a query parameter that must be present */
        unsigned flags;
};

static const struct api_route api_routes[] = {
        { P_IMAGES, "GET", API_OP_IMAGE_LIST, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_IMAGES, "POST", API_OP_IMAGE_LOAD, API_BODY_UPLOAD, { "name", NULL }, NULL, 0 },
        { P_IMAGE, "DELETE", API_OP_IMAGE_REMOVE, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_SANDBOXES, "GET", API_OP_SANDBOX_LIST, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_SANDBOXES, "POST", API_OP_SANDBOX_CREATE, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_SANDBOX, "GET", API_OP_SANDBOX_GET, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_SANDBOX, "DELETE", API_OP_SANDBOX_REMOVE, API_BODY_NONE, { "force", NULL }, NULL, 0 },
        /* PATCH {"limits": {...}} and POST .../limits {...}: the core tells them apart by "patch". */
        { P_SANDBOX, "PATCH", API_OP_SANDBOX_LIMITS, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_LIMITS, "POST", API_OP_SANDBOX_LIMITS, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_EXEC, "POST", API_OP_SANDBOX_EXEC, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_STOP, "POST", API_OP_SANDBOX_STOP, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_EXECS, "GET", API_OP_EXEC_LIST, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_EXEC_ONE, "GET", API_OP_EXEC_GET, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_EXEC_EVENTS, "GET", API_OP_EXEC_EVENTS, API_BODY_NONE, { NULL }, NULL, API_F_STREAM },
        { P_EXEC_STDIN, "POST", API_OP_EXEC_STDIN, API_BODY_UPLOAD, { "close", NULL }, NULL, 0 },
        { P_EXEC_KILL, "POST", API_OP_EXEC_KILL, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_KEEPALIVE, "POST", API_OP_SANDBOX_KEEPALIVE, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_FILES, "PUT", API_OP_FILES_PUT, API_BODY_UPLOAD, { "path", "mode", "uid", "gid", "mkdirs", NULL },
          "path", 0 },
        { P_FILES, "GET", API_OP_FILES_GET, API_BODY_NONE, { "path", NULL }, "path", 0 },
        { P_LS, "GET", API_OP_FILES_LIST, API_BODY_NONE, { "path", NULL }, "path", 0 },
        { P_ARCHIVE, "PUT", API_OP_ARCHIVE_PUT, API_BODY_UPLOAD, { "path", "uid", "gid", "mkdirs", NULL },
          "path", 0 },
        { P_ARCHIVE, "GET", API_OP_ARCHIVE_GET, API_BODY_NONE, { "path", NULL }, "path", 0 },
        { P_RUN, "POST", API_OP_RUN, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_TENANTS, "GET", API_OP_TENANT_LIST, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_TENANTS, "POST", API_OP_TENANT_CREATE, API_BODY_JSON, { NULL }, NULL, 0 },
        { P_TENANT, "DELETE", API_OP_TENANT_REMOVE, API_BODY_NONE, { NULL }, NULL, 0 },
        { P_HEALTHZ, "GET", API_OP_HEALTH, API_BODY_NONE, { NULL }, NULL, API_F_NO_AUTH },
        { P_METRICS, "GET", API_OP_METRICS, API_BODY_NONE, { NULL }, NULL, 0 },
};

/* ---- process state -------------------------------------------------------- */

struct api_ctx {
        const struct api_options *opts;
        size_t max_json_body;
        uint64_t max_image_body;
        int control_sock;
        pthread_mutex_t control_lock;   /* one sender at a time on the control channel */
        pthread_mutex_t inflight_lock;  /* guards inflight[] and the closing of its fds */
        int *inflight;                  /* request channels waiting for the core */
        size_t n_inflight;
        atomic_bool stopping;
        atomic_bool core_gone;
        atomic_bool dropped;
        int max_streams;                /* event streams open at once (each holds a worker) */
        atomic_int n_streams;
        int *stream_socks;              /* their client sockets, -1 = free; under inflight_lock */
};

/* ---- HTTP responses -------------------------------------------------------- */

static const char *api_reason(int status)
{
        switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 417: return "Expectation Failed";
        case 422: return "Unprocessable Entity";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: break;
        }
        if (status >= 200 && status < 300)
                return "OK";
        if (status >= 400 && status < 500)
                return "Bad Request";
        return "Internal Server Error";
}

static const char *api_slug(int status)
{
        switch (status) {
        case 400: return "bad_request";
        case 401: return "unauthorized";
        case 403: return "forbidden";
        case 404: return "not_found";
        case 405: return "method_not_allowed";
        case 409: return "conflict";
        case 413: return "payload_too_large";
        case 422: return "unprocessable";
        case 429: return "too_many_requests";
        case 503: return "unavailable";
        default: break;
        }
        return status >= 400 && status < 500 ? "bad_request" : "internal";
}

/* Does the comma-separated header value contain token (case-insensitive)? */
static bool header_has_token(const char *value, const char *token)
{
        size_t tl = strlen(token);
        const char *p = value;
        while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                const char *s = p;
                while (*p && *p != ',')
                        p++;
                const char *e = p;
                while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if ((size_t) (e - s) == tl && strncasecmp(s, token, tl) == 0)
                        return true;
        }
        return false;
}

/* Per-request state the response writer needs. */
struct api_req {
        struct mg_connection *conn;
        const struct mg_request_info *ri;
        bool has_body;          /* the client announced a body */
        bool body_read;         /* ... and we consumed it */
        bool sent_continue;     /* "100 Continue" went out */
        bool close;             /* close the connection after the answer */
};

static void api_drain(struct api_req *rq)
{
        /* The answer is out; swallow a bounded amount of the unread body so
         * that closing does not reset the connection under the client. */
        char *buf = util_xmalloc(API_IO_CHUNK);
        size_t total = 0;
        while (total < API_DRAIN_MAX) {
                int n = mg_read(rq->conn, buf, API_IO_CHUNK);
                if (n <= 0)
                        break;
                total += (size_t) n;
        }
        free(buf);
}

/* Write body_len bytes from body, or from body_fd (with pread) when it is
 * >= 0.  tail, if not NULL, gets the last two bytes written (shifted in).
 * Returns false when the client cannot take them all. */
static bool api_write_body(struct mg_connection *conn, const void *body, uint64_t body_len, int body_fd,
                           char tail[2])
{
        if (body_len == 0)
                return true;
        if (body_fd < 0) {
                if (mg_write(conn, body, (size_t) body_len) != (int) body_len)
                        return false;
                const char *b = body;
                if (tail) {
                        tail[0] = body_len >= 2 ? b[body_len - 2] : tail[1];
                        tail[1] = b[body_len - 1];
                }
                return true;
        }
        _cleanup_free_ char *buf = util_xmalloc(API_IO_CHUNK);
        uint64_t off = 0;
        while (off < body_len) {
                size_t want = body_len - off < API_IO_CHUNK ? (size_t) (body_len - off) : API_IO_CHUNK;
                ssize_t n = pread(body_fd, buf, want, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || mg_write(conn, buf, (size_t) n) != (int) n)
                        return false;
                if (tail) {
                        tail[0] = n >= 2 ? buf[n - 2] : tail[1];
                        tail[1] = buf[n - 1];
                }
                off += (uint64_t) n;
        }
        return true;
}

/* Write a complete response: status line, headers, body (from memory, or
 * from body_fd with pread).  Returns the status for civetweb's log. */
static int api_send(struct api_req *rq, int status, const char *content_type, const char *extra_headers,
                    const void *body, uint64_t body_len, int body_fd)
{
        struct mg_connection *conn = rq->conn;
        const struct mg_request_info *ri = rq->ri;
        bool drain = false;

        if (rq->has_body && !rq->body_read) {
                /* Never let civetweb read a body we refused as the next
                 * request, nor spend time discarding gigabytes of it.  A
                 * client that asked for "100 Continue" and did not get it
                 * sends no body: nothing to drain then. */
                rq->close = true;
                const char *ex = mg_get_header(conn, "Expect");
                drain = !ex || rq->sent_continue;
        }
        if (!rq->close) {
                const char *c = mg_get_header(conn, "Connection");
                if (c)
                        rq->close = !header_has_token(c, "keep-alive");
                else
                        rq->close = !(ri && ri->http_version && strcmp(ri->http_version, "1.1") == 0);
        }
        if (rq->close)
                mg_disable_connection_keep_alive(conn);

        const char *version = ri && ri->http_version && strcmp(ri->http_version, "1.0") == 0 ? "1.0" : "1.1";
        char date[64] = "";
        time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm))
                strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        mg_printf(conn,
                  "HTTP/%s %d %s\r\n"
                  "Date: %s\r\n"
                  "Content-Type: %s\r\n"
                  "Content-Length: %llu\r\n"
                  "Cache-Control: no-store\r\n"
                  "X-Content-Type-Options: nosniff\r\n"
                  "%s"
                  "Connection: %s\r\n"
                  "\r\n",
                  version, status, api_reason(status), date,
                  content_type ? content_type : "application/json", (unsigned long long) body_len,
                  extra_headers ? extra_headers : "", rq->close ? "close" : "keep-alive");

        bool head = ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
        if (!head && !api_write_body(conn, body, body_len, body_fd, NULL))
                /* Cannot finish the promised length: the connection
                 * must not be reused. */
                mg_disable_connection_keep_alive(conn);
        if (drain)
                api_drain(rq);
        return status;
}

static int api_error(struct api_req *rq, int status, const char *extra_headers, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int api_error(struct api_req *rq, int status, const char *extra_headers, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        for (char *p = msg; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
                        *p = '?';
        _cleanup_json_ json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", api_slug(status),
                                             "message", msg);
        if (!j)
                abort();
        _cleanup_free_ char *text = json_dump_compact(j);
        return api_send(rq, status, NULL, extra_headers, text, strlen(text), -1);
}

/* ---- request parsing ------------------------------------------------------- */

static bool ascii_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9][A-Za-z0-9_.-]{0,127}: a sandbox id or name. */
static bool valid_id(const char *s, size_t len)
{
        if (len == 0 || len > API_MAX_ID || !ascii_alnum(s[0]))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!(ascii_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
                        return false;
        return true;
}

static bool valid_printable(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

/* Decode src[0..len) into a new string that must be printable ASCII without
 * spaces and at most API_MAX_PARAM bytes.  NULL if it is not. */
static char *decode_param(const char *src, size_t len, bool form)
{
        if (len > 3 * API_MAX_PARAM)
                return NULL;
        char *out = util_xmalloc(len + 1);
        int n = mg_url_decode(src, (int) len, out, (int) len + 1, form ? 1 : 0);
        if (n < 0 || (size_t) n > API_MAX_PARAM || !valid_printable(out, (size_t) n)) {
                free(out);
                return NULL;
        }
        return out;
}

/* A parameter segment of a matched path, still raw (undecoded). */
struct api_path_param {
        const char *name;       /* the segment in api_paths: "{id}", "{eid}", ... */
        const char *raw;
        size_t len;
};

/* Decode a query value that is text (a file path): URL-decoded, valid
 * UTF-8 without NUL, at most API_MAX_TEXT_PARAM bytes.  NULL if not. */
static char *decode_text_param(const char *src, size_t len)
{
        if (len > 3 * API_MAX_TEXT_PARAM)
                return NULL;
        char *out = util_xmalloc(len + 1);
        int n = mg_url_decode(src, (int) len, out, (int) len + 1, 1);
        if (n < 0 || (size_t) n > API_MAX_TEXT_PARAM || memchr(out, '\0', (size_t) n) ||
            !util_utf8_valid(out, (size_t) n)) {
                free(out);
                return NULL;
        }
        return out;
}

/* Match the raw (undecoded) path against api_paths.  Returns the index, or
 * -1; params gets the parameter segments in order (unused ones NULL). */
static int match_path(const char *path, struct api_path_param params[API_MAX_PATH_PARAMS])
{
        if (path[0] != '/')
                return -1;
        for (size_t i = 0; i < ARRAY_SIZE(api_paths); i++) {
                const char *const *segs = api_paths[i];
                struct api_path_param pv[API_MAX_PATH_PARAMS] = { { 0 } };
                size_t np = 0;
                const char *p = path;
                bool ok = true;
                for (size_t k = 0; k < API_MAX_SEGS && segs[k]; k++) {
                        if (*p != '/') {
                                ok = false;
                                break;
                        }
                        p++;
                        const char *s = p;
                        while (*p && *p != '/')
                                p++;
                        size_t sl = (size_t) (p - s);
                        if (segs[k][0] == '{') {
                                if (sl == 0 || np == API_MAX_PATH_PARAMS) {
                                        ok = false;
                                        break;
                                }
                                pv[np++] = (struct api_path_param) { segs[k], s, sl };
                        } else if (sl != strlen(segs[k]) || memcmp(s, segs[k], sl) != 0) {
                                ok = false;
                                break;
                        }
                }
                if (ok && *p == '\0') {
                        memcpy(params, pv, sizeof pv);
                        return (int) i;
                }
        }
        return -1;
}

/* Check one path parameter and add it to args.  Returns 0 or an HTTP
 * status with *msg set. */
static int path_param(const struct api_path_param *pp, json_t *args, char *msg, size_t msgsz)
{
        if (!strcmp(pp->name, "{ref}")) {
                _cleanup_free_ char *ref = decode_param(pp->raw, pp->len, false);
                if (!ref) {
                        snprintf(msg, msgsz, "invalid image reference (printable ASCII without spaces, "
                                 "at most %d bytes)", API_MAX_PARAM);
                        return 400;
                }
                json_object_set_new(args, "ref", json_string(ref));
                return 0;
        }
        if (!strcmp(pp->name, "{eid}")) {
                bool ok = pp->len == 16;
                for (size_t i = 0; ok && i < pp->len; i++)
                        ok = (pp->raw[i] >= '0' && pp->raw[i] <= '9') || (pp->raw[i] >= 'a' && pp->raw[i] <= 'f');
                if (!ok) {
                        snprintf(msg, msgsz, "invalid exec id (16 lowercase hex digits)");
                        return 400;
                }
                json_object_set_new(args, "eid", json_stringn(pp->raw, pp->len));
                return 0;
        }
        bool tenant = !strcmp(pp->name, "{name}");
        if (!tenant && strcmp(pp->name, "{id}") != 0)
                abort();        /* a typo in api_paths */
        if (!valid_id(pp->raw, pp->len)) {
                snprintf(msg, msgsz, tenant ? "invalid tenant name" : "invalid sandbox id or name");
                return 400;
        }
        json_object_set_new(args, tenant ? "name" : "id", json_stringn(pp->raw, pp->len));
        return 0;
}

/* How often does header name occur (civetweb keeps the first 64)? */
static int header_count(const struct mg_request_info *ri, const char *name)
{
        int n = 0;
        for (int i = 0; i < ri->num_headers && i < MG_MAX_HEADERS; i++)
                if (ri->http_headers[i].name && strcasecmp(ri->http_headers[i].name, name) == 0)
                        n++;
        return n;
}

/* "Bearer <token>" -> token (printable ASCII, bounded), else NULL: the core
 * answers 401 to a request without one. */
static char *bearer_token(const char *h)
{
        if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
                return NULL;
        h += 6;
        while (*h == ' ' || *h == '\t')
                h++;
        size_t len = strlen(h);
        while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
                len--;
        if (len == 0 || len > API_MAX_TOKEN || !valid_printable(h, len))
                return NULL;
        char *t = util_xmalloc(len + 1);
        memcpy(t, h, len);
        t[len] = '\0';
        return t;
}

/* Parse the raw query string into args, allowing only the route's
 * parameters, each once.  Returns 0 or an HTTP status with *msg set. */
static int parse_query(const char *qs, const struct api_route *rt, json_t *args, char *msg, size_t msgsz)
{
        const char *p = qs ? qs : "";
        while (*p) {
                const char *s = p;
                while (*p && *p != '&')
                        p++;
                const char *e = p;
                if (*p == '&')
                        p++;
                if (e == s)
                        continue;
                const char *eq = memchr(s, '=', (size_t) (e - s));
                const char *ke = eq ? eq : e;
                _cleanup_free_ char *key = decode_param(s, (size_t) (ke - s), true);
                if (!key) {
                        snprintf(msg, msgsz, "invalid query parameter name");
                        return 400;
                }
                bool allowed = false;
                for (size_t i = 0; i < ARRAY_SIZE(rt->query) && rt->query[i]; i++)
                        if (strcmp(rt->query[i], key) == 0)
                                allowed = true;
                if (!allowed) {
                        snprintf(msg, msgsz, "unknown query parameter '%s'", key);
                        return 400;
                }
                if (json_object_get(args, key)) {
                        snprintf(msg, msgsz, "query parameter '%s' given twice", key);
                        return 400;
                }
                bool text = !strcmp(key, "path");
                _cleanup_free_ char *val = !eq ? util_xstrdup("")
                        : text ? decode_text_param(eq + 1, (size_t) (e - eq - 1))
                               : decode_param(eq + 1, (size_t) (e - eq - 1), true);
                if (!val) {
                        if (text)
                                snprintf(msg, msgsz, "invalid value for query parameter '%s' (UTF-8 without "
                                         "NUL, at most %d bytes)", key, API_MAX_TEXT_PARAM);
                        else
                                snprintf(msg, msgsz, "invalid value for query parameter '%s' (printable "
                                         "ASCII without spaces, at most %d bytes)", key, API_MAX_PARAM);
                        return 400;
                }
                json_object_set_new(args, key, json_string(val));
        }
        if (rt->required && !json_object_get(args, rt->required)) {
                snprintf(msg, msgsz, "query parameter '%s' is required", rt->required);
                return 400;
        }
        return 0;
}

/* ---- reading bodies -------------------------------------------------------- */

/* Honour "Expect: 100-continue" once we know we want the body. */
static void api_continue(struct api_req *rq)
{
        const char *ex = mg_get_header(rq->conn, "Expect");
        if (ex && strcasecmp(ex, "100-continue") == 0 && rq->ri->http_version &&
            strcmp(rq->ri->http_version, "1.1") == 0 && !rq->sent_continue) {
                mg_printf(rq->conn, "HTTP/1.1 100 Continue\r\n\r\n");
                rq->sent_continue = true;
        }
}

enum read_result { READ_OK, READ_TOO_LARGE, READ_CLIENT_GONE, READ_INTERNAL };


/* Read the body into memory, at most max bytes. */
static enum read_result read_body_mem(struct api_req *rq, size_t max, char **ret, size_t *ret_len)
{
        long long cl = rq->ri->content_length;
        if (cl > 0 && (unsigned long long) cl > max)
                return READ_TOO_LARGE;
        api_continue(rq);
        size_t cap = cl > 0 ? (size_t) cl : 4096, len = 0;
        _cleanup_free_ char *buf = util_xmalloc(cap + 1);
        for (;;) {
                /* civetweb never reads past Content-Length: stop there
                 * rather than grow the buffer to probe for more. */
                if (cl >= 0 && len == (size_t) cl)
                        break;
                if (len == cap) {
                        if (cap > max)
                                return READ_TOO_LARGE;
                        cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                        buf = util_xrealloc(buf, cap + 1);
                }
                int n = mg_read(rq->conn, buf + len, cap - len);
                if (n < 0)
                        return READ_CLIENT_GONE;
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max)
                        return READ_TOO_LARGE;
        }
        if (cl >= 0 && len != (size_t) cl)
                return READ_CLIENT_GONE;        /* connection ended early */
        rq->body_read = true;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return READ_OK;
}

/* Stream the body into a sealed memfd, at most max bytes. */
static enum read_result read_body_memfd(struct api_req *rq, uint64_t max, int *ret_fd)
{
        long long cl = rq->ri->content_length;
        if (cl > 0 && (unsigned long long) cl > max)
                return READ_TOO_LARGE;
        _cleanup_close_ int fd = memfd_create("pbox-upload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                api_log(3, "memfd_create for upload: %s", strerror(errno));
                return READ_INTERNAL;
        }
        api_continue(rq);
        _cleanup_free_ char *buf = util_xmalloc(API_IO_CHUNK);
        uint64_t total = 0;
        for (;;) {
                int n = mg_read(rq->conn, buf, API_IO_CHUNK);
                if (n < 0)
                        return READ_CLIENT_GONE;
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > max)
                        return READ_TOO_LARGE;
                int r = util_write_all(fd, buf, (size_t) n);
                if (r < 0) {
                        api_log(3, "writing upload to memfd: %s", strerror(-r));
                        return READ_INTERNAL;
                }
        }
        if (cl >= 0 && total != (uint64_t) cl)
                return READ_CLIENT_GONE;
        rq->body_read = true;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                api_log(3, "sealing upload memfd: %s", strerror(errno));
                return READ_INTERNAL;
        }
        *ret_fd = TAKE_FD(fd);
        return READ_OK;
}

/* ---- talking to the core --------------------------------------------------- */

/* Is the core gone?  A dying core closes its fds one after the other, so a
 * request channel can report EOF just before the control channel does:
 * callers on an error path wait up to timeout_ms for the verdict. */
static bool control_dead(struct api_ctx *ctx, int timeout_ms)
{
        if (atomic_load(&ctx->core_gone))
                return true;
        uint64_t deadline = util_now_ms() + (uint64_t) timeout_ms;
        for (;;) {
                struct pollfd pfd = { .fd = ctx->control_sock, .events = POLLRDHUP };
                int left = (int) (deadline - util_now_ms());
                int n = poll(&pfd, 1, left > 0 ? left : 0);
                if (n > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)))
                        return true;
                if (n < 0 && errno != EINTR)
                        return false;
                if (util_now_ms() >= deadline)
                        return false;
                if (n > 0)
                        usleep(10000);  /* woken for nothing we asked: do not spin */
        }
}

static bool inflight_add(struct api_ctx *ctx, int fd)
{
        bool ok = false;
        pthread_mutex_lock(&ctx->inflight_lock);
        if (!atomic_load(&ctx->stopping)) {
                for (size_t i = 0; i < ctx->n_inflight; i++)
                        if (ctx->inflight[i] < 0) {
                                ctx->inflight[i] = fd;
                                break;
                        }
                ok = true;      /* untracked if the table is full: still fine */
        }
        pthread_mutex_unlock(&ctx->inflight_lock);
        return ok;
}

/* Forget and close fd, under the lock, so that the shutdown loop never
 * touches an fd number that was reused meanwhile. */
static void inflight_close(struct api_ctx *ctx, int fd)
{
        pthread_mutex_lock(&ctx->inflight_lock);
        for (size_t i = 0; i < ctx->n_inflight; i++)
                if (ctx->inflight[i] == fd)
                        ctx->inflight[i] = -1;
        close(fd);
        pthread_mutex_unlock(&ctx->inflight_lock);
}

static void inflight_shutdown_all(struct api_ctx *ctx)
{
        pthread_mutex_lock(&ctx->inflight_lock);
        for (size_t i = 0; i < ctx->n_inflight; i++) {
                if (ctx->inflight[i] >= 0)
                        shutdown(ctx->inflight[i], SHUT_RDWR);
                /* A stream's worker may be blocked writing to a client
                 * that does not read: make that write fail now. */
                if (ctx->stream_socks[i] >= 0)
                        shutdown(ctx->stream_socks[i], SHUT_RDWR);
        }
        pthread_mutex_unlock(&ctx->inflight_lock);
}

/* One request/response exchange on a fresh request channel.  Returns 0, or
 * an HTTP status (500/503) with *msg set. */
static int api_exchange(struct api_ctx *ctx, const char *meta, const char *body, size_t body_len,
                        int body_fd, struct privsep_msg *resp, int *ret_chan, char *msg, size_t msgsz)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                api_log(3, "socketpair: %s", strerror(errno));
                snprintf(msg, msgsz, "cannot reach the daemon core");
                return 500;
        }
        int mine = sv[0];
        _cleanup_close_ int theirs = sv[1];
        if (!inflight_add(ctx, mine)) {
                close(mine);
                snprintf(msg, msgsz, "the daemon is shutting down");
                return 503;
        }

        pthread_mutex_lock(&ctx->control_lock);
        int r = privsep_send_channel(ctx->control_sock, theirs, &err);
        pthread_mutex_unlock(&ctx->control_lock);
        util_closep(&theirs);
        theirs = -1;
        if (r < 0) {
                inflight_close(ctx, mine);
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN || control_dead(ctx, 0)) {
                        atomic_store(&ctx->core_gone, true);
                        snprintf(msg, msgsz, "the daemon core is not running");
                        return 503;
                }
                api_log(3, "%s", err.message);
                snprintf(msg, msgsz, "cannot reach the daemon core");
                return 500;
        }

        r = privsep_send(mine, meta, body, body_len, body_fd, &err);
        if (r >= 0)
                r = privsep_recv(mine, resp, &err);
        if (r >= 0 && ret_chan) {
                /* The caller reads on (a stream) and closes it. */
                *ret_chan = mine;
                return 0;
        }
        inflight_close(ctx, mine);
        if (r < 0) {
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        if (atomic_load(&ctx->stopping)) {
                                snprintf(msg, msgsz, "the daemon is shutting down");
                                return 503;
                        }
                        if (control_dead(ctx, 250)) {
                                snprintf(msg, msgsz, "the daemon core is not running");
                                return 503;
                        }
                        api_log(3, "core closed a request channel without answering");
                        snprintf(msg, msgsz, "the daemon core did not answer");
                        return 500;
                }
                api_log(3, "request channel: %s", err.message);
                snprintf(msg, msgsz, "bad answer from the daemon core");
                return 500;
        }
        return 0;
}

/* ---- event streams ------------------------------------------------------- */

/* Each open event stream holds a civetweb worker thread for as long as the
 * client listens.  At most max_streams of them run at once, so that some
 * workers are always left for ordinary requests: api_threads minus a
 * quarter of them (at least one).  More get 503 with Retry-After. */
static int api_max_streams(int threads)
{
        int reserve = threads / 4 > 1 ? threads / 4 : 1;
        return threads > reserve ? threads - reserve : 0;
}

static bool stream_reserve(struct api_ctx *ctx)
{
        if (atomic_fetch_add(&ctx->n_streams, 1) >= ctx->max_streams) {
                atomic_fetch_sub(&ctx->n_streams, 1);
                return false;
        }
        return true;
}

static void stream_release(struct api_ctx *ctx)
{
        atomic_fetch_sub(&ctx->n_streams, 1);
}

/* Remember a stream's client socket so that the shutdown can unblock its
 * writes.  Returns the slot, or -1 (untracked). */
static int stream_sock_add(struct api_ctx *ctx, int sock)
{
        int slot = -1;
        if (sock < 0)
                return -1;
        pthread_mutex_lock(&ctx->inflight_lock);
        for (size_t i = 0; i < ctx->n_inflight && slot < 0; i++)
                if (ctx->stream_socks[i] < 0) {
                        ctx->stream_socks[i] = sock;
                        slot = (int) i;
                }
        if (atomic_load(&ctx->stopping))
                shutdown(sock, SHUT_RDWR);
        pthread_mutex_unlock(&ctx->inflight_lock);
        return slot;
}

/* Forget it before civetweb closes (and the kernel reuses) the fd. */
static void stream_sock_remove(struct api_ctx *ctx, int slot)
{
        if (slot < 0)
                return;
        pthread_mutex_lock(&ctx->inflight_lock);
        ctx->stream_socks[slot] = -1;
        pthread_mutex_unlock(&ctx->inflight_lock);
}

static bool sockaddr_text(const struct sockaddr_storage *sa, char *buf, size_t len, int *ret_port)
{
        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                *ret_port = ntohs(in->sin_port);
                return inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t) len) != NULL;
        }
        if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                *ret_port = ntohs(in6->sin6_port);
                return inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t) len) != NULL;
        }
        return false;
}

/* civetweb does not expose a connection's socket, and a stream must
 * notice a client that hung up while nothing is written.  Find the socket
 * by its addresses: the TCP socket whose peer is the client's address and
 * port and whose local port is the server port is this connection's, and
 * it stays open (and ours) until the handler returns.  -1 when not found
 * (then only a failing write, at the latest the next keep-alive comment,
 * tells the client is gone). */
static int client_socket(const struct mg_request_info *ri)
{
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -1;
        int found = -1, n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char *end;
                errno = 0;
                long fd = strtol(de->d_name, &end, 10);
                if (errno || *end || end == de->d_name || fd < 3 || fd > INT_MAX || fd == dirfd(d))
                        continue;
                struct sockaddr_storage peer, local;
                socklen_t pl = sizeof peer, ll = sizeof local;
                int type = 0;
                socklen_t tl = sizeof type;
                char addr[INET6_ADDRSTRLEN], laddr[INET6_ADDRSTRLEN];
                int pport, lport;
                if (getpeername((int) fd, (struct sockaddr *) &peer, &pl) < 0 ||
                    getsockname((int) fd, (struct sockaddr *) &local, &ll) < 0 ||
                    getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
                    !sockaddr_text(&peer, addr, sizeof addr, &pport) ||
                    !sockaddr_text(&local, laddr, sizeof laddr, &lport))
                        continue;
                if (pport != ri->remote_port || strcmp(addr, ri->remote_addr) != 0 ||
                    (ri->server_port > 0 && lport != ri->server_port))
                        continue;
                found = (int) fd;
                n++;
        }
        closedir(d);
        return n == 1 ? found : -1;     /* never guess */
}

/* Pass an event stream through: the core's first message (status, content
 * type) is in; write the head, then every chunk as it comes, until the
 * core's "end", the core closing the channel, the client going away, or
 * the api stopping.  The caller closes chan, which tells the core. */
static int api_stream(struct api_ctx *ctx, struct api_req *rq, int chan, int status, const char *ctype)
{
        struct mg_connection *conn = rq->conn;
        const struct mg_request_info *ri = rq->ri;
        rq->close = true;
        mg_disable_connection_keep_alive(conn);

        const char *version = ri->http_version && strcmp(ri->http_version, "1.0") == 0 ? "1.0" : "1.1";
        char date[64] = "";
        time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm))
                strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        /* No Content-Length and no chunked coding: the body ends when the
         * connection closes (fine for HTTP/1.0 and 1.1 clients alike). */
        if (mg_printf(conn,
                      "HTTP/%s %d %s\r\n"
                      "Date: %s\r\n"
                      "Content-Type: %s\r\n"
                      "Cache-Control: no-cache\r\n"
                      "X-Content-Type-Options: nosniff\r\n"
                      "X-Accel-Buffering: no\r\n"
                      "Connection: close\r\n"
                      "\r\n",
                      version, status, api_reason(status), date, ctype) <= 0)
                return status;

        int sock = client_socket(ri);
        int slot = stream_sock_add(ctx, sock);
        char tail[2] = { '\n', '\n' };  /* last bytes written: at an event boundary? */
        uint64_t last_write = util_now_ms();
        for (;;) {
                if (atomic_load(&ctx->stopping))
                        break;
                struct pollfd pfd[2] = {
                        { .fd = chan, .events = POLLIN },
                        /* Only a hang-up: a pipelined request (POLLIN)
                         * must not make this spin. */
                        { .fd = sock, .events = POLLRDHUP },
                };
                uint64_t t = util_now_ms();
                uint64_t due = last_write + API_STREAM_PING_MS;
                int n = poll(pfd, sock >= 0 ? 2 : 1, due > t ? (int) (due - t) : 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        api_log(3, "poll on an event stream: %s", strerror(errno));
                        break;
                }
                if (sock >= 0 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                        break;          /* the client went away */
                if (n == 0) {
                        /* Quiet for a while: an SSE comment keeps proxies
                         * from timing out and finds clients that left.
                         * Only between events, never inside one. */
                        if (tail[0] == '\n' && tail[1] == '\n' &&
                            !api_write_body(conn, ": keep-alive\n\n", 14, -1, NULL))
                                break;
                        last_write = util_now_ms();
                        continue;
                }
                if (!pfd[0].revents)
                        continue;

                struct privsep_msg m = PRIVSEP_MSG_INIT;
                struct pbox_error err = PBOX_ERROR_INIT;
                int r = privsep_recv_flags(chan, MSG_DONTWAIT, &m, &err);
                if (r == -EAGAIN)
                        continue;
                if (r < 0) {
                        /* The core closed without "end" (the sandbox
                         * was removed, or the core is going): just end
                         * the response. */
                        if (r != -ECONNRESET)
                                api_log(4, "event stream: %s", err.message);
                        break;
                }
                _cleanup_json_ json_t *meta = NULL;
                bool ok = json_parse_untrusted(m.meta, m.meta_len, true, &meta, &err) == 0;
                bool end = ok && json_is_true(json_object_get(meta, "end"));
                bool chunk = ok && json_is_true(json_object_get(meta, "chunk"));
                if (!end && !chunk)
                        api_log(3, "bad message in an event stream from the core");
                if (chunk && !api_write_body(conn, m.body, m.body_len, m.body_fd, tail)) {
                        privsep_msg_clear(&m);
                        break;          /* the client went away */
                }
                privsep_msg_clear(&m);
                if (!chunk)
                        break;
                last_write = util_now_ms();
        }
        stream_sock_remove(ctx, slot);
        return status;
}

/* ---- the request handler --------------------------------------------------- */

/* A media type from the core goes into a header: printable ASCII only. */
static bool content_type_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 128)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
                        return false;
        return true;
}

static int api_answer(struct api_ctx *ctx, struct api_req *rq, int st, const char *msg, struct privsep_msg *resp,
                      int chan, bool streaming);

static int api_handle(struct api_ctx *ctx, struct api_req *rq)
{
        struct mg_connection *conn = rq->conn;
        const struct mg_request_info *ri = rq->ri;
        char msg[512];

        /* Framing first: whatever else is wrong, a request with ambiguous
         * body framing must not leave a keep-alive connection behind. */
        int n_cl = header_count(ri, "Content-Length");
        int n_te = header_count(ri, "Transfer-Encoding");
        const char *te = mg_get_header(conn, "Transfer-Encoding");
        bool chunked = te && strcasecmp(te, "identity") != 0;
        rq->has_body = ri->content_length > 0 || chunked;
        if (n_cl > 1 || n_te > 1 || (n_cl && n_te)) {
                rq->close = true;
                return api_error(rq, 400, NULL, "ambiguous request body framing");
        }
        if (n_cl) {
                const char *cl = mg_get_header(conn, "Content-Length");
                if (!cl || !*cl || strspn(cl, "0123456789") != strlen(cl)) {
                        rq->close = true;
                        return api_error(rq, 400, NULL, "invalid Content-Length");
                }
        }
        if (header_count(ri, "Authorization") > 1)
                return api_error(rq, 400, NULL, "more than one Authorization header");
        const char *ex = mg_get_header(conn, "Expect");
        if (ex && strcasecmp(ex, "100-continue") != 0)
                return api_error(rq, 417, NULL, "unsupported Expect header");

        /* Route. */
        const char *path = ri->local_uri_raw;
        if (!path || path[0] != '/')
                return api_error(rq, 400, NULL, "invalid request target");
        struct api_path_param params[API_MAX_PATH_PARAMS];
        int pi = match_path(path, params);
        if (pi < 0)
                return api_error(rq, 404, NULL, "no such endpoint");
        const struct api_route *rt = NULL;
        char allow[128] = "";
        for (size_t i = 0; i < ARRAY_SIZE(api_routes); i++) {
                if (api_routes[i].path != (enum api_path_id) pi)
                        continue;
                if (strcmp(api_routes[i].method, ri->request_method) == 0)
                        rt = &api_routes[i];
                size_t al = strlen(allow);
                snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "", api_routes[i].method);
        }
        if (!rt) {
                char hdr[160];
                snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
                return api_error(rq, 405, hdr, "method %s not allowed here (allowed: %s)",
                                 ri->request_method, allow);
        }

        /* Arguments. */
        _cleanup_json_ json_t *args = json_object();
        for (size_t i = 0; i < API_MAX_PATH_PARAMS && params[i].name; i++) {
                int st = path_param(&params[i], args, msg, sizeof msg);
                if (st)
                        return api_error(rq, st, NULL, "%s", msg);
        }
        int st = parse_query(ri->query_string, rt, args, msg, sizeof msg);
        if (st)
                return api_error(rq, st, NULL, "%s", msg);

        if (rt->op == API_OP_SANDBOX_LIMITS && !strcmp(rt->method, "PATCH"))
                json_object_set_new(args, "patch", json_string("true"));     /* body {"limits": {...}} */
        _cleanup_json_ json_t *meta = json_pack("{s:s,s:O}", "op", api_op_names[rt->op], "args", args);
        if (!meta)
                abort();
        if (!(rt->flags & API_F_NO_AUTH)) {
                _cleanup_free_ char *token = bearer_token(mg_get_header(conn, "Authorization"));
                if (token)
                        json_object_set_new(meta, "token", json_string(token));
        }
        _cleanup_free_ char *meta_text = json_dump_compact(meta);

        /* Body. */
        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        _cleanup_close_ int body_fd = -1;
        enum read_result rr = READ_OK;
        switch (rt->body) {
        case API_BODY_NONE:
                if (rq->has_body)
                        return api_error(rq, 400, NULL, "this endpoint takes no request body");
                rq->body_read = true;
                break;
        case API_BODY_JSON:
                rr = read_body_mem(rq, ctx->max_json_body, &body, &body_len);
                break;
        case API_BODY_UPLOAD:
                rr = read_body_memfd(rq, ctx->max_image_body, &body_fd);
                break;
        }
        switch (rr) {
        case READ_OK:
                break;
        case READ_TOO_LARGE:
                rq->close = true;
                if (rt->body == API_BODY_UPLOAD)
                        return api_error(rq, 413, NULL, "%s larger than %llu bytes",
                                         rt->op == API_OP_IMAGE_LOAD ? "image upload" : "request body",
                                         (unsigned long long) ctx->max_image_body);
                return api_error(rq, 413, NULL, "JSON body larger than %zu bytes", ctx->max_json_body);
        case READ_CLIENT_GONE:
                /* A malformed chunked body, a timeout, or a client that went
                 * away: never forward a partial body.  Answer in case anyone
                 * is still listening; there is nothing left worth draining. */
                rq->body_read = true;
                rq->close = true;
                return api_error(rq, 400, NULL, "incomplete or malformed request body");
        case READ_INTERNAL:
                rq->close = true;
                return api_error(rq, 500, NULL, "cannot buffer the request body");
        }

        /* Forward and answer.  A stream holds a worker for a long time:
         * take a slot first (and give it back however this ends). */
        bool streaming = rt->flags & API_F_STREAM;
        if (streaming && !stream_reserve(ctx))
                return api_error(rq, 503, "Retry-After: 1\r\n",
                                 "too many open event streams (at most %d); try again later", ctx->max_streams);
        struct privsep_msg resp = PRIVSEP_MSG_INIT;
        int chan = -1;
        st = api_exchange(ctx, meta_text, body, body_len, body_fd, &resp, streaming ? &chan : NULL, msg,
                          sizeof msg);
        util_closep(&body_fd);
        body_fd = -1;
        int ret = api_answer(ctx, rq, st, msg, &resp, chan, streaming);
        if (chan >= 0)
                inflight_close(ctx, chan);      /* the core stops the stream */
        if (streaming)
                stream_release(ctx);
        privsep_msg_clear(&resp);
        return ret;
}

/* Answer with the core's first response (or the exchange's error st). */
static int api_answer(struct api_ctx *ctx, struct api_req *rq, int st, const char *msg, struct privsep_msg *resp,
                      int chan, bool streaming)
{
        if (st)
                return api_error(rq, st, NULL, "%s", msg);

        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *rmeta = NULL;
        int64_t status = 0, retry = -1;
        const char *ctype = "application/json";
        bool stream = false;
        if (json_parse_untrusted(resp->meta, resp->meta_len, true, &rmeta, &err) < 0 ||
            json_get_int(rmeta, "status", true, 200, 599, &status, &err) < 0 ||
            json_get_string(rmeta, "content_type", false, &ctype, &err) < 0 ||
            json_get_int(rmeta, "retry_after", false, 0, 86400, &retry, &err) < 0 ||
            json_get_bool(rmeta, "stream", false, &stream, &err) < 0) {
                api_log(3, "bad response meta from core: %s", err.message);
                return api_error(rq, 500, NULL, "bad answer from the daemon core");
        }
        if (!content_type_valid(ctype)) {
                api_log(3, "bad content type in a response from the core");
                return api_error(rq, 500, NULL, "bad answer from the daemon core");
        }
        if (stream) {
                if (!streaming || chan < 0 || status != 200) {
                        api_log(3, "unexpected event stream from the core");
                        return api_error(rq, 500, NULL, "bad answer from the daemon core");
                }
                return api_stream(ctx, rq, chan, (int) status, ctype);
        }
        char hdr[64] = "";
        if (retry >= 0)
                snprintf(hdr, sizeof hdr, "Retry-After: %d\r\n", (int) retry);
        return api_send(rq, (int) status, ctype, hdr, resp->body, resp->body_len, resp->body_fd);
}

static int api_begin_request(struct mg_connection *conn)
{
        struct api_ctx *ctx = mg_get_user_data(mg_get_context(conn));
        struct api_req rq = {
                .conn = conn,
                .ri = mg_get_request_info(conn),
        };
        if (!ctx || !rq.ri || !rq.ri->request_method) {
                mg_disable_connection_keep_alive(conn);
                return 500;
        }
        int status = api_handle(ctx, &rq);
        return status > 0 && status < 1000 ? status : 500;
}

/* Errors civetweb detects itself (bad request line, header too large, ...):
 * answer them in JSON too, and close. */
static int api_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
        struct api_req rq = {
                .conn = conn,
                .ri = mg_get_request_info(conn),
                .close = true,
        };
        if (status < 400 || status > 599)
                return 1;       /* not an error: let civetweb do it */
        api_error(&rq, status, NULL, "%s", errmsg && *errmsg ? errmsg : api_reason(status));
        return 0;
}

static int api_log_message(const struct mg_connection *conn, const char *message)
{
        api_log(4, "civetweb: %s", message ? message : "");
        return 1;
}

/* ---- privilege drop ---------------------------------------------------------- */

static int thread_count(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        if (!f)
                return -errno;
        char line[256];
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "Threads:", 8) == 0)
                        return atoi(line + 8);
        return -ENOENT;
}

static bool caps_all_clear(void)
{
        cap_t now = cap_get_proc();
        if (!now)
                return false;
        cap_t none = cap_init();
        bool clear = none && cap_compare(now, none) == 0;
        cap_free(now);
        if (none)
                cap_free(none);
        return clear;
}

static int drop_privileges(uid_t uid, gid_t gid, struct pbox_error *err)
{
        if (uid == 0 || gid == 0)
                return pbox_error_set(err, EINVAL, "refusing to run the api as uid/gid 0");

        /* Everything below is per thread except what glibc broadcasts. */
        int nt = thread_count();
        if (nt != 1)
                return pbox_error_set(err, EPERM, "api process has %d threads at privilege drop, "
                                      "expected 1", nt);

        uid_t ru, eu, su;
        gid_t rg, eg, sg;
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                return pbox_error_sys(err, errno, "getresuid/getresgid");
        bool already = ru == uid && eu == uid && su == uid && rg == gid && eg == gid && sg == gid &&
                       getgroups(0, NULL) == 0;

        if (!already) {
                if (setgroups(0, NULL) < 0)
                        return pbox_error_sys(err, errno, "setgroups");
                if (setresgid(gid, gid, gid) < 0)
                        return pbox_error_sys(err, errno, "setresgid(%u)", (unsigned) gid);
        }

        /* Bounding set while we still hold CAP_SETPCAP.  EINVAL marks the
         * first capability this kernel does not know. */
        for (int c = 0; c < 64; c++) {
                if (prctl(PR_CAPBSET_READ, (unsigned long) c, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break;
                        return pbox_error_sys(err, errno, "PR_CAPBSET_READ(%d)", c);
                }
                if (prctl(PR_CAPBSET_DROP, (unsigned long) c, 0, 0, 0) < 0) {
                        /* Unprivileged already (no CAP_SETPCAP): then only
                         * an exec could use the bounding set, and
                         * no_new_privs below makes that moot. */
                        if (errno == EPERM && already)
                                break;
                        return pbox_error_sys(err, errno, "PR_CAPBSET_DROP(%d)", c);
                }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return pbox_error_sys(err, errno, "PR_CAP_AMBIENT_CLEAR_ALL");
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_KEEPCAPS");

        if (!already && setresuid(uid, uid, uid) < 0)
                return pbox_error_sys(err, errno, "setresuid(%u)", (unsigned) uid);

        /* The uid change clears the capability sets unless securebits say
         * otherwise; clear them explicitly either way. */
        cap_t none = cap_init();
        if (!none)
                return pbox_error_sys(err, errno, "cap_init");
        int r = cap_set_proc(none);
        int saved = errno;
        cap_free(none);
        if (r < 0)
                return pbox_error_sys(err, saved, "cap_set_proc(empty)");

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_NO_NEW_PRIVS");
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return pbox_error_sys(err, errno, "PR_SET_DUMPABLE");

        /* Trust, but verify. */
        if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid ||
            getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid ||
            getgroups(0, NULL) != 0)
                return pbox_error_set(err, EPERM, "credentials did not change as asked");
        if (!caps_all_clear())
                return pbox_error_set(err, EPERM, "capabilities still present after the drop");
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return pbox_error_set(err, EPERM, "no_new_privs not set");
        if (!already) {
                for (int c = 0; c < 64; c++) {
                        int v = prctl(PR_CAPBSET_READ, (unsigned long) c, 0, 0, 0);
                        if (v < 0)
                                break;
                        if (v != 0)
                                return pbox_error_set(err, EPERM, "capability %d still in the bounding set", c);
                }
                if (setuid(0) == 0 || setgid(0) == 0)
                        return pbox_error_set(err, EPERM, "could regain root after the drop");
        }
        return 0;
}

/* civetweb: the listening sockets are bound, no thread has been created. */
static void api_init_context(const struct mg_context *mctx)
{
        struct api_ctx *ctx = mg_get_user_data(mctx);
        struct pbox_error err = PBOX_ERROR_INIT;
        if (!ctx || drop_privileges(ctx->opts->run_uid, ctx->opts->run_gid, &err) < 0) {
                api_log(2, "dropping privileges: %s", ctx ? err.message : "no context");
                _exit(EXIT_FAILURE);    /* fail closed: threads would start next */
        }
        atomic_store(&ctx->dropped, true);
        /* The uid change cleared any parent-death signal the core set; ask
         * again (SIGTERM reaches our signalfd).  The control channel's EOF
         * stops us anyway; this only makes it faster. */
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
}

/* civetweb: a new thread, which must have inherited the dropped state. */
static void *api_init_thread(const struct mg_context *mctx, int thread_type)
{
        struct api_ctx *ctx = mg_get_user_data(mctx);
        if (!ctx || !atomic_load(&ctx->dropped) || geteuid() == 0 || getuid() == 0 || !caps_all_clear() ||
            prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
                api_log(2, "civetweb thread (type %d) started with privileges; aborting", thread_type);
                _exit(EXIT_FAILURE);
        }
        return NULL;
}

/* ---- main ---------------------------------------------------------------------- */

static bool listen_valid(const char *s)
{
        /* ADDR:PORT (ADDR IPv4, or [IPv6]); nothing civetweb would read as
         * extra ports or TLS/redirect suffixes. */
        if (!s || !*s || strlen(s) > 64)
                return false;
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5 ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1))
                return false;
        for (const char *p = s; p < colon; p++)
                if (!(isxdigit((unsigned char) *p) || *p == '.' || *p == ':' || *p == '[' || *p == ']'))
                        return false;
        return atoi(colon + 1) <= 65535;
}

static void close_other_fds(int keep)
{
        /* The api must hold nothing of the core's: state dirs, the other end
         * of the control channel (whose closing tells us the core died), ... */
        if (keep > 3)
                sys_close_range(3, (unsigned) keep - 1, 0);
        if (keep >= 2)
                sys_close_range((unsigned) keep + 1, ~0U, 0);
        else
                sys_close_range(3, ~0U, 0);
}

/* Wait for the end: EOF on the control channel, or SIGTERM/SIGINT/SIGQUIT. */
static void api_watch(struct api_ctx *ctx, int sigfd)
{
        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = ctx->control_sock, .events = POLLIN | POLLRDHUP },
                        { .fd = sigfd, .events = POLLIN },
                };
                int n = poll(pfd, 2, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        api_log(3, "poll: %s", strerror(errno));
                        return;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(sigfd, &si, sizeof si) == (ssize_t) sizeof si) {
                                if (si.ssi_signo == SIGHUP)
                                        continue;
                                api_log(6, "signal %u, stopping", si.ssi_signo);
                                return;
                        }
                }
                if (pfd[0].revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) {
                        api_log(6, "control channel closed, stopping");
                        atomic_store(&ctx->core_gone, true);
                        return;
                }
                if (pfd[0].revents & POLLIN) {
                        /* The core sends nothing on the control channel;
                         * swallow whatever comes, closing any fds. */
                        char buf[256];
                        union {
                                struct cmsghdr align;
                                char b[CMSG_SPACE(sizeof(int) * 16)];
                        } cb;
                        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                                             .msg_control = cb.b, .msg_controllen = sizeof cb.b };
                        ssize_t r = recvmsg(ctx->control_sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                        if (r == 0) {
                                api_log(6, "control channel closed, stopping");
                                atomic_store(&ctx->core_gone, true);
                                return;
                        }
                        if (r > 0) {
                                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                                        int fd;
                                                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                                                        close(fd);
                                                }
                                api_log(4, "unexpected message on the control channel ignored");
                        }
                }
        }
}

/* mg_stop returns only once civetweb's master thread notices the stop flag,
 * which it checks between polls of the listening socket of up to 2 s.  The
 * daemon's exit should not wait that long (the core is gone or going), so
 * while mg_stop runs, this thread pokes the listening socket with loopback
 * connections, which wake the poll at once. */
struct api_waker {
        pthread_t thread;
        struct sockaddr_in addr;
        atomic_bool done;
};

static void *api_waker_run(void *p)
{
        struct api_waker *w = p;
        for (int i = 0; i < 50 && !atomic_load(&w->done); i++) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd >= 0) {
                        (void) connect(fd, (struct sockaddr *) &w->addr, sizeof w->addr);
                        close(fd);
                }
                usleep(50 * 1000);
        }
        return NULL;
}

static bool api_waker_start(struct api_waker *w, const char *listen, int port)
{
        char host[64];
        const char *colon = strrchr(listen, ':');
        size_t hl = (size_t) (colon - listen);
        if (port <= 0 || hl == 0 || hl >= sizeof host)
                return false;
        memcpy(host, listen, hl);
        host[hl] = '\0';
        memset(&w->addr, 0, sizeof w->addr);
        w->addr.sin_family = AF_INET;
        w->addr.sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, host, &w->addr.sin_addr) != 1)
                return false;
        if (w->addr.sin_addr.s_addr == htonl(INADDR_ANY))
                w->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        atomic_store(&w->done, false);
        return pthread_create(&w->thread, NULL, api_waker_run, w) == 0;
}

int api_main(const struct api_options *opts)
{
        const char *bad = !opts ? "no options"
                : !listen_valid(opts->listen) ? "listen must be ADDR:PORT"
                : opts->control_sock < 0 ? "no control channel"
                : opts->run_uid == 0 || opts->run_gid == 0 ? "refusing to run as uid/gid 0"
                : opts->threads < 0 || opts->threads > 1024 ? "threads must be 1..1024"
                : opts->request_timeout_ms < 0 ? "negative request timeout" : NULL;
        if (bad) {
                api_log(3, "invalid api options: %s", bad);
                return EXIT_FAILURE;
        }

        close_other_fds(opts->control_sock);
        if (fcntl(opts->control_sock, F_SETFD, FD_CLOEXEC) < 0) {
                api_log(3, "control channel: %s", strerror(errno));
                return EXIT_FAILURE;
        }

        /* Signals: the ones that stop us are read from a signalfd by this
         * thread, and blocked everywhere (civetweb's threads inherit the
         * mask); all others as default. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGQUIT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_SETMASK, &mask, NULL) < 0) {
                api_log(3, "sigprocmask: %s", strerror(errno));
                return EXIT_FAILURE;
        }
        _cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0) {
                api_log(3, "signalfd: %s", strerror(errno));
                return EXIT_FAILURE;
        }

        struct api_ctx ctx = {
                .opts = opts,
                .max_json_body = opts->max_json_body ? opts->max_json_body : API_DEFAULT_MAX_JSON_BODY,
                .max_image_body = opts->max_image_body ? opts->max_image_body : API_DEFAULT_MAX_IMAGE_BODY,
                .control_sock = opts->control_sock,
        };
        pthread_mutex_init(&ctx.control_lock, NULL);
        pthread_mutex_init(&ctx.inflight_lock, NULL);
        int threads = opts->threads ? opts->threads : API_DEFAULT_THREADS;
        ctx.n_inflight = (size_t) threads;
        ctx.inflight = util_xcalloc(ctx.n_inflight, sizeof(int));
        ctx.stream_socks = util_xcalloc(ctx.n_inflight, sizeof(int));
        for (size_t i = 0; i < ctx.n_inflight; i++)
                ctx.inflight[i] = ctx.stream_socks[i] = -1;
        ctx.max_streams = api_max_streams(threads);

        char threads_s[16], timeout_s[16];
        snprintf(threads_s, sizeof threads_s, "%d", threads);
        snprintf(timeout_s, sizeof timeout_s, "%d",
                 opts->request_timeout_ms ? opts->request_timeout_ms : API_DEFAULT_REQUEST_TIMEOUT_MS);
        const char *options[] = {
                "listening_ports", opts->listen,
                "num_threads", threads_s,
                "request_timeout_ms", timeout_s,
                "enable_keep_alive", "yes",
                "keep_alive_timeout_ms", "1000", /* idle keep-alive; also bounds mg_stop */
                "max_request_size", "16384",    /* request line + headers */
                "decode_url", "no",             /* we route on the raw path */
                "tcp_nodelay", "1",
                "enable_directory_listing", "no",
                NULL,
        };
        struct mg_callbacks cb = {
                .begin_request = api_begin_request,
                .http_error = api_http_error,
                .log_message = api_log_message,
                .init_context = api_init_context,
                .init_thread = api_init_thread,
        };
        struct mg_init_data init = { .callbacks = &cb, .user_data = &ctx, .configuration_options = options };
        char etext[256] = "";
        unsigned ecode = 0;
        struct mg_error_data edata = { .code = &ecode, .text = etext, .text_buffer_size = sizeof etext };

        mg_init_library(0);
        struct mg_context *mctx = mg_start2(&init, &edata);
        int ret = EXIT_SUCCESS;
        if (!mctx) {
                api_log(3, "cannot start the HTTP server on %s: %s", opts->listen,
                        etext[0] ? etext : "unknown error");
                ret = EXIT_FAILURE;
                goto out;
        }
        if (!atomic_load(&ctx.dropped)) {
                /* Cannot happen with civetweb 1.15 (init_context always
                 * runs); never serve with privileges if it does. */
                api_log(2, "privileges were not dropped; stopping");
                _exit(EXIT_FAILURE);
        }
        struct mg_server_port ports[4];
        int np = mg_get_server_ports(mctx, (int) ARRAY_SIZE(ports), ports);
        api_log(6, "listening on %s (port %d) as uid %u, %d threads (at most %d event streams)", opts->listen,
                np > 0 ? ports[0].port : -1, (unsigned) getuid(), threads, ctx.max_streams);

        api_watch(&ctx, sigfd);

        /* Wake every worker waiting on the core or on the control channel,
         * then let civetweb join them. */
        atomic_store(&ctx.stopping, true);
        inflight_shutdown_all(&ctx);
        shutdown(ctx.control_sock, SHUT_RDWR);
        struct api_waker waker;
        bool waking = api_waker_start(&waker, opts->listen, np > 0 ? ports[0].port : -1);
        mg_stop(mctx);
        if (waking) {
                atomic_store(&waker.done, true);
                pthread_join(waker.thread, NULL);
        }
        api_log(6, "stopped");
out:
        mg_exit_library();
        free(ctx.inflight);
        free(ctx.stream_socks);
        pthread_mutex_destroy(&ctx.control_lock);
        pthread_mutex_destroy(&ctx.inflight_lock);
        return ret;
}
