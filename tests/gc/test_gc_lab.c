/*
 * test_gc_lab.c - the reaper's policy and runner against the lab's real
 * Ceph.
 *
 * Builds, with unique names, a *_to_be_deleted_by_glance tree of depth 3
 * (with a trash-namespace snapshot child under clone format 2), an image
 * moved to the RBD trash the way glance_store does it, a *_tbd image that is
 * the parent of a live instance disk, an orphan rbdsnap clone of that live
 * disk, and a user's own image.  Then scans the pools with librbd (a
 * prototype of what rbd/inventory.c will do: only this test's images are
 * taken in, so concurrent tests never interfere), plans, runs the plan with
 * librbd, and checks that exactly the garbage is gone and that librbd
 * accepted every action in the planned order.  A second cycle removes the
 * source snapshot the orphan clone had kept alive; a third finds nothing.
 * Everything created is removed at the end, also on failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#include "common/util.h"
#include "gc/graph.h"
#include "gc/policy.h"
#include "gc/report.h"
#include "gc/runner.h"

#define TBD "_to_be_deleted_by_glance"
#define MAX_OURS 32

static rados_t cl;
static rados_ioctx_t io_vms, io_img;
static int clone_format = 2;
static char tag[17];

/* Every image this test creates, for the scan filter and the cleanup. */
static struct { char pool[16]; char name[128]; } ours[MAX_OURS];
static size_t n_ours;

static rados_ioctx_t ioctx(const char *pool)
{
    return strcmp(pool, "vms") == 0 ? io_vms : io_img;
}

static bool is_ours(const char *pool, const char *name)
{
    for (size_t i = 0; i < n_ours; i++)
        if (strcmp(ours[i].pool, pool) == 0 && strcmp(ours[i].name, name) == 0)
            return true;
    return false;
}

static void remember(const char *pool, const char *name)
{
    assert_true(n_ours < MAX_OURS);
    snprintf(ours[n_ours].pool, sizeof(ours[n_ours].pool), "%s", pool);
    snprintf(ours[n_ours].name, sizeof(ours[n_ours].name), "%s", name);
    n_ours++;
}

/* A fresh instance-style uuid. */
static const char *uuid(void)
{
    static char bufs[16][37];
    static int k;
    char *b = bufs[k++ % 16];
    assert_int_equal(rs_random_uuid(b), 0);
    return b;
}

/* @prefix + @u + @suffix in a fresh string. */
static char *name_of(const char *prefix, const char *u, const char *suffix)
{
    char *s = rs_strdup_printf("%s%s%s", prefix, u, suffix);
    assert_non_null(s);
    return s;
}

/* ---- building the scenario (librbd) ------------------------------------ */

static void mk(const char *pool, const char *name)
{
    rbd_image_options_t o;
    rbd_image_options_create(&o);
    remember(pool, name);
    int rc = rbd_create4(ioctx(pool), name, 16 << 20, o);
    rbd_image_options_destroy(o);
    if (rc < 0)
        fail_msg("create %s/%s: %s", pool, name, strerror(-rc));
}

static void with_image(const char *pool, const char *name, int (*fn)(rbd_image_t, const char *),
                       const char *arg)
{
    rbd_image_t img;
    int rc = rbd_open(ioctx(pool), name, &img, NULL);
    if (rc < 0)
        fail_msg("open %s/%s: %s", pool, name, strerror(-rc));
    rc = fn(img, arg);
    rbd_close(img);
    if (rc < 0)
        fail_msg("%s/%s (%s): %s", pool, name, arg, strerror(-rc));
}

static int do_snap_create(rbd_image_t img, const char *s) { return rbd_snap_create(img, s); }
static int do_snap_protect(rbd_image_t img, const char *s) { return rbd_snap_protect(img, s); }
static int do_snap_remove(rbd_image_t img, const char *s) { return rbd_snap_remove(img, s); }

static void snap(const char *pool, const char *name, const char *s, bool protect)
{
    with_image(pool, name, do_snap_create, s);
    if (protect)
        with_image(pool, name, do_snap_protect, s);
}

static void clone_of(const char *ppool, const char *pname, const char *psnap, const char *pool,
                     const char *name)
{
    rbd_image_options_t o;
    rbd_image_options_create(&o);
    rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_CLONE_FORMAT, (uint64_t)clone_format);
    remember(pool, name);
    int rc = rbd_clone3(ioctx(ppool), pname, psnap, ioctx(pool), name, o);
    rbd_image_options_destroy(o);
    if (rc < 0)
        fail_msg("clone %s/%s@%s -> %s/%s: %s", ppool, pname, psnap, pool, name, strerror(-rc));
}

static void meta(const char *pool, const char *name, const char *k, const char *v)
{
    rbd_image_t img;
    assert_int_equal(rbd_open(ioctx(pool), name, &img, NULL), 0);
    int rc = rbd_metadata_set(img, k, v);
    rbd_close(img);
    assert_int_equal(rc, 0);
}

/* ---- scanning (a prototype of rbd/inventory.c) ------------------------- */

static void scan_meta(rs_gc_graph *g, const char *pool, const char *id, rbd_image_t img)
{
    size_t klen = 4096, vlen = 4096;
    char *keys = malloc(klen), *vals = malloc(vlen);
    assert_non_null(keys);
    assert_non_null(vals);
    int rc = rbd_metadata_list(img, "", 0, keys, &klen, vals, &vlen);
    if (rc == -ERANGE) {
        keys = realloc(keys, klen);
        vals = realloc(vals, vlen);
        rc = rbd_metadata_list(img, "", 0, keys, &klen, vals, &vlen);
    }
    assert_true(rc >= 0);
    rs_error err = RS_ERROR_INIT;
    const char *k = keys, *v = vals;
    while (k < keys + klen && *k) {
        if (rs_str_has_prefix(k, "rbdsnap."))
            assert_int_equal(rs_gc_graph_set_image_meta(g, pool, id, k, v, &err), 0);
        k += strlen(k) + 1;
        v += strlen(v) + 1;
    }
    free(keys);
    free(vals);
}

static void scan_snaps(rs_gc_graph *g, const char *pool, const char *id, rbd_image_t img)
{
    int max = 64;
    rbd_snap_info_t snaps[64];
    int n = rbd_snap_list(img, snaps, &max);
    assert_true(n >= 0);
    rs_error err = RS_ERROR_INIT;
    for (int i = 0; i < n; i++) {
        rbd_snap_namespace_type_t ns = RBD_SNAP_NAMESPACE_TYPE_USER;
        assert_int_equal(rbd_snap_get_namespace_type(img, snaps[i].id, &ns), 0);
        char orig[256] = "";
        if (ns == RBD_SNAP_NAMESPACE_TYPE_TRASH)
            assert_int_equal(rbd_snap_get_trash_namespace(img, snaps[i].id, orig, sizeof(orig)), 0);
        struct timespec ts = { 0, 0 };
        assert_int_equal(rbd_snap_get_timestamp(img, snaps[i].id, &ts), 0);
        int prot = 0;
        if (ns == RBD_SNAP_NAMESPACE_TYPE_USER)
            assert_int_equal(rbd_snap_is_protected(img, snaps[i].name, &prot), 0);
        rs_gc_snap_desc d = {
            .id = snaps[i].id, .name = snaps[i].name,
            .ns = ns == RBD_SNAP_NAMESPACE_TYPE_TRASH ? RS_GC_SNAP_NS_TRASH
                  : ns == RBD_SNAP_NAMESPACE_TYPE_USER ? RS_GC_SNAP_NS_USER
                                                       : RS_GC_SNAP_NS_GROUP,
            .trash_original_name = orig[0] ? orig : NULL,
            .is_protected = prot != 0, .created_at = ts.tv_sec,
        };
        assert_int_equal(rs_gc_graph_add_snap(g, pool, id, &d, &err), 0);
        /* children of this snapshot, in any pool, trashed ones too */
        assert_int_equal(rbd_snap_set_by_id(img, snaps[i].id), 0);
        rbd_linked_image_spec_t kids[32];
        size_t nk = 32;
        assert_int_equal(rbd_list_children3(img, kids, &nk), 0);
        for (size_t k = 0; k < nk; k++)
            assert_int_equal(rs_gc_graph_add_snap_child(g, pool, id, snaps[i].id,
                                                        kids[k].pool_name, kids[k].image_id,
                                                        &err), 0);
        rbd_linked_image_spec_list_cleanup(kids, nk);
    }
    rbd_snap_list_end(snaps);
}

static void scan_image(rs_gc_graph *g, const char *pool, const char *id, const char *name,
                       const rbd_trash_image_info_t *trash)
{
    rbd_image_t img;
    int rc = rbd_open_by_id_read_only(ioctx(pool), id, &img, NULL);
    if (rc == -ENOENT)
        return;   /* gone meanwhile */
    assert_int_equal(rc, 0);
    struct timespec ts = { 0, 0 };
    assert_int_equal(rbd_get_create_timestamp(img, &ts), 0);
    rbd_linked_image_spec_t pimg;
    rbd_snap_spec_t psnap;
    rc = rbd_get_parent(img, &pimg, &psnap);
    bool has_parent = rc == 0;
    assert_true(rc == 0 || rc == -ENOENT);
    rs_gc_image_desc d = {
        .pool = pool, .id = id, .name = name, .created_at = ts.tv_sec,
        .in_trash = trash != NULL,
        .trash_source = trash ? (rs_gc_trash_source)trash->source : RS_GC_TRASH_USER,
        .trash_deleted_at = trash ? trash->deletion_time : 0,
        .trash_deferment_end = trash ? trash->deferment_end_time : 0,
        .parent_pool = has_parent ? pimg.pool_name : NULL,
        .parent_id = has_parent ? pimg.image_id : NULL,
        .parent_snap_id = has_parent ? psnap.id : 0,
    };
    rs_error err = RS_ERROR_INIT;
    rc = rs_gc_graph_add_image(g, &d, &err);
    if (rc < 0)
        fail_msg("add %s/%s: %s", pool, name, rs_error_msg(&err));
    if (has_parent) {
        rbd_linked_image_spec_cleanup(&pimg);
        rbd_snap_spec_cleanup(&psnap);
    }
    scan_meta(g, pool, id, img);
    scan_snaps(g, pool, id, img);
    rbd_close(img);
}

static rs_gc_graph *scan(void)
{
    rs_gc_graph *g = NULL;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_gc_graph_new(&g, &err), 0);
    /* No Glance in this test: none of our uuids has a record. */
    rs_gc_graph_set_glance_complete(g, true);
    const char *pools[] = { "vms", "images" };
    for (int p = 0; p < 2; p++) {
        rbd_image_spec_t *specs = NULL;
        size_t n = 0;
        int rc = rbd_list2(ioctx(pools[p]), specs, &n);
        if (rc == -ERANGE) {
            specs = calloc(n, sizeof(*specs));
            assert_non_null(specs);
            rc = rbd_list2(ioctx(pools[p]), specs, &n);
        }
        assert_int_equal(rc, 0);
        for (size_t i = 0; i < n; i++)
            if (is_ours(pools[p], specs[i].name))
                scan_image(g, pools[p], specs[i].id, specs[i].name, NULL);
        if (specs) {
            rbd_image_spec_list_cleanup(specs, n);
            free(specs);
        }
        rbd_trash_image_info_t tr[256];
        size_t nt = 256;
        assert_true(rbd_trash_list(ioctx(pools[p]), tr, &nt) >= 0);
        for (size_t i = 0; i < nt; i++)
            if (is_ours(pools[p], tr[i].name))
                scan_image(g, pools[p], tr[i].id, tr[i].name, &tr[i]);
        rbd_trash_list_cleanup(tr, nt);
    }
    return g;
}

/* ---- executing (what the service's callback will do) ------------------- */

static int lab_exec(void *arg, const rs_gc_action *a, rs_error *err)
{
    (void)arg;
    rbd_image_t img;
    int rc;
    rados_ioctx_t io = a->pool ? ioctx(a->pool) : NULL;
    switch (a->type) {
    case RS_GC_ACT_UNPROTECT_SNAP:
    case RS_GC_ACT_REMOVE_SNAP:
        rc = rbd_open_by_id(io, a->image_id, &img, NULL);
        if (rc < 0)
            return rs_error_set(err, rc, "%s/%s: open by id %s", a->pool, a->image_name,
                                a->image_id);
        if (a->type == RS_GC_ACT_UNPROTECT_SNAP) {
            rc = rbd_snap_unprotect(img, a->snap_name);
            if (rc == -EINVAL)
                rc = 0;   /* not protected */
        } else {
            rc = rbd_snap_remove_by_id(img, a->snap_id);
        }
        rbd_close(img);
        if (rc < 0)
            return rs_error_set(err, rc, "%s/%s@%s: %s", a->pool, a->image_name, a->snap_name,
                                rs_gc_action_type_name(a->type));
        return 0;
    case RS_GC_ACT_REMOVE_IMAGE:
        rc = rbd_remove(io, a->image_name);
        return rc < 0 ? rs_error_set(err, rc, "%s/%s: remove", a->pool, a->image_name) : 0;
    case RS_GC_ACT_TRASH_REMOVE:
        rc = rbd_trash_remove(io, a->image_id, false);
        return rc < 0 ? rs_error_set(err, rc, "%s/%s: trash remove %s", a->pool, a->image_name,
                                     a->image_id) : 0;
    default:
        return rs_error_set(err, -EOPNOTSUPP, "%s: not in this test",
                            rs_gc_action_type_name(a->type));
    }
}

static bool exists(const char *pool, const char *name)
{
    rbd_image_t img;
    int rc = rbd_open_read_only(ioctx(pool), name, &img, NULL);
    if (rc == 0) {
        rbd_close(img);
        return true;
    }
    return false;
}

static bool in_trash(const char *pool, const char *name)
{
    rbd_trash_image_info_t tr[256];
    size_t nt = 256;
    bool found = false;
    if (rbd_trash_list(ioctx(pool), tr, &nt) < 0)
        return false;
    for (size_t i = 0; i < nt; i++)
        if (strcmp(tr[i].name, name) == 0)
            found = true;
    rbd_trash_list_cleanup(tr, nt);
    return found;
}

static bool has_snap(const char *pool, const char *name, const char *s)
{
    rbd_image_t img;
    if (rbd_open_read_only(ioctx(pool), name, &img, NULL) < 0)
        return false;
    uint64_t id;
    bool found = rbd_snap_get_id(img, s, &id) == 0;
    rbd_close(img);
    return found;
}

/* Plan over a fresh scan; run it; return the plan (caller frees). */
static struct rs_gc_plan *cycle(size_t *deletes)
{
    rs_gc_graph *g = scan();
    rs_gc_policy_opts o;
    rs_gc_policy_opts_init(&o);
    o.grace = 0;          /* everything here is seconds old */
    o.max_items = 0;
    struct rs_gc_plan *p = NULL;
    assert_int_equal(rs_gc_plan(g, &o, rs_wall_time() + 1, &p), 0);
    rs_gc_run_stats st;
    int rc = rs_gc_run(p, lab_exec, NULL, NULL, &st);
    char *s = NULL;
    assert_int_equal(rs_gc_report_render(p, RS_GC_REPORT_PLAIN, false, &s, NULL), 0);
    fputs(s, stderr);
    free(s);
    assert_int_equal(rc, 0);
    assert_int_equal(st.failed, 0);
    *deletes = rs_gc_plan_delete_count(p);
    rs_gc_graph_free(g);
    return p;
}

/* ---- the test ----------------------------------------------------------- */

static void test_lab_cycle(void **state)
{
    (void)state;
    char *A = name_of("", uuid(), "_disk" TBD);
    char *B = name_of("", uuid(), TBD);
    char *C = name_of("", uuid(), "_disk" TBD);
    char *D = name_of("", uuid(), "_disk_clone_0a0b" TBD);
    char *E = name_of("", uuid(), "");
    char *F = name_of("", uuid(), "_disk" TBD);
    char *P = name_of("", uuid(), TBD);
    char *L = name_of("", uuid(), "_disk");
    char *O = name_of("", uuid(), "");
    char *U = name_of("gc-user-", tag, "");
    char srcsnap[64], job[64];
    snprintf(srcsnap, sizeof(srcsnap), "rbdsnap-%s", tag);
    snprintf(job, sizeof(job), "job-%s", tag);

    /* depth-3 tree: A@s1 -> B; B@snap -> C; B@s2 -> D (s2 then trashed) */
    mk("vms", A);
    snap("vms", A, "s1", true);
    clone_of("vms", A, "s1", "images", B);
    snap("images", B, "snap", true);
    clone_of("images", B, "snap", "vms", C);
    if (clone_format == 2) {
        snap("images", B, "s2", false);
        clone_of("images", B, "s2", "vms", D);
        with_image("images", B, do_snap_remove, "s2");   /* -> trash namespace */
    }
    /* glance_store-style: E with a protected @snap and a clone, trashed */
    mk("images", E);
    snap("images", E, "snap", true);
    clone_of("images", E, "snap", "vms", F);
    assert_int_equal(rbd_trash_move(io_img, E, 0), 0);
    /* a *_tbd base of a live instance disk */
    mk("images", P);
    snap("images", P, "snap", true);
    clone_of("images", P, "snap", "vms", L);
    /* an orphan rbdsnap clone of the live disk (no Glance record) */
    char key[128];
    snprintf(key, sizeof(key), "rbdsnap.snap.%s", srcsnap);
    meta("vms", L, key, job);
    snap("vms", L, srcsnap, clone_format == 1);
    clone_of("vms", L, srcsnap, "images", O);
    meta("images", O, "rbdsnap.job_id", job);
    meta("images", O, "rbdsnap.role", "clone");
    /* a user's own image */
    mk("vms", U);
    snap("vms", U, "mine", true);

    /* cycle 1 */
    size_t deletes = 0;
    struct rs_gc_plan *p = cycle(&deletes);
    assert_int_equal(deletes, 3);   /* tree A, trashed E (with F), orphan O */
    for (size_t i = 0; i < rs_gc_plan_item_count(p); i++) {
        const rs_gc_item *it = rs_gc_plan_item(p, i);
        if (strstr(it->object, P))
            assert_int_equal(it->skip, RS_GC_SKIP_LIVE_ANCESTOR);
        if (strstr(it->object, srcsnap))
            assert_int_equal(it->skip, RS_GC_SKIP_HAS_CHILDREN);
    }
    rs_gc_plan_free(p);
    assert_false(exists("vms", A));
    assert_false(exists("images", B));
    assert_false(exists("vms", C));
    assert_false(exists("vms", D));
    assert_false(exists("vms", F));
    assert_false(in_trash("images", E));
    assert_false(exists("images", O));
    assert_true(exists("images", P));
    assert_true(has_snap("images", P, "snap"));
    assert_true(exists("vms", L));
    assert_true(has_snap("vms", L, srcsnap));
    assert_true(exists("vms", U));
    assert_true(has_snap("vms", U, "mine"));

    /* cycle 2: the source snapshot lost its clone */
    p = cycle(&deletes);
    assert_int_equal(deletes, 1);
    rs_gc_plan_free(p);
    assert_false(has_snap("vms", L, srcsnap));
    assert_true(exists("vms", L));

    /* cycle 3: nothing left to do */
    p = cycle(&deletes);
    assert_int_equal(deletes, 0);
    assert_int_equal(rs_gc_plan_action_count(p), 0);
    rs_gc_plan_free(p);
    free(A); free(B); free(C); free(D); free(E); free(F); free(P); free(L); free(O); free(U);
}

/* ---- setup and cleanup -------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *conf = getenv("CEPH_CONF");
    if (!conf)
        return -1;
    const char *id = getenv("CEPH_ID") ? getenv("CEPH_ID") : "admin";
    const char *fmt = getenv("RBDSNAP_LAB_CLONE_FORMAT");
    if (fmt && strcmp(fmt, "1") == 0)
        clone_format = 1;
    if (rs_random_hex(tag, 8) < 0)
        return -1;
    if (rados_create(&cl, id) < 0 || rados_conf_read_file(cl, conf) < 0)
        return -1;
    if (getenv("CEPH_KEYRING"))
        rados_conf_set(cl, "keyring", getenv("CEPH_KEYRING"));
    rados_conf_set(cl, "client_mount_timeout", "30");
    rados_conf_set(cl, "rados_mon_op_timeout", "30");
    rados_conf_set(cl, "rados_osd_op_timeout", "60");
    if (rados_connect(cl) < 0)
        return -1;
    if (rados_ioctx_create(cl, "vms", &io_vms) < 0 || rados_ioctx_create(cl, "images", &io_img) < 0)
        return -1;
    return 0;
}

/* Remove whatever of ours is left, leaves first, whatever the test did. */
static void cleanup_ours(void)
{
    for (int pass = 0; pass < 8; pass++) {
        bool left = false;
        for (size_t i = n_ours; i-- > 0;) {
            rados_ioctx_t io = ioctx(ours[i].pool);
            const char *name = ours[i].name;
            rbd_trash_image_info_t tr[256];
            size_t nt = 256;
            if (rbd_trash_list(io, tr, &nt) >= 0) {
                for (size_t k = 0; k < nt; k++)
                    if (strcmp(tr[k].name, name) == 0 &&
                        rbd_trash_restore(io, tr[k].id, name) < 0)
                        left = true;
                rbd_trash_list_cleanup(tr, nt);
            }
            rbd_image_t img;
            if (rbd_open(io, name, &img, NULL) < 0)
                continue;
            int max = 64;
            rbd_snap_info_t snaps[64];
            int n = rbd_snap_list(img, snaps, &max);
            for (int s = 0; s < n; s++) {
                rbd_snap_unprotect(img, snaps[s].name);
                rbd_snap_remove_by_id(img, snaps[s].id);
            }
            if (n > 0)
                rbd_snap_list_end(snaps);
            rbd_close(img);
            if (rbd_remove(io, name) < 0)
                left = true;
        }
        if (!left)
            return;
    }
    fprintf(stderr, "cleanup: some test images are left (tag %s)\n", tag);
}

static int teardown(void **state)
{
    (void)state;
    if (io_vms)
        cleanup_ours();
    if (io_vms)
        rados_ioctx_destroy(io_vms);
    if (io_img)
        rados_ioctx_destroy(io_img);
    if (cl)
        rados_shutdown(cl);
    return 0;
}

int main(void)
{
    if (!getenv("CEPH_CONF")) {
        fprintf(stderr, "SKIP: no lab environment (CEPH_CONF)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lab_cycle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
