/*
 * test_service_unit.c - unit tests of service/ without any service: request
 * validation, the job engine (FIFO, per-instance serialisation, queue
 * limit, cancellation, shutdown), metrics rendering, sd_notify, and the
 * HTTP API driven over a real socket with fake hooks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "service/service-priv.h"

/* ---- validation ------------------------------------------------------------ */

static void test_validate_table(void **state)
{
    static const struct { const char *body; int rc; } cases[] = {
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"ok\"}", 0 },
        { "{\"domain\":\"inst-1\",\"name\":\"ok\",\"flatten\":\"deferred\",\"quiesce\":\"off\"}", 0 },
        { "{\"disks\":[\"vms/a_disk\",\"vms/a_disk.eph0\"],\"name\":\"ok\",\"properties\":{\"k\":\"v\"}}", 0 },
        { "{", -EINVAL },
        { "[]", -EINVAL },
        { "", -EINVAL },
        { "{\"name\":\"x\"}", -EINVAL },
        { "{\"instance_uuid\":\"nope\",\"name\":\"x\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"a/b\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"..\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"a\\nb\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"x\",\"flatten\":\"y\"}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"name\":\"x\",\"zzz\":1}", -EINVAL },
        { "{\"instance_uuid\":\"0b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60\",\"domain\":\"d\",\"name\":\"x\"}", -EINVAL },
        { "{\"disks\":[],\"name\":\"x\"}", -EINVAL },
        { "{\"disks\":[\"noslash\"],\"name\":\"x\"}", -EINVAL },
        { "{\"disks\":[\"vms/a@b\"],\"name\":\"x\"}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"x\",\"properties\":{\"instance_uuid\":\"x\"}}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"x\",\"properties\":{\"bad key\":\"x\"}}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"x\",\"name\":\"y\"}", -EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rs_error err = RS_ERROR_INIT;
        json_t *out = NULL;
        int rc = rs_api_validate_snapshot(cases[i].body, strlen(cases[i].body), &out, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d (%s)", i, cases[i].body, rc, cases[i].rc,
                     rs_error_msg(&err));
        if (rc == 0)
            assert_non_null(out);
        else
            assert_true(rs_error_isset(&err));
        json_decref(out);
    }
}

static void test_errno_status(void **state)
{
    assert_int_equal(rs_api_errno_status(-EINVAL), 400);
    assert_int_equal(rs_api_errno_status(-ENOENT), 404);
    assert_int_equal(rs_api_errno_status(-EBUSY), 409);
    assert_int_equal(rs_api_errno_status(-EAGAIN), 429);
    assert_int_equal(rs_api_errno_status(-ETIMEDOUT), 504);
    assert_int_equal(rs_api_errno_status(-EIO), 500);
}

/* ---- job engine ------------------------------------------------------------- */

typedef struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool release;               /* let blocked jobs go */
    int running_per_key[4];
    int max_per_key[4];
    int started;
    char order[64][40];
} fake;

static int fake_run(void *opaque, rs_task *t, rs_error *err)
{
    fake *f = opaque;
    const char *key = rs_task_key(t);
    /* A job cancelled while queued is let through at once (it touches
     * nothing): count it on a key of its own. */
    int k = rs_task_cancel_requested(t) ? 3 : key ? key[0] - 'a' : 0;
    pthread_mutex_lock(&f->lock);
    snprintf(f->order[f->started++ % 64], 40, "%s", rs_task_id(t));
    f->running_per_key[k]++;
    if (f->running_per_key[k] > f->max_per_key[k])
        f->max_per_key[k] = f->running_per_key[k];
    pthread_mutex_unlock(&f->lock);

    rs_task_step_begin(t, "work");
    pthread_mutex_lock(&f->lock);
    while (!f->release && !rs_task_cancel_requested(t) && !rs_task_stop_requested(t)) {
        /* Polling: shutdown and cancel only set flags. */
        pthread_mutex_unlock(&f->lock);
        usleep(1000);
        pthread_mutex_lock(&f->lock);
    }
    f->running_per_key[k]--;
    pthread_mutex_unlock(&f->lock);
    rs_task_step_end(t, "work", 0);
    if (rs_task_stop_requested(t))
        return -ESHUTDOWN;
    if (rs_task_cancel_requested(t)) {
        rs_task_set_state(t, RS_TASK_ROLLED_BACK);
        return rs_error_set(err, -ECANCELED, "cancelled");
    }
    return 0;
}

static void fake_release(fake *f)
{
    pthread_mutex_lock(&f->lock);
    f->release = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void fake_kick(fake *f)
{
    pthread_mutex_lock(&f->lock);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static int submit(rs_tasks *e, const char *id, const char *key)
{
    rs_error err = RS_ERROR_INIT;
    rs_task_submit s = { .id = id, .image_id = id, .key = key, .request = json_object() };
    return rs_tasks_submit(e, &s, NULL, &err);
}

static void wait_started(fake *f, int n)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&f->lock);
        int s = f->started;
        pthread_mutex_unlock(&f->lock);
        if (s >= n)
            return;
        usleep(1000);
    }
    fail_msg("only %d jobs started, want %d", f->started, n);
}

static void test_tasks_serialise_and_limit(void **state)
{
    fake f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    rs_metrics *m = rs_metrics_new();
    rs_tasks *e = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_tasks_opts o = { .workers = 4, .queue_limit = 3, .run = fake_run, .opaque = &f,
                        .metrics = m };
    assert_int_equal(rs_tasks_new(&o, &e, &err), 0);
    /* Two jobs of instance a, one of b: a1 and b1 run, a2 waits for a1. */
    assert_int_equal(submit(e, "a1", "a"), 0);
    assert_int_equal(submit(e, "a2", "a"), 0);
    assert_int_equal(submit(e, "b1", "b"), 0);
    wait_started(&f, 2);
    usleep(50000);
    pthread_mutex_lock(&f.lock);
    assert_int_equal(f.started, 2);
    assert_int_equal(f.max_per_key[0], 1);
    pthread_mutex_unlock(&f.lock);
    /* Queue: a2 waits; fill up to the limit (3 queued), then 429. */
    assert_int_equal(submit(e, "a3", "a"), 0);
    assert_int_equal(submit(e, "a4", "a"), 0);
    assert_int_equal(submit(e, "a5", "a"), -EAGAIN);
    assert_int_equal(submit(e, "a4", "c"), -EAGAIN);
    /* Cancel a queued job: it ends rolled_back without blocking. */
    assert_int_equal(rs_tasks_cancel(e, "a4", &err), 0);
    assert_int_equal(rs_tasks_cancel(e, "zz", &err), -ENOENT);
    fake_release(&f);
    assert_int_equal(rs_tasks_wait_idle(e, 10000), 0);
    unsigned counts[RS_TASK_NSTATES];
    rs_tasks_count(e, counts);
    assert_int_equal(counts[RS_TASK_DONE], 4);
    assert_int_equal(counts[RS_TASK_ROLLED_BACK], 1);
    assert_int_equal(f.max_per_key[0], 1);
    /* FIFO within an instance. */
    int pa1 = -1, pa2 = -1, pa3 = -1;
    for (int i = 0; i < f.started; i++) {
        if (!strcmp(f.order[i], "a1")) pa1 = i;
        if (!strcmp(f.order[i], "a2")) pa2 = i;
        if (!strcmp(f.order[i], "a3")) pa3 = i;
    }
    assert_true(pa1 < pa2 && pa2 < pa3);
    /* A finished job cannot be cancelled. */
    rs_error_clear(&err);
    assert_int_equal(rs_tasks_cancel(e, "a1", &err), -EBUSY);
    rs_task *t = rs_tasks_get(e, "a1");
    assert_non_null(t);
    json_t *o1 = rs_task_to_json(t);
    assert_string_equal(json_string_value(json_object_get(o1, "state")), "done");
    assert_int_equal(json_array_size(json_object_get(o1, "steps")), 1);
    json_decref(o1);
    rs_task_unref(t);
    json_t *l = rs_tasks_list_json(e, RS_TASK_ROLLED_BACK);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    assert_true(rs_metrics_value(m, "rbdsnap_jobs_finished_total", "state=\"done\"") == 4);
    assert_int_equal(rs_tasks_shutdown(e, 5), 0);
    rs_tasks_free(e);
    rs_metrics_free(m);
}

static void test_tasks_cancel_running_and_shutdown(void **state)
{
    fake f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    rs_tasks *e = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_tasks_opts o = { .workers = 2, .queue_limit = 10, .run = fake_run, .opaque = &f };
    assert_int_equal(rs_tasks_new(&o, &e, &err), 0);
    assert_int_equal(submit(e, "a1", "a"), 0);
    assert_int_equal(submit(e, "b1", "b"), 0);
    wait_started(&f, 2);
    assert_int_equal(rs_tasks_cancel(e, "a1", &err), 0);
    fake_kick(&f);
    for (int i = 0; i < 5000; i++) {
        rs_task *t = rs_tasks_get(e, "a1");
        rs_task_state st = rs_task_get_state(t);
        rs_task_unref(t);
        if (st == RS_TASK_ROLLED_BACK)
            break;
        usleep(1000);
    }
    rs_task *t = rs_tasks_get(e, "a1");
    assert_int_equal(rs_task_get_state(t), RS_TASK_ROLLED_BACK);
    rs_task_unref(t);
    /* Shutdown asks b1 to stop at a safe point; it is left running (for
     * the journal), new jobs are refused. */
    assert_int_equal(rs_tasks_shutdown(e, 5), 0);
    assert_int_equal(submit(e, "c1", "c"), -ESHUTDOWN);
    t = rs_tasks_get(e, "b1");
    assert_int_equal(rs_task_get_state(t), RS_TASK_RUNNING);
    rs_task_unref(t);
    rs_tasks_free(e);
}

/* ---- metrics ------------------------------------------------------------------ */

static void test_metrics_render(void **state)
{
    rs_metrics *m = rs_metrics_new();
    rs_metrics_counter_add(m, "rbdsnap_x_total", "X things", "op=\"a\"", 2);
    rs_metrics_counter_add(m, "rbdsnap_x_total", "X things", "op=\"a\"", 3);
    rs_metrics_gauge_set(m, "rbdsnap_g", "G", NULL, 7);
    rs_metrics_observe_step(m, "clone", 0.2);
    rs_metrics_observe_step(m, "clone", 20);
    char *text = rs_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE rbdsnap_x_total counter\n"));
    assert_non_null(strstr(text, "rbdsnap_x_total{op=\"a\"} 5\n"));
    assert_non_null(strstr(text, "rbdsnap_g 7\n"));
    assert_non_null(strstr(text, "rbdsnap_step_duration_seconds_bucket{step=\"clone\",le=\"0.25\"} 1\n"));
    assert_non_null(strstr(text, "rbdsnap_step_duration_seconds_bucket{step=\"clone\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "rbdsnap_step_duration_seconds_count{step=\"clone\"} 2\n"));
    free(text);
    rs_metrics_free(m);
}

/* ---- sd_notify ------------------------------------------------------------------ */

static void test_notify(void **state)
{
    char path[] = "/tmp/rbdsnap-notify-XXXXXX";
    int tfd = mkstemp(path);
    assert_true(tfd >= 0);
    close(tfd);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(rs_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(rs_notify("READY=1"), 0);
    char buf[64] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_int_equal(n, 7);
    assert_string_equal(buf, "READY=1");
    setenv("WATCHDOG_USEC", "30000000", 1);
    unsetenv("WATCHDOG_PID");
    assert_true(rs_notify_watchdog_usec() == 30000000);
    unsetenv("WATCHDOG_USEC");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    unlink(path);
}

/* ---- HTTP API over a real socket --------------------------------------------- */

static int http(int port, const char *req, char *resp, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(fd);
        return -1;
    }
    size_t off = 0, rl = strlen(req);
    while (off < rl) {
        ssize_t w = write(fd, req + off, rl - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    size_t got = 0;
    ssize_t r;
    while (got < len - 1 && (r = read(fd, resp + got, len - 1 - got)) > 0)
        got += (size_t)r;
    resp[got] = '\0';
    close(fd);
    int status = 0;
    sscanf(resp, "HTTP/1.%*d %d", &status);
    return status;
}

static int fake_validate(void *opaque, const char *token, char *user_id, size_t ulen,
                         char *project_id, size_t plen, bool *has_role, int64_t *expires_at,
                         rs_error *err)
{
    int *calls = opaque;
    (*calls)++;
    if (strcmp(token, "good") == 0 || strcmp(token, "member") == 0) {
        snprintf(user_id, ulen, "u");
        snprintf(project_id, plen, "p");
        *has_role = strcmp(token, "good") == 0;
        *expires_at = rs_wall_time() + 3600;
        return 0;
    }
    return rs_error_set(err, -EACCES, "invalid token");
}

static void test_api_auth_and_routes(void **state)
{
    fake f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
               .release = true };
    rs_tasks *e = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_tasks_opts to = { .workers = 1, .queue_limit = 10, .run = fake_run, .opaque = &f };
    assert_int_equal(rs_tasks_new(&to, &e, &err), 0);
    int calls = 0;
    rs_api *a = NULL;
    rs_api_opts ao = { .listen = "127.0.0.1", .port = 0, .max_body = 1024, .keystone = true,
                       .jobs = e, .hooks = { .opaque = &calls, .validate_token = fake_validate } };
    assert_int_equal(rs_api_start(&ao, &a, &err), 0);
    int port = rs_api_port(a);
    assert_true(port > 0);
    char resp[8192];
    const char *body = "{\"domain\":\"d1\",\"name\":\"n\"}";
    char req[1024];
    assert_int_equal(http(port, "GET /v1/health HTTP/1.0\r\n\r\n", resp, sizeof resp), 200);
    assert_int_equal(http(port, "GET /v1/jobs HTTP/1.0\r\n\r\n", resp, sizeof resp), 401);
    assert_int_equal(http(port, "GET /v1/jobs HTTP/1.0\r\nX-Auth-Token: bad\r\n\r\n", resp,
                          sizeof resp), 401);
    assert_int_equal(http(port, "GET /v1/jobs HTTP/1.0\r\nX-Auth-Token: member\r\n\r\n", resp,
                          sizeof resp), 403);
    assert_int_equal(http(port, "GET /v1/jobs HTTP/1.0\r\nX-Auth-Token: good\r\n\r\n", resp,
                          sizeof resp), 200);
    assert_int_equal(http(port, "GET /v1/jobs HTTP/1.0\r\nX-Auth-Token: good\r\n\r\n", resp,
                          sizeof resp), 200);
    assert_int_equal(calls, 3); /* member and good cached */
    snprintf(req, sizeof req, "POST /v1/snapshots HTTP/1.0\r\nX-Auth-Token: good\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    assert_int_equal(http(port, req, resp, sizeof resp), 202);
    assert_non_null(strstr(resp, "\"job_id\""));
    assert_int_equal(http(port, "DELETE /v1/snapshots HTTP/1.0\r\nX-Auth-Token: good\r\n\r\n",
                          resp, sizeof resp), 405);
    assert_int_equal(http(port, "GET /nope HTTP/1.0\r\n\r\n", resp, sizeof resp), 404);
    assert_int_equal(http(port, "POST /v1/snapshots HTTP/1.0\r\nX-Auth-Token: good\r\n"
                                "Content-Length: 5000\r\n\r\n", resp, sizeof resp), 413);
    assert_int_equal(rs_tasks_wait_idle(e, 5000), 0);
    rs_api_free(a);
    rs_tasks_shutdown(e, 5);
    rs_tasks_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_errno_status),
        cmocka_unit_test(test_tasks_serialise_and_limit),
        cmocka_unit_test(test_tasks_cancel_running_and_shutdown),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_api_auth_and_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
