/*
 * journal.h - the record of a snapshot job, and where it is kept.
 *
 * The flow (flow.h) reports every step to an rs_journal *before* it runs
 * and *after* it completed.  At each call the rs_job it passes is the whole
 * truth about the job (pools, images, snapshot and clone names, clone
 * format, flatten mode, the step each disk reached and whether that step
 * completed), so an implementation only has to persist the latest record
 * durably.  From such a record a later process can roll the job back or
 * finish it (rs_flow_rollback, rs_flow_complete, rs_flow_recover).
 *
 * Implementations: a directory of JSON files for the CLI
 * (rs_journal_dir_open, below) and, for the daemon, RADOS omap
 * (rbd/journal_rados.c, later).  Both serialise records with
 * rs_job_to_json / rs_job_from_json so they stay interchangeable.
 */
#ifndef RS_RBD_JOURNAL_H
#define RS_RBD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define RS_JOB_MAX_DISKS 8
#define RS_JOB_NAME_MAX 256     /* pool/image/snap names, NUL included */
#define RS_JOB_ID_MAX 64

/* Steps of the flow, in order.  Names (rs_step_name) are also the
 * failpoint names: "rbd.flow.<name>" and "rbd.flow.<name>.done". */
typedef enum {
    RS_STEP_NONE = 0,
    RS_STEP_TAG_SOURCE,          /* metadata rbdsnap.snap.<snap> on the source image */
    RS_STEP_SNAP_CREATE,         /* source snapshot (inside the quiesce window) */
    RS_STEP_SNAP_PROTECT,        /* format 1 only */
    RS_STEP_CLONE,               /* clone into dest pool */
    RS_STEP_TAG_CLONE,           /* provenance metadata on the clone */
    RS_STEP_FLATTEN,             /* flatten yes (or the deferred completion) */
    RS_STEP_CLONE_SNAP_CREATE,   /* <clone>@snap */
    RS_STEP_CLONE_SNAP_PROTECT,
    RS_STEP_SOURCE_SNAP_REMOVE,  /* remove source snapshot and its metadata key */
    RS_STEP_DONE,
    RS_STEP_COUNT
} rs_step;

typedef enum {
    RS_FLATTEN_NO = 0,
    RS_FLATTEN_YES,
    RS_FLATTEN_DEFERRED,
} rs_flatten_mode;

typedef enum {
    RS_JOB_RUNNING = 0,
    RS_JOB_ROLLING_BACK,
    RS_JOB_FLATTEN_PENDING,      /* usable; flatten (and fmt-1 source snap removal) left */
    RS_JOB_DONE,
    RS_JOB_ROLLED_BACK,
    RS_JOB_FAILED,               /* rollback itself failed: recover must retry */
} rs_job_state;

typedef struct rs_job_disk {
    char image[RS_JOB_NAME_MAX];     /* source image in src_pool */
    char snap[RS_JOB_NAME_MAX];      /* source snapshot name (rbdsnap-<hex>) */
    char clone[RS_JOB_NAME_MAX];     /* clone image in dest_pool */
    rs_step step;                    /* last step started on this disk */
    bool step_done;                  /* ... and completed */
    bool flattened;
    bool src_snap_removed;
} rs_job_disk;

typedef struct rs_job {
    char id[RS_JOB_ID_MAX];
    char instance_uuid[RS_JOB_ID_MAX];
    char src_pool[RS_JOB_NAME_MAX];
    char dest_pool[RS_JOB_NAME_MAX];
    char target[RS_JOB_NAME_MAX];    /* Glance image id = root clone name */
    int clone_format;                /* resolved: 1 or 2 */
    rs_flatten_mode flatten;
    rs_job_state state;
    int64_t created_at;              /* unix seconds */
    int64_t updated_at;
    int pid;                         /* process running it (informative) */
    size_t ndisks;
    rs_job_disk disks[RS_JOB_MAX_DISKS];
    char error[512];                 /* why it failed, if it did */
} rs_job;

const char *rs_step_name(rs_step step);
int rs_step_parse(const char *name, rs_step *out);
const char *rs_flatten_mode_name(rs_flatten_mode m);
int rs_flatten_mode_parse(const char *s, rs_flatten_mode *out);
const char *rs_job_state_name(rs_job_state s);
int rs_job_state_parse(const char *s, rs_job_state *out);

/* Serialise (malloc'ed JSON text) and parse a record. */
int rs_job_to_json(const rs_job *job, char **out, rs_error *err);
int rs_job_from_json(const char *text, rs_job *job, rs_error *err);

typedef struct rs_journal rs_journal;

/* The interface.  Every hook returns 0 or -errno; a failing begin or
 * step_start stops the flow before the step (nothing is done that is not
 * recorded).  Hooks must be thread-safe across different jobs. */
typedef struct rs_journal_ops {
    int (*begin)(rs_journal *j, const rs_job *job, rs_error *err);
    int (*step_start)(rs_journal *j, const rs_job *job, rs_step step, int disk,
                      const char *details, rs_error *err);
    int (*step_done)(rs_journal *j, const rs_job *job, rs_step step, int disk,
                     const char *details, rs_error *err);
    /* Final state in job->state: DONE / ROLLED_BACK drop the record,
     * FLATTEN_PENDING / FAILED keep it. */
    int (*end)(rs_journal *j, const rs_job *job, rs_error *err);
    /* Records that are not finished and not owned by a live run
     * (RUNNING/ROLLING_BACK abandoned, FAILED, FLATTEN_PENDING).  The
     * caller owns the array (free()).  Records returned are claimed by the
     * caller until rs_journal_release() (or end) so two recoveries never
     * work on the same job. */
    int (*list_orphans)(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err);
    void (*release)(rs_journal *j, const char *job_id);
    void (*close)(rs_journal *j);
} rs_journal_ops;

struct rs_journal {
    const rs_journal_ops *ops;
    void *priv;
};

/* Convenience wrappers; a NULL journal accepts everything. */
int rs_journal_begin(rs_journal *j, const rs_job *job, rs_error *err);
int rs_journal_step_start(rs_journal *j, const rs_job *job, rs_step step, int disk,
                          const char *details, rs_error *err);
int rs_journal_step_done(rs_journal *j, const rs_job *job, rs_step step, int disk,
                         const char *details, rs_error *err);
int rs_journal_end(rs_journal *j, const rs_job *job, rs_error *err);
int rs_journal_list_orphans(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err);
void rs_journal_release(rs_journal *j, const char *job_id);
void rs_journal_close(rs_journal *j);

/* The file implementation: one <job id>.json per job in @dir (created if
 * missing, mode 0700), replaced atomically (write tmp, fsync, rename, fsync
 * dir).  A running job holds an flock on <job id>.lock, which tells
 * list_orphans which records belong to live processes.
 * Default directory: RS_JOURNAL_DIR_DEFAULT. */
#define RS_JOURNAL_DIR_DEFAULT "/var/lib/rbdsnap/journal"
int rs_journal_dir_open(const char *dir, rs_journal **out, rs_error *err);

#endif
