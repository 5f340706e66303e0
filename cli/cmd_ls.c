/*
 * cmd_ls.c - `rbdsnap ls [--pool P]`: what rbdsnap made, with age, size
 * and state.
 *
 * Artifacts:
 *   clone     an image with rbdsnap.* metadata of its own (the Glance-pool
 *             clones of the snapshot flow); state: flat | unflattened
 *             (still a clone) | trash, plus to-be-deleted-by-glance and the
 *             Glance status when Glance is configured;
 *   snapshot  a source snapshot made by rbdsnap (name prefix, default
 *             "rbdsnap-", or key rbdsnap.snap.<name> on its image); state:
 *             protected | unprotected | trash (trash namespace: kept until
 *             its last clone goes), plus the number of clones.
 */
#define RS_LOG_MODULE "cli.ls"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "common/util.h"
#include "rbd/flow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap ls [--pool POOL] [options]\n"
    "List what rbdsnap made: clones (images with rbdsnap.* metadata) and source\n"
    "snapshots, with age, size and state (default: every pool with the rbd\n"
    "application).\n"
    "  --pool POOL   only POOL (and clones of its snapshots elsewhere)\n"
    RS_CLI_COMMON_HELP;

enum { OPT_POOL = 1100 };

typedef struct row {
    const char *kind;
    char name[1200];
    const rs_dep_image *im;
    const rs_dep_snap *snap;
    int64_t created;
    uint64_t size;
    char state[256];
} row;

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->name, y->name);
}

static void clone_state(const rs_dep_image *im, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "%s",
                                im->error ? "unreadable"
                                : im->trash ? "trash"
                                : im->d->parent_pool ? "unflattened" : "flat");
    if (im->tbd && o < len)
        o += (size_t)snprintf(buf + o, len - o, ",to-be-deleted-by-glance");
    if (im->glance_checked && o < len)
        snprintf(buf + o, len - o, ",glance=%s",
                 im->glance_found ? (im->glance_status ? im->glance_status : "?")
                 : im->glance_error ? "error" : "missing");
}

int rs_cli_cmd_ls(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "pool", required_argument, NULL, OPT_POOL },
        { NULL, 0, NULL, 0 },
    };
    const char *pool = NULL;
    rs_deptree *t = NULL;
    row *rows = NULL;
    size_t nrows = 0, cap = 0;
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
    int done = rs_cli_options_end(cli, help, 0, argc, argv);
    if (done >= 0)
        return done;
    rc = rs_dep_cli_build(cli, NULL, pool, &t);
    if (rc != 0)
        return rc;

    for (size_t i = 0; i < t->nimages; i++) {
        const rs_dep_image *im = t->images[i];
        size_t want = nrows + 1 + im->nsnaps;
        if (want > cap) {
            size_t nc = want * 2;
            row *nr = realloc(rows, nc * sizeof(*nr));
            if (!nr) {
                free(rows);
                rs_deptree_free(t);
                rs_cli_error(cli, "out of memory");
                return RS_EXIT_ERROR;
            }
            rows = nr;
            cap = nc;
        }
        if (im->rbdsnap) {
            row *r = &rows[nrows++];
            memset(r, 0, sizeof(*r));
            r->kind = "clone";
            r->im = im;
            snprintf(r->name, sizeof(r->name), "%s/%s", im->pool, im->name);
            r->created = im->d->created_at;
            r->size = im->d->size;
            clone_state(im, r->state, sizeof(r->state));
        }
        for (size_t s = 0; s < im->nsnaps; s++) {
            const rs_dep_snap *sn = &im->snaps[s];
            if (!sn->rbdsnap)
                continue;
            row *r = &rows[nrows++];
            memset(r, 0, sizeof(*r));
            r->kind = "snapshot";
            r->im = im;
            r->snap = sn;
            snprintf(r->name, sizeof(r->name), "%s/%s@%s", im->pool, im->name, sn->display);
            r->created = sn->s->created_at;
            r->size = sn->s->size;
            snprintf(r->state, sizeof(r->state), "%s,clones=%zu%s",
                     sn->s->ns == RS_RBD_SNAP_NS_TRASH ? "trash"
                     : sn->s->is_protected ? "protected" : "unprotected",
                     sn->s->nchildren, im->trash ? ",image-in-trash" : "");
        }
    }
    if (nrows > 1)
        qsort(rows, nrows, sizeof(*rows), cmp_row);

    int64_t now = rs_wall_time();
    if (cli->format == RS_CLI_JSON) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nrows; i++) {
            const row *r = &rows[i];
            const rs_rbd_image_desc *d = r->im->d;
            const char *job = rs_rbd_image_desc_md(d, RS_MD_JOB_ID);
            json_t *o = json_object();
            json_object_set_new(o, "kind", json_string(r->kind));
            json_object_set_new(o, "name", json_string(r->name));
            json_object_set_new(o, "pool", json_string(r->im->pool));
            json_object_set_new(o, "image", json_string(r->im->name));
            json_object_set_new(o, "snap", r->snap ? json_string(r->snap->display) : json_null());
            json_object_set_new(o, "created_at", json_integer(r->created));
            json_object_set_new(o, "age_seconds",
                                json_integer(r->created > 0 ? now - r->created : -1));
            json_object_set_new(o, "size", json_integer((json_int_t)r->size));
            json_object_set_new(o, "state", json_string(r->state));
            if (r->snap) {
                char key[600];
                snprintf(key, sizeof(key), "%s%s", RS_MD_SNAP_PREFIX, r->snap->display);
                job = rs_rbd_image_desc_md(d, key);
                json_object_set_new(o, "clones", json_integer((json_int_t)r->snap->s->nchildren));
                json_object_set_new(o, "parent", json_null());
            } else {
                char p[1024];
                if (d->parent_pool)
                    snprintf(p, sizeof(p), "%s/%s@%s", d->parent_pool, d->parent_image,
                             d->parent_snap);
                json_object_set_new(o, "clones", json_null());
                json_object_set_new(o, "parent", d->parent_pool ? json_string(p) : json_null());
            }
            json_object_set_new(o, "job_id", job ? json_string(job) : json_null());
            json_object_set_new(o, "glance_status",
                                r->im->glance_found && r->im->glance_status && !r->snap
                                    ? json_string(r->im->glance_status) : json_null());
            json_array_append_new(arr, o);
        }
        json_t *top = json_object();
        json_object_set_new(top, "artifacts", arr);
        rs_cli_print_json(top);
    } else {
        int wk = 8, wn = 4;
        for (size_t i = 0; i < nrows; i++) {
            int l = (int)strlen(rows[i].name);
            if (l > wn)
                wn = l;
        }
        printf("%-*s  %-*s  %6s  %10s  %s\n", wk, "KIND", wn, "NAME", "AGE", "SIZE", "STATE");
        for (size_t i = 0; i < nrows; i++) {
            char age[32], size[32];
            rs_dep_fmt_age(rows[i].created, now, age, sizeof(age));
            rs_dep_fmt_size(rows[i].size, size, sizeof(size));
            printf("%-*s  %-*s  %6s  %10s  %s\n", wk, rows[i].kind, wn, rows[i].name, age, size,
                   rows[i].state);
        }
    }
    free(rows);
    rs_deptree_free(t);
    return RS_EXIT_OK;
}
