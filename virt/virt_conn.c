/*
 * virt_conn.c - the shared libvirt connection, domain lookup and disks.
 *
 * Design.  libvirt connections are thread-safe, so one virConnectPtr is
 * shared by every worker.  Keep-alive needs an event loop: the default
 * libvirt event implementation is registered once per process and driven
 * by one thread, started with the first connection and stopped (woken by a
 * zero timer) when the last one is released.  A connection whose peer went
 * away (libvirtd restarted) is reopened on the next lookup; the swap happens
 * under a mutex, the open itself outside it (no lock is held across a
 * libvirt call that may block).  libvirt's default error printing is turned
 * off; errors are taken from the thread-local last error and reported once
 * through rs_error.
 */
#define RS_LOG_MODULE "virt"
#include "virt/virt-priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/util.h"

#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

struct rs_virt_conn {
    atomic_int refs;
    pthread_mutex_t lock;
    char *uri;                 /* NULL: libvirt's default */
    virConnectPtr conn;        /* guarded by lock */
};

struct rs_virt_dom {
    rs_virt_conn *c;
    virDomainPtr dom;
    char *name;
    char uuid[VIR_UUID_STRING_BUFLEN];
};

/* ---- process-wide libvirt setup and event loop ------------------------- */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ev_once = PTHREAD_ONCE_INIT;
static int ev_init_rc;
static int ev_users;               /* live rs_virt_conn objects */
static bool ev_running;
static atomic_bool ev_stop;
static pthread_t ev_thread;

static void quiet_error(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void ev_global_init(void)
{
    if (virInitialize() < 0) {
        ev_init_rc = -EIO;
        return;
    }
    virSetErrorFunc(NULL, quiet_error);
    if (virEventRegisterDefaultImpl() < 0)
        ev_init_rc = -EIO;
}

static void *ev_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&ev_stop)) {
        if (virEventRunDefaultImpl() < 0) {
            rs_warn("msg=\"libvirt event loop iteration failed\" err=\"%s\"",
                    virGetLastErrorMessage());
            rs_sleep_ms(100);
        }
    }
    return NULL;
}

static void ev_wake(int timer, void *opaque)
{
    (void)opaque;
    virEventRemoveTimeout(timer);
}

static int ev_get(rs_error *err)
{
    int rc = 0;

    pthread_once(&ev_once, ev_global_init);
    if (ev_init_rc < 0)
        return rs_error_set(err, ev_init_rc, "libvirt: initialisation failed: %s",
                            virGetLastErrorMessage());
    pthread_mutex_lock(&ev_lock);
    if (!ev_running) {
        atomic_store(&ev_stop, false);
        rc = -pthread_create(&ev_thread, NULL, ev_main, NULL);
        if (rc == 0)
            ev_running = true;
    }
    if (rc == 0)
        ev_users++;
    pthread_mutex_unlock(&ev_lock);
    if (rc < 0)
        return rs_error_set(err, rc, "libvirt: cannot start event thread");
    return 0;
}

static void ev_put(void)
{
    bool join = false;

    pthread_mutex_lock(&ev_lock);
    if (--ev_users == 0 && ev_running) {
        atomic_store(&ev_stop, true);
        /* wake virEventRunDefaultImpl() so it sees ev_stop */
        virEventAddTimeout(0, ev_wake, NULL, NULL);
        join = true;
        ev_running = false;
    }
    pthread_mutex_unlock(&ev_lock);
    if (join)
        pthread_join(ev_thread, NULL);
}

int rs_virt_last_error(const char **msg)
{
    virErrorPtr e = virGetLastError();
    if (msg)
        *msg = (e && e->message) ? e->message : "unknown libvirt error";
    return e ? e->code : 0;
}

/* ---- connection --------------------------------------------------------- */

static virConnectPtr open_conn(const char *uri, rs_error *err)
{
    virConnectPtr conn = virConnectOpen(uri);
    const char *msg;

    if (!conn) {
        rs_virt_last_error(&msg);
        rs_error_set(err, -ECONNREFUSED, "libvirt %s: cannot connect: %s",
                     uri ? uri : "(default)", msg);
        return NULL;
    }
    /* -1 error, 1 not supported (local drivers): both fine. */
    if (virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
        rs_debug("msg=\"keepalive not enabled\" uri=%s err=\"%s\"",
                 uri ? uri : "(default)", virGetLastErrorMessage());
    return conn;
}

int rs_virt_connect(const char *uri, rs_virt_conn **out, rs_error *err)
{
    rs_virt_conn *c;
    int rc;

    *out = NULL;
    rc = ev_get(err);
    if (rc < 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c || (uri && !(c->uri = strdup(uri)))) {
        free(c);
        ev_put();
        return rs_error_set(err, -ENOMEM, "libvirt: out of memory");
    }
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lock, NULL);
    c->conn = open_conn(uri, err);
    if (!c->conn) {
        rc = err ? err->code : -ECONNREFUSED;
        rs_virt_conn_unref(c);
        return rc < 0 ? rc : -ECONNREFUSED;
    }
    rs_info("msg=\"libvirt connected\" uri=%s", uri ? uri : "(default)");
    *out = c;
    return 0;
}

rs_virt_conn *rs_virt_conn_ref(rs_virt_conn *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void rs_virt_conn_unref(rs_virt_conn *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->conn)
        virConnectClose(c->conn);
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c);
    ev_put();
}

/* A referenced, live virConnectPtr (caller virConnectClose()s it). */
struct _virConnect *rs_virt_conn_get(rs_virt_conn *c, rs_error *err)
{
    virConnectPtr conn, fresh, old = NULL;

    pthread_mutex_lock(&c->lock);
    conn = c->conn;
    if (conn)
        virConnectRef(conn);
    pthread_mutex_unlock(&c->lock);
    if (conn && virConnectIsAlive(conn) == 1)
        return conn;
    if (conn)
        virConnectClose(conn);

    rs_warn("msg=\"libvirt connection lost, reconnecting\" uri=%s",
            c->uri ? c->uri : "(default)");
    fresh = open_conn(c->uri, err);
    if (!fresh)
        return NULL;
    pthread_mutex_lock(&c->lock);
    old = c->conn;
    c->conn = fresh;
    virConnectRef(fresh);
    pthread_mutex_unlock(&c->lock);
    if (old)
        virConnectClose(old);
    return fresh;
}

struct _virConnect *rs_virt_conn_ptr(rs_virt_conn *c)
{
    virConnectPtr conn;
    pthread_mutex_lock(&c->lock);
    conn = c->conn;
    pthread_mutex_unlock(&c->lock);
    return conn;
}

/* ---- domains ------------------------------------------------------------ */

int rs_virt_domain_lookup(rs_virt_conn *c, const char *uuid_or_name,
                          rs_virt_dom **out, rs_error *err)
{
    virConnectPtr conn;
    virDomainPtr dom = NULL;
    rs_virt_dom *d;
    const char *msg = "";
    int code = 0;

    *out = NULL;
    if (!uuid_or_name || !*uuid_or_name)
        return rs_error_set(err, -EINVAL, "domain: no uuid or name given");
    conn = rs_virt_conn_get(c, err);
    if (!conn)
        return err ? err->code : -ECONNREFUSED;
    if (rs_is_uuid(uuid_or_name))
        dom = virDomainLookupByUUIDString(conn, uuid_or_name);
    if (!dom)
        dom = virDomainLookupByName(conn, uuid_or_name);
    if (!dom) {
        int rc;
        code = rs_virt_last_error(&msg);
        if (code == VIR_ERR_NO_DOMAIN)
            rc = rs_error_set(err, -ENOENT, "domain %s: not found", uuid_or_name);
        else
            rc = rs_error_set(err, -EIO, "domain %s: lookup failed: %s",
                              uuid_or_name, msg);
        virConnectClose(conn);
        return rc;
    }
    virConnectClose(conn);   /* the domain holds its own reference */

    d = calloc(1, sizeof(*d));
    if (!d || !(d->name = strdup(virDomainGetName(dom)))) {
        free(d);
        virDomainFree(dom);
        return rs_error_set(err, -ENOMEM, "domain %s: out of memory", uuid_or_name);
    }
    if (virDomainGetUUIDString(dom, d->uuid) < 0)
        d->uuid[0] = '\0';
    d->dom = dom;
    d->c = rs_virt_conn_ref(c);
    *out = d;
    return 0;
}

void rs_virt_dom_free(rs_virt_dom *d)
{
    if (!d)
        return;
    if (d->dom)
        virDomainFree(d->dom);
    rs_virt_conn_unref(d->c);
    free(d->name);
    free(d);
}

int rs_virt_dom_refresh(rs_virt_dom *d, rs_error *err)
{
    virConnectPtr conn;
    virDomainPtr dom = NULL;
    const char *msg;
    int code;

    if (d->dom && virConnectIsAlive(virDomainGetConnect(d->dom)) == 1)
        return 0;
    conn = rs_virt_conn_get(d->c, err);
    if (!conn)
        return err ? err->code : -ECONNREFUSED;
    if (d->uuid[0])
        dom = virDomainLookupByUUIDString(conn, d->uuid);
    else
        dom = virDomainLookupByName(conn, d->name);
    if (!dom) {
        code = rs_virt_last_error(&msg);
        virConnectClose(conn);
        return rs_error_set(err, code == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO,
                            "domain %s: lookup after reconnect failed: %s",
                            d->name, msg);
    }
    virConnectClose(conn);   /* the domain holds its own reference */
    if (d->dom)
        virDomainFree(d->dom);
    d->dom = dom;
    rs_warn("msg=\"domain handle renewed after reconnect\" domain=%s uuid=%s",
            d->name, d->uuid);
    return 0;
}

const char *rs_virt_dom_name(const rs_virt_dom *d) { return d->name; }
const char *rs_virt_dom_uuid(const rs_virt_dom *d) { return d->uuid; }
struct _virDomain *rs_virt_dom_ptr(rs_virt_dom *d) { return d->dom; }
rs_virt_conn *rs_virt_dom_conn(rs_virt_dom *d) { return d->c; }

int rs_virt_dom_state(rs_virt_dom *d, rs_virt_state *state, rs_error *err)
{
    int st = 0, reason = 0;
    const char *msg;

    if (virDomainGetState(d->dom, &st, &reason, 0) < 0) {
        rs_virt_last_error(&msg);
        return rs_error_set(err, -EIO, "domain %s: cannot get state: %s",
                            d->name, msg);
    }
    switch (st) {
    case VIR_DOMAIN_RUNNING:
        *state = RS_VIRT_STATE_RUNNING;
        break;
    case VIR_DOMAIN_PAUSED:
        *state = RS_VIRT_STATE_PAUSED;
        break;
    case VIR_DOMAIN_SHUTOFF:
        *state = RS_VIRT_STATE_SHUTOFF;
        break;
    default:
        *state = RS_VIRT_STATE_OTHER;
        break;
    }
    return 0;
}

int rs_virt_domain_disks(rs_virt_dom *d, unsigned flags,
                         rs_virt_disk_list **out, rs_error *err)
{
    char *xml = virDomainGetXMLDesc(d->dom, 0);
    const char *msg;
    int rc;

    *out = NULL;
    if (!xml) {
        int code = rs_virt_last_error(&msg);
        return rs_error_set(err, code == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO,
                            "domain %s: cannot read XML: %s", d->name, msg);
    }
    rc = rs_virt_parse_disks(xml, flags, out, err);
    free(xml);
    if (rc < 0)
        rs_error_prefix(err, "domain %s", d->name);
    return rc;
}
