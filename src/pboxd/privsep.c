/* privsep.c — the wire format between the api process and the core
 * (privsep.h): one SOCK_SEQPACKET datagram per message, bodies that do not fit
 * inline in a sealed memfd passed by SCM_RIGHTS, and request channels passed
 * over the control channel.
 *
 * Both ends run this code and each treats the other as hostile: the receive
 * side checks every length against the datagram actually received, accepts at
 * most one fd (closing any others the peer attached), and accepts a body fd
 * only when it is a sealed regular file whose size is the announced one. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "privsep.h"
#include "util.h"

/* How many fds a receive makes room for.  A peer that attaches more gets
 * MSG_CTRUNC (the kernel drops what does not fit) and a rejected message;
 * the room is only there so that we see, and close, what it sent. */
#define PRIVSEP_RECV_MAX_FDS 16

#define PRIVSEP_ALL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

union privsep_cmsgbuf {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * PRIVSEP_RECV_MAX_FDS)];
};

union privsep_cmsgbuf1 {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
};

void privsep_msg_clear(struct privsep_msg *msg)
{
        if (!msg)
                return;
        /* A struct privsep_recv never filled owns no fd, even if it was
         * zero-initialised (body_fd 0 would otherwise close stdin). */
        if (msg->meta && msg->body_fd >= 0)
                close(msg->body_fd);
        free(msg->meta);
        free(msg->body);
        msg->meta = NULL;
        msg->meta_len = 0;
        msg->body = NULL;
        msg->body_len = 0;
        msg->body_fd = -1;
}

static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

/* ---- sending ------------------------------------------------------------ */

static int sendmsg_all(int sock, struct msghdr *mh, size_t total, int flags)
{
        ssize_t n;
        do
                n = sendmsg(sock, mh, flags | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        /* SOCK_SEQPACKET sends are atomic: anything else is not our peer. */
        if ((size_t) n != total)
                return -EIO;
        return 0;
}

/* A new memfd holding len bytes of data (or, with src_fd >= 0, the len bytes
 * of src_fd from offset 0), sealed against every change. */
static int memfd_sealed(const void *data, int src_fd, uint64_t len, int *ret_fd, struct pbox_error *err)
{
        _cleanup_close_ int fd = memfd_create("pbox-privsep", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return pbox_error_sys(err, errno, "memfd_create");
        if (src_fd < 0) {
                int r = util_write_all(fd, data, (size_t) len);
                if (r < 0)
                        return pbox_error_sys(err, -r, "writing body to memfd");
        } else {
                char buf[65536];
                uint64_t off = 0;
                while (off < len) {
                        size_t want = len - off < sizeof buf ? (size_t) (len - off) : sizeof buf;
                        ssize_t n = pread(src_fd, buf, want, (off_t) off);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return pbox_error_sys(err, errno, "reading body fd");
                        if (n == 0)
                                return pbox_error_set(err, EIO, "body fd shrank while copying it");
                        int r = util_write_all(fd, buf, (size_t) n);
                        if (r < 0)
                                return pbox_error_sys(err, -r, "writing body to memfd");
                        off += (uint64_t) n;
                }
        }
        if (fcntl(fd, F_ADD_SEALS, PRIVSEP_ALL_SEALS) < 0)
                return pbox_error_sys(err, errno, "sealing memfd");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return pbox_error_sys(err, errno, "lseek memfd");
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_with_fd(int sock, int flags, const struct privsep_hdr *hdr, const char *meta,
                        size_t meta_len, int fd, struct pbox_error *err)
{
        union privsep_cmsgbuf1 cbuf;
        memset(&cbuf, 0, sizeof cbuf);
        struct iovec iov[2] = {
                { .iov_base = (void *) hdr, .iov_len = sizeof *hdr },
                { .iov_base = (void *) meta, .iov_len = meta_len },
        };
        struct msghdr mh = {
                .msg_iov = iov,
                .msg_iovlen = meta_len > 0 ? 2 : 1,
                .msg_control = cbuf.buf,
                .msg_controllen = sizeof cbuf.buf,
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        int r = sendmsg_all(sock, &mh, sizeof *hdr + meta_len, flags);
        if (r < 0)
                return pbox_error_sys(err, -r, "sending privsep message");
        return 0;
}

int privsep_send_flags(int sock, int flags, const char *meta, const void *body, size_t body_len,
                       int body_fd, struct pbox_error *err)
{
        if (!meta)
                meta = "";
        size_t meta_len = strlen(meta);
        if (meta_len > PRIVSEP_MAX_META)
                return pbox_error_set(err, EMSGSIZE, "privsep meta too long (%zu > %d bytes)",
                                      meta_len, PRIVSEP_MAX_META);
        if (body_fd < 0 && body_len > 0 && !body)
                return pbox_error_set(err, EINVAL, "privsep body missing");

        struct privsep_hdr hdr = {
                .magic = PRIVSEP_MAGIC,
                .version = PRIVSEP_VERSION,
                .meta_len = (uint32_t) meta_len,
        };

        if (body_fd >= 0) {
                struct stat st;
                if (fstat(body_fd, &st) < 0)
                        return pbox_error_sys(err, errno, "fstat body fd");
                if (!S_ISREG(st.st_mode) || st.st_size < 0)
                        return pbox_error_set(err, EINVAL, "body fd is not a regular file");
                hdr.flags = PRIVSEP_F_BODY_FD;
                hdr.body_len = (uint64_t) st.st_size;
                int seals = fcntl(body_fd, F_GET_SEALS);
                if (seals >= 0 && (seals & PRIVSEP_REQUIRED_SEALS) == PRIVSEP_REQUIRED_SEALS)
                        return send_with_fd(sock, flags, &hdr, meta, meta_len, body_fd, err);
                /* Not sealed (a plain file): the receiver would refuse it;
                 * send a sealed copy instead. */
                _cleanup_close_ int copy = -1;
                int r = memfd_sealed(NULL, body_fd, hdr.body_len, &copy, err);
                if (r < 0)
                        return r;
                return send_with_fd(sock, flags, &hdr, meta, meta_len, copy, err);
        }

        if (sizeof hdr + meta_len + body_len <= PRIVSEP_MAX_INLINE) {
                hdr.body_len = body_len;
                struct iovec iov[3] = {
                        { .iov_base = &hdr, .iov_len = sizeof hdr },
                        { .iov_base = (void *) meta, .iov_len = meta_len },
                        { .iov_base = (void *) body, .iov_len = body_len },
                };
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
                int r = sendmsg_all(sock, &mh, sizeof hdr + meta_len + body_len, flags);
                if (r < 0)
                        return pbox_error_sys(err, -r, "sending privsep message");
                return 0;
        }

        _cleanup_close_ int fd = -1;
        int r = memfd_sealed(body, -1, body_len, &fd, err);
        if (r < 0)
                return r;
        hdr.flags = PRIVSEP_F_BODY_FD;
        hdr.body_len = body_len;
        return send_with_fd(sock, flags, &hdr, meta, meta_len, fd, err);
}

int privsep_send(int sock, const char *meta, const void *body, size_t body_len, int body_fd,
                 struct pbox_error *err)
{
        return privsep_send_flags(sock, 0, meta, body, body_len, body_fd, err);
}

/* ---- receiving ---------------------------------------------------------- */

/* recvmsg into buf, collecting every fd the peer attached into fds[] (all
 * O_CLOEXEC).  Returns the datagram length or -errno; on failure no fd is
 * left open.  *ret_flags gets msg_flags. */
static ssize_t recv_collect(int sock, int flags, void *buf, size_t len, int *fds, size_t *ret_nfds,
                            int *ret_flags)
{
        union privsep_cmsgbuf cbuf;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh;
        ssize_t n;

        *ret_nfds = 0;
        do {
                memset(&mh, 0, sizeof mh);
                memset(&cbuf, 0, sizeof cbuf);
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                mh.msg_control = cbuf.buf;
                mh.msg_controllen = sizeof cbuf.buf;
                n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;

        size_t nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                if (c->cmsg_len < CMSG_LEN(0))
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const unsigned char *data = CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, data + i * sizeof(int), sizeof(int));
                        if (nfds < PRIVSEP_RECV_MAX_FDS)
                                fds[nfds++] = fd;
                        else if (fd >= 0)
                                close(fd);      /* cannot happen with our buffer size */
                }
        }
        *ret_nfds = nfds;
        *ret_flags = mh.msg_flags;
        return n;
}

static int check_body_fd(int fd, uint64_t body_len, struct pbox_error *err)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return pbox_error_sys(err, EBADMSG, "privsep: fstat of body fd failed");
        if (!S_ISREG(st.st_mode))
                return pbox_error_set(err, EBADMSG, "privsep: body fd is not a regular file");
        if (st.st_size < 0 || (uint64_t) st.st_size != body_len)
                return pbox_error_set(err, EBADMSG,
                                      "privsep: body fd size %lld does not match body_len %llu",
                                      (long long) st.st_size, (unsigned long long) body_len);
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_PATH) || ((fl & O_ACCMODE) != O_RDONLY && (fl & O_ACCMODE) != O_RDWR))
                return pbox_error_set(err, EBADMSG, "privsep: body fd is not readable");
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & PRIVSEP_REQUIRED_SEALS) != PRIVSEP_REQUIRED_SEALS)
                return pbox_error_set(err, EBADMSG, "privsep: body fd is not sealed");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return pbox_error_sys(err, EBADMSG, "privsep: lseek of body fd failed");
        return 0;
}

int privsep_recv_flags(int sock, int flags, struct privsep_msg *ret, struct pbox_error *err)
{
        _cleanup_free_ char *buf = util_xmalloc(PRIVSEP_MAX_INLINE);
        int fds[PRIVSEP_RECV_MAX_FDS];
        size_t nfds = 0;
        int mflags = 0;

        ssize_t n = recv_collect(sock, flags, buf, PRIVSEP_MAX_INLINE, fds, &nfds, &mflags);
        if (n < 0) {
                if (n == -EAGAIN || n == -EWOULDBLOCK)
                        return -EAGAIN;         /* not an error worth a message */
                if (n == -ECONNRESET)
                        return pbox_error_set(err, ECONNRESET, "privsep: peer closed the channel");
                return pbox_error_sys(err, (int) -n, "privsep: recvmsg");
        }

        int r;
        if (n == 0) {
                r = pbox_error_set(err, ECONNRESET, "privsep: peer closed the channel");
                goto fail;
        }
        if (mflags & (MSG_TRUNC | MSG_CTRUNC)) {
                r = pbox_error_set(err, EBADMSG, "privsep: message truncated (too large or too many fds)");
                goto fail;
        }
        if ((size_t) n < sizeof(struct privsep_hdr)) {
                r = pbox_error_set(err, EBADMSG, "privsep: message shorter than its header");
                goto fail;
        }

        struct privsep_hdr hdr;
        memcpy(&hdr, buf, sizeof hdr);
        size_t rest = (size_t) n - sizeof hdr;
        if (hdr.magic != PRIVSEP_MAGIC || hdr.version != PRIVSEP_VERSION) {
                r = pbox_error_set(err, EBADMSG, "privsep: bad magic or version");
                goto fail;
        }
        if ((hdr.flags & ~PRIVSEP_F_BODY_FD) != 0 || hdr.reserved != 0) {
                r = pbox_error_set(err, EBADMSG, "privsep: unknown flags");
                goto fail;
        }
        if (hdr.meta_len > PRIVSEP_MAX_META || hdr.meta_len > rest) {
                r = pbox_error_set(err, EBADMSG, "privsep: bad meta length %u", hdr.meta_len);
                goto fail;
        }
        const char *meta = buf + sizeof hdr;
        if (memchr(meta, '\0', hdr.meta_len)) {
                r = pbox_error_set(err, EBADMSG, "privsep: NUL byte in meta");
                goto fail;
        }
        if (nfds > 1) {
                r = pbox_error_set(err, EBADMSG, "privsep: %zu fds attached, at most one allowed", nfds);
                goto fail;
        }

        int body_fd = -1;
        if (hdr.flags & PRIVSEP_F_BODY_FD) {
                if (nfds != 1 || rest != hdr.meta_len) {
                        r = pbox_error_set(err, EBADMSG, "privsep: body fd flag without exactly one fd "
                                           "and no inline body");
                        goto fail;
                }
                r = check_body_fd(fds[0], hdr.body_len, err);
                if (r < 0)
                        goto fail;
                body_fd = fds[0];
        } else {
                if (nfds != 0) {
                        r = pbox_error_set(err, EBADMSG, "privsep: fd attached without body fd flag");
                        goto fail;
                }
                if (hdr.body_len != rest - hdr.meta_len) {
                        r = pbox_error_set(err, EBADMSG, "privsep: body length does not match message size");
                        goto fail;
                }
        }

        struct privsep_msg m = PRIVSEP_MSG_INIT;
        m.meta = util_xmalloc((size_t) hdr.meta_len + 1);
        memcpy(m.meta, meta, hdr.meta_len);
        m.meta[hdr.meta_len] = '\0';
        m.meta_len = hdr.meta_len;
        m.body_len = hdr.body_len;
        m.body_fd = body_fd;
        if (body_fd < 0 && hdr.body_len > 0) {
                m.body = util_xmalloc((size_t) hdr.body_len + 1);
                memcpy(m.body, meta + hdr.meta_len, (size_t) hdr.body_len);
                m.body[hdr.body_len] = '\0';
        }
        *ret = m;
        return 0;

fail:
        close_fds(fds, nfds);
        return r;
}

int privsep_recv(int sock, struct privsep_msg *ret, struct pbox_error *err)
{
        return privsep_recv_flags(sock, 0, ret, err);
}

/* ---- channels ----------------------------------------------------------- */

int privsep_send_channel(int control_sock, int channel_fd, struct pbox_error *err)
{
        union privsep_cmsgbuf1 cbuf;
        memset(&cbuf, 0, sizeof cbuf);
        char byte = 'R';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = cbuf.buf,
                .msg_controllen = sizeof cbuf.buf,
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &channel_fd, sizeof(int));
        int r = sendmsg_all(control_sock, &mh, 1, 0);
        if (r < 0)
                return pbox_error_sys(err, -r, "privsep: passing request channel");
        return 0;
}

int privsep_recv_channel_flags(int control_sock, int flags, int *ret_fd, struct pbox_error *err)
{
        char buf[8];
        int fds[PRIVSEP_RECV_MAX_FDS];
        size_t nfds = 0;
        int mflags = 0, r;

        ssize_t n = recv_collect(control_sock, flags, buf, sizeof buf, fds, &nfds, &mflags);
        if (n < 0) {
                if (n == -EAGAIN || n == -EWOULDBLOCK)
                        return -EAGAIN;
                return pbox_error_sys(err, (int) -n, "privsep: recvmsg on control channel");
        }
        if (n == 0) {
                r = pbox_error_set(err, ECONNRESET, "privsep: control channel closed");
                goto fail;
        }
        if ((mflags & (MSG_TRUNC | MSG_CTRUNC)) || n != 1 || buf[0] != 'R' || nfds != 1) {
                r = pbox_error_set(err, EBADMSG, "privsep: malformed channel message");
                goto fail;
        }
        int type = 0, domain = 0;
        socklen_t sl = sizeof type;
        if (getsockopt(fds[0], SOL_SOCKET, SO_TYPE, &type, &sl) < 0 || type != SOCK_SEQPACKET) {
                r = pbox_error_set(err, EBADMSG, "privsep: channel is not a SOCK_SEQPACKET socket");
                goto fail;
        }
        sl = sizeof domain;
        if (getsockopt(fds[0], SOL_SOCKET, SO_DOMAIN, &domain, &sl) < 0 || domain != AF_UNIX) {
                r = pbox_error_set(err, EBADMSG, "privsep: channel is not an AF_UNIX socket");
                goto fail;
        }
        *ret_fd = fds[0];
        return 0;

fail:
        close_fds(fds, nfds);
        return r;
}

int privsep_recv_channel(int control_sock, int *ret_fd, struct pbox_error *err)
{
        return privsep_recv_channel_flags(control_sock, 0, ret_fd, err);
}
