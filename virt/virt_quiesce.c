/*
 * virt_quiesce.c - fsfreeze/fsthaw through the guest agent, bounded.
 *
 * Design.  A freeze is a handle with a small state machine
 *
 *     NONE (never frozen)    FROZEN -> THAWING -> THAWED
 *
 * Exactly one thread moves FROZEN to THAWING and calls virDomainFSThaw():
 * the caller in rs_virt_quiesce_end(), or the watchdog thread when the
 * freeze outlasts max_window_ms.  The other one waits on the condvar for
 * THAWED.  No lock is held across a libvirt call.  The agent response
 * timeout is set on the domain before the freeze (so a dead agent costs at
 * most timeout_s per call) and reset to libvirt's default after the thaw.
 *
 * If the freeze call itself fails, the guest may still have frozen (the
 * agent can answer after libvirt gave up), so a thaw is attempted on every
 * failure except "no agent channel" and "domain not running".  A failed
 * thaw is retried a few times and logged as an error: a guest left frozen
 * is the worst outcome of all.
 */
#define RS_LOG_MODULE "virt"
#include "virt/virt-priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"

#define THAW_TRIES 3

enum q_state { Q_NONE, Q_FROZEN, Q_THAWING, Q_THAWED };

struct rs_virt_quiesce {
    virDomainPtr dom;          /* own reference; NULL when never frozen */
    char *name;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC */
    enum q_state state;
    bool stop;
    bool watchdog_fired;
    bool have_thread;
    pthread_t thread;
    unsigned max_window_ms;
    uint64_t t_freeze_us;      /* before virDomainFSFreeze */
    uint64_t t_thawed_us;      /* after virDomainFSThaw */
    int thaw_rc;
    char thaw_msg[256];
};

int rs_virt_quiesce_policy_parse(const char *s, rs_virt_quiesce_policy *out)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "off") == 0 || strcmp(s, "no") == 0)
        *out = RS_VIRT_QUIESCE_OFF;
    else if (strcmp(s, "optional") == 0)
        *out = RS_VIRT_QUIESCE_OPTIONAL;
    else if (strcmp(s, "required") == 0)
        *out = RS_VIRT_QUIESCE_REQUIRED;
    else
        return -EINVAL;
    return 0;
}

const char *rs_virt_quiesce_policy_name(rs_virt_quiesce_policy p)
{
    switch (p) {
    case RS_VIRT_QUIESCE_OFF:
        return "off";
    case RS_VIRT_QUIESCE_OPTIONAL:
        return "optional";
    case RS_VIRT_QUIESCE_REQUIRED:
        return "required";
    }
    return "?";
}

int rs_virt_quiesce_decide(rs_virt_quiesce_policy policy, const char *dom_name,
                           int vir_code, const char *vir_msg,
                           char **warning, rs_error *err)
{
    const char *why;
    int rc = -EIO;

    if (warning)
        *warning = NULL;
    switch (vir_code) {
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
        why = "the domain has no guest agent channel";
        break;
    case VIR_ERR_AGENT_UNRESPONSIVE:
        why = "the guest agent is not responding";
        rc = -ETIMEDOUT;
        break;
    case VIR_ERR_OPERATION_TIMEOUT:
        why = "the guest agent timed out";
        rc = -ETIMEDOUT;
        break;
    case VIR_ERR_OPERATION_INVALID:
        why = "the domain cannot be frozen in its current state";
        break;
    case VIR_ERR_NO_SUPPORT:
        why = "the hypervisor does not support fsfreeze";
        break;
    default:
        why = "fsfreeze failed";
        break;
    }
    if (!vir_msg)
        vir_msg = "";

    if (policy == RS_VIRT_QUIESCE_REQUIRED)
        return rs_error_set(err, rc,
                            "domain %s: quiesce=required but %s (%s); guest not frozen",
                            dom_name, why, vir_msg);
    if (policy == RS_VIRT_QUIESCE_OPTIONAL && warning) {
        *warning = rs_strdup_printf(
            "domain %s: not quiesced, %s (%s); the snapshot is crash-consistent only",
            dom_name, why, vir_msg);
        if (!*warning)
            return rs_error_set(err, -ENOMEM, "domain %s: out of memory", dom_name);
    }
    return 0;
}

static void set_agent_timeout(virDomainPtr dom, const char *name, int timeout)
{
    if (virDomainAgentSetResponseTimeout(dom, timeout, 0) < 0)
        rs_debug("msg=\"cannot set agent timeout\" domain=%s timeout=%d err=\"%s\"",
                 name, timeout, virGetLastErrorMessage());
}

/* Thaw once (whoever comes first); the other caller waits for the result. */
static int q_thaw(rs_virt_quiesce *q, bool by_watchdog, int max_tries)
{
    int r = -1, tries;
    const char *msg = "";

    pthread_mutex_lock(&q->lock);
    while (q->state == Q_THAWING)
        pthread_cond_wait(&q->cond, &q->lock);
    if (q->state != Q_FROZEN) {
        r = q->thaw_rc;
        pthread_mutex_unlock(&q->lock);
        return r;
    }
    q->state = Q_THAWING;
    if (by_watchdog)
        q->watchdog_fired = true;
    pthread_mutex_unlock(&q->lock);

    for (tries = 1; tries <= max_tries; tries++) {
        if (rs_failpoint("virt.thaw") < 0) {
            r = -1;
            msg = "failpoint virt.thaw";
        } else {
            r = virDomainFSThaw(q->dom, NULL, 0, 0);
            if (r < 0)
                rs_virt_last_error(&msg);
        }
        if (r >= 0)
            break;
        if (max_tries > 1)
            rs_err("msg=\"fsthaw failed\" domain=%s try=%d err=\"%s\"", q->name, tries, msg);
    }

    pthread_mutex_lock(&q->lock);
    q->t_thawed_us = rs_now_us();
    q->thaw_rc = r < 0 ? -EIO : 0;
    if (r < 0)
        snprintf(q->thaw_msg, sizeof(q->thaw_msg), "%s", msg);
    q->state = Q_THAWED;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return r < 0 ? -EIO : 0;
}

static void *watchdog_main(void *arg)
{
    rs_virt_quiesce *q = arg;
    uint64_t deadline_us = q->t_freeze_us + (uint64_t)q->max_window_ms * 1000u;
    struct timespec ts = { (time_t)(deadline_us / 1000000u),
                           (long)(deadline_us % 1000000u) * 1000L };
    bool fire = false;

    pthread_mutex_lock(&q->lock);
    while (!q->stop && q->state == Q_FROZEN) {
        if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) == ETIMEDOUT) {
            fire = !q->stop && q->state == Q_FROZEN;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    if (fire) {
        rs_warn("msg=\"freeze window exceeded, watchdog thaws the guest\" domain=%s "
                "max_freeze_ms=%u", q->name, q->max_window_ms);
        q_thaw(q, true, THAW_TRIES);
    }
    return NULL;
}

static void q_free(rs_virt_quiesce *q)
{
    if (!q)
        return;
    if (q->have_thread) {
        pthread_mutex_lock(&q->lock);
        q->stop = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
    }
    if (q->dom)
        virDomainFree(q->dom);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q->name);
    free(q);
}

static rs_virt_quiesce *q_new(const char *name)
{
    rs_virt_quiesce *q = calloc(1, sizeof(*q));
    pthread_condattr_t ca;

    if (!q)
        return NULL;
    q->name = strdup(name);
    if (!q->name) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    q->state = Q_NONE;
    return q;
}

int rs_virt_quiesce_begin(rs_virt_dom *d, rs_virt_quiesce_policy policy,
                          int timeout_s, unsigned max_window_ms,
                          rs_virt_quiesce **qout, char **warning, rs_error *err)
{
    const char *name = rs_virt_dom_name(d);
    virDomainPtr dom = rs_virt_dom_ptr(d);
    rs_virt_quiesce *q;
    rs_virt_state st;
    const char *msg = "";
    char vir_msg[512];
    int code = 0, n, rc;

    *qout = NULL;
    if (warning)
        *warning = NULL;
    q = q_new(name);
    if (!q)
        return rs_error_set(err, -ENOMEM, "domain %s: out of memory", name);
    if (policy == RS_VIRT_QUIESCE_OFF) {
        *qout = q;
        return 0;
    }

    rc = rs_virt_dom_state(d, &st, err);
    if (rc < 0)
        goto fail;
    if (st == RS_VIRT_STATE_SHUTOFF) {
        rs_info("msg=\"domain shut off, no freeze needed\" domain=%s", name);
        *qout = q;
        return 0;
    }
    if (st != RS_VIRT_STATE_RUNNING) {
        rc = rs_virt_quiesce_decide(policy, name, VIR_ERR_OPERATION_INVALID,
                                    st == RS_VIRT_STATE_PAUSED
                                        ? "domain is paused, its agent cannot answer"
                                        : "domain is not running",
                                    warning, err);
        if (rc < 0)
            goto fail;
        *qout = q;
        return 0;
    }

    if (max_window_ms == 0)
        max_window_ms = 30000;
    if (timeout_s > 0)
        set_agent_timeout(dom, name, timeout_s);

    q->max_window_ms = max_window_ms;
    q->t_freeze_us = rs_now_us();
    rc = rs_failpoint("virt.freeze");
    if (rc < 0) {
        n = -1;
        code = VIR_ERR_AGENT_UNRESPONSIVE;
        msg = "failpoint virt.freeze";
    } else {
        n = virDomainFSFreeze(dom, NULL, 0, 0);
        if (n < 0)
            code = rs_virt_last_error(&msg);
    }
    /* copy now: the next libvirt call resets the thread's last error */
    snprintf(vir_msg, sizeof(vir_msg), "%s", n < 0 ? msg : "");

    if (virDomainRef(dom) == 0)
        q->dom = dom;
    if (n < 0) {
        if (code != VIR_ERR_ARGUMENT_UNSUPPORTED && code != VIR_ERR_OPERATION_INVALID &&
            !strstr(vir_msg, "not connected") && q->dom) {
            /* The agent may have frozen after libvirt gave up: one thaw
             * (bounded by the agent timeout), its failure expected. */
            q->state = Q_FROZEN;
            q_thaw(q, false, 1);
            q->state = Q_NONE;
        }
        if (timeout_s > 0)
            set_agent_timeout(dom, name, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT);
        rs_warn("msg=\"fsfreeze failed\" domain=%s policy=%s vir_code=%d err=\"%s\"",
                name, rs_virt_quiesce_policy_name(policy), code, vir_msg);
        rc = rs_virt_quiesce_decide(policy, name, code, vir_msg, warning, err);
        if (rc < 0)
            goto fail;
        *qout = q;
        return 0;
    }

    q->state = Q_FROZEN;
    if (!q->dom) {
        /* Cannot keep a reference: thaw now through the caller's handle. */
        virDomainFSThaw(dom, NULL, 0, 0);
        rc = rs_error_set(err, -ENOMEM, "domain %s: cannot reference domain", name);
        q->state = Q_NONE;
        goto fail;
    }
    rc = -pthread_create(&q->thread, NULL, watchdog_main, q);
    if (rc < 0) {
        q_thaw(q, false, THAW_TRIES);
        rc = rs_error_set(err, rc, "domain %s: cannot start freeze watchdog", name);
        goto fail;
    }
    q->have_thread = true;
    rs_info("msg=\"guest frozen\" domain=%s filesystems=%d max_freeze_ms=%u",
            name, n, max_window_ms);
    *qout = q;
    return 0;

fail:
    q_free(q);
    return rc;
}

int rs_virt_quiesce_end(rs_virt_quiesce *q, uint64_t *freeze_ms, rs_error *err)
{
    int rc = 0;
    bool fired, was_frozen;

    if (freeze_ms)
        *freeze_ms = 0;
    if (!q)
        return 0;
    pthread_mutex_lock(&q->lock);
    was_frozen = q->state != Q_NONE;
    pthread_mutex_unlock(&q->lock);
    if (!was_frozen) {
        q_free(q);
        return 0;
    }

    rc = q_thaw(q, false, THAW_TRIES);
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    fired = q->watchdog_fired;
    pthread_mutex_unlock(&q->lock);
    if (q->have_thread) {
        pthread_join(q->thread, NULL);
        q->have_thread = false;
    }
    set_agent_timeout(q->dom, q->name, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT);

    if (freeze_ms)
        *freeze_ms = (q->t_thawed_us - q->t_freeze_us) / 1000u;
    rs_info("msg=\"guest thawed\" domain=%s freeze_ms=%llu watchdog=%d rc=%d",
            q->name, (unsigned long long)((q->t_thawed_us - q->t_freeze_us) / 1000u),
            fired, rc);
    if (rc < 0)
        rc = rs_error_set(err, -EIO, "domain %s: fsthaw failed after %d tries: %s",
                          q->name, THAW_TRIES, q->thaw_msg);
    else if (fired)
        rc = rs_error_set(err, -ETIMEDOUT,
                          "domain %s: freeze window exceeded max_freeze=%u ms; "
                          "the guest was thawed by the watchdog before the "
                          "snapshot step finished", q->name, q->max_window_ms);
    q_free(q);
    return rc;
}

bool rs_virt_quiesce_frozen(const rs_virt_quiesce *q)
{
    bool f;
    if (!q)
        return false;
    pthread_mutex_lock((pthread_mutex_t *)&q->lock);
    /* Still frozen while a thaw is in flight: the guest is thawed only
     * once virDomainFSThaw has returned. */
    f = q->state == Q_FROZEN || q->state == Q_THAWING;
    pthread_mutex_unlock((pthread_mutex_t *)&q->lock);
    return f;
}

bool rs_virt_quiesce_watchdog_fired(const rs_virt_quiesce *q)
{
    bool f;
    pthread_mutex_lock((pthread_mutex_t *)&q->lock);
    f = q->watchdog_fired;
    pthread_mutex_unlock((pthread_mutex_t *)&q->lock);
    return f;
}
