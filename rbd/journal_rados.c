/*
 * journal_rados.c - RADOS omap implementation of the job journal (see
 * journal_rados.h for the layout, fencing and lease rules).
 *
 * Design: every call borrows the pool's cached ioctx from rs_cluster,
 * derives a private ioctx bound to the journal namespace (a local
 * operation, no round trip), does one compound rados operation and gives
 * the borrowed ioctx back with the result, so a dead connection is retired
 * and the next call reconnects.  Writes are single write-ops (create the
 * object if needed + compare own.<id> + set/remove keys), hence atomic on
 * the OSD.  The set of job ids this process is working on lives in memory
 * (mutex-guarded) and only decides what list_orphans/list_mine return.
 */
#define RS_LOG_MODULE "rbd.journal"
#include "rbd/journal_rados.h"

#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"

#define LEASE_LOCK_NAME "rbdsnap.lease"

typedef struct active_id {
    char id[RS_JOB_ID_MAX];
    struct active_id *next;
} active_id;

typedef struct rj {
    rs_journal base;
    rs_cluster *cl;
    char *pool, *ns, *owner;
    int lease_seconds;
    pthread_mutex_t lock;
    active_id *active;
} rj;

static const rs_journal_ops rj_ops;

bool rs_journal_is_rados(const rs_journal *j)
{
    return j && j->ops == &rj_ops;
}

/* ---- ioctx --------------------------------------------------------------- */

typedef struct io_ctx {
    void *borrowed;
    rados_ioctx_t io;
} io_ctx;

static int io_get(rj *r, io_ctx *c, rs_error *err)
{
    c->borrowed = NULL;
    c->io = NULL;
    int rc = rs_cluster_ioctx_get(r->cl, r->pool, &c->borrowed, err);
    if (rc < 0)
        return rc;
    rados_ioctx_t b = c->borrowed;
    rc = rados_ioctx_create2(rados_ioctx_get_cluster(b), rados_ioctx_get_id(b), &c->io);
    if (rc < 0) {
        rs_cluster_ioctx_put_rc(r->cl, c->borrowed, rc);
        c->borrowed = NULL;
        return rs_error_set(err, rc, "journal %s/%s: cannot open ioctx", r->pool, r->ns);
    }
    rados_ioctx_set_namespace(c->io, r->ns);
    return 0;
}

static void io_put(rj *r, io_ctx *c, int rc)
{
    if (c->io)
        rados_ioctx_destroy(c->io);
    if (c->borrowed)
        rs_cluster_ioctx_put_rc(r->cl, c->borrowed, rc);
    c->io = NULL;
    c->borrowed = NULL;
}

/* ---- omap helpers ---------------------------------------------------------- */

typedef int (*kv_fn)(const char *key, const char *val, size_t vlen, void *arg);

/* Walk every key with @prefix of the journal object. -ENOENT is an empty
 * journal (returns 0). */
static int omap_walk(rj *r, rados_ioctx_t io, const char *prefix, kv_fn fn, void *arg,
                     rs_error *err)
{
    char *after = strdup("");
    if (!after)
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    int rc = 0;
    for (;;) {
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = NULL;
        unsigned char more = 0;
        int prval = 0;
        rados_read_op_omap_get_vals2(op, after, prefix, 256, &it, &more, &prval);
        rc = rados_read_op_operate(op, io, RS_JOURNAL_RADOS_OBJECT, 0);
        if (rc == 0 && prval < 0)
            rc = prval;
        if (rc < 0) {
            rados_release_read_op(op);
            if (rc == -ENOENT)
                rc = 0;
            else
                rs_error_set(err, rc, "journal %s/%s/%s: omap read failed", r->pool, r->ns,
                             RS_JOURNAL_RADOS_OBJECT);
            break;
        }
        char *key = NULL, *val = NULL;
        size_t klen = 0, vlen = 0;
        bool any = false;
        while (rados_omap_get_next2(it, &key, &val, &klen, &vlen) == 0 && key) {
            any = true;
            char *k = strndup(key, klen);
            char *v = strndup(val ? val : "", vlen);
            if (!k || !v) {
                free(k);
                free(v);
                rc = rs_error_set(err, -ENOMEM, "journal: out of memory");
                break;
            }
            free(after);
            after = strdup(k);
            if (rc == 0)
                rc = fn(k, v, vlen, arg);
            free(k);
            free(v);
            if (rc != 0 || !after)
                break;
        }
        rados_omap_get_end(it);
        rados_release_read_op(op);
        if (rc != 0 || !more || !any || !after)
            break;
    }
    free(after);
    return rc < 0 ? rc : 0;
}

static char *key_of(const char *kind, const char *id)
{
    return rs_strdup_printf("%s.%s", kind, id);
}

/* One fenced write: cmp own.<id> == owner (unless !fence), then set the
 * given keys and remove the given keys. */
static int fenced_write(rj *r, const char *id, bool fence, const char *const *set_keys,
                        const char *const *set_vals, size_t nset, const char *const *rm_keys,
                        size_t nrm, rs_error *err)
{
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    char *own = key_of("own", id);
    if (!own) {
        io_put(r, &c, 0);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    rados_write_op_t op = rados_create_write_op();
    int cmp_rval = 0;
    rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
    if (fence) {
        rados_write_op_omap_cmp2(op, own, LIBRADOS_CMPXATTR_OP_EQ, r->owner, strlen(own),
                                 strlen(r->owner), &cmp_rval);
    }
    if (nset) {
        size_t klens[8], vlens[8];
        for (size_t i = 0; i < nset && i < 8; i++) {
            klens[i] = strlen(set_keys[i]);
            vlens[i] = strlen(set_vals[i]);
        }
        rados_write_op_omap_set2(op, set_keys, set_vals, klens, vlens, nset);
    }
    if (nrm)
        rados_write_op_omap_rm_keys(op, rm_keys, nrm);
    /* A removal-only write never grows the pool: FULL_TRY lets it through
     * on a full pool (quota or ENOSPC), which is how space is freed; any
     * other write waits for space (the objecter pauses it) as usual. */
    int flags = nset == 0 && nrm ? LIBRADOS_OPERATION_FULL_TRY : 0;
    rc = rados_write_op_operate2(op, c.io, RS_JOURNAL_RADOS_OBJECT, NULL, flags);
    rados_release_write_op(op);
    if (fence && (rc == -ECANCELED || cmp_rval < 0 || rc == -ENOENT)) {
        rc = rs_error_set(err, -ESTALE, "journal: job %s is no longer owned by %s (taken over)",
                          id, r->owner);
        io_put(r, &c, 0);
    } else if (rc < 0) {
        io_put(r, &c, rc);
        rs_error_set(err, rc, "journal %s/%s: write of job %s failed", r->pool, r->ns, id);
    } else {
        io_put(r, &c, 0);
    }
    free(own);
    return rc;
}

/* ---- active set ------------------------------------------------------------ */

static bool active_has_locked(rj *r, const char *id)
{
    for (active_id *a = r->active; a; a = a->next)
        if (strcmp(a->id, id) == 0)
            return true;
    return false;
}

void rs_journal_rados_set_active(rs_journal *j, const char *id, bool on)
{
    rj *r = (rj *)j;
    pthread_mutex_lock(&r->lock);
    if (on) {
        if (!active_has_locked(r, id)) {
            active_id *a = calloc(1, sizeof *a);
            if (a) {
                snprintf(a->id, sizeof a->id, "%s", id);
                a->next = r->active;
                r->active = a;
            }
        }
    } else {
        for (active_id **pp = &r->active; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->id, id) == 0) {
                active_id *a = *pp;
                *pp = a->next;
                free(a);
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- rs_journal_ops (flow records) ------------------------------------------ */

static int put_flow(rj *r, const rs_job *job, rs_error *err)
{
    char *text = NULL;
    int rc = rs_job_to_json(job, &text, err);
    if (rc < 0)
        return rc;
    char *k = key_of("flow", job->id);
    if (!k) {
        free(text);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    const char *keys[1] = { k };
    const char *vals[1] = { text };
    rc = fenced_write(r, job->id, true, keys, vals, 1, NULL, 0, err);
    free(k);
    free(text);
    return rc;
}

static int rj_begin(rs_journal *j, const rs_job *job, rs_error *err)
{
    rj *r = (rj *)j;
    rs_journal_rados_set_active(j, job->id, true);
    return put_flow(r, job, err);
}

static int rj_step(rs_journal *j, const rs_job *job, rs_step step, int disk,
                   const char *details, rs_error *err)
{
    return put_flow((rj *)j, job, err);
}

static int rj_end(rs_journal *j, const rs_job *job, rs_error *err)
{
    /* The record is kept (with its final state) until the daemon forgets
     * the whole job: the Glance side may still need it. */
    return put_flow((rj *)j, job, err);
}

typedef struct collect_ctx {
    rj *r;
    char **ids;
    char **owners;
    size_t n, cap;
    rs_error *err;
} collect_ctx;

static int collect_own(const char *key, const char *val, size_t vlen, void *arg)
{
    collect_ctx *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        char **ni = realloc(c->ids, cap * sizeof *ni);
        if (!ni)
            return rs_error_set(c->err, -ENOMEM, "journal: out of memory");
        c->ids = ni;
        char **no = realloc(c->owners, cap * sizeof *no);
        if (!no)
            return rs_error_set(c->err, -ENOMEM, "journal: out of memory");
        c->owners = no;
        c->cap = cap;
    }
    c->ids[c->n] = strdup(key + 4);
    c->owners[c->n] = strdup(val);
    if (!c->ids[c->n] || !c->owners[c->n]) {
        free(c->ids[c->n]);
        free(c->owners[c->n]);
        return rs_error_set(c->err, -ENOMEM, "journal: out of memory");
    }
    c->n++;
    return 0;
}

static void collect_free(collect_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ids[i]);
        free(c->owners[i]);
    }
    free(c->ids);
    free(c->owners);
}

static int read_keys(rj *r, rados_ioctx_t io, const char *id, char **req, char **flow,
                     rs_error *err)
{
    char *kr = key_of("req", id), *kf = key_of("flow", id);
    *req = *flow = NULL;
    if (!kr || !kf) {
        free(kr);
        free(kf);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    const char *keys[2] = { kr, kf };
    size_t klens[2] = { strlen(kr), strlen(kf) };
    rados_read_op_t op = rados_create_read_op();
    rados_omap_iter_t it = NULL;
    int prval = 0;
    rados_read_op_omap_get_vals_by_keys2(op, keys, 2, klens, &it, &prval);
    int rc = rados_read_op_operate(op, io, RS_JOURNAL_RADOS_OBJECT, 0);
    if (rc == 0 && prval < 0)
        rc = prval;
    if (rc == 0) {
        char *key = NULL, *val = NULL;
        size_t kl = 0, vl = 0;
        while (rados_omap_get_next2(it, &key, &val, &kl, &vl) == 0 && key) {
            char *v = strndup(val ? val : "", vl);
            if (kl == strlen(kr) && memcmp(key, kr, kl) == 0) {
                free(*req);
                *req = v;
            } else {
                free(*flow);
                *flow = v;
            }
        }
        rados_omap_get_end(it);
    } else {
        rs_error_set(err, rc, "journal: read of job %s failed", id);
    }
    rados_release_read_op(op);
    free(kr);
    free(kf);
    return rc;
}

/* Jobs owned by me, not active; marks them active.  @orphans_only: only
 * flow records not finished (rs_journal_ops semantics). */
static int list_mine(rj *r, bool flow_orphans_only, rs_journal_rados_entry **out, size_t *nout,
                     rs_error *err)
{
    *out = NULL;
    *nout = 0;
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    collect_ctx cc = { .r = r, .err = err };
    rc = omap_walk(r, c.io, "own.", collect_own, &cc, err);
    rs_journal_rados_entry *res = NULL;
    size_t n = 0;
    if (rc == 0 && cc.n)
        res = calloc(cc.n, sizeof *res);
    if (rc == 0 && cc.n && !res)
        rc = rs_error_set(err, -ENOMEM, "journal: out of memory");
    for (size_t i = 0; rc == 0 && i < cc.n; i++) {
        if (strcmp(cc.owners[i], r->owner) != 0)
            continue;
        pthread_mutex_lock(&r->lock);
        bool busy = active_has_locked(r, cc.ids[i]);
        pthread_mutex_unlock(&r->lock);
        if (busy)
            continue;
        char *req = NULL, *flow = NULL;
        rc = read_keys(r, c.io, cc.ids[i], &req, &flow, err);
        if (rc < 0)
            break;
        rs_journal_rados_entry *e = &res[n];
        memset(e, 0, sizeof *e);
        snprintf(e->id, sizeof e->id, "%s", cc.ids[i]);
        e->request = req;
        if (flow) {
            rs_error perr = RS_ERROR_INIT;
            if (rs_job_from_json(flow, &e->flow, &perr) == 0)
                e->has_flow = true;
            else
                rs_warn("job=%s unreadable flow record: %s", cc.ids[i], rs_error_msg(&perr));
            free(flow);
        }
        if (flow_orphans_only &&
            (!e->has_flow || e->flow.state == RS_JOB_DONE ||
             e->flow.state == RS_JOB_ROLLED_BACK)) {
            free(e->request);
            continue;
        }
        rs_journal_rados_set_active(&r->base, e->id, true);
        n++;
    }
    io_put(r, &c, rc);
    collect_free(&cc);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            rs_journal_rados_set_active(&r->base, res[i].id, false);
        rs_journal_rados_entries_free(res, n);
        return rc;
    }
    *out = res;
    *nout = n;
    return 0;
}

int rs_journal_rados_list_mine(rs_journal *j, rs_journal_rados_entry **out, size_t *n,
                               rs_error *err)
{
    return list_mine((rj *)j, false, out, n, err);
}

void rs_journal_rados_entries_free(rs_journal_rados_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        free(e[i].request);
    free(e);
}

static int rj_list_orphans(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err)
{
    rs_journal_rados_entry *e = NULL;
    size_t ne = 0;
    *jobs = NULL;
    *n = 0;
    int rc = list_mine((rj *)j, true, &e, &ne, err);
    if (rc < 0)
        return rc;
    if (ne) {
        *jobs = calloc(ne, sizeof **jobs);
        if (!*jobs) {
            rs_journal_rados_entries_free(e, ne);
            return rs_error_set(err, -ENOMEM, "journal: out of memory");
        }
        for (size_t i = 0; i < ne; i++)
            (*jobs)[i] = e[i].flow;
        *n = ne;
    }
    rs_journal_rados_entries_free(e, ne);
    return 0;
}

static void rj_release(rs_journal *j, const char *job_id)
{
    rs_journal_rados_set_active(j, job_id, false);
}

static void rj_close(rs_journal *j)
{
    rj *r = (rj *)j;
    if (!r)
        return;
    while (r->active) {
        active_id *a = r->active;
        r->active = a->next;
        free(a);
    }
    rs_cluster_unref(r->cl);
    free(r->pool);
    free(r->ns);
    free(r->owner);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static const rs_journal_ops rj_ops = {
    .begin = rj_begin,
    .step_start = rj_step,
    .step_done = rj_step,
    .end = rj_end,
    .list_orphans = rj_list_orphans,
    .release = rj_release,
    .close = rj_close,
};

int rs_journal_rados_open(rs_cluster *cl, const rs_journal_rados_opts *o, rs_journal **out,
                          rs_error *err)
{
    if (!o->pool || !*o->pool || !o->owner || !*o->owner)
        return rs_error_set(err, -EINVAL, "journal: pool and owner are required");
    rj *r = calloc(1, sizeof *r);
    if (!r)
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    r->base.ops = &rj_ops;
    r->base.priv = r;
    r->pool = strdup(o->pool);
    r->ns = strdup(o->ns ? o->ns : "");
    r->owner = strdup(o->owner);
    r->lease_seconds = o->lease_seconds > 0 ? o->lease_seconds : 30;
    pthread_mutex_init(&r->lock, NULL);
    if (!r->pool || !r->ns || !r->owner) {
        r->cl = NULL;
        rj_close(&r->base);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    r->cl = rs_cluster_ref(cl);
    /* Touch the object once so that a wrong pool fails here, at start. */
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc == 0) {
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
        rc = rados_write_op_operate2(op, c.io, RS_JOURNAL_RADOS_OBJECT, NULL, 0);
        rados_release_write_op(op);
        io_put(r, &c, rc);
        if (rc < 0)
            rs_error_set(err, rc, "journal %s/%s/%s: cannot create", r->pool, r->ns,
                         RS_JOURNAL_RADOS_OBJECT);
    }
    if (rc < 0) {
        rj_close(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}

/* ---- daemon records -------------------------------------------------------------- */

int rs_journal_rados_create(rs_journal *j, const char *id, const char *text, rs_error *err)
{
    rj *r = (rj *)j;
    char *ko = key_of("own", id), *kr = key_of("req", id);
    int rc;
    if (!ko || !kr) {
        rc = rs_error_set(err, -ENOMEM, "journal: out of memory");
    } else {
        const char *keys[2] = { ko, kr };
        const char *vals[2] = { r->owner, text };
        rc = fenced_write(r, id, false, keys, vals, 2, NULL, 0, err);
    }
    free(ko);
    free(kr);
    return rc;
}

int rs_journal_rados_update(rs_journal *j, const char *id, const char *text, rs_error *err)
{
    rj *r = (rj *)j;
    char *kr = key_of("req", id);
    if (!kr)
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    const char *keys[1] = { kr };
    const char *vals[1] = { text };
    int rc = fenced_write(r, id, true, keys, vals, 1, NULL, 0, err);
    free(kr);
    return rc;
}

int rs_journal_rados_forget(rs_journal *j, const char *id, rs_error *err)
{
    rj *r = (rj *)j;
    char *ko = key_of("own", id), *kr = key_of("req", id), *kf = key_of("flow", id);
    int rc;
    if (!ko || !kr || !kf) {
        rc = rs_error_set(err, -ENOMEM, "journal: out of memory");
    } else if ((rc = rs_failpoint("rbd.journal.forget")) < 0) {
        rs_error_set(err, rc, "journal %s/%s: removal of job %s failed (failpoint)", r->pool,
                     r->ns, id);
    } else {
        const char *keys[3] = { ko, kr, kf };
        rc = fenced_write(r, id, true, NULL, NULL, 0, keys, 3, err);
    }
    free(ko);
    free(kr);
    free(kf);
    if (rc == 0)
        rs_journal_rados_set_active(j, id, false);
    return rc;
}

/* ---- leases ------------------------------------------------------------------------ */

static char *lease_oid(const char *owner)
{
    return rs_strdup_printf("%s%s", RS_JOURNAL_RADOS_LEASE_PREFIX, owner);
}

/* Break locks on @oid whose cookie is @cookie (our previous incarnation). */
static void break_own_stale(rados_ioctx_t io, const char *oid, const char *cookie)
{
    int exclusive = 0;
    char tag[256], clients[4096], cookies[4096], addrs[4096];
    size_t tag_len = sizeof tag, clients_len = sizeof clients, cookies_len = sizeof cookies,
           addrs_len = sizeof addrs;
    ssize_t n = rados_list_lockers(io, oid, LEASE_LOCK_NAME, &exclusive, tag, &tag_len, clients,
                                   &clients_len, cookies, &cookies_len, addrs, &addrs_len);
    const char *cl = clients, *ck = cookies;
    for (ssize_t i = 0; i < n; i++) {
        if (strcmp(ck, cookie) == 0) {
            int rc = rados_break_lock(io, oid, LEASE_LOCK_NAME, cl, ck);
            rs_info("lease=%s broke stale lock of previous process client=%s rc=%d", oid, cl, rc);
        }
        cl += strlen(cl) + 1;
        ck += strlen(ck) + 1;
    }
}

static int lease_lock(rj *r, rados_ioctx_t io, const char *oid, const char *cookie,
                      uint8_t flags)
{
    struct timeval d = { .tv_sec = r->lease_seconds, .tv_usec = 0 };
    return rados_lock_exclusive(io, oid, LEASE_LOCK_NAME, cookie, "rbdsnapd lease", &d, flags);
}

int rs_journal_rados_lease_acquire(rs_journal *j, rs_error *err)
{
    rj *r = (rj *)j;
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    char *oid = lease_oid(r->owner);
    if (!oid) {
        io_put(r, &c, 0);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    rc = lease_lock(r, c.io, oid, r->owner, 0);
    if (rc == -EBUSY || rc == -EEXIST) {
        break_own_stale(c.io, oid, r->owner);
        rc = lease_lock(r, c.io, oid, r->owner, 0);
    }
    if (rc < 0)
        rs_error_set(err, rc, "journal lease %s/%s/%s: cannot lock (another daemon with id %s?)",
                     r->pool, r->ns, oid, r->owner);
    io_put(r, &c, rc == -EBUSY || rc == -EEXIST ? 0 : rc);
    free(oid);
    return rc;
}

int rs_journal_rados_lease_renew(rs_journal *j, rs_error *err)
{
    rj *r = (rj *)j;
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    char *oid = lease_oid(r->owner);
    if (!oid) {
        io_put(r, &c, 0);
        return rs_error_set(err, -ENOMEM, "journal: out of memory");
    }
    rc = lease_lock(r, c.io, oid, r->owner, LIBRADOS_LOCK_FLAG_MUST_RENEW);
    if (rc < 0 && rc != -EBUSY)
        rc = lease_lock(r, c.io, oid, r->owner, 0);
    if (rc < 0)
        rs_error_set(err, rc, "journal lease %s: renewal failed", oid);
    io_put(r, &c, rc == -EBUSY || rc == -EEXIST ? 0 : rc);
    free(oid);
    return rc;
}

void rs_journal_rados_lease_release(rs_journal *j)
{
    rj *r = (rj *)j;
    io_ctx c;
    if (io_get(r, &c, NULL) < 0)
        return;
    char *oid = lease_oid(r->owner);
    if (oid)
        rados_unlock(c.io, oid, LEASE_LOCK_NAME, r->owner);
    io_put(r, &c, 0);
    free(oid);
}

int rs_journal_rados_takeover(rs_journal *j, int *claimed, rs_error *err)
{
    rj *r = (rj *)j;
    if (claimed)
        *claimed = 0;
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    collect_ctx cc = { .r = r, .err = err };
    rc = omap_walk(r, c.io, "own.", collect_own, &cc, err);
    char cookie[300];
    snprintf(cookie, sizeof cookie, "takeover:%s", r->owner);
    for (size_t i = 0; rc == 0 && i < cc.n; i++) {
        const char *owner = cc.owners[i];
        if (strcmp(owner, r->owner) == 0)
            continue;
        /* Already handled this owner in this pass? */
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen = seen || strcmp(cc.owners[k], owner) == 0;
        if (seen)
            continue;
        char *oid = lease_oid(owner);
        if (!oid)
            break;
        int lrc = lease_lock(r, c.io, oid, cookie, 0);
        if (lrc < 0) {
            free(oid);
            continue; /* alive (or unreachable): leave it */
        }
        rs_warn("lease of daemon %s expired: taking over its jobs", owner);
        for (size_t k = i; k < cc.n; k++) {
            if (strcmp(cc.owners[k], owner) != 0)
                continue;
            char *ko = key_of("own", cc.ids[k]);
            if (!ko)
                continue;
            rados_write_op_t op = rados_create_write_op();
            int cmp_rval = 0;
            rados_write_op_omap_cmp2(op, ko, LIBRADOS_CMPXATTR_OP_EQ, owner, strlen(ko),
                                     strlen(owner), &cmp_rval);
            const char *keys[1] = { ko };
            const char *vals[1] = { r->owner };
            size_t kl[1] = { strlen(ko) }, vl[1] = { strlen(r->owner) };
            rados_write_op_omap_set2(op, keys, vals, kl, vl, 1);
            int wrc = rados_write_op_operate2(op, c.io, RS_JOURNAL_RADOS_OBJECT, NULL, 0);
            rados_release_write_op(op);
            if (wrc == 0 && cmp_rval == 0) {
                rs_info("job=%s taken over from=%s", cc.ids[k], owner);
                if (claimed)
                    (*claimed)++;
            }
            free(ko);
        }
        rados_unlock(c.io, oid, LEASE_LOCK_NAME, cookie);
        rados_remove(c.io, oid);
        free(oid);
    }
    io_put(r, &c, rc);
    collect_free(&cc);
    return rc;
}

static int count_cb(const char *key, const char *val, size_t vlen, void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

int rs_journal_rados_count(rs_journal *j, size_t *n, rs_error *err)
{
    rj *r = (rj *)j;
    *n = 0;
    io_ctx c;
    int rc = io_get(r, &c, err);
    if (rc < 0)
        return rc;
    rc = omap_walk(r, c.io, "own.", count_cb, n, err);
    io_put(r, &c, rc);
    return rc;
}
