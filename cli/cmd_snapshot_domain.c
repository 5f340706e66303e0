/*
 * cmd_snapshot_domain.c - `rbdsnap snapshot --domain NAME`: snapshot a
 * libvirt domain in this process, the way rbdsnapd does
 * (rs_snapshot_run: Glance record, RBD flow for RBD disks or live/cold copy
 * for a file root disk, location).  Reached from cmd_snapshot.c when
 * --domain is given without --via-daemon.
 */
#define RS_LOG_MODULE "cli.snapshot"
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "conf/conf.h"
#include "glance/glance_conf.h"
#include "service/snapshot.h"

int rs_cli_snapshot_domain(rs_cli *cli, int argc, char **argv);

static const char help[] =
    "Usage: rbdsnap snapshot --domain NAME|UUID --name NAME [options]\n"
    "Snapshot a libvirt domain into Glance in this process: RBD disks through the\n"
    "RBD flow, a file (qcow2/raw) root disk by a live or cold copy straight into\n"
    "a new RBD image (or streamed to Glance).\n"
    "  --domain NAME|UUID      the libvirt domain (libvirt.uri)\n"
    "  --name NAME             Glance image name\n"
    "  --image-id UUID         Glance image id (default: random)\n"
    "  --job-id UUID           job id (default: random)\n"
    "  --mode auto|live|cold   file-backed disks (default: snapshot.file_mode)\n"
    "  --upload rbd|glance     file-backed disks (default: snapshot.file_upload)\n"
    "  --quiesce required|optional|off   (default: snapshot.quiesce)\n"
    "  --flatten no|yes|deferred          RBD disks (default: snapshot.flatten)\n"
    "  --all-disks             RBD disks: every disk of the domain\n"
    "  --property KEY=VALUE    extra Glance property (repeatable)\n"
    RS_CLI_COMMON_HELP;

enum { OPT_DOMAIN = 1300, OPT_NAME, OPT_IMAGE_ID, OPT_JOB_ID, OPT_MODE, OPT_UPLOAD, OPT_QUIESCE,
       OPT_FLATTEN, OPT_ALL_DISKS, OPT_PROP };

static atomic_bool stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, true);
}

static void on_step(void *arg, const char *step, bool begin, int rc)
{
    const rs_cli *cli = arg;
    if (cli->verbose)
        fprintf(stderr, "%s %s%s\n", begin ? "begin" : "end  ", step,
                begin ? "" : (rc == 0 ? " ok" : " failed"));
}

int rs_cli_snapshot_domain(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "domain", required_argument, NULL, OPT_DOMAIN },
        { "name", required_argument, NULL, OPT_NAME },
        { "image-id", required_argument, NULL, OPT_IMAGE_ID },
        { "job-id", required_argument, NULL, OPT_JOB_ID },
        { "mode", required_argument, NULL, OPT_MODE },
        { "upload", required_argument, NULL, OPT_UPLOAD },
        { "quiesce", required_argument, NULL, OPT_QUIESCE },
        { "flatten", required_argument, NULL, OPT_FLATTEN },
        { "all-disks", no_argument, NULL, OPT_ALL_DISKS },
        { "property", required_argument, NULL, OPT_PROP },
        { NULL, 0, NULL, 0 },
    };
    rs_snapshot_req req = { 0 };
    rs_kv props[64];
    size_t nprops = 0;
    rs_error err = RS_ERROR_INIT;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DOMAIN: req.domain = optarg; break;
        case OPT_NAME: req.name = optarg; break;
        case OPT_IMAGE_ID: req.image_id = optarg; break;
        case OPT_JOB_ID: req.job_id = optarg; break;
        case OPT_MODE: req.mode = optarg; break;
        case OPT_UPLOAD: req.upload = optarg; break;
        case OPT_QUIESCE: req.quiesce = optarg; break;
        case OPT_FLATTEN: req.flatten = optarg; break;
        case OPT_ALL_DISKS: req.all_disks = true; break;
        case OPT_PROP: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return rs_cli_usage_error(cli, "--property expects KEY=VALUE");
            if (nprops == 64)
                return rs_cli_usage_error(cli, "at most 64 --property");
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
    if (!req.domain)
        return rs_cli_usage_error(cli, "--domain is required");
    if (!req.name)
        return rs_cli_usage_error(cli, "--name is required");
    if (req.mode && strcmp(req.mode, "auto") && strcmp(req.mode, "live") &&
        strcmp(req.mode, "cold"))
        return rs_cli_usage_error(cli, "--mode: expected auto, live or cold");
    if (req.upload && strcmp(req.upload, "rbd") && strcmp(req.upload, "glance"))
        return rs_cli_usage_error(cli, "--upload: expected rbd or glance");
    if ((req.image_id && !rs_is_uuid(req.image_id)) || (req.job_id && !rs_is_uuid(req.job_id)))
        return rs_cli_usage_error(cli, "--image-id and --job-id must be UUIDs");
    req.props = props;
    req.nprops = nprops;

    if (rs_cli_load_conf(cli, &err) < 0) {
        rs_cli_error(cli, "%s", rs_error_msg(&err));
        return RS_EXIT_USAGE;
    }
    const rs_conf *conf = cli->conf;
    rs_snapshot_env env = { .conf = conf };
    int rc = rs_cli_cluster(cli, &env.cluster, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_glance_open_from_conf(conf, 2, &env.glance, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_virt_connect(conf->libvirt.uri && *conf->libvirt.uri ? conf->libvirt.uri : NULL,
                         &env.virt, &err);
    if (rc < 0) {
        rs_cli_fail(cli, &err);
        rs_glance_free(env.glance);
        return RS_EXIT_ERROR;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rs_snapshot_observer obs = { .arg = cli, .step = on_step, .cancel = &stop_flag };
    rs_snapshot_result res;
    rc = rs_snapshot_run(&env, &req, &obs, &res, &err);
    if (rc < 0) {
        rs_cli_fail(cli, &err);
        if (res.leftovers)
            rs_cli_error(cli, "job %s left something behind (see the log; `rbdsnap gc` or "
                              "rbdsnapd's recovery repairs it)", res.job_id);
    } else if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:I, s:i}", "job_id", res.job_id,
                              "image_id", res.image_id, "location", res.location,
                              "mode", res.mode[0] ? res.mode : "rbd", "freeze_ms",
                              (json_int_t)res.freeze_ms, "quiesced", res.quiesced,
                              "downtime_ms", (json_int_t)res.downtime_ms, "disks",
                              (int)res.ndisks);
        if (o && res.warning[0])
            json_object_set_new(o, "warning", json_string(res.warning));
        rs_cli_print_json(o);
    } else {
        printf("job         %s\n", res.job_id);
        printf("image       %s\n", res.image_id);
        if (res.location[0])
            printf("location    %s\n", res.location);
        printf("mode        %s\n", res.mode[0] ? res.mode : "rbd");
        printf("freeze_ms   %" PRIu64 "%s\n", res.freeze_ms, res.quiesced ? "" : " (not frozen)");
        if (res.mode[0])
            printf("downtime_ms %" PRIu64 "\n", res.downtime_ms);
        if (res.warning[0])
            printf("warning     %s\n", res.warning);
    }
    rs_virt_conn_unref(env.virt);
    if (env.glance) {
        rs_glance_shutdown(env.glance);
        rs_glance_free(env.glance);
    }
    return rc < 0 ? RS_EXIT_ERROR : RS_EXIT_OK;
}
