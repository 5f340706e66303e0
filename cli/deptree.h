/*
 * deptree.h - the dependency walk behind `rbdsnap tree`, `graph` and `ls`:
 * images -> snapshots -> clones, across pools, trash included.
 *
 * rs_deptree_build() describes every image in scope (one open each, see
 * rbd/ops_extra.h), follows the children of every snapshot into any pool,
 * links each clone under its parent snapshot and marks:
 *   - images made by rbdsnap (metadata keys "rbdsnap.*" other than the
 *     source keys "rbdsnap.snap.*"; librbd copies metadata into clones, so
 *     keys a clone shares, with the same value, with its parent are not its
 *     own),
 *   - snapshots made by rbdsnap (name starting with the snapshot prefix,
 *     default "rbdsnap-", or a key "rbdsnap.snap.<name>" on their image),
 *   - images in the RBD trash and snapshots in the trash namespace,
 *   - "*_to_be_deleted_by_glance" images,
 *   - for images in the Glance pool named by a UUID, the Glance record (id,
 *     name, status) when a Glance client is given.
 * Nothing is modified.  Roots and children are sorted by pool, then name.
 */
#ifndef RS_CLI_DEPTREE_H
#define RS_CLI_DEPTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "rbd/ops_extra.h"

typedef struct rs_glance rs_glance;
typedef struct rs_dep_image rs_dep_image;

#define RS_DEP_TBD_SUFFIX "_to_be_deleted_by_glance"

typedef struct rs_dep_snap {
    const rs_rbd_xsnap *s;         /* borrowed from the image description */
    const char *display;           /* original name for trash snapshots */
    bool rbdsnap;                  /* made by rbdsnap */
    rs_dep_image **children;       /* clones found in the walk, sorted */
    size_t nchildren;
} rs_dep_snap;

struct rs_dep_image {
    rs_rbd_image_desc *d;          /* NULL when the image could not be read */
    char *pool, *name, *id;        /* always set (id may be "") */
    char *error;                   /* why it could not be read */
    bool trash;
    bool rbdsnap;                  /* has rbdsnap.* metadata */
    bool tbd;                      /* *_to_be_deleted_by_glance */
    rs_dep_snap *snaps;
    size_t nsnaps;
    rs_dep_image *parent;          /* NULL: a root */
    rs_dep_snap *parent_snap;
    /* Glance (when looked up). */
    bool glance_checked;
    bool glance_found;
    char *glance_id, *glance_name, *glance_status, *glance_error;
};

typedef struct rs_deptree {
    rs_dep_image **images;         /* every node */
    size_t nimages;
    rs_dep_image **roots;          /* sorted */
    size_t nroots;
    char **pools;                  /* pools scanned */
    size_t npools;
    bool glance;                   /* Glance was consulted */
    char *glance_pool;
} rs_deptree;

typedef struct rs_deptree_opts {
    const char *pool;              /* only this pool (plus descendants elsewhere) */
    const char *image;             /* with @pool: only this image and its descendants */
    const char *snap_prefix;       /* NULL: "rbdsnap-" */
    const char *glance_pool;       /* pool holding Glance images (snapshot.dest_pool) */
    rs_glance *glance;             /* NULL: no Glance lookups */
} rs_deptree_opts;

int rs_deptree_build(rs_cluster *cl, const rs_deptree_opts *o, rs_deptree **out, rs_error *err);
void rs_deptree_free(rs_deptree *t);

typedef struct rs_conf rs_conf;
/* A Glance client built from the configuration's glance.* keys; 0 with
 * *out NULL when Glance is not configured (no url, auth "none"). */
int rs_dep_glance_open(const rs_conf *conf, rs_glance **out, rs_error *err);

/* What tree, graph and ls share: load the configuration, connect, open
 * Glance if configured (a Glance that cannot be set up is a warning, not
 * an error) and walk @spec ("POOL/IMAGE", may be NULL) or @pool (may be
 * NULL: every rbd pool).  Prints the error and returns an exit code
 * (RS_EXIT_*) on failure, 0 on success. */
struct rs_cli;
int rs_dep_cli_build(struct rs_cli *cli, const char *spec, const char *pool, rs_deptree **out);

/* "pool/name" of a node, into @buf. */
const char *rs_dep_image_spec(const rs_dep_image *im, char *buf, size_t len);
/* Human size ("64 MiB") and age ("3m", "2h", "5d") helpers for output. */
void rs_dep_fmt_size(uint64_t bytes, char *buf, size_t len);
void rs_dep_fmt_age(int64_t created_at, int64_t now, char *buf, size_t len);

/* Split "POOL/IMAGE[@SNAP]" (pool required).  Returns -EINVAL with a
 * message otherwise; strings are malloc'ed; @snap may be NULL if the caller
 * refuses snapshots (then "@" is an error). */
int rs_dep_parse_spec(const char *spec, char **pool, char **image, char **snap, rs_error *err);

#endif
