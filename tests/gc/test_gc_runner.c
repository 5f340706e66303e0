/*
 * test_gc_runner.c - the reaper's runner with a fake executor: order,
 * idempotent removals, failure isolation per item, dry run, time budget,
 * stop flag, failpoints.
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

#include "common/failpoint.h"
#include "gc/graph.h"
#include "gc/policy.h"
#include "gc/report.h"
#include "gc/runner.h"

#define NOW ((int64_t)1800000000)
#define OLD (NOW - 86400)
#define TBD "_to_be_deleted_by_glance"
#define U1 "11111111-1111-4111-8111-111111111111"
#define G1 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa1"

typedef struct fake {
    size_t calls;
    rs_gc_action_type seen[32];
    long fail_at;         /* call index that fails, -1 none */
    int fail_rc;
    atomic_bool *stop_after_first;
} fake;

static int fake_exec(void *arg, const rs_gc_action *a, rs_error *err)
{
    fake *f = arg;
    size_t k = f->calls++;
    if (k < 32)
        f->seen[k] = a->type;
    if (f->stop_after_first)
        atomic_store(f->stop_after_first, true);
    if ((long)k == f->fail_at)
        return rs_error_set(err, f->fail_rc, "%s/%s: fake failure", a->pool ? a->pool : "glance",
                            a->image_name ? a->image_name : a->glance_id);
    return 0;
}

static uint64_t fake_ms;
static uint64_t fake_clock(void)
{
    fake_ms += 10;
    return fake_ms;
}

/* A tbd tree (4 actions), a second tbd image (1 action), a stuck record
 * (1 action): 6 actions in 3 items. */
static struct rs_gc_plan *make_plan(rs_gc_graph **gp)
{
    rs_gc_graph *g = NULL;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_gc_graph_new(&g, &err), 0);
    rs_gc_graph_set_glance_complete(g, true);
    rs_gc_image_desc a = { .pool = "vms", .id = "ia", .name = U1 "_disk" TBD, .created_at = OLD };
    rs_gc_image_desc b = { .pool = "images", .id = "ib", .name = G1 TBD, .created_at = OLD,
                           .parent_pool = "vms", .parent_id = "ia", .parent_snap_id = 1 };
    rs_gc_image_desc c = { .pool = "vms", .id = "ic", .name = "22222222-2222-4222-8222-222222222222_disk" TBD,
                           .created_at = OLD };
    rs_gc_snap_desc s = { .id = 1, .name = "snap", .is_protected = true, .created_at = OLD };
    rs_gc_glance_desc r = { .id = "rec", .status = "queued", .created_at = OLD };
    assert_int_equal(rs_gc_graph_add_image(g, &a, &err), 0);
    assert_int_equal(rs_gc_graph_add_snap(g, "vms", "ia", &s, &err), 0);
    assert_int_equal(rs_gc_graph_add_image(g, &b, &err), 0);
    assert_int_equal(rs_gc_graph_add_image(g, &c, &err), 0);
    assert_int_equal(rs_gc_graph_add_glance_image(g, &r, &err), 0);
    assert_int_equal(rs_gc_graph_set_glance_property(g, "rec", "rbdsnap_job_id", "j", &err), 0);
    rs_gc_policy_opts o;
    rs_gc_policy_opts_init(&o);
    struct rs_gc_plan *p = NULL;
    assert_int_equal(rs_gc_plan(g, &o, NOW, &p), 0);
    assert_int_equal(rs_gc_plan_action_count(p), 6);
    assert_int_equal(rs_gc_plan_delete_count(p), 3);
    *gp = g;
    return p;
}

static void test_runs_in_order(void **state)
{
    (void)state;
    rs_gc_graph *g;
    struct rs_gc_plan *p = make_plan(&g);
    fake f = { .fail_at = -1 };
    rs_gc_run_stats st;
    assert_int_equal(rs_gc_run(p, fake_exec, &f, NULL, &st), 0);
    assert_int_equal(f.calls, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(f.seen[i], rs_gc_plan_action(p, i)->type);
        assert_int_equal(rs_gc_plan_action(p, i)->state, RS_GC_ACT_DONE);
    }
    assert_int_equal(f.seen[0], RS_GC_ACT_REMOVE_IMAGE);      /* the child first */
    assert_int_equal(f.seen[1], RS_GC_ACT_UNPROTECT_SNAP);
    assert_int_equal(st.done, 6);
    assert_int_equal(st.left, 0);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);
}

static void test_failure_isolated_to_item(void **state)
{
    (void)state;
    rs_gc_graph *g;
    struct rs_gc_plan *p = make_plan(&g);
    fake f = { .fail_at = 1, .fail_rc = -EBUSY };   /* the unprotect */
    rs_gc_run_stats st;
    assert_int_equal(rs_gc_run(p, fake_exec, &f, NULL, &st), -EBUSY);
    assert_int_equal(rs_gc_plan_action(p, 1)->state, RS_GC_ACT_FAILED);
    assert_int_equal(rs_gc_plan_action(p, 2)->state, RS_GC_ACT_NOT_RUN);
    assert_int_equal(rs_gc_plan_action(p, 3)->state, RS_GC_ACT_NOT_RUN);
    assert_int_equal(rs_gc_plan_action(p, 4)->state, RS_GC_ACT_DONE);
    assert_int_equal(rs_gc_plan_action(p, 5)->state, RS_GC_ACT_DONE);
    assert_int_equal(f.calls, 4);
    assert_int_equal(st.done, 3);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.not_run, 2);
    assert_int_equal(st.first_error, -EBUSY);
    char *s = NULL;
    assert_int_equal(rs_gc_report_render(p, RS_GC_REPORT_PLAIN, false, &s, NULL), 0);
    assert_non_null(strstr(s, "[failed: EBUSY]"));
    assert_non_null(strstr(s, "[not_run]"));
    assert_non_null(strstr(s, "3 done, 1 failed, 2 not run"));
    free(s);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);
}

static void test_enoent_removal_is_done(void **state)
{
    (void)state;
    rs_gc_graph *g;
    struct rs_gc_plan *p = make_plan(&g);
    fake f = { .fail_at = 0, .fail_rc = -ENOENT };   /* remove_image of the child */
    assert_int_equal(rs_gc_run(p, fake_exec, &f, NULL, NULL), 0);
    assert_int_equal(rs_gc_plan_action(p, 0)->state, RS_GC_ACT_DONE);
    assert_int_equal(f.calls, 6);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);

    /* ENOENT from an unprotect is a real failure (not a removal) */
    p = make_plan(&g);
    fake f2 = { .fail_at = 1, .fail_rc = -ENOENT };
    assert_int_equal(rs_gc_run(p, fake_exec, &f2, NULL, NULL), -ENOENT);
    assert_int_equal(rs_gc_plan_action(p, 1)->state, RS_GC_ACT_FAILED);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);
}

static void test_dry_run_budget_stop(void **state)
{
    (void)state;
    rs_gc_graph *g;
    struct rs_gc_plan *p = make_plan(&g);
    fake f = { .fail_at = -1 };
    rs_gc_run_stats st;
    rs_gc_run_opts o = { .dry_run = true };
    assert_int_equal(rs_gc_run(p, NULL, NULL, &o, &st), 0);
    assert_int_equal(st.left, 6);
    assert_int_equal(f.calls, 0);

    /* fake clock: +10 ms per reading; budget 35 ms -> some actions run */
    fake_ms = 0;
    rs_gc_run_opts ob = { .max_ms = 35, .now_ms = fake_clock };
    assert_int_equal(rs_gc_run(p, fake_exec, &f, &ob, &st), 0);
    assert_true(st.budget_exhausted);
    assert_true(st.done > 0 && st.done < 6);
    assert_int_equal(st.done + st.left, 6);
    assert_int_equal(f.calls, st.done);
    size_t first_left = st.done;
    assert_int_equal(rs_gc_plan_action(p, first_left)->state, RS_GC_ACT_PLANNED);

    /* the rest, with a stop flag raised by the first action */
    atomic_bool stop = false;
    f.stop_after_first = &stop;
    rs_gc_run_opts os = { .stop = &stop };
    assert_int_equal(rs_gc_run(p, fake_exec, &f, &os, &st), 0);
    assert_true(st.stopped);
    assert_int_equal(st.done, 1);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);
}

static void test_failpoint(void **state)
{
    (void)state;
    rs_gc_graph *g;
    struct rs_gc_plan *p = make_plan(&g);
    fake f = { .fail_at = -1 };
    assert_int_equal(rs_failpoint_configure("gc.run.glance_delete=error:EACCES"), 0);
    rs_gc_run_stats st;
    assert_int_equal(rs_gc_run(p, fake_exec, &f, NULL, &st), -EACCES);
    assert_int_equal(rs_failpoint_configure(""), 0);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.done, 5);
    assert_int_equal(f.calls, 5);
    assert_int_equal(rs_gc_plan_action(p, 5)->state, RS_GC_ACT_FAILED);
    assert_int_equal(rs_gc_plan_action(p, 5)->rc, -EACCES);
    rs_gc_plan_free(p);
    rs_gc_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_in_order),
        cmocka_unit_test(test_failure_isolated_to_item),
        cmocka_unit_test(test_enoent_removal_is_done),
        cmocka_unit_test(test_dry_run_budget_stop),
        cmocka_unit_test(test_failpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
