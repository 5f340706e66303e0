/*
 * test_rbd_unit.c - unit tests of rbd/ that need no cluster: snapshot and
 * clone names, the journal record format and file journal, rollback
 * planning, clone-format mapping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "rbd/flow-priv.h"
#include "rbd/flow.h"
#include "rbd/journal.h"
#include "rbd/ops.h"

static void test_snap_name(void **state)
{
    char a[64], b[64];
    assert_int_equal(rs_flow_make_snap_name(NULL, a, sizeof(a)), 0);
    assert_true(rs_str_has_prefix(a, "rbdsnap-"));
    assert_int_equal(strlen(a), strlen("rbdsnap-") + 16);
    for (const char *p = a + 8; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    assert_int_equal(rs_flow_make_snap_name(NULL, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(rs_flow_make_snap_name("x-", a, sizeof(a)), 0);
    assert_true(rs_str_has_prefix(a, "x-"));
    assert_int_equal(rs_flow_make_snap_name("bad/prefix", a, sizeof(a)), -EINVAL);
    assert_int_equal(rs_flow_make_snap_name("a@b", a, sizeof(a)), -EINVAL);
    assert_int_equal(rs_flow_make_snap_name(NULL, a, 10), -EINVAL);   /* too small */
}

static void test_clone_name(void **state)
{
    char buf[RS_JOB_NAME_MAX];
    const char *u = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9_disk";
    assert_int_equal(rs_flow_clone_name("img", u, NULL, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img");
    assert_int_equal(rs_flow_clone_name("img", "0f1e_disk.eph0", NULL, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img_eph0");
    assert_int_equal(rs_flow_clone_name("img", "0f1e_disk.swap", NULL, 2, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img_swap");
    assert_int_equal(rs_flow_clone_name("img", "other", NULL, 3, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img_disk3");
    assert_int_equal(rs_flow_clone_name("img", "x.eph0", "data", 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img_data");
    assert_int_equal(rs_flow_clone_name("img", "x.a b", NULL, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "img_a_b");
    assert_int_equal(rs_flow_clone_name("img", "x", NULL, 1, buf, 6), -EINVAL);
}

static void fill_job(rs_job *job, int format, size_t ndisks)
{
    memset(job, 0, sizeof(*job));
    snprintf(job->id, sizeof(job->id), "job-1");
    snprintf(job->instance_uuid, sizeof(job->instance_uuid), "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    snprintf(job->src_pool, sizeof(job->src_pool), "vms");
    snprintf(job->dest_pool, sizeof(job->dest_pool), "images");
    snprintf(job->target, sizeof(job->target), "img");
    job->clone_format = format;
    job->flatten = RS_FLATTEN_DEFERRED;
    job->state = RS_JOB_RUNNING;
    job->created_at = 1700000000;
    job->pid = 42;
    job->ndisks = ndisks;
    for (size_t i = 0; i < ndisks; i++) {
        snprintf(job->disks[i].image, RS_JOB_NAME_MAX, "u_disk%s%zu", i ? ".eph" : "", i);
        snprintf(job->disks[i].snap, RS_JOB_NAME_MAX, "rbdsnap-%016zx", i + 1);
        snprintf(job->disks[i].clone, RS_JOB_NAME_MAX, i ? "img_eph%zu" : "img", i);
    }
}

static void test_json_round_trip(void **state)
{
    rs_job a, b;
    char *text = NULL;
    fill_job(&a, 1, 2);
    a.disks[0].step = RS_STEP_CLONE_SNAP_PROTECT;
    a.disks[0].step_done = true;
    a.disks[0].flattened = true;
    a.disks[1].step = RS_STEP_CLONE;
    a.state = RS_JOB_ROLLING_BACK;
    snprintf(a.error, sizeof(a.error), "vms/x@y: \"quoted\" failure");
    assert_int_equal(rs_job_to_json(&a, &text, NULL), 0);
    assert_non_null(strstr(text, "\"clone_snap_protect\""));
    assert_int_equal(rs_job_from_json(text, &b, NULL), 0);
    free(text);
    assert_memory_equal(&a, &b, sizeof(a));
}

static void test_json_rejects(void **state)
{
    rs_job j;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_job_from_json("{", &j, &err), -EINVAL);
    assert_int_equal(rs_job_from_json("[]", &j, NULL), -EINVAL);
    const char *bad_format =
        "{\"id\":\"a\",\"src_pool\":\"v\",\"dest_pool\":\"i\",\"target\":\"t\",\"clone_format\":3,"
        "\"flatten\":\"no\",\"state\":\"running\",\"disks\":[{\"image\":\"x\",\"snap\":\"s\","
        "\"clone\":\"t\",\"step\":\"clone\"}]}";
    assert_int_equal(rs_job_from_json(bad_format, &j, NULL), -EINVAL);
    const char *bad_step =
        "{\"id\":\"a\",\"src_pool\":\"v\",\"dest_pool\":\"i\",\"target\":\"t\",\"clone_format\":2,"
        "\"flatten\":\"no\",\"state\":\"running\",\"disks\":[{\"image\":\"x\",\"snap\":\"s\","
        "\"clone\":\"t\",\"step\":\"dance\"}]}";
    assert_int_equal(rs_job_from_json(bad_step, &j, NULL), -EINVAL);
    const char *no_disks =
        "{\"id\":\"a\",\"src_pool\":\"v\",\"dest_pool\":\"i\",\"target\":\"t\",\"clone_format\":2,"
        "\"flatten\":\"no\",\"state\":\"running\",\"disks\":[]}";
    assert_int_equal(rs_job_from_json(no_disks, &j, NULL), -EINVAL);
}

static void test_names(void **state)
{
    for (int s = 0; s < RS_STEP_COUNT; s++) {
        rs_step out;
        assert_int_equal(rs_step_parse(rs_step_name((rs_step)s), &out), 0);
        assert_int_equal(out, s);
    }
    rs_flatten_mode m;
    assert_int_equal(rs_flatten_mode_parse("deferred", &m), 0);
    assert_int_equal(m, RS_FLATTEN_DEFERRED);
    assert_int_equal(rs_flatten_mode_parse("maybe", &m), -EINVAL);
    assert_int_equal(rs_rbd_clone_format_for_release("luminous"), 1);
    assert_int_equal(rs_rbd_clone_format_for_release("jewel"), 1);
    assert_int_equal(rs_rbd_clone_format_for_release("mimic"), 2);
    assert_int_equal(rs_rbd_clone_format_for_release("pacific"), 2);
    assert_int_equal(rs_rbd_clone_format_for_release(NULL), 1);
}

/* Entries of @dir ending in @suffix; suffix NULL counts temporary files. */
static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    while (d && (de = readdir(d)) != NULL) {
        if (suffix ? rs_str_has_suffix(de->d_name, suffix)
                   : (de->d_name[0] == '.' && strstr(de->d_name, ".json.") != NULL))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_dir_journal(void **state)
{
    char dir[] = "/tmp/rbdsnap-test-journal-XXXXXX";
    rs_journal *j = NULL, *j2 = NULL;
    rs_job job, *orph = NULL;
    size_t n = 0;
    rs_error err = RS_ERROR_INIT;

    assert_non_null(mkdtemp(dir));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(rs_journal_dir_open(sub, &j, &err), 0);
    assert_int_equal(rs_journal_dir_open(sub, &j2, &err), 0);

    fill_job(&job, 2, 1);
    snprintf(job.id, sizeof(job.id), "job-live");
    assert_int_equal(rs_journal_begin(j, &job, &err), 0);
    job.disks[0].step = RS_STEP_CLONE;
    assert_int_equal(rs_journal_step_start(j, &job, RS_STEP_CLONE, 0, NULL, &err), 0);
    /* A second begin of the same job is refused while the first holds it. */
    assert_int_equal(rs_journal_begin(j2, &job, NULL), -EBUSY);
    /* Owned by a live run: not an orphan. */
    assert_int_equal(rs_journal_list_orphans(j2, &orph, &n, &err), 0);
    assert_int_equal(n, 0);
    free(orph);

    /* Deferred: record kept, lock released, listed as orphan. */
    job.state = RS_JOB_FLATTEN_PENDING;
    assert_int_equal(rs_journal_end(j, &job, &err), 0);
    assert_int_equal(rs_journal_list_orphans(j2, &orph, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(orph[0].id, "job-live");
    assert_int_equal(orph[0].state, RS_JOB_FLATTEN_PENDING);
    assert_int_equal(orph[0].disks[0].step, RS_STEP_CLONE);
    /* Claimed by j2 now: j cannot begin it, j2 (completing it) can. */
    assert_int_equal(rs_journal_begin(j, &orph[0], NULL), -EBUSY);
    assert_int_equal(rs_journal_begin(j2, &orph[0], &err), 0);
    orph[0].state = RS_JOB_DONE;
    assert_int_equal(rs_journal_end(j2, &orph[0], &err), 0);
    free(orph);
    assert_int_equal(rs_journal_list_orphans(j2, &orph, &n, &err), 0);
    assert_int_equal(n, 0);
    free(orph);
    assert_int_equal(count_files(sub, ".json"), 0);
    assert_int_equal(count_files(sub, ".lock"), 0);

    /* A job whose process died (lock released by close). */
    fill_job(&job, 1, 2);
    snprintf(job.id, sizeof(job.id), "job-dead");
    assert_int_equal(rs_journal_begin(j, &job, &err), 0);
    rs_journal_close(j);
    assert_int_equal(rs_journal_list_orphans(j2, &orph, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(orph[0].clone_format, 1);
    assert_int_equal(orph[0].ndisks, 2);
    rs_journal_release(j2, orph[0].id);
    free(orph);
    assert_int_equal(count_files(sub, NULL), 0);

    /* Bad ids are refused before anything is written. */
    snprintf(job.id, sizeof(job.id), "../evil");
    assert_int_equal(rs_journal_begin(j2, &job, NULL), -EINVAL);
    rs_journal_close(j2);
    rm_rf(dir);
}

static int find(const rs_flow_action *a, size_t n, rs_flow_action_kind k, const char *image,
                const char *snap)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].kind == k && strcmp(a[i].image, image) == 0 &&
            (!snap || (a[i].snap && strcmp(a[i].snap, snap) == 0)))
            return (int)i;
    return -1;
}

static void test_plan_nothing(void **state)
{
    rs_job job;
    rs_flow_action acts[RS_FLOW_MAX_ACTIONS];
    fill_job(&job, 2, 2);
    assert_int_equal(rs_flow_plan_rollback(&job, acts, RS_FLOW_MAX_ACTIONS), 0);
}

static void test_plan_format1_flatten_failed(void **state)
{
    /* Nova's leak: flatten failed with format 1.  The clone must go before
     * the source snapshot is unprotected. */
    rs_job job;
    rs_flow_action a[RS_FLOW_MAX_ACTIONS];
    fill_job(&job, 1, 1);
    job.disks[0].step = RS_STEP_FLATTEN;
    size_t n = rs_flow_plan_rollback(&job, a, RS_FLOW_MAX_ACTIONS);
    int clone = find(a, n, RS_ACT_REMOVE_CLONE_IF_OURS, "img", NULL);
    int unprot = find(a, n, RS_ACT_UNPROTECT_SNAP, "u_disk0", job.disks[0].snap);
    int rmsnap = find(a, n, RS_ACT_REMOVE_SNAP, "u_disk0", job.disks[0].snap);
    int key = find(a, n, RS_ACT_REMOVE_KEY, "u_disk0", NULL);
    assert_true(clone >= 0 && unprot > clone && rmsnap > unprot && key > rmsnap);
    assert_int_equal(find(a, n, RS_ACT_REMOVE_SNAP, "img", "snap"), -1);  /* never made */
    assert_int_equal(find(a, n, RS_ACT_REMOVE_TRASH_SNAP, "u_disk0", NULL), -1);
    assert_string_equal(a[key].key, "rbdsnap.snap.rbdsnap-0000000000000001");
    assert_string_equal(a[clone].pool, "images");
    assert_string_equal(a[unprot].pool, "vms");
}

static void test_plan_format2_multi_disk(void **state)
{
    rs_job job;
    rs_flow_action a[RS_FLOW_MAX_ACTIONS];
    fill_job(&job, 2, 3);
    job.disks[0].step = RS_STEP_SOURCE_SNAP_REMOVE;
    job.disks[0].step_done = true;
    job.disks[1].step = RS_STEP_CLONE_SNAP_CREATE;
    job.disks[2].step = RS_STEP_SNAP_CREATE;
    size_t n = rs_flow_plan_rollback(&job, a, RS_FLOW_MAX_ACTIONS);
    /* Reverse order: disk 2 first, disk 0 last. */
    assert_int_equal(a[0].disk, 2);
    assert_int_equal(a[n - 1].disk, 0);
    assert_int_equal(find(a, n, RS_ACT_REMOVE_CLONE_IF_OURS, "img_eph2", NULL), -1);
    assert_true(find(a, n, RS_ACT_REMOVE_SNAP, "u_disk.eph2", NULL) >= 0);
    int snap1 = find(a, n, RS_ACT_REMOVE_SNAP, "img_eph1", "snap");
    int clone1 = find(a, n, RS_ACT_REMOVE_CLONE_IF_OURS, "img_eph1", NULL);
    assert_true(snap1 >= 0 && clone1 > snap1);
    assert_true(find(a, n, RS_ACT_UNPROTECT_SNAP, "img_eph1", "snap") < snap1);
    /* Format 2: no unprotect of source snapshots, trash checked. */
    assert_int_equal(find(a, n, RS_ACT_UNPROTECT_SNAP, "u_disk0", NULL), -1);
    assert_true(find(a, n, RS_ACT_REMOVE_TRASH_SNAP, "u_disk0", NULL) >
                find(a, n, RS_ACT_REMOVE_CLONE_IF_OURS, "img", NULL));
    /* Truncation is safe. */
    assert_int_equal(rs_flow_plan_rollback(&job, a, 3), 3);
}

static void test_plan_tag_only(void **state)
{
    rs_job job;
    rs_flow_action a[RS_FLOW_MAX_ACTIONS];
    fill_job(&job, 2, 1);
    job.disks[0].step = RS_STEP_TAG_SOURCE;
    size_t n = rs_flow_plan_rollback(&job, a, RS_FLOW_MAX_ACTIONS);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, RS_ACT_REMOVE_KEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snap_name),
        cmocka_unit_test(test_clone_name),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_dir_journal),
        cmocka_unit_test(test_plan_nothing),
        cmocka_unit_test(test_plan_format1_flatten_failed),
        cmocka_unit_test(test_plan_format2_multi_disk),
        cmocka_unit_test(test_plan_tag_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
