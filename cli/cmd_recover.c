/*
 * cmd_recover.c - `rbdsnap recover`: clean up after dead `snapshot` runs.
 *
 * Rolls back every job in the journal that no live process owns (idempotent:
 * a second run finds nothing).  Jobs left flatten_pending by --flatten
 * deferred are reported, or finished with --complete-deferred.  With --scan,
 * also looks for objects carrying rbdsnap provenance metadata in the source
 * and destination pools and reports them (read-only).
 */
#define RS_LOG_MODULE "cli.recover"
#include "cli/cli.h"

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "rbd/flow.h"
#include "glance/glance_conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap recover [options]\n"
    "Roll back every unfinished snapshot job found in the journal.\n"
    "  --journal-dir DIR       job journal (default: snapshot.journal_dir)\n"
    "  --complete-deferred     finish jobs left with a pending (deferred) flatten\n"
    "  --scan                  also report leftovers found by provenance metadata\n"
    "  --pool POOL             source pool to scan (default: snapshot.source_pool)\n"
    "  --dest-pool POOL        destination pool to scan (default: snapshot.dest_pool)\n"
    RS_CLI_COMMON_HELP;

enum { OPT_JOURNAL_DIR = 1200, OPT_COMPLETE, OPT_SCAN, OPT_POOL, OPT_DEST_POOL };

struct ctx {
    const rs_cli *cli;
    json_t *jobs, *leftovers;
    int failed;
    rs_glance *glance;       /* NULL: Glance not configured */
};

/* A CLI snapshot into Glance creates the record before the RBD flow, with
 * its id as the clone's name and rbdsnap_job_id = the job.  When recover
 * rolls such a job back, the record goes too — only if it is provably this
 * job's and never became active. */
static const char *drop_glance_record(struct ctx *c, const rs_job *job, int *rc, char *msg,
                                      size_t len)
{
    rs_glance_image *img = NULL;
    rs_error gerr = RS_ERROR_INIT;
    const char *what = "none";

    if (!c->glance || !rs_is_uuid(job->target))
        return what;
    int grc = rs_glance_image_get(c->glance, job->target, &img, &gerr);
    if (grc == -ENOENT)
        return what;
    if (grc < 0) {
        *rc = grc;
        snprintf(msg, len, "%s", rs_error_msg(&gerr));
        return "error";
    }
    const char *owner = rs_glance_image_prop(img, "rbdsnap_job_id");
    if (!owner || strcmp(owner, job->id) != 0 || strcmp(img->status, "active") == 0) {
        what = "kept";
    } else {
        grc = rs_glance_image_delete(c->glance, job->target, &gerr);
        if (grc < 0 && grc != -ENOENT) {
            *rc = grc;
            snprintf(msg, len, "%s", rs_error_msg(&gerr));
            what = "error";
        } else {
            what = "deleted";
        }
    }
    rs_glance_image_free(img);
    return what;
}

static void on_job(const rs_job *job, const char *action, int rc, const char *msg, void *arg)
{
    struct ctx *c = arg;
    char gmsg[RS_ERROR_MSG_MAX] = "";
    const char *glance = "none";
    if (rc == 0 && strcmp(action, "rolled_back") == 0) {
        glance = drop_glance_record(c, job, &rc, gmsg, sizeof(gmsg));
        if (rc < 0)
            msg = gmsg;
    }
    if (rc < 0)
        c->failed++;
    if (c->cli->format == RS_CLI_JSON) {
        json_array_append_new(c->jobs, json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "job_id", job->id,
                                                 "target", job->target, "action", action,
                                                 "state", rs_job_state_name(job->state), "rc", rc,
                                                 "message", msg ? msg : "", "glance_record",
                                                 glance));
        return;
    }
    printf("job %s target=%s/%s action=%s state=%s glance_record=%s%s%s\n", job->id,
           job->dest_pool, job->target, action, rs_job_state_name(job->state), glance,
           rc < 0 ? " error=" : "", rc < 0 ? msg : "");
}

static const char *kind_name(rs_leftover_kind k)
{
    switch (k) {
    case RS_LEFTOVER_SOURCE_SNAP: return "source_snapshot";
    case RS_LEFTOVER_SOURCE_KEY: return "source_key_without_snapshot";
    case RS_LEFTOVER_CLONE_INCOMPLETE: return "incomplete_clone";
    }
    return "?";
}

static void on_leftover(const rs_leftover *l, void *arg)
{
    struct ctx *c = arg;
    if (c->cli->format == RS_CLI_JSON) {
        json_array_append_new(c->leftovers, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "kind",
                                                      kind_name(l->kind), "pool", l->pool,
                                                      "image", l->image, "snap", l->snap,
                                                      "job_id", l->job_id,
                                                      "children", (json_int_t)l->children));
        return;
    }
    if (l->kind == RS_LEFTOVER_SOURCE_SNAP)
        printf("leftover %s %s/%s@%s job=%s children=%zu%s\n", kind_name(l->kind), l->pool,
               l->image, l->snap, l->job_id[0] ? l->job_id : "-", l->children,
               l->children ? "" : " (orphan)");
    else
        printf("leftover %s %s/%s%s%s job=%s\n", kind_name(l->kind), l->pool, l->image,
               l->kind == RS_LEFTOVER_CLONE_INCOMPLETE ? "" : "@",
               l->kind == RS_LEFTOVER_CLONE_INCOMPLETE ? "" : l->snap,
               l->job_id[0] ? l->job_id : "-");
}

int rs_cli_cmd_recover(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "journal-dir", required_argument, NULL, OPT_JOURNAL_DIR },
        { "complete-deferred", no_argument, NULL, OPT_COMPLETE },
        { "scan", no_argument, NULL, OPT_SCAN },
        { "pool", required_argument, NULL, OPT_POOL },
        { "dest-pool", required_argument, NULL, OPT_DEST_POOL },
        { NULL, 0, NULL, 0 },
    };
    const char *jdir = NULL, *pool = NULL, *dest = NULL;
    bool complete = false, scan = false;
    rs_error err = RS_ERROR_INIT;
    rs_cluster *cl = NULL;
    rs_journal *journal = NULL;
    struct ctx ctx = { .cli = cli };
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JOURNAL_DIR: jdir = optarg; break;
        case OPT_COMPLETE: complete = true; break;
        case OPT_SCAN: scan = true; break;
        case OPT_POOL: pool = optarg; break;
        case OPT_DEST_POOL: dest = optarg; break;
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    int done = rs_cli_options_end(cli, help, 0, argc, argv);
    if (done >= 0)
        return done;
    if (rs_cli_load_conf_or_usage(cli) != 0)
        return RS_EXIT_USAGE;
    if (!jdir)
        jdir = cli->conf->snapshot.journal_dir;
    if (!pool)
        pool = cli->conf->snapshot.source_pool;
    if (!dest)
        dest = cli->conf->snapshot.dest_pool;

    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_journal_dir_open(jdir, &journal, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);

    rc = rs_glance_open_from_conf(cli->conf, 1, &ctx.glance, &err);
    if (rc < 0) {
        rs_journal_close(journal);
        return rs_cli_fail(cli, &err);
    }
    ctx.jobs = json_array();
    ctx.leftovers = json_array();
    rc = rs_flow_recover(cl, journal, complete, on_job, &ctx, &err);
    rs_journal_close(journal);
    if (rc == 0 && ctx.failed)
        rc = rs_error_set(&err, -EIO, "%d job(s) could not be cleaned up completely", ctx.failed);
    rs_glance_free(ctx.glance);
    if (rc == 0 && scan) {
        rc = rs_flow_scan_leftovers(cl, pool, dest, cli->conf->snapshot.snap_prefix, on_leftover,
                                    &ctx, &err);
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "jobs", ctx.jobs);
        json_object_set_new(o, "leftovers", ctx.leftovers);
        json_object_set_new(o, "ok", json_boolean(rc == 0));
        rs_cli_print_json(o);
    } else {
        json_decref(ctx.jobs);
        json_decref(ctx.leftovers);
    }
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    return RS_EXIT_OK;
}
