/*
 * fuzz_glance_response.c - libFuzzer target: everything glance/ reads from
 * a Glance or Keystone answer.
 *
 * The first byte picks the Content-Type used for the error-message
 * extractor; the rest is the body.  The body goes through:
 *   - rs_http_error_message (JSON, webob HTML, plain text error bodies);
 *   - JSON decoding, then the image record parser (a single image and the
 *     "images" array of a listing), the Keystone token parser and the
 *     service catalog lookup (as for a token answer);
 *   - Retry-After and RFC 3339 time parsing on the body as a header value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "glance/glance-priv.h"
#include "glance/glance.h"

static const char *const ctypes[] = {
    "application/json", "text/html; charset=UTF-8", "text/plain", NULL,
};

static void image(const json_t *j)
{
    rs_glance_image *img = NULL;
    rs_error err = RS_ERROR_INIT;
    if (rs_glance_image_from_json(j, &img, &err) == 0) {
        (void)rs_glance_image_prop(img, "image_type");
        (void)rs_glance_image_prop(img, "rbdsnap_job_id");
        rs_glance_image_free(img);
    } else if (!rs_error_isset(&err)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *ctype = ctypes[data[0] % (sizeof(ctypes) / sizeof(ctypes[0]))];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    char msg[512];
    rs_http_error_message(body, len, ctype, msg, sizeof(msg));
    if (strnlen(msg, sizeof(msg)) >= sizeof(msg))
        abort();
    char tiny[4];
    rs_http_error_message(body, len, ctype, tiny, sizeof(tiny));

    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (root) {
        image(root);
        json_t *images = json_object_get(root, "images");
        size_t i;
        json_t *v;
        json_array_foreach(images, i, v) image(v);

        rs_token_info ti;
        memset(&ti, 0, sizeof(ti));
        rs_error err = RS_ERROR_INIT;
        if (rs_keystone_token_info_parse(root, &ti, &err) == 0)
            (void)rs_token_info_has_role(&ti, "admin");
        rs_token_info_clear(&ti);
        const json_t *tok = json_object_get(root, "token");
        if (tok) {
            static const char *const ifaces[] = { "public", "internal", "admin" };
            for (size_t k = 0; k < 3; k++) {
                char *url = NULL;
                rs_error e2 = RS_ERROR_INIT;
                if (rs_keystone_catalog_find(tok, "image", ifaces[k], k ? "RegionOne" : NULL,
                                             &url, &e2) == 0)
                    free(url);
            }
        }
        json_decref(root);
    }

    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, body, len);
    s[len] = '\0';
    (void)rs_http_parse_retry_after(s, 1764871391);
    int64_t t;
    (void)rs_keystone_parse_time(s, &t);
    free(s);
    return 0;
}
