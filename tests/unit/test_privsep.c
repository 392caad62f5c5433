/* test_privsep.c — the privsep wire format (src/pboxd/privsep.c) over real
 * SOCK_SEQPACKET socketpairs: round trips inline and through sealed memfds,
 * channel passing, hand-crafted hostile messages that must be rejected
 * without leaking the fds they carry, event streams (several responses on
 * one channel), and the table of operation names. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "privsep.h"
#include "util.h"

#define HDR sizeof(struct privsep_hdr)

struct pair {
        int a, b;
};

static int setup_pair(void **state)
{
        struct pair *p = util_xmalloc(sizeof *p);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -1;
        p->a = sv[0];
        p->b = sv[1];
        *state = p;
        return 0;
}

static int teardown_pair(void **state)
{
        struct pair *p = *state;
        if (p->a >= 0)
                close(p->a);
        if (p->b >= 0)
                close(p->b);
        free(p);
        return 0;
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        assert_non_null(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;   /* the DIR's own fd */
}

static bool fd_is_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* Send a hand-made datagram: header, meta bytes, body bytes, fds. */
static void raw_send(int sock, const void *hdr, size_t hdr_len, const void *meta,
                     size_t meta_len, const void *body, size_t body_len, const int *fds, size_t nfds)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } cbuf;
        memset(&cbuf, 0, sizeof cbuf);
        struct iovec iov[3] = {
                { .iov_base = (void *) hdr, .iov_len = hdr_len },
                { .iov_base = (void *) meta, .iov_len = meta_len },
                { .iov_base = (void *) body, .iov_len = body_len },
        };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
        if (nfds > 0) {
                assert_true(nfds <= 8);
                mh.msg_control = cbuf.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        assert_int_equal(n, (ssize_t) (hdr_len + meta_len + body_len));
}

static struct privsep_hdr mkhdr(uint32_t meta_len, uint64_t body_len, uint16_t flags)
{
        struct privsep_hdr h = {
                .magic = PRIVSEP_MAGIC,
                .version = PRIVSEP_VERSION,
                .flags = flags,
                .meta_len = meta_len,
                .body_len = body_len,
        };
        return h;
}

static int sealed_memfd(size_t size, unsigned seals)
{
        int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t) size), 0);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

/* Expect privsep_recv to reject what is queued with -EBADMSG and leave the
 * fd count unchanged once the sender's copies are closed. */
static void expect_badmsg(int sock)
{
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(privsep_recv(sock, &m, &err), -EBADMSG);
        assert_int_equal(err.code, EBADMSG);
        assert_null(m.meta);
        assert_int_equal(m.body_fd, -1);
}

/* ---- round trips --------------------------------------------------------- */

static void test_inline_small(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *meta = "{\"op\":\"sandbox.list\"}";
        assert_int_equal(privsep_send(p->a, meta, "hello", 5, -1, &err), 0);

        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_string_equal(m.meta, meta);
        assert_int_equal(m.meta_len, strlen(meta));
        assert_int_equal(m.body_len, 5);
        assert_int_equal(m.body_fd, -1);
        assert_non_null(m.body);
        assert_memory_equal(m.body, "hello", 6);   /* NUL-terminated */
        privsep_msg_clear(&m);
        assert_null(m.meta);

        /* Empty body, empty meta. */
        assert_int_equal(privsep_send(p->a, NULL, NULL, 0, -1, &err), 0);
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_string_equal(m.meta, "");
        assert_int_equal(m.body_len, 0);
        assert_null(m.body);
        assert_int_equal(m.body_fd, -1);
        privsep_msg_clear(&m);
}

static void test_inline_exact_limit(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *meta = "{\"status\":200}";
        size_t body_len = PRIVSEP_MAX_INLINE - HDR - strlen(meta);
        char *body = util_xmalloc(body_len + 1);
        for (size_t i = 0; i <= body_len; i++)
                body[i] = (char) ('a' + i % 26);

        /* Exactly at the limit: inline. */
        assert_int_equal(privsep_send(p->a, meta, body, body_len, -1, &err), 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_int_equal(m.body_fd, -1);
        assert_int_equal(m.body_len, body_len);
        assert_memory_equal(m.body, body, body_len);
        privsep_msg_clear(&m);

        /* One byte more: through a memfd. */
        assert_int_equal(privsep_send(p->a, meta, body, body_len + 1, -1, &err), 0);
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_true(m.body_fd >= 0);
        assert_null(m.body);
        assert_int_equal(m.body_len, body_len + 1);
        char *back = util_xmalloc(body_len + 1);
        assert_int_equal(pread(m.body_fd, back, body_len + 1, 0), (ssize_t) (body_len + 1));
        assert_memory_equal(back, body, body_len + 1);
        free(back);
        privsep_msg_clear(&m);
        free(body);
}

static void test_large_memfd(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        size_t len = 3 * 1024 * 1024 + 17;
        unsigned char *body = util_xmalloc(len);
        for (size_t i = 0; i < len; i++)
                body[i] = (unsigned char) (i * 7 + 3);
        int before = count_fds();
        assert_int_equal(privsep_send(p->a, "{}", body, len, -1, &err), 0);
        assert_int_equal(count_fds(), before);  /* the sender's memfd copy is closed */

        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_true(m.body_fd >= 0);
        assert_int_equal(m.body_len, len);
        int seals = fcntl(m.body_fd, F_GET_SEALS);
        assert_int_equal(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        assert_true(fcntl(m.body_fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(lseek(m.body_fd, 0, SEEK_CUR), 0);
        /* The receiver cannot change it either. */
        assert_true(write(m.body_fd, "x", 1) < 0);
        assert_true(ftruncate(m.body_fd, 1) < 0);
        unsigned char *back = util_xmalloc(len);
        size_t off = 0;
        while (off < len) {
                ssize_t n = pread(m.body_fd, back + off, len - off, (off_t) off);
                assert_true(n > 0);
                off += (size_t) n;
        }
        assert_memory_equal(back, body, len);
        free(back);
        privsep_msg_clear(&m);
        assert_int_equal(count_fds(), before);
        free(body);
}

static void test_explicit_body_fd(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;

        /* A sealed memfd is sent as it is (same inode). */
        int fd = memfd_create("upload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "0123456789", 10), 10);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 0);
        struct stat st1, st2;
        assert_int_equal(fstat(fd, &st1), 0);
        assert_int_equal(privsep_send(p->a, "{\"op\":\"image.load\"}", NULL, 0, fd, &err), 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_true(m.body_fd >= 0);
        assert_int_equal(m.body_len, 10);
        assert_int_equal(fstat(m.body_fd, &st2), 0);
        assert_int_equal(st1.st_ino, st2.st_ino);
        char buf[16] = { 0 };
        assert_int_equal(pread(m.body_fd, buf, sizeof buf, 0), 10);
        assert_string_equal(buf, "0123456789");
        privsep_msg_clear(&m);
        close(fd);

        /* An unsealed fd (a plain file) is copied into a sealed memfd. */
        char path[] = "/tmp/test_privsep.XXXXXX";
        fd = mkostemp(path, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(write(fd, "abc", 3), 3);
        assert_int_equal(fstat(fd, &st1), 0);
        assert_int_equal(privsep_send(p->a, "{}", NULL, 0, fd, &err), 0);
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_int_equal(m.body_len, 3);
        assert_int_equal(fstat(m.body_fd, &st2), 0);
        assert_true(st1.st_ino != st2.st_ino || st1.st_dev != st2.st_dev);
        assert_int_equal(fcntl(m.body_fd, F_GET_SEALS) & PRIVSEP_REQUIRED_SEALS, PRIVSEP_REQUIRED_SEALS);
        memset(buf, 0, sizeof buf);
        assert_int_equal(pread(m.body_fd, buf, sizeof buf, 0), 3);
        assert_string_equal(buf, "abc");
        privsep_msg_clear(&m);
        close(fd);

        /* A pipe is not a body. */
        int pp[2];
        assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
        assert_int_equal(privsep_send(p->a, "{}", NULL, 0, pp[0], &err), -EINVAL);
        close(pp[0]);
        close(pp[1]);
}

static void test_send_meta_too_long(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        char *meta = util_xmalloc(PRIVSEP_MAX_META + 2);
        memset(meta, 'x', PRIVSEP_MAX_META + 1);
        meta[PRIVSEP_MAX_META + 1] = '\0';
        assert_int_equal(privsep_send(p->a, meta, NULL, 0, -1, &err), -EMSGSIZE);
        /* Exactly PRIVSEP_MAX_META is fine. */
        meta[PRIVSEP_MAX_META] = '\0';
        assert_int_equal(privsep_send(p->a, meta, NULL, 0, -1, &err), 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_int_equal(m.meta_len, PRIVSEP_MAX_META);
        privsep_msg_clear(&m);
        free(meta);
}

static void test_eof_and_eagain(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), -EAGAIN);
        close(p->a);
        p->a = -1;
        assert_int_equal(privsep_recv(p->b, &m, &err), -ECONNRESET);
        assert_null(m.meta);
        /* Sending into a closed channel fails without SIGPIPE. */
        assert_true(privsep_send(p->b, "{}", NULL, 0, -1, &err) < 0);
}

static void test_msg_clear_zero_init(void **state)
{
        (void) state;
        /* A zero-initialised struct must not close fd 0. */
        struct privsep_msg m;
        memset(&m, 0, sizeof m);
        int before = fd_is_open(0);
        privsep_msg_clear(&m);
        assert_int_equal(fd_is_open(0), before);
        assert_int_equal(m.body_fd, -1);
}

/* ---- hostile messages ---------------------------------------------------- */

static void test_bad_magic_version_flags(void **state)
{
        struct pair *p = *state;
        struct privsep_hdr h = mkhdr(2, 0, 0);
        h.magic = 0x41414141;
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        h = mkhdr(2, 0, 0);
        h.version = 2;
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        h = mkhdr(2, 0, 0x8);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        h = mkhdr(2, 0, 0);
        h.reserved = 1;
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        /* The same message with a sane header passes (the checks above are
         * what failed). */
        h = mkhdr(2, 0, 0);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, NULL), 0);
        assert_string_equal(m.meta, "{}");
        privsep_msg_clear(&m);
}

static void test_bad_lengths(void **state)
{
        struct pair *p = *state;
        /* meta_len larger than the datagram. */
        struct privsep_hdr h = mkhdr(100, 0, 0);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        /* meta_len larger than PRIVSEP_MAX_META (and than the datagram). */
        h = mkhdr(PRIVSEP_MAX_META + 1, 0, 0);
        char *big = util_xmalloc(PRIVSEP_MAX_META + 1);
        memset(big, 'm', PRIVSEP_MAX_META + 1);
        raw_send(p->a, &h, HDR, big, PRIVSEP_MAX_META + 1, NULL, 0, NULL, 0);
        expect_badmsg(p->b);
        free(big);

        /* body_len larger than what follows the meta. */
        h = mkhdr(2, 10, 0);
        raw_send(p->a, &h, HDR, "{}", 2, "abc", 3, NULL, 0);
        expect_badmsg(p->b);

        /* body_len smaller than what follows the meta. */
        h = mkhdr(2, 1, 0);
        raw_send(p->a, &h, HDR, "{}", 2, "abc", 3, NULL, 0);
        expect_badmsg(p->b);

        /* body_len huge (would overflow a size computation). */
        h = mkhdr(2, UINT64_MAX, 0);
        raw_send(p->a, &h, HDR, "{}", 2, "abc", 3, NULL, 0);
        expect_badmsg(p->b);

        /* Truncated: shorter than the header. */
        h = mkhdr(0, 0, 0);
        raw_send(p->a, &h, HDR - 1, NULL, 0, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        /* NUL byte inside the meta. */
        h = mkhdr(4, 0, 0);
        raw_send(p->a, &h, HDR, "{\0}x", 4, NULL, 0, NULL, 0);
        expect_badmsg(p->b);
}

static void test_oversized_datagram(void **state)
{
        struct pair *p = *state;
        int sz = 4 * PRIVSEP_MAX_INLINE;
        assert_int_equal(setsockopt(p->a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
        size_t body_len = PRIVSEP_MAX_INLINE;  /* hdr + meta + body > limit */
        char *body = util_xmalloc(body_len + 256);     /* the second send goes past body_len */
        memset(body, 'b', body_len + 256);
        struct privsep_hdr h = mkhdr(2, body_len, 0);
        raw_send(p->a, &h, HDR, "{}", 2, body, body_len, NULL, 0);
        expect_badmsg(p->b);   /* MSG_TRUNC */

        /* Sneakier: body_len matches what fits in the receive buffer, and
         * the datagram goes on past it.  Only MSG_TRUNC tells. */
        size_t fits = PRIVSEP_MAX_INLINE - HDR - 2;
        h = mkhdr(2, fits, 0);
        raw_send(p->a, &h, HDR, "{}", 2, body, fits + 100, NULL, 0);
        expect_badmsg(p->b);
        free(body);

        /* The channel stays usable: the next message is read whole. */
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(privsep_send(p->a, "{\"n\":2}", NULL, 0, -1, &err), 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_string_equal(m.meta, "{\"n\":2}");
        privsep_msg_clear(&m);
}

static void test_two_fds_rejected_and_closed(void **state)
{
        struct pair *p = *state;
        int before = count_fds();
        int fds[2] = { sealed_memfd(4, PRIVSEP_REQUIRED_SEALS), sealed_memfd(4, PRIVSEP_REQUIRED_SEALS) };
        struct privsep_hdr h = mkhdr(2, 4, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, fds, 2);
        close(fds[0]);
        close(fds[1]);
        assert_int_equal(count_fds(), before);
        expect_badmsg(p->b);
        /* Whatever the receiver was given, it closed again. */
        assert_int_equal(count_fds(), before);

        /* Eight fds on a message that wants none. */
        int many[8];
        for (int i = 0; i < 8; i++)
                many[i] = sealed_memfd(0, 0);
        h = mkhdr(2, 0, 0);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, many, 8);
        for (int i = 0; i < 8; i++)
                close(many[i]);
        expect_badmsg(p->b);
        assert_int_equal(count_fds(), before);
}

static void test_fd_flag_mismatch(void **state)
{
        struct pair *p = *state;
        int before = count_fds();

        /* fd attached, flag not set. */
        int fd = sealed_memfd(0, PRIVSEP_REQUIRED_SEALS);
        struct privsep_hdr h = mkhdr(2, 0, 0);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        close(fd);
        expect_badmsg(p->b);
        assert_int_equal(count_fds(), before);

        /* Flag set, no fd. */
        h = mkhdr(2, 0, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, NULL, 0);
        expect_badmsg(p->b);

        /* Flag set, fd attached, and inline body bytes as well. */
        fd = sealed_memfd(3, PRIVSEP_REQUIRED_SEALS);
        h = mkhdr(2, 3, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, "abc", 3, &fd, 1);
        close(fd);
        expect_badmsg(p->b);
        assert_int_equal(count_fds(), before);
}

static void test_body_fd_checks(void **state)
{
        struct pair *p = *state;
        int before = count_fds();

        /* Size mismatch. */
        int fd = sealed_memfd(10, PRIVSEP_REQUIRED_SEALS);
        struct privsep_hdr h = mkhdr(2, 11, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        expect_badmsg(p->b);
        h = mkhdr(2, 9, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        expect_badmsg(p->b);
        close(fd);
        assert_int_equal(count_fds(), before);

        /* Not sealed: the sender could change it after the check. */
        fd = sealed_memfd(10, 0);
        h = mkhdr(2, 10, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        expect_badmsg(p->b);
        close(fd);
        /* Only partly sealed. */
        fd = sealed_memfd(10, F_SEAL_SHRINK | F_SEAL_GROW);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        expect_badmsg(p->b);
        close(fd);
        assert_int_equal(count_fds(), before);

        /* Not a regular file: a pipe, a socket. */
        int pp[2];
        assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
        h = mkhdr(2, 0, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &pp[0], 1);
        expect_badmsg(p->b);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &p->a, 1);
        expect_badmsg(p->b);
        close(pp[0]);
        close(pp[1]);

        /* An O_PATH fd of a regular file. */
        fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        h = mkhdr(2, (uint64_t) st.st_size, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        expect_badmsg(p->b);
        close(fd);
        assert_int_equal(count_fds(), before);

        /* A correct one is accepted, and positioned at 0. */
        fd = memfd_create("ok", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_int_equal(write(fd, "0123456789", 10), 10);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, PRIVSEP_REQUIRED_SEALS), 0);
        h = mkhdr(2, 10, PRIVSEP_F_BODY_FD);
        raw_send(p->a, &h, HDR, "{}", 2, NULL, 0, &fd, 1);
        close(fd);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, NULL), 0);
        assert_int_equal(lseek(m.body_fd, 0, SEEK_CUR), 0);
        privsep_msg_clear(&m);
        assert_int_equal(count_fds(), before);
}

/* ---- channels ------------------------------------------------------------ */

static void test_channel_roundtrip(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        int before = count_fds();
        int ch[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch), 0);
        assert_int_equal(privsep_send_channel(p->a, ch[1], &err), 0);
        close(ch[1]);

        int core_end = -1;
        assert_int_equal(privsep_recv_channel(p->b, &core_end, &err), 0);
        assert_true(core_end >= 0);
        assert_true(fcntl(core_end, F_GETFD) & FD_CLOEXEC);

        /* One request, one response over the passed channel. */
        assert_int_equal(privsep_send(ch[0], "{\"op\":\"image.list\"}", NULL, 0, -1, &err), 0);
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(core_end, &m, &err), 0);
        assert_string_equal(m.meta, "{\"op\":\"image.list\"}");
        privsep_msg_clear(&m);
        assert_int_equal(privsep_send(core_end, "{\"status\":200}", "{\"images\":[]}", 13, -1, &err), 0);
        close(core_end);
        assert_int_equal(privsep_recv(ch[0], &m, &err), 0);
        assert_string_equal(m.meta, "{\"status\":200}");
        assert_string_equal(m.body, "{\"images\":[]}");
        privsep_msg_clear(&m);
        assert_int_equal(privsep_recv(ch[0], &m, &err), -ECONNRESET);
        close(ch[0]);
        assert_int_equal(count_fds(), before);

        /* EOF on the control channel. */
        close(p->a);
        p->a = -1;
        assert_int_equal(privsep_recv_channel(p->b, &core_end, &err), -ECONNRESET);
}

static void test_channel_hostile(void **state)
{
        struct pair *p = *state;
        int before = count_fds();
        int fd = -1;
        int ch[2], ch2[2], pp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch2), 0);
        assert_int_equal(pipe2(pp, O_CLOEXEC), 0);

        /* Two fds. */
        int two[2] = { ch[1], ch2[1] };
        raw_send(p->a, "R", 1, NULL, 0, NULL, 0, two, 2);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        /* Wrong byte. */
        raw_send(p->a, "X", 1, NULL, 0, NULL, 0, &ch[1], 1);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        /* No fd. */
        raw_send(p->a, "R", 1, NULL, 0, NULL, 0, NULL, 0);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        /* Longer message. */
        raw_send(p->a, "RR", 2, NULL, 0, NULL, 0, &ch[1], 1);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        /* A pipe instead of a socket. */
        raw_send(p->a, "R", 1, NULL, 0, NULL, 0, &pp[0], 1);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        /* A stream socket instead of a seqpacket one. */
        int st[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st), 0);
        raw_send(p->a, "R", 1, NULL, 0, NULL, 0, &st[0], 1);
        assert_int_equal(privsep_recv_channel(p->b, &fd, NULL), -EBADMSG);
        assert_int_equal(fd, -1);

        close(ch[0]);
        close(ch[1]);
        close(ch2[0]);
        close(ch2[1]);
        close(pp[0]);
        close(pp[1]);
        close(st[0]);
        close(st[1]);
        assert_int_equal(count_fds(), before);
}

/* ---- streams and the op table ---------------------------------------------- */

/* An event stream is several responses on one channel: a head, chunks
 * (inline, empty, through a memfd), an end; in order, each intact. */
static void test_stream_sequence(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *head = "{\"status\":200,\"stream\":true,\"content_type\":\"text/event-stream\"}";
        const char *ev = "event: stdout\ndata: {\"data\":\"a\",\"encoding\":\"utf-8\"}\n\n";
        size_t big_len = 3 * PRIVSEP_MAX_INLINE + 17;
        char *big = util_xmalloc(big_len);
        for (size_t i = 0; i < big_len; i++)
                big[i] = (char) ('a' + i % 26);
        int before = count_fds();

        assert_int_equal(privsep_send_flags(p->a, MSG_DONTWAIT, head, NULL, 0, -1, &err), 0);
        assert_int_equal(privsep_send_flags(p->a, MSG_DONTWAIT, "{\"chunk\":true}", ev, strlen(ev), -1, &err), 0);
        assert_int_equal(privsep_send_flags(p->a, MSG_DONTWAIT, "{\"chunk\":true}", "", 0, -1, &err), 0);
        assert_int_equal(privsep_send_flags(p->a, MSG_DONTWAIT, "{\"chunk\":true}", big, big_len, -1, &err), 0);
        assert_int_equal(privsep_send_flags(p->a, MSG_DONTWAIT, "{\"end\":true}", NULL, 0, -1, &err), 0);

        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), 0);
        assert_string_equal(m.meta, head);
        assert_int_equal(m.body_len, 0);
        privsep_msg_clear(&m);

        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), 0);
        assert_string_equal(m.meta, "{\"chunk\":true}");
        assert_int_equal(m.body_len, strlen(ev));
        assert_int_equal(m.body_fd, -1);
        assert_memory_equal(m.body, ev, strlen(ev));
        privsep_msg_clear(&m);

        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), 0);
        assert_string_equal(m.meta, "{\"chunk\":true}");
        assert_int_equal(m.body_len, 0);
        privsep_msg_clear(&m);

        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), 0);
        assert_int_equal(m.body_len, big_len);
        assert_true(m.body_fd >= 0);
        char *got = util_xmalloc(big_len);
        assert_int_equal(pread(m.body_fd, got, big_len, 0), (ssize_t) big_len);
        assert_memory_equal(got, big, big_len);
        free(got);
        privsep_msg_clear(&m);

        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), 0);
        assert_string_equal(m.meta, "{\"end\":true}");
        privsep_msg_clear(&m);
        assert_int_equal(privsep_recv_flags(p->b, MSG_DONTWAIT, &m, &err), -EAGAIN);
        assert_int_equal(count_fds(), before);
        free(big);
}

/* A core that closes a stream without "end": what was sent still arrives,
 * then end of file. */
static void test_stream_eof_without_end(void **state)
{
        struct pair *p = *state;
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(privsep_send(p->a, "{\"status\":200,\"stream\":true}", NULL, 0, -1, &err), 0);
        assert_int_equal(privsep_send(p->a, "{\"chunk\":true}", "x", 1, -1, &err), 0);
        close(p->a);
        p->a = -1;
        struct privsep_msg m = PRIVSEP_MSG_INIT;
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        privsep_msg_clear(&m);
        assert_int_equal(privsep_recv(p->b, &m, &err), 0);
        assert_int_equal(m.body_len, 1);
        privsep_msg_clear(&m);
        assert_int_equal(privsep_recv(p->b, &m, &err), -ECONNRESET);
        assert_int_equal(privsep_recv(p->b, &m, &err), -ECONNRESET);
}

/* The op table the api routes to: names unique, lowercase "word.word". */
static void test_op_names(void **state)
{
        (void) state;
        static const char *const names[] = {
#define X(id, name) name,
                PRIVSEP_OPS(X)
#undef X
        };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                assert_true(strlen(names[i]) > 0 && strlen(names[i]) < 32);
                assert_int_equal(strspn(names[i], "abcdefghijklmnopqrstuvwxyz."), strlen(names[i]));
                assert_true(names[i][0] != '.' && names[i][strlen(names[i]) - 1] != '.');
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(names[i], names[j]);
        }
        /* The issue-3 operations the core dispatches. */
        static const char *const wanted[] = { "exec.list", "exec.get", "exec.events", "exec.stdin", "exec.kill",
                                              "sandbox.keepalive", "files.put", "files.get", "files.list",
                                              "archive.put", "archive.get", "run", "health", "metrics" };
        for (size_t w = 0; w < ARRAY_SIZE(wanted); w++) {
                bool found = false;
                for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                        found = found || !strcmp(names[i], wanted[w]);
                assert_true(found);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_inline_small, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_inline_exact_limit, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_large_memfd, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_explicit_body_fd, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_send_meta_too_long, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_eof_and_eagain, setup_pair, teardown_pair),
                cmocka_unit_test(test_msg_clear_zero_init),
                cmocka_unit_test_setup_teardown(test_bad_magic_version_flags, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_bad_lengths, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_oversized_datagram, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_two_fds_rejected_and_closed, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_fd_flag_mismatch, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_body_fd_checks, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_channel_roundtrip, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_channel_hostile, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_stream_sequence, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_stream_eof_without_end, setup_pair, teardown_pair),
                cmocka_unit_test(test_op_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
