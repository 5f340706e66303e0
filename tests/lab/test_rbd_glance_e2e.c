/*
 * test_rbd_glance_e2e - the foundation's first integration scenario, from C,
 * against the lab's real Ceph and real Glance (no rbdsnap module involved,
 * so it proves the lab itself):
 *
 *   POST a Glance image record; create images/<id> with librbd and write
 *   data; snapshot `snap` and protect it; add the rbd:// location by
 *   JSON-patch; the image becomes `active` with the RBD image's size;
 *   DELETE it through Glance; the RBD image is gone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#define IMAGE_SIZE (64ull << 20)

struct buf { char *p; size_t n; };

static size_t collect(char *d, size_t sz, size_t nm, void *ctx)
{
    struct buf *b = ctx;
    size_t add = sz * nm;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, d, add);
    b->n += add;
    np[b->n] = '\0';
    b->p = np;
    return add;
}

/* Returns the HTTP status; *out gets the parsed JSON body (or NULL). */
static long http(const char *method, const char *url, const char *ctype, const char *body,
                 json_t **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = { NULL, 0 };
    long status = 0;
    char hdr[128];

    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body) {
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
        h = curl_slist_append(h, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (out)
        *out = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* What the test created, for the teardown that runs also on failure. */
static char g_id[64];
static char g_glance_url[512];

static int teardown(void **state)
{
    if (!g_id[0])
        return 0;
    /* Glance first (it unprotects and removes snap + image if it can). */
    if (g_glance_url[0])
        http("DELETE", g_glance_url, NULL, NULL, NULL);
    rados_t cluster;
    rados_ioctx_t io;
    if (rados_create(&cluster, getenv("CEPH_ID") ? getenv("CEPH_ID") : "admin") == 0 &&
        rados_conf_read_file(cluster, getenv("CEPH_CONF")) == 0 && rados_connect(cluster) == 0 &&
        rados_ioctx_create(cluster, "images", &io) == 0) {
        rbd_image_t img;
        if (rbd_open(io, g_id, &img, NULL) == 0) {
            rbd_snap_unprotect(img, "snap");
            rbd_snap_remove(img, "snap");
            rbd_close(img);
        }
        rbd_remove(io, g_id);
        rados_ioctx_destroy(io);
    }
    rados_shutdown(cluster);
    g_id[0] = '\0';
    return 0;
}

static void test_register_and_delete(void **state)
{
    const char *glance = getenv("GLANCE_URL");
    const char *conf = getenv("CEPH_CONF");
    const char *id_user = getenv("CEPH_ID");
    char url[512], loc[512], fsid[64];
    rados_t cluster;
    rados_ioctx_t io;
    rbd_image_t img;
    json_t *j = NULL;
    int order = 22;

    if (!glance || !conf)
        fail_msg("GLANCE_URL and CEPH_CONF must come from the lab's env");

    assert_int_equal(rados_create(&cluster, id_user ? id_user : "admin"), 0);
    assert_int_equal(rados_conf_read_file(cluster, conf), 0);
    rados_conf_set(cluster, "client_mount_timeout", "20");
    rados_conf_set(cluster, "rados_osd_op_timeout", "30");
    assert_int_equal(rados_connect(cluster), 0);
    assert_int_equal(rados_cluster_fsid(cluster, fsid, sizeof(fsid)), 36);
    assert_int_equal(rados_ioctx_create(cluster, "images", &io), 0);

    /* 1. The Glance record: its id names the RBD image, as glance_store does. */
    snprintf(url, sizeof(url), "%s/v2/images", glance);
    long st = http("POST", url, "application/json",
                   "{\"name\":\"rbdsnap-lab-e2e\",\"disk_format\":\"raw\","
                   "\"container_format\":\"bare\",\"visibility\":\"private\"}", &j);
    assert_int_equal(st, 201);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    snprintf(g_id, sizeof(g_id), "%s", id);
    snprintf(g_glance_url, sizeof(g_glance_url), "%s/v2/images/%s", glance, id);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "queued");
    json_decref(j);

    /* 2. RBD image with data, snapshot `snap`, protected. */
    assert_int_equal(rbd_create(io, id, IMAGE_SIZE, &order), 0);
    assert_int_equal(rbd_open(io, id, &img, NULL), 0);
    char *data = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i++)
        data[i] = (char)(i * 7 + 3);
    for (uint64_t off = 0; off < (4u << 20); off += 1 << 20)
        assert_int_equal(rbd_write(img, off, 1 << 20, data), 1 << 20);
    free(data);
    assert_int_equal(rbd_snap_create(img, "snap"), 0);
    assert_int_equal(rbd_snap_protect(img, "snap"), 0);
    rbd_close(img);

    /* 3. Location by JSON patch: the image becomes active, size from RBD. */
    snprintf(loc, sizeof(loc),
             "[{\"op\":\"add\",\"path\":\"/locations/-\",\"value\":{\"url\":"
             "\"rbd://%s/images/%s/snap\",\"metadata\":{}}}]", fsid, id);
    snprintf(url, sizeof(url), "%s/v2/images/%s", glance, id);
    st = http("PATCH", url, "application/openstack-images-v2.1-json-patch", loc, &j);
    if (st != 200)
        fail_msg("PATCH location: HTTP %ld", st);
    json_decref(j);
    st = http("GET", url, NULL, NULL, &j);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
    assert_int_equal(json_integer_value(json_object_get(j, "size")), (json_int_t)IMAGE_SIZE);
    json_decref(j);

    /* 4. Glance's own DELETE removes snap and the RBD image. */
    st = http("DELETE", url, NULL, NULL, NULL);
    assert_int_equal(st, 204);
    assert_int_equal(rbd_open(io, id, &img, NULL), -ENOENT);
    st = http("GET", url, NULL, NULL, NULL);
    assert_int_equal(st, 404);

    free(id);
    g_id[0] = '\0';
    rados_ioctx_destroy(io);
    rados_shutdown(cluster);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_register_and_delete, teardown),
    };
    int rc = cmocka_run_group_tests_name("lab_rbd_glance_e2e", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
