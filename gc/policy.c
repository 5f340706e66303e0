/*
 * policy.c - the reaper's policy: what is garbage, and in which order to
 * delete it (see policy.h for the contract).
 *
 * Design
 * ------
 * The policy never proves liveness; it proves garbage, and anything it
 * cannot prove is kept.  Planning runs in passes, each O(n) or O(n log n)
 * in the number of images + snapshots + links + Glance records:
 *
 *  1. Edges.  Children come from two sources: each image's parent link and
 *     the explicit child lists the scanner got from rbd_list_children3.
 *     Both are merged into one sorted edge array (parent, snap, child) and
 *     indexed per parent (CSR).  An explicit child the graph does not know,
 *     or a parent link naming a snapshot the parent does not have, makes
 *     the parent undeletable: the graph is not trusted where it is
 *     incomplete.
 *  2. Stuck Glance records (rbdsnap_job_id set, queued/saving/killed, no
 *     running job, past grace).  Done first because an rbdsnap image whose
 *     record is stuck is an orphan.  The other records that are not
 *     deleted/killed are indexed by what they point to (the Glance-pool
 *     image of the same name, and every location): such an image is never
 *     garbage.
 *  3. Live marking.  Nova-pool images named "<uuid>_disk*" without the
 *     _to_be_deleted_by_glance suffix are live instance disks; their
 *     ancestry is marked too (walk up, stopping at the first ancestor
 *     already marked, so O(n) overall).
 *  4. Candidates.  Each image is classified: tbd (the suffix), trash
 *     (in the RBD trash, owner proven by the suffix, an rbdsnap tag, or a
 *     Glance-pool image whose Glance record is gone), orphan (rbdsnap tag
 *     in the Glance pool, record gone or stuck), or none.  A candidate
 *     that fails one of its own checks (owner, live ancestry, running job,
 *     lock, trash deferment, grace) gets a skip reason.
 *  5. Subtree check.  A depth-first post-order pass computes, memoised,
 *     deletable(i) = candidate(i) without own skip reason, every snapshot
 *     of i old enough and not a group snapshot, and deletable(c) for every
 *     child c.  The first blocker is kept for the report.  A cycle makes
 *     every image on it undeletable.
 *  6. Items, in this priority order: tbd trees, trashed images, orphan
 *     images (each rooted at a deletable image none of whose parents is
 *     deletable), snapshots of surviving images (source_snap with no
 *     children, trashed_snap whose clones are gone), stuck records,
 *     flattens.  Actions of a tree are emitted in post-order: children of
 *     all snapshots, then for each snapshot unprotect (if protected) and
 *     remove, then the image itself (remove, or trash remove).  Items past
 *     max_items are reported as skipped and emit nothing.
 *
 * Convergence: a source snapshot is only removed when it has no children
 * now; one whose clone is deleted in this plan goes in the next cycle.
 */
#define RS_LOG_MODULE "gc"

#include "gc/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "gc/graph-priv.h"

#define TBD_SUFFIX "_to_be_deleted_by_glance"
#define NONE_IDX SIZE_MAX
#define UNKNOWN_CHILD UINT32_MAX

struct rs_gc_plan {
    gc_arena arena;
    rs_gc_item *items;
    size_t n_items, cap_items;
    rs_gc_action *actions;
    size_t n_actions, cap_actions;
    size_t n_delete;
    int64_t now;
};

typedef enum { CAND_NONE = 0, CAND_TBD, CAND_TRASH, CAND_ORPHAN } cand_kind;

typedef struct img_state {
    uint8_t cand;                 /* cand_kind */
    uint8_t visit;                /* 0 new, 1 on the stack, 2 done */
    bool live;
    bool live_ancestor;
    size_t live_desc;             /* a live disk below a live ancestor */
    bool deletable;
    bool emitted;
    bool has_deletable_parent;
    rs_gc_skip_reason own_skip;   /* candidate's own reason to keep it */
    const char *own_detail;
    const char *cand_reason;      /* why it is garbage */
    const char *bad_detail;       /* graph inconsistency around it */
    rs_gc_skip_reason bad_skip;
    rs_gc_skip_reason block_skip; /* why it is not deletable */
    const char *block_detail;
    int depth;                    /* clone depth; -1 unknown */
} img_state;

typedef struct edge {
    uint32_t parent;
    uint32_t snap;
    uint32_t child;
} edge;

typedef struct ctx {
    const rs_gc_graph *g;
    const rs_gc_policy_opts *o;
    int64_t now;
    struct rs_gc_plan *plan;
    gc_arena *a;                  /* the plan's arena */
    img_state *st;
    edge *edges;
    size_t n_edges;
    size_t *estart;               /* n_images + 1 */
    bool *glance_stuck;           /* per Glance record: stuck and eligible */
    gc_arena scratch;
    gc_table refs;                /* pool<US>image -> Glance record in use */
    gc_table job_refs;            /* rbdsnap job id -> Glance record in use */
    int rc;                       /* first -ENOMEM seen */
} ctx;

/* ---- names ------------------------------------------------------------ */

const char *rs_gc_item_kind_name(rs_gc_item_kind k)
{
    switch (k) {
    case RS_GC_ITEM_TBD_TREE: return "tbd_tree";
    case RS_GC_ITEM_TRASHED_IMAGE: return "trashed_image";
    case RS_GC_ITEM_ORPHAN_IMAGE: return "orphan_image";
    case RS_GC_ITEM_SOURCE_SNAP: return "source_snap";
    case RS_GC_ITEM_TRASHED_SNAP: return "trashed_snap";
    case RS_GC_ITEM_STUCK_RECORD: return "stuck_record";
    case RS_GC_ITEM_FLATTEN: return "flatten";
    }
    return "?";
}

const char *rs_gc_skip_reason_name(rs_gc_skip_reason r)
{
    switch (r) {
    case RS_GC_SKIP_NONE: return "none";
    case RS_GC_SKIP_LIVE_INSTANCE: return "live_instance";
    case RS_GC_SKIP_LIVE_ANCESTOR: return "live_ancestor";
    case RS_GC_SKIP_LIVE_DESCENDANT: return "live_descendant";
    case RS_GC_SKIP_UNKNOWN_OWNER: return "unknown_owner";
    case RS_GC_SKIP_RUNNING_JOB: return "running_job";
    case RS_GC_SKIP_LOCKED: return "locked";
    case RS_GC_SKIP_GRACE: return "grace";
    case RS_GC_SKIP_HAS_CHILDREN: return "has_children";
    case RS_GC_SKIP_GLANCE_RECORD: return "glance_record";
    case RS_GC_SKIP_GLANCE_UNKNOWN: return "glance_unknown";
    case RS_GC_SKIP_TRASH_DEFERRED: return "trash_deferred";
    case RS_GC_SKIP_INCONSISTENT: return "inconsistent";
    case RS_GC_SKIP_MAX_ITEMS: return "max_items";
    case RS_GC_SKIP_RATE_LIMIT: return "rate_limit";
    }
    return "?";
}

const char *rs_gc_action_type_name(rs_gc_action_type t)
{
    switch (t) {
    case RS_GC_ACT_UNPROTECT_SNAP: return "unprotect_snap";
    case RS_GC_ACT_REMOVE_SNAP: return "remove_snap";
    case RS_GC_ACT_REMOVE_IMAGE: return "remove_image";
    case RS_GC_ACT_TRASH_REMOVE: return "trash_remove";
    case RS_GC_ACT_GLANCE_DELETE: return "glance_delete";
    case RS_GC_ACT_FLATTEN: return "flatten";
    }
    return "?";
}

const char *rs_gc_action_state_name(rs_gc_action_state s)
{
    switch (s) {
    case RS_GC_ACT_PLANNED: return "planned";
    case RS_GC_ACT_DONE: return "done";
    case RS_GC_ACT_FAILED: return "failed";
    case RS_GC_ACT_NOT_RUN: return "not_run";
    }
    return "?";
}

void rs_gc_policy_opts_init(rs_gc_policy_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->nova_pool = "vms";
    o->glance_pool = "images";
    o->snap_prefix = "rbdsnap-";
    o->grace = 3600;
    o->max_items = 100;
    o->flatten_soft_depth = 0;
    o->flatten_hard_depth = 0;
    o->max_flatten = 1;
}

/* ---- plan accessors --------------------------------------------------- */

void rs_gc_plan_free(struct rs_gc_plan *plan)
{
    if (!plan)
        return;
    free(plan->items);
    free(plan->actions);
    gc_arena_free(&plan->arena);
    free(plan);
}

size_t rs_gc_plan_item_count(const struct rs_gc_plan *p) { return p ? p->n_items : 0; }
size_t rs_gc_plan_action_count(const struct rs_gc_plan *p) { return p ? p->n_actions : 0; }
size_t rs_gc_plan_delete_count(const struct rs_gc_plan *p) { return p ? p->n_delete : 0; }
size_t rs_gc_plan_skip_count(const struct rs_gc_plan *p) { return p ? p->n_items - p->n_delete : 0; }
int64_t rs_gc_plan_time(const struct rs_gc_plan *p) { return p ? p->now : 0; }

const rs_gc_item *rs_gc_plan_item(const struct rs_gc_plan *p, size_t i)
{
    return p && i < p->n_items ? &p->items[i] : NULL;
}

const rs_gc_action *rs_gc_plan_action(const struct rs_gc_plan *p, size_t i)
{
    return p && i < p->n_actions ? &p->actions[i] : NULL;
}

void rs_gc_plan_set_result(struct rs_gc_plan *p, size_t i, int rc)
{
    if (!p || i >= p->n_actions)
        return;
    rs_gc_action *a = &p->actions[i];
    a->rc = rc;
    a->state = rc == 0 ? RS_GC_ACT_DONE : RS_GC_ACT_FAILED;
    if (rc == 0)
        return;
    const rs_gc_item *it = &p->items[a->item];
    for (size_t j = i + 1; j < it->first_action + it->n_actions; j++)
        if (p->actions[j].state == RS_GC_ACT_PLANNED)
            p->actions[j].state = RS_GC_ACT_NOT_RUN;
}

/* ---- helpers ---------------------------------------------------------- */

static const char *S(ctx *c, const char *s)
{
    if (!s)
        return NULL;
    const char *r = gc_arena_strdup(c->a, s);
    if (!r)
        c->rc = -ENOMEM;
    return r;
}

#define F(c, ...) checked((c), gc_arena_printf((c)->a, __VA_ARGS__))

static const char *checked(ctx *c, const char *s)
{
    if (!s)
        c->rc = -ENOMEM;
    return s ? s : "(out of memory)";
}

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool is_live_name(const char *name)
{
    char uuid[37];
    if (strlen(name) < 36 + 5)
        return false;
    memcpy(uuid, name, 36);
    uuid[36] = '\0';
    return rs_is_uuid(uuid) && strncmp(name + 36, "_disk", 5) == 0 &&
           !rs_str_has_suffix(name, TBD_SUFFIX);
}

/* False when @t is older than the grace period; else true, with the
 * explanation in *detail ("<what> [name]: age ...").  An unknown time (0)
 * proves nothing, so it counts as young. */
static bool young(ctx *c, int64_t t, const char *what, const char *name, const char **detail)
{
    if (t <= 0) {
        *detail = F(c, "%s%s%s: age unknown", what, name ? " " : "", name ? name : "");
        return true;
    }
    if (c->now - t < c->o->grace) {
        *detail = F(c, "%s%s%s: age %llds < grace %llds", what, name ? " " : "",
                    name ? name : "", (long long)(c->now - t), (long long)c->o->grace);
        return true;
    }
    return false;
}

static const gc_glance *glance_rec(const rs_gc_graph *g, const char *id)
{
    size_t idx;
    if (!gc_table_get(&g->glance_by_id, id, &idx))
        return NULL;
    return &g->glance[idx];
}

static bool glance_dead(const gc_glance *r)
{
    return !r || streq(r->status, "deleted") || streq(r->status, "killed");
}

static bool job_running(const rs_gc_graph *g, const char *job)
{
    return job && gc_table_get(&g->jobs, job, NULL);
}

static bool image_locked(const rs_gc_graph *g, const gc_image *im)
{
    return gc_table_get2(&g->locks, im->pool, im->name, NULL) ||
           gc_table_get2(&g->locks, im->pool, im->id, NULL);
}

static const char *image_obj(ctx *c, size_t i)
{
    const gc_image *im = &c->g->images[i];
    if (im->in_trash)
        return F(c, "%s/%s [trash %s]", im->pool, im->name, im->id);
    return F(c, "%s/%s", im->pool, im->name);
}

static int64_t image_age_ref(const gc_image *im)
{
    int64_t t = im->created_at;
    const char *m = gc_image_meta(im, "rbdsnap.created_at");
    if (m) {
        char *end = NULL;
        long long v = strtoll(m, &end, 10);
        if (end && *end == '\0' && v > t)
            t = v;
    }
    return t;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elsz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * elsz);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static rs_gc_item *add_item(ctx *c, rs_gc_item_kind kind, rs_gc_skip_reason skip,
                            const char *object, const char *reason)
{
    struct rs_gc_plan *p = c->plan;
    if (grow((void **)&p->items, &p->cap_items, p->n_items, sizeof(*p->items)) < 0) {
        c->rc = -ENOMEM;
        return NULL;
    }
    rs_gc_item *it = &p->items[p->n_items++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->skip = skip;
    it->object = object;
    it->reason = reason;
    it->first_action = p->n_actions;
    if (skip == RS_GC_SKIP_NONE)
        p->n_delete++;
    return it;
}

static rs_gc_action *add_action(ctx *c, rs_gc_action_type type, const char *reason)
{
    struct rs_gc_plan *p = c->plan;
    if (grow((void **)&p->actions, &p->cap_actions, p->n_actions, sizeof(*p->actions)) < 0) {
        c->rc = -ENOMEM;
        return NULL;
    }
    rs_gc_action *a = &p->actions[p->n_actions++];
    memset(a, 0, sizeof(*a));
    a->type = type;
    a->item = p->n_items - 1;
    a->reason = reason;
    a->state = RS_GC_ACT_PLANNED;
    p->items[p->n_items - 1].n_actions++;
    return a;
}

static void set_image(ctx *c, rs_gc_action *a, const gc_image *im)
{
    a->pool = S(c, im->pool);
    a->image_id = S(c, im->id);
    a->image_name = S(c, im->name);
    a->image_in_trash = im->in_trash;
}

/* Over-budget check: true when another delete item is allowed. */
static bool budget_left(ctx *c)
{
    return c->o->max_items == 0 || c->plan->n_delete < c->o->max_items;
}

/* ---- pass 1: edges ---------------------------------------------------- */

static int edge_cmp(const void *x, const void *y)
{
    const edge *a = x, *b = y;
    if (a->parent != b->parent)
        return a->parent < b->parent ? -1 : 1;
    if (a->snap != b->snap)
        return a->snap < b->snap ? -1 : 1;
    if (a->child != b->child)
        return a->child < b->child ? -1 : 1;
    return 0;
}

static int push_edge(ctx *c, size_t *cap, uint32_t p, uint32_t s, uint32_t ch)
{
    if (grow((void **)&c->edges, cap, c->n_edges, sizeof(*c->edges)) < 0)
        return -ENOMEM;
    c->edges[c->n_edges++] = (edge){ p, s, ch };
    return 0;
}

static void mark_bad(ctx *c, size_t i, rs_gc_skip_reason why, const char *detail)
{
    if (!c->st[i].bad_detail) {
        c->st[i].bad_detail = detail;
        c->st[i].bad_skip = why;
    }
}

static int build_edges(ctx *c)
{
    const rs_gc_graph *g = c->g;
    size_t cap = 0;
    for (size_t i = 0; i < g->n_images; i++) {
        const gc_image *im = &g->images[i];
        if (!im->parent_pool)
            continue;
        ssize_t p = gc_image_find(g, im->parent_pool, im->parent_id);
        if (p < 0)
            continue;   /* parent outside the scan: nothing here depends on it */
        ssize_t s = gc_snap_find(&g->images[p], im->parent_snap_id);
        if (s < 0) {
            mark_bad(c, (size_t)p, RS_GC_SKIP_INCONSISTENT,
                     F(c, "child %s links to unknown snapshot id %llu", image_obj(c, i),
                       (unsigned long long)im->parent_snap_id));
            continue;
        }
        if (push_edge(c, &cap, (uint32_t)p, (uint32_t)s, (uint32_t)i) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < g->n_images; i++) {
        const gc_image *im = &g->images[i];
        for (size_t s = 0; s < im->n_snaps; s++) {
            const gc_snap *sn = &im->snaps[s];
            for (size_t k = 0; k < sn->n_children; k++) {
                ssize_t ch = gc_image_find(g, sn->children[k].pool, sn->children[k].image_id);
                if (ch < 0) {
                    mark_bad(c, i, RS_GC_SKIP_LIVE_DESCENDANT,
                             F(c, "snapshot %s has child %s/%s (id) outside the scan",
                               sn->name, sn->children[k].pool, sn->children[k].image_id));
                    continue;
                }
                if (push_edge(c, &cap, (uint32_t)i, (uint32_t)s, (uint32_t)ch) < 0)
                    return -ENOMEM;
            }
        }
    }
    if (c->n_edges)
        qsort(c->edges, c->n_edges, sizeof(*c->edges), edge_cmp);
    size_t w = 0;
    for (size_t r = 0; r < c->n_edges; r++) {
        if (w > 0 && edge_cmp(&c->edges[w - 1], &c->edges[r]) == 0)
            continue;
        c->edges[w++] = c->edges[r];
    }
    c->n_edges = w;
    c->estart = calloc(g->n_images + 1, sizeof(*c->estart));
    if (!c->estart)
        return -ENOMEM;
    for (size_t e = 0; e < c->n_edges; e++)
        c->estart[c->edges[e].parent + 1]++;
    for (size_t i = 0; i < g->n_images; i++)
        c->estart[i + 1] += c->estart[i];
    return 0;
}

static size_t snap_child_count(ctx *c, size_t img, size_t snap)
{
    size_t n = 0;
    for (size_t e = c->estart[img]; e < c->estart[img + 1]; e++)
        if (c->edges[e].snap == snap)
            n++;
    return n;
}

/* ---- pass 2: stuck Glance records ------------------------------------- */

typedef struct rec_verdict {
    bool ours;
    rs_gc_skip_reason skip;
    const char *detail;
} rec_verdict;

static rec_verdict judge_record(ctx *c, const gc_glance *r)
{
    rec_verdict v = { false, RS_GC_SKIP_NONE, NULL };
    const char *job = gc_glance_prop(r, "rbdsnap_job_id");
    if (!job)
        return v;
    if (!streq(r->status, "queued") && !streq(r->status, "saving") &&
        !streq(r->status, "killed"))
        return v;
    v.ours = true;
    if (job_running(c->g, job)) {
        v.skip = RS_GC_SKIP_RUNNING_JOB;
        v.detail = F(c, "job %s is running", job);
    } else if (young(c, r->updated_at, "record", NULL, &v.detail)) {
        v.skip = RS_GC_SKIP_GRACE;
    }
    return v;
}

/* Also indexes what the records still in use point to: the image named
 * like the record in the Glance pool, and every location. */
static int judge_records(ctx *c)
{
    const rs_gc_graph *g = c->g;
    for (size_t i = 0; i < g->n_glance; i++) {
        const gc_glance *r = &g->glance[i];
        rec_verdict v = judge_record(c, r);
        c->glance_stuck[i] = v.ours && v.skip == RS_GC_SKIP_NONE;
        if (c->glance_stuck[i] || glance_dead(r))
            continue;
        char *k = gc_key2(&c->scratch, c->o->glance_pool, r->id);
        if (!k)
            return -ENOMEM;
        int rc = gc_table_insert(&c->refs, k, i);
        if (rc == -ENOMEM)
            return rc;
        const char *job = gc_glance_prop(r, "rbdsnap_job_id");
        if (job) {
            rc = gc_table_insert(&c->job_refs, job, i);
            if (rc == -ENOMEM)
                return rc;
        }
        for (size_t l = 0; l < r->n_locations; l++) {
            k = gc_key2(&c->scratch, r->locations[l].pool, r->locations[l].image);
            if (!k)
                return -ENOMEM;
            rc = gc_table_insert(&c->refs, k, i);
            if (rc == -ENOMEM)
                return rc;
        }
    }
    return 0;
}

/* The Glance record an image in the Glance pool belongs to by name: the
 * image of the same name, else, for "<uuid>_<suffix>" (the flow names the
 * clones of an instance's other disks <glance-id>_eph0 ...), <uuid>. */
static const gc_glance *owner_record(const rs_gc_graph *g, const char *name)
{
    const gc_glance *r = glance_rec(g, name);
    if (r || strlen(name) < 38 || name[36] != '_')
        return r;
    char uuid[37];
    memcpy(uuid, name, 36);
    uuid[36] = '\0';
    return rs_is_uuid(uuid) ? glance_rec(g, uuid) : NULL;
}

static const gc_glance *referenced(ctx *c, const char *pool, const char *name)
{
    size_t idx;
    if (!gc_table_get2(&c->refs, pool, name, &idx))
        return NULL;
    return &c->g->glance[idx];
}

/* ---- pass 3: live disks and their ancestry ---------------------------- */

static void mark_live(ctx *c)
{
    const rs_gc_graph *g = c->g;
    for (size_t i = 0; i < g->n_images; i++) {
        const gc_image *im = &g->images[i];
        if (!im->in_trash && streq(im->pool, c->o->nova_pool) && is_live_name(im->name))
            c->st[i].live = true;
    }
    for (size_t i = 0; i < g->n_images; i++) {
        if (!c->st[i].live)
            continue;
        const gc_image *im = &g->images[i];
        size_t steps = 0;
        while (im->parent_pool && steps++ < g->n_images) {
            ssize_t p = gc_image_find(g, im->parent_pool, im->parent_id);
            if (p < 0 || c->st[p].live_ancestor)
                break;
            c->st[p].live_ancestor = true;
            c->st[p].live_desc = i;
            im = &g->images[p];
        }
    }
}

/* ---- pass 4: candidates ----------------------------------------------- */

static void own_skip(ctx *c, size_t i, rs_gc_skip_reason r, const char *detail)
{
    if (c->st[i].own_skip == RS_GC_SKIP_NONE) {
        c->st[i].own_skip = r;
        c->st[i].own_detail = detail;
    }
}

static bool in_our_pools(ctx *c, const gc_image *im)
{
    return streq(im->pool, c->o->nova_pool) || streq(im->pool, c->o->glance_pool);
}

static void classify(ctx *c, size_t i)
{
    const rs_gc_graph *g = c->g;
    const gc_image *im = &g->images[i];
    img_state *st = &c->st[i];
    const char *job = gc_image_meta(im, "rbdsnap.job_id");
    const char *role = gc_image_meta(im, "rbdsnap.role");
    bool tbd = in_our_pools(c, im) && rs_str_has_suffix(im->name, TBD_SUFFIX);
    bool glance_pool = streq(im->pool, c->o->glance_pool);
    int64_t age_ref = image_age_ref(im);
    const char *d = NULL;

    if (st->live)
        return;

    if (im->in_trash) {
        if (!in_our_pools(c, im) && !job)
            return;
        st->cand = CAND_TRASH;
        if (tbd) {
            st->cand_reason = "*_to_be_deleted_by_glance image in the RBD trash";
        } else if (job) {
            st->cand_reason = F(c, "moved to the RBD trash by rbdsnap (job %s)", job);
        } else if (glance_pool && rs_is_uuid(im->name)) {
            const gc_glance *r = glance_rec(g, im->name);
            if (!g->glance_complete)
                own_skip(c, i, RS_GC_SKIP_GLANCE_UNKNOWN, "Glance listing incomplete");
            else if (!glance_dead(r))
                own_skip(c, i, RS_GC_SKIP_GLANCE_RECORD,
                         F(c, "Glance record %s is %s", r->id, r->status));
            st->cand_reason = F(c, "moved to the RBD trash by Glance (record %s)",
                                r ? r->status : "missing");
        } else {
            own_skip(c, i, RS_GC_SKIP_UNKNOWN_OWNER, "trashed image of unknown owner");
        }
        if (im->trash_source == RS_GC_TRASH_MIRRORING || im->trash_source == RS_GC_TRASH_MIGRATION)
            own_skip(c, i, RS_GC_SKIP_UNKNOWN_OWNER,
                     im->trash_source == RS_GC_TRASH_MIRRORING ? "in the trash for mirroring"
                                                               : "in the trash for migration");
        if (im->trash_deferment_end > c->now)
            own_skip(c, i, RS_GC_SKIP_TRASH_DEFERRED,
                     F(c, "trash deferment ends in %llds",
                       (long long)(im->trash_deferment_end - c->now)));
        age_ref = im->trash_deleted_at > 0 ? im->trash_deleted_at : age_ref;
    } else if (tbd) {
        st->cand = CAND_TBD;
        st->cand_reason = "named *_to_be_deleted_by_glance, subtree holds nothing live";
    } else if (glance_pool && job && !streq(role, "source-snap")) {
        const gc_glance *r = owner_record(g, im->name);
        ssize_t ridx = r ? r - g->glance : -1;
        if (!g->glance_complete) {
            st->cand = CAND_ORPHAN;
            own_skip(c, i, RS_GC_SKIP_GLANCE_UNKNOWN, "Glance listing incomplete");
        } else if (glance_dead(r)) {
            st->cand = CAND_ORPHAN;
        } else if (streq(r->status, "queued") || streq(r->status, "saving")) {
            st->cand = CAND_ORPHAN;
            if (!c->glance_stuck[ridx])
                own_skip(c, i, RS_GC_SKIP_GLANCE_RECORD,
                         F(c, "Glance record %s is %s", r->id, r->status));
        } else {
            return;   /* a healthy rbdsnap image */
        }
        st->cand_reason = F(c, "rbdsnap image (job %s) whose Glance record is %s", job,
                            r ? r->status : "missing");
    } else if (glance_pool && g->glance_complete && !owner_record(g, im->name)) {
        /* Looks orphaned, but nothing proves whose it is. */
        st->cand = CAND_ORPHAN;
        st->cand_reason = "no Glance record";
        own_skip(c, i, RS_GC_SKIP_UNKNOWN_OWNER, "no Glance record and no rbdsnap tag");
    } else {
        return;
    }

    const gc_glance *ref = referenced(c, im->pool, im->name);
    if (!ref && tbd && glance_pool) {
        /* a Glance image renamed *_tbd: its record must be gone too */
        size_t n = strlen(im->name) - strlen(TBD_SUFFIX);
        char *base = gc_arena_alloc(&c->scratch, n + 1);
        if (!base) {
            c->rc = -ENOMEM;
            return;
        }
        memcpy(base, im->name, n);
        base[n] = '\0';
        ref = referenced(c, im->pool, base);
    }
    if (ref)
        own_skip(c, i, RS_GC_SKIP_GLANCE_RECORD,
                 F(c, "in use by Glance record %s (%s)", ref->id, ref->status));
    size_t jref;
    if (job && gc_table_get(&c->job_refs, job, &jref))
        own_skip(c, i, RS_GC_SKIP_GLANCE_RECORD,
                 F(c, "Glance record %s of the same job %s is %s", g->glance[jref].id, job,
                   g->glance[jref].status));
    if (st->live_ancestor)
        own_skip(c, i, RS_GC_SKIP_LIVE_ANCESTOR,
                 F(c, "ancestor of live instance disk %s", image_obj(c, st->live_desc)));
    if (job_running(g, job))
        own_skip(c, i, RS_GC_SKIP_RUNNING_JOB, F(c, "job %s is running", job));
    if (image_locked(g, im))
        own_skip(c, i, RS_GC_SKIP_LOCKED, "image is locked");
    if (young(c, age_ref, im->in_trash ? "in trash" : "image", NULL, &d))
        own_skip(c, i, RS_GC_SKIP_GRACE, d);
}

/* ---- pass 5: subtree check -------------------------------------------- */

static void block(img_state *st, rs_gc_skip_reason r, const char *detail)
{
    if (st->deletable) {
        st->deletable = false;
        st->block_skip = r;
        st->block_detail = detail;
    }
}

static void eval(ctx *c, size_t i)
{
    img_state *st = &c->st[i];
    if (st->visit)
        return;
    st->visit = 1;
    const gc_image *im = &c->g->images[i];
    st->deletable = true;
    if (st->live)
        block(st, RS_GC_SKIP_LIVE_INSTANCE, "live instance disk");
    else if (st->cand == CAND_NONE)
        block(st, RS_GC_SKIP_UNKNOWN_OWNER, "not proven garbage");
    else if (st->own_skip != RS_GC_SKIP_NONE)
        block(st, st->own_skip, st->own_detail);
    if (st->bad_detail)
        block(st, st->bad_skip, st->bad_detail);
    for (size_t s = 0; s < im->n_snaps && st->deletable; s++) {
        const gc_snap *sn = &im->snaps[s];
        const char *d = NULL;
        if (sn->ns == RS_GC_SNAP_NS_GROUP)
            block(st, RS_GC_SKIP_UNKNOWN_OWNER, F(c, "group snapshot %s", sn->name));
        else if (young(c, sn->created_at, "snapshot", sn->name, &d))
            block(st, RS_GC_SKIP_GRACE, d);
    }
    for (size_t e = c->estart[i]; e < c->estart[i + 1]; e++) {
        uint32_t ch = c->edges[e].child;
        eval(c, ch);
        img_state *cs = &c->st[ch];
        if (cs->visit == 1) {
            block(st, RS_GC_SKIP_INCONSISTENT, F(c, "parent/child cycle through %s",
                                                 image_obj(c, ch)));
        } else if (!cs->deletable) {
            if (cs->block_skip == RS_GC_SKIP_LIVE_DESCENDANT ||
                cs->block_skip == RS_GC_SKIP_INCONSISTENT)
                block(st, cs->block_skip, cs->block_detail);
            else
                block(st, RS_GC_SKIP_LIVE_DESCENDANT,
                      F(c, "descendant %s: %s (%s)", image_obj(c, ch), cs->block_detail,
                        rs_gc_skip_reason_name(cs->block_skip)));
        }
    }
    st->visit = 2;
}

/* ---- pass 6: items and actions ---------------------------------------- */

static void emit_tree(ctx *c, size_t i, const char *root_obj, bool is_root)
{
    img_state *st = &c->st[i];
    if (st->emitted)
        return;
    st->emitted = true;
    const gc_image *im = &c->g->images[i];
    for (size_t e = c->estart[i]; e < c->estart[i + 1]; e++)
        emit_tree(c, c->edges[e].child, root_obj, false);
    const char *obj = image_obj(c, i);
    const char *img_reason = is_root ? F(c, "%s", c->st[i].cand_reason)
                                     : F(c, "in the subtree of %s; %s", root_obj,
                                         c->st[i].cand_reason);
    const char *snap_reason = F(c, "snapshot of garbage image %s", obj);
    for (size_t s = 0; s < im->n_snaps; s++) {
        const gc_snap *sn = &im->snaps[s];
        rs_gc_action *a;
        if (sn->is_protected) {
            a = add_action(c, RS_GC_ACT_UNPROTECT_SNAP, snap_reason);
            if (!a)
                return;
            set_image(c, a, im);
            a->snap_id = sn->id;
            a->snap_name = S(c, sn->name);
        }
        a = add_action(c, RS_GC_ACT_REMOVE_SNAP, snap_reason);
        if (!a)
            return;
        set_image(c, a, im);
        a->snap_id = sn->id;
        a->snap_name = S(c, sn->name);
        a->snap_in_trash_ns = sn->ns == RS_GC_SNAP_NS_TRASH;
    }
    rs_gc_action *a = add_action(c, im->in_trash ? RS_GC_ACT_TRASH_REMOVE : RS_GC_ACT_REMOVE_IMAGE,
                                 img_reason);
    if (a)
        set_image(c, a, im);
}

static void image_items(ctx *c, cand_kind kind, rs_gc_item_kind ikind)
{
    const rs_gc_graph *g = c->g;
    for (size_t i = 0; i < g->n_images && c->rc == 0; i++) {
        img_state *st = &c->st[i];
        if (st->cand != kind || st->emitted || st->has_deletable_parent)
            continue;
        const char *obj = image_obj(c, i);
        if (!st->deletable) {
            add_item(c, ikind, st->block_skip,
                     obj, F(c, "%s", st->block_detail ? st->block_detail : "not deletable"));
            continue;
        }
        if (!budget_left(c)) {
            add_item(c, ikind, RS_GC_SKIP_MAX_ITEMS, obj,
                     F(c, "max_items=%zu reached; next cycle", c->o->max_items));
            continue;
        }
        if (!add_item(c, ikind, RS_GC_SKIP_NONE, obj, st->cand_reason))
            return;
        emit_tree(c, i, obj, true);
    }
}

/* Snapshots of images that stay: rbdsnap source snapshots (user
 * namespace: prefix + rbdsnap.snap.<name> tag) with no children, and
 * trash-namespace snapshots with no children left (they exist only for
 * their clones; the flow drops the tag when it moves one there, so the
 * owner is proven by the original name: rbdsnap's prefix, or Glance's
 * "snap" in the Glance pool).  A trash-namespace snapshot that still has
 * children is the normal state of an unflattened snapshot: not reported. */
static void snap_items(ctx *c)
{
    const rs_gc_graph *g = c->g;
    const char *prefix = c->o->snap_prefix && *c->o->snap_prefix ? c->o->snap_prefix : NULL;
    for (size_t i = 0; i < g->n_images && c->rc == 0; i++) {
        const gc_image *im = &g->images[i];
        if (c->st[i].deletable)
            continue;   /* goes (or went) with its tree */
        for (size_t s = 0; s < im->n_snaps; s++) {
            const gc_snap *sn = &im->snaps[s];
            bool trash = sn->ns == RS_GC_SNAP_NS_TRASH;
            const char *name = trash ? sn->trash_original_name : sn->name;
            size_t nchild = snap_child_count(c, i, s);
            if (nchild < sn->n_children)
                nchild = sn->n_children;
            if (sn->ns == RS_GC_SNAP_NS_GROUP)
                continue;
            if (trash && nchild > 0)
                continue;
            bool prefixed = name && prefix && rs_str_has_prefix(name, prefix);
            if (!trash && !prefixed)
                continue;
            rs_gc_item_kind kind = trash ? RS_GC_ITEM_TRASHED_SNAP : RS_GC_ITEM_SOURCE_SNAP;
            const char *obj = trash ? F(c, "%s/%s@%s [trash snap %llu]", im->pool, im->name,
                                        name ? name : "?", (unsigned long long)sn->id)
                                    : F(c, "%s/%s@%s", im->pool, im->name, name);
            const char *job = NULL;
            if (name) {
                char key[600];
                snprintf(key, sizeof(key), "rbdsnap.snap.%s", name);
                job = gc_image_meta(im, key);
            }
            bool glance_snap = trash && streq(im->pool, c->o->glance_pool) && streq(name, "snap");
            const char *d = NULL;
            rs_gc_skip_reason skip = RS_GC_SKIP_NONE;
            if (!trash && !job) {
                skip = RS_GC_SKIP_UNKNOWN_OWNER;
                d = F(c, "prefix %s but no rbdsnap.snap.%s tag", prefix, name);
            } else if (trash && !prefixed && !glance_snap) {
                skip = RS_GC_SKIP_UNKNOWN_OWNER;
                d = F(c, "trash-namespace snapshot (was %s) of unknown owner", name ? name : "?");
            } else if (nchild > 0) {
                skip = RS_GC_SKIP_HAS_CHILDREN;
                d = F(c, "%zu child(ren): still in use", nchild);
            } else if (job_running(g, job)) {
                skip = RS_GC_SKIP_RUNNING_JOB;
                d = F(c, "job %s is running", job);
            } else if (image_locked(g, im)) {
                skip = RS_GC_SKIP_LOCKED;
                d = "image is locked";
            } else if (young(c, sn->created_at, "snapshot", NULL, &d)) {
                skip = RS_GC_SKIP_GRACE;
            } else if (!budget_left(c)) {
                skip = RS_GC_SKIP_MAX_ITEMS;
                d = F(c, "max_items=%zu reached; next cycle", c->o->max_items);
            }
            if (skip != RS_GC_SKIP_NONE) {
                add_item(c, kind, skip, obj, d);
                continue;
            }
            const char *why = trash ? "trash-namespace snapshot whose clones are all gone"
                                    : F(c, "rbdsnap source snapshot (job %s) with no children", job);
            if (!add_item(c, kind, RS_GC_SKIP_NONE, obj, why))
                return;
            rs_gc_action *a;
            if (sn->is_protected) {
                a = add_action(c, RS_GC_ACT_UNPROTECT_SNAP, why);
                if (!a)
                    return;
                set_image(c, a, im);
                a->snap_id = sn->id;
                a->snap_name = S(c, sn->name);
            }
            a = add_action(c, RS_GC_ACT_REMOVE_SNAP, why);
            if (!a)
                return;
            set_image(c, a, im);
            a->snap_id = sn->id;
            a->snap_name = S(c, sn->name);
            a->snap_in_trash_ns = trash;
        }
    }
}

static void record_items(ctx *c)
{
    const rs_gc_graph *g = c->g;
    for (size_t i = 0; i < g->n_glance && c->rc == 0; i++) {
        const gc_glance *r = &g->glance[i];
        rec_verdict v = judge_record(c, r);
        if (!v.ours)
            continue;
        const char *obj = F(c, "glance:%s", r->id);
        if (v.skip != RS_GC_SKIP_NONE) {
            add_item(c, RS_GC_ITEM_STUCK_RECORD, v.skip, obj, v.detail);
            continue;
        }
        if (!budget_left(c)) {
            add_item(c, RS_GC_ITEM_STUCK_RECORD, RS_GC_SKIP_MAX_ITEMS, obj,
                     F(c, "max_items=%zu reached; next cycle", c->o->max_items));
            continue;
        }
        const char *why = F(c, "rbdsnap record (job %s) left %s, no running job",
                            gc_glance_prop(r, "rbdsnap_job_id"), r->status);
        if (!add_item(c, RS_GC_ITEM_STUCK_RECORD, RS_GC_SKIP_NONE, obj, why))
            return;
        rs_gc_action *a = add_action(c, RS_GC_ACT_GLANCE_DELETE, why);
        if (a)
            a->glance_id = S(c, r->id);
    }
}

/* Clone depth: 0 without a parent, 1 + the parent's depth, 1 for a parent
 * outside the scan.  Memoised; -2 marks "being computed" (a cycle counts
 * as the top). */
static int image_depth(ctx *c, size_t i)
{
    img_state *st = &c->st[i];
    if (st->depth >= 0)
        return st->depth;
    if (st->depth == -2)
        return 0;
    st->depth = -2;
    const gc_image *im = &c->g->images[i];
    int d = 0;
    if (im->parent_pool) {
        ssize_t p = gc_image_find(c->g, im->parent_pool, im->parent_id);
        d = p < 0 ? 1 : image_depth(c, (size_t)p) + 1;
    }
    st->depth = d;
    return d;
}

typedef struct flat_cand {
    size_t img;
    int depth;
    bool hard;
} flat_cand;

static int flat_cmp(const void *x, const void *y)
{
    const flat_cand *a = x, *b = y;
    if (a->hard != b->hard)
        return a->hard ? -1 : 1;
    if (a->depth != b->depth)
        return a->depth > b->depth ? -1 : 1;
    return a->img < b->img ? -1 : (a->img > b->img);
}

static void flatten_items(ctx *c)
{
    const rs_gc_graph *g = c->g;
    const rs_gc_policy_opts *o = c->o;
    if (o->flatten_soft_depth == 0)
        return;
    flat_cand *fc = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < g->n_images; i++) {
        const gc_image *im = &g->images[i];
        img_state *st = &c->st[i];
        if (im->in_trash || !im->parent_pool || st->live || st->live_ancestor ||
            st->cand != CAND_NONE || !streq(im->pool, o->glance_pool) ||
            !gc_image_meta(im, "rbdsnap.job_id"))
            continue;
        int d = image_depth(c, i);
        if (d <= (int)o->flatten_soft_depth)
            continue;
        if (grow((void **)&fc, &cap, n, sizeof(*fc)) < 0) {
            c->rc = -ENOMEM;
            free(fc);
            return;
        }
        fc[n++] = (flat_cand){ i, d, o->flatten_hard_depth && d > (int)o->flatten_hard_depth };
    }
    if (n)
        qsort(fc, n, sizeof(*fc), flat_cmp);
    size_t done = 0;
    for (size_t k = 0; k < n && c->rc == 0; k++) {
        const gc_image *im = &g->images[fc[k].img];
        const char *obj = image_obj(c, fc[k].img);
        const char *job = gc_image_meta(im, "rbdsnap.job_id");
        if (job_running(g, job)) {
            add_item(c, RS_GC_ITEM_FLATTEN, RS_GC_SKIP_RUNNING_JOB, obj,
                     F(c, "job %s is running", job));
            continue;
        }
        if (image_locked(g, im)) {
            add_item(c, RS_GC_ITEM_FLATTEN, RS_GC_SKIP_LOCKED, obj, "image is locked");
            continue;
        }
        if (done >= o->max_flatten) {
            add_item(c, RS_GC_ITEM_FLATTEN, RS_GC_SKIP_RATE_LIMIT, obj,
                     F(c, "max_flatten=%zu reached; next cycle", o->max_flatten));
            continue;
        }
        if (!budget_left(c)) {
            add_item(c, RS_GC_ITEM_FLATTEN, RS_GC_SKIP_MAX_ITEMS, obj,
                     F(c, "max_items=%zu reached; next cycle", o->max_items));
            continue;
        }
        const char *why = F(c, "clone depth %d > %s limit %u", fc[k].depth,
                            fc[k].hard ? "hard" : "soft",
                            fc[k].hard ? o->flatten_hard_depth : o->flatten_soft_depth);
        if (!add_item(c, RS_GC_ITEM_FLATTEN, RS_GC_SKIP_NONE, obj, why))
            break;
        rs_gc_action *a = add_action(c, RS_GC_ACT_FLATTEN, why);
        if (a)
            set_image(c, a, im);
        done++;
    }
    free(fc);
}

/* ---- entry point ------------------------------------------------------ */

int rs_gc_plan(const rs_gc_graph *g, const rs_gc_policy_opts *opts, int64_t now,
               struct rs_gc_plan **out)
{
    if (!g || !opts || !out || !opts->nova_pool || !opts->glance_pool || opts->grace < 0)
        return -EINVAL;
    if (g->n_images >= UINT32_MAX)
        return -EINVAL;
    *out = NULL;
    struct rs_gc_plan *plan = calloc(1, sizeof(*plan));
    if (!plan)
        return -ENOMEM;
    gc_arena_init(&plan->arena);
    plan->now = now;

    ctx c = { .g = g, .o = opts, .now = now, .plan = plan, .a = &plan->arena };
    gc_arena_init(&c.scratch);
    gc_table_init(&c.refs);
    gc_table_init(&c.job_refs);
    c.st = calloc(g->n_images ? g->n_images : 1, sizeof(*c.st));
    c.glance_stuck = calloc(g->n_glance ? g->n_glance : 1, sizeof(*c.glance_stuck));
    int rc = -ENOMEM;
    if (!c.st || !c.glance_stuck)
        goto out;
    for (size_t i = 0; i < g->n_images; i++)
        c.st[i].depth = -1;

    rc = build_edges(&c);
    if (rc < 0)
        goto out;
    rc = judge_records(&c);
    if (rc < 0)
        goto out;
    mark_live(&c);
    for (size_t i = 0; i < g->n_images; i++)
        classify(&c, i);
    for (size_t i = 0; i < g->n_images; i++)
        eval(&c, i);
    for (size_t e = 0; e < c.n_edges; e++)
        if (c.st[c.edges[e].parent].deletable)
            c.st[c.edges[e].child].has_deletable_parent = true;

    image_items(&c, CAND_TBD, RS_GC_ITEM_TBD_TREE);
    image_items(&c, CAND_TRASH, RS_GC_ITEM_TRASHED_IMAGE);
    image_items(&c, CAND_ORPHAN, RS_GC_ITEM_ORPHAN_IMAGE);
    snap_items(&c);
    record_items(&c);
    flatten_items(&c);
    rc = c.rc;
    if (rc == 0) {
        rs_debug("plan images=%zu items=%zu delete=%zu actions=%zu", g->n_images,
                 plan->n_items, plan->n_delete, plan->n_actions);
        *out = plan;
        plan = NULL;
    }
out:
    free(c.st);
    free(c.glance_stuck);
    free(c.edges);
    free(c.estart);
    gc_table_free(&c.refs);
    gc_table_free(&c.job_refs);
    gc_arena_free(&c.scratch);
    rs_gc_plan_free(plan);
    return rc;
}
