/*
 * cmd_jobs.c - the CLI's commands that talk to rbdsnapd's API:
 *
 *   rbdsnap jobs [--state S]          GET /v1/jobs
 *   rbdsnap job ID [--wait]           GET /v1/jobs/ID
 *   rbdsnap cancel ID [--wait]        DELETE /v1/jobs/ID
 *   rbdsnap snapshot --via-daemon ... POST /v1/snapshots (see
 *                                     rs_cli_snapshot_via_daemon)
 *
 * The daemon is found with --daemon ENDPOINT, else $RBDSNAP_URL, else the
 * configuration's daemon.unix_socket, else http://daemon.listen:daemon.port.
 * A Keystone token for TCP comes from --token or $OS_AUTH_TOKEN/$OS_TOKEN
 * (never printed).
 */
#define RS_LOG_MODULE "cli.jobs"
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/util.h"
#include "conf/conf.h"
#include "service/service.h"

enum { OPT_DAEMON = 1200, OPT_TOKEN, OPT_STATE, OPT_WAIT, OPT_VIA, OPT_INSTANCE, OPT_DOMAIN,
       OPT_DISK, OPT_NAME, OPT_FLATTEN, OPT_QUIESCE, OPT_PROP, OPT_ALL_DISKS, OPT_MODE,
       OPT_UPLOAD };

typedef struct dctx {
    const char *daemon;
    const char *token;
    bool wait;
    char ep[512];
} dctx;

static const char daemon_help[] =
    "  --daemon ENDPOINT   rbdsnapd: http://HOST:PORT or a UNIX socket path (default\n"
    "                      $RBDSNAP_URL, daemon.unix_socket, http://daemon.listen:port)\n"
    "  --token TOKEN       Keystone token (default $OS_AUTH_TOKEN, $OS_TOKEN)\n";

static int resolve_endpoint(rs_cli *cli, dctx *d)
{
    const char *e = d->daemon ? d->daemon : getenv("RBDSNAP_URL");
    if (e && *e) {
        snprintf(d->ep, sizeof d->ep, "%s", e);
    } else {
        rs_error err = RS_ERROR_INIT;
        if (rs_cli_load_conf(cli, &err) < 0) {
            rs_cli_error(cli, "%s", rs_error_msg(&err));
            return RS_EXIT_USAGE;
        }
        if (cli->conf->daemon.unix_socket[0])
            snprintf(d->ep, sizeof d->ep, "%s", cli->conf->daemon.unix_socket);
        else
            snprintf(d->ep, sizeof d->ep, "http://%s:%d", cli->conf->daemon.listen,
                     cli->conf->daemon.port);
    }
    if (!d->token) {
        d->token = getenv("OS_AUTH_TOKEN");
        if (!d->token || !*d->token)
            d->token = getenv("OS_TOKEN");
        if (d->token && !*d->token)
            d->token = NULL;
    }
    return 0;
}

/* One call; prints the daemon's error for a non-2xx answer.  Returns the
 * parsed JSON (new reference) or NULL. */
static json_t *call(rs_cli *cli, dctx *d, const char *method, const char *path,
                    const char *body, int *status)
{
    rs_error err = RS_ERROR_INIT;
    char *resp = NULL;
    int st = 0;
    if (rs_daemon_call(d->ep, d->token, method, path, body, 30, &st, &resp, &err) < 0) {
        rs_cli_error(cli, "%s", rs_error_msg(&err));
        return NULL;
    }
    json_t *o = json_loads(resp, 0, NULL);
    free(resp);
    if (status)
        *status = st;
    if (st < 200 || st >= 300) {
        const char *msg = json_string_value(json_object_get(o, "message"));
        rs_cli_error(cli, "%s %s: HTTP %d: %s", method, path, st, msg ? msg : "(no message)");
        json_decref(o);
        return NULL;
    }
    if (!o)
        rs_cli_error(cli, "%s %s: unparsable answer", method, path);
    return o;
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_job(const rs_cli *cli, json_t *j)
{
    printf("job:       %s\nstate:     %s\nstep:      %s\nprogress:  %d%%\nimage:     %s\n",
           js(j, "id"), js(j, "state"), js(j, "step"),
           (int)json_integer_value(json_object_get(j, "progress")), js(j, "image_id"));
    if (json_object_get(j, "instance_uuid"))
        printf("instance:  %s\n", js(j, "instance_uuid"));
    json_t *fz = json_object_get(j, "freeze");
    printf("freeze:    %lld ms%s\n", (long long)json_integer_value(json_object_get(fz, "window_ms")),
           json_is_true(json_object_get(fz, "quiesced")) ? " (quiesced)" : "");
    json_t *fl = json_object_get(j, "flatten");
    if (fl)
        printf("flatten:   %s %d%%\n", js(fl, "state"),
               (int)json_integer_value(json_object_get(fl, "progress")));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(j, "steps"), i, s) {
        printf("  %-20s %6lld ms%s\n", js(s, "name"),
               (long long)json_integer_value(json_object_get(s, "duration_ms")),
               json_is_true(json_object_get(s, "finished")) ? "" : " (running)");
    }
    json_t *e = json_object_get(j, "error");
    if (json_is_object(e))
        printf("error:     %s: %s\n", js(e, "code"), js(e, "message"));
}

static int parse(rs_cli *cli, int argc, char **argv, dctx *d, const char **state,
                 const char *help)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "daemon", required_argument, NULL, OPT_DAEMON },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "state", required_argument, NULL, OPT_STATE },
        { "wait", no_argument, NULL, OPT_WAIT },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DAEMON: d->daemon = optarg; break;
        case OPT_TOKEN: d->token = optarg; break;
        case OPT_STATE:
            if (!state)
                return rs_cli_usage_error(cli, "--state is only for `jobs`");
            *state = optarg;
            break;
        case OPT_WAIT: d->wait = true; break;
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    if (cli->help) {
        fputs(help, stdout);
        fputs(daemon_help, stdout);
        fputs(RS_CLI_COMMON_HELP, stdout);
        return -1;
    }
    return 0;
}

/* Poll a job until it is final; prints it.  Exit 0 for done. */
static int wait_job(rs_cli *cli, dctx *d, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (;;) {
        json_t *j = call(cli, d, "GET", path, NULL, NULL);
        if (!j)
            return RS_EXIT_ERROR;
        const char *st = js(j, "state");
        json_t *fl = json_object_get(j, "flatten");
        bool final = !strcmp(st, "done") || !strcmp(st, "rolled_back") || !strcmp(st, "failed");
        if (final && !(fl && !strcmp(js(fl, "state"), "running"))) {
            int rc = strcmp(st, "done") == 0 ? RS_EXIT_OK : RS_EXIT_ERROR;
            if (cli->format == RS_CLI_JSON)
                rs_cli_print_json(j);
            else {
                print_job(cli, j);
                json_decref(j);
            }
            return rc;
        }
        json_decref(j);
        rs_sleep_ms(500);
    }
}

int rs_cli_cmd_jobs(rs_cli *cli, int argc, char **argv)
{
    dctx d = { 0 };
    const char *state = NULL;
    int rc = parse(cli, argc, argv, &d, &state,
                   "Usage: rbdsnap jobs [--state queued|running|rolling_back|done|"
                   "rolled_back|failed]\nList the jobs of rbdsnapd.\n");
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    if (optind != argc)
        return rs_cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind]);
    if ((rc = resolve_endpoint(cli, &d)))
        return rc;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs%s%s", state ? "?state=" : "", state ? state : "");
    json_t *o = call(cli, &d, "GET", path, NULL, NULL);
    if (!o)
        return RS_EXIT_ERROR;
    if (cli->format == RS_CLI_JSON) {
        rs_cli_print_json(o);
        return RS_EXIT_OK;
    }
    printf("%-36s  %-12s  %-18s  %4s  %-36s  %s\n", "JOB", "STATE", "STEP", "PCT", "IMAGE",
           "INSTANCE");
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(o, "jobs"), i, j) {
        printf("%-36s  %-12s  %-18s  %3d%%  %-36s  %s\n", js(j, "id"), js(j, "state"),
               js(j, "step"), (int)json_integer_value(json_object_get(j, "progress")),
               js(j, "image_id"), js(j, "instance_uuid"));
    }
    json_decref(o);
    return RS_EXIT_OK;
}

int rs_cli_cmd_job(rs_cli *cli, int argc, char **argv)
{
    dctx d = { 0 };
    int rc = parse(cli, argc, argv, &d, NULL,
                   "Usage: rbdsnap job ID [--wait]\nShow one job of rbdsnapd (state, step, "
                   "progress, step timings, freeze window, error).\n"
                   "  --wait              poll until the job is finished (exit 1 unless done)\n");
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    if (optind != argc - 1)
        return rs_cli_usage_error(cli, "expected one job id");
    const char *id = argv[optind];
    if (!rs_is_uuid(id))
        return rs_cli_usage_error(cli, "\"%s\" is not a job id (UUID)", id);
    if ((rc = resolve_endpoint(cli, &d)))
        return rc;
    if (d.wait)
        return wait_job(cli, &d, id);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *o = call(cli, &d, "GET", path, NULL, NULL);
    if (!o)
        return RS_EXIT_ERROR;
    if (cli->format == RS_CLI_JSON) {
        rs_cli_print_json(o);
    } else {
        print_job(cli, o);
        json_decref(o);
    }
    return RS_EXIT_OK;
}

int rs_cli_cmd_cancel(rs_cli *cli, int argc, char **argv)
{
    dctx d = { 0 };
    int rc = parse(cli, argc, argv, &d, NULL,
                   "Usage: rbdsnap cancel ID [--wait]\nCancel a job of rbdsnapd: a queued job "
                   "is dropped, a running one rolled back.\n"
                   "  --wait              wait until it is rolled back\n");
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    if (optind != argc - 1)
        return rs_cli_usage_error(cli, "expected one job id");
    const char *id = argv[optind];
    if (!rs_is_uuid(id))
        return rs_cli_usage_error(cli, "\"%s\" is not a job id (UUID)", id);
    if ((rc = resolve_endpoint(cli, &d)))
        return rc;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *o = call(cli, &d, "DELETE", path, NULL, NULL);
    if (!o)
        return RS_EXIT_ERROR;
    json_decref(o);
    if (!d.wait) {
        printf("job %s: cancel requested\n", id);
        return RS_EXIT_OK;
    }
    rc = wait_job(cli, &d, id);
    return rc == RS_EXIT_ERROR ? RS_EXIT_OK : RS_EXIT_ERROR; /* rolled back is success */
}

/* `rbdsnap snapshot --via-daemon ...`: called by cmd_snapshot.c. */
int rs_cli_snapshot_via_daemon(rs_cli *cli, int argc, char **argv);
int rs_cli_snapshot_via_daemon(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "via-daemon", no_argument, NULL, OPT_VIA },
        { "daemon", required_argument, NULL, OPT_DAEMON },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "wait", no_argument, NULL, OPT_WAIT },
        { "instance-uuid", required_argument, NULL, OPT_INSTANCE },
        { "domain", required_argument, NULL, OPT_DOMAIN },
        { "disk", required_argument, NULL, OPT_DISK },
        { "all-disks", no_argument, NULL, OPT_ALL_DISKS },
        { "name", required_argument, NULL, OPT_NAME },
        { "flatten", required_argument, NULL, OPT_FLATTEN },
        { "quiesce", required_argument, NULL, OPT_QUIESCE },
        { "property", required_argument, NULL, OPT_PROP },
        { "mode", required_argument, NULL, OPT_MODE },
        { "upload", required_argument, NULL, OPT_UPLOAD },
        { NULL, 0, NULL, 0 },
    };
    static const char help[] =
        "Usage: rbdsnap snapshot --via-daemon (--instance-uuid UUID | --domain NAME |\n"
        "           --disk POOL/IMAGE...) --name NAME [options]\n"
        "Ask rbdsnapd to snapshot an instance into Glance; prints the job and image id.\n"
        "  --all-disks           also ephemeral disks\n"
        "  --flatten no|yes|deferred, --quiesce required|optional|off\n"
        "  --property KEY=VALUE  extra Glance property (repeatable)\n"
        "  --mode auto|live|cold, --upload rbd|glance   file-backed root disks\n"
        "  --wait                wait for the job (exit 1 unless done)\n";
    dctx d = { 0 };
    json_t *req = json_object(), *disks = json_array(), *props = json_object();
    int c, rc = 0;
    optind = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_VIA: break;
        case OPT_DAEMON: d.daemon = optarg; break;
        case OPT_TOKEN: d.token = optarg; break;
        case OPT_WAIT: d.wait = true; break;
        case OPT_INSTANCE: json_object_set_new(req, "instance_uuid", json_string(optarg)); break;
        case OPT_DOMAIN: json_object_set_new(req, "domain", json_string(optarg)); break;
        case OPT_DISK: json_array_append_new(disks, json_string(optarg)); break;
        case OPT_ALL_DISKS: json_object_set_new(req, "all_disks", json_true()); break;
        case OPT_NAME: json_object_set_new(req, "name", json_string(optarg)); break;
        case OPT_FLATTEN: json_object_set_new(req, "flatten", json_string(optarg)); break;
        case OPT_QUIESCE: json_object_set_new(req, "quiesce", json_string(optarg)); break;
        case OPT_MODE: json_object_set_new(req, "mode", json_string(optarg)); break;
        case OPT_UPLOAD: json_object_set_new(req, "upload", json_string(optarg)); break;
        case OPT_PROP: {
            const char *eq = strchr(optarg, '=');
            if (!eq) {
                rc = rs_cli_usage_error(cli, "--property expects KEY=VALUE");
                break;
            }
            char *k = strndup(optarg, (size_t)(eq - optarg));
            json_object_set_new(props, k ? k : "", json_string(eq + 1));
            free(k);
            break;
        }
        case '?':
        case ':':
            rc = rs_cli_usage_error(cli, "unknown or incomplete option \"%s\"", argv[optind - 1]);
            break;
        default:
            if (rs_cli_common_option(cli, c, optarg) < 0)
                rc = RS_EXIT_USAGE;
        }
    }
    if (rc == 0 && cli->help) {
        fputs(help, stdout);
        fputs(daemon_help, stdout);
        fputs(RS_CLI_COMMON_HELP, stdout);
    }
    if (rc || cli->help) {
        json_decref(req);
        json_decref(disks);
        json_decref(props);
        return rc;
    }
    if (json_array_size(disks))
        json_object_set(req, "disks", disks);
    if (json_object_size(props))
        json_object_set(req, "properties", props);
    json_decref(disks);
    json_decref(props);
    if (optind != argc) {
        json_decref(req);
        return rs_cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind]);
    }
    if ((rc = resolve_endpoint(cli, &d))) {
        json_decref(req);
        return rc;
    }
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *o = body ? call(cli, &d, "POST", "/v1/snapshots", body, NULL) : NULL;
    free(body);
    if (!o)
        return RS_EXIT_ERROR;
    char id[64];
    snprintf(id, sizeof id, "%s", js(o, "job_id"));
    if (!d.wait) {
        if (cli->format == RS_CLI_JSON)
            rs_cli_print_json(o);
        else {
            printf("job:   %s\nimage: %s\n", js(o, "job_id"), js(o, "image_id"));
            json_decref(o);
        }
        return RS_EXIT_OK;
    }
    json_decref(o);
    return wait_job(cli, &d, id);
}
