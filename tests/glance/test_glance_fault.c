/*
 * Fault tests: the real glance/ client against tests/glance/fault_server.py
 * on 127.0.0.1 (a free port), which answers 500/503, drops connections,
 * sends bad JSON, stalls past the timeout, answers 429 with Retry-After and
 * plays a small Keystone.  Checks that only safe requests are retried, that
 * errors are clear, and (in the sanitizer build) that nothing leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "common/log.h"
#include "common/util.h"
#include "glance/glance-priv.h"

#ifndef FAULT_SERVER
#error FAULT_SERVER must name tests/glance/fault_server.py
#endif

#define SECRET "pw-s3cret-value"

static pid_t server_pid = -1;
static int port;
static char base[64];

static size_t collect(char *d, size_t s, size_t n, void *p)
{
    char **buf = p;
    size_t old = *buf ? strlen(*buf) : 0;
    char *nb = realloc(*buf, old + s * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + old, d, s * n);
    nb[old + s * n] = '\0';
    *buf = nb;
    return s * n;
}

/* A control request to the server, straight through curl. */
static json_t *ctl(const char *method, const char *path)
{
    char url[512];
    char *body = NULL;
    CURL *c = curl_easy_init();
    json_t *j;

    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (!strcmp(method, "POST"))
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    j = json_loads(body ? body : "", 0, NULL);
    free(body);
    assert_non_null(j);
    return j;
}

static long hits(const char *method, const char *path)
{
    char q[512];
    char *k = rs_strdup_printf("%s %s", method, path);
    char *e = rs_percent_quote(k);
    snprintf(q, sizeof(q), "/_hits?key=%s", e);
    free(k);
    free(e);
    json_t *j = ctl("GET", q);
    long n = (long)json_integer_value(json_object_get(j, "n"));
    json_decref(j);
    return n;
}

static long stat_of(const char *key)
{
    json_t *j = ctl("GET", "/_stats");
    long n = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return n;
}

static void reset(void)
{
    json_decref(ctl("POST", "/_reset"));
}

static int server_start(void **state)
{
    int pfd[2];
    char line[64] = "";
    FILE *f;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pipe(pfd) < 0)
        return -1;
    server_pid = fork();
    if (server_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl("/usr/bin/python3", "python3", FAULT_SERVER, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    f = fdopen(pfd[0], "r");
    if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "PORT %d", &port) != 1) {
        fprintf(stderr, "fault server did not start: '%s'\n", line);
        return -1;
    }
    fclose(f);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    return 0;
}

static int server_stop(void **state)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
    }
    curl_global_cleanup();
    return 0;
}

static rs_glance *client(int timeout_s, int retries)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_opts o = { .url = base, .connect_timeout_s = 2, .timeout_s = timeout_s,
                         .retries = retries, .pool_size = 4 };
    rs_glance *g = rs_glance_new(&o, &err);
    if (!g)
        fail_msg("rs_glance_new: %s", err.msg);
    reset();
    return g;
}

static void test_get_ok(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "ok", &img, &err), 0);
    assert_string_equal(img->id, "ok");
    assert_string_equal(img->status, "active");
    assert_int_equal(img->size, 1024);
    assert_string_equal(rs_glance_image_prop(img, "image_type"), "snapshot");
    rs_glance_image_free(img);
    assert_int_equal(hits("GET", "/v2/images/ok"), 1);
    rs_glance_free(g);
}

static void test_5xx_retried_for_get(void **state)
{
    rs_glance *g = client(5, 2);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;
    char want[128];

    assert_int_equal(rs_glance_image_get(g, "e500", &img, &err), -EIO);
    assert_null(img);
    assert_int_equal(hits("GET", "/v2/images/e500"), 3);
    snprintf(want, sizeof(want), "GET %s/v2/images/e500: HTTP 500: ", base);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "boom: database is on fire"));
    assert_non_null(strstr(err.msg, "after 3 attempts"));

    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_get(g, "flaky503", &img, &err), 0);
    assert_string_equal(img->id, "flaky503");
    rs_glance_image_free(img);
    assert_int_equal(hits("GET", "/v2/images/flaky503"), 2);
    rs_glance_free(g);
}

static void test_429_retry_after(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "r429", &img, &err), 0);
    rs_glance_image_free(img);
    assert_int_equal(hits("GET", "/v2/images/r429"), 2);
    rs_glance_free(g);
}

static void test_dropped_connection(void **state)
{
    rs_glance *g = client(5, 2);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "drop", &img, &err), -ECONNRESET);
    assert_int_equal(hits("GET", "/v2/images/drop"), 3);
    assert_non_null(strstr(err.msg, "/v2/images/drop"));
    rs_glance_free(g);
}

static void test_bad_json(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "badjson", &img, &err), -EBADMSG);
    assert_null(img);
    assert_non_null(strstr(err.msg, "bad JSON"));
    assert_non_null(strstr(err.msg, "GET http://127.0.0.1:"));
    assert_non_null(strstr(err.msg, "/v2/images/badjson: HTTP 200"));
    assert_int_equal(hits("GET", "/v2/images/badjson"), 1);
    rs_glance_free(g);
}

static void test_stall_timeout(void **state)
{
    rs_glance *g = client(1, 3);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "stall", &img, &err), -ETIMEDOUT);
    assert_int_equal(hits("GET", "/v2/images/stall"), 1);   /* a timeout is not retried */
    assert_non_null(strstr(err.msg, "GET "));
    assert_non_null(strstr(err.msg, "/v2/images/stall"));
    rs_glance_free(g);
}

static void test_4xx_mapping(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    assert_int_equal(rs_glance_image_get(g, "missing", &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "HTTP 404: 404 Not Found: No image found with ID missing"));
    assert_int_equal(hits("GET", "/v2/images/missing"), 1);
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_get(g, "forbidden", &img, &err), -EACCES);
    assert_non_null(strstr(err.msg, "not authorized to complete get_image"));
    assert_int_equal(hits("GET", "/v2/images/forbidden"), 1);
    rs_glance_free(g);
}

static void test_create(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_kv extra[] = { { "extra_key", "extra value" } };
    rs_glance_image_spec spec = { .name = "fail500", .snapshot = true, .instance_uuid = "inst-1",
                                  .extra = extra, .nextra = 1 };
    char *id = NULL;

    /* POST is not idempotent: a 500 is final */
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), -EIO);
    assert_null(id);
    assert_int_equal(hits("POST", "/v2/images"), 1);
    assert_non_null(strstr(err.msg, "POST "));
    assert_non_null(strstr(err.msg, "create exploded"));

    rs_error_clear(&err);
    spec.name = "dup";
    spec.id = "0d3c8a56-1111-4222-8333-944455556666";
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));
    rs_error_clear(&err);
    spec.name = "big";
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), -EFBIG);
    rs_error_clear(&err);
    spec.name = "bad";
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), -EINVAL);
    rs_error_clear(&err);
    spec.id = "not-a-uuid";
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), -EINVAL);
    rs_error_clear(&err);

    spec.name = "good";
    spec.id = "0d3c8a56-1111-4222-8333-944455556666";
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), 0);
    assert_string_equal(id, spec.id);
    free(id);
    rs_glance_free(g);
}

static void test_locations(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    char ver[16];

    assert_int_equal(rs_glance_discover(g, &err), 0);
    assert_true(rs_glance_has_locations_api(g));
    rs_glance_api_version(g, ver, sizeof(ver));
    assert_string_equal(ver, "2.17");

    /* 403 from the new API: fall back to PATCH; PATCH 503 is not retried */
    assert_int_equal(rs_glance_image_add_location(g, "p503", "rbd://f/images/p503/snap", &err), -EIO);
    assert_int_equal(hits("POST", "/v2/images/p503/locations"), 1);
    assert_int_equal(hits("PATCH", "/v2/images/p503"), 1);
    assert_non_null(strstr(err.msg, "PATCH "));
    assert_non_null(strstr(err.msg, "503"));
    assert_false(rs_glance_has_locations_api(g));

    /* afterwards straight to PATCH */
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_add_location(g, "x1", "rbd://f/images/x1/snap", &err), 0);
    assert_int_equal(hits("POST", "/v2/images/x1/locations"), 0);
    assert_int_equal(hits("PATCH", "/v2/images/x1"), 1);
    rs_glance_free(g);

    /* a server that accepts the new API: no PATCH; discovery is lazy */
    g = client(5, 3);
    assert_int_equal(rs_glance_image_add_location(g, "locok", "rbd://f/images/locok/snap", &err), 0);
    assert_int_equal(hits("GET", "/versions"), 1);
    assert_int_equal(hits("POST", "/v2/images/locok/locations"), 1);
    assert_int_equal(hits("PATCH", "/v2/images/locok"), 0);
    rs_glance_free(g);
}

static void test_delete(void **state)
{
    rs_glance *g = client(5, 2);
    rs_error err = RS_ERROR_INIT;

    assert_int_equal(rs_glance_image_delete(g, "inuse", &err), -EBUSY);
    assert_int_equal(hits("DELETE", "/v2/images/inuse"), 1);
    assert_non_null(strstr(err.msg, "in use by a clone"));
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_delete(g, "d503", &err), -EIO);
    assert_int_equal(hits("DELETE", "/v2/images/d503"), 3);   /* DELETE is idempotent */
    assert_non_null(strstr(err.msg, "503 Service Unavailable: The server is busy."));
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_delete(g, "gone", &err), 0);
    rs_glance_free(g);
}

static void test_refused(void **state)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char url[64], want[96];
    rs_error err = RS_ERROR_INIT;

    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);   /* nothing listens there now */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    rs_glance_opts o = { .url = url, .connect_timeout_s = 2, .timeout_s = 2, .retries = 1 };
    rs_glance *g = rs_glance_new(&o, &err);
    assert_non_null(g);
    rs_glance_image *img = NULL;
    assert_int_equal(rs_glance_image_get(g, "x", &img, &err), -ECONNREFUSED);
    snprintf(want, sizeof(want), "Glance unreachable at %s", url);
    assert_non_null(strstr(err.msg, want));
    rs_error_clear(&err);
    rs_glance_image_spec spec = { .name = "n" };
    assert_int_equal(rs_glance_image_create(g, &spec, NULL, &err), -ECONNREFUSED);
    rs_glance_free(g);
}

static void test_tls_errors(void **state)
{
    char url[96];
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    /* TLS to a plain-HTTP server, verification on, a CA file that does
     * not exist: a clear -EPROTO, not retried, never "success" */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
    rs_glance_opts o = { .url = url, .connect_timeout_s = 2, .timeout_s = 2, .retries = 3,
                         .ca_file = "/nonexistent/ca.pem" };
    rs_glance *g = rs_glance_new(&o, &err);
    assert_non_null(g);
    assert_int_equal(rs_glance_image_get(g, "ok", &img, &err), -EPROTO);
    assert_non_null(strstr(err.msg, url));
    assert_null(strstr(err.msg, "attempts"));
    rs_glance_free(g);

    rs_error_clear(&err);
    o.ca_file = NULL;
    o.insecure = true;
    g = rs_glance_new(&o, &err);
    assert_non_null(g);
    assert_int_equal(rs_glance_image_get(g, "ok", &img, &err), -EPROTO);
    assert_null(img);
    rs_glance_free(g);
}

struct src {
    int64_t left;
    int64_t fail_at;    /* -1: never */
    uint32_t x;
};

static ssize_t gen(void *ctx, char *buf, size_t len)
{
    struct src *s = ctx;
    if (s->fail_at >= 0 && s->left <= s->fail_at)
        return -EIO;
    if ((int64_t)len > s->left)
        len = (size_t)s->left;
    for (size_t i = 0; i < len; i++) {
        s->x = s->x * 1103515245u + 12345u;
        buf[i] = (char)(s->x >> 16);
    }
    s->left -= (int64_t)len;
    return (ssize_t)len;
}

static void test_upload(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    const int64_t size = 20 << 20;
    struct src s = { size, -1, 1 };

    assert_int_equal(rs_glance_image_upload(g, "u1", gen, &s, size, &err), 0);
    assert_int_equal(stat_of("uploaded"), size);
    s = (struct src){ 3 << 20, -1, 1 };
    assert_int_equal(rs_glance_image_upload(g, "u2", gen, &s, -1, &err), 0);
    assert_int_equal(stat_of("uploaded"), 3 << 20);

    /* the source ends early */
    s = (struct src){ 1 << 20, -1, 1 };
    assert_int_equal(rs_glance_image_upload(g, "u3", gen, &s, 2 << 20, &err), -ENODATA);
    assert_non_null(strstr(err.msg, "ending early"));
    /* the source gives more than announced */
    rs_error_clear(&err);
    s = (struct src){ 2 << 20, -1, 1 };
    assert_int_equal(rs_glance_image_upload(g, "u4", gen, &s, 1 << 20, &err), -EFBIG);
    /* the source fails */
    rs_error_clear(&err);
    s = (struct src){ 4 << 20, 1 << 20, 1 };
    assert_int_equal(rs_glance_image_upload(g, "u5", gen, &s, 4 << 20, &err), -EIO);
    assert_non_null(strstr(err.msg, "upload source failed"));
    /* a 500 after a streamed body is never retried */
    rs_error_clear(&err);
    s = (struct src){ 1 << 20, -1, 1 };
    assert_int_equal(rs_glance_image_upload(g, "up500", gen, &s, 1 << 20, &err), -EIO);
    assert_int_equal(hits("PUT", "/v2/images/up500/file"), 1);
    assert_non_null(strstr(err.msg, "store failed"));
    rs_glance_free(g);
}

static int count_cb(void *ctx, const rs_glance_image *img)
{
    int *n = ctx;
    (*n)++;
    return (*n == 4 && n[1]) ? 1 : 0;
}

static void test_list(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;
    rs_kv props[] = { { "image_type", "snapshot" } };
    rs_glance_filter f = { .name = "a b&c", .props = props, .nprops = 1, .limit = 3 };
    int n[2] = { 0, 0 };

    assert_int_equal(rs_glance_image_list(g, &f, count_cb, n, &err), 0);
    assert_int_equal(n[0], 7);
    assert_int_equal(hits("GET", "/v2/images"), 3);
    n[0] = 0;
    n[1] = 1;   /* stop after 4 */
    assert_int_equal(rs_glance_image_list(g, &f, count_cb, n, &err), 0);
    assert_int_equal(n[0], 4);
    rs_glance_free(g);
}

static void test_wait(void **state)
{
    rs_glance *g = client(5, 3);
    rs_error err = RS_ERROR_INIT;

    assert_int_equal(rs_glance_image_wait_status(g, "queued-then-active", "active", 30, &err), 0);
    assert_int_equal(hits("GET", "/v2/images/queued-then-active"), 3);
    assert_int_equal(rs_glance_image_wait_status(g, "killed", "active", 30, &err), -EIO);
    assert_non_null(strstr(err.msg, "killed"));
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_wait_status(g, "ok", "saving", 1, &err), -ETIMEDOUT);
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_wait_status(g, "nope", "deleted", 1, &err), 0);
    rs_glance_free(g);
}

/* test_keystone captures stderr (our log) to prove no secret is written;
 * if it fails half-way, this teardown restores stderr and shows the
 * captured text, which holds cmocka's failure message. */
static char logpath[] = "/tmp/glance-fault-log-XXXXXX";
static int logfd = -1, saved_stderr = -1;

static int restore_stderr(void **state)
{
    if (saved_stderr >= 0) {
        char buf[4096];
        ssize_t n;
        fflush(stderr);
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
        rs_log_set_level(RS_LOG_INFO);
        for (off_t off = 0; (n = pread(logfd, buf, sizeof(buf), off)) > 0; off += n)
            fwrite(buf, 1, (size_t)n, stderr);
    }
    if (logfd >= 0) {
        close(logfd);
        unlink(logpath);
        logfd = -1;
    }
    return 0;
}

static void test_keystone(void **state)
{
    char ks[96];
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    saved_stderr = dup(2);
    rs_log_set_level(RS_LOG_DEBUG);
    dup2(logfd, 2);

    snprintf(ks, sizeof(ks), "%s/v3", base);
    rs_glance_opts o = { .auth = "password", .auth_url = ks, .username = "alice",
                         .password = SECRET, .project_name = "demo", .retries = 1,
                         .timeout_s = 5, .region = "RegionOne" };
    rs_glance *g = rs_glance_new(&o, &err);
    assert_non_null(g);
    reset();

    char ep[128];
    assert_int_equal(rs_glance_endpoint(g, ep, sizeof(ep), &err), 0);
    assert_string_equal(ep, base);   /* from the catalog, public, /v2/ stripped */
    assert_int_equal(rs_glance_priv_tokens_issued(g), 1);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), 0);
    rs_glance_image_free(img);
    assert_int_equal(rs_glance_priv_tokens_issued(g), 1);   /* cached */

    /* a token the server refuses: one 401, one renewal, success */
    rs_glance_priv_set_token(g, "bogus-token", rs_wall_time() + 3600);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), 0);
    rs_glance_image_free(img);
    assert_int_equal(rs_glance_priv_tokens_issued(g), 2);
    assert_int_equal(hits("GET", "/v2/images/authed"), 3);

    /* a token about to expire is renewed before use */
    rs_glance_priv_set_token(g, "old-token", rs_wall_time() + 120);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), 0);
    rs_glance_image_free(img);
    assert_int_equal(rs_glance_priv_tokens_issued(g), 3);
    assert_int_equal(hits("GET", "/v2/images/authed"), 4);

    /* validation */
    rs_token_info ti;
    assert_int_equal(rs_keystone_validate_token(g, "user-token-1", &ti, &err), 0);
    assert_string_equal(ti.user_id, "u-123");
    assert_string_equal(ti.project_id, "p-456");
    assert_true(rs_token_info_has_role(&ti, "admin"));
    assert_true(ti.expires_at > rs_wall_time());
    rs_token_info_clear(&ti);
    assert_int_equal(rs_keystone_validate_token(g, "forged", &ti, &err), -EACCES);
    assert_non_null(strstr(err.msg, "not valid"));
    assert_null(strstr(err.msg, "forged"));
    rs_error_clear(&err);
    /* our own token went stale: renewed once, validation still works */
    rs_glance_priv_set_token(g, "bogus-token", rs_wall_time() + 3600);
    assert_int_equal(rs_keystone_validate_token(g, "user-token-1", &ti, &err), 0);
    rs_token_info_clear(&ti);
    assert_int_equal(rs_glance_priv_tokens_issued(g), 4);
    rs_glance_free(g);

    /* wrong password: EACCES, no retry storm, no secret anywhere */
    o.password = "wrong-" SECRET;
    g = rs_glance_new(&o, &err);
    assert_non_null(g);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), -EACCES);
    assert_non_null(strstr(err.msg, "/v3/auth/tokens"));
    assert_null(strstr(err.msg, SECRET));
    rs_glance_free(g);
    rs_error_clear(&err);

    /* application credentials */
    rs_glance_opts a = { .auth = "application_credential", .auth_url = base,
                         .app_cred_id = "ac-1", .app_cred_secret = SECRET, .timeout_s = 5 };
    g = rs_glance_new(&a, &err);
    assert_non_null(g);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), 0);
    rs_glance_image_free(img);
    rs_glance_free(g);

    /* no catalog entry for the interface asked */
    rs_glance_opts bad = o;
    bad.password = SECRET;
    bad.interface = "admin";
    g = rs_glance_new(&bad, &err);
    assert_non_null(g);
    assert_int_equal(rs_glance_image_get(g, "authed", &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "interface=admin"));
    rs_glance_free(g);

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    rs_log_set_level(RS_LOG_INFO);
    char buf[65536];
    ssize_t n = pread(logfd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "token issued"));
    assert_null(strstr(buf, SECRET));
    assert_null(strstr(buf, "tok-"));
    assert_null(strstr(buf, "bogus-token"));
}

struct thr {
    rs_glance *g;
    int failures;
};

static void *worker(void *p)
{
    struct thr *t = p;
    for (int i = 0; i < 25; i++) {
        rs_error err = RS_ERROR_INIT;
        rs_glance_image *img = NULL;
        if (rs_glance_image_get(t->g, "ok", &img, &err) < 0 || strcmp(img->id, "ok"))
            t->failures++;
        rs_glance_image_free(img);
    }
    return NULL;
}

static void test_threads_share_connections(void **state)
{
    rs_glance *g = client(5, 3);   /* pool of 4 */
    pthread_t th[8];
    struct thr t[8];
    long before = stat_of("connections");

    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){ g, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker, &t[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
    assert_int_equal(hits("GET", "/v2/images/ok"), 200);
    /* 200 requests over at most 4 pooled connections (hits() and this
     * stat_of() opened one each) */
    long used = stat_of("connections") - before - 2;
    assert_in_range(used, 1, 4);
    rs_glance_free(g);
}

static void *waiter(void *p)
{
    rs_glance *g = p;
    rs_error err = RS_ERROR_INIT;
    return (void *)(intptr_t)rs_glance_image_wait_status(g, "ok", "saving", 600, &err);
}

static void test_shutdown_interrupts_wait(void **state)
{
    rs_glance *g = client(5, 3);
    pthread_t th;
    void *rv;

    assert_int_equal(pthread_create(&th, NULL, waiter, g), 0);
    while (hits("GET", "/v2/images/ok") < 2)
        rs_sleep_ms(50);
    rs_glance_shutdown(g);
    pthread_join(th, &rv);
    assert_int_equal((int)(intptr_t)rv, -ECANCELED);
    rs_glance_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_ok),
        cmocka_unit_test(test_5xx_retried_for_get),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_dropped_connection),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_stall_timeout),
        cmocka_unit_test(test_4xx_mapping),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_locations),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_wait),
        cmocka_unit_test_teardown(test_keystone, restore_stderr),
        cmocka_unit_test(test_threads_share_connections),
        cmocka_unit_test(test_shutdown_interrupts_wait),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
