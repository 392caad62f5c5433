/* error.c — the struct pbox_error helpers (see error.h for the contract). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static int error_vset(struct pbox_error *err, int code, int with_strerror, const char *fmt, va_list ap)
{
        if (code <= 0)
                code = EIO;
        if (!err)
                return -code;
        err->code = code;
        int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
        if (n < 0)
                n = 0;
        if (with_strerror && (size_t) n < sizeof err->message) {
                char buf[128];
                const char *s = strerror_r(code, buf, sizeof buf);
                snprintf(err->message + n, sizeof err->message - (size_t) n, ": %s", s);
        }
        return -code;
}

int pbox_error_set(struct pbox_error *err, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = error_vset(err, code, 0, fmt, ap);
        va_end(ap);
        return r;
}

int pbox_error_sys(struct pbox_error *err, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = error_vset(err, code, 1, fmt, ap);
        va_end(ap);
        return r;
}

int pbox_error_prefix(struct pbox_error *err, const char *fmt, ...)
{
        if (!err)
                return -EIO;
        if (err->code == 0)
                err->code = EIO;
        char prefix[PBOX_ERROR_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        char old[PBOX_ERROR_MAX];
        memcpy(old, err->message, sizeof old);
        old[sizeof old - 1] = '\0';
        snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
        return -err->code;
}

void pbox_error_clear(struct pbox_error *err)
{
        if (!err)
                return;
        err->code = 0;
        err->message[0] = '\0';
}
