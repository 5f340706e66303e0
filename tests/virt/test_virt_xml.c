/*
 * test_virt_xml.c - domain XML -> disk list, on Nova-like samples, and the
 * qemu-img RBD target syntax.
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

#include "virt/virt-priv.h"

static char *slurp(const char *name)
{
    char path[1024];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof(path), "%s/tests/virt/data/%s", RBDSNAP_SOURCE_DIR_DEFAULT, name);
    f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static rs_virt_disk_list *parse(const char *name, unsigned flags, int want_rc)
{
    char *xml = slurp(name);
    rs_virt_disk_list *l = NULL;
    rs_error err = RS_ERROR_INIT;
    int rc = rs_virt_parse_disks(xml, flags, &l, &err);
    free(xml);
    if (rc != want_rc)
        fail_msg("%s: rc=%d want %d (%s)", name, rc, want_rc, rs_error_msg(&err));
    if (rc < 0) {
        assert_null(l);
        assert_int_equal(err.code, rc);
        assert_true(strlen(err.msg) > 0);
    }
    return l;
}

static void test_rbd_all(void **state)
{
    rs_virt_disk_list *l = parse("nova-rbd.xml", RS_VIRT_DISKS_ALL, 0);
    const rs_virt_disk *d;
    (void)state;

    /* cdrom and the config drive (also as a disk) are skipped */
    assert_int_equal(l->n, 2);
    d = &l->disks[0];
    assert_int_equal(d->kind, RS_VIRT_DISK_RBD);
    assert_string_equal(d->target, "vda");
    assert_string_equal(d->bus, "virtio");
    assert_string_equal(d->format, "raw");
    assert_string_equal(d->pool, "vms");
    assert_string_equal(d->image, "6f1b7c1e-3c4d-4e8a-9b1f-2d3e4f5a6b7c_disk");
    assert_null(d->snap);
    assert_int_equal(d->n_hosts, 3);
    assert_string_equal(d->hosts[0], "10.0.0.11:6789");
    assert_string_equal(d->hosts[1], "10.0.0.12:6789");
    assert_string_equal(d->hosts[2], "[fd00::13]:3300");
    assert_string_equal(d->auth_user, "nova");
    assert_string_equal(d->secret_uuid, "457eb676-33da-42ec-9a8c-9293d545c337");
    assert_null(d->path);

    d = rs_virt_disk_list_find(l, "vdb");
    assert_non_null(d);
    assert_string_equal(d->image, "6f1b7c1e-3c4d-4e8a-9b1f-2d3e4f5a6b7c_disk.eph0");
    assert_int_equal(d->n_hosts, 1);
    assert_null(rs_virt_disk_list_find(l, "sda"));
    assert_null(rs_virt_disk_list_find(l, "vdz"));
    rs_virt_disk_list_free(l);
}

static void test_rbd_root(void **state)
{
    rs_virt_disk_list *l = parse("nova-rbd.xml", RS_VIRT_DISKS_ROOT, 0);
    (void)state;
    assert_int_equal(l->n, 1);
    assert_string_equal(l->disks[0].target, "vda");
    assert_string_equal(l->disks[0].image, "6f1b7c1e-3c4d-4e8a-9b1f-2d3e4f5a6b7c_disk");
    rs_virt_disk_list_free(l);
}

static void test_file_chain(void **state)
{
    rs_virt_disk_list *l = parse("nova-file.xml", RS_VIRT_DISKS_ALL, 0);
    const rs_virt_disk *d;
    (void)state;

    /* two cdroms (one empty) and disk.config skipped */
    assert_int_equal(l->n, 2);
    d = &l->disks[0];
    assert_int_equal(d->kind, RS_VIRT_DISK_FILE);
    assert_string_equal(d->target, "vda");
    assert_string_equal(d->format, "qcow2");
    assert_string_equal(d->path,
                        "/var/lib/nova/instances/0e4a4f5c-8a43-4a2d-a2c2-5b7f1c9d2e01/disk");
    assert_int_equal(d->n_backing, 2);
    assert_string_equal(d->backing[0].path, "/var/lib/nova/instances/_base/mid.qcow2");
    assert_string_equal(d->backing[0].format, "qcow2");
    assert_string_equal(d->backing[1].path, "/var/lib/nova/instances/_base/4b1f0a9e6c1d");
    assert_string_equal(d->backing[1].format, "raw");
    assert_null(d->pool);
    assert_int_equal(d->n_hosts, 0);

    d = &l->disks[1];
    assert_string_equal(d->target, "vdb");
    assert_int_equal(d->n_backing, 1);
    assert_string_equal(d->backing[0].path,
                        "/var/lib/nova/instances/_base/ephemeral_1_0706d66");
    rs_virt_disk_list_free(l);

    l = parse("nova-file.xml", RS_VIRT_DISKS_ROOT, 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->disks[0].target, "vda");
    assert_int_equal(l->disks[0].n_backing, 2);
    rs_virt_disk_list_free(l);
}

static void test_root_not_first(void **state)
{
    rs_virt_disk_list *l = parse("root-not-first.xml", RS_VIRT_DISKS_ALL, 0);
    (void)state;
    /* the nbd disk is skipped; block disk kept as a file-kind disk */
    assert_int_equal(l->n, 2);
    assert_int_equal(l->disks[0].kind, RS_VIRT_DISK_FILE);
    assert_string_equal(l->disks[0].path, "/dev/vg0/data");
    assert_int_equal(l->disks[1].kind, RS_VIRT_DISK_RBD);
    /* <auth> inside <source>, host without port, pool/image@snap */
    assert_string_equal(l->disks[1].snap, "base");
    assert_string_equal(l->disks[1].image, "odd_disk");
    assert_string_equal(l->disks[1].hosts[0], "mon1");
    assert_string_equal(l->disks[1].auth_user, "admin");
    assert_string_equal(l->disks[1].secret_uuid, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    rs_virt_disk_list_free(l);

    l = parse("root-not-first.xml", RS_VIRT_DISKS_ROOT, 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->disks[0].target, "vda");
    assert_int_equal(l->disks[0].kind, RS_VIRT_DISK_RBD);
    rs_virt_disk_list_free(l);
}

static void test_errors(void **state)
{
    rs_virt_disk_list *l = NULL;
    rs_error err = RS_ERROR_INIT;
    (void)state;

    assert_null(parse("no-disks.xml", RS_VIRT_DISKS_ALL, -ENOENT));
    assert_null(parse("bad-rbd.xml", RS_VIRT_DISKS_ALL, -EINVAL));
    assert_int_equal(rs_virt_parse_disks("<domain><devices>", 0, &l, &err), -EINVAL);
    assert_null(l);
    rs_error_clear(&err);
    assert_int_equal(rs_virt_parse_disks("<network/>", 0, &l, &err), -EINVAL);
    rs_error_clear(&err);
    assert_int_equal(rs_virt_parse_disks(NULL, 0, &l, &err), -EINVAL);
    rs_error_clear(&err);
    /* external entities are never loaded: either refused or left empty */
    int rc = rs_virt_parse_disks(
        "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        "<domain><devices><disk type='file' device='disk'><source file='x&x;'/>"
        "<target dev='vda'/></disk></devices></domain>", 0, &l, &err);
    if (rc == 0) {
        assert_int_equal(l->n, 1);
        assert_null(strstr(l->disks[0].path, "root:"));
        rs_virt_disk_list_free(l);
    } else {
        assert_int_equal(rc, -EINVAL);
        assert_null(l);
    }
    rs_virt_disk_list_free(NULL);
}

static void test_rbd_target(void **state)
{
    char *t;
    (void)state;
    t = rs_virt_rbd_target("images", "0a1b", "/etc/ceph/ceph.conf", "admin", NULL);
    assert_string_equal(t, "rbd:images/0a1b:conf=/etc/ceph/ceph.conf:id=admin");
    free(t);
    t = rs_virt_rbd_target("images", "x", "/a:b/c=d.conf", "glance", "/k/key:ring");
    assert_string_equal(t, "rbd:images/x:conf=/a\\:b/c\\=d.conf:id=glance"
                           ":keyring=/k/key\\:ring");
    free(t);
    t = rs_virt_rbd_target("p", "a@b:c", NULL, NULL, NULL);
    assert_string_equal(t, "rbd:p/a\\@b\\:c");
    free(t);
    assert_null(rs_virt_rbd_target("", "x", NULL, NULL, NULL));
    assert_null(rs_virt_rbd_target("p", NULL, NULL, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rbd_all),
        cmocka_unit_test(test_rbd_root),
        cmocka_unit_test(test_file_chain),
        cmocka_unit_test(test_root_not_first),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_rbd_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
