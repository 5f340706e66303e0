/*
 * progress.c - progress bar / progress lines, see progress.h.
 */
#include "cli/progress.h"

#include "common/failpoint.h"
#include "common/util.h"
#include "rbd/ops.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rs_progress {
    FILE *f;
    rs_progress_mode mode;
    char *label;
    uint64_t bytes;
    uint64_t start_us, last_draw_us;
    uint64_t done, total;
    int last_step;           /* lines: last 10 % step printed */
    bool drawn;
};

rs_progress_mode rs_progress_resolve(FILE *f, rs_progress_mode mode)
{
    if (mode != RS_PROGRESS_AUTO)
        return mode;
    return isatty(fileno(f)) ? RS_PROGRESS_BAR : RS_PROGRESS_LINES;
}

rs_progress *rs_progress_new(FILE *f, rs_progress_mode mode, const char *label, uint64_t bytes)
{
    rs_progress *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->f = f;
    p->mode = rs_progress_resolve(f, mode);
    p->label = strdup(label ? label : "");
    p->bytes = bytes;
    p->start_us = rs_now_us();
    p->last_step = -1;
    if (!p->label) {
        free(p);
        return NULL;
    }
    return p;
}

static void fmt_eta(char *buf, size_t len, double eta)
{
    if (eta < 0) {
        snprintf(buf, len, "--:--");
        return;
    }
    unsigned long s = (unsigned long)(eta + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%lu:%02lu", s / 60, s % 60);
}

void rs_progress_format(char *buf, size_t len, const char *label, int width, uint64_t done,
                        uint64_t total, double rate, double eta)
{
    char bar[128] = "", rbuf[32], ebuf[32];
    unsigned pct = total ? (unsigned)(done * 100 / total) : 0;

    if (pct > 100)
        pct = 100;
    if (width > 0) {
        int w = width < 100 ? width : 100;
        int fill = (int)(pct * (unsigned)w / 100);
        bar[0] = '[';
        for (int i = 0; i < w; i++)
            bar[1 + i] = i < fill ? '#' : '.';
        bar[1 + w] = ']';
        bar[2 + w] = '\0';
    }
    if (rate < 0)
        snprintf(rbuf, sizeof(rbuf), "-- MiB/s");
    else
        snprintf(rbuf, sizeof(rbuf), "%.1f MiB/s", rate / (1024.0 * 1024.0));
    fmt_eta(ebuf, sizeof(ebuf), eta);
    if (width > 0)
        snprintf(buf, len, "%s %s %3u%%  %s  ETA %s", label, bar, pct, rbuf, ebuf);
    else
        snprintf(buf, len, "%s: %u%% %s ETA %s", label, pct, rbuf, ebuf);
}

static void compute(const rs_progress *p, uint64_t now, double *rate, double *eta)
{
    double el = (double)(now - p->start_us) / 1e6;
    double frac = p->total ? (double)p->done / (double)p->total : 0;

    *rate = -1;
    *eta = -1;
    if (el > 0.05 && p->bytes && frac > 0)
        *rate = frac * (double)p->bytes / el;
    if (el > 0.05 && frac > 0)
        *eta = el * (1 - frac) / frac;
    if (p->total && p->done >= p->total)
        *eta = 0;
}

static void draw(rs_progress *p, uint64_t now)
{
    char line[512];
    double rate, eta;

    compute(p, now, &rate, &eta);
    if (p->mode == RS_PROGRESS_BAR) {
        rs_progress_format(line, sizeof(line), p->label, 30, p->done, p->total, rate, eta);
        fprintf(p->f, "\r%s\033[K", line);
    } else {
        rs_progress_format(line, sizeof(line), p->label, 0, p->done, p->total, rate, eta);
        fprintf(p->f, "%s\n", line);
    }
    fflush(p->f);
    p->drawn = true;
    p->last_draw_us = now;
}

void rs_progress_update(rs_progress *p, uint64_t done, uint64_t total)
{
    uint64_t now;

    if (!p || p->mode == RS_PROGRESS_NONE)
        return;
    p->done = done;
    p->total = total;
    now = rs_now_us();
    if (p->mode == RS_PROGRESS_BAR) {
        if (!p->drawn || now - p->last_draw_us >= 100000 || (total && done >= total))
            draw(p, now);
        return;
    }
    int step = total ? (int)(done * 10 / total) : 0;
    if (step > p->last_step) {
        p->last_step = step;
        draw(p, now);
    }
}

void rs_progress_finish(rs_progress *p, int rc)
{
    uint64_t now;
    double el;

    if (!p || p->mode == RS_PROGRESS_NONE)
        return;
    now = rs_now_us();
    if (rc == 0 && p->total == 0)
        p->done = p->total = 1;
    if (rc == 0 && p->mode == RS_PROGRESS_LINES && p->last_step < 10) {
        p->done = p->total;
        p->last_step = 10;
        draw(p, now);
    }
    if (p->mode == RS_PROGRESS_BAR) {
        if (rc == 0)
            p->done = p->total;
        draw(p, now);
        fputc('\n', p->f);
    }
    el = (double)(now - p->start_us) / 1e6;
    fprintf(p->f, "%s: %s after %.1f s\n", p->label,
            rc == 0 ? "done" : rc == -ECANCELED ? "cancelled" : "failed", el);
    fflush(p->f);
}

void rs_progress_free(rs_progress *p)
{
    if (!p)
        return;
    free(p->label);
    free(p);
}

/* ---- flatten with progress and clean cancel ------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

bool rs_progress_interrupted(void)
{
    return interrupted != 0;
}

static int flatten_cb(uint64_t done, uint64_t total, void *arg)
{
    rs_progress *p = arg;

    /* Tests simulate Ctrl-C here, deterministically. */
    if (rs_failpoint("cli.flatten.progress") < 0)
        raise(SIGINT);
    rs_progress_update(p, done, total);
    return interrupted ? 1 : 0;
}

int rs_progress_flatten(rs_cluster *cl, const char *pool, const char *image, uint64_t bytes,
                        rs_progress_mode mode, rs_error *err)
{
    struct sigaction sa, old_int, old_term;
    char label[600];
    rs_progress *p;
    int rc;

    snprintf(label, sizeof(label), "flatten %s/%s", pool, image);
    p = rs_progress_new(stderr, mode, label, bytes);
    if (!p)
        return rs_error_set(err, -ENOMEM, "out of memory");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    interrupted = 0;
    rs_progress_update(p, 0, 1);
    rc = rs_rbd_flatten(cl, pool, image, flatten_cb, p, err);
    rs_progress_finish(p, rc);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    rs_progress_free(p);
    return rc;
}
