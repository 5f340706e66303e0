/*
 * ops_extra.h - read-only RBD inventory primitives for the operator CLI
 * (tree, graph, ls, unprotect): pools, the RBD trash, and a one-open
 * description of an image (id, size, age, parent, rbdsnap metadata, every
 * snapshot with its timestamp and children).
 *
 * Same conventions as rbd/ops.h: 0 or negative errno, @err filled once
 * naming pool/image[@snap]; a connection-class error is retried once on a
 * fresh connection.  Nothing here modifies the cluster.
 */
#ifndef RS_RBD_OPS_EXTRA_H
#define RS_RBD_OPS_EXTRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "rbd/cluster.h"
#include "rbd/ops.h"

/* Pools that have the "rbd" application enabled (array and strings
 * malloc'ed, free with rs_rbd_names_free). */
int rs_rbd_pool_list(rs_cluster *cl, char ***names, size_t *n, rs_error *err);

typedef struct rs_rbd_trash_entry {
    char *id;
    char *name;              /* the name the image had */
    int source;              /* librbd rbd_trash_image_source_t */
    int64_t deleted_at;      /* unix seconds */
    int64_t deferment_end;
} rs_rbd_trash_entry;

/* Images in the RBD trash of @pool. */
int rs_rbd_trash_list(rs_cluster *cl, const char *pool, rs_rbd_trash_entry **entries,
                      size_t *n, rs_error *err);
void rs_rbd_trash_list_free(rs_rbd_trash_entry *entries, size_t n);

typedef struct rs_rbd_xchild {
    char *pool;
    char *image;
    char *image_id;
    bool trash;              /* the child is in the RBD trash */
} rs_rbd_xchild;

typedef struct rs_rbd_xsnap {
    char *name;              /* trash namespace: librbd's uuid name */
    char *original_name;     /* trash namespace: the name it had; else NULL */
    uint64_t id;
    uint64_t size;
    rs_rbd_snap_ns ns;
    bool is_protected;
    int64_t created_at;      /* unix seconds, 0 unknown */
    rs_rbd_xchild *children;
    size_t nchildren;
} rs_rbd_xsnap;

typedef struct rs_rbd_image_desc {
    char *pool;
    char *name;
    char *id;
    bool trash;              /* opened by id out of the RBD trash */
    uint64_t size;
    int64_t created_at;      /* unix seconds, 0 unknown */
    /* Parent (clones only; parent_pool NULL otherwise). */
    char *parent_pool, *parent_image, *parent_image_id, *parent_snap;
    uint64_t parent_snap_id;
    rs_rbd_snap_ns parent_snap_ns;
    bool parent_trash;
    /* Metadata whose key starts with the requested prefix. */
    char **md_keys, **md_values;
    size_t nmd;
    rs_rbd_xsnap *snaps;
    size_t nsnaps;
} rs_rbd_image_desc;

/* Describe @pool/@image, or, when @image_id is non-NULL, the image with
 * that id (works for images in the trash).  @md_prefix selects metadata
 * keys (NULL = none are read, "" = all). */
int rs_rbd_image_describe(rs_cluster *cl, const char *pool, const char *image,
                          const char *image_id, const char *md_prefix,
                          rs_rbd_image_desc **out, rs_error *err);
void rs_rbd_image_desc_free(rs_rbd_image_desc *d);
/* Value of metadata @key in @d, or NULL. */
const char *rs_rbd_image_desc_md(const rs_rbd_image_desc *d, const char *key);

#endif
