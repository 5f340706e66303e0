/*
 * failpoint.c - see failpoint.h.
 *
 * The active set is a small immutable array swapped under a mutex; the fast
 * path when nothing is configured is one atomic load.
 */
#include "common/failpoint.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FP_MAX 32
#define FP_NAME_MAX 96

enum fp_kind { FP_OFF, FP_ERROR, FP_EXIT, FP_SLEEP };

struct fp {
    char name[FP_NAME_MAX];
    enum fp_kind kind;
    int arg;            /* errno, exit code, or milliseconds */
    unsigned nth;       /* 0: always; N: only the Nth hit */
    unsigned hits;
};

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fp fp_set[FP_MAX];
static int fp_count;
static atomic_int fp_active;      /* fp_count != 0 */
static pthread_once_t fp_env_once = PTHREAD_ONCE_INIT;

static int parse_errno(const char *s)
{
    static const struct { const char *name; int val; } names[] = {
        { "EIO", EIO }, { "ENOENT", ENOENT }, { "EEXIST", EEXIST },
        { "EBUSY", EBUSY }, { "ENOSPC", ENOSPC }, { "ETIMEDOUT", ETIMEDOUT },
        { "EACCES", EACCES }, { "EINVAL", EINVAL }, { "ECONNREFUSED", ECONNREFUSED },
        { "EDQUOT", EDQUOT }, { "ENOMEM", ENOMEM }, { "EAGAIN", EAGAIN },
        { "ESHUTDOWN", ESHUTDOWN }, { "ECANCELED", ECANCELED },
    };
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && *end == '\0') {
        /* -EIO or EIO: a magnitude in 1..4095 (never negate LONG_MIN) */
        if (v > -4096 && v < 0)
            v = -v;
        return (v > 0 && v < 4096) ? (int)v : -1;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].val;
    return -1;
}

static int parse_one(char *item, struct fp *fp)
{
    char *eq = strchr(item, '=');
    char *action, *star, *colon;

    memset(fp, 0, sizeof(*fp));
    if (!eq || eq == item || (size_t)(eq - item) >= FP_NAME_MAX)
        return -EINVAL;
    *eq = '\0';
    snprintf(fp->name, sizeof(fp->name), "%s", item);
    action = eq + 1;

    star = strchr(action, '*');
    if (star) {
        char *end;
        long n = strtol(action, &end, 10);
        if (end != star || n <= 0)
            return -EINVAL;
        fp->nth = (unsigned)n;
        action = star + 1;
    }
    colon = strchr(action, ':');
    if (colon)
        *colon++ = '\0';

    if (strcmp(action, "off") == 0) {
        fp->kind = FP_OFF;
    } else if (strcmp(action, "error") == 0) {
        fp->kind = FP_ERROR;
        fp->arg = colon ? parse_errno(colon) : EIO;
        if (fp->arg < 0)
            return -EINVAL;
    } else if (strcmp(action, "exit") == 0) {
        fp->kind = FP_EXIT;
        fp->arg = colon ? atoi(colon) : 99;
    } else if (strcmp(action, "sleep") == 0) {
        fp->kind = FP_SLEEP;
        if (!colon)
            return -EINVAL;
        fp->arg = atoi(colon);
        if (fp->arg < 0)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int parse_spec(const char *spec, struct fp *parsed, int *count)
{
    int n = 0;

    if (spec && *spec) {
        char *copy = strdup(spec), *save = NULL, *tok;
        if (!copy)
            return -ENOMEM;
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (!*tok)
                continue;
            if (n == FP_MAX || parse_one(tok, &parsed[n]) < 0) {
                free(copy);
                return -EINVAL;
            }
            n++;
        }
        free(copy);
    }
    *count = n;
    return 0;
}

int rs_failpoint_validate(const char *spec)
{
    struct fp parsed[FP_MAX];
    int n;
    return parse_spec(spec, parsed, &n);
}

int rs_failpoint_configure(const char *spec)
{
    struct fp parsed[FP_MAX];
    int n = 0;
    int rc = parse_spec(spec, parsed, &n);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&fp_lock);
    memcpy(fp_set, parsed, sizeof(struct fp) * (size_t)n);
    fp_count = n;
    atomic_store(&fp_active, n > 0);
    pthread_mutex_unlock(&fp_lock);
    return 0;
}

static void load_env(void)
{
    const char *spec = getenv("RBDSNAP_FAILPOINTS");
    if (spec && *spec && rs_failpoint_configure(spec) < 0)
        rs_warn("msg=\"ignoring malformed RBDSNAP_FAILPOINTS\"");
}

int rs_failpoint(const char *name)
{
    enum fp_kind kind = FP_OFF;
    int arg = 0;

    pthread_once(&fp_env_once, load_env);
    if (!atomic_load(&fp_active))
        return 0;

    pthread_mutex_lock(&fp_lock);
    for (int i = 0; i < fp_count; i++) {
        struct fp *fp = &fp_set[i];
        if (strcmp(fp->name, name) != 0)
            continue;
        fp->hits++;
        if (fp->nth == 0 || fp->hits == fp->nth) {
            kind = fp->kind;
            arg = fp->arg;
        }
        break;
    }
    pthread_mutex_unlock(&fp_lock);

    switch (kind) {
    case FP_OFF:
        return 0;
    case FP_ERROR:
        rs_warn("failpoint=%s action=error rc=%d", name, -arg);
        return -arg;
    case FP_EXIT:
        rs_warn("failpoint=%s action=exit code=%d", name, arg);
        _exit(arg);
    case FP_SLEEP: {
        struct timespec ts = { arg / 1000, (long)(arg % 1000) * 1000000L };
        rs_info("failpoint=%s action=sleep ms=%d", name, arg);
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        return 0;
    }
    }
    return 0;
}

unsigned rs_failpoint_hits(const char *name)
{
    unsigned hits = 0;
    pthread_mutex_lock(&fp_lock);
    for (int i = 0; i < fp_count; i++)
        if (strcmp(fp_set[i].name, name) == 0)
            hits = fp_set[i].hits;
    pthread_mutex_unlock(&fp_lock);
    return hits;
}
