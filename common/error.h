/*
 * error.h - the error convention of rbdsnap.
 *
 * Functions return 0 or a negative errno (librbd's convention) and, when the
 * caller passes an rs_error, fill it once, at the failure site, with a
 * message naming the object (pool/image@snap, METHOD URL, file:line key).
 * Callers may add context in front with rs_error_prefix().  The top level
 * (HTTP handler, CLI, worker) logs once and maps the code.
 */
#ifndef RS_COMMON_ERROR_H
#define RS_COMMON_ERROR_H

#include <stdbool.h>

#define RS_ERROR_MSG_MAX 1024

typedef struct rs_error {
    int code;                     /* negative errno, 0 when no error */
    char msg[RS_ERROR_MSG_MAX];
} rs_error;

#define RS_ERROR_INIT { 0, { 0 } }

/* Record an error (if none is recorded yet) and return @code (negative).
 * @err may be NULL.  A positive code is flipped to negative, 0 becomes -EIO. */
int rs_error_set(rs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replace whatever is recorded. */
int rs_error_reset(rs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend context: "ctx: old message". */
void rs_error_prefix(rs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rs_error_clear(rs_error *err);
bool rs_error_isset(const rs_error *err);
/* The message, or strerror(-code) if none was given. Never NULL. */
const char *rs_error_msg(const rs_error *err);
/* Symbolic name of a negative errno ("ENOENT"), or "E?" */
const char *rs_errno_name(int code);

#endif
