/*
 * log.c - see log.h.  Each line is written with one write(2) so lines from
 * several threads never interleave.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = RS_LOG_INFO;
static volatile bool log_syslog;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void rs_log_set_level(rs_log_level level) { log_level = level; }
rs_log_level rs_log_get_level(void) { return (rs_log_level)log_level; }

int rs_log_level_parse(const char *s, rs_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (rs_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void rs_log_use_syslog(bool on, const char *ident)
{
    if (on)
        openlog(ident ? ident : "rbdsnap", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    else if (log_syslog)
        closelog();
    log_syslog = on;
}

bool rs_log_enabled(rs_log_level level) { return (int)level <= log_level; }

void rs_log_write(rs_log_level level, const char *module, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (log_syslog) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "level=%s module=%s %s", level_names[level], module, msg);
    } else {
        char line[2300];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(line, sizeof(line),
                         "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s %s\n",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                         tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                         level_names[level], module, msg);
        if (n > (int)sizeof(line) - 1) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
    errno = saved;
}
