/*
 * cmd_snapshot_glance.c - `rbdsnap snapshot --image ...` when Glance is
 * configured: the whole job in this process, the way rbdsnapd runs it
 * (rs_snapshot_run): the Glance record first (its id names the clone), the
 * RBD flow journaled to the CLI's journal, the rbd:// location, `active`.
 * On any failure the Glance record is deleted and RBD rolled back; after a
 * crash `rbdsnap recover` does both.  Reached from cmd_snapshot.c.
 */
#define RS_LOG_MODULE "cli.snapshot"
#include "cli/cli.h"
#include "cli/snapshot_glance.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "glance/glance_conf.h"
#include "rbd/journal.h"
#include "service/snapshot.h"

/*
 * The journal seen by the run: the CLI's file journal, except that the
 * flow's successful end is held back until the Glance image is registered.
 * A crash between the two then leaves an unfinished record, and `rbdsnap
 * recover` rolls the job back (and deletes its Glance record) instead of
 * forgetting a clone whose image never became active.
 */
typedef struct held_journal {
    rs_journal base;
    rs_journal *real;
    rs_job held;
    bool holding;
} held_journal;

static int hj_begin(rs_journal *j, const rs_job *job, rs_error *err)
{
    return rs_journal_begin(((held_journal *)j)->real, job, err);
}

static int hj_step_start(rs_journal *j, const rs_job *job, rs_step step, int disk,
                         const char *details, rs_error *err)
{
    return rs_journal_step_start(((held_journal *)j)->real, job, step, disk, details, err);
}

static int hj_step_done(rs_journal *j, const rs_job *job, rs_step step, int disk,
                        const char *details, rs_error *err)
{
    return rs_journal_step_done(((held_journal *)j)->real, job, step, disk, details, err);
}

static int hj_end(rs_journal *j, const rs_job *job, rs_error *err)
{
    held_journal *h = (held_journal *)j;
    if (job->state == RS_JOB_DONE) {
        h->held = *job;
        h->holding = true;
        return 0;
    }
    h->holding = false;
    return rs_journal_end(h->real, job, err);
}

static int hj_list(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err)
{
    return rs_journal_list_orphans(((held_journal *)j)->real, jobs, n, err);
}

static void hj_release(rs_journal *j, const char *id)
{
    rs_journal_release(((held_journal *)j)->real, id);
}

static void hj_close(rs_journal *j) { (void)j; }

static const rs_journal_ops held_ops = {
    .begin = hj_begin, .step_start = hj_step_start, .step_done = hj_step_done,
    .end = hj_end, .list_orphans = hj_list, .release = hj_release, .close = hj_close,
};

/* The CLI's options win over the configuration file for this run. */
static int override(char **field, const char *value)
{
    char *dup;
    if (!value)
        return 0;
    dup = strdup(value);
    if (!dup)
        return -ENOMEM;
    free(*field);
    *field = dup;
    return 0;
}

static void on_step(void *arg, const char *step, bool begin, int rc)
{
    const rs_cli *cli = arg;
    if (cli->verbose)
        fprintf(stderr, "%s %s%s\n", begin ? "begin" : "end  ", step,
                begin ? "" : (rc == 0 ? " ok" : " failed"));
}

int rs_cli_snapshot_glance(rs_cli *cli, const rs_cli_snapshot_glance_args *a,
                           const atomic_bool *cancel)
{
    rs_conf *conf = cli->conf;
    rs_snapshot_env env = { .conf = conf };
    rs_snapshot_req req = { 0 };
    rs_snapshot_result res;
    rs_error err = RS_ERROR_INIT;
    char *disks[RS_JOB_MAX_DISKS] = { 0 };
    char default_name[512];
    held_journal held = { .base = { .ops = &held_ops } };
    rs_journal *real_journal = NULL;
    int rc;

    if (a->image_id && !rs_is_uuid(a->image_id))
        return rs_cli_usage_error(cli, "--name: with Glance configured it is the Glance image id "
                                       "and must be a UUID (omit it for a random one), got \"%s\"",
                                  a->image_id);
    if (override(&conf->snapshot.dest_pool, a->dest_pool) < 0 ||
        override(&conf->snapshot.clone_format, a->clone_format) < 0 ||
        override(&conf->snapshot.snap_prefix, a->snap_prefix) < 0) {
        rs_cli_error(cli, "out of memory");
        return RS_EXIT_ERROR;
    }
    for (size_t i = 0; i < a->nimages; i++) {
        disks[i] = rs_strdup_printf("%s/%s", a->pool, a->images[i]);
        if (!disks[i]) {
            rc = rs_error_set(&err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    snprintf(default_name, sizeof(default_name), "snapshot of %s/%s", a->pool, a->images[0]);
    req.job_id = a->job_id;
    req.image_id = a->image_id;
    req.instance_uuid = a->instance_uuid;
    req.disks = (const char *const *)disks;
    req.ndisks = a->nimages;
    req.name = a->image_name ? a->image_name : default_name;
    req.flatten = a->flatten;
    req.quiesce = "off";        /* no domain given: use --domain to quiesce */
    req.props = a->props;
    req.nprops = a->nprops;

    rc = rs_cli_cluster(cli, &env.cluster, &err);
    if (rc < 0)
        goto out;
    rc = rs_glance_open_from_conf(conf, 2, &env.glance, &err);
    if (rc < 0)
        goto out;
    if (a->journal_dir) {
        rc = rs_journal_dir_open(a->journal_dir, &real_journal, &err);
        if (rc < 0)
            goto out;
        held.real = real_journal;
        env.journal = &held.base;
    }

    rs_snapshot_observer obs = { .arg = cli, .step = on_step, .cancel = cancel };
    rc = rs_snapshot_run(&env, &req, &obs, &res, &err);
    if (rc == 0 && held.holding) {
        /* Registered: now the flow's record may go. */
        rs_error jerr = RS_ERROR_INIT;
        if (rs_journal_end(real_journal, &held.held, &jerr) < 0)
            rs_warn("job=%s journal end failed: %s", held.held.id, rs_error_msg(&jerr));
        held.holding = false;
    }
    if (rc < 0) {
        if (res.leftovers)
            rs_error_prefix(&err, "job %s left something behind (run `rbdsnap recover`)",
                            res.job_id);
        goto out;
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:I}", "job_id", res.job_id,
                              "image_id", res.image_id, "location", res.location,
                              "dest_pool", conf->snapshot.dest_pool, "disks", (int)res.ndisks,
                              "flatten_pending", res.flatten_pending, "bytes_flattened",
                              (json_int_t)res.bytes_flattened);
        rs_cli_print_json(o);
    } else {
        printf("job           %s\n", res.job_id);
        printf("glance image  %s (active)\n", res.image_id);
        printf("clone         %s/%s@snap (protected)\n", conf->snapshot.dest_pool, res.image_id);
        printf("location      %s\n", res.location);
        printf("disks         %zu\n", res.ndisks);
        if (res.flatten_pending)
            printf("flatten       pending (deferred)\n");
    }

out:
    for (size_t i = 0; i < a->nimages; i++)
        free(disks[i]);
    rs_journal_close(real_journal);
    if (env.glance) {
        rs_glance_shutdown(env.glance);
        rs_glance_free(env.glance);
    }
    if (rc < 0) {
        rs_cli_fail(cli, &err);
        return RS_EXIT_ERROR;
    }
    return RS_EXIT_OK;
}
