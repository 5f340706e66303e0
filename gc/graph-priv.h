/*
 * graph-priv.h - internal to gc/: the layout of rs_gc_graph, read by the
 * policy.  Nothing outside gc/ includes this.
 */
#ifndef RS_GC_GRAPH_PRIV_H
#define RS_GC_GRAPH_PRIV_H

#include <sys/types.h>

#include "gc/graph.h"
#include "gc/table-priv.h"

typedef struct gc_kv {
    const char *key;
    const char *value;
} gc_kv;

typedef struct gc_childref {
    const char *pool;
    const char *image_id;
} gc_childref;

typedef struct gc_loc {
    const char *pool;
    const char *image;            /* image name */
} gc_loc;

typedef struct gc_snap {
    uint64_t id;
    const char *name;
    const char *trash_original_name;  /* NULL unless ns == TRASH */
    rs_gc_snap_ns ns;
    bool is_protected;
    int64_t created_at;
    gc_childref *children;            /* explicit child links */
    size_t n_children, cap_children;
} gc_snap;

typedef struct gc_image {
    const char *pool;
    const char *id;
    const char *name;
    uint64_t size;
    int64_t created_at;
    bool in_trash;
    rs_gc_trash_source trash_source;
    int64_t trash_deleted_at;
    int64_t trash_deferment_end;
    const char *parent_pool;          /* NULL: no parent */
    const char *parent_id;
    uint64_t parent_snap_id;
    gc_kv *meta;
    size_t n_meta, cap_meta;
    gc_snap *snaps;
    size_t n_snaps, cap_snaps;
} gc_image;

typedef struct gc_glance {
    const char *id;
    const char *status;
    int64_t created_at;
    int64_t updated_at;
    gc_kv *props;
    size_t n_props, cap_props;
    gc_loc *locations;
    size_t n_locations, cap_locations;
} gc_glance;

struct rs_gc_graph {
    gc_arena arena;
    const char **pools;
    size_t n_pools, cap_pools;
    gc_table pool_set;
    gc_image *images;
    size_t n_images, cap_images;
    size_t n_snaps;
    gc_table image_by_id;     /* pool<US>id -> index */
    gc_table image_by_name;   /* pool<US>name -> index, images not in the trash */
    gc_glance *glance;
    size_t n_glance, cap_glance;
    gc_table glance_by_id;
    bool glance_complete;
    gc_table jobs;            /* running job ids */
    gc_table locks;           /* pool<US>name-or-id */
};

const char *gc_image_meta(const gc_image *im, const char *key);
const char *gc_glance_prop(const gc_glance *gl, const char *key);
/* -1 when not found */
ssize_t gc_image_find(const rs_gc_graph *g, const char *pool, const char *id);
ssize_t gc_snap_find(const gc_image *im, uint64_t snap_id);

#endif
