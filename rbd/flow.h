/*
 * flow.h - the crash-safe RBD snapshot flow for one instance.
 *
 * For every disk (root first, then e.g. ephemeral disks):
 *
 *   tag_source          metadata rbdsnap.snap.<snap> = <job id> on the source
 *   snap_create         <src_pool>/<image>@<prefix><16 hex>   } all disks back to
 *                                                            } back, between
 *                                                            } freeze and thaw
 *   snap_protect        (clone format 1 only)
 *   clone               -> <dest_pool>/<clone name>
 *   tag_clone           rbdsnap.job_id, .instance_uuid, .created_at, .version,
 *                       .role=clone, .source=<pool/image@snap> on the clone
 *   flatten             flatten=yes only (progress callback, cancellable)
 *   clone_snap_create   <dest_pool>/<clone>@snap
 *   clone_snap_protect
 *   source_snap_remove  format 2: always (a snapshot with clones goes to the
 *                       trash namespace and vanishes with its last clone);
 *                       format 1: only once flattened.  Removes the
 *                       rbdsnap.snap.<snap> key too.
 *
 * Clone names: the root disk (images[0]) becomes <target>; another disk
 * becomes <target>_<suffix>, the suffix being the caller's, else what follows
 * the last '.' of the image name (Nova's <uuid>_disk.eph0 -> <target>_eph0,
 * <uuid>_disk.swap -> <target>_swap), else "disk<N>".
 *
 * flatten=deferred: everything but the flatten and (format 1) the source
 * snapshot removal happens now; the job record (result->job, also kept in the
 * journal with state flatten_pending) is the handle the caller later gives to
 * rs_flow_complete().
 *
 * Any failure rolls back the completed steps in reverse (clone snap, clone,
 * then the source snapshot: never the other way round, so the source
 * snapshot can always be unprotected) and returns the first error.  Every
 * step is idempotent, so rollback and recovery work from any partial state.
 * Each step is bracketed by failpoints rbd.flow.<step> and
 * rbd.flow.<step>.done (docs/FAILPOINTS.md) and by journal hooks.
 *
 * Thread-safe: many flows may run at once on one rs_cluster.
 */
#ifndef RS_RBD_FLOW_H
#define RS_RBD_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "rbd/cluster.h"
#include "rbd/journal.h"

#define RS_FLOW_SNAP_PREFIX_DEFAULT "rbdsnap-"
#define RS_FLOW_CLONE_SNAP "snap"

/* Provenance metadata keys (the reaper relies on exactly these). */
#define RS_MD_JOB_ID        "rbdsnap.job_id"
#define RS_MD_INSTANCE_UUID "rbdsnap.instance_uuid"
#define RS_MD_CREATED_AT    "rbdsnap.created_at"
#define RS_MD_VERSION       "rbdsnap.version"
#define RS_MD_ROLE          "rbdsnap.role"
#define RS_MD_SOURCE        "rbdsnap.source"
#define RS_MD_SNAP_PREFIX   "rbdsnap.snap."     /* + source snapshot name */

/* Flatten progress of one clone; return non-zero to cancel. */
typedef int (*rs_flow_progress_fn)(const char *pool, const char *image, uint64_t done,
                                   uint64_t total, void *arg);
/* Quiesce hooks: freeze before the first snap create, thaw after the last. */
typedef int (*rs_flow_hook_fn)(void *arg, rs_error *err);

typedef struct rs_flow_request {
    const char *job_id;           /* NULL: a fresh UUID */
    const char *instance_uuid;    /* provenance; optional */
    const char *src_pool;
    const char *const *images;    /* images[0] is the root disk */
    const char *const *suffixes;  /* optional, per image (index 0 ignored) */
    size_t nimages;               /* 1..RS_JOB_MAX_DISKS */
    const char *dest_pool;
    const char *target;           /* clone name of the root disk (Glance image id) */
    rs_flatten_mode flatten;
    int clone_format;             /* 0 = auto, 1 or 2 */
    const char *snap_prefix;      /* NULL: RS_FLOW_SNAP_PREFIX_DEFAULT */
    rs_flow_hook_fn freeze, thaw; /* optional */
    void *hook_arg;
    rs_flow_progress_fn progress; /* optional */
    void *progress_arg;
    rs_journal *journal;          /* optional */
} rs_flow_request;

typedef struct rs_flow_disk_result {
    char src_image[RS_JOB_NAME_MAX];
    char src_snap[RS_JOB_NAME_MAX];
    char clone[RS_JOB_NAME_MAX];
    uint64_t size;                 /* clone size in bytes */
    bool flattened;
    bool src_snap_removed;
} rs_flow_disk_result;

typedef struct rs_flow_result {
    char fsid[64];                 /* for rbd://<fsid>/<pool>/<image>/snap */
    char dest_pool[RS_JOB_NAME_MAX];
    int clone_format;
    bool flatten_pending;          /* deferred: call rs_flow_complete(job) */
    size_t ndisks;
    rs_flow_disk_result disks[RS_JOB_MAX_DISKS];
    uint64_t freeze_us;            /* freeze..thaw */
    uint64_t duration_us;
    rs_job job;                    /* full record: handle for complete/rollback */
} rs_flow_result;

int rs_flow_run(rs_cluster *cl, const rs_flow_request *req, rs_flow_result *res, rs_error *err);

/* Finish a flatten_pending job: flatten each clone, then (format 1) remove
 * the source snapshots.  Idempotent; a failure leaves the job pending. */
int rs_flow_complete(rs_cluster *cl, rs_journal *j, rs_job *job, rs_flow_progress_fn progress,
                     void *progress_arg, rs_error *err);

/* Undo everything @job may have created, in reverse (also used by the
 * caller when a later step, e.g. Glance registration, fails).  Idempotent.
 * Only removes a clone proven to be this job's (its parent is this job's
 * source snapshot, or its rbdsnap.job_id is this job's id). */
int rs_flow_rollback(rs_cluster *cl, rs_journal *j, rs_job *job, rs_error *err);

/* Recovery of dead runs: every orphaned record in @j is rolled back
 * (running, rolling_back, failed) or, with @complete_deferred, completed
 * (flatten_pending; otherwise left and reported).  @report is called once
 * per job with what happened.  Returns 0 if every job ended clean, else the
 * first error (having tried all). */
typedef void (*rs_flow_report_fn)(const rs_job *job, const char *action, int rc,
                                  const char *msg, void *arg);
int rs_flow_recover(rs_cluster *cl, rs_journal *j, bool complete_deferred,
                    rs_flow_report_fn report, void *arg, rs_error *err);

/* Leftovers found by provenance metadata alone (no journal needed). */
typedef enum {
    RS_LEFTOVER_SOURCE_SNAP,     /* rbdsnap snapshot on a source image */
    RS_LEFTOVER_SOURCE_KEY,      /* rbdsnap.snap.<x> key whose snapshot is gone */
    RS_LEFTOVER_CLONE_INCOMPLETE,/* clone with rbdsnap.role=clone but no protected @snap */
} rs_leftover_kind;

typedef struct rs_leftover {
    rs_leftover_kind kind;
    char pool[RS_JOB_NAME_MAX];
    char image[RS_JOB_NAME_MAX];
    char snap[RS_JOB_NAME_MAX];
    char job_id[RS_JOB_ID_MAX];
    size_t children;             /* source snapshots: clones hanging off it */
} rs_leftover;

/* Scan @src_pool and @dest_pool (either may be NULL) and report objects
 * carrying rbdsnap provenance that look unfinished.  Read-only. */
typedef void (*rs_leftover_fn)(const rs_leftover *l, void *arg);
int rs_flow_scan_leftovers(rs_cluster *cl, const char *src_pool, const char *dest_pool,
                           const char *snap_prefix, rs_leftover_fn fn, void *arg, rs_error *err);

#endif
