/* client.h — the HTTP side of the pbox CLI: the server URL and the bearer
 * token, percent-encoding of path segments, one HTTP/1.1 exchange per TCP
 * connection (Content-Length and chunked bodies, uploads streamed from a
 * file, idle timeouts), the JSON call that turns the API's error objects
 * into one-line messages, and a reader of Server-Sent Event streams.  Everything the server sends is treated
 * as untrusted: sizes are bounded and text meant for a terminal is
 * sanitised.  Nothing here prints or exits. */
#pragma once

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PBOX_DEFAULT_URL "http://127.0.0.1:7269"
#define PBOX_DEFAULT_TOKEN_FILE "/var/lib/pbox/admin.token"

/* Timeouts, in milliseconds.  PBOX_TIMEOUT_NONE waits for ever (TCP
 * keepalive still notices a peer that went away). */
#define PBOX_TIMEOUT_NONE (-1)
#define PBOX_CONNECT_TIMEOUT_MS 10000
#define PBOX_SEND_TIMEOUT_MS 60000
#define PBOX_DEFAULT_TIMEOUT_MS 120000

/* Largest response body the client accepts (exec output is base64 inside JSON). */
#define PBOX_HTTP_MAX_BODY ((size_t) 256 << 20)
/* Largest token file read. */
#define PBOX_TOKEN_MAX 4096

/* Set by a signal handler (pbox run --rm) to abort the request in flight
 * with -EINTR.  The client only reads it. */
extern volatile sig_atomic_t pbox_client_interrupted;

struct pbox_url {
        char *host;       /* without brackets for IPv6 literals */
        char *port;       /* decimal */
        char *authority;  /* host[:port] as sent in Host: (brackets kept) */
        char *text;       /* normalised "http://authority" for messages */
};

struct pbox_client {
        struct pbox_url url;
        char *token;
};

struct pbox_http_request {
        const char *method;
        const char *target;        /* origin-form ("/v1/..."), already percent-encoded */
        const char *content_type;  /* NULL: no Content-Type header */
        const void *body;          /* in-memory body, body_len bytes (POST without body: 0) */
        size_t body_len;
        int upload_fd;             /* >= 0: stream upload_len bytes of this file instead of body */
        uint64_t upload_len;
        int timeout_ms;            /* longest silence while waiting for the response */
};

struct pbox_http_response {
        int status;
        char *body;                /* NUL-terminated (not counted in body_len) */
        size_t body_len;
};

/* Parses http://HOST[:PORT][/] (PORT defaults to 80; IPv6 as [addr]).
 * Anything else (https, user info, paths, queries) is refused with a message. */
int pbox_url_parse(const char *text, struct pbox_url *ret, struct pbox_error *err);
void pbox_url_done(struct pbox_url *u);

/* Finds the token: file_opt (--token-file), else $PBOX_TOKEN_FILE, else
 * $PBOX_TOKEN (the token itself), else PBOX_DEFAULT_TOKEN_FILE.  Surrounding
 * whitespace is trimmed; a token must be printable ASCII without spaces. */
int pbox_token_load(const char *file_opt, char **ret_token, struct pbox_error *err);

/* Percent-encodes everything but RFC 3986 unreserved characters. */
char *pbox_uri_escape(const char *s);

/* Copies s, replacing control characters (C0, DEL, C1) and invalid UTF-8 by
 * '?', so that text from the server cannot drive the terminal. */
char *pbox_sanitize(const char *s);

/* One exchange.  A response of any status is success (ret->status tells);
 * failures are transport or protocol errors. */
int pbox_http_do(const struct pbox_client *c, const struct pbox_http_request *req,
                 struct pbox_http_response *ret, struct pbox_error *err);
void pbox_http_response_done(struct pbox_http_response *r);

/* Error code returned (negated) when the server answered with an API error;
 * err then holds "<message> (<code>)". */
#define PBOX_EAPI EREMOTEIO

/* The error of a non-2xx response: -PBOX_EAPI with "<message> (<code>)"
 * from the API's error object (sanitised, at most one line of 512 bytes). */
int pbox_client_api_error(const struct pbox_client *c, const struct pbox_http_response *resp,
                          struct pbox_error *err);

/* A JSON call: sends body (may be NULL: no body) and, on 2xx, parses the
 * response as a JSON object into *ret (may be NULL to ignore it).  Any
 * other status returns -PBOX_EAPI with the server's message; *ret_status
 * (may be NULL) gets the HTTP status whenever a response arrived. */
int pbox_client_call(const struct pbox_client *c, const char *method, const char *target,
                     json_t *body, int timeout_ms, json_t **ret, int *ret_status,
                     struct pbox_error *err);

/* Like pbox_client_call, but the body is upload_len bytes of upload_fd
 * sent as application/octet-stream. */
int pbox_client_upload(const struct pbox_client *c, const char *target, int upload_fd,
                       uint64_t upload_len, int timeout_ms, json_t **ret, int *ret_status,
                       struct pbox_error *err);

/* Like pbox_client_call with a body of any type: body_len bytes of body
 * sent with Content-Type content_type (NULL: none). */
int pbox_client_send(const struct pbox_client *c, const char *method, const char *target,
                     const char *content_type, const void *body, size_t body_len, int timeout_ms,
                     json_t **ret, int *ret_status, struct pbox_error *err);

/* Server-Sent Events (GET of an event stream, text/event-stream).  The
 * parser follows the HTML living standard's rules: lines end with LF, CRLF
 * or CR, anywhere in the byte stream; "event:" sets the type, "data:" lines
 * are joined with LF, a blank line dispatches, lines starting with ':' are
 * comments (keep-alives), other fields are ignored.  An event's data is at
 * most PBOX_SSE_MAX_EVENT bytes. */
#define PBOX_SSE_MAX_EVENT ((size_t) 32 << 20)

struct pbox_sse;

/* Opens the stream at target.  A non-2xx answer is -PBOX_EAPI with the
 * server's message, as for pbox_client_call (*ret_status, may be NULL,
 * gets the HTTP status whenever one arrived); a 2xx answer that is not an
 * event stream is -EPROTO.  timeout_ms bounds each silence
 * (PBOX_TIMEOUT_NONE: none; TCP keepalive still notices a dead peer). */
int pbox_sse_open(const struct pbox_client *c, const char *target, int timeout_ms, struct pbox_sse **ret,
                  int *ret_status, struct pbox_error *err);

/* The next event: 1 with its type ("message" if none was given) and its
 * data (NUL-terminated, *ret_len bytes), both valid until the next call;
 * 0 when the server ended the stream (an unfinished event is dropped);
 * negative on errors (-EINTR when pbox_client_interrupted is set). */
int pbox_sse_next(struct pbox_sse *s, const char **ret_event, const char **ret_data, size_t *ret_len,
                  struct pbox_error *err);
void pbox_sse_close(struct pbox_sse *s);

void pbox_client_done(struct pbox_client *c);
