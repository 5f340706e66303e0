/*
 * runner.c - execute a reaper plan in order within a budget (runner.h).
 */
#define RS_LOG_MODULE "gc"

#include "gc/runner.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"

static bool is_removal(rs_gc_action_type t)
{
    return t == RS_GC_ACT_REMOVE_SNAP || t == RS_GC_ACT_REMOVE_IMAGE ||
           t == RS_GC_ACT_TRASH_REMOVE || t == RS_GC_ACT_GLANCE_DELETE;
}

static void describe(const rs_gc_action *a, char *buf, size_t len)
{
    if (a->type == RS_GC_ACT_GLANCE_DELETE)
        snprintf(buf, len, "glance_id=%s", a->glance_id ? a->glance_id : "?");
    else if (a->snap_name)
        snprintf(buf, len, "pool=%s image=%s image_id=%s snap=%s snap_id=%llu", a->pool,
                 a->image_name, a->image_id, a->snap_name, (unsigned long long)a->snap_id);
    else
        snprintf(buf, len, "pool=%s image=%s image_id=%s", a->pool, a->image_name, a->image_id);
}

int rs_gc_run(struct rs_gc_plan *plan, rs_gc_exec_fn exec, void *arg,
              const rs_gc_run_opts *opts, rs_gc_run_stats *stats)
{
    rs_gc_run_opts defaults = { 0 };
    rs_gc_run_stats st = { 0 };
    if (!opts)
        opts = &defaults;
    if (!plan || (!exec && !opts->dry_run))
        return -EINVAL;
    uint64_t (*clock)(void) = opts->now_ms ? opts->now_ms : rs_now_ms;
    uint64_t t0 = clock();
    size_t n = rs_gc_plan_action_count(plan);
    size_t i = 0;

    for (; i < n; i++) {
        const rs_gc_action *a = rs_gc_plan_action(plan, i);
        if (a->state != RS_GC_ACT_PLANNED) {
            if (a->state == RS_GC_ACT_NOT_RUN)
                st.not_run++;
            continue;
        }
        if (opts->dry_run)
            break;
        if (opts->stop && atomic_load(opts->stop)) {
            st.stopped = true;
            break;
        }
        if (opts->max_ms && clock() - t0 >= opts->max_ms) {
            st.budget_exhausted = true;
            break;
        }
        char what[512];
        describe(a, what, sizeof(what));
        const char *type = rs_gc_action_type_name(a->type);
        char fpname[64];
        snprintf(fpname, sizeof(fpname), "gc.run.%s", type);
        rs_error err = RS_ERROR_INIT;
        uint64_t a0 = clock();
        int rc = rs_failpoint(fpname);
        if (rc < 0)
            rs_error_set(&err, rc, "failpoint %s", fpname);
        else
            rc = exec(arg, a, &err);
        if (rc == -ENOENT && is_removal(a->type))
            rc = 0;
        rs_gc_plan_set_result(plan, i, rc);
        if (rc == 0) {
            st.done++;
            rs_info("gc action=%s %s rc=0 dur_ms=%llu", type, what,
                    (unsigned long long)(clock() - a0));
        } else {
            st.failed++;
            if (!st.first_error)
                st.first_error = rc;
            rs_warn("gc action=%s %s rc=%d err=%s msg=\"%s\"", type, what, rc,
                    rs_errno_name(rc), rs_error_msg(&err));
        }
    }
    for (; i < n; i++)
        if (rs_gc_plan_action(plan, i)->state == RS_GC_ACT_PLANNED)
            st.left++;
        else if (rs_gc_plan_action(plan, i)->state == RS_GC_ACT_NOT_RUN)
            st.not_run++;
    if (st.budget_exhausted || st.stopped)
        rs_info("gc run interrupted reason=%s done=%zu left=%zu",
                st.stopped ? "stop" : "budget", st.done, st.left);
    if (stats)
        *stats = st;
    return st.first_error;
}
