/*
 * test_virt_testdrv.c - the adapter against libvirt's in-process
 * test:///default driver (GetXMLDesc, FSFreeze/FSThaw, ManagedSave/Create,
 * Undefine/Define work there; block jobs do not) plus real qemu-img on
 * local files.  Also the quiesce policy table.
 *
 * Every domain and file created has a random suffix and is removed in the
 * group teardown, also when a test fails.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/failpoint.h"
#include "common/util.h"
#include "virt/virt-priv.h"

#define TEST_DOM_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static rs_virt_conn *conn;
static char tmpdir[256];
static char dom_name[64];
static char base_path[512], top_path[512];

/* ---- journal recorder --------------------------------------------------- */

struct jrec {
    int events[16];
    int n;
    char xml_seen;
    char delta[512];
    int fail_on;       /* event number to refuse, 0: none */
};

static int jfn(void *opaque, const rs_virt_journal_rec *rec)
{
    struct jrec *j = opaque;
    if (j->n < 16)
        j->events[j->n++] = rec->event;
    if (rec->saved_xml && strstr(rec->saved_xml, "<domain"))
        j->xml_seen = 1;
    if (rec->delta_path)
        snprintf(j->delta, sizeof(j->delta), "%s", rec->delta_path);
    if (j->fail_on && (int)rec->event == j->fail_on)
        return -EIO;
    return 0;
}

/* ---- fixtures ----------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static virDomainPtr vdom(const char *name)
{
    return virDomainLookupByName(rs_virt_conn_ptr(conn), name);
}

static int group_setup(void **state)
{
    rs_error err = RS_ERROR_INIT;
    char hex[9], xml[4096];
    virDomainPtr d;
    (void)state;

    if (rs_random_hex(hex, 4) < 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rs-virt-test-%s", hex);
    snprintf(dom_name, sizeof(dom_name), "rs-virt-test-%s", hex);
    if (mkdir(tmpdir, 0700) < 0)
        return -1;
    snprintf(base_path, sizeof(base_path), "%s/base.raw", tmpdir);
    snprintf(top_path, sizeof(top_path), "%s/top.qcow2", tmpdir);
    /* 64 MiB base with data at 1 MiB, top with data at 8 MiB and 16 MiB of
     * allocated zeroes at 16 MiB, holes elsewhere */
    if (sh("qemu-img create -q -f raw %s 64M && "
           "qemu-io -f raw -c 'write -P 0xab 1M 512k' %s >/dev/null && "
           "qemu-img create -q -f qcow2 -o backing_file=%s,backing_fmt=raw %s && "
           "qemu-io -f qcow2 -c 'write -P 0xcd 8M 1M' %s >/dev/null && "
           "qemu-io -f qcow2 -c 'write -P 0 16M 16M' %s >/dev/null",
           base_path, base_path, base_path, top_path, top_path, top_path) != 0)
        return -1;

    if (rs_virt_connect("test:///default", &conn, &err) < 0) {
        fprintf(stderr, "connect: %s\n", rs_error_msg(&err));
        return -1;
    }
    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>%s</name><memory>65536</memory>"
             "<vcpu>1</vcpu><os><type>hvm</type></os><devices>"
             "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
             "<source file='%s'/>"
             "<backingStore type='file'><format type='raw'/><source file='%s'/>"
             "<backingStore/></backingStore>"
             "<target dev='vda' bus='virtio'/></disk>"
             "<disk type='file' device='cdrom'><source file='%s/x.iso'/>"
             "<target dev='hdc' bus='ide'/></disk>"
             "</devices></domain>", dom_name, top_path, base_path, tmpdir);
    d = virDomainDefineXML(rs_virt_conn_ptr(conn), xml);
    if (!d || virDomainCreate(d) < 0) {
        fprintf(stderr, "define: %s\n", virGetLastErrorMessage());
        return -1;
    }
    virDomainFree(d);
    return 0;
}

static int group_teardown(void **state)
{
    virDomainPtr d;
    (void)state;
    if (conn) {
        d = vdom(dom_name);
        if (d) {
            virDomainDestroy(d);
            virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
            virDomainFree(d);
        }
        rs_virt_conn_unref(conn);
        conn = NULL;
    }
    if (tmpdir[0])
        sh("rm -rf %s", tmpdir);
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

static void copy_opts(rs_virt_copy_opts *o, const char *dest, struct jrec *j)
{
    memset(o, 0, sizeof(*o));
    o->work_dir = tmpdir;
    o->dest_file = dest;
    o->quiesce = RS_VIRT_QUIESCE_OPTIONAL;
    o->quiesce_timeout_s = 5;
    o->max_freeze_ms = 10000;
    o->job_timeout_s = 30;
    o->convert_timeout_s = 120;
    o->journal = jfn;
    o->journal_opaque = j;
}

/* no file in tmpdir but the fixtures (+ @also) */
static void assert_no_temp_files(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls %s | grep -v -e '^base.raw$' -e '^top.qcow2$' "
             "-e '^out-')\"", tmpdir);
    assert_int_equal(system(cmd), 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_lookup(void **state)
{
    rs_virt_dom *d = NULL;
    rs_error err = RS_ERROR_INIT;
    (void)state;

    d = lookup(TEST_DOM_UUID);
    assert_string_equal(rs_virt_dom_name(d), "test");
    assert_string_equal(rs_virt_dom_uuid(d), TEST_DOM_UUID);
    rs_virt_dom_free(d);
    d = lookup("test");
    assert_string_equal(rs_virt_dom_uuid(d), TEST_DOM_UUID);
    rs_virt_dom_free(d);
    assert_int_equal(rs_virt_domain_lookup(conn, "no-such-domain-x", &d, &err), -ENOENT);
    assert_null(d);
    assert_non_null(strstr(err.msg, "no-such-domain-x"));
    rs_error_clear(&err);
    assert_int_equal(rs_virt_domain_lookup(conn, "", &d, &err), -EINVAL);
    /* a second connection shares nothing but works too */
    {
        rs_virt_conn *c2 = NULL;
        assert_int_equal(rs_virt_connect("test:///default", &c2, NULL), 0);
        rs_virt_conn_unref(c2);
    }
    rs_error_clear(&err);
    {
        rs_virt_conn *c3 = NULL;
        assert_int_equal(rs_virt_connect("bogus+nothing:///x", &c3, &err), -ECONNREFUSED);
        assert_null(c3);
    }
}

static void test_disks(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_disk_list *l = NULL;
    rs_error err = RS_ERROR_INIT;
    (void)state;

    assert_int_equal(rs_virt_domain_disks(d, RS_VIRT_DISKS_ALL, &l, &err), 0);
    assert_int_equal(l->n, 1);   /* cdrom skipped */
    assert_int_equal(l->disks[0].kind, RS_VIRT_DISK_FILE);
    assert_string_equal(l->disks[0].path, top_path);
    assert_string_equal(l->disks[0].format, "qcow2");
    assert_int_equal(l->disks[0].n_backing, 1);
    assert_string_equal(l->disks[0].backing[0].path, base_path);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);

    d = lookup("test");
    assert_int_equal(rs_virt_domain_disks(d, RS_VIRT_DISKS_ROOT, &l, &err), 0);
    assert_string_equal(l->disks[0].target, "vda");
    assert_string_equal(l->disks[0].path, "/guest/diskimage1");
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
}

static void test_policy_table(void **state)
{
    static const struct {
        rs_virt_quiesce_policy p;
        int code;
        int rc;
        bool warn;
    } cases[] = {
        { RS_VIRT_QUIESCE_OPTIONAL, VIR_ERR_ARGUMENT_UNSUPPORTED, 0, true },
        { RS_VIRT_QUIESCE_OPTIONAL, VIR_ERR_AGENT_UNRESPONSIVE, 0, true },
        { RS_VIRT_QUIESCE_OPTIONAL, VIR_ERR_INTERNAL_ERROR, 0, true },
        { RS_VIRT_QUIESCE_REQUIRED, VIR_ERR_ARGUMENT_UNSUPPORTED, -EIO, false },
        { RS_VIRT_QUIESCE_REQUIRED, VIR_ERR_AGENT_UNRESPONSIVE, -ETIMEDOUT, false },
        { RS_VIRT_QUIESCE_REQUIRED, VIR_ERR_OPERATION_TIMEOUT, -ETIMEDOUT, false },
        { RS_VIRT_QUIESCE_REQUIRED, VIR_ERR_OPERATION_INVALID, -EIO, false },
        { RS_VIRT_QUIESCE_REQUIRED, VIR_ERR_INTERNAL_ERROR, -EIO, false },
        { RS_VIRT_QUIESCE_OFF, VIR_ERR_INTERNAL_ERROR, 0, false },
    };
    rs_virt_quiesce_policy p;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_error err = RS_ERROR_INIT;
        char *w = NULL;
        int rc = rs_virt_quiesce_decide(cases[i].p, "dom1", cases[i].code, "agent says no",
                                        &w, &err);
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].warn) {
            assert_non_null(w);
            assert_non_null(strstr(w, "dom1"));
            assert_non_null(strstr(w, "agent says no"));
        } else {
            assert_null(w);
        }
        if (rc < 0) {
            assert_int_equal(err.code, rc);
            assert_non_null(strstr(err.msg, "quiesce=required"));
            assert_non_null(strstr(err.msg, "dom1"));
        }
        free(w);
    }
    assert_int_equal(rs_virt_quiesce_decide(RS_VIRT_QUIESCE_REQUIRED, "d", 
                                            VIR_ERR_ARGUMENT_UNSUPPORTED, NULL, NULL, NULL),
                     -EIO);
    assert_int_equal(rs_virt_quiesce_policy_parse("required", &p), 0);
    assert_int_equal(p, RS_VIRT_QUIESCE_REQUIRED);
    assert_int_equal(rs_virt_quiesce_policy_parse("optional", &p), 0);
    assert_int_equal(p, RS_VIRT_QUIESCE_OPTIONAL);
    assert_int_equal(rs_virt_quiesce_policy_parse("off", &p), 0);
    assert_int_equal(p, RS_VIRT_QUIESCE_OFF);
    assert_int_equal(rs_virt_quiesce_policy_parse("maybe", &p), -EINVAL);
    assert_string_equal(rs_virt_quiesce_policy_name(RS_VIRT_QUIESCE_OPTIONAL), "optional");
}

/* FSThaw on the test driver returns how many filesystems were frozen. */
static int thaw_count(const char *name)
{
    virDomainPtr d = vdom(name);
    int n;
    assert_non_null(d);
    n = virDomainFSThaw(d, NULL, 0, 0);
    virDomainFree(d);
    return n;
}

static void test_freeze_thaw(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_quiesce *q = NULL;
    rs_error err = RS_ERROR_INIT;
    char *w = NULL;
    uint64_t ms = 99;
    (void)state;

    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 10000, &q, &w,
                                           &err), 0);
    assert_non_null(q);
    assert_null(w);
    assert_true(rs_virt_quiesce_frozen(q));
    assert_int_equal(rs_virt_quiesce_end(q, &ms, &err), 0);
    assert_false(rs_error_isset(&err));
    assert_int_equal(thaw_count(dom_name), 0);    /* really thawed */

    /* off: never frozen */
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_OFF, 5, 1000, &q, &w, &err), 0);
    assert_false(rs_virt_quiesce_frozen(q));
    assert_int_equal(rs_virt_quiesce_end(q, &ms, &err), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(rs_virt_quiesce_end(NULL, &ms, &err), 0);
    rs_virt_dom_free(d);
}

static void test_watchdog(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_quiesce *q = NULL;
    rs_error err = RS_ERROR_INIT;
    uint64_t ms = 0;
    int i;
    (void)state;

    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 20, &q, NULL,
                                           &err), 0);
    /* wait (bounded) for the watchdog to fire; no timing is asserted */
    for (i = 0; i < 1000 && !rs_virt_quiesce_watchdog_fired(q); i++)
        rs_sleep_ms(10);
    assert_true(rs_virt_quiesce_watchdog_fired(q));
    for (i = 0; i < 1000 && rs_virt_quiesce_frozen(q); i++)
        rs_sleep_ms(10);
    assert_false(rs_virt_quiesce_frozen(q));
    assert_int_equal(thaw_count(dom_name), 0);
    assert_int_equal(rs_virt_quiesce_end(q, &ms, &err), -ETIMEDOUT);
    assert_non_null(strstr(err.msg, "max_freeze"));
    assert_true(ms >= 20);
    rs_virt_dom_free(d);
}

static void test_freeze_failures(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_quiesce *q = NULL;
    rs_error err = RS_ERROR_INIT;
    virDomainPtr vd = vdom(dom_name);
    char *w = NULL;
    (void)state;

    /* a dead agent, simulated */
    assert_int_equal(rs_failpoint_configure("virt.freeze=error"), 0);
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_OPTIONAL, 5, 1000, &q, &w,
                                           &err), 0);
    assert_non_null(q);
    assert_false(rs_virt_quiesce_frozen(q));
    assert_non_null(w);
    assert_non_null(strstr(w, "not responding"));
    free(w);
    w = NULL;
    assert_int_equal(rs_virt_quiesce_end(q, NULL, &err), 0);
    q = NULL;
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 1000, &q, &w,
                                           &err), -ETIMEDOUT);
    assert_null(q);
    assert_null(w);
    assert_non_null(strstr(err.msg, dom_name));
    rs_error_clear(&err);
    assert_int_equal(rs_failpoint_configure(""), 0);
    assert_int_equal(thaw_count(dom_name), 0);

    /* a thaw that keeps failing is reported */
    assert_int_equal(rs_failpoint_configure("virt.thaw=error"), 0);
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 10000, &q, &w,
                                           &err), 0);
    assert_int_equal(rs_virt_quiesce_end(q, NULL, &err), -EIO);
    assert_non_null(strstr(err.msg, "fsthaw failed"));
    rs_error_clear(&err);
    assert_int_equal(rs_failpoint_configure(""), 0);
    assert_true(thaw_count(dom_name) > 0);   /* it was left frozen: thaw it */

    /* a paused domain cannot be quiesced */
    assert_int_equal(virDomainSuspend(vd), 0);
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_OPTIONAL, 5, 1000, &q, &w,
                                           &err), 0);
    assert_non_null(w);
    assert_non_null(strstr(w, "paused"));
    free(w);
    w = NULL;
    assert_int_equal(rs_virt_quiesce_end(q, NULL, NULL), 0);
    assert_int_equal(rs_virt_quiesce_begin(d, RS_VIRT_QUIESCE_REQUIRED, 5, 1000, &q, &w,
                                           &err), -EIO);
    assert_null(q);
    rs_error_clear(&err);
    assert_int_equal(virDomainResume(vd), 0);
    virDomainFree(vd);
    rs_virt_dom_free(d);
}

static void cold_copy_case(bool paused)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    struct jrec j = { 0 };
    char out[600];
    virDomainPtr vd = vdom(dom_name);

    snprintf(out, sizeof(out), "%s/out-cold-%d.raw", tmpdir, paused);
    if (paused)
        assert_int_equal(virDomainSuspend(vd), 0);
    assert_int_equal(rs_virt_domain_disks(d, 0, &l, &err), 0);
    copy_opts(&o, out, &j);
    if (rs_virt_cold_copy(d, &l->disks[0], &o, &rep, &err) < 0)
        fail_msg("cold copy: %s", rs_error_msg(&err));
    assert_int_equal(state_of(dom_name), paused ? RS_VIRT_STATE_PAUSED : RS_VIRT_STATE_RUNNING);
    assert_int_equal(j.n, 2);
    assert_int_equal(j.events[0], RS_VIRT_J_MANAGED_SAVE);
    assert_int_equal(j.events[1], RS_VIRT_J_DONE);
    assert_true(rep.dest_created);
    assert_true(rep.downtime_ms >= rep.convert_ms);
    /* identical content, standalone and sparse (neither holes nor the
     * 16 MiB of written zeroes take space) */
    assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw %s %s", top_path, out), 0);
    assert_int_equal(sh("test \"$(qemu-img info --output=json %s | grep -c backing)\" = 0",
                        out), 0);
    assert_int_equal(sh("test $(du -k %s | cut -f1) -lt 8192", out), 0);
    rs_virt_copy_report_clear(&rep);
    if (paused)
        assert_int_equal(virDomainResume(vd), 0);
    virDomainFree(vd);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
    assert_no_temp_files();
}

static void test_cold_copy_running(void **state)
{
    (void)state;
    cold_copy_case(false);
}

static void test_cold_copy_paused(void **state)
{
    (void)state;
    cold_copy_case(true);
}

static void test_cold_copy_convert_fails(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    struct jrec j = { 0 };
    char out[600];
    (void)state;

    /* unwritable destination: qemu-img itself fails */
    snprintf(out, sizeof(out), "%s/no/such/dir/out.raw", tmpdir);
    assert_int_equal(rs_virt_domain_disks(d, 0, &l, &err), 0);
    copy_opts(&o, out, &j);
    assert_int_equal(rs_virt_cold_copy(d, &l->disks[0], &o, &rep, &err), -EIO);
    assert_non_null(strstr(err.msg, "qemu-img"));
    assert_int_equal(state_of(dom_name), RS_VIRT_STATE_RUNNING);
    assert_int_equal(j.events[j.n - 1], RS_VIRT_J_DONE);
    rs_virt_copy_report_clear(&rep);

    /* restore fails: no DONE, recovery starts the domain */
    rs_error_clear(&err);
    memset(&j, 0, sizeof(j));
    snprintf(out, sizeof(out), "%s/out-fail.raw", tmpdir);
    copy_opts(&o, out, &j);
    assert_int_equal(rs_failpoint_configure("virt.restore=error"), 0);
    assert_int_equal(rs_virt_cold_copy(d, &l->disks[0], &o, &rep, &err), -EIO);
    assert_int_equal(rs_failpoint_configure(""), 0);
    assert_int_equal(j.n, 1);
    assert_int_equal(state_of(dom_name), RS_VIRT_STATE_SHUTOFF);
    {
        rs_virt_recover_info ri = { .domain = dom_name, .disk = "vda", .start = true };
        rs_error_clear(&err);
        assert_int_equal(rs_virt_recover(conn, &ri, &err), 0);
    }
    assert_int_equal(state_of(dom_name), RS_VIRT_STATE_RUNNING);
    unlink(out);
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
    assert_no_temp_files();
}

static void live_copy_fails_cleanly(unsigned flags)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    struct jrec j = { 0 };
    char out[600];
    virDomainPtr vd;

    snprintf(out, sizeof(out), "%s/out-live.raw", tmpdir);
    assert_int_equal(rs_virt_domain_disks(d, 0, &l, &err), 0);
    copy_opts(&o, out, &j);
    o.flags = flags;
    /* the test driver has no block jobs: BlockCopy fails after the delta
     * was created (and, in the fallback, after the undefine) */
    assert_int_equal(rs_virt_live_copy(d, &l->disks[0], &o, &rep, &err), -EIO);
    assert_non_null(strstr(err.msg, "block copy"));
    assert_false(rep.dest_created);
    assert_int_equal(j.events[0], RS_VIRT_J_DELTA);
    assert_int_equal(j.events[j.n - 1], RS_VIRT_J_DONE);
    if (flags & RS_VIRT_COPY_NO_TRANSIENT_JOB) {
        assert_int_equal(j.events[1], RS_VIRT_J_UNDEFINE);
        assert_true(j.xml_seen);
    }
    assert_int_equal(access(j.delta, F_OK), -1);
    vd = vdom(dom_name);
    assert_non_null(vd);
    assert_int_equal(virDomainIsPersistent(vd), 1);
    assert_int_equal(virDomainIsActive(vd), 1);
    virDomainFree(vd);
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
    assert_no_temp_files();
}

static void test_live_copy_cleanup(void **state)
{
    (void)state;
    live_copy_fails_cleanly(0);
}

static void test_live_copy_cleanup_undefine(void **state)
{
    (void)state;
    live_copy_fails_cleanly(RS_VIRT_COPY_NO_TRANSIENT_JOB);
}

static void test_live_copy_journal_refuses(void **state)
{
    rs_virt_dom *d = lookup(dom_name);
    rs_virt_disk_list *l = NULL;
    rs_virt_copy_opts o;
    rs_virt_copy_report rep;
    rs_error err = RS_ERROR_INIT;
    struct jrec j = { .fail_on = RS_VIRT_J_DELTA };
    (void)state;

    assert_int_equal(rs_virt_domain_disks(d, 0, &l, &err), 0);
    copy_opts(&o, "/nonexistent/out", &j);
    assert_int_equal(rs_virt_live_copy(d, &l->disks[0], &o, &rep, &err), -EIO);
    assert_non_null(strstr(err.msg, "journal"));
    rs_virt_copy_report_clear(&rep);
    rs_virt_disk_list_free(l);
    rs_virt_dom_free(d);
    assert_no_temp_files();
}

static void test_recover(void **state)
{
    virDomainPtr vd = vdom(dom_name);
    char *xml;
    char delta[600];
    rs_error err = RS_ERROR_INIT;
    rs_virt_recover_info ri = { 0 };
    (void)state;

    /* a crashed fallback run: domain undefined (transient), delta left */
    xml = virDomainGetXMLDesc(vd, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    assert_non_null(xml);
    assert_int_equal(virDomainUndefine(vd), 0);
    assert_int_equal(virDomainIsPersistent(vd), 0);
    snprintf(delta, sizeof(delta), "%s/rbdsnap-crash.delta.qcow2", tmpdir);
    assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M", delta), 0);

    ri.domain = dom_name;
    ri.saved_xml = xml;
    ri.disk = "vda";
    ri.delta_path = delta;
    ri.start = true;
    assert_int_equal(rs_virt_recover(conn, &ri, &err), 0);
    assert_int_equal(virDomainIsPersistent(vd), 1);
    assert_int_equal(virDomainIsActive(vd), 1);
    assert_int_equal(access(delta, F_OK), -1);
    /* idempotent */
    assert_int_equal(rs_virt_recover(conn, &ri, &err), 0);

    /* domain gone entirely (crash after destroy of a transient domain) */
    assert_int_equal(virDomainUndefine(vd), 0);
    assert_int_equal(virDomainDestroy(vd), 0);
    virDomainFree(vd);
    assert_null(vdom(dom_name));
    assert_int_equal(rs_virt_recover(conn, &ri, &err), 0);
    assert_int_equal(state_of(dom_name), RS_VIRT_STATE_RUNNING);

    ri.saved_xml = NULL;
    ri.domain = "rs-virt-missing-x";
    assert_int_equal(rs_virt_recover(conn, &ri, &err), -ENOENT);
    free(xml);
}

static void test_run(void **state)
{
    rs_error err = RS_ERROR_INIT;
    atomic_bool cancel = true;
    char *ok[] = { "true", NULL };
    char *bad[] = { "sh", "-c", "echo boom >&2; exit 3", NULL };
    char *slow[] = { "sleep", "30", NULL };
    char *missing[] = { "rs-no-such-program-x", NULL };
    (void)state;

    assert_int_equal(rs_virt_run(ok, NULL, 0, &err), 0);
    assert_int_equal(rs_virt_run(bad, NULL, 0, &err), -EIO);
    assert_non_null(strstr(err.msg, "boom"));
    assert_non_null(strstr(err.msg, "exit status 3"));
    rs_error_clear(&err);
    assert_int_equal(rs_virt_run(slow, &cancel, 0, &err), -ECANCELED);
    rs_error_clear(&err);
    assert_int_equal(rs_virt_run(slow, NULL, 1, &err), -ETIMEDOUT);
    rs_error_clear(&err);
    assert_true(rs_virt_run(missing, NULL, 0, &err) < 0);
}

/* the shared connection used by several threads at once */
static void *lookup_worker(void *arg)
{
    long bad = 0;
    (void)arg;
    for (int i = 0; i < 200; i++) {
        rs_virt_dom *d = NULL;
        rs_virt_disk_list *l = NULL;
        rs_virt_state st;
        if (rs_virt_domain_lookup(conn, i % 2 ? dom_name : TEST_DOM_UUID, &d, NULL) < 0 ||
            rs_virt_domain_disks(d, RS_VIRT_DISKS_ALL, &l, NULL) < 0 ||
            rs_virt_dom_state(d, &st, NULL) < 0 || l->n != 1)
            bad++;
        rs_virt_disk_list_free(l);
        rs_virt_dom_free(d);
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, lookup_worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        pthread_join(th[i], &bad);
        assert_int_equal((long)bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_disks),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test(test_freeze_thaw),
        cmocka_unit_test(test_watchdog),
        cmocka_unit_test(test_freeze_failures),
        cmocka_unit_test(test_cold_copy_running),
        cmocka_unit_test(test_cold_copy_paused),
        cmocka_unit_test(test_cold_copy_convert_fails),
        cmocka_unit_test(test_live_copy_cleanup),
        cmocka_unit_test(test_live_copy_cleanup_undefine),
        cmocka_unit_test(test_live_copy_journal_refuses),
        cmocka_unit_test(test_recover),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
