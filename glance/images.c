/*
 * images.c - Glance v2 image operations: discovery, create, locations,
 * upload, get, list, update, delete, wait.
 *
 * Each function builds its JSON here, sends it through rs_glance_request()
 * (token, 401 renewal, retry policy, error text) and parses the answer into
 * plain C structures, so nothing above glance/ sees jansson or curl.
 */
#define RS_LOG_MODULE "glance"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "glance/glance-priv.h"

#define JSON_PATCH_TYPE "application/openstack-images-v2.1-json-patch"

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Parse a 2xx answer; on failure name the request and the status. */
static json_t *load_body(const rs_http_resp *resp, rs_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(resp->body ? resp->body : "", resp->len, 0, &jerr);

    if (!root || !json_is_object(root)) {
        json_decref(root);
        rs_error_set(err, -EBADMSG, "%s %s: HTTP %ld: Glance answered bad JSON (%s)",
                     resp->method ? resp->method : "?", resp->url ? resp->url : "?",
                     resp->status, root ? "not an object" : jerr.text);
        return NULL;
    }
    return root;
}

/* ---- discovery -------------------------------------------------------- */

static int parse_versions(const json_t *root, int *minor)
{
    const json_t *vs = json_object_get(root, "versions"), *v;
    size_t i;
    int best = -1;

    json_array_foreach(vs, i, v) {
        const char *id = jstr(v, "id");
        const char *st = jstr(v, "status");
        int maj, min;
        if (!id || sscanf(id, "v%d.%d", &maj, &min) != 2 || maj != 2)
            continue;
        if (st && strcmp(st, "CURRENT") && strcmp(st, "SUPPORTED"))
            continue;
        if (min > best)
            best = min;
    }
    if (best < 0)
        return -ENOENT;
    *minor = best;
    return 0;
}

int rs_glance_discover(rs_glance *g, rs_error *err)
{
    rs_http_req req = { .method = "GET" };
    rs_http_resp resp;
    rs_error e = RS_ERROR_INIT;
    json_t *root = NULL;
    int minor = -1, rc;

    rc = rs_glance_request(g, &req, "/versions", &resp, &e);
    /* older servers only answer "/" (300 Multiple Choices) */
    if (rc < 0 && resp.status == 404) {
        rs_http_resp_clear(&resp);
        rs_error_clear(&e);
        rc = rs_glance_request(g, &req, "/", &resp, &e);
    }
    if (rc < 0 && resp.status == 300)
        rc = 0;
    if (rc < 0) {
        rs_error_set(err, rc, "version discovery: %s", e.msg);
        goto out;
    }
    root = load_body(&resp, err);
    if (!root) {
        rc = -EBADMSG;
        goto out;
    }
    if (parse_versions(root, &minor) < 0) {
        rc = rs_error_set(err, -EPROTO, "GET /versions: the server offers no Image API v2");
        goto out;
    }
    pthread_mutex_lock(&g->lock);
    g->api_minor = minor;
    pthread_mutex_unlock(&g->lock);
    rs_info("glance api_version=2.%d locations_api=%s", minor, minor >= 17 ? "yes" : "no");
out:
    json_decref(root);
    rs_http_resp_clear(&resp);
    return rc;
}

bool rs_glance_has_locations_api(rs_glance *g)
{
    pthread_mutex_lock(&g->lock);
    bool r = g->api_minor >= 17 && !g->locations_api_denied;
    pthread_mutex_unlock(&g->lock);
    return r;
}

void rs_glance_api_version(rs_glance *g, char *buf, size_t len)
{
    pthread_mutex_lock(&g->lock);
    int m = g->api_minor;
    pthread_mutex_unlock(&g->lock);
    if (m < 0)
        snprintf(buf, len, "%s", "");
    else
        snprintf(buf, len, "2.%d", m);
}

/* ---- image records ------------------------------------------------------ */

static const char *const core_keys[] = {
    "id", "name", "status", "size", "virtual_size", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "visibility", "protected", "os_hidden", "disk_format",
    "container_format", "min_disk", "min_ram", "tags", "created_at", "updated_at",
    "self", "file", "schema", "direct_url", "locations", "stores", NULL,
};

static bool is_core(const char *k)
{
    for (size_t i = 0; core_keys[i]; i++)
        if (!strcmp(core_keys[i], k))
            return true;
    return false;
}

void rs_glance_image_free(rs_glance_image *img)
{
    if (!img)
        return;
    char **s[] = { &img->id, &img->name, &img->status, &img->checksum, &img->owner,
                   &img->visibility, &img->disk_format, &img->container_format,
                   &img->direct_url, &img->created_at, &img->updated_at };
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        free(*s[i]);
    for (size_t i = 0; i < img->nprops; i++) {
        free((char *)img->props[i].key);
        free((char *)img->props[i].value);
    }
    free(img->props);
    for (size_t i = 0; i < img->nlocations; i++)
        free(img->locations[i]);
    free(img->locations);
    free(img);
}

const char *rs_glance_image_prop(const rs_glance_image *img, const char *key)
{
    for (size_t i = 0; img && i < img->nprops; i++)
        if (!strcmp(img->props[i].key, key))
            return img->props[i].value;
    return NULL;
}

static bool dup_field(char **dst, const json_t *o, const char *key)
{
    const char *v = jstr(o, key);
    if (!v)
        return true;
    *dst = strdup(v);
    return *dst != NULL;
}

int rs_glance_image_from_json(const json_t *j, rs_glance_image **out, rs_error *err)
{
    rs_glance_image *img;
    const char *k;
    json_t *v;
    size_t i;
    bool ok = true;

    *out = NULL;
    if (!json_is_object(j) || !jstr(j, "id"))
        return rs_error_set(err, -EBADMSG, "Glance image record without an id");
    img = calloc(1, sizeof(*img));
    if (!img)
        return rs_error_set(err, -ENOMEM, "image: out of memory");
    ok = ok && dup_field(&img->id, j, "id");
    ok = ok && dup_field(&img->name, j, "name");
    ok = ok && dup_field(&img->status, j, "status");
    ok = ok && dup_field(&img->checksum, j, "checksum");
    ok = ok && dup_field(&img->owner, j, "owner");
    ok = ok && dup_field(&img->visibility, j, "visibility");
    ok = ok && dup_field(&img->disk_format, j, "disk_format");
    ok = ok && dup_field(&img->container_format, j, "container_format");
    ok = ok && dup_field(&img->direct_url, j, "direct_url");
    ok = ok && dup_field(&img->created_at, j, "created_at");
    ok = ok && dup_field(&img->updated_at, j, "updated_at");
    v = json_object_get(j, "size");
    img->size = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;

    img->props = calloc(json_object_size(j) + 1, sizeof(rs_kv));
    ok = ok && img->props;
    if (ok) {
        json_object_foreach((json_t *)j, k, v) {
            if (is_core(k) || !json_is_string(v))
                continue;
            char *kk = strdup(k), *vv = strdup(json_string_value(v));
            if (!kk || !vv) {
                free(kk);
                free(vv);
                ok = false;
                break;
            }
            img->props[img->nprops].key = kk;
            img->props[img->nprops].value = vv;
            img->nprops++;
        }
    }
    const json_t *locs = json_object_get(j, "locations");
    if (ok && json_is_array(locs)) {
        img->locations = calloc(json_array_size(locs) + 1, sizeof(char *));
        ok = img->locations != NULL;
        json_array_foreach(locs, i, v) {
            const char *u = jstr(v, "url");
            if (!ok || !u)
                continue;
            img->locations[img->nlocations] = strdup(u);
            if (!img->locations[img->nlocations])
                ok = false;
            else
                img->nlocations++;
        }
    }
    if (!ok) {
        rs_glance_image_free(img);
        return rs_error_set(err, -ENOMEM, "image: out of memory");
    }
    *out = img;
    return 0;
}

/* ---- create ------------------------------------------------------------- */

static int set_str(json_t *o, const char *k, const char *v)
{
    if (!v)
        return 0;
    return json_object_set_new(o, k, json_string(v));
}

int rs_glance_image_create(rs_glance *g, const rs_glance_image_spec *spec, char **id_out,
                           rs_error *err)
{
    json_t *body = json_object();
    json_t *root = NULL;
    char *s = NULL;
    rs_http_resp resp = { 0 };
    int rc = 0, bad = 0;

    if (id_out)
        *id_out = NULL;
    if (!body)
        return rs_error_set(err, -ENOMEM, "image create: out of memory");
    if (spec->id && !rs_is_uuid(spec->id)) {
        rc = rs_error_set(err, -EINVAL, "image create: id '%s' is not a UUID", spec->id);
        goto out;
    }
    bad |= set_str(body, "id", spec->id);
    bad |= set_str(body, "name", spec->name);
    bad |= set_str(body, "disk_format", spec->disk_format ? spec->disk_format : "raw");
    bad |= set_str(body, "container_format",
                   spec->container_format ? spec->container_format : "bare");
    bad |= set_str(body, "visibility", spec->visibility ? spec->visibility : "private");
    if (spec->snapshot) {
        bad |= set_str(body, "image_type", "snapshot");
        bad |= set_str(body, "image_location", "snapshot");
        bad |= set_str(body, "image_state", "available");
        bad |= set_str(body, "instance_uuid", spec->instance_uuid);
        bad |= set_str(body, "base_image_ref", spec->base_image_ref);
        bad |= set_str(body, "owner_id", spec->owner_id);
        bad |= set_str(body, "user_id", spec->user_id);
    }
    for (size_t i = 0; i < spec->nextra; i++) {
        if (!spec->extra[i].key || !spec->extra[i].value) {
            rc = rs_error_set(err, -EINVAL, "image create: extra property %zu without key/value", i);
            goto out;
        }
        bad |= set_str(body, spec->extra[i].key, spec->extra[i].value);
    }
    s = bad ? NULL : json_dumps(body, JSON_COMPACT);
    if (!s) {
        rc = rs_error_set(err, -ENOMEM, "image create: out of memory");
        goto out;
    }
    rs_http_req req = {
        .method = "POST", .content_type = "application/json", .body = s,
        .body_len = strlen(s), .conflict_errno = -EEXIST,
    };
    rc = rs_glance_request(g, &req, "/v2/images", &resp, err);
    if (rc < 0)
        goto out;
    root = load_body(&resp, err);
    const char *id = root ? jstr(root, "id") : NULL;
    if (!id) {
        rc = rs_error_set(err, -EBADMSG, "POST %s: answer without an image id", resp.url ? resp.url : "/v2/images");
        goto out;
    }
    rs_info("image created image_id=%s name=%s", id, spec->name ? spec->name : "-");
    if (id_out) {
        *id_out = strdup(id);
        if (!*id_out)
            rc = rs_error_set(err, -ENOMEM, "image create: out of memory");
    }
out:
    json_decref(root);
    json_decref(body);
    free(s);
    rs_http_resp_clear(&resp);
    return rc;
}

/* ---- locations --------------------------------------------------------- */

static char *image_path(const char *id, const char *suffix)
{
    rs_autofree char *q = rs_percent_quote(id);
    if (!q)
        return NULL;
    return rs_strdup_printf("/v2/images/%s%s", q, suffix ? suffix : "");
}

static int add_location_patch(rs_glance *g, const char *id, const char *url, rs_error *err)
{
    rs_autofree char *path = image_path(id, NULL);
    json_t *body = json_pack("[{s:s, s:s, s:{s:s, s:{}}}]", "op", "add", "path", "/locations/-",
                             "value", "url", url, "metadata");
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rs_http_resp resp = { 0 };
    int rc;

    json_decref(body);
    if (!s || !path) {
        free(s);
        return rs_error_set(err, -ENOMEM, "add location: out of memory");
    }
    rs_http_req req = {
        .method = "PATCH", .content_type = JSON_PATCH_TYPE, .body = s, .body_len = strlen(s),
    };
    rc = rs_glance_request(g, &req, path, &resp, err);
    rs_http_resp_clear(&resp);
    free(s);
    return rc;
}

static int add_location_api(rs_glance *g, const char *id, const char *url, rs_http_resp *resp,
                            rs_error *err)
{
    rs_autofree char *path = image_path(id, "/locations");
    json_t *body = json_pack("{s:s}", "url", url);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc;

    json_decref(body);
    if (!s || !path) {
        free(s);
        return rs_error_set(err, -ENOMEM, "add location: out of memory");
    }
    rs_http_req req = {
        .method = "POST", .content_type = "application/json", .body = s, .body_len = strlen(s),
    };
    rc = rs_glance_request(g, &req, path, resp, err);
    free(s);
    return rc;
}

int rs_glance_image_add_location(rs_glance *g, const char *id, const char *url, rs_error *err)
{
    int rc;

    if (!id || !url)
        return rs_error_set(err, -EINVAL, "add location: id and url are required");
    pthread_mutex_lock(&g->lock);
    bool discovered = g->api_minor >= 0;
    pthread_mutex_unlock(&g->lock);
    if (!discovered) {
        rs_error e = RS_ERROR_INIT;
        if (rs_glance_discover(g, &e) < 0)
            rs_warn("image_id=%s version discovery failed, using PATCH: %s", id, e.msg);
    }
    if (rs_glance_has_locations_api(g)) {
        rs_http_resp resp;
        rs_error e = RS_ERROR_INIT;
        rc = add_location_api(g, id, url, &resp, &e);
        long st = resp.status;
        rs_http_resp_clear(&resp);
        if (rc == 0) {
            rs_info("location added image_id=%s api=locations", id);
            return 0;
        }
        if (st != 403 && st != 404 && st != 405)
            return rs_error_set(err, rc, "%s", e.msg);
        /* the v2.17 API needs the service role for rbd URLs: use PATCH */
        rs_info("image_id=%s locations API refused (HTTP %ld), falling back to PATCH", id, st);
        pthread_mutex_lock(&g->lock);
        g->locations_api_denied = true;
        pthread_mutex_unlock(&g->lock);
    }
    rc = add_location_patch(g, id, url, err);
    if (rc == 0)
        rs_info("location added image_id=%s api=patch", id);
    return rc;
}

/* ---- upload -------------------------------------------------------------- */

int rs_glance_image_upload(rs_glance *g, const char *id, rs_glance_read_cb cb, void *ctx,
                           int64_t size, rs_error *err)
{
    rs_autofree char *path = image_path(id, "/file");
    rs_http_resp resp = { 0 };
    uint64_t t0 = rs_now_ms();
    int rc;

    if (!path)
        return rs_error_set(err, -ENOMEM, "upload: out of memory");
    if (!cb)
        return rs_error_set(err, -EINVAL, "upload %s: no read callback", id);
    rs_http_req req = {
        .method = "PUT", .content_type = "application/octet-stream",
        .read_cb = cb, .read_ctx = ctx, .upload_size = size < 0 ? -1 : size,
    };
    rc = rs_glance_request(g, &req, path, &resp, err);
    rs_http_resp_clear(&resp);
    if (rc == 0)
        rs_info("image uploaded image_id=%s size=%lld dur_ms=%llu", id, (long long)size,
                (unsigned long long)(rs_now_ms() - t0));
    return rc;
}

/* ---- get / list ------------------------------------------------------------ */

int rs_glance_image_get(rs_glance *g, const char *id, rs_glance_image **out, rs_error *err)
{
    rs_autofree char *path = image_path(id, NULL);
    rs_http_resp resp = { 0 };
    rs_http_req req = { .method = "GET" };
    json_t *root = NULL;
    int rc;

    *out = NULL;
    if (!path)
        return rs_error_set(err, -ENOMEM, "get: out of memory");
    rc = rs_glance_request(g, &req, path, &resp, err);
    if (rc < 0)
        goto out;
    root = load_body(&resp, err);
    if (!root) {
        rc = -EBADMSG;
        goto out;
    }
    rc = rs_glance_image_from_json(root, out, err);
out:
    json_decref(root);
    rs_http_resp_clear(&resp);
    return rc;
}

static int query_add(char **q, const char *k, const char *v)
{
    if (!v)
        return 0;
    rs_autofree char *qk = rs_percent_quote(k);
    rs_autofree char *qv = rs_percent_quote(v);
    if (!qk || !qv)
        return -ENOMEM;
    char *n = rs_strdup_printf("%s%s%s=%s", *q, strchr(*q, '?') ? "&" : "?", qk, qv);
    if (!n)
        return -ENOMEM;
    free(*q);
    *q = n;
    return 0;
}

int rs_glance_image_list(rs_glance *g, const rs_glance_filter *f, rs_glance_image_cb cb,
                         void *ctx, rs_error *err)
{
    rs_glance_filter none = { 0 };
    char *path = strdup("/v2/images");
    char limit[16];
    int rc = 0, pages = 0;
    size_t total = 0;

    if (!f)
        f = &none;
    if (!path)
        return rs_error_set(err, -ENOMEM, "list: out of memory");
    snprintf(limit, sizeof(limit), "%d", f->limit);
    if ((f->limit > 0 && query_add(&path, "limit", limit) < 0) ||
        query_add(&path, "name", f->name) < 0 || query_add(&path, "status", f->status) < 0 ||
        query_add(&path, "owner", f->owner) < 0 ||
        query_add(&path, "visibility", f->visibility) < 0) {
        free(path);
        return rs_error_set(err, -ENOMEM, "list: out of memory");
    }
    for (size_t i = 0; i < f->nprops; i++) {
        if (query_add(&path, f->props[i].key, f->props[i].value) < 0) {
            free(path);
            return rs_error_set(err, -ENOMEM, "list: out of memory");
        }
    }

    while (path) {
        rs_http_resp resp = { 0 };
        rs_http_req req = { .method = "GET" };
        json_t *root = NULL, *v;
        size_t i;

        if (++pages > 100000) {
            rc = rs_error_set(err, -ELOOP, "GET %s: too many pages", path);
            break;
        }
        rc = rs_glance_request(g, &req, path, &resp, err);
        if (rc == 0)
            root = load_body(&resp, err);
        rs_http_resp_clear(&resp);
        if (rc < 0 || !root) {
            rc = rc < 0 ? rc : -EBADMSG;
            break;
        }
        const json_t *images = json_object_get(root, "images");
        if (!json_is_array(images)) {
            rc = rs_error_set(err, -EBADMSG, "GET %s: answer has no images array", path);
            json_decref(root);
            break;
        }
        json_array_foreach(images, i, v) {
            rs_glance_image *img = NULL;
            rc = rs_glance_image_from_json(v, &img, err);
            if (rc < 0)
                break;
            total++;
            rc = cb(ctx, img);
            rs_glance_image_free(img);
            if (rc != 0)
                break;
        }
        const char *next = jstr(root, "next");
        char *np = (rc == 0 && next && json_array_size(images) > 0 && strcmp(next, path)) ?
                   strdup(next) : NULL;
        if (rc == 0 && next && json_array_size(images) > 0 && strcmp(next, path) && !np)
            rc = rs_error_set(err, -ENOMEM, "list: out of memory");
        json_decref(root);
        free(path);
        path = np;
        if (rc != 0)
            break;
    }
    free(path);
    rs_debug("images listed count=%zu pages=%d rc=%d", total, pages, rc);
    if (rc > 0)
        rc = 0;
    else if (rc < 0 && !rs_error_isset(err))
        rs_error_set(err, rc, "image list stopped by the callback");
    return rc;
}

/* ---- update / delete / wait ------------------------------------------------ */

static bool replace_always(const char *k)
{
    return !strcmp(k, "name") || !strcmp(k, "visibility") || !strcmp(k, "disk_format") ||
           !strcmp(k, "container_format");
}

int rs_glance_image_update(rs_glance *g, const char *id, const rs_kv *set, size_t nset,
                           const char *const *remove, size_t nremove, rs_error *err)
{
    rs_glance_image *cur = NULL;
    rs_autofree char *path = image_path(id, NULL);
    json_t *ops = json_array();
    char *s = NULL;
    rs_http_resp resp = { 0 };
    int rc;

    if (!path || !ops) {
        json_decref(ops);
        return rs_error_set(err, -ENOMEM, "update: out of memory");
    }
    /* Glance's "add" fails on an existing property and "replace" on a
     * missing one: look first. */
    rc = rs_glance_image_get(g, id, &cur, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < nset; i++) {
        const char *k = set[i].key;
        if (!k || !set[i].value || !k[0] || strchr(k, '/') || strchr(k, '~')) {
            rc = rs_error_set(err, -EINVAL, "update %s: bad property key '%s'", id, k ? k : "");
            goto out;
        }
        const char *op = (replace_always(k) || rs_glance_image_prop(cur, k)) ? "replace" : "add";
        rs_autofree char *p = rs_strdup_printf("/%s", k);
        if (!p || json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "op", op, "path", p,
                                                       "value", set[i].value)) < 0) {
            rc = rs_error_set(err, -ENOMEM, "update: out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < nremove; i++) {
        const char *k = remove[i];
        if (!k || !k[0] || strchr(k, '/') || strchr(k, '~')) {
            rc = rs_error_set(err, -EINVAL, "update %s: bad property key '%s'", id, k ? k : "");
            goto out;
        }
        if (!rs_glance_image_prop(cur, k))
            continue;
        rs_autofree char *p = rs_strdup_printf("/%s", k);
        if (!p || json_array_append_new(ops, json_pack("{s:s, s:s}", "op", "remove", "path", p)) < 0) {
            rc = rs_error_set(err, -ENOMEM, "update: out of memory");
            goto out;
        }
    }
    if (json_array_size(ops) == 0)
        goto out;
    s = json_dumps(ops, JSON_COMPACT);
    if (!s) {
        rc = rs_error_set(err, -ENOMEM, "update: out of memory");
        goto out;
    }
    rs_http_req req = {
        .method = "PATCH", .content_type = JSON_PATCH_TYPE, .body = s, .body_len = strlen(s),
    };
    rc = rs_glance_request(g, &req, path, &resp, err);
    if (rc == 0)
        rs_info("image updated image_id=%s set=%zu remove=%zu", id, nset, nremove);
out:
    rs_glance_image_free(cur);
    json_decref(ops);
    free(s);
    rs_http_resp_clear(&resp);
    return rc;
}

int rs_glance_image_delete(rs_glance *g, const char *id, rs_error *err)
{
    rs_autofree char *path = image_path(id, NULL);
    rs_http_resp resp = { 0 };
    rs_http_req req = { .method = "DELETE", .conflict_errno = -EBUSY };
    int rc;

    if (!path)
        return rs_error_set(err, -ENOMEM, "delete: out of memory");
    rc = rs_glance_request(g, &req, path, &resp, err);
    rs_http_resp_clear(&resp);
    if (rc == 0)
        rs_info("image deleted image_id=%s", id);
    return rc;
}

int rs_glance_image_wait_status(rs_glance *g, const char *id, const char *status,
                                int timeout_s, rs_error *err)
{
    uint64_t deadline = rs_now_ms() + (uint64_t)(timeout_s > 0 ? timeout_s : 0) * 1000u;
    unsigned delay = 200;
    char last[32] = "?";
    int rc;

    for (;;) {
        rs_glance_image *img = NULL;
        rs_error e = RS_ERROR_INIT;
        rc = rs_glance_image_get(g, id, &img, &e);
        if (rc == -ENOENT && !strcmp(status, "deleted"))
            return 0;
        if (rc < 0)
            return rs_error_set(err, rc, "waiting for image %s to be %s: %s", id, status, e.msg);
        snprintf(last, sizeof(last), "%s", img->status ? img->status : "?");
        rs_glance_image_free(img);
        if (!strcmp(last, status))
            return 0;
        if (!strcmp(last, "killed") || !strcmp(last, "deleted") ||
            !strcmp(last, "pending_delete"))
            return rs_error_set(err, -EIO, "image %s is %s, not %s", id, last, status);
        uint64_t now = rs_now_ms();
        if (now >= deadline)
            return rs_error_set(err, -ETIMEDOUT, "image %s still %s after %d s (want %s)", id,
                                last, timeout_s, status);
        unsigned d = delay;
        if (now + d > deadline)
            d = (unsigned)(deadline - now);
        rc = rs_http_sleep(g->http, d);
        if (rc < 0)
            return rs_error_set(err, rc, "waiting for image %s: cancelled", id);
        if (delay < 2000)
            delay *= 2;
    }
}
