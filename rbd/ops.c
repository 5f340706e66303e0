/*
 * ops.c - idempotent RBD primitives, see ops.h.
 *
 * Each public function packs its arguments into a small struct and hands a
 * static worker to rs_rbd_with_ioctx() (ops-priv.h), which borrows the pool's cached ioctx,
 * runs the worker and, when the worker failed with a connection-class
 * error, retires the connection and runs it once more on a fresh one.
 * Workers open the image, do one thing, close it; they fill @err at the
 * failure site naming pool/image@snap.
 */
#define RS_LOG_MODULE "rbd.ops"
#include "rbd/ops.h"

#include "rbd/ops-priv.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

int rs_rbd_with_ioctx(rs_cluster *cl, const char *pool, rs_rbd_worker_fn fn, void *arg,
                      rs_error *err)
{
    int rc = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        void *io = NULL;
        rs_error tmp = RS_ERROR_INIT;

        rc = rs_cluster_ioctx_get(cl, pool, &io, &tmp);
        if (rc == 0) {
            rc = fn((rados_ioctx_t)io, arg, &tmp);
            rs_cluster_ioctx_put_rc(cl, io, rc);
        }
        if (rc >= 0 || !rs_cluster_rc_is_disconnect(rc) || attempt == 1) {
            if (rc < 0 && err && !rs_error_isset(err))
                *err = tmp;
            return rc;
        }
        rs_warn("msg=\"connection lost, retrying\" pool=%s rc=%d", pool, rc);
    }
    return rc;
}

static const char *sn(const char *snap) { return snap ? snap : ""; }
#define OBJ_FMT "%s/%s%s%s"
#define OBJ_ARGS(p, i, s) (p), (i), (s) ? "@" : "", sn(s)

static int open_image(rados_ioctx_t io, const char *pool, const char *image, const char *snap,
                      bool ro, rbd_image_t *img, rs_error *err)
{
    int rc = ro ? rbd_open_read_only(io, image, img, snap) : rbd_open(io, image, img, snap);
    if (rc < 0) {
        if (rc == -ENOENT)
            return rs_error_set(err, rc, OBJ_FMT ": not found", OBJ_ARGS(pool, image, snap));
        return rs_error_set(err, rc, OBJ_FMT ": open failed: %s", OBJ_ARGS(pool, image, snap),
                            strerror(-rc));
    }
    return 0;
}

/* ---- images --------------------------------------------------------- */

struct a_img {
    const char *pool, *image, *snap, *key, *value, *prefix;
    uint64_t size, off;
    size_t len;
    void *buf;
    const void *cbuf;
    bool *exists, unprotect;
    uint64_t *out64;
    char **str, **str2, **str3;
    char ***keys, ***values;
    size_t *n;
    rs_rbd_progress_fn cb;
    void *cbarg;
    bool cancelled;
    /* clone */
    const char *cpool, *cimage;
    int format;
    rs_cluster *cl;
    void *snaps;
};

static int w_create(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_options_t opts;
    int rc;

    rbd_image_options_create(&opts);
    rc = rbd_create4(io, a->image, a->size, opts);
    rbd_image_options_destroy(opts);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: create failed: %s", a->pool, a->image, strerror(-rc));
    return 0;
}

int rs_rbd_image_create(rs_cluster *cl, const char *pool, const char *image, uint64_t size,
                        rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .size = size };
    return rs_rbd_with_ioctx(cl, pool, w_create, &a, err);
}

static int w_exists(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = rbd_open_read_only(io, a->image, &img, NULL);

    if (rc == -ENOENT) {
        *a->exists = false;
        return 0;
    }
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: open failed: %s", a->pool, a->image, strerror(-rc));
    rbd_close(img);
    *a->exists = true;
    return 0;
}

int rs_rbd_image_exists(rs_cluster *cl, const char *pool, const char *image, bool *exists,
                        rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .exists = exists };
    return rs_rbd_with_ioctx(cl, pool, w_exists, &a, err);
}

static int w_size(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, a->snap, true, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_get_size(img, a->out64);
    if (rc < 0)
        rs_error_set(err, rc, OBJ_FMT ": get size: %s", OBJ_ARGS(a->pool, a->image, a->snap),
                     strerror(-rc));
    rbd_close(img);
    return rc;
}

int rs_rbd_image_size(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                      uint64_t *size, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .out64 = size };
    return rs_rbd_with_ioctx(cl, pool, w_size, &a, err);
}

static int w_remove(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    int rc = rbd_remove(io, a->image);
    if (rc == -ENOENT)
        return 0;
    if (rc == -ENOTEMPTY)
        return rs_error_set(err, rc, "%s/%s: cannot remove: image has snapshots", a->pool, a->image);
    if (rc == -EBUSY)
        return rs_error_set(err, rc, "%s/%s: cannot remove: image is in use or has clones",
                            a->pool, a->image);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: remove failed: %s", a->pool, a->image, strerror(-rc));
    return 0;
}

int rs_rbd_image_remove(rs_cluster *cl, const char *pool, const char *image, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image };
    return rs_rbd_with_ioctx(cl, pool, w_remove, &a, err);
}

void rs_rbd_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int w_list(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    size_t max = 64;
    rbd_image_spec_t *specs = NULL;
    int rc;

    for (;;) {
        specs = calloc(max, sizeof(*specs));
        if (!specs)
            return rs_error_set(err, -ENOMEM, "out of memory");
        size_t m = max;
        rc = rbd_list2(io, specs, &m);
        if (rc == -ERANGE) {
            free(specs);
            max = m + 16;
            continue;
        }
        if (rc < 0) {
            free(specs);
            return rs_error_set(err, rc, "pool %s: list images: %s", a->pool, strerror(-rc));
        }
        char **names = calloc(m + 1, sizeof(char *));
        if (!names) {
            rbd_image_spec_list_cleanup(specs, m);
            free(specs);
            return rs_error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < m; i++)
            names[i] = strdup(specs[i].name);
        rbd_image_spec_list_cleanup(specs, m);
        free(specs);
        *(char ***)a->buf = names;
        *a->n = m;
        return 0;
    }
}

int rs_rbd_image_list(rs_cluster *cl, const char *pool, char ***names, size_t *n, rs_error *err)
{
    struct a_img a = { .pool = pool, .buf = names, .n = n };
    *names = NULL;
    *n = 0;
    return rs_rbd_with_ioctx(cl, pool, w_list, &a, err);
}

static int w_parent(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    rbd_linked_image_spec_t pimg;
    rbd_snap_spec_t psnap;
    int rc = open_image(io, a->pool, a->image, NULL, true, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_get_parent(img, &pimg, &psnap);
    rbd_close(img);
    if (rc == -ENOENT)
        return rs_error_set(err, rc, "%s/%s: has no parent", a->pool, a->image);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: get parent: %s", a->pool, a->image, strerror(-rc));
    if (a->str)
        *a->str = strdup(pimg.pool_name);
    if (a->str2)
        *a->str2 = strdup(pimg.image_name);
    if (a->str3)
        *a->str3 = strdup(psnap.name);
    rbd_linked_image_spec_cleanup(&pimg);
    rbd_snap_spec_cleanup(&psnap);
    return 0;
}

int rs_rbd_get_parent(rs_cluster *cl, const char *pool, const char *image, char **ppool,
                      char **pimage, char **psnap, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .str = ppool, .str2 = pimage, .str3 = psnap };
    return rs_rbd_with_ioctx(cl, pool, w_parent, &a, err);
}

/* ---- snapshots ------------------------------------------------------- */

static int img_snap_create(rbd_image_t img, const char *pool, const char *image,
                           const char *snap, rs_error *err)
{
    int rc = rbd_snap_create2(img, snap, RBD_SNAP_CREATE_SKIP_QUIESCE, NULL, NULL);
    if (rc == -EEXIST)
        return 0;
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: snap create failed: %s", pool, image, snap,
                            strerror(-rc));
    return 0;
}

static int w_snap_create(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    rc = img_snap_create(img, a->pool, a->image, a->snap, err);
    rbd_close(img);
    return rc;
}

int rs_rbd_snap_create(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap };
    return rs_rbd_with_ioctx(cl, pool, w_snap_create, &a, err);
}

static int w_snap_exists(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = rbd_open_read_only(io, a->image, &img, NULL);
    if (rc == -ENOENT) {
        *a->exists = false;
        return 0;
    }
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: open failed: %s", a->pool, a->image, strerror(-rc));
    rc = rbd_snap_exists(img, a->snap, a->exists);
    rbd_close(img);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: snap exists: %s", a->pool, a->image, a->snap,
                            strerror(-rc));
    return 0;
}

int rs_rbd_snap_exists(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       bool *exists, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .exists = exists };
    return rs_rbd_with_ioctx(cl, pool, w_snap_exists, &a, err);
}

static int img_protect(rbd_image_t img, const char *pool, const char *image, const char *snap,
                       rs_error *err)
{
    int is = 0;
    int rc = rbd_snap_is_protected(img, snap, &is);
    if (rc == 0 && !is)
        rc = rbd_snap_protect(img, snap);
    if (rc == -EBUSY)              /* already protected */
        return 0;
    if (rc == -ENOENT)
        return rs_error_set(err, rc, "%s/%s@%s: snapshot not found", pool, image, snap);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: protect failed: %s", pool, image, snap,
                            strerror(-rc));
    return 0;
}

static int w_protect(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    rc = img_protect(img, a->pool, a->image, a->snap, err);
    rbd_close(img);
    return rc;
}

int rs_rbd_snap_protect(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                        rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap };
    return rs_rbd_with_ioctx(cl, pool, w_protect, &a, err);
}

static int w_unprotect(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int is = 0;
    int rc = rbd_open(io, a->image, &img, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: open failed: %s", a->pool, a->image, strerror(-rc));
    rc = rbd_snap_is_protected(img, a->snap, &is);
    if (rc == 0 && is)
        rc = rbd_snap_unprotect(img, a->snap);
    rbd_close(img);
    if (rc == -ENOENT || rc == -EINVAL)   /* no such snapshot / not protected */
        return 0;
    if (rc == -EBUSY)
        return rs_error_set(err, rc, "%s/%s@%s: cannot unprotect: it still has clones",
                            a->pool, a->image, a->snap);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: unprotect failed: %s", a->pool, a->image,
                            a->snap, strerror(-rc));
    return 0;
}

int rs_rbd_snap_unprotect(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                          rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap };
    return rs_rbd_with_ioctx(cl, pool, w_unprotect, &a, err);
}

static int w_is_protected(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int is = 0;
    int rc = open_image(io, a->pool, a->image, NULL, true, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_snap_is_protected(img, a->snap, &is);
    rbd_close(img);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: %s", a->pool, a->image, a->snap,
                            rc == -ENOENT ? "snapshot not found" : strerror(-rc));
    *a->exists = is != 0;
    return 0;
}

int rs_rbd_snap_is_protected(rs_cluster *cl, const char *pool, const char *image,
                             const char *snap, bool *prot, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .exists = prot };
    return rs_rbd_with_ioctx(cl, pool, w_is_protected, &a, err);
}

static int img_snap_remove(rbd_image_t img, const char *pool, const char *image,
                           const char *snap, bool unprotect, rs_error *err)
{
    int rc = rbd_snap_remove2(img, snap, unprotect ? RBD_SNAP_REMOVE_UNPROTECT : 0, NULL, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc == -EBUSY)
        return rs_error_set(err, rc, "%s/%s@%s: cannot remove: protected or has clones", pool,
                            image, snap);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: snap remove failed: %s", pool, image, snap,
                            strerror(-rc));
    return 0;
}

static int w_snap_remove(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = rbd_open(io, a->image, &img, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: open failed: %s", a->pool, a->image, strerror(-rc));
    rc = img_snap_remove(img, a->pool, a->image, a->snap, a->unprotect, err);
    rbd_close(img);
    return rc;
}

int rs_rbd_snap_remove(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       bool unprotect, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .unprotect = unprotect };
    return rs_rbd_with_ioctx(cl, pool, w_snap_remove, &a, err);
}

void rs_rbd_snap_list_free(rs_rbd_snap_info *snaps, size_t n)
{
    if (!snaps)
        return;
    for (size_t i = 0; i < n; i++) {
        free(snaps[i].name);
        free(snaps[i].original_name);
    }
    free(snaps);
}

static int w_snap_list(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int max = 32, rc;
    rbd_snap_info_t *raw = NULL;

    rc = open_image(io, a->pool, a->image, NULL, true, &img, err);
    if (rc < 0)
        return rc;
    for (;;) {
        raw = calloc((size_t)max, sizeof(*raw));
        if (!raw) {
            rbd_close(img);
            return rs_error_set(err, -ENOMEM, "out of memory");
        }
        rc = rbd_snap_list(img, raw, &max);
        if (rc == -ERANGE) {
            free(raw);
            continue;
        }
        break;
    }
    if (rc < 0) {
        free(raw);
        rbd_close(img);
        return rs_error_set(err, rc, "%s/%s: snap list: %s", a->pool, a->image, strerror(-rc));
    }
    size_t n = (size_t)rc;
    rs_rbd_snap_info *out = calloc(n + 1, sizeof(*out));
    if (!out) {
        rbd_snap_list_end(raw);
        free(raw);
        rbd_close(img);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        rbd_snap_namespace_type_t t = RBD_SNAP_NAMESPACE_TYPE_USER;
        out[i].name = strdup(raw[i].name);
        out[i].id = raw[i].id;
        out[i].size = raw[i].size;
        rbd_snap_get_namespace_type(img, raw[i].id, &t);
        switch (t) {
        case RBD_SNAP_NAMESPACE_TYPE_USER: out[i].ns = RS_RBD_SNAP_NS_USER; break;
        case RBD_SNAP_NAMESPACE_TYPE_GROUP: out[i].ns = RS_RBD_SNAP_NS_GROUP; break;
        case RBD_SNAP_NAMESPACE_TYPE_TRASH: out[i].ns = RS_RBD_SNAP_NS_TRASH; break;
        case RBD_SNAP_NAMESPACE_TYPE_MIRROR: out[i].ns = RS_RBD_SNAP_NS_MIRROR; break;
        default: out[i].ns = RS_RBD_SNAP_NS_OTHER; break;
        }
        if (out[i].ns == RS_RBD_SNAP_NS_TRASH) {
            char orig[256] = "";
            if (rbd_snap_get_trash_namespace(img, raw[i].id, orig, sizeof(orig)) == 0)
                out[i].original_name = strdup(orig);
        } else if (out[i].ns == RS_RBD_SNAP_NS_USER) {
            int is = 0;
            if (rbd_snap_is_protected(img, raw[i].name, &is) == 0)
                out[i].is_protected = is != 0;
        }
    }
    rbd_snap_list_end(raw);
    free(raw);
    rbd_close(img);
    *(rs_rbd_snap_info **)a->snaps = out;
    *a->n = n;
    return 0;
}

int rs_rbd_snap_list(rs_cluster *cl, const char *pool, const char *image,
                     rs_rbd_snap_info **snaps, size_t *n, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snaps = snaps, .n = n };
    *snaps = NULL;
    *n = 0;
    return rs_rbd_with_ioctx(cl, pool, w_snap_list, &a, err);
}

/* ---- clones ---------------------------------------------------------- */

/* Is @cpool/@cimage a clone of ppool/pimage@psnap? */
static int check_clone_parent(rs_cluster *cl, const struct a_img *a, rs_error *err)
{
    rs_autofree char *pp = NULL;
    rs_autofree char *pi = NULL;
    rs_autofree char *ps = NULL;
    rs_error tmp = RS_ERROR_INIT;
    int rc = rs_rbd_get_parent(cl, a->cpool, a->cimage, &pp, &pi, &ps, &tmp);

    if (rc == 0 && pp && pi && ps && strcmp(pp, a->pool) == 0 && strcmp(pi, a->image) == 0 &&
        strcmp(ps, a->snap) == 0)
        return 0;
    if (rc < 0 && rc != -ENOENT)
        return rs_error_set(err, rc, "%s/%s: exists, cannot check its parent: %s", a->cpool,
                            a->cimage, rs_error_msg(&tmp));
    return rs_error_set(err, -EEXIST, "%s/%s: already exists (not a clone of %s/%s@%s)",
                        a->cpool, a->cimage, a->pool, a->image, a->snap);
}

static int w_clone_inner(rados_ioctx_t pio, void *p, rs_error *err)
{
    struct a_img *a = p;
    void *cio = NULL;
    rbd_image_options_t opts;
    int rc;

    rc = rs_cluster_ioctx_get(a->cl, a->cpool, &cio, err);
    if (rc < 0)
        return rc;
    rbd_image_options_create(&opts);
    if (a->format > 0)
        rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_CLONE_FORMAT, (uint64_t)a->format);
    rc = rbd_clone3(pio, a->image, a->snap, (rados_ioctx_t)cio, a->cimage, opts);
    rbd_image_options_destroy(opts);
    rs_cluster_ioctx_put_rc(a->cl, cio, rc);
    if (rc == -EEXIST)
        return 1;                /* checked by the caller, outside */
    if (rc == -EINVAL && a->format == 1)
        return rs_error_set(err, rc, "%s/%s@%s: clone (format 1) into %s/%s failed: "
                            "is the parent snapshot protected?", a->pool, a->image, a->snap,
                            a->cpool, a->cimage);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s@%s: clone (format %d) into %s/%s failed: %s",
                            a->pool, a->image, a->snap, a->format, a->cpool, a->cimage,
                            strerror(-rc));
    return 0;
}

int rs_rbd_clone(rs_cluster *cl, const char *ppool, const char *pimage, const char *psnap,
                 const char *cpool, const char *cimage, int format, rs_error *err)
{
    struct a_img a = { .pool = ppool, .image = pimage, .snap = psnap, .cpool = cpool,
                       .cimage = cimage, .format = format, .cl = cl };
    int rc = rs_rbd_with_ioctx(cl, ppool, w_clone_inner, &a, err);
    if (rc == 1)
        return check_clone_parent(cl, &a, err);
    return rc;
}

void rs_rbd_children_free(rs_rbd_child *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].pool);
        free(c[i].image);
    }
    free(c);
}

static int w_children(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    size_t max = 16;
    rbd_linked_image_spec_t *specs;
    int rc = open_image(io, a->pool, a->image, a->snap, true, &img, err);
    if (rc < 0)
        return rc;
    for (;;) {
        specs = calloc(max, sizeof(*specs));
        if (!specs) {
            rbd_close(img);
            return rs_error_set(err, -ENOMEM, "out of memory");
        }
        size_t m = max;
        rc = rbd_list_children3(img, specs, &m);
        if (rc == -ERANGE) {
            free(specs);
            max = m + 8;
            continue;
        }
        if (rc < 0) {
            free(specs);
            rbd_close(img);
            return rs_error_set(err, rc, OBJ_FMT ": list children: %s",
                                OBJ_ARGS(a->pool, a->image, a->snap), strerror(-rc));
        }
        rs_rbd_child *out = calloc(m + 1, sizeof(*out));
        for (size_t i = 0; out && i < m; i++) {
            out[i].pool = strdup(specs[i].pool_name);
            out[i].image = strdup(specs[i].image_name);
            out[i].trash = specs[i].trash;
        }
        rbd_linked_image_spec_list_cleanup(specs, m);
        free(specs);
        rbd_close(img);
        if (!out)
            return rs_error_set(err, -ENOMEM, "out of memory");
        *(rs_rbd_child **)a->snaps = out;
        *a->n = m;
        return 0;
    }
}

int rs_rbd_list_children(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                         rs_rbd_child **children, size_t *n, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .snaps = children, .n = n };
    *children = NULL;
    *n = 0;
    return rs_rbd_with_ioctx(cl, pool, w_children, &a, err);
}

static int flatten_cb(uint64_t done, uint64_t total, void *p)
{
    struct a_img *a = p;
    if (a->cancelled)
        return -ECANCELED;
    if (a->cb && a->cb(done, total, a->cbarg) != 0) {
        a->cancelled = true;
        return -ECANCELED;
    }
    return 0;
}

static int w_flatten(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_flatten_with_progress(img, flatten_cb, a);
    rbd_close(img);
    if (rc == -EINVAL)            /* no parent: already flat */
        return 0;
    if (a->cancelled && rc < 0)
        return rs_error_set(err, -ECANCELED, "%s/%s: flatten cancelled", a->pool, a->image);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: flatten failed: %s", a->pool, a->image, strerror(-rc));
    return 0;
}

int rs_rbd_flatten(rs_cluster *cl, const char *pool, const char *image, rs_rbd_progress_fn cb,
                   void *arg, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .cb = cb, .cbarg = arg };
    return rs_rbd_with_ioctx(cl, pool, w_flatten, &a, err);
}

/* ---- metadata -------------------------------------------------------- */

static int w_md_set(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_metadata_set(img, a->key, a->value);
    rbd_close(img);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: metadata set %s: %s", a->pool, a->image, a->key,
                            strerror(-rc));
    return 0;
}

int rs_rbd_metadata_set(rs_cluster *cl, const char *pool, const char *image, const char *key,
                        const char *value, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .key = key, .value = value };
    return rs_rbd_with_ioctx(cl, pool, w_md_set, &a, err);
}

struct a_many {
    const char *pool, *image;
    const char *const *keys, *const *values;
    size_t n;
};

static int img_md_set_many(rbd_image_t img, const char *pool, const char *image,
                           const char *const *keys, const char *const *values, size_t n,
                           rs_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = rbd_metadata_set(img, keys[i], values[i]);
        if (rc < 0)
            rs_error_set(err, rc, "%s/%s: metadata set %s: %s", pool, image, keys[i],
                         strerror(-rc));
    }
    return rc;
}

static int w_md_set_many(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_many *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    rc = img_md_set_many(img, a->pool, a->image, a->keys, a->values, a->n, err);
    rbd_close(img);
    return rc;
}

int rs_rbd_metadata_set_many(rs_cluster *cl, const char *pool, const char *image,
                             const char *const *keys, const char *const *values, size_t n,
                             rs_error *err)
{
    struct a_many a = { .pool = pool, .image = image, .keys = keys, .values = values, .n = n };
    return rs_rbd_with_ioctx(cl, pool, w_md_set_many, &a, err);
}

static int w_md_get(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    char buf[1024];
    size_t len = sizeof(buf);
    int rc = open_image(io, a->pool, a->image, NULL, true, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_metadata_get(img, a->key, buf, &len);
    rbd_close(img);
    if (rc == -ENOENT)
        return rs_error_set(err, rc, "%s/%s: metadata %s not set", a->pool, a->image, a->key);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: metadata get %s: %s", a->pool, a->image, a->key,
                            strerror(-rc));
    *a->str = strndup(buf, len);
    return *a->str ? 0 : rs_error_set(err, -ENOMEM, "out of memory");
}

int rs_rbd_metadata_get(rs_cluster *cl, const char *pool, const char *image, const char *key,
                        char **value, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .key = key, .str = value };
    return rs_rbd_with_ioctx(cl, pool, w_md_get, &a, err);
}

static int img_md_remove(rbd_image_t img, const char *pool, const char *image, const char *key,
                         rs_error *err)
{
    int rc = rbd_metadata_remove(img, key);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: metadata remove %s: %s", pool, image, key,
                            strerror(-rc));
    return 0;
}

static int w_md_remove(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = rbd_open(io, a->image, &img, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: open failed: %s", a->pool, a->image, strerror(-rc));
    rc = img_md_remove(img, a->pool, a->image, a->key, err);
    rbd_close(img);
    return rc;
}

int rs_rbd_metadata_remove(rs_cluster *cl, const char *pool, const char *image,
                           const char *key, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .key = key };
    return rs_rbd_with_ioctx(cl, pool, w_md_remove, &a, err);
}

static int w_md_list(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    char *kbuf = NULL, *vbuf = NULL;
    size_t klen = 4096, vlen = 4096;
    int rc = open_image(io, a->pool, a->image, NULL, true, &img, err);
    if (rc < 0)
        return rc;
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
    rbd_close(img);
    if (rc < 0) {
        free(kbuf);
        free(vbuf);
        return rs_error_set(err, rc, "%s/%s: metadata list: %s", a->pool, a->image, strerror(-rc));
    }
    size_t cap = 8, n = 0;
    char **keys = calloc(cap, sizeof(char *)), **vals = calloc(cap, sizeof(char *));
    const char *k = kbuf, *v = vbuf;
    while (keys && vals && k < kbuf + klen && *k) {
        if (!a->prefix || rs_str_has_prefix(k, a->prefix)) {
            if (n + 1 >= cap) {
                cap *= 2;
                char **nk = realloc(keys, cap * sizeof(char *));
                if (nk)
                    keys = nk;
                char **nv = realloc(vals, cap * sizeof(char *));
                if (nv)
                    vals = nv;
                if (!nk || !nv)
                    break;
            }
            keys[n] = strdup(k);
            vals[n] = strdup(v);
            n++;
        }
        k += strlen(k) + 1;
        v += strlen(v) + 1;
    }
    free(kbuf);
    free(vbuf);
    *a->keys = keys;
    *a->values = vals;
    *a->n = n;
    return 0;
}

int rs_rbd_metadata_list(rs_cluster *cl, const char *pool, const char *image,
                         const char *prefix, char ***keys, char ***values, size_t *n,
                         rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .prefix = prefix, .keys = keys,
                       .values = values, .n = n };
    *keys = *values = NULL;
    *n = 0;
    return rs_rbd_with_ioctx(cl, pool, w_md_list, &a, err);
}

/* ---- data ------------------------------------------------------------ */

static int w_read(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, a->snap, true, &img, err);
    if (rc < 0)
        return rc;
    ssize_t r = rbd_read(img, a->off, a->len, a->buf);
    rbd_close(img);
    if (r < 0)
        return rs_error_set(err, (int)r, OBJ_FMT ": read: %s", OBJ_ARGS(a->pool, a->image, a->snap),
                            strerror((int)-r));
    if ((size_t)r < a->len)
        memset((char *)a->buf + r, 0, a->len - (size_t)r);
    return 0;
}

int rs_rbd_read(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                uint64_t off, size_t len, void *buf, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .off = off, .len = len,
                       .buf = buf };
    return rs_rbd_with_ioctx(cl, pool, w_read, &a, err);
}

static int w_write(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    int rc = open_image(io, a->pool, a->image, NULL, false, &img, err);
    if (rc < 0)
        return rc;
    ssize_t r = rbd_write(img, a->off, a->len, a->cbuf);
    if (r >= 0)
        rc = rbd_flush(img);
    rbd_close(img);
    if (r < 0 || rc < 0)
        return rs_error_set(err, r < 0 ? (int)r : rc, "%s/%s: write: %s", a->pool, a->image,
                            strerror(r < 0 ? (int)-r : -rc));
    return 0;
}

int rs_rbd_write(rs_cluster *cl, const char *pool, const char *image, uint64_t off, size_t len,
                 const void *buf, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .off = off, .len = len, .cbuf = buf };
    return rs_rbd_with_ioctx(cl, pool, w_write, &a, err);
}

static int w_checksum(rados_ioctx_t io, void *p, rs_error *err)
{
    struct a_img *a = p;
    rbd_image_t img;
    uint64_t size = 0, h = 1469598103934665603ull;
    const size_t chunk = 4u << 20;
    int rc = open_image(io, a->pool, a->image, a->snap, true, &img, err);
    if (rc < 0)
        return rc;
    rs_autofree unsigned char *buf = malloc(chunk);
    if (!buf) {
        rbd_close(img);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    rc = rbd_get_size(img, &size);
    for (uint64_t off = 0; rc == 0 && off < size; off += chunk) {
        size_t len = (size - off < chunk) ? (size_t)(size - off) : chunk;
        ssize_t r = rbd_read(img, off, len, (char *)buf);
        if (r < 0) {
            rc = (int)r;
            break;
        }
        if ((size_t)r < len)
            memset(buf + r, 0, len - (size_t)r);
        for (size_t i = 0; i < len; i++) {
            h ^= buf[i];
            h *= 1099511628211ull;
        }
    }
    rbd_close(img);
    if (rc < 0)
        return rs_error_set(err, rc, OBJ_FMT ": checksum read: %s",
                            OBJ_ARGS(a->pool, a->image, a->snap), strerror(-rc));
    *a->out64 = h;
    return 0;
}

int rs_rbd_checksum(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                    uint64_t *sum, rs_error *err)
{
    struct a_img a = { .pool = pool, .image = image, .snap = snap, .out64 = sum };
    return rs_rbd_with_ioctx(cl, pool, w_checksum, &a, err);
}

/* ---- clone format ---------------------------------------------------- */

int rs_rbd_clone_format_for_release(const char *release)
{
    static const char *const v2[] = { "mimic", "nautilus", "octopus", "pacific", "quincy",
                                       "reef", "squid", "tentacle" };
    if (!release)
        return 1;
    for (size_t i = 0; i < sizeof(v2) / sizeof(v2[0]); i++)
        if (strcmp(release, v2[i]) == 0)
            return 2;
    return 1;
}

int rs_rbd_clone_format_auto(rs_cluster *cl, int *format, rs_error *err)
{
    rs_autofree char *out = NULL;
    json_error_t jerr;
    json_t *root;
    const char *rel;
    int rc = rs_cluster_mon_command(cl, "{\"prefix\": \"osd dump\", \"format\": \"json\"}", &out,
                                    err);
    if (rc < 0)
        return rc;
    root = json_loads(out, 0, &jerr);
    if (!root)
        return rs_error_set(err, -EPROTO, "osd dump: bad JSON: %s", jerr.text);
    rel = json_string_value(json_object_get(root, "require_min_compat_client"));
    *format = rs_rbd_clone_format_for_release(rel);
    rs_debug("msg=\"clone format auto\" require_min_compat_client=%s format=%d",
             rel ? rel : "?", *format);
    json_decref(root);
    return 0;
}

/* ---- open image handles ------------------------------------------------ */

struct rs_rbd_image {
    rs_cluster *cl;
    void *io;
    rbd_image_t img;
    char *pool, *name;
    int last_rc;
};

int rs_rbd_image_open(rs_cluster *cl, const char *pool, const char *image, rs_rbd_image **out,
                      rs_error *err)
{
    rs_rbd_image *h = calloc(1, sizeof(*h));
    int rc;

    if (!h)
        return rs_error_set(err, -ENOMEM, "out of memory");
    for (int attempt = 0; attempt < 2; attempt++) {
        rs_error tmp = RS_ERROR_INIT;
        rc = rs_cluster_ioctx_get(cl, pool, &h->io, &tmp);
        if (rc == 0) {
            rc = open_image((rados_ioctx_t)h->io, pool, image, NULL, false, &h->img, &tmp);
            if (rc < 0)
                rs_cluster_ioctx_put_rc(cl, h->io, rc);
        }
        if (rc == 0)
            break;
        if (!rs_cluster_rc_is_disconnect(rc) || attempt == 1) {
            if (err && !rs_error_isset(err))
                *err = tmp;
            free(h);
            return rc;
        }
    }
    h->cl = cl;
    h->pool = strdup(pool);
    h->name = strdup(image);
    if (!h->pool || !h->name) {
        rs_rbd_image_close(h);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    *out = h;
    return 0;
}

void rs_rbd_image_close(rs_rbd_image *h)
{
    if (!h)
        return;
    rbd_close(h->img);
    rs_cluster_ioctx_put_rc(h->cl, h->io, h->last_rc);
    free(h->pool);
    free(h->name);
    free(h);
}

static int h_rc(rs_rbd_image *h, int rc)
{
    if (rc < 0 && rs_cluster_rc_is_disconnect(rc))
        h->last_rc = rc;
    return rc;
}

int rs_rbd_h_snap_create(rs_rbd_image *h, const char *snap, rs_error *err)
{
    return h_rc(h, img_snap_create(h->img, h->pool, h->name, snap, err));
}

int rs_rbd_h_snap_protect(rs_rbd_image *h, const char *snap, rs_error *err)
{
    return h_rc(h, img_protect(h->img, h->pool, h->name, snap, err));
}

int rs_rbd_h_snap_remove(rs_rbd_image *h, const char *snap, bool unprotect, rs_error *err)
{
    return h_rc(h, img_snap_remove(h->img, h->pool, h->name, snap, unprotect, err));
}

int rs_rbd_h_metadata_set_many(rs_rbd_image *h, const char *const *keys,
                               const char *const *values, size_t n, rs_error *err)
{
    return h_rc(h, img_md_set_many(h->img, h->pool, h->name, keys, values, n, err));
}

int rs_rbd_h_metadata_remove(rs_rbd_image *h, const char *key, rs_error *err)
{
    return h_rc(h, img_md_remove(h->img, h->pool, h->name, key, err));
}

int rs_rbd_h_size(rs_rbd_image *h, uint64_t *size, rs_error *err)
{
    int rc = rbd_get_size(h->img, size);
    if (rc < 0)
        return h_rc(h, rs_error_set(err, rc, "%s/%s: get size: %s", h->pool, h->name,
                                    strerror(-rc)));
    return 0;
}
