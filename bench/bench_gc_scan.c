/*
 * bench_gc_scan.c - rbdsnap-bench-gc-scan: how long the reaper's scan takes
 * on a big pool.
 *
 * Creates a private pool (gcbench-<hex>, 8 PGs) with N empty images (default
 * 10,000; names shaped like Nova disks, "<uuid>_disk"), of which G (default
 * 20) are "<uuid>_disk_to_be_deleted_by_glance" with a protected snapshot,
 * then measures
 *   - the inventory scan (rbd/inventory.h) with 1 and with T threads
 *     (--compare) or T threads only;
 *   - the full reaper scan + plan (gc/scan.h, gc/policy.h) treating the pool
 *     as the nova pool, grace 0: it must find exactly the G planted items.
 * The pool is deleted at the end (also on failure: one pool delete removes
 * everything).  Needs the lab environment (CEPH_CONF, CEPH_KEYRING, CEPH_ID).
 *
 *   rbdsnap-bench-gc-scan [--images N] [--garbage G] [--threads T] [--compare]
 *                         [--check]   (exit 1 unless the counts are exact)
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "common/util.h"
#include "gc/policy.h"
#include "gc/scan.h"
#include "rbd/cluster.h"
#include "rbd/inventory.h"

static rados_t rc_cl;
static rados_ioctx_t rc_io;
static char pool[64];
static int n_images = 10000, n_garbage = 20, n_threads = 8;

typedef struct {
    atomic_int next;
    atomic_int errors;
} create_ctx;

static void *creator(void *arg)
{
    create_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= n_images)
            break;
        char uuid[37], name[128];
        rs_random_uuid(uuid);
        bool garbage = i < n_garbage;
        snprintf(name, sizeof(name), "%s_disk%s", uuid, garbage ? "_to_be_deleted_by_glance" : "");
        rbd_image_options_t o;
        rbd_image_options_create(&o);
        int rc = rbd_create4(rc_io, name, 1ULL << 30, o);
        rbd_image_options_destroy(o);
        if (rc == 0 && garbage) {
            rbd_image_t img;
            rc = rbd_open(rc_io, name, &img, NULL);
            if (rc == 0) {
                rc = rbd_snap_create(img, "s");
                if (rc == 0)
                    rc = rbd_snap_protect(img, "s");
                rbd_close(img);
            }
        }
        if (rc < 0 && atomic_fetch_add(&c->errors, 1) < 5)
            fprintf(stderr, "create %s/%s: %s\n", pool, name, strerror(-rc));
    }
    return NULL;
}

static int mon(const char *cmd)
{
    const char *cmds[1] = { cmd };
    char *outbuf = NULL, *outs = NULL;
    size_t outlen = 0, outslen = 0;
    int rc = rados_mon_command(rc_cl, cmds, 1, "", 0, &outbuf, &outlen, &outs, &outslen);
    if (rc < 0)
        fprintf(stderr, "mon %s: %s (%.*s)\n", cmd, strerror(-rc), (int)outslen, outs ? outs : "");
    rados_buffer_free(outbuf);
    rados_buffer_free(outs);
    return rc;
}

static void drop_pool(void)
{
    char cmd[256];
    if (rc_io) {
        rados_ioctx_destroy(rc_io);
        rc_io = NULL;
    }
    snprintf(cmd, sizeof(cmd), "{\"prefix\":\"osd pool rm\",\"pool\":\"%s\",\"pool2\":\"%s\","
             "\"yes_i_really_really_mean_it\":true}", pool, pool);
    if (mon(cmd) == 0)
        printf("pool %s deleted\n", pool);
}

static int scan_inventory(rs_cluster *cl, int threads, uint64_t *ms, size_t *count)
{
    rs_inv_opts o;
    rs_inv_pool *p = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_inv_opts_init(&o);
    o.threads = threads;
    uint64_t t0 = rs_now_ms();
    int rc = rs_inv_scan_pool(cl, pool, &o, &p, &err);
    *ms = rs_now_ms() - t0;
    if (rc < 0) {
        fprintf(stderr, "scan: %s\n", rs_error_msg(&err));
        return rc;
    }
    *count = p->nimages;
    if (p->nerrors)
        fprintf(stderr, "scan: %zu unreadable images\n", p->nerrors);
    rs_inv_pool_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "images", required_argument, NULL, 'n' },
        { "garbage", required_argument, NULL, 'g' },
        { "threads", required_argument, NULL, 't' },
        { "compare", no_argument, NULL, 'C' },
        { "check", no_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 },
    };
    bool compare = false, check = false;
    int c, ret = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': n_images = atoi(optarg); break;
        case 'g': n_garbage = atoi(optarg); break;
        case 't': n_threads = atoi(optarg); break;
        case 'C': compare = true; break;
        case 'k': check = true; break;
        default:
            fprintf(stderr, "usage: %s [--images N] [--garbage G] [--threads T] [--compare] "
                    "[--check]\n", argv[0]);
            return 2;
        }
    }
    if (n_images < 1 || n_garbage < 0 || n_garbage > n_images) {
        fprintf(stderr, "bad counts\n");
        return 2;
    }
    const char *conf = getenv("CEPH_CONF");
    if (!conf) {
        fprintf(stderr, "SKIP: no lab environment (CEPH_CONF)\n");
        return 77;
    }
    const char *id = getenv("CEPH_ID") ? getenv("CEPH_ID") : "admin";
    char hex[9];
    rs_random_hex(hex, 4);
    snprintf(pool, sizeof(pool), "gcbench-%s", hex);

    if (rados_create(&rc_cl, id) < 0 || rados_conf_read_file(rc_cl, conf) < 0) {
        fprintf(stderr, "cannot read %s\n", conf);
        return 1;
    }
    if (getenv("CEPH_KEYRING"))
        rados_conf_set(rc_cl, "keyring", getenv("CEPH_KEYRING"));
    rados_conf_set(rc_cl, "client_mount_timeout", "30");
    rados_conf_set(rc_cl, "rados_osd_op_timeout", "60");
    if (rados_connect(rc_cl) < 0) {
        fprintf(stderr, "cannot connect to Ceph\n");
        rados_shutdown(rc_cl);
        return 1;
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "{\"prefix\":\"osd pool create\",\"pool\":\"%s\",\"pg_num\":8,"
             "\"pgp_num\":8}", pool);
    if (mon(cmd) < 0) {
        rados_shutdown(rc_cl);
        return 1;
    }
    rs_cluster *cl = NULL;
    rs_gc_graph *g = NULL;
    struct rs_gc_plan *plan = NULL;
    if (rados_ioctx_create(rc_cl, pool, &rc_io) < 0)
        goto out;
    rados_application_enable(rc_io, "rbd", 1);

    /* ---- create ---- */
    create_ctx cc;
    atomic_init(&cc.next, 0);
    atomic_init(&cc.errors, 0);
    pthread_t tids[16];
    uint64_t t0 = rs_now_ms();
    for (int t = 0; t < 16; t++)
        pthread_create(&tids[t], NULL, creator, &cc);
    for (int t = 0; t < 16; t++)
        pthread_join(tids[t], NULL);
    uint64_t create_ms = rs_now_ms() - t0;
    printf("created %d images (%d tbd with a protected snapshot) in pool %s: %.2f s "
           "(%.2f ms/image, 16 threads)\n", n_images, n_garbage, pool, create_ms / 1000.0,
           (double)create_ms / n_images);
    if (atomic_load(&cc.errors)) {
        fprintf(stderr, "%d creates failed\n", atomic_load(&cc.errors));
        goto out;
    }

    /* ---- scan ---- */
    rs_cluster_opts co = { .conf_file = conf, .id = id, .keyring = getenv("CEPH_KEYRING") };
    rs_error err = RS_ERROR_INIT;
    if (rs_cluster_connect(&co, &cl, &err) < 0) {
        fprintf(stderr, "%s\n", rs_error_msg(&err));
        goto out;
    }
    uint64_t ms;
    size_t count = 0;
    if (compare) {
        if (scan_inventory(cl, 1, &ms, &count) < 0)
            goto out;
        printf("inventory scan, 1 thread:  %zu images in %.2f s (%.0f us/image)\n", count,
               ms / 1000.0, ms * 1000.0 / (double)(count ? count : 1));
    }
    if (scan_inventory(cl, n_threads, &ms, &count) < 0)
        goto out;
    printf("inventory scan, %d threads: %zu images in %.2f s (%.0f us/image)\n", n_threads,
           count, ms / 1000.0, ms * 1000.0 / (double)(count ? count : 1));

    const char *pools[1] = { pool };
    rs_gc_scan_opts so = { .pools = pools, .npools = 1, .nova_pool = pool,
                           .threads = n_threads, .lock_owners = true };
    rs_gc_scan_stats st;
    uint64_t t1 = rs_now_ms();
    if (rs_gc_scan(cl, NULL, &so, &g, &st, &err) < 0) {
        fprintf(stderr, "gc scan: %s\n", rs_error_msg(&err));
        goto out;
    }
    uint64_t scan_ms = rs_now_ms() - t1;
    rs_gc_policy_opts po;
    rs_gc_policy_opts_init(&po);
    po.nova_pool = pool;
    po.grace = 0;
    po.max_items = 0;
    uint64_t t2 = rs_now_ms();
    if (rs_gc_plan(g, &po, rs_wall_time() + 1, &plan) < 0) {
        fprintf(stderr, "plan failed\n");
        goto out;
    }
    uint64_t plan_ms = rs_now_ms() - t2;
    size_t del = rs_gc_plan_delete_count(plan);
    printf("reaper scan (graph of %zu images, %zu snapshots): %.2f s; plan: %llu ms; "
           "garbage found: %zu of %d planted; skipped: %zu\n", st.images, st.snaps,
           scan_ms / 1000.0, (unsigned long long)plan_ms, del, n_garbage,
           rs_gc_plan_skip_count(plan));
    ret = 0;
    if (check && (st.images != (size_t)n_images || count != (size_t)n_images ||
                  del != (size_t)n_garbage || st.unreadable)) {
        fprintf(stderr, "FAIL: expected %d images and %d garbage items\n", n_images, n_garbage);
        ret = 1;
    }
out:
    rs_gc_plan_free(plan);
    rs_gc_graph_free(g);
    rs_cluster_unref(cl);
    drop_pool();
    rados_shutdown(rc_cl);
    return ret;
}
