/*
 * main.c - `rbdsnap`, the operator CLI: global options, then one
 * subcommand from the table in commands.def.
 */
#define RS_LOG_MODULE "cli"
#include "cli/cli.h"

#include "common/error.h"

#include <stdio.h>
#include <string.h>

#define RS_CLI_COMMAND(name, summary) int rs_cli_cmd_##name(rs_cli *cli, int argc, char **argv);
#include "cli/commands.def"
#undef RS_CLI_COMMAND

static const struct {
    const char *name;
    const char *summary;
    int (*run)(rs_cli *cli, int argc, char **argv);
} commands[] = {
#define RS_CLI_COMMAND(name, summary) { #name, summary, rs_cli_cmd_##name },
#include "cli/commands.def"
#undef RS_CLI_COMMAND
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: rbdsnap [common options] COMMAND [options]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n%s\nrbdsnap COMMAND --help shows the options of COMMAND.\n", RS_CLI_COMMON_HELP);
}

int main(int argc, char **argv)
{
    rs_cli cli;
    rs_error err = RS_ERROR_INIT;
    int idx, rc;

    rs_cli_init(&cli, "rbdsnap");
    idx = rs_cli_parse_global(&cli, argc, argv, &err);
    if (idx < 0) {
        rs_cli_error(&cli, "%s", rs_error_msg(&err));
        return RS_EXIT_USAGE;
    }
    if (idx >= argc) {
        usage(cli.help ? stdout : stderr);
        return cli.help ? RS_EXIT_OK : RS_EXIT_USAGE;
    }
    if (strcmp(argv[idx], "help") == 0) {
        usage(stdout);
        return RS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[idx], commands[i].name) == 0) {
            cli.command = commands[i].name;
            rc = commands[i].run(&cli, argc - idx, argv + idx);
            rs_cli_cleanup(&cli);
            return rc;
        }
    }
    rs_cli_error(&cli, "unknown command \"%s\" (see rbdsnap --help)", argv[idx]);
    return RS_EXIT_USAGE;
}
