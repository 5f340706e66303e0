/*
 * scan.h - fill the reaper's graph (gc/graph.h) from the real cluster and
 * Glance.
 *
 * The RBD side comes from rbd/inventory.h (every image of the given pools,
 * the RBD trash included, snapshots of every namespace, children in any
 * pool, rbdsnap.* metadata); the Glance side from one complete, paginated
 * listing (status, times, rbdsnap_job_id and the other properties, rbd://
 * locations).  Running jobs come from the daemons' RADOS journal and from
 * the CLI's file journal (a record whose lock is held).  What cannot be
 * read is left out of the graph, which keeps it safe: an image that is not
 * in the graph is never deleted, and a child the graph does not know keeps
 * its ancestors alive.  If the Glance listing fails or Glance is not
 * configured, the graph says so (glance_complete false) and the policy
 * then never takes "no record" as proof.
 */
#ifndef RS_GC_SCAN_H
#define RS_GC_SCAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "gc/graph.h"

typedef struct rs_cluster rs_cluster;
typedef struct rs_glance rs_glance;

typedef struct rs_gc_scan_opts {
    const char *const *pools;   /* pools to scan (nova, Glance, and any other) */
    size_t npools;
    const char *nova_pool;      /* for telling live disks apart (lock owners) */
    const char *journal_pool;   /* daemons' RADOS journal; NULL = not read */
    const char *journal_ns;
    const char *journal_dir;    /* CLI file journal; NULL = not read */
    int threads;                /* parallel image opens; <= 0 = 8 */
    /* Only images (and trash entries) whose name contains this substring
     * enter the graph; NULL = all.  Glance records and jobs are always
     * read in full, and an image left out still keeps its ancestors alive
     * (it is an explicit child of their snapshots), so filtering narrows
     * what is deleted, never what is protected. */
    const char *name_filter;
    bool lock_owners;           /* images with exclusive-lock owners count as locked */
    /* The daemon's job locks: true if a job works on @pool/@image now
     * (asked once per image; such images are added as locked). */
    bool (*job_lock)(void *arg, const char *pool, const char *image);
    void *job_lock_arg;
    const atomic_bool *stop;
} rs_gc_scan_opts;

typedef struct rs_gc_scan_stats {
    size_t images;              /* in the graph, trash entries included */
    size_t trash;
    size_t snaps;
    size_t unreadable;          /* left out (errors) */
    size_t vanished;
    size_t glance_records;
    bool glance_complete;
    size_t running_jobs;
    size_t locked_images;
    uint64_t rbd_ms, glance_ms, total_ms;
    char glance_error[256];     /* why the listing is incomplete, or "" */
} rs_gc_scan_stats;

/* Scan into a fresh graph (*out, rs_gc_graph_free).  @glance may be NULL
 * (listing incomplete).  Fails only when a pool cannot be listed (or on
 * ENOMEM / cancel); a failed Glance listing is not an error. */
int rs_gc_scan(rs_cluster *cl, rs_glance *glance, const rs_gc_scan_opts *o, rs_gc_graph **out,
               rs_gc_scan_stats *stats, rs_error *err);

/* ISO 8601 / RFC 3339 UTC time ("2026-12-04T18:41:13Z", optional
 * fraction) to unix seconds; 0 when unparsable.  Exposed for tests. */
int64_t rs_gc_parse_time(const char *s);

#endif
