/* error.h — the one error contract of libpbox.
 *
 * A function that can fail returns a negative errno-style int and, when the
 * caller passed a struct pbox_error, fills it with the code and a message.
 * Callers add context with pbox_error_prefix().  The library never logs above
 * debug and never exits; the daemon decides what to do with an error.
 * The message lives in the struct itself, so setting an error never allocates
 * and never fails.  Cleanup paths must not overwrite a first error: they use a
 * scratch struct or none at all. */
#pragma once

#include <stddef.h>

#define PBOX_ERROR_MAX 1024

struct pbox_error {
        int code;                       /* positive errno value, 0 when unset */
        char message[PBOX_ERROR_MAX];
};

#define PBOX_ERROR_INIT { 0, { 0 } }

/* Sets the error (code, formatted message) and returns -code.  err may be NULL. */
int pbox_error_set(struct pbox_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like pbox_error_set, and appends ": <strerror(code)>". */
int pbox_error_sys(struct pbox_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prepends "<context>: " to the message of a set error.  Returns -err->code
 * (or -EIO if err is unset), so it can end a failure path in one statement. */
int pbox_error_prefix(struct pbox_error *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

void pbox_error_clear(struct pbox_error *err);
