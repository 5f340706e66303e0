/*
 * test_gc_reaper_unit.c - the reaper's pieces that need no cluster: the
 * jittered sleep, the Prometheus text, Glance time parsing, and the thread
 * itself: started with a long interval, it must stop at once (the sleep is
 * a condvar wait that rs_reaper_stop() interrupts), and a cycle without a
 * cluster fails cleanly and is counted as an error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "conf/conf.h"
#include "gc/reaper.h"
#include "gc/scan.h"

static void test_next_sleep(void **state)
{
    (void)state;
    /* No jitter: exactly the interval. */
    assert_int_equal(rs_reaper_next_sleep_ms(600, 0, 12345), 600000);
    /* Jitter: within [interval - jitter, interval + jitter], both ends reachable. */
    assert_int_equal(rs_reaper_next_sleep_ms(600, 60, 0), 540000);
    assert_int_equal(rs_reaper_next_sleep_ms(600, 60, 120000), 660000);
    for (uint32_t r = 0; r < 200000; r += 997) {
        uint64_t ms = rs_reaper_next_sleep_ms(600, 60, r * 7919u);
        assert_true(ms >= 540000 && ms <= 660000);
    }
    /* Never below one second, even with jitter larger than the interval. */
    for (uint32_t r = 0; r < 5000; r += 7)
        assert_true(rs_reaper_next_sleep_ms(1, 30, r) >= 1000);
    assert_int_equal(rs_reaper_next_sleep_ms(0, 0, 0), 1000);
}

static void test_metrics_text(void **state)
{
    (void)state;
    rs_reaper_metrics m = { .cycles = 3, .found = 7, .deleted = 5, .skipped = 11, .errors = 2,
                            .lock_busy = 1, .last_cycle_ms = 1500, .last_cycle_at = 1800000000,
                            .last_images = 2000 };
    char *t = rs_reaper_metrics_text(&m);
    assert_non_null(t);
    assert_non_null(strstr(t, "\nrbdsnap_gc_cycles_total 3\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_found_total 7\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_deleted_total 5\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_skipped_total 11\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_errors_total 2\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_lock_busy_total 1\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_last_cycle_seconds 1.500\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_last_cycle_timestamp_seconds 1800000000\n"));
    assert_non_null(strstr(t, "\nrbdsnap_gc_last_scan_images 2000\n"));
    assert_non_null(strstr(t, "# TYPE rbdsnap_gc_errors_total counter\n"));
    free(t);
}

static void test_parse_time(void **state)
{
    (void)state;
    assert_int_equal(rs_gc_parse_time("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(rs_gc_parse_time("2026-12-04T18:41:13Z"), 1796409673);
    assert_int_equal(rs_gc_parse_time("2026-12-04T18:41:13.123456Z"), 1796409673);
    assert_int_equal(rs_gc_parse_time("2026-12-04T18:41:13+00:00"), 1796409673);
    assert_int_equal(rs_gc_parse_time("2026-12-04T18:41:13"), 1796409673);
    assert_int_equal(rs_gc_parse_time("2026-12-04T18:41:13+02:00"), 0);   /* not UTC: unknown */
    assert_int_equal(rs_gc_parse_time("yesterday"), 0);
    assert_int_equal(rs_gc_parse_time(""), 0);
    assert_int_equal(rs_gc_parse_time(NULL), 0);
}

static void test_thread_stops_at_once(void **state)
{
    (void)state;
    rs_conf *conf = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_non_null(conf);
    assert_int_equal(rs_conf_load_string(conf, "gc = { interval = 86400; jitter = 3600; };",
                                         &err), 0);
    rs_reaper *r = NULL;
    assert_int_equal(rs_reaper_start(conf, NULL, NULL, NULL, NULL, &r, &err), 0);
    rs_reaper_metrics m;
    rs_reaper_get_metrics(r, &m);
    assert_int_equal(m.cycles, 0);
    assert_null(rs_reaper_last_report(r));
    /* Sleeping for up to an hour: stop must not wait for it (ctest's
     * timeout would catch a hang). */
    rs_reaper_stop(r);
    rs_reaper_stop(NULL);
    rs_conf_free(conf);
}

static void test_kick_runs_a_cycle(void **state)
{
    (void)state;
    rs_conf *conf = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_non_null(conf);
    assert_int_equal(rs_conf_load_string(conf, "gc = { interval = 86400; jitter = 0; };", &err),
                     0);
    rs_reaper *r = NULL;
    /* No cluster: the cycle fails with -ENOTCONN and counts as an error. */
    assert_int_equal(rs_reaper_start(conf, NULL, NULL, NULL, NULL, &r, &err), 0);
    rs_reaper_metrics m;
    for (int i = 0; i < 1000; i++) {
        rs_reaper_get_metrics(r, &m);
        if (m.cycles >= 1)
            break;
        rs_sleep_ms(10);
    }
    assert_int_equal(m.cycles, 1);
    assert_int_equal(m.last_rc, -ENOTCONN);
    assert_int_equal(m.errors, 1);
    assert_int_equal(m.deleted, 0);
    rs_reaper_kick(r);
    for (int i = 0; i < 1000; i++) {
        rs_reaper_get_metrics(r, &m);
        if (m.cycles >= 2)
            break;
        rs_sleep_ms(10);
    }
    assert_int_equal(m.cycles, 2);
    rs_reaper_stop(r);
    rs_conf_free(conf);
}

static void test_cycle_args(void **state)
{
    (void)state;
    rs_reaper_cycle_opts o;
    rs_reaper_cycle_result res;
    rs_error err = RS_ERROR_INIT;
    rs_reaper_cycle_opts_init(&o, NULL);
    assert_int_equal(o.grace, -1);
    assert_int_equal(o.max_items, -1);
    assert_int_equal(o.max_seconds, -1);
    assert_int_equal(rs_reaper_cycle(NULL, NULL, &o, &res, &err), -ENOTCONN);
    assert_null(res.plan);
    rs_reaper_cycle_result_clear(&res);
    rs_reaper_cycle_result_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_sleep),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_thread_stops_at_once),
        cmocka_unit_test(test_kick_runs_a_cycle),
        cmocka_unit_test(test_cycle_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
