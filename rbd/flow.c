/*
 * flow.c - the snapshot flow, its rollback and recovery (see flow.h).
 *
 * Design.  The rs_job record is the single source of truth: before a step
 * runs, the disk's `step` is set and the record goes to the journal; after
 * it ran, `step_done` is set and the record goes again.  Rollback is
 * computed from the record alone (rs_flow_plan_rollback) and consists only
 * of idempotent actions, so the same code serves an in-process failure, a
 * later `rbdsnap recover` after a crash, and a caller whose own later step
 * (Glance) failed.
 *
 * Quiesce window.  The journal write that announces snap_create for all
 * disks happens before freeze, the one that confirms them after thaw, so
 * the window covers the snap-create calls only.
 *
 * Failpoints: rbd.flow.<step> before and rbd.flow.<step>.done after each
 * step (names from rs_step_name), rbd.flow.rollback before a rollback.
 */
#define RS_LOG_MODULE "rbd.flow"
#include "rbd/flow.h"
#include "rbd/flow-priv.h"
#include "rbd/ops.h"

#include "common/cleanup.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RBDSNAP_VERSION
#define RBDSNAP_VERSION "0"
#endif

/* ---- names ------------------------------------------------------------ */

int rs_flow_make_snap_name(const char *prefix, char *buf, size_t len)
{
    char hex[17];
    int rc;

    if (!prefix)
        prefix = RS_FLOW_SNAP_PREFIX_DEFAULT;
    if (strlen(prefix) > 64 || (prefix[0] && !rs_name_is_safe(prefix, 64)))
        return -EINVAL;
    rc = rs_random_hex(hex, 8);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(buf, len, "%s%s", prefix, hex) >= len)
        return -EINVAL;
    return 0;
}

static void sanitize_suffix(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            *s = '_';
}

int rs_flow_clone_name(const char *target, const char *image, const char *suffix, size_t idx,
                       char *buf, size_t len)
{
    char sfx[64];
    const char *dot;

    if (idx == 0) {
        if ((size_t)snprintf(buf, len, "%s", target) >= len)
            return -EINVAL;
    } else {
        if (suffix && *suffix)
            snprintf(sfx, sizeof(sfx), "%s", suffix);
        else if (image && (dot = strrchr(image, '.')) != NULL && dot[1])
            snprintf(sfx, sizeof(sfx), "%s", dot + 1);
        else
            snprintf(sfx, sizeof(sfx), "disk%zu", idx);
        sanitize_suffix(sfx);
        if ((size_t)snprintf(buf, len, "%s_%s", target, sfx) >= len)
            return -EINVAL;
    }
    return rs_name_is_safe(buf, RS_JOB_NAME_MAX - 1) ? 0 : -EINVAL;
}

/* ---- rollback plan ----------------------------------------------------- */

static const char *const act_names[] = { "unprotect_snap", "remove_snap", "remove_clone",
                                         "remove_trash_snap", "remove_key" };

const char *rs_flow_action_name(rs_flow_action_kind k)
{
    return ((unsigned)k < 5) ? act_names[k] : "?";
}

static rs_flow_action *add(rs_flow_action *acts, size_t max, size_t *n, rs_flow_action_kind k,
                           size_t disk, const char *pool, const char *image, const char *snap)
{
    if (*n >= max)
        return NULL;
    rs_flow_action *a = &acts[(*n)++];
    memset(a, 0, sizeof(*a));
    a->kind = k;
    a->disk = disk;
    a->pool = pool;
    a->image = image;
    a->snap = snap;
    return a;
}

size_t rs_flow_plan_rollback(const rs_job *job, rs_flow_action *acts, size_t max)
{
    size_t n = 0;

    for (size_t k = job->ndisks; k-- > 0;) {
        const rs_job_disk *d = &job->disks[k];
        rs_flow_action *a;

        if (d->step >= RS_STEP_CLONE_SNAP_CREATE) {
            add(acts, max, &n, RS_ACT_UNPROTECT_SNAP, k, job->dest_pool, d->clone,
                RS_FLOW_CLONE_SNAP);
            add(acts, max, &n, RS_ACT_REMOVE_SNAP, k, job->dest_pool, d->clone,
                RS_FLOW_CLONE_SNAP);
        }
        if (d->step >= RS_STEP_CLONE)
            add(acts, max, &n, RS_ACT_REMOVE_CLONE_IF_OURS, k, job->dest_pool, d->clone, d->snap);
        if (d->step >= RS_STEP_SNAP_CREATE) {
            if (job->clone_format == 1)
                add(acts, max, &n, RS_ACT_UNPROTECT_SNAP, k, job->src_pool, d->image, d->snap);
            add(acts, max, &n, RS_ACT_REMOVE_SNAP, k, job->src_pool, d->image, d->snap);
            if (job->clone_format == 2)
                add(acts, max, &n, RS_ACT_REMOVE_TRASH_SNAP, k, job->src_pool, d->image, d->snap);
        }
        if (d->step >= RS_STEP_TAG_SOURCE) {
            a = add(acts, max, &n, RS_ACT_REMOVE_KEY, k, job->src_pool, d->image, d->snap);
            if (a)
                snprintf(a->key, sizeof(a->key), RS_MD_SNAP_PREFIX "%s", d->snap);
        }
    }
    return n;
}

/* ---- rollback execution ------------------------------------------------ */

static int remove_clone_if_ours(rs_cluster *cl, const rs_job *job, const rs_flow_action *a,
                                rs_error *err)
{
    rs_autofree char *pp = NULL;
    rs_autofree char *pi = NULL;
    rs_autofree char *ps = NULL;
    rs_autofree char *jid = NULL;
    rs_error tmp = RS_ERROR_INIT;
    bool ours = false, exists = false;
    int rc;

    rc = rs_rbd_image_exists(cl, a->pool, a->image, &exists, err);
    if (rc < 0 || !exists)
        return rc;
    rc = rs_rbd_get_parent(cl, a->pool, a->image, &pp, &pi, &ps, &tmp);
    if (rc == 0 && strcmp(pp, job->src_pool) == 0 && strcmp(pi, job->disks[a->disk].image) == 0 &&
        strcmp(ps, a->snap) == 0)
        ours = true;
    if (!ours) {
        rs_error_clear(&tmp);
        rc = rs_rbd_metadata_get(cl, a->pool, a->image, RS_MD_JOB_ID, &jid, &tmp);
        if (rc == 0 && strcmp(jid, job->id) == 0)
            ours = true;
    }
    if (!ours) {
        rs_warn("job=%s msg=\"not removing image: not created by this job\" pool=%s image=%s",
                job->id, a->pool, a->image);
        return 0;
    }
    return rs_rbd_image_remove(cl, a->pool, a->image, err);
}

static int remove_trash_snaps(rs_cluster *cl, const rs_flow_action *a, rs_error *err)
{
    rs_rbd_snap_info *snaps = NULL;
    size_t n = 0;
    bool exists = false;
    int rc;

    rc = rs_rbd_image_exists(cl, a->pool, a->image, &exists, err);
    if (rc < 0 || !exists)
        return rc;
    rc = rs_rbd_snap_list(cl, a->pool, a->image, &snaps, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (snaps[i].ns != RS_RBD_SNAP_NS_TRASH || !snaps[i].original_name ||
            strcmp(snaps[i].original_name, a->snap) != 0)
            continue;
        /* Still in the trash: only if a clone lives on, which then is not
         * ours (ours are gone by now); librbd frees it with that clone. */
        rs_info("msg=\"source snapshot still in trash (has other clones)\" pool=%s image=%s snap=%s",
                a->pool, a->image, a->snap);
    }
    rs_rbd_snap_list_free(snaps, n);
    return rc;
}

static int run_action(rs_cluster *cl, const rs_job *job, const rs_flow_action *a, rs_error *err)
{
    switch (a->kind) {
    case RS_ACT_UNPROTECT_SNAP:
        return rs_rbd_snap_unprotect(cl, a->pool, a->image, a->snap, err);
    case RS_ACT_REMOVE_SNAP:
        return rs_rbd_snap_remove(cl, a->pool, a->image, a->snap, true, err);
    case RS_ACT_REMOVE_CLONE_IF_OURS:
        return remove_clone_if_ours(cl, job, a, err);
    case RS_ACT_REMOVE_TRASH_SNAP:
        return remove_trash_snaps(cl, a, err);
    case RS_ACT_REMOVE_KEY:
        return rs_rbd_metadata_remove(cl, a->pool, a->image, a->key, err);
    }
    return -EINVAL;
}

int rs_flow_rollback(rs_cluster *cl, rs_journal *j, rs_job *job, rs_error *err)
{
    rs_flow_action acts[RS_FLOW_MAX_ACTIONS];
    size_t n = rs_flow_plan_rollback(job, acts, RS_FLOW_MAX_ACTIONS);
    int first = 0, rc;
    rs_error jerr = RS_ERROR_INIT;
    uint64_t t0 = rs_now_ms();

    job->state = RS_JOB_ROLLING_BACK;
    rc = rs_journal_step_start(j, job, RS_STEP_NONE, -1, "rollback", &jerr);
    if (rc < 0)
        rs_warn("job=%s msg=\"journal write failed before rollback\" error=\"%s\"", job->id,
                rs_error_msg(&jerr));
    rc = rs_failpoint("rbd.flow.rollback");
    if (rc < 0) {
        first = rs_error_set(err, rc, "job %s: rollback: failpoint rbd.flow.rollback", job->id);
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        rs_error aerr = RS_ERROR_INIT;
        rc = run_action(cl, job, &acts[i], &aerr);
        rs_debug("job=%s action=%s pool=%s image=%s snap=%s rc=%d", job->id,
                 rs_flow_action_name(acts[i].kind), acts[i].pool, acts[i].image,
                 acts[i].snap ? acts[i].snap : "", rc);
        if (rc < 0) {
            rs_warn("job=%s msg=\"rollback action failed\" action=%s error=\"%s\"", job->id,
                    rs_flow_action_name(acts[i].kind), rs_error_msg(&aerr));
            if (!first) {
                first = rc;
                rs_error_set(err, rc, "rollback of job %s: %s", job->id, rs_error_msg(&aerr));
            }
            /* The cluster is unreachable (op timeout, connection lost):
             * every remaining action would wait out its own timeouts and
             * fail the same way.  Stop here; the journal keeps the job for
             * recovery once the cluster is back. */
            if (rs_cluster_rc_is_disconnect(rc)) {
                rs_warn("job=%s msg=\"cluster unreachable, rollback stopped\" done=%zu left=%zu",
                        job->id, i, n - i);
                break;
            }
            /* A clone we could not remove keeps the source snapshot
             * alive: skip this disk's remaining actions (they would fail
             * the same way) but keep going with the others. */
            if (acts[i].kind == RS_ACT_REMOVE_CLONE_IF_OURS || acts[i].kind == RS_ACT_REMOVE_SNAP)
                while (i + 1 < n && acts[i + 1].disk == acts[i].disk)
                    i++;
        }
    }
    if (first == 0) {
        for (size_t k = 0; k < job->ndisks; k++) {
            job->disks[k].step = RS_STEP_NONE;
            job->disks[k].step_done = false;
        }
        job->state = RS_JOB_ROLLED_BACK;
    } else {
        job->state = RS_JOB_FAILED;
        snprintf(job->error, sizeof(job->error), "rollback: %s", rs_error_msg(err));
    }
    rc = rs_journal_end(j, job, &jerr);
    if (rc < 0)
        rs_warn("job=%s msg=\"journal write failed after rollback\" error=\"%s\"", job->id,
                rs_error_msg(&jerr));
    rs_info("job=%s msg=\"rolled back\" outcome=%s actions=%zu dur_ms=%llu rc=%d", job->id,
            rs_job_state_name(job->state), n, (unsigned long long)(rs_now_ms() - t0), first);
    return first;
}

/* ---- the flow ---------------------------------------------------------- */

struct flow {
    rs_cluster *cl;
    const rs_flow_request *req;
    rs_job *job;
    rs_journal *j;
    /* Images kept open from their first step to the end of the run: one
     * open and one exclusive-lock acquisition per image, not per step. */
    rs_rbd_image *src[RS_JOB_MAX_DISKS];
    rs_rbd_image *dst[RS_JOB_MAX_DISKS];
};

static int src_image(struct flow *f, int disk, rs_rbd_image **h, rs_error *err)
{
    if (!f->src[disk]) {
        int rc = rs_rbd_image_open(f->cl, f->job->src_pool, f->job->disks[disk].image,
                                   &f->src[disk], err);
        if (rc < 0)
            return rc;
    }
    *h = f->src[disk];
    return 0;
}

static int dst_image(struct flow *f, int disk, rs_rbd_image **h, rs_error *err)
{
    if (!f->dst[disk]) {
        int rc = rs_rbd_image_open(f->cl, f->job->dest_pool, f->job->disks[disk].clone,
                                   &f->dst[disk], err);
        if (rc < 0)
            return rc;
    }
    *h = f->dst[disk];
    return 0;
}

static void close_images(struct flow *f)
{
    for (int i = 0; i < RS_JOB_MAX_DISKS; i++) {
        rs_rbd_image_close(f->src[i]);
        rs_rbd_image_close(f->dst[i]);
        f->src[i] = f->dst[i] = NULL;
    }
}

static int fail_point(rs_job *job, const char *name, int disk, rs_error *err)
{
    int rc = rs_failpoint(name);
    if (rc < 0)
        return rs_error_set(err, rc, "job %s: disk %d: failpoint %s", job->id, disk, name);
    return 0;
}

static int mark_start(struct flow *f, rs_step step, int disk, rs_error *err)
{
    char fp[96];
    int rc;

    f->job->disks[disk].step = step;
    f->job->disks[disk].step_done = false;
    rc = rs_journal_step_start(f->j, f->job, step, disk, NULL, err);
    if (rc < 0)
        return rc;
    snprintf(fp, sizeof(fp), "rbd.flow.%s", rs_step_name(step));
    return fail_point(f->job, fp, disk, err);
}

static int mark_done(struct flow *f, rs_step step, int disk, rs_error *err)
{
    char fp[96];
    int rc;

    f->job->disks[disk].step_done = true;
    snprintf(fp, sizeof(fp), "rbd.flow.%s.done", rs_step_name(step));
    rc = fail_point(f->job, fp, disk, err);
    if (rc < 0)
        return rc;
    return rs_journal_step_done(f->j, f->job, step, disk, NULL, err);
}

static int do_step(struct flow *f, rs_step step, int disk, rs_error *err);

static int step(struct flow *f, rs_step s, int disk, rs_error *err)
{
    uint64_t t0 = rs_now_us();
    int rc = mark_start(f, s, disk, err);
    if (rc == 0)
        rc = do_step(f, s, disk, err);
    if (rc == 0)
        rc = mark_done(f, s, disk, err);
    rs_debug("job=%s step=%s disk=%d dur_us=%llu rc=%d", f->job->id, rs_step_name(s), disk,
             (unsigned long long)(rs_now_us() - t0), rc);
    return rc;
}

struct progress_ctx {
    const rs_flow_request *req;
    rs_flow_progress_fn fn;
    void *arg;
    const char *pool, *image;
};

static int progress_tramp(uint64_t done, uint64_t total, void *p)
{
    struct progress_ctx *c = p;
    return c->fn ? c->fn(c->pool, c->image, done, total, c->arg) : 0;
}

static int flatten_disk(rs_cluster *cl, rs_job *job, int disk, rs_flow_progress_fn fn, void *arg,
                        rs_error *err)
{
    struct progress_ctx pc = { .fn = fn, .arg = arg, .pool = job->dest_pool,
                               .image = job->disks[disk].clone };
    int rc = rs_rbd_flatten(cl, job->dest_pool, job->disks[disk].clone, progress_tramp, &pc, err);
    if (rc == 0)
        job->disks[disk].flattened = true;
    return rc;
}

static int remove_source_snap(struct flow *f, int disk, rs_error *err)
{
    rs_job *job = f->job;
    rs_job_disk *d = &job->disks[disk];
    char key[RS_JOB_NAME_MAX + 16];
    rs_rbd_image *h = NULL;
    int rc = src_image(f, disk, &h, err);
    if (rc < 0)
        return rc;
    rc = rs_rbd_h_snap_remove(h, d->snap, job->clone_format == 1, err);
    if (rc < 0)
        return rc;
    snprintf(key, sizeof(key), RS_MD_SNAP_PREFIX "%s", d->snap);
    rc = rs_rbd_h_metadata_remove(h, key, err);
    if (rc == 0)
        d->src_snap_removed = true;
    return rc;
}

static int do_step(struct flow *f, rs_step s, int disk, rs_error *err)
{
    rs_job *job = f->job;
    rs_job_disk *d = &job->disks[disk];
    rs_cluster *cl = f->cl;
    rs_rbd_image *h = NULL;
    int rc;

    switch (s) {
    case RS_STEP_TAG_SOURCE: {
        char key[RS_JOB_NAME_MAX + 16];
        const char *keys[1] = { key }, *vals[1] = { job->id };
        snprintf(key, sizeof(key), RS_MD_SNAP_PREFIX "%s", d->snap);
        rc = src_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_metadata_set_many(h, keys, vals, 1, err);
    }
    case RS_STEP_SNAP_CREATE:
        rc = src_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_snap_create(h, d->snap, err);
    case RS_STEP_SNAP_PROTECT:
        rc = src_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_snap_protect(h, d->snap, err);
    case RS_STEP_CLONE:
        return rs_rbd_clone(cl, job->src_pool, d->image, d->snap, job->dest_pool, d->clone,
                            job->clone_format, err);
    case RS_STEP_TAG_CLONE: {
        char created[32], source[3 * RS_JOB_NAME_MAX + 4];
        snprintf(created, sizeof(created), "%lld", (long long)job->created_at);
        snprintf(source, sizeof(source), "%s/%s@%s", job->src_pool, d->image, d->snap);
        const char *keys[] = { RS_MD_JOB_ID, RS_MD_INSTANCE_UUID, RS_MD_CREATED_AT,
                               RS_MD_VERSION, RS_MD_ROLE, RS_MD_SOURCE };
        const char *vals[] = { job->id, job->instance_uuid, created, RBDSNAP_VERSION, "clone",
                               source };
        rc = dst_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_metadata_set_many(h, keys, vals, 6, err);
    }
    case RS_STEP_FLATTEN:
        /* Flatten on its own handle (it may run long and be cancelled);
         * ours would hold the exclusive lock it needs. */
        rs_rbd_image_close(f->dst[disk]);
        f->dst[disk] = NULL;
        return flatten_disk(cl, job, disk, f->req ? f->req->progress : NULL,
                            f->req ? f->req->progress_arg : NULL, err);
    case RS_STEP_CLONE_SNAP_CREATE:
        rc = dst_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_snap_create(h, RS_FLOW_CLONE_SNAP, err);
    case RS_STEP_CLONE_SNAP_PROTECT:
        rc = dst_image(f, disk, &h, err);
        return rc < 0 ? rc : rs_rbd_h_snap_protect(h, RS_FLOW_CLONE_SNAP, err);
    case RS_STEP_SOURCE_SNAP_REMOVE:
        return remove_source_snap(f, disk, err);
    default:
        return rs_error_set(err, -EINVAL, "job %s: unknown step %d", job->id, (int)s);
    }
}

static int check_request(const rs_flow_request *req, rs_error *err)
{
    if (!req->src_pool || !rs_name_is_safe(req->src_pool, 127))
        return rs_error_set(err, -EINVAL, "source pool: missing or invalid name");
    if (!req->dest_pool || !rs_name_is_safe(req->dest_pool, 127))
        return rs_error_set(err, -EINVAL, "destination pool: missing or invalid name");
    if (!req->target || !rs_name_is_safe(req->target, 200))
        return rs_error_set(err, -EINVAL, "target name: missing or invalid (\"%s\")",
                            req->target ? req->target : "");
    if (req->nimages < 1 || req->nimages > RS_JOB_MAX_DISKS || !req->images)
        return rs_error_set(err, -EINVAL, "between 1 and %d images needed", RS_JOB_MAX_DISKS);
    for (size_t i = 0; i < req->nimages; i++) {
        if (!rs_name_is_safe(req->images[i], 200))
            return rs_error_set(err, -EINVAL, "image name \"%s\" is invalid",
                                req->images[i] ? req->images[i] : "");
        for (size_t k = 0; k < i; k++)
            if (strcmp(req->images[i], req->images[k]) == 0)
                return rs_error_set(err, -EINVAL, "image %s given twice", req->images[i]);
    }
    if (req->clone_format < 0 || req->clone_format > 2)
        return rs_error_set(err, -EINVAL, "clone format must be auto, 1 or 2");
    if ((unsigned)req->flatten > RS_FLATTEN_DEFERRED)
        return rs_error_set(err, -EINVAL, "flatten must be no, yes or deferred");
    if (req->job_id && (strlen(req->job_id) >= RS_JOB_ID_MAX || !req->job_id[0]))
        return rs_error_set(err, -EINVAL, "job id too long");
    if (req->instance_uuid && strlen(req->instance_uuid) >= RS_JOB_ID_MAX)
        return rs_error_set(err, -EINVAL, "instance uuid too long");
    return 0;
}

static int build_job(const rs_flow_request *req, int format, rs_job *job, rs_error *err)
{
    int rc;

    memset(job, 0, sizeof(*job));
    if (req->job_id) {
        snprintf(job->id, sizeof(job->id), "%s", req->job_id);
    } else {
        rc = rs_random_uuid(job->id);
        if (rc < 0)
            return rs_error_set(err, rc, "cannot make a job id");
    }
    snprintf(job->instance_uuid, sizeof(job->instance_uuid), "%s",
             req->instance_uuid ? req->instance_uuid : "");
    snprintf(job->src_pool, sizeof(job->src_pool), "%s", req->src_pool);
    snprintf(job->dest_pool, sizeof(job->dest_pool), "%s", req->dest_pool);
    snprintf(job->target, sizeof(job->target), "%s", req->target);
    job->clone_format = format;
    job->flatten = req->flatten;
    job->state = RS_JOB_RUNNING;
    job->created_at = rs_wall_time();
    job->pid = (int)getpid();
    job->ndisks = req->nimages;
    for (size_t i = 0; i < req->nimages; i++) {
        rs_job_disk *d = &job->disks[i];
        snprintf(d->image, sizeof(d->image), "%s", req->images[i]);
        rc = rs_flow_make_snap_name(req->snap_prefix, d->snap, sizeof(d->snap));
        if (rc < 0)
            return rs_error_set(err, rc, "snapshot prefix \"%s\" is invalid",
                                req->snap_prefix ? req->snap_prefix : "");
        rc = rs_flow_clone_name(req->target, req->images[i],
                                (req->suffixes && i > 0) ? req->suffixes[i] : NULL, i, d->clone,
                                sizeof(d->clone));
        if (rc < 0)
            return rs_error_set(err, rc, "clone name for %s/%s is invalid", req->src_pool,
                                req->images[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(job->disks[k].clone, d->clone) == 0)
                return rs_error_set(err, -EINVAL, "disks %s and %s map to the same clone %s",
                                    job->disks[k].image, d->image, d->clone);
    }
    return 0;
}

/* All source snapshots back to back inside one freeze. */
static int snap_phase(struct flow *f, uint64_t *freeze_us, rs_error *err)
{
    rs_job *job = f->job;
    const rs_flow_request *req = f->req;
    int rc = 0, trc;
    uint64_t t0;
    rs_error terr = RS_ERROR_INIT;

    for (size_t i = 0; i < job->ndisks; i++) {
        job->disks[i].step = RS_STEP_SNAP_CREATE;
        job->disks[i].step_done = false;
    }
    rc = rs_journal_step_start(f->j, job, RS_STEP_SNAP_CREATE, -1, NULL, err);
    if (rc < 0)
        return rc;

    if (req->freeze) {
        rc = req->freeze(req->hook_arg, err);
        if (rc < 0) {
            rs_error_prefix(err, "job %s: freeze", job->id);
            return rc;
        }
    }
    t0 = rs_now_us();
    for (size_t i = 0; i < job->ndisks && rc == 0; i++) {
        rc = fail_point(job, "rbd.flow.snap_create", (int)i, err);
        if (rc == 0) {
            rs_rbd_image *h = NULL;
            rc = src_image(f, (int)i, &h, err);
            if (rc == 0)
                rc = rs_rbd_h_snap_create(h, job->disks[i].snap, err);
        }
        if (rc == 0) {
            job->disks[i].step_done = true;
            rc = fail_point(job, "rbd.flow.snap_create.done", (int)i, err);
        }
    }
    *freeze_us = rs_now_us() - t0;
    if (req->thaw) {
        trc = req->thaw(req->hook_arg, &terr);
        if (trc < 0)
            rs_warn("job=%s msg=\"thaw failed\" error=\"%s\"", job->id, rs_error_msg(&terr));
    }
    if (rc < 0)
        return rc;
    return rs_journal_step_done(f->j, job, RS_STEP_SNAP_CREATE, -1, NULL, err);
}

static void fill_result(rs_cluster *cl, const rs_job *job, rs_flow_result *res)
{
    snprintf(res->fsid, sizeof(res->fsid), "%s", rs_cluster_fsid(cl));
    snprintf(res->dest_pool, sizeof(res->dest_pool), "%s", job->dest_pool);
    res->clone_format = job->clone_format;
    res->ndisks = job->ndisks;
    for (size_t i = 0; i < job->ndisks; i++) {
        rs_flow_disk_result *r = &res->disks[i];
        const rs_job_disk *d = &job->disks[i];
        snprintf(r->src_image, sizeof(r->src_image), "%s", d->image);
        snprintf(r->src_snap, sizeof(r->src_snap), "%s", d->snap);
        snprintf(r->clone, sizeof(r->clone), "%s", d->clone);
        r->flattened = d->flattened;
        r->src_snap_removed = d->src_snap_removed;
    }
    res->job = *job;
}

int rs_flow_run(rs_cluster *cl, const rs_flow_request *req, rs_flow_result *res, rs_error *err)
{
    rs_job *job = &res->job;
    struct flow f = { .cl = cl, .req = req, .job = job, .j = req->journal };
    int format = req->clone_format, rc;
    uint64_t t0 = rs_now_us();

    memset(res, 0, sizeof(*res));
    rc = check_request(req, err);
    if (rc < 0)
        return rc;
    if (format == 0) {
        rc = rs_rbd_clone_format_auto(cl, &format, err);
        if (rc < 0) {
            rs_error_prefix(err, "clone format auto");
            return rc;
        }
    }
    rc = build_job(req, format, job, err);
    if (rc < 0)
        return rc;
    rc = rs_journal_begin(f.j, job, err);
    if (rc < 0)
        return rc;
    rs_info("job=%s msg=start pool=%s image=%s disks=%zu dest_pool=%s target=%s clone_format=%d "
            "flatten=%s", job->id, job->src_pool, job->disks[0].image, job->ndisks,
            job->dest_pool, job->target, job->clone_format, rs_flatten_mode_name(job->flatten));

    for (size_t i = 0; i < job->ndisks && rc == 0; i++)
        rc = step(&f, RS_STEP_TAG_SOURCE, (int)i, err);
    if (rc == 0)
        rc = snap_phase(&f, &res->freeze_us, err);
    for (size_t i = 0; i < job->ndisks && rc == 0; i++) {
        int k = (int)i;
        if (job->clone_format == 1)
            rc = step(&f, RS_STEP_SNAP_PROTECT, k, err);
        if (rc == 0)
            rc = step(&f, RS_STEP_CLONE, k, err);
        if (rc == 0)
            rc = step(&f, RS_STEP_TAG_CLONE, k, err);
        if (rc == 0 && job->flatten == RS_FLATTEN_YES)
            rc = step(&f, RS_STEP_FLATTEN, k, err);
        if (rc == 0)
            rc = step(&f, RS_STEP_CLONE_SNAP_CREATE, k, err);
        if (rc == 0)
            rc = step(&f, RS_STEP_CLONE_SNAP_PROTECT, k, err);
        if (rc == 0 && (job->clone_format == 2 || job->disks[k].flattened))
            rc = step(&f, RS_STEP_SOURCE_SNAP_REMOVE, k, err);
    }
    for (size_t i = 0; i < job->ndisks && rc == 0; i++) {
        rs_rbd_image *h = NULL;
        rc = dst_image(&f, (int)i, &h, err);
        if (rc == 0)
            rc = rs_rbd_h_size(h, &res->disks[i].size, err);
    }
    /* Release the images (and their exclusive locks) before any rollback
     * or completion works on them by name. */
    close_images(&f);

    if (rc < 0) {
        rs_error rberr = RS_ERROR_INIT;
        snprintf(job->error, sizeof(job->error), "%s", rs_error_msg(err));
        rs_warn("job=%s msg=\"failed, rolling back\" error=\"%s\" rc=%d", job->id,
                rs_error_msg(err), rc);
        if (rs_flow_rollback(cl, f.j, job, &rberr) < 0) {
            char first[RS_ERROR_MSG_MAX];
            snprintf(first, sizeof(first), "%s", rs_error_msg(err));
            rs_error_reset(err, rc, "%.400s; rollback incomplete (%.400s), left for rbdsnap recover",
                           first, rs_error_msg(&rberr));
        }
        fill_result(cl, job, res);
        res->duration_us = rs_now_us() - t0;
        return rc;
    }

    job->state = job->flatten == RS_FLATTEN_DEFERRED ? RS_JOB_FLATTEN_PENDING : RS_JOB_DONE;
    if (job->state == RS_JOB_DONE)
        for (size_t i = 0; i < job->ndisks; i++)
            job->disks[i].step = RS_STEP_DONE;
    {
        rs_error jerr = RS_ERROR_INIT;
        if (rs_journal_end(f.j, job, &jerr) < 0)
            rs_warn("job=%s msg=\"journal end failed\" error=\"%s\"", job->id, rs_error_msg(&jerr));
    }
    {
        uint64_t sizes[RS_JOB_MAX_DISKS];
        for (size_t i = 0; i < job->ndisks; i++)
            sizes[i] = res->disks[i].size;
        fill_result(cl, job, res);
        for (size_t i = 0; i < job->ndisks; i++)
            res->disks[i].size = sizes[i];
    }
    res->flatten_pending = job->state == RS_JOB_FLATTEN_PENDING;
    res->duration_us = rs_now_us() - t0;
    rs_info("job=%s msg=done state=%s freeze_us=%llu dur_ms=%llu", job->id,
            rs_job_state_name(job->state), (unsigned long long)res->freeze_us,
            (unsigned long long)(res->duration_us / 1000));
    return 0;
}

int rs_flow_complete(rs_cluster *cl, rs_journal *j, rs_job *job, rs_flow_progress_fn progress,
                     void *progress_arg, rs_error *err)
{
    rs_flow_request req = { .progress = progress, .progress_arg = progress_arg };
    struct flow f = { .cl = cl, .req = &req, .job = job, .j = j };
    int rc;

    if (job->state != RS_JOB_FLATTEN_PENDING)
        return rs_error_set(err, -EINVAL, "job %s: state %s, not flatten_pending", job->id,
                            rs_job_state_name(job->state));
    rc = rs_journal_begin(j, job, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < job->ndisks && rc == 0; i++) {
        int k = (int)i;
        rc = step(&f, RS_STEP_FLATTEN, k, err);
        if (rc == 0 && job->clone_format == 1)
            rc = step(&f, RS_STEP_SOURCE_SNAP_REMOVE, k, err);
    }
    close_images(&f);
    if (rc == 0) {
        job->state = RS_JOB_DONE;
        for (size_t i = 0; i < job->ndisks; i++)
            job->disks[i].step = RS_STEP_DONE;
    } else {
        snprintf(job->error, sizeof(job->error), "%s", rs_error_msg(err));
    }
    {
        rs_error jerr = RS_ERROR_INIT;
        if (rs_journal_end(j, job, &jerr) < 0)
            rs_warn("job=%s msg=\"journal end failed\" error=\"%s\"", job->id, rs_error_msg(&jerr));
    }
    rs_info("job=%s msg=\"deferred flatten\" state=%s rc=%d", job->id, rs_job_state_name(job->state),
            rc);
    return rc;
}

int rs_flow_recover(rs_cluster *cl, rs_journal *j, bool complete_deferred,
                    rs_flow_report_fn report, void *arg, rs_error *err)
{
    rs_job *jobs = NULL;
    size_t n = 0;
    int first = 0, rc;

    rc = rs_journal_list_orphans(j, &jobs, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rs_job *job = &jobs[i];
        rs_error jerr = RS_ERROR_INIT;
        const char *action;

        if (job->state == RS_JOB_FLATTEN_PENDING) {
            if (!complete_deferred) {
                rs_journal_release(j, job->id);
                if (report)
                    report(job, "pending", 0, "deferred flatten not run (use --complete-deferred)",
                           arg);
                continue;
            }
            action = "completed";
            rc = rs_flow_complete(cl, j, job, NULL, NULL, &jerr);
        } else {
            action = "rolled_back";
            rc = rs_flow_rollback(cl, j, job, &jerr);
        }
        if (report)
            report(job, action, rc, rc < 0 ? rs_error_msg(&jerr) : "", arg);
        if (rc < 0 && !first) {
            first = rc;
            rs_error_set(err, rc, "%s", rs_error_msg(&jerr));
        }
    }
    free(jobs);
    return first;
}

/* ---- leftovers by provenance ------------------------------------------ */

static int scan_source(rs_cluster *cl, const char *pool, const char *prefix, rs_leftover_fn fn,
                       void *arg, rs_error *err)
{
    char **names = NULL;
    size_t n = 0;
    int rc = rs_rbd_image_list(cl, pool, &names, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char **keys = NULL, **vals = NULL;
        size_t nk = 0;
        rs_error e = RS_ERROR_INIT;
        if (rs_rbd_metadata_list(cl, pool, names[i], RS_MD_SNAP_PREFIX, &keys, &vals, &nk, &e) < 0)
            continue;     /* vanished meanwhile */
        for (size_t k = 0; k < nk; k++) {
            rs_leftover l = { 0 };
            const char *snap = keys[k] + strlen(RS_MD_SNAP_PREFIX);
            bool exists = false;
            snprintf(l.pool, sizeof(l.pool), "%s", pool);
            snprintf(l.image, sizeof(l.image), "%s", names[i]);
            snprintf(l.snap, sizeof(l.snap), "%s", snap);
            snprintf(l.job_id, sizeof(l.job_id), "%s", vals[k]);
            rs_error_clear(&e);
            if (rs_rbd_snap_exists(cl, pool, names[i], snap, &exists, &e) < 0)
                continue;
            if (exists) {
                rs_rbd_child *ch = NULL;
                size_t nch = 0;
                l.kind = RS_LEFTOVER_SOURCE_SNAP;
                if (rs_rbd_list_children(cl, pool, names[i], snap, &ch, &nch, &e) == 0)
                    l.children = nch;
                rs_rbd_children_free(ch, nch);
            } else {
                l.kind = RS_LEFTOVER_SOURCE_KEY;
            }
            fn(&l, arg);
        }
        rs_rbd_names_free(keys, nk);
        rs_rbd_names_free(vals, nk);
        /* Snapshots with our prefix but no key (made by hand or very old). */
        if (prefix && *prefix) {
            rs_rbd_snap_info *snaps = NULL;
            size_t ns = 0;
            if (rs_rbd_snap_list(cl, pool, names[i], &snaps, &ns, &e) == 0) {
                for (size_t s = 0; s < ns; s++) {
                    char key[RS_JOB_NAME_MAX + 16];
                    rs_autofree char *v = NULL;
                    rs_error e2 = RS_ERROR_INIT;
                    if (snaps[s].ns != RS_RBD_SNAP_NS_USER ||
                        !rs_str_has_prefix(snaps[s].name, prefix))
                        continue;
                    snprintf(key, sizeof(key), RS_MD_SNAP_PREFIX "%s", snaps[s].name);
                    if (rs_rbd_metadata_get(cl, pool, names[i], key, &v, &e2) == 0)
                        continue;     /* reported above */
                    rs_leftover l = { .kind = RS_LEFTOVER_SOURCE_SNAP };
                    snprintf(l.pool, sizeof(l.pool), "%s", pool);
                    snprintf(l.image, sizeof(l.image), "%s", names[i]);
                    snprintf(l.snap, sizeof(l.snap), "%s", snaps[s].name);
                    rs_rbd_child *ch = NULL;
                    size_t nch = 0;
                    if (rs_rbd_list_children(cl, pool, names[i], snaps[s].name, &ch, &nch, &e2) == 0)
                        l.children = nch;
                    rs_rbd_children_free(ch, nch);
                    fn(&l, arg);
                }
            }
            rs_rbd_snap_list_free(snaps, ns);
        }
    }
    rs_rbd_names_free(names, n);
    return 0;
}

static int scan_dest(rs_cluster *cl, const char *pool, rs_leftover_fn fn, void *arg, rs_error *err)
{
    char **names = NULL;
    size_t n = 0;
    int rc = rs_rbd_image_list(cl, pool, &names, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rs_autofree char *role = NULL;
        rs_autofree char *jid = NULL;
        rs_error e = RS_ERROR_INIT;
        bool prot = false;
        if (rs_rbd_metadata_get(cl, pool, names[i], RS_MD_ROLE, &role, &e) < 0 ||
            strcmp(role, "clone") != 0)
            continue;
        rs_error_clear(&e);
        if (rs_rbd_snap_is_protected(cl, pool, names[i], RS_FLOW_CLONE_SNAP, &prot, &e) == 0 && prot)
            continue;
        rs_leftover l = { .kind = RS_LEFTOVER_CLONE_INCOMPLETE };
        snprintf(l.pool, sizeof(l.pool), "%s", pool);
        snprintf(l.image, sizeof(l.image), "%s", names[i]);
        snprintf(l.snap, sizeof(l.snap), "%s", RS_FLOW_CLONE_SNAP);
        rs_error_clear(&e);
        if (rs_rbd_metadata_get(cl, pool, names[i], RS_MD_JOB_ID, &jid, &e) == 0)
            snprintf(l.job_id, sizeof(l.job_id), "%s", jid);
        fn(&l, arg);
    }
    rs_rbd_names_free(names, n);
    return 0;
}

int rs_flow_scan_leftovers(rs_cluster *cl, const char *src_pool, const char *dest_pool,
                           const char *snap_prefix, rs_leftover_fn fn, void *arg, rs_error *err)
{
    int rc = 0;
    if (src_pool)
        rc = scan_source(cl, src_pool, snap_prefix, fn, arg, err);
    if (rc == 0 && dest_pool)
        rc = scan_dest(cl, dest_pool, fn, arg, err);
    return rc;
}
