/*
 * glance-priv.h - internals of glance/ shared between its files and
 * exposed to the unit tests.  Nothing outside glance/ and tests/glance/
 * includes this header.
 */
#ifndef RS_GLANCE_GLANCE_PRIV_H
#define RS_GLANCE_GLANCE_PRIV_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "glance/glance.h"

/* ---- HTTP layer (http.c) --------------------------------------------- */

typedef struct rs_http rs_http;

typedef struct rs_http_opts {
    const char *ca_file;
    bool insecure;
    int connect_timeout_s;
    int timeout_s;
    int retries;
    int pool_size;
} rs_http_opts;

typedef struct rs_http_req {
    const char *method;         /* GET HEAD POST PUT PATCH DELETE */
    const char *url;
    const char *service;        /* "Glance" / "Keystone", for messages */
    const char *content_type;
    const char *body;           /* in-memory body, or NULL */
    size_t body_len;
    const char *token;          /* X-Auth-Token (never logged) */
    const char *subject_token;  /* X-Subject-Token (never logged) */
    rs_glance_read_cb read_cb;  /* streamed body (never retried) */
    void *read_ctx;
    int64_t upload_size;        /* -1 unknown */
    bool retry_unsafe_ok;       /* caller proves a POST is safe to repeat */
    int conflict_errno;         /* errno for 409, default -EBUSY */
} rs_http_req;

typedef struct rs_http_resp {
    long status;
    char *body;
    size_t len;
    char *content_type;
    char *subject_token;        /* X-Subject-Token answered by Keystone */
    int retry_after_s;          /* -1 when absent */
    int attempts;
    char *method;               /* set by rs_glance_request(): what was sent */
    char *url;
} rs_http_resp;

rs_http *rs_http_new(const rs_http_opts *o, rs_error *err);
/* Interrupt backoff sleeps (they fail -ECANCELED). */
void rs_http_shutdown(rs_http *h);
void rs_http_free(rs_http *h);
/* Run @req with the retry policy.  0 for a 2xx answer; otherwise a
 * negative errno with @err filled ("METHOD URL: HTTP 404: message").
 * @resp is filled whenever an answer arrived (also for errors) and must
 * be released with rs_http_resp_clear(). */
int rs_http_do(rs_http *h, const rs_http_req *req, rs_http_resp *resp,
               rs_error *err);
void rs_http_resp_clear(rs_http_resp *resp);
/* Sleep @ms unless shut down (-ECANCELED). */
int rs_http_sleep(rs_http *h, unsigned ms);

/* Pure policy helpers (unit-tested). */
bool rs_http_method_idempotent(const char *method, bool streamed);
/* @curl_code is a CURLcode (0 when an HTTP answer arrived), @status the
 * HTTP status (0 when none). */
bool rs_http_should_retry(const char *method, bool streamed, bool unsafe_ok,
                          int curl_code, long status);
/* Delay before attempt @attempt (1-based retry count); @rnd any random
 * value; honours @retry_after_s (>= 0) up to 60 s. */
unsigned rs_http_backoff_ms(int attempt, int retry_after_s, unsigned rnd);
int rs_http_status_errno(long status, int conflict_errno);
int rs_http_curl_errno(int curl_code);
/* Extract the server's message from an error body (Glance/Keystone JSON,
 * webob HTML, plain text) into @buf; whitespace collapsed, tags dropped. */
void rs_http_error_message(const char *body, size_t len,
                           const char *content_type, char *buf, size_t buflen);
/* Retry-After: delta seconds or HTTP date; -1 when unparsable. */
int rs_http_parse_retry_after(const char *value, int64_t now);

/* ---- Keystone (keystone.c) ------------------------------------------- */

/* Find the endpoint of @type in a token's catalog.  Returns a heap string
 * without trailing '/' (and without a trailing /v2 for "image"). */
int rs_keystone_catalog_find(const json_t *token, const char *type,
                             const char *interface, const char *region,
                             char **url_out, rs_error *err);
/* RFC 3339 time ("2026-12-04T19:15:29.000000Z") to epoch seconds. */
int rs_keystone_parse_time(const char *s, int64_t *out);
/* Build the auth request body.  Contains secrets: wipe after use. */
char *rs_keystone_auth_body(const rs_glance_opts *o);
int rs_keystone_token_info_parse(const json_t *root, rs_token_info *out,
                                 rs_error *err);

/* ---- the shared object ------------------------------------------------ */

enum rs_glance_auth { RS_AUTH_NONE, RS_AUTH_PASSWORD, RS_AUTH_APPCRED };

struct rs_glance {
    rs_glance_opts o;           /* strings below are owned copies */
    char *strs[16];
    enum rs_glance_auth auth;
    char *auth_url;             /* normalised, ends with /v3 */
    rs_http *http;

    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t cond;
    bool authenticating;        /* one thread talks to Keystone at a time */
    char *token;
    int64_t token_expires;
    char *endpoint;             /* Glance base URL without trailing '/' */
    int api_minor;              /* -1 before discovery */
    bool locations_api_denied;  /* v2.17 API refused us once: use PATCH */
    unsigned tokens_issued;     /* statistics for tests */
};

/* Current token + endpoint (both heap copies; token NULL for auth none).
 * Authenticates when needed; @force renews unless the cached token
 * differs from @stale (another thread already renewed). */
int rs_glance_auth_get(rs_glance *g, bool force, const char *stale,
                       char **token, char **endpoint, rs_error *err);
/* A Glance request relative to the endpoint ("/v2/images"), with the token
 * and one renewal after a 401.  Body/answer as in rs_http_do. */
int rs_glance_request(rs_glance *g, rs_http_req *req, const char *path,
                      rs_http_resp *resp, rs_error *err);

/* Test hooks. */
void rs_glance_priv_set_token(rs_glance *g, const char *token, int64_t expires);
unsigned rs_glance_priv_tokens_issued(rs_glance *g);

/* ---- images.c / rbdurl.c --------------------------------------------- */

int rs_glance_image_from_json(const json_t *j, rs_glance_image **out, rs_error *err);
/* Percent-quote everything but [A-Za-z0-9_.~-]. Heap string or NULL. */
char *rs_percent_quote(const char *s);
/* Decode %XX; -EINVAL on a malformed escape or an embedded NUL. */
int rs_percent_unquote(const char *s, size_t len, char **out);

#endif
