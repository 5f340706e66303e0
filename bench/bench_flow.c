/*
 * bench_flow.c - rbdsnap-bench-flow: times the RBD snapshot flow (no
 * flatten) against the `rbd` CLI doing the same sequence, on the same
 * cluster, in one run.
 *
 *   rbdsnap: rs_flow_run() on one shared connection: tag source, snap create,
 *            (protect), clone, tag clone, snap create + protect on the
 *            clone, remove the source snapshot (format 2).
 *   rbd CLI: rbd snap create; (rbd snap protect); rbd clone; rbd snap
 *            create <clone>@snap; rbd snap protect; (format 2) rbd snap rm
 *            -- Nova's commands only;
 *   rbd CLI+meta: the same plus the provenance tags the flow writes
 *            (rbd image-meta set/remove), i.e. the same work as the flow.
 *
 * Each is run over N images sequentially and at concurrency C.  Printed:
 * mean milliseconds per snapshot, snapshots per second, and the ratio
 * CLI / rbdsnap.  Uses $CEPH_CONF, $CEPH_ID, $CEPH_KEYRING (source the lab
 * env).  Everything created carries a random suffix and is removed.
 *
 *   rbdsnap-bench-flow [-n N] [-c CONC] [-s SIZE_MIB] [-w WRITTEN_MIB]
 *                      [--pool vms] [--dest-pool images] [--journal DIR]
 */
#include "common/log.h"
#include "common/util.h"
#include "rbd/cluster.h"
#include "rbd/flow.h"
#include "rbd/ops.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static rs_cluster *cl;
static const char *src_pool = "vms", *dst_pool = "images";
static int nimg = 16, conc = 8, format;
static char run_id[9];
static rs_journal *journal;

static char (*srcs)[64];

static void target_name(char *buf, size_t len, const char *phase, int i)
{
    snprintf(buf, len, "rsbench-%s-%s-%d", run_id, phase, i);
}

/* ---- rbdsnap ---------------------------------------------------------- */

struct work {
    const char *phase;
    atomic_int next;
    atomic_int failed;
    int (*one)(const char *phase, int i);
};

static int flow_one(const char *phase, int i)
{
    char target[96];
    const char *images[1] = { srcs[i] };
    rs_error err = RS_ERROR_INIT;
    static __thread rs_flow_result res;
    target_name(target, sizeof(target), phase, i);
    rs_flow_request req = { .src_pool = src_pool, .images = images, .nimages = 1,
                            .dest_pool = dst_pool, .target = target, .flatten = RS_FLATTEN_NO,
                            .clone_format = format, .journal = journal };
    int rc = rs_flow_run(cl, &req, &res, &err);
    if (rc < 0)
        fprintf(stderr, "flow %s: %s\n", target, rs_error_msg(&err));
    return rc;
}

/* ---- rbd CLI ---------------------------------------------------------- */

static int run_rbd(const char *const *args)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = "rbd";
    if (getenv("CEPH_ID")) {
        argv[n++] = "--id";
        argv[n++] = getenv("CEPH_ID");
    }
    if (getenv("CEPH_KEYRING")) {
        argv[n++] = "--keyring";
        argv[n++] = getenv("CEPH_KEYRING");
    }
    for (; *args && n < 30; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execvp("rbd", (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -EIO;
}

static int cli_seq(const char *phase, int i, bool meta);
static int cli_one(const char *phase, int i) { return cli_seq(phase, i, false); }
static int cli_meta_one(const char *phase, int i) { return cli_seq(phase, i, true); }

static int cli_seq(const char *phase, int i, bool meta)
{
    char target[96], snap[128], ssnap[128], clone[128], csnap[160], fmt[8];
    char hex[17];
    rs_random_hex(hex, 8);
    target_name(target, sizeof(target), phase, i);
    snprintf(ssnap, sizeof(ssnap), "%s/%s@bench-%s", src_pool, srcs[i], hex);
    snprintf(snap, sizeof(snap), "bench-%s", hex);
    snprintf(clone, sizeof(clone), "%s/%s", dst_pool, target);
    snprintf(csnap, sizeof(csnap), "%s@snap", clone);
    snprintf(fmt, sizeof(fmt), "%d", format);
    const char *c1[] = { "snap", "create", ssnap, "--no-progress", NULL };
    const char *c2[] = { "snap", "protect", ssnap, NULL };
    const char *c3[] = { "clone", "--rbd-default-clone-format", fmt, ssnap, clone, NULL };
    const char *c4[] = { "snap", "create", csnap, "--no-progress", NULL };
    const char *c5[] = { "snap", "protect", csnap, NULL };
    const char *c6[] = { "snap", "rm", ssnap, "--no-progress", NULL };
    /* The provenance tags the flow writes, as rbd image-meta commands. */
    char srcimg[128], key[160], created[32], source[256];
    snprintf(srcimg, sizeof(srcimg), "%s/%s", src_pool, srcs[i]);
    snprintf(key, sizeof(key), "rbdsnap.snap.%s", snap);
    snprintf(created, sizeof(created), "%lld", (long long)rs_wall_time());
    snprintf(source, sizeof(source), "%s", ssnap);
    const char *m0[] = { "image-meta", "set", srcimg, key, hex, NULL };
    const char *m1[] = { "image-meta", "set", clone, "rbdsnap.job_id", hex, NULL };
    const char *m2[] = { "image-meta", "set", clone, "rbdsnap.instance_uuid", "-", NULL };
    const char *m3[] = { "image-meta", "set", clone, "rbdsnap.created_at", created, NULL };
    const char *m4[] = { "image-meta", "set", clone, "rbdsnap.version", "0", NULL };
    const char *m5[] = { "image-meta", "set", clone, "rbdsnap.role", "clone", NULL };
    const char *m6[] = { "image-meta", "set", clone, "rbdsnap.source", source, NULL };
    const char *m7[] = { "image-meta", "remove", srcimg, key, NULL };
    const char *const *seq[16];
    int n = 0;
    if (meta)
        seq[n++] = m0;
    seq[n++] = c1;
    if (format == 1)
        seq[n++] = c2;
    seq[n++] = c3;
    if (meta) {
        seq[n++] = m1; seq[n++] = m2; seq[n++] = m3;
        seq[n++] = m4; seq[n++] = m5; seq[n++] = m6;
    }
    seq[n++] = c4;
    seq[n++] = c5;
    if (format == 2) {
        seq[n++] = c6;
        if (meta)
            seq[n++] = m7;
    }
    for (int k = 0; k < n; k++) {
        if (run_rbd(seq[k]) < 0) {
            fprintf(stderr, "rbd CLI sequence failed for %s (command %d)\n", clone, k);
            return -EIO;
        }
    }
    return 0;
}

/* ---- driver ----------------------------------------------------------- */

static void *worker(void *p)
{
    struct work *w = p;
    int i;
    while ((i = atomic_fetch_add(&w->next, 1)) < nimg)
        if (w->one(w->phase, i) < 0)
            atomic_fetch_add(&w->failed, 1);
    return NULL;
}

static double run_phase(const char *phase, int (*one)(const char *, int), int threads, int *failed)
{
    struct work w = { .phase = phase, .one = one };
    pthread_t th[64];
    uint64_t t0 = rs_now_us();
    if (threads > 64)
        threads = 64;
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, worker, &w);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    *failed = atomic_load(&w.failed);
    return (double)(rs_now_us() - t0) / 1000.0;
}

static void cleanup_phase(const char *phase)
{
    for (int i = 0; i < nimg; i++) {
        char target[96];
        target_name(target, sizeof(target), phase, i);
        rs_rbd_snap_remove(cl, dst_pool, target, "snap", true, NULL);
        rs_rbd_image_remove(cl, dst_pool, target, NULL);
    }
}

static void cleanup_sources(void)
{
    for (int i = 0; i < nimg; i++) {
        rs_rbd_snap_info *snaps = NULL;
        size_t n = 0;
        if (rs_rbd_snap_list(cl, src_pool, srcs[i], &snaps, &n, NULL) == 0)
            for (size_t k = 0; k < n; k++)
                if (snaps[k].ns == RS_RBD_SNAP_NS_USER)
                    rs_rbd_snap_remove(cl, src_pool, srcs[i], snaps[k].name, true, NULL);
        rs_rbd_snap_list_free(snaps, n);
        rs_rbd_image_remove(cl, src_pool, srcs[i], NULL);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: rbdsnap-bench-flow [-n N] [-c CONC] [-s SIZE_MIB] [-w WRITTEN_MIB] "
                    "[--pool P] [--dest-pool P] [--journal DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "pool", required_argument, NULL, 'p' },
        { "dest-pool", required_argument, NULL, 'd' },
        { "journal", required_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    int size_mib = 64, written_mib = 8, c;
    const char *jdir = NULL;
    rs_error err = RS_ERROR_INIT;

    while ((c = getopt_long(argc, argv, "n:c:s:w:", lo, NULL)) != -1) {
        switch (c) {
        case 'n': nimg = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 's': size_mib = atoi(optarg); break;
        case 'w': written_mib = atoi(optarg); break;
        case 'p': src_pool = optarg; break;
        case 'd': dst_pool = optarg; break;
        case 'j': jdir = optarg; break;
        default: usage();
        }
    }
    if (nimg < 1 || conc < 1 || size_mib < 1 || written_mib < 0 || written_mib > size_mib)
        usage();
    rs_log_set_level(RS_LOG_ERROR);
    rs_cluster_opts o = { .conf_file = getenv("CEPH_CONF"), .id = getenv("CEPH_ID"),
                          .keyring = getenv("CEPH_KEYRING") };
    if (rs_cluster_connect(&o, &cl, &err) < 0) {
        fprintf(stderr, "connect: %s\n", rs_error_msg(&err));
        return 1;
    }
    if (jdir && rs_journal_dir_open(jdir, &journal, &err) < 0) {
        fprintf(stderr, "journal: %s\n", rs_error_msg(&err));
        return 1;
    }
    if (rs_rbd_clone_format_auto(cl, &format, &err) < 0) {
        fprintf(stderr, "clone format: %s\n", rs_error_msg(&err));
        return 1;
    }
    rs_random_hex(run_id, 4);
    srcs = calloc((size_t)nimg, sizeof(*srcs));
    char *buf = malloc(1 << 20);
    memset(buf, 0x5a, 1 << 20);
    printf("setup: %d images of %d MiB (%d MiB written) in %s, clone format %d, journal %s\n",
           nimg, size_mib, written_mib, src_pool, format, jdir ? jdir : "none");
    for (int i = 0; i < nimg; i++) {
        snprintf(srcs[i], 64, "rsbench-%s-src-%d", run_id, i);
        if (rs_rbd_image_create(cl, src_pool, srcs[i], (uint64_t)size_mib << 20, &err) < 0) {
            fprintf(stderr, "%s\n", rs_error_msg(&err));
            nimg = i;
            cleanup_sources();
            return 1;
        }
        for (int m = 0; m < written_mib; m++)
            rs_rbd_write(cl, src_pool, srcs[i], (uint64_t)m << 20, 1 << 20, buf, NULL);
    }
    free(buf);

    int f1, f2, f3, f4, f5, f6;
    double a = run_phase("fs", flow_one, 1, &f1);
    double b = run_phase("fc", flow_one, conc, &f2);
    double cc = run_phase("cs", cli_one, 1, &f3);
    double d = run_phase("cc", cli_one, conc, &f4);
    double e = run_phase("ms", cli_meta_one, 1, &f5);
    double g = run_phase("mc", cli_meta_one, conc, &f6);

    printf("%-28s %10s %12s %10s %8s\n", "phase", "total_ms", "ms/snapshot", "snaps/s", "failed");
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", "rbdsnap sequential", a, a / nimg, nimg * 1000.0 / a, f1);
    char lbl[64];
    snprintf(lbl, sizeof(lbl), "rbdsnap concurrency %d", conc);
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", lbl, b, b / nimg, nimg * 1000.0 / b, f2);
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", "rbd CLI sequential", cc, cc / nimg, nimg * 1000.0 / cc, f3);
    snprintf(lbl, sizeof(lbl), "rbd CLI concurrency %d", conc);
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", lbl, d, d / nimg, nimg * 1000.0 / d, f4);
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", "rbd CLI+meta sequential", e, e / nimg, nimg * 1000.0 / e, f5);
    snprintf(lbl, sizeof(lbl), "rbd CLI+meta concurrency %d", conc);
    printf("%-28s %10.0f %12.1f %10.1f %8d\n", lbl, g, g / nimg, nimg * 1000.0 / g, f6);
    printf("ratio sequential    (rbd CLI, Nova's commands only / rbdsnap): %.1fx\n", cc / a);
    printf("ratio concurrency %d (rbd CLI, Nova's commands only / rbdsnap): %.1fx\n", conc, d / b);
    printf("ratio sequential    (rbd CLI, same work incl. provenance tags / rbdsnap): %.1fx\n", e / a);
    printf("ratio concurrency %d (rbd CLI, same work incl. provenance tags / rbdsnap): %.1fx\n", conc, g / b);

    cleanup_phase("fs");
    cleanup_phase("fc");
    cleanup_phase("cs");
    cleanup_phase("cc");
    cleanup_phase("ms");
    cleanup_phase("mc");
    cleanup_sources();
    free(srcs);
    rs_journal_close(journal);
    rs_cluster_unref(cl);
    return (f1 || f2 || f3 || f4 || f5 || f6) ? 1 : 0;
}
