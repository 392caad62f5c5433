/* util.h — small helpers every module uses: cleanup attributes and ownership
 * hand-off, whole-buffer I/O, atomic file writes, safe recursive removal,
 * random ids and clocks.  Nothing here logs. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"

/* ---- cleanup attributes ------------------------------------------------ */
static inline void util_freep(void *p) { free(*(void **) p); }
static inline void util_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
static inline void util_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
void util_strv_free(char **v);
static inline void util_strv_freep(char ***v) { util_strv_free(*v); }

#define _cleanup_free_ __attribute__((cleanup(util_freep)))
#define _cleanup_close_ __attribute__((cleanup(util_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(util_fclosep)))
#define _cleanup_strv_ __attribute__((cleanup(util_strv_freep)))

/* Explicit ownership hand-off out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- memory ------------------------------------------------------------- */
/* Allocation failure is not recoverable in a useful way here; these abort. */
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t m);
void *util_xrealloc(void *p, size_t n);
char *util_xstrdup(const char *s);
char *util_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
size_t util_strv_len(char *const *v);
char **util_strv_dup(char *const *v);

/* ---- I/O ---------------------------------------------------------------- */
/* Write all of buf, retrying on EINTR/short writes.  Returns 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);
/* The same at an offset (pwrite), leaving the file offset alone. */
int util_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Read until EOF, at most max bytes (-EFBIG past that).  *ret_buf is
 * NUL-terminated (not counted in *ret_len). */
int util_read_all(int fd, size_t max, char **ret_buf, size_t *ret_len);
int util_read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len,
                      struct pbox_error *err);
/* Atomically replace dirfd/name: write a temporary file, fsync, rename, fsync dir. */
int util_write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
                              mode_t mode, struct pbox_error *err);
/* mkdir -p (plain paths owned by the daemon, not paths inside a rootfs). */
int util_mkdir_p(const char *path, mode_t mode, struct pbox_error *err);
/* Remove dirfd/name recursively.  Never follows symlinks, never crosses a
 * mount point (EBUSY-like failure instead).  A missing name is success. */
int util_rm_rf_at(int dirfd, const char *name, struct pbox_error *err);

/* ---- misc --------------------------------------------------------------- */
/* Fill out with 2*nbytes lowercase hex chars from getrandom(2), NUL-terminated. */
int util_random_hex(char *out, size_t nbytes);
uint64_t util_now_ms(void);            /* CLOCK_MONOTONIC */
uint64_t util_realtime_ms(void);       /* CLOCK_REALTIME */
/* RFC 3339 UTC timestamp into buf (>= 32 bytes). */
void util_format_time(uint64_t realtime_ms, char *buf, size_t len);
bool util_is_hex(const char *s, size_t len);
/* A file system is mounted right at dir (dir and dir/.. are on different
 * devices), not merely the one dir lives on. */
bool util_is_mount_point(const char *dir);
/* Constant-time comparison of two strings (length leaks, contents do not). */
bool util_secure_streq(const char *a, const char *b);
/* Base64 (RFC 4648, with padding). encode never fails; decode returns -EINVAL on bad input. */
char *util_base64_encode(const void *data, size_t len);
int util_base64_decode(const char *in, size_t in_len, unsigned char **ret, size_t *ret_len);
/* True when buf[0..len) is valid UTF-8 without NUL bytes. */
bool util_utf8_valid(const char *buf, size_t len);
