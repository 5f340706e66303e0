/*
 * fuzz_rbd_url.c - libFuzzer target: rbd:// location URLs (glance/rbdurl.c).
 *
 * Parses the input as a URL; whatever parses must format back to a URL
 * that parses to the same four parts (round trip), and percent-unquoting
 * must never read past its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glance/glance-priv.h"
#include "glance/glance.h"

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Unquote straight from the fuzzer's buffer: no terminator, so ASan
     * catches any read past @size. */
    char *raw = NULL;
    if (rs_percent_unquote((const char *)data, size, &raw) == 0)
        free(raw);

    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    rs_rbd_url u = { 0 };
    rs_error err = RS_ERROR_INIT;
    if (rs_rbd_url_parse(url, &u, &err) == 0) {
        char *again = NULL;
        rs_error err2 = RS_ERROR_INIT;
        if (rs_rbd_url_format(u.fsid, u.pool, u.image, u.snap, &again, &err2) == 0) {
            rs_rbd_url v = { 0 };
            rs_error err3 = RS_ERROR_INIT;
            if (rs_rbd_url_parse(again, &v, &err3) != 0)
                abort();    /* what we format, we must parse */
            if (!same(u.fsid, v.fsid) || !same(u.pool, v.pool) || !same(u.image, v.image) ||
                !same(u.snap, v.snap))
                abort();    /* round trip changed a part */
            rs_rbd_url_clear(&v);
            free(again);
        }
        rs_rbd_url_clear(&u);
    } else if (!rs_error_isset(&err)) {
        abort();
    }
    char *q = rs_percent_quote(url);
    if (q) {
        char *back = NULL;
        if (rs_percent_unquote(q, strlen(q), &back) == 0) {
            if (strcmp(back, url) != 0)
                abort();    /* quote/unquote must be lossless */
            free(back);
        }
        free(q);
    }
    free(url);
    return 0;
}
