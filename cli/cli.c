/*
 * cli.c - shared plumbing of the rbdsnap subcommands, see cli.h.
 */
#define RS_LOG_MODULE "cli"
#include "cli/cli.h"

#include "common/failpoint.h"
#include "common/log.h"
#include "conf/conf.h"
#include "rbd/cluster.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void rs_cli_init(rs_cli *cli, const char *prog)
{
    memset(cli, 0, sizeof(*cli));
    cli->prog = prog ? prog : "rbdsnap";
    rs_log_set_level(RS_LOG_ERROR);
}

void rs_cli_cleanup(rs_cli *cli)
{
    rs_cluster_unref(cli->cluster);
    cli->cluster = NULL;
    rs_conf_free(cli->conf);
    cli->conf = NULL;
}

int rs_cli_common_option(rs_cli *cli, int c, const char *arg)
{
    switch (c) {
    case 'c':
        cli->conf_path = arg;
        return 0;
    case 'v':
        cli->verbose++;
        rs_log_set_level(cli->verbose > 1 ? RS_LOG_DEBUG : RS_LOG_INFO);
        return 0;
    case 'h':
        cli->help = true;
        return 0;
    case RS_CLI_OPT_FORMAT:
        if (strcmp(arg, "plain") == 0)
            cli->format = RS_CLI_PLAIN;
        else if (strcmp(arg, "json") == 0)
            cli->format = RS_CLI_JSON;
        else {
            rs_cli_error(cli, "--format: expected plain or json, got \"%s\"", arg);
            return -EINVAL;
        }
        return 0;
    case RS_CLI_OPT_CONF:
        cli->ceph_conf = arg;
        return 0;
    case RS_CLI_OPT_ID:
        if (strncmp(arg, "client.", 7) == 0)
            arg += 7;
        cli->ceph_id = arg;
        return 0;
    case RS_CLI_OPT_KEYRING:
        cli->keyring = arg;
        return 0;
    default:
        return -ENOENT;
    }
}

int rs_cli_other_option(rs_cli *cli, int c, const char *arg, char **argv)
{
    if (c == '?' || c == ':') {
        rs_cli_usage_error(cli, "unknown or incomplete option \"%s\"", argv[optind - 1]);
        return -EINVAL;
    }
    return rs_cli_common_option(cli, c, arg);
}

int rs_cli_options_end(rs_cli *cli, const char *help, int nargs, int argc, char **argv)
{
    if (cli->help) {
        fputs(help, stdout);
        return RS_EXIT_OK;
    }
    if (optind + nargs < argc)
        return rs_cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind + nargs]);
    return -1;
}

int rs_cli_parse_global(rs_cli *cli, int argc, char **argv, rs_error *err)
{
    static const struct option longopts[] = { RS_CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+" RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (c == '?' || c == ':')
            return rs_error_set(err, -EINVAL, "unknown or incomplete option \"%s\"",
                                argv[optind - 1]);
        if (rs_cli_common_option(cli, c, optarg) < 0)
            return rs_error_set(err, -EINVAL, "bad value for option \"%s\"", argv[optind - 1]);
    }
    return optind;
}

int rs_cli_load_conf(rs_cli *cli, rs_error *err)
{
    rs_log_level lvl;
    int rc;

    if (cli->conf)
        return 0;
    cli->conf = rs_conf_new();
    if (!cli->conf)
        return rs_error_set(err, -ENOMEM, "out of memory");
    rc = rs_conf_load_default(cli->conf, cli->conf_path, err);
    if (rc < 0)
        return rc;
    /* The configuration's log level is the daemon's; the CLI stays quiet
     * unless -v, but honours a more verbose debug setting. */
    if (!cli->verbose && cli->conf->log_level &&
        rs_log_level_parse(cli->conf->log_level, &lvl) == 0 && lvl == RS_LOG_DEBUG)
        rs_log_set_level(lvl);
    if (cli->conf->failpoints && *cli->conf->failpoints && !getenv("RBDSNAP_FAILPOINTS")) {
        rc = rs_failpoint_configure(cli->conf->failpoints);
        if (rc < 0)
            return rs_error_set(err, rc, "%s: failpoints: malformed \"%s\"",
                                cli->conf->path ? cli->conf->path : "configuration",
                                cli->conf->failpoints);
    }
    return 0;
}

int rs_cli_load_conf_or_usage(rs_cli *cli)
{
    rs_error err = RS_ERROR_INIT;

    if (rs_cli_load_conf(cli, &err) < 0) {
        rs_cli_error(cli, "%s", rs_error_msg(&err));
        return RS_EXIT_USAGE;
    }
    return 0;
}

static const char *nonempty(const char *s) { return (s && *s) ? s : NULL; }

void rs_cli_cluster_opts(const rs_cli *cli, struct rs_cluster_opts *o)
{
    /* A configuration file chosen explicitly (-c, $RBDSNAP_CONF) speaks for
     * the cluster; otherwise behave like the rbd CLI. */
    bool from_file = cli->conf && cli->conf->path;
    const rs_conf *cf = cli->conf;

    memset(o, 0, sizeof(*o));
    o->conf_file = nonempty(cli->ceph_conf);
    if (!o->conf_file && from_file)
        o->conf_file = nonempty(cf->ceph.conf);
    if (!o->conf_file)
        o->conf_file = nonempty(getenv("CEPH_CONF"));
    if (!o->conf_file && cf)
        o->conf_file = nonempty(cf->ceph.conf);

    o->id = nonempty(cli->ceph_id);
    if (!o->id && from_file)
        o->id = nonempty(cf->ceph.id);
    if (!o->id)
        o->id = nonempty(getenv("CEPH_ID"));
    if (!o->id && cf)
        o->id = nonempty(cf->ceph.id);

    o->keyring = nonempty(cli->keyring);
    if (!o->keyring && cf)
        o->keyring = nonempty(cf->ceph.keyring);
    if (!o->keyring && !(cf && nonempty(cf->ceph.key_file)))
        o->keyring = nonempty(getenv("CEPH_KEYRING"));
    if (cf && !cli->keyring)
        o->key_file = nonempty(cf->ceph.key_file);
    if (cf) {
        o->mount_timeout = cf->ceph.mount_timeout;
        o->mon_op_timeout = cf->ceph.mon_op_timeout;
        o->osd_op_timeout = cf->ceph.osd_op_timeout;
    }
}

int rs_cli_cluster(rs_cli *cli, rs_cluster **out, rs_error *err)
{
    rs_cluster_opts o;
    int rc;

    if (!cli->cluster) {
        rc = rs_cli_load_conf(cli, err);
        if (rc < 0)
            return rc;
        rs_cli_cluster_opts(cli, &o);
        rc = rs_cluster_connect(&o, &cli->cluster, err);
        if (rc < 0)
            return rc;
    }
    *out = cli->cluster;
    return 0;
}

void rs_cli_error(const rs_cli *cli, const char *fmt, ...)
{
    char msg[RS_ERROR_MSG_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One line, always. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s%s%s: error: %s\n", cli->prog, cli->command ? " " : "",
            cli->command ? cli->command : "", msg);
}

int rs_cli_fail(const rs_cli *cli, const rs_error *err)
{
    rs_cli_error(cli, "%s", rs_error_msg(err));
    return RS_EXIT_ERROR;
}

int rs_cli_usage_error(const rs_cli *cli, const char *fmt, ...)
{
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs_cli_error(cli, "%s (see %s %s --help)", msg, cli->prog, cli->command ? cli->command : "");
    return RS_EXIT_USAGE;
}

void rs_cli_print_json(void *json)
{
    json_t *j = json;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(j);
}
