/*
 * test_gc_thread.c - the reaper thread against the lab's real Ceph and
 * Glance: started from the lab's configuration (with a grace of a year,
 * so it can never delete anything on a shared lab), a kick runs a full
 * cycle (RADOS lock, scan, plan, run); the daemon's job-lock callback is
 * consulted for the images; while someone else holds the reaper lock a
 * cycle is counted as lock-busy and touches nothing; stop returns at once
 * from the sleep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "conf/conf.h"
#include "gc/reaper.h"
#include "glance/glance.h"
#include "rbd/cluster.h"
#include "rbd/inventory.h"
#include "rbd/ops.h"

static atomic_int lock_queries;
static char busy_image[128];

static bool job_lock(void *arg, const char *pool, const char *image)
{
    (void)arg;
    (void)pool;
    atomic_fetch_add(&lock_queries, 1);
    return strcmp(image, busy_image) == 0;
}

static void wait_cycles(rs_reaper *r, uint64_t n, rs_reaper_metrics *m)
{
    for (int i = 0; i < 6000; i++) {
        rs_reaper_get_metrics(r, m);
        if (m->cycles >= n && !m->running)
            return;
        rs_sleep_ms(10);
    }
    fail_msg("the reaper ran no cycle %llu", (unsigned long long)n);
}

static void test_thread_on_lab(void **state)
{
    (void)state;
    rs_conf *conf = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_non_null(conf);
    if (rs_conf_load_default(conf, NULL, &err) < 0)
        fail_msg("config: %s", rs_error_msg(&err));
    assert_int_equal(rs_conf_load_string(conf, "gc = { interval = 86400; jitter = 0; "
                                               "grace = 31536000; };", &err), 0);
    rs_cluster_opts co = { .conf_file = conf->ceph.conf, .id = conf->ceph.id,
                           .keyring = conf->ceph.keyring };
    rs_cluster *cl = NULL;
    if (rs_cluster_connect(&co, &cl, &err) < 0)
        fail_msg("%s", rs_error_msg(&err));
    rs_glance_opts go = { .url = conf->glance.url, .auth = "none", .retries = 1 };
    rs_glance *glance = rs_glance_new(&go, &err);
    assert_non_null(glance);

    /* An image of ours the "daemon" says a job works on. */
    char tag[9];
    rs_random_hex(tag, 4);
    snprintf(busy_image, sizeof(busy_image), "gcthread-%s", tag);
    assert_int_equal(rs_rbd_image_create(cl, conf->snapshot.source_pool, busy_image, 1 << 20,
                                         &err), 0);

    rs_reaper *r = NULL;
    assert_int_equal(rs_reaper_start(conf, cl, glance, job_lock, NULL, &r, &err), 0);
    rs_reaper_metrics m;
    wait_cycles(r, 1, &m);   /* jitter 0: the first cycle runs at once */
    if (m.last_rc != 0)
        fail_msg("cycle rc=%d", m.last_rc);
    assert_true(m.last_images >= 1);
    assert_int_equal(m.deleted, 0);
    assert_int_equal(m.errors, 0);
    assert_true(atomic_load(&lock_queries) >= 1);
    char *rep = rs_reaper_last_report(r);
    assert_non_null(rep);
    assert_non_null(strstr(rep, "\"summary\""));
    free(rep);
    char *text = rs_reaper_metrics_text(&m);
    fputs(text, stderr);
    free(text);

    /* Someone else holds the reaper lock: the next cycle is lock-busy. */
    rs_inv_lock *held = NULL;
    assert_int_equal(rs_inv_lock_acquire(cl, conf->journal.pool, conf->journal.namespace_,
                                         RS_REAPER_LOCK_OBJECT, 60, &held, NULL, &err), 0);
    rs_reaper_kick(r);
    wait_cycles(r, 2, &m);
    assert_int_equal(m.lock_busy, 1);
    assert_int_equal(m.last_rc, -EBUSY);
    rs_inv_lock_release(held);
    rs_reaper_kick(r);
    wait_cycles(r, 3, &m);
    assert_int_equal(m.last_rc, 0);
    assert_int_equal(m.lock_busy, 1);

    /* Sleeping for a day: stop returns at once. */
    rs_reaper_stop(r);

    assert_int_equal(rs_rbd_image_remove(cl, conf->snapshot.source_pool, busy_image, &err), 0);
    rs_glance_free(glance);
    rs_cluster_unref(cl);
    rs_conf_free(conf);
}

int main(void)
{
    if (!getenv("CEPH_CONF") || !getenv("RBDSNAP_CONF")) {
        fprintf(stderr, "SKIP: no lab environment\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_on_lab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
