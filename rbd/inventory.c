/*
 * inventory.c - the reaper's scan of the RBD pools, its by-id removals and
 * the cluster-wide reaper lock; see inventory.h.
 *
 * Design: listing a pool (rbd_list2, rbd_trash_list) is cheap; what costs
 * is the per-image work (open, metadata, children), each a round trip to an
 * OSD.  A scan therefore lists first, then hands the entries to a few
 * threads that share the pool's ioctx (librados ioctxs are thread-safe and
 * librbd copies it per open) and take the next entry with an atomic
 * counter.  Each thread writes only its own slots of the result array, so
 * nothing is locked.  Images are opened read-only and by id, which works
 * for live images and trash entries alike and never registers a watch.
 */
#define RS_LOG_MODULE "rbd.inventory"
#include "rbd/inventory.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#define DEFAULT_MD_PREFIX "rbdsnap."
#define JOURNAL_OBJECT "rbdsnap.journal"
#define JOURNAL_OWN_PREFIX "own."
#define GC_LOCK_NAME "rbdsnap.gc"

void rs_inv_opts_init(rs_inv_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->md_prefix = DEFAULT_MD_PREFIX;
    o->threads = 8;
    o->lock_owners = true;
    o->with_trash = true;
    o->fast = true;
}

/* ---- freeing ------------------------------------------------------------- */

static void snap_clear(rs_inv_snap *s)
{
    free(s->name);
    free(s->original_name);
    for (size_t i = 0; i < s->nchildren; i++) {
        free(s->children[i].pool);
        free(s->children[i].image_id);
        free(s->children[i].image_name);
    }
    free(s->children);
}

static void image_clear(rs_inv_image *im)
{
    free(im->pool);
    free(im->id);
    free(im->name);
    free(im->parent_pool);
    free(im->parent_id);
    free(im->parent_name);
    for (size_t i = 0; i < im->nmd; i++) {
        free(im->md_keys[i]);
        free(im->md_values[i]);
    }
    free(im->md_keys);
    free(im->md_values);
    for (size_t i = 0; i < im->nsnaps; i++)
        snap_clear(&im->snaps[i]);
    free(im->snaps);
    memset(im, 0, sizeof(*im));
}

void rs_inv_pool_free(rs_inv_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nimages; i++)
        image_clear(&p->images[i]);
    free(p->images);
    free(p->pool);
    free(p);
}

void rs_inv_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

const char *rs_inv_image_md(const rs_inv_image *im, const char *key)
{
    for (size_t i = 0; im && i < im->nmd; i++)
        if (strcmp(im->md_keys[i], key) == 0)
            return im->md_values[i];
    return NULL;
}

/* ---- one image ------------------------------------------------------------- */

static int read_metadata(rbd_image_t img, const char *prefix, rs_inv_image *im)
{
    size_t klen = 4096, vlen = 4096;
    char *kbuf = NULL, *vbuf = NULL;
    int rc;

    /* Keys are sorted: start just before the prefix, stop after it. */
    for (int attempt = 0; attempt < 8; attempt++) {
        free(kbuf);
        free(vbuf);
        kbuf = malloc(klen);
        vbuf = malloc(vlen);
        if (!kbuf || !vbuf) {
            rc = -ENOMEM;
            goto out;
        }
        rc = rbd_metadata_list(img, prefix, 0, kbuf, &klen, vbuf, &vlen);
        if (rc != -ERANGE)
            break;
    }
    if (rc < 0)
        goto out;
    size_t count = 0;
    for (const char *k = kbuf; k < kbuf + klen && *k; k += strlen(k) + 1)
        count++;
    im->md_keys = calloc(count + 1, sizeof(char *));
    im->md_values = calloc(count + 1, sizeof(char *));
    if (!im->md_keys || !im->md_values) {
        rc = -ENOMEM;
        goto out;
    }
    const char *k = kbuf, *v = vbuf;
    for (size_t i = 0; i < count; i++) {
        if (rs_str_has_prefix(k, prefix)) {
            im->md_keys[im->nmd] = strdup(k);
            im->md_values[im->nmd] = strdup(v);
            if (!im->md_keys[im->nmd] || !im->md_values[im->nmd]) {
                free(im->md_keys[im->nmd]);
                free(im->md_values[im->nmd]);
                rc = -ENOMEM;
                goto out;
            }
            im->nmd++;
        }
        k += strlen(k) + 1;
        v += strlen(v) + 1;
    }
    rc = 0;
out:
    free(kbuf);
    free(vbuf);
    return rc;
}

/* Children of the snapshot @img is set to. */
static int read_children(rbd_image_t img, rs_inv_snap *s)
{
    size_t max = 8;

    for (int attempt = 0; attempt < 8; attempt++) {
        rbd_linked_image_spec_t *specs = calloc(max, sizeof(*specs));
        size_t m = max;
        int rc;

        if (!specs)
            return -ENOMEM;
        rc = rbd_list_children3(img, specs, &m);
        if (rc == -ERANGE) {
            free(specs);
            max = m + 8;
            continue;
        }
        if (rc < 0) {
            free(specs);
            return rc;
        }
        s->children = calloc(m + 1, sizeof(*s->children));
        if (s->children) {
            for (size_t i = 0; i < m; i++) {
                rs_inv_child *c = &s->children[i];
                c->pool = strdup(specs[i].pool_name);
                c->image_id = strdup(specs[i].image_id);
                c->image_name = strdup(specs[i].image_name);
                c->trash = specs[i].trash;
                s->nchildren++;
                if (!c->pool || !c->image_id || !c->image_name) {
                    rc = -ENOMEM;
                    break;
                }
            }
        } else {
            rc = -ENOMEM;
        }
        rbd_linked_image_spec_list_cleanup(specs, m);
        free(specs);
        return rc < 0 ? rc : 0;
    }
    return -ERANGE;
}

static int read_snaps(rbd_image_t img, rs_inv_image *im)
{
    int max = 16, rc;
    rbd_snap_info_t *raw = NULL;

    for (int attempt = 0; attempt < 8; attempt++) {
        raw = calloc((size_t)max + 1, sizeof(*raw));
        if (!raw)
            return -ENOMEM;
        rc = rbd_snap_list(img, raw, &max);
        if (rc != -ERANGE)
            break;
        free(raw);
        raw = NULL;
    }
    if (rc < 0) {
        free(raw);
        return rc;
    }
    size_t n = (size_t)rc;
    im->snaps = calloc(n + 1, sizeof(*im->snaps));
    if (!im->snaps) {
        rbd_snap_list_end(raw);
        free(raw);
        return -ENOMEM;
    }
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rs_inv_snap *s = &im->snaps[i];
        rbd_snap_namespace_type_t t = RBD_SNAP_NAMESPACE_TYPE_USER;
        struct timespec ts = { 0, 0 };

        im->nsnaps++;
        s->id = raw[i].id;
        s->name = strdup(raw[i].name);
        if (!s->name) {
            rc = -ENOMEM;
            break;
        }
        rc = rbd_snap_get_namespace_type(img, raw[i].id, &t);
        if (rc < 0)
            break;
        s->ns = (int)t;
        if (t == RBD_SNAP_NAMESPACE_TYPE_TRASH) {
            char orig[512] = "";
            rc = rbd_snap_get_trash_namespace(img, raw[i].id, orig, sizeof(orig));
            if (rc < 0)
                break;
            s->original_name = strdup(orig);
            if (!s->original_name) {
                rc = -ENOMEM;
                break;
            }
        } else if (t == RBD_SNAP_NAMESPACE_TYPE_USER) {
            int prot = 0;
            rc = rbd_snap_is_protected(img, raw[i].name, &prot);
            if (rc < 0)
                break;
            s->is_protected = prot != 0;
        }
        if (rbd_snap_get_timestamp(img, raw[i].id, &ts) == 0)
            s->created_at = (int64_t)ts.tv_sec;
        rc = rbd_snap_set_by_id(img, raw[i].id);
        if (rc < 0)
            break;
        rc = read_children(img, s);
    }
    rbd_snap_list_end(raw);
    free(raw);
    return rc;
}

typedef struct entry {
    char *id;
    char *name;
    bool trash;
    int source;
    int64_t deleted_at, deferment_end;
} entry;

/* The fast path: one omap read of the image header (rbd_header.<id>)
 * gives size, creation time, metadata and whether the image has snapshots
 * or a parent, without the cost of an rbd_open (which builds a whole image
 * context: most of a scan's CPU time).  Returns 1 when @im is complete (a
 * plain image: no snapshot, no parent, no migration), 0 when the full open
 * is needed, or a negative errno. */
static int scan_fast(rados_ioctx_t io, const entry *e, const char *prefix, rs_inv_image *im)
{
    char oid[300];
    rados_read_op_t op;
    rados_omap_iter_t it = NULL;
    unsigned char more = 0;
    int prval = 0, rc, verdict = 1;
    size_t plen = strlen(prefix);

    if (!e->id[0] || e->trash)
        return 0;
    snprintf(oid, sizeof(oid), "rbd_header.%s", e->id);
    op = rados_create_read_op();
    rados_read_op_omap_get_vals2(op, "", "", 256, &it, &more, &prval);
    rc = rados_read_op_operate(op, io, oid, 0);
    if (rc == 0)
        rc = prval;
    if (rc < 0) {
        if (it)
            rados_omap_get_end(it);
        rados_release_read_op(op);
        return rc == -ENOENT ? 0 : rc;   /* old format or gone: let the open decide */
    }
    if (more)
        verdict = 0;
    size_t nmd = 0, cap = 0;
    char *key, *val;
    size_t klen, vlen;
    bool have_size = false;
    while (verdict == 1 && rados_omap_get_next2(it, &key, &val, &klen, &vlen) == 0 && key) {
        if ((klen > 9 && strncmp(key, "snapshot_", 9) == 0) ||
            (klen == 6 && strncmp(key, "parent", 6) == 0) ||
            (klen >= 9 && strncmp(key, "migration", 9) == 0)) {
            verdict = 0;
        } else if (klen == 4 && strncmp(key, "size", 4) == 0 && vlen == 8) {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--)
                v = (v << 8) | (unsigned char)val[b];
            im->size = v;
            have_size = true;
        } else if (klen == 16 && strncmp(key, "create_timestamp", 16) == 0 && vlen >= 4) {
            uint32_t sec = 0;
            for (int b = 3; b >= 0; b--)
                sec = (sec << 8) | (unsigned char)val[b];
            im->created_at = (int64_t)sec;
        } else if (klen > 9 + plen && strncmp(key, "metadata_", 9) == 0 &&
                   strncmp(key + 9, prefix, plen) == 0) {
            if (nmd == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char **nk = realloc(im->md_keys, (nc + 1) * sizeof(char *));
                if (nk)
                    im->md_keys = nk;
                char **nv = realloc(im->md_values, (nc + 1) * sizeof(char *));
                if (nv)
                    im->md_values = nv;
                if (!nk || !nv) {
                    verdict = -ENOMEM;
                    break;
                }
                cap = nc;
            }
            im->md_keys[nmd] = strndup(key + 9, klen - 9);
            /* an empty value comes back as NULL */
            im->md_values[nmd] = strndup(val ? val : "", val ? vlen : 0);
            if (!im->md_keys[nmd] || !im->md_values[nmd]) {
                free(im->md_keys[nmd]);
                free(im->md_values[nmd]);
                verdict = -ENOMEM;
                break;
            }
            im->nmd = ++nmd;
        }
    }
    rados_omap_get_end(it);
    rados_release_read_op(op);
    if (verdict == 1 && !have_size)
        verdict = 0;   /* not a header we understand */
    if (verdict != 1) {
        /* Start over with the full open. */
        for (size_t i = 0; i < im->nmd; i++) {
            free(im->md_keys[i]);
            free(im->md_values[i]);
        }
        free(im->md_keys);
        free(im->md_values);
        im->md_keys = im->md_values = NULL;
        im->nmd = 0;
        im->size = 0;
        im->created_at = 0;
        return verdict;
    }
    return 1;
}

/* Fill @im from entry @e.  Returns 0, or -ENOENT if it vanished; other
 * errors are recorded in im->error (and returned). */
static int scan_one(rados_ioctx_t io, const char *pool, const entry *e, const rs_inv_opts *o,
                    rs_inv_image *im)
{
    rbd_image_t img = NULL;
    struct timespec ts = { 0, 0 };
    const char *step = "open";
    int rc;

    im->pool = strdup(pool);
    im->id = strdup(e->id);
    im->name = strdup(e->name);
    im->in_trash = e->trash;
    im->trash_source = e->source;
    im->trash_deleted_at = e->deleted_at;
    im->trash_deferment_end = e->deferment_end;
    if (!im->pool || !im->id || !im->name) {
        rc = -ENOMEM;
        goto fail;
    }
    /* A plain image that is no candidate by name or tag needs no open: its
     * lock owners cannot matter (the policy never deletes it on its own). */
    if (o->fast && !rs_str_has_suffix(e->name, "_to_be_deleted_by_glance")) {
        step = "header";
        rc = scan_fast(io, e, o->md_prefix ? o->md_prefix : DEFAULT_MD_PREFIX, im);
        if (rc < 0 && rc != -ENOENT)
            goto fail;
        if (rc == 1 && (im->nmd == 0 || !o->lock_owners))
            return 0;
        if (rc == 1) {
            for (size_t i = 0; i < im->nmd; i++) {
                free(im->md_keys[i]);
                free(im->md_values[i]);
            }
            free(im->md_keys);
            free(im->md_values);
            im->md_keys = im->md_values = NULL;
            im->nmd = 0;
        }
        step = "open";
    }
    rc = rbd_open_by_id_read_only(io, e->id, &img, NULL);
    if (rc == -ENOENT)
        return rc;
    if (rc < 0)
        goto fail;
    step = "size";
    rc = rbd_get_size(img, &im->size);
    if (rc < 0)
        goto fail;
    if (rbd_get_create_timestamp(img, &ts) == 0)
        im->created_at = (int64_t)ts.tv_sec;

    step = "parent";
    rbd_linked_image_spec_t pimg;
    rbd_snap_spec_t psnap;
    rc = rbd_get_parent(img, &pimg, &psnap);
    if (rc == 0) {
        im->parent_pool = strdup(pimg.pool_name);
        im->parent_id = strdup(pimg.image_id);
        im->parent_name = strdup(pimg.image_name);
        im->parent_snap_id = psnap.id;
        rbd_linked_image_spec_cleanup(&pimg);
        rbd_snap_spec_cleanup(&psnap);
        if (!im->parent_pool || !im->parent_id || !im->parent_name) {
            rc = -ENOMEM;
            goto fail;
        }
    } else if (rc != -ENOENT) {
        goto fail;
    }

    step = "metadata";
    rc = read_metadata(img, o->md_prefix ? o->md_prefix : DEFAULT_MD_PREFIX, im);
    if (rc < 0)
        goto fail;
    step = "snapshots";
    rc = read_snaps(img, im);
    if (rc < 0)
        goto fail;
    if (o->lock_owners && !e->trash) {
        rbd_lock_mode_t mode;
        char *owners[8];
        size_t nown = 8;
        step = "lock owners";
        rc = rbd_lock_get_owners(img, &mode, owners, &nown);
        if (rc == 0) {
            im->lock_owners = (unsigned)nown;
            rbd_lock_get_owners_cleanup(owners, nown);
        } else if (rc == -ENOENT || rc == -EOPNOTSUPP || rc == -EINVAL) {
            rc = 0;   /* no owner, or no exclusive-lock feature */
        } else if (rc == -ERANGE) {
            im->lock_owners = 8;
            rc = 0;
        } else {
            goto fail;
        }
    }
    rbd_close(img);
    return 0;
fail:
    if (img)
        rbd_close(img);
    if (rc == -ENOENT && strcmp(step, "open") != 0)
        return rc;   /* removed while we read it */
    im->error = rc < 0 ? rc : -EIO;
    rs_warn("msg=\"cannot read image\" pool=%s image=%s id=%s step=%s rc=%d (%s)", pool,
            e->name, e->id, step, rc, strerror(-im->error));
    return im->error;
}

/* ---- a pool, in parallel --------------------------------------------------- */

typedef struct scan_ctx {
    rados_ioctx_t io;
    const char *pool;
    const rs_inv_opts *o;
    entry *entries;
    rs_inv_image *images;
    int *rcs;
    size_t n;
    atomic_size_t next;
} scan_ctx;

static void *scan_worker(void *arg)
{
    scan_ctx *c = arg;

    for (;;) {
        size_t i = atomic_fetch_add(&c->next, 1);
        if (i >= c->n)
            break;
        if (c->o->stop && atomic_load(c->o->stop)) {
            c->rcs[i] = -ECANCELED;
            continue;
        }
        c->rcs[i] = scan_one(c->io, c->pool, &c->entries[i], c->o, &c->images[i]);
    }
    return NULL;
}

static void entries_free(entry *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].id);
        free(e[i].name);
    }
    free(e);
}

static int list_entries(rados_ioctx_t io, const char *pool, bool with_trash, entry **out,
                        size_t *nout, rs_error *err)
{
    rbd_image_spec_t *specs = NULL;
    size_t n = 0;
    int rc;

    for (int attempt = 0; attempt < 8; attempt++) {
        rc = rbd_list2(io, specs, &n);
        if (rc != -ERANGE)
            break;
        rbd_image_spec_t *ns = realloc(specs, (n + 16) * sizeof(*ns));
        if (!ns) {
            free(specs);
            return rs_error_set(err, -ENOMEM, "out of memory");
        }
        specs = ns;
        n += 16;
    }
    if (rc < 0) {
        free(specs);
        return rs_error_set(err, rc, "pool %s: list images: %s", pool, strerror(-rc));
    }

    rbd_trash_image_info_t *tr = NULL;
    size_t nt = 0;
    if (with_trash) {
        size_t max = 64;
        for (int attempt = 0; attempt < 8; attempt++) {
            tr = calloc(max, sizeof(*tr));
            if (!tr) {
                rc = -ENOMEM;
                break;
            }
            nt = max;
            rc = rbd_trash_list(io, tr, &nt);
            if (rc != -ERANGE)
                break;
            free(tr);
            tr = NULL;
            max = nt + 64;
        }
        if (rc < 0) {
            free(tr);
            rbd_image_spec_list_cleanup(specs, n);
            free(specs);
            return rs_error_set(err, rc, "pool %s: list trash: %s", pool, strerror(-rc));
        }
        nt = (size_t)rc;
    }

    entry *e = calloc(n + nt + 1, sizeof(*e));
    size_t m = 0;
    rc = e ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++, m++) {
        e[m].id = strdup(specs[i].id);
        e[m].name = strdup(specs[i].name);
        if (!e[m].id || !e[m].name)
            rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < nt; i++, m++) {
        e[m].id = strdup(tr[i].id);
        e[m].name = strdup(tr[i].name);
        e[m].trash = true;
        e[m].source = (int)tr[i].source;
        e[m].deleted_at = (int64_t)tr[i].deletion_time;
        e[m].deferment_end = (int64_t)tr[i].deferment_end_time;
        if (!e[m].id || !e[m].name)
            rc = -ENOMEM;
    }
    if (specs) {
        rbd_image_spec_list_cleanup(specs, n);
        free(specs);
    }
    if (tr) {
        rbd_trash_list_cleanup(tr, nt);
        free(tr);
    }
    if (rc < 0) {
        entries_free(e, n + nt);
        return rs_error_set(err, rc, "out of memory");
    }
    *out = e;
    *nout = m;
    return 0;
}

int rs_inv_scan_pool(rs_cluster *cl, const char *pool, const rs_inv_opts *opts,
                     rs_inv_pool **out, rs_error *err)
{
    rs_inv_opts defaults;
    void *iov = NULL;
    entry *entries = NULL;
    size_t n = 0;
    uint64_t t0 = rs_now_ms();
    int rc;

    *out = NULL;
    if (!opts) {
        rs_inv_opts_init(&defaults);
        opts = &defaults;
    }
    rc = rs_cluster_ioctx_get(cl, pool, &iov, err);
    if (rc < 0)
        return rc;
    rados_ioctx_t io = (rados_ioctx_t)iov;
    rc = list_entries(io, pool, opts->with_trash, &entries, &n, err);
    if (rc < 0) {
        rs_cluster_ioctx_put_rc(cl, iov, rc);
        return rc;
    }

    rs_inv_pool *p = calloc(1, sizeof(*p));
    scan_ctx c = { .io = io, .pool = pool, .o = opts, .entries = entries, .n = n };
    c.images = calloc(n + 1, sizeof(*c.images));
    c.rcs = calloc(n + 1, sizeof(*c.rcs));
    if (!p || !c.images || !c.rcs || !(p->pool = strdup(pool))) {
        rs_cluster_ioctx_put(cl, iov);
        entries_free(entries, n);
        free(c.images);
        free(c.rcs);
        if (p)
            free(p->pool);
        free(p);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    atomic_init(&c.next, 0);

    int nthreads = opts->threads > 0 ? opts->threads : 8;
    if ((size_t)nthreads > n)
        nthreads = n > 0 ? (int)n : 1;
    pthread_t tids[64];
    int started = 0;
    if (nthreads > 64)
        nthreads = 64;
    for (int t = 1; t < nthreads; t++) {
        if (pthread_create(&tids[started], NULL, scan_worker, &c) != 0)
            break;
        started++;
    }
    scan_worker(&c);   /* the calling thread works too */
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);

    /* Compact: drop vanished entries, count errors. */
    int first_conn_err = 0;
    bool cancelled = false;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (c.rcs[i] == -ECANCELED) {
            cancelled = true;
            image_clear(&c.images[i]);
            continue;
        }
        if (c.rcs[i] == -ENOENT) {
            p->nvanished++;
            image_clear(&c.images[i]);
            continue;
        }
        if (c.images[i].error) {
            p->nerrors++;
            if (!first_conn_err && rs_cluster_rc_is_disconnect(c.images[i].error))
                first_conn_err = c.images[i].error;
        }
        if (m != i)
            c.images[m] = c.images[i];
        m++;
    }
    free(c.rcs);
    entries_free(entries, n);
    p->images = c.images;
    p->nimages = m;
    p->nlisted = n;
    p->dur_ms = rs_now_ms() - t0;
    rs_cluster_ioctx_put_rc(cl, iov, first_conn_err);
    if (cancelled) {
        rs_inv_pool_free(p);
        return rs_error_set(err, -ECANCELED, "pool %s: scan cancelled", pool);
    }
    if (first_conn_err) {
        rs_inv_pool_free(p);
        return rs_error_set(err, first_conn_err, "pool %s: connection lost during the scan",
                            pool);
    }
    rs_debug("msg=\"pool scanned\" pool=%s listed=%zu images=%zu vanished=%zu errors=%zu "
             "threads=%d dur_ms=%llu", pool, n, m, p->nvanished, p->nerrors, nthreads,
             (unsigned long long)p->dur_ms);
    *out = p;
    return 0;
}

/* ---- the journal's jobs ------------------------------------------------------ */

/* A private ioctx for @pool bound to namespace @ns (the cached one is
 * shared and must keep the default namespace). */
static int ns_ioctx(rs_cluster *cl, const char *pool, const char *ns, void **borrowed,
                    rados_ioctx_t *io, rs_error *err)
{
    int rc = rs_cluster_ioctx_get(cl, pool, borrowed, err);
    if (rc < 0)
        return rc;
    rados_ioctx_t b = (rados_ioctx_t)*borrowed;
    rc = rados_ioctx_create2(rados_ioctx_get_cluster(b), rados_ioctx_get_id(b), io);
    if (rc < 0) {
        rs_cluster_ioctx_put_rc(cl, *borrowed, rc);
        *borrowed = NULL;
        return rs_error_set(err, rc, "pool %s: ioctx: %s", pool, strerror(-rc));
    }
    rados_ioctx_set_namespace(*io, ns ? ns : "");
    return 0;
}

int rs_inv_journal_jobs(rs_cluster *cl, const char *pool, const char *ns, char ***ids,
                        size_t *n, rs_error *err)
{
    void *borrowed = NULL;
    rados_ioctx_t io;
    char **v = NULL;
    size_t m = 0, cap = 0;
    char after[512] = "";
    int rc;

    *ids = NULL;
    *n = 0;
    rc = ns_ioctx(cl, pool, ns, &borrowed, &io, err);
    if (rc < 0)
        return rc;
    for (;;) {
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = NULL;
        unsigned char more = 0;
        int prval = 0;
        rados_read_op_omap_get_keys2(op, after, 1000, &it, &more, &prval);
        rc = rados_read_op_operate(op, io, JOURNAL_OBJECT, 0);
        if (rc == 0)
            rc = prval;
        if (rc < 0) {
            if (it)
                rados_omap_get_end(it);
            rados_release_read_op(op);
            if (rc == -ENOENT)
                rc = 0;   /* no journal: no jobs */
            else
                rs_error_set(err, rc, "%s/%s%s%s: journal keys: %s", pool, ns ? ns : "",
                             ns && *ns ? "/" : "", JOURNAL_OBJECT, strerror(-rc));
            break;
        }
        char *key, *val;
        size_t klen, vlen;
        size_t got = 0;
        while (rados_omap_get_next2(it, &key, &val, &klen, &vlen) == 0 && key) {
            got++;
            snprintf(after, sizeof(after), "%.*s", (int)klen, key);
            if (klen <= strlen(JOURNAL_OWN_PREFIX) ||
                strncmp(key, JOURNAL_OWN_PREFIX, strlen(JOURNAL_OWN_PREFIX)) != 0)
                continue;
            if (m == cap) {
                size_t nc = cap ? cap * 2 : 16;
                char **nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    rc = -ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            v[m] = strndup(key + strlen(JOURNAL_OWN_PREFIX), klen - strlen(JOURNAL_OWN_PREFIX));
            if (!v[m]) {
                rc = -ENOMEM;
                break;
            }
            m++;
        }
        rados_omap_get_end(it);
        rados_release_read_op(op);
        if (rc < 0) {
            rs_error_set(err, rc, "out of memory");
            break;
        }
        if (!more || got == 0)
            break;
    }
    rados_ioctx_destroy(io);
    rs_cluster_ioctx_put_rc(cl, borrowed, rc);
    if (rc < 0) {
        rs_inv_names_free(v, m);
        return rc;
    }
    *ids = v;
    *n = m;
    return 0;
}

/* ---- removals ---------------------------------------------------------------- */

static int open_rw_by_id(rs_cluster *cl, const char *pool, const char *image_id, void **iov,
                         rbd_image_t *img, rs_error *err)
{
    int rc = rs_cluster_ioctx_get(cl, pool, iov, err);
    if (rc < 0)
        return rc;
    rc = rbd_open_by_id((rados_ioctx_t)*iov, image_id, img, NULL);
    if (rc < 0) {
        rs_cluster_ioctx_put_rc(cl, *iov, rc);
        *iov = NULL;
        return rs_error_set(err, rc, "%s/(id %s): open: %s", pool, image_id, strerror(-rc));
    }
    return 0;
}

int rs_inv_snap_unprotect(rs_cluster *cl, const char *pool, const char *image_id,
                          uint64_t snap_id, rs_error *err)
{
    void *iov = NULL;
    rbd_image_t img;
    char name[512];
    size_t len = sizeof(name);
    int rc = open_rw_by_id(cl, pool, image_id, &iov, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_snap_get_name(img, snap_id, name, &len);
    if (rc == 0) {
        int prot = 0;
        rc = rbd_snap_is_protected(img, name, &prot);
        if (rc == 0 && prot)
            rc = rbd_snap_unprotect(img, name);
        if (rc == -EINVAL)
            rc = 0;   /* not protected (or a namespace that cannot be) */
    }
    rbd_close(img);
    rs_cluster_ioctx_put_rc(cl, iov, rc);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/(id %s)@%s (snap id %llu): unprotect: %s", pool,
                            image_id, rc == -ENOENT ? "?" : name,
                            (unsigned long long)snap_id, strerror(-rc));
    return 0;
}

int rs_inv_snap_remove(rs_cluster *cl, const char *pool, const char *image_id,
                       uint64_t snap_id, rs_error *err)
{
    void *iov = NULL;
    rbd_image_t img;
    int rc = open_rw_by_id(cl, pool, image_id, &iov, &img, err);
    if (rc < 0)
        return rc;
    rc = rbd_snap_remove_by_id(img, snap_id);
    rbd_close(img);
    rs_cluster_ioctx_put_rc(cl, iov, rc);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/(id %s) snap id %llu: remove: %s", pool, image_id,
                            (unsigned long long)snap_id, strerror(-rc));
    return 0;
}

int rs_inv_image_remove(rs_cluster *cl, const char *pool, const char *name,
                        const char *image_id, rs_error *err)
{
    void *iov = NULL;
    rbd_image_t img;
    char id[256] = "";
    int rc = rs_cluster_ioctx_get(cl, pool, &iov, err);
    if (rc < 0)
        return rc;
    rados_ioctx_t io = (rados_ioctx_t)iov;
    rc = rbd_open_read_only(io, name, &img, NULL);
    if (rc == 0) {
        rc = rbd_get_id(img, id, sizeof(id));
        rbd_close(img);
    }
    if (rc == 0 && image_id && strcmp(id, image_id) != 0) {
        rs_cluster_ioctx_put(cl, iov);
        return rs_error_set(err, -ESTALE, "%s/%s: now has id %s, not %s: left alone", pool,
                            name, id, image_id);
    }
    if (rc == 0)
        rc = rbd_remove(io, name);
    rs_cluster_ioctx_put_rc(cl, iov, rc);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/%s: remove: %s", pool, name, strerror(-rc));
    return 0;
}

int rs_inv_trash_remove(rs_cluster *cl, const char *pool, const char *image_id, rs_error *err)
{
    void *iov = NULL;
    int rc = rs_cluster_ioctx_get(cl, pool, &iov, err);
    if (rc < 0)
        return rc;
    rc = rbd_trash_remove((rados_ioctx_t)iov, image_id, false);
    rs_cluster_ioctx_put_rc(cl, iov, rc);
    if (rc < 0)
        return rs_error_set(err, rc, "%s/(trash id %s): remove: %s", pool, image_id,
                            strerror(-rc));
    return 0;
}

/* ---- the reaper lock ----------------------------------------------------------- */

struct rs_inv_lock {
    rs_cluster *cl;
    void *borrowed;
    rados_ioctx_t io;
    char *oid;
    char cookie[40];
    int duration;
    uint64_t taken_ms;
};

static char *describe_holder(rados_ioctx_t io, const char *oid)
{
    char tag[256], clients[1024], cookies[1024], addrs[1024];
    size_t tl = sizeof(tag), cl = sizeof(clients), kl = sizeof(cookies), al = sizeof(addrs);
    int excl = 0;
    ssize_t n = rados_list_lockers(io, oid, GC_LOCK_NAME, &excl, tag, &tl, clients, &cl,
                                   cookies, &kl, addrs, &al);
    if (n <= 0)
        return strdup("another reaper (lock holder unknown)");
    return rs_strdup_printf("%s at %s", clients, addrs);
}

int rs_inv_lock_acquire(rs_cluster *cl, const char *pool, const char *ns, const char *oid,
                        int duration_s, rs_inv_lock **out, char **holder, rs_error *err)
{
    rs_inv_lock *l = calloc(1, sizeof(*l));
    char desc[256], host[128] = "?";
    int rc;

    *out = NULL;
    if (holder)
        *holder = NULL;
    if (!l || !(l->oid = strdup(oid))) {
        free(l);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    rc = ns_ioctx(cl, pool, ns, &l->borrowed, &l->io, err);
    if (rc < 0) {
        free(l->oid);
        free(l);
        return rc;
    }
    l->cl = rs_cluster_ref(cl);
    l->duration = duration_s > 0 ? duration_s : 60;
    rs_random_hex(l->cookie, 16);
    gethostname(host, sizeof(host) - 1);
    snprintf(desc, sizeof(desc), "rbdsnap gc on %s pid %d", host, (int)getpid());
    struct timeval d = { .tv_sec = l->duration, .tv_usec = 0 };
    rc = rados_lock_exclusive(l->io, l->oid, GC_LOCK_NAME, l->cookie, desc, &d, 0);
    if (rc == -EEXIST)
        rc = -EBUSY;   /* (same client and cookie: cannot happen with a fresh cookie) */
    if (rc < 0) {
        if (rc == -EBUSY) {
            char *h = describe_holder(l->io, l->oid);
            rs_error_set(err, rc, "%s/%s%s%s: the reaper lock is held by %s", pool,
                         ns ? ns : "", ns && *ns ? "/" : "", oid, h ? h : "someone else");
            if (holder)
                *holder = h;
            else
                free(h);
        } else {
            rs_error_set(err, rc, "%s/%s: reaper lock: %s", pool, oid, strerror(-rc));
        }
        rs_inv_lock_release(l);   /* frees; unlock of a lock we do not hold is harmless */
        return rc;
    }
    l->taken_ms = rs_now_ms();
    *out = l;
    return 0;
}

int rs_inv_lock_renew(rs_inv_lock *l, rs_error *err)
{
    struct timeval d = { .tv_sec = l->duration, .tv_usec = 0 };
    int rc = rados_lock_exclusive(l->io, l->oid, GC_LOCK_NAME, l->cookie, "rbdsnap gc", &d,
                                  LIBRADOS_LOCK_FLAG_MUST_RENEW);
    if (rc < 0)
        return rs_error_set(err, rc, "%s: reaper lock lost: %s", l->oid, strerror(-rc));
    l->taken_ms = rs_now_ms();
    return 0;
}

int64_t rs_inv_lock_age_ms(const rs_inv_lock *l)
{
    return (int64_t)(rs_now_ms() - l->taken_ms);
}

int rs_inv_lock_duration(const rs_inv_lock *l)
{
    return l->duration;
}

void rs_inv_lock_release(rs_inv_lock *l)
{
    if (!l)
        return;
    if (l->taken_ms)
        rados_unlock(l->io, l->oid, GC_LOCK_NAME, l->cookie);
    rados_ioctx_destroy(l->io);
    rs_cluster_ioctx_put(l->cl, l->borrowed);
    rs_cluster_unref(l->cl);
    free(l->oid);
    free(l);
}
