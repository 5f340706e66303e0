/*
 * glance_conf.c - see glance_conf.h.
 */
#include "glance/glance_conf.h"

#include <errno.h>
#include <string.h>

bool rs_glance_conf_configured(const rs_conf *conf)
{
    const rs_conf_glance *g = &conf->glance;
    return (g->url && g->url[0]) || (g->auth && strcmp(g->auth, "none") != 0);
}

int rs_glance_open_from_conf(const rs_conf *conf, int pool_size, rs_glance **out, rs_error *err)
{
    const rs_conf_glance *g = &conf->glance;
    rs_glance_opts o = {
        .url = g->url, .auth = g->auth, .auth_url = g->auth_url, .username = g->username,
        .password = g->password, .user_domain_name = g->user_domain_name,
        .project_name = g->project_name, .project_domain_name = g->project_domain_name,
        .app_cred_id = g->application_credential_id,
        .app_cred_secret = g->application_credential_secret, .interface = g->interface,
        .region = g->region, .ca_file = g->ca_file, .insecure = g->insecure,
        .connect_timeout_s = g->connect_timeout, .timeout_s = g->timeout, .retries = g->retries,
        .pool_size = pool_size,
    };

    *out = NULL;
    if (!rs_glance_conf_configured(conf))
        return 0;
    *out = rs_glance_new(&o, err);
    if (!*out)
        return rs_error_isset(err) ? err->code : rs_error_set(err, -EINVAL, "glance: cannot create client");
    return 0;
}
