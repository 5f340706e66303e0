/*
 * graph.h - the reaper's neutral, in-memory model of what is in the pools.
 *
 * The scanner (later: rbd/inventory.c plus the Glance listing) fills an
 * rs_gc_graph; the policy (gc/policy.h) reads it and decides what is
 * garbage.  Nothing here talks to librbd, Glance or libvirt, so the policy
 * can be unit-tested on hand-built graphs.
 *
 * What the graph holds:
 *   - pools (by name; images in an undeclared pool declare it);
 *   - images, keyed by pool + image id: name, size, creation time, whether
 *     the image is in the RBD trash (and the trash source and deletion
 *     time), the parent link (pool, image id, snapshot id) and the image
 *     metadata (rbdsnap.job_id, rbdsnap.instance_uuid, rbdsnap.created_at,
 *     rbdsnap.version, rbdsnap.role, rbdsnap.snap.<snapname> ...);
 *   - per image, its snapshots: id, name, namespace (user, trash, group),
 *     protected flag, creation time, and optional explicit child links as
 *     reported by rbd_list_children3 (children are also derived from the
 *     images' parent links; the policy merges both);
 *   - Glance records: id, status, created/updated time, properties
 *     (rbdsnap_job_id ...), RBD locations, and whether the listing is
 *     complete;
 *   - running rbdsnap jobs and locked images.
 *
 * Strings passed in are copied.  All add functions return 0 or a negative
 * errno (-EINVAL bad argument, -EEXIST duplicate, -ENOENT unknown image or
 * record, -ENOMEM) and fill @err naming the object.  Lookups are hash
 * based: building a graph of n images is O(n) (snapshots of one image are
 * searched linearly; krbd caps them near 510).
 */
#ifndef RS_GC_GRAPH_H
#define RS_GC_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct rs_gc_graph rs_gc_graph;

/* Same values as librbd's rbd_trash_image_source_t. */
typedef enum {
    RS_GC_TRASH_USER = 0,
    RS_GC_TRASH_MIRRORING = 1,
    RS_GC_TRASH_MIGRATION = 2,
    RS_GC_TRASH_REMOVING = 3,
    RS_GC_TRASH_USER_PARENT = 4,
} rs_gc_trash_source;

/* Same values as librbd's rbd_snap_namespace_type_t. */
typedef enum {
    RS_GC_SNAP_NS_USER = 0,
    RS_GC_SNAP_NS_GROUP = 1,
    RS_GC_SNAP_NS_TRASH = 2,
} rs_gc_snap_ns;

typedef struct rs_gc_image_desc {
    const char *pool;            /* required */
    const char *id;              /* required: RBD image id */
    const char *name;            /* required (for trash entries: the name it had) */
    uint64_t size;
    int64_t created_at;          /* unix seconds; 0 = unknown (treated as young) */
    bool in_trash;
    rs_gc_trash_source trash_source;
    int64_t trash_deleted_at;    /* when it was moved to the trash; 0 = unknown */
    int64_t trash_deferment_end; /* trash entry may not be removed before this */
    const char *parent_pool;     /* NULL: no parent */
    const char *parent_id;       /* parent image id */
    uint64_t parent_snap_id;
} rs_gc_image_desc;

typedef struct rs_gc_snap_desc {
    uint64_t id;
    const char *name;
    rs_gc_snap_ns ns;
    const char *trash_original_name; /* trash namespace: the name before removal */
    bool is_protected;
    int64_t created_at;              /* 0 = unknown (treated as young) */
} rs_gc_snap_desc;

typedef struct rs_gc_glance_desc {
    const char *id;       /* required: Glance image id */
    const char *status;   /* required: queued|saving|active|killed|deleted|... */
    int64_t created_at;
    int64_t updated_at;   /* 0: use created_at */
} rs_gc_glance_desc;

int rs_gc_graph_new(rs_gc_graph **out, rs_error *err);
void rs_gc_graph_free(rs_gc_graph *g);

/* Declaring the same pool twice is not an error. */
int rs_gc_graph_add_pool(rs_gc_graph *g, const char *pool, rs_error *err);
int rs_gc_graph_add_image(rs_gc_graph *g, const rs_gc_image_desc *d, rs_error *err);
/* Setting a key twice replaces the value. */
int rs_gc_graph_set_image_meta(rs_gc_graph *g, const char *pool, const char *image_id,
                               const char *key, const char *value, rs_error *err);
int rs_gc_graph_add_snap(rs_gc_graph *g, const char *pool, const char *image_id,
                         const rs_gc_snap_desc *d, rs_error *err);
/* An explicit child of pool/image_id@snap_id (rbd_list_children3 /
 * rbd_list_descendants).  The child need not be in the graph: a child the
 * graph does not know keeps its ancestors alive. */
int rs_gc_graph_add_snap_child(rs_gc_graph *g, const char *pool, const char *image_id,
                               uint64_t snap_id, const char *child_pool,
                               const char *child_image_id, rs_error *err);

int rs_gc_graph_add_glance_image(rs_gc_graph *g, const rs_gc_glance_desc *d, rs_error *err);
int rs_gc_graph_set_glance_property(rs_gc_graph *g, const char *glance_id,
                                    const char *key, const char *value, rs_error *err);
/* A location of a Glance record (rbd://fsid/pool/image/snap, parsed).  An
 * image any record that is not deleted/killed points to is never garbage. */
int rs_gc_graph_add_glance_location(rs_gc_graph *g, const char *glance_id, const char *pool,
                                    const char *image, rs_error *err);
/* Say that the Glance listing is complete.  Until then the policy treats
 * "no Glance record" as unknown, never as proof of garbage. */
void rs_gc_graph_set_glance_complete(rs_gc_graph *g, bool complete);

/* An rbdsnap job that is running (or queued) somewhere. */
int rs_gc_graph_add_running_job(rs_gc_graph *g, const char *job_id, rs_error *err);
/* An image someone holds a lock on; matched against both the name and the
 * id of images in @pool. */
int rs_gc_graph_add_locked_image(rs_gc_graph *g, const char *pool, const char *name_or_id,
                                 rs_error *err);

size_t rs_gc_graph_image_count(const rs_gc_graph *g);
size_t rs_gc_graph_snap_count(const rs_gc_graph *g);
size_t rs_gc_graph_glance_count(const rs_gc_graph *g);

#endif
