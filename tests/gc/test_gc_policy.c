/*
 * test_gc_policy.c - unit tests of the reaper's policy on hand-built
 * graphs: what is garbage, what is skipped and why, and the order of the
 * actions.  Every plan also goes through check_invariants(), which fails
 * the test if a live instance disk is touched or an action comes in an
 * unsafe order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/util.h"
#include "gc/graph.h"
#include "gc/policy.h"
#include "gc/report.h"

#define NOW ((int64_t)1800000000)
#define OLD (NOW - 7 * 86400)
#define TBD "_to_be_deleted_by_glance"

/* Instance and Glance ids used in the scenarios. */
#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"
#define G1 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa1"
#define G2 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa2"
#define G3 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa3"

static rs_gc_graph *G;
static rs_gc_policy_opts O;
static struct rs_gc_plan *P;

static int setup(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_gc_graph_new(&G, &err), 0);
    rs_gc_graph_set_glance_complete(G, true);
    rs_gc_policy_opts_init(&O);
    O.max_items = 0;
    P = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rs_gc_plan_free(P);
    rs_gc_graph_free(G);
    P = NULL;
    G = NULL;
    return 0;
}

/* ---- graph builders ---------------------------------------------------- */

static void ok(int rc, rs_error *err)
{
    if (rc != 0)
        fail_msg("graph build failed: %d %s", rc, rs_error_msg(err));
}

static void image_full(const char *pool, const char *id, const char *name, int64_t created,
                       const char *ppool, const char *pid, uint64_t psnap)
{
    rs_error err = RS_ERROR_INIT;
    rs_gc_image_desc d = { .pool = pool, .id = id, .name = name, .size = 1 << 30,
                           .created_at = created, .parent_pool = ppool,
                           .parent_id = pid, .parent_snap_id = psnap };
    ok(rs_gc_graph_add_image(G, &d, &err), &err);
}

/* The image id is the name with a prefix: ids are unique, readable. */
static char *idof(const char *name)
{
    static char bufs[8][160];
    static int n;
    char *b = bufs[n++ % 8];
    snprintf(b, sizeof(bufs[0]), "id-%.150s", name);
    return b;
}

static void image(const char *pool, const char *name)
{
    image_full(pool, idof(name), name, OLD, NULL, NULL, 0);
}

static void clone(const char *pool, const char *name, const char *ppool, const char *pname,
                  uint64_t psnap)
{
    image_full(pool, idof(name), name, OLD, ppool, idof(pname), psnap);
}

static void trashed(const char *pool, const char *name, rs_gc_trash_source src, int64_t when)
{
    rs_error err = RS_ERROR_INIT;
    rs_gc_image_desc d = { .pool = pool, .id = idof(name), .name = name, .created_at = OLD,
                           .in_trash = true, .trash_source = src, .trash_deleted_at = when };
    ok(rs_gc_graph_add_image(G, &d, &err), &err);
}

static void snap_full(const char *pool, const char *name, uint64_t id, const char *sname,
                      rs_gc_snap_ns ns, const char *orig, bool prot, int64_t created)
{
    rs_error err = RS_ERROR_INIT;
    rs_gc_snap_desc d = { .id = id, .name = sname, .ns = ns, .trash_original_name = orig,
                          .is_protected = prot, .created_at = created };
    ok(rs_gc_graph_add_snap(G, pool, idof(name), &d, &err), &err);
}

static void snap(const char *pool, const char *name, uint64_t id, const char *sname, bool prot)
{
    snap_full(pool, name, id, sname, RS_GC_SNAP_NS_USER, NULL, prot, OLD);
}

static void meta(const char *pool, const char *name, const char *k, const char *v)
{
    rs_error err = RS_ERROR_INIT;
    ok(rs_gc_graph_set_image_meta(G, pool, idof(name), k, v, &err), &err);
}

static void glance(const char *id, const char *status, int64_t updated, const char *job)
{
    rs_error err = RS_ERROR_INIT;
    rs_gc_glance_desc d = { .id = id, .status = status, .created_at = updated,
                            .updated_at = updated };
    ok(rs_gc_graph_add_glance_image(G, &d, &err), &err);
    if (job)
        ok(rs_gc_graph_set_glance_property(G, id, "rbdsnap_job_id", job, &err), &err);
}

/* An rbdsnap clone in the Glance pool. */
static void rbdsnap_clone(const char *name, const char *job, const char *ppool,
                          const char *pname, uint64_t psnap)
{
    clone("images", name, ppool, pname, psnap);
    meta("images", name, "rbdsnap.job_id", job);
    meta("images", name, "rbdsnap.role", "clone");
}

/* ---- plan and its checks ----------------------------------------------- */

static bool is_live(const char *pool, const char *name)
{
    char u[37];
    if (strcmp(pool, "vms") != 0 || strlen(name) < 41)
        return false;
    memcpy(u, name, 36);
    u[36] = 0;
    return rs_is_uuid(u) && strncmp(name + 36, "_disk", 5) == 0 &&
           !rs_str_has_suffix(name, TBD);
}

/* Safety invariants every plan must keep. */
static void check_invariants(const struct rs_gc_plan *p)
{
    size_t n = rs_gc_plan_action_count(p);
    for (size_t i = 0; i < n; i++) {
        const rs_gc_action *a = rs_gc_plan_action(p, i);
        const rs_gc_item *it = rs_gc_plan_item(p, a->item);
        assert_non_null(it);
        assert_int_equal(it->skip, RS_GC_SKIP_NONE);
        assert_true(i >= it->first_action && i < it->first_action + it->n_actions);
        if (a->type == RS_GC_ACT_GLANCE_DELETE)
            continue;
        /* A live disk: only an rbdsnap source snapshot may go. */
        if (is_live(a->pool, a->image_name)) {
            assert_true(a->type == RS_GC_ACT_REMOVE_SNAP || a->type == RS_GC_ACT_UNPROTECT_SNAP);
            assert_true(it->kind == RS_GC_ITEM_SOURCE_SNAP || it->kind == RS_GC_ITEM_TRASHED_SNAP);
            assert_true(rs_str_has_prefix(a->snap_name, "rbdsnap-") || a->snap_in_trash_ns);
        }
        /* Nothing happens to an image after it is removed. */
        if (a->type == RS_GC_ACT_REMOVE_IMAGE || a->type == RS_GC_ACT_TRASH_REMOVE) {
            for (size_t j = i + 1; j < n; j++) {
                const rs_gc_action *b = rs_gc_plan_action(p, j);
                if (b->pool && strcmp(b->pool, a->pool) == 0 &&
                    strcmp(b->image_id, a->image_id) == 0)
                    fail_msg("action %zu on %s/%s after its removal", j, b->pool, b->image_name);
            }
        }
        /* Snapshots are unprotected before removal, removed once. */
        if (a->type == RS_GC_ACT_UNPROTECT_SNAP) {
            bool removed_later = false;
            for (size_t j = i + 1; j < n; j++) {
                const rs_gc_action *b = rs_gc_plan_action(p, j);
                if (b->type == RS_GC_ACT_REMOVE_SNAP && strcmp(b->image_id, a->image_id) == 0 &&
                    b->snap_id == a->snap_id)
                    removed_later = true;
            }
            assert_true(removed_later);
        }
        if (a->type == RS_GC_ACT_REMOVE_SNAP) {
            for (size_t j = i + 1; j < n; j++) {
                const rs_gc_action *b = rs_gc_plan_action(p, j);
                if ((b->type == RS_GC_ACT_REMOVE_SNAP || b->type == RS_GC_ACT_UNPROTECT_SNAP) &&
                    strcmp(b->pool, a->pool) == 0 && strcmp(b->image_id, a->image_id) == 0 &&
                    b->snap_id == a->snap_id)
                    fail_msg("snapshot %s@%s touched after removal", a->image_name, a->snap_name);
            }
        }
    }
}

static struct rs_gc_plan *plan(void)
{
    rs_gc_plan_free(P);
    P = NULL;
    assert_int_equal(rs_gc_plan(G, &O, NOW, &P), 0);
    assert_non_null(P);
    check_invariants(P);
    if (getenv("GC_TEST_VERBOSE")) {
        char *s = NULL;
        assert_int_equal(rs_gc_report_render(P, RS_GC_REPORT_PLAIN, true, &s, NULL), 0);
        fputs(s, stderr);
        free(s);
    }
    return P;
}

static const rs_gc_item *item(const char *object)
{
    for (size_t i = 0; i < rs_gc_plan_item_count(P); i++)
        if (strcmp(rs_gc_plan_item(P, i)->object, object) == 0)
            return rs_gc_plan_item(P, i);
    return NULL;
}

static const rs_gc_item *must_item(const char *object)
{
    const rs_gc_item *it = item(object);
    if (!it)
        fail_msg("no item for %s", object);
    return it;
}

/* Index of the action of @type on image @name (and snapshot @sname), -1. */
static long act(rs_gc_action_type type, const char *name, const char *sname)
{
    for (size_t i = 0; i < rs_gc_plan_action_count(P); i++) {
        const rs_gc_action *a = rs_gc_plan_action(P, i);
        if (a->type != type)
            continue;
        if (type == RS_GC_ACT_GLANCE_DELETE) {
            if (strcmp(a->glance_id, name) == 0)
                return (long)i;
            continue;
        }
        if (strcmp(a->image_name, name) != 0)
            continue;
        if (sname && (!a->snap_name || strcmp(a->snap_name, sname) != 0))
            continue;
        return (long)i;
    }
    return -1;
}

static long must_act(rs_gc_action_type type, const char *name, const char *sname)
{
    long i = act(type, name, sname);
    if (i < 0)
        fail_msg("no %s on %s%s%s", rs_gc_action_type_name(type), name, sname ? "@" : "",
                 sname ? sname : "");
    return i;
}

static void no_action_on(const char *name)
{
    for (size_t i = 0; i < rs_gc_plan_action_count(P); i++) {
        const rs_gc_action *a = rs_gc_plan_action(P, i);
        if (a->image_name && strcmp(a->image_name, name) == 0)
            fail_msg("unexpected %s on %s", rs_gc_action_type_name(a->type), name);
    }
}

static void skipped(const char *object, rs_gc_skip_reason why)
{
    const rs_gc_item *it = must_item(object);
    if (it->skip != why)
        fail_msg("%s: skip %s, expected %s (%s)", object, rs_gc_skip_reason_name(it->skip),
                 rs_gc_skip_reason_name(why), it->reason);
    assert_int_equal(it->n_actions, 0);
}

static void deleted(const char *object, rs_gc_item_kind kind)
{
    const rs_gc_item *it = must_item(object);
    if (it->skip != RS_GC_SKIP_NONE)
        fail_msg("%s skipped: %s (%s)", object, rs_gc_skip_reason_name(it->skip), it->reason);
    assert_int_equal(it->kind, kind);
    assert_true(it->n_actions > 0);
}

/* ---- scenarios --------------------------------------------------------- */

/* 1. A lone *_to_be_deleted_by_glance disk. */
static void test_tbd_depth1(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    plan();
    deleted("vms/" U1 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    assert_int_equal(rs_gc_plan_action_count(P), 1);
    must_act(RS_GC_ACT_REMOVE_IMAGE, U1 "_disk" TBD, NULL);
}

/* 2. Disk -> protected snap -> Glance-pool clone renamed *_tbd. */
static void test_tbd_depth2(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 4, "snap", true);
    clone("images", G1 TBD, "vms", U1 "_disk" TBD, 4);
    plan();
    deleted("vms/" U1 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    assert_int_equal(rs_gc_plan_item_count(P), 1);   /* the child is in the same item */
    long child = must_act(RS_GC_ACT_REMOVE_IMAGE, G1 TBD, NULL);
    long unprot = must_act(RS_GC_ACT_UNPROTECT_SNAP, U1 "_disk" TBD, "snap");
    long rmsnap = must_act(RS_GC_ACT_REMOVE_SNAP, U1 "_disk" TBD, "snap");
    long root = must_act(RS_GC_ACT_REMOVE_IMAGE, U1 "_disk" TBD, NULL);
    assert_true(child < unprot && unprot < rmsnap && rmsnap < root);
    assert_int_equal(rs_gc_plan_action_count(P), 4);
}

/* 3. Depth 3 with a clone disk, cross-pool child, a trash-namespace
 *    snapshot child; children always before parents. */
static void test_tbd_depth3_order(void **state)
{
    (void)state;
    const char *a = U1 "_disk" TBD;
    const char *b = U1 "_disk_clone_0a1b2c" TBD;
    const char *c = G1 TBD;
    const char *d = G2 TBD;
    image("vms", a);
    snap("vms", a, 1, "s1", true);
    clone("vms", b, "vms", a, 1);
    snap("vms", b, 2, "s2", true);
    snap_full("vms", b, 3, "c0ffee-trash", RS_GC_SNAP_NS_TRASH, "rbdsnap-x", false, OLD);
    clone("images", c, "vms", b, 2);
    clone("images", d, "vms", b, 3);
    snap("images", c, 7, "snap", true);
    plan();
    deleted("vms/" U1 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    assert_int_equal(rs_gc_plan_item_count(P), 1);
    long rm_c = must_act(RS_GC_ACT_REMOVE_IMAGE, c, NULL);
    long rm_d = must_act(RS_GC_ACT_REMOVE_IMAGE, d, NULL);
    long un_c = must_act(RS_GC_ACT_UNPROTECT_SNAP, c, "snap");
    long rs_c = must_act(RS_GC_ACT_REMOVE_SNAP, c, "snap");
    long rs_b2 = must_act(RS_GC_ACT_REMOVE_SNAP, b, "s2");
    long rs_b3 = must_act(RS_GC_ACT_REMOVE_SNAP, b, "c0ffee-trash");
    long rm_b = must_act(RS_GC_ACT_REMOVE_IMAGE, b, NULL);
    long rs_a = must_act(RS_GC_ACT_REMOVE_SNAP, a, "s1");
    long rm_a = must_act(RS_GC_ACT_REMOVE_IMAGE, a, NULL);
    assert_true(un_c < rs_c && rs_c < rm_c);
    assert_true(rm_c < rs_b2 && rm_d < rs_b3);
    assert_true(rs_b2 < rm_b && rs_b3 < rm_b);
    assert_true(rm_b < rs_a && rs_a < rm_a);
    assert_int_equal(rm_a, (long)rs_gc_plan_action_count(P) - 1);
    assert_true(rs_gc_plan_action(P, (size_t)rs_b3)->snap_in_trash_ns);
    assert_int_equal(act(RS_GC_ACT_UNPROTECT_SNAP, b, "c0ffee-trash"), -1);
}

/* 4. A *_tbd tree with a live grandchild is kept whole. */
static void test_tbd_live_grandchild(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "s1", true);
    clone("images", G1 TBD, "vms", U1 "_disk" TBD, 1);
    snap("images", G1 TBD, 2, "snap", true);
    clone("vms", U2 "_disk", "images", G1 TBD, 2);
    plan();
    assert_int_equal(rs_gc_plan_action_count(P), 0);
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_LIVE_ANCESTOR);
    skipped("images/" G1 TBD, RS_GC_SKIP_LIVE_ANCESTOR);
    assert_null(item("vms/" U2 "_disk"));
}

/* 5. Blocked by a descendant that is not proven garbage (a Cinder
 *    volume in another pool, an unknown child outside the scan). */
static void test_tbd_foreign_descendants(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "s1", true);
    clone("volumes", "volume-" U3, "vms", U1 "_disk" TBD, 1);
    image("vms", U2 "_disk" TBD);
    snap("vms", U2 "_disk" TBD, 1, "s1", true);
    rs_error err = RS_ERROR_INIT;
    ok(rs_gc_graph_add_snap_child(G, "vms", idof(U2 "_disk" TBD), 1, "other", "deadbeef", &err),
       &err);
    /* a healthy sibling tree is still deleted */
    image("vms", U3 "_disk" TBD);
    plan();
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_LIVE_DESCENDANT);
    assert_non_null(strstr(must_item("vms/" U1 "_disk" TBD)->reason, "volume-" U3));
    skipped("vms/" U2 "_disk" TBD, RS_GC_SKIP_LIVE_DESCENDANT);
    assert_non_null(strstr(must_item("vms/" U2 "_disk" TBD)->reason, "outside the scan"));
    deleted("vms/" U3 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    no_action_on("volume-" U3);
    no_action_on(U1 "_disk" TBD);
}

/* 6. A subtree that is partly garbage: the garbage branch goes, the
 *    blocked root stays. */
static void test_tbd_partial_subtree(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "s1", true);
    clone("images", G1 TBD, "vms", U1 "_disk" TBD, 1);
    clone("images", G2, "vms", U1 "_disk" TBD, 1);   /* Glance image in use */
    glance(G2, "active", OLD, NULL);
    plan();
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_LIVE_DESCENDANT);
    deleted("images/" G1 TBD, RS_GC_ITEM_TBD_TREE);
    no_action_on(G2);
    no_action_on(U1 "_disk" TBD);
}

/* 7. Glance moved an image with snapshots to the trash. */
static void test_glance_trashed(void **state)
{
    (void)state;
    trashed("images", G1, RS_GC_TRASH_USER, OLD);
    snap("images", G1, 9, "snap", true);
    clone("vms", U1 "_disk" TBD, "images", G1, 9);
    glance(G1, "deleted", OLD, NULL);
    trashed("images", G2, RS_GC_TRASH_USER, OLD);           /* record missing */
    trashed("images", G3, RS_GC_TRASH_USER, OLD);           /* record still active */
    glance(G3, "active", OLD, NULL);
    trashed("images", "not-a-uuid", RS_GC_TRASH_USER, OLD); /* whose? */
    trashed("images", U3, RS_GC_TRASH_MIRRORING, OLD);
    plan();
    deleted("images/" G1 " [trash id-" G1 "]", RS_GC_ITEM_TRASHED_IMAGE);
    long rm_child = must_act(RS_GC_ACT_REMOVE_IMAGE, U1 "_disk" TBD, NULL);
    long un = must_act(RS_GC_ACT_UNPROTECT_SNAP, G1, "snap");
    long rs = must_act(RS_GC_ACT_REMOVE_SNAP, G1, "snap");
    long tr = must_act(RS_GC_ACT_TRASH_REMOVE, G1, NULL);
    assert_true(rm_child < un && un < rs && rs < tr);
    assert_true(rs_gc_plan_action(P, (size_t)tr)->image_in_trash);
    assert_string_equal(rs_gc_plan_action(P, (size_t)tr)->image_id, "id-" G1);
    deleted("images/" G2 " [trash id-" G2 "]", RS_GC_ITEM_TRASHED_IMAGE);
    skipped("images/" G3 " [trash id-" G3 "]", RS_GC_SKIP_GLANCE_RECORD);
    skipped("images/not-a-uuid [trash id-not-a-uuid]", RS_GC_SKIP_UNKNOWN_OWNER);
    skipped("images/" U3 " [trash id-" U3 "]", RS_GC_SKIP_UNKNOWN_OWNER);
}

/* 8. Without a complete Glance listing, "no record" proves nothing. */
static void test_glance_listing_incomplete(void **state)
{
    (void)state;
    rs_gc_graph_set_glance_complete(G, false);
    trashed("images", G2, RS_GC_TRASH_USER, OLD);
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "rbdsnap-1", false);
    meta("vms", U1 "_disk" TBD, "rbdsnap.snap.rbdsnap-1", "j1");
    rbdsnap_clone(G1, "j1", "vms", U1 "_disk" TBD, 1);
    plan();
    skipped("images/" G2 " [trash id-" G2 "]", RS_GC_SKIP_GLANCE_UNKNOWN);
    skipped("images/" G1, RS_GC_SKIP_GLANCE_UNKNOWN);
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_LIVE_DESCENDANT);
    assert_int_equal(rs_gc_plan_action_count(P), 0);
}

/* 9. Orphans of a killed snapshot: the clone (record killed / missing)
 *    goes, the source snapshot waits for the next cycle, the live disk
 *    stays, the killed record goes. */
static void test_orphan_clone_killed(void **state)
{
    (void)state;
    image("vms", U1 "_disk");
    snap("vms", U1 "_disk", 5, "rbdsnap-aa", true);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-aa", "j1");
    rbdsnap_clone(G1, "j1", "vms", U1 "_disk", 5);
    snap("images", G1, 6, "snap", true);
    glance(G1, "killed", OLD, "j1");
    snap("vms", U1 "_disk", 7, "rbdsnap-bb", false);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-bb", "j2");
    rbdsnap_clone(G2, "j2", "vms", U1 "_disk", 7);   /* no record at all */
    plan();
    deleted("images/" G1, RS_GC_ITEM_ORPHAN_IMAGE);
    deleted("images/" G2, RS_GC_ITEM_ORPHAN_IMAGE);
    long un = must_act(RS_GC_ACT_UNPROTECT_SNAP, G1, "snap");
    long rs = must_act(RS_GC_ACT_REMOVE_SNAP, G1, "snap");
    long rm = must_act(RS_GC_ACT_REMOVE_IMAGE, G1, NULL);
    assert_true(un < rs && rs < rm);
    skipped("vms/" U1 "_disk@rbdsnap-aa", RS_GC_SKIP_HAS_CHILDREN);
    skipped("vms/" U1 "_disk@rbdsnap-bb", RS_GC_SKIP_HAS_CHILDREN);
    deleted("glance:" G1, RS_GC_ITEM_STUCK_RECORD);
    must_act(RS_GC_ACT_GLANCE_DELETE, G1, NULL);
    assert_int_equal(act(RS_GC_ACT_REMOVE_IMAGE, U1 "_disk", NULL), -1);

    /* next cycle: the clones are gone, the source snapshots go */
    teardown(NULL);
    setup(NULL);
    image("vms", U1 "_disk");
    snap("vms", U1 "_disk", 5, "rbdsnap-aa", true);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-aa", "j1");
    plan();
    deleted("vms/" U1 "_disk@rbdsnap-aa", RS_GC_ITEM_SOURCE_SNAP);
    long u = must_act(RS_GC_ACT_UNPROTECT_SNAP, U1 "_disk", "rbdsnap-aa");
    long r = must_act(RS_GC_ACT_REMOVE_SNAP, U1 "_disk", "rbdsnap-aa");
    assert_true(u < r);
    assert_int_equal(rs_gc_plan_action_count(P), 2);
}

/* 10. Records rbdsnap left queued/saving. */
static void test_stuck_records(void **state)
{
    (void)state;
    glance(G1, "queued", OLD, "j1");
    glance(G2, "saving", NOW - 60, "j2");                         /* young */
    glance(G3, "queued", OLD, "j3");                              /* job runs */
    glance("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbb1", "queued", OLD, NULL);  /* not ours */
    glance("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbb2", "active", OLD, "j4");  /* fine */
    rs_error err = RS_ERROR_INIT;
    ok(rs_gc_graph_add_running_job(G, "j3", &err), &err);
    /* the clone of the stuck record is an orphan too */
    image("vms", U1 "_disk");
    snap("vms", U1 "_disk", 1, "rbdsnap-1", false);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-1", "j1");
    rbdsnap_clone(G1, "j1", "vms", U1 "_disk", 1);
    rbdsnap_clone(G3, "j3", "vms", U1 "_disk", 1);
    plan();
    deleted("glance:" G1, RS_GC_ITEM_STUCK_RECORD);
    must_act(RS_GC_ACT_GLANCE_DELETE, G1, NULL);
    skipped("glance:" G2, RS_GC_SKIP_GRACE);
    skipped("glance:" G3, RS_GC_SKIP_RUNNING_JOB);
    assert_null(item("glance:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbb1"));
    assert_null(item("glance:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbb2"));
    deleted("images/" G1, RS_GC_ITEM_ORPHAN_IMAGE);
    skipped("images/" G3, RS_GC_SKIP_GLANCE_RECORD);
    assert_int_equal(act(RS_GC_ACT_GLANCE_DELETE, G3, NULL), -1);
}

/* 11. A live instance whose rbdsnap snapshot is still in use by an
 *     active Glance image; a finished one is cleaned. */
static void test_live_instance_snapshot_in_use(void **state)
{
    (void)state;
    image("images", G3);                       /* the base image */
    snap("images", G3, 1, "snap", true);
    glance(G3, "active", OLD, NULL);
    clone("vms", U1 "_disk", "images", G3, 1);
    snap("vms", U1 "_disk", 2, "rbdsnap-live", true);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-live", "j1");
    rbdsnap_clone(G1, "j1", "vms", U1 "_disk", 2);
    glance(G1, "active", OLD, "j1");
    snap("vms", U1 "_disk", 3, "rbdsnap-done", false);
    meta("vms", U1 "_disk", "rbdsnap.snap.rbdsnap-done", "j2");
    snap("vms", U1 "_disk", 4, "nova-snap", true);   /* not ours */
    image("vms", U1 "_disk.eph0");
    plan();
    skipped("vms/" U1 "_disk@rbdsnap-live", RS_GC_SKIP_HAS_CHILDREN);
    deleted("vms/" U1 "_disk@rbdsnap-done", RS_GC_ITEM_SOURCE_SNAP);
    assert_int_equal(rs_gc_plan_action_count(P), 1);
    must_act(RS_GC_ACT_REMOVE_SNAP, U1 "_disk", "rbdsnap-done");
    no_action_on(G1);
    no_action_on(G3);
    no_action_on(U1 "_disk.eph0");
    assert_null(item("images/" G1));
    assert_null(item("vms/" U1 "_disk@nova-snap"));
}

/* 12. A user's own images: unknown owner, never touched. */
static void test_unrelated_user_images(void **state)
{
    (void)state;
    image("vms", "my-database");
    snap("vms", "my-database", 1, "before-upgrade", true);
    snap("vms", "my-database", 2, "rbdsnap-lookalike", false);   /* no tag */
    image("images", "hand-made");
    snap("images", "hand-made", 1, "s1", true);
    clone("vms", "hand-made-child", "images", "hand-made", 1);
    image("rbd", "something" TBD);             /* suffix outside our pools */
    plan();
    assert_int_equal(rs_gc_plan_action_count(P), 0);
    assert_int_equal(rs_gc_plan_delete_count(P), 0);
    skipped("images/hand-made", RS_GC_SKIP_UNKNOWN_OWNER);
    skipped("vms/my-database@rbdsnap-lookalike", RS_GC_SKIP_UNKNOWN_OWNER);
    assert_null(item("vms/my-database"));
    assert_null(item("rbd/something" TBD));
}

/* 13. Grace period: young images, snapshots, trash entries, records. */
static void test_grace_period(void **state)
{
    (void)state;
    image_full("vms", "id-young", U1 "_disk" TBD, NOW - 100, NULL, NULL, 0);
    image("vms", U2 "_disk" TBD);
    snap_full("vms", U2 "_disk" TBD, 1, "fresh", RS_GC_SNAP_NS_USER, NULL, false, NOW - 5);
    image_full("vms", "id-unknown-age", U3 "_disk" TBD, 0, NULL, NULL, 0);
    trashed("images", G1, RS_GC_TRASH_USER, NOW - 30);
    rbdsnap_clone(G2, "j2", "vms", "nonexistent", 1);
    meta("images", G2, "rbdsnap.created_at", "1799999990");
    image("vms", "d");
    snap_full("vms", "d", 1, "rbdsnap-new", RS_GC_SNAP_NS_USER, NULL, false, NOW - 10);
    meta("vms", "d", "rbdsnap.snap.rbdsnap-new", "j9");
    plan();
    assert_int_equal(rs_gc_plan_action_count(P), 0);
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_GRACE);
    skipped("vms/" U2 "_disk" TBD, RS_GC_SKIP_GRACE);
    skipped("vms/" U3 "_disk" TBD, RS_GC_SKIP_GRACE);
    skipped("images/" G1 " [trash id-" G1 "]", RS_GC_SKIP_GRACE);
    skipped("images/" G2, RS_GC_SKIP_GRACE);
    skipped("vms/d@rbdsnap-new", RS_GC_SKIP_GRACE);
    /* the same graph an hour later is all garbage, except unknown age */
    rs_gc_plan_free(P);
    P = NULL;
    assert_int_equal(rs_gc_plan(G, &O, NOW + 2 * 3600, &P), 0);
    check_invariants(P);
    deleted("vms/" U1 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    deleted("vms/" U2 "_disk" TBD, RS_GC_ITEM_TBD_TREE);
    skipped("vms/" U3 "_disk" TBD, RS_GC_SKIP_GRACE);
    deleted("images/" G2, RS_GC_ITEM_ORPHAN_IMAGE);
    deleted("vms/d@rbdsnap-new", RS_GC_ITEM_SOURCE_SNAP);
}

/* 14. Running jobs and locks keep things, and their ancestors. */
static void test_running_job_and_lock(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    rbdsnap_clone(G1, "job-running", "vms", "x", 1);
    rbdsnap_clone(G2, "job-done", "vms", "x", 1);
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "s", false);
    clone("vms", U2 "_disk" TBD, "vms", U1 "_disk" TBD, 1);
    image("vms", U3 "_disk" TBD);
    ok(rs_gc_graph_add_running_job(G, "job-running", &err), &err);
    ok(rs_gc_graph_add_locked_image(G, "vms", U2 "_disk" TBD, &err), &err);
    ok(rs_gc_graph_add_locked_image(G, "vms", idof(U3 "_disk" TBD), &err), &err);
    plan();
    skipped("images/" G1, RS_GC_SKIP_RUNNING_JOB);
    deleted("images/" G2, RS_GC_ITEM_ORPHAN_IMAGE);
    skipped("vms/" U2 "_disk" TBD, RS_GC_SKIP_LOCKED);
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_LIVE_DESCENDANT);
    assert_non_null(strstr(must_item("vms/" U1 "_disk" TBD)->reason, "locked"));
    skipped("vms/" U3 "_disk" TBD, RS_GC_SKIP_LOCKED);   /* locked by id */
    no_action_on(G1);
}

/* 15. max_items bounds a cycle; the rest is deferred, in order. */
static void test_max_items(void **state)
{
    (void)state;
    char name[128];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "%08d-0000-4000-8000-000000000000_disk" TBD, i);
        image("vms", name);
        snap("vms", name, 1, "snap", true);
    }
    glance(G1, "queued", OLD, "j1");
    O.max_items = 3;
    plan();
    assert_int_equal(rs_gc_plan_delete_count(P), 3);
    assert_int_equal(rs_gc_plan_item_count(P), 11);
    assert_int_equal(rs_gc_plan_action_count(P), 9);
    size_t deferred = 0;
    for (size_t i = 0; i < rs_gc_plan_item_count(P); i++)
        if (rs_gc_plan_item(P, i)->skip == RS_GC_SKIP_MAX_ITEMS)
            deferred++;
    assert_int_equal(deferred, 8);
    skipped("glance:" G1, RS_GC_SKIP_MAX_ITEMS);
    O.max_items = 0;
    plan();
    assert_int_equal(rs_gc_plan_delete_count(P), 11);
}

/* 16. Trash deferment, and a dangling parent link. */
static void test_deferment_and_inconsistency(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    rs_gc_image_desc d = { .pool = "vms", .id = "t1", .name = U1 "_disk" TBD,
                           .created_at = OLD, .in_trash = true,
                           .trash_deleted_at = OLD, .trash_deferment_end = NOW + 600 };
    ok(rs_gc_graph_add_image(G, &d, &err), &err);
    image("vms", U2 "_disk" TBD);
    snap("vms", U2 "_disk" TBD, 1, "s", false);
    clone("images", G1 TBD, "vms", U2 "_disk" TBD, 42);   /* no snapshot 42 */
    plan();
    skipped("vms/" U1 "_disk" TBD " [trash t1]", RS_GC_SKIP_TRASH_DEFERRED);
    skipped("vms/" U2 "_disk" TBD, RS_GC_SKIP_INCONSISTENT);
    deleted("images/" G1 TBD, RS_GC_ITEM_TBD_TREE);
    no_action_on(U2 "_disk" TBD);
}

/* 17. Optional flattening of deep rbdsnap clones, rate-limited. */
static void test_flatten_depth(void **state)
{
    (void)state;
    image("images", "base");
    const char *prev = "base";
    char names[8][32];
    for (int i = 0; i < 7; i++) {
        snap("images", prev, 1, "snap", true);
        snprintf(names[i], sizeof(names[i]), "chain-%d", i + 1);
        rbdsnap_clone(names[i], "j", "images", prev, 1);
        glance(names[i], "active", OLD, NULL);
        prev = names[i];
    }
    glance("base", "active", OLD, NULL);
    O.flatten_soft_depth = 4;
    O.flatten_hard_depth = 6;
    O.max_flatten = 2;
    plan();
    /* depths 5, 6, 7: 7 is over the hard limit and goes first */
    deleted("images/chain-7", RS_GC_ITEM_FLATTEN);
    deleted("images/chain-6", RS_GC_ITEM_FLATTEN);
    skipped("images/chain-5", RS_GC_SKIP_RATE_LIMIT);
    assert_true(must_act(RS_GC_ACT_FLATTEN, "chain-7", NULL) <
                must_act(RS_GC_ACT_FLATTEN, "chain-6", NULL));
    assert_null(item("images/chain-4"));
    O.flatten_soft_depth = 0;
    plan();
    assert_int_equal(rs_gc_plan_item_count(P), 0);
}

/* 18. Report rendering, plain and JSON, with results recorded. */
static void test_report(void **state)
{
    (void)state;
    image("vms", U1 "_disk" TBD);
    snap("vms", U1 "_disk" TBD, 1, "snap", true);
    image_full("vms", "id-young", U2 "_disk" TBD, NOW - 1, NULL, NULL, 0);
    glance(G1, "queued", OLD, "j1");
    plan();
    assert_int_equal(rs_gc_plan_action_count(P), 4);
    char *s = NULL;
    assert_int_equal(rs_gc_report_render(P, RS_GC_REPORT_PLAIN, true, &s, NULL), 0);
    assert_non_null(strstr(s, "dry run"));
    assert_non_null(strstr(s, "DELETE tbd_tree vms/" U1 "_disk" TBD));
    assert_non_null(strstr(s, "unprotect_snap"));
    assert_non_null(strstr(s, "SKIPPED"));
    assert_non_null(strstr(s, "[grace]"));
    free(s);

    rs_gc_plan_set_result(P, 0, 0);
    rs_gc_plan_set_result(P, 1, -16);   /* EBUSY: the rest of the item is not run */
    assert_int_equal(rs_gc_plan_action(P, 2)->state, RS_GC_ACT_NOT_RUN);
    assert_int_equal(rs_gc_plan_action(P, 3)->state, RS_GC_ACT_PLANNED);   /* other item */
    s = NULL;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_gc_report_render(P, RS_GC_REPORT_JSON, false, &s, &err), 0);
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    json_t *sum = json_object_get(j, "summary");
    assert_int_equal(json_integer_value(json_object_get(sum, "found")), 3);
    assert_int_equal(json_integer_value(json_object_get(sum, "delete")), 2);
    assert_int_equal(json_integer_value(json_object_get(sum, "skipped")), 1);
    assert_int_equal(json_integer_value(json_object_get(sum, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(sum, "not_run")), 1);
    assert_false(json_is_true(json_object_get(j, "dry_run")));
    json_t *d0 = json_array_get(json_object_get(j, "delete"), 0);
    json_t *a1 = json_array_get(json_object_get(d0, "actions"), 1);
    assert_string_equal(json_string_value(json_object_get(a1, "type")), "remove_snap");
    assert_string_equal(json_string_value(json_object_get(a1, "error")), "EBUSY");
    assert_int_equal(json_integer_value(json_object_get(a1, "snap_id")), 1);
    json_t *s0 = json_array_get(json_object_get(j, "skipped"), 0);
    assert_string_equal(json_string_value(json_object_get(s0, "skip")), "grace");
    json_decref(j);
    free(s);
    rs_gc_report_format f;
    assert_int_equal(rs_gc_report_format_parse("json", &f), 0);
    assert_int_equal(f, RS_GC_REPORT_JSON);
    assert_int_equal(rs_gc_report_format_parse("xml", &f), -22);
}

/* 19. Graph API: errors name the object. */
static void test_graph_errors(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    image("vms", "a");
    rs_gc_image_desc d = { .pool = "vms", .id = "id-a", .name = "b" };
    assert_int_equal(rs_gc_graph_add_image(G, &d, &err), -17);
    assert_non_null(strstr(rs_error_msg(&err), "id-a"));
    rs_error_clear(&err);
    assert_int_equal(rs_gc_graph_set_image_meta(G, "vms", "nope", "k", "v", &err), -2);
    assert_non_null(strstr(rs_error_msg(&err), "vms/nope"));
    rs_error_clear(&err);
    rs_gc_snap_desc s = { .id = 1, .name = "s" };
    assert_int_equal(rs_gc_graph_add_snap(G, "vms", "id-a", &s, &err), 0);
    assert_int_equal(rs_gc_graph_add_snap(G, "vms", "id-a", &s, &err), -17);
    assert_non_null(strstr(rs_error_msg(&err), "vms/a@s"));
    rs_error_clear(&err);
    assert_int_equal(rs_gc_graph_add_snap_child(G, "vms", "id-a", 9, "p", "c", &err), -2);
    rs_gc_glance_desc gd = { .id = "x", .status = "active" };
    assert_int_equal(rs_gc_graph_add_glance_image(G, &gd, &err), 0);
    assert_int_equal(rs_gc_graph_add_glance_image(G, &gd, &err), -17);
    rs_gc_image_desc bad = { .pool = "vms", .name = "c" };
    assert_int_equal(rs_gc_graph_add_image(G, &bad, &err), -22);
    assert_int_equal(rs_gc_graph_image_count(G), 1);
    assert_int_equal(rs_gc_graph_snap_count(G), 1);
    struct rs_gc_plan *p = NULL;
    assert_int_equal(rs_gc_plan(NULL, &O, NOW, &p), -22);
    assert_null(p);
}

/* 20. Cycles in a corrupt graph never turn into deletions. */
static void test_cycle(void **state)
{
    (void)state;
    image_full("vms", "id-a", U1 "_disk" TBD, OLD, "vms", "id-b", 1);
    image_full("vms", "id-b", U2 "_disk" TBD, OLD, "vms", "id-a", 1);
    rs_error err = RS_ERROR_INIT;
    rs_gc_snap_desc s = { .id = 1, .name = "s", .created_at = OLD };
    ok(rs_gc_graph_add_snap(G, "vms", "id-a", &s, &err), &err);
    ok(rs_gc_graph_add_snap(G, "vms", "id-b", &s, &err), &err);
    plan();
    assert_int_equal(rs_gc_plan_action_count(P), 0);
    skipped("vms/" U1 "_disk" TBD, RS_GC_SKIP_INCONSISTENT);
    skipped("vms/" U2 "_disk" TBD, RS_GC_SKIP_INCONSISTENT);
}

/* 21. Whatever a Glance record in use points to is never garbage, even
 *     when its name looks like garbage. */
static void test_glance_locations(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    image("images", "legacy" TBD);                    /* location of G1 */
    glance(G1, "active", OLD, NULL);
    ok(rs_gc_graph_add_glance_location(G, G1, "images", "legacy" TBD, &err), &err);
    image("images", G2 TBD);                          /* renamed, record alive */
    glance(G2, "active", OLD, NULL);
    trashed("images", G3, RS_GC_TRASH_USER, OLD);     /* no record of its own ... */
    glance("dddddddd-dddd-4ddd-8ddd-dddddddddddd", "active", OLD, NULL);
    ok(rs_gc_graph_add_glance_location(G, "dddddddd-dddd-4ddd-8ddd-dddddddddddd", "images", G3,
                                       &err), &err);  /* ... but another's location */
    image("images", "gone" TBD);                      /* location of a deleted record */
    glance("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "deleted", OLD, NULL);
    ok(rs_gc_graph_add_glance_location(G, "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "images",
                                       "gone" TBD, &err), &err);
    assert_int_equal(rs_gc_graph_add_glance_location(G, "nope", "images", "x", &err), -2);
    plan();
    skipped("images/legacy" TBD, RS_GC_SKIP_GLANCE_RECORD);
    assert_non_null(strstr(must_item("images/legacy" TBD)->reason, G1));
    skipped("images/" G2 TBD, RS_GC_SKIP_GLANCE_RECORD);
    skipped("images/" G3 " [trash id-" G3 "]", RS_GC_SKIP_GLANCE_RECORD);
    deleted("images/gone" TBD, RS_GC_ITEM_TBD_TREE);
    assert_int_equal(rs_gc_plan_action_count(P), 1);
}

/* 22. Trash-namespace snapshots: waiting for clones (normal, silent),
 *     orphaned (removed by id), or of unknown origin (reported). */
static void test_trashed_snaps(void **state)
{
    (void)state;
    image("vms", U1 "_disk");
    snap_full("vms", U1 "_disk", 10, "t-10", RS_GC_SNAP_NS_TRASH, "rbdsnap-busy", false, OLD);
    rbdsnap_clone(G1, "j1", "vms", U1 "_disk", 10);
    glance(G1, "active", OLD, "j1");
    snap_full("vms", U1 "_disk", 11, "t-11", RS_GC_SNAP_NS_TRASH, "rbdsnap-idle", false, OLD);
    snap_full("vms", U1 "_disk", 12, "t-12", RS_GC_SNAP_NS_TRASH, "users-own", false, OLD);
    snap_full("vms", U1 "_disk", 13, "t-13", RS_GC_SNAP_NS_TRASH, "rbdsnap-new", false, NOW - 9);
    image("images", G2);
    glance(G2, "active", OLD, NULL);
    snap_full("images", G2, 1, "t-1", RS_GC_SNAP_NS_TRASH, "snap", false, OLD);
    plan();
    assert_null(item("vms/" U1 "_disk@rbdsnap-busy [trash snap 10]"));
    deleted("vms/" U1 "_disk@rbdsnap-idle [trash snap 11]", RS_GC_ITEM_TRASHED_SNAP);
    long i = must_act(RS_GC_ACT_REMOVE_SNAP, U1 "_disk", "t-11");
    assert_true(rs_gc_plan_action(P, (size_t)i)->snap_in_trash_ns);
    assert_int_equal(rs_gc_plan_action(P, (size_t)i)->snap_id, 11);
    skipped("vms/" U1 "_disk@users-own [trash snap 12]", RS_GC_SKIP_UNKNOWN_OWNER);
    skipped("vms/" U1 "_disk@rbdsnap-new [trash snap 13]", RS_GC_SKIP_GRACE);
    deleted("images/" G2 "@snap [trash snap 1]", RS_GC_ITEM_TRASHED_SNAP);
    assert_int_equal(rs_gc_plan_action_count(P), 2);
}

/* 23. An instance snapshot with all disks: only the root clone is the
 *     Glance record's location; the other disks' clones (<id>_eph0) belong
 *     to it by name and by job. */
static void test_all_disks_snapshot(void **state)
{
    (void)state;
    rs_error err = RS_ERROR_INIT;
    image("vms", U1 "_disk");
    image("vms", U1 "_disk.eph0");
    rbdsnap_clone(G1, "j1", "vms", "gone", 1);
    rbdsnap_clone(G1 "_eph0", "j1", "vms", "gone", 1);
    glance(G1, "active", OLD, "j1");
    ok(rs_gc_graph_add_glance_location(G, G1, "images", G1, &err), &err);
    rbdsnap_clone(G2 "_eph0", "j2", "vms", "gone", 1);     /* its snapshot was deleted */
    glance(G2, "deleted", OLD, "j2");
    rbdsnap_clone("disk-of-j3", "j3", "vms", "gone", 1);   /* odd name, live job record */
    glance(G3, "active", OLD, "j3");
    plan();
    no_action_on(G1);
    no_action_on(G1 "_eph0");
    assert_null(item("images/" G1 "_eph0"));
    deleted("images/" G2 "_eph0", RS_GC_ITEM_ORPHAN_IMAGE);
    skipped("images/disk-of-j3", RS_GC_SKIP_GLANCE_RECORD);
    assert_non_null(strstr(must_item("images/disk-of-j3")->reason, G3));
    assert_int_equal(rs_gc_plan_action_count(P), 1);
}

/* 24. 10,000+ images: a realistic mix, planned in one go. */
static void test_large_graph(void **state)
{
    (void)state;
    char n[128], p[128], g[64];
    const int bases = 50, live = 6000, tbd = 2000, orphans = 1000, trash = 1000;
    for (int i = 0; i < bases; i++) {
        snprintf(n, sizeof(n), "cccccccc-cccc-4ccc-8ccc-%012d", i);
        image("images", n);
        snap("images", n, 1, "snap", true);
        glance(n, "active", OLD, NULL);
    }
    for (int i = 0; i < live; i++) {
        snprintf(n, sizeof(n), "%08d-1111-4111-8111-111111111111_disk", i);
        snprintf(p, sizeof(p), "cccccccc-cccc-4ccc-8ccc-%012d", i % bases);
        clone("vms", n, "images", p, 1);
        snap("vms", n, 2, "rbdsnap-a", false);
        snprintf(g, sizeof(g), "job-%d", i);
        meta("vms", n, "rbdsnap.snap.rbdsnap-a", g);
    }
    for (int i = 0; i < tbd; i++) {
        snprintf(n, sizeof(n), "%08d-2222-4222-8222-222222222222_disk" TBD, i);
        snprintf(p, sizeof(p), "cccccccc-cccc-4ccc-8ccc-%012d", i % bases);
        clone("vms", n, "images", p, 1);
        snap("vms", n, 1, "s", true);
        snprintf(p, sizeof(p), "%08d-3333-4333-8333-333333333333" TBD, i);
        clone("images", p, "vms", n, 1);
    }
    for (int i = 0; i < orphans; i++) {
        snprintf(n, sizeof(n), "%08d-1111-4111-8111-111111111111_disk", i);
        snprintf(p, sizeof(p), "%08d-4444-4444-8444-444444444444", i);
        rbdsnap_clone(p, "job-x", "vms", n, 2);
    }
    for (int i = 0; i < trash; i++) {
        snprintf(n, sizeof(n), "%08d-5555-4555-8555-555555555555", i);
        trashed("images", n, RS_GC_TRASH_USER, OLD);
    }
    size_t total = rs_gc_graph_image_count(G);
    assert_true(total >= 10000);
    uint64_t t0 = rs_now_us();
    assert_int_equal(rs_gc_plan(G, &O, NOW, &P), 0);
    uint64_t t1 = rs_now_us();
    print_message("large graph: %zu images, %zu snapshots, %zu items, %zu actions, "
                  "planned in %.1f ms\n", total, rs_gc_graph_snap_count(G),
                  rs_gc_plan_item_count(P), rs_gc_plan_action_count(P), (t1 - t0) / 1000.0);
    check_invariants(P);
    /* tbd trees (child inside), orphans, trash; source snaps of live disks
     * without a clone; the 1000 with an orphan clone wait a cycle */
    assert_int_equal(rs_gc_plan_delete_count(P),
                     (size_t)(tbd + orphans + trash + (live - orphans)));
    assert_int_equal(rs_gc_plan_skip_count(P), (size_t)orphans);
    assert_int_equal(rs_gc_plan_action_count(P),
                     (size_t)(tbd * 4 + orphans + trash + (live - orphans)));
    char *s = NULL;
    t0 = rs_now_us();
    assert_int_equal(rs_gc_report_render(P, RS_GC_REPORT_JSON, true, &s, NULL), 0);
    t1 = rs_now_us();
    print_message("large graph: JSON report %zu bytes in %.1f ms\n", strlen(s),
                  (t1 - t0) / 1000.0);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tbd_depth1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tbd_depth2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tbd_depth3_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tbd_live_grandchild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tbd_foreign_descendants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tbd_partial_subtree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glance_trashed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glance_listing_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_clone_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_instance_snapshot_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrelated_user_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_job_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferment_and_inconsistency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flatten_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glance_locations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trashed_snaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_disks_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_graph, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
