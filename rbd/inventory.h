/*
 * inventory.h - the reaper's view of the RBD pools: a fast, parallel,
 * read-only scan of every image (the RBD trash included) with what the
 * garbage policy needs, the by-id removals it executes, the list of jobs in
 * the daemons' RADOS journal, and a cluster-wide exclusive RADOS lock so
 * only one reaper runs per cluster.
 *
 * This module knows nothing about gc/: it returns its own neutral structs
 * and gc/scan.c maps them into the reaper's graph.  Only rbd/ includes
 * librados/librbd.
 *
 * Scan cost: a plain image (no snapshot, no parent, no rbdsnap tag, not
 * named *_to_be_deleted_by_glance) costs one omap read of its header;
 * every other one a read-only open (by id, so trash entries work), one
 * metadata read, one rbd_list_children3 per snapshot and, optionally, one
 * lock-owner query.  A small pool of threads shares the pool's ioctx
 * because each call is a round trip to the OSD.
 *
 * Errors: 0 or a negative errno, @err filled once naming pool/image.  An
 * image that disappears between listing and opening is left out silently;
 * one that cannot be read is returned with `error` set (the caller must
 * treat it as unknown, never as garbage).
 */
#ifndef RS_RBD_INVENTORY_H
#define RS_RBD_INVENTORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "rbd/cluster.h"

/* Same values as librbd's rbd_trash_image_source_t. */
#define RS_INV_TRASH_USER 0
#define RS_INV_TRASH_MIRRORING 1
#define RS_INV_TRASH_MIGRATION 2
#define RS_INV_TRASH_REMOVING 3
#define RS_INV_TRASH_USER_PARENT 4

/* Same values as librbd's rbd_snap_namespace_type_t. */
#define RS_INV_SNAP_NS_USER 0
#define RS_INV_SNAP_NS_GROUP 1
#define RS_INV_SNAP_NS_TRASH 2
#define RS_INV_SNAP_NS_MIRROR 3

typedef struct rs_inv_child {
    char *pool;
    char *image_id;
    char *image_name;
    bool trash;                 /* the child is in the RBD trash */
} rs_inv_child;

typedef struct rs_inv_snap {
    uint64_t id;
    char *name;                 /* trash namespace: librbd's uuid name */
    int ns;                     /* RS_INV_SNAP_NS_* */
    char *original_name;        /* trash namespace: the name it had; else NULL */
    bool is_protected;
    int64_t created_at;         /* unix seconds; 0 unknown */
    rs_inv_child *children;     /* rbd_list_children3: any pool, trash too */
    size_t nchildren;
} rs_inv_snap;

typedef struct rs_inv_image {
    char *pool;
    char *id;
    char *name;                 /* trash entries: the name it had */
    uint64_t size;
    int64_t created_at;         /* rbd_get_create_timestamp; 0 unknown */
    bool in_trash;
    int trash_source;           /* RS_INV_TRASH_* */
    int64_t trash_deleted_at;
    int64_t trash_deferment_end;
    char *parent_pool;          /* NULL: not a clone */
    char *parent_id;
    char *parent_name;
    uint64_t parent_snap_id;
    char **md_keys, **md_values;  /* metadata under the requested prefix */
    size_t nmd;
    rs_inv_snap *snaps;         /* every namespace, trash included */
    size_t nsnaps;
    unsigned lock_owners;       /* exclusive-lock owners (when asked) */
    int error;                  /* 0, or why it could not be read */
} rs_inv_image;

typedef struct rs_inv_pool {
    char *pool;
    rs_inv_image *images;       /* live images first, then trash entries */
    size_t nimages;
    size_t nlisted;             /* images + trash entries listed */
    size_t nvanished;           /* gone between listing and opening */
    size_t nerrors;             /* images with error set */
    uint64_t dur_ms;
} rs_inv_pool;

typedef struct rs_inv_opts {
    const char *md_prefix;      /* metadata keys to keep; NULL = "rbdsnap." */
    int threads;                /* parallel opens; <= 0 = 8 */
    bool lock_owners;           /* query exclusive-lock owners */
    bool with_trash;            /* scan the RBD trash too (default in init) */
    /* Read plain images (no snapshot, no parent, no rbdsnap tag, not
     * *_to_be_deleted_by_glance) from their header's omap in one round
     * trip instead of opening them (default in init). */
    bool fast;
    const atomic_bool *stop;    /* optional: abandon the scan (-ECANCELED) */
} rs_inv_opts;

void rs_inv_opts_init(rs_inv_opts *o);

/* Scan @pool.  -ENOENT if the pool does not exist. */
int rs_inv_scan_pool(rs_cluster *cl, const char *pool, const rs_inv_opts *o,
                     rs_inv_pool **out, rs_error *err);
void rs_inv_pool_free(rs_inv_pool *p);
/* Value of metadata @key of @im, or NULL. */
const char *rs_inv_image_md(const rs_inv_image *im, const char *key);

/* Ids of the jobs recorded in the daemons' RADOS journal (object
 * "rbdsnap.journal" in @pool/@ns, keys "own.<id>"): running, or
 * interrupted and waiting for a daemon to recover them.  No journal = 0
 * jobs. */
int rs_inv_journal_jobs(rs_cluster *cl, const char *pool, const char *ns, char ***ids,
                        size_t *n, rs_error *err);
void rs_inv_names_free(char **names, size_t n);

/* ---- removals for the reaper's runner (by id; ENOENT is returned as is) -- */

/* Unprotect snapshot @snap_id of image @image_id (trash entries too); an
 * unprotected snapshot is success. */
int rs_inv_snap_unprotect(rs_cluster *cl, const char *pool, const char *image_id,
                          uint64_t snap_id, rs_error *err);
/* Remove snapshot @snap_id (any namespace) of image @image_id. */
int rs_inv_snap_remove(rs_cluster *cl, const char *pool, const char *image_id,
                       uint64_t snap_id, rs_error *err);
/* Remove image @name, but only if its id still is @image_id (-ESTALE if
 * the name now belongs to another image).  librbd refuses (-EBUSY) while a
 * client has it open and (-ENOTEMPTY) while it has snapshots. */
int rs_inv_image_remove(rs_cluster *cl, const char *pool, const char *name,
                        const char *image_id, rs_error *err);
/* Remove trash entry @image_id (never forced past its deferment). */
int rs_inv_trash_remove(rs_cluster *cl, const char *pool, const char *image_id,
                        rs_error *err);

/* ---- one reaper per cluster: an exclusive RADOS lock --------------------- */

typedef struct rs_inv_lock rs_inv_lock;

/* Take the exclusive lock "rbdsnap.gc" on object @oid in @pool/@ns for
 * @duration_s seconds (it expires by itself if the holder dies).  -EBUSY
 * when someone else holds it; *holder (may be NULL, malloc'ed) then names
 * the holder ("client.4567 at 127.0.0.1:0/123 (rbdsnap gc on host pid 42)"). */
int rs_inv_lock_acquire(rs_cluster *cl, const char *pool, const char *ns, const char *oid,
                        int duration_s, rs_inv_lock **out, char **holder, rs_error *err);
/* Extend the lock by its duration.  -EBUSY/-ENOENT: it was lost. */
int rs_inv_lock_renew(rs_inv_lock *l, rs_error *err);
/* Seconds since the lock was taken or last renewed. */
int64_t rs_inv_lock_age_ms(const rs_inv_lock *l);
int rs_inv_lock_duration(const rs_inv_lock *l);
/* Release (NULL is fine). */
void rs_inv_lock_release(rs_inv_lock *l);

#endif
