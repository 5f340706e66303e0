/*
 * cli.h - what every `rbdsnap` subcommand shares: common options, the
 * configuration and cluster they select, output helpers and exit codes.
 *
 * Common options (accepted before and after the subcommand name):
 *   -c FILE            rbdsnap configuration file (else $RBDSNAP_CONF, else
 *                      /etc/rbdsnap/rbdsnap.conf if it exists)
 *   --format plain|json
 *   --conf FILE        ceph.conf, like the rbd CLI (else the configuration's
 *                      ceph.conf if a configuration file was given, else
 *                      $CEPH_CONF, else /etc/ceph/ceph.conf)
 *   --id NAME          cephx user without "client."
 *   --keyring FILE
 *   -v, --verbose      more log output on stderr (repeat for debug)
 *
 * A subcommand parses its own options with getopt_long over
 * RS_CLI_COMMON_OPTIONS + its own, passing every option it does not know to
 * rs_cli_common_option().
 */
#ifndef RS_CLI_CLI_H
#define RS_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/error.h"

typedef struct rs_conf rs_conf;
typedef struct rs_cluster rs_cluster;

/* Exit codes of rbdsnap (documented in rbdsnap --help). */
#define RS_EXIT_OK 0
#define RS_EXIT_ERROR 1     /* operational error */
#define RS_EXIT_USAGE 2     /* bad command line or configuration */

typedef enum { RS_CLI_PLAIN = 0, RS_CLI_JSON } rs_cli_format;

typedef struct rs_cli {
    const char *prog;        /* "rbdsnap" */
    const char *command;     /* subcommand name */
    const char *conf_path;   /* -c */
    const char *ceph_conf;   /* --conf */
    const char *ceph_id;     /* --id */
    const char *keyring;     /* --keyring */
    rs_cli_format format;
    int verbose;
    bool help;
    rs_conf *conf;           /* after rs_cli_load_conf */
    rs_cluster *cluster;     /* after rs_cli_cluster */
} rs_cli;

enum {
    RS_CLI_OPT_FORMAT = 1000,
    RS_CLI_OPT_CONF,
    RS_CLI_OPT_ID,
    RS_CLI_OPT_KEYRING,
};

#define RS_CLI_COMMON_SHORTOPTS "c:vh"
#define RS_CLI_COMMON_OPTIONS                                      \
    { "format", required_argument, NULL, RS_CLI_OPT_FORMAT },      \
    { "conf", required_argument, NULL, RS_CLI_OPT_CONF },          \
    { "id", required_argument, NULL, RS_CLI_OPT_ID },              \
    { "keyring", required_argument, NULL, RS_CLI_OPT_KEYRING },    \
    { "verbose", no_argument, NULL, 'v' },                         \
    { "help", no_argument, NULL, 'h' }

#define RS_CLI_COMMON_HELP                                                            \
    "Common options:\n"                                                               \
    "  -c FILE              rbdsnap configuration (default $RBDSNAP_CONF,\n"          \
    "                       /etc/rbdsnap/rbdsnap.conf)\n"                             \
    "  --format plain|json  output format (default plain)\n"                          \
    "  --conf FILE          ceph.conf (default: configuration, $CEPH_CONF)\n"         \
    "  --id NAME            cephx user (default: configuration, $CEPH_ID, admin)\n"   \
    "  --keyring FILE       cephx keyring\n"                                          \
    "  -v, --verbose        log more on stderr (twice: debug)\n"                      \
    "Exit codes: 0 success, 1 operational error, 2 usage error.\n"

void rs_cli_init(rs_cli *cli, const char *prog);
void rs_cli_cleanup(rs_cli *cli);

/* Handle one common option returned by getopt_long.  0 if handled,
 * -EINVAL (message printed) on a bad value, -ENOENT if @c is not common. */
int rs_cli_common_option(rs_cli *cli, int c, const char *arg);

/* The default branch of every command's getopt loop: '?' and ':' (unknown
 * or incomplete option, message printed) or a common option.  0 if
 * handled, negative (message printed) otherwise. */
int rs_cli_other_option(rs_cli *cli, int c, const char *arg, char **argv);
/* After a command's getopt loop, with @nargs positional arguments allowed
 * (0 or 1): prints @help and returns RS_EXIT_OK for --help, RS_EXIT_USAGE
 * (message printed) for a stray argument, -1 to go on. */
int rs_cli_options_end(rs_cli *cli, const char *help, int nargs, int argc, char **argv);

/* Parse only common options from argv[1..] up to the subcommand name
 * (getopt "+" mode).  Returns the index of the subcommand or argc. */
int rs_cli_parse_global(rs_cli *cli, int argc, char **argv, rs_error *err);

/* Load the configuration (once) the usual way; applies log level and
 * failpoints from it. */
int rs_cli_load_conf(rs_cli *cli, rs_error *err);
/* rs_cli_load_conf with its error printed: 0 or RS_EXIT_USAGE. */
int rs_cli_load_conf_or_usage(rs_cli *cli);
/* Connect (once) to the cluster selected by options/configuration. */
int rs_cli_cluster(rs_cli *cli, rs_cluster **out, rs_error *err);
/* The cluster options that would be used (for tests): strings point into
 * cli/conf/environment. */
struct rs_cluster_opts;
void rs_cli_cluster_opts(const rs_cli *cli, struct rs_cluster_opts *o);

/* Output. */
void rs_cli_error(const rs_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the error of a failed operation; returns RS_EXIT_USAGE for -EINVAL
 * from option checking if @usage, else RS_EXIT_ERROR. */
int rs_cli_fail(const rs_cli *cli, const rs_error *err);
int rs_cli_usage_error(const rs_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a jansson value (json_t *) as one JSON document on stdout; steals it. */
void rs_cli_print_json(void *json);

#endif
