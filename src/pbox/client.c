/* client.c — the HTTP/1.1 client of the pbox CLI (see client.h).
 *
 * One request per TCP connection ("Connection: close"), a non-blocking
 * socket driven by poll(2) so that every wait has a timeout and can be
 * interrupted, a bounded response parser (status line, headers,
 * Content-Length, chunked or read-to-close bodies, interim 1xx answers),
 * uploads streamed from a file with sendfile(2) behind
 * "Expect: 100-continue", watching for an early final answer (401, 413)
 * so that a refused upload stops at once, and a Server-Sent Events reader
 * (any framing, line ends anywhere, comments, bounded events). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>

#include "client.h"
#include "json.h"
#include "util.h"

volatile sig_atomic_t pbox_client_interrupted;

#define HTTP_LINE_MAX 8192
#define HTTP_HEAD_MAX (64 * 1024)
#define HTTP_HEADERS_MAX 100
#define HTTP_INTERIM_MAX 8
#define HTTP_CONTINUE_WAIT_MS 1000
#define HTTP_EXPECT_MIN ((uint64_t) 1 << 20)
#define URL_MAX 1024

/* ------------------------------------------------------------------ URL */

static bool url_host_char(char c)
{
        return isalnum((unsigned char) c) || c == '-' || c == '.' || c == '_';
}

int pbox_url_parse(const char *text, struct pbox_url *ret, struct pbox_error *err)
{
        if (strlen(text) > URL_MAX)
                return pbox_error_set(err, EINVAL, "URL is too long");
        if (!strncasecmp(text, "https://", 8))
                return pbox_error_set(err, EPROTONOSUPPORT,
                                      "https is not supported (URL '%s'): use http://HOST:PORT", text);
        if (strncasecmp(text, "http://", 7) != 0)
                return pbox_error_set(err, EINVAL, "invalid URL '%s': expected http://HOST:PORT", text);

        const char *p = text + 7;
        size_t n = strcspn(p, "/?#");
        if (p[n] != '\0' && strcmp(p + n, "/") != 0)
                return pbox_error_set(err, EINVAL,
                                      "invalid URL '%s': no path or query allowed, expected http://HOST:PORT",
                                      text);
        _cleanup_free_ char *auth = strndup(p, n);
        if (!auth)
                abort();
        if (strchr(auth, '@'))
                return pbox_error_set(err, EINVAL, "invalid URL '%s': user info is not supported", text);

        _cleanup_free_ char *host = NULL;
        const char *portp;
        if (auth[0] == '[') {
                char *close = strchr(auth, ']');
                if (!close || close == auth + 1)
                        return pbox_error_set(err, EINVAL, "invalid URL '%s': bad IPv6 address", text);
                for (char *q = auth + 1; q < close; q++)
                        if (!isxdigit((unsigned char) *q) && *q != ':' && *q != '.')
                                return pbox_error_set(err, EINVAL, "invalid URL '%s': bad IPv6 address", text);
                host = strndup(auth + 1, (size_t) (close - auth - 1));
                portp = close + 1;
        } else {
                size_t hl = strcspn(auth, ":");
                host = strndup(auth, hl);
                portp = auth + hl;
                if (hl == 0)
                        return pbox_error_set(err, EINVAL, "invalid URL '%s': no host", text);
                for (size_t i = 0; i < hl; i++)
                        if (!url_host_char(auth[i]))
                                return pbox_error_set(err, EINVAL, "invalid URL '%s': bad host name", text);
        }
        if (!host)
                abort();

        const char *port = "80";
        if (*portp == ':') {
                port = portp + 1;
                size_t pl = strlen(port);
                unsigned long v = 0;
                if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl ||
                    (v = strtoul(port, NULL, 10)) == 0 || v > 65535)
                        return pbox_error_set(err, EINVAL, "invalid URL '%s': bad port", text);
        } else if (*portp != '\0') {
                return pbox_error_set(err, EINVAL, "invalid URL '%s': expected http://HOST:PORT", text);
        }

        ret->port = util_xstrdup(port);
        ret->authority = TAKE_PTR(auth);
        ret->text = util_xasprintf("http://%s", ret->authority);
        ret->host = TAKE_PTR(host);
        return 0;
}

void pbox_url_done(struct pbox_url *u)
{
        free(u->host);
        free(u->port);
        free(u->authority);
        free(u->text);
        *u = (struct pbox_url) { 0 };
}

/* ---------------------------------------------------------------- token */

int pbox_token_load(const char *file_opt, char **ret_token, struct pbox_error *err)
{
        const char *file = file_opt;
        const char *what;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;

        if (!file) {
                const char *e = getenv("PBOX_TOKEN_FILE");
                if (e && *e)
                        file = e;
        }
        if (!file) {
                const char *t = getenv("PBOX_TOKEN");
                if (t && *t) {
                        buf = util_xstrdup(t);
                        len = strlen(buf);
                }
        }
        if (!buf) {
                if (!file)
                        file = PBOX_DEFAULT_TOKEN_FILE;
                /* No O_NONBLOCK: a pipe (--token-file <(...)) is a fine way to pass a secret. */
                _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return pbox_error_sys(err, errno, "cannot read token file %s", file);
                int r = util_read_all(fd, PBOX_TOKEN_MAX, &buf, &len);
                if (r == -EFBIG)
                        return pbox_error_set(err, EFBIG, "token file %s is larger than %d bytes",
                                              file, PBOX_TOKEN_MAX);
                if (r < 0)
                        return pbox_error_sys(err, -r, "cannot read token file %s", file);
                what = file;
        } else {
                what = "$PBOX_TOKEN";
        }

        char *s = buf, *e = buf + len;
        while (s < e && isspace((unsigned char) *s))
                s++;
        while (e > s && isspace((unsigned char) e[-1]))
                e--;
        if (s == e)
                return pbox_error_set(err, EINVAL, "token %s%s is empty",
                                      what[0] == '$' ? "in " : "file ", what);
        for (char *q = s; q < e; q++)
                if (*q < 0x21 || *q > 0x7e)
                        return pbox_error_set(err, EINVAL,
                                              "token in %s contains invalid characters (want printable ASCII)",
                                              what);
        *e = '\0';
        *ret_token = util_xstrdup(s);
        return 0;
}

/* ------------------------------------------------------------------ text */

char *pbox_uri_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out = util_xmalloc(3 * n + 1), *o = out;
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                        *o++ = (char) c;
                } else {
                        *o++ = '%';
                        *o++ = hex[c >> 4];
                        *o++ = hex[c & 15];
                }
        }
        *o = '\0';
        return out;
}

/* Length of the valid UTF-8 sequence at s (1..4) and its code point, or 0. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
        unsigned char c = s[0];
        size_t n;
        uint32_t v, min;
        if (c < 0x80) {
                *cp = c;
                return 1;
        } else if ((c & 0xe0) == 0xc0) {
                n = 2, v = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3, v = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4, v = c & 0x07, min = 0x10000;
        } else {
                return 0;
        }
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                v = v << 6 | (s[i] & 0x3f);
        }
        if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                return 0;
        *cp = v;
        return n;
}

char *pbox_sanitize(const char *s)
{
        size_t n = strlen(s);
        char *out = util_xmalloc(n + 1), *o = out;
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                uint32_t cp;
                size_t l = utf8_decode(p, &cp);
                if (l == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                        *o++ = '?';
                        p += l ? l : 1;
                        continue;
                }
                memcpy(o, p, l);
                o += l;
                p += l;
        }
        *o = '\0';
        return out;
}

/* ---------------------------------------------------------------- waits */

/* Waits for events on fd, at most timeout_ms (PBOX_TIMEOUT_NONE: for ever).
 * Returns the revents (> 0), 0 on timeout, -EINTR once pbox_client_interrupted
 * is set (checked with the signals blocked, so none is lost), or -errno. */
static int wait_fd(int fd, short events, int timeout_ms)
{
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        uint64_t deadline = timeout_ms >= 0 ? util_now_ms() + (uint64_t) timeout_ms : 0;

        for (;;) {
                struct timespec ts, *tsp = NULL;
                if (timeout_ms >= 0) {
                        uint64_t now = util_now_ms();
                        if (now >= deadline)
                                return 0;
                        ts.tv_sec = (time_t) ((deadline - now) / 1000);
                        ts.tv_nsec = (long) ((deadline - now) % 1000) * 1000000L;
                        tsp = &ts;
                }
                sigprocmask(SIG_BLOCK, &block, &old);
                if (pbox_client_interrupted) {
                        sigprocmask(SIG_SETMASK, &old, NULL);
                        return -EINTR;
                }
                struct pollfd p = { .fd = fd, .events = events };
                int n = ppoll(&p, 1, tsp, &old);
                int saved = errno;
                sigprocmask(SIG_SETMASK, &old, NULL);
                if (n < 0) {
                        if (saved == EINTR)
                                continue;
                        return -saved;
                }
                if (n > 0)
                        return p.revents;
        }
}

static int wait_error(int r, const char *what, const char *peer, int timeout_ms,
                      struct pbox_error *err)
{
        if (r == -EINTR)
                return pbox_error_set(err, EINTR, "interrupted");
        if (r < 0)
                return pbox_error_sys(err, -r, "poll");
        return pbox_error_set(err, ETIMEDOUT, "timed out %s %s (no progress for %d s)", what, peer,
                              timeout_ms / 1000);
}

/* ----------------------------------------------------------- connection */

struct http_conn {
        int fd;
        const char *peer;
        int timeout_ms;
        size_t pos, len;
        char buf[16384];
};

static void set_int_opt(int fd, int level, int name, int value)
{
        /* Best effort: tuning only. */
        (void) setsockopt(fd, level, name, &value, sizeof value);
}

static int http_connect(const struct pbox_url *u, int *ret_fd, struct pbox_error *err)
{
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV,
        };
        struct addrinfo *res = NULL;
        int r = getaddrinfo(u->host, u->port, &hints, &res);
        if (r != 0)
                return pbox_error_set(err, EHOSTUNREACH, "cannot resolve %s: %s", u->host,
                                      r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));

        int last = ECONNREFUSED, fd = -1;
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            ai->ai_protocol);
                if (fd < 0) {
                        last = errno;
                        continue;
                }
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                if (errno == EINPROGRESS) {
                        int w = wait_fd(fd, POLLOUT, PBOX_CONNECT_TIMEOUT_MS);
                        if (w > 0) {
                                int soerr = 0;
                                socklen_t sl = sizeof soerr;
                                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                        soerr = errno;
                                if (soerr == 0)
                                        break;
                                last = soerr;
                        } else if (w == -EINTR) {
                                close(fd);
                                freeaddrinfo(res);
                                return pbox_error_set(err, EINTR, "interrupted");
                        } else {
                                last = w == 0 ? ETIMEDOUT : -w;
                        }
                } else {
                        last = errno;
                }
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return pbox_error_sys(err, last, "cannot connect to %s", u->text);

        set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        /* Execs may run for a long time without a byte on the wire: keepalive
         * notices a peer that went away without a read timeout. */
        set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
        set_int_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
        set_int_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, 10);
        set_int_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, 6);
        *ret_fd = fd;
        return 0;
}

static void safe_close_conn(struct http_conn *c)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

/* Reads more bytes into the buffer.  Returns the count, 0 at end of stream. */
static int conn_fill(struct http_conn *c, struct pbox_error *err)
{
        if (c->pos > 0) {
                memmove(c->buf, c->buf + c->pos, c->len - c->pos);
                c->len -= c->pos;
                c->pos = 0;
        }
        if (c->len == sizeof c->buf)
                return pbox_error_set(err, EPROTO, "response line too long");
        for (;;) {
                ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
                if (n > 0) {
                        c->len += (size_t) n;
                        return (int) n;
                }
                if (n == 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return pbox_error_sys(err, errno, "cannot receive from %s", c->peer);
                int w = wait_fd(c->fd, POLLIN, c->timeout_ms);
                if (w <= 0)
                        return wait_error(w, "waiting for", c->peer, c->timeout_ms, err);
        }
}

static int conn_closed(struct http_conn *c, struct pbox_error *err)
{
        return pbox_error_set(err, ECONNRESET, "%s closed the connection before the end of the response",
                              c->peer);
}

/* One line (LF or CRLF), at most max-1 bytes, into out.  Returns its length. */
static int conn_read_line(struct http_conn *c, char *out, size_t max, struct pbox_error *err)
{
        for (;;) {
                char *start = c->buf + c->pos;
                char *nl = memchr(start, '\n', c->len - c->pos);
                if (nl) {
                        size_t n = (size_t) (nl - start);
                        if (n >= max)
                                return pbox_error_set(err, EPROTO, "response line from %s too long", c->peer);
                        memcpy(out, start, n);
                        c->pos += n + 1;
                        if (n > 0 && out[n - 1] == '\r')
                                n--;
                        out[n] = '\0';
                        if (memchr(out, '\0', n))
                                return pbox_error_set(err, EPROTO, "NUL byte in the response head from %s",
                                                      c->peer);
                        return (int) n;
                }
                if (c->len - c->pos >= max)
                        return pbox_error_set(err, EPROTO, "response line from %s too long", c->peer);
                int r = conn_fill(c, err);
                if (r < 0)
                        return r;
                if (r == 0)
                        return conn_closed(c, err);
        }
}

/* ------------------------------------------------------------- response */

struct http_head {
        int status;
        bool chunked;
        bool has_length;
        uint64_t length;
        bool event_stream;      /* Content-Type: text/event-stream */
};

static void trim_ows(char **s)
{
        char *b = *s, *e = b + strlen(b);
        while (*b == ' ' || *b == '\t')
                b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
        *e = '\0';
        *s = b;
}

static int bad_head(struct http_conn *c, const char *what, struct pbox_error *err)
{
        return pbox_error_set(err, EPROTO, "invalid HTTP response from %s: %s", c->peer, what);
}

static int read_head(struct http_conn *c, struct http_head *h, struct pbox_error *err)
{
        char line[HTTP_LINE_MAX];
        int n = conn_read_line(c, line, sizeof line, err);
        if (n < 0)
                return n;
        if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) line[7]) ||
            line[8] != ' ' || !isdigit((unsigned char) line[9]) || !isdigit((unsigned char) line[10]) ||
            !isdigit((unsigned char) line[11]) || (line[12] != ' ' && line[12] != '\0'))
                return pbox_error_set(err, EPROTO, "%s did not answer with HTTP/1.x (is it pboxd?)",
                                      c->peer);
        *h = (struct http_head) {
                .status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'),
        };
        if (h->status < 100)
                return bad_head(c, "bad status code", err);

        size_t total = (size_t) n;
        for (unsigned count = 0;; count++) {
                n = conn_read_line(c, line, sizeof line, err);
                if (n < 0)
                        return n;
                if (n == 0)
                        return 0;
                total += (size_t) n;
                if (total > HTTP_HEAD_MAX || count >= HTTP_HEADERS_MAX)
                        return bad_head(c, "response head too large", err);
                if (line[0] == ' ' || line[0] == '\t')
                        return bad_head(c, "folded header line", err);
                char *colon = strchr(line, ':');
                if (!colon || colon == line)
                        return bad_head(c, "malformed header line", err);
                *colon = '\0';
                for (char *q = line; *q; q++)
                        if (*q <= ' ' || *q >= 0x7f)
                                return bad_head(c, "malformed header name", err);
                char *value = colon + 1;
                trim_ows(&value);

                if (!strcasecmp(line, "Content-Length")) {
                        size_t vl = strlen(value);
                        if (vl == 0 || vl > 19 || strspn(value, "0123456789") != vl)
                                return bad_head(c, "bad Content-Length", err);
                        uint64_t v = strtoull(value, NULL, 10);
                        if (h->has_length && v != h->length)
                                return bad_head(c, "conflicting Content-Length headers", err);
                        h->has_length = true;
                        h->length = v;
                } else if (!strcasecmp(line, "Content-Type")) {
                        h->event_stream = !strncasecmp(value, "text/event-stream", 17) &&
                                          (value[17] == '\0' || value[17] == ';' || value[17] == ' ');
                } else if (!strcasecmp(line, "Transfer-Encoding")) {
                        if (strcasecmp(value, "chunked") != 0 || h->chunked)
                                return bad_head(c, "unsupported Transfer-Encoding", err);
                        h->chunked = true;
                }
        }
}

struct growbuf {
        char *data;
        size_t len, cap;
};

static int growbuf_reserve(struct growbuf *b, size_t more, struct pbox_error *err)
{
        if (more > PBOX_HTTP_MAX_BODY || b->len > PBOX_HTTP_MAX_BODY - more)
                return pbox_error_set(err, EFBIG, "response larger than %zu MiB",
                                      PBOX_HTTP_MAX_BODY >> 20);
        size_t need = b->len + more + 1;
        if (need > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < need)
                        cap *= 2;
                b->data = util_xrealloc(b->data, cap);
                b->cap = cap;
        }
        return 0;
}

/* Moves exactly n body bytes (or, with until_eof, everything up to the end
 * of the stream) into b. */
static int read_body_bytes(struct http_conn *c, uint64_t n, bool until_eof, struct growbuf *b,
                           struct pbox_error *err)
{
        while (until_eof || n > 0) {
                if (c->pos == c->len) {
                        int r = conn_fill(c, err);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return until_eof ? 0 : conn_closed(c, err);
                }
                size_t avail = c->len - c->pos;
                size_t take = until_eof || avail < n ? avail : (size_t) n;
                int r = growbuf_reserve(b, take, err);
                if (r < 0)
                        return r;
                memcpy(b->data + b->len, c->buf + c->pos, take);
                b->len += take;
                c->pos += take;
                if (!until_eof)
                        n -= take;
        }
        return 0;
}

static int read_chunked(struct http_conn *c, struct growbuf *b, struct pbox_error *err)
{
        char line[HTTP_LINE_MAX];
        for (;;) {
                int n = conn_read_line(c, line, 1024, err);
                if (n < 0)
                        return n;
                uint64_t size = 0;
                size_t i = 0;
                for (; isxdigit((unsigned char) line[i]); i++) {
                        if (size > (PBOX_HTTP_MAX_BODY >> 4))
                                return pbox_error_set(err, EFBIG, "response larger than %zu MiB",
                                                      PBOX_HTTP_MAX_BODY >> 20);
                        char ch = (char) tolower((unsigned char) line[i]);
                        size = size * 16 + (uint64_t) (isdigit((unsigned char) ch) ? ch - '0' : ch - 'a' + 10);
                }
                if (i == 0 || (line[i] != '\0' && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
                        return bad_head(c, "bad chunk size", err);
                if (size == 0)
                        break;
                int r = growbuf_reserve(b, (size_t) size, err);
                if (r < 0)
                        return r;
                r = read_body_bytes(c, size, false, b, err);
                if (r < 0)
                        return r;
                n = conn_read_line(c, line, sizeof line, err);
                if (n < 0)
                        return n;
                if (n != 0)
                        return bad_head(c, "chunk not followed by CRLF", err);
        }
        /* Trailer section, ignored. */
        for (unsigned count = 0;; count++) {
                int n = conn_read_line(c, line, sizeof line, err);
                if (n < 0)
                        return n;
                if (n == 0)
                        return 0;
                if (count >= HTTP_HEADERS_MAX)
                        return bad_head(c, "too many trailer fields", err);
        }
}

static int read_body(struct http_conn *c, const struct http_head *h, struct growbuf *b,
                     struct pbox_error *err)
{
        int r;
        if (h->status == 204 || h->status == 304)
                r = 0;
        else if (h->chunked)
                r = read_chunked(c, b, err);
        else if (h->has_length) {
                if (h->length > PBOX_HTTP_MAX_BODY)
                        return pbox_error_set(err, EFBIG, "response larger than %zu MiB",
                                              PBOX_HTTP_MAX_BODY >> 20);
                r = growbuf_reserve(b, (size_t) h->length, err);
                if (r == 0)
                        r = read_body_bytes(c, h->length, false, b, err);
        } else
                r = read_body_bytes(c, 0, true, b, err);
        if (r < 0)
                return r;
        r = growbuf_reserve(b, 0, err);
        if (r < 0)
                return r;
        b->data[b->len] = '\0';
        return 0;
}

/* -------------------------------------------------------------- sending */

struct http_upload {
        const char *mem;       /* request head followed by an in-memory body */
        size_t mem_len, mem_off;
        int fd;                /* then this many bytes of the file, if fd >= 0 */
        uint64_t file_len, file_off;
        char *bounce;          /* read/send fallback when sendfile cannot be used */
        size_t bounce_len, bounce_off;
        bool no_sendfile;
};

static bool upload_done(const struct http_upload *u)
{
        return u->mem_off == u->mem_len && (u->fd < 0 || u->file_off == u->file_len);
}

static void upload_freep(struct http_upload *u)
{
        free(u->bounce);
}

/* sendfile(2) has no MSG_NOSIGNAL: block SIGPIPE around it and swallow the
 * pending signal, so a peer that closed yields EPIPE instead of killing us. */
static ssize_t sendfile_nosigpipe(int out, int in, size_t count)
{
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigprocmask(SIG_BLOCK, &pipe_set, &old);
        ssize_t n = sendfile(out, in, NULL, count);
        int saved = errno;
        if (n < 0 && saved == EPIPE) {
                struct timespec zero = { 0, 0 };
                while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return n;
}

/* Sends until the upload (or, with head_only, its in-memory part) is
 * complete or the server starts to answer (*ret_answered).  A send failure
 * (peer closed) also sets *ret_answered, with the error in err: the caller
 * tries to read an answer first. */
static int upload_send(struct http_conn *c, struct http_upload *u, bool head_only,
                       bool *ret_answered, struct pbox_error *err)
{
        static const char file_name[] = "the upload file";
        *ret_answered = false;
        while (head_only ? u->mem_off < u->mem_len : !upload_done(u)) {
                ssize_t n;
                if (u->mem_off < u->mem_len) {
                        n = send(c->fd, u->mem + u->mem_off, u->mem_len - u->mem_off, MSG_NOSIGNAL);
                        if (n > 0)
                                u->mem_off += (size_t) n;
                } else if (!u->no_sendfile) {
                        uint64_t left = u->file_len - u->file_off;
                        n = sendfile_nosigpipe(c->fd, u->fd, left > (1u << 24) ? (1u << 24) : (size_t) left);
                        if (n < 0 && (errno == EINVAL || errno == ENOSYS) && u->file_off == 0) {
                                u->no_sendfile = true;
                                continue;
                        }
                        if (n > 0)
                                u->file_off += (uint64_t) n;
                        else if (n == 0)
                                return pbox_error_set(err, EIO, "%s ended early (changed while uploading?)",
                                                      file_name);
                } else {
                        if (u->bounce_off == u->bounce_len) {
                                uint64_t left = u->file_len - u->file_off;
                                size_t want = left > 65536 ? 65536 : (size_t) left;
                                if (!u->bounce)
                                        u->bounce = util_xmalloc(65536);
                                ssize_t m = read(u->fd, u->bounce, want);
                                if (m < 0 && errno == EINTR)
                                        continue;
                                if (m < 0)
                                        return pbox_error_sys(err, errno, "cannot read %s", file_name);
                                if (m == 0)
                                        return pbox_error_set(err, EIO, "%s ended early (changed while uploading?)",
                                                              file_name);
                                u->bounce_len = (size_t) m;
                                u->bounce_off = 0;
                        }
                        n = send(c->fd, u->bounce + u->bounce_off, u->bounce_len - u->bounce_off,
                                 MSG_NOSIGNAL);
                        if (n > 0) {
                                u->bounce_off += (size_t) n;
                                u->file_off += (uint64_t) n;
                        }
                }
                if (n >= 0)
                        continue;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        int w = wait_fd(c->fd, POLLOUT | POLLIN, PBOX_SEND_TIMEOUT_MS);
                        if (w <= 0)
                                return wait_error(w, "sending to", c->peer, PBOX_SEND_TIMEOUT_MS, err);
                        if (w & (POLLIN | POLLHUP | POLLERR)) {
                                *ret_answered = true;
                                return 0;
                        }
                        continue;
                }
                if (errno == EPIPE || errno == ECONNRESET) {
                        pbox_error_sys(err, errno, "%s closed the connection while the request was sent",
                                       c->peer);
                        *ret_answered = true;
                        return -errno;
                }
                return pbox_error_sys(err, errno, "cannot send to %s", c->peer);
        }
        return 0;
}

/* ------------------------------------------------------------- exchange */

static bool target_ok(const char *t)
{
        if (t[0] != '/')
                return false;
        for (; *t; t++)
                if ((unsigned char) *t <= ' ' || (unsigned char) *t >= 0x7f)
                        return false;
        return true;
}

/* Sends the request and reads up to the final response head; the caller
 * reads the body from *ret_conn (and frees it, closing its fd). */
static int http_start(const struct pbox_client *cl, const struct pbox_http_request *req, const char *accept,
                      struct http_conn **ret_conn, struct http_head *ret_head, struct pbox_error *err)
{
        if (!target_ok(req->target) || strspn(req->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(req->method))
                return pbox_error_set(err, EINVAL, "invalid request line");

        bool has_body = req->upload_fd >= 0 || req->body || !strcmp(req->method, "POST") ||
                        !strcmp(req->method, "PUT");
        uint64_t body_len = req->upload_fd >= 0 ? req->upload_len : req->body_len;
        bool expect = req->upload_fd >= 0 && req->upload_len >= HTTP_EXPECT_MIN;

        _cleanup_free_ char *head = util_xasprintf(
                "%s %s HTTP/1.1\r\n"
                "Host: %s\r\n"
                "User-Agent: pbox/" PACKAGE_VERSION "\r\n"
                "Accept: %s\r\n"
                "Connection: close\r\n"
                "%s%s%s"
                "%s%s%s"
                "%s",
                req->method, req->target, cl->url.authority, accept,
                cl->token ? "Authorization: Bearer " : "", cl->token ? cl->token : "",
                cl->token ? "\r\n" : "",
                req->content_type ? "Content-Type: " : "", req->content_type ? req->content_type : "",
                req->content_type ? "\r\n" : "",
                expect ? "Expect: 100-continue\r\n" : "");
        _cleanup_free_ char *mem = NULL;
        if (has_body)
                mem = util_xasprintf("%sContent-Length: %llu\r\n\r\n", head, (unsigned long long) body_len);
        else
                mem = util_xasprintf("%s\r\n", head);
        size_t head_len = strlen(mem);
        if (req->upload_fd < 0 && req->body_len > 0) {
                mem = util_xrealloc(mem, head_len + req->body_len + 1);
                memcpy(mem + head_len, req->body, req->body_len);
        }

        _cleanup_close_ int fd = -1;
        int r = http_connect(&cl->url, &fd, err);
        if (r < 0)
                return r;

        _cleanup_free_ struct http_conn *c = util_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->peer = cl->url.text;
        c->timeout_ms = req->timeout_ms;

        __attribute__((cleanup(upload_freep))) struct http_upload up = {
                .mem = mem,
                .mem_len = head_len + (req->upload_fd < 0 ? req->body_len : 0),
                .fd = req->upload_fd,
                .file_len = req->upload_fd >= 0 ? req->upload_len : 0,
        };
        struct http_head h = { 0 };
        bool have_final = false;
        unsigned interim = 0;
        struct pbox_error send_err = PBOX_ERROR_INIT;
        int send_r = 0;

        if (expect) {
                /* Send the head alone and give the server a moment to refuse
                 * (401, 413) before streaming the body. */
                bool answered;
                r = upload_send(c, &up, true, &answered, err);
                if (r < 0 && !answered)
                        return r;
                int w = r < 0 ? POLLIN : wait_fd(fd, POLLIN, HTTP_CONTINUE_WAIT_MS);
                if (w < 0)
                        return wait_error(w, "waiting for", c->peer, 0, err);
                if (w > 0) {
                        r = read_head(c, &h, err);
                        if (r < 0)
                                return r;
                        if (h.status >= 200)
                                have_final = true;
                        else if (h.status == 101)
                                return bad_head(c, "unexpected protocol switch", err);
                        else
                                interim++;
                }
        }

        while (!have_final && !upload_done(&up)) {
                bool answered = false;
                send_r = upload_send(c, &up, false, &answered, &send_err);
                if (send_r < 0 && !answered) {
                        *err = send_err;
                        return send_r;
                }
                if (!answered)
                        break;
                /* The server answers before the whole request was sent. */
                r = read_head(c, &h, err);
                if (r < 0) {
                        if (send_r < 0)
                                *err = send_err;
                        return send_r < 0 ? send_r : r;
                }
                if (h.status >= 200)
                        have_final = true;
                else if (h.status == 101)
                        return bad_head(c, "unexpected protocol switch", err);
                else if (++interim > HTTP_INTERIM_MAX)
                        return bad_head(c, "too many interim responses", err);
                else if (send_r < 0) {
                        *err = send_err;
                        return send_r;
                }
        }

        while (!have_final) {
                r = read_head(c, &h, err);
                if (r < 0)
                        return r;
                if (h.status >= 200)
                        have_final = true;
                else if (h.status == 101)
                        return bad_head(c, "unexpected protocol switch", err);
                else if (++interim > HTTP_INTERIM_MAX)
                        return bad_head(c, "too many interim responses", err);
        }

        c->fd = TAKE_FD(fd);
        *ret_conn = TAKE_PTR(c);
        *ret_head = h;
        return 0;
}

static void http_conn_free(struct http_conn *c)
{
        if (c) {
                safe_close_conn(c);
                free(c);
        }
}

int pbox_http_do(const struct pbox_client *cl, const struct pbox_http_request *req,
                 struct pbox_http_response *ret, struct pbox_error *err)
{
        struct http_conn *c = NULL;
        struct http_head h;
        int r = http_start(cl, req, "application/json", &c, &h, err);
        if (r < 0)
                return r;
        struct growbuf b = { 0 };
        r = read_body(c, &h, &b, err);
        http_conn_free(c);
        if (r < 0) {
                free(b.data);
                return r;
        }
        ret->status = h.status;
        ret->body = b.data;
        ret->body_len = b.len;
        return 0;
}

void pbox_http_response_done(struct pbox_http_response *r)
{
        free(r->body);
        *r = (struct pbox_http_response) { 0 };
}

/* ------------------------------------------------------------ JSON calls */

static const char *status_text(int status)
{
        switch (status) {
        case 400: return "bad request";
        case 401: return "unauthorized";
        case 403: return "forbidden";
        case 404: return "not found";
        case 405: return "method not allowed";
        case 409: return "conflict";
        case 413: return "payload too large";
        case 422: return "unprocessable";
        case 500: return "internal server error";
        case 502: return "bad gateway";
        case 503: return "service unavailable";
        default: return "error";
        }
}

/* Keeps messages from the server to one reasonable line. */
static char *short_clean(const char *s)
{
        char *t = pbox_sanitize(s);
        if (strlen(t) > 512)
                strcpy(t + 509, "...");
        return t;
}

int pbox_client_api_error(const struct pbox_client *cl, const struct pbox_http_response *resp,
                          struct pbox_error *err)
{
        json_t *j = NULL;
        const char *code = NULL, *message = NULL;
        if (resp->body_len > 0 && json_parse_untrusted(resp->body, resp->body_len, true, &j, NULL) == 0) {
                json_t *e = json_object_get(j, "error");
                if (json_is_object(e)) {
                        (void) json_get_string(e, "code", false, &code, NULL);
                        (void) json_get_string(e, "message", false, &message, NULL);
                }
        }
        int r;
        if (code || message) {
                _cleanup_free_ char *m = short_clean(message && *message ? message : status_text(resp->status));
                _cleanup_free_ char *k = short_clean(code && *code ? code : status_text(resp->status));
                r = pbox_error_set(err, PBOX_EAPI, "%s (%s)", m, k);
        } else {
                r = pbox_error_set(err, PBOX_EAPI, "%s answered HTTP %d (%s) without an API error object",
                                   cl->url.text, resp->status, status_text(resp->status));
        }
        json_decref(j);
        return r;
}

static int call_common(const struct pbox_client *cl, const struct pbox_http_request *req,
                       json_t **ret, int *ret_status, struct pbox_error *err)
{
        struct pbox_http_response resp = { 0 };
        int r = pbox_http_do(cl, req, &resp, err);
        if (r < 0)
                return r;
        if (ret_status)
                *ret_status = resp.status;
        if (resp.status < 200 || resp.status > 299) {
                r = pbox_client_api_error(cl, &resp, err);
                pbox_http_response_done(&resp);
                return r;
        }
        if (ret) {
                json_t *j = NULL;
                r = json_parse_untrusted(resp.body, resp.body_len, true, &j, err);
                if (r < 0) {
                        pbox_http_response_done(&resp);
                        pbox_error_prefix(err, "bad response from %s", cl->url.text);
                        return -EPROTO;
                }
                *ret = j;
        }
        pbox_http_response_done(&resp);
        return 0;
}

int pbox_client_call(const struct pbox_client *c, const char *method, const char *target,
                     json_t *body, int timeout_ms, json_t **ret, int *ret_status,
                     struct pbox_error *err)
{
        /* Ten significant digits: 0.29 CPUs goes as 0.29, not 0.28999999999999998. */
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        if (body && !text)
                abort();
        struct pbox_http_request req = {
                .method = method,
                .target = target,
                .content_type = text ? "application/json" : NULL,
                .body = text,
                .body_len = text ? strlen(text) : 0,
                .upload_fd = -1,
                .timeout_ms = timeout_ms,
        };
        return call_common(c, &req, ret, ret_status, err);
}

int pbox_client_upload(const struct pbox_client *c, const char *target, int upload_fd,
                       uint64_t upload_len, int timeout_ms, json_t **ret, int *ret_status,
                       struct pbox_error *err)
{
        struct pbox_http_request req = {
                .method = "POST",
                .target = target,
                .content_type = "application/octet-stream",
                .upload_fd = upload_fd,
                .upload_len = upload_len,
                .timeout_ms = timeout_ms,
        };
        return call_common(c, &req, ret, ret_status, err);
}

int pbox_client_send(const struct pbox_client *c, const char *method, const char *target,
                     const char *content_type, const void *body, size_t body_len, int timeout_ms,
                     json_t **ret, int *ret_status, struct pbox_error *err)
{
        struct pbox_http_request req = {
                .method = method,
                .target = target,
                .content_type = content_type,
                .body = body,
                .body_len = body_len,
                .upload_fd = -1,
                .timeout_ms = timeout_ms,
        };
        return call_common(c, &req, ret, ret_status, err);
}

/* ------------------------------------------------------- event streams */

/* Where the body bytes of the stream come from. */
enum sse_framing { SSE_CLOSE, SSE_LENGTH, SSE_CHUNKED };

struct pbox_sse {
        struct http_conn *conn;
        enum sse_framing framing;
        uint64_t left;          /* SSE_LENGTH: bytes left; SSE_CHUNKED: left in this chunk */
        bool body_done;
        bool skip_lf;           /* the last line ended with CR: a LF next belongs to it */
        struct growbuf line;    /* the line being read */
        struct growbuf data;    /* the data of the event being read */
        bool has_data;
        char event[64];         /* its type */
        char out_event[64];     /* the event last returned: type ... */
        char *out_data;         /* ... and data (owned) */
};

/* Next body byte(s): points *ret at up to max bytes in the connection
 * buffer and returns how many (0 at the end of the body). */
static int sse_body_bytes(struct pbox_sse *s, const char **ret, struct pbox_error *err)
{
        struct http_conn *c = s->conn;
        if (s->body_done)
                return 0;
        if (s->framing == SSE_CHUNKED && s->left == 0) {
                char line[1024];
                int n = conn_read_line(c, line, sizeof line, err);
                if (n < 0)
                        return n;
                if (n == 0) {   /* the CRLF after the previous chunk */
                        n = conn_read_line(c, line, sizeof line, err);
                        if (n < 0)
                                return n;
                }
                uint64_t size = 0;
                size_t i = 0;
                for (; isxdigit((unsigned char) line[i]) && i < 16; i++) {
                        char ch = (char) tolower((unsigned char) line[i]);
                        size = size * 16 + (uint64_t) (isdigit((unsigned char) ch) ? ch - '0' : ch - 'a' + 10);
                }
                if (i == 0 || (line[i] != '\0' && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
                        return bad_head(c, "bad chunk size", err);
                if (size == 0) {
                        s->body_done = true;    /* trailers are not read: the stream is over */
                        return 0;
                }
                s->left = size;
        }
        if (s->framing != SSE_CLOSE && s->left == 0) {
                s->body_done = true;
                return 0;
        }
        if (c->pos == c->len) {
                int r = conn_fill(c, err);
                if (r < 0)
                        return r;
                if (r == 0) {
                        s->body_done = true;
                        if (s->framing != SSE_CLOSE)
                                return conn_closed(c, err);
                        return 0;
                }
        }
        size_t avail = c->len - c->pos;
        if (s->framing != SSE_CLOSE && avail > s->left)
                avail = (size_t) s->left;
        *ret = c->buf + c->pos;
        c->pos += avail;
        if (s->framing != SSE_CLOSE)
                s->left -= avail;
        return (int) avail;
}

/* Handles one complete line (without its end).  Returns 1 when it ended
 * an event (a blank line after data). */
static int sse_line(struct pbox_sse *s, struct pbox_error *err)
{
        char *l = s->line.data ? s->line.data : (char *) "";
        size_t len = s->line.len;
        s->line.len = 0;
        if (len == 0) {
                if (!s->has_data) {
                        s->event[0] = '\0';
                        return 0;
                }
                return 1;
        }
        if (l[0] == ':')
                return 0;       /* a comment: keep-alive */
        char *colon = memchr(l, ':', len);
        size_t nlen = colon ? (size_t) (colon - l) : len;
        const char *v = colon ? colon + 1 : l + len;
        size_t vlen = colon ? len - nlen - 1 : 0;
        if (vlen > 0 && *v == ' ') {
                v++;
                vlen--;
        }
        if (nlen == 5 && !memcmp(l, "event", 5)) {
                size_t n = vlen < sizeof s->event - 1 ? vlen : sizeof s->event - 1;
                memcpy(s->event, v, n);
                s->event[n] = '\0';
        } else if (nlen == 4 && !memcmp(l, "data", 4)) {
                int r = growbuf_reserve(&s->data, vlen + 1, err);
                if (r < 0)
                        return r;
                if (s->has_data)
                        s->data.data[s->data.len++] = '\n';
                memcpy(s->data.data + s->data.len, v, vlen);
                s->data.len += vlen;
                s->data.data[s->data.len] = '\0';
                s->has_data = true;
        }
        /* id, retry and unknown fields are ignored. */
        return 0;
}

int pbox_sse_open(const struct pbox_client *cl, const char *target, int timeout_ms, struct pbox_sse **ret,
                  int *ret_status, struct pbox_error *err)
{
        struct pbox_http_request req = {
                .method = "GET",
                .target = target,
                .upload_fd = -1,
                .timeout_ms = timeout_ms,
        };
        struct http_conn *c = NULL;
        struct http_head h;
        int r = http_start(cl, &req, "text/event-stream", &c, &h, err);
        if (r < 0)
                return r;
        if (ret_status)
                *ret_status = h.status;
        if (h.status != 200 || !h.event_stream) {
                struct growbuf b = { 0 };
                r = read_body(c, &h, &b, err);
                http_conn_free(c);
                if (r < 0) {
                        free(b.data);
                        return r;
                }
                struct pbox_http_response resp = { .status = h.status, .body = b.data, .body_len = b.len };
                if (h.status >= 200 && h.status <= 299)
                        r = pbox_error_set(err, EPROTO, "bad response from %s: not an event stream",
                                           cl->url.text);
                else
                        r = pbox_client_api_error(cl, &resp, err);
                pbox_http_response_done(&resp);
                return r;
        }
        struct pbox_sse *s = util_xcalloc(1, sizeof *s);
        s->conn = c;
        s->framing = h.chunked ? SSE_CHUNKED : h.has_length ? SSE_LENGTH : SSE_CLOSE;
        s->left = h.chunked ? 0 : h.length;
        *ret = s;
        return 0;
}

int pbox_sse_next(struct pbox_sse *s, const char **ret_event, const char **ret_data, size_t *ret_len,
                  struct pbox_error *err)
{
        free(s->out_data);
        s->out_data = NULL;
        for (;;) {
                const char *p;
                int n = sse_body_bytes(s, &p, err);
                if (n < 0)
                        return n;
                if (n == 0)
                        return 0;       /* an unfinished event is dropped, as the spec says */
                size_t i = 0;
                while (i < (size_t) n) {
                        if (s->skip_lf) {
                                s->skip_lf = false;
                                if (p[i] == '\n') {
                                        i++;
                                        continue;
                                }
                        }
                        /* A run of line bytes, then (maybe) its end. */
                        size_t run = 0;
                        while (i + run < (size_t) n && p[i + run] != '\n' && p[i + run] != '\r')
                                run++;
                        if (run > 0) {
                                if (s->line.len + run > PBOX_SSE_MAX_EVENT)
                                        return pbox_error_set(err, EFBIG, "event from %s larger than %zu MiB",
                                                              s->conn->peer, (size_t) PBOX_SSE_MAX_EVENT >> 20);
                                int r = growbuf_reserve(&s->line, run, err);
                                if (r < 0)
                                        return r;
                                memcpy(s->line.data + s->line.len, p + i, run);
                                s->line.len += run;
                                i += run;
                        }
                        if (i == (size_t) n)
                                break;
                        s->skip_lf = p[i] == '\r';
                        i++;
                        int r = sse_line(s, err);
                        if (r < 0)
                                return r;
                        if (s->data.len > PBOX_SSE_MAX_EVENT)
                                return pbox_error_set(err, EFBIG, "event from %s larger than %zu MiB",
                                                      s->conn->peer, (size_t) PBOX_SSE_MAX_EVENT >> 20);
                        if (r == 0)
                                continue;
                        /* Dispatch; the rest of p stays for the next call. */
                        size_t rest = (size_t) n - i;
                        s->conn->pos -= rest;
                        if (s->framing != SSE_CLOSE)
                                s->left += rest;
                        snprintf(s->out_event, sizeof s->out_event, "%s", s->event[0] ? s->event : "message");
                        s->event[0] = '\0';
                        s->out_data = s->data.data;
                        *ret_event = s->out_event;
                        *ret_data = s->out_data;
                        *ret_len = s->data.len;
                        s->data = (struct growbuf) { 0 };
                        s->has_data = false;
                        return 1;
                }
        }
}

void pbox_sse_close(struct pbox_sse *s)
{
        if (!s)
                return;
        http_conn_free(s->conn);
        free(s->line.data);
        free(s->data.data);
        free(s->out_data);
        free(s);
}

void pbox_client_done(struct pbox_client *c)
{
        pbox_url_done(&c->url);
        if (c->token) {
                explicit_bzero(c->token, strlen(c->token));
                free(c->token);
        }
        c->token = NULL;
}
