/*
 * graph.c - the reaper's in-memory model of pools, images, snapshots,
 * Glance records, jobs and locks (see graph.h).
 *
 * Storage: arrays of structs grown by doubling, indexed by hash tables
 * (gc/table-priv.h); all strings live in one arena.  Per-image arrays
 * (metadata, snapshots, explicit children) are small and searched
 * linearly.
 */
#define RS_LOG_MODULE "gc"

#include "gc/graph-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int grow_array(void **arr, size_t *cap, size_t n, size_t elsz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*arr, ncap * elsz);
    if (!p)
        return -ENOMEM;
    memset((char *)p + *cap * elsz, 0, (ncap - *cap) * elsz);
    *arr = p;
    *cap = ncap;
    return 0;
}

#define GROW(arr, cap, n) grow_array((void **)&(arr), &(cap), (n), sizeof(*(arr)))

static bool nonempty(const char *s) { return s && *s; }

int rs_gc_graph_new(rs_gc_graph **out, rs_error *err)
{
    rs_gc_graph *g = calloc(1, sizeof(*g));
    if (!g)
        return rs_error_set(err, -ENOMEM, "gc graph: out of memory");
    gc_arena_init(&g->arena);
    gc_table_init(&g->pool_set);
    gc_table_init(&g->image_by_id);
    gc_table_init(&g->image_by_name);
    gc_table_init(&g->glance_by_id);
    gc_table_init(&g->jobs);
    gc_table_init(&g->locks);
    *out = g;
    return 0;
}

void rs_gc_graph_free(rs_gc_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_images; i++) {
        gc_image *im = &g->images[i];
        for (size_t s = 0; s < im->n_snaps; s++)
            free(im->snaps[s].children);
        free(im->snaps);
        free(im->meta);
    }
    for (size_t i = 0; i < g->n_glance; i++) {
        free(g->glance[i].props);
        free(g->glance[i].locations);
    }
    free(g->images);
    free(g->glance);
    free(g->pools);
    gc_table_free(&g->pool_set);
    gc_table_free(&g->image_by_id);
    gc_table_free(&g->image_by_name);
    gc_table_free(&g->glance_by_id);
    gc_table_free(&g->jobs);
    gc_table_free(&g->locks);
    gc_arena_free(&g->arena);
    free(g);
}

static int oom(rs_error *err, const char *what)
{
    return rs_error_set(err, -ENOMEM, "gc graph: out of memory adding %s", what);
}

int rs_gc_graph_add_pool(rs_gc_graph *g, const char *pool, rs_error *err)
{
    if (!nonempty(pool))
        return rs_error_set(err, -EINVAL, "gc graph: empty pool name");
    if (gc_table_get(&g->pool_set, pool, NULL))
        return 0;
    if (GROW(g->pools, g->cap_pools, g->n_pools) < 0)
        return oom(err, pool);
    char *p = gc_arena_strdup(&g->arena, pool);
    if (!p || gc_table_insert(&g->pool_set, p, g->n_pools) < 0)
        return oom(err, pool);
    g->pools[g->n_pools++] = p;
    return 0;
}

ssize_t gc_image_find(const rs_gc_graph *g, const char *pool, const char *id)
{
    size_t idx;
    if (!pool || !id || !gc_table_get2(&g->image_by_id, pool, id, &idx))
        return -1;
    return (ssize_t)idx;
}

ssize_t gc_snap_find(const gc_image *im, uint64_t snap_id)
{
    for (size_t i = 0; i < im->n_snaps; i++)
        if (im->snaps[i].id == snap_id)
            return (ssize_t)i;
    return -1;
}

int rs_gc_graph_add_image(rs_gc_graph *g, const rs_gc_image_desc *d, rs_error *err)
{
    if (!d || !nonempty(d->pool) || !nonempty(d->id) || !nonempty(d->name))
        return rs_error_set(err, -EINVAL, "gc graph: image needs pool, id and name");
    if (d->parent_pool && !nonempty(d->parent_id))
        return rs_error_set(err, -EINVAL, "gc graph: %s/%s: parent pool without parent id",
                            d->pool, d->name);
    if (gc_image_find(g, d->pool, d->id) >= 0)
        return rs_error_set(err, -EEXIST, "gc graph: %s/%s (id %s): duplicate image id",
                            d->pool, d->name, d->id);
    if (!d->in_trash && gc_table_get2(&g->image_by_name, d->pool, d->name, NULL))
        return rs_error_set(err, -EEXIST, "gc graph: %s/%s: duplicate image name",
                            d->pool, d->name);
    int rc = rs_gc_graph_add_pool(g, d->pool, err);
    if (rc < 0)
        return rc;
    if (GROW(g->images, g->cap_images, g->n_images) < 0)
        return oom(err, d->name);

    gc_image *im = &g->images[g->n_images];
    memset(im, 0, sizeof(*im));
    size_t pidx = 0;
    gc_table_get(&g->pool_set, d->pool, &pidx);
    im->pool = g->pools[pidx];
    im->id = gc_arena_strdup(&g->arena, d->id);
    im->name = gc_arena_strdup(&g->arena, d->name);
    if (!im->id || !im->name)
        return oom(err, d->name);
    im->size = d->size;
    im->created_at = d->created_at;
    im->in_trash = d->in_trash;
    im->trash_source = d->trash_source;
    im->trash_deleted_at = d->trash_deleted_at;
    im->trash_deferment_end = d->trash_deferment_end;
    if (d->parent_pool) {
        im->parent_pool = gc_arena_strdup(&g->arena, d->parent_pool);
        im->parent_id = gc_arena_strdup(&g->arena, d->parent_id);
        if (!im->parent_pool || !im->parent_id)
            return oom(err, d->name);
        im->parent_snap_id = d->parent_snap_id;
    }
    char *kid = gc_key2(&g->arena, im->pool, im->id);
    if (!kid || gc_table_insert(&g->image_by_id, kid, g->n_images) < 0)
        return oom(err, d->name);
    if (!im->in_trash) {
        char *kname = gc_key2(&g->arena, im->pool, im->name);
        if (!kname || gc_table_insert(&g->image_by_name, kname, g->n_images) < 0) {
            /* keep the tables consistent: the image is not added */
            return oom(err, d->name);
        }
    }
    g->n_images++;
    return 0;
}

static gc_image *image_or_error(rs_gc_graph *g, const char *pool, const char *image_id,
                                rs_error *err)
{
    ssize_t idx = gc_image_find(g, pool, image_id);
    if (idx < 0) {
        rs_error_set(err, -ENOENT, "gc graph: image %s/%s (id) not in the graph",
                     pool ? pool : "(null)", image_id ? image_id : "(null)");
        return NULL;
    }
    return &g->images[idx];
}

static int kv_set(gc_arena *a, gc_kv **arr, size_t *n, size_t *cap, const char *key,
                  const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*arr)[i].key, key) == 0) {
            const char *v = gc_arena_strdup(a, value);
            if (!v)
                return -ENOMEM;
            (*arr)[i].value = v;
            return 0;
        }
    }
    if (grow_array((void **)arr, cap, *n, sizeof(**arr)) < 0)
        return -ENOMEM;
    const char *k = gc_arena_strdup(a, key);
    const char *v = gc_arena_strdup(a, value);
    if (!k || !v)
        return -ENOMEM;
    (*arr)[*n].key = k;
    (*arr)[*n].value = v;
    (*n)++;
    return 0;
}

static const char *kv_get(const gc_kv *arr, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].key, key) == 0)
            return arr[i].value;
    return NULL;
}

const char *gc_image_meta(const gc_image *im, const char *key)
{
    return kv_get(im->meta, im->n_meta, key);
}

const char *gc_glance_prop(const gc_glance *gl, const char *key)
{
    return kv_get(gl->props, gl->n_props, key);
}

int rs_gc_graph_set_image_meta(rs_gc_graph *g, const char *pool, const char *image_id,
                               const char *key, const char *value, rs_error *err)
{
    if (!nonempty(key) || !value)
        return rs_error_set(err, -EINVAL, "gc graph: %s/%s: metadata needs key and value",
                            pool ? pool : "(null)", image_id ? image_id : "(null)");
    gc_image *im = image_or_error(g, pool, image_id, err);
    if (!im)
        return -ENOENT;
    if (kv_set(&g->arena, &im->meta, &im->n_meta, &im->cap_meta, key, value) < 0)
        return oom(err, key);
    return 0;
}

int rs_gc_graph_add_snap(rs_gc_graph *g, const char *pool, const char *image_id,
                         const rs_gc_snap_desc *d, rs_error *err)
{
    gc_image *im = image_or_error(g, pool, image_id, err);
    if (!im)
        return -ENOENT;
    if (!d || !nonempty(d->name))
        return rs_error_set(err, -EINVAL, "gc graph: %s/%s: snapshot needs a name",
                            im->pool, im->name);
    if (d->ns != RS_GC_SNAP_NS_USER && d->ns != RS_GC_SNAP_NS_GROUP &&
        d->ns != RS_GC_SNAP_NS_TRASH)
        return rs_error_set(err, -EINVAL, "gc graph: %s/%s@%s: bad snapshot namespace %d",
                            im->pool, im->name, d->name, (int)d->ns);
    if (gc_snap_find(im, d->id) >= 0)
        return rs_error_set(err, -EEXIST, "gc graph: %s/%s@%s: duplicate snapshot id %llu",
                            im->pool, im->name, d->name, (unsigned long long)d->id);
    if (GROW(im->snaps, im->cap_snaps, im->n_snaps) < 0)
        return oom(err, d->name);
    gc_snap *s = &im->snaps[im->n_snaps];
    memset(s, 0, sizeof(*s));
    s->id = d->id;
    s->name = gc_arena_strdup(&g->arena, d->name);
    if (!s->name)
        return oom(err, d->name);
    if (d->ns == RS_GC_SNAP_NS_TRASH && d->trash_original_name) {
        s->trash_original_name = gc_arena_strdup(&g->arena, d->trash_original_name);
        if (!s->trash_original_name)
            return oom(err, d->name);
    }
    s->ns = d->ns;
    s->is_protected = d->is_protected;
    s->created_at = d->created_at;
    im->n_snaps++;
    g->n_snaps++;
    return 0;
}

int rs_gc_graph_add_snap_child(rs_gc_graph *g, const char *pool, const char *image_id,
                               uint64_t snap_id, const char *child_pool,
                               const char *child_image_id, rs_error *err)
{
    gc_image *im = image_or_error(g, pool, image_id, err);
    if (!im)
        return -ENOENT;
    if (!nonempty(child_pool) || !nonempty(child_image_id))
        return rs_error_set(err, -EINVAL, "gc graph: %s/%s: child needs pool and image id",
                            im->pool, im->name);
    ssize_t si = gc_snap_find(im, snap_id);
    if (si < 0)
        return rs_error_set(err, -ENOENT, "gc graph: %s/%s: no snapshot id %llu",
                            im->pool, im->name, (unsigned long long)snap_id);
    gc_snap *s = &im->snaps[si];
    if (GROW(s->children, s->cap_children, s->n_children) < 0)
        return oom(err, child_image_id);
    gc_childref *c = &s->children[s->n_children];
    c->pool = gc_arena_strdup(&g->arena, child_pool);
    c->image_id = gc_arena_strdup(&g->arena, child_image_id);
    if (!c->pool || !c->image_id)
        return oom(err, child_image_id);
    s->n_children++;
    return 0;
}

int rs_gc_graph_add_glance_image(rs_gc_graph *g, const rs_gc_glance_desc *d, rs_error *err)
{
    if (!d || !nonempty(d->id) || !nonempty(d->status))
        return rs_error_set(err, -EINVAL, "gc graph: Glance record needs id and status");
    if (gc_table_get(&g->glance_by_id, d->id, NULL))
        return rs_error_set(err, -EEXIST, "gc graph: Glance image %s: duplicate record", d->id);
    if (GROW(g->glance, g->cap_glance, g->n_glance) < 0)
        return oom(err, d->id);
    gc_glance *gl = &g->glance[g->n_glance];
    memset(gl, 0, sizeof(*gl));
    gl->id = gc_arena_strdup(&g->arena, d->id);
    gl->status = gc_arena_strdup(&g->arena, d->status);
    if (!gl->id || !gl->status)
        return oom(err, d->id);
    gl->created_at = d->created_at;
    gl->updated_at = d->updated_at ? d->updated_at : d->created_at;
    if (gc_table_insert(&g->glance_by_id, gl->id, g->n_glance) < 0)
        return oom(err, d->id);
    g->n_glance++;
    return 0;
}

int rs_gc_graph_set_glance_property(rs_gc_graph *g, const char *glance_id, const char *key,
                                    const char *value, rs_error *err)
{
    size_t idx;
    if (!nonempty(key) || !value)
        return rs_error_set(err, -EINVAL, "gc graph: Glance image %s: property needs key and value",
                            glance_id ? glance_id : "(null)");
    if (!glance_id || !gc_table_get(&g->glance_by_id, glance_id, &idx))
        return rs_error_set(err, -ENOENT, "gc graph: Glance image %s: no such record",
                            glance_id ? glance_id : "(null)");
    gc_glance *gl = &g->glance[idx];
    if (kv_set(&g->arena, &gl->props, &gl->n_props, &gl->cap_props, key, value) < 0)
        return oom(err, key);
    return 0;
}

int rs_gc_graph_add_glance_location(rs_gc_graph *g, const char *glance_id, const char *pool,
                                    const char *image, rs_error *err)
{
    size_t idx;
    if (!nonempty(pool) || !nonempty(image))
        return rs_error_set(err, -EINVAL, "gc graph: Glance image %s: location needs pool and image",
                            glance_id ? glance_id : "(null)");
    if (!glance_id || !gc_table_get(&g->glance_by_id, glance_id, &idx))
        return rs_error_set(err, -ENOENT, "gc graph: Glance image %s: no such record",
                            glance_id ? glance_id : "(null)");
    gc_glance *gl = &g->glance[idx];
    if (GROW(gl->locations, gl->cap_locations, gl->n_locations) < 0)
        return oom(err, image);
    gc_loc *l = &gl->locations[gl->n_locations];
    l->pool = gc_arena_strdup(&g->arena, pool);
    l->image = gc_arena_strdup(&g->arena, image);
    if (!l->pool || !l->image)
        return oom(err, image);
    gl->n_locations++;
    return 0;
}

void rs_gc_graph_set_glance_complete(rs_gc_graph *g, bool complete)
{
    g->glance_complete = complete;
}

int rs_gc_graph_add_running_job(rs_gc_graph *g, const char *job_id, rs_error *err)
{
    if (!nonempty(job_id))
        return rs_error_set(err, -EINVAL, "gc graph: empty job id");
    if (gc_table_get(&g->jobs, job_id, NULL))
        return 0;
    char *j = gc_arena_strdup(&g->arena, job_id);
    if (!j || gc_table_insert(&g->jobs, j, 0) < 0)
        return oom(err, job_id);
    return 0;
}

int rs_gc_graph_add_locked_image(rs_gc_graph *g, const char *pool, const char *name_or_id,
                                 rs_error *err)
{
    if (!nonempty(pool) || !nonempty(name_or_id))
        return rs_error_set(err, -EINVAL, "gc graph: locked image needs pool and name");
    if (gc_table_get2(&g->locks, pool, name_or_id, NULL))
        return 0;
    char *k = gc_key2(&g->arena, pool, name_or_id);
    if (!k || gc_table_insert(&g->locks, k, 0) < 0)
        return oom(err, name_or_id);
    return 0;
}

size_t rs_gc_graph_image_count(const rs_gc_graph *g) { return g ? g->n_images : 0; }
size_t rs_gc_graph_snap_count(const rs_gc_graph *g) { return g ? g->n_snaps : 0; }
size_t rs_gc_graph_glance_count(const rs_gc_graph *g) { return g ? g->n_glance : 0; }
