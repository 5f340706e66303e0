/*
 * conf.c - the configuration table and its loader.
 *
 * Design: one static table lists every key (dotted path), its type, where it
 * lives in rs_conf, its default and its limits.  rs_conf_new() applies the
 * defaults; loading walks the libconfig tree, rejects unknown keys (a typo in
 * a production config must not be silently ignored), converts and validates
 * each present key into a scratch copy, and only on full success replaces
 * the caller's struct.  Only this file includes libconfig.
 */
#define RS_LOG_MODULE "conf"
#include "conf/conf.h"

#include <errno.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/failpoint.h"

typedef enum { K_STR, K_INT, K_BOOL, K_MODE } key_type;

typedef struct conf_key {
    const char *path;
    key_type type;
    size_t off;
    const char *def_str;
    long def_int;             /* also bool */
    long min, max;            /* K_INT */
    const char *const *choices; /* K_STR: NULL-terminated allowed values */
    bool secret;
    bool nonempty;
} conf_key;

#define OFF(f) offsetof(rs_conf, f)

static const char *const c_level[] = { "error", "warn", "info", "debug", NULL };
static const char *const c_flatten[] = { "no", "yes", "deferred", NULL };
static const char *const c_clonefmt[] = { "auto", "1", "2", NULL };
static const char *const c_quiesce[] = { "required", "optional", "off", NULL };
static const char *const c_gauth[] = { "none", "password", "application_credential", NULL };
static const char *const c_iface[] = { "public", "internal", "admin", NULL };
static const char *const c_dauth[] = { "keystone", "none", NULL };
static const char *const c_fmode[] = { "auto", "live", "cold", NULL };
static const char *const c_fupload[] = { "rbd", "glance", NULL };

#define S(p, f, d) { p, K_STR, OFF(f), d, 0, 0, 0, NULL, false, false }
#define SN(p, f, d) { p, K_STR, OFF(f), d, 0, 0, 0, NULL, false, true }
#define SC(p, f, d, c) { p, K_STR, OFF(f), d, 0, 0, 0, c, false, true }
#define SS(p, f) { p, K_STR, OFF(f), "", 0, 0, 0, NULL, true, false }
#define I(p, f, d, lo, hi) { p, K_INT, OFF(f), NULL, d, lo, hi, NULL, false, false }
#define B(p, f, d) { p, K_BOOL, OFF(f), NULL, d, 0, 1, NULL, false, false }

static const conf_key keys[] = {
    SC("log_level", log_level, "info", c_level),
    B("syslog", syslog, 0),
    S("failpoints", failpoints, ""),

    SN("ceph.conf", ceph.conf, "/etc/ceph/ceph.conf"),
    SN("ceph.id", ceph.id, "admin"),
    S("ceph.keyring", ceph.keyring, ""),
    S("ceph.key_file", ceph.key_file, ""),
    I("ceph.mount_timeout", ceph.mount_timeout, 30, 1, 3600),
    I("ceph.mon_op_timeout", ceph.mon_op_timeout, 30, 1, 3600),
    I("ceph.osd_op_timeout", ceph.osd_op_timeout, 60, 1, 3600),

    SN("snapshot.source_pool", snapshot.source_pool, "vms"),
    SN("snapshot.dest_pool", snapshot.dest_pool, "images"),
    SC("snapshot.flatten", snapshot.flatten, "no", c_flatten),
    SC("snapshot.clone_format", snapshot.clone_format, "auto", c_clonefmt),
    SC("snapshot.quiesce", snapshot.quiesce, "optional", c_quiesce),
    I("snapshot.quiesce_timeout", snapshot.quiesce_timeout, 10, 1, 600),
    I("snapshot.max_freeze", snapshot.max_freeze, 30, 1, 3600),
    SN("snapshot.snap_prefix", snapshot.snap_prefix, "rbdsnap-"),
    SN("snapshot.journal_dir", snapshot.journal_dir, "/var/lib/rbdsnap/journal"),
    SN("snapshot.work_dir", snapshot.work_dir, "/var/lib/rbdsnap/work"),
    SC("snapshot.file_mode", snapshot.file_mode, "auto", c_fmode),
    SC("snapshot.file_upload", snapshot.file_upload, "rbd", c_fupload),

    S("glance.url", glance.url, ""),
    SC("glance.auth", glance.auth, "none", c_gauth),
    S("glance.auth_url", glance.auth_url, ""),
    S("glance.username", glance.username, ""),
    SS("glance.password", glance.password),
    SN("glance.user_domain_name", glance.user_domain_name, "Default"),
    S("glance.project_name", glance.project_name, ""),
    SN("glance.project_domain_name", glance.project_domain_name, "Default"),
    S("glance.application_credential_id", glance.application_credential_id, ""),
    SS("glance.application_credential_secret", glance.application_credential_secret),
    SC("glance.interface", glance.interface, "public", c_iface),
    S("glance.region", glance.region, ""),
    S("glance.ca_file", glance.ca_file, ""),
    B("glance.insecure", glance.insecure, 0),
    I("glance.connect_timeout", glance.connect_timeout, 10, 1, 600),
    I("glance.timeout", glance.timeout, 300, 1, 86400),
    I("glance.retries", glance.retries, 3, 0, 20),
    I("glance.register_deadline", glance.register_deadline, 120, 0, 86400),

    SN("libvirt.uri", libvirt.uri, "qemu:///system"),

    SN("daemon.listen", daemon.listen, "127.0.0.1"),
    I("daemon.port", daemon.port, 8787, 0, 65535),
    S("daemon.unix_socket", daemon.unix_socket, ""),
    { "daemon.unix_socket_mode", K_MODE, OFF(daemon.unix_socket_mode), NULL, 0660, 0, 0777,
      NULL, false, false },
    I("daemon.workers", daemon.workers, 4, 1, 256),
    I("daemon.queue_limit", daemon.queue_limit, 200, 1, 1000000),
    I("daemon.max_body", daemon.max_body, 65536, 256, 16777216),
    SC("daemon.auth", daemon.auth, "keystone", c_dauth),
    SN("daemon.required_role", daemon.required_role, "admin"),
    S("daemon.tls_cert", daemon.tls_cert, ""),
    S("daemon.tls_key", daemon.tls_key, ""),
    I("daemon.shutdown_timeout", daemon.shutdown_timeout, 30, 0, 3600),

    SN("journal.pool", journal.pool, "images"),
    SN("journal.namespace", journal.namespace_, "rbdsnap"),
    I("journal.lease_seconds", journal.lease_seconds, 30, 2, 3600),

    B("gc.enabled", gc.enabled, 1),
    I("gc.interval", gc.interval, 600, 1, 86400 * 7),
    I("gc.jitter", gc.jitter, 60, 0, 86400),
    I("gc.max_items", gc.max_items, 100, 1, 1000000),
    I("gc.max_seconds", gc.max_seconds, 60, 1, 86400),
    I("gc.grace", gc.grace, 3600, 0, 86400 * 365),
    I("gc.max_depth", gc.max_depth, 0, 0, 64),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **str_at(rs_conf *c, const conf_key *k) { return (char **)((char *)c + k->off); }
static int *int_at(rs_conf *c, const conf_key *k) { return (int *)((char *)c + k->off); }
static bool *bool_at(rs_conf *c, const conf_key *k) { return (bool *)((char *)c + k->off); }

void rs_conf_free(rs_conf *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_STR) {
            char **p = str_at(conf, &keys[i]);
            if (*p && keys[i].secret)
                explicit_bzero(*p, strlen(*p));
            free(*p);
        }
    }
    free(conf->path);
    free(conf);
}

rs_conf *rs_conf_new(void)
{
    rs_conf *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        const conf_key *k = &keys[i];
        switch (k->type) {
        case K_STR:
            *str_at(c, k) = strdup(k->def_str);
            if (!*str_at(c, k)) {
                rs_conf_free(c);
                return NULL;
            }
            break;
        case K_INT:
        case K_MODE:
            *int_at(c, k) = (int)k->def_int;
            break;
        case K_BOOL:
            *bool_at(c, k) = k->def_int != 0;
            break;
        }
    }
    return c;
}

static rs_conf *conf_dup(const rs_conf *src)
{
    rs_conf *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c, src, sizeof(*c));
    c->path = NULL;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == K_STR)
            *str_at(c, &keys[i]) = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type != K_STR)
            continue;
        const char *v = *str_at((rs_conf *)src, &keys[i]);
        *str_at(c, &keys[i]) = strdup(v ? v : "");
        if (!*str_at(c, &keys[i])) {
            rs_conf_free(c);
            return NULL;
        }
    }
    if (src->path && !(c->path = strdup(src->path))) {
        rs_conf_free(c);
        return NULL;
    }
    return c;
}

static const conf_key *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

static bool is_group_prefix(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
            return true;
    return false;
}

static int where_err(rs_error *err, const char *src, const config_setting_t *s,
                     const char *path, const char *what)
{
    const char *file = config_setting_source_file(s);
    int line = (int)config_setting_source_line(s);
    return rs_error_set(err, -EINVAL, "%s:%d: %s: %s", file ? file : src, line, path, what);
}

static int apply_setting(rs_conf *c, const char *src, config_setting_t *s,
                         const char *path, rs_error *err)
{
    const conf_key *k = find_key(path);
    char msg[512];

    if (!k)
        return where_err(err, src, s, path, "unknown key");

    switch (k->type) {
    case K_STR: {
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            return where_err(err, src, s, path, "must be a string (in double quotes)");
        const char *v = config_setting_get_string(s);
        if (k->nonempty && !*v)
            return where_err(err, src, s, path, "must not be empty");
        if (k->choices) {
            bool ok = false;
            size_t used = 0;
            msg[0] = '\0';
            for (int i = 0; k->choices[i]; i++) {
                if (strcmp(v, k->choices[i]) == 0)
                    ok = true;
                used += (size_t)snprintf(msg + used, sizeof(msg) - used, "%s%s",
                                         i ? "|" : "", k->choices[i]);
                if (used >= sizeof(msg))
                    used = sizeof(msg) - 1;
            }
            if (!ok) {
                char m2[600];
                snprintf(m2, sizeof(m2), "must be one of %s", msg);
                return where_err(err, src, s, path, m2);
            }
        }
        char *dup = strdup(v);
        if (!dup)
            return rs_error_set(err, -ENOMEM, "out of memory");
        char **p = str_at(c, k);
        if (*p && k->secret)
            explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = dup;
        return 0;
    }
    case K_INT: {
        int t = config_setting_type(s);
        long long v;
        if (t == CONFIG_TYPE_INT)
            v = config_setting_get_int(s);
        else if (t == CONFIG_TYPE_INT64)
            v = config_setting_get_int64(s);
        else
            return where_err(err, src, s, path, "must be an integer");
        if (v < k->min || v > k->max) {
            snprintf(msg, sizeof(msg), "%lld is out of range [%ld, %ld]", v, k->min, k->max);
            return where_err(err, src, s, path, msg);
        }
        *int_at(c, k) = (int)v;
        return 0;
    }
    case K_MODE: {
        /* libconfig has no octal literals: a file mode is a string "0660". */
        char *end;
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            return where_err(err, src, s, path, "must be an octal mode in quotes, e.g. \"0660\"");
        const char *v = config_setting_get_string(s);
        long m = strtol(v, &end, 8);
        if (!*v || *end || m < 0 || m > 0777)
            return where_err(err, src, s, path, "must be an octal mode in quotes, e.g. \"0660\"");
        *int_at(c, k) = (int)m;
        return 0;
    }
    case K_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return where_err(err, src, s, path, "must be true or false");
        *bool_at(c, k) = config_setting_get_bool(s) != 0;
        return 0;
    }
    return -EINVAL;
}

static int walk(rs_conf *c, const char *src, config_setting_t *group, const char *prefix,
                rs_error *err)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[256];
        int rc;

        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name ? name : "?");
        if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
            if (!is_group_prefix(path))
                return where_err(err, src, s, path, "unknown section");
            rc = walk(c, src, s, path, err);
        } else {
            rc = apply_setting(c, src, s, path, err);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Cross-key checks that a single key's limits cannot express. */
static int validate(const rs_conf *c, const char *src, rs_error *err)
{
    if (strcmp(c->glance.auth, "password") == 0 &&
        (!*c->glance.auth_url || !*c->glance.username || !*c->glance.project_name))
        return rs_error_set(err, -EINVAL, "%s: glance.auth = \"password\" needs glance.auth_url, "
                            "glance.username and glance.project_name", src);
    if (strcmp(c->glance.auth, "application_credential") == 0 &&
        (!*c->glance.auth_url || !*c->glance.application_credential_id))
        return rs_error_set(err, -EINVAL, "%s: glance.auth = \"application_credential\" needs "
                            "glance.auth_url and glance.application_credential_id", src);
    if (*c->glance.url && strncmp(c->glance.url, "http://", 7) != 0 &&
        strncmp(c->glance.url, "https://", 8) != 0)
        return rs_error_set(err, -EINVAL, "%s: glance.url: must start with http:// or https://", src);
    if ((*c->daemon.tls_cert != 0) != (*c->daemon.tls_key != 0))
        return rs_error_set(err, -EINVAL, "%s: daemon.tls_cert and daemon.tls_key must be set together", src);
    if (*c->failpoints && rs_failpoint_validate(c->failpoints) < 0)
        return rs_error_set(err, -EINVAL, "%s: failpoints: malformed spec \"%s\" "
                            "(see docs/FAILPOINTS.md)", src, c->failpoints);
    return 0;
}

static int load(rs_conf *conf, const char *src, const char *path, const char *text, rs_error *err)
{
    config_t cfg;
    rs_conf *scratch;
    int rc;

    config_init(&cfg);
    if (path) {
        if (access(path, R_OK) < 0) {
            rc = rs_error_set(err, -errno, "%s: cannot read configuration file: %s", path,
                              strerror(errno));
            config_destroy(&cfg);
            return rc;
        }
        rc = config_read_file(&cfg, path);
    } else {
        rc = config_read_string(&cfg, text);
    }
    if (rc != CONFIG_TRUE) {
        const char *f = config_error_file(&cfg);
        rc = rs_error_set(err, -EINVAL, "%s:%d: syntax error: %s", f ? f : src,
                          config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return rc;
    }

    scratch = conf_dup(conf);
    if (!scratch) {
        config_destroy(&cfg);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    rc = walk(scratch, src, config_root_setting(&cfg), "", err);
    if (rc == 0)
        rc = validate(scratch, src, err);
    config_destroy(&cfg);
    if (rc < 0) {
        rs_conf_free(scratch);
        return rc;
    }
    if (path) {
        free(scratch->path);
        scratch->path = strdup(path);
    }

    /* Swap contents: conf takes scratch's values, scratch takes the old
     * ones and is freed. */
    rs_conf tmp = *conf;
    *conf = *scratch;
    *scratch = tmp;
    rs_conf_free(scratch);
    return 0;
}

int rs_conf_load_file(rs_conf *conf, const char *path, rs_error *err)
{
    return load(conf, path, path, NULL, err);
}

int rs_conf_load_string(rs_conf *conf, const char *text, rs_error *err)
{
    return load(conf, "<string>", NULL, text ? text : "", err);
}

int rs_conf_load_default(rs_conf *conf, const char *explicit_path, rs_error *err)
{
    const char *env = getenv("RBDSNAP_CONF");
    if (explicit_path && *explicit_path)
        return rs_conf_load_file(conf, explicit_path, err);
    if (env && *env)
        return rs_conf_load_file(conf, env, err);
    if (access(RS_CONF_DEFAULT_PATH, F_OK) == 0)
        return rs_conf_load_file(conf, RS_CONF_DEFAULT_PATH, err);
    return 0;
}

void rs_conf_dump(const rs_conf *conf, void (*emit)(const char *, const char *, void *), void *ctx)
{
    char buf[64];
    for (size_t i = 0; i < NKEYS; i++) {
        const conf_key *k = &keys[i];
        switch (k->type) {
        case K_STR: {
            const char *v = *str_at((rs_conf *)conf, k);
            if (k->secret)
                v = (v && *v) ? "<set>" : "";
            emit(k->path, v ? v : "", ctx);
            break;
        }
        case K_INT:
            snprintf(buf, sizeof(buf), "%d", *int_at((rs_conf *)conf, k));
            emit(k->path, buf, ctx);
            break;
        case K_MODE:
            snprintf(buf, sizeof(buf), "%04o", (unsigned)*int_at((rs_conf *)conf, k));
            emit(k->path, buf, ctx);
            break;
        case K_BOOL:
            emit(k->path, *bool_at((rs_conf *)conf, k) ? "true" : "false", ctx);
            break;
        }
    }
}
