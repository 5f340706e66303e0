/*
 * log.h - one logging path for the whole of rbdsnap.
 *
 * Lines are key=value friendly and go to stderr (journald picks them up) or,
 * when enabled, to syslog.  The level is checked before anything is
 * formatted, so debug logging costs one branch when it is off.
 *
 * Never pass a secret (cephx key, password, token) to these functions.
 */
#ifndef RS_COMMON_LOG_H
#define RS_COMMON_LOG_H

#include <stdbool.h>

typedef enum {
    RS_LOG_ERROR = 0,
    RS_LOG_WARN  = 1,
    RS_LOG_INFO  = 2,
    RS_LOG_DEBUG = 3,
} rs_log_level;

void rs_log_set_level(rs_log_level level);
rs_log_level rs_log_get_level(void);
/* Parse "error|warn|info|debug"; returns -EINVAL on anything else. */
int rs_log_level_parse(const char *s, rs_log_level *out);
void rs_log_use_syslog(bool on, const char *ident);
bool rs_log_enabled(rs_log_level level);
void rs_log_write(rs_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef RS_LOG_MODULE
#define RS_LOG_MODULE "rbdsnap"
#endif

#define RS_LOG(lvl, ...) \
    do { if (rs_log_enabled(lvl)) rs_log_write((lvl), RS_LOG_MODULE, __VA_ARGS__); } while (0)
#define rs_err(...)   RS_LOG(RS_LOG_ERROR, __VA_ARGS__)
#define rs_warn(...)  RS_LOG(RS_LOG_WARN,  __VA_ARGS__)
#define rs_info(...)  RS_LOG(RS_LOG_INFO,  __VA_ARGS__)
#define rs_debug(...) RS_LOG(RS_LOG_DEBUG, __VA_ARGS__)

#endif
