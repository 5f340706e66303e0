/*
 * metrics.c - counters, gauges and step-latency histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Design: a small table of series (name + label string) behind one mutex;
 * series are created on first use and never removed, so the table stays
 * tiny (a few dozen series).  Histograms have fixed buckets chosen for the
 * RBD flow, from a snapshot create (~0.1 s) to a big flatten (minutes).
 */
#define RS_LOG_MODULE "metrics"
#include "service/service-priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE } mkind;

typedef struct series {
    char *name;
    char *labels;
    char *help;
    mkind kind;
    double value;
} series;

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                   30, 60, 300, 1800 };
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct histo {
    char *step;
    unsigned long long counts[NBUCKETS];
    unsigned long long count;
    double sum;
} histo;

struct rs_metrics {
    pthread_mutex_t lock;
    series *s;
    size_t n, cap;
    histo *h;
    size_t nh, caph;
};

rs_metrics *rs_metrics_new(void)
{
    rs_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void rs_metrics_free(rs_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->s[i].name);
        free(m->s[i].labels);
        free(m->s[i].help);
    }
    for (size_t i = 0; i < m->nh; i++)
        free(m->h[i].step);
    free(m->s);
    free(m->h);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Lock held.  NULL on ENOMEM. */
static series *find_series(rs_metrics *m, const char *name, const char *labels, bool create,
                           mkind kind, const char *help)
{
    if (!labels)
        labels = "";
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, name) == 0 && strcmp(m->s[i].labels, labels) == 0)
            return &m->s[i];
    if (!create)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        series *ns = realloc(m->s, cap * sizeof *ns);
        if (!ns)
            return NULL;
        m->s = ns;
        m->cap = cap;
    }
    series *s = &m->s[m->n];
    s->name = strdup(name);
    s->labels = strdup(labels);
    s->help = strdup(help ? help : name);
    if (!s->name || !s->labels || !s->help) {
        free(s->name);
        free(s->labels);
        free(s->help);
        return NULL;
    }
    s->kind = kind;
    s->value = 0;
    m->n++;
    return s;
}

void rs_metrics_counter_add(rs_metrics *m, const char *name, const char *help,
                            const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    series *s = find_series(m, name, labels, true, M_COUNTER, help);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void rs_metrics_gauge_set(rs_metrics *m, const char *name, const char *help,
                          const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    series *s = find_series(m, name, labels, true, M_GAUGE, help);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void rs_metrics_observe_step(rs_metrics *m, const char *step, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    histo *h = NULL;
    for (size_t i = 0; i < m->nh; i++)
        if (strcmp(m->h[i].step, step) == 0)
            h = &m->h[i];
    if (!h) {
        if (m->nh == m->caph) {
            size_t cap = m->caph ? m->caph * 2 : 16;
            histo *nh = realloc(m->h, cap * sizeof *nh);
            if (!nh)
                goto out;
            m->h = nh;
            m->caph = cap;
        }
        h = &m->h[m->nh];
        memset(h, 0, sizeof *h);
        h->step = strdup(step);
        if (!h->step)
            goto out;
        m->nh++;
    }
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= buckets[b])
            h->counts[b]++;
    h->count++;
    h->sum += seconds;
out:
    pthread_mutex_unlock(&m->lock);
}

double rs_metrics_value(rs_metrics *m, const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&m->lock);
    series *s = find_series(m, name, labels, false, M_COUNTER, NULL);
    if (s)
        v = s->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

static int cmp_series(const void *a, const void *b)
{
    const series *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

char *rs_metrics_render(rs_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->lock);
    qsort(m->s, m->n, sizeof *m->s, cmp_series);
    const char *last = NULL;
    for (size_t i = 0; i < m->n; i++) {
        series *s = &m->s[i];
        if (!last || strcmp(last, s->name) != 0) {
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                    s->kind == M_COUNTER ? "counter" : "gauge");
            last = s->name;
        }
        if (s->labels[0])
            fprintf(f, "%s{%s} %.17g\n", s->name, s->labels, s->value);
        else
            fprintf(f, "%s %.17g\n", s->name, s->value);
    }
    fprintf(f, "# HELP rbdsnap_step_duration_seconds Duration of successful job steps\n"
               "# TYPE rbdsnap_step_duration_seconds histogram\n");
    for (size_t i = 0; i < m->nh; i++) {
        histo *h = &m->h[i];
        for (size_t b = 0; b < NBUCKETS; b++)
            fprintf(f, "rbdsnap_step_duration_seconds_bucket{step=\"%s\",le=\"%g\"} %llu\n",
                    h->step, buckets[b], h->counts[b]);
        fprintf(f, "rbdsnap_step_duration_seconds_bucket{step=\"%s\",le=\"+Inf\"} %llu\n",
                h->step, h->count);
        fprintf(f, "rbdsnap_step_duration_seconds_sum{step=\"%s\"} %.6f\n", h->step, h->sum);
        fprintf(f, "rbdsnap_step_duration_seconds_count{step=\"%s\"} %llu\n", h->step,
                h->count);
    }
    pthread_mutex_unlock(&m->lock);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
