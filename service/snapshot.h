/*
 * snapshot.h - snapshot orchestration shared by rbdsnapd and the CLI: a
 * library call, no HTTP in it.
 *
 *   resolve      instance uuid / libvirt domain / explicit disks -> RBD disks
 *                (checked to exist in Ceph)
 *   glance_create  the Glance record first (its id names the clone), with
 *                Nova's snapshot properties plus rbdsnap_job_id
 *   flow         rs_flow_run (target name = image id), with guest quiesce
 *                through libvirt when the domain is found
 *   register     add the rbd://<fsid>/<pool>/<image>/snap location, wait
 *                for the image to become active
 *   complete     flatten=deferred: flatten in the background
 *
 * On any failure the Glance record is deleted and RBD rolled back: nothing
 * is left in either.  Without Glance (glance.url empty and glance.auth
 * "none") only the RBD flow runs.  Failpoints service.snapshot.<step>
 * (glance_create, register, wait_active) run before the Glance steps, and
 * service.snapshot.<step>.done after them.
 */
#ifndef RS_SERVICE_SNAPSHOT_H
#define RS_SERVICE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "conf/conf.h"
#include "glance/glance.h"
#include "rbd/cluster.h"
#include "rbd/flow.h"
#include "rbd/journal.h"
#include "virt/virt.h"

/* Everything a snapshot needs, shared by all jobs of a process. */
typedef struct rs_snapshot_env {
    const rs_conf *conf;
    rs_cluster *cluster;
    rs_glance *glance;          /* NULL: RBD flow only */
    rs_virt_conn *virt;         /* NULL: no libvirt (no quiesce, no domain lookup) */
    rs_journal *journal;        /* may be NULL */
} rs_snapshot_env;

/* True when @conf configures Glance (url set or auth not "none"). */
bool rs_snapshot_glance_configured(const rs_conf *conf);

typedef struct rs_snapshot_req {
    const char *job_id;         /* NULL: a fresh UUID */
    const char *image_id;       /* Glance id / clone name; NULL: a fresh UUID */
    const char *instance_uuid;  /* one of instance_uuid, domain, disks */
    const char *domain;
    const char *const *disks;   /* "pool/image" */
    size_t ndisks;
    bool all_disks;             /* also <uuid>_disk.eph* / every domain disk */
    const char *name;           /* Glance image name */
    const char *flatten;        /* no|yes|deferred; NULL = conf */
    const char *quiesce;        /* required|optional|off; NULL = conf */
    const char *mode;           /* file-backed: auto|live|cold; NULL = conf */
    const char *upload;         /* file-backed: rbd|glance; NULL = conf */
    const char *base_image_ref, *owner_id, *user_id;
    const rs_kv *props;
    size_t nprops;
    bool resume;                /* recovery: the Glance record may exist already */
} rs_snapshot_req;

typedef enum {
    RS_SNAP_PHASE_GLANCE_CREATE = 1,
    RS_SNAP_PHASE_FLOW,
    RS_SNAP_PHASE_REGISTER,
    RS_SNAP_PHASE_COMPLETE,     /* deferred flatten */
} rs_snapshot_phase;

const char *rs_snapshot_phase_name(rs_snapshot_phase p);

/* Observer of a run; every member may be NULL. */
typedef struct rs_snapshot_observer {
    void *arg;
    /* Before each phase (journal it; a negative return stops the run before
     * the phase, as a failure: -ESHUTDOWN stops without rolling back). */
    int (*phase)(void *arg, rs_snapshot_phase p, const rs_snapshot_req *req);
    /* Step begin/end (flow steps by rs_step_name, Glance steps by phase). */
    void (*step)(void *arg, const char *step, bool begin, int rc);
    void (*progress)(void *arg, int pct);
    /* flatten=deferred: the image is registered and usable. */
    void (*registered)(void *arg);
    /* true: cancel requested (roll back at the next step). */
    const atomic_bool *cancel;
} rs_snapshot_observer;

typedef struct rs_snapshot_result {
    char job_id[RS_JOB_ID_MAX];
    char image_id[RS_JOB_ID_MAX];
    char location[1024];        /* rbd:// URL ("" without Glance) */
    uint64_t freeze_ms;
    bool quiesced;
    char warning[512];          /* quiesce warning, if any */
    bool flatten_pending;
    bool flatten_failed;        /* deferred flatten failed: image usable, unflattened */
    uint64_t bytes_flattened;
    size_t ndisks;
    bool leftovers;             /* the rollback failed: the journal must keep the job */
    char mode[8];               /* file-backed: "live" or "cold"; "" for RBD disks */
    uint64_t downtime_ms;       /* file-backed cold copy: guest down (saved) */
} rs_snapshot_result;

/* Resolve the request to disks (checking they exist): -ENOENT names what is
 * missing.  *images (malloc'ed array of malloc'ed "image" names in
 * *pool) may be NULL when only checking. */
int rs_snapshot_resolve(const rs_snapshot_env *env, const rs_snapshot_req *req, char **pool,
                        char ***images, size_t *n, rs_error *err);
void rs_snapshot_images_free(char *pool, char **images, size_t n);

/* Run the whole snapshot.  0, or -errno after a full rollback (a failed
 * rollback says so in @err).  -ESHUTDOWN: stopped at a safe point by the
 * observer; nothing rolled back. */
int rs_snapshot_run(const rs_snapshot_env *env, const rs_snapshot_req *req,
                    const rs_snapshot_observer *obs, rs_snapshot_result *res, rs_error *err);

/* Undo a job from what a journal recorded: delete the Glance image
 * @image_id (absent is fine) and roll the flow record back (@flow may be
 * NULL).  Idempotent. */
int rs_snapshot_rollback(const rs_snapshot_env *env, const char *image_id, rs_job *flow,
                         rs_error *err);

/* Finish a job whose flow completed (flow->state DONE or FLATTEN_PENDING):
 * register the location if needed, wait for active, then complete a
 * pending flatten. */
int rs_snapshot_finish(const rs_snapshot_env *env, const char *image_id, rs_job *flow,
                       const rs_snapshot_observer *obs, rs_error *err);

#endif
