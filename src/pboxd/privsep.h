/* privsep.h — the protocol between the unprivileged HTTP front end (api
 * process) and the privileged core.
 *
 * Channels.  At start the core creates a SOCK_SEQPACKET socketpair (the
 * control channel) and forks the api process.  For every HTTP request the api
 * process creates a fresh SOCK_SEQPACKET socketpair (the request channel) and
 * passes one end to the core over the control channel (one message: the byte
 * 'R' with the fd attached by SCM_RIGHTS).  On the request channel the api
 * sends exactly one request message; the core answers with one response
 * message, then closes its end (streams, below, send several).  The core
 * never blocks on a request channel: it reads and writes them from its
 * epoll loop.
 *
 * Messages.  struct privsep_hdr, then meta_len bytes of JSON (the "meta"), then
 * body_len bytes of body, all in one datagram; or, when the whole would exceed
 * PRIVSEP_MAX_INLINE, the body travels in a sealed memfd attached by
 * SCM_RIGHTS (flag PRIVSEP_F_BODY_FD) and body_len is its size.  Image uploads
 * always come as an fd.
 *
 * Request meta: {"op": "<op>", "token": "<bearer token or absent>",
 *                "args": {<path and query parameters, all strings>}}
 * Response meta: {"status": <http status>, "content_type"?: "<media type>"
 *                 (default application/json), "retry_after"?: <seconds>};
 * the body is the response body (JSON unless content_type says otherwise).
 *
 * Streams (exec.events).  The first response has meta {"status": 200,
 * "stream": true, "content_type": "text/event-stream"} and no body; then
 * come any number of {"chunk": true} messages whose body is bytes for the
 * client (whole Server-Sent Events), then {"end": true}.  The api writes the
 * HTTP head at the first message and every chunk as it arrives; it closes
 * its end of the channel when the HTTP client goes away, which tells the
 * core to stop.  A channel closed by the core without "end" ends the HTTP
 * response the same way (the client sees no exit event).
 *
 * The core trusts nothing in a request: the meta is parsed with
 * json_parse_untrusted, the op is looked up in a fixed table, each arg is
 * validated by the handler, sizes are checked against fstat of the fd. */
#pragma once

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PRIVSEP_MAGIC 0x58425050u       /* "PPBX" */
#define PRIVSEP_VERSION 1
#define PRIVSEP_MAX_INLINE (64 * 1024)
#define PRIVSEP_MAX_META (16 * 1024)

#define PRIVSEP_F_BODY_FD 0x1u

struct privsep_hdr {
        uint32_t magic;
        uint16_t version;
        uint16_t flags;
        uint32_t meta_len;
        uint32_t reserved;
        uint64_t body_len;
};

/* A received message.  Exactly one of body (inline, NUL-terminated for
 * convenience) or body_fd (>= 0) carries the body when body_len > 0. */
struct privsep_msg {
        char *meta;             /* NUL-terminated JSON text */
        size_t meta_len;
        char *body;
        uint64_t body_len;
        int body_fd;            /* -1 if none; positioned at offset 0 */
};

/* Initialise every struct privsep_msg with this (body_fd must start at -1). */
#define PRIVSEP_MSG_INIT { NULL, 0, NULL, 0, -1 }

/* Seals a body fd must carry: its size and contents cannot change after the
 * receiver checked them.  privsep_recv rejects fds without them; privsep_send
 * copies an fd without them into a sealed memfd. */
#define PRIVSEP_REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

void privsep_msg_clear(struct privsep_msg *msg);   /* frees and closes, leaves it reusable */

/* Send one message.  Bodies larger than fit inline go through a memfd that
 * this function creates, fills and seals.  body_fd >= 0 sends that fd as the
 * body instead of body/body_len (its size is taken from fstat). */
int privsep_send(int sock, const char *meta, const void *body, size_t body_len, int body_fd,
                 struct pbox_error *err);

/* Receive one message (blocking or not, as the socket is).  Returns 0,
 * -EAGAIN when a non-blocking socket has nothing, -ECONNRESET on EOF,
 * -EBADMSG on a malformed message.  Received fds are O_CLOEXEC. */
int privsep_recv(int sock, struct privsep_msg *ret, struct pbox_error *err);

/* The same with extra send/recvmsg flags (MSG_DONTWAIT).  The core must use
 * MSG_DONTWAIT on request channels rather than rely on O_NONBLOCK: the api
 * created both ends, so a hostile api can share the file description and
 * clear O_NONBLOCK behind the core's back.  The body fd of a received message
 * shares its file offset with the sender's copy: read it with pread. */
int privsep_send_flags(int sock, int flags, const char *meta, const void *body, size_t body_len,
                       int body_fd, struct pbox_error *err);
int privsep_recv_flags(int sock, int flags, struct privsep_msg *ret, struct pbox_error *err);

/* Control channel: pass / receive the core's end of a new request channel. */
int privsep_send_channel(int control_sock, int channel_fd, struct pbox_error *err);
int privsep_recv_channel(int control_sock, int *ret_fd, struct pbox_error *err);
/* The received channel is checked to be an AF_UNIX SOCK_SEQPACKET socket. */
int privsep_recv_channel_flags(int control_sock, int flags, int *ret_fd, struct pbox_error *err);

/* The operations the api process may ask for. */
#define PRIVSEP_OPS(X) \
        X(IMAGE_LOAD, "image.load") \
        X(IMAGE_LIST, "image.list") \
        X(IMAGE_REMOVE, "image.remove") \
        X(SANDBOX_CREATE, "sandbox.create") \
        X(SANDBOX_LIST, "sandbox.list") \
        X(SANDBOX_GET, "sandbox.get") \
        X(SANDBOX_EXEC, "sandbox.exec") \
        X(SANDBOX_STOP, "sandbox.stop") \
        X(SANDBOX_REMOVE, "sandbox.remove") \
        X(SANDBOX_KEEPALIVE, "sandbox.keepalive") \
        X(SANDBOX_LIMITS, "sandbox.limits") \
        X(EXEC_LIST, "exec.list") \
        X(EXEC_GET, "exec.get") \
        X(EXEC_EVENTS, "exec.events") \
        X(EXEC_STDIN, "exec.stdin") \
        X(EXEC_KILL, "exec.kill") \
        X(FILES_PUT, "files.put") \
        X(FILES_GET, "files.get") \
        X(FILES_LIST, "files.list") \
        X(ARCHIVE_PUT, "archive.put") \
        X(ARCHIVE_GET, "archive.get") \
        X(RUN, "run") \
        X(TENANT_CREATE, "tenant.create") \
        X(TENANT_LIST, "tenant.list") \
        X(TENANT_REMOVE, "tenant.remove") \
        X(HEALTH, "health") \
        X(METRICS, "metrics")
