/*
 * reaper.c - one reaper cycle (lock, scan, plan, run) and the daemon thread
 * that repeats it; see reaper.h.
 *
 * The cycle is the same code for `rbdsnap gc` and rbdsnapd.  The thread is
 * redis-style periodic housekeeping: bounded per cycle in items
 * (gc.max_items) and time (gc.max_seconds), sleeping on a condvar between
 * cycles.  Locking: r->mu guards the metrics, the last report and the
 * stop/kick flags; it is never held across a librbd, librados or curl call.
 */
#define RS_LOG_MODULE "gc.reaper"
#include "gc/reaper.h"

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "gc/report.h"
#include "glance/glance.h"
#include "rbd/cluster.h"
#include "rbd/inventory.h"
#include "rbd/ops.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNAP_KEY_PREFIX "rbdsnap.snap."

void rs_reaper_cycle_opts_init(rs_reaper_cycle_opts *o, const rs_conf *conf)
{
    memset(o, 0, sizeof(*o));
    o->conf = conf;
    o->grace = -1;
    o->max_items = -1;
    o->max_seconds = -1;
}

void rs_reaper_cycle_result_clear(rs_reaper_cycle_result *r)
{
    if (!r)
        return;
    rs_gc_plan_free(r->plan);
    memset(r, 0, sizeof(*r));
}

uint64_t rs_reaper_next_sleep_ms(int interval_s, int jitter_s, uint32_t rnd)
{
    int64_t ms = (int64_t)(interval_s > 0 ? interval_s : 1) * 1000;
    if (jitter_s > 0) {
        int64_t span = (int64_t)jitter_s * 2000 + 1;   /* [-jitter, +jitter] */
        ms += (int64_t)(rnd % (uint64_t)span) - (int64_t)jitter_s * 1000;
    }
    return ms < 1000 ? 1000 : (uint64_t)ms;
}

static uint32_t random_u32(void)
{
    char hex[9];
    if (rs_random_hex(hex, 4) < 0)
        return (uint32_t)rs_now_us();
    return (uint32_t)strtoul(hex, NULL, 16);
}

/* ---- executing actions ---------------------------------------------------- */

typedef struct exec_ctx {
    rs_cluster *cl;
    rs_glance *glance;
    const struct rs_gc_plan *plan;
    rs_inv_lock *lock;
    const rs_reaper_cycle_opts *o;
} exec_ctx;

static int flatten_progress(uint64_t done, uint64_t total, void *arg)
{
    const exec_ctx *x = arg;
    (void)done;
    (void)total;
    return x->o->stop && atomic_load(x->o->stop);
}

static int exec_action(void *arg, const rs_gc_action *a, rs_error *err)
{
    exec_ctx *x = arg;
    int rc;

    /* Keep the reaper lock alive through a long run: renew after a third
     * of its duration. */
    if (x->lock && rs_inv_lock_age_ms(x->lock) > (int64_t)rs_inv_lock_duration(x->lock) * 333) {
        rc = rs_inv_lock_renew(x->lock, err);
        if (rc < 0)
            return rc;
    }
    /* A job may have started on this image since the scan. */
    if (a->pool && a->image_name && x->o->job_lock &&
        x->o->job_lock(x->o->job_lock_arg, a->pool, a->image_name))
        return rs_error_set(err, -EBUSY, "%s/%s: a job started on it since the scan: left alone",
                            a->pool, a->image_name);

    switch (a->type) {
    case RS_GC_ACT_UNPROTECT_SNAP:
        return rs_inv_snap_unprotect(x->cl, a->pool, a->image_id, a->snap_id, err);
    case RS_GC_ACT_REMOVE_SNAP: {
        rc = rs_inv_snap_remove(x->cl, a->pool, a->image_id, a->snap_id, err);
        const rs_gc_item *it = rs_gc_plan_item(x->plan, a->item);
        if ((rc == 0 || rc == -ENOENT) && it && it->kind == RS_GC_ITEM_SOURCE_SNAP &&
            a->snap_name && !a->image_in_trash) {
            char key[600];
            rs_error merr = RS_ERROR_INIT;
            snprintf(key, sizeof(key), "%s%s", SNAP_KEY_PREFIX, a->snap_name);
            int mrc = rs_rbd_metadata_remove(x->cl, a->pool, a->image_name, key, &merr);
            if (mrc < 0 && mrc != -ENOENT)
                rs_warn("msg=\"cannot drop the snapshot's tag\" pool=%s image=%s key=%s "
                        "rc=%d error=\"%s\"", a->pool, a->image_name, key, mrc,
                        rs_error_msg(&merr));
        }
        return rc;
    }
    case RS_GC_ACT_REMOVE_IMAGE:
        return rs_inv_image_remove(x->cl, a->pool, a->image_name, a->image_id, err);
    case RS_GC_ACT_TRASH_REMOVE:
        return rs_inv_trash_remove(x->cl, a->pool, a->image_id, err);
    case RS_GC_ACT_GLANCE_DELETE:
        if (!x->glance)
            return rs_error_set(err, -EOPNOTSUPP, "glance:%s: Glance is not configured",
                                a->glance_id);
        return rs_glance_image_delete(x->glance, a->glance_id, err);
    case RS_GC_ACT_FLATTEN:
        return rs_rbd_flatten(x->cl, a->pool, a->image_name, flatten_progress, x, err);
    }
    return rs_error_set(err, -EINVAL, "unknown action %d", (int)a->type);
}

/* ---- one cycle -------------------------------------------------------------- */

static int take_lock(rs_cluster *cl, const rs_reaper_cycle_opts *o, int duration,
                     rs_inv_lock **lock, rs_error *err)
{
    const rs_conf *c = o->conf;
    bool announced = false;

    for (;;) {
        char *holder = NULL;
        rs_error e = RS_ERROR_INIT;
        int rc = rs_inv_lock_acquire(cl, c->journal.pool, c->journal.namespace_,
                                     RS_REAPER_LOCK_OBJECT, duration, lock, &holder, &e);
        if (rc != -EBUSY || !o->wait_lock) {
            if (rc < 0 && err)
                *err = e;
            free(holder);
            return rc;
        }
        if (!announced) {
            rs_info("msg=\"another reaper runs; waiting\" holder=\"%s\"",
                    holder ? holder : "?");
            announced = true;
        }
        free(holder);
        for (int i = 0; i < 10; i++) {
            if (o->stop && atomic_load(o->stop))
                return rs_error_set(err, -ECANCELED, "stopped while waiting for the reaper lock");
            rs_sleep_ms(100);
        }
    }
}

int rs_reaper_cycle(rs_cluster *cl, rs_glance *glance, const rs_reaper_cycle_opts *o,
                    rs_reaper_cycle_result *res, rs_error *err)
{
    const rs_conf *c = o->conf;
    rs_inv_lock *lock = NULL;
    rs_gc_graph *g = NULL;
    uint64_t t0 = rs_now_ms();
    int rc;

    memset(res, 0, sizeof(*res));
    if (!cl || !c)
        return rs_error_set(err, -ENOTCONN, "gc: no cluster connection");
    int max_seconds = o->max_seconds >= 0 ? o->max_seconds : c->gc.max_seconds;
    int lock_duration = (max_seconds > 0 ? max_seconds : 60) + 60;
    if (!o->no_lock) {
        rc = take_lock(cl, o, lock_duration, &lock, err);
        if (rc < 0)
            return rc;
    }

    /* Pools: nova, Glance, extra (duplicates are dropped by the scanner). */
    const char *pools[34];
    size_t np = 0;
    pools[np++] = c->snapshot.source_pool;
    pools[np++] = c->snapshot.dest_pool;
    for (size_t i = 0; i < o->nextra_pools && np < 34; i++)
        pools[np++] = o->extra_pools[i];

    rs_gc_scan_opts so = {
        .pools = pools, .npools = np, .nova_pool = c->snapshot.source_pool,
        .journal_pool = c->journal.pool, .journal_ns = c->journal.namespace_,
        .journal_dir = o->read_cli_journal ? c->snapshot.journal_dir : NULL,
        .threads = 8, .lock_owners = true, .stop = o->stop, .name_filter = o->name_filter,
        .job_lock = o->job_lock, .job_lock_arg = o->job_lock_arg,
    };
    rc = rs_gc_scan(cl, glance, &so, &g, &res->scan, err);
    if (rc < 0)
        goto out;
    if (lock) {
        rc = rs_inv_lock_renew(lock, err);
        if (rc < 0)
            goto out;
    }

    rs_gc_policy_opts po;
    rs_gc_policy_opts_init(&po);
    po.nova_pool = c->snapshot.source_pool;
    po.glance_pool = c->snapshot.dest_pool;
    po.snap_prefix = c->snapshot.snap_prefix;
    po.grace = o->grace >= 0 ? o->grace : c->gc.grace;
    int mi = o->max_items >= 0 ? o->max_items : c->gc.max_items;
    po.max_items = mi > 0 ? (size_t)mi : 0;
    po.flatten_soft_depth = c->gc.max_depth > 0 ? (unsigned)c->gc.max_depth : 0;
    uint64_t tp = rs_now_ms();
    rc = rs_gc_plan(g, &po, rs_wall_time(), &res->plan);
    res->plan_ms = rs_now_ms() - tp;
    if (rc < 0) {
        rs_error_set(err, rc, "gc: planning failed: %s", strerror(-rc));
        goto out;
    }

    exec_ctx x = { .cl = cl, .glance = glance, .plan = res->plan, .lock = lock, .o = o };
    rs_gc_run_opts ro = { .dry_run = o->dry_run, .stop = o->stop };
    if (max_seconds > 0) {
        uint64_t spent = rs_now_ms() - t0, budget = (uint64_t)max_seconds * 1000;
        ro.max_ms = spent < budget ? budget - spent : 1;
    }
    uint64_t tr = rs_now_ms();
    rc = rs_gc_run(res->plan, exec_action, &x, &ro, &res->run);
    res->run_ms = rs_now_ms() - tr;
    if (rc < 0)
        rs_error_set(err, rc, "gc: %zu action(s) failed (first: %s)", res->run.failed,
                     strerror(-rc));

    /* Item counts. */
    size_t ni = rs_gc_plan_item_count(res->plan);
    for (size_t i = 0; i < ni; i++) {
        const rs_gc_item *it = rs_gc_plan_item(res->plan, i);
        if (it->skip != RS_GC_SKIP_NONE) {
            res->skipped++;
            continue;
        }
        res->found++;
        bool all_done = it->n_actions > 0, failed = false;
        for (size_t k = 0; k < it->n_actions; k++) {
            const rs_gc_action *a = rs_gc_plan_action(res->plan, it->first_action + k);
            if (a->state != RS_GC_ACT_DONE)
                all_done = false;
            if (a->state == RS_GC_ACT_FAILED)
                failed = true;
        }
        if (all_done)
            res->deleted++;
        if (failed)
            res->failed_items++;
    }
out:
    rs_gc_graph_free(g);
    rs_inv_lock_release(lock);
    res->dur_ms = rs_now_ms() - t0;
    return rc;
}

/* ---- the thread --------------------------------------------------------------- */

struct rs_reaper {
    const rs_conf *conf;
    rs_cluster *cl;
    rs_glance *glance;
    rs_reaper_job_lock_fn job_lock;
    void *job_lock_arg;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    bool kicked;
    rs_reaper_metrics m;
    char *last_report;
};

/* Sleep up to @ms; returns early on stop or kick.  Lock held. */
static void sleep_locked(rs_reaper *r, uint64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (!atomic_load(&r->stop) && !r->kicked)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
            break;
    r->kicked = false;
}

static void run_cycle(rs_reaper *r)
{
    rs_reaper_cycle_opts o;
    rs_reaper_cycle_result res;
    rs_error err = RS_ERROR_INIT;
    char *json = NULL;

    rs_reaper_cycle_opts_init(&o, r->conf);
    o.stop = &r->stop;
    o.job_lock = r->job_lock;
    o.job_lock_arg = r->job_lock_arg;
    o.read_cli_journal = true;
    pthread_mutex_lock(&r->mu);
    r->m.running = true;
    pthread_mutex_unlock(&r->mu);

    int rc = rs_reaper_cycle(r->cl, r->glance, &o, &res, &err);
    if (res.plan)
        rs_gc_report_render(res.plan, RS_GC_REPORT_JSON, false, &json, NULL);
    if (rc == -EBUSY && !res.plan)
        rs_info("msg=\"gc cycle skipped\" reason=\"%s\"", rs_error_msg(&err));
    else if (rc < 0 && rc != -ECANCELED)
        rs_err("msg=\"gc cycle failed\" rc=%d error=\"%s\"", rc, rs_error_msg(&err));
    if (res.plan)
        rs_info("msg=\"gc cycle\" found=%zu deleted=%zu skipped=%zu failed=%zu images=%zu "
                "glance_complete=%s left=%zu dur_ms=%llu rc=%d", res.found, res.deleted,
                res.skipped, res.failed_items, res.scan.images,
                res.scan.glance_complete ? "yes" : "no", res.run.left,
                (unsigned long long)res.dur_ms, rc);

    pthread_mutex_lock(&r->mu);
    r->m.running = false;
    r->m.cycles++;
    r->m.last_rc = rc;
    r->m.last_cycle_ms = res.dur_ms;
    r->m.last_cycle_at = rs_wall_time();
    if (rc == -EBUSY && !res.plan) {
        r->m.lock_busy++;
    } else {
        r->m.found += res.found;
        r->m.deleted += res.deleted;
        r->m.skipped += res.skipped;
        r->m.errors += res.run.failed;
        r->m.last_images = res.scan.images;
        if (rc < 0 && rc != -ECANCELED && res.run.failed == 0)
            r->m.errors++;
    }
    if (json) {
        free(r->last_report);
        r->last_report = json;
    }
    pthread_mutex_unlock(&r->mu);
    rs_reaper_cycle_result_clear(&res);
}

static void *reaper_main(void *arg)
{
    rs_reaper *r = arg;
    const rs_conf_gc *gc = &r->conf->gc;

    pthread_mutex_lock(&r->mu);
    /* First cycle after a random part of the jitter: daemons started
     * together do not all scan at once. */
    uint64_t first = gc->jitter > 0 ? random_u32() % ((uint64_t)gc->jitter * 1000 + 1) : 0;
    sleep_locked(r, first);
    while (!atomic_load(&r->stop)) {
        pthread_mutex_unlock(&r->mu);
        run_cycle(r);
        pthread_mutex_lock(&r->mu);
        if (atomic_load(&r->stop))
            break;
        sleep_locked(r, rs_reaper_next_sleep_ms(gc->interval, gc->jitter, random_u32()));
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int rs_reaper_start(const rs_conf *conf, rs_cluster *cl, rs_glance *glance,
                    rs_reaper_job_lock_fn job_lock, void *job_lock_arg, rs_reaper **out,
                    rs_error *err)
{
    rs_reaper *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    *out = NULL;
    if (!r)
        return rs_error_set(err, -ENOMEM, "reaper: out of memory");
    r->conf = conf;
    r->cl = cl ? rs_cluster_ref(cl) : NULL;
    r->glance = glance;
    r->job_lock = job_lock;
    r->job_lock_arg = job_lock_arg;
    atomic_init(&r->stop, false);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&r->tid, NULL, reaper_main, r);
    if (rc != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        rs_cluster_unref(r->cl);
        free(r);
        return rs_error_set(err, -rc, "reaper: cannot start thread: %s", strerror(rc));
    }
    rs_info("msg=\"reaper started\" interval=%d jitter=%d max_items=%d max_seconds=%d grace=%d",
            conf->gc.interval, conf->gc.jitter, conf->gc.max_items, conf->gc.max_seconds,
            conf->gc.grace);
    *out = r;
    return 0;
}

void rs_reaper_kick(rs_reaper *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->kicked = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void rs_reaper_stop(rs_reaper *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->tid, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    rs_cluster_unref(r->cl);
    free(r->last_report);
    free(r);
    rs_info("msg=\"reaper stopped\"");
}

void rs_reaper_get_metrics(rs_reaper *r, rs_reaper_metrics *m)
{
    pthread_mutex_lock(&r->mu);
    *m = r->m;
    pthread_mutex_unlock(&r->mu);
}

char *rs_reaper_last_report(rs_reaper *r)
{
    pthread_mutex_lock(&r->mu);
    char *s = r->last_report ? strdup(r->last_report) : NULL;
    pthread_mutex_unlock(&r->mu);
    return s;
}

char *rs_reaper_metrics_text(const rs_reaper_metrics *m)
{
    return rs_strdup_printf(
        "# HELP rbdsnap_gc_cycles_total Reaper cycles run.\n"
        "# TYPE rbdsnap_gc_cycles_total counter\n"
        "rbdsnap_gc_cycles_total %llu\n"
        "# HELP rbdsnap_gc_found_total Garbage items found to delete.\n"
        "# TYPE rbdsnap_gc_found_total counter\n"
        "rbdsnap_gc_found_total %llu\n"
        "# HELP rbdsnap_gc_deleted_total Garbage items deleted completely.\n"
        "# TYPE rbdsnap_gc_deleted_total counter\n"
        "rbdsnap_gc_deleted_total %llu\n"
        "# HELP rbdsnap_gc_skipped_total Items reported but not touched.\n"
        "# TYPE rbdsnap_gc_skipped_total counter\n"
        "rbdsnap_gc_skipped_total %llu\n"
        "# HELP rbdsnap_gc_errors_total Failed reaper actions and cycles.\n"
        "# TYPE rbdsnap_gc_errors_total counter\n"
        "rbdsnap_gc_errors_total %llu\n"
        "# HELP rbdsnap_gc_lock_busy_total Cycles skipped because another reaper ran.\n"
        "# TYPE rbdsnap_gc_lock_busy_total counter\n"
        "rbdsnap_gc_lock_busy_total %llu\n"
        "# HELP rbdsnap_gc_last_cycle_seconds Duration of the last reaper cycle.\n"
        "# TYPE rbdsnap_gc_last_cycle_seconds gauge\n"
        "rbdsnap_gc_last_cycle_seconds %.3f\n"
        "# HELP rbdsnap_gc_last_cycle_timestamp_seconds End of the last reaper cycle.\n"
        "# TYPE rbdsnap_gc_last_cycle_timestamp_seconds gauge\n"
        "rbdsnap_gc_last_cycle_timestamp_seconds %lld\n"
        "# HELP rbdsnap_gc_last_scan_images Images scanned by the last cycle.\n"
        "# TYPE rbdsnap_gc_last_scan_images gauge\n"
        "rbdsnap_gc_last_scan_images %llu\n",
        (unsigned long long)m->cycles, (unsigned long long)m->found,
        (unsigned long long)m->deleted, (unsigned long long)m->skipped,
        (unsigned long long)m->errors, (unsigned long long)m->lock_busy,
        (double)m->last_cycle_ms / 1000.0, (long long)m->last_cycle_at,
        (unsigned long long)m->last_images);
}
