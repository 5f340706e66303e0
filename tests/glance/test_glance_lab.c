/*
 * glance/ against the real lab: Glance in no-auth mode (argv[1] "noauth")
 * or behind Keystone (argv[1] "keystone"), with real Ceph for locations.
 *
 * Everything created carries a random suffix and is deleted in the group
 * teardown, also when a test failed half-way.
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

#include "common/log.h"
#include "common/util.h"
#include "glance/glance-priv.h"

#define MiB (1024 * 1024)
#define LIST_N 27

static bool keystone_mode;
static rs_glance *g;
static char tag[17];

/* ---- cleanup registry -------------------------------------------------- */

static char *created_images[256];
static int ncreated_images;
static char *created_rbd[16];
static int ncreated_rbd;

static void track_image(const char *id)
{
    if (ncreated_images < 256)
        created_images[ncreated_images++] = strdup(id);
}

static const char *env(const char *k)
{
    const char *v = getenv(k);
    if (!v || !v[0])
        fail_msg("lab environment lacks %s (is $RBDSNAP_LAB_DIR/env complete?)", k);
    return v;
}

static int rbd_cli(const char *args)
{
    char cmd[1024];
    const char *keyring = getenv("CEPH_KEYRING");
    snprintf(cmd, sizeof(cmd), "rbd -c '%s' --id '%s' %s%s%s %s", getenv("CEPH_CONF"),
             getenv("CEPH_ID") ? getenv("CEPH_ID") : "admin", keyring ? "--keyring '" : "",
             keyring ? keyring : "", keyring ? "'" : "", args);
    return system(cmd);
}

/* images/<name> with a protected snapshot "snap", as glance_store makes */
static void make_rbd_image(const char *name, int mib)
{
    char a[256];
    if (ncreated_rbd < 16)
        created_rbd[ncreated_rbd++] = strdup(name);
    snprintf(a, sizeof(a), "create --size %dM images/%s", mib, name);
    assert_int_equal(rbd_cli(a), 0);
    snprintf(a, sizeof(a), "snap create --no-progress images/%s@snap", name);
    assert_int_equal(rbd_cli(a), 0);
    snprintf(a, sizeof(a), "snap protect images/%s@snap", name);
    assert_int_equal(rbd_cli(a), 0);
}

static bool rbd_exists(const char *name)
{
    char a[256];
    snprintf(a, sizeof(a), "info images/%s >/dev/null 2>&1", name);
    return rbd_cli(a) == 0;
}

static int teardown_all(void **state)
{
    for (int i = 0; i < ncreated_images; i++) {
        rs_error err = RS_ERROR_INIT;
        int rc = rs_glance_image_delete(g, created_images[i], &err);
        if (rc < 0 && rc != -ENOENT)
            fprintf(stderr, "cleanup: %s\n", err.msg);
        free(created_images[i]);
    }
    ncreated_images = 0;
    for (int i = 0; i < ncreated_rbd; i++) {
        char a[256];
        if (rbd_exists(created_rbd[i])) {
            snprintf(a, sizeof(a), "snap unprotect images/%s@snap >/dev/null 2>&1", created_rbd[i]);
            rbd_cli(a);
            snprintf(a, sizeof(a), "snap purge --no-progress images/%s >/dev/null 2>&1", created_rbd[i]);
            rbd_cli(a);
            snprintf(a, sizeof(a), "rm --no-progress images/%s >/dev/null 2>&1", created_rbd[i]);
            if (rbd_cli(a) != 0)
                fprintf(stderr, "cleanup: cannot remove images/%s\n", created_rbd[i]);
        }
        free(created_rbd[i]);
    }
    ncreated_rbd = 0;
    rs_glance_free(g);
    g = NULL;
    return 0;
}

static rs_glance *make_client(const char *user, const char *password, const char *project)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_opts o = { .connect_timeout_s = 10, .timeout_s = 120, .retries = 3 };
    if (keystone_mode) {
        o.auth = "password";
        o.auth_url = env("OS_AUTH_URL");
        o.username = user;
        o.password = password;
        o.project_name = project;
        o.user_domain_name = getenv("OS_USER_DOMAIN_NAME");
        o.project_domain_name = getenv("OS_PROJECT_DOMAIN_NAME");
        o.region = getenv("OS_REGION_NAME");
        o.interface = getenv("OS_INTERFACE");
    } else {
        o.url = env("GLANCE_URL");
    }
    rs_glance *c = rs_glance_new(&o, &err);
    if (!c)
        fail_msg("rs_glance_new: %s", err.msg);
    return c;
}

static int setup_all(void **state)
{
    if (rs_random_hex(tag, 8) < 0)
        return -1;
    return 0;
}

static void need_client(void)
{
    if (!g)
        g = keystone_mode ? make_client(env("OS_USERNAME"), env("OS_PASSWORD"),
                                        env("OS_PROJECT_NAME"))
                          : make_client(NULL, NULL, NULL);
}

static char *create_image(const char *what, const rs_kv *extra, size_t nextra)
{
    rs_error err = RS_ERROR_INIT;
    char name[128], inst[37];
    char *id = NULL;
    rs_random_uuid(inst);
    snprintf(name, sizeof(name), "rbdsnap-test-%s-%s", what, tag);
    rs_glance_image_spec spec = { .name = name, .snapshot = true, .instance_uuid = inst,
                                  .base_image_ref = "", .owner_id = "test-owner",
                                  .user_id = "test-user", .extra = extra, .nextra = nextra };
    if (rs_glance_image_create(g, &spec, &id, &err) < 0)
        fail_msg("create: %s", err.msg);
    track_image(id);
    return id;
}

/* ---- tests --------------------------------------------------------------- */

static void test_discover_and_auth(void **state)
{
    rs_error err = RS_ERROR_INIT;
    char ver[16], ep[512];

    need_client();
    if (rs_glance_discover(g, &err) < 0)
        fail_msg("discover: %s", err.msg);
    rs_glance_api_version(g, ver, sizeof(ver));
    assert_true(ver[0] == '2');
    printf("# glance api_version=%s locations_api=%s\n", ver,
           rs_glance_has_locations_api(g) ? "yes" : "no");
    assert_int_equal(rs_glance_endpoint(g, ep, sizeof(ep), &err), 0);
    if (keystone_mode) {
        assert_int_equal(rs_glance_priv_tokens_issued(g), 1);
        const char *ks = getenv("GLANCE_KS_URL");
        printf("# catalog image endpoint=%s\n", ep);
        if (ks) {
            char want[512];
            snprintf(want, sizeof(want), "%s", ks);
            while (strlen(want) && want[strlen(want) - 1] == '/')
                want[strlen(want) - 1] = '\0';
            assert_string_equal(ep, want);
        }
    } else {
        assert_string_equal(ep, env("GLANCE_URL"));
    }
}

static void test_add_location(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;
    char *url = NULL;
    rs_kv extra[] = { { "rbdsnap_test", tag } };

    need_client();
    char *id = create_image("loc", extra, 1);
    /* glance_store names the RBD image after the Glance id */
    make_rbd_image(id, 64);
    assert_int_equal(rs_rbd_url_format(env("CEPH_FSID"), "images", id, "snap", &url, &err), 0);

    uint64_t t0 = rs_now_ms();
    if (rs_glance_image_add_location(g, id, url, &err) < 0)
        fail_msg("add location: %s", err.msg);
    if (rs_glance_image_wait_status(g, id, "active", 60, &err) < 0)
        fail_msg("wait active: %s", err.msg);
    printf("# add location + active: %llu ms\n", (unsigned long long)(rs_now_ms() - t0));

    assert_int_equal(rs_glance_image_get(g, id, &img, &err), 0);
    assert_string_equal(img->status, "active");
    assert_int_equal(img->size, 64 * MiB);
    assert_string_equal(img->disk_format, "raw");
    assert_string_equal(img->container_format, "bare");
    assert_string_equal(img->visibility, "private");
    assert_string_equal(rs_glance_image_prop(img, "image_type"), "snapshot");
    assert_string_equal(rs_glance_image_prop(img, "image_location"), "snapshot");
    assert_string_equal(rs_glance_image_prop(img, "image_state"), "available");
    assert_string_equal(rs_glance_image_prop(img, "owner_id"), "test-owner");
    assert_string_equal(rs_glance_image_prop(img, "rbdsnap_test"), tag);
    assert_non_null(rs_glance_image_prop(img, "instance_uuid"));
    assert_int_equal(img->nlocations, 1);
    assert_string_equal(img->locations[0], url);
    assert_string_equal(img->direct_url, url);
    rs_rbd_url parsed;
    assert_int_equal(rs_rbd_url_parse(img->direct_url, &parsed, &err), 0);
    assert_string_equal(parsed.image, id);
    rs_rbd_url_clear(&parsed);
    rs_glance_image_free(img);

    /* a location naming a missing RBD image is refused */
    char *id2 = create_image("badloc", NULL, 0);
    char *bad = NULL;
    assert_int_equal(rs_rbd_url_format(env("CEPH_FSID"), "images", "no-such-image", "snap", &bad,
                                       &err), 0);
    assert_int_equal(rs_glance_image_add_location(g, id2, bad, &err), -EINVAL);
    printf("# bad location error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "PATCH "));
    assert_non_null(strstr(err.msg, "HTTP 400"));
    free(bad);
    free(id2);

    /* deleting the record removes the RBD image too (glance_store) */
    rs_error_clear(&err);
    if (rs_glance_image_delete(g, id, &err) < 0)
        fail_msg("delete: %s", err.msg);
    assert_int_equal(rs_glance_image_get(g, id, &img, &err), -ENOENT);
    assert_false(rbd_exists(id));
    free(url);
    free(id);
}

struct src {
    int64_t left;
    uint64_t x;
};

static ssize_t gen(void *ctx, char *buf, size_t len)
{
    struct src *s = ctx;
    if ((int64_t)len > s->left)
        len = (size_t)s->left;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        s->x ^= s->x << 13;
        s->x ^= s->x >> 7;
        s->x ^= s->x << 17;
        memcpy(buf + i, &s->x, 8);
    }
    for (; i < len; i++)
        buf[i] = (char)i;
    s->left -= (int64_t)len;
    return (ssize_t)len;
}

static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void test_upload_200mib(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;
    const int64_t size = 200LL * MiB;
    struct src s = { size, 0x9e3779b97f4a7c15ull };

    need_client();
    rs_glance_image_spec spec = { .name = "rbdsnap-test-upload" };
    char *id = NULL;
    char name[96];
    snprintf(name, sizeof(name), "rbdsnap-test-upload-%s", tag);
    spec.name = name;
    assert_int_equal(rs_glance_image_create(g, &spec, &id, &err), 0);
    track_image(id);

    uint64_t t0 = rs_now_ms();
    if (rs_glance_image_upload(g, id, gen, &s, size, &err) < 0)
        fail_msg("upload: %s", err.msg);
    uint64_t ms = rs_now_ms() - t0;
    long hwm = vm_hwm_kib();
    printf("# upload 200 MiB: %llu ms (%.1f MiB/s), VmHWM %ld KiB\n", (unsigned long long)ms,
           ms ? 200.0 * 1000.0 / (double)ms : 0.0, hwm);
    assert_true(hwm > 0 && hwm < 50 * 1024);

    if (rs_glance_image_wait_status(g, id, "active", 120, &err) < 0)
        fail_msg("wait: %s", err.msg);
    assert_int_equal(rs_glance_image_get(g, id, &img, &err), 0);
    assert_int_equal(img->size, size);
    assert_non_null(img->checksum);
    assert_true(rbd_exists(id));   /* Glance wrote images/<id> */
    rs_glance_image_free(img);

    /* uploading twice is a conflict */
    s = (struct src){ MiB, 1 };
    assert_int_equal(rs_glance_image_upload(g, id, gen, &s, MiB, &err), -EBUSY);
    printf("# second upload error: %s\n", err.msg);
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_delete(g, id, &err), 0);
    assert_false(rbd_exists(id));
    free(id);
}

static int count_cb(void *ctx, const rs_glance_image *img)
{
    int *n = ctx;
    if (strcmp(rs_glance_image_prop(img, "rbdsnap_list") ? rs_glance_image_prop(img, "rbdsnap_list") : "", tag))
        return -EPROTO;   /* the filter did not filter */
    (*n)++;
    return 0;
}

static void test_list_pagination(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_kv extra[] = { { "rbdsnap_list", tag } };
    int n = keystone_mode ? 7 : LIST_N;
    int limit = keystone_mode ? 3 : 5;

    need_client();
    for (int i = 0; i < n; i++)
        free(create_image("list", extra, 1));
    rs_kv props[] = { { "rbdsnap_list", tag }, { "image_type", "snapshot" } };
    rs_glance_filter f = { .props = props, .nprops = 2, .limit = limit, .status = "queued" };
    int count = 0;
    uint64_t t0 = rs_now_ms();
    if (rs_glance_image_list(g, &f, count_cb, &count, &err) < 0)
        fail_msg("list: %s", err.msg);
    printf("# listed %d images in pages of %d: %llu ms\n", count, limit,
           (unsigned long long)(rs_now_ms() - t0));
    assert_int_equal(count, n);

    /* a filter that matches nothing */
    rs_kv none[] = { { "rbdsnap_list", "no-such-tag" } };
    rs_glance_filter f2 = { .props = none, .nprops = 1, .limit = limit };
    count = 0;
    assert_int_equal(rs_glance_image_list(g, &f2, count_cb, &count, &err), 0);
    assert_int_equal(count, 0);
}

static void test_update_delete(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;
    rs_kv extra[] = { { "rbdsnap_keep", "1" }, { "rbdsnap_drop", "x" } };

    need_client();
    char *id = create_image("update", extra, 2);
    char newname[96];
    snprintf(newname, sizeof(newname), "rbdsnap-test-renamed-%s", tag);
    rs_kv set[] = { { "rbdsnap_keep", "2" }, { "rbdsnap_new", "hello world/é" }, { "name", newname } };
    const char *rm[] = { "rbdsnap_drop", "rbdsnap_absent" };
    if (rs_glance_image_update(g, id, set, 3, rm, 2, &err) < 0)
        fail_msg("update: %s", err.msg);
    assert_int_equal(rs_glance_image_get(g, id, &img, &err), 0);
    assert_string_equal(img->name, newname);
    assert_string_equal(rs_glance_image_prop(img, "rbdsnap_keep"), "2");
    assert_string_equal(rs_glance_image_prop(img, "rbdsnap_new"), "hello world/é");
    assert_null(rs_glance_image_prop(img, "rbdsnap_drop"));
    rs_glance_image_free(img);

    /* duplicate id on create */
    rs_glance_image_spec dup = { .id = id, .name = "rbdsnap-test-dup" };
    assert_int_equal(rs_glance_image_create(g, &dup, NULL, &err), -EEXIST);
    printf("# duplicate create error: %s\n", err.msg);
    rs_error_clear(&err);

    assert_int_equal(rs_glance_image_delete(g, id, &err), 0);
    assert_int_equal(rs_glance_image_get(g, id, &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "HTTP 404"));
    printf("# missing image error: %s\n", err.msg);
    rs_error_clear(&err);
    assert_int_equal(rs_glance_image_delete(g, id, &err), -ENOENT);
    free(id);
}

static void test_keystone_renewal_and_validation(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_image *img = NULL;

    if (!keystone_mode)
        skip();
    need_client();
    char *id = create_image("ks", NULL, 0);
    unsigned before = rs_glance_priv_tokens_issued(g);

    /* Glance answers 401 for a token Keystone does not know: renew once */
    rs_glance_priv_set_token(g, "gAAAAABnot-a-real-token", rs_wall_time() + 3600);
    if (rs_glance_image_get(g, id, &img, &err) < 0)
        fail_msg("get after 401: %s", err.msg);
    rs_glance_image_free(img);
    assert_int_equal(rs_glance_priv_tokens_issued(g), before + 1);

    /* validation of a member user's token */
    rs_glance *m = make_client(env("LAB_MEMBER_USER"), env("LAB_MEMBER_PASSWORD"),
                               env("LAB_MEMBER_PROJECT"));
    char ep[512];
    if (rs_glance_endpoint(m, ep, sizeof(ep), &err) < 0)
        fail_msg("member auth: %s", err.msg);
    pthread_mutex_lock(&m->lock);
    char *mtok = strdup(m->token);
    pthread_mutex_unlock(&m->lock);
    rs_token_info ti;
    if (rs_keystone_validate_token(g, mtok, &ti, &err) < 0)
        fail_msg("validate: %s", err.msg);
    printf("# member token: user=%s project=%s roles=%zu\n", ti.user_name, ti.project_name, ti.nroles);
    assert_string_equal(ti.user_name, env("LAB_MEMBER_USER"));
    assert_string_equal(ti.project_name, env("LAB_MEMBER_PROJECT"));
    assert_true(rs_token_info_has_role(&ti, "member"));
    assert_false(rs_token_info_has_role(&ti, "admin"));
    assert_true(ti.expires_at > rs_wall_time());
    rs_token_info_clear(&ti);
    free(mtok);
    rs_glance_free(m);

    assert_int_equal(rs_keystone_validate_token(g, "gAAAAABforged", &ti, &err), -EACCES);
    printf("# forged token: %s\n", err.msg);
    rs_error_clear(&err);

    /* wrong password: EACCES, secret not in the message */
    rs_glance *bad = make_client(env("OS_USERNAME"), "wrong-password-x9", env("OS_PROJECT_NAME"));
    assert_int_equal(rs_glance_image_get(bad, id, &img, &err), -EACCES);
    assert_null(strstr(err.msg, "wrong-password-x9"));
    printf("# wrong password: %s\n", err.msg);
    rs_glance_free(bad);
    free(id);
}

int main(int argc, char **argv)
{
    keystone_mode = argc > 1 && !strcmp(argv[1], "keystone");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discover_and_auth),
        cmocka_unit_test(test_add_location),
        cmocka_unit_test(test_upload_200mib),
        cmocka_unit_test(test_list_pagination),
        cmocka_unit_test(test_update_delete),
        cmocka_unit_test(test_keystone_renewal_and_validation),
    };
    return cmocka_run_group_tests_name(keystone_mode ? "glance_lab_keystone" : "glance_lab_noauth",
                                       tests, setup_all, teardown_all);
}
