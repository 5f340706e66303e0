/*
 * service-priv.h - internals of service/ shared between its files and
 * exposed to the unit tests.  Nothing outside service/ and tests/service/
 * includes this header.
 *
 * Pieces:
 *   tasks.c    the job engine: bounded FIFO, N workers, per-instance
 *              serialisation, cancellation, graceful shutdown;
 *   metrics.c  counters and histograms rendered in Prometheus text format;
 *   api.c      the HTTP API (libmicrohttpd + jansson): routing, request
 *              validation, auth (Keystone token cache, UNIX peer creds);
 *   notify.c   sd_notify over $NOTIFY_SOCKET without libsystemd;
 *   daemon.c   wiring: config, Ceph, Glance, libvirt, journal, recovery.
 *
 * Locking: each object has one mutex; no lock is held across a call into
 * librbd, librados, curl or libvirt.
 */
#ifndef RS_SERVICE_SERVICE_PRIV_H
#define RS_SERVICE_SERVICE_PRIV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* ---- metrics (metrics.c) ------------------------------------------------ */

typedef struct rs_metrics rs_metrics;

rs_metrics *rs_metrics_new(void);
void rs_metrics_free(rs_metrics *m);
/* Add @v to the counter @name{@labels} (@labels like `op="clone"`, may be
 * NULL or "").  @help is used the first time @name is seen. */
void rs_metrics_counter_add(rs_metrics *m, const char *name, const char *help,
                            const char *labels, double v);
/* Set a gauge. */
void rs_metrics_gauge_set(rs_metrics *m, const char *name, const char *help,
                          const char *labels, double v);
/* Observe a step duration (seconds) in the histogram
 * rbdsnap_step_duration_seconds{step=@step}. */
void rs_metrics_observe_step(rs_metrics *m, const char *step, double seconds);
/* Value of a counter or gauge (0 if unknown); for tests. */
double rs_metrics_value(rs_metrics *m, const char *name, const char *labels);
/* Prometheus text exposition format; malloc'ed. */
char *rs_metrics_render(rs_metrics *m);

/* ---- jobs (tasks.c) -------------------------------------------------------- */

typedef enum {
    RS_TASK_QUEUED = 0,
    RS_TASK_RUNNING,
    RS_TASK_ROLLING_BACK,
    RS_TASK_DONE,
    RS_TASK_ROLLED_BACK,
    RS_TASK_FAILED,        /* failed and the rollback left something behind */
    RS_TASK_NSTATES
} rs_task_state;

const char *rs_task_state_name(rs_task_state s);
int rs_task_state_parse(const char *s, rs_task_state *out);
bool rs_task_state_final(rs_task_state s);

typedef struct rs_task rs_task;
typedef struct rs_tasks rs_tasks;

/* Runs one job in a worker thread.  Returns 0 (done), -ESHUTDOWN (stopped
 * at a safe point because the daemon is stopping: the journal keeps it) or
 * another negative errno (the runner rolled back; it calls
 * rs_task_set_state(job, RS_TASK_ROLLED_BACK or RS_TASK_FAILED) and fills
 * @err). */
typedef int (*rs_task_run_fn)(void *opaque, rs_task *job, rs_error *err);

typedef struct rs_tasks_opts {
    int workers;
    int queue_limit;
    int keep_finished;      /* finished jobs kept in memory (default 10000) */
    rs_task_run_fn run;
    void *opaque;
    rs_metrics *metrics;    /* may be NULL */
} rs_tasks_opts;

int rs_tasks_new(const rs_tasks_opts *o, rs_tasks **out, rs_error *err);
/* Stop accepting, ask running jobs to stop at a safe point, wait up to
 * @timeout_s for the workers.  Returns the number of jobs still running
 * (they are abandoned to the journal). */
int rs_tasks_shutdown(rs_tasks *e, int timeout_s);
/* Frees everything; only after rs_tasks_shutdown() returned 0, or at exit. */
void rs_tasks_free(rs_tasks *e);

typedef struct rs_task_submit {
    const char *id;         /* job id (uuid) */
    const char *image_id;   /* Glance image id / clone name (uuid) */
    const char *key;        /* serialisation key (instance), NULL = none */
    json_t *request;        /* validated request; reference is stolen */
    json_t *recovered;      /* journal record when taken over; stolen; NULL */
    bool force;             /* ignore the queue limit (recovered jobs) */
} rs_task_submit;

/* -EAGAIN when the queue is full, -ESHUTDOWN when stopping, -EEXIST for a
 * duplicate id.  On success *out (may be NULL) holds a reference. */
int rs_tasks_submit(rs_tasks *e, const rs_task_submit *s, rs_task **out, rs_error *err);
/* A reference to job @id or NULL. */
rs_task *rs_tasks_get(rs_tasks *e, const char *id);
void rs_task_unref(rs_task *j);
/* Cancel: a queued job is dropped (rolled_back), a running one is asked to
 * roll back.  -ENOENT unknown, -EBUSY already finished. */
int rs_tasks_cancel(rs_tasks *e, const char *id, rs_error *err);
/* JSON views. */
json_t *rs_task_to_json(rs_task *j);
/* @state < 0: every job. */
json_t *rs_tasks_list_json(rs_tasks *e, int state);
void rs_tasks_count(rs_tasks *e, unsigned counts[RS_TASK_NSTATES]);
/* Wait until no job is queued or running (tests); 0 or -ETIMEDOUT. */
int rs_tasks_wait_idle(rs_tasks *e, int timeout_ms);
/* True while a job that is not finished (or is still flattening) works on
 * @image: its Glance image id or serialisation key is part of the name.
 * The reaper asks before touching anything. */
bool rs_tasks_image_busy(rs_tasks *e, const char *image);

/* For runners (thread-safe). */
const char *rs_task_id(const rs_task *j);
const char *rs_task_image_id(const rs_task *j);
const char *rs_task_key(const rs_task *j);
json_t *rs_task_request(const rs_task *j);      /* borrowed, read-only */
json_t *rs_task_recovered(const rs_task *j);    /* borrowed, NULL if fresh */
rs_task_state rs_task_get_state(rs_task *j);
void rs_task_set_state(rs_task *j, rs_task_state s);
void rs_task_step_begin(rs_task *j, const char *step);
void rs_task_step_end(rs_task *j, const char *step, int rc);
void rs_task_set_progress(rs_task *j, int pct);
void rs_task_set_freeze(rs_task *j, uint64_t freeze_ms, bool quiesced, const char *warning);
/* File-backed job: "live"/"cold" and the guest's downtime (job JSON "mode",
 * "downtime_ms"). */
void rs_task_set_file(rs_task *j, const char *mode, uint64_t downtime_ms);
void rs_task_set_error(rs_task *j, int code, const char *msg);
/* Report done now (flatten=deferred): the runner goes on flattening. */
void rs_task_mark_done(rs_task *j);
void rs_task_set_flatten(rs_task *j, const char *state, int pct);
bool rs_task_cancel_requested(rs_task *j);
bool rs_task_stop_requested(rs_task *j);
/* Pointer usable as `const atomic_bool *` cancel flag (true on cancel or
 * shutdown). */
const void *rs_task_abort_flag(rs_task *j);

/* ---- request validation (api.c) ------------------------------------------ */

/* Validate a POST /v1/snapshots body.  Returns 0 and a normalised copy in
 * *out, or -EINVAL with a message naming the field. */
int rs_api_validate_snapshot(const char *body, size_t len, json_t **out, rs_error *err);
/* Map a negative errno to an HTTP status. */
int rs_api_errno_status(int rc);

/* ---- HTTP API (api.c) ------------------------------------------------------ */

typedef struct rs_api rs_api;

/* What the API needs from the daemon; every hook may be NULL (tests). */
typedef struct rs_api_hooks {
    void *opaque;
    /* Check that what @req names exists (-ENOENT: 404 before anything is
     * created) and give the serialisation key (malloc'ed) in *key. */
    int (*resolve)(void *opaque, json_t *req, char **key, rs_error *err);
    /* Journal a new job before it is queued. */
    int (*accept)(void *opaque, const char *job_id, const char *image_id, json_t *req,
                  rs_error *err);
    /* Forget a job journaled by accept() that could not be queued. */
    void (*forget)(void *opaque, const char *job_id);
    /* Extra fields for GET /v1/health (new reference) and its overall
     * verdict (false: 503). */
    json_t *(*health)(void *opaque, bool *ok);
    /* Extra Prometheus lines appended to GET /metrics (malloc'ed), or NULL. */
    char *(*metrics_extra)(void *opaque);
    /* Validate a Keystone token: 0 and the token's identity, -EACCES when
     * invalid.  *expires_at is seconds since the epoch. */
    int (*validate_token)(void *opaque, const char *token, char *user_id, size_t ulen,
                          char *project_id, size_t plen, bool *has_role, int64_t *expires_at,
                          rs_error *err);
} rs_api_hooks;

typedef struct rs_api_opts {
    const char *listen;         /* NULL/"" = no TCP listener */
    int port;                   /* 0 = any (see rs_api_port) */
    const char *unix_socket;    /* NULL/"" = none */
    int unix_mode;
    size_t max_body;
    bool keystone;              /* X-Auth-Token required on TCP */
    const char *tls_cert, *tls_key;   /* PEM files, both or none */
    rs_tasks *jobs;
    rs_metrics *metrics;
    rs_api_hooks hooks;
} rs_api_opts;

int rs_api_start(const rs_api_opts *o, rs_api **out, rs_error *err);
/* The TCP port actually bound. */
int rs_api_port(const rs_api *a);
/* Stop accepting new connections (SIGTERM); requests in flight finish. */
void rs_api_quiesce(rs_api *a);
void rs_api_free(rs_api *a);

/* ---- sd_notify (notify.c) -------------------------------------------------- */

/* Send @state ("READY=1", ...) to $NOTIFY_SOCKET.  0, or -errno; 0 (nothing
 * sent) without NOTIFY_SOCKET. */
int rs_notify(const char *state);
/* Watchdog interval in microseconds from $WATCHDOG_USEC (0 = none). */
uint64_t rs_notify_watchdog_usec(void);

#endif
