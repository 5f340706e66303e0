/* Unit tests for conf/: defaults, overrides, validation messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/conf.h"

static void test_defaults(void **state)
{
    rs_conf *c = rs_conf_new();
    assert_non_null(c);
    assert_string_equal(c->snapshot.source_pool, "vms");
    assert_string_equal(c->snapshot.dest_pool, "images");
    assert_string_equal(c->snapshot.flatten, "no");
    assert_int_equal(c->daemon.port, 8787);
    assert_string_equal(c->daemon.listen, "127.0.0.1");
    assert_string_equal(c->daemon.required_role, "admin");
    assert_int_equal(c->daemon.unix_socket_mode, 0660);
    assert_true(c->gc.enabled);
    rs_conf_free(c);
}

static void test_override_some(void **state)
{
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    int rc = rs_conf_load_string(c,
        "ceph = { conf = \"/tmp/x.conf\"; osd_op_timeout = 5; };\n"
        "snapshot = { flatten = \"deferred\"; };\n"
        "glance = { url = \"http://127.0.0.1:9292\"; insecure = true; };\n", &err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->ceph.conf, "/tmp/x.conf");
    assert_int_equal(c->ceph.osd_op_timeout, 5);
    assert_int_equal(c->ceph.mon_op_timeout, 30);
    assert_string_equal(c->snapshot.flatten, "deferred");
    assert_true(c->glance.insecure);
    rs_conf_free(c);
}

static void expect_error(const char *text, const char *needle)
{
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    int rc = rs_conf_load_string(c, text, &err);
    assert_int_equal(rc, -EINVAL);
    if (!strstr(rs_error_msg(&err), needle))
        fail_msg("error \"%s\" lacks \"%s\"", rs_error_msg(&err), needle);
    /* nothing applied */
    assert_string_equal(c->snapshot.flatten, "no");
    assert_int_equal(c->daemon.port, 8787);
    rs_conf_free(c);
}

static void test_errors_name_line_and_key(void **state)
{
    expect_error("snapshot = { flatten = \"yes\"; };\ndaemon = { port = 70000; };\n",
                 "<string>:2: daemon.port: 70000 is out of range");
    expect_error("snapshot = { flatten = \"maybe\"; };", "snapshot.flatten: must be one of no|yes|deferred");
    expect_error("snapshot = { flaten = \"no\"; };", "snapshot.flaten: unknown key");
    expect_error("nosuch = { a = 1; };", "nosuch: unknown section");
    expect_error("daemon = { port = \"80\"; };", "daemon.port: must be an integer");
    expect_error("daemon = { port = 80 ", "syntax error");
    expect_error("glance = { auth = \"password\"; };", "needs glance.auth_url");
    expect_error("failpoints = \"x=explode\";", "failpoints: malformed");
    expect_error("glance = { url = \"ftp://x\"; };", "glance.url");
}

static void test_file_errors(void **state)
{
    char path[] = "/tmp/rbdsnap-conf-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\n\nceph = {\n  id = 5;\n};\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_conf_load_file(c, path, &err), -EINVAL);
    char expect[256];
    snprintf(expect, sizeof(expect), "%s:4: ceph.id: must be a string", path);
    if (!strstr(rs_error_msg(&err), expect))
        fail_msg("got \"%s\"", rs_error_msg(&err));
    unlink(path);
    rs_error_clear(&err);
    assert_int_equal(rs_conf_load_file(c, "/nonexistent/rbdsnap.conf", &err), -ENOENT);
    assert_non_null(strstr(rs_error_msg(&err), "/nonexistent/rbdsnap.conf"));
    rs_conf_free(c);
}

static void dump_cb(const char *k, const char *v, void *ctx)
{
    if (strcmp(k, "glance.password") == 0)
        assert_string_equal(v, "<set>");
    (*(int *)ctx)++;
}

static void test_dump_hides_secrets(void **state)
{
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_conf_load_string(c, "glance = { password = \"hunter2\"; };", &err), 0);
    int n = 0;
    rs_conf_dump(c, dump_cb, &n);
    assert_true(n > 40);
    rs_conf_free(c);
}

static void test_sample_config_parses(void **state)
{
    const char *src = getenv("RBDSNAP_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/etc/rbdsnap.conf", src ? src : RBDSNAP_SOURCE_DIR_DEFAULT);
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    int rc = rs_conf_load_file(c, path, &err);
    if (rc < 0)
        fail_msg("%s", rs_error_msg(&err));
    rs_conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_override_some),
        cmocka_unit_test(test_errors_name_line_and_key),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_dump_hides_secrets),
        cmocka_unit_test(test_sample_config_parses),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
