/*
 * cmd_snapshot.c - `rbdsnap snapshot`: run the RBD snapshot flow without
 * the daemon and print what it created.
 *
 *   rbdsnap snapshot --pool vms --image <uuid>_disk [--image ...]
 *       --dest-pool images --name <id> [--flatten yes|no|deferred]
 *       [--clone-format auto|1|2] [--format plain|json]
 */
#define RS_LOG_MODULE "cli.snapshot"
#include "cli/cli.h"

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "rbd/flow.h"
#include "cli/snapshot_glance.h"
#include "glance/glance_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap snapshot --image IMAGE [--image IMAGE...] --name ID [options]\n"
    "Snapshot RBD disks: snap, clone into the image pool as ID (other disks as\n"
    "ID_<suffix>, e.g. <uuid>_disk.eph0 -> ID_eph0), create and protect ID@snap.\n"
    "  --pool POOL             source pool (default: snapshot.source_pool, vms)\n"
    "  --image IMAGE           source image; first one is the root disk (repeatable)\n"
    "  --dest-pool POOL        destination pool (default: snapshot.dest_pool, images)\n"
    "  --name ID               clone name of the root disk (the Glance image id)\n"
    "  --flatten no|yes|deferred   (default: snapshot.flatten)\n"
    "  --clone-format auto|1|2     (default: snapshot.clone_format)\n"
    "  --instance-uuid UUID    provenance (default: taken from IMAGE if <uuid>_disk)\n"
    "  --job-id ID             job id (default: random UUID)\n"
    "  --snap-prefix PREFIX    source snapshot prefix (default: snapshot.snap_prefix)\n"
    "  --journal-dir DIR       job journal (default: snapshot.journal_dir)\n"
    "  --no-journal            run without a journal (no crash recovery)\n"
    "  --run-deferred          with --flatten deferred: print the result, then flatten\n"
    "With Glance configured (glance.url or glance.auth), the snapshot is registered\n"
    "in Glance: the record is created first and its id (--name, a UUID, or a random\n"
    "one) names the clone; the rbd:// location is added; any failure removes both.\n"
    "  --image-name NAME       Glance image name (default: \"snapshot of POOL/IMAGE\")\n"
    "  --property KEY=VALUE    extra Glance property (repeatable)\n"
    "  --no-glance             only the RBD flow, even with Glance configured\n"
    "With --domain NAME: snapshot a libvirt domain into Glance (see --domain --help);\n"
    "with --via-daemon: ask rbdsnapd (see --via-daemon --help).\n"
    RS_CLI_COMMON_HELP;

enum {
    OPT_POOL = 1100, OPT_IMAGE, OPT_DEST_POOL, OPT_NAME, OPT_FLATTEN, OPT_CLONE_FORMAT,
    OPT_INSTANCE, OPT_JOB_ID, OPT_SNAP_PREFIX, OPT_JOURNAL_DIR, OPT_NO_JOURNAL, OPT_RUN_DEFERRED,
    OPT_IMAGE_NAME, OPT_PROPERTY, OPT_NO_GLANCE,
};

#define MAX_PROPS 64

static atomic_int interrupted;
static atomic_bool cancel_requested;

static void on_signal(int sig)
{
    atomic_store(&interrupted, sig);
    atomic_store(&cancel_requested, true);
}

static int on_progress(const char *pool, const char *image, uint64_t done, uint64_t total,
                       void *arg)
{
    const rs_cli *cli = arg;
    if (cli->verbose)
        fprintf(stderr, "flatten %s/%s: %" PRIu64 "/%" PRIu64 "\n", pool, image, done, total);
    return atomic_load(&interrupted) ? 1 : 0;
}

/* Instance uuid from Nova's image name <uuid>_disk[.suffix]. */
static void guess_instance(const char *image, char *out, size_t len)
{
    out[0] = '\0';
    if (strlen(image) >= 36 && image[36] == '_') {
        char u[37];
        memcpy(u, image, 36);
        u[36] = '\0';
        if (rs_is_uuid(u))
            snprintf(out, len, "%s", u);
    }
}

static void print_result(const rs_cli *cli, const rs_flow_result *r)
{
    const rs_job *job = &r->job;

    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_object(), *imgs = json_array();
        json_object_set_new(o, "job_id", json_string(job->id));
        json_object_set_new(o, "fsid", json_string(r->fsid));
        json_object_set_new(o, "dest_pool", json_string(r->dest_pool));
        json_object_set_new(o, "clone_format", json_integer(r->clone_format));
        json_object_set_new(o, "flatten", json_string(rs_flatten_mode_name(job->flatten)));
        json_object_set_new(o, "flatten_pending", json_boolean(r->flatten_pending));
        json_object_set_new(o, "freeze_us", json_integer((json_int_t)r->freeze_us));
        json_object_set_new(o, "duration_ms", json_integer((json_int_t)(r->duration_us / 1000)));
        for (size_t i = 0; i < r->ndisks; i++) {
            const rs_flow_disk_result *d = &r->disks[i];
            char src[2 * RS_JOB_NAME_MAX + 2], snap[3 * RS_JOB_NAME_MAX], url[4 * RS_JOB_NAME_MAX];
            snprintf(src, sizeof(src), "%s/%s", job->src_pool, d->src_image);
            snprintf(snap, sizeof(snap), "%s/%s@%s", r->dest_pool, d->clone, RS_FLOW_CLONE_SNAP);
            snprintf(url, sizeof(url), "rbd://%s/%s/%s/%s", r->fsid, r->dest_pool, d->clone,
                     RS_FLOW_CLONE_SNAP);
            json_array_append_new(imgs, json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:I,s:b}",
                "source", src, "source_snap", d->src_snap, "source_snap_removed",
                d->src_snap_removed, "clone", d->clone, "snap", snap, "url", url,
                "size", (json_int_t)d->size, "flattened", d->flattened));
        }
        json_object_set_new(o, "images", imgs);
        rs_cli_print_json(o);
        return;
    }
    printf("job           %s\n", job->id);
    printf("clone_format  %d\n", r->clone_format);
    printf("flatten       %s%s\n", rs_flatten_mode_name(job->flatten),
           r->flatten_pending ? " (pending)" : "");
    for (size_t i = 0; i < r->ndisks; i++) {
        const rs_flow_disk_result *d = &r->disks[i];
        printf("created       %s/%s@%s size=%" PRIu64 " flattened=%s\n", r->dest_pool, d->clone,
               RS_FLOW_CLONE_SNAP, d->size, d->flattened ? "yes" : "no");
        printf("  url         rbd://%s/%s/%s/%s\n", r->fsid, r->dest_pool, d->clone,
               RS_FLOW_CLONE_SNAP);
        printf("  source      %s/%s@%s (%s)\n", job->src_pool, d->src_image, d->src_snap,
               d->src_snap_removed ? (r->clone_format == 2 && !d->flattened
                                          ? "removed; kept in trash while the clone needs it"
                                          : "removed")
                                   : "kept until flatten");
    }
    printf("duration_ms   %" PRIu64 " (freeze window %" PRIu64 " us)\n", r->duration_us / 1000,
           r->freeze_us);
}

/* cli/cmd_jobs.c: the same command through rbdsnapd. */
int rs_cli_snapshot_via_daemon(rs_cli *cli, int argc, char **argv);
/* cli/cmd_snapshot_domain.c: a libvirt domain, in this process. */
int rs_cli_snapshot_domain(rs_cli *cli, int argc, char **argv);

int rs_cli_cmd_snapshot(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "pool", required_argument, NULL, OPT_POOL },
        { "image", required_argument, NULL, OPT_IMAGE },
        { "dest-pool", required_argument, NULL, OPT_DEST_POOL },
        { "name", required_argument, NULL, OPT_NAME },
        { "flatten", required_argument, NULL, OPT_FLATTEN },
        { "clone-format", required_argument, NULL, OPT_CLONE_FORMAT },
        { "instance-uuid", required_argument, NULL, OPT_INSTANCE },
        { "job-id", required_argument, NULL, OPT_JOB_ID },
        { "snap-prefix", required_argument, NULL, OPT_SNAP_PREFIX },
        { "journal-dir", required_argument, NULL, OPT_JOURNAL_DIR },
        { "no-journal", no_argument, NULL, OPT_NO_JOURNAL },
        { "run-deferred", no_argument, NULL, OPT_RUN_DEFERRED },
        { "image-name", required_argument, NULL, OPT_IMAGE_NAME },
        { "property", required_argument, NULL, OPT_PROPERTY },
        { "no-glance", no_argument, NULL, OPT_NO_GLANCE },
        { NULL, 0, NULL, 0 },
    };
    const char *images[RS_JOB_MAX_DISKS];
    size_t nimages = 0;
    const char *pool = NULL, *dest = NULL, *name = NULL, *flatten = NULL, *fmt = NULL;
    const char *instance = NULL, *job_id = NULL, *prefix = NULL, *jdir = NULL;
    bool no_journal = false, run_deferred = false, no_glance = false;
    const char *image_name = NULL;
    rs_kv props[MAX_PROPS];
    size_t nprops = 0;
    rs_error err = RS_ERROR_INIT;
    rs_cluster *cl = NULL;
    rs_journal *journal = NULL;
    rs_flow_request req = { 0 };
    rs_flow_result *res = NULL;
    char inst[64];
    int c, rc;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--via-daemon") == 0)
            return rs_cli_snapshot_via_daemon(cli, argc, argv);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--domain") == 0 || strncmp(argv[i], "--domain=", 9) == 0)
            return rs_cli_snapshot_domain(cli, argc, argv);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_POOL: pool = optarg; break;
        case OPT_IMAGE:
            if (nimages == RS_JOB_MAX_DISKS)
                return rs_cli_usage_error(cli, "at most %d --image", RS_JOB_MAX_DISKS);
            images[nimages++] = optarg;
            break;
        case OPT_DEST_POOL: dest = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_FLATTEN: flatten = optarg; break;
        case OPT_CLONE_FORMAT: fmt = optarg; break;
        case OPT_INSTANCE: instance = optarg; break;
        case OPT_JOB_ID: job_id = optarg; break;
        case OPT_SNAP_PREFIX: prefix = optarg; break;
        case OPT_JOURNAL_DIR: jdir = optarg; break;
        case OPT_NO_JOURNAL: no_journal = true; break;
        case OPT_RUN_DEFERRED: run_deferred = true; break;
        case OPT_IMAGE_NAME: image_name = optarg; break;
        case OPT_NO_GLANCE: no_glance = true; break;
        case OPT_PROPERTY: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return rs_cli_usage_error(cli, "--property expects KEY=VALUE");
            if (nprops == MAX_PROPS)
                return rs_cli_usage_error(cli, "at most %d --property", MAX_PROPS);
            *eq = '\0';
            props[nprops++] = (rs_kv){ optarg, eq + 1 };
            break;
        }
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    int done = rs_cli_options_end(cli, help, 0, argc, argv);
    if (done >= 0)
        return done;
    if (nimages == 0)
        return rs_cli_usage_error(cli, "--image is required");

    if (rs_cli_load_conf_or_usage(cli) != 0)
        return RS_EXIT_USAGE;
    if (!no_glance && rs_glance_conf_configured(cli->conf)) {
        if (run_deferred)
            return rs_cli_usage_error(cli, "--run-deferred is for --no-glance runs");
        if (!instance) {
            guess_instance(images[0], inst, sizeof(inst));
            instance = inst[0] ? inst : NULL;
        }
        rs_cli_snapshot_glance_args ga = {
            .pool = pool ? pool : cli->conf->snapshot.source_pool,
            .images = images, .nimages = nimages, .dest_pool = dest, .clone_format = fmt,
            .snap_prefix = prefix, .image_id = name, .image_name = image_name,
            .instance_uuid = instance, .job_id = job_id,
            .flatten = flatten ? flatten : cli->conf->snapshot.flatten,
            .journal_dir = no_journal ? NULL : (jdir ? jdir : cli->conf->snapshot.journal_dir),
            .props = props, .nprops = nprops,
        };
        if (rs_flatten_mode_parse(ga.flatten, &req.flatten) < 0)
            return rs_cli_usage_error(cli, "--flatten: expected no, yes or deferred, got \"%s\"",
                                      ga.flatten);
        if (fmt && strcmp(fmt, "auto") && strcmp(fmt, "1") && strcmp(fmt, "2"))
            return rs_cli_usage_error(cli, "--clone-format: expected auto, 1 or 2, got \"%s\"", fmt);
        struct sigaction gsa = { .sa_handler = on_signal };
        sigemptyset(&gsa.sa_mask);
        sigaction(SIGINT, &gsa, NULL);
        sigaction(SIGTERM, &gsa, NULL);
        return rs_cli_snapshot_glance(cli, &ga, &cancel_requested);
    }
    if (!name)
        return rs_cli_usage_error(cli, "--name is required");
    if (!pool)
        pool = cli->conf->snapshot.source_pool;
    if (!dest)
        dest = cli->conf->snapshot.dest_pool;
    if (!flatten)
        flatten = cli->conf->snapshot.flatten;
    if (!fmt)
        fmt = cli->conf->snapshot.clone_format;
    if (!prefix)
        prefix = cli->conf->snapshot.snap_prefix;
    if (!jdir)
        jdir = cli->conf->snapshot.journal_dir;

    req.src_pool = pool;
    req.dest_pool = dest;
    req.target = name;
    req.images = images;
    req.nimages = nimages;
    req.snap_prefix = prefix;
    req.job_id = job_id;
    if (rs_flatten_mode_parse(flatten, &req.flatten) < 0)
        return rs_cli_usage_error(cli, "--flatten: expected no, yes or deferred, got \"%s\"", flatten);
    if (strcmp(fmt, "auto") == 0)
        req.clone_format = 0;
    else if (strcmp(fmt, "1") == 0 || strcmp(fmt, "2") == 0)
        req.clone_format = fmt[0] - '0';
    else
        return rs_cli_usage_error(cli, "--clone-format: expected auto, 1 or 2, got \"%s\"", fmt);
    if (!instance) {
        guess_instance(images[0], inst, sizeof(inst));
        instance = inst;
    }
    req.instance_uuid = instance;
    req.progress = on_progress;
    req.progress_arg = cli;
    if (run_deferred && req.flatten != RS_FLATTEN_DEFERRED)
        return rs_cli_usage_error(cli, "--run-deferred needs --flatten deferred");

    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    if (!no_journal) {
        rc = rs_journal_dir_open(jdir, &journal, &err);
        if (rc < 0)
            return rs_cli_fail(cli, &err);
        req.journal = journal;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    res = calloc(1, sizeof(*res));
    if (!res) {
        rs_journal_close(journal);
        rs_cli_error(cli, "out of memory");
        return RS_EXIT_ERROR;
    }
    rc = rs_flow_run(cl, &req, res, &err);
    if (rc < 0) {
        rs_cli_fail(cli, &err);
        free(res);
        rs_journal_close(journal);
        return RS_EXIT_ERROR;
    }
    print_result(cli, res);
    fflush(stdout);
    if (run_deferred && res->flatten_pending) {
        rc = rs_flow_complete(cl, journal, &res->job, on_progress, cli, &err);
        if (rc < 0) {
            rs_cli_fail(cli, &err);
            free(res);
            rs_journal_close(journal);
            return RS_EXIT_ERROR;
        }
        if (cli->format == RS_CLI_PLAIN)
            printf("flattened     %s (deferred flatten done)\n", res->job.id);
    }
    free(res);
    rs_journal_close(journal);
    return RS_EXIT_OK;
}
