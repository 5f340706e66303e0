/*
 * test_virt_lab.c - the libvirt adapter against the lab's real libvirtd,
 * QEMU guests (with a writing workload) and Ceph.
 *
 *   - disks of the RBD guest (pool, image, monitors, cephx user, secret);
 *   - freeze/thaw through the real guest agent, freeze window measured;
 *   - the no-agent guest: optional proceeds with a warning, required fails
 *     cleanly and leaves the guest running, unfrozen;
 *   - a domain whose agent channel has no agent: required gives -ETIMEDOUT,
 *     a live copy with optional proceeds with a warning and is exact;
 *   - live copy of the writing file guest into a new RBD image (the guest
 *     never pauses; the image passes e2fsck -fn; it is sparse), with
 *     TRANSIENT_JOB and with the undefine/define fallback;
 *   - cold copy: running guest comes back running, paused guest comes back
 *     paused, and the image is identical to the disk;
 *   - a crash in the middle of a live copy (forked child, exit failpoint)
 *     repaired by rs_virt_recover().
 *
 * Figures (freeze window, downtime, phase timings, RBD usage) are printed
 * with the prefix "FIGURE"; nothing is asserted about time.  Everything
 * created has a random suffix and is removed in teardown, also on failure;
 * the lab domains are put back (defined, running) whatever happens.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/failpoint.h"
#include "common/util.h"
#include "virt/virt-priv.h"

static rs_virt_conn *conn;
static char tmpdir[256];
static char suffix[9];
static const char *ceph_conf, *ceph_keyring, *ceph_id;
static const char *dom_file, *dom_rbd, *dom_noagent;
static char *saved_xml[3];
static char images[16][128];
static int n_images;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *fmt, ...)
{
    char cmd[4096], buf[4096];
    size_t n;
    FILE *p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    if (!p)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    pclose(p);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return strdup(buf);
}

#define RBD "rbd -c %s --id %s --keyring %s "
#define RBD_ARGS ceph_conf, ceph_id, ceph_keyring

static const char *new_image(const char *what)
{
    snprintf(images[n_images], sizeof(images[0]), "rs-virt-%s-%s", what, suffix);
    return images[n_images++];
}

static const char *domains[3];

static int group_setup(void **state)
{
    rs_error err = RS_ERROR_INIT;
    const char *uri = getenv("LIBVIRT_DEFAULT_URI");
    (void)state;

    ceph_conf = getenv("CEPH_CONF");
    ceph_keyring = getenv("CEPH_KEYRING");
    ceph_id = getenv("CEPH_ID") ? getenv("CEPH_ID") : "admin";
    dom_file = getenv("LAB_DOMAIN_FILE");
    dom_rbd = getenv("LAB_DOMAIN_RBD");
    dom_noagent = getenv("LAB_DOMAIN_NOAGENT");
    if (!uri || !ceph_conf || !ceph_keyring || !dom_file || !dom_rbd || !dom_noagent) {
        fprintf(stderr, "lab environment incomplete (LIBVIRT_DEFAULT_URI, CEPH_*, "
                        "LAB_DOMAIN_*)\n");
        return -1;
    }
    domains[0] = dom_file;
    domains[1] = dom_rbd;
    domains[2] = dom_noagent;
    if (rs_random_hex(suffix, 4) < 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rs-virt-it-%s", suffix);
    if (mkdir(tmpdir, 0700) < 0)
        return -1;
    if (rs_virt_connect(uri, &conn, &err) < 0) {
        fprintf(stderr, "connect: %s\n", rs_error_msg(&err));
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        virDomainPtr d = virDomainLookupByName(rs_virt_conn_ptr(conn), domains[i]);
        if (!d) {
            fprintf(stderr, "lab domain %s missing\n", domains[i]);
            return -1;
        }
        saved_xml[i] = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
        virDomainFree(d);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rs_failpoint_configure("");
    for (int i = 0; i < 3 && conn; i++) {
        rs_virt_recover_info ri = { .domain = domains[i], .saved_xml = saved_xml[i],
                                    .disk = "vda", .start = true };
        rs_error err = RS_ERROR_INIT;
        virDomainPtr d = virDomainLookupByName(rs_virt_conn_ptr(conn), domains[i]);
        if (d) {
            int st = 0, reason = 0;
            virDomainGetState(d, &st, &reason, 0);
            if (st == VIR_DOMAIN_PAUSED)
                virDomainResume(d);
            virDomainFSThaw(d, NULL, 0, 0);
            virDomainFree(d);
        }
        if (rs_virt_recover(conn, &ri, &err) < 0)
            fprintf(stderr, "teardown: %s\n", rs_error_msg(&err));
        free(saved_xml[i]);
    }
    if (conn) {
        char dname[64];
        virDomainPtr d;
        snprintf(dname, sizeof(dname), "rs-virt-deadagent-%s", suffix);
        d = virDomainLookupByName(rs_virt_conn_ptr(conn), dname);
        if (d) {
            virDomainDestroy(d);
            virDomainFree(d);
        }
    }
    for (int i = 0; i < n_images; i++)
        sh(RBD "rm images/%s >/dev/null 2>&1", RBD_ARGS, images[i]);
    if (tmpdir[0])
        sh("rm -rf %s", tmpdir);
    rs_virt_conn_unref(conn);
    return 0;
}

static rs_virt_dom *lookup(const char *name)
{
    rs_virt_dom *d = NULL;
    rs_error err = RS_ERROR_INIT;
    if (rs_virt_domain_lookup(conn, name, &d, &err) < 0)
        fail_msg("lookup %s: %s", name, rs_error_msg(&err));
    return d;
}

static rs_virt_state state_of(const char *name)
{
    rs_virt_dom *d = lookup(name);
    rs_virt_state st = RS_VIRT_STATE_OTHER;
    assert_int_equal(rs_virt_dom_state(d, &st, NULL), 0);
    rs_virt_dom_free(d);
    return st;
}

static void opts_for(rs_virt_copy_opts *o, const char *image)
{
    memset(o, 0, sizeof(*o));
    o->work_dir = tmpdir;
    o->ceph_conf = ceph_conf;
    o->ceph_id = ceph_id;
    o->ceph_keyring = ceph_keyring;
    o->dest_pool = "images";
    o->dest_image = image;
    o->quiesce = RS_VIRT_QUIESCE_OPTIONAL;
    o->quiesce_timeout_s = 10;
    o->max_freeze_ms = 30000;
    o->job_timeout_s = 300;
    o->convert_timeout_s = 600;
}

static void print_report(const char *what, const rs_virt_copy_report *r)
{
    printf("FIGURE %s: total_ms=%llu prepare_ms=%llu mirror_ms=%llu freeze_ms=%llu "
           "end_job_ms=%llu convert_ms=%llu downtime_ms=%llu virtual_size=%llu "
           "transient_job=%d quiesced=%d warning=%s\n", what,
           (unsigned long long)r->total_ms, (unsigned long long)r->prepare_ms,
           (unsigned long long)r->mirror_ms, (unsigned long long)r->freeze_ms,
           (unsigned long long)r->end_job_ms, (unsigned long long)r->convert_ms,
           (unsigned long long)r->downtime_ms, (unsigned long long)r->virtual_size,
           r->transient_job, r->quiesced, r->warning ? r->warning : "-");
}

/* e2fsck -fn on the RBD image, exported to a local raw file */
static void assert_fsck_clean(const char *image)
{
    char out[512];
    snprintf(out, sizeof(out), "%s/%s.raw", tmpdir, image);
    assert_int_equal(sh("qemu-img convert -f raw -O raw "
                        "'rbd:images/%s:conf=%s:id=%s:keyring=%s' %s",
                        image, ceph_conf, ceph_id, ceph_keyring, out), 0);
    if (sh("e2fsck -fn %s >%s/fsck.log 2>&1", out, tmpdir) != 0) {
        sh("cat %s/fsck.log >&2", tmpdir);
        fail_msg("e2fsck -fn found errors in images/%s", image);
    }
    unlink(out);
}

/* print `rbd du` and check the image is sparse: the guest's disk holds
 * well under 256 MiB of data in 1 GiB */
static void print_rbd_usage(const char *image)
{
    char *du = sh_out(RBD "du images/%s 2>/dev/null | tail -1", RBD_ARGS, image);
    char *used = sh_out(RBD "du --format json images/%s 2>/dev/null | "
                        "python3 -c 'import json,sys; print(json.load(sys.stdin)"
                        "[\"images\"][0][\"used_size\"])'", RBD_ARGS, image);
    printf("FIGURE rbd du images/%s: %s\n", image, du ? du : "?");
    assert_non_null(used);
    assert_true(strtoull(used, NULL, 10) > 0);
    assert_true(strtoull(used, NULL, 10) < 256ull << 20);
    free(du);
    free(used);
}

/* ---- tests -------------------------------------------------------------- */

static void test_rbd_disks(void **state)
{
    rs_virt_dom *d = lookup(dom_rbd);
    rs_virt_disk_list *l = NULL;
    rs_error err = RS_ERROR_INIT;
    char want[128];
    const char *uuid = getenv("LAB_RBD_INSTANCE_UUID");
    const char *port = getenv("CEPH_MON_PORT");
    (void)state;

    if (rs_virt_domain_disks(d, RS_VIRT_DISKS_ALL, &l, &err) < 0)
        fail_msg("%s", rs_error_msg(&err));
    assert_true(l->n >= 1);
    assert_int_equal(l->disks[0].kind, RS_VIRT_DISK_RBD);
    assert_string_equal(l->disks[0].target, "vda");
    assert_string_equal(l->disks[0].pool, "vms");
    snprintf(want, sizeof(want), "%s_disk", uuid ? uuid : rs_virt_dom_uuid(d));
    assert_string_equal(l->disks[0].image, want);
    assert_true(l->disks[0].n_hosts >= 1);
    if (port) {
        snprintf(want, sizeof(want), "127.0.0.1:%s", port);
        assert_string_equal(l->disks[0].hosts[0], want);
    }
    assert_non_null(l->disks[0].auth_user);
    assert_true(rs_is_uuid(l->disks[0].secret_uuid));
    printf("FIGURE rbd guest disks: n=%zu root=%s/%s eph=%s\n", l->n, l->disks[0].pool,
           l->disks[0].image, l->n > 1 ? l->disks[1].image : "-");
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
}

static void test_freeze_agent(void **state)
{
    const char *doms[] = { dom_file, dom_rbd };
    (void)state;
    for (int i = 0; i < 2; i++) {
        rs_virt_dom *d = lookup(doms[i]);
        rs_virt_quiesce *q = NULL;
        rs_error err = RS_ERROR_INIT;
        char *w = NULL;
        uint64_t ms = 0;
        int rc = rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 10, 30000, &q, &w, &err);
        if (rc < 0)
            fail_msg("freeze %s: %s", doms[i], rs_error_msg(&err));
        assert_true(rs_virt_quiesce_frozen(q));
        rs_sleep_ms(200);   /* "the snapshot step" */
        assert_int_equal(rs_virt_quiesce_end(q, &ms, &err), 0);
        printf("FIGURE freeze window %s (200 ms of work inside): freeze_ms=%llu\n",
               doms[i], (unsigned long long)ms);
        /* really thawed: a second thaw finds nothing frozen */
        {
            virDomainPtr vd = virDomainLookupByName(rs_virt_conn_ptr(conn), doms[i]);
            assert_int_equal(virDomainFSThaw(vd, NULL, 0, 0), 0);
            virDomainFree(vd);
        }
        rs_virt_dom_free(d);
    }
}

static void test_watchdog_real(void **state)
{
    rs_virt_dom *d = lookup(dom_file);
    rs_virt_quiesce *q = NULL;
    rs_error err = RS_ERROR_INIT;
    uint64_t ms = 0;
    virDomainPtr vd;
    (void)state;

    if (rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 10, 300, &q, NULL, &err) < 0)
        fail_msg("%s", rs_error_msg(&err));
    for (int i = 0; i < 3000 && rs_virt_quiesce_frozen(q); i++)
        rs_sleep_ms(10);
    assert_false(rs_virt_quiesce_frozen(q));
    vd = virDomainLookupByName(rs_virt_conn_ptr(conn), dom_file);
    assert_int_equal(virDomainFSThaw(vd, NULL, 0, 0), 0);
    virDomainFree(vd);
    assert_int_equal(rs_virt_quiesce_end(q, &ms, &err), -ETIMEDOUT);
    printf("FIGURE watchdog max_freeze=300ms: freeze_ms=%llu\n", (unsigned long long)ms);
    rs_virt_dom_free(d);
}

static void test_noagent(void **state)
{
    rs_virt_dom *d = lookup(dom_noagent);
    rs_virt_quiesce *q = NULL;
    rs_error err = RS_ERROR_INIT;
    char *w = NULL;
    uint64_t t0;
    (void)state;

    t0 = rs_now_ms();
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_OPTIONAL, 5, 30000, &q, &w,
                                           &err), 0);
    assert_non_null(q);
    assert_false(rs_virt_quiesce_frozen(q));
    assert_non_null(w);
    printf("FIGURE no-agent optional: %llu ms, warning: %s\n",
           (unsigned long long)(rs_now_ms() - t0), w);
    assert_non_null(strstr(w, "no guest agent channel"));
    free(w);
    w = NULL;
    assert_int_equal(rs_virt_quiesce_end(q, NULL, &err), 0);

    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 30000, &q, &w,
                                           &err), -EIO);
    assert_null(q);
    printf("FIGURE no-agent required: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "quiesce=required"));
    assert_int_equal(state_of(dom_noagent), RS_VIRT_STATE_RUNNING);
    rs_virt_dom_free(d);
}

struct pause_watch {
    const char *name;
    atomic_bool stop;
    atomic_int paused_seen;
    atomic_int samples;
};

static void *pause_watch_main(void *arg)
{
    struct pause_watch *pw = arg;
    virDomainPtr d = virDomainLookupByName(rs_virt_conn_ptr(conn), pw->name);
    while (d && !atomic_load(&pw->stop)) {
        int st = 0, reason = 0;
        if (virDomainGetState(d, &st, &reason, 0) == 0) {
            atomic_fetch_add(&pw->samples, 1);
            if (st != VIR_DOMAIN_RUNNING)
                atomic_fetch_add(&pw->paused_seen, 1);
        }
        rs_sleep_ms(20);
    }
    if (d)
        virDomainFree(d);
    return NULL;
}

static void live_copy(unsigned flags, const char *tag)
{
    rs_virt_dom *d = lookup(dom_file);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    const char *img = new_image(tag);
    struct pause_watch pw = { .name = dom_file };
    pthread_t th;
    virDomainPtr vd;
    char fig[64];
    int rc;

    if (rs_virt_domain_disks(d, 0, &l, &err) < 0)
        fail_msg("%s", rs_error_msg(&err));
    assert_int_equal(l->disks[0].kind, RS_VIRT_DISK_FILE);
    assert_true(l->disks[0].n_backing >= 1);
    opts_for(&o, img);
    o.flags = flags;
    assert_int_equal(pthread_create(&th, NULL, pause_watch_main, &pw), 0);
    rc = rs_virt_live_copy(d, &l->disks[0], &o, &rep, &err);
    atomic_store(&pw.stop, true);
    pthread_join(th, NULL);
    if (rc < 0)
        fail_msg("live copy: %s", rs_error_msg(&err));
    snprintf(fig, sizeof(fig), "live copy (%s)", tag);
    print_report(fig, &rep);
    printf("FIGURE %s: state samples=%d not-running=%d\n", fig, atomic_load(&pw.samples),
           atomic_load(&pw.paused_seen));
    assert_int_equal(atomic_load(&pw.paused_seen), 0);
    assert_true(atomic_load(&pw.samples) > 0);
    assert_true(rep.quiesced);
    assert_int_equal(rep.transient_job, !(flags & RS_VIRT_COPY_NO_TRANSIENT_JOB));
    vd = virDomainLookupByName(rs_virt_conn_ptr(conn), dom_file);
    assert_int_equal(virDomainIsPersistent(vd), 1);
    assert_int_equal(virDomainIsActive(vd), 1);
    {
        virDomainBlockJobInfo ji;
        assert_int_equal(virDomainGetBlockJobInfo(vd, "vda", &ji, 0), 0);
    }
    virDomainFree(vd);
    /* no temporary file left */
    assert_int_equal(sh("test -z \"$(ls %s | grep delta)\"", tmpdir), 0);
    print_rbd_usage(img);
    assert_fsck_clean(img);
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
}

static void test_live_copy(void **state)
{
    (void)state;
    live_copy(0, "live");
}

static void test_live_copy_undefine(void **state)
{
    (void)state;
    live_copy(RS_VIRT_COPY_NO_TRANSIENT_JOB, "live-undef");
}

static void cold_copy(bool paused)
{
    rs_virt_dom *d = lookup(dom_file);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    const char *img = new_image(paused ? "cold-p" : "cold");
    virDomainPtr vd = virDomainLookupByName(rs_virt_conn_ptr(conn), dom_file);
    int rc;

    if (rs_virt_domain_disks(d, 0, &l, &err) < 0)
        fail_msg("%s", rs_error_msg(&err));
    if (paused)
        assert_int_equal(virDomainSuspend(vd), 0);
    opts_for(&o, img);
    rc = rs_virt_cold_copy(d, &l->disks[0], &o, &rep, &err);
    if (rc < 0)
        fail_msg("cold copy: %s", rs_error_msg(&err));
    print_report(paused ? "cold copy (paused guest)" : "cold copy (running guest)", &rep);
    assert_int_equal(state_of(dom_file), paused ? RS_VIRT_STATE_PAUSED : RS_VIRT_STATE_RUNNING);
    assert_int_equal(virDomainIsPersistent(vd), 1);
    if (paused) {
        /* still paused: the disk cannot have changed since the save */
        if (sh("qemu-img compare -U -q -f %s -F raw %s "
               "'rbd:images/%s:conf=%s:id=%s:keyring=%s'",
               l->disks[0].format, l->disks[0].path, img, ceph_conf, ceph_id,
               ceph_keyring) != 0)
            fail_msg("images/%s differs from %s", img, l->disks[0].path);
        assert_int_equal(virDomainResume(vd), 0);
    }
    print_rbd_usage(img);
    assert_fsck_clean(img);
    virDomainFree(vd);
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
}

static void test_cold_copy_running(void **state)
{
    (void)state;
    cold_copy(false);
}

static void test_cold_copy_paused(void **state)
{
    (void)state;
    cold_copy(true);
}

/* journal to a file: "delta PATH" and the saved XML in another file */
static int file_journal(void *opaque, const rs_virt_journal_rec *rec)
{
    const char *dir = opaque;
    char path[512];
    FILE *f;
    if (rec->delta_path) {
        snprintf(path, sizeof(path), "%s/journal.delta", dir);
        f = fopen(path, "w");
        if (!f)
            return -errno;
        fprintf(f, "%s", rec->delta_path);
        fclose(f);
    }
    if (rec->saved_xml) {
        snprintf(path, sizeof(path), "%s/journal.xml", dir);
        f = fopen(path, "w");
        if (!f)
            return -errno;
        fputs(rec->saved_xml, f);
        fclose(f);
    }
    return 0;
}

static void test_crash_recover(void **state)
{
    char jdir[300], *delta, *xml;
    pid_t pid;
    int status = 0;
    rs_virt_recover_info ri = { 0 };
    rs_error err = RS_ERROR_INIT;
    virDomainPtr vd;
    virDomainBlockJobInfo ji;
    (void)state;

    snprintf(jdir, sizeof(jdir), "%s/journal", tmpdir);
    assert_int_equal(mkdir(jdir, 0700), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the "dead run": own connection, dies right before ending the job,
         * with the domain undefined (fallback path) */
        rs_virt_conn *c = NULL;
        rs_virt_dom *d = NULL;
        rs_virt_disk_list *l = NULL;
        rs_virt_copy_opts o;
        rs_virt_copy_report rep;
        if (rs_virt_connect(getenv("LIBVIRT_DEFAULT_URI"), &c, NULL) < 0 ||
            rs_virt_domain_lookup(c, dom_file, &d, NULL) < 0 ||
            rs_virt_domain_disks(d, 0, &l, NULL) < 0)
            _exit(2);
        opts_for(&o, "rs-virt-never-created");
        o.flags = RS_VIRT_COPY_NO_TRANSIENT_JOB;
        o.journal = file_journal;
        o.journal_opaque = jdir;
        rs_failpoint_configure("virt.blockjob_abort=exit:42");
        rs_virt_live_copy(d, &l->disks[0], &o, &rep, NULL);
        _exit(3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);

    delta = sh_out("cat %s/journal.delta", jdir);
    xml = sh_out("cat %s/journal.xml", jdir);
    assert_true(delta && *delta && access(delta, F_OK) == 0);
    vd = virDomainLookupByName(rs_virt_conn_ptr(conn), dom_file);
    assert_non_null(vd);
    assert_int_equal(virDomainIsPersistent(vd), 0);           /* left undefined */
    assert_int_equal(virDomainGetBlockJobInfo(vd, "vda", &ji, 0), 1); /* job left */

    ri.domain = dom_file;
    ri.saved_xml = xml;
    ri.disk = "vda";
    ri.delta_path = delta;
    ri.start = true;
    if (rs_virt_recover(conn, &ri, &err) < 0)
        fail_msg("recover: %s", rs_error_msg(&err));
    assert_int_equal(virDomainIsPersistent(vd), 1);
    assert_int_equal(virDomainIsActive(vd), 1);
    assert_int_equal(virDomainGetBlockJobInfo(vd, "vda", &ji, 0), 0);
    assert_int_equal(access(delta, F_OK), -1);
    printf("FIGURE crash during live copy repaired: domain persistent, no job, delta gone\n");
    virDomainFree(vd);
    free(delta);
    free(xml);
    sh("rm -rf %s", jdir);
}

/* A throw-away transient domain with an agent channel but no agent (it
 * never boots an OS): libvirt says the agent is not connected. */
static void test_dead_agent(void **state)
{
    char xml[2048], base[400], top[400], dname[64];
    virDomainPtr vd;
    rs_virt_dom *d;
    rs_virt_disk_list *l = NULL;
    rs_virt_quiesce *q = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    const char *img = new_image("deadagent");
    char *w = NULL;
    int rc;
    (void)state;

    snprintf(base, sizeof(base), "%s/dead-base.raw", tmpdir);
    snprintf(top, sizeof(top), "%s/dead-top.qcow2", tmpdir);
    snprintf(dname, sizeof(dname), "rs-virt-deadagent-%s", suffix);
    assert_int_equal(sh("qemu-img create -q -f raw %s 64M && "
                        "qemu-io -f raw -c 'write -P 0x5a 0 3M' %s >/dev/null && "
                        "qemu-img create -q -f qcow2 -o backing_file=%s,backing_fmt=raw %s && "
                        "qemu-io -f qcow2 -c 'write -P 0xa5 32M 2M' %s >/dev/null",
                        base, base, base, top, top), 0);
    snprintf(xml, sizeof(xml),
             "<domain type='qemu'><name>%s</name><memory unit='MiB'>32</memory>"
             "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
             "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
             "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
             "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
             "</channel><memballoon model='none'/></devices></domain>", dname, top);
    vd = virDomainCreateXML(rs_virt_conn_ptr(conn), xml, 0);
    if (!vd)
        fail_msg("create %s: %s", dname, virGetLastErrorMessage());

    d = lookup(dname);
    rc = rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 3, 30000, &q, &w, &err);
    printf("FIGURE dead agent, required: rc=%d %s\n", rc, err.msg);
    if (rc == 0)
        rs_virt_quiesce_end(q, NULL, NULL);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(q);
    rs_error_clear(&err);

    /* a live copy with quiesce=optional proceeds unfrozen, with a warning */
    assert_int_equal(rs_virt_domain_disks(d, 0, &l, &err), 0);
    opts_for(&o, img);
    o.quiesce_timeout_s = 3;
    rc = rs_virt_live_copy(d, &l->disks[0], &o, &rep, &err);
    print_report("live copy (dead agent, optional)", &rep);
    virDomainDestroy(vd);
    virDomainFree(vd);
    if (rc < 0)
        fail_msg("live copy: %s", rs_error_msg(&err));
    assert_false(rep.quiesced);
    assert_non_null(rep.warning);
    assert_non_null(strstr(rep.warning, "not responding"));
    /* the guest never wrote: the image equals the disk */
    if (sh("qemu-img compare -q -f qcow2 -F raw %s "
           "'rbd:images/%s:conf=%s:id=%s:keyring=%s'",
           top, img, ceph_conf, ceph_id, ceph_keyring) != 0)
        fail_msg("images/%s differs from %s", img, top);
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
    unlink(top);
    unlink(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rbd_disks),
        cmocka_unit_test(test_freeze_agent),
        cmocka_unit_test(test_watchdog_real),
        cmocka_unit_test(test_noagent),
        cmocka_unit_test(test_dead_agent),
        cmocka_unit_test(test_live_copy),
        cmocka_unit_test(test_live_copy_undefine),
        cmocka_unit_test(test_cold_copy_running),
        cmocka_unit_test(test_cold_copy_paused),
        cmocka_unit_test(test_crash_recover),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
