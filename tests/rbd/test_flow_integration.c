/*
 * test_flow_integration.c - the RBD snapshot flow against the lab's real
 * Ceph cluster, both clone formats.
 *
 *  - data: images/<id>@snap exists, is protected and is byte-identical to
 *    the source at snapshot time while the source keeps being written;
 *    with and without flatten, deferred flatten, two disks in one freeze;
 *  - failure injected at every step (and .done): nothing left, source
 *    untouched;
 *  - _exit injected at every step through the rbdsnap CLI, then one
 *    `rbdsnap recover` for all of them: nothing left after any step;
 *  - 20 snapshots of 20 images in parallel from one process;
 *  - clone format auto matches the lab's require-min-compat-client;
 *  - a flatten cancelled from the progress callback rolls back.
 *
 * Every object gets a random suffix and is removed in teardown, also when
 * an assertion fails.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "rbd/cluster.h"
#include "rbd/flow.h"
#include "rbd/ops.h"

#define SRC_POOL "vms"
#define DST_POOL "images"
#define IMG_SIZE (16u << 20)

static rs_cluster *cl;
static int lab_format = 2;
static char tmpdir[64];

/* Everything a test created, removed in teardown. */
#define MAX_OBJ 128
static char created_src[MAX_OBJ][128];
static char created_dst[MAX_OBJ][128];
static size_t nsrc, ndst;

static void uniq(char *buf, size_t len, const char *what)
{
    char hex[9];
    assert_int_equal(rs_random_hex(hex, 4), 0);
    snprintf(buf, len, "rstest-%s-%s", what, hex);
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)((i * 31 + seed * 7 + (i >> 12)) & 0xff);
}

static void make_source(const char *name)
{
    rs_error err = RS_ERROR_INIT;
    static unsigned char buf[1 << 20];
    assert_true(nsrc < MAX_OBJ);
    snprintf(created_src[nsrc++], 128, "%s", name);
    int rc = rs_rbd_image_create(cl, SRC_POOL, name, IMG_SIZE, &err);
    if (rc < 0)
        fail_msg("create %s: %s", name, rs_error_msg(&err));
    fill(buf, sizeof(buf), 1);
    assert_int_equal(rs_rbd_write(cl, SRC_POOL, name, 0, sizeof(buf), buf, &err), 0);
    fill(buf, sizeof(buf), 2);
    assert_int_equal(rs_rbd_write(cl, SRC_POOL, name, 9u << 20, sizeof(buf), buf, &err), 0);
}

static void expect_clone(const char *name)
{
    assert_true(ndst < MAX_OBJ);
    snprintf(created_dst[ndst++], 128, "%s", name);
}

static void remove_all_snaps(const char *pool, const char *image)
{
    rs_rbd_snap_info *snaps = NULL;
    size_t n = 0;
    rs_error err = RS_ERROR_INIT;
    if (rs_rbd_snap_list(cl, pool, image, &snaps, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (snaps[i].ns == RS_RBD_SNAP_NS_USER)
            rs_rbd_snap_remove(cl, pool, image, snaps[i].name, true, NULL);
    rs_rbd_snap_list_free(snaps, n);
}

static int teardown(void **state)
{
    rs_failpoint_configure(NULL);
    for (size_t i = 0; i < ndst; i++) {
        remove_all_snaps(DST_POOL, created_dst[i]);
        rs_rbd_image_remove(cl, DST_POOL, created_dst[i], NULL);
    }
    for (size_t i = 0; i < nsrc; i++) {
        remove_all_snaps(SRC_POOL, created_src[i]);
        rs_rbd_image_remove(cl, SRC_POOL, created_src[i], NULL);
    }
    nsrc = ndst = 0;
    return 0;
}

/* What rbdsnap left behind: @targets that exist, snapshots or rbdsnap.*
 * metadata on @src, or a changed @src.  0 = nothing; otherwise the first
 * finding is described in @msg. */
static int leftovers(const char *src, const char *const *targets, size_t ntargets,
                     uint64_t src_sum, char *msg, size_t len)
{
    rs_rbd_snap_info *snaps = NULL;
    char **keys = NULL, **vals = NULL;
    size_t n = 0, nk = 0;
    rs_error err = RS_ERROR_INIT;
    uint64_t sum = 0;
    bool exists = true;

    for (size_t t = 0; t < ntargets; t++) {
        if (rs_rbd_image_exists(cl, DST_POOL, targets[t], &exists, &err) < 0) {
            snprintf(msg, len, "%s", rs_error_msg(&err));
            return 1;
        }
        if (exists) {
            snprintf(msg, len, "%s/%s left behind", DST_POOL, targets[t]);
            return 1;
        }
    }
    if (rs_rbd_snap_list(cl, SRC_POOL, src, &snaps, &n, &err) < 0) {
        snprintf(msg, len, "%s", rs_error_msg(&err));
        return 1;
    }
    if (n)
        snprintf(msg, len, "snapshot %s (ns %d, was %s) left on %s/%s", snaps[0].name, snaps[0].ns,
                 snaps[0].original_name ? snaps[0].original_name : "-", SRC_POOL, src);
    rs_rbd_snap_list_free(snaps, n);
    if (n)
        return 1;
    if (rs_rbd_metadata_list(cl, SRC_POOL, src, "rbdsnap.", &keys, &vals, &nk, &err) < 0) {
        snprintf(msg, len, "%s", rs_error_msg(&err));
        return 1;
    }
    if (nk)
        snprintf(msg, len, "metadata %s left on %s/%s", keys[0], SRC_POOL, src);
    rs_rbd_names_free(keys, nk);
    rs_rbd_names_free(vals, nk);
    if (nk)
        return 1;
    if (rs_rbd_checksum(cl, SRC_POOL, src, NULL, &sum, &err) < 0) {
        snprintf(msg, len, "%s", rs_error_msg(&err));
        return 1;
    }
    if (sum != src_sum) {
        snprintf(msg, len, "%s/%s changed", SRC_POOL, src);
        return 1;
    }
    return 0;
}

/* Nothing made by rbdsnap remains on @src, and no image @target exists. */
static void assert_nothing_left(const char *src, const char *const *targets, size_t ntargets,
                                uint64_t src_sum)
{
    char msg[1024];
    if (leftovers(src, targets, ntargets, src_sum, msg, sizeof(msg)))
        fail_msg("%s", msg);
}

static void run_ok(rs_flow_request *req, rs_flow_result *res)
{
    rs_error err = RS_ERROR_INIT;
    int rc = rs_flow_run(cl, req, res, &err);
    if (rc < 0)
        fail_msg("flow failed: %s (rc=%d)", rs_error_msg(&err), rc);
}

/* ---- data, both formats ----------------------------------------------- */

struct freeze_count {
    int freezes, thaws;
};

static int on_freeze(void *arg, rs_error *err)
{
    ((struct freeze_count *)arg)->freezes++;
    return 0;
}

static int on_thaw(void *arg, rs_error *err)
{
    ((struct freeze_count *)arg)->thaws++;
    return 0;
}

static void check_data(int format, rs_flatten_mode flatten, size_t ndisks)
{
    char src[RS_JOB_MAX_DISKS][96], target[64];
    const char *images[RS_JOB_MAX_DISKS];
    uint64_t sums[RS_JOB_MAX_DISKS];
    rs_error err = RS_ERROR_INIT;
    static rs_flow_result res;
    struct freeze_count fc = { 0 };
    static unsigned char buf[1 << 20];

    if (format == 2 && lab_format == 1)
        skip();
    uniq(target, sizeof(target), "img");
    for (size_t i = 0; i < ndisks; i++) {
        char base[64];
        uniq(base, sizeof(base), "src");
        snprintf(src[i], sizeof(src[i]), i ? "%s_disk.eph%zu" : "%s_disk", base, i - 1 + (i == 0));
        make_source(src[i]);
        images[i] = src[i];
        assert_int_equal(rs_rbd_checksum(cl, SRC_POOL, src[i], NULL, &sums[i], &err), 0);
    }
    expect_clone(target);
    for (size_t i = 1; i < ndisks; i++) {
        char c[96];
        snprintf(c, sizeof(c), "%s_eph%zu", target, i - 1);
        expect_clone(c);
    }

    rs_flow_request req = { .src_pool = SRC_POOL, .images = images, .nimages = ndisks,
                            .dest_pool = DST_POOL, .target = target, .flatten = flatten,
                            .clone_format = format, .instance_uuid = "test-instance",
                            .freeze = on_freeze, .thaw = on_thaw, .hook_arg = &fc };
    run_ok(&req, &res);
    assert_int_equal(fc.freezes, 1);
    assert_int_equal(fc.thaws, 1);
    assert_int_equal(res.clone_format, format);
    assert_int_equal(res.ndisks, ndisks);
    assert_string_equal(res.fsid, getenv("CEPH_FSID") ? getenv("CEPH_FSID") : res.fsid);

    /* The source keeps being written after the snapshot. */
    for (size_t i = 0; i < ndisks; i++) {
        fill(buf, sizeof(buf), 99);
        assert_int_equal(rs_rbd_write(cl, SRC_POOL, src[i], 0, sizeof(buf), buf, &err), 0);
        assert_int_equal(rs_rbd_write(cl, SRC_POOL, src[i], 12u << 20, sizeof(buf), buf, &err), 0);
    }
    if (flatten == RS_FLATTEN_DEFERRED) {
        assert_true(res.flatten_pending);
        /* Usable before the flatten: check now too. */
        uint64_t s = 0;
        assert_int_equal(rs_rbd_checksum(cl, DST_POOL, res.disks[0].clone, "snap", &s, &err), 0);
        assert_true(s == sums[0]);
        if (rs_flow_complete(cl, NULL, &res.job, NULL, NULL, &err) < 0)
            fail_msg("complete: %s", rs_error_msg(&err));
    }
    for (size_t i = 0; i < ndisks; i++) {
        uint64_t s = 0;
        bool prot = false;
        char *v = NULL;
        const rs_flow_disk_result *d = &res.disks[i];
        if (i == 0)
            assert_string_equal(d->clone, target);
        else
            assert_true(rs_str_has_prefix(d->clone, target) && strstr(d->clone, "_eph"));
        assert_int_equal(d->size, IMG_SIZE);
        assert_int_equal(rs_rbd_snap_is_protected(cl, DST_POOL, d->clone, "snap", &prot, &err), 0);
        assert_true(prot);
        assert_int_equal(rs_rbd_checksum(cl, DST_POOL, d->clone, "snap", &s, &err), 0);
        assert_true(s == sums[i]);
        /* Provenance. */
        assert_int_equal(rs_rbd_metadata_get(cl, DST_POOL, d->clone, RS_MD_JOB_ID, &v, &err), 0);
        assert_string_equal(v, res.job.id);
        free(v);
        assert_int_equal(rs_rbd_metadata_get(cl, DST_POOL, d->clone, RS_MD_ROLE, &v, &err), 0);
        assert_string_equal(v, "clone");
        free(v);
        assert_int_equal(rs_rbd_metadata_get(cl, DST_POOL, d->clone, RS_MD_SOURCE, &v, &err), 0);
        char want[1024];
        snprintf(want, sizeof(want), "%s/%s@%s", SRC_POOL, src[i], d->src_snap);
        assert_string_equal(v, want);
        free(v);
        assert_int_equal(rs_rbd_metadata_get(cl, DST_POOL, d->clone, RS_MD_INSTANCE_UUID, &v, &err), 0);
        assert_string_equal(v, "test-instance");
        free(v);
        /* Source snapshot: gone unless format 1 without flatten. */
        bool snap_exists = true;
        assert_int_equal(rs_rbd_snap_exists(cl, SRC_POOL, src[i], d->src_snap, &snap_exists, &err), 0);
        bool flat = flatten != RS_FLATTEN_NO;
        if (format == 2 || flat) {
            assert_false(snap_exists);
        } else {
            assert_true(snap_exists);
            char key[300 + RS_JOB_NAME_MAX];
            snprintf(key, sizeof(key), RS_MD_SNAP_PREFIX "%s", d->src_snap);
            assert_int_equal(rs_rbd_metadata_get(cl, SRC_POOL, src[i], key, &v, &err), 0);
            assert_string_equal(v, res.job.id);
            free(v);
        }
        char *pp = NULL, *pi = NULL, *ps = NULL;
        rs_error perr = RS_ERROR_INIT;
        int prc = rs_rbd_get_parent(cl, DST_POOL, d->clone, &pp, &pi, &ps, &perr);
        if (flat)
            assert_int_equal(prc, -ENOENT);
        else
            assert_int_equal(prc, 0);
        free(pp);
        free(pi);
        free(ps);
    }
}

static void test_data_f1_noflatten(void **s) { check_data(1, RS_FLATTEN_NO, 1); }
static void test_data_f1_flatten(void **s) { check_data(1, RS_FLATTEN_YES, 1); }
static void test_data_f1_deferred(void **s) { check_data(1, RS_FLATTEN_DEFERRED, 1); }
static void test_data_f2_noflatten(void **s) { check_data(2, RS_FLATTEN_NO, 1); }
static void test_data_f2_flatten(void **s) { check_data(2, RS_FLATTEN_YES, 1); }
static void test_data_f2_deferred(void **s) { check_data(2, RS_FLATTEN_DEFERRED, 1); }
static void test_data_f1_two_disks(void **s) { check_data(1, RS_FLATTEN_NO, 2); }
static void test_data_f2_two_disks(void **s) { check_data(2, RS_FLATTEN_YES, 2); }

/* ---- failure at every step ---------------------------------------------- */

static const char *const fail_steps[] = {
    "tag_source", "snap_create", "snap_protect", "clone", "tag_clone", "flatten",
    "clone_snap_create", "clone_snap_protect", "source_snap_remove",
};

static void fail_each_step(int format, size_t ndisks, const char *when)
{
    if (format == 2 && lab_format == 1)
        skip();
    for (size_t k = 0; k < sizeof(fail_steps) / sizeof(fail_steps[0]); k++) {
        for (int done = 0; done < 2; done++) {
            char src[RS_JOB_MAX_DISKS][96], target[64], spec[128], eph[96];
            const char *images[RS_JOB_MAX_DISKS];
            uint64_t sums[RS_JOB_MAX_DISKS];
            const char *targets[2];
            rs_error err = RS_ERROR_INIT;
            static rs_flow_result res;

            if (format == 2 && strcmp(fail_steps[k], "snap_protect") == 0)
                continue;         /* not a step of format 2 */
            uniq(target, sizeof(target), "img");
            snprintf(eph, sizeof(eph), "%s_eph0", target);
            targets[0] = target;
            targets[1] = eph;
            expect_clone(target);
            expect_clone(eph);
            for (size_t i = 0; i < ndisks; i++) {
                char base[64];
                uniq(base, sizeof(base), "src");
                snprintf(src[i], sizeof(src[i]), i ? "%s_disk.eph0" : "%s_disk", base);
                make_source(src[i]);
                images[i] = src[i];
                assert_int_equal(rs_rbd_checksum(cl, SRC_POOL, src[i], NULL, &sums[i], &err), 0);
            }
            /* With two disks, fail on the second disk's step so the first
             * disk's completed steps must be undone too. */
            snprintf(spec, sizeof(spec), "rbd.flow.%s%s=%s%s", fail_steps[k], done ? ".done" : "",
                     ndisks > 1 ? "2*" : "", when);
            assert_int_equal(rs_failpoint_configure(spec), 0);
            rs_flow_request req = { .src_pool = SRC_POOL, .images = images, .nimages = ndisks,
                                    .dest_pool = DST_POOL, .target = target,
                                    .flatten = RS_FLATTEN_YES, .clone_format = format };
            int rc = rs_flow_run(cl, &req, &res, &err);
            rs_failpoint_configure(NULL);
            if (rc >= 0)
                fail_msg("failpoint %s: flow succeeded", spec);
            assert_int_equal(rc, -EIO);
            assert_non_null(strstr(rs_error_msg(&err), fail_steps[k]));
            for (size_t i = 0; i < ndisks; i++)
                assert_nothing_left(src[i], targets, 2, sums[i]);
            teardown(NULL);
        }
    }
}

static void test_fail_f1(void **s) { fail_each_step(1, 1, "error"); }
static void test_fail_f2(void **s) { fail_each_step(2, 1, "error"); }
static void test_fail_f1_two_disks(void **s) { fail_each_step(1, 2, "error"); }
static void test_fail_f2_two_disks(void **s) { fail_each_step(2, 2, "error"); }

/* A flatten cancelled from the progress callback: -ECANCELED, rolled back. */
static int cancel_progress(const char *pool, const char *image, uint64_t done, uint64_t total,
                           void *arg)
{
    (*(int *)arg)++;
    return 1;
}

static void test_cancel_flatten(void **s)
{
    char src[96], target[64];
    const char *images[1] = { src };
    uint64_t sum = 0;
    int calls = 0;
    rs_error err = RS_ERROR_INIT;
    static rs_flow_result res;

    uniq(src, sizeof(src), "src");
    uniq(target, sizeof(target), "img");
    make_source(src);
    expect_clone(target);
    assert_int_equal(rs_rbd_checksum(cl, SRC_POOL, src, NULL, &sum, &err), 0);
    rs_flow_request req = { .src_pool = SRC_POOL, .images = images, .nimages = 1,
                            .dest_pool = DST_POOL, .target = target, .flatten = RS_FLATTEN_YES,
                            .clone_format = lab_format, .progress = cancel_progress,
                            .progress_arg = &calls };
    int rc = rs_flow_run(cl, &req, &res, &err);
    assert_true(calls > 0);
    assert_int_equal(rc, -ECANCELED);
    const char *targets[1] = { target };
    assert_nothing_left(src, targets, 1, sum);
}

/* ---- _exit at every step, then `rbdsnap recover` -----------------------
 *
 * Every crash first, each on its own source image and target, then one
 * `rbdsnap recover` that must roll all of them back, then the checks, then
 * a second recover that must find nothing.  A process that died in _exit
 * keeps the exclusive locks it took until the OSD times its watch out
 * (osd client watch timeout, 8 s in the lab), and recover waits for that:
 * a recover after each crash paid the wait once per step (~8 s each,
 * ~280 s for both formats); batched, the waits overlap. */

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

struct crash {
    char step[64];               /* failpoint step, e.g. "clone.done" */
    char src[96], target[64];
    uint64_t sum;
    int reported;                /* lines of the recover output naming it */
};

/* Run `rbdsnap recover` on @jdir.  Every "job ..." line it prints must name
 * the target of one of @cr and say action=rolled_back without error; counts
 * them in cr[].reported.  Returns the exit status; *unexpected counts the
 * other job lines. */
static int recover_all(const char *cli, const char *jdir, struct crash *cr, size_t nc,
                       int *unexpected)
{
    char cmd[1024], line[2048];
    snprintf(cmd, sizeof(cmd), "%s recover --journal-dir %s", cli, jdir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    *unexpected = 0;
    while (fgets(line, sizeof(line), p)) {
        if (strncmp(line, "job ", 4) != 0)
            continue;
        size_t i;
        for (i = 0; i < nc; i++) {
            char want[128];
            snprintf(want, sizeof(want), " target=%s/%s ", DST_POOL, cr[i].target);
            if (strstr(line, want))
                break;
        }
        if (i == nc || !strstr(line, " action=rolled_back ") || strstr(line, " error=")) {
            print_error("recover: unexpected: %s", line);
            (*unexpected)++;
            continue;
        }
        cr[i].reported++;
    }
    int st = pclose(p);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static void exit_each_step(int format)
{
    const char *bdir = getenv("RBDSNAP_BUILD_DIR");
    char cli[512], jdir[128], cmd[2048], msg[1024];
    static struct crash cr[2 * sizeof(fail_steps) / sizeof(fail_steps[0])];
    size_t nc = 0;
    int st, unexpected = 0, bad = 0;
    rs_error err = RS_ERROR_INIT;

    if (format == 2 && lab_format == 1)
        skip();
    if (!bdir)
        fail_msg("RBDSNAP_BUILD_DIR not set (run through ctest)");
    snprintf(cli, sizeof(cli), "%s/cli/rbdsnap", bdir);
    /* A journal of its own per format: only this test's jobs are in it. */
    snprintf(jdir, sizeof(jdir), "%s/f%d", tmpdir, format);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -m 700 '%s'", jdir, jdir);
    assert_int_equal(run_cmd(cmd), 0);

    /* 1. Crash at each step (and .done). */
    for (size_t k = 0; k < sizeof(fail_steps) / sizeof(fail_steps[0]); k++) {
        for (int done = 0; done < 2; done++) {
            if (format == 2 && strcmp(fail_steps[k], "snap_protect") == 0)
                continue;
            struct crash *c = &cr[nc++];
            memset(c, 0, sizeof(*c));
            snprintf(c->step, sizeof(c->step), "%s%s", fail_steps[k], done ? ".done" : "");
            uniq(c->src, sizeof(c->src), "src");
            uniq(c->target, sizeof(c->target), "img");
            make_source(c->src);
            expect_clone(c->target);
            assert_int_equal(rs_rbd_checksum(cl, SRC_POOL, c->src, NULL, &c->sum, &err), 0);
            snprintf(cmd, sizeof(cmd),
                     "RBDSNAP_FAILPOINTS=rbd.flow.%s=exit:99 %s snapshot --pool %s --image %s "
                     "--dest-pool %s --name %s --no-glance --flatten yes --clone-format %d --journal-dir %s "
                     ">/dev/null 2>&1", c->step, cli, SRC_POOL, c->src, DST_POOL, c->target, format,
                     jdir);
            st = run_cmd(cmd);
            if (st != 99)
                fail_msg("%s: expected exit 99, got %d", cmd, st);
        }
    }

    /* 2. One recover rolls every crashed job back, each reported once. */
    st = recover_all(cli, jdir, cr, nc, &unexpected);
    if (st != 0)
        fail_msg("rbdsnap recover after %zu crashes: exit %d", nc, st);
    for (size_t i = 0; i < nc; i++) {
        if (cr[i].reported != 1) {
            print_error("exit at %s: recover reported the job %d time(s), want 1\n", cr[i].step,
                        cr[i].reported);
            bad++;
        }
    }

    /* 3. Nothing left after any step (all checked, all failures named). */
    for (size_t i = 0; i < nc; i++) {
        const char *targets[1] = { cr[i].target };
        if (leftovers(cr[i].src, targets, 1, cr[i].sum, msg, sizeof(msg))) {
            print_error("exit at %s, after recover: %s\n", cr[i].step, msg);
            bad++;
        }
    }
    if (bad || unexpected)
        fail_msg("%d step(s) not recovered cleanly, %d unexpected recover line(s)", bad, unexpected);

    /* 4. Idempotent: a second recover finds nothing and succeeds. */
    for (size_t i = 0; i < nc; i++)
        cr[i].reported = 0;
    st = recover_all(cli, jdir, cr, nc, &unexpected);
    if (st != 0)
        fail_msg("second rbdsnap recover: exit %d", st);
    for (size_t i = 0; i < nc; i++)
        if (cr[i].reported)
            fail_msg("second recover reported the job of step %s again", cr[i].step);
    assert_int_equal(unexpected, 0);
}

static void test_exit_f1(void **s) { exit_each_step(1); }
static void test_exit_f2(void **s) { exit_each_step(2); }

/* ---- parallel ----------------------------------------------------------- */

#define NPAR 20

struct par {
    char src[96], target[64];
    uint64_t sum;
    int rc;
    char msg[256];
    rs_flow_result res;
};

static void *par_worker(void *p)
{
    struct par *w = p;
    const char *images[1] = { w->src };
    rs_error err = RS_ERROR_INIT;
    rs_flow_request req = { .src_pool = SRC_POOL, .images = images, .nimages = 1,
                            .dest_pool = DST_POOL, .target = w->target,
                            .flatten = RS_FLATTEN_NO, .clone_format = 0 };
    w->rc = rs_flow_run(cl, &req, &w->res, &err);
    snprintf(w->msg, sizeof(w->msg), "%s", rs_error_msg(&err));
    return NULL;
}

static void test_parallel_20(void **s)
{
    static struct par w[NPAR];
    pthread_t th[NPAR];
    rs_error err = RS_ERROR_INIT;

    for (int i = 0; i < NPAR; i++) {
        uniq(w[i].src, sizeof(w[i].src), "par");
        uniq(w[i].target, sizeof(w[i].target), "parimg");
        make_source(w[i].src);
        expect_clone(w[i].target);
        assert_int_equal(rs_rbd_checksum(cl, SRC_POOL, w[i].src, NULL, &w[i].sum, &err), 0);
    }
    unsigned connects = rs_cluster_connect_count(cl);
    for (int i = 0; i < NPAR; i++)
        assert_int_equal(pthread_create(&th[i], NULL, par_worker, &w[i]), 0);
    for (int i = 0; i < NPAR; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NPAR; i++) {
        uint64_t sum = 0;
        if (w[i].rc < 0)
            fail_msg("parallel snapshot %d failed: %s", i, w[i].msg);
        assert_int_equal(rs_rbd_checksum(cl, DST_POOL, w[i].target, "snap", &sum, &err), 0);
        assert_true(sum == w[i].sum);
    }
    /* One shared connection: no new ones for the parallel run. */
    assert_int_equal(rs_cluster_connect_count(cl), connects);
}

/* ---- clone format auto -------------------------------------------------- */

static void test_auto_format(void **s)
{
    int fmt = 0;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_rbd_clone_format_auto(cl, &fmt, &err), 0);
    assert_int_equal(fmt, lab_format);
}

/* The shared handle: a second connect with the same options is the same
 * object; ioctx borrow/return balance. */
static void test_shared_handle(void **s)
{
    rs_cluster *c2 = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_cluster_opts o = { .conf_file = getenv("CEPH_CONF"), .id = getenv("CEPH_ID"),
                          .keyring = getenv("CEPH_KEYRING") };
    assert_int_equal(rs_cluster_connect(&o, &c2, &err), 0);
    assert_ptr_equal(c2, cl);
    rs_cluster_unref(c2);
    void *io = NULL;
    assert_int_equal(rs_cluster_ioctx_get(cl, "no-such-pool-rstest", &io, &err), -ENOENT);
    assert_non_null(strstr(rs_error_msg(&err), "no-such-pool-rstest"));
}

#define GROUP(tests) { #tests, tests, sizeof(tests) / sizeof(tests[0]) }

int main(int argc, char **argv)
{
    rs_error err = RS_ERROR_INIT;
    rs_cluster_opts o = { .conf_file = getenv("CEPH_CONF"), .id = getenv("CEPH_ID"),
                          .keyring = getenv("CEPH_KEYRING") };
    const char *f = getenv("RBDSNAP_LAB_CLONE_FORMAT");

    if (!o.conf_file) {
        fprintf(stderr, "CEPH_CONF not set: run through tests/run-integration\n");
        return 1;
    }
    if (f && strcmp(f, "1") == 0)
        lab_format = 1;
    rs_log_set_level(RS_LOG_ERROR);
    if (rs_cluster_connect(&o, &cl, &err) < 0) {
        fprintf(stderr, "connect: %s\n", rs_error_msg(&err));
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rstest-journal-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;

    /* Groups, so ctest can run (and time out) them separately:
     * data, fail, exit, parallel; no argument runs all. */
    const struct CMUnitTest data[] = {
        cmocka_unit_test_teardown(test_shared_handle, teardown),
        cmocka_unit_test_teardown(test_auto_format, teardown),
        cmocka_unit_test_teardown(test_data_f1_noflatten, teardown),
        cmocka_unit_test_teardown(test_data_f1_flatten, teardown),
        cmocka_unit_test_teardown(test_data_f1_deferred, teardown),
        cmocka_unit_test_teardown(test_data_f2_noflatten, teardown),
        cmocka_unit_test_teardown(test_data_f2_flatten, teardown),
        cmocka_unit_test_teardown(test_data_f2_deferred, teardown),
        cmocka_unit_test_teardown(test_data_f1_two_disks, teardown),
        cmocka_unit_test_teardown(test_data_f2_two_disks, teardown),
        cmocka_unit_test_teardown(test_cancel_flatten, teardown),
    };
    const struct CMUnitTest fail[] = {
        cmocka_unit_test_teardown(test_fail_f1, teardown),
        cmocka_unit_test_teardown(test_fail_f2, teardown),
        cmocka_unit_test_teardown(test_fail_f1_two_disks, teardown),
        cmocka_unit_test_teardown(test_fail_f2_two_disks, teardown),
    };
    const struct CMUnitTest exits[] = {
        cmocka_unit_test_teardown(test_exit_f1, teardown),
        cmocka_unit_test_teardown(test_exit_f2, teardown),
    };
    const struct CMUnitTest parallel[] = {
        cmocka_unit_test_teardown(test_parallel_20, teardown),
    };
    const struct {
        const char *name;
        const struct CMUnitTest *tests;
        size_t n;
    } groups[] = { GROUP(data), GROUP(fail), GROUP(exits), GROUP(parallel) };
    int rc = 0, ran = 0;
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        if (argc > 1 && strcmp(argv[1], groups[g].name) != 0)
            continue;
        ran++;
        rc |= _cmocka_run_group_tests(groups[g].name, groups[g].tests, groups[g].n, NULL, NULL);
    }
    if (!ran) {
        fprintf(stderr, "unknown group %s (data, fail, exits, parallel)\n", argv[1]);
        rc = 2;
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    rs_cluster_unref(cl);
    return rc;
}
