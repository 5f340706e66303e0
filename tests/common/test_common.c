/* Unit tests for common/: errors, failpoints, names, random ids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/failpoint.h"
#include "common/util.h"

static void test_error_first_wins(void **state)
{
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_error_set(&err, -ENOENT, "vms/a@s: not found"), -ENOENT);
    assert_int_equal(rs_error_set(&err, -EIO, "later"), -EIO);
    assert_int_equal(err.code, -ENOENT);
    assert_string_equal(rs_error_msg(&err), "vms/a@s: not found");
    rs_error_prefix(&err, "snapshot job=%d", 7);
    assert_string_equal(rs_error_msg(&err), "snapshot job=7: vms/a@s: not found");
    rs_error_clear(&err);
    assert_false(rs_error_isset(&err));
}

static void test_error_sign_normalised(void **state)
{
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_error_set(&err, EBUSY, NULL), -EBUSY);
    assert_string_equal(rs_error_msg(&err), strerror(EBUSY));
    assert_int_equal(rs_error_set(NULL, 0, "x"), -EIO);
    assert_string_equal(rs_errno_name(-ETIMEDOUT), "ETIMEDOUT");
}

static void test_failpoint_error_and_nth(void **state)
{
    assert_int_equal(rs_failpoint_configure("a.b=error:ENOSPC,c.d=2*error:5"), 0);
    assert_int_equal(rs_failpoint("a.b"), -ENOSPC);
    assert_int_equal(rs_failpoint("x.y"), 0);
    assert_int_equal(rs_failpoint("c.d"), 0);
    assert_int_equal(rs_failpoint("c.d"), -5);
    assert_int_equal(rs_failpoint("c.d"), 0);
    assert_int_equal(rs_failpoint_hits("c.d"), 3);
    assert_int_equal(rs_failpoint_configure(NULL), 0);
    assert_int_equal(rs_failpoint("a.b"), 0);
}

static void test_failpoint_malformed_keeps_old(void **state)
{
    assert_int_equal(rs_failpoint_configure("a=error"), 0);
    assert_int_equal(rs_failpoint_configure("a=explode"), -EINVAL);
    assert_int_equal(rs_failpoint_configure("=error"), -EINVAL);
    assert_int_equal(rs_failpoint_configure("a=error:EWHAT"), -EINVAL);
    /* out-of-range numbers (found by fuzz_conf: LONG_MIN was negated) */
    assert_int_equal(rs_failpoint_validate("a=error:-9223372036854775808"), -EINVAL);
    assert_int_equal(rs_failpoint_validate("a=error:4096"), -EINVAL);
    assert_int_equal(rs_failpoint_validate("a=error:-4096"), -EINVAL);
    assert_int_equal(rs_failpoint_validate("a=error:-5"), 0);
    assert_int_equal(rs_failpoint("a"), -EIO);
    assert_int_equal(rs_failpoint_validate("a=sleep:5,b=exit:3,c=off"), 0);
    rs_failpoint_configure(NULL);
}

static void test_failpoint_exit(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rs_failpoint_configure("boom=exit:42");
        rs_failpoint("boom");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

static void test_names(void **state)
{
    assert_true(rs_name_is_safe("my-snapshot 1", 255));
    assert_false(rs_name_is_safe("", 255));
    assert_false(rs_name_is_safe("a/b", 255));
    assert_false(rs_name_is_safe("..", 255));
    assert_false(rs_name_is_safe("a\nb", 255));
    assert_false(rs_name_is_safe("img@snap", 255));
    assert_false(rs_name_is_safe("abcdef", 3));
    assert_true(rs_is_uuid("0b1f6cbd-6b2e-4f0e-9a55-3c2d0e8d7f11"));
    assert_false(rs_is_uuid("0b1f6cbd-6b2e-4f0e-9a55-3c2d0e8d7f1"));
    assert_false(rs_is_uuid("0b1f6cbd_6b2e-4f0e-9a55-3c2d0e8d7f11"));
}

static void test_random(void **state)
{
    char a[17], b[17], u[37];
    assert_int_equal(rs_random_hex(a, 8), 0);
    assert_int_equal(rs_random_hex(b, 8), 0);
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
    assert_int_equal(rs_random_uuid(u), 0);
    assert_true(rs_is_uuid(u));
    assert_int_equal(u[14], '4');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_first_wins),
        cmocka_unit_test(test_error_sign_normalised),
        cmocka_unit_test(test_failpoint_error_and_nth),
        cmocka_unit_test(test_failpoint_malformed_keeps_old),
        cmocka_unit_test(test_failpoint_exit),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
