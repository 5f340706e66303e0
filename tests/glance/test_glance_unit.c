/*
 * Unit tests of glance/: rbd URLs, percent-quoting, error bodies, status
 * mapping, retry policy, Keystone catalog/token parsing.  No network.
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
#include <curl/curl.h>

#include "glance/glance-priv.h"

#ifndef GLANCE_TEST_DATA
#error GLANCE_TEST_DATA must name tests/glance/data
#endif

static void test_percent_quote(void **state)
{
    char *q = rs_percent_quote("a b/c@d%e~f_g.h-i");
    assert_string_equal(q, "a%20b%2Fc%40d%25e~f_g.h-i");
    char *u = NULL;
    assert_int_equal(rs_percent_unquote(q, strlen(q), &u), 0);
    assert_string_equal(u, "a b/c@d%e~f_g.h-i");
    free(u);
    free(q);
    /* bad escapes */
    assert_int_equal(rs_percent_unquote("%4", 2, &u), -EINVAL);
    assert_int_equal(rs_percent_unquote("%zz", 3, &u), -EINVAL);
    assert_int_equal(rs_percent_unquote("a%00b", 5, &u), -EINVAL);
    assert_int_equal(rs_percent_unquote("abc%", 4, &u), -EINVAL);
    /* only the first @len bytes are decoded */
    assert_int_equal(rs_percent_unquote("ab%41cd", 5, &u), 0);
    assert_string_equal(u, "abA");
    free(u);
}

static void test_rbd_url(void **state)
{
    rs_error err = RS_ERROR_INIT;
    char *url = NULL;
    rs_rbd_url p;

    assert_int_equal(rs_rbd_url_format("9b7a3c2e-1111-2222-3333-444455556666", "images",
                                       "0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff", "snap", &url, &err), 0);
    assert_string_equal(url, "rbd://9b7a3c2e-1111-2222-3333-444455556666/images/"
                             "0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff/snap");
    assert_int_equal(rs_rbd_url_parse(url, &p, &err), 0);
    assert_string_equal(p.fsid, "9b7a3c2e-1111-2222-3333-444455556666");
    assert_string_equal(p.pool, "images");
    assert_string_equal(p.image, "0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff");
    assert_string_equal(p.snap, "snap");
    rs_rbd_url_clear(&p);
    free(url);

    /* odd characters survive a round trip */
    assert_int_equal(rs_rbd_url_format("f s", "po/ol", "im@ge", "sn%p", &url, &err), 0);
    assert_string_equal(url, "rbd://f%20s/po%2Fol/im%40ge/sn%25p");
    assert_int_equal(rs_rbd_url_parse(url, &p, &err), 0);
    assert_string_equal(p.pool, "po/ol");
    assert_string_equal(p.image, "im@ge");
    assert_string_equal(p.snap, "sn%p");
    rs_rbd_url_clear(&p);
    free(url);

    assert_int_equal(rs_rbd_url_format("f", "", "i", "s", &url, &err), -EINVAL);
    assert_null(url);
    assert_non_null(strstr(err.msg, "pool"));

    const char *bad[] = { "http://a/b/c/d", "rbd://a/b/c", "rbd://a/b/c/d/e", "rbd://a//c/d",
                          "rbd://a/b/c/", "rbd://a/b/%zz/d", "rbd:/a/b/c/d", NULL };
    for (int i = 0; bad[i]; i++) {
        rs_error_clear(&err);
        assert_int_equal(rs_rbd_url_parse(bad[i], &p, &err), -EINVAL);
        assert_null(p.fsid);
        assert_true(rs_error_isset(&err));
    }
}

static void test_error_message(void **state)
{
    char buf[512];
    const char *webob_html =
        "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n"
        "  <h1>404 Not Found</h1>\n  No image found with ID abc<br /><br />\n\n\n\n </body>\n</html>";
    rs_http_error_message(webob_html, strlen(webob_html), "text/html; charset=UTF-8", buf, sizeof(buf));
    assert_string_equal(buf, "404 Not Found: No image found with ID abc");

    const char *title_only = "<html><head><title>503 Service Unavailable</title></head><body></body></html>";
    rs_http_error_message(title_only, strlen(title_only), NULL, buf, sizeof(buf));
    assert_string_equal(buf, "503 Service Unavailable");

    const char *ks = "{\"error\": {\"code\": 401, \"message\": \"The request you have made requires "
                     "authentication.\", \"title\": \"Unauthorized\"}}";
    rs_http_error_message(ks, strlen(ks), "application/json", buf, sizeof(buf));
    assert_string_equal(buf, "Unauthorized: The request you have made requires authentication.");

    const char *webob_json = "{\"message\": \"The resource could not be found.<br /><br />\\n"
                             "No image found with ID x\\n\\n   \", \"code\": \"404 Not Found\", "
                             "\"title\": \"Not Found\"}";
    rs_http_error_message(webob_json, strlen(webob_json), "application/json", buf, sizeof(buf));
    assert_string_equal(buf, "Not Found: The resource could not be found. No image found with ID x");

    const char *nova = "{\"itemNotFound\": {\"message\": \"Image not found.\", \"code\": 404}}";
    rs_http_error_message(nova, strlen(nova), NULL, buf, sizeof(buf));
    assert_string_equal(buf, "Image not found.");

    const char *errors = "{\"errors\": [{\"title\": \"Conflict\", \"detail\": \"Image in use\"}]}";
    rs_http_error_message(errors, strlen(errors), NULL, buf, sizeof(buf));
    assert_string_equal(buf, "Conflict: Image in use");

    const char *plain = "  Internal\n  Server   Error &amp; more ";
    rs_http_error_message(plain, strlen(plain), "text/plain", buf, sizeof(buf));
    assert_string_equal(buf, "Internal Server Error & more");

    /* bad JSON falls back to text, empty body to "" */
    const char *badj = "{\"message\": ";
    rs_http_error_message(badj, strlen(badj), "application/json", buf, sizeof(buf));
    assert_string_equal(buf, "{\"message\":");
    rs_http_error_message(NULL, 0, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "");

    /* truncation keeps a terminated string */
    char small[8];
    rs_http_error_message(plain, strlen(plain), NULL, small, sizeof(small));
    assert_string_equal(small, "Interna");
}

static void test_status_errno(void **state)
{
    assert_int_equal(rs_http_status_errno(200, 0), 0);
    assert_int_equal(rs_http_status_errno(204, 0), 0);
    assert_int_equal(rs_http_status_errno(400, 0), -EINVAL);
    assert_int_equal(rs_http_status_errno(401, 0), -EACCES);
    assert_int_equal(rs_http_status_errno(403, 0), -EACCES);
    assert_int_equal(rs_http_status_errno(404, 0), -ENOENT);
    assert_int_equal(rs_http_status_errno(409, 0), -EBUSY);
    assert_int_equal(rs_http_status_errno(409, -EEXIST), -EEXIST);
    assert_int_equal(rs_http_status_errno(413, 0), -EFBIG);
    assert_int_equal(rs_http_status_errno(429, 0), -EAGAIN);
    assert_int_equal(rs_http_status_errno(500, 0), -EIO);
    assert_int_equal(rs_http_status_errno(503, 0), -EIO);
    assert_int_equal(rs_http_status_errno(418, 0), -EINVAL);
    assert_int_equal(rs_http_status_errno(300, 0), -EPROTO);
    assert_int_equal(rs_http_curl_errno(CURLE_COULDNT_CONNECT), -ECONNREFUSED);
    assert_int_equal(rs_http_curl_errno(CURLE_OPERATION_TIMEDOUT), -ETIMEDOUT);
    assert_int_equal(rs_http_curl_errno(CURLE_GOT_NOTHING), -ECONNRESET);
    assert_int_equal(rs_http_curl_errno(CURLE_PEER_FAILED_VERIFICATION), -EPROTO);
    assert_int_equal(rs_http_curl_errno(CURLE_OK), 0);
}

static void test_retry_policy(void **state)
{
    assert_true(rs_http_method_idempotent("GET", false));
    assert_true(rs_http_method_idempotent("HEAD", false));
    assert_true(rs_http_method_idempotent("DELETE", false));
    assert_true(rs_http_method_idempotent("PUT", false));
    assert_false(rs_http_method_idempotent("PUT", true));
    assert_false(rs_http_method_idempotent("POST", false));
    assert_false(rs_http_method_idempotent("PATCH", false));

    /* 5xx and 429: idempotent only */
    assert_true(rs_http_should_retry("GET", false, false, 0, 500));
    assert_true(rs_http_should_retry("GET", false, false, 0, 503));
    assert_true(rs_http_should_retry("DELETE", false, false, 0, 429));
    assert_true(rs_http_should_retry("PUT", false, false, 0, 502));
    assert_false(rs_http_should_retry("GET", false, false, 0, 501));
    assert_false(rs_http_should_retry("POST", false, false, 0, 500));
    assert_false(rs_http_should_retry("POST", false, false, 0, 429));
    assert_false(rs_http_should_retry("PATCH", false, false, 0, 503));
    assert_false(rs_http_should_retry("PUT", true, false, 0, 503));
    assert_true(rs_http_should_retry("POST", false, true, 0, 503));   /* proven safe */
    /* other statuses never */
    assert_false(rs_http_should_retry("GET", false, false, 0, 404));
    assert_false(rs_http_should_retry("GET", false, false, 0, 401));
    assert_false(rs_http_should_retry("GET", false, false, 0, 409));
    /* connection never established: any method */
    assert_true(rs_http_should_retry("POST", false, false, CURLE_COULDNT_CONNECT, 0));
    assert_true(rs_http_should_retry("PATCH", false, false, CURLE_COULDNT_RESOLVE_HOST, 0));
    assert_false(rs_http_should_retry("PUT", true, false, CURLE_COULDNT_CONNECT, 0));
    /* dropped after sending: idempotent only */
    assert_true(rs_http_should_retry("GET", false, false, CURLE_GOT_NOTHING, 0));
    assert_true(rs_http_should_retry("DELETE", false, false, CURLE_RECV_ERROR, 0));
    assert_false(rs_http_should_retry("POST", false, false, CURLE_GOT_NOTHING, 0));
    /* timeouts and TLS problems never */
    assert_false(rs_http_should_retry("GET", false, false, CURLE_OPERATION_TIMEDOUT, 0));
    assert_false(rs_http_should_retry("GET", false, false, CURLE_PEER_FAILED_VERIFICATION, 0));

    /* backoff grows, jitter stays within [base/2, base], cap 8 s */
    for (unsigned r = 0; r < 5000; r += 37) {
        unsigned d1 = rs_http_backoff_ms(1, -1, r), d3 = rs_http_backoff_ms(3, -1, r);
        assert_in_range(d1, 125, 250);
        assert_in_range(d3, 500, 1000);
        assert_in_range(rs_http_backoff_ms(20, -1, r), 4000, 8000);
    }
    /* Retry-After is a floor, capped at 60 s */
    assert_int_equal(rs_http_backoff_ms(1, 3, 0), 3000);
    assert_int_equal(rs_http_backoff_ms(1, 0, 0), 125);
    assert_int_equal(rs_http_backoff_ms(1, 3600, 0), 60000);

    assert_int_equal(rs_http_parse_retry_after("7", 0), 7);
    assert_int_equal(rs_http_parse_retry_after(" 12 \r\n", 0), 12);
    assert_int_equal(rs_http_parse_retry_after("7x", 0), -1);
    assert_int_equal(rs_http_parse_retry_after("soon", 0), -1);
    /* Thu, 01 Jan 1970 00:01:40 GMT = 100 */
    assert_int_equal(rs_http_parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 90), 10);
    assert_int_equal(rs_http_parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 200), 0);
}

static json_t *load_sample(void)
{
    json_error_t jerr;
    json_t *j = json_load_file(GLANCE_TEST_DATA "/keystone-token.json", 0, &jerr);
    if (!j)
        fail_msg("cannot load sample: %s", jerr.text);
    return j;
}

static void test_catalog(void **state)
{
    json_t *root = load_sample();
    json_t *tok = json_object_get(root, "token");
    rs_error err = RS_ERROR_INIT;
    char *url = NULL;

    assert_int_equal(rs_keystone_catalog_find(tok, "image", "public", NULL, &url, &err), 0);
    assert_string_equal(url, "http://127.0.0.1:16902");
    free(url);
    assert_int_equal(rs_keystone_catalog_find(tok, "image", NULL, "RegionOne", &url, &err), 0);
    assert_string_equal(url, "http://127.0.0.1:16902");
    free(url);
    assert_int_equal(rs_keystone_catalog_find(tok, "image", "internal", "", &url, &err), 0);
    assert_string_equal(url, "http://glance-int.example:9292");   /* /v2 stripped */
    free(url);
    assert_int_equal(rs_keystone_catalog_find(tok, "image", "public", "RegionTwo", &url, &err), 0);
    assert_string_equal(url, "https://glance.two.example/image");
    free(url);
    assert_int_equal(rs_keystone_catalog_find(tok, "identity", "public", NULL, &url, &err), 0);
    assert_string_equal(url, "http://127.0.0.1:16900/v3");
    free(url);

    url = NULL;
    assert_int_equal(rs_keystone_catalog_find(tok, "image", "admin", NULL, &url, &err), -ENOENT);
    assert_null(url);
    assert_non_null(strstr(err.msg, "interface=admin"));
    rs_error_clear(&err);
    assert_int_equal(rs_keystone_catalog_find(tok, "volumev3", "public", NULL, &url, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "volumev3"));
    rs_error_clear(&err);
    assert_int_equal(rs_keystone_catalog_find(root, "image", "public", NULL, &url, &err), -ENOENT);

    rs_token_info ti;
    assert_int_equal(rs_keystone_token_info_parse(root, &ti, &err), 0);
    assert_string_equal(ti.user_id, "8a1b2c3d4e5f4a5b9c8d7e6f5a4b3c2d");
    assert_string_equal(ti.user_name, "admin");
    assert_string_equal(ti.project_id, "1f2e3d4c5b6a47988796a5b4c3d2e1f0");
    assert_int_equal(ti.nroles, 3);
    assert_true(rs_token_info_has_role(&ti, "admin"));
    assert_true(rs_token_info_has_role(&ti, "member"));
    assert_false(rs_token_info_has_role(&ti, "service"));
    assert_null(ti.roles[3]);
    int64_t exp;
    assert_int_equal(rs_keystone_parse_time("2026-12-04T19:15:29.000000Z", &exp), 0);
    assert_int_equal(ti.expires_at, exp);
    rs_token_info_clear(&ti);
    assert_null(ti.roles);
    json_decref(root);
}

static void test_parse_time(void **state)
{
    int64_t t;
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40Z", &t), 0);
    assert_int_equal(t, 100);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40.123456Z", &t), 0);
    assert_int_equal(t, 100);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T01:01:40+01:00", &t), 0);
    assert_int_equal(t, 100);
    assert_int_equal(rs_keystone_parse_time("2026-12-04T19:15:29.000000Z", &t), 0);
    assert_int_equal(t, 1796411729);
    assert_int_equal(rs_keystone_parse_time("yesterday", &t), -EINVAL);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40Zjunk", &t), -EINVAL);
    assert_int_equal(rs_keystone_parse_time(NULL, &t), -EINVAL);
    /* offsets: exactly [+-]HH:MM (a short one read past the end before) */
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40-01:00", &t), 0);
    assert_int_equal(t, 3700);
    assert_int_equal(rs_keystone_parse_time("26-12-04T19:34:6-1:55", &t), -EINVAL);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40+1:00", &t), -EINVAL);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40+01", &t), -EINVAL);
    assert_int_equal(rs_keystone_parse_time("1970-01-01T00:01:40+01:0", &t), -EINVAL);
}

static void test_auth_body(void **state)
{
    rs_glance_opts o = { .auth = "password", .username = "alice", .password = "s3cr3t\"pw",
                         .project_name = "demo" };
    char *b = rs_keystone_auth_body(&o);
    json_error_t jerr;
    json_t *j = json_loads(b, 0, &jerr);
    assert_non_null(j);
    json_t *user = json_object_get(json_object_get(json_object_get(json_object_get(j, "auth"),
                                                                    "identity"), "password"), "user");
    assert_string_equal(json_string_value(json_object_get(user, "password")), "s3cr3t\"pw");
    assert_string_equal(json_string_value(json_object_get(json_object_get(user, "domain"), "name")),
                        "Default");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
                            json_object_get(json_object_get(j, "auth"), "scope"), "project"),
                            "domain"), "name")), "Default");
    json_decref(j);
    free(b);

    rs_glance_opts a = { .auth = "application_credential", .app_cred_id = "ac1", .app_cred_secret = "xyz" };
    b = rs_keystone_auth_body(&a);
    j = json_loads(b, 0, &jerr);
    assert_non_null(j);
    json_t *id = json_object_get(json_object_get(j, "auth"), "identity");
    assert_string_equal(json_string_value(json_array_get(json_object_get(id, "methods"), 0)),
                        "application_credential");
    assert_string_equal(json_string_value(json_object_get(json_object_get(id, "application_credential"),
                                                          "secret")), "xyz");
    assert_null(json_object_get(json_object_get(j, "auth"), "scope"));
    json_decref(j);
    free(b);
}

static void test_image_json(void **state)
{
    const char *s =
        "{\"id\": \"abc\", \"name\": \"snap1\", \"status\": \"active\", \"size\": 67108864,"
        " \"checksum\": null, \"owner\": null, \"visibility\": \"private\", \"disk_format\": \"raw\","
        " \"container_format\": \"bare\", \"direct_url\": \"rbd://f/images/abc/snap\","
        " \"locations\": [{\"url\": \"rbd://f/images/abc/snap\", \"metadata\": {}}],"
        " \"image_type\": \"snapshot\", \"instance_uuid\": \"u1\", \"tags\": [], \"min_disk\": 0,"
        " \"protected\": false, \"created_at\": \"2026-12-04T18:00:00Z\", \"self\": \"/v2/images/abc\"}";
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    rs_glance_image *img = NULL;
    rs_error err = RS_ERROR_INIT;

    assert_int_equal(rs_glance_image_from_json(j, &img, &err), 0);
    assert_string_equal(img->id, "abc");
    assert_string_equal(img->status, "active");
    assert_int_equal(img->size, 67108864);
    assert_null(img->checksum);
    assert_null(img->owner);
    assert_null(img->updated_at);
    assert_string_equal(img->created_at, "2026-12-04T18:00:00Z");
    assert_int_equal(img->nlocations, 1);
    assert_string_equal(img->locations[0], "rbd://f/images/abc/snap");
    assert_int_equal(img->nprops, 2);
    assert_string_equal(rs_glance_image_prop(img, "image_type"), "snapshot");
    assert_string_equal(rs_glance_image_prop(img, "instance_uuid"), "u1");
    assert_null(rs_glance_image_prop(img, "self"));
    rs_glance_image_free(img);
    json_decref(j);

    j = json_loads("{\"name\": \"x\"}", 0, &jerr);
    assert_int_equal(rs_glance_image_from_json(j, &img, &err), -EBADMSG);
    assert_null(img);
    json_decref(j);
}

static void test_opts_validation(void **state)
{
    rs_error err = RS_ERROR_INIT;
    rs_glance_opts none_no_url = { .auth = "none" };
    assert_null(rs_glance_new(&none_no_url, &err));
    assert_int_equal(err.code, -EINVAL);
    rs_error_clear(&err);
    rs_glance_opts bad = { .auth = "kerberos", .url = "http://x" };
    assert_null(rs_glance_new(&bad, &err));
    assert_non_null(strstr(err.msg, "kerberos"));
    rs_error_clear(&err);
    rs_glance_opts pw = { .auth = "password", .auth_url = "http://k:5000", .username = "u",
                          .password = "topsecret", .project_name = "p" };
    rs_glance *g = rs_glance_new(&pw, &err);
    assert_non_null(g);
    assert_string_equal(g->auth_url, "http://k:5000/v3");
    rs_glance_free(g);
    rs_glance_opts pw2 = { .auth = "password", .auth_url = "http://k:5000/v3/", .username = "u",
                           .password = "topsecret" };
    assert_null(rs_glance_new(&pw2, &err));
    assert_null(strstr(err.msg, "topsecret"));
    rs_error_clear(&err);
    rs_glance_opts fixed = { .url = "http://g:9292/v2/" };
    g = rs_glance_new(&fixed, &err);
    assert_non_null(g);
    char ep[128];
    assert_int_equal(rs_glance_endpoint(g, ep, sizeof(ep), &err), 0);
    assert_string_equal(ep, "http://g:9292");
    assert_false(rs_glance_has_locations_api(g));
    rs_glance_free(g);
    rs_glance_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_quote),
        cmocka_unit_test(test_rbd_url),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_status_errno),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_auth_body),
        cmocka_unit_test(test_image_json),
        cmocka_unit_test(test_opts_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
