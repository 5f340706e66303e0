/*
 * client.c - a minimal HTTP/1.0 client for rbdsnapd's API, over TCP or the
 * UNIX socket, used by the CLI's job commands.  No curl here: only glance/
 * includes curl, and the daemon's API needs nothing beyond one request per
 * connection ("Connection: close", read to EOF).
 */
#define RS_LOG_MODULE "client"
#include "service/service.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"

static int connect_endpoint(const char *ep, int timeout_s, rs_error *err)
{
    struct timeval tv = { .tv_sec = timeout_s > 0 ? timeout_s : 30 };
    if (rs_str_has_prefix(ep, "unix:") || ep[0] == '/') {
        const char *path = ep[0] == '/' ? ep : ep + 5;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path)
            return rs_error_set(err, -ENAMETOOLONG, "%s: socket path too long", path);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return rs_error_set(err, -errno, "socket: %m");
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            int rc = rs_error_set(err, -errno, "rbdsnapd at %s: %m", path);
            close(fd);
            return rc;
        }
        return fd;
    }
    if (!rs_str_has_prefix(ep, "http://"))
        return rs_error_set(err, -EINVAL, "%s: endpoint must be http://HOST:PORT or a UNIX "
                                          "socket path (https is not supported here)", ep);
    char host[256];
    const char *hp = ep + 7;
    size_t n = strcspn(hp, "/");
    if (n == 0 || n >= sizeof host)
        return rs_error_set(err, -EINVAL, "%s: bad endpoint", ep);
    memcpy(host, hp, n);
    host[n] = '\0';
    char *colon = strrchr(host, ':');
    const char *port = "8787";
    if (colon) {
        *colon = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0)
        return rs_error_set(err, -EHOSTUNREACH, "%s: %s", ep, gai_strerror(g));
    int fd = -1, rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return rs_error_set(err, rc, "rbdsnapd at %s: %s", ep, strerror(-rc));
    return fd;
}

int rs_daemon_call(const char *endpoint, const char *token, const char *method,
                   const char *path, const char *body, int timeout_s, int *status, char **resp,
                   rs_error *err)
{
    *resp = NULL;
    *status = 0;
    rs_autoclose int fd = connect_endpoint(endpoint, timeout_s, err);
    if (fd < 0)
        return fd;
    rs_autofree char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    char clen[64] = "";
    if (body)
        snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", blen);
    req = rs_strdup_printf("%s %s HTTP/1.0\r\nHost: rbdsnapd\r\nAccept: application/json\r\n"
                           "Connection: close\r\n%s%s%s%s%s\r\n",
                           method, path, token ? "X-Auth-Token: " : "", token ? token : "",
                           token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "",
                           clen);
    if (!req)
        return rs_error_set(err, -ENOMEM, "out of memory");
    const char *parts[2] = { req, body };
    size_t lens[2] = { strlen(req), blen };
    for (int i = 0; i < 2; i++) {
        size_t off = 0;
        while (parts[i] && off < lens[i]) {
            ssize_t w = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (w < 0)
                return rs_error_set(err, -errno, "%s %s %s: send: %m", method, endpoint, path);
            off += (size_t)w;
        }
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb) {
                free(buf);
                return rs_error_set(err, -ENOMEM, "out of memory");
            }
            buf = nb;
            cap += 65536;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r == 0)
            break;
        if (r < 0) {
            int rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
            free(buf);
            return rs_error_set(err, rc, "%s %s%s: no answer (%s)", method, endpoint, path,
                                strerror(-rc));
        }
        len += (size_t)r;
        if (len > 64u << 20) {
            free(buf);
            return rs_error_set(err, -EFBIG, "%s %s%s: answer too large", method, endpoint, path);
        }
    }
    if (!buf) {
        return rs_error_set(err, -EBADMSG, "%s %s%s: empty answer", method, endpoint, path);
    }
    buf[len] = '\0';
    int st = 0;
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1 || !hdr_end) {
        free(buf);
        return rs_error_set(err, -EBADMSG, "%s %s%s: not an HTTP answer", method, endpoint, path);
    }
    char *b = strdup(hdr_end + 4);
    free(buf);
    if (!b)
        return rs_error_set(err, -ENOMEM, "out of memory");
    *status = st;
    *resp = b;
    return 0;
}
