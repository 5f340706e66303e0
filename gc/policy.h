/*
 * policy.h - what is garbage, and the safe order to delete it.
 *
 * rs_gc_plan() is a pure function of (graph, options, now): no I/O, no
 * clock, no global state.  It returns a plan: a list of items (one per
 * piece of garbage found, deleted or skipped, with the reason) and, for the
 * items to delete, an ordered list of actions.  Executing any prefix of the
 * action list is safe: children always come before their parents, unprotect
 * before remove, snapshots before their image.
 *
 * Garbage it recognises (item kinds):
 *   tbd_tree        an image named *_to_be_deleted_by_glance in the nova or
 *                   Glance pool, with its whole subtree;
 *   trashed_image   an image in the RBD trash that Glance (Glance pool, its
 *                   record gone) or rbdsnap (metadata tag) moved there;
 *   orphan_image    an rbdsnap-tagged image in the Glance pool whose Glance
 *                   record is missing, deleted or killed (or being deleted
 *                   by this plan as stuck);
 *   source_snap     a snapshot rbdsnap made (name prefix + the image's
 *                   rbdsnap.snap.<name> key) with no children;
 *   trashed_snap    a trash-namespace snapshot whose clones are all gone
 *                   (original name with rbdsnap's prefix, or Glance's
 *                   "snap" in the Glance pool);
 *   stuck_record    a Glance record made by rbdsnap (rbdsnap_job_id) left
 *                   queued, saving or killed;
 *   flatten         optional: an rbdsnap clone whose chain is deeper than
 *                   the configured soft/hard limit.
 * An image is deleted only with its whole subtree (children of its
 * snapshots, in any pool, including trash-namespace snapshots), and only if
 * every image in it is itself garbage.  Anything with a live descendant, an
 * unknown owner, a running job, a lock, or younger than the grace period
 * is reported as skipped, never acted on.  A live instance disk (nova pool,
 * "<uuid>_disk*" without the suffix) and its ancestry are never deleted or
 * flattened; the only thing ever removed from a live disk is a source_snap.
 */
#ifndef RS_GC_POLICY_H
#define RS_GC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gc/graph.h"

typedef struct rs_gc_policy_opts {
    const char *nova_pool;        /* "vms" */
    const char *glance_pool;      /* "images" */
    const char *snap_prefix;      /* "rbdsnap-" */
    int64_t grace;                /* seconds; 3600 */
    size_t max_items;             /* items to delete per plan; 0 = no limit */
    unsigned flatten_soft_depth;  /* 0 = no flattening */
    unsigned flatten_hard_depth;  /* 0 = no hard limit */
    size_t max_flatten;           /* flatten items per plan (rate limit) */
} rs_gc_policy_opts;

/* Defaults: vms, images, rbdsnap-, grace 3600, max_items 100, no flatten,
 * max_flatten 1. */
void rs_gc_policy_opts_init(rs_gc_policy_opts *o);

typedef enum {
    RS_GC_ITEM_TBD_TREE = 0,
    RS_GC_ITEM_TRASHED_IMAGE,
    RS_GC_ITEM_ORPHAN_IMAGE,
    RS_GC_ITEM_SOURCE_SNAP,
    RS_GC_ITEM_STUCK_RECORD,
    RS_GC_ITEM_FLATTEN,
    RS_GC_ITEM_TRASHED_SNAP,
} rs_gc_item_kind;

typedef enum {
    RS_GC_SKIP_NONE = 0,          /* not skipped: to delete */
    RS_GC_SKIP_LIVE_INSTANCE,     /* a live instance disk */
    RS_GC_SKIP_LIVE_ANCESTOR,     /* in the ancestry of a live instance disk */
    RS_GC_SKIP_LIVE_DESCENDANT,   /* something in its subtree is not garbage */
    RS_GC_SKIP_UNKNOWN_OWNER,
    RS_GC_SKIP_RUNNING_JOB,
    RS_GC_SKIP_LOCKED,
    RS_GC_SKIP_GRACE,             /* younger than the grace period (or age unknown) */
    RS_GC_SKIP_HAS_CHILDREN,
    RS_GC_SKIP_GLANCE_RECORD,     /* its Glance record is still in use */
    RS_GC_SKIP_GLANCE_UNKNOWN,    /* the Glance listing is not complete */
    RS_GC_SKIP_TRASH_DEFERRED,    /* trash deferment not over */
    RS_GC_SKIP_INCONSISTENT,      /* cycle, dangling link, unknown namespace */
    RS_GC_SKIP_MAX_ITEMS,         /* over max_items: next cycle */
    RS_GC_SKIP_RATE_LIMIT,        /* over max_flatten: next cycle */
} rs_gc_skip_reason;

typedef enum {
    RS_GC_ACT_UNPROTECT_SNAP = 0,
    RS_GC_ACT_REMOVE_SNAP,
    RS_GC_ACT_REMOVE_IMAGE,
    RS_GC_ACT_TRASH_REMOVE,
    RS_GC_ACT_GLANCE_DELETE,
    RS_GC_ACT_FLATTEN,
} rs_gc_action_type;

typedef enum {
    RS_GC_ACT_PLANNED = 0,
    RS_GC_ACT_DONE,
    RS_GC_ACT_FAILED,
    RS_GC_ACT_NOT_RUN,            /* an earlier action of its item failed */
} rs_gc_action_state;

/* Read-only views into a plan; strings belong to the plan. */
typedef struct rs_gc_item {
    rs_gc_item_kind kind;
    rs_gc_skip_reason skip;       /* RS_GC_SKIP_NONE: to delete */
    const char *object;           /* "pool/name", "pool/name@snap", "glance:<id>" */
    const char *reason;           /* why it is garbage, or why it is skipped */
    size_t first_action;          /* actions [first_action, first_action+n_actions) */
    size_t n_actions;
} rs_gc_item;

typedef struct rs_gc_action {
    rs_gc_action_type type;
    size_t item;                  /* index of its item */
    const char *pool;             /* NULL for glance_delete */
    const char *image_id;
    const char *image_name;
    bool image_in_trash;
    uint64_t snap_id;             /* snapshot actions */
    const char *snap_name;
    bool snap_in_trash_ns;        /* remove by id */
    const char *glance_id;        /* glance_delete */
    const char *reason;
    rs_gc_action_state state;
    int rc;                       /* result when executed */
} rs_gc_action;

struct rs_gc_plan;

/* Plan.  Returns 0, -EINVAL (bad arguments) or -ENOMEM.  The plan owns
 * copies of everything it names: it may outlive the graph. */
int rs_gc_plan(const rs_gc_graph *g, const rs_gc_policy_opts *opts, int64_t now,
               struct rs_gc_plan **out);
void rs_gc_plan_free(struct rs_gc_plan *plan);

size_t rs_gc_plan_item_count(const struct rs_gc_plan *plan);
const rs_gc_item *rs_gc_plan_item(const struct rs_gc_plan *plan, size_t i);
size_t rs_gc_plan_action_count(const struct rs_gc_plan *plan);
const rs_gc_action *rs_gc_plan_action(const struct rs_gc_plan *plan, size_t i);
/* Counts over items. */
size_t rs_gc_plan_delete_count(const struct rs_gc_plan *plan);
size_t rs_gc_plan_skip_count(const struct rs_gc_plan *plan);
int64_t rs_gc_plan_time(const struct rs_gc_plan *plan);   /* the `now` it was made for */

/* For the runner: record the outcome of action @i (rc 0 = done).  When an
 * action fails, the rest of its item is marked not run. */
void rs_gc_plan_set_result(struct rs_gc_plan *plan, size_t i, int rc);

const char *rs_gc_item_kind_name(rs_gc_item_kind k);
const char *rs_gc_skip_reason_name(rs_gc_skip_reason r);
const char *rs_gc_action_type_name(rs_gc_action_type t);
const char *rs_gc_action_state_name(rs_gc_action_state s);

#endif
