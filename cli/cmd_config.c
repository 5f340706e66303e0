/*
 * cmd_config.c - `rbdsnap config show|check`
 *
 *   show    every key of the effective configuration (defaults + file),
 *           secrets shown as "<set>"; JSON: {"path": ..., "keys": {...}}
 *   check   load and validate the file (exit 2 with FILE:LINE: KEY: problem
 *           on error); with --connect also connect to Ceph
 */
#define RS_LOG_MODULE "cli.config"
#include "cli/cli.h"

#include "conf/conf.h"
#include "rbd/cluster.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap config show|check [--connect] [options]\n"
    "  show        print the effective configuration (secrets as <set>)\n"
    "  check       validate the configuration file; exit 2 if it is invalid\n"
    "  --connect   with check: also connect to the Ceph cluster it names\n"
    RS_CLI_COMMON_HELP;

enum { OPT_CONNECT = 1100 };

static void emit_plain(const char *key, const char *value, void *ctx)
{
    (void)ctx;
    printf("%s = %s\n", key, value);
}

static void emit_json(const char *key, const char *value, void *ctx)
{
    json_object_set_new((json_t *)ctx, key, json_string(value));
}

int rs_cli_cmd_config(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "connect", no_argument, NULL, OPT_CONNECT },
        { NULL, 0, NULL, 0 },
    };
    rs_error err = RS_ERROR_INIT;
    bool connect = false;
    const char *what;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CONNECT: connect = true; break;
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    if (cli->help) {
        fputs(help, stdout);
        return RS_EXIT_OK;
    }
    if (optind != argc - 1)
        return rs_cli_usage_error(cli, "expected show or check");
    what = argv[optind];
    if (strcmp(what, "show") != 0 && strcmp(what, "check") != 0)
        return rs_cli_usage_error(cli, "expected show or check, got \"%s\"", what);
    if (rs_cli_load_conf_or_usage(cli) != 0)
        return RS_EXIT_USAGE;
    const char *path = cli->conf->path;
    if (strcmp(what, "show") == 0) {
        if (cli->format == RS_CLI_JSON) {
            json_t *keys = json_object();
            rs_conf_dump(cli->conf, emit_json, keys);
            json_t *o = json_object();
            json_object_set_new(o, "path", path ? json_string(path) : json_null());
            json_object_set_new(o, "keys", keys);
            rs_cli_print_json(o);
        } else {
            printf("# %s\n", path ? path : "(defaults only: no configuration file)");
            rs_conf_dump(cli->conf, emit_plain, NULL);
        }
        return RS_EXIT_OK;
    }
    if (connect) {
        rs_cluster *cl = NULL;
        rc = rs_cli_cluster(cli, &cl, &err);
        if (rc < 0)
            return rs_cli_fail(cli, &err);
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:o,s:b,s:b}", "path", path ? json_string(path) : json_null(),
                              "valid", 1, "connected", connect);
        if (connect)
            json_object_set_new(o, "fsid", json_string(rs_cluster_fsid(cli->cluster)));
        rs_cli_print_json(o);
    } else {
        printf("%s: ok%s\n", path ? path : "(defaults)", connect ? ", Ceph reachable" : "");
    }
    return RS_EXIT_OK;
}
