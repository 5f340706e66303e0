/*
 * rbdurl.c - Glance's rbd:// location URLs and percent-quoting.
 *
 * glance_store writes rbd://<fsid>/<pool>/<image>/<snap> with every part
 * passed through urllib.parse.quote(); parsing unquotes each part.  We
 * quote everything but the RFC 3986 unreserved characters, which is what
 * quote() does for the characters Ceph allows in these names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glance/glance-priv.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

char *rs_percent_quote(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    char *out, *o;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += unreserved(*p) ? 1 : 3;
    out = malloc(n + 1);
    if (!out)
        return NULL;
    o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rs_percent_unquote(const char *s, size_t len, char **out)
{
    char *r = malloc(len + 1), *o = r;

    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(r);
            return -EINVAL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    *out = r;
    return 0;
}

int rs_rbd_url_format(const char *fsid, const char *pool, const char *image, const char *snap,
                      char **out, rs_error *err)
{
    const char *parts[4] = { fsid, pool, image, snap };
    char *q[4] = { NULL, NULL, NULL, NULL };
    int rc = 0;

    *out = NULL;
    for (int i = 0; i < 4; i++) {
        if (!parts[i] || !parts[i][0]) {
            rc = rs_error_set(err, -EINVAL, "rbd url: empty %s",
                              (const char *[]){ "fsid", "pool", "image", "snap" }[i]);
            goto out;
        }
        q[i] = rs_percent_quote(parts[i]);
        if (!q[i]) {
            rc = rs_error_set(err, -ENOMEM, "rbd url: out of memory");
            goto out;
        }
    }
    if (asprintf(out, "rbd://%s/%s/%s/%s", q[0], q[1], q[2], q[3]) < 0) {
        *out = NULL;
        rc = rs_error_set(err, -ENOMEM, "rbd url: out of memory");
    }
out:
    for (int i = 0; i < 4; i++)
        free(q[i]);
    return rc;
}

void rs_rbd_url_clear(rs_rbd_url *u)
{
    if (!u)
        return;
    free(u->fsid);
    free(u->pool);
    free(u->image);
    free(u->snap);
    memset(u, 0, sizeof(*u));
}

int rs_rbd_url_parse(const char *url, rs_rbd_url *out, rs_error *err)
{
    char **fields[4] = { &out->fsid, &out->pool, &out->image, &out->snap };
    const char *p, *slash;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!url || strncmp(url, "rbd://", 6))
        return rs_error_set(err, -EINVAL, "not an rbd:// URL: '%s'", url ? url : "(null)");
    p = url + 6;
    for (int i = 0; i < 4; i++) {
        slash = strchr(p, '/');
        if ((i < 3 && !slash) || (i == 3 && slash)) {
            rs_rbd_url_clear(out);
            return rs_error_set(err, -EINVAL,
                                "rbd URL '%s': want rbd://<fsid>/<pool>/<image>/<snap>", url);
        }
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0) {
            rs_rbd_url_clear(out);
            return rs_error_set(err, -EINVAL, "rbd URL '%s': empty part", url);
        }
        rc = rs_percent_unquote(p, len, fields[i]);
        if (rc < 0) {
            rs_rbd_url_clear(out);
            return rs_error_set(err, rc, "rbd URL '%s': bad percent escape", url);
        }
        p = slash ? slash + 1 : p + len;
    }
    return 0;
}
