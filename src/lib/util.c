/* util.c — implementation of the helpers declared in util.h. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

void util_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

void *util_xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                abort();
        return p;
}

void *util_xcalloc(size_t n, size_t m)
{
        void *p = calloc(n ? n : 1, m ? m : 1);
        if (!p)
                abort();
        return p;
}

void *util_xrealloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);
        if (!q)
                abort();
        return q;
}

char *util_xstrdup(const char *s)
{
        char *p = strdup(s);
        if (!p)
                abort();
        return p;
}

char *util_xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                abort();
        return s;
}

size_t util_strv_len(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

char **util_strv_dup(char *const *v)
{
        size_t n = util_strv_len(v);
        char **r = util_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                r[i] = util_xstrdup(v[i]);
        return r;
}

int util_write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int util_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

int util_read_all(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
        size_t cap = 4096, len = 0;
        char *buf = util_xmalloc(cap + 1);
        for (;;) {
                if (len == cap) {
                        if (cap >= max + 1) {
                                free(buf);
                                return -EFBIG;
                        }
                        cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                        buf = util_xrealloc(buf, cap + 1);
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        free(buf);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max) {
                        free(buf);
                        return -EFBIG;
                }
        }
        buf[len] = '\0';
        *ret_buf = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int util_read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len,
                      struct pbox_error *err)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s", path);
        int r = util_read_all(fd, max, ret_buf, ret_len);
        if (r < 0)
                return pbox_error_sys(err, -r, "read %s", path);
        return 0;
}

int util_write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
                              mode_t mode, struct pbox_error *err)
{
        char suffix[17];
        util_random_hex(suffix, 8);
        _cleanup_free_ char *tmp = util_xasprintf(".%s.tmp-%s", name, suffix);
        if (strchr(name, '/'))
                return pbox_error_set(err, EINVAL, "atomic write: '%s' is not a plain name", name);
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return pbox_error_sys(err, errno, "create %s", tmp);
        int r = util_write_all(fd, data, len);
        if (r == 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dirfd, tmp, 0);
                return pbox_error_sys(err, -r, "write %s", name);
        }
        fsync(dirfd);
        return 0;
}

int util_mkdir_p(const char *path, mode_t mode, struct pbox_error *err)
{
        _cleanup_free_ char *p = util_xstrdup(path);
        for (char *s = p + 1; ; s++) {
                if (*s == '/' || *s == '\0') {
                        char c = *s;
                        *s = '\0';
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return pbox_error_sys(err, errno, "mkdir %s", p);
                        *s = c;
                        if (c == '\0')
                                break;
                }
        }
        struct stat st;
        if (stat(path, &st) < 0)
                return pbox_error_sys(err, errno, "stat %s", path);
        if (!S_ISDIR(st.st_mode))
                return pbox_error_set(err, ENOTDIR, "%s is not a directory", path);
        return 0;
}

static int rm_rf_children(int dfd, dev_t dev, int depth, struct pbox_error *err)
{
        if (depth > 4096)
                return pbox_error_set(err, ELOOP, "directory tree too deep");
        int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return pbox_error_sys(err, errno, "dup");
        DIR *d = fdopendir(dup_fd);
        if (!d) {
                close(dup_fd);
                return pbox_error_sys(err, errno, "opendir");
        }
        int ret = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        ret = pbox_error_sys(err, errno, "stat %s", de->d_name);
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        if (st.st_dev != dev) {
                                ret = pbox_error_set(err, EBUSY, "%s is a mount point", de->d_name);
                                break;
                        }
                        int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (cfd < 0) {
                                ret = pbox_error_sys(err, errno, "open %s", de->d_name);
                                break;
                        }
                        ret = rm_rf_children(cfd, dev, depth + 1, err);
                        close(cfd);
                        if (ret < 0)
                                break;
                        if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                                ret = pbox_error_sys(err, errno, "rmdir %s", de->d_name);
                                break;
                        }
                } else if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
                        ret = pbox_error_sys(err, errno, "unlink %s", de->d_name);
                        break;
                }
        }
        closedir(d);
        return ret;
}

int util_rm_rf_at(int dirfd, const char *name, struct pbox_error *err)
{
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pbox_error_sys(err, errno, "stat %s", name);
        }
        if (!S_ISDIR(st.st_mode)) {
                if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                        return pbox_error_sys(err, errno, "unlink %s", name);
                return 0;
        }
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s", name);
        int r = rm_rf_children(fd, st.st_dev, 0, err);
        if (r < 0)
                return pbox_error_prefix(err, "remove %s", name);
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return pbox_error_sys(err, errno, "rmdir %s", name);
        return 0;
}

int util_random_hex(char *out, size_t nbytes)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char buf[64];
        if (nbytes > sizeof buf)
                nbytes = sizeof buf;
        size_t got = 0;
        while (got < nbytes) {
                ssize_t n = getrandom(buf + got, nbytes - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        abort();
                }
                got += (size_t) n;
        }
        for (size_t i = 0; i < nbytes; i++) {
                out[2 * i] = hex[buf[i] >> 4];
                out[2 * i + 1] = hex[buf[i] & 15];
        }
        out[2 * nbytes] = '\0';
        return 0;
}

uint64_t util_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

uint64_t util_realtime_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void util_format_time(uint64_t realtime_ms, char *buf, size_t len)
{
        time_t t = (time_t) (realtime_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char base[24];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%s.%03uZ", base, (unsigned) (realtime_ms % 1000));
}

bool util_is_hex(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        return true;
}

bool util_secure_streq(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        unsigned char diff = (unsigned char) (la != lb);
        size_t n = la < lb ? la : lb;
        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char) (a[i] ^ b[i]);
        return diff == 0;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *util_base64_encode(const void *data, size_t len)
{
        const unsigned char *in = data;
        char *out = util_xmalloc(4 * ((len + 2) / 3) + 1);
        size_t o = 0, i = 0;
        for (; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
                out[o++] = b64chars[v >> 18 & 63];
                out[o++] = b64chars[v >> 12 & 63];
                out[o++] = b64chars[v >> 6 & 63];
                out[o++] = b64chars[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < len ? (uint32_t) in[i + 1] << 8 : 0);
                out[o++] = b64chars[v >> 18 & 63];
                out[o++] = b64chars[v >> 12 & 63];
                out[o++] = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
                out[o++] = '=';
        }
        out[o] = '\0';
        return out;
}

static int b64val(char c)
{
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
}

int util_base64_decode(const char *in, size_t in_len, unsigned char **ret, size_t *ret_len)
{
        if (in_len % 4 != 0)
                return -EINVAL;
        unsigned char *out = util_xmalloc(in_len / 4 * 3 + 1);
        size_t o = 0;
        for (size_t i = 0; i < in_len; i += 4) {
                int v[4];
                for (int k = 0; k < 4; k++) {
                        char c = in[i + k];
                        if (c == '=' && i + 4 == in_len && k >= 2)
                                v[k] = -2;
                        else if ((v[k] = b64val(c)) < 0)
                                goto bad;
                }
                if (v[0] < 0 || v[1] < 0 || (v[2] == -2 && v[3] != -2))
                        goto bad;
                uint32_t x = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 |
                             (uint32_t) (v[2] < 0 ? 0 : v[2]) << 6 | (uint32_t) (v[3] < 0 ? 0 : v[3]);
                out[o++] = (unsigned char) (x >> 16);
                if (v[2] >= 0)
                        out[o++] = (unsigned char) (x >> 8);
                if (v[3] >= 0)
                        out[o++] = (unsigned char) x;
        }
        out[o] = 0;
        *ret = out;
        *ret_len = o;
        return 0;
bad:
        free(out);
        return -EINVAL;
}

bool util_utf8_valid(const char *buf, size_t len)
{
        const unsigned char *s = (const unsigned char *) buf;
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                if (c == 0)
                        return false;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t n;
                uint32_t cp;
                if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
                else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
                else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
                else return false;
                for (size_t k = 1; k <= n; k++) {
                        if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}

bool util_is_mount_point(const char *dir)
{
        struct stat st, parent;
        _cleanup_free_ char *up = util_xasprintf("%s/..", dir);
        if (stat(dir, &st) < 0 || stat(up, &parent) < 0)
                return false;
        return st.st_dev != parent.st_dev;
}
