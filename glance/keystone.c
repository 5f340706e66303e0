/*
 * keystone.c - Keystone v3 JSON: the auth request, the service catalog,
 * token times and token validation answers.
 *
 * Only this file and client.c see passwords and tokens.  Bodies that hold a
 * secret are wiped before they are freed; no secret is ever formatted into
 * a log line or an rs_error.
 */
#define RS_LOG_MODULE "glance"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "glance/glance-priv.h"

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *or_default(const char *s, const char *def)
{
    return s && s[0] ? s : def;
}

char *rs_keystone_auth_body(const rs_glance_opts *o)
{
    json_t *root = NULL;
    char *s;

    if (o->auth && !strcmp(o->auth, "application_credential")) {
        root = json_pack("{s:{s:{s:[s], s:{s:s, s:s}}}}",
                         "auth", "identity", "methods", "application_credential",
                         "application_credential",
                         "id", or_default(o->app_cred_id, ""),
                         "secret", or_default(o->app_cred_secret, ""));
    } else {
        root = json_pack("{s:{s:{s:[s], s:{s:{s:s, s:{s:s}, s:s}}}, s:{s:{s:s, s:{s:s}}}}}",
                         "auth",
                         "identity", "methods", "password",
                         "password", "user",
                         "name", or_default(o->username, ""),
                         "domain", "name", or_default(o->user_domain_name, "Default"),
                         "password", or_default(o->password, ""),
                         "scope", "project",
                         "name", or_default(o->project_name, ""),
                         "domain", "name", or_default(o->project_domain_name, "Default"));
    }
    if (!root)
        return NULL;
    s = json_dumps(root, JSON_COMPACT);
    /* jansson keeps its own copies of the secret: overwrite them in place */
    json_t *id = json_object_get(json_object_get(root, "auth"), "identity");
    json_t *ac = json_object_get(id, "application_credential");
    json_t *pw = json_object_get(json_object_get(id, "password"), "user");
    json_t *sec = ac ? json_object_get(ac, "secret") : json_object_get(pw, "password");
    if (json_is_string(sec)) {
        size_t n = json_string_length(sec);
        explicit_bzero((char *)json_string_value(sec), n);
    }
    json_decref(root);
    return s;
}

int rs_keystone_parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    const char *p;

    if (!s)
        return -EINVAL;
    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        /* exactly [+-]HH:MM (sscanf's %2d also took one digit, and the
         * fixed skip then ran past the end: found by fuzz_glance_response) */
        for (int i = 1; i <= 5; i++)
            if (i == 3 ? p[i] != ':' : !(p[i] >= '0' && p[i] <= '9'))
                return -EINVAL;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    }
    if (*p)
        return -EINVAL;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

static char *normalise_endpoint(const char *url, const char *type)
{
    size_t n = strlen(url);
    char *s;

    while (n > 0 && url[n - 1] == '/')
        n--;
    if (!strcmp(type, "image") && n >= 3 && !strncmp(url + n - 3, "/v2", 3))
        n -= 3;
    s = strndup(url, n);
    return s;
}

int rs_keystone_catalog_find(const json_t *token, const char *type, const char *interface,
                             const char *region, char **url_out, rs_error *err)
{
    const json_t *catalog = json_object_get(token, "catalog");
    const json_t *svc, *ep;
    size_t i, k;
    bool type_seen = false;

    interface = or_default(interface, "public");
    if (region && !region[0])
        region = NULL;
    if (!json_is_array(catalog))
        return rs_error_set(err, -ENOENT, "Keystone token has no service catalog");
    json_array_foreach(catalog, i, svc) {
        const char *t = jstr(svc, "type");
        if (!t || strcmp(t, type))
            continue;
        type_seen = true;
        json_array_foreach(json_object_get(svc, "endpoints"), k, ep) {
            const char *itf = jstr(ep, "interface");
            const char *url = jstr(ep, "url");
            const char *reg = jstr(ep, "region");
            const char *regid = jstr(ep, "region_id");
            if (!itf || !url || strcmp(itf, interface))
                continue;
            if (region && !(reg && !strcmp(reg, region)) && !(regid && !strcmp(regid, region)))
                continue;
            *url_out = normalise_endpoint(url, type);
            if (!*url_out)
                return rs_error_set(err, -ENOMEM, "catalog: out of memory");
            return 0;
        }
    }
    if (!type_seen)
        return rs_error_set(err, -ENOENT, "Keystone catalog has no '%s' service", type);
    return rs_error_set(err, -ENOENT,
                        "Keystone catalog has no '%s' endpoint for interface=%s region=%s",
                        type, interface, region ? region : "(any)");
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

int rs_keystone_token_info_parse(const json_t *root, rs_token_info *out, rs_error *err)
{
    const json_t *tok = json_object_get(root, "token");
    const json_t *roles, *r;
    size_t i, n = 0;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(tok))
        return rs_error_set(err, -EBADMSG, "Keystone answer has no token object");
    copy_str(out->user_id, sizeof(out->user_id), jstr(json_object_get(tok, "user"), "id"));
    copy_str(out->user_name, sizeof(out->user_name), jstr(json_object_get(tok, "user"), "name"));
    copy_str(out->project_id, sizeof(out->project_id), jstr(json_object_get(tok, "project"), "id"));
    copy_str(out->project_name, sizeof(out->project_name),
             jstr(json_object_get(tok, "project"), "name"));
    if (!out->user_id[0])
        return rs_error_set(err, -EBADMSG, "Keystone token without user id");
    if (rs_keystone_parse_time(jstr(tok, "expires_at"), &out->expires_at) < 0)
        return rs_error_set(err, -EBADMSG, "Keystone token with a bad expires_at");
    roles = json_object_get(tok, "roles");
    out->roles = calloc(json_array_size(roles) + 1, sizeof(char *));
    if (!out->roles)
        return rs_error_set(err, -ENOMEM, "token info: out of memory");
    json_array_foreach(roles, i, r) {
        const char *name = jstr(r, "name");
        if (!name)
            continue;
        out->roles[n] = strdup(name);
        if (!out->roles[n]) {
            out->nroles = n;
            rs_token_info_clear(out);
            return rs_error_set(err, -ENOMEM, "token info: out of memory");
        }
        n++;
    }
    out->nroles = n;
    return 0;
}

bool rs_token_info_has_role(const rs_token_info *ti, const char *role)
{
    if (!ti || !ti->roles)
        return false;
    for (size_t i = 0; i < ti->nroles; i++)
        if (!strcmp(ti->roles[i], role))
            return true;
    return false;
}

void rs_token_info_clear(rs_token_info *ti)
{
    if (!ti)
        return;
    if (ti->roles)
        for (size_t i = 0; i < ti->nroles; i++)
            free(ti->roles[i]);
    free(ti->roles);
    memset(ti, 0, sizeof(*ti));
}
