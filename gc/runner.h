/*
 * runner.h - execute a reaper plan, in order, within a budget.
 *
 * The runner knows nothing of librbd or Glance: the caller passes one
 * callback that performs a single action (the service wires it to rbd/ and
 * glance/).  The runner:
 *   - runs the actions in plan order (the policy guarantees any prefix is
 *     safe), recording each outcome in the plan (rs_gc_plan_set_result);
 *   - treats -ENOENT from a removal (snapshot, image, trash entry, Glance
 *     record) as done: someone else got there first;
 *   - after a failure skips the rest of that item (its later actions
 *     depend on it) and goes on with the next item;
 *   - stops between actions when the time budget is spent or *stop is set
 *     (the daemon's shutdown flag); what is left stays "planned" and is
 *     planned again next cycle;
 *   - with dry_run, runs nothing.
 * Each action is logged once (key=value) and passes the failpoint
 * "gc.run.<action type>" first.
 */
#ifndef RS_GC_RUNNER_H
#define RS_GC_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "gc/policy.h"

/* Perform @a.  0 or a negative errno, @err filled naming the object. */
typedef int (*rs_gc_exec_fn)(void *arg, const rs_gc_action *a, rs_error *err);

typedef struct rs_gc_run_opts {
    bool dry_run;
    uint64_t max_ms;                 /* 0 = no time budget (gc.max_seconds * 1000) */
    const atomic_bool *stop;         /* optional */
    uint64_t (*now_ms)(void);        /* optional clock, for tests; rs_now_ms */
} rs_gc_run_opts;

typedef struct rs_gc_run_stats {
    size_t done;
    size_t failed;
    size_t not_run;                  /* skipped after a failure in their item */
    size_t left;                     /* not reached (budget, stop, dry run) */
    bool budget_exhausted;
    bool stopped;
    int first_error;                 /* 0 or the first failure's errno */
} rs_gc_run_stats;

/* Returns 0 when every action it reached succeeded, else the first error
 * (after going on with the other items).  @stats may be NULL. */
int rs_gc_run(struct rs_gc_plan *plan, rs_gc_exec_fn exec, void *arg,
              const rs_gc_run_opts *opts, rs_gc_run_stats *stats);

#endif
