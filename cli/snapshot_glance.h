/*
 * snapshot_glance.h - `rbdsnap snapshot --image ...` into Glance (see
 * cmd_snapshot_glance.c).
 */
#ifndef RS_CLI_SNAPSHOT_GLANCE_H
#define RS_CLI_SNAPSHOT_GLANCE_H

#include <stdatomic.h>
#include <stddef.h>

#include "glance/glance.h"

typedef struct rs_cli_snapshot_glance_args {
    const char *pool;               /* source pool */
    const char *const *images;      /* root first */
    size_t nimages;
    const char *dest_pool, *clone_format, *snap_prefix;   /* NULL: configuration */
    const char *image_id;           /* Glance id (UUID); NULL: random */
    const char *image_name;         /* Glance name; NULL: "snapshot of POOL/IMAGE" */
    const char *instance_uuid;      /* provenance; may be NULL */
    const char *job_id;
    const char *flatten;            /* no|yes|deferred */
    const char *journal_dir;        /* NULL: no journal */
    const rs_kv *props;
    size_t nprops;
} rs_cli_snapshot_glance_args;

int rs_cli_snapshot_glance(rs_cli *cli, const rs_cli_snapshot_glance_args *a,
                           const atomic_bool *cancel);

#endif
