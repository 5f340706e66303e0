/*
 * reaper.h - the reaper's cycle (lock, scan, plan, run, report) and the
 * daemon thread that repeats it.
 *
 * One cycle:
 *   1. take the cluster-wide RADOS lock "rbdsnap.gc" on object
 *      rbdsnap.gc.lock in journal.pool/journal.namespace (-EBUSY naming the
 *      holder when another reaper runs; or wait for it);
 *   2. scan (gc/scan.h): snapshot.source_pool, snapshot.dest_pool and any
 *      extra pool, the Glance listing, the journals' running jobs, and the
 *      images under a job lock (the caller's query callback);
 *   3. plan (gc/policy.h) with gc.grace, gc.max_items, gc.max_depth;
 *   4. run (gc/runner.h) unless dry run, within gc.max_seconds for the whole
 *      cycle, stopping at once when *stop is set.  Before each action the
 *      job-lock callback is asked again (a job may have started since the
 *      scan): a busy image fails that item with -EBUSY and is left alone.
 *      Removing a source snapshot also drops its rbdsnap.snap.<name> key.
 *      The RADOS lock is renewed as the cycle goes on.
 *
 * The thread runs a cycle every gc.interval seconds plus or minus a random
 * gc.jitter (the first one after a random 0..jitter seconds), sleeping on a
 * condition variable that rs_reaper_stop() and rs_reaper_kick() signal, so
 * shutdown never waits for a sleep (and a cycle in progress stops between
 * two actions).  Counters are exposed through rs_reaper_get_metrics().
 */
#ifndef RS_GC_REAPER_H
#define RS_GC_REAPER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "gc/policy.h"
#include "gc/runner.h"
#include "gc/scan.h"

typedef struct rs_conf rs_conf;

#define RS_REAPER_LOCK_OBJECT "rbdsnap.gc.lock"

/* The daemon's per-image job locks: true if a job is working on
 * @pool/@image (name) right now.  Called from the reaper thread; must be
 * thread-safe and cheap (once per image per scan, once per action). */
typedef bool (*rs_reaper_job_lock_fn)(void *arg, const char *pool, const char *image);

typedef struct rs_reaper_cycle_opts {
    const rs_conf *conf;
    bool dry_run;
    int64_t grace;               /* < 0: gc.grace */
    int max_items;               /* < 0: gc.max_items (0 = no limit) */
    int max_seconds;             /* < 0: gc.max_seconds (0 = no limit) */
    const char *const *extra_pools;
    size_t nextra_pools;
    const char *name_filter;     /* only images whose name contains it (scan.h) */
    bool wait_lock;              /* wait for another reaper instead of -EBUSY */
    bool no_lock;                /* tests only: skip the RADOS lock */
    bool read_cli_journal;       /* honour the CLI's file journal (snapshot.journal_dir) */
    const atomic_bool *stop;
    rs_reaper_job_lock_fn job_lock;
    void *job_lock_arg;
} rs_reaper_cycle_opts;

void rs_reaper_cycle_opts_init(rs_reaper_cycle_opts *o, const rs_conf *conf);

typedef struct rs_reaper_cycle_result {
    struct rs_gc_plan *plan;     /* owned: rs_reaper_cycle_result_clear() */
    rs_gc_scan_stats scan;
    rs_gc_run_stats run;
    size_t found, deleted, skipped, failed_items;
    uint64_t plan_ms, run_ms, dur_ms;
} rs_reaper_cycle_result;

void rs_reaper_cycle_result_clear(rs_reaper_cycle_result *r);

/* One cycle.  0 when every action tried succeeded (skips are not errors),
 * -EBUSY when another reaper holds the lock (and !wait_lock), -ECANCELED
 * when stopped while waiting or scanning, else the first error.  On an
 * action failure the plan in @res still tells the whole story. */
int rs_reaper_cycle(struct rs_cluster *cl, struct rs_glance *glance,
                    const rs_reaper_cycle_opts *o, rs_reaper_cycle_result *res, rs_error *err);

/* ---- the daemon thread -------------------------------------------------- */

typedef struct rs_reaper rs_reaper;

typedef struct rs_reaper_metrics {
    uint64_t cycles;             /* cycles completed (a lock-busy one counts) */
    uint64_t found;              /* items found to delete, summed over cycles */
    uint64_t deleted;            /* items whose every action succeeded */
    uint64_t skipped;            /* items reported, not touched */
    uint64_t errors;             /* failed actions + failed cycles */
    uint64_t lock_busy;          /* cycles skipped: another reaper ran */
    uint64_t last_cycle_ms;      /* duration of the last cycle */
    int64_t last_cycle_at;       /* unix time its end; 0 = none yet */
    uint64_t last_images;        /* images scanned in the last cycle */
    int last_rc;                 /* result of the last cycle */
    bool running;                /* a cycle is in progress */
} rs_reaper_metrics;

/* Start the thread (nothing happens until the first cycle is due).  Holds
 * references on @cl; @glance (may be NULL) and @conf must outlive the
 * reaper.  @job_lock may be NULL. */
int rs_reaper_start(const rs_conf *conf, struct rs_cluster *cl, struct rs_glance *glance,
                    rs_reaper_job_lock_fn job_lock, void *job_lock_arg, rs_reaper **out,
                    rs_error *err);
/* Ask for a cycle now (e.g. POST /v1/gc). */
void rs_reaper_kick(rs_reaper *r);
/* Stop (interrupting a sleep at once, a cycle between two actions), join,
 * free.  NULL is fine. */
void rs_reaper_stop(rs_reaper *r);
void rs_reaper_get_metrics(rs_reaper *r, rs_reaper_metrics *m);
/* The JSON report of the last cycle (malloc'ed), or NULL before the first. */
char *rs_reaper_last_report(rs_reaper *r);

/* Prometheus text lines for @m (malloc'ed): rbdsnap_gc_cycles_total,
 * rbdsnap_gc_found_total, rbdsnap_gc_deleted_total, rbdsnap_gc_skipped_total,
 * rbdsnap_gc_errors_total, rbdsnap_gc_lock_busy_total,
 * rbdsnap_gc_last_cycle_seconds, rbdsnap_gc_last_cycle_timestamp_seconds,
 * rbdsnap_gc_last_scan_images. */
char *rs_reaper_metrics_text(const rs_reaper_metrics *m);

/* Next sleep in ms: interval +- a uniform random jitter, at least 1 s;
 * exposed for tests.  @rnd: a random 32-bit value. */
uint64_t rs_reaper_next_sleep_ms(int interval_s, int jitter_s, uint32_t rnd);

#endif
