/*
 * test_cli_options.c - option parsing and cluster selection of the rbdsnap
 * CLI (no cluster needed).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "rbd/cluster.h"

static void test_global(void **state)
{
    rs_cli cli;
    rs_error err = RS_ERROR_INIT;
    char *argv[] = { "rbdsnap", "-c", "/x.conf", "--format", "json", "--id", "client.bob",
                     "--conf", "/c.conf", "--keyring", "/k", "snapshot", "--name", "x", NULL };
    rs_cli_init(&cli, "rbdsnap");
    int idx = rs_cli_parse_global(&cli, 14, argv, &err);
    assert_int_equal(idx, 11);
    assert_string_equal(argv[idx], "snapshot");
    assert_string_equal(cli.conf_path, "/x.conf");
    assert_int_equal(cli.format, RS_CLI_JSON);
    assert_string_equal(cli.ceph_id, "bob");
    assert_string_equal(cli.ceph_conf, "/c.conf");
    assert_string_equal(cli.keyring, "/k");
    rs_cli_cleanup(&cli);
}

static void test_global_errors(void **state)
{
    rs_cli cli;
    rs_error err = RS_ERROR_INIT;
    char *bad_format[] = { "rbdsnap", "--format", "xml", "snapshot", NULL };
    char *unknown[] = { "rbdsnap", "--bogus", "snapshot", NULL };
    char *missing[] = { "rbdsnap", "--id", NULL };
    rs_cli_init(&cli, "rbdsnap");
    assert_int_equal(rs_cli_parse_global(&cli, 4, bad_format, &err), -EINVAL);
    rs_error_clear(&err);
    assert_int_equal(rs_cli_parse_global(&cli, 3, unknown, &err), -EINVAL);
    rs_error_clear(&err);
    assert_int_equal(rs_cli_parse_global(&cli, 2, missing, &err), -EINVAL);
    rs_cli_cleanup(&cli);
}

static void test_cluster_selection(void **state)
{
    rs_cli cli;
    rs_cluster_opts o;
    rs_error err = RS_ERROR_INIT;

    /* Like the rbd CLI: environment when no configuration file is given. */
    setenv("CEPH_CONF", "/env/ceph.conf", 1);
    setenv("CEPH_ID", "envuser", 1);
    unsetenv("CEPH_KEYRING");
    unsetenv("RBDSNAP_CONF");
    rs_cli_init(&cli, "rbdsnap");
    cli.conf_path = NULL;
    cli.conf = rs_conf_new();
    assert_int_equal(rs_conf_load_string(cli.conf, "ceph = { conf = \"/file/ceph.conf\"; "
                                         "mount_timeout = 7; };", &err), 0);
    rs_cli_cluster_opts(&cli, &o);
    assert_string_equal(o.conf_file, "/env/ceph.conf");
    assert_string_equal(o.id, "envuser");
    assert_int_equal(o.mount_timeout, 7);

    /* An explicit configuration file speaks for the cluster ... */
    cli.conf->path = strdup("/etc/rbdsnap/x.conf");
    rs_cli_cluster_opts(&cli, &o);
    assert_string_equal(o.conf_file, "/file/ceph.conf");
    assert_string_equal(o.id, "admin");
    /* ... and explicit options beat it. */
    cli.ceph_conf = "/opt/ceph.conf";
    cli.ceph_id = "carol";
    cli.keyring = "/opt/keyring";
    rs_cli_cluster_opts(&cli, &o);
    assert_string_equal(o.conf_file, "/opt/ceph.conf");
    assert_string_equal(o.id, "carol");
    assert_string_equal(o.keyring, "/opt/keyring");
    assert_null(o.key_file);
    rs_cli_cleanup(&cli);
}

static void test_connect_error_names_monitors(void **state)
{
    /* Nothing listens there: the error must name mon_host and the timeout. */
    rs_cluster_opts o = { .conf_file = "/dev/null", .id = "admin",
                          .mon_host = "127.0.0.1:1", .mount_timeout = 1 };
    rs_cluster *cl = NULL;
    rs_error err = RS_ERROR_INIT;
    int rc = rs_cluster_connect(&o, &cl, &err);
    assert_true(rc < 0);
    assert_null(cl);
    printf("connect error: %s\n", rs_error_msg(&err));
    assert_non_null(strstr(rs_error_msg(&err), "127.0.0.1:1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_global),
        cmocka_unit_test(test_global_errors),
        cmocka_unit_test(test_cluster_selection),
        cmocka_unit_test(test_connect_error_names_monitors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
