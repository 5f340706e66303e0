/*
 * client.c - the shared rs_glance object: options, the Keystone token
 * cache, the Glance endpoint and the authenticated request wrapper.
 *
 * Token cache: one token per rs_glance, guarded by g->lock.  A token is
 * used until 5 minutes before it expires (or half its lifetime when that
 * is shorter).  When it must be renewed, one thread talks to Keystone
 * (g->authenticating) while the others wait on g->cond; no lock is held
 * during HTTP.  A 401 from Glance renews once and repeats the request,
 * unless another thread renewed meanwhile (the stale token is compared).
 */
#define RS_LOG_MODULE "glance"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "glance/glance-priv.h"

#define TOKEN_MARGIN_S 300

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static char *trim_slash_dup(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return strndup(s, n);
}

rs_glance *rs_glance_new(const rs_glance_opts *o, rs_error *err)
{
    rs_glance *g = calloc(1, sizeof(*g));
    int ns = 0;

    if (!g) {
        rs_error_set(err, -ENOMEM, "glance client: out of memory");
        return NULL;
    }
    g->o = *o;
    /* own copies of every string option */
    const char **fields[] = {
        &g->o.url, &g->o.auth, &g->o.auth_url, &g->o.username, &g->o.password,
        &g->o.user_domain_name, &g->o.project_name, &g->o.project_domain_name,
        &g->o.app_cred_id, &g->o.app_cred_secret, &g->o.interface, &g->o.region,
        &g->o.ca_file,
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i]) {
            char *d = strdup(*fields[i]);
            if (!d)
                goto nomem;
            g->strs[ns++] = d;
            *fields[i] = d;
        }
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->api_minor = -1;

    const char *auth = g->o.auth && g->o.auth[0] ? g->o.auth : "none";
    if (!strcmp(auth, "none")) {
        g->auth = RS_AUTH_NONE;
    } else if (!strcmp(auth, "password")) {
        g->auth = RS_AUTH_PASSWORD;
        if (!g->o.username || !g->o.username[0] || !g->o.password || !g->o.project_name ||
            !g->o.project_name[0]) {
            rs_error_set(err, -EINVAL, "glance: auth=password needs username, password and project_name");
            goto fail;
        }
    } else if (!strcmp(auth, "application_credential")) {
        g->auth = RS_AUTH_APPCRED;
        if (!g->o.app_cred_id || !g->o.app_cred_id[0] || !g->o.app_cred_secret) {
            rs_error_set(err, -EINVAL,
                         "glance: auth=application_credential needs application_credential_id and _secret");
            goto fail;
        }
    } else {
        rs_error_set(err, -EINVAL, "glance: unknown auth '%s' (none|password|application_credential)", auth);
        goto fail;
    }
    if (g->auth == RS_AUTH_NONE) {
        if (!g->o.url || !g->o.url[0]) {
            rs_error_set(err, -EINVAL, "glance: auth=none needs a url");
            goto fail;
        }
    } else {
        if (!g->o.auth_url || !g->o.auth_url[0]) {
            rs_error_set(err, -EINVAL, "glance: auth=%s needs auth_url", auth);
            goto fail;
        }
        char *base = trim_slash_dup(g->o.auth_url);
        if (!base)
            goto nomem;
        if (rs_str_has_suffix(base, "/v3"))
            g->auth_url = base;
        else {
            g->auth_url = rs_strdup_printf("%s/v3", base);
            free(base);
            if (!g->auth_url)
                goto nomem;
        }
    }
    if (g->o.url && g->o.url[0]) {
        g->endpoint = trim_slash_dup(g->o.url);
        if (!g->endpoint)
            goto nomem;
        if (rs_str_has_suffix(g->endpoint, "/v2"))
            g->endpoint[strlen(g->endpoint) - 3] = '\0';
    }
    rs_http_opts ho = {
        .ca_file = g->o.ca_file, .insecure = g->o.insecure,
        .connect_timeout_s = g->o.connect_timeout_s, .timeout_s = g->o.timeout_s,
        .retries = g->o.retries, .pool_size = g->o.pool_size,
    };
    g->http = rs_http_new(&ho, err);
    if (!g->http)
        goto fail;
    rs_info("glance client ready auth=%s endpoint=%s auth_url=%s interface=%s region=%s",
            auth, g->endpoint ? g->endpoint : "(catalog)", g->auth_url ? g->auth_url : "-",
            g->o.interface ? g->o.interface : "public",
            g->o.region && g->o.region[0] ? g->o.region : "-");
    return g;

nomem:
    rs_error_set(err, -ENOMEM, "glance client: out of memory");
fail:
    rs_glance_free(g);
    return NULL;
}

void rs_glance_shutdown(rs_glance *g)
{
    if (g)
        rs_http_shutdown(g->http);
}

void rs_glance_free(rs_glance *g)
{
    if (!g)
        return;
    rs_http_free(g->http);
    wipe_free(g->token);
    free(g->endpoint);
    free(g->auth_url);
    for (size_t i = 0; i < sizeof(g->strs) / sizeof(g->strs[0]); i++)
        wipe_free(g->strs[i]);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* POST /v3/auth/tokens.  Fills a fresh token, its expiry and (unless
 * the URL is fixed) the catalog's image endpoint. */
static int keystone_authenticate(rs_glance *g, char **token, int64_t *expires,
                                 int64_t *issued, char **endpoint, rs_error *err)
{
    rs_autofree char *url = rs_strdup_printf("%s/auth/tokens", g->auth_url);
    char *body = rs_keystone_auth_body(&g->o);
    rs_http_resp resp;
    json_error_t jerr;
    json_t *root = NULL;
    int rc;

    if (!url || !body) {
        wipe_free(body);
        return rs_error_set(err, -ENOMEM, "keystone: out of memory");
    }
    rs_http_req req = {
        .method = "POST", .url = url, .service = "Keystone",
        .content_type = "application/json", .body = body, .body_len = strlen(body),
        .retry_unsafe_ok = true,   /* issuing a token changes nothing */
    };
    rc = rs_http_do(g->http, &req, &resp, err);
    wipe_free(body);
    if (rc < 0)
        goto out;
    if (!resp.subject_token || !resp.subject_token[0]) {
        rc = rs_error_set(err, -EBADMSG, "POST %s: Keystone answered without X-Subject-Token", url);
        goto out;
    }
    root = json_loadb(resp.body ? resp.body : "", resp.len, 0, &jerr);
    json_t *tok = json_object_get(root, "token");
    if (!json_is_object(tok)) {
        rc = rs_error_set(err, -EBADMSG, "POST %s: bad token JSON: %s", url, jerr.text);
        goto out;
    }
    if (rs_keystone_parse_time(json_string_value(json_object_get(tok, "expires_at")), expires) < 0) {
        rc = rs_error_set(err, -EBADMSG, "POST %s: token without a valid expires_at", url);
        goto out;
    }
    *issued = rs_wall_time();
    if (rs_keystone_parse_time(json_string_value(json_object_get(tok, "issued_at")), issued) < 0)
        *issued = rs_wall_time();
    if (!g->o.url || !g->o.url[0]) {
        rc = rs_keystone_catalog_find(tok, "image", g->o.interface, g->o.region, endpoint, err);
        if (rc < 0) {
            rs_error_prefix(err, "POST %s", url);
            goto out;
        }
    }
    *token = resp.subject_token;
    resp.subject_token = NULL;
    rs_info("keystone token issued auth=%s user=%s project=%s expires_in_s=%lld",
            g->auth == RS_AUTH_APPCRED ? "application_credential" : "password",
            g->auth == RS_AUTH_APPCRED ? "-" : g->o.username,
            g->auth == RS_AUTH_APPCRED ? "-" : g->o.project_name,
            (long long)(*expires - rs_wall_time()));
out:
    json_decref(root);
    rs_http_resp_clear(&resp);
    return rc;
}

int rs_glance_auth_get(rs_glance *g, bool force, const char *stale, char **token,
                       char **endpoint, rs_error *err)
{
    char *tok = NULL, *ep = NULL;
    int64_t expires = 0, issued = 0;
    int rc;

    *token = NULL;
    if (endpoint)
        *endpoint = NULL;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        bool valid = false;
        if (g->auth == RS_AUTH_NONE)
            valid = true;
        else if (g->token) {
            int64_t now = rs_wall_time();
            int64_t life = g->token_expires - now;
            int64_t margin = TOKEN_MARGIN_S;
            valid = life > margin;
            if (force)
                valid = stale && strcmp(stale, g->token) != 0 && life > 0;
        }
        if (valid && g->endpoint) {
            if (g->token) {
                *token = strdup(g->token);
                if (!*token)
                    break;
            }
            if (endpoint) {
                *endpoint = strdup(g->endpoint);
                if (!*endpoint) {
                    wipe_free(*token);
                    *token = NULL;
                    break;
                }
            }
            pthread_mutex_unlock(&g->lock);
            return 0;
        }
        if (g->auth == RS_AUTH_NONE)
            break;  /* no endpoint: cannot happen after rs_glance_new() */
        if (!g->authenticating)
            break;
        pthread_cond_wait(&g->cond, &g->lock);
        force = false;  /* whoever authenticated gave us a fresh token */
    }
    if (g->auth == RS_AUTH_NONE || g->authenticating) {
        pthread_mutex_unlock(&g->lock);
        return rs_error_set(err, -ENOMEM, "glance: out of memory");
    }
    g->authenticating = true;
    pthread_mutex_unlock(&g->lock);

    rc = keystone_authenticate(g, &tok, &expires, &issued, &ep, err);

    pthread_mutex_lock(&g->lock);
    g->authenticating = false;
    pthread_cond_broadcast(&g->cond);
    if (rc == 0) {
        wipe_free(g->token);
        g->token = tok;
        g->token_expires = expires;
        /* a token living less than twice the margin: renew at half-life */
        if (expires - issued < 2 * TOKEN_MARGIN_S)
            g->token_expires = issued + (expires - issued) / 2 + TOKEN_MARGIN_S;
        g->tokens_issued++;
        if (ep) {
            free(g->endpoint);
            g->endpoint = ep;
            ep = NULL;
        }
        *token = strdup(g->token);
        if (endpoint)
            *endpoint = strdup(g->endpoint);
        if (!*token || (endpoint && !*endpoint)) {
            wipe_free(*token);
            *token = NULL;
            if (endpoint) {
                free(*endpoint);
                *endpoint = NULL;
            }
            rc = rs_error_set(err, -ENOMEM, "glance: out of memory");
        }
    }
    pthread_mutex_unlock(&g->lock);
    free(ep);
    return rc;
}

int rs_glance_endpoint(rs_glance *g, char *buf, size_t len, rs_error *err)
{
    char *tok = NULL, *ep = NULL;
    int rc = rs_glance_auth_get(g, false, NULL, &tok, &ep, err);
    if (rc == 0)
        snprintf(buf, len, "%s", ep);
    wipe_free(tok);
    free(ep);
    return rc;
}

/* Run @req against @base (Glance endpoint or Keystone) + @path with our
 * token; renew once after a 401. */
static int authed_request(rs_glance *g, bool keystone, rs_http_req *req, const char *path,
                          rs_http_resp *resp, rs_error *err)
{
    rs_error e = RS_ERROR_INIT;
    char *tok = NULL, *ep = NULL, *url = NULL;
    int rc = 0;

    memset(resp, 0, sizeof(*resp));
    for (int round = 0; round < 2; round++) {
        char *stale = tok;
        tok = NULL;
        rs_error_clear(&e);
        free(ep);
        ep = NULL;
        rc = rs_glance_auth_get(g, round > 0, stale, &tok, keystone ? NULL : &ep, &e);
        wipe_free(stale);
        if (rc < 0)
            break;
        free(url);
        if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8))
            url = strdup(path);
        else
            url = rs_strdup_printf("%s%s", keystone ? g->auth_url : ep, path);
        if (!url) {
            rc = rs_error_set(&e, -ENOMEM, "glance: out of memory");
            break;
        }
        req->url = url;
        if (!req->service)
            req->service = keystone ? "Keystone" : "Glance";
        req->token = tok;
        rs_http_resp_clear(resp);
        rc = rs_http_do(g->http, req, resp, &e);
        req->token = NULL;
        req->url = NULL;
        if (rc == 0 || resp->status != 401 || g->auth == RS_AUTH_NONE || req->read_cb)
            break;
        if (round == 0)
            rs_info("token rejected (HTTP 401), renewing method=%s url=%s", req->method, url);
    }
    if (url) {
        resp->url = url;
        resp->method = strdup(req->method);
        url = NULL;
    }
    wipe_free(tok);
    free(ep);
    free(url);
    if (rc < 0)
        rs_error_set(err, rc, "%s", e.msg);
    return rc;
}

int rs_glance_request(rs_glance *g, rs_http_req *req, const char *path, rs_http_resp *resp,
                      rs_error *err)
{
    return authed_request(g, false, req, path, resp, err);
}

int rs_keystone_validate_token(rs_glance *g, const char *token, rs_token_info *out,
                               rs_error *err)
{
    rs_http_resp resp;
    rs_error e = RS_ERROR_INIT;
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(out, 0, sizeof(*out));
    if (g->auth == RS_AUTH_NONE)
        return rs_error_set(err, -EOPNOTSUPP, "token validation needs Keystone auth (glance auth=none)");
    if (!token || !token[0])
        return rs_error_set(err, -EACCES, "no token given");
    rs_http_req req = { .method = "GET", .subject_token = token, .service = "Keystone" };
    rc = authed_request(g, true, &req, "/auth/tokens?nocatalog", &resp, &e);
    if (rc < 0) {
        if (resp.status == 404)
            rc = rs_error_set(err, -EACCES, "token is not valid (expired, revoked or unknown): %s",
                              e.msg);
        else
            rc = rs_error_set(err, rc, "validating a token: %s", e.msg);
        rs_http_resp_clear(&resp);
        return rc;
    }
    root = json_loadb(resp.body ? resp.body : "", resp.len, 0, &jerr);
    rs_http_resp_clear(&resp);
    if (!root)
        return rs_error_set(err, -EBADMSG, "GET %s/auth/tokens: bad JSON: %s", g->auth_url, jerr.text);
    rc = rs_keystone_token_info_parse(root, out, err);
    json_decref(root);
    if (rc == 0 && out->expires_at <= rs_wall_time()) {
        rs_token_info_clear(out);
        return rs_error_set(err, -EACCES, "token has expired");
    }
    return rc;
}

void rs_glance_priv_set_token(rs_glance *g, const char *token, int64_t expires)
{
    pthread_mutex_lock(&g->lock);
    wipe_free(g->token);
    g->token = token ? strdup(token) : NULL;
    g->token_expires = expires;
    pthread_mutex_unlock(&g->lock);
}

unsigned rs_glance_priv_tokens_issued(rs_glance *g)
{
    pthread_mutex_lock(&g->lock);
    unsigned n = g->tokens_issued;
    pthread_mutex_unlock(&g->lock);
    return n;
}
