/*
 * fuzz_api_http.c - libFuzzer target: the daemon's HTTP API (service/api.c).
 *
 * Two layers per input:
 *   1. the JSON decoding and validation of a POST /v1/snapshots body
 *      (rs_api_validate_snapshot) on the whole input;
 *   2. if the input starts like a request line (an upper-case letter), the
 *      raw bytes are sent over a loopback TCP connection to a real API
 *      instance (libmicrohttpd + the daemon's routing, token check, body
 *      limits, job submission and job views) started once per process, with
 *      a job engine whose runner finishes at once and a token validator
 *      that accepts "tok-admin" (admin role), "tok-member" (no role) and
 *      refuses everything else.  The answer is read until the server
 *      closes or goes quiet; it must be an HTTP status line if anything
 *      came back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "service/service-priv.h"

static rs_api *api;
static rs_tasks *jobs;
static rs_metrics *metrics;
static int port;

static int run_job(void *opaque, rs_task *job, rs_error *err)
{
    rs_task_step_begin(job, "glance_create");
    rs_task_step_end(job, "glance_create", 0);
    return 0;
}

static int validate_token(void *opaque, const char *token, char *user_id, size_t ulen,
                          char *project_id, size_t plen, bool *has_role, int64_t *expires_at,
                          rs_error *err)
{
    if (strcmp(token, "tok-admin") && strcmp(token, "tok-member"))
        return rs_error_set(err, -EACCES, "token refused");
    snprintf(user_id, ulen, "u-%s", token + 4);
    snprintf(project_id, plen, "p-%s", token + 4);
    *has_role = strcmp(token, "tok-admin") == 0;
    *expires_at = 4102444800;   /* 2100 */
    return 0;
}

static int start_api(void)
{
    rs_error err = RS_ERROR_INIT;
    metrics = rs_metrics_new();
    rs_tasks_opts to = { .workers = 1, .queue_limit = 16, .keep_finished = 64,
                         .run = run_job, .metrics = metrics };
    if (rs_tasks_new(&to, &jobs, &err) < 0) {
        fprintf(stderr, "fuzz_api_http: tasks: %s\n", rs_error_msg(&err));
        return -1;
    }
    rs_api_opts ao = { .listen = "127.0.0.1", .port = 0, .max_body = 4096, .keystone = true,
                       .jobs = jobs, .metrics = metrics,
                       .hooks = { .validate_token = validate_token } };
    if (rs_api_start(&ao, &api, &err) < 0) {
        fprintf(stderr, "fuzz_api_http: api: %s\n", rs_error_msg(&err));
        return -1;
    }
    port = rs_api_port(api);
    return 0;
}

static void send_raw(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(fd);
        return;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    /* Read the answer.  HTTP/1.1 keeps the connection open after it (the
     * server does not act on our half-close at once), so stop when the
     * peer closes or stays quiet: 2 s for the first byte, 50 ms after. */
    char buf[4096], head[16] = "";
    char *resp = NULL;
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, got ? 50 : 2000) <= 0)
            break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        if (got < sizeof head - 1) {
            size_t k = (size_t)n < sizeof head - 1 - got ? (size_t)n : sizeof head - 1 - got;
            memcpy(head + got, buf, k);
        }
        char *nr = realloc(resp, got + (size_t)n + 1);
        if (!nr)
            break;
        resp = nr;
        memcpy(resp + got, buf, (size_t)n);
        got += (size_t)n;
        resp[got] = '\0';
        /* One complete answer (headers + Content-Length bytes) is enough. */
        const char *eoh = strstr(resp, "\r\n\r\n");
        const char *cl = strcasestr(resp, "\r\nContent-Length:");
        if (eoh && cl && cl < eoh &&
            got >= (size_t)(eoh + 4 - resp) + strtoul(cl + 17, NULL, 10))
            break;
    }
    free(resp);
    close(fd);
    if (got >= 8 && strncmp(head, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "fuzz_api_http: answer is not HTTP: %.15s\n", head);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rs_log_set_level(RS_LOG_ERROR);
    if (start_api() < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = NULL;
    rs_error err = RS_ERROR_INIT;
    if (rs_api_validate_snapshot((const char *)data, size, &req, &err) == 0)
        json_decref(req);
    else if (!rs_error_isset(&err))
        abort();

    if (size > 0 && data[0] >= 'A' && data[0] <= 'Z')
        send_raw(data, size);
    return 0;
}
