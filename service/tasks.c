/*
 * tasks.c - the job engine of rbdsnapd.
 *
 * Design: every job lives in one list (creation order) guarded by the
 * engine mutex.  Queued jobs wait in that list in FIFO order; a worker takes
 * the oldest queued job whose serialisation key (the instance) is not held
 * by another running job, so two snapshots of one instance never interleave
 * while independent instances run in parallel.  The queue is bounded
 * (queue_limit queued jobs; -EAGAIN -> HTTP 429 beyond).
 *
 * Cancellation is cooperative: a queued job is dropped at once; a running
 * job sees its abort flag at the runner's next check (between steps, in
 * flatten progress callbacks) and rolls back.  Shutdown sets the same flag
 * with `stopping` so runners stop at a safe point without rolling back: the
 * journal keeps the job for the next start.
 *
 * Jobs are reference counted: the list owns one reference, each HTTP
 * request or worker that looks at a job takes another.  Job fields are
 * guarded by the engine mutex (one lock; jobs are small and updates rare).
 */
#define RS_LOG_MODULE "jobs"
#include "service/service-priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"

#define MAX_STEPS 24

typedef struct job_step {
    char name[32];
    int64_t started_at;     /* wall clock seconds */
    uint64_t start_ms;      /* monotonic */
    uint64_t dur_ms;
    int rc;
    bool finished;
} job_step;

struct rs_task {
    rs_tasks *engine;
    int refs;                       /* guarded by engine->lock */
    char id[40];
    char image_id[40];
    char *key;
    json_t *request;
    json_t *recovered;
    rs_task_state state;
    char step[32];
    int progress;
    job_step steps[MAX_STEPS];
    int nsteps;
    uint64_t freeze_ms;
    bool quiesced;
    char *warning;
    char file_mode[8];              /* file-backed: live|cold, "" otherwise */
    uint64_t downtime_ms;
    int err_code;
    char *err_msg;
    int64_t created_at, started_at, finished_at;
    char flatten_state[16];
    int flatten_progress;
    bool reported_done;             /* rs_task_mark_done() was called */
    bool in_list;
    atomic_bool abort;              /* cancel or shutdown */
    atomic_bool cancel;
    atomic_bool stopping;
    struct rs_task *next;
};

struct rs_tasks {
    pthread_mutex_t lock;
    pthread_cond_t work;            /* a job was queued / shutdown */
    pthread_cond_t idle;            /* a job finished */
    rs_task *head, *tail;
    unsigned nqueued, nrunning, nfinished;
    int workers_alive;
    int nworkers;
    pthread_t *threads;
    int queue_limit;
    int keep_finished;
    bool stopping;
    rs_task_run_fn run;
    void *opaque;
    rs_metrics *metrics;
};

static const char *const state_names[RS_TASK_NSTATES] = {
    "queued", "running", "rolling_back", "done", "rolled_back", "failed",
};

const char *rs_task_state_name(rs_task_state s)
{
    return (s >= 0 && s < RS_TASK_NSTATES) ? state_names[s] : "unknown";
}

int rs_task_state_parse(const char *s, rs_task_state *out)
{
    for (int i = 0; s && i < RS_TASK_NSTATES; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (rs_task_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool rs_task_state_final(rs_task_state s)
{
    return s == RS_TASK_DONE || s == RS_TASK_ROLLED_BACK || s == RS_TASK_FAILED;
}

static void job_free(rs_task *j)
{
    if (!j)
        return;
    free(j->key);
    json_decref(j->request);
    json_decref(j->recovered);
    free(j->warning);
    free(j->err_msg);
    free(j);
}

/* engine->lock held */
static void job_unref_locked(rs_task *j)
{
    if (--j->refs == 0)
        job_free(j);
}

void rs_task_unref(rs_task *j)
{
    if (!j)
        return;
    rs_tasks *e = j->engine;
    pthread_mutex_lock(&e->lock);
    job_unref_locked(j);
    pthread_mutex_unlock(&e->lock);
}

static void update_gauges_locked(rs_tasks *e)
{
    if (!e->metrics)
        return;
    unsigned counts[RS_TASK_NSTATES] = { 0 };
    for (rs_task *j = e->head; j; j = j->next)
        counts[j->state]++;
    for (int i = 0; i < RS_TASK_NSTATES; i++) {
        char labels[48];
        snprintf(labels, sizeof labels, "state=\"%s\"", state_names[i]);
        rs_metrics_gauge_set(e->metrics, "rbdsnap_jobs", "Jobs known to this daemon, by state",
                             labels, counts[i]);
    }
}

/* Forget the oldest finished jobs beyond keep_finished.  Lock held. */
static void trim_finished_locked(rs_tasks *e)
{
    rs_task *prev = NULL, *j = e->head;
    while (j && e->nfinished > (unsigned)e->keep_finished) {
        rs_task *next = j->next;
        if (rs_task_state_final(j->state) && !j->reported_done) {
            if (prev)
                prev->next = next;
            else
                e->head = next;
            if (e->tail == j)
                e->tail = prev;
            j->in_list = false;
            e->nfinished--;
            job_unref_locked(j);
        } else {
            prev = j;
        }
        j = next;
    }
}

static bool key_busy_locked(rs_tasks *e, const char *key)
{
    if (!key)
        return false;
    for (rs_task *j = e->head; j; j = j->next) {
        if ((j->state == RS_TASK_RUNNING || j->state == RS_TASK_ROLLING_BACK ||
             (j->reported_done && j->started_at && !j->finished_at)) &&
            j->key && strcmp(j->key, key) == 0)
            return true;
    }
    return false;
}

/* The oldest runnable queued job, or NULL.  Lock held. */
static rs_task *pick_locked(rs_tasks *e)
{
    for (rs_task *j = e->head; j; j = j->next) {
        if (j->state != RS_TASK_QUEUED)
            continue;
        /* A cancelled queued job touches nothing: let it through at once. */
        if (!atomic_load(&j->cancel) && key_busy_locked(e, j->key))
            continue;
        return j;
    }
    return NULL;
}

static void finish_locked(rs_tasks *e, rs_task *j, int rc, const rs_error *err)
{
    snprintf(j->step, sizeof j->step, "%s", "finished");
    if (rc == 0) {
        j->state = RS_TASK_DONE;
        j->progress = 100;
    } else if (!rs_task_state_final(j->state)) {
        j->state = RS_TASK_FAILED;
    }
    if (rc < 0 && !j->err_msg) {
        j->err_code = rc;
        j->err_msg = strdup(rs_error_msg(err));
    }
    if (!j->finished_at)
        j->finished_at = rs_wall_time();
    j->reported_done = false;
    e->nfinished++;
    if (e->metrics) {
        char labels[48];
        snprintf(labels, sizeof labels, "state=\"%s\"", state_names[j->state]);
        rs_metrics_counter_add(e->metrics, "rbdsnap_jobs_finished_total",
                               "Jobs that reached a final state", labels, 1);
    }
}

static void *worker_main(void *arg)
{
    rs_tasks *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        rs_task *j = NULL;
        while (!e->stopping && !(j = pick_locked(e)))
            pthread_cond_wait(&e->work, &e->lock);
        if (e->stopping)
            break;
        j->state = RS_TASK_RUNNING;
        j->started_at = rs_wall_time();
        j->refs++;
        e->nqueued--;
        e->nrunning++;
        update_gauges_locked(e);
        pthread_mutex_unlock(&e->lock);

        rs_error err = RS_ERROR_INIT;
        rs_info("job=%s state=running image=%s", j->id, j->image_id);
        uint64_t t0 = rs_now_ms();
        int rc = e->run(e->opaque, j, &err);
        uint64_t dur = rs_now_ms() - t0;

        pthread_mutex_lock(&e->lock);
        e->nrunning--;
        if (rc == -ESHUTDOWN) {
            /* Left for the journal: the next daemon takes it over. */
            rs_info("job=%s state=interrupted step=%s dur_ms=%llu", j->id, j->step,
                    (unsigned long long)dur);
            j->finished_at = 0;
        } else {
            finish_locked(e, j, rc, &err);
            if (rc == 0)
                rs_info("job=%s state=%s image=%s dur_ms=%llu", j->id, state_names[j->state],
                        j->image_id, (unsigned long long)dur);
            else
                rs_warn("job=%s state=%s rc=%d error=\"%s\" dur_ms=%llu", j->id,
                        state_names[j->state], rc, rs_error_msg(&err),
                        (unsigned long long)dur);
            trim_finished_locked(e);
        }
        update_gauges_locked(e);
        job_unref_locked(j);
        pthread_cond_broadcast(&e->work);
        pthread_cond_broadcast(&e->idle);
    }
    e->workers_alive--;
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int rs_tasks_new(const rs_tasks_opts *o, rs_tasks **out, rs_error *err)
{
    rs_tasks *e = calloc(1, sizeof *e);
    if (!e)
        return rs_error_set(err, -ENOMEM, "job engine: out of memory");
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->work, &ca);
    pthread_cond_init(&e->idle, &ca);
    pthread_condattr_destroy(&ca);
    e->nworkers = o->workers > 0 ? o->workers : 4;
    e->queue_limit = o->queue_limit > 0 ? o->queue_limit : 200;
    e->keep_finished = o->keep_finished > 0 ? o->keep_finished : 10000;
    e->run = o->run;
    e->opaque = o->opaque;
    e->metrics = o->metrics;
    e->threads = calloc((size_t)e->nworkers, sizeof *e->threads);
    if (!e->threads) {
        rs_tasks_free(e);
        return rs_error_set(err, -ENOMEM, "job engine: out of memory");
    }
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->nworkers; i++) {
        int rc = pthread_create(&e->threads[i], NULL, worker_main, e);
        if (rc != 0) {
            e->stopping = true;
            pthread_cond_broadcast(&e->work);
            pthread_mutex_unlock(&e->lock);
            for (int k = 0; k < i; k++)
                pthread_join(e->threads[k], NULL);
            e->workers_alive = 0;
            rs_tasks_free(e);
            return rs_error_set(err, -rc, "job engine: cannot start worker thread");
        }
        e->workers_alive++;
    }
    update_gauges_locked(e);
    pthread_mutex_unlock(&e->lock);
    *out = e;
    return 0;
}

int rs_tasks_shutdown(rs_tasks *e, int timeout_s)
{
    if (!e)
        return 0;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    for (rs_task *j = e->head; j; j = j->next) {
        if (j->state == RS_TASK_RUNNING || j->state == RS_TASK_ROLLING_BACK || j->reported_done) {
            atomic_store(&j->stopping, true);
            atomic_store(&j->abort, true);
        }
    }
    pthread_cond_broadcast(&e->work);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_s;
    while (e->workers_alive > 0) {
        if (pthread_cond_timedwait(&e->idle, &e->lock, &until) == ETIMEDOUT)
            break;
    }
    int left = e->workers_alive;
    pthread_mutex_unlock(&e->lock);
    if (left == 0) {
        for (int i = 0; i < e->nworkers; i++)
            pthread_join(e->threads[i], NULL);
        e->nworkers = 0;
    } else {
        for (int i = 0; i < e->nworkers; i++)
            pthread_detach(e->threads[i]);
        e->nworkers = 0;
    }
    return left;
}

void rs_tasks_free(rs_tasks *e)
{
    if (!e)
        return;
    if (e->workers_alive > 0)
        return; /* workers still use it: leak rather than crash at exit */
    rs_task *j = e->head;
    while (j) {
        rs_task *next = j->next;
        j->in_list = false;
        if (--j->refs == 0)
            job_free(j);
        j = next;
    }
    free(e->threads);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->idle);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int rs_tasks_submit(rs_tasks *e, const rs_task_submit *s, rs_task **out, rs_error *err)
{
    int rc = 0;
    rs_task *j = calloc(1, sizeof *j);
    if (!j || !s->id || strlen(s->id) >= sizeof j->id ||
        (s->image_id && strlen(s->image_id) >= sizeof j->image_id)) {
        rc = j ? rs_error_set(err, -EINVAL, "job %s: bad id", s->id ? s->id : "(null)")
               : rs_error_set(err, -ENOMEM, "job: out of memory");
        free(j);
        json_decref(s->request);
        json_decref(s->recovered);
        return rc;
    }
    j->engine = e;
    j->refs = 1;
    snprintf(j->id, sizeof j->id, "%s", s->id);
    snprintf(j->image_id, sizeof j->image_id, "%s", s->image_id ? s->image_id : "");
    j->key = s->key ? strdup(s->key) : NULL;
    j->request = s->request;
    j->recovered = s->recovered;
    j->state = RS_TASK_QUEUED;
    j->created_at = rs_wall_time();
    snprintf(j->step, sizeof j->step, "%s", "queued");
    atomic_init(&j->abort, false);
    atomic_init(&j->cancel, false);
    atomic_init(&j->stopping, false);

    pthread_mutex_lock(&e->lock);
    if (e->stopping) {
        rc = rs_error_set(err, -ESHUTDOWN, "daemon is shutting down");
    } else if (!s->force && e->nqueued >= (unsigned)e->queue_limit) {
        rc = rs_error_set(err, -EAGAIN, "job queue full (%d queued jobs); retry later",
                          e->queue_limit);
    } else {
        rs_task *prev = NULL;
        for (rs_task *o = e->head; o; prev = o, o = o->next) {
            if (strcmp(o->id, j->id) != 0)
                continue;
            if (s->recovered && rs_task_state_final(o->state) && !o->reported_done) {
                /* A failed job retried from the journal replaces its old
                 * in-memory record. */
                if (prev)
                    prev->next = o->next;
                else
                    e->head = o->next;
                if (e->tail == o)
                    e->tail = prev;
                o->in_list = false;
                e->nfinished--;
                job_unref_locked(o);
            } else {
                rc = rs_error_set(err, -EEXIST, "job %s already exists", j->id);
            }
            break;
        }
    }
    if (rc < 0) {
        pthread_mutex_unlock(&e->lock);
        job_free(j);
        return rc;
    }
    j->in_list = true;
    if (e->tail)
        e->tail->next = j;
    else
        e->head = j;
    e->tail = j;
    e->nqueued++;
    if (out) {
        j->refs++;
        *out = j;
    }
    if (e->metrics)
        rs_metrics_counter_add(e->metrics, "rbdsnap_jobs_submitted_total",
                               "Jobs accepted by this daemon", s->recovered ? "origin=\"recovered\""
                                                                            : "origin=\"api\"", 1);
    update_gauges_locked(e);
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

rs_task *rs_tasks_get(rs_tasks *e, const char *id)
{
    rs_task *found = NULL;
    pthread_mutex_lock(&e->lock);
    for (rs_task *j = e->head; j; j = j->next) {
        if (strcmp(j->id, id) == 0) {
            j->refs++;
            found = j;
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return found;
}

int rs_tasks_cancel(rs_tasks *e, const char *id, rs_error *err)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&e->lock);
    for (rs_task *j = e->head; j; j = j->next) {
        if (strcmp(j->id, id) != 0)
            continue;
        if (j->state == RS_TASK_QUEUED && !j->recovered) {
            /* Nothing was done yet (the journal record is removed by the
             * runner hook when it sees the cancel flag; a queued job has
             * touched nothing). */
            atomic_store(&j->cancel, true);
            atomic_store(&j->abort, true);
            rc = 0;
        } else if (rs_task_state_final(j->state) && !j->reported_done) {
            rc = rs_error_set(err, -EBUSY, "job %s already finished (%s)", id,
                              state_names[j->state]);
        } else {
            atomic_store(&j->cancel, true);
            atomic_store(&j->abort, true);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&e->lock);
    if (rc == -ENOENT)
        rs_error_set(err, -ENOENT, "job %s not found", id);
    return rc;
}

static json_t *job_json_locked(rs_task *j)
{
    char created[32] = "", started[32] = "", finished[32] = "";
    rs_format_time(j->created_at, created, sizeof created);
    if (j->started_at)
        rs_format_time(j->started_at, started, sizeof started);
    if (j->finished_at)
        rs_format_time(j->finished_at, finished, sizeof finished);
    json_t *steps = json_array();
    uint64_t now = rs_now_ms();
    for (int i = 0; i < j->nsteps; i++) {
        const job_step *s = &j->steps[i];
        json_array_append_new(steps, json_pack("{s:s, s:I, s:b, s:i}", "name", s->name,
                                               "duration_ms",
                                               (json_int_t)(s->finished ? s->dur_ms
                                                                        : now - s->start_ms),
                                               "finished", s->finished, "rc", s->rc));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:{s:I, s:b}, s:s}",
                          "id", j->id, "image_id", j->image_id,
                          "state", state_names[j->state], "step", j->step,
                          "progress", j->progress, "steps", steps,
                          "freeze", "window_ms", (json_int_t)j->freeze_ms,
                          "quiesced", j->quiesced, "created_at", created);
    if (!o)
        return NULL;
    if (j->started_at)
        json_object_set_new(o, "started_at", json_string(started));
    if (j->finished_at)
        json_object_set_new(o, "finished_at", json_string(finished));
    if (j->warning)
        json_object_set_new(o, "warning", json_string(j->warning));
    if (j->file_mode[0]) {
        json_object_set_new(o, "mode", json_string(j->file_mode));
        json_object_set_new(o, "downtime_ms", json_integer((json_int_t)j->downtime_ms));
    }
    if (j->flatten_state[0])
        json_object_set_new(o, "flatten", json_pack("{s:s, s:i}", "state", j->flatten_state,
                                                     "progress", j->flatten_progress));
    if (j->err_msg)
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:i, s:s}", "code", rs_errno_name(j->err_code),
                                      "errno", -j->err_code, "message", j->err_msg));
    else
        json_object_set_new(o, "error", json_null());
    if (j->recovered)
        json_object_set_new(o, "recovered", json_true());
    if (j->request) {
        json_t *v;
        if ((v = json_object_get(j->request, "instance_uuid")))
            json_object_set(o, "instance_uuid", v);
        if ((v = json_object_get(j->request, "name")))
            json_object_set(o, "name", v);
        if ((v = json_object_get(j->request, "flatten")))
            json_object_set(o, "flatten_mode", v);
    }
    return o;
}

json_t *rs_task_to_json(rs_task *j)
{
    pthread_mutex_lock(&j->engine->lock);
    json_t *o = job_json_locked(j);
    pthread_mutex_unlock(&j->engine->lock);
    return o;
}

json_t *rs_tasks_list_json(rs_tasks *e, int state)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&e->lock);
    for (rs_task *j = e->head; j; j = j->next) {
        if (state >= 0 && j->state != (rs_task_state)state)
            continue;
        json_array_append_new(arr, job_json_locked(j));
    }
    pthread_mutex_unlock(&e->lock);
    return arr;
}

void rs_tasks_count(rs_tasks *e, unsigned counts[RS_TASK_NSTATES])
{
    memset(counts, 0, sizeof(unsigned) * RS_TASK_NSTATES);
    pthread_mutex_lock(&e->lock);
    for (rs_task *j = e->head; j; j = j->next)
        counts[j->state]++;
    pthread_mutex_unlock(&e->lock);
}

bool rs_tasks_image_busy(rs_tasks *e, const char *image)
{
    bool busy = false;
    pthread_mutex_lock(&e->lock);
    for (rs_task *j = e->head; j && !busy; j = j->next) {
        bool live = j->state < RS_TASK_DONE ||
                    (j->flatten_state[0] && strcmp(j->flatten_state, "running") == 0);
        if (!live)
            continue;
        if ((j->image_id[0] && strncmp(image, j->image_id, strlen(j->image_id)) == 0) ||
            (j->key && j->key[0] && strstr(image, j->key)))
            busy = true;
    }
    pthread_mutex_unlock(&e->lock);
    return busy;
}

int rs_tasks_wait_idle(rs_tasks *e, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        bool busy = e->nqueued || e->nrunning;
        if (!busy)
            break;
        if (pthread_cond_timedwait(&e->idle, &e->lock, &until) == ETIMEDOUT) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* ---- runner side ---------------------------------------------------------- */

const char *rs_task_id(const rs_task *j) { return j->id; }
const char *rs_task_image_id(const rs_task *j) { return j->image_id; }
const char *rs_task_key(const rs_task *j) { return j->key; }
json_t *rs_task_request(const rs_task *j) { return j->request; }
json_t *rs_task_recovered(const rs_task *j) { return j->recovered; }

rs_task_state rs_task_get_state(rs_task *j)
{
    pthread_mutex_lock(&j->engine->lock);
    rs_task_state s = j->state;
    pthread_mutex_unlock(&j->engine->lock);
    return s;
}

void rs_task_set_state(rs_task *j, rs_task_state s)
{
    pthread_mutex_lock(&j->engine->lock);
    j->state = s;
    update_gauges_locked(j->engine);
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_step_begin(rs_task *j, const char *step)
{
    pthread_mutex_lock(&j->engine->lock);
    snprintf(j->step, sizeof j->step, "%s", step);
    if (j->nsteps < MAX_STEPS) {
        job_step *s = &j->steps[j->nsteps++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", step);
        s->started_at = rs_wall_time();
        s->start_ms = rs_now_ms();
    }
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_step_end(rs_task *j, const char *step, int rc)
{
    double secs = -1;
    pthread_mutex_lock(&j->engine->lock);
    for (int i = j->nsteps - 1; i >= 0; i--) {
        job_step *s = &j->steps[i];
        if (!s->finished && strcmp(s->name, step) == 0) {
            s->finished = true;
            s->dur_ms = rs_now_ms() - s->start_ms;
            s->rc = rc;
            secs = (double)s->dur_ms / 1000.0;
            break;
        }
    }
    rs_metrics *m = j->engine->metrics;
    pthread_mutex_unlock(&j->engine->lock);
    if (m && secs >= 0 && rc == 0)
        rs_metrics_observe_step(m, step, secs);
}

void rs_task_set_progress(rs_task *j, int pct)
{
    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    pthread_mutex_lock(&j->engine->lock);
    j->progress = pct;
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_set_freeze(rs_task *j, uint64_t freeze_ms, bool quiesced, const char *warning)
{
    pthread_mutex_lock(&j->engine->lock);
    j->freeze_ms = freeze_ms;
    j->quiesced = quiesced;
    if (warning) {
        free(j->warning);
        j->warning = strdup(warning);
    }
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_set_file(rs_task *j, const char *mode, uint64_t downtime_ms)
{
    pthread_mutex_lock(&j->engine->lock);
    snprintf(j->file_mode, sizeof j->file_mode, "%s", mode ? mode : "");
    j->downtime_ms = downtime_ms;
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_set_error(rs_task *j, int code, const char *msg)
{
    pthread_mutex_lock(&j->engine->lock);
    if (!j->err_msg) {
        j->err_code = code;
        j->err_msg = strdup(msg ? msg : "");
    }
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_mark_done(rs_task *j)
{
    pthread_mutex_lock(&j->engine->lock);
    j->state = RS_TASK_DONE;
    j->progress = 100;
    j->reported_done = true;
    j->finished_at = rs_wall_time();
    update_gauges_locked(j->engine);
    pthread_mutex_unlock(&j->engine->lock);
}

void rs_task_set_flatten(rs_task *j, const char *state, int pct)
{
    pthread_mutex_lock(&j->engine->lock);
    snprintf(j->flatten_state, sizeof j->flatten_state, "%s", state);
    j->flatten_progress = pct;
    pthread_mutex_unlock(&j->engine->lock);
}

bool rs_task_cancel_requested(rs_task *j) { return atomic_load(&j->cancel); }
bool rs_task_stop_requested(rs_task *j) { return atomic_load(&j->stopping); }
const void *rs_task_abort_flag(rs_task *j) { return &j->abort; }
