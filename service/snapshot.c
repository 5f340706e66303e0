/*
 * snapshot.c - the snapshot orchestration (see snapshot.h).
 *
 * Order of a run, each phase announced to the observer (which journals it)
 * before it starts:
 *
 *   glance_create -> flow (rs_flow_run, every RBD step journaled by the flow
 *   through a proxy journal that also reports steps and cancellation) ->
 *   register (add location, wait active) -> [complete: deferred flatten]
 *
 * Failure handling: the flow rolls RBD back itself when one of its steps
 * fails; a failure after it (registration) deletes the Glance record first
 * (Glance then removes the clone it was given as location) and rolls the
 * flow back from its record (idempotent: whatever Glance already removed
 * counts as done).  A failure before the flow only deletes the record.
 *
 * Cancellation is checked by the proxy journal before every flow step and
 * between phases; the flatten progress callback cancels a running flatten.
 */
#define RS_LOG_MODULE "snapshot"
#include "service/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "glance/glance_conf.h"
#include "rbd/ops.h"
#include "service/snapshot_file.h"

bool rs_snapshot_glance_configured(const rs_conf *conf)
{
    return rs_glance_conf_configured(conf);
}

const char *rs_snapshot_phase_name(rs_snapshot_phase p)
{
    switch (p) {
    case RS_SNAP_PHASE_GLANCE_CREATE: return "glance_create";
    case RS_SNAP_PHASE_FLOW: return "flow";
    case RS_SNAP_PHASE_REGISTER: return "register";
    case RS_SNAP_PHASE_COMPLETE: return "complete";
    }
    return "?";
}

static bool cancelled(const rs_snapshot_observer *obs)
{
    return obs && obs->cancel && atomic_load(obs->cancel);
}

static void obs_step(const rs_snapshot_observer *obs, const char *step, bool begin, int rc)
{
    if (obs && obs->step)
        obs->step(obs->arg, step, begin, rc);
}

static void obs_progress(const rs_snapshot_observer *obs, int pct)
{
    if (obs && obs->progress)
        obs->progress(obs->arg, pct);
}

/* ---- resolve ------------------------------------------------------------------ */

void rs_snapshot_images_free(char *pool, char **images, size_t n)
{
    free(pool);
    for (size_t i = 0; images && i < n; i++)
        free(images[i]);
    free(images);
}

static int push(char ***arr, size_t *n, const char *s)
{
    char **na = realloc(*arr, (*n + 1) * sizeof *na);
    if (!na)
        return -ENOMEM;
    *arr = na;
    na[*n] = strdup(s);
    if (!na[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Disks of a libvirt domain that are RBD images. */
static int disks_from_domain(const rs_snapshot_env *env, rs_virt_dom *dom, bool all,
                             char **pool, char ***images, size_t *n, rs_error *err)
{
    rs_virt_disk_list *l = NULL;
    int rc = rs_virt_domain_disks(dom, all ? RS_VIRT_DISKS_ALL : RS_VIRT_DISKS_ROOT, &l, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        const rs_virt_disk *d = &l->disks[i];
        if (d->kind != RS_VIRT_DISK_RBD || !d->pool || !d->image)
            continue;
        if (!*pool) {
            *pool = strdup(d->pool);
            if (!*pool)
                rc = -ENOMEM;
        } else if (strcmp(*pool, d->pool) != 0) {
            rs_warn("domain=%s disk=%s pool=%s skipped (not in %s)", rs_virt_dom_name(dom),
                    d->target, d->pool, *pool);
            continue;
        }
        if (rc == 0)
            rc = push(images, n, d->image);
    }
    rs_virt_disk_list_free(l);
    if (rc == -ENOMEM)
        return rs_error_set(err, rc, "out of memory");
    if (rc == 0 && *n == 0)
        rc = rs_error_set(err, -ENOENT, "domain %s has no RBD disk (file-backed disks need the "
                                        "file path)", rs_virt_dom_name(dom));
    return rc;
}

int rs_snapshot_resolve(const rs_snapshot_env *env, const rs_snapshot_req *req, char **pool_out,
                        char ***images_out, size_t *n_out, rs_error *err)
{
    const rs_conf *conf = env->conf;
    char *pool = NULL;
    char **images = NULL;
    size_t n = 0;
    int rc = 0;
    rs_virt_dom *dom = NULL;
    const char *quiesce = req->quiesce ? req->quiesce : conf->snapshot.quiesce;
    bool required = strcmp(quiesce, "required") == 0;

    if (req->disks && req->ndisks) {
        for (size_t i = 0; i < req->ndisks && rc == 0; i++) {
            const char *slash = strchr(req->disks[i], '/');
            if (!slash) {
                rc = rs_error_set(err, -EINVAL, "disk %s: expected pool/image", req->disks[i]);
                break;
            }
            char *p = strndup(req->disks[i], (size_t)(slash - req->disks[i]));
            if (!p) {
                rc = rs_error_set(err, -ENOMEM, "out of memory");
                break;
            }
            if (!pool) {
                pool = p;
            } else {
                if (strcmp(pool, p) != 0)
                    rc = rs_error_set(err, -EINVAL, "disks must all be in one pool (%s, %s)",
                                      pool, p);
                free(p);
            }
            if (rc == 0 && push(&images, &n, slash + 1) < 0)
                rc = rs_error_set(err, -ENOMEM, "out of memory");
        }
        if (rc == 0 && required)
            rc = rs_error_set(err, -EINVAL, "quiesce=required needs an instance or a domain");
    } else {
        const char *who = req->instance_uuid ? req->instance_uuid : req->domain;
        if (env->virt) {
            rs_error verr = RS_ERROR_INIT;
            int vrc = rs_virt_domain_lookup(env->virt, who, &dom, &verr);
            if (vrc < 0 && vrc != -ENOENT)
                rs_warn("instance=%s libvirt lookup failed: %s", who, rs_error_msg(&verr));
        }
        if (dom && rs_snapshot_file_domain(dom)) {
            rc = 0;     /* file-backed root disk: snapshot_file.c */
        } else if (dom) {
            rc = disks_from_domain(env, dom, req->all_disks, &pool, &images, &n, err);
        } else if (req->domain) {
            rc = rs_error_set(err, -ENOENT, "domain %s not found%s", req->domain,
                              env->virt ? "" : " (libvirt not configured)");
        } else {
            pool = strdup(conf->snapshot.source_pool);
            char *root = rs_strdup_printf("%s_disk", req->instance_uuid);
            if (!pool || !root || push(&images, &n, root) < 0)
                rc = rs_error_set(err, -ENOMEM, "out of memory");
            free(root);
            if (rc == 0 && required)
                rc = rs_error_set(err, -ENOENT, "instance %s: no libvirt domain found, and "
                                                "quiesce=required", req->instance_uuid);
            if (rc == 0 && req->all_disks) {
                char **names = NULL;
                size_t nn = 0;
                rc = rs_rbd_image_list(env->cluster, pool, &names, &nn, err);
                if (rc == 0) {
                    char *pfx = rs_strdup_printf("%s_disk.eph", req->instance_uuid);
                    qsort(names, nn, sizeof *names, cmp_str);
                    for (size_t i = 0; pfx && i < nn && rc == 0; i++)
                        if (rs_str_has_prefix(names[i], pfx) && push(&images, &n, names[i]) < 0)
                            rc = rs_error_set(err, -ENOMEM, "out of memory");
                    free(pfx);
                    rs_rbd_names_free(names, nn);
                }
            }
        }
    }
    /* Every disk must exist in Ceph. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool exists = false;
        rc = rs_rbd_image_exists(env->cluster, pool, images[i], &exists, err);
        if (rc == 0 && !exists)
            rc = rs_error_set(err, -ENOENT, "%s/%s: no such RBD image%s", pool, images[i],
                              req->instance_uuid ? " (unknown instance)" : "");
    }
    if (rc == 0 && n > RS_JOB_MAX_DISKS)
        rc = rs_error_set(err, -E2BIG, "%zu disks: at most %d per snapshot", n, RS_JOB_MAX_DISKS);
    rs_virt_dom_free(dom);
    if (rc < 0 || !images_out) {
        rs_snapshot_images_free(pool, images, n);
        if (rc == 0 && pool_out)
            *pool_out = NULL;
        return rc;
    }
    *pool_out = pool;
    *images_out = images;
    *n_out = n;
    return 0;
}

/* ---- proxy journal: steps, progress, cancellation ----------------------------- */

typedef struct proxy {
    rs_journal base;
    rs_journal *real;
    const rs_snapshot_observer *obs;
} proxy;

static int progress_of(rs_step s)
{
    return 10 + (int)(70 * (int)s / (int)RS_STEP_DONE);
}

static int px_begin(rs_journal *j, const rs_job *job, rs_error *err)
{
    proxy *p = (proxy *)j;
    return rs_journal_begin(p->real, job, err);
}

static int px_step_start(rs_journal *j, const rs_job *job, rs_step step, int disk,
                         const char *details, rs_error *err)
{
    proxy *p = (proxy *)j;
    if (cancelled(p->obs))
        return rs_error_set(err, -ECANCELED, "job %s cancelled before %s", job->id,
                            rs_step_name(step));
    int rc = rs_journal_step_start(p->real, job, step, disk, details, err);
    if (rc == 0) {
        obs_step(p->obs, rs_step_name(step), true, 0);
        obs_progress(p->obs, progress_of(step));
    }
    return rc;
}

static int px_step_done(rs_journal *j, const rs_job *job, rs_step step, int disk,
                        const char *details, rs_error *err)
{
    proxy *p = (proxy *)j;
    int rc = rs_journal_step_done(p->real, job, step, disk, details, err);
    obs_step(p->obs, rs_step_name(step), false, rc);
    return rc;
}

static int px_end(rs_journal *j, const rs_job *job, rs_error *err)
{
    proxy *p = (proxy *)j;
    return rs_journal_end(p->real, job, err);
}

static int px_list(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err)
{
    proxy *p = (proxy *)j;
    return rs_journal_list_orphans(p->real, jobs, n, err);
}

static void px_release(rs_journal *j, const char *id)
{
    proxy *p = (proxy *)j;
    rs_journal_release(p->real, id);
}

static void px_close(rs_journal *j) { (void)j; }

static const rs_journal_ops proxy_ops = {
    .begin = px_begin, .step_start = px_step_start, .step_done = px_step_done,
    .end = px_end, .list_orphans = px_list, .release = px_release, .close = px_close,
};

/* ---- quiesce hooks --------------------------------------------------------------- */

typedef struct quiesce_ctx {
    rs_virt_dom *dom;
    rs_virt_quiesce_policy policy;
    int timeout_s;
    unsigned max_window_ms;
    rs_virt_quiesce *q;
    uint64_t freeze_ms;
    bool frozen;
    char warning[512];
} quiesce_ctx;

static int hook_freeze(void *arg, rs_error *err)
{
    quiesce_ctx *qc = arg;
    char *warning = NULL;
    int rc = rs_virt_quiesce_begin(qc->dom, qc->policy, qc->timeout_s, qc->max_window_ms,
                                   &qc->q, &warning, err);
    if (warning) {
        snprintf(qc->warning, sizeof qc->warning, "%s", warning);
        free(warning);
    }
    if (rc == 0)
        qc->frozen = rs_virt_quiesce_frozen(qc->q);
    return rc;
}

static int hook_thaw(void *arg, rs_error *err)
{
    quiesce_ctx *qc = arg;
    if (!qc->q)
        return 0;
    rs_error terr = RS_ERROR_INIT;
    int rc = rs_virt_quiesce_end(qc->q, &qc->freeze_ms, &terr);
    qc->q = NULL;
    if (rc < 0) {
        if (qc->policy == RS_VIRT_QUIESCE_REQUIRED)
            return rs_error_set(err, rc, "%s", rs_error_msg(&terr));
        snprintf(qc->warning, sizeof qc->warning, "%s", rs_error_msg(&terr));
    }
    return 0;
}

/* ---- flatten progress --------------------------------------------------------------- */

typedef struct flat_ctx {
    const rs_snapshot_observer *obs;
    int base, span;
} flat_ctx;

static int flatten_progress(const char *pool, const char *image, uint64_t done, uint64_t total,
                            void *arg)
{
    flat_ctx *fc = arg;
    if (total)
        obs_progress(fc->obs, fc->base + (int)((uint64_t)fc->span * done / total));
    return cancelled(fc->obs) ? 1 : 0;
}

/* ---- Glance steps --------------------------------------------------------------------- */

static int fp(const char *step, const char *suffix)
{
    char name[96];
    snprintf(name, sizeof name, "service.snapshot.%s%s", step, suffix);
    return rs_failpoint(name);
}

/* Glance down or failing, as opposed to refusing the request. */
static bool glance_unavailable(int rc)
{
    return rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EHOSTUNREACH ||
           rc == -ENOTCONN || rc == -EIO || rc == -ETIMEDOUT || rc == -EAGAIN;
}

/* Attach @url to the image unless it is active already.  While Glance is
 * unavailable the clone is complete and waiting costs nothing, so retry
 * with backoff (0.5 s doubling to 8 s) until glance.register_deadline
 * seconds have passed; cancellation or shutdown stops the wait. */
static int add_location_until_deadline(const rs_snapshot_env *env, const char *image_id,
                                       const char *url, const rs_snapshot_observer *obs,
                                       rs_error *err)
{
    const uint64_t t0 = rs_now_ms();
    const uint64_t deadline_ms = (uint64_t)env->conf->glance.register_deadline * 1000u;
    unsigned delay = 500;
    int attempts = 0, rc;
    for (;;) {
        rs_error aerr = RS_ERROR_INIT;
        rs_glance_image *img = NULL;
        bool active = false;
        attempts++;
        rc = rs_glance_image_get(env->glance, image_id, &img, &aerr);
        if (rc == 0) {
            active = img->status && strcmp(img->status, "active") == 0;
            rs_glance_image_free(img);
        }
        if (rc == 0 || !glance_unavailable(rc)) {
            rs_error_clear(&aerr);
            rc = active ? 0 : rs_glance_image_add_location(env->glance, image_id, url, &aerr);
        }
        uint64_t elapsed = rs_now_ms() - t0;
        if (rc == 0 || !glance_unavailable(rc) || elapsed >= deadline_ms) {
            if (rc < 0 && attempts > 1)
                return rs_error_set(err, rc, "%s (gave up after %d attempts in %llu s: "
                                    "glance.register_deadline = %d)", rs_error_msg(&aerr),
                                    attempts, (unsigned long long)(elapsed / 1000),
                                    env->conf->glance.register_deadline);
            if (rc < 0)
                return rs_error_set(err, rc, "%s", rs_error_msg(&aerr));
            if (attempts > 1)
                rs_info("image=%s registered after attempts=%d dur_ms=%llu", image_id,
                        attempts, (unsigned long long)elapsed);
            return 0;
        }
        if (delay > deadline_ms - elapsed)
            delay = (unsigned)(deadline_ms - elapsed);   /* one last try at the deadline */
        rs_warn("image=%s glance unavailable rc=%d attempt=%d retry_in_ms=%u deadline_s=%d "
                "error=\"%s\"", image_id, rc, attempts, delay,
                env->conf->glance.register_deadline, rs_error_msg(&aerr));
        for (unsigned slept = 0; slept < delay; slept += 100) {
            if (cancelled(obs))
                return rs_error_set(err, -ECANCELED, "image %s: registration cancelled while "
                                    "Glance was unavailable: %s", image_id, rs_error_msg(&aerr));
            rs_sleep_ms(100);
        }
        delay = delay * 2 > 8000 ? 8000 : (delay ? delay * 2 : 500);
    }
}

static int register_location(const rs_snapshot_env *env, const char *image_id,
                             const rs_job *flow, const rs_snapshot_observer *obs, char *loc,
                             size_t loclen, rs_error *err)
{
    char *url = NULL;
    const char *fsid = rs_cluster_fsid(env->cluster);
    int rc = rs_rbd_url_format(fsid, flow->dest_pool, flow->disks[0].clone, RS_FLOW_CLONE_SNAP,
                               &url, err);
    if (rc < 0)
        return rc;
    if (loc)
        snprintf(loc, loclen, "%s", url);
    obs_step(obs, "register", true, 0);
    rc = fp("register", "");
    if (rc < 0) {
        rs_error_set(err, rc, "failpoint service.snapshot.register");
    } else {
        rc = add_location_until_deadline(env, image_id, url, obs, err);
    }
    if (rc == 0)
        rc = fp("register", ".done");
    obs_step(obs, "register", false, rc);
    free(url);
    if (rc < 0)
        return rc;
    obs_progress(obs, 90);
    obs_step(obs, "wait_active", true, 0);
    rc = fp("wait_active", "");
    if (rc == 0)
        rc = rs_glance_image_wait_status(env->glance, image_id, "active",
                                         env->conf->glance.timeout, err);
    if (rc == 0)
        rc = fp("wait_active", ".done");
    obs_step(obs, "wait_active", false, rc);
    return rc;
}

int rs_snapshot_rollback(const rs_snapshot_env *env, const char *image_id, rs_job *flow,
                         rs_error *err)
{
    int rc = 0;
    /* A file-backed job: domain repaired, its RBD image removed. */
    rs_error verr = RS_ERROR_INIT;
    int vrc = rs_snapshot_file_recover(env, image_id, false, &verr);
    if (vrc < 0)
        rc = rs_error_set(err, vrc, "rollback: file-backed job of %s: %s", image_id,
                          rs_error_msg(&verr));
    if (env->glance && image_id && *image_id) {
        rs_error gerr = RS_ERROR_INIT;
        int grc = rs_glance_image_delete(env->glance, image_id, &gerr);
        if (grc < 0 && grc != -ENOENT) {
            rs_warn("image=%s glance delete failed rc=%d error=\"%s\"", image_id, grc,
                    rs_error_msg(&gerr));
            rc = rs_error_set(err, grc, "rollback: glance image %s: %s", image_id,
                              rs_error_msg(&gerr));
        }
    }
    if (flow) {
        rs_error ferr = RS_ERROR_INIT;
        int frc = rs_flow_rollback(env->cluster, env->journal, flow, &ferr);
        if (frc < 0) {
            rs_warn("job=%s rbd rollback failed rc=%d error=\"%s\"", flow->id, frc,
                    rs_error_msg(&ferr));
            if (rc == 0)
                rc = rs_error_set(err, frc, "rollback: %s", rs_error_msg(&ferr));
        }
        /* A Glance delete may have removed what the flow created only after
         * the flow's rollback found the clone busy: try once more. */
        if (frc < 0 && rc == frc) {
            rs_error_clear(err);
            frc = rs_flow_rollback(env->cluster, env->journal, flow, err);
            rc = frc;
        }
    }
    return rc;
}

int rs_snapshot_finish(const rs_snapshot_env *env, const char *image_id, rs_job *flow,
                       const rs_snapshot_observer *obs, rs_error *err)
{
    int rc = 0;
    if (env->glance)
        rc = register_location(env, image_id, flow, obs, NULL, 0, err);
    if (rc == 0 && flow->state == RS_JOB_FLATTEN_PENDING) {
        if (obs && obs->registered)
            obs->registered(obs->arg);
        flat_ctx fc = { .obs = obs, .base = 0, .span = 100 };
        obs_step(obs, "flatten", true, 0);
        rc = rs_flow_complete(env->cluster, env->journal, flow, flatten_progress, &fc, err);
        obs_step(obs, "flatten", false, rc);
    }
    return rc;
}

static int announce(const rs_snapshot_observer *obs, rs_snapshot_phase p,
                    const rs_snapshot_req *req, rs_error *err)
{
    if (cancelled(obs))
        return rs_error_set(err, -ECANCELED, "job %s cancelled before %s",
                            req->job_id ? req->job_id : "?", rs_snapshot_phase_name(p));
    if (obs && obs->phase) {
        int rc = obs->phase(obs->arg, p, req);
        if (rc < 0)
            return rs_error_set(err, rc, "job %s: %s stopped before %s",
                                req->job_id ? req->job_id : "?",
                                rc == -ESHUTDOWN ? "daemon stopping" : "journal",
                                rs_snapshot_phase_name(p));
    }
    return 0;
}

int rs_snapshot_run(const rs_snapshot_env *env, const rs_snapshot_req *req,
                    const rs_snapshot_observer *obs, rs_snapshot_result *res, rs_error *err)
{
    const rs_conf *conf = env->conf;
    memset(res, 0, sizeof *res);
    char job_id[37], image_id[37];
    if (req->job_id)
        snprintf(job_id, sizeof job_id, "%s", req->job_id);
    else if (rs_random_uuid(job_id) < 0)
        return rs_error_set(err, -EIO, "cannot generate a job id");
    if (req->image_id)
        snprintf(image_id, sizeof image_id, "%s", req->image_id);
    else if (rs_random_uuid(image_id) < 0)
        return rs_error_set(err, -EIO, "cannot generate an image id");
    snprintf(res->job_id, sizeof res->job_id, "%s", job_id);
    snprintf(res->image_id, sizeof res->image_id, "%s", image_id);

    rs_snapshot_req r = *req;
    r.job_id = job_id;
    r.image_id = image_id;

    /* Snapshot of a domain: the instance is the domain (Nova: the domain's
     * uuid is the instance uuid), for the Glance property and provenance. */
    char dom_uuid[40] = "";
    if (!r.instance_uuid && r.domain && env->virt) {
        rs_virt_dom *d = NULL;
        if (rs_virt_domain_lookup(env->virt, r.domain, &d, NULL) == 0) {
            snprintf(dom_uuid, sizeof dom_uuid, "%s", rs_virt_dom_uuid(d));
            rs_virt_dom_free(d);
            if (rs_is_uuid(dom_uuid))
                r.instance_uuid = dom_uuid;
        }
    }

    /* A domain whose root disk is a file: live/cold copy (snapshot_file.c). */
    bool file_backed = false;
    int arc = rs_snapshot_file_applies(env, &r, &file_backed, err);
    if (arc < 0)
        return arc;
    if (file_backed)
        return rs_snapshot_file_run(env, &r, obs, res, err);

    rs_flatten_mode flatten;
    if (rs_flatten_mode_parse(req->flatten ? req->flatten : conf->snapshot.flatten, &flatten) < 0)
        return rs_error_set(err, -EINVAL, "flatten: expected no|yes|deferred");
    rs_virt_quiesce_policy qpol;
    if (rs_virt_quiesce_policy_parse(req->quiesce ? req->quiesce : conf->snapshot.quiesce,
                                     &qpol) < 0)
        return rs_error_set(err, -EINVAL, "quiesce: expected required|optional|off");
    int clone_format = 0;
    if (strcmp(conf->snapshot.clone_format, "1") == 0)
        clone_format = 1;
    else if (strcmp(conf->snapshot.clone_format, "2") == 0)
        clone_format = 2;

    /* Resolve disks (and the domain for quiesce). */
    char *pool = NULL;
    char **images = NULL;
    size_t n = 0;
    int rc = rs_snapshot_resolve(env, &r, &pool, &images, &n, err);
    if (rc < 0)
        return rc;
    res->ndisks = n;
    quiesce_ctx qc = { .policy = qpol, .timeout_s = conf->snapshot.quiesce_timeout,
                       .max_window_ms = (unsigned)conf->snapshot.max_freeze * 1000u };
    if (env->virt && qpol != RS_VIRT_QUIESCE_OFF && !req->disks) {
        const char *who = r.instance_uuid ? r.instance_uuid : req->domain;
        if (rs_virt_domain_lookup(env->virt, who, &qc.dom, NULL) < 0)
            qc.dom = NULL;
    }

    /* A resumed job's Glance record may exist from the first attempt even
     * when this attempt cannot see it (Glance down): a failure must still
     * try to delete it, or it is left `queued` (tests/chaos/glance_kill.sh). */
    bool glance_created = req->resume;
    rs_flow_result *fres = calloc(1, sizeof *fres);
    if (!fres) {
        rc = rs_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }

    /* 1. The Glance record. */
    if (env->glance) {
        rc = announce(obs, RS_SNAP_PHASE_GLANCE_CREATE, &r, err);
        if (rc < 0)
            goto out;
        obs_step(obs, "glance_create", true, 0);
        obs_progress(obs, 5);
        rs_kv *extra = calloc(req->nprops + 1, sizeof *extra);
        if (!extra) {
            rc = rs_error_set(err, -ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < req->nprops; i++)
            extra[i] = req->props[i];
        extra[req->nprops] = (rs_kv){ "rbdsnap_job_id", job_id };
        rs_glance_image_spec spec = {
            .id = image_id, .name = req->name ? req->name : image_id, .snapshot = true,
            .instance_uuid = r.instance_uuid, .base_image_ref = req->base_image_ref,
            .owner_id = req->owner_id, .user_id = req->user_id, .disk_format = "raw",
            .container_format = "bare", .extra = extra, .nextra = req->nprops + 1,
        };
        rc = fp("glance_create", "");
        bool exists = false;
        if (rc == 0 && req->resume) {
            rs_glance_image *img = NULL;
            if (rs_glance_image_get(env->glance, image_id, &img, NULL) == 0) {
                exists = img->status && (strcmp(img->status, "queued") == 0 ||
                                         strcmp(img->status, "active") == 0);
                rs_glance_image_free(img);
            }
        }
        if (rc < 0)
            rs_error_set(err, rc, "failpoint service.snapshot.glance_create");
        else if (!exists)
            rc = rs_glance_image_create(env->glance, &spec, NULL, err);
        free(extra);
        if (rc == 0)
            glance_created = true;
        if (rc == 0)
            rc = fp("glance_create", ".done");
        obs_step(obs, "glance_create", false, rc);
        if (rc < 0)
            goto out;
    }

    /* 2. The RBD flow. */
    rc = announce(obs, RS_SNAP_PHASE_FLOW, &r, err);
    if (rc < 0)
        goto out;
    proxy px = { .base = { .ops = &proxy_ops }, .real = env->journal, .obs = obs };
    flat_ctx fc = { .obs = obs, .base = 40, .span = 30 };
    rs_flow_request freq = {
        .job_id = job_id, .instance_uuid = r.instance_uuid, .src_pool = pool,
        .images = (const char *const *)images, .nimages = n, .dest_pool = conf->snapshot.dest_pool,
        .target = image_id, .flatten = flatten, .clone_format = clone_format,
        .snap_prefix = conf->snapshot.snap_prefix,
        .freeze = qc.dom ? hook_freeze : NULL, .thaw = qc.dom ? hook_thaw : NULL,
        .hook_arg = &qc, .progress = flatten_progress, .progress_arg = &fc,
        .journal = &px.base,
    };
    rc = rs_flow_run(env->cluster, &freq, fres, err);
    if (qc.q) {
        /* The flow failed between freeze and thaw without thawing. */
        rs_virt_quiesce_end(qc.q, &qc.freeze_ms, NULL);
        qc.q = NULL;
    }
    res->freeze_ms = qc.dom ? qc.freeze_ms : fres->freeze_us / 1000;
    res->quiesced = qc.frozen;
    snprintf(res->warning, sizeof res->warning, "%s", qc.warning);
    res->flatten_pending = fres->flatten_pending;
    if (rc < 0)
        goto out; /* the flow rolled RBD back itself */
    uint64_t total_size = 0;
    for (size_t i = 0; i < fres->ndisks; i++)
        total_size += fres->disks[i].size;
    if (flatten == RS_FLATTEN_YES)
        res->bytes_flattened = total_size;

    /* 3. Register the location and wait for active. */
    if (env->glance) {
        rc = announce(obs, RS_SNAP_PHASE_REGISTER, &r, err);
        if (rc == 0)
            rc = register_location(env, image_id, &fres->job, obs, res->location,
                                   sizeof res->location, err);
        if (rc < 0) {
            if (rc == -ESHUTDOWN)
                goto out;
            rs_error rerr = RS_ERROR_INIT;
            if (rs_snapshot_rollback(env, image_id, &fres->job, &rerr) < 0) {
                rs_error_prefix(err, "rollback failed (%s)", rs_error_msg(&rerr));
                res->leftovers = true;
            }
            glance_created = false;
            goto out;
        }
    }
    obs_progress(obs, 100);

    /* 4. Deferred flatten. */
    if (fres->flatten_pending) {
        if (obs && obs->registered)
            obs->registered(obs->arg);
        rs_error ferr = RS_ERROR_INIT;
        int frc = announce(obs, RS_SNAP_PHASE_COMPLETE, &r, &ferr);
        if (frc == 0) {
            flat_ctx dc = { .obs = obs, .base = 0, .span = 100 };
            obs_step(obs, "flatten", true, 0);
            frc = rs_flow_complete(env->cluster, env->journal, &fres->job, flatten_progress, &dc,
                                   &ferr);
            obs_step(obs, "flatten", false, frc);
        }
        if (frc == 0) {
            res->bytes_flattened = total_size;
            res->flatten_pending = false;
        } else {
            /* The image is registered and usable; only the flatten is left
             * (the journal keeps it pending for the next start). */
            rs_warn("job=%s image=%s deferred flatten not finished rc=%d error=\"%s\"", job_id,
                    image_id, frc, rs_error_msg(&ferr));
            rc = frc == -ESHUTDOWN ? frc : 0;
            res->flatten_failed = frc != -ESHUTDOWN;
        }
    }

out:
    if (rc < 0 && rc != -ESHUTDOWN && glance_created) {
        rs_error gerr = RS_ERROR_INIT;
        int grc = rs_glance_image_delete(env->glance, image_id, &gerr);
        if (grc < 0 && grc != -ENOENT) {
            rs_error_prefix(err, "and the Glance record %s could not be deleted (%s)", image_id,
                            rs_error_msg(&gerr));
            res->leftovers = true;
        }
    }
    if (rc < 0 && rc != -ESHUTDOWN && fres && fres->job.state == RS_JOB_FAILED)
        res->leftovers = true;
    free(fres);
    rs_virt_dom_free(qc.dom);
    rs_snapshot_images_free(pool, images, n);
    return rc;
}
