/*
 * ops_extra.c - read-only inventory primitives, see ops_extra.h.
 *
 * rs_rbd_image_describe() opens an image once (read-only, by name or by id
 * so trash entries work too) and collects everything the CLI's tree, graph
 * and ls commands show, so a pool of n images costs n opens plus one
 * rbd_list_children3 per snapshot.
 */
#define RS_LOG_MODULE "rbd.ops"
#include "rbd/ops_extra.h"

#include "rbd/ops-priv.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

/* ---- pools ---------------------------------------------------------------- */

int rs_rbd_pool_list(rs_cluster *cl, char ***names, size_t *n, rs_error *err)
{
    rs_autofree char *out = NULL;
    json_error_t jerr;
    json_t *arr, *p;
    size_t i, m = 0;
    char **v;
    int rc;

    *names = NULL;
    *n = 0;
    rc = rs_cluster_mon_command(cl, "{\"prefix\":\"osd pool ls\",\"detail\":\"detail\","
                                    "\"format\":\"json\"}", &out, err);
    if (rc < 0)
        return rc;
    arr = json_loads(out, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return rs_error_set(err, -EBADMSG, "osd pool ls: unexpected answer");
    }
    v = calloc(json_array_size(arr) + 1, sizeof(char *));
    if (!v) {
        json_decref(arr);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    json_array_foreach(arr, i, p) {
        const char *name = json_string_value(json_object_get(p, "pool_name"));
        json_t *apps = json_object_get(p, "application_metadata");
        if (name && json_object_get(apps, "rbd")) {
            v[m] = strdup(name);
            if (!v[m]) {
                rs_rbd_names_free(v, m);
                json_decref(arr);
                return rs_error_set(err, -ENOMEM, "out of memory");
            }
            m++;
        }
    }
    json_decref(arr);
    *names = v;
    *n = m;
    return 0;
}

/* ---- trash ---------------------------------------------------------------- */

struct a_trash {
    const char *pool;
    rs_rbd_trash_entry **out;
    size_t *n;
};

void rs_rbd_trash_list_free(rs_rbd_trash_entry *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].id);
        free(e[i].name);
    }
    free(e);
}

static int w_trash_list(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_trash *a = p;
    size_t max = 32;

    for (;;) {
        rbd_trash_image_info_t *raw = calloc(max, sizeof(*raw));
        size_t m = max;
        int rc;

        if (!raw)
            return rs_error_set(err, -ENOMEM, "out of memory");
        rc = rbd_trash_list(io, raw, &m);
        if (rc == -ERANGE) {
            free(raw);
            max = m + 16;
            continue;
        }
        if (rc < 0) {
            free(raw);
            return rs_error_set(err, rc, "pool %s: trash list: %s", a->pool, strerror(-rc));
        }
        m = (size_t)rc;
        rs_rbd_trash_entry *out = calloc(m + 1, sizeof(*out));
        for (size_t i = 0; out && i < m; i++) {
            out[i].id = strdup(raw[i].id);
            out[i].name = strdup(raw[i].name);
            out[i].source = (int)raw[i].source;
            out[i].deleted_at = (int64_t)raw[i].deletion_time;
            out[i].deferment_end = (int64_t)raw[i].deferment_end_time;
        }
        rbd_trash_list_cleanup(raw, m);
        free(raw);
        if (!out)
            return rs_error_set(err, -ENOMEM, "out of memory");
        *a->out = out;
        *a->n = m;
        return 0;
    }
}

int rs_rbd_trash_list(rs_cluster *cl, const char *pool, rs_rbd_trash_entry **entries,
                      size_t *n, rs_error *err)
{
    struct a_trash a = { .pool = pool, .out = entries, .n = n };
    *entries = NULL;
    *n = 0;
    return rs_rbd_with_ioctx(cl, pool, w_trash_list, &a, err);
}

/* ---- describe ------------------------------------------------------------- */

struct a_desc {
    const char *pool, *image, *image_id, *md_prefix;
    rs_rbd_image_desc *d;
};

static void xsnap_clear(rs_rbd_xsnap *s)
{
    free(s->name);
    free(s->original_name);
    for (size_t i = 0; i < s->nchildren; i++) {
        free(s->children[i].pool);
        free(s->children[i].image);
        free(s->children[i].image_id);
    }
    free(s->children);
}

void rs_rbd_image_desc_free(rs_rbd_image_desc *d)
{
    if (!d)
        return;
    free(d->pool);
    free(d->name);
    free(d->id);
    free(d->parent_pool);
    free(d->parent_image);
    free(d->parent_image_id);
    free(d->parent_snap);
    for (size_t i = 0; i < d->nmd; i++) {
        free(d->md_keys[i]);
        free(d->md_values[i]);
    }
    free(d->md_keys);
    free(d->md_values);
    for (size_t i = 0; i < d->nsnaps; i++)
        xsnap_clear(&d->snaps[i]);
    free(d->snaps);
    free(d);
}

const char *rs_rbd_image_desc_md(const rs_rbd_image_desc *d, const char *key)
{
    for (size_t i = 0; d && i < d->nmd; i++)
        if (strcmp(d->md_keys[i], key) == 0)
            return d->md_values[i];
    return NULL;
}

static rs_rbd_snap_ns map_ns(rbd_snap_namespace_type_t t)
{
    switch (t) {
    case RBD_SNAP_NAMESPACE_TYPE_USER: return RS_RBD_SNAP_NS_USER;
    case RBD_SNAP_NAMESPACE_TYPE_GROUP: return RS_RBD_SNAP_NS_GROUP;
    case RBD_SNAP_NAMESPACE_TYPE_TRASH: return RS_RBD_SNAP_NS_TRASH;
    case RBD_SNAP_NAMESPACE_TYPE_MIRROR: return RS_RBD_SNAP_NS_MIRROR;
    default: return RS_RBD_SNAP_NS_OTHER;
    }
}

/* Children of the snapshot the image is currently set to. */
static int children_here(rbd_image_t img, const char *what, rs_rbd_xsnap *s, rs_error *err)
{
    size_t max = 16;

    for (;;) {
        rbd_linked_image_spec_t *specs = calloc(max, sizeof(*specs));
        size_t m = max;
        int rc;

        if (!specs)
            return rs_error_set(err, -ENOMEM, "out of memory");
        rc = rbd_list_children3(img, specs, &m);
        if (rc == -ERANGE) {
            free(specs);
            max = m + 8;
            continue;
        }
        if (rc < 0) {
            free(specs);
            return rs_error_set(err, rc, "%s@%s: list children: %s", what, s->name,
                                strerror(-rc));
        }
        s->children = calloc(m + 1, sizeof(*s->children));
        for (size_t i = 0; s->children && i < m; i++) {
            s->children[i].pool = strdup(specs[i].pool_name);
            s->children[i].image = strdup(specs[i].image_name);
            s->children[i].image_id = strdup(specs[i].image_id);
            s->children[i].trash = specs[i].trash;
        }
        rbd_linked_image_spec_list_cleanup(specs, m);
        free(specs);
        if (!s->children)
            return rs_error_set(err, -ENOMEM, "out of memory");
        s->nchildren = m;
        return 0;
    }
}

static int read_metadata(rbd_image_t img, const char *what, const char *prefix,
                         rs_rbd_image_desc *d, rs_error *err)
{
    size_t klen = 4096, vlen = 4096;
    char *kbuf = NULL, *vbuf = NULL;
    int rc;

    for (;;) {
        kbuf = malloc(klen);
        vbuf = malloc(vlen);
        if (!kbuf || !vbuf) {
            rc = -ENOMEM;
            break;
        }
        rc = rbd_metadata_list(img, "", 0, kbuf, &klen, vbuf, &vlen);
        if (rc == -ERANGE) {
            free(kbuf);
            free(vbuf);
            kbuf = vbuf = NULL;
            continue;
        }
        break;
    }
    if (rc < 0) {
        free(kbuf);
        free(vbuf);
        return rs_error_set(err, rc, "%s: metadata list: %s", what, strerror(-rc));
    }
    size_t count = 0;
    for (const char *k = kbuf; k < kbuf + klen && *k; k += strlen(k) + 1)
        count++;
    d->md_keys = calloc(count + 1, sizeof(char *));
    d->md_values = calloc(count + 1, sizeof(char *));
    if (!d->md_keys || !d->md_values) {
        free(kbuf);
        free(vbuf);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    const char *k = kbuf, *v = vbuf;
    for (size_t i = 0; i < count; i++) {
        if (rs_str_has_prefix(k, prefix)) {
            d->md_keys[d->nmd] = strdup(k);
            d->md_values[d->nmd] = strdup(v);
            d->nmd++;
        }
        k += strlen(k) + 1;
        v += strlen(v) + 1;
    }
    free(kbuf);
    free(vbuf);
    return 0;
}

static int describe_open(rbd_image_t img, rados_ioctx_t io, struct a_desc *a, const char *what,
                         rs_error *err)
{
    rs_rbd_image_desc *d = a->d;
    rbd_image_info_t info;
    struct timespec ts;
    char buf[512];
    size_t len;
    int rc, max = 32;

    len = sizeof(buf);
    if (rbd_get_id(img, buf, len) == 0)
        d->id = strdup(buf);
    len = sizeof(buf);
    if (rbd_get_name(img, buf, &len) == 0)
        d->name = strdup(buf);
    else if (a->image)
        d->name = strdup(a->image);
    if (a->image_id) {
        rbd_trash_image_info_t ti;
        if (rbd_trash_get(io, a->image_id, &ti) == 0) {
            d->trash = true;
            if (!d->name)
                d->name = strdup(ti.name);
            rbd_trash_get_cleanup(&ti);
        }
    }
    rc = rbd_stat(img, &info, sizeof(info));
    if (rc < 0)
        return rs_error_set(err, rc, "%s: stat: %s", what, strerror(-rc));
    d->size = info.size;
    if (rbd_get_create_timestamp(img, &ts) == 0)
        d->created_at = (int64_t)ts.tv_sec;

    rbd_linked_image_spec_t pimg;
    rbd_snap_spec_t psnap;
    rc = rbd_get_parent(img, &pimg, &psnap);
    if (rc == 0) {
        d->parent_pool = strdup(pimg.pool_name);
        d->parent_image = strdup(pimg.image_name);
        d->parent_image_id = strdup(pimg.image_id);
        d->parent_trash = pimg.trash;
        d->parent_snap = strdup(psnap.name);
        d->parent_snap_id = psnap.id;
        d->parent_snap_ns = map_ns(psnap.namespace_type);
        rbd_linked_image_spec_cleanup(&pimg);
        rbd_snap_spec_cleanup(&psnap);
    } else if (rc != -ENOENT) {
        return rs_error_set(err, rc, "%s: get parent: %s", what, strerror(-rc));
    }

    if (a->md_prefix) {
        rc = read_metadata(img, what, a->md_prefix, d, err);
        if (rc < 0)
            return rc;
    }

    rbd_snap_info_t *raw = NULL;
    for (;;) {
        raw = calloc((size_t)max, sizeof(*raw));
        if (!raw)
            return rs_error_set(err, -ENOMEM, "out of memory");
        rc = rbd_snap_list(img, raw, &max);
        if (rc == -ERANGE) {
            free(raw);
            continue;
        }
        break;
    }
    if (rc < 0) {
        free(raw);
        return rs_error_set(err, rc, "%s: snap list: %s", what, strerror(-rc));
    }
    size_t n = (size_t)rc;
    d->snaps = calloc(n + 1, sizeof(*d->snaps));
    if (!d->snaps) {
        rbd_snap_list_end(raw);
        free(raw);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    d->nsnaps = n;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        rs_rbd_xsnap *s = &d->snaps[i];
        rbd_snap_namespace_type_t t = RBD_SNAP_NAMESPACE_TYPE_USER;
        s->name = strdup(raw[i].name);
        s->id = raw[i].id;
        s->size = raw[i].size;
        rbd_snap_get_namespace_type(img, raw[i].id, &t);
        s->ns = map_ns(t);
        if (s->ns == RS_RBD_SNAP_NS_TRASH) {
            char orig[256] = "";
            if (rbd_snap_get_trash_namespace(img, raw[i].id, orig, sizeof(orig)) == 0)
                s->original_name = strdup(orig);
        } else if (s->ns == RS_RBD_SNAP_NS_USER) {
            int is = 0;
            if (rbd_snap_is_protected(img, raw[i].name, &is) == 0)
                s->is_protected = is != 0;
        }
        if (rbd_snap_get_timestamp(img, raw[i].id, &ts) == 0)
            s->created_at = (int64_t)ts.tv_sec;
        rc = rbd_snap_set_by_id(img, raw[i].id);
        if (rc < 0) {
            rs_error_set(err, rc, "%s@%s: cannot select snapshot: %s", what, s->name,
                         strerror(-rc));
            break;
        }
        rc = children_here(img, what, s, err);
    }
    rbd_snap_list_end(raw);
    free(raw);
    return rc < 0 ? rc : 0;
}

static int w_describe(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_desc *a = p;
    rbd_image_t img;
    char what[512];
    int rc;

    if (a->image_id)
        snprintf(what, sizeof(what), "%s/%s (id %s)", a->pool, a->image ? a->image : "",
                 a->image_id);
    else
        snprintf(what, sizeof(what), "%s/%s", a->pool, a->image);
    rc = a->image_id ? rbd_open_by_id_read_only(io, a->image_id, &img, NULL)
                     : rbd_open_read_only(io, a->image, &img, NULL);
    if (rc == -ENOENT)
        return rs_error_set(err, rc, "%s: No such image", what);
    if (rc < 0)
        return rs_error_set(err, rc, "%s: open failed: %s", what, strerror(-rc));
    /* A fresh description per attempt (rs_rbd_with_ioctx may run us twice). */
    a->d = calloc(1, sizeof(*a->d));
    if (!a->d || !(a->d->pool = strdup(a->pool))) {
        rbd_close(img);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    rc = describe_open(img, io, a, what, err);
    rbd_close(img);
    if (rc < 0) {
        rs_rbd_image_desc_free(a->d);
        a->d = NULL;
    }
    return rc;
}

int rs_rbd_image_describe(rs_cluster *cl, const char *pool, const char *image,
                          const char *image_id, const char *md_prefix,
                          rs_rbd_image_desc **out, rs_error *err)
{
    struct a_desc a = { .pool = pool, .image = image, .image_id = image_id,
                        .md_prefix = md_prefix };
    int rc;

    *out = NULL;
    if (!pool || (!image && !image_id))
        return rs_error_set(err, -EINVAL, "describe: pool and image name or id required");
    rc = rs_rbd_with_ioctx(cl, pool, w_describe, &a, err);
    if (rc < 0)
        return rc;
    if (!a.d->name)
        a.d->name = strdup(image ? image : image_id);
    *out = a.d;
    return 0;
}
