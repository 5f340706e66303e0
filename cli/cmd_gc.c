/*
 * cmd_gc.c - `rbdsnap gc`: one reaper cycle from the command line (the
 * same cycle rbdsnapd runs every gc.interval): take the cluster-wide
 * reaper lock, scan the pools and Glance, plan, and (unless --dry-run)
 * delete the garbage in a safe order within gc.max_items / gc.max_seconds,
 * then print the report: found, deleted, skipped and why.
 *
 * Exit codes: 0 done (skips are not failures), 1 an action failed, the scan
 * failed, or another reaper holds the lock (without --wait), 2 usage.
 */
#define RS_LOG_MODULE "cli.gc"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "common/util.h"
#include "conf/conf.h"
#include "gc/reaper.h"
#include "gc/report.h"
#include "glance/glance.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap gc [--dry-run] [--grace SECONDS] [--max-items N] [--max-seconds N]\n"
    "                  [--pool POOL]... [--match TEXT] [--wait] [--format plain|json]\n"
    "Find the debris that snapshots, deletes and crashes leave in the pools and in\n"
    "Glance (*_to_be_deleted_by_glance trees, RBD trash entries, orphan clones,\n"
    "unused source snapshots, stuck Glance records), report it, and remove what is\n"
    "proven garbage, children first.  Anything live, young, locked, owned by a\n"
    "running job or of unknown owner is reported as skipped and never touched.\n"
    "Only one reaper runs per cluster (RADOS lock in journal.pool).\n"
    "  --dry-run          report only; change nothing\n"
    "  --grace SECONDS    minimum age of anything deleted (default gc.grace)\n"
    "  --max-items N      items deleted in this run, 0 = no limit (default gc.max_items)\n"
    "  --max-seconds N    time budget, 0 = none (default gc.max_seconds)\n"
    "  --pool POOL        also scan POOL (repeatable; the source and destination\n"
    "                     pools are always scanned)\n"
    "  --match TEXT       only consider images whose name contains TEXT (targeted\n"
    "                     clean-up; Glance and the other images still protect)\n"
    "  --wait             wait for another running reaper instead of failing\n"
    RS_CLI_COMMON_HELP;

enum { OPT_DRY_RUN = 1200, OPT_GRACE, OPT_MAX_ITEMS, OPT_MAX_SECONDS, OPT_POOL, OPT_WAIT, OPT_MATCH };

static int parse_int(const char *s, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < 0 || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static json_t *scan_json(const rs_reaper_cycle_result *res)
{
    const rs_gc_scan_stats *s = &res->scan;
    json_t *o = json_object();
    json_object_set_new(o, "images", json_integer((json_int_t)s->images));
    json_object_set_new(o, "trash", json_integer((json_int_t)s->trash));
    json_object_set_new(o, "snapshots", json_integer((json_int_t)s->snaps));
    json_object_set_new(o, "unreadable", json_integer((json_int_t)s->unreadable));
    json_object_set_new(o, "glance_records", json_integer((json_int_t)s->glance_records));
    json_object_set_new(o, "glance_complete", json_boolean(s->glance_complete));
    if (s->glance_error[0])
        json_object_set_new(o, "glance_error", json_string(s->glance_error));
    json_object_set_new(o, "running_jobs", json_integer((json_int_t)s->running_jobs));
    json_object_set_new(o, "locked_images", json_integer((json_int_t)s->locked_images));
    json_object_set_new(o, "rbd_ms", json_integer((json_int_t)s->rbd_ms));
    json_object_set_new(o, "glance_ms", json_integer((json_int_t)s->glance_ms));
    json_object_set_new(o, "scan_ms", json_integer((json_int_t)s->total_ms));
    json_object_set_new(o, "plan_ms", json_integer((json_int_t)res->plan_ms));
    json_object_set_new(o, "run_ms", json_integer((json_int_t)res->run_ms));
    json_object_set_new(o, "cycle_ms", json_integer((json_int_t)res->dur_ms));
    json_object_set_new(o, "deleted_items", json_integer((json_int_t)res->deleted));
    json_object_set_new(o, "failed_items", json_integer((json_int_t)res->failed_items));
    json_object_set_new(o, "budget_exhausted", json_boolean(res->run.budget_exhausted));
    json_object_set_new(o, "actions_left", json_integer((json_int_t)res->run.left));
    return o;
}

int rs_cli_cmd_gc(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "dry-run", no_argument, NULL, OPT_DRY_RUN },
        { "grace", required_argument, NULL, OPT_GRACE },
        { "max-items", required_argument, NULL, OPT_MAX_ITEMS },
        { "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
        { "pool", required_argument, NULL, OPT_POOL },
        { "wait", no_argument, NULL, OPT_WAIT },
        { "match", required_argument, NULL, OPT_MATCH },
        { NULL, 0, NULL, 0 },
    };
    const char *pools[32];
    size_t npools = 0;
    long grace = -1, max_items = -1, max_seconds = -1;
    bool dry_run = false, wait = false;
    const char *match = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_cluster *cl = NULL;
    rs_glance *glance = NULL;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DRY_RUN: dry_run = true; break;
        case OPT_WAIT: wait = true; break;
        case OPT_MATCH:
            if (!*optarg)
                return rs_cli_usage_error(cli, "--match: empty text");
            match = optarg;
            break;
        case OPT_GRACE:
            if (parse_int(optarg, INT_MAX, &grace) < 0)
                return rs_cli_usage_error(cli, "--grace: not a number of seconds: \"%s\"", optarg);
            break;
        case OPT_MAX_ITEMS:
            if (parse_int(optarg, INT_MAX, &max_items) < 0)
                return rs_cli_usage_error(cli, "--max-items: not a count: \"%s\"", optarg);
            break;
        case OPT_MAX_SECONDS:
            if (parse_int(optarg, INT_MAX, &max_seconds) < 0)
                return rs_cli_usage_error(cli, "--max-seconds: not a number: \"%s\"", optarg);
            break;
        case OPT_POOL:
            if (npools == sizeof(pools) / sizeof(pools[0]))
                return rs_cli_usage_error(cli, "too many --pool options");
            if (!rs_name_is_safe(optarg, 256))
                return rs_cli_usage_error(cli, "--pool: bad pool name \"%s\"", optarg);
            pools[npools++] = optarg;
            break;
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
    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_dep_glance_open(cli->conf, &glance, &err);
    if (rc < 0) {
        /* Without Glance nothing that needs its listing is deleted. */
        rs_cli_error(cli, "warning: Glance unavailable (%s): records are not checked",
                     rs_error_msg(&err));
        rs_error_clear(&err);
        glance = NULL;
    }

    rs_reaper_cycle_opts o;
    rs_reaper_cycle_opts_init(&o, cli->conf);
    o.dry_run = dry_run;
    o.grace = grace;
    o.max_items = (int)max_items;
    o.max_seconds = (int)max_seconds;
    o.extra_pools = pools;
    o.nextra_pools = npools;
    o.wait_lock = wait;
    o.name_filter = match;
    o.read_cli_journal = true;

    rs_reaper_cycle_result res;
    rc = rs_reaper_cycle(cl, glance, &o, &res, &err);
    if (!res.plan) {
        if (rc == -EBUSY)
            rs_cli_error(cli, "another reaper is running: %s (use --wait to wait for it)",
                         rs_error_msg(&err));
        else
            rs_cli_error(cli, "%s", rs_error_msg(&err));
        rs_reaper_cycle_result_clear(&res);
        rs_glance_free(glance);
        return RS_EXIT_ERROR;
    }

    char *text = NULL;
    rs_error rerr = RS_ERROR_INIT;
    int rrc = rs_gc_report_render(res.plan, cli->format == RS_CLI_JSON ? RS_GC_REPORT_JSON
                                                                          : RS_GC_REPORT_PLAIN,
                                  dry_run, &text, &rerr);
    if (rrc < 0) {
        rs_cli_error(cli, "report: %s", rs_error_msg(&rerr));
    } else if (cli->format == RS_CLI_JSON) {
        json_error_t jerr;
        json_t *doc = json_loads(text, 0, &jerr);
        if (doc) {
            json_object_set_new(doc, "scan", scan_json(&res));
            rs_cli_print_json(doc);
        } else {
            fputs(text, stdout);
        }
    } else {
        const rs_gc_scan_stats *s = &res.scan;
        fputs(text, stdout);
        printf("\nscanned %zu images (%zu in the trash, %zu unreadable), %zu snapshots, "
               "%zu Glance records%s in %.3f s; cycle %.3f s\n",
               s->images, s->trash, s->unreadable, s->snaps, s->glance_records,
               s->glance_complete ? "" : " (Glance listing incomplete: nothing that needs it "
                                         "is deleted)",
               (double)s->total_ms / 1000.0, (double)res.dur_ms / 1000.0);
        if (!dry_run)
            printf("deleted %zu of %zu item(s)%s%s\n", res.deleted, res.found,
                   res.failed_items ? ", some failed (see above)" : "",
                   res.run.budget_exhausted ? "; time budget spent, the rest next run" : "");
    }
    free(text);
    if (rc < 0 && res.run.failed == 0)
        rs_cli_error(cli, "%s", rs_error_msg(&err));
    int exit_code = rc < 0 || rrc < 0 ? RS_EXIT_ERROR : RS_EXIT_OK;
    rs_reaper_cycle_result_clear(&res);
    rs_glance_free(glance);
    return exit_code;
}
