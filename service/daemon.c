/*
 * daemon.c - rbdsnapd: wiring of configuration, Ceph, Glance, libvirt, the
 * RADOS journal, the job engine and the HTTP API.
 *
 * Start-up order (each step fails the start with a clear message and a
 * non-zero exit): configuration (nothing touched before it validated) ->
 * Ceph connection -> Glance client -> libvirt (optional: a missing libvirtd
 * only disables quiesce and domain lookup) -> journal and lease -> job
 * engine -> HTTP API -> take over unfinished jobs -> READY=1.
 *
 * The main thread then handles signals (sigtimedwait) and is the lease
 * timer: every lease_seconds/3 it renews the lease, looks for daemons whose
 * lease expired (taking their jobs over), queues unfinished jobs it owns
 * and nobody here works on, and pets the systemd watchdog.
 *
 * Journal record of a job (req.<id>): {"request": {...}, "image_id": ...,
 * "phase": queued|glance_create|flow|register|complete|failed}, written
 * before each phase starts; the flow journals its own steps (flow.<id>).
 * A job is forgotten (all keys removed) once it is done or rolled back.
 * Recovery of a record: never started -> run it; flow finished -> finish
 * the registration (and deferred flatten); anything else -> roll back.
 *
 * When that removal fails (journal pool full, OSD down) the record is
 * marked "phase": "settled" if the journal still takes that write, and the
 * job stays on an in-memory list whose removal the timer retries with
 * exponential backoff (2 s doubling to 5 min); a "settled" record found at
 * start-up is only removed, never run again.  A job kept in the journal
 * for recovery (leftovers) is re-queued with the same backoff, per job.
 */
#define RS_LOG_MODULE "rbdsnapd"
#include "service/service.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "rbd/journal_rados.h"
#include "gc/reaper.h"
#include "glance/glance_conf.h"
#include "service/service-priv.h"
#include "service/snapshot.h"

#define BACKOFF_FIRST_MS 2000u
#define BACKOFF_MAX_MS 300000u

/* A job whose journal record must be removed (forget) or whose recovery
 * must wait (backoff only). */
typedef struct pending {
    char id[RS_JOB_ID_MAX];
    bool forget;
    uint64_t next_ms;
    unsigned delay_ms;
    struct pending *next;
} pending;

typedef struct svc {
    rs_conf *conf;
    rs_cluster *cl;
    rs_glance *glance;
    rs_virt_conn *virt;
    rs_journal *journal;
    rs_tasks *tasks;
    rs_metrics *metrics;
    rs_api *api;
    rs_reaper *reaper;          /* NULL when gc.enabled is false */
    rs_snapshot_env env;
    char owner[300];
    bool lease_ok;
    pthread_mutex_t plock;
    pending *pending;
} svc;

/* ---- per-job retry backoff -------------------------------------------------------- */

static pending *pend_find_locked(svc *s, const char *id)
{
    for (pending *p = s->pending; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

/* Next retry of @id: 2 s after the first failure, doubling up to 5 min. */
static void backoff_schedule(svc *s, const char *id, bool forget)
{
    pthread_mutex_lock(&s->plock);
    pending *p = pend_find_locked(s, id);
    if (!p) {
        p = calloc(1, sizeof *p);
        if (p) {
            snprintf(p->id, sizeof p->id, "%s", id);
            p->next = s->pending;
            s->pending = p;
        }
    } else {
        p->delay_ms = p->delay_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->delay_ms * 2;
    }
    if (p) {
        if (!p->delay_ms)
            p->delay_ms = BACKOFF_FIRST_MS;
        p->forget = p->forget || forget;
        p->next_ms = rs_now_ms() + p->delay_ms;
        rs_info("job=%s retry=%s in_ms=%u", id, p->forget ? "forget" : "recover", p->delay_ms);
    }
    pthread_mutex_unlock(&s->plock);
}

static void backoff_drop(svc *s, const char *id)
{
    pthread_mutex_lock(&s->plock);
    for (pending **pp = &s->pending; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            pending *p = *pp;
            *pp = p->next;
            free(p);
            break;
        }
    }
    pthread_mutex_unlock(&s->plock);
}

/* True if @id may be retried now (no backoff pending, or it expired). */
static bool backoff_due(svc *s, const char *id, bool *forget)
{
    pthread_mutex_lock(&s->plock);
    pending *p = pend_find_locked(s, id);
    bool due = !p || rs_now_ms() >= p->next_ms;
    if (forget)
        *forget = p && p->forget;
    pthread_mutex_unlock(&s->plock);
    return due;
}

static void backoff_free(svc *s)
{
    while (s->pending) {
        pending *p = s->pending;
        s->pending = p->next;
        free(p);
    }
}

/* Remove job @id's records.  On failure the job stays active here (never
 * re-run by this process) and the removal is retried by the timer. */
static int forget_job(svc *s, const char *id)
{
    rs_error err = RS_ERROR_INIT;
    int rc = rs_journal_rados_forget(s->journal, id, &err);
    if (rc == 0 || rc == -ESTALE) {
        if (rc == -ESTALE) {
            rs_warn("job=%s journal forget: %s", id, rs_error_msg(&err));
            rs_journal_rados_set_active(s->journal, id, false);
        }
        backoff_drop(s, id);
        return rc;
    }
    rs_warn("job=%s journal forget failed rc=%d error=\"%s\"", id, rc, rs_error_msg(&err));
    backoff_schedule(s, id, true);
    return rc;
}

/* Timer: retry the removals whose backoff expired. */
static void retry_forgets(svc *s)
{
    char ids[16][RS_JOB_ID_MAX];
    size_t n = 0;
    uint64_t now = rs_now_ms();
    pthread_mutex_lock(&s->plock);
    for (pending *p = s->pending; p && n < 16; p = p->next)
        if (p->forget && now >= p->next_ms)
            snprintf(ids[n++], sizeof ids[0], "%s", p->id);
    pthread_mutex_unlock(&s->plock);
    for (size_t i = 0; i < n; i++)
        if (forget_job(s, ids[i]) == 0)
            rs_info("job=%s journal record removed (retry)", ids[i]);
}

/* ---- journal records ------------------------------------------------------------ */

static char *record_text(json_t *req, const char *image_id, const char *phase, int attempt)
{
    json_t *o = json_pack("{s:O, s:s, s:s, s:i, s:I}", "request", req, "image_id", image_id,
                          "phase", phase, "attempt", attempt,
                          "updated_at", (json_int_t)rs_wall_time());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* ---- API hooks --------------------------------------------------------------------- */

/* The reaper never touches an image a running job works on. */
static bool reaper_job_busy(void *opaque, const char *pool, const char *image)
{
    (void)pool;
    svc *s = opaque;
    return s->tasks && rs_tasks_image_busy(s->tasks, image);
}

static char *hook_gc_metrics(void *opaque)
{
    svc *s = opaque;
    rs_reaper_metrics m = { 0 };
    if (s->reaper)
        rs_reaper_get_metrics(s->reaper, &m);
    return rs_reaper_metrics_text(&m);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

typedef struct req_view {
    rs_snapshot_req r;
    const char *disks[16];
    rs_kv props[64];
} req_view;

static void view_request(json_t *req, req_view *v)
{
    memset(v, 0, sizeof *v);
    v->r.instance_uuid = jstr(req, "instance_uuid");
    v->r.domain = jstr(req, "domain");
    json_t *d = json_object_get(req, "disks");
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e) {
        if (i < 16 && json_is_string(e))
            v->disks[v->r.ndisks++] = json_string_value(e);
    }
    if (v->r.ndisks)
        v->r.disks = v->disks;
    v->r.all_disks = json_is_true(json_object_get(req, "all_disks"));
    v->r.name = jstr(req, "name");
    v->r.flatten = jstr(req, "flatten");
    v->r.quiesce = jstr(req, "quiesce");
    v->r.mode = jstr(req, "mode");
    v->r.upload = jstr(req, "upload");
    v->r.base_image_ref = jstr(req, "base_image_ref");
    v->r.owner_id = jstr(req, "owner_id");
    v->r.user_id = jstr(req, "user_id");
    const char *k;
    json_t *pv;
    json_object_foreach(json_object_get(req, "properties"), k, pv) {
        if (v->r.nprops < 64 && json_is_string(pv))
            v->props[v->r.nprops++] = (rs_kv){ k, json_string_value(pv) };
    }
    v->r.props = v->props;
}

static char *task_key(json_t *req)
{
    const char *k = jstr(req, "instance_uuid");
    if (!k)
        k = jstr(req, "domain");
    if (!k)
        k = jstr(json_object_get(req, "disks"), "0");
    json_t *d = json_object_get(req, "disks");
    if (!k && json_array_size(d))
        k = json_string_value(json_array_get(d, 0));
    return k ? strdup(k) : NULL;
}

static int hook_resolve(void *opaque, json_t *req, char **key, rs_error *err)
{
    svc *s = opaque;
    req_view v;
    view_request(req, &v);
    int rc = rs_snapshot_resolve(&s->env, &v.r, NULL, NULL, NULL, err);
    if (rc < 0) {
        if (rc != -ENOENT && rc != -EINVAL && rc != -E2BIG)
            rs_metrics_counter_add(s->metrics, "rbdsnap_ceph_errors_total",
                                   "Ceph errors seen by jobs and requests", "op=\"resolve\"", 1);
        return rc;
    }
    *key = task_key(req);
    return 0;
}

static int hook_accept(void *opaque, const char *job_id, const char *image_id, json_t *req,
                       rs_error *err)
{
    svc *s = opaque;
    char *text = record_text(req, image_id, "queued", 0);
    if (!text)
        return rs_error_set(err, -ENOMEM, "out of memory");
    /* Active first: the timer must never see the record as an orphan. */
    rs_journal_rados_set_active(s->journal, job_id, true);
    int rc = rs_journal_rados_create(s->journal, job_id, text, err);
    free(text);
    if (rc < 0)
        rs_journal_rados_set_active(s->journal, job_id, false);
    return rc;
}

static void hook_forget(void *opaque, const char *job_id)
{
    svc *s = opaque;
    rs_journal_rados_forget(s->journal, job_id, NULL);
}

static json_t *hook_health(void *opaque, bool *ok)
{
    svc *s = opaque;
    *ok = s->lease_ok;
    return json_pack("{s:s, s:b, s:b, s:b}", "daemon_id", s->owner, "lease", s->lease_ok,
                     "glance", s->glance != NULL, "libvirt", s->virt != NULL);
}

static int hook_validate_token(void *opaque, const char *token, char *user_id, size_t ulen,
                               char *project_id, size_t plen, bool *has_role,
                               int64_t *expires_at, rs_error *err)
{
    svc *s = opaque;
    if (!s->glance)
        return rs_error_set(err, -EOPNOTSUPP, "no Keystone configured");
    rs_token_info ti;
    memset(&ti, 0, sizeof ti);
    int rc = rs_keystone_validate_token(s->glance, token, &ti, err);
    if (rc < 0)
        return rc;
    snprintf(user_id, ulen, "%s", ti.user_id);
    snprintf(project_id, plen, "%s", ti.project_id);
    *has_role = rs_token_info_has_role(&ti, s->conf->daemon.required_role);
    *expires_at = ti.expires_at;
    rs_token_info_clear(&ti);
    return 0;
}

/* ---- the runner ------------------------------------------------------------------------ */

typedef struct run_ctx {
    svc *s;
    rs_task *t;
    json_t *req;
    rs_snapshot_phase last;
    bool registered;
    int attempt;
} run_ctx;

static int obs_phase(void *arg, rs_snapshot_phase p, const rs_snapshot_req *r)
{
    run_ctx *rc_ = arg;
    if (rs_task_stop_requested(rc_->t))
        return -ESHUTDOWN;
    rc_->last = p;
    char *text = record_text(rc_->req, rs_task_image_id(rc_->t), rs_snapshot_phase_name(p),
                             rc_->attempt);
    if (!text)
        return -ENOMEM;
    rs_error err = RS_ERROR_INIT;
    int rc = rs_journal_rados_update(rc_->s->journal, rs_task_id(rc_->t), text, &err);
    free(text);
    if (rc < 0)
        rs_warn("job=%s journal update failed rc=%d error=\"%s\"", rs_task_id(rc_->t), rc,
                rs_error_msg(&err));
    return rc;
}

static void obs_step(void *arg, const char *step, bool begin, int rc)
{
    run_ctx *c = arg;
    if (begin)
        rs_task_step_begin(c->t, step);
    else
        rs_task_step_end(c->t, step, rc);
    if (!begin && strcmp(step, "flatten") == 0 && c->registered)
        rs_task_set_flatten(c->t, rc == 0 ? "done" : "failed", rc == 0 ? 100 : 0);
}

static void obs_progress(void *arg, int pct)
{
    run_ctx *c = arg;
    if (c->registered)
        rs_task_set_flatten(c->t, "running", pct);
    else
        rs_task_set_progress(c->t, pct);
}

static void obs_registered(void *arg)
{
    run_ctx *c = arg;
    c->registered = true;
    rs_task_set_flatten(c->t, "running", 0);
    rs_task_mark_done(c->t);
}

static void count_error(svc *s, rs_snapshot_phase last, int rc)
{
    if (rc == -ECANCELED || rc == -ESHUTDOWN || rc == -ESTALE)
        return;
    if (last == RS_SNAP_PHASE_GLANCE_CREATE || last == RS_SNAP_PHASE_REGISTER)
        rs_metrics_counter_add(s->metrics, "rbdsnap_glance_errors_total",
                               "Glance errors that failed a job", NULL, 1);
    else
        rs_metrics_counter_add(s->metrics, "rbdsnap_ceph_errors_total",
                               "Ceph errors seen by jobs and requests", "op=\"flow\"", 1);
}

/* End of a job: forget it in the journal (done / clean rollback) or keep
 * it (leftovers: recovery retries). */
static void settle(svc *s, rs_task *t, bool keep)
{
    const char *id = rs_task_id(t);
    if (keep) {
        /* Recovery retries it, no sooner than its backoff allows. */
        backoff_schedule(s, id, false);
        rs_journal_rados_set_active(s->journal, id, false);
        return;
    }
    int rc = forget_job(s, id);
    if (rc == 0 || rc == -ESTALE)
        return;
    /* Final state not journaled: mark the record settled if the journal
     * still takes that write, so that a restart only removes it. */
    char *text = record_text(rs_task_request(t), rs_task_image_id(t), "settled", 0);
    if (text) {
        rs_error err = RS_ERROR_INIT;
        int urc = rs_journal_rados_update(s->journal, id, text, &err);
        if (urc < 0)
            rs_warn("job=%s cannot mark the journal record settled rc=%d error=\"%s\"", id,
                    urc, rs_error_msg(&err));
        free(text);
    }
}

/* A job taken from the journal.  Returns 0 when it was finished here, 1
 * when it should simply run again (resume: the partial RBD work was rolled
 * back, the Glance record is reused), or a negative errno once it is rolled
 * back (state set). */
static int recover_task(svc *s, rs_task *t, const rs_snapshot_observer *obs, int attempt,
                        rs_error *err)
{
    json_t *rec = rs_task_recovered(t);
    const char *phase = jstr(rec, "phase");
    json_t *flow_j = json_object_get(rec, "flow");
    rs_job flow;
    bool has_flow = false;
    if (json_is_string(flow_j)) {
        if (rs_job_from_json(json_string_value(flow_j), &flow, NULL) == 0)
            has_flow = true;
    }
    const char *image_id = rs_task_image_id(t);
    bool cancel = rs_task_cancel_requested(t);
    int rc;
    /* Count the attempt before anything else, so that a job that crashes
     * the daemon again is rolled back next time instead of looping. */
    char *text = record_text(rs_task_request(t), image_id, phase ? phase : "flow", attempt + 1);
    if (text) {
        rs_error jerr = RS_ERROR_INIT;
        rc = rs_journal_rados_update(s->journal, rs_task_id(t), text, &jerr);
        free(text);
        if (rc == -ESTALE)
            return rs_error_set(err, -ESHUTDOWN, "job %s taken over by another daemon",
                                rs_task_id(t));
    }
    rs_info("job=%s recovering phase=%s flow_state=%s attempt=%d", rs_task_id(t),
            phase ? phase : "-", has_flow ? rs_job_state_name(flow.state) : "-", attempt);
    if (has_flow && (flow.state == RS_JOB_DONE || flow.state == RS_JOB_FLATTEN_PENDING) &&
        !cancel && attempt < 1) {
        rs_task_step_begin(t, "recover_finish");
        rc = rs_snapshot_finish(&s->env, image_id, &flow, obs, err);
        rs_task_step_end(t, "recover_finish", rc);
        if (rc == 0) {
            settle(s, t, false);
            return 0;
        }
        rs_warn("job=%s finishing failed rc=%d error=\"%s\"; rolling back", rs_task_id(t), rc,
                rs_error_msg(err));
    } else if (!cancel && attempt < 1 && phase && strcmp(phase, "failed") != 0 &&
               json_object_size(rs_task_request(t))) {
        /* Undo the partial RBD work and run the job again. */
        rc = 0;
        if (has_flow) {
            rs_task_step_begin(t, "recover_undo");
            rc = rs_flow_rollback(s->cl, s->journal, &flow, err);
            rs_task_step_end(t, "recover_undo", rc);
        }
        if (rc == 0)
            return 1;
        rs_warn("job=%s undo of the partial flow failed rc=%d error=\"%s\"", rs_task_id(t), rc,
                rs_error_msg(err));
    } else {
        rc = rs_error_set(err, cancel ? -ECANCELED : -EINTR,
                          "job %s interrupted (phase %s)%s and rolled back", rs_task_id(t),
                          phase ? phase : "?", cancel ? ", cancelled," : "");
    }
    rs_task_set_state(t, RS_TASK_ROLLING_BACK);
    rs_task_step_begin(t, "rollback");
    rs_error rerr = RS_ERROR_INIT;
    int rrc = rs_snapshot_rollback(&s->env, image_id, has_flow ? &flow : NULL, &rerr);
    rs_task_step_end(t, "rollback", rrc);
    if (rrc < 0) {
        rs_error_prefix(err, "rollback failed: %s", rs_error_msg(&rerr));
        rs_task_set_state(t, RS_TASK_FAILED);
        settle(s, t, true);
        return rc < 0 ? rc : rrc;
    }
    rs_task_set_state(t, RS_TASK_ROLLED_BACK);
    settle(s, t, false);
    return rc < 0 ? rc : -EINTR;
}

static int run_task(void *opaque, rs_task *t, rs_error *err)
{
    svc *s = opaque;
    json_t *req = rs_task_request(t);
    run_ctx c = { .s = s, .t = t, .req = req };
    rs_snapshot_observer obs = {
        .arg = &c, .phase = obs_phase, .step = obs_step, .progress = obs_progress,
        .registered = obs_registered, .cancel = rs_task_abort_flag(t),
    };
    json_t *rec = rs_task_recovered(t);
    const char *phase = rec ? jstr(rec, "phase") : NULL;
    bool resume = false;
    if (rec && phase && strcmp(phase, "queued") != 0) {
        int attempt = (int)json_integer_value(json_object_get(rec, "attempt"));
        c.attempt = attempt + 1;
        int rc = recover_task(s, t, &obs, attempt, err);
        if (rc <= 0)
            return rc;
        resume = true;
        rs_info("job=%s resuming image=%s", rs_task_id(t), rs_task_image_id(t));
    }

    if (rs_task_cancel_requested(t) && !resume) {
        rs_task_set_state(t, RS_TASK_ROLLED_BACK);
        settle(s, t, false);
        return rs_error_set(err, -ECANCELED, "job %s cancelled while queued", rs_task_id(t));
    }
    if (rs_task_stop_requested(t)) {
        rs_journal_rados_set_active(s->journal, rs_task_id(t), false);
        return -ESHUTDOWN;
    }

    req_view v;
    view_request(req, &v);
    v.r.job_id = rs_task_id(t);
    v.r.image_id = rs_task_image_id(t);
    v.r.resume = resume;
    rs_snapshot_result res;
    int rc = rs_snapshot_run(&s->env, &v.r, &obs, &res, err);
    if (res.bytes_flattened)
        rs_metrics_counter_add(s->metrics, "rbdsnap_flatten_bytes_total",
                               "Bytes flattened (clone data copied)", NULL,
                               (double)res.bytes_flattened);
    rs_task_set_freeze(t, res.freeze_ms, res.quiesced, res.warning[0] ? res.warning : NULL);
    if (res.mode[0])
        rs_task_set_file(t, res.mode, res.downtime_ms);
    if (rc == -ESHUTDOWN || rc == -ESTALE) {
        /* Stopped at a safe point (or taken over): the journal keeps it. */
        rs_journal_rados_set_active(s->journal, rs_task_id(t), false);
        return -ESHUTDOWN;
    }
    if (rc == 0) {
        if (res.flatten_failed && rs_task_stop_requested(t)) {
            /* Deferred flatten interrupted by SIGTERM: the journal keeps
             * the job (flatten_pending) and the next start finishes it. */
            rs_task_set_flatten(t, "interrupted", 0);
            rs_journal_rados_set_active(s->journal, rs_task_id(t), false);
            return 0;
        }
        if (res.flatten_failed)
            rs_task_set_flatten(t, "failed", 0);
        settle(s, t, false);
        return 0;
    }
    count_error(s, c.last, rc);
    rs_task_set_state(t, res.leftovers ? RS_TASK_FAILED : RS_TASK_ROLLED_BACK);
    settle(s, t, res.leftovers);
    return rc;
}

/* ---- recovery / lease timer ----------------------------------------------------------------- */

static void queue_orphans(svc *s)
{
    rs_journal_rados_entry *e = NULL;
    size_t n = 0;
    rs_error err = RS_ERROR_INIT;
    if (rs_journal_rados_list_mine(s->journal, &e, &n, &err) < 0) {
        rs_warn("journal scan failed: %s", rs_error_msg(&err));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *rec = e[i].request ? json_loads(e[i].request, 0, NULL) : NULL;
        json_t *req = rec ? json_object_get(rec, "request") : NULL;
        const char *image_id = rec ? jstr(rec, "image_id") : NULL;
        const char *phase = rec ? jstr(rec, "phase") : NULL;
        bool forget = false;
        bool due = backoff_due(s, e[i].id, &forget);
        if ((phase && strcmp(phase, "settled") == 0) || forget) {
            /* The job reached a final state but its record could not be
             * removed: cleanup only, never run it again. */
            if (due) {
                rs_info("job=%s journal record of a finished job: removing it", e[i].id);
                forget_job(s, e[i].id);
            } else {
                rs_journal_release(s->journal, e[i].id);
            }
            json_decref(rec);
            continue;
        }
        if (!due) {
            /* Recovery of this job failed recently: wait for its backoff. */
            rs_journal_release(s->journal, e[i].id);
            json_decref(rec);
            continue;
        }
        if (!rec) {
            rec = json_pack("{s:s}", "phase", "flow");
        }
        if (!image_id && e[i].has_flow)
            image_id = e[i].flow.target;
        if (e[i].has_flow) {
            char *ft = NULL;
            if (rs_job_to_json(&e[i].flow, &ft, NULL) == 0) {
                json_object_set_new(rec, "flow", json_string(ft));
                free(ft);
            }
        }
        char *key = req ? task_key(req) : NULL;
        rs_task_submit sub = {
            .id = e[i].id, .image_id = image_id ? image_id : "", .key = key,
            .request = req ? json_incref(req) : json_object(), .recovered = json_incref(rec),
            .force = true,
        };
        rs_error serr = RS_ERROR_INIT;
        if (rs_tasks_submit(s->tasks, &sub, NULL, &serr) < 0) {
            rs_warn("job=%s cannot queue recovered job: %s", e[i].id, rs_error_msg(&serr));
            backoff_schedule(s, e[i].id, false);
            rs_journal_release(s->journal, e[i].id);
        } else {
            rs_info("job=%s recovered phase=%s", e[i].id, jstr(rec, "phase"));
        }
        free(key);
        json_decref(rec);
    }
    rs_journal_rados_entries_free(e, n);
}

static void timer_tick(svc *s)
{
    rs_error err = RS_ERROR_INIT;
    if (rs_journal_rados_lease_renew(s->journal, &err) < 0) {
        if (s->lease_ok)
            rs_err("lease lost: %s", rs_error_msg(&err));
        s->lease_ok = false;
        return;
    }
    if (!s->lease_ok)
        rs_info("lease held again");
    s->lease_ok = true;
    int claimed = 0;
    rs_error_clear(&err);
    if (rs_journal_rados_takeover(s->journal, &claimed, &err) < 0)
        rs_warn("takeover scan failed: %s", rs_error_msg(&err));
    if (claimed)
        rs_metrics_counter_add(s->metrics, "rbdsnap_jobs_taken_over_total",
                               "Jobs taken over from daemons whose lease expired", NULL, claimed);
    retry_forgets(s);
    queue_orphans(s);
}

/* ---- main -------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: rbdsnapd [-c FILE] [--check]\n"
               "  -c, --config FILE   configuration (default $RBDSNAP_CONF or %s)\n"
               "      --check         validate the configuration and exit\n"
               "  -V, --version\n",
            RS_CONF_DEFAULT_PATH);
}

static int setup(svc *s, rs_error *err)
{
    const rs_conf *c = s->conf;
    rs_cluster_opts co = {
        .conf_file = c->ceph.conf, .id = c->ceph.id, .keyring = c->ceph.keyring,
        .key_file = c->ceph.key_file, .mount_timeout = c->ceph.mount_timeout,
        .mon_op_timeout = c->ceph.mon_op_timeout, .osd_op_timeout = c->ceph.osd_op_timeout,
    };
    int rc = rs_cluster_connect(&co, &s->cl, err);
    if (rc < 0)
        return rc;
    rc = rs_glance_open_from_conf(c, c->daemon.workers + 4, &s->glance, err);
    if (rc < 0)
        return rc;
    if (strcmp(c->daemon.auth, "keystone") == 0 && c->daemon.port &&
        (!s->glance || strcmp(c->glance.auth, "none") == 0))
        return rs_error_set(err, -EINVAL, "%s: daemon.auth = \"keystone\" needs glance.auth "
                                          "(password or application_credential) to validate "
                                          "tokens", c->path ? c->path : "config");
    if (c->libvirt.uri && c->libvirt.uri[0]) {
        rs_error verr = RS_ERROR_INIT;
        if (rs_virt_connect(c->libvirt.uri, &s->virt, &verr) < 0) {
            rs_warn("libvirt uri=%s unavailable (no quiesce, no domain lookup): %s",
                    c->libvirt.uri, rs_error_msg(&verr));
            s->virt = NULL;
        }
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    if (c->daemon.listen[0] && c->daemon.port)
        snprintf(s->owner, sizeof s->owner, "%s:%d", host, c->daemon.port);
    else
        snprintf(s->owner, sizeof s->owner, "%s:%s", host, c->daemon.unix_socket);
    rs_journal_rados_opts jo = { .pool = c->journal.pool, .ns = c->journal.namespace_,
                                 .owner = s->owner, .lease_seconds = c->journal.lease_seconds };
    rc = rs_journal_rados_open(s->cl, &jo, &s->journal, err);
    if (rc < 0)
        return rc;
    rc = rs_journal_rados_lease_acquire(s->journal, err);
    if (rc < 0)
        return rc;
    s->lease_ok = true;
    s->env = (rs_snapshot_env){ .conf = c, .cluster = s->cl, .glance = s->glance,
                                .virt = s->virt, .journal = s->journal };
    s->metrics = rs_metrics_new();
    if (!s->metrics)
        return rs_error_set(err, -ENOMEM, "out of memory");
    rs_metrics_counter_add(s->metrics, "rbdsnap_glance_errors_total",
                           "Glance errors that failed a job", NULL, 0);
    rs_metrics_counter_add(s->metrics, "rbdsnap_flatten_bytes_total",
                           "Bytes flattened (clone data copied)", NULL, 0);
    rs_tasks_opts to = { .workers = c->daemon.workers, .queue_limit = c->daemon.queue_limit,
                         .run = run_task, .opaque = s, .metrics = s->metrics };
    rc = rs_tasks_new(&to, &s->tasks, err);
    if (rc < 0)
        return rc;
    rs_api_opts ao = {
        .listen = c->daemon.port ? c->daemon.listen : NULL, .port = c->daemon.port,
        .unix_socket = c->daemon.unix_socket, .unix_mode = c->daemon.unix_socket_mode,
        .max_body = (size_t)c->daemon.max_body,
        .keystone = strcmp(c->daemon.auth, "keystone") == 0,
        .tls_cert = c->daemon.tls_cert, .tls_key = c->daemon.tls_key,
        .jobs = s->tasks, .metrics = s->metrics,
        .hooks = { .opaque = s, .resolve = hook_resolve, .accept = hook_accept,
                   .forget = hook_forget, .health = hook_health,
                   .validate_token = hook_validate_token, .metrics_extra = hook_gc_metrics },
    };
    rc = rs_api_start(&ao, &s->api, err);
    if (rc < 0)
        return rc;
    if (c->gc.enabled) {
        rc = rs_reaper_start(c, s->cl, s->glance, reaper_job_busy, s, &s->reaper, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void teardown(svc *s, int timeout_s)
{
    rs_reaper_stop(s->reaper);      /* before the cluster and Glance go */
    s->reaper = NULL;
    rs_api_quiesce(s->api);
    int left = rs_tasks_shutdown(s->tasks, timeout_s);
    if (left)
        rs_warn("%d job(s) did not reach a safe point in %d s; the journal keeps them", left,
                timeout_s);
    rs_api_free(s->api);
    if (s->journal && s->lease_ok && !left)
        rs_journal_rados_lease_release(s->journal);
    if (!left) {
        rs_tasks_free(s->tasks);
        rs_journal_close(s->journal);
        rs_metrics_free(s->metrics);
        if (s->glance) {
            rs_glance_shutdown(s->glance);
            rs_glance_free(s->glance);
        }
        rs_virt_conn_unref(s->virt);
        rs_cluster_unref(s->cl);
    }
    rs_conf_free(s->conf);
    backoff_free(s);
}

int rs_daemon_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' }, { "check", no_argument, NULL, 'k' },
        { "version", no_argument, NULL, 'V' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    bool check_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'k': check_only = true; break;
        case 'V': printf("rbdsnapd %s\n", RBDSNAP_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    svc s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.plock, NULL);
    rs_error err = RS_ERROR_INIT;
    s.conf = rs_conf_new();
    if (!s.conf) {
        fprintf(stderr, "rbdsnapd: out of memory\n");
        return 1;
    }
    if (rs_conf_load_default(s.conf, path, &err) < 0) {
        fprintf(stderr, "rbdsnapd: %s\n", rs_error_msg(&err));
        rs_conf_free(s.conf);
        return 2;
    }
    if (check_only) {
        printf("%s: OK\n", s.conf->path ? s.conf->path : "(defaults)");
        rs_conf_free(s.conf);
        return 0;
    }
    rs_log_level lvl;
    if (rs_log_level_parse(s.conf->log_level, &lvl) == 0)
        rs_log_set_level(lvl);
    if (s.conf->syslog)
        rs_log_use_syslog(true, "rbdsnapd");
    if (s.conf->failpoints && s.conf->failpoints[0])
        rs_failpoint_configure(s.conf->failpoints);

    /* Signals are handled by this thread only (sigtimedwait below). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = setup(&s, &err);
    if (rc < 0) {
        rs_err("start failed rc=%d error=\"%s\"", rc, rs_error_msg(&err));
        fprintf(stderr, "rbdsnapd: %s\n", rs_error_msg(&err));
        teardown(&s, 0);
        return 1;
    }
    rs_info("started version=%s daemon_id=%s listen=%s port=%d unix_socket=%s auth=%s "
            "workers=%d glance=%s libvirt=%s", RBDSNAP_VERSION, s.owner, s.conf->daemon.listen,
            rs_api_port(s.api), s.conf->daemon.unix_socket, s.conf->daemon.auth,
            s.conf->daemon.workers, s.glance ? "yes" : "no", s.virt ? "yes" : "no");
    timer_tick(&s);
    rs_notify("READY=1\nSTATUS=serving");

    uint64_t wd_usec = rs_notify_watchdog_usec();
    unsigned tick_ms = (unsigned)s.conf->journal.lease_seconds * 1000u / 3u;
    if (wd_usec && wd_usec / 2000 < tick_ms)
        tick_ms = (unsigned)(wd_usec / 2000);
    if (tick_ms < 200)
        tick_ms = 200;
    uint64_t next_tick = rs_now_ms() + tick_ms;
    for (;;) {
        uint64_t now = rs_now_ms();
        if (now >= next_tick) {
            timer_tick(&s);
            if (wd_usec)
                rs_notify("WATCHDOG=1");
            next_tick = rs_now_ms() + tick_ms;
            continue;
        }
        uint64_t wait = next_tick - now;
        struct timespec ts = { .tv_sec = (time_t)(wait / 1000),
                               .tv_nsec = (long)(wait % 1000) * 1000000L };
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP)
            rs_info("SIGHUP ignored (restart to reload the configuration)");
    }
    rs_info("stopping: waiting up to %d s for running jobs to reach a safe point",
            s.conf->daemon.shutdown_timeout);
    rs_notify("STOPPING=1");
    teardown(&s, s.conf->daemon.shutdown_timeout);
    rs_info("stopped");
    return 0;
}
