/*
 * cmd_flatten.c - `rbdsnap flatten POOL/IMAGE [--cleanup-parent] [--async]`
 *
 * Flattens a clone with a progress bar (terminal) or progress lines
 * (otherwise) on stderr; Ctrl-C cancels cleanly (-ECANCELED, exit 1, the
 * clone stays valid).  --cleanup-parent then removes the parent snapshot
 * when rbdsnap made it (key rbdsnap.snap.<name> on the parent image, or the
 * snapshot prefix) and nothing else depends on it.
 *
 * --async: rbdsnapd's API has no flatten job (a deferred flatten belongs to
 * a snapshot job, `flatten = "deferred"`), so --async always runs the
 * flatten in a detached child process (new session, stdin /dev/null,
 * output to a log file) and prints its pid and log file.  The child is this
 * same program re-executed without --async, so it behaves exactly like a
 * foreground run; its exit status is in the last line of the log.
 */
#define RS_LOG_MODULE "cli.flatten"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "cli/progress.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "rbd/flow.h"
#include "rbd/ops.h"
#include "rbd/ops_extra.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap flatten POOL/IMAGE [--cleanup-parent] [--async] [options]\n"
    "Copy the parent's data into the clone POOL/IMAGE so it no longer depends on\n"
    "its parent snapshot.  Progress goes to stderr (a bar on a terminal, lines\n"
    "otherwise); Ctrl-C cancels cleanly (the clone stays usable, exit 1).\n"
    "  --cleanup-parent   afterwards remove the parent snapshot if rbdsnap made it\n"
    "                     and nothing else depends on it\n"
    "  --async            run in a detached background process; print its pid and\n"
    "                     log file and return at once\n"
    "  --log FILE         log file of --async (default $TMPDIR/rbdsnap-flatten-...)\n"
    "  --no-progress      no progress output\n"
    RS_CLI_COMMON_HELP;

enum { OPT_ASYNC = 1100, OPT_CLEANUP_PARENT, OPT_NO_PROGRESS, OPT_LOG };

typedef struct cleanup_result {
    const char *action;      /* removed | kept | gone | none */
    char reason[512];
    char snapshot[1024];
} cleanup_result;

/* After the flatten: remove ppool/pimage@psnap (id @snap_id) if rbdsnap made
 * it and it has no more children. */
static int cleanup_parent(rs_cli *cli, rs_cluster *cl, const rs_rbd_image_desc *child,
                          cleanup_result *cr, rs_error *err)
{
    rs_rbd_image_desc *pd = NULL;
    const rs_rbd_xsnap *s = NULL;
    const char *prefix = cli->conf->snapshot.snap_prefix;
    char key[600];
    int rc;

    snprintf(cr->snapshot, sizeof(cr->snapshot), "%s/%s@%s", child->parent_pool,
             child->parent_image, child->parent_snap);
    rc = rs_rbd_image_describe(cl, child->parent_pool, NULL, child->parent_image_id, "rbdsnap.",
                               &pd, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < pd->nsnaps; i++)
        if (pd->snaps[i].id == child->parent_snap_id)
            s = &pd->snaps[i];
    if (!s) {
        cr->action = "gone";
        snprintf(cr->reason, sizeof(cr->reason), "%s",
                 child->parent_snap_ns == RS_RBD_SNAP_NS_TRASH
                     ? "it was in the trash namespace; librbd freed it with its last clone"
                     : "it no longer exists");
        rs_rbd_image_desc_free(pd);
        return 0;
    }
    const char *name = s->original_name ? s->original_name : s->name;
    snprintf(cr->snapshot, sizeof(cr->snapshot), "%s/%s@%s", pd->pool, pd->name, name);
    snprintf(key, sizeof(key), "%s%s", RS_MD_SNAP_PREFIX, name);
    bool ours = rs_str_has_prefix(name, prefix && *prefix ? prefix : RS_FLOW_SNAP_PREFIX_DEFAULT) ||
                rs_rbd_image_desc_md(pd, key) != NULL;
    if (!ours) {
        cr->action = "kept";
        snprintf(cr->reason, sizeof(cr->reason), "not made by rbdsnap");
    } else if (s->nchildren > 0) {
        cr->action = "kept";
        snprintf(cr->reason, sizeof(cr->reason), "%zu other clone(s) still depend on it",
                 s->nchildren);
    } else if (s->ns == RS_RBD_SNAP_NS_TRASH) {
        cr->action = "gone";
        snprintf(cr->reason, sizeof(cr->reason), "in the trash namespace; librbd frees it");
    } else if (pd->trash) {
        cr->action = "kept";
        snprintf(cr->reason, sizeof(cr->reason), "its image is in the RBD trash");
    } else {
        rc = rs_rbd_snap_remove(cl, pd->pool, pd->name, s->name, true, err);
        if (rc == 0) {
            rs_error e2 = RS_ERROR_INIT;
            int r2 = rs_rbd_metadata_remove(cl, pd->pool, pd->name, key, &e2);
            if (r2 < 0 && r2 != -ENOENT)
                rs_warn("image=%s/%s key=%s rc=%d msg=\"%s\"", pd->pool, pd->name, key, r2,
                        rs_error_msg(&e2));
            cr->action = "removed";
            rs_info("pool=%s image=%s snap=%s msg=\"parent snapshot removed\"", pd->pool,
                    pd->name, name);
        }
    }
    rs_rbd_image_desc_free(pd);
    return rc;
}

static int run_async(rs_cli *cli, int argc, char **argv, const char *spec, const char *log)
{
    char path[4096], self[4096];
    char **nargv;
    int n = 0, pipefd[2], fd;
    pid_t pid;
    ssize_t len;

    if (!log) {
        const char *tmp = getenv("TMPDIR");
        char safe[512];
        snprintf(safe, sizeof(safe), "%s", spec);
        for (char *p = safe; *p; p++)
            if (*p == '/' || *p == '@')
                *p = '_';
        snprintf(path, sizeof(path), "%s/rbdsnap-flatten-%s.%ld.log", tmp && *tmp ? tmp : "/tmp",
                 safe, (long)rs_wall_time());
        log = path;
    }
    len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        rs_cli_error(cli, "cannot find my own executable: %s", strerror(errno));
        return RS_EXIT_ERROR;
    }
    self[len] = '\0';
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        rs_cli_error(cli, "%s: cannot open log file: %s", log, strerror(errno));
        return RS_EXIT_ERROR;
    }
    nargv = calloc((size_t)argc + 16, sizeof(char *));
    if (!nargv) {
        close(fd);
        return RS_EXIT_ERROR;
    }
    nargv[n++] = self;
    if (cli->conf_path) { nargv[n++] = "-c"; nargv[n++] = (char *)cli->conf_path; }
    if (cli->ceph_conf) { nargv[n++] = "--conf"; nargv[n++] = (char *)cli->ceph_conf; }
    if (cli->ceph_id) { nargv[n++] = "--id"; nargv[n++] = (char *)cli->ceph_id; }
    if (cli->keyring) { nargv[n++] = "--keyring"; nargv[n++] = (char *)cli->keyring; }
    for (int i = 0; i < cli->verbose && i < 2; i++)
        nargv[n++] = "-v";
    nargv[n++] = "flatten";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--async") == 0 || strcmp(argv[i], "--format=json") == 0)
            continue;
        if (strcmp(argv[i], "--log") == 0 || strcmp(argv[i], "--format") == 0) {
            i++;
            continue;
        }
        if (rs_str_has_prefix(argv[i], "--log=") || rs_str_has_prefix(argv[i], "--format="))
            continue;
        nargv[n++] = argv[i];
    }
    nargv[n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        free(nargv);
        close(fd);
        return RS_EXIT_ERROR;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        rs_cli_error(cli, "fork: %s", strerror(errno));
        free(nargv);
        close(fd);
        return RS_EXIT_ERROR;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        int e;
        setsid();
        if (null >= 0)
            dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGHUP, SIG_IGN);
        dprintf(2, "rbdsnap: background flatten of %s started, pid %ld\n", spec, (long)getpid());
        execv(self, nargv);
        e = errno;
        if (write(pipefd[1], &e, sizeof(e)) < 0)
            _exit(127);
        _exit(127);
    }
    close(pipefd[1]);
    close(fd);
    free(nargv);
    int child_errno = 0;
    ssize_t r = read(pipefd[0], &child_errno, sizeof(child_errno));
    close(pipefd[0]);
    if (r == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        rs_cli_error(cli, "cannot start background flatten: %s", strerror(child_errno));
        return RS_EXIT_ERROR;
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s,s:b,s:s,s:I,s:s}", "image", spec, "async", 1, "mode",
                              "process", "pid", (json_int_t)pid, "log", log);
        rs_cli_print_json(o);
    } else {
        printf("flatten of %s running in the background: pid %ld, log %s\n", spec, (long)pid,
               log);
    }
    return RS_EXIT_OK;
}

int rs_cli_cmd_flatten(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "async", no_argument, NULL, OPT_ASYNC },
        { "cleanup-parent", no_argument, NULL, OPT_CLEANUP_PARENT },
        { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
        { "log", required_argument, NULL, OPT_LOG },
        { NULL, 0, NULL, 0 },
    };
    bool async = false, cleanup = false, no_progress = false;
    const char *log = NULL, *spec;
    rs_autofree char *pool = NULL;
    rs_autofree char *image = NULL;
    rs_error err = RS_ERROR_INIT;
    rs_cluster *cl = NULL;
    rs_rbd_image_desc *d = NULL;
    cleanup_result cr = { .action = "none" };
    uint64_t t0;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_ASYNC: async = true; break;
        case OPT_CLEANUP_PARENT: cleanup = true; break;
        case OPT_NO_PROGRESS: no_progress = true; break;
        case OPT_LOG: log = optarg; break;
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
        return rs_cli_usage_error(cli, "expected exactly one POOL/IMAGE");
    spec = argv[optind];
    if (rs_dep_parse_spec(spec, &pool, &image, NULL, &err) < 0)
        return rs_cli_usage_error(cli, "%s", rs_error_msg(&err));
    if (rs_cli_load_conf_or_usage(cli) != 0)
        return RS_EXIT_USAGE;
    /* Fork before librados starts its threads. */
    if (async)
        return run_async(cli, argc, argv, spec, log);

    rc = rs_cli_cluster(cli, &cl, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    rc = rs_rbd_image_describe(cl, pool, image, NULL, NULL, &d, &err);
    if (rc < 0)
        return rs_cli_fail(cli, &err);
    if (!d->parent_pool) {
        if (cli->format == RS_CLI_JSON)
            rs_cli_print_json(json_pack("{s:s,s:b,s:b,s:n,s:I,s:I,s:{s:b,s:s}}", "image", spec,
                                        "flattened", 0, "already_flat", 1, "parent", "size",
                                        (json_int_t)d->size, "duration_ms", (json_int_t)0,
                                        "cleanup_parent", "requested", cleanup, "action",
                                        "none"));
        else
            printf("%s: not a clone, nothing to flatten\n", spec);
        rs_rbd_image_desc_free(d);
        return RS_EXIT_OK;
    }
    char parent[1024];
    snprintf(parent, sizeof(parent), "%s/%s@%s", d->parent_pool, d->parent_image, d->parent_snap);
    rs_info("pool=%s image=%s parent=%s msg=\"flatten\"", pool, image, parent);
    t0 = rs_now_ms();
    rc = rs_progress_flatten(cl, pool, image, d->size,
                             no_progress ? RS_PROGRESS_NONE : RS_PROGRESS_AUTO, &err);
    uint64_t dur = rs_now_ms() - t0;
    if (rc == -ECANCELED) {
        rs_cli_error(cli, "%s: flatten cancelled; the image is still a clone of %s", spec, parent);
        rs_rbd_image_desc_free(d);
        return RS_EXIT_ERROR;
    }
    if (rc < 0) {
        rs_rbd_image_desc_free(d);
        return rs_cli_fail(cli, &err);
    }
    if (cleanup) {
        rc = cleanup_parent(cli, cl, d, &cr, &err);
        if (rc < 0) {
            rs_cli_error(cli, "%s flattened, but the parent snapshot cleanup failed: %s", spec,
                         rs_error_msg(&err));
            rs_rbd_image_desc_free(d);
            return RS_EXIT_ERROR;
        }
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s,s:b,s:b,s:s,s:I,s:I}", "image", spec, "flattened", 1,
                              "already_flat", 0, "parent", parent, "size", (json_int_t)d->size,
                              "duration_ms", (json_int_t)dur);
        json_t *cj = json_pack("{s:b,s:s}", "requested", cleanup, "action", cr.action);
        if (cleanup) {
            json_object_set_new(cj, "snapshot", json_string(cr.snapshot));
            if (cr.reason[0])
                json_object_set_new(cj, "reason", json_string(cr.reason));
        }
        json_object_set_new(o, "cleanup_parent", cj);
        rs_cli_print_json(o);
    } else {
        char sz[32];
        rs_dep_fmt_size(d->size, sz, sizeof(sz));
        printf("flattened %s (was a clone of %s), %s in %.1f s\n", spec, parent, sz,
               (double)dur / 1000.0);
        if (cleanup)
            printf("parent snapshot %s: %s%s%s\n", cr.snapshot, cr.action,
                   cr.reason[0] ? ": " : "", cr.reason);
    }
    rs_rbd_image_desc_free(d);
    return RS_EXIT_OK;
}
