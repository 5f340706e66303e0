/*
 * http.c - the HTTP client under the Glance and Keystone code.
 *
 * Design
 * ------
 * Connections are reused through a small pool of curl easy handles (a
 * handle keeps its live connections across curl_easy_reset()).  The pool is
 * a fixed array guarded by a mutex and a condition variable: a thread takes
 * an idle handle, creates one while the pool is below its size, or waits.
 * No lock is held while curl runs.
 *
 * Every request gets CURLOPT_NOSIGNAL (threads), a connect timeout and a
 * total timeout; streamed uploads use a stall timeout instead (a 100 GiB
 * upload must not hit a fixed deadline).  TLS is verified unless the
 * operator sets `insecure`; `ca_file` names the CA bundle.
 *
 * Retry policy (rs_http_should_retry): a request is repeated, with
 * exponential backoff and jitter, only when repeating it cannot do harm:
 *   - any method when the connection could not be established (the request
 *     never left this process);
 *   - idempotent requests (GET, HEAD, DELETE, PUT with an in-memory body)
 *     after a dropped connection, a 5xx (not 501/505) or a 429;
 *   - never a streamed body (it cannot be replayed), never after a timeout
 *     (the stall already cost the whole timeout).
 * A Retry-After header (seconds or HTTP date) is honoured up to 60 s.
 *
 * Every failure is reported once, here, as "METHOD URL: HTTP status:
 * server message" or "METHOD URL: curl message".  Header values (tokens)
 * and request bodies (passwords) never reach a log line or an error.
 */
#define RS_LOG_MODULE "glance"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "glance/glance-priv.h"

#define RS_HTTP_MAX_BODY   (32u << 20)   /* answers larger than this abort */
#define RS_HTTP_MAX_RETRY_AFTER 60

struct rs_http {
    rs_http_opts o;
    char *ca_file;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* handle freed / shutdown */
    pthread_cond_t sleep_cond;  /* backoff sleeps (CLOCK_MONOTONIC) */
    bool shutdown;
    int n;                      /* handles created */
    CURL **handles;
    bool *busy;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- policy (pure) ---------------------------------------------------- */

bool rs_http_method_idempotent(const char *method, bool streamed)
{
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "DELETE"))
        return true;
    if (!strcmp(method, "PUT"))
        return !streamed;
    return false;
}

static bool curl_not_connected(int code)
{
    return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
           code == CURLE_COULDNT_RESOLVE_PROXY;
}

static bool curl_dropped(int code)
{
    return code == CURLE_GOT_NOTHING || code == CURLE_RECV_ERROR ||
           code == CURLE_SEND_ERROR || code == CURLE_PARTIAL_FILE;
}

bool rs_http_should_retry(const char *method, bool streamed, bool unsafe_ok,
                          int curl_code, long status)
{
    bool safe = rs_http_method_idempotent(method, streamed) || (unsafe_ok && !streamed);

    if (streamed)
        return false;
    if (curl_code != CURLE_OK) {
        if (curl_not_connected(curl_code))
            return true;
        return safe && curl_dropped(curl_code);
    }
    if (status == 429)
        return safe;
    if (status >= 500 && status <= 599 && status != 501 && status != 505)
        return safe;
    return false;
}

unsigned rs_http_backoff_ms(int attempt, int retry_after_s, unsigned rnd)
{
    unsigned base = 250;
    unsigned delay;

    for (int i = 1; i < attempt && base < 8000; i++)
        base *= 2;
    if (base > 8000)
        base = 8000;
    /* "equal jitter": half fixed, half random */
    delay = base / 2 + rnd % (base / 2 + 1);
    if (retry_after_s >= 0) {
        unsigned ra = (unsigned)(retry_after_s > RS_HTTP_MAX_RETRY_AFTER ?
                                 RS_HTTP_MAX_RETRY_AFTER : retry_after_s) * 1000u;
        if (ra > delay)
            delay = ra;
    }
    return delay;
}

int rs_http_status_errno(long status, int conflict_errno)
{
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 400: return -EINVAL;
    case 401:
    case 403: return -EACCES;
    case 404:
    case 410: return -ENOENT;
    case 405: return -EOPNOTSUPP;
    case 408: return -ETIMEDOUT;
    case 409: return conflict_errno ? conflict_errno : -EBUSY;
    case 413: return -EFBIG;
    case 429: return -EAGAIN;
    default: break;
    }
    if (status >= 500 && status <= 599)
        return -EIO;
    if (status >= 400 && status <= 499)
        return -EINVAL;
    return -EPROTO;
}

int rs_http_curl_errno(int code)
{
    switch (code) {
    case CURLE_OK: return 0;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE: return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return -EINVAL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: return -EPROTO;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR: return -ECANCELED;
    case CURLE_WRITE_ERROR: return -EFBIG;   /* answer over RS_HTTP_MAX_BODY */
    default: return -EIO;
    }
}

int rs_http_parse_retry_after(const char *value, int64_t now)
{
    const char *p = value;
    long v;
    char *end;

    if (!value)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (isdigit((unsigned char)*p)) {
        errno = 0;
        v = strtol(p, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno || *end)
            return -1;
        return v > 86400 ? 86400 : (int)v;
    }
    time_t t = curl_getdate(p, NULL);
    if (t == (time_t)-1)
        return -1;
    if ((int64_t)t <= now)
        return 0;
    return (int64_t)t - now > 86400 ? 86400 : (int)((int64_t)t - now);
}

/* Drop tags, decode a few entities, collapse whitespace, trim. */
static void tidy_text(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t o = 0;
    bool space = false, intag = false;

    if (!buflen)
        return;
    for (size_t i = 0; i < len && s[i]; i++) {
        char ch = s[i];
        if (intag) {
            if (ch == '>') {
                intag = false;
                space = true;
            }
            continue;
        }
        if (ch == '<' && i + 1 < len && (isalpha((unsigned char)s[i + 1]) || s[i + 1] == '/')) {
            intag = true;
            continue;
        }
        if (ch == '&') {
            static const struct { const char *e; char c; } ents[] = {
                { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
                { "&quot;", '"' }, { "&#39;", '\'' }, { "&#x27;", '\'' },
            };
            for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
                size_t el = strlen(ents[k].e);
                if (i + el <= len && !strncmp(s + i, ents[k].e, el)) {
                    ch = ents[k].c;
                    i += el - 1;
                    break;
                }
            }
        }
        if (isspace((unsigned char)ch) || (unsigned char)ch < 0x20) {
            space = true;
            continue;
        }
        if (space && o > 0 && o + 1 < buflen)
            buf[o++] = ' ';
        space = false;
        if (o + 1 < buflen)
            buf[o++] = ch;
    }
    buf[o] = '\0';
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool json_message(const char *body, size_t len, char *buf, size_t buflen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    const char *msg = NULL, *title = NULL;
    const json_t *o;
    char tmp[1024];

    if (!root)
        return false;
    if (!json_is_object(root)) {
        json_decref(root);
        return false;
    }
    o = root;
    /* Keystone: {"error": {"message", "code", "title"}} */
    if (json_is_object(json_object_get(root, "error")))
        o = json_object_get(root, "error");
    /* {"errors": [{"title", "detail"}]} */
    else if (json_is_array(json_object_get(root, "errors")) &&
             json_is_object(json_array_get(json_object_get(root, "errors"), 0)))
        o = json_array_get(json_object_get(root, "errors"), 0);
    /* Nova style: {"itemNotFound": {"message", "code"}} */
    else if (json_object_size(root) == 1) {
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v) {
            if (json_is_object(v))
                o = v;
        }
    }
    msg = jstr(o, "message");
    if (!msg)
        msg = jstr(o, "explanation");
    if (!msg)
        msg = jstr(o, "detail");
    title = jstr(o, "title");
    if (!msg && !title) {
        json_decref(root);
        return false;
    }
    if (msg && title && !strstr(msg, title))
        snprintf(tmp, sizeof(tmp), "%s: %s", title, msg);
    else
        snprintf(tmp, sizeof(tmp), "%s", msg ? msg : title);
    tidy_text(tmp, strlen(tmp), buf, buflen);
    json_decref(root);
    return true;
}

static const char *memcasestr(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (!strncasecmp(hay + i, needle, nl))
            return hay + i;
    return NULL;
}

void rs_http_error_message(const char *body, size_t len, const char *content_type,
                           char *buf, size_t buflen)
{
    const char *p, *e;
    char title[256] = "", detail[768] = "";

    if (!buflen)
        return;
    buf[0] = '\0';
    if (!body || !len)
        return;
    if (json_message(body, len, buf, buflen))
        return;
    bool html = (content_type && strstr(content_type, "html")) ||
                memcasestr(body, len < 64 ? len : 64, "<html") ||
                memcasestr(body, len < 64 ? len : 64, "<!doctype");
    if (!html) {
        tidy_text(body, len > 1024 ? 1024 : len, buf, buflen);
        return;
    }
    p = memcasestr(body, len, "<title>");
    if (p) {
        p += 7;
        e = memcasestr(p, len - (size_t)(p - body), "</title>");
        if (e)
            tidy_text(p, (size_t)(e - p), title, sizeof(title));
    }
    /* webob puts the detail after the <h1> heading */
    p = memcasestr(body, len, "</h1>");
    if (!p)
        p = memcasestr(body, len, "<body>");
    if (p) {
        p = strchr(p, '>') + 1;
        e = memcasestr(p, len - (size_t)(p - body), "</body>");
        if (!e)
            e = body + len;
        tidy_text(p, (size_t)(e - p), detail, sizeof(detail));
    }
    if (title[0] && detail[0] && strcmp(title, detail))
        snprintf(buf, buflen, "%s: %s", title, detail);
    else
        snprintf(buf, buflen, "%s", title[0] ? title : detail);
}

/* ---- pool ------------------------------------------------------------- */

rs_http *rs_http_new(const rs_http_opts *o, rs_error *err)
{
    pthread_condattr_t ca;
    rs_http *h;

    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        rs_error_set(err, -EIO, "curl_global_init: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h)
        goto nomem;
    h->o = *o;
    if (h->o.pool_size <= 0)
        h->o.pool_size = 8;
    if (h->o.connect_timeout_s <= 0)
        h->o.connect_timeout_s = 10;
    if (h->o.timeout_s <= 0)
        h->o.timeout_s = 300;
    if (h->o.retries < 0)
        h->o.retries = 0;
    if (o->ca_file && o->ca_file[0]) {
        h->ca_file = strdup(o->ca_file);
        if (!h->ca_file)
            goto nomem;
    }
    h->o.ca_file = h->ca_file;
    h->handles = calloc((size_t)h->o.pool_size, sizeof(*h->handles));
    h->busy = calloc((size_t)h->o.pool_size, sizeof(*h->busy));
    if (!h->handles || !h->busy)
        goto nomem;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->sleep_cond, &ca);
    pthread_condattr_destroy(&ca);
    return h;

nomem:
    if (h) {
        free(h->ca_file);
        free(h->handles);
        free(h->busy);
        free(h);
    }
    rs_error_set(err, -ENOMEM, "http client: out of memory");
    return NULL;
}

void rs_http_shutdown(rs_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->shutdown = true;
    pthread_cond_broadcast(&h->cond);
    pthread_cond_broadcast(&h->sleep_cond);
    pthread_mutex_unlock(&h->lock);
}

void rs_http_free(rs_http *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->n; i++)
        curl_easy_cleanup(h->handles[i]);
    pthread_cond_destroy(&h->cond);
    pthread_cond_destroy(&h->sleep_cond);
    pthread_mutex_destroy(&h->lock);
    free(h->handles);
    free(h->busy);
    free(h->ca_file);
    free(h);
}

static CURL *pool_get(rs_http *h, int *slot)
{
    CURL *c = NULL;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        if (h->shutdown)
            break;
        for (int i = 0; i < h->n; i++) {
            if (!h->busy[i]) {
                h->busy[i] = true;
                *slot = i;
                c = h->handles[i];
                goto out;
            }
        }
        if (h->n < h->o.pool_size) {
            c = curl_easy_init();
            if (c) {
                *slot = h->n;
                h->handles[h->n] = c;
                h->busy[h->n] = true;
                h->n++;
            }
            goto out;
        }
        pthread_cond_wait(&h->cond, &h->lock);
    }
out:
    pthread_mutex_unlock(&h->lock);
    return c;
}

static void pool_put(rs_http *h, int slot)
{
    pthread_mutex_lock(&h->lock);
    h->busy[slot] = false;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

int rs_http_sleep(rs_http *h, unsigned ms)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->lock);
    while (!h->shutdown) {
        if (pthread_cond_timedwait(&h->sleep_cond, &h->lock, &ts) == ETIMEDOUT)
            break;
    }
    if (h->shutdown)
        rc = -ECANCELED;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* ---- one attempt ------------------------------------------------------ */

struct upload_state {
    rs_glance_read_cb cb;
    void *ctx;
    int64_t size;
    int64_t sent;
    int err;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *p)
{
    struct upload_state *u = p;
    size_t want = size * nitems;
    ssize_t n;

    if (u->size >= 0 && (int64_t)want > u->size - u->sent)
        want = (size_t)(u->size - u->sent);
    if (want == 0 && u->size >= 0) {
        /* exact size reached: make sure the source agrees it is done */
        char probe;
        n = u->cb(u->ctx, &probe, 1);
        if (n < 0) {
            u->err = (int)n;
            return CURL_READFUNC_ABORT;
        }
        if (n > 0) {
            u->err = -EFBIG;
            return CURL_READFUNC_ABORT;
        }
        return 0;
    }
    n = u->cb(u->ctx, buf, want);
    if (n < 0) {
        u->err = (int)n;
        return CURL_READFUNC_ABORT;
    }
    if (n == 0 && u->size >= 0 && u->sent < u->size) {
        u->err = -ENODATA;
        return CURL_READFUNC_ABORT;
    }
    if ((size_t)n > want) {
        u->err = -EINVAL;
        return CURL_READFUNC_ABORT;
    }
    u->sent += n;
    return (size_t)n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *p)
{
    rs_http_resp *r = p;
    size_t n = size * nmemb;
    char *nb;

    if (r->len + n > RS_HTTP_MAX_BODY)
        return 0;
    nb = realloc(r->body, r->len + n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, data, n);
    r->len += n;
    nb[r->len] = '\0';
    r->body = nb;
    return n;
}

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    const char *v, *e;

    if (n <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
        return NULL;
    v = line + nl + 1;
    e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    return strndup(v, (size_t)(e - v));
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *p)
{
    rs_http_resp *r = p;
    size_t n = size * nitems;
    char *v;

    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        /* a new response (after 100 Continue or a retry): start over */
        free(r->content_type);
        free(r->subject_token);
        r->content_type = r->subject_token = NULL;
        r->retry_after_s = -1;
        return n;
    }
    if ((v = header_value(line, n, "Content-Type"))) {
        free(r->content_type);
        r->content_type = v;
    } else if ((v = header_value(line, n, "X-Subject-Token"))) {
        free(r->subject_token);
        r->subject_token = v;
    } else if ((v = header_value(line, n, "Retry-After"))) {
        r->retry_after_s = rs_http_parse_retry_after(v, rs_wall_time());
        free(v);
    }
    return n;
}

void rs_http_resp_clear(rs_http_resp *resp)
{
    if (!resp)
        return;
    free(resp->body);
    free(resp->content_type);
    free(resp->method);
    free(resp->url);
    if (resp->subject_token) {
        explicit_bzero(resp->subject_token, strlen(resp->subject_token));
        free(resp->subject_token);
    }
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_s = -1;
}

static struct curl_slist *add_header(struct curl_slist *l, bool *ok, const char *name, const char *v)
{
    char line[8192];
    struct curl_slist *n;

    if (!*ok)
        return l;
    if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, v) >= sizeof(line)) {
        *ok = false;
        return l;
    }
    n = curl_slist_append(l, line);
    explicit_bzero(line, sizeof(line));
    if (!n) {
        *ok = false;
        return l;
    }
    return n;
}

static int attempt(rs_http *h, CURL *c, const rs_http_req *req, rs_http_resp *resp,
                   int *curl_code, char *errbuf, int *upload_err)
{
    struct curl_slist *hdrs = NULL;
    struct upload_state up = { req->read_cb, req->read_ctx, req->upload_size, 0, 0 };
    bool ok = true;
    CURLcode cc;
    int rc = 0;

    curl_easy_reset(c);
    errbuf[0] = '\0';
    hdrs = add_header(hdrs, &ok, "Accept", "application/json");
    hdrs = add_header(hdrs, &ok, "User-Agent", "rbdsnap/" RBDSNAP_VERSION);
    if (req->content_type)
        hdrs = add_header(hdrs, &ok, "Content-Type", req->content_type);
    if (req->token)
        hdrs = add_header(hdrs, &ok, "X-Auth-Token", req->token);
    if (req->subject_token)
        hdrs = add_header(hdrs, &ok, "X-Subject-Token", req->subject_token);
    if (req->read_cb)
        hdrs = add_header(hdrs, &ok, "Transfer-Encoding", "chunked");
    if (!ok) {
        curl_slist_free_all(hdrs);
        return -ENOMEM;
    }

    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)h->o.connect_timeout_s);
    if (req->read_cb) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)h->o.timeout_s);
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)h->o.timeout_s);
    }
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->o.insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->o.insecure ? 0L : 2L);
    if (h->o.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->o.ca_file);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);

    if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (req->read_cb) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        if (strcmp(req->method, "PUT"))
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "GET")) {
        if (strcmp(req->method, "POST"))
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT") ||
            !strcmp(req->method, "PATCH")) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(req->body ? req->body_len : 0));
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }

    cc = curl_easy_perform(c);
    *curl_code = (int)cc;
    *upload_err = up.err;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    } else {
        resp->status = 0;
        rc = -1;
    }
    /* the handle keeps pointers to our stack: drop them now */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

int rs_http_do(rs_http *h, const rs_http_req *req, rs_http_resp *resp, rs_error *err)
{
    char errbuf[CURL_ERROR_SIZE];
    bool streamed = req->read_cb != NULL;
    int max_attempts = streamed ? 1 : 1 + h->o.retries;
    uint64_t t0 = rs_now_ms();
    unsigned rnd = (unsigned)(rs_now_us() ^ (uintptr_t)pthread_self());
    int curl_code = 0, upload_err = 0, rc;
    int slot = -1;
    CURL *c;

    memset(resp, 0, sizeof(*resp));
    resp->retry_after_s = -1;

    for (int n = 1;; n++) {
        rs_http_resp_clear(resp);
        resp->attempts = n;
        c = pool_get(h, &slot);
        if (!c)
            return rs_error_set(err, h->shutdown ? -ECANCELED : -ENOMEM,
                                "%s %s: %s", req->method, req->url,
                                h->shutdown ? "client shut down" : "cannot create a curl handle");
        rc = attempt(h, c, req, resp, &curl_code, errbuf, &upload_err);
        pool_put(h, slot);
        if (rc == -ENOMEM)
            return rs_error_set(err, -ENOMEM, "%s %s: out of memory", req->method, req->url);
        rs_debug("method=%s url=%s attempt=%d status=%ld curl=%d dur_ms=%llu",
                 req->method, req->url, n, resp->status, curl_code,
                 (unsigned long long)(rs_now_ms() - t0));
        if (curl_code == CURLE_OK && resp->status >= 200 && resp->status < 300)
            return 0;
        if (n >= max_attempts ||
            !rs_http_should_retry(req->method, streamed, req->retry_unsafe_ok,
                                  curl_code, resp->status))
            break;
        unsigned delay = rs_http_backoff_ms(n, curl_code ? -1 : resp->retry_after_s,
                                            rand_r(&rnd));
        rs_warn("method=%s url=%s status=%ld curl=%d attempt=%d retry_in_ms=%u",
                req->method, req->url, resp->status, curl_code, n, delay);
        if (rs_http_sleep(h, delay) < 0)
            return rs_error_set(err, -ECANCELED, "%s %s: cancelled (shutting down)",
                                req->method, req->url);
    }

    const char *svc = req->service ? req->service : "server";
    char after[48] = "";
    if (resp->attempts > 1)
        snprintf(after, sizeof(after), " (after %d attempts)", resp->attempts);

    if (curl_code != CURLE_OK) {
        if (upload_err < 0)
            return rs_error_set(err, upload_err, "%s %s: upload source failed after %s: %s",
                                req->method, req->url,
                                upload_err == -ENODATA ? "ending early" :
                                upload_err == -EFBIG ? "giving more than the announced size" :
                                "an error", rs_errno_name(upload_err));
        rc = rs_http_curl_errno(curl_code);
        if (rc == -ECONNREFUSED || rc == -EHOSTUNREACH) {
            char base[512];
            const char *p = strstr(req->url, "://");
            p = p ? strchr(p + 3, '/') : NULL;
            snprintf(base, sizeof(base), "%.*s", p ? (int)(p - req->url) : 511, req->url);
            return rs_error_set(err, rc, "%s unreachable at %s: %s %s: %s%s", svc, base,
                                req->method, req->url,
                                errbuf[0] ? errbuf : curl_easy_strerror(curl_code), after);
        }
        return rs_error_set(err, rc, "%s %s: %s: %s%s", req->method, req->url,
                            curl_easy_strerror(curl_code), errbuf[0] ? errbuf : "-", after);
    }

    char msg[512];
    rs_http_error_message(resp->body, resp->len, resp->content_type, msg, sizeof(msg));
    rc = rs_http_status_errno(resp->status, req->conflict_errno);
    return rs_error_set(err, rc, "%s %s: HTTP %ld: %s%s", req->method, req->url,
                        resp->status, msg[0] ? msg : "(no message)", after);
}
