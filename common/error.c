#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int normalise(int code)
{
    if (code > 0)
        return -code;
    if (code == 0)
        return -EIO;
    return code;
}

static int vset(rs_error *err, int code, const char *fmt, va_list ap)
{
    code = normalise(code);
    if (!err)
        return code;
    err->code = code;
    if (fmt)
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    else
        err->msg[0] = '\0';
    return code;
}

int rs_error_set(rs_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err && err->code != 0)
        return normalise(code);
    va_start(ap, fmt);
    code = vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int rs_error_reset(rs_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    code = vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void rs_error_prefix(rs_error *err, const char *fmt, ...)
{
    char ctx[RS_ERROR_MSG_MAX];
    char old[RS_ERROR_MSG_MAX];
    va_list ap;

    if (!err || err->code == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    char both[2 * RS_ERROR_MSG_MAX + 4];
    snprintf(old, sizeof(old), "%s", rs_error_msg(err));
    snprintf(both, sizeof(both), "%s: %s", ctx, old);
    memcpy(err->msg, both, sizeof(err->msg) - 1);
    err->msg[sizeof(err->msg) - 1] = '\0';
}

void rs_error_clear(rs_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

bool rs_error_isset(const rs_error *err) { return err && err->code != 0; }

const char *rs_error_msg(const rs_error *err)
{
    if (!err || err->code == 0)
        return "success";
    if (err->msg[0])
        return err->msg;
    return strerror(-err->code);
}

const char *rs_errno_name(int code)
{
    switch (-code) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case EINVAL: return "EINVAL";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ERANGE: return "ERANGE";
    case EDQUOT: return "EDQUOT";
    case ENOTSUP: return "ENOTSUP";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ECANCELED: return "ECANCELED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EAGAIN: return "EAGAIN";
    case ESHUTDOWN: return "ESHUTDOWN";
    case EPROTO: return "EPROTO";
    case EBADMSG: return "EBADMSG";
    case ENODATA: return "ENODATA";
    case ENOTCONN: return "ENOTCONN";
    case ESTALE: return "ESTALE";
    default: return "E?";
    }
}
