/*
 * cluster.c - shared rados_t handles, see cluster.h.
 *
 * Design.  A process-wide list of rs_cluster objects, keyed by the options
 * that select a cluster and a user.  Each rs_cluster owns at most one
 * *current* connection (struct conn: a rados_t plus its ioctx cache) and a
 * list of *retired* ones still borrowed by somebody.  Borrowers hold a
 * reference on the conn (rs_cluster_ioctx_get/put), so a reconnect never
 * pulls a rados_t from under a running librbd call.
 *
 * Locking.  cl->lock protects the fields of the cluster and its conns; it
 * is never held across a librados call.  cl->connect_lock serialises
 * connection attempts (so twenty threads hitting a dead cluster make one
 * attempt, not twenty).  reg_lock protects the registry.
 *
 * Connect order (as QEMU's block/rbd.c): create, read conf, apply options
 * (timeouts, admin_socket, mon_host, keyring), key, connect, fsid.
 * Unwound in reverse on failure.
 */
#define RS_LOG_MODULE "rbd.cluster"
#include "rbd/cluster.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rados/librados.h>

struct ioc {
    char *pool;
    rados_ioctx_t io;
    struct ioc *next;
};

struct conn {
    rados_t rados;
    int refs;                /* borrowers + 1 while current */
    bool current;
    struct ioc *iocs;
    struct conn *next;       /* in cl->conns */
};

struct rs_cluster {
    int refs;                /* under reg_lock */
    char *key;
    rs_cluster_opts opts;    /* strings owned */
    pthread_mutex_t lock;
    pthread_mutex_t connect_lock;
    struct conn *conns;      /* current first, then retired */
    char fsid[64];
    char mon_host[256];
    unsigned connects;
    rs_cluster *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static rs_cluster *registry;

static int opt_timeout(int v, int def) { return v > 0 ? v : def; }

static char *dup_or_null(const char *s) { return (s && *s) ? strdup(s) : NULL; }

static char *make_key(const rs_cluster_opts *o)
{
    return rs_strdup_printf("%s|%s|%s|%s|%s|%d|%d|%d",
                            o->conf_file ? o->conf_file : "", o->id ? o->id : "",
                            o->keyring ? o->keyring : "", o->key_file ? o->key_file : "",
                            o->mon_host ? o->mon_host : "", opt_timeout(o->mount_timeout, 30),
                            opt_timeout(o->mon_op_timeout, 30), opt_timeout(o->osd_op_timeout, 60));
}

bool rs_cluster_rc_is_disconnect(int rc)
{
    /* -ETIMEDOUT (osd/mon op timeout) too: an image handle that timed out
     * while the OSD was down cannot release its exclusive lock, and librbd
     * never breaks a lock held by its own client instance, so every later
     * open/remove of that image from this connection fails -EBUSY (found by
     * tests/chaos/osd_stop.sh).  A fresh connection breaks the stale lock. */
    return rc == -ESHUTDOWN || rc == -ENOTCONN || rc == -ECONNRESET ||
           rc == -ECONNREFUSED || rc == -EPIPE || rc == -ETIMEDOUT;
}

static void conn_destroy(struct conn *c)
{
    struct ioc *i = c->iocs, *n;
    for (; i; i = n) {
        n = i->next;
        rados_ioctx_destroy(i->io);
        free(i->pool);
        free(i);
    }
    rados_shutdown(c->rados);
    free(c);
}

/* Read a key file: the bare base64 key, surrounding whitespace ignored. */
static int read_key_file(const char *path, char *buf, size_t len, rs_error *err)
{
    rs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t s = 0, e;

    if (fd < 0)
        return rs_error_set(err, -errno, "key file %s: %s", path, strerror(errno));
    n = read(fd, buf, len - 1);
    if (n < 0)
        return rs_error_set(err, -errno, "key file %s: %s", path, strerror(errno));
    buf[n] = '\0';
    e = (size_t)n;
    while (s < e && (buf[s] == ' ' || buf[s] == '\n' || buf[s] == '\t' || buf[s] == '\r'))
        s++;
    while (e > s && (buf[e - 1] == ' ' || buf[e - 1] == '\n' || buf[e - 1] == '\t' || buf[e - 1] == '\r'))
        e--;
    if (e == s) {
        explicit_bzero(buf, len);
        return rs_error_set(err, -EINVAL, "key file %s: empty", path);
    }
    memmove(buf, buf + s, e - s);
    buf[e - s] = '\0';
    return 0;
}

static int set_opt(rados_t r, const char *k, const char *v, rs_error *err)
{
    int rc = rados_conf_set(r, k, v);
    if (rc < 0)
        return rs_error_set(err, rc, "ceph option %s: %s", k, strerror(-rc));
    return 0;
}

static int conn_create(rs_cluster *cl, struct conn **out, rs_error *err)
{
    const rs_cluster_opts *o = &cl->opts;
    rados_t r = NULL;
    char name[128], buf[32];
    char mon[256] = "";
    size_t monlen = sizeof(mon);
    int rc;
    uint64_t t0 = rs_now_ms();

    snprintf(name, sizeof(name), "client.%s", o->id ? o->id : "admin");
    rc = rados_create2(&r, "ceph", name, 0);
    if (rc < 0)
        return rs_error_set(err, rc, "rados_create2(%s): %s", name, strerror(-rc));

    if (o->conf_file) {
        rc = rados_conf_read_file(r, o->conf_file);
        if (rc < 0) {
            rs_error_set(err, rc, "ceph conf %s: %s", o->conf_file, strerror(-rc));
            goto fail;
        }
    } else {
        rc = rados_conf_read_file(r, NULL);   /* $CEPH_CONF or default search */
        if (rc < 0 && rc != -ENOENT && rc != -EINVAL) {
            rs_error_set(err, rc, "ceph conf (default search): %s", strerror(-rc));
            goto fail;
        }
    }
    if ((rc = set_opt(r, "admin_socket", "", err)) < 0)
        goto fail;
    snprintf(buf, sizeof(buf), "%d", opt_timeout(o->mount_timeout, 30));
    if ((rc = set_opt(r, "client_mount_timeout", buf, err)) < 0)
        goto fail;
    snprintf(buf, sizeof(buf), "%d", opt_timeout(o->mon_op_timeout, 30));
    if ((rc = set_opt(r, "rados_mon_op_timeout", buf, err)) < 0)
        goto fail;
    snprintf(buf, sizeof(buf), "%d", opt_timeout(o->osd_op_timeout, 60));
    if ((rc = set_opt(r, "rados_osd_op_timeout", buf, err)) < 0)
        goto fail;
    if (o->mon_host && (rc = set_opt(r, "mon_host", o->mon_host, err)) < 0)
        goto fail;
    if (o->keyring && (rc = set_opt(r, "keyring", o->keyring, err)) < 0)
        goto fail;
    if (o->key_file) {
        char key[512];
        rc = read_key_file(o->key_file, key, sizeof(key), err);
        if (rc < 0)
            goto fail;
        rc = rados_conf_set(r, "key", key);
        explicit_bzero(key, sizeof(key));       /* never kept, never logged */
        if (rc < 0) {
            rs_error_set(err, rc, "ceph option key (from %s): %s", o->key_file, strerror(-rc));
            goto fail;
        }
    }
    if (rados_conf_get(r, "mon_host", mon, monlen) < 0 || !mon[0])
        snprintf(mon, sizeof(mon), "?");

    rc = rados_connect(r);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            rs_error_set(err, rc, "Ceph unreachable (mon_host %s): connection timed out after %d s",
                         mon, opt_timeout(o->mount_timeout, 30));
        else if (rc == -EACCES || rc == -EPERM)
            rs_error_set(err, rc, "Ceph refused client.%s (mon_host %s): authentication failed (%s)",
                         o->id ? o->id : "admin", mon, strerror(-rc));
        else
            rs_error_set(err, rc, "Ceph unreachable (mon_host %s): %s", mon, strerror(-rc));
        goto fail;
    }

    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rc = rs_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    c->rados = r;
    c->refs = 1;
    c->current = true;

    pthread_mutex_lock(&cl->lock);
    if (!cl->fsid[0])
        rados_cluster_fsid(r, cl->fsid, sizeof(cl->fsid));
    snprintf(cl->mon_host, sizeof(cl->mon_host), "%s", mon);
    cl->connects++;
    pthread_mutex_unlock(&cl->lock);
    rs_info("msg=connected user=%s mon_host=%s dur_ms=%llu", name, mon,
            (unsigned long long)(rs_now_ms() - t0));
    *out = c;
    return 0;

fail:
    rados_shutdown(r);
    return rc;
}

int rs_cluster_connect(const rs_cluster_opts *opts, rs_cluster **out, rs_error *err)
{
    rs_cluster_opts def = { 0 };
    rs_autofree char *key = NULL;
    rs_cluster *cl;
    struct conn *c = NULL;
    int rc;

    if (!opts)
        opts = &def;
    key = make_key(opts);
    if (!key)
        return rs_error_set(err, -ENOMEM, "out of memory");

    pthread_mutex_lock(&reg_lock);
    for (cl = registry; cl; cl = cl->next) {
        if (strcmp(cl->key, key) == 0) {
            cl->refs++;
            break;
        }
    }
    if (!cl) {
        cl = calloc(1, sizeof(*cl));
        if (!cl) {
            pthread_mutex_unlock(&reg_lock);
            return rs_error_set(err, -ENOMEM, "out of memory");
        }
        cl->refs = 1;
        cl->key = rs_steal_pointer(&key);
        cl->opts.conf_file = dup_or_null(opts->conf_file);
        cl->opts.id = dup_or_null(opts->id);
        cl->opts.keyring = dup_or_null(opts->keyring);
        cl->opts.key_file = dup_or_null(opts->key_file);
        cl->opts.mon_host = dup_or_null(opts->mon_host);
        cl->opts.mount_timeout = opts->mount_timeout;
        cl->opts.mon_op_timeout = opts->mon_op_timeout;
        cl->opts.osd_op_timeout = opts->osd_op_timeout;
        pthread_mutex_init(&cl->lock, NULL);
        pthread_mutex_init(&cl->connect_lock, NULL);
        cl->next = registry;
        registry = cl;
    }
    pthread_mutex_unlock(&reg_lock);

    /* Connect now so configuration errors surface at once. */
    pthread_mutex_lock(&cl->connect_lock);
    pthread_mutex_lock(&cl->lock);
    bool have = cl->conns && cl->conns->current;
    pthread_mutex_unlock(&cl->lock);
    rc = 0;
    if (!have) {
        rc = conn_create(cl, &c, err);
        if (rc == 0) {
            pthread_mutex_lock(&cl->lock);
            c->next = cl->conns;
            cl->conns = c;
            pthread_mutex_unlock(&cl->lock);
        }
    }
    pthread_mutex_unlock(&cl->connect_lock);
    if (rc < 0) {
        rs_cluster_unref(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

rs_cluster *rs_cluster_ref(rs_cluster *cl)
{
    pthread_mutex_lock(&reg_lock);
    cl->refs++;
    pthread_mutex_unlock(&reg_lock);
    return cl;
}

void rs_cluster_unref(rs_cluster *cl)
{
    rs_cluster **pp;

    if (!cl)
        return;
    pthread_mutex_lock(&reg_lock);
    if (--cl->refs > 0) {
        pthread_mutex_unlock(&reg_lock);
        return;
    }
    for (pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);

    /* Last reference: nobody can borrow any more. */
    struct conn *c = cl->conns, *n;
    for (; c; c = n) {
        n = c->next;
        if (c->current)
            c->refs--;
        if (c->refs > 0)
            rs_warn("msg=\"cluster released while an ioctx is borrowed\"");
        conn_destroy(c);
    }
    free((char *)cl->opts.conf_file);
    free((char *)cl->opts.id);
    free((char *)cl->opts.keyring);
    free((char *)cl->opts.key_file);
    free((char *)cl->opts.mon_host);
    pthread_mutex_destroy(&cl->lock);
    pthread_mutex_destroy(&cl->connect_lock);
    free(cl->key);
    free(cl);
}

const char *rs_cluster_fsid(const rs_cluster *cl) { return cl->fsid; }
const char *rs_cluster_mon_host(const rs_cluster *cl) { return cl->mon_host; }
unsigned rs_cluster_connect_count(const rs_cluster *cl) { return cl->connects; }

/* Borrow the current conn, connecting if there is none. */
static int conn_borrow(rs_cluster *cl, struct conn **out, rs_error *err)
{
    struct conn *c;
    int rc;

    pthread_mutex_lock(&cl->lock);
    c = cl->conns;
    if (c && c->current) {
        c->refs++;
        pthread_mutex_unlock(&cl->lock);
        *out = c;
        return 0;
    }
    pthread_mutex_unlock(&cl->lock);

    pthread_mutex_lock(&cl->connect_lock);
    pthread_mutex_lock(&cl->lock);
    c = cl->conns;
    if (c && c->current) {           /* somebody else reconnected */
        c->refs++;
        pthread_mutex_unlock(&cl->lock);
        pthread_mutex_unlock(&cl->connect_lock);
        *out = c;
        return 0;
    }
    pthread_mutex_unlock(&cl->lock);
    rs_info("msg=reconnecting mon_host=%s", cl->mon_host);
    rc = conn_create(cl, &c, err);
    if (rc == 0) {
        pthread_mutex_lock(&cl->lock);
        c->refs++;
        c->next = cl->conns;
        cl->conns = c;
        pthread_mutex_unlock(&cl->lock);
        *out = c;
    }
    pthread_mutex_unlock(&cl->connect_lock);
    return rc;
}

/* Drop a borrow; destroy retired conns nobody uses.  Called without lock. */
static void conn_release(rs_cluster *cl, struct conn *c, bool retire)
{
    struct conn **pp, *dead = NULL;

    pthread_mutex_lock(&cl->lock);
    if (retire && c->current) {
        c->current = false;
        c->refs--;                   /* the "current" reference */
        rs_warn("msg=\"retiring ceph connection\" mon_host=%s", cl->mon_host);
    }
    if (--c->refs == 0) {
        for (pp = &cl->conns; *pp; pp = &(*pp)->next) {
            if (*pp == c) {
                *pp = c->next;
                dead = c;
                break;
            }
        }
    }
    pthread_mutex_unlock(&cl->lock);
    if (dead)
        conn_destroy(dead);
}

int rs_cluster_ioctx_get(rs_cluster *cl, const char *pool, void **ioctx, rs_error *err)
{
    struct conn *c = NULL;
    struct ioc *i;
    rados_ioctx_t io = NULL;
    int rc;

    rc = conn_borrow(cl, &c, err);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&cl->lock);
    for (i = c->iocs; i; i = i->next) {
        if (strcmp(i->pool, pool) == 0) {
            *ioctx = i->io;
            pthread_mutex_unlock(&cl->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&cl->lock);

    rc = rados_ioctx_create(c->rados, pool, &io);
    if (rc < 0) {
        if (rc == -ENOENT)
            rs_error_set(err, rc, "pool %s: not found", pool);
        else
            rs_error_set(err, rc, "pool %s: cannot open (%s)", pool, strerror(-rc));
        conn_release(cl, c, rs_cluster_rc_is_disconnect(rc));
        return rc;
    }

    pthread_mutex_lock(&cl->lock);
    for (i = c->iocs; i; i = i->next) {
        if (strcmp(i->pool, pool) == 0)
            break;
    }
    if (i) {                        /* lost a race: use the cached one */
        *ioctx = i->io;
        pthread_mutex_unlock(&cl->lock);
        rados_ioctx_destroy(io);
        return 0;
    }
    i = calloc(1, sizeof(*i));
    if (i)
        i->pool = strdup(pool);
    if (!i || !i->pool) {
        pthread_mutex_unlock(&cl->lock);
        if (i)
            free(i);
        rados_ioctx_destroy(io);
        conn_release(cl, c, false);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    i->io = io;
    i->next = c->iocs;
    c->iocs = i;
    *ioctx = io;
    pthread_mutex_unlock(&cl->lock);
    return 0;
}

void rs_cluster_ioctx_put_rc(rs_cluster *cl, void *ioctx, int rc)
{
    struct conn *c, *found = NULL;
    struct ioc *i;

    if (!ioctx)
        return;
    pthread_mutex_lock(&cl->lock);
    for (c = cl->conns; c && !found; c = c->next)
        for (i = c->iocs; i; i = i->next)
            if (i->io == ioctx) {
                found = c;
                break;
            }
    pthread_mutex_unlock(&cl->lock);
    if (!found) {
        rs_warn("msg=\"ioctx_put of an unknown ioctx\"");
        return;
    }
    conn_release(cl, found, rs_cluster_rc_is_disconnect(rc));
}

int rs_cluster_mon_command(rs_cluster *cl, const char *cmd, char **out, rs_error *err)
{
    struct conn *c = NULL;
    const char *cmds[1] = { cmd };
    char *outbuf = NULL, *outs = NULL;
    size_t outbuf_len = 0, outs_len = 0;
    int rc;

    rc = conn_borrow(cl, &c, err);
    if (rc < 0)
        return rc;
    rc = rados_mon_command(c->rados, cmds, 1, "", 0, &outbuf, &outbuf_len, &outs, &outs_len);
    if (rc < 0) {
        rs_error_set(err, rc, "mon command %s: %.*s (%s)", cmd, (int)outs_len, outs ? outs : "",
                     strerror(-rc));
    } else {
        *out = malloc(outbuf_len + 1);
        if (!*out) {
            rc = rs_error_set(err, -ENOMEM, "out of memory");
        } else {
            if (outbuf_len)
                memcpy(*out, outbuf, outbuf_len);
            (*out)[outbuf_len] = '\0';
        }
    }
    if (outbuf)
        rados_buffer_free(outbuf);
    if (outs)
        rados_buffer_free(outs);
    conn_release(cl, c, rs_cluster_rc_is_disconnect(rc));
    return rc;
}
