/*
 * test_filesnap_unit.c - unit tests of the file-backed path without any
 * service: request fields mode/upload in the API validation, the
 * configuration keys, and the state-file recovery (nothing to do, a state
 * whose domain cannot be reached is kept, a clean state is removed, a
 * corrupt state is an error), and a domain that is not found.
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
#include <unistd.h>

#include <jansson.h>

#include "common/util.h"
#include "conf/conf.h"
#include "service/service-priv.h"
#include "service/snapshot_file.h"

static void test_validate_mode_upload(void **state)
{
    (void)state;
    static const struct { const char *body; int rc; } cases[] = {
        { "{\"domain\":\"d\",\"name\":\"n\",\"mode\":\"live\"}", 0 },
        { "{\"domain\":\"d\",\"name\":\"n\",\"mode\":\"cold\",\"upload\":\"glance\"}", 0 },
        { "{\"domain\":\"d\",\"name\":\"n\",\"mode\":\"auto\",\"upload\":\"rbd\"}", 0 },
        { "{\"domain\":\"d\",\"name\":\"n\",\"mode\":\"warm\"}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"n\",\"mode\":1}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"n\",\"upload\":\"ftp\"}", -EINVAL },
        { "{\"domain\":\"d\",\"name\":\"n\",\"upload\":true}", -EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rs_error err = RS_ERROR_INIT;
        json_t *out = NULL;
        int rc = rs_api_validate_snapshot(cases[i].body, strlen(cases[i].body), &out, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, expected %d (%s)", i, cases[i].body, rc, cases[i].rc,
                     rs_error_msg(&err));
        if (rc < 0)
            assert_non_null(strstr(rs_error_msg(&err),
                                   strstr(cases[i].body, "\"mode\"") ? "'mode'" : "'upload'"));
        json_decref(out);
    }
}

static void test_conf_keys(void **state)
{
    (void)state;
    rs_conf *c = rs_conf_new();
    rs_error err = RS_ERROR_INIT;
    assert_non_null(c);
    assert_string_equal(c->snapshot.file_mode, "auto");
    assert_string_equal(c->snapshot.file_upload, "rbd");
    assert_int_equal(rs_conf_load_string(c, "snapshot = { file_mode = \"cold\"; "
                                            "file_upload = \"glance\"; };", &err), 0);
    assert_string_equal(c->snapshot.file_mode, "cold");
    assert_string_equal(c->snapshot.file_upload, "glance");
    assert_int_equal(rs_conf_load_string(c, "snapshot = { file_mode = \"warm\"; };", &err),
                     -EINVAL);
    assert_non_null(strstr(rs_error_msg(&err), "file_mode"));
    rs_error_clear(&err);
    assert_int_equal(rs_conf_load_string(c, "snapshot = { file_upload = \"ftp\"; };", &err),
                     -EINVAL);
    assert_string_equal(c->snapshot.file_upload, "glance");
    rs_conf_free(c);
}

typedef struct fx {
    char dir[64];
    rs_conf *conf;
    rs_snapshot_env env;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/filesnap-unit.XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    f->conf = rs_conf_new();
    char *text = rs_strdup_printf("snapshot = { work_dir = \"%s\"; };", f->dir);
    rs_error err = RS_ERROR_INIT;
    if (!f->conf || !text || rs_conf_load_string(f->conf, text, &err) < 0)
        return -1;
    free(text);
    f->env.conf = f->conf;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char *cmd = rs_strdup_printf("rm -rf '%s'", f->dir);
    if (cmd && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(cmd);
    rs_conf_free(f->conf);
    free(f);
    return 0;
}

static char *write_state(fx *f, const char *image_id, const char *json_text)
{
    char *p = rs_strdup_printf("%s/rbdsnap-file-%s.json", f->dir, image_id);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(json_text, fp);
    fclose(fp);
    return p;
}

static void test_recover_nothing(void **state)
{
    fx *f = *state;
    rs_error err = RS_ERROR_INIT;
    assert_int_equal(rs_snapshot_file_recover(&f->env, "5b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60",
                                              false, &err), 0);
    assert_int_equal(rs_snapshot_file_recover(&f->env, NULL, false, &err), 0);
}

static void test_recover_clean_state_removed(void **state)
{
    fx *f = *state;
    rs_error err = RS_ERROR_INIT;
    const char *id = "6b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60";
    char *p = write_state(f, id, "{\"version\":1,\"domain\":\"d\",\"virt_dirty\":false,"
                                 "\"dest\":false,\"upload\":\"rbd\"}");
    assert_int_equal(rs_snapshot_file_recover(&f->env, id, false, &err), 1);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
}

static void test_recover_dirty_without_libvirt_kept(void **state)
{
    fx *f = *state;
    rs_error err = RS_ERROR_INIT;
    const char *id = "7b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60";
    char *p = write_state(f, id, "{\"version\":1,\"domain\":\"dom-x\",\"disk\":\"vda\","
                                 "\"delta\":\"/nonexistent/delta.qcow2\",\"virt_dirty\":true,"
                                 "\"was_active\":true,\"dest\":false,\"upload\":\"rbd\"}");
    int rc = rs_snapshot_file_recover(&f->env, id, false, &err);
    assert_int_equal(rc, -ENOTCONN);
    assert_non_null(strstr(rs_error_msg(&err), "dom-x"));
    assert_int_equal(access(p, F_OK), 0);     /* kept for a later repair */
    /* Still there, still dirty: a second attempt says the same. */
    rs_error_clear(&err);
    assert_int_equal(rs_snapshot_file_recover(&f->env, id, false, &err), -ENOTCONN);
    unlink(p);
    free(p);
}

static void test_recover_corrupt_state(void **state)
{
    fx *f = *state;
    rs_error err = RS_ERROR_INIT;
    const char *id = "8b7c1d3e-94a8-4f06-8d5e-1b2c3d4e5f60";
    char *p = write_state(f, id, "{not json");
    assert_int_equal(rs_snapshot_file_recover(&f->env, id, false, &err), -EBADMSG);
    assert_int_equal(access(p, F_OK), 0);
    unlink(p);
    free(p);
}

static void test_applies_without_libvirt(void **state)
{
    fx *f = *state;
    rs_error err = RS_ERROR_INIT;
    bool is_file = true;
    rs_snapshot_req req = { .domain = "some-domain", .name = "n", .job_id = "j", .image_id = "i" };
    assert_int_equal(rs_snapshot_file_applies(&f->env, &req, &is_file, &err), 0);
    assert_false(is_file);
    rs_snapshot_result res;
    memset(&res, 0, sizeof res);
    assert_int_equal(rs_snapshot_file_run(&f->env, &req, NULL, &res, &err), -ENOTCONN);
    req.mode = "warm";
    assert_int_equal(rs_snapshot_file_run(&f->env, &req, NULL, &res, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_mode_upload),
        cmocka_unit_test(test_conf_keys),
        cmocka_unit_test_setup_teardown(test_recover_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_clean_state_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_dirty_without_libvirt_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_corrupt_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applies_without_libvirt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
