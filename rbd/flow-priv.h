/*
 * flow-priv.h - internals of the flow exposed for unit tests.
 */
#ifndef RS_RBD_FLOW_PRIV_H
#define RS_RBD_FLOW_PRIV_H

#include <stddef.h>

#include "rbd/flow.h"

/* <prefix><16 lowercase hex>.  -EINVAL if it does not fit or the prefix
 * is not a safe snapshot name. */
int rs_flow_make_snap_name(const char *prefix, char *buf, size_t len);

/* Clone name of disk @idx (see flow.h).  -EINVAL if the result is not a
 * safe name or does not fit. */
int rs_flow_clone_name(const char *target, const char *image, const char *suffix, size_t idx,
                       char *buf, size_t len);

typedef enum {
    RS_ACT_UNPROTECT_SNAP,       /* pool/image@snap */
    RS_ACT_REMOVE_SNAP,          /* pool/image@snap */
    RS_ACT_REMOVE_CLONE_IF_OURS, /* pool/image, parent or job id must match */
    RS_ACT_REMOVE_TRASH_SNAP,    /* pool/image: trash snapshots once named snap */
    RS_ACT_REMOVE_KEY,           /* pool/image metadata key */
} rs_flow_action_kind;

typedef struct rs_flow_action {
    rs_flow_action_kind kind;
    size_t disk;
    const char *pool;            /* point into the job */
    const char *image;
    const char *snap;            /* snapshot, or the parent snapshot for REMOVE_CLONE */
    char key[RS_JOB_NAME_MAX + 16];
} rs_flow_action;

#define RS_FLOW_MAX_ACTIONS (RS_JOB_MAX_DISKS * 8)

/* The rollback plan of @job: undo, in reverse, every step that was started
 * on any disk.  Returns the number of actions written to @acts. */
size_t rs_flow_plan_rollback(const rs_job *job, rs_flow_action *acts, size_t max);
const char *rs_flow_action_name(rs_flow_action_kind k);

#endif
