/*
 * notify.c - the sd_notify protocol without libsystemd: one datagram per
 * state change to the AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is an
 * abstract socket).  Used for READY=1, STOPPING=1, STATUS=... and
 * WATCHDOG=1 (interval from $WATCHDOG_USEC).
 */
#define RS_LOG_MODULE "notify"
#include "service/service-priv.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"

int rs_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    size_t plen = strlen(path);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (plen >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return -EINVAL;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    rs_autoclose int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    if (n < 0)
        return -errno;
    return 0;
}

uint64_t rs_notify_watchdog_usec(void)
{
    const char *s = getenv("WATCHDOG_USEC");
    if (!s || !*s)
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!end || *end)
        return 0;
    return v;
}
