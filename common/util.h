/*
 * util.h - small helpers with no dependencies: clocks, random ids, strings,
 * name validation.
 */
#ifndef RS_COMMON_UTIL_H
#define RS_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds / microseconds (for durations). */
uint64_t rs_now_ms(void);
uint64_t rs_now_us(void);
/* Wall clock, seconds since the epoch. */
int64_t rs_wall_time(void);
/* RFC 3339 UTC timestamp of @t into @buf (at least 21 bytes). */
void rs_format_time(int64_t t, char *buf, size_t len);

/* Fill @out with 2*@nbytes lowercase hex chars from the kernel's CSPRNG,
 * NUL-terminated (@out needs 2*nbytes+1 bytes).  0 or -errno. */
int rs_random_hex(char *out, size_t nbytes);
/* A random RFC 4122 version-4 UUID in canonical form (37 bytes). */
int rs_random_uuid(char out[37]);
bool rs_is_uuid(const char *s);

/* Name checks for user input: non-empty, at most @max bytes, no '/',
 * no "..", no control characters, no '@'. */
bool rs_name_is_safe(const char *s, size_t max);

/* snprintf into a fresh heap string; NULL on ENOMEM. */
char *rs_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool rs_str_has_prefix(const char *s, const char *prefix);
bool rs_str_has_suffix(const char *s, const char *suffix);

/* Sleep that returns early with -EINTR on a signal; 0 otherwise. */
int rs_sleep_ms(unsigned ms);

#endif
