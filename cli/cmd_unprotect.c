/*
 * cmd_unprotect.c - `rbdsnap unprotect POOL/IMAGE@SNAP [--flatten-children]`
 *
 * Refuses while the snapshot has children (clones in any pool, in the RBD
 * trash or not) and lists them, exit 1.  --flatten-children flattens each
 * child first (with progress; Ctrl-C cancels) and then unprotects.  A child
 * in the RBD trash cannot be flattened by name: it is listed and the command
 * refuses (restore or purge it first).  There is no force.
 */
#define RS_LOG_MODULE "cli.unprotect"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "cli/progress.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "rbd/ops.h"
#include "rbd/ops_extra.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap unprotect POOL/IMAGE@SNAP [--flatten-children] [options]\n"
    "Unprotect a snapshot.  Refused (exit 1, children listed) while clones depend\n"
    "on it, in the RBD trash or not.\n"
    "  --flatten-children  flatten every child first (progress on stderr), then\n"
    "                      unprotect; children in the RBD trash are never touched\n"
    "  --no-progress       no progress output while flattening\n"
    RS_CLI_COMMON_HELP;

enum { OPT_FLATTEN_CHILDREN = 1100, OPT_NO_PROGRESS };

static json_t *children_json(const rs_rbd_child *ch, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:b}", "pool", ch[i].pool, "image",
                                           ch[i].image, "trash", ch[i].trash));
    return a;
}

static void children_line(char *buf, size_t len, const rs_rbd_child *ch, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s/%s%s", i ? ", " : "", ch[i].pool,
                                ch[i].image, ch[i].trash ? " (in trash)" : "");
}

static int refuse(rs_cli *cli, const char *spec, const rs_rbd_child *ch, size_t n,
                  const char *why)
{
    char list[2048];

    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s,s:b,s:b}", "snapshot", spec, "unprotected", 0,
                              "was_protected", 1);
        json_object_set_new(o, "children", children_json(ch, n));
        json_object_set_new(o, "flattened", json_array());
        rs_cli_print_json(o);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("child %s/%s%s\n", ch[i].pool, ch[i].image, ch[i].trash ? " (in trash)" : "");
    }
    children_line(list, sizeof(list), ch, n);
    rs_cli_error(cli, "%s: %zu clone(s) depend on it: %s; %s", spec, n, list, why);
    return RS_EXIT_ERROR;
}

int rs_cli_cmd_unprotect(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "flatten-children", no_argument, NULL, OPT_FLATTEN_CHILDREN },
        { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
        { NULL, 0, NULL, 0 },
    };
    bool flatten_children = false, no_progress = false, prot = false;
    rs_autofree char *pool = NULL;
    rs_autofree char *image = NULL;
    rs_autofree char *snap = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_cluster *cl = NULL;
    rs_rbd_child *ch = NULL;
    size_t n = 0;
    json_t *flattened = json_array();
    const char *spec;
    int c, rc, ret = RS_EXIT_ERROR;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_FLATTEN_CHILDREN: flatten_children = true; break;
        case OPT_NO_PROGRESS: no_progress = true; break;
        case '?':
        case ':':
            json_decref(flattened);
            return rs_cli_usage_error(cli, "unknown or incomplete option \"%s\"", argv[optind - 1]);
        default:
            if (rs_cli_common_option(cli, c, optarg) < 0) {
                json_decref(flattened);
                return RS_EXIT_USAGE;
            }
        }
    }
    if (cli->help) {
        fputs(help, stdout);
        json_decref(flattened);
        return RS_EXIT_OK;
    }
    if (optind != argc - 1) {
        json_decref(flattened);
        return rs_cli_usage_error(cli, "expected exactly one POOL/IMAGE@SNAP");
    }
    spec = argv[optind];
    if (rs_dep_parse_spec(spec, &pool, &image, &snap, &err) < 0) {
        json_decref(flattened);
        return rs_cli_usage_error(cli, "%s", rs_error_msg(&err));
    }
    rc = rs_cli_load_conf(cli, &err);
    if (rc < 0) {
        rs_cli_error(cli, "%s", rs_error_msg(&err));
        json_decref(flattened);
        return RS_EXIT_USAGE;
    }
    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc == 0)
        rc = rs_rbd_snap_is_protected(cl, pool, image, snap, &prot, &err);
    if (rc == -ENOENT && !rs_error_isset(&err))
        rs_error_set(&err, rc, "%s: No such snapshot", spec);
    if (rc == 0)
        rc = rs_rbd_list_children(cl, pool, image, snap, &ch, &n, &err);
    if (rc < 0) {
        ret = rs_cli_fail(cli, &err);
        goto out;
    }
    if (!prot) {
        if (cli->format == RS_CLI_JSON) {
            json_t *o = json_pack("{s:s,s:b,s:b}", "snapshot", spec, "unprotected", 1,
                                  "was_protected", 0);
            json_object_set_new(o, "children", children_json(ch, n));
            json_object_set_new(o, "flattened", json_incref(flattened));
            rs_cli_print_json(o);
        } else {
            printf("%s: not protected, nothing to do\n", spec);
        }
        ret = RS_EXIT_OK;
        goto out;
    }
    if (n > 0 && !flatten_children) {
        ret = refuse(cli, spec, ch, n, "flatten them first (--flatten-children)");
        goto out;
    }
    if (n > 0) {
        for (size_t i = 0; i < n; i++)
            if (ch[i].trash) {
                ret = refuse(cli, spec, ch, n,
                             "a child in the RBD trash cannot be flattened: restore it "
                             "(rbd trash restore) or remove it first");
                goto out;
            }
        for (size_t i = 0; i < n; i++) {
            uint64_t size = 0;
            char cs[1024];
            snprintf(cs, sizeof(cs), "%s/%s", ch[i].pool, ch[i].image);
            rc = rs_rbd_image_size(cl, ch[i].pool, ch[i].image, NULL, &size, &err);
            if (rc == 0)
                rc = rs_progress_flatten(cl, ch[i].pool, ch[i].image, size,
                                         no_progress ? RS_PROGRESS_NONE : RS_PROGRESS_AUTO,
                                         &err);
            if (rc == -ECANCELED) {
                rs_cli_error(cli, "%s: flatten of %s cancelled; %s stays protected", spec, cs,
                             spec);
                goto out;
            }
            if (rc < 0) {
                ret = rs_cli_fail(cli, &err);
                goto out;
            }
            json_array_append_new(flattened, json_string(cs));
            if (cli->format != RS_CLI_JSON)
                printf("flattened %s\n", cs);
        }
        /* Anything new since? */
        rs_rbd_children_free(ch, n);
        ch = NULL;
        rc = rs_rbd_list_children(cl, pool, image, snap, &ch, &n, &err);
        if (rc < 0) {
            ret = rs_cli_fail(cli, &err);
            goto out;
        }
        if (n > 0) {
            ret = refuse(cli, spec, ch, n, "new clones appeared while flattening");
            goto out;
        }
    }
    rc = rs_rbd_snap_unprotect(cl, pool, image, snap, &err);
    if (rc < 0) {
        ret = rs_cli_fail(cli, &err);
        goto out;
    }
    rs_info("pool=%s image=%s snap=%s msg=\"unprotected\"", pool, image, snap);
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s,s:b,s:b}", "snapshot", spec, "unprotected", 1,
                              "was_protected", 1);
        json_object_set_new(o, "children", json_array());
        json_object_set_new(o, "flattened", json_incref(flattened));
        rs_cli_print_json(o);
    } else {
        printf("unprotected %s\n", spec);
    }
    ret = RS_EXIT_OK;
out:
    rs_rbd_children_free(ch, n);
    json_decref(flattened);
    return ret;
}
