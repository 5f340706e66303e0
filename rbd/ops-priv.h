/*
 * ops-priv.h - shared by the rbd/ files that run librbd work on a pool's
 * cached ioctx (ops.c, ops_extra.c).  Not part of the module's public API.
 */
#ifndef RS_RBD_OPS_PRIV_H
#define RS_RBD_OPS_PRIV_H

#include <rados/librados.h>

#include "common/error.h"
#include "rbd/cluster.h"

typedef int (*rs_rbd_worker_fn)(rados_ioctx_t io, void *arg, rs_error *err);

/* Borrow @pool's cached ioctx and run @fn on it; when @fn fails with a
 * connection-class error the connection is retired and @fn runs once more
 * on a fresh one.  @err gets the error of the last attempt. */
int rs_rbd_with_ioctx(rs_cluster *cl, const char *pool, rs_rbd_worker_fn fn, void *arg,
                      rs_error *err);

#endif
