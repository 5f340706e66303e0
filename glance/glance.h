/*
 * glance.h - Glance v2 and Keystone v3 client.
 *
 * One rs_glance is shared by every thread of the process: it owns a pool of
 * HTTP connections, the Keystone token (renewed 5 minutes before expiry and
 * after a 401) and what version discovery learnt about the server.  All
 * functions are thread-safe.
 *
 * Errors are negative errno values; the rs_error names the method, the URL,
 * the HTTP status and the server's own message:
 *   404 -ENOENT, 409 -EBUSY (-EEXIST when creating with a chosen id),
 *   401/403 -EACCES, 400 -EINVAL, 413 -EFBIG, 429 -EAGAIN, 5xx -EIO,
 *   timeout -ETIMEDOUT, connection refused -ECONNREFUSED, dropped
 *   connection -ECONNRESET, unparsable answer -EBADMSG.
 * Secrets (passwords, application credential secrets, tokens) never appear
 * in logs or error messages.  See docs/GLANCE.md.
 *
 * This header deliberately exposes no curl or jansson type: properties are
 * plain key/value string lists.
 */
#ifndef RS_GLANCE_GLANCE_H
#define RS_GLANCE_GLANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct rs_glance rs_glance;

typedef struct rs_glance_opts {
    const char *url;        /* fixed Glance URL (auth "none"), or override of the catalog */
    const char *auth;       /* "none" | "password" | "application_credential" */
    const char *auth_url;   /* Keystone, with or without the trailing /v3 */
    const char *username, *password, *user_domain_name;
    const char *project_name, *project_domain_name;
    const char *app_cred_id, *app_cred_secret;
    const char *interface;  /* catalog interface, default "public" */
    const char *region;     /* catalog region, NULL/"" = any */
    const char *ca_file;    /* CA bundle for TLS verification */
    bool insecure;          /* disable TLS verification (labs only) */
    int connect_timeout_s;  /* default 10 */
    int timeout_s;          /* whole request, default 300 (uploads: stall time) */
    int retries;            /* extra attempts for safe requests (0 = none;
                             * the config file's default is 3) */
    int pool_size;          /* max parallel connections, default 8 */
} rs_glance_opts;

/* Key/value string pair (image properties, filters). */
typedef struct rs_kv {
    const char *key;
    const char *value;
} rs_kv;

rs_glance *rs_glance_new(const rs_glance_opts *o, rs_error *err);
/* Wakes every thread sleeping in a retry or wait (they fail -ECANCELED).
 * Call before rs_glance_free() when other threads may still use @g. */
void rs_glance_shutdown(rs_glance *g);
void rs_glance_free(rs_glance *g);

/* ---- discovery ------------------------------------------------------ */

/* GET /versions: remembers the highest v2 minor version.  Called lazily by
 * rs_glance_image_add_location(); callable at start-up as a health check. */
int rs_glance_discover(rs_glance *g, rs_error *err);
/* True when the server offers POST /v2/images/{id}/locations (v2.17+). */
bool rs_glance_has_locations_api(rs_glance *g);
/* "2.16" style, or "" before discovery.  @buf at least 16 bytes. */
void rs_glance_api_version(rs_glance *g, char *buf, size_t len);
/* The Glance endpoint in use (after auth/catalog); NULL-safe copy into buf. */
int rs_glance_endpoint(rs_glance *g, char *buf, size_t len, rs_error *err);

/* ---- images --------------------------------------------------------- */

typedef struct rs_glance_image_spec {
    const char *id;                 /* optional caller-chosen UUID */
    const char *name;
    bool snapshot;                  /* set Nova's snapshot properties below */
    const char *instance_uuid;      /* snapshot properties; NULL = omitted */
    const char *base_image_ref;
    const char *owner_id;
    const char *user_id;
    const char *disk_format;        /* default "raw" */
    const char *container_format;   /* default "bare" */
    const char *visibility;         /* default "private" */
    const rs_kv *extra;             /* additional string properties */
    size_t nextra;
} rs_glance_image_spec;

/* A parsed image record.  Read-only for callers; free with
 * rs_glance_image_free().  Missing strings are NULL, a missing size -1. */
typedef struct rs_glance_image {
    char *id, *name, *status, *checksum, *owner, *visibility;
    char *disk_format, *container_format, *direct_url;
    char *created_at, *updated_at;
    int64_t size;
    rs_kv *props;                   /* extra properties (string values) */
    size_t nprops;
    char **locations;               /* location URLs */
    size_t nlocations;
} rs_glance_image;

void rs_glance_image_free(rs_glance_image *img);
/* Value of extra property @key or NULL. */
const char *rs_glance_image_prop(const rs_glance_image *img, const char *key);

/* POST /v2/images.  *id_out (may be NULL) receives the new id (free()). */
int rs_glance_image_create(rs_glance *g, const rs_glance_image_spec *spec,
                           char **id_out, rs_error *err);
/* Attach a location: v2.17 POST .../locations when the server has it,
 * falling back to the JSON-patch PATCH on 403/404/405. */
int rs_glance_image_add_location(rs_glance *g, const char *id, const char *url,
                                 rs_error *err);

/* Upload source: copy up to @len bytes into @buf; return the count, 0 at
 * the end, or a negative errno to abort. */
typedef ssize_t (*rs_glance_read_cb)(void *ctx, char *buf, size_t len);
/* PUT /v2/images/{id}/file, streamed with chunked transfer encoding.  When
 * @size >= 0 the callback must deliver exactly @size bytes (checked). */
int rs_glance_image_upload(rs_glance *g, const char *id, rs_glance_read_cb cb,
                           void *ctx, int64_t size, rs_error *err);

int rs_glance_image_get(rs_glance *g, const char *id, rs_glance_image **out,
                        rs_error *err);

typedef struct rs_glance_filter {
    const char *name, *status, *owner, *visibility;
    const rs_kv *props;             /* e.g. {"image_type","snapshot"} */
    size_t nprops;
    int limit;                      /* page size, 0 = server default */
} rs_glance_filter;

/* Called once per image; return 0 to go on, > 0 to stop (list returns 0),
 * < 0 to stop with that error. */
typedef int (*rs_glance_image_cb)(void *ctx, const rs_glance_image *img);
/* GET /v2/images with filters, following `next` across pages. */
int rs_glance_image_list(rs_glance *g, const rs_glance_filter *f,
                         rs_glance_image_cb cb, void *ctx, rs_error *err);

/* Set (add or replace) and remove extra properties with one JSON patch.
 * Removing an absent property is not an error. */
int rs_glance_image_update(rs_glance *g, const char *id, const rs_kv *set,
                           size_t nset, const char *const *remove,
                           size_t nremove, rs_error *err);
int rs_glance_image_delete(rs_glance *g, const char *id, rs_error *err);
/* Poll (with backoff) until the image has @status.  -ETIMEDOUT after
 * @timeout_s; -EIO when it ends "killed"/"deleted" instead. */
int rs_glance_image_wait_status(rs_glance *g, const char *id, const char *status,
                                int timeout_s, rs_error *err);

/* ---- rbd:// location URLs ------------------------------------------- */

/* rbd://<fsid>/<pool>/<image>/<snap>, each part percent-quoted.
 * *out is heap memory (free()). */
int rs_rbd_url_format(const char *fsid, const char *pool, const char *image,
                      const char *snap, char **out, rs_error *err);

typedef struct rs_rbd_url {
    char *fsid, *pool, *image, *snap;
} rs_rbd_url;
int rs_rbd_url_parse(const char *url, rs_rbd_url *out, rs_error *err);
void rs_rbd_url_clear(rs_rbd_url *u);

/* ---- Keystone token validation (for the daemon's API auth) ----------- */

typedef struct rs_token_info {
    char user_id[128];
    char user_name[256];
    char project_id[128];
    char project_name[256];
    char **roles;                   /* NULL-terminated role names */
    size_t nroles;
    int64_t expires_at;             /* seconds since the epoch */
} rs_token_info;

/* GET /v3/auth/tokens with X-Subject-Token, authorised by our own token.
 * An invalid or expired token gives -EACCES; auth "none" -EOPNOTSUPP. */
int rs_keystone_validate_token(rs_glance *g, const char *token,
                               rs_token_info *out, rs_error *err);
bool rs_token_info_has_role(const rs_token_info *ti, const char *role);
void rs_token_info_clear(rs_token_info *ti);

#endif
