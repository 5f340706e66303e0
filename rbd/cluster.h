/*
 * cluster.h - shared, long-lived connections to Ceph clusters.
 *
 * One rados_t per configured cluster (same conf file, user, keyring, key
 * file, mon_host) for the whole process, reference counted and thread-safe,
 * like SPDK's bdev_rbd: never a connection per request.  An ioctx per pool
 * is created on first use and cached.  The timeouts
 * (client_mount_timeout, rados_mon_op_timeout, rados_osd_op_timeout) are
 * always set, so a sick cluster makes calls fail with -ETIMEDOUT instead of
 * hanging.  When an operation fails with a connection-class error
 * (-ESHUTDOWN, -ENOTCONN, -ECONNRESET, -EBLOCKLISTED...) the caller reports
 * it with rs_cluster_ioctx_put_rc(); the connection is retired and the next
 * rs_cluster_ioctx_get() connects afresh (the old rados_t is shut down once
 * its last borrower is gone).
 *
 * Only rbd/ includes librados; the ioctx is handed out as void * (it is a
 * rados_ioctx_t).
 */
#ifndef RS_RBD_CLUSTER_H
#define RS_RBD_CLUSTER_H

#include <stdbool.h>

#include "common/error.h"

typedef struct rs_cluster rs_cluster;

typedef struct rs_cluster_opts {
    const char *conf_file;   /* ceph.conf; NULL/"" = $CEPH_CONF or librados' search */
    const char *id;          /* cephx user without "client." (NULL = "admin") */
    const char *keyring;     /* keyring path, optional */
    const char *key_file;    /* file holding the bare base64 key, optional */
    const char *mon_host;    /* overrides mon_host of the conf file, optional */
    int mount_timeout;       /* seconds; <= 0 = 30 */
    int mon_op_timeout;      /* seconds; <= 0 = 30 */
    int osd_op_timeout;      /* seconds; <= 0 = 60 */
} rs_cluster_opts;

/* Get the shared connection for @opts (connecting if needed).  Returns a
 * new reference in *out.  Errors name the monitors, e.g.
 * "Ceph unreachable (mon_host 127.0.0.1:6789): connection timed out after 30 s". */
int rs_cluster_connect(const rs_cluster_opts *opts, rs_cluster **out, rs_error *err);
rs_cluster *rs_cluster_ref(rs_cluster *cl);
void rs_cluster_unref(rs_cluster *cl);          /* NULL is fine */

/* The cluster fsid (for rbd:// URLs). */
const char *rs_cluster_fsid(const rs_cluster *cl);
/* mon_host as librados resolved it (for messages). */
const char *rs_cluster_mon_host(const rs_cluster *cl);

/* Borrow the cached ioctx of @pool (a rados_ioctx_t).  Every successful get
 * must be matched by one put.  Reconnects if the connection was retired. */
int rs_cluster_ioctx_get(rs_cluster *cl, const char *pool, void **ioctx, rs_error *err);
/* Give it back; @rc is the result of what was done with it: a
 * connection-class error retires the connection. */
void rs_cluster_ioctx_put_rc(rs_cluster *cl, void *ioctx, int rc);
static inline void rs_cluster_ioctx_put(rs_cluster *cl, void *ioctx)
{
    rs_cluster_ioctx_put_rc(cl, ioctx, 0);
}
/* True for errors that mean "the connection is gone or stuck, reconnect"
 * (including op timeouts). */
bool rs_cluster_rc_is_disconnect(int rc);

/* Run a monitor command (JSON) and return its output (malloc'ed, NUL
 * terminated) in *out. */
int rs_cluster_mon_command(rs_cluster *cl, const char *cmd, char **out, rs_error *err);

/* Number of (re)connections made for @cl (for tests and stats). */
unsigned rs_cluster_connect_count(const rs_cluster *cl);

#endif
