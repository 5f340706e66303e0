/*
 * test_cli_unit.c - unit tests of the CLI helpers: progress formatting,
 * POOL/IMAGE[@SNAP] parsing, size and age formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/deptree.h"
#include "cli/progress.h"

static void test_progress_bar(void **state)
{
    char buf[256];
    (void)state;
    rs_progress_format(buf, sizeof(buf), "flatten images/x", 10, 5, 10, 2.5 * 1048576, 4);
    assert_string_equal(buf, "flatten images/x [#####.....]  50%  2.5 MiB/s  ETA 0:04");
    rs_progress_format(buf, sizeof(buf), "flatten images/x", 10, 0, 0, -1, -1);
    assert_string_equal(buf, "flatten images/x [..........]   0%  -- MiB/s  ETA --:--");
    rs_progress_format(buf, sizeof(buf), "f", 4, 12, 10, 0, 3725);
    assert_string_equal(buf, "f [####] 100%  0.0 MiB/s  ETA 1:02:05");
}

static void test_progress_lines(void **state)
{
    char buf[256];
    (void)state;
    rs_progress_format(buf, sizeof(buf), "flatten a/b", 0, 1, 4, 1048576, 61);
    assert_string_equal(buf, "flatten a/b: 25% 1.0 MiB/s ETA 1:01");
}

static void test_progress_lines_output(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    (void)state;
    rs_progress *p = rs_progress_new(f, RS_PROGRESS_AUTO, "flatten a/b", 1 << 20);
    assert_non_null(p);
    for (uint64_t i = 0; i <= 100; i++)
        rs_progress_update(p, i, 100);
    rs_progress_finish(p, 0);
    rs_progress_free(p);
    fclose(f);
    /* Not a terminal: 11 lines (0..100 in steps of 10) + the final one. */
    int lines = 0;
    for (char *c = out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 12);
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "flatten a/b: 100%"));
    assert_non_null(strstr(out, "flatten a/b: done after"));
    free(out);
}

static void test_progress_cancel_line(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    (void)state;
    rs_progress *p = rs_progress_new(f, RS_PROGRESS_LINES, "flatten a/b", 0);
    rs_progress_update(p, 3, 10);
    rs_progress_finish(p, -ECANCELED);
    rs_progress_free(p);
    fclose(f);
    assert_non_null(strstr(out, "flatten a/b: cancelled after"));
    assert_null(strstr(out, "100%"));
    free(out);
}

static void test_parse_spec(void **state)
{
    char *p, *i, *s;
    rs_error err = RS_ERROR_INIT;
    (void)state;
    assert_int_equal(rs_dep_parse_spec("vms/a_disk", &p, &i, NULL, &err), 0);
    assert_string_equal(p, "vms");
    assert_string_equal(i, "a_disk");
    free(p);
    free(i);
    assert_int_equal(rs_dep_parse_spec("vms/a@s1", &p, &i, &s, &err), 0);
    assert_string_equal(s, "s1");
    free(p);
    free(i);
    free(s);
    const char *bad_img[] = { "vms", "/a", "vms/", "vms/a/b", "vms/a@s", "a@b/c" };
    for (size_t k = 0; k < sizeof(bad_img) / sizeof(bad_img[0]); k++) {
        rs_error_clear(&err);
        assert_int_equal(rs_dep_parse_spec(bad_img[k], &p, &i, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "expected POOL/IMAGE"));
    }
    const char *bad_snap[] = { "vms/a", "vms/a@", "vms/@s", "@s" };
    for (size_t k = 0; k < sizeof(bad_snap) / sizeof(bad_snap[0]); k++) {
        rs_error_clear(&err);
        assert_int_equal(rs_dep_parse_spec(bad_snap[k], &p, &i, &s, &err), -EINVAL);
    }
}

static void test_fmt(void **state)
{
    char b[32];
    (void)state;
    rs_dep_fmt_size(0, b, sizeof(b));
    assert_string_equal(b, "0 B");
    rs_dep_fmt_size(64ull << 20, b, sizeof(b));
    assert_string_equal(b, "64 MiB");
    rs_dep_fmt_size(1536, b, sizeof(b));
    assert_string_equal(b, "1.5 KiB");
    rs_dep_fmt_size(10ull << 30, b, sizeof(b));
    assert_string_equal(b, "10 GiB");
    rs_dep_fmt_age(0, 1000, b, sizeof(b));
    assert_string_equal(b, "-");
    rs_dep_fmt_age(1000, 1030, b, sizeof(b));
    assert_string_equal(b, "30s");
    rs_dep_fmt_age(1000, 1000 + 600, b, sizeof(b));
    assert_string_equal(b, "10m");
    rs_dep_fmt_age(1000, 1000 + 5 * 3600, b, sizeof(b));
    assert_string_equal(b, "5h");
    rs_dep_fmt_age(1000, 1000 + 10 * 86400, b, sizeof(b));
    assert_string_equal(b, "10d");
    rs_dep_fmt_age(2000, 1000, b, sizeof(b));
    assert_string_equal(b, "0s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_bar),
        cmocka_unit_test(test_progress_lines),
        cmocka_unit_test(test_progress_lines_output),
        cmocka_unit_test(test_progress_cancel_line),
        cmocka_unit_test(test_parse_spec),
        cmocka_unit_test(test_fmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
