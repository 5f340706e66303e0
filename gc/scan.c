/*
 * scan.c - the reaper's scanner: rbd/inventory + the Glance listing + the
 * journals into an rs_gc_graph.  See scan.h.
 *
 * Order: Glance first, then the pools.  A record created after the listing
 * is then matched by an image scanned later (the image is younger than the
 * grace period anyway), while an image deleted after being listed simply
 * vanishes from the scan; neither order can turn a live object into
 * garbage, but this one keeps the window between "record missing" and
 * "image seen" the shortest.
 */
#define RS_LOG_MODULE "gc.scan"
#include "gc/scan.h"

#include "common/log.h"
#include "common/util.h"
#include "glance/glance.h"
#include "rbd/inventory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define TBD_SUFFIX "_to_be_deleted_by_glance"

int64_t rs_gc_parse_time(const char *s)
{
    struct tm tm;
    const char *end;

    if (!s || !*s)
        return 0;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return 0;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (*end && *end != 'Z' && strcmp(end, "+00:00") != 0)
        return 0;
    return (int64_t)timegm(&tm);
}

/* ---- Glance -------------------------------------------------------------- */

typedef struct glance_ctx {
    rs_gc_graph *g;
    const char *filter;
    size_t n;
    rs_error err;
} glance_ctx;

static int add_record(void *arg, const rs_glance_image *img)
{
    glance_ctx *c = arg;
    int rc;

    if (!img->id || !img->status)
        return 0;
    rs_gc_glance_desc d = {
        .id = img->id,
        .status = img->status,
        .created_at = rs_gc_parse_time(img->created_at),
        .updated_at = rs_gc_parse_time(img->updated_at),
    };
    rc = rs_gc_graph_add_glance_image(c->g, &d, &c->err);
    if (rc == -EEXIST)
        return 0;   /* listed twice across pages */
    if (rc < 0)
        return rc;
    c->n++;
    /* With a name filter, a record outside it must not be acted on either:
     * its job counts as running, which only ever protects more. */
    const char *job = rs_glance_image_prop(img, "rbdsnap_job_id");
    if (c->filter && job && *job && !strstr(img->id, c->filter) &&
        !(img->name && strstr(img->name, c->filter))) {
        rc = rs_gc_graph_add_running_job(c->g, job, &c->err);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    for (size_t i = 0; i < img->nprops; i++) {
        rc = rs_gc_graph_set_glance_property(c->g, img->id, img->props[i].key,
                                             img->props[i].value, &c->err);
        if (rc < 0)
            return rc;
    }
    /* Every rbd:// location (and direct_url) keeps its image alive. */
    for (size_t i = 0; i <= img->nlocations; i++) {
        const char *url = i < img->nlocations ? img->locations[i] : img->direct_url;
        rs_rbd_url u = { 0 };
        if (!url || !rs_str_has_prefix(url, "rbd://"))
            continue;
        if (rs_rbd_url_parse(url, &u, NULL) == 0 && u.pool && u.image)
            rc = rs_gc_graph_add_glance_location(c->g, img->id, u.pool, u.image, &c->err);
        rs_rbd_url_clear(&u);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void scan_glance(rs_glance *glance, const char *filter, rs_gc_graph *g,
                        rs_gc_scan_stats *st)
{
    glance_ctx c = { .g = g, .filter = filter, .err = RS_ERROR_INIT };
    rs_glance_filter f = { .limit = 1000 };
    rs_error err = RS_ERROR_INIT;
    uint64_t t0 = rs_now_ms();

    if (!glance) {
        snprintf(st->glance_error, sizeof(st->glance_error), "Glance is not configured");
        rs_gc_graph_set_glance_complete(g, false);
        return;
    }
    int rc = rs_glance_image_list(glance, &f, add_record, &c, &err);
    st->glance_ms = rs_now_ms() - t0;
    st->glance_records = c.n;
    if (rc < 0) {
        const rs_error *e = rs_error_isset(&c.err) ? &c.err : &err;
        snprintf(st->glance_error, sizeof(st->glance_error), "%s", rs_error_msg(e));
        rs_warn("msg=\"Glance listing incomplete: records are not proof\" records=%zu "
                "rc=%d error=\"%s\"", c.n, rc, rs_error_msg(e));
        rs_gc_graph_set_glance_complete(g, false);
        return;
    }
    st->glance_complete = true;
    rs_gc_graph_set_glance_complete(g, true);
}

/* ---- journals ------------------------------------------------------------- */

static int add_jobs_rados(rs_cluster *cl, const rs_gc_scan_opts *o, rs_gc_graph *g,
                          rs_gc_scan_stats *st, rs_error *err)
{
    char **ids = NULL;
    size_t n = 0;
    int rc = rs_inv_journal_jobs(cl, o->journal_pool, o->journal_ns, &ids, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = rs_gc_graph_add_running_job(g, ids[i], err);
        if (rc == -EEXIST)
            rc = 0;
        else if (rc == 0)
            st->running_jobs++;
    }
    rs_inv_names_free(ids, n);
    return rc;
}

/* CLI jobs: <dir>/<id>.json whose <id>.lock a live process holds. */
static int add_jobs_dir(const char *dir, rs_gc_graph *g, rs_gc_scan_stats *st, rs_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return 0;   /* no CLI journal: no CLI job runs */
    while (rc == 0 && (de = readdir(d))) {
        char id[256], lock[4096];
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || !rs_str_has_suffix(de->d_name, ".json") ||
            len - 5 >= sizeof(id))
            continue;
        memcpy(id, de->d_name, len - 5);
        id[len - 5] = '\0';
        snprintf(lock, sizeof(lock), "%s/%s.lock", dir, id);
        int fd = open(lock, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        bool busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);   /* drops our shared lock, if we got it */
        if (!busy)
            continue;
        rc = rs_gc_graph_add_running_job(g, id, err);
        if (rc == -EEXIST)
            rc = 0;
        else if (rc == 0)
            st->running_jobs++;
    }
    closedir(d);
    return rc;
}

/* ---- RBD ------------------------------------------------------------------- */

/* The policy's live-disk shape: nova pool, "<uuid>_disk*", no suffix.  QEMU
 * holds the exclusive lock of a running instance's disk; that must not hide
 * its rbdsnap source snapshots, so only other images count as locked. */
static bool live_disk_shape(const rs_gc_scan_opts *o, const rs_inv_image *im)
{
    return o->nova_pool && strcmp(im->pool, o->nova_pool) == 0 && !im->in_trash &&
           strstr(im->name, "_disk") && !rs_str_has_suffix(im->name, TBD_SUFFIX);
}

static int add_image(rs_gc_graph *g, const rs_gc_scan_opts *o, const rs_inv_image *im,
                     rs_gc_scan_stats *st, rs_error *err)
{
    rs_gc_image_desc d = {
        .pool = im->pool, .id = im->id, .name = im->name, .size = im->size,
        .created_at = im->created_at, .in_trash = im->in_trash,
        .trash_source = (rs_gc_trash_source)im->trash_source,
        .trash_deleted_at = im->trash_deleted_at,
        .trash_deferment_end = im->trash_deferment_end,
        .parent_pool = im->parent_pool, .parent_id = im->parent_id,
        .parent_snap_id = im->parent_snap_id,
    };
    int rc = rs_gc_graph_add_image(g, &d, err);
    if (rc < 0)
        return rc;
    st->images++;
    if (im->in_trash)
        st->trash++;
    for (size_t k = 0; k < im->nmd; k++) {
        rc = rs_gc_graph_set_image_meta(g, im->pool, im->id, im->md_keys[k], im->md_values[k],
                                        err);
        if (rc < 0)
            return rc;
    }
    for (size_t s = 0; s < im->nsnaps; s++) {
        const rs_inv_snap *sn = &im->snaps[s];
        rs_gc_snap_desc sd = {
            .id = sn->id, .name = sn->name,
            .ns = sn->ns == RS_INV_SNAP_NS_USER ? RS_GC_SNAP_NS_USER
                  : sn->ns == RS_INV_SNAP_NS_TRASH ? RS_GC_SNAP_NS_TRASH
                                                   : RS_GC_SNAP_NS_GROUP,
            .trash_original_name = sn->original_name,
            .is_protected = sn->is_protected, .created_at = sn->created_at,
        };
        /* Mirror snapshots (and anything newer) are never ours: the group
         * namespace makes the policy treat them as unknown-owner. */
        rc = rs_gc_graph_add_snap(g, im->pool, im->id, &sd, err);
        if (rc < 0)
            return rc;
        st->snaps++;
        for (size_t c = 0; c < sn->nchildren; c++) {
            rc = rs_gc_graph_add_snap_child(g, im->pool, im->id, sn->id,
                                            sn->children[c].pool, sn->children[c].image_id,
                                            err);
            if (rc < 0 && rc != -EEXIST)
                return rc;
        }
    }
    bool job_locked = o->job_lock && !im->in_trash && o->job_lock(o->job_lock_arg, im->pool,
                                                                  im->name);
    if (job_locked || (o->lock_owners && im->lock_owners > 0 && !live_disk_shape(o, im))) {
        rc = rs_gc_graph_add_locked_image(g, im->pool, im->id, err);
        if (rc < 0 && rc != -EEXIST)
            return rc;
        st->locked_images++;
    }
    return 0;
}

int rs_gc_scan(rs_cluster *cl, rs_glance *glance, const rs_gc_scan_opts *o, rs_gc_graph **out,
               rs_gc_scan_stats *stats, rs_error *err)
{
    rs_gc_scan_stats local;
    rs_gc_graph *g = NULL;
    uint64_t t0 = rs_now_ms();
    int rc;

    *out = NULL;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    if (!o || !o->pools || o->npools == 0)
        return rs_error_set(err, -EINVAL, "gc scan: no pool to scan");
    rc = rs_gc_graph_new(&g, err);
    if (rc < 0)
        return rc;

    scan_glance(glance, o->name_filter, g, stats);

    if (o->journal_pool) {
        rc = add_jobs_rados(cl, o, g, stats, err);
        if (rc < 0)
            goto fail;
    }
    if (o->journal_dir) {
        rc = add_jobs_dir(o->journal_dir, g, stats, err);
        if (rc < 0)
            goto fail;
    }

    uint64_t t1 = rs_now_ms();
    for (size_t p = 0; p < o->npools; p++) {
        rs_inv_opts io;
        rs_inv_pool *inv = NULL;
        bool dup = false;

        for (size_t q = 0; q < p; q++)
            if (strcmp(o->pools[q], o->pools[p]) == 0)
                dup = true;
        if (dup)
            continue;
        rs_inv_opts_init(&io);
        io.threads = o->threads;
        io.lock_owners = o->lock_owners;
        io.stop = o->stop;
        rc = rs_gc_graph_add_pool(g, o->pools[p], err);
        if (rc < 0)
            goto fail;
        rc = rs_inv_scan_pool(cl, o->pools[p], &io, &inv, err);
        if (rc < 0)
            goto fail;
        stats->vanished += inv->nvanished;
        for (size_t i = 0; i < inv->nimages && rc == 0; i++) {
            if (o->name_filter && !strstr(inv->images[i].name, o->name_filter))
                continue;
            if (inv->images[i].error) {
                stats->unreadable++;
                continue;
            }
            rc = add_image(g, o, &inv->images[i], stats, err);
        }
        rs_inv_pool_free(inv);
        if (rc < 0)
            goto fail;
    }
    stats->rbd_ms = rs_now_ms() - t1;
    stats->total_ms = rs_now_ms() - t0;
    rs_info("msg=\"scan done\" images=%zu trash=%zu snaps=%zu unreadable=%zu "
            "glance_records=%zu glance_complete=%s running_jobs=%zu locked=%zu rbd_ms=%llu "
            "glance_ms=%llu dur_ms=%llu", stats->images, stats->trash, stats->snaps,
            stats->unreadable, stats->glance_records, stats->glance_complete ? "yes" : "no",
            stats->running_jobs, stats->locked_images, (unsigned long long)stats->rbd_ms,
            (unsigned long long)stats->glance_ms, (unsigned long long)stats->total_ms);
    *out = g;
    return 0;
fail:
    rs_gc_graph_free(g);
    return rc;
}
