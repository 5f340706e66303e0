/*
 * deptree.c - the dependency walk shared by tree, graph and ls; see
 * deptree.h.
 *
 * Walk: a FIFO of (pool, name or id) to describe.  The pools in scope are
 * listed first (live images by name, trash entries by id); every snapshot's
 * children (rbd_list_children3, any pool, trash included) are queued by id
 * after them, so an image is described once.  Nodes are indexed by
 * "pool/id" in a small open-addressing hash; linking uses each clone's own
 * parent spec (pool, image id, snapshot id), so a clone appears exactly
 * once, under the snapshot it depends on.  A clone whose parent is outside
 * the walk is a root (its parent is printed next to it).
 */
#define RS_LOG_MODULE "cli.deptree"
#include "cli/deptree.h"

#include "cli/cli.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "glance/glance.h"
#include "glance/glance_conf.h"
#include "rbd/flow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------- */

const char *rs_dep_image_spec(const rs_dep_image *im, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", im->pool, im->name);
    return buf;
}

void rs_dep_fmt_size(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v >= 100 || v == (double)(uint64_t)v)
        snprintf(buf, len, "%.0f %s", v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

void rs_dep_fmt_age(int64_t created, int64_t now, char *buf, size_t len)
{
    int64_t d = now - created;
    if (created <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    if (d < 0)
        d = 0;
    if (d < 120)
        snprintf(buf, len, "%" PRId64 "s", d);
    else if (d < 7200)
        snprintf(buf, len, "%" PRId64 "m", d / 60);
    else if (d < 3 * 86400)
        snprintf(buf, len, "%" PRId64 "h", d / 3600);
    else
        snprintf(buf, len, "%" PRId64 "d", d / 86400);
}

int rs_dep_parse_spec(const char *spec, char **pool, char **image, char **snap, rs_error *err)
{
    const char *slash = strchr(spec, '/');
    const char *at = strchr(spec, '@');

    *pool = *image = NULL;
    if (snap)
        *snap = NULL;
    if (!slash || slash == spec || (at && at < slash))
        return rs_error_set(err, -EINVAL, "%s: expected POOL/IMAGE%s", spec,
                            snap ? "@SNAP" : "");
    if (at && !snap)
        return rs_error_set(err, -EINVAL, "%s: expected POOL/IMAGE (no @SNAP)", spec);
    if (snap && !at)
        return rs_error_set(err, -EINVAL, "%s: expected POOL/IMAGE@SNAP", spec);
    size_t ilen = at ? (size_t)(at - slash - 1) : strlen(slash + 1);
    if (ilen == 0 || strchr(slash + 1, '/') || (at && at[1] == '\0'))
        return rs_error_set(err, -EINVAL, "%s: expected POOL/IMAGE%s", spec,
                            snap ? "@SNAP" : "");
    *pool = strndup(spec, (size_t)(slash - spec));
    *image = strndup(slash + 1, ilen);
    if (snap)
        *snap = strdup(at + 1);
    if (!*pool || !*image || (snap && !*snap)) {
        free(*pool);
        free(*image);
        if (snap)
            free(*snap);
        *pool = *image = NULL;
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int rs_dep_glance_open(const rs_conf *conf, rs_glance **out, rs_error *err)
{
    return rs_glance_open_from_conf(conf, 0, out, err);
}

/* ---- node index ----------------------------------------------------------- */

typedef struct walk {
    rs_deptree *t;
    rs_dep_image **slots;            /* hash by pool/id */
    size_t cap;
    /* queue */
    struct item { char *pool, *name, *id; } *q;
    size_t qn, qcap, qhead;
    const char *prefix;
} walk;

static uint64_t hash_key(const char *pool, const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = pool; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ '/') * 1099511628211ULL;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static rs_dep_image *index_find(const walk *w, const char *pool, const char *id)
{
    if (!w->cap || !id || !*id)
        return NULL;
    for (size_t i = hash_key(pool, id) & (w->cap - 1);; i = (i + 1) & (w->cap - 1)) {
        rs_dep_image *im = w->slots[i];
        if (!im)
            return NULL;
        if (strcmp(im->pool, pool) == 0 && strcmp(im->id, id) == 0)
            return im;
    }
}

static int index_add(walk *w, rs_dep_image *im)
{
    if (!*im->id)
        return 0;
    if ((w->t->nimages + 1) * 2 > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        rs_dep_image **ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < w->cap; i++) {
            rs_dep_image *o = w->slots[i];
            if (!o)
                continue;
            size_t j = hash_key(o->pool, o->id) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = o;
        }
        free(w->slots);
        w->slots = ns;
        w->cap = ncap;
    }
    size_t j = hash_key(im->pool, im->id) & (w->cap - 1);
    while (w->slots[j])
        j = (j + 1) & (w->cap - 1);
    w->slots[j] = im;
    return 0;
}

static int push_ptr(void ***arr, size_t *n, void *p)
{
    void **na = realloc(*arr, (*n + 1) * sizeof(*na));
    if (!na)
        return -ENOMEM;
    na[(*n)++] = p;
    *arr = na;
    return 0;
}

static int enqueue(walk *w, const char *pool, const char *name, const char *id)
{
    if (w->qn == w->qcap) {
        size_t nc = w->qcap ? w->qcap * 2 : 64;
        struct item *nq = realloc(w->q, nc * sizeof(*nq));
        if (!nq)
            return -ENOMEM;
        w->q = nq;
        w->qcap = nc;
    }
    struct item *it = &w->q[w->qn];
    it->pool = strdup(pool);
    it->name = name ? strdup(name) : NULL;
    it->id = id ? strdup(id) : NULL;
    if (!it->pool || (name && !it->name) || (id && !it->id)) {
        free(it->pool);
        free(it->name);
        free(it->id);
        return -ENOMEM;
    }
    w->qn++;
    return 0;
}

/* ---- nodes ----------------------------------------------------------------- */

static void image_free(rs_dep_image *im)
{
    if (!im)
        return;
    for (size_t i = 0; i < im->nsnaps; i++)
        free(im->snaps[i].children);
    free(im->snaps);
    rs_rbd_image_desc_free(im->d);
    free(im->pool);
    free(im->name);
    free(im->id);
    free(im->error);
    free(im->glance_id);
    free(im->glance_name);
    free(im->glance_status);
    free(im->glance_error);
    free(im);
}

void rs_deptree_free(rs_deptree *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nimages; i++)
        image_free(t->images[i]);
    free(t->images);
    free(t->roots);
    rs_rbd_names_free(t->pools, t->npools);
    free(t->glance_pool);
    free(t);
}

static bool snap_is_rbdsnap(const rs_rbd_image_desc *d, const char *name, const char *prefix)
{
    char key[600];
    if (!name)
        return false;
    if (rs_str_has_prefix(name, prefix))
        return true;
    snprintf(key, sizeof(key), "%s%s", RS_MD_SNAP_PREFIX, name);
    return rs_rbd_image_desc_md(d, key) != NULL;
}

/* Does @d carry rbdsnap.* keys of its own?  The source-snapshot keys
 * (rbdsnap.snap.*) do not count, and since librbd copies image metadata
 * into clones, keys with the same value on the parent @p are inherited. */
static bool own_keys(const rs_rbd_image_desc *d, const rs_rbd_image_desc *p)
{
    for (size_t i = 0; i < d->nmd; i++) {
        const char *theirs;
        if (rs_str_has_prefix(d->md_keys[i], RS_MD_SNAP_PREFIX))
            continue;
        theirs = p ? rs_rbd_image_desc_md(p, d->md_keys[i]) : NULL;
        if (!theirs || strcmp(theirs, d->md_values[i]) != 0)
            return true;
    }
    return false;
}

static rs_dep_image *node_new(const char *pool, const char *name, const char *id)
{
    rs_dep_image *im = calloc(1, sizeof(*im));
    if (!im)
        return NULL;
    im->pool = strdup(pool);
    im->name = strdup(name ? name : (id ? id : "?"));
    im->id = strdup(id ? id : "");
    if (!im->pool || !im->name || !im->id) {
        image_free(im);
        return NULL;
    }
    return im;
}

static int process(walk *w, rs_cluster *cl, const struct item *it)
{
    rs_rbd_image_desc *d = NULL;
    rs_error e = RS_ERROR_INIT;
    rs_dep_image *im;
    int rc;

    if (it->id && index_find(w, it->pool, it->id))
        return 0;
    rc = rs_rbd_image_describe(cl, it->pool, it->name, it->id, "rbdsnap.", &d, &e);
    if (rc == -ENOENT && !it->id)
        return 0;                    /* removed since the listing */
    if (rc < 0) {
        rs_warn("pool=%s image=%s id=%s rc=%d msg=\"%s\"", it->pool, it->name ? it->name : "",
                it->id ? it->id : "", rc, rs_error_msg(&e));
        im = node_new(it->pool, it->name, it->id);
        if (!im)
            return -ENOMEM;
        im->error = strdup(rs_error_msg(&e));
        if (push_ptr((void ***)&w->t->images, &w->t->nimages, im) < 0) {
            image_free(im);
            return -ENOMEM;
        }
        return index_add(w, im);
    }
    if (index_find(w, d->pool, d->id)) {
        rs_rbd_image_desc_free(d);
        return 0;
    }
    im = node_new(d->pool, d->name, d->id);
    if (!im) {
        rs_rbd_image_desc_free(d);
        return -ENOMEM;
    }
    im->d = d;
    im->trash = d->trash;
    im->rbdsnap = own_keys(d, NULL);
    im->tbd = rs_str_has_suffix(d->name, RS_DEP_TBD_SUFFIX);
    im->snaps = calloc(d->nsnaps + 1, sizeof(*im->snaps));
    if (!im->snaps) {
        image_free(im);
        return -ENOMEM;
    }
    im->nsnaps = d->nsnaps;
    for (size_t i = 0; i < d->nsnaps; i++) {
        const rs_rbd_xsnap *s = &d->snaps[i];
        im->snaps[i].s = s;
        im->snaps[i].display = s->original_name ? s->original_name : s->name;
        im->snaps[i].rbdsnap = snap_is_rbdsnap(d, im->snaps[i].display, w->prefix);
        for (size_t c = 0; c < s->nchildren; c++) {
            const rs_rbd_xchild *ch = &s->children[c];
            if (!index_find(w, ch->pool, ch->image_id) &&
                enqueue(w, ch->pool, ch->image, ch->image_id) < 0) {
                image_free(im);
                return -ENOMEM;
            }
        }
    }
    if (push_ptr((void ***)&w->t->images, &w->t->nimages, im) < 0) {
        image_free(im);
        return -ENOMEM;
    }
    return index_add(w, im);
}

static int cmp_node(const void *a, const void *b)
{
    const rs_dep_image *x = *(rs_dep_image *const *)a, *y = *(rs_dep_image *const *)b;
    int c = strcmp(x->pool, y->pool);
    return c ? c : strcmp(x->name, y->name);
}

static int link_nodes(walk *w, const rs_deptree_opts *o)
{
    rs_deptree *t = w->t;

    for (size_t i = 0; i < t->nimages; i++) {
        rs_dep_image *im = t->images[i];
        const rs_rbd_image_desc *d = im->d;
        rs_dep_image *p = NULL;
        bool requested = o->image && strcmp(im->pool, o->pool) == 0 &&
                         d && strcmp(im->name, o->image) == 0 && !im->trash;

        if (d && d->parent_pool && !requested)
            p = index_find(w, d->parent_pool, d->parent_image_id);
        if (p) {
            for (size_t s = 0; s < p->nsnaps; s++) {
                if (p->snaps[s].s->id == d->parent_snap_id) {
                    if (push_ptr((void ***)&p->snaps[s].children, &p->snaps[s].nchildren, im) < 0)
                        return -ENOMEM;
                    im->parent = p;
                    im->parent_snap = &p->snaps[s];
                    break;
                }
            }
        }
        if (im->parent && im->rbdsnap)
            im->rbdsnap = own_keys(d, im->parent->d);
        if (!im->parent && push_ptr((void ***)&t->roots, &t->nroots, im) < 0)
            return -ENOMEM;
    }
    if (t->nroots)
        qsort(t->roots, t->nroots, sizeof(*t->roots), cmp_node);
    for (size_t i = 0; i < t->nimages; i++)
        for (size_t s = 0; s < t->images[i]->nsnaps; s++) {
            rs_dep_snap *sn = &t->images[i]->snaps[s];
            if (sn->nchildren > 1)
                qsort(sn->children, sn->nchildren, sizeof(*sn->children), cmp_node);
        }
    return 0;
}

static void glance_lookup(rs_deptree *t, rs_glance *g)
{
    for (size_t i = 0; i < t->nimages; i++) {
        rs_dep_image *im = t->images[i];
        char id[64];
        size_t len = strlen(im->name);

        if (strcmp(im->pool, t->glance_pool) != 0)
            continue;
        if (im->tbd)
            len -= strlen(RS_DEP_TBD_SUFFIX);
        if (len != 36)
            continue;
        memcpy(id, im->name, 36);
        id[36] = '\0';
        if (!rs_is_uuid(id))
            continue;
        rs_glance_image *gi = NULL;
        rs_error e = RS_ERROR_INIT;
        int rc = rs_glance_image_get(g, id, &gi, &e);
        im->glance_checked = true;
        im->glance_id = strdup(id);
        if (rc == 0) {
            im->glance_found = true;
            im->glance_name = gi->name ? strdup(gi->name) : NULL;
            im->glance_status = gi->status ? strdup(gi->status) : NULL;
            rs_glance_image_free(gi);
        } else if (rc != -ENOENT) {
            im->glance_error = strdup(rs_error_msg(&e));
        }
    }
}

int rs_deptree_build(rs_cluster *cl, const rs_deptree_opts *o, rs_deptree **out, rs_error *err)
{
    walk w = { 0 };
    int rc = 0;

    *out = NULL;
    w.prefix = o->snap_prefix && *o->snap_prefix ? o->snap_prefix : RS_FLOW_SNAP_PREFIX_DEFAULT;
    w.t = calloc(1, sizeof(*w.t));
    if (!w.t)
        return rs_error_set(err, -ENOMEM, "out of memory");
    w.t->glance_pool = strdup(o->glance_pool ? o->glance_pool : "images");

    if (o->image) {
        rc = enqueue(&w, o->pool, o->image, NULL);
    } else if (o->pool) {
        w.t->pools = calloc(2, sizeof(char *));
        if (w.t->pools && (w.t->pools[0] = strdup(o->pool)))
            w.t->npools = 1;
        else
            rc = -ENOMEM;
    } else {
        rc = rs_rbd_pool_list(cl, &w.t->pools, &w.t->npools, err);
    }
    for (size_t p = 0; rc == 0 && p < w.t->npools; p++) {
        const char *pool = w.t->pools[p];
        char **names = NULL;
        size_t n = 0;
        rs_rbd_trash_entry *tr = NULL;
        size_t nt = 0;

        rc = rs_rbd_image_list(cl, pool, &names, &n, err);
        if (rc < 0)
            break;
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = enqueue(&w, pool, names[i], NULL);
        rs_rbd_names_free(names, n);
        if (rc == 0)
            rc = rs_rbd_trash_list(cl, pool, &tr, &nt, err);
        for (size_t i = 0; rc == 0 && i < nt; i++)
            rc = enqueue(&w, pool, tr[i].name, tr[i].id);
        rs_rbd_trash_list_free(tr, nt);
    }
    /* The requested image itself must exist. */
    if (rc == 0 && o->image) {
        rs_rbd_image_desc *d = NULL;
        rc = rs_rbd_image_describe(cl, o->pool, o->image, NULL, NULL, &d, err);
        rs_rbd_image_desc_free(d);
    }
    for (; rc == 0 && w.qhead < w.qn; w.qhead++)
        rc = process(&w, cl, &w.q[w.qhead]);
    if (rc == -ENOMEM)
        rs_error_set(err, rc, "out of memory");
    if (rc == 0)
        rc = link_nodes(&w, o);
    if (rc == 0 && o->glance) {
        w.t->glance = true;
        glance_lookup(w.t, o->glance);
    }
    for (size_t i = 0; i < w.qn; i++) {
        free(w.q[i].pool);
        free(w.q[i].name);
        free(w.q[i].id);
    }
    free(w.q);
    free(w.slots);
    if (rc < 0) {
        rs_error_set(err, rc, "dependency walk failed");
        rs_deptree_free(w.t);
        return rc;
    }
    *out = w.t;
    return 0;
}

int rs_dep_cli_build(rs_cli *cli, const char *spec, const char *pool, rs_deptree **out)
{
    rs_autofree char *spool = NULL;
    rs_autofree char *simage = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_deptree_opts o = { 0 };
    rs_glance *g = NULL;
    rs_cluster *cl = NULL;
    int rc;

    *out = NULL;
    if (spec && rs_dep_parse_spec(spec, &spool, &simage, NULL, &err) < 0)
        return rs_cli_usage_error(cli, "%s", rs_error_msg(&err));
    rc = rs_cli_load_conf(cli, &err);
    if (rc < 0) {
        rs_cli_error(cli, "%s", rs_error_msg(&err));
        return RS_EXIT_USAGE;
    }
    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_dep_glance_open(cli->conf, &g, &err);
    if (rc < 0) {
        fprintf(stderr, "%s %s: warning: Glance not consulted: %s\n", cli->prog, cli->command,
                rs_error_msg(&err));
        rs_error_clear(&err);
        g = NULL;
    }
    o.pool = spool ? spool : pool;
    o.image = simage;
    o.snap_prefix = cli->conf->snapshot.snap_prefix;
    o.glance_pool = cli->conf->snapshot.dest_pool;
    o.glance = g;
    rc = rs_deptree_build(cl, &o, out, &err);
    rs_glance_free(g);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    return 0;
}
