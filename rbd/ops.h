/*
 * ops.h - idempotent RBD primitives on top of the shared cluster handle.
 *
 * Every function names its objects as (pool, image[, snap]), opens what it
 * needs, does one thing and closes again, so callers (the flow, the CLI's
 * flatten/unprotect/tree commands, the reaper) never see librbd types.
 *
 * Idempotence: "already done" is success.  snap_create on an existing
 * snapshot, protect of a protected snapshot, unprotect of an unprotected or
 * missing one, remove of a missing snapshot or image, flatten of an image
 * without parent, and clone onto an image that already is a clone of the
 * same parent snapshot all return 0.  Anything else that already exists
 * (an image of that name with another parent) is -EEXIST.
 *
 * Errors: 0 or negative errno; @err is filled once with "pool/image@snap:
 * what happened".  A connection-class error retires the connection and the
 * call is retried once on a fresh one.
 */
#ifndef RS_RBD_OPS_H
#define RS_RBD_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "rbd/cluster.h"

/* Progress of a long operation.  Return non-zero to cancel (the operation
 * then fails with -ECANCELED). */
typedef int (*rs_rbd_progress_fn)(uint64_t done, uint64_t total, void *arg);

typedef enum {
    RS_RBD_SNAP_NS_USER = 0,
    RS_RBD_SNAP_NS_GROUP = 1,
    RS_RBD_SNAP_NS_TRASH = 2,
    RS_RBD_SNAP_NS_MIRROR = 3,
    RS_RBD_SNAP_NS_OTHER = 9,
} rs_rbd_snap_ns;

typedef struct rs_rbd_snap_info {
    char *name;            /* for trash snapshots: librbd's uuid name */
    char *original_name;   /* trash snapshots: the name it had; else NULL */
    uint64_t id;
    uint64_t size;
    rs_rbd_snap_ns ns;
    bool is_protected;
} rs_rbd_snap_info;

typedef struct rs_rbd_child {
    char *pool;
    char *image;
    bool trash;            /* the child image is in the RBD trash */
} rs_rbd_child;

/* Images. */
int rs_rbd_image_create(rs_cluster *cl, const char *pool, const char *image, uint64_t size,
                        rs_error *err);
int rs_rbd_image_exists(rs_cluster *cl, const char *pool, const char *image, bool *exists,
                        rs_error *err);
/* Size of the image, or of its snapshot @snap (may be NULL). */
int rs_rbd_image_size(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                      uint64_t *size, rs_error *err);
int rs_rbd_image_remove(rs_cluster *cl, const char *pool, const char *image, rs_error *err);
/* Names of all images of @pool (array and strings malloc'ed; free with
 * rs_rbd_names_free). */
int rs_rbd_image_list(rs_cluster *cl, const char *pool, char ***names, size_t *n, rs_error *err);
void rs_rbd_names_free(char **names, size_t n);

/* Parent of a clone: -ENOENT if it has none.  Strings malloc'ed. */
int rs_rbd_get_parent(rs_cluster *cl, const char *pool, const char *image, char **ppool,
                      char **pimage, char **psnap, rs_error *err);

/* Snapshots. */
int rs_rbd_snap_create(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       rs_error *err);
int rs_rbd_snap_exists(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       bool *exists, rs_error *err);
int rs_rbd_snap_protect(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                        rs_error *err);
int rs_rbd_snap_unprotect(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                          rs_error *err);
int rs_rbd_snap_is_protected(rs_cluster *cl, const char *pool, const char *image,
                             const char *snap, bool *prot, rs_error *err);
/* Remove (unprotecting first when @unprotect).  With clone format 2 a
 * snapshot that still has clones moves to the trash namespace. */
int rs_rbd_snap_remove(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                       bool unprotect, rs_error *err);
/* All snapshots, every namespace (trash included). */
int rs_rbd_snap_list(rs_cluster *cl, const char *pool, const char *image,
                     rs_rbd_snap_info **snaps, size_t *n, rs_error *err);
void rs_rbd_snap_list_free(rs_rbd_snap_info *snaps, size_t n);

/* Clones. @format: 1 or 2 (0 = librbd's default). */
int rs_rbd_clone(rs_cluster *cl, const char *ppool, const char *pimage, const char *psnap,
                 const char *cpool, const char *cimage, int format, rs_error *err);
/* Children of @pool/@image@@snap (clones in the trash included). */
int rs_rbd_list_children(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                         rs_rbd_child **children, size_t *n, rs_error *err);
void rs_rbd_children_free(rs_rbd_child *children, size_t n);
int rs_rbd_flatten(rs_cluster *cl, const char *pool, const char *image, rs_rbd_progress_fn cb,
                   void *arg, rs_error *err);

/* Image metadata (key/value). get: -ENOENT if unset; *value malloc'ed. */
int rs_rbd_metadata_set(rs_cluster *cl, const char *pool, const char *image, const char *key,
                        const char *value, rs_error *err);
/* Set several keys with one open of the image. */
int rs_rbd_metadata_set_many(rs_cluster *cl, const char *pool, const char *image,
                             const char *const *keys, const char *const *values, size_t n,
                             rs_error *err);
int rs_rbd_metadata_get(rs_cluster *cl, const char *pool, const char *image, const char *key,
                        char **value, rs_error *err);
int rs_rbd_metadata_remove(rs_cluster *cl, const char *pool, const char *image,
                           const char *key, rs_error *err);
/* All keys starting with @prefix (NULL = all): parallel arrays. */
int rs_rbd_metadata_list(rs_cluster *cl, const char *pool, const char *image,
                         const char *prefix, char ***keys, char ***values, size_t *n,
                         rs_error *err);

/* Data (for checksums and tests). @snap may be NULL (head). */
int rs_rbd_read(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                uint64_t off, size_t len, void *buf, rs_error *err);
int rs_rbd_write(rs_cluster *cl, const char *pool, const char *image, uint64_t off, size_t len,
                 const void *buf, rs_error *err);
/* 64-bit FNV-1a of the whole image (or snapshot), read through librbd. */
int rs_rbd_checksum(rs_cluster *cl, const char *pool, const char *image, const char *snap,
                    uint64_t *sum, rs_error *err);

/* Open handles, for callers doing several things to one image in a row
 * (the flow): one open, one exclusive-lock acquisition, one close instead
 * of one per call.  Same idempotence and error rules as above; no retry on
 * a lost connection (the close retires it).  The handle must not be shared
 * between threads. */
typedef struct rs_rbd_image rs_rbd_image;
int rs_rbd_image_open(rs_cluster *cl, const char *pool, const char *image, rs_rbd_image **out,
                      rs_error *err);
void rs_rbd_image_close(rs_rbd_image *h);            /* NULL is fine */
int rs_rbd_h_snap_create(rs_rbd_image *h, const char *snap, rs_error *err);
int rs_rbd_h_snap_protect(rs_rbd_image *h, const char *snap, rs_error *err);
int rs_rbd_h_snap_remove(rs_rbd_image *h, const char *snap, bool unprotect, rs_error *err);
int rs_rbd_h_metadata_set_many(rs_rbd_image *h, const char *const *keys,
                               const char *const *values, size_t n, rs_error *err);
int rs_rbd_h_metadata_remove(rs_rbd_image *h, const char *key, rs_error *err);
int rs_rbd_h_size(rs_rbd_image *h, uint64_t *size, rs_error *err);

/* Clone format the cluster allows: 2 if require_min_compat_client >=
 * mimic (from `osd dump`), else 1. */
int rs_rbd_clone_format_auto(rs_cluster *cl, int *format, rs_error *err);
/* The release name -> clone format mapping behind it (exposed for tests):
 * 2 for mimic and later, 1 for older or unknown. */
int rs_rbd_clone_format_for_release(const char *release);

#endif
