/*
 * api.c - the HTTP API of rbdsnapd (libmicrohttpd + jansson).
 *
 *   POST   /v1/snapshots        202 {job_id, image_id, state}
 *   GET    /v1/jobs[?state=S]   200 {jobs: [...]}
 *   GET    /v1/jobs/{id}        200 job
 *   DELETE /v1/jobs/{id}        202 (cancel, roll back)
 *   GET    /v1/health           200/503
 *   GET    /metrics             Prometheus text
 *
 * Design: this file is the thin RPC layer (SPDK style): decode and validate
 * JSON, call the job engine or a daemon hook, map -errno to a status.  Every
 * error answer is JSON {code, message} and is sent before anything is
 * created.  Bodies are bounded by daemon.max_body (413).
 *
 * Auth: on TCP with daemon.auth = "keystone", X-Auth-Token is validated by
 * the validate_token hook and cached (by token, until the token's expiry or
 * at most 5 minutes); no token or an invalid one gives 401, a token without
 * the required role 403.  /v1/health and /metrics are open.  The UNIX socket
 * is protected by its owner and mode and every request on it is checked
 * with SO_PEERCRED: root, the daemon's own uid, or (when the mode grants
 * the group) a member of the socket's group.  Tokens are never logged.
 */
#define RS_LOG_MODULE "api"
#include "service/service-priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#define TOKEN_CACHE_MAX 256
#define TOKEN_CACHE_MAX_AGE 300

typedef struct token_entry {
    char *token;
    char user_id[128];
    char project_id[128];
    bool has_role;
    int64_t valid_until;
} token_entry;

struct rs_api {
    rs_api_opts o;
    char *listen, *unix_path, *tls_cert_pem, *tls_key_pem;
    struct MHD_Daemon *tcp;
    struct MHD_Daemon *unx;
    int unix_fd;
    int port;
    pthread_mutex_t lock;           /* token cache */
    token_entry tokens[TOKEN_CACHE_MAX];
};

typedef struct req_ctx {
    char *body;
    size_t len;
    bool too_big;
    bool is_unix;
    bool responded;
} req_ctx;

/* ---- errors and responses ------------------------------------------------ */

int rs_api_errno_status(int rc)
{
    switch (rc) {
    case 0: return 200;
    case -EINVAL: case -EBADMSG: case -ERANGE: case -ENAMETOOLONG: return 400;
    case -EACCES: return 403;
    case -EPERM: return 403;
    case -ENOENT: return 404;
    case -EEXIST: case -EBUSY: case -ENOTEMPTY: return 409;
    case -EFBIG: case -E2BIG: return 413;
    case -EAGAIN: return 429;
    case -ESHUTDOWN: case -ECONNREFUSED: case -ENOTCONN: return 503;
    case -ETIMEDOUT: return 504;
    default: return 500;
    }
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *ctype,
                                 char *text /* stolen */, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(rs_api *a, struct MHD_Connection *c, int status, json_t *o,
                                 const char *location)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        text = strdup("{\"code\":500,\"message\":\"out of memory\"}");
    if (!text)
        return MHD_NO;
    if (a && a->o.metrics) {
        char labels[32];
        snprintf(labels, sizeof labels, "code=\"%d\"", status);
        rs_metrics_counter_add(a->o.metrics, "rbdsnap_http_requests_total",
                               "HTTP requests answered, by status", labels, 1);
    }
    return send_text(c, status, "application/json", text, location);
}

static enum MHD_Result send_error(rs_api *a, struct MHD_Connection *c, int status,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(rs_api *a, struct MHD_Connection *c, int status,
                                  const char *fmt, ...)
{
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_json(a, c, status, json_pack("{s:i, s:s}", "code", status, "message", msg),
                     NULL);
}

static enum MHD_Result send_rs_error(rs_api *a, struct MHD_Connection *c, int rc,
                                     const rs_error *err)
{
    return send_error(a, c, rs_api_errno_status(rc), "%s", rs_error_msg(err));
}

/* ---- request validation ---------------------------------------------------- */

static const char *const reserved_props[] = {
    "image_type", "instance_uuid", "base_image_ref", "image_location", "image_state",
    "owner_id", "user_id", "rbdsnap_job_id", "disk_format", "container_format", NULL,
};

static bool text_is_clean(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

static bool prop_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

static int check_enum(json_t *o, const char *key, const char *const *choices, rs_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return rs_error_set(err, -EINVAL, "field '%s' must be a string", key);
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(json_string_value(v), choices[i]) == 0)
            return 0;
    return rs_error_set(err, -EINVAL, "field '%s' must be one of %s|%s|%s", key, choices[0],
                        choices[1], choices[2]);
}

static int check_text(json_t *o, const char *key, rs_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return rs_error_set(err, -EINVAL, "field '%s' must be a string", key);
    if (!text_is_clean(json_string_value(v), 255))
        return rs_error_set(err, -EINVAL,
                            "field '%s' must be at most 255 characters without control "
                            "characters", key);
    return 0;
}

int rs_api_validate_snapshot(const char *body, size_t len, json_t **out, rs_error *err)
{
    static const char *const known[] = { "instance_uuid", "domain", "disks", "all_disks",
                                         "name", "flatten", "quiesce", "properties",
                                         "base_image_ref", "owner_id", "user_id", "mode",
                                         "upload", NULL };
    static const char *const c_flatten[] = { "no", "yes", "deferred", NULL };
    static const char *const c_quiesce[] = { "required", "optional", "off", NULL };
    static const char *const c_mode[] = { "auto", "live", "cold", NULL };
    json_error_t jerr;
    *out = NULL;
    if (!body || len == 0)
        return rs_error_set(err, -EINVAL, "request body is empty; a JSON object is expected");
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return rs_error_set(err, -EINVAL, "malformed JSON at line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(o)) {
        rc = rs_error_set(err, -EINVAL, "request body must be a JSON object");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool ok = false;
        for (size_t i = 0; known[i]; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok) {
            rc = text_is_clean(k, 64) ? rs_error_set(err, -EINVAL, "unknown field '%s'", k)
                                      : rs_error_set(err, -EINVAL, "unknown field");
            goto out;
        }
    }
    int targets = 0;
    if ((v = json_object_get(o, "instance_uuid"))) {
        targets++;
        if (!json_is_string(v) || !rs_is_uuid(json_string_value(v))) {
            rc = rs_error_set(err, -EINVAL, "field 'instance_uuid' must be a UUID string");
            goto out;
        }
    }
    if ((v = json_object_get(o, "domain"))) {
        targets++;
        if (!json_is_string(v) || !rs_name_is_safe(json_string_value(v), 255)) {
            rc = rs_error_set(err, -EINVAL,
                              "field 'domain' must be a name without '/', '..', '@' or "
                              "control characters");
            goto out;
        }
    }
    if ((v = json_object_get(o, "disks"))) {
        targets++;
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 16) {
            rc = rs_error_set(err, -EINVAL, "field 'disks' must be an array of 1 to 16 "
                                            "\"pool/image\" strings");
            goto out;
        }
        size_t i;
        json_t *d;
        json_array_foreach(v, i, d) {
            const char *s = json_is_string(d) ? json_string_value(d) : NULL;
            const char *slash = s ? strchr(s, '/') : NULL;
            char pool[128];
            if (!slash || (size_t)(slash - s) >= sizeof pool) {
                rc = rs_error_set(err, -EINVAL, "disks[%zu] must be a \"pool/image\" string", i);
                goto out;
            }
            memcpy(pool, s, (size_t)(slash - s));
            pool[slash - s] = '\0';
            if (!rs_name_is_safe(pool, 127) || !rs_name_is_safe(slash + 1, 255)) {
                rc = rs_error_set(err, -EINVAL,
                                  "disks[%zu]: pool and image must be names without '/', '..', "
                                  "'@' or control characters", i);
                goto out;
            }
        }
    }
    if (targets != 1) {
        rc = rs_error_set(err, -EINVAL, "exactly one of 'instance_uuid', 'domain' or 'disks' "
                                        "is required");
        goto out;
    }
    v = json_object_get(o, "name");
    if (!v || !json_is_string(v)) {
        rc = rs_error_set(err, -EINVAL, "field 'name' (string) is required");
        goto out;
    }
    if (!rs_name_is_safe(json_string_value(v), 255)) {
        rc = rs_error_set(err, -EINVAL, "field 'name' must be 1-255 characters without '/', "
                                        "'..', '@' or control characters");
        goto out;
    }
    if ((v = json_object_get(o, "all_disks")) && !json_is_boolean(v)) {
        rc = rs_error_set(err, -EINVAL, "field 'all_disks' must be a boolean");
        goto out;
    }
    if ((rc = check_enum(o, "flatten", c_flatten, err)) < 0 ||
        (rc = check_enum(o, "quiesce", c_quiesce, err)) < 0 ||
        (rc = check_enum(o, "mode", c_mode, err)) < 0 ||
        (rc = check_text(o, "base_image_ref", err)) < 0 ||
        (rc = check_text(o, "owner_id", err)) < 0 || (rc = check_text(o, "user_id", err)) < 0)
        goto out;
    if ((v = json_object_get(o, "upload")) &&
        (!json_is_string(v) || (strcmp(json_string_value(v), "rbd") != 0 &&
                                strcmp(json_string_value(v), "glance") != 0))) {
        rc = rs_error_set(err, -EINVAL, "field 'upload' must be one of rbd|glance");
        goto out;
    }
    if ((v = json_object_get(o, "properties"))) {
        if (!json_is_object(v) || json_object_size(v) > 64) {
            rc = rs_error_set(err, -EINVAL, "field 'properties' must be an object of at most 64 "
                                            "string values");
            goto out;
        }
        const char *pk;
        json_t *pv;
        json_object_foreach(v, pk, pv) {
            if (!prop_key_ok(pk)) {
                rc = rs_error_set(err, -EINVAL, "properties: bad key (1-255 of [A-Za-z0-9_.:-])");
                goto out;
            }
            for (size_t i = 0; reserved_props[i]; i++) {
                if (strcmp(pk, reserved_props[i]) == 0) {
                    rc = rs_error_set(err, -EINVAL, "properties: '%s' is set by rbdsnap", pk);
                    goto out;
                }
            }
            if (!json_is_string(pv) || !text_is_clean(json_string_value(pv), 255)) {
                rc = rs_error_set(err, -EINVAL, "properties.%s must be a string of at most 255 "
                                                "characters without control characters", pk);
                goto out;
            }
        }
    }
out:
    if (rc < 0)
        json_decref(o);
    else
        *out = o;
    return rc;
}

/* ---- auth -------------------------------------------------------------------- */

/* 0 ok; else an HTTP status (401/403/500) and a message. */
static int check_token(rs_api *a, const char *token, char *user_id, size_t ulen,
                       char *project_id, size_t plen, char *msg, size_t mlen)
{
    if (!token || !*token) {
        snprintf(msg, mlen, "authentication required: X-Auth-Token header missing");
        return 401;
    }
    if (strlen(token) > 8192) {
        snprintf(msg, mlen, "authentication failed: token too long");
        return 401;
    }
    int64_t now = rs_wall_time();
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < TOKEN_CACHE_MAX; i++) {
        token_entry *t = &a->tokens[i];
        if (t->token && t->valid_until > now && strcmp(t->token, token) == 0) {
            bool role = t->has_role;
            snprintf(user_id, ulen, "%s", t->user_id);
            snprintf(project_id, plen, "%s", t->project_id);
            pthread_mutex_unlock(&a->lock);
            if (!role) {
                snprintf(msg, mlen, "forbidden: the token lacks the required role");
                return 403;
            }
            return 0;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (!a->o.hooks.validate_token) {
        snprintf(msg, mlen, "authentication unavailable");
        return 500;
    }
    rs_error err = RS_ERROR_INIT;
    bool has_role = false;
    int64_t expires = 0;
    char uid[128] = "", pid[128] = "";
    int rc = a->o.hooks.validate_token(a->o.hooks.opaque, token, uid, sizeof uid, pid,
                                       sizeof pid, &has_role, &expires, &err);
    if (rc == -EACCES || rc == -ENOENT) {
        snprintf(msg, mlen, "authentication failed: invalid or expired token");
        return 401;
    }
    if (rc < 0) {
        rs_warn("keystone token validation failed rc=%d error=\"%s\"", rc, rs_error_msg(&err));
        snprintf(msg, mlen, "token validation failed: %s", rs_error_msg(&err));
        return rc == -ETIMEDOUT ? 504 : 503;
    }
    int64_t until = now + TOKEN_CACHE_MAX_AGE;
    if (expires > 0 && expires < until)
        until = expires;
    pthread_mutex_lock(&a->lock);
    int slot = 0;
    for (int i = 0; i < TOKEN_CACHE_MAX; i++) {
        if (!a->tokens[i].token || a->tokens[i].valid_until <= now) {
            slot = i;
            break;
        }
        if (a->tokens[i].valid_until < a->tokens[slot].valid_until)
            slot = i;
    }
    token_entry *t = &a->tokens[slot];
    free(t->token);
    t->token = strdup(token);
    snprintf(t->user_id, sizeof t->user_id, "%s", uid);
    snprintf(t->project_id, sizeof t->project_id, "%s", pid);
    t->has_role = has_role;
    t->valid_until = until;
    pthread_mutex_unlock(&a->lock);
    snprintf(user_id, ulen, "%s", uid);
    snprintf(project_id, plen, "%s", pid);
    if (!has_role) {
        snprintf(msg, mlen, "forbidden: the token lacks the required role");
        return 403;
    }
    return 0;
}

/* Peer credentials on the UNIX socket: 0 ok, 403 otherwise. */
static int check_peer(rs_api *a, struct MHD_Connection *c, char *msg, size_t mlen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        snprintf(msg, mlen, "forbidden: cannot read peer credentials");
        return 403;
    }
    if (cred.uid == 0 || cred.uid == geteuid())
        return 0;
    struct stat st;
    if (a->unix_path && stat(a->unix_path, &st) == 0) {
        if ((a->o.unix_mode & 0006) == 0006)
            return 0;
        if ((a->o.unix_mode & 0060) == 0060) {
            if (cred.gid == st.st_gid)
                return 0;
        }
    }
    snprintf(msg, mlen, "forbidden: uid %u may not use this socket", (unsigned)cred.uid);
    return 403;
}

/* ---- handlers ---------------------------------------------------------------- */

static enum MHD_Result h_snapshot(rs_api *a, struct MHD_Connection *c, req_ctx *rc_,
                                  const char *user_id, const char *project_id)
{
    rs_error err = RS_ERROR_INIT;
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype && !rs_str_has_prefix(ctype, "application/json"))
        return send_error(a, c, 415, "Content-Type must be application/json");
    json_t *req = NULL;
    int rc = rs_api_validate_snapshot(rc_->body, rc_->len, &req, &err);
    if (rc < 0)
        return send_rs_error(a, c, rc, &err);
    if (user_id && *user_id && !json_object_get(req, "user_id"))
        json_object_set_new(req, "user_id", json_string(user_id));
    if (project_id && *project_id && !json_object_get(req, "owner_id"))
        json_object_set_new(req, "owner_id", json_string(project_id));

    rs_autofree char *key = NULL;
    if (a->o.hooks.resolve) {
        rc = a->o.hooks.resolve(a->o.hooks.opaque, req, &key, &err);
        if (rc < 0) {
            json_decref(req);
            return send_rs_error(a, c, rc, &err);
        }
    }
    char job_id[37], image_id[37];
    if (rs_random_uuid(job_id) < 0 || rs_random_uuid(image_id) < 0) {
        json_decref(req);
        return send_error(a, c, 500, "cannot generate ids");
    }
    if (a->o.hooks.accept) {
        rc = a->o.hooks.accept(a->o.hooks.opaque, job_id, image_id, req, &err);
        if (rc < 0) {
            json_decref(req);
            rs_warn("job=%s journal failed rc=%d error=\"%s\"", job_id, rc, rs_error_msg(&err));
            return send_error(a, c, rc == -EAGAIN ? 429 : 503, "cannot journal the job: %s",
                              rs_error_msg(&err));
        }
    }
    rs_task_submit s = { .id = job_id, .image_id = image_id, .key = key,
                        .request = json_incref(req) };
    rc = rs_tasks_submit(a->o.jobs, &s, NULL, &err);
    if (rc < 0) {
        if (a->o.hooks.forget)
            a->o.hooks.forget(a->o.hooks.opaque, job_id);
        json_decref(req);
        return send_rs_error(a, c, rc, &err);
    }
    json_t *inst = json_object_get(req, "instance_uuid");
    rs_info("job=%s state=queued image=%s instance=%s name=\"%s\"", job_id, image_id,
            inst ? json_string_value(inst) : "-",
            json_string_value(json_object_get(req, "name")));
    json_decref(req);
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", job_id);
    return send_json(a, c, 202, json_pack("{s:s, s:s, s:s, s:s}", "job_id", job_id, "image_id",
                                          image_id, "state", "queued", "href", loc), loc);
}

static enum MHD_Result h_jobs_list(rs_api *a, struct MHD_Connection *c)
{
    const char *st = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    int state = -1;
    if (st) {
        rs_task_state s;
        if (rs_task_state_parse(st, &s) < 0)
            return send_error(a, c, 400, "query 'state' must be one of queued, running, "
                                         "rolling_back, done, rolled_back, failed");
        state = (int)s;
    }
    json_t *arr = rs_tasks_list_json(a->o.jobs, state);
    return send_json(a, c, 200, json_pack("{s:o}", "jobs", arr), NULL);
}

static enum MHD_Result h_job(rs_api *a, struct MHD_Connection *c, const char *method,
                             const char *id)
{
    if (!rs_is_uuid(id))
        return send_error(a, c, 404, "job not found (job ids are UUIDs)");
    if (strcmp(method, "GET") == 0) {
        rs_task *j = rs_tasks_get(a->o.jobs, id);
        if (!j)
            return send_error(a, c, 404, "job %s not found", id);
        json_t *o = rs_task_to_json(j);
        rs_task_unref(j);
        return send_json(a, c, 200, o, NULL);
    }
    rs_error err = RS_ERROR_INIT;
    int rc = rs_tasks_cancel(a->o.jobs, id, &err);
    if (rc < 0)
        return send_rs_error(a, c, rc, &err);
    rs_info("job=%s cancel requested", id);
    return send_json(a, c, 202, json_pack("{s:s, s:s}", "job_id", id, "state", "cancelling"),
                     NULL);
}

static enum MHD_Result h_health(rs_api *a, struct MHD_Connection *c)
{
    unsigned counts[RS_TASK_NSTATES];
    rs_tasks_count(a->o.jobs, counts);
    bool ok = true;
    json_t *extra = a->o.hooks.health ? a->o.hooks.health(a->o.hooks.opaque, &ok) : NULL;
    json_t *o = json_pack("{s:s, s:s, s:{s:i, s:i}}", "status", ok ? "ok" : "degraded",
                          "version", RBDSNAP_VERSION, "jobs", "queued", counts[RS_TASK_QUEUED],
                          "running", counts[RS_TASK_RUNNING] + counts[RS_TASK_ROLLING_BACK]);
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    return send_json(a, c, ok ? 200 : 503, o, NULL);
}

static enum MHD_Result h_metrics(rs_api *a, struct MHD_Connection *c)
{
    char *text = rs_metrics_render(a->o.metrics);
    if (!text)
        return send_error(a, c, 500, "out of memory");
    if (a->o.hooks.metrics_extra) {
        char *extra = a->o.hooks.metrics_extra(a->o.hooks.opaque);
        if (extra) {
            char *both = NULL;
            if (asprintf(&both, "%s%s", text, extra) >= 0) {
                free(text);
                text = both;
            }
            free(extra);
        }
    }
    return send_text(c, 200, "text/plain; version=0.0.4", text, NULL);
}

static enum MHD_Result method_not_allowed(rs_api *a, struct MHD_Connection *c,
                                          const char *method, const char *url,
                                          const char *allow)
{
    struct MHD_Response *r;
    json_t *o = json_pack("{s:i, s:s}", "code", 405, "message", "method not allowed");
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    rs_debug("method=%s url=%s status=405", method, url);
    if (a->o.metrics)
        rs_metrics_counter_add(a->o.metrics, "rbdsnap_http_requests_total",
                               "HTTP requests answered, by status", "code=\"405\"", 1);
    enum MHD_Result ret = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result dispatch(rs_api *a, struct MHD_Connection *c, req_ctx *rq,
                                const char *url, const char *method)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/v1/health") == 0)
        return get ? h_health(a, c) : method_not_allowed(a, c, method, url, "GET, HEAD");
    if (strcmp(url, "/metrics") == 0)
        return get ? h_metrics(a, c) : method_not_allowed(a, c, method, url, "GET, HEAD");

    enum { R_NONE, R_SNAP, R_JOBS, R_JOB } route = R_NONE;
    const char *id = NULL;
    if (strcmp(url, "/v1/snapshots") == 0)
        route = R_SNAP;
    else if (strcmp(url, "/v1/jobs") == 0 || strcmp(url, "/v1/jobs/") == 0)
        route = R_JOBS;
    else if (rs_str_has_prefix(url, "/v1/jobs/") && !strchr(url + 9, '/')) {
        route = R_JOB;
        id = url + 9;
    }
    if (route == R_NONE)
        return send_error(a, c, 404, "no such resource");
    if (route == R_SNAP && strcmp(method, "POST") != 0)
        return method_not_allowed(a, c, method, url, "POST");
    if (route == R_JOBS && !get)
        return method_not_allowed(a, c, method, url, "GET, HEAD");
    if (route == R_JOB && !get && strcmp(method, "DELETE") != 0)
        return method_not_allowed(a, c, method, url, "GET, HEAD, DELETE");

    /* Authentication for everything but health and metrics. */
    char user_id[128] = "", project_id[128] = "", msg[256] = "";
    int st = 0;
    if (rq->is_unix)
        st = check_peer(a, c, msg, sizeof msg);
    else if (a->o.keystone)
        st = check_token(a, c ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Auth-Token")
                              : NULL,
                         user_id, sizeof user_id, project_id, sizeof project_id, msg,
                         sizeof msg);
    if (st) {
        if (a->o.metrics)
            rs_metrics_counter_add(a->o.metrics, "rbdsnap_auth_failures_total",
                                   "Requests refused by authentication",
                                   st == 401 ? "code=\"401\"" : "code=\"403\"", 1);
        return send_error(a, c, st, "%s", msg);
    }
    if (rq->too_big)
        return send_error(a, c, 413, "request body larger than %zu bytes", a->o.max_body);
    switch (route) {
    case R_SNAP: return h_snapshot(a, c, rq, user_id, project_id);
    case R_JOBS: return h_jobs_list(a, c);
    case R_JOB: return h_job(a, c, method, id);
    default: return send_error(a, c, 404, "no such resource");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    rs_api *a = cls;
    req_ctx *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        const union MHD_ConnectionInfo *di =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
        rq->is_unix = di && di->daemon == a->unx && a->unx;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > a->o.max_body) {
            /* Refuse at once; MHD closes the connection after answering. */
            rq->responded = true;
            return send_error(a, c, 413, "request body larger than %zu bytes", a->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rq->responded && !rq->too_big) {
            if (rq->len + *upload_size > a->o.max_body) {
                rq->too_big = true;
                free(rq->body);
                rq->body = NULL;
                rq->len = 0;
            } else {
                char *nb = realloc(rq->body, rq->len + *upload_size + 1);
                if (!nb)
                    return MHD_NO;
                memcpy(nb + rq->len, upload_data, *upload_size);
                rq->len += *upload_size;
                nb[rq->len] = '\0';
                rq->body = nb;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->responded)
        return MHD_YES;
    rq->responded = true;
    return dispatch(a, c, rq, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_ctx *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    rs_warn("microhttpd: %s", buf);
}

static char *read_file(const char *path, rs_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        rs_error_set(err, -errno, "%s: cannot open: %m", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (m && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    if (!m || fclose(m) != 0) {
        free(buf);
        rs_error_set(err, -ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    return buf;
}

static int open_unix(rs_api *a, rs_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(a->unix_path) >= sizeof sa.sun_path)
        return rs_error_set(err, -ENAMETOOLONG, "daemon.unix_socket %s: path too long",
                            a->unix_path);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->unix_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rs_error_set(err, -errno, "daemon.unix_socket %s: socket: %m", a->unix_path);
    struct stat st;
    if (lstat(a->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(a->unix_path);
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(a->unix_path, (mode_t)a->o.unix_mode) < 0 || listen(fd, 64) < 0) {
        rc = rs_error_set(err, -errno, "daemon.unix_socket %s: %m", a->unix_path);
        close(fd);
        return rc;
    }
    a->unix_fd = fd;
    return 0;
}

int rs_api_start(const rs_api_opts *o, rs_api **out, rs_error *err)
{
    int rc = 0;
    rs_api *a = calloc(1, sizeof *a);
    if (!a)
        return rs_error_set(err, -ENOMEM, "api: out of memory");
    a->o = *o;
    a->unix_fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    if (a->o.max_body == 0)
        a->o.max_body = 65536;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO | MHD_USE_ITC;
    if (o->listen && *o->listen) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
        if (inet_pton(AF_INET, o->listen, &sin.sin_addr) != 1) {
            rc = rs_error_set(err, -EINVAL, "daemon.listen %s: not an IPv4 address", o->listen);
            goto fail;
        }
        unsigned tflags = flags;
        if (o->tls_cert && *o->tls_cert) {
            a->tls_cert_pem = read_file(o->tls_cert, err);
            a->tls_key_pem = a->tls_cert_pem && o->tls_key ? read_file(o->tls_key, err) : NULL;
            if (!a->tls_cert_pem || !a->tls_key_pem) {
                rc = rs_error_set(err, -EINVAL, "daemon.tls_cert/tls_key: cannot read");
                goto fail;
            }
            tflags |= MHD_USE_TLS;
        }
        if (a->tls_cert_pem)
            a->tcp = MHD_start_daemon(tflags, (uint16_t)o->port, NULL, NULL, on_request, a,
                                      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
                                      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                                      MHD_OPTION_THREAD_POOL_SIZE, 2u,
                                      MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                                      MHD_OPTION_CONNECTION_LIMIT, 256u,
                                      MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                                      MHD_OPTION_HTTPS_MEM_CERT, a->tls_cert_pem,
                                      MHD_OPTION_HTTPS_MEM_KEY, a->tls_key_pem, MHD_OPTION_END);
        else
            a->tcp = MHD_start_daemon(tflags, (uint16_t)o->port, NULL, NULL, on_request, a,
                                      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
                                      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                                      MHD_OPTION_THREAD_POOL_SIZE, 2u,
                                      MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                                      MHD_OPTION_CONNECTION_LIMIT, 256u,
                                      MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                                      MHD_OPTION_END);
        if (!a->tcp) {
            rc = rs_error_set(err, -EADDRINUSE, "cannot listen on %s:%d (address in use?)",
                              o->listen, o->port);
            goto fail;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->tcp, MHD_DAEMON_INFO_BIND_PORT);
        a->port = di ? di->port : o->port;
    }
    if (o->unix_socket && *o->unix_socket) {
        a->unix_path = strdup(o->unix_socket);
        if (!a->unix_path) {
            rc = rs_error_set(err, -ENOMEM, "api: out of memory");
            goto fail;
        }
        if ((rc = open_unix(a, err)) < 0)
            goto fail;
        a->unx = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
                                  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
                                  MHD_OPTION_LISTEN_SOCKET, a->unix_fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                                  MHD_OPTION_END);
        if (!a->unx) {
            rc = rs_error_set(err, -EIO, "daemon.unix_socket %s: cannot serve", a->unix_path);
            goto fail;
        }
    }
    if (!a->tcp && !a->unx) {
        rc = rs_error_set(err, -EINVAL, "neither daemon.listen nor daemon.unix_socket is set");
        goto fail;
    }
    *out = a;
    return 0;
fail:
    rs_api_free(a);
    return rc;
}

int rs_api_port(const rs_api *a)
{
    return a->port;
}

void rs_api_quiesce(rs_api *a)
{
    if (!a)
        return;
    if (a->tcp) {
        MHD_socket s = MHD_quiesce_daemon(a->tcp);
        if (s != MHD_INVALID_SOCKET)
            close(s);
    }
    if (a->unx) {
        MHD_socket s = MHD_quiesce_daemon(a->unx);
        (void)s; /* it is a->unix_fd, closed in rs_api_free */
    }
}

void rs_api_free(rs_api *a)
{
    if (!a)
        return;
    if (a->tcp)
        MHD_stop_daemon(a->tcp);
    if (a->unx)
        MHD_stop_daemon(a->unx);
    if (a->unix_fd >= 0)
        close(a->unix_fd);
    if (a->unix_path) {
        unlink(a->unix_path);
        free(a->unix_path);
    }
    for (int i = 0; i < TOKEN_CACHE_MAX; i++) {
        if (a->tokens[i].token) {
            explicit_bzero(a->tokens[i].token, strlen(a->tokens[i].token));
            free(a->tokens[i].token);
        }
    }
    if (a->tls_key_pem) {
        explicit_bzero(a->tls_key_pem, strlen(a->tls_key_pem));
        free(a->tls_key_pem);
    }
    free(a->tls_cert_pem);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
