/*
 * conf.h - rbdsnap's configuration: one plain struct, filled with defaults
 * by rs_conf_new() and overridden only by the keys present in a libconfig
 * file or string.  Every key is validated; an error names the file, the
 * line and the key, and nothing is applied (the caller's struct is left as
 * it was).
 *
 * The table in conf.c is the single source of truth for key names, types,
 * defaults and limits; etc/rbdsnap.conf documents the same keys.
 */
#ifndef RS_CONF_CONF_H
#define RS_CONF_CONF_H

#include <stdbool.h>

#include "common/error.h"

typedef struct rs_conf_ceph {
    char *conf;             /* ceph.conf path */
    char *id;               /* cephx user without "client." */
    char *keyring;          /* "" = from ceph.conf */
    char *key_file;         /* file holding only the base64 key */
    int mount_timeout;      /* seconds */
    int mon_op_timeout;
    int osd_op_timeout;
} rs_conf_ceph;

typedef struct rs_conf_snapshot {
    char *source_pool;
    char *dest_pool;
    char *flatten;          /* no|yes|deferred */
    char *clone_format;     /* auto|1|2 */
    char *quiesce;          /* required|optional|off */
    int quiesce_timeout;    /* seconds */
    int max_freeze;         /* seconds: the watchdog thaws after this */
    char *snap_prefix;
    char *journal_dir;      /* CLI journal (files); the daemon uses RADOS */
    char *work_dir;         /* temporary files of the file-backed path */
    char *file_mode;        /* file-backed: auto|live|cold */
    char *file_upload;      /* file-backed: rbd|glance */
} rs_conf_snapshot;

typedef struct rs_conf_glance {
    char *url;              /* fixed endpoint; "" = from the catalog */
    char *auth;             /* none|password|application_credential */
    char *auth_url;
    char *username;
    char *password;
    char *user_domain_name;
    char *project_name;
    char *project_domain_name;
    char *application_credential_id;
    char *application_credential_secret;
    char *interface;        /* public|internal|admin */
    char *region;
    char *ca_file;
    bool insecure;
    int connect_timeout;
    int timeout;
    int retries;
    int register_deadline;  /* s: keep retrying add-location while Glance is down */
} rs_conf_glance;

typedef struct rs_conf_libvirt {
    char *uri;
} rs_conf_libvirt;

typedef struct rs_conf_daemon {
    char *listen;
    int port;
    char *unix_socket;
    int unix_socket_mode;   /* octal in the file, e.g. 0660 */
    int workers;
    int queue_limit;
    int max_body;
    char *auth;             /* keystone|none */
    char *required_role;
    char *tls_cert;
    char *tls_key;
    int shutdown_timeout;   /* seconds to reach a safe point on SIGTERM */
} rs_conf_daemon;

typedef struct rs_conf_journal {
    char *pool;
    char *namespace_;
    int lease_seconds;
} rs_conf_journal;

typedef struct rs_conf_gc {
    bool enabled;
    int interval;
    int jitter;
    int max_items;
    int max_seconds;
    int grace;
    int max_depth;          /* flatten clones deeper than this; 0 = off */
} rs_conf_gc;

typedef struct rs_conf {
    char *path;             /* file it was loaded from, or NULL */
    char *log_level;
    bool syslog;
    char *failpoints;
    rs_conf_ceph ceph;
    rs_conf_snapshot snapshot;
    rs_conf_glance glance;
    rs_conf_libvirt libvirt;
    rs_conf_daemon daemon;
    rs_conf_journal journal;
    rs_conf_gc gc;
} rs_conf;

#define RS_CONF_DEFAULT_PATH "/etc/rbdsnap/rbdsnap.conf"

/* A config holding every default.  NULL only on ENOMEM. */
rs_conf *rs_conf_new(void);
void rs_conf_free(rs_conf *conf);

/* Override @conf with the keys in @path / @text.  On error @conf is
 * unchanged and @err says "FILE:LINE: KEY: problem". */
int rs_conf_load_file(rs_conf *conf, const char *path, rs_error *err);
int rs_conf_load_string(rs_conf *conf, const char *text, rs_error *err);

/* Pick the file the way every rbdsnap program does: @explicit_path (from
 * -c), else $RBDSNAP_CONF, else RS_CONF_DEFAULT_PATH if it exists, else
 * defaults only.  A missing explicit file is an error. */
int rs_conf_load_default(rs_conf *conf, const char *explicit_path, rs_error *err);

/* Print every key and its value (secrets as "<set>") for `config show`. */
void rs_conf_dump(const rs_conf *conf, void (*emit)(const char *key, const char *value, void *ctx),
                  void *ctx);

#endif
