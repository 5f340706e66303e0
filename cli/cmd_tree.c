/*
 * cmd_tree.c - `rbdsnap tree [POOL/IMAGE | --pool P]`: the dependency tree
 * image -> snapshots -> clones across pools, as ASCII or JSON.
 *
 *   vms/A  64 MiB  12m
 *   |-- @s1  protected  12m
 *   |   `-- images/B  64 MiB  12m  [rbdsnap] glance=<id> "name" active
 *   |       `-- @snap  protected  11m
 *   |           `-- vms/C  64 MiB  11m
 *   `-- @rbdsnap-1f2e  trash-snap  10m  [rbdsnap] [trash]
 *
 * Marks: [rbdsnap] made by rbdsnap, [trash] in the RBD trash (images) or
 * the trash snapshot namespace (snapshots), [to-be-deleted-by-glance].
 */
#define RS_LOG_MODULE "cli.tree"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "common/util.h"
#include "conf/conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap tree [POOL/IMAGE | --pool POOL] [options]\n"
    "Show images, their snapshots and the clones of each snapshot, across pools\n"
    "(default: every pool with the rbd application).  Marks what rbdsnap made,\n"
    "RBD trash entries, *_to_be_deleted_by_glance images and, when Glance is\n"
    "configured, the Glance record of images in the Glance pool.\n"
    "  --pool POOL   start from the images of POOL only\n"
    RS_CLI_COMMON_HELP;

enum { OPT_POOL = 1100 };

/* ---- JSON ------------------------------------------------------------------- */

static json_t *node_json(const rs_dep_image *im);

static json_t *snap_json(const rs_dep_snap *s)
{
    json_t *o = json_object(), *ch = json_array();
    json_object_set_new(o, "name", json_string(s->display));
    if (s->s->original_name)
        json_object_set_new(o, "trash_name", json_string(s->s->name));
    json_object_set_new(o, "id", json_integer((json_int_t)s->s->id));
    json_object_set_new(o, "size", json_integer((json_int_t)s->s->size));
    json_object_set_new(o, "created_at", json_integer(s->s->created_at));
    json_object_set_new(o, "protected", json_boolean(s->s->is_protected));
    json_object_set_new(o, "trash", json_boolean(s->s->ns == RS_RBD_SNAP_NS_TRASH));
    json_object_set_new(o, "rbdsnap", json_boolean(s->rbdsnap));
    for (size_t i = 0; i < s->nchildren; i++)
        json_array_append_new(ch, node_json(s->children[i]));
    /* Children librbd reports that the walk could not place. */
    json_object_set_new(o, "children", ch);
    return o;
}

static json_t *node_json(const rs_dep_image *im)
{
    json_t *o = json_object(), *snaps = json_array(), *md = json_object();
    const rs_rbd_image_desc *d = im->d;

    json_object_set_new(o, "pool", json_string(im->pool));
    json_object_set_new(o, "image", json_string(im->name));
    json_object_set_new(o, "id", json_string(im->id));
    json_object_set_new(o, "size", json_integer(d ? (json_int_t)d->size : 0));
    json_object_set_new(o, "created_at", json_integer(d ? d->created_at : 0));
    json_object_set_new(o, "trash", json_boolean(im->trash));
    json_object_set_new(o, "rbdsnap", json_boolean(im->rbdsnap));
    json_object_set_new(o, "to_be_deleted_by_glance", json_boolean(im->tbd));
    if (im->error)
        json_object_set_new(o, "error", json_string(im->error));
    if (d && d->parent_pool) {
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s@%s", d->parent_pool, d->parent_image, d->parent_snap);
        json_object_set_new(o, "parent", json_string(p));
    } else {
        json_object_set_new(o, "parent", json_null());
    }
    for (size_t i = 0; d && i < d->nmd; i++)
        json_object_set_new(md, d->md_keys[i], json_string(d->md_values[i]));
    json_object_set_new(o, "metadata", md);
    if (im->glance_checked) {
        json_t *g = json_object();
        json_object_set_new(g, "id", json_string(im->glance_id));
        json_object_set_new(g, "found", json_boolean(im->glance_found));
        json_object_set_new(g, "name", im->glance_name ? json_string(im->glance_name) : json_null());
        json_object_set_new(g, "status",
                            im->glance_status ? json_string(im->glance_status) : json_null());
        if (im->glance_error)
            json_object_set_new(g, "error", json_string(im->glance_error));
        json_object_set_new(o, "glance", g);
    } else {
        json_object_set_new(o, "glance", json_null());
    }
    for (size_t i = 0; i < im->nsnaps; i++)
        json_array_append_new(snaps, snap_json(&im->snaps[i]));
    json_object_set_new(o, "snapshots", snaps);
    return o;
}

/* ---- ASCII ------------------------------------------------------------------ */

static void print_image(const rs_dep_image *im, const char *prefix, const char *branch,
                        int64_t now, bool root);

static void print_snap(const rs_dep_image *im, const rs_dep_snap *s, const char *prefix,
                       bool last, int64_t now)
{
    char age[32], sub[2048];
    bool trash = s->s->ns == RS_RBD_SNAP_NS_TRASH;

    rs_dep_fmt_age(s->s->created_at, now, age, sizeof(age));
    printf("%s%s@%s  %s  %s%s%s\n", prefix, last ? "`-- " : "|-- ", s->display,
           trash ? "trash-snap" : s->s->is_protected ? "protected" : "unprotected", age,
           s->rbdsnap ? "  [rbdsnap]" : "", trash ? "  [trash]" : "");
    snprintf(sub, sizeof(sub), "%s%s", prefix, last ? "    " : "|   ");
    for (size_t i = 0; i < s->nchildren; i++) {
        bool l = i + 1 == s->nchildren;
        char p2[2100];
        snprintf(p2, sizeof(p2), "%s%s", sub, l ? "    " : "|   ");
        printf("%s%s", sub, l ? "`-- " : "|-- ");
        print_image(s->children[i], p2, "", now, false);
    }
    (void)im;
}

static void print_image(const rs_dep_image *im, const char *prefix, const char *branch,
                        int64_t now, bool root)
{
    const rs_rbd_image_desc *d = im->d;
    char size[32], age[32];

    printf("%s%s/%s", branch, im->pool, im->name);
    if (im->error) {
        printf("  (unreadable: %s)\n", im->error);
        return;
    }
    rs_dep_fmt_size(d->size, size, sizeof(size));
    rs_dep_fmt_age(d->created_at, now, age, sizeof(age));
    printf("  %s  %s", size, age);
    if (im->rbdsnap)
        printf("  [rbdsnap]");
    if (im->trash)
        printf("  [trash]");
    if (im->tbd)
        printf("  [to-be-deleted-by-glance]");
    if (im->glance_checked) {
        if (im->glance_found)
            printf("  glance=%s \"%s\" %s", im->glance_id, im->glance_name ? im->glance_name : "",
                   im->glance_status ? im->glance_status : "?");
        else if (im->glance_error)
            printf("  glance=%s (lookup failed)", im->glance_id);
        else
            printf("  glance=%s (no record)", im->glance_id);
    }
    if (root && d->parent_pool)
        printf("  (clone of %s/%s@%s%s)", d->parent_pool, d->parent_image, d->parent_snap,
               d->parent_snap_ns == RS_RBD_SNAP_NS_TRASH ? " [trash]" : "");
    printf("\n");
    for (size_t i = 0; i < im->nsnaps; i++)
        print_snap(im, &im->snaps[i], prefix, i + 1 == im->nsnaps, now);
}

int rs_cli_cmd_tree(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "pool", required_argument, NULL, OPT_POOL },
        { NULL, 0, NULL, 0 },
    };
    const char *pool = NULL, *spec = NULL;
    rs_deptree *t = NULL;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_POOL: pool = optarg; break;
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    int done = rs_cli_options_end(cli, help, 1, argc, argv);
    if (done >= 0)
        return done;
    if (optind == argc - 1)
        spec = argv[optind];
    if (spec && pool)
        return rs_cli_usage_error(cli, "give either POOL/IMAGE or --pool, not both");
    rc = rs_dep_cli_build(cli, spec, pool, &t);
    if (rc != 0)
        return rc;
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_object(), *roots = json_array(), *pools = json_array();
        for (size_t i = 0; i < t->npools; i++)
            json_array_append_new(pools, json_string(t->pools[i]));
        for (size_t i = 0; i < t->nroots; i++)
            json_array_append_new(roots, node_json(t->roots[i]));
        json_object_set_new(o, "pools", pools);
        json_object_set_new(o, "glance", json_boolean(t->glance));
        json_object_set_new(o, "images", json_integer((json_int_t)t->nimages));
        json_object_set_new(o, "roots", roots);
        rs_cli_print_json(o);
    } else {
        int64_t now = rs_wall_time();
        for (size_t i = 0; i < t->nroots; i++)
            print_image(t->roots[i], "", "", now, true);
        if (t->nroots == 0)
            printf("(no images)\n");
    }
    rs_deptree_free(t);
    return RS_EXIT_OK;
}
