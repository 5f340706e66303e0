/*
 * glance_conf.h - a Glance client from rbdsnap's configuration (glance.*
 * keys), the one place that maps the configuration to rs_glance_opts.
 */
#ifndef RS_GLANCE_GLANCE_CONF_H
#define RS_GLANCE_GLANCE_CONF_H

#include <stdbool.h>

#include "common/error.h"
#include "conf/conf.h"
#include "glance/glance.h"

/* True when @conf configures Glance (a fixed url, or an auth other than
 * "none" that finds the endpoint in the catalog). */
bool rs_glance_conf_configured(const rs_conf *conf);

/* Build the client.  0 with *out == NULL when Glance is not configured;
 * @pool_size 0 = the client's default. */
int rs_glance_open_from_conf(const rs_conf *conf, int pool_size, rs_glance **out,
                             rs_error *err);

#endif
