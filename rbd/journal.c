/*
 * journal.c - job records: names, JSON form, the NULL-safe wrappers and
 * the directory-of-files implementation used by the CLI.
 *
 * File journal.  <dir>/<id>.json holds the latest record; every update
 * writes <dir>/.<id>.json.<pid>.<n>, fsyncs it, renames it over the record
 * and fsyncs the directory, so after a crash the record is either the old
 * or the new one, never a torn mix.  <dir>/<id>.lock is flocked by whoever
 * works on the job (the run that began it, or a recovery that claimed it);
 * a record whose lock can be taken belongs to nobody alive.
 */
#define RS_LOG_MODULE "rbd.journal"
#include "rbd/journal.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* ---- names ----------------------------------------------------------- */

static const char *const step_names[RS_STEP_COUNT] = {
    [RS_STEP_NONE] = "none",
    [RS_STEP_TAG_SOURCE] = "tag_source",
    [RS_STEP_SNAP_CREATE] = "snap_create",
    [RS_STEP_SNAP_PROTECT] = "snap_protect",
    [RS_STEP_CLONE] = "clone",
    [RS_STEP_TAG_CLONE] = "tag_clone",
    [RS_STEP_FLATTEN] = "flatten",
    [RS_STEP_CLONE_SNAP_CREATE] = "clone_snap_create",
    [RS_STEP_CLONE_SNAP_PROTECT] = "clone_snap_protect",
    [RS_STEP_SOURCE_SNAP_REMOVE] = "source_snap_remove",
    [RS_STEP_DONE] = "done",
};

const char *rs_step_name(rs_step step)
{
    return ((unsigned)step < RS_STEP_COUNT) ? step_names[step] : "?";
}

int rs_step_parse(const char *name, rs_step *out)
{
    for (int i = 0; i < RS_STEP_COUNT; i++)
        if (name && strcmp(name, step_names[i]) == 0) {
            *out = (rs_step)i;
            return 0;
        }
    return -EINVAL;
}

static const char *const flatten_names[] = { "no", "yes", "deferred" };

const char *rs_flatten_mode_name(rs_flatten_mode m)
{
    return ((unsigned)m < 3) ? flatten_names[m] : "?";
}

int rs_flatten_mode_parse(const char *s, rs_flatten_mode *out)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, flatten_names[i]) == 0) {
            *out = (rs_flatten_mode)i;
            return 0;
        }
    return -EINVAL;
}

static const char *const state_names[] = { "running", "rolling_back", "flatten_pending",
                                           "done", "rolled_back", "failed" };

const char *rs_job_state_name(rs_job_state s)
{
    return ((unsigned)s < 6) ? state_names[s] : "?";
}

int rs_job_state_parse(const char *s, rs_job_state *out)
{
    for (int i = 0; i < 6; i++)
        if (s && strcmp(s, state_names[i]) == 0) {
            *out = (rs_job_state)i;
            return 0;
        }
    return -EINVAL;
}

/* ---- JSON ------------------------------------------------------------ */

int rs_job_to_json(const rs_job *job, char **out, rs_error *err)
{
    json_t *root = json_object(), *disks = json_array();
    char *text;

    if (!root || !disks) {
        json_decref(root);
        json_decref(disks);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "id", json_string(job->id));
    json_object_set_new(root, "instance_uuid", json_string(job->instance_uuid));
    json_object_set_new(root, "src_pool", json_string(job->src_pool));
    json_object_set_new(root, "dest_pool", json_string(job->dest_pool));
    json_object_set_new(root, "target", json_string(job->target));
    json_object_set_new(root, "clone_format", json_integer(job->clone_format));
    json_object_set_new(root, "flatten", json_string(rs_flatten_mode_name(job->flatten)));
    json_object_set_new(root, "state", json_string(rs_job_state_name(job->state)));
    json_object_set_new(root, "created_at", json_integer(job->created_at));
    json_object_set_new(root, "updated_at", json_integer(job->updated_at));
    json_object_set_new(root, "pid", json_integer(job->pid));
    json_object_set_new(root, "error", json_string(job->error));
    for (size_t i = 0; i < job->ndisks && i < RS_JOB_MAX_DISKS; i++) {
        const rs_job_disk *d = &job->disks[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:b}", "image", d->image, "snap",
                              d->snap, "clone", d->clone, "step", rs_step_name(d->step),
                              "step_done", d->step_done, "flattened", d->flattened,
                              "src_snap_removed", d->src_snap_removed);
        if (!o) {
            json_decref(root);
            json_decref(disks);
            return rs_error_set(err, -EINVAL, "job %s: disk %zu: cannot encode (bad UTF-8?)",
                                job->id, i);
        }
        json_array_append_new(disks, o);
    }
    json_object_set_new(root, "disks", disks);
    text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text)
        return rs_error_set(err, -EINVAL, "job %s: cannot encode record", job->id);
    *out = text;
    return 0;
}

static int copy_str(json_t *o, const char *key, char *dst, size_t len, bool required,
                    rs_error *err)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s) {
        if (required || (v && !json_is_null(v)))
            return rs_error_set(err, -EINVAL, "journal record: \"%s\" missing or not a string", key);
        dst[0] = '\0';
        return 0;
    }
    if (strlen(s) >= len)
        return rs_error_set(err, -EINVAL, "journal record: \"%s\" too long", key);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int rs_job_from_json(const char *text, rs_job *job, rs_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr), *disks;
    int rc = 0;

    memset(job, 0, sizeof(*job));
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return rs_error_set(err, -EINVAL, "journal record: bad JSON at line %d: %s", jerr.line,
                            jerr.text);
    }
    if ((rc = copy_str(root, "id", job->id, sizeof(job->id), true, err)) < 0 ||
        (rc = copy_str(root, "instance_uuid", job->instance_uuid, sizeof(job->instance_uuid),
                       false, err)) < 0 ||
        (rc = copy_str(root, "src_pool", job->src_pool, sizeof(job->src_pool), true, err)) < 0 ||
        (rc = copy_str(root, "dest_pool", job->dest_pool, sizeof(job->dest_pool), true, err)) < 0 ||
        (rc = copy_str(root, "target", job->target, sizeof(job->target), true, err)) < 0 ||
        (rc = copy_str(root, "error", job->error, sizeof(job->error), false, err)) < 0)
        goto out;
    job->clone_format = (int)json_integer_value(json_object_get(root, "clone_format"));
    if (job->clone_format != 1 && job->clone_format != 2) {
        rc = rs_error_set(err, -EINVAL, "journal record %s: clone_format must be 1 or 2", job->id);
        goto out;
    }
    if (rs_flatten_mode_parse(json_string_value(json_object_get(root, "flatten")),
                              &job->flatten) < 0 ||
        rs_job_state_parse(json_string_value(json_object_get(root, "state")), &job->state) < 0) {
        rc = rs_error_set(err, -EINVAL, "journal record %s: bad flatten or state", job->id);
        goto out;
    }
    job->created_at = json_integer_value(json_object_get(root, "created_at"));
    job->updated_at = json_integer_value(json_object_get(root, "updated_at"));
    job->pid = (int)json_integer_value(json_object_get(root, "pid"));
    disks = json_object_get(root, "disks");
    if (!json_is_array(disks) || json_array_size(disks) == 0 ||
        json_array_size(disks) > RS_JOB_MAX_DISKS) {
        rc = rs_error_set(err, -EINVAL, "journal record %s: \"disks\" must list 1..%d disks",
                          job->id, RS_JOB_MAX_DISKS);
        goto out;
    }
    job->ndisks = json_array_size(disks);
    for (size_t i = 0; i < job->ndisks; i++) {
        json_t *d = json_array_get(disks, i);
        rs_job_disk *jd = &job->disks[i];
        if (!json_is_object(d) ||
            (rc = copy_str(d, "image", jd->image, sizeof(jd->image), true, err)) < 0 ||
            (rc = copy_str(d, "snap", jd->snap, sizeof(jd->snap), true, err)) < 0 ||
            (rc = copy_str(d, "clone", jd->clone, sizeof(jd->clone), true, err)) < 0 ||
            rs_step_parse(json_string_value(json_object_get(d, "step")), &jd->step) < 0) {
            rc = rs_error_set(err, -EINVAL, "journal record %s: disk %zu is malformed", job->id, i);
            goto out;
        }
        jd->step_done = json_is_true(json_object_get(d, "step_done"));
        jd->flattened = json_is_true(json_object_get(d, "flattened"));
        jd->src_snap_removed = json_is_true(json_object_get(d, "src_snap_removed"));
    }
out:
    json_decref(root);
    return rc;
}

/* ---- wrappers -------------------------------------------------------- */

int rs_journal_begin(rs_journal *j, const rs_job *job, rs_error *err)
{
    return (j && j->ops->begin) ? j->ops->begin(j, job, err) : 0;
}

int rs_journal_step_start(rs_journal *j, const rs_job *job, rs_step step, int disk,
                          const char *details, rs_error *err)
{
    return (j && j->ops->step_start) ? j->ops->step_start(j, job, step, disk, details, err) : 0;
}

int rs_journal_step_done(rs_journal *j, const rs_job *job, rs_step step, int disk,
                         const char *details, rs_error *err)
{
    return (j && j->ops->step_done) ? j->ops->step_done(j, job, step, disk, details, err) : 0;
}

int rs_journal_end(rs_journal *j, const rs_job *job, rs_error *err)
{
    return (j && j->ops->end) ? j->ops->end(j, job, err) : 0;
}

int rs_journal_list_orphans(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err)
{
    *jobs = NULL;
    *n = 0;
    return (j && j->ops->list_orphans) ? j->ops->list_orphans(j, jobs, n, err) : 0;
}

void rs_journal_release(rs_journal *j, const char *job_id)
{
    if (j && j->ops->release)
        j->ops->release(j, job_id);
}

void rs_journal_close(rs_journal *j)
{
    if (j && j->ops->close)
        j->ops->close(j);
}

/* ---- directory implementation --------------------------------------- */

struct held_lock {
    char id[RS_JOB_ID_MAX];
    int fd;
    struct held_lock *next;
};

struct dirj {
    char *dir;
    int dirfd;
    pthread_mutex_t lock;
    struct held_lock *held;
    atomic_uint seq;
};

static bool id_is_safe(const char *id)
{
    if (!id[0] || id[0] == '.')
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static int write_record(struct dirj *d, const rs_job *job, rs_error *err)
{
    rs_autofree char *text = NULL;
    char tmp[RS_JOB_ID_MAX + 64], final[RS_JOB_ID_MAX + 16];
    rs_job copy = *job;
    size_t len, off = 0;
    int fd, rc;

    copy.updated_at = rs_wall_time();
    rc = rs_job_to_json(&copy, &text, err);
    if (rc < 0)
        return rc;
    snprintf(tmp, sizeof(tmp), ".%s.json.%d.%u", job->id, (int)getpid(),
             atomic_fetch_add(&d->seq, 1));
    snprintf(final, sizeof(final), "%s.json", job->id);
    fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return rs_error_set(err, -errno, "journal %s/%s: %s", d->dir, tmp, strerror(errno));
    len = strlen(text);
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = rs_error_set(err, -errno, "journal %s/%s: write: %s", d->dir, tmp, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = rs_error_set(err, -errno, "journal %s/%s: fsync: %s", d->dir, tmp, strerror(errno));
    close(fd);
    if (rc == 0 && renameat(d->dirfd, tmp, d->dirfd, final) < 0)
        rc = rs_error_set(err, -errno, "journal %s/%s: rename: %s", d->dir, final, strerror(errno));
    if (rc < 0) {
        unlinkat(d->dirfd, tmp, 0);
        return rc;
    }
    if (fsync(d->dirfd) < 0)
        return rs_error_set(err, -errno, "journal %s: fsync dir: %s", d->dir, strerror(errno));
    return 0;
}

/* Take <id>.lock without blocking.  1 = taken (fd in *fd), 0 = busy. */
static int take_lock(struct dirj *d, const char *id, int *fdp, rs_error *err)
{
    char name[RS_JOB_ID_MAX + 16];
    int fd;

    snprintf(name, sizeof(name), "%s.lock", id);
    fd = openat(d->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return rs_error_set(err, -errno, "journal %s/%s: %s", d->dir, name, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return 0;
        return rs_error_set(err, -e, "journal %s/%s: flock: %s", d->dir, name, strerror(e));
    }
    *fdp = fd;
    return 1;
}

static void hold(struct dirj *d, const char *id, int fd)
{
    struct held_lock *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        return;
    }
    snprintf(h->id, sizeof(h->id), "%s", id);
    h->fd = fd;
    pthread_mutex_lock(&d->lock);
    h->next = d->held;
    d->held = h;
    pthread_mutex_unlock(&d->lock);
}

static bool is_held(struct dirj *d, const char *id)
{
    bool held = false;
    pthread_mutex_lock(&d->lock);
    for (struct held_lock *h = d->held; h && !held; h = h->next)
        held = strcmp(h->id, id) == 0;
    pthread_mutex_unlock(&d->lock);
    return held;
}

/* Drop our lock on @id; with @remove, delete the record and lock file first. */
static void unhold(struct dirj *d, const char *id, bool remove)
{
    struct held_lock **pp, *h = NULL;
    char name[RS_JOB_ID_MAX + 16];

    pthread_mutex_lock(&d->lock);
    for (pp = &d->held; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            h = *pp;
            *pp = h->next;
            break;
        }
    pthread_mutex_unlock(&d->lock);
    if (remove) {
        snprintf(name, sizeof(name), "%s.json", id);
        unlinkat(d->dirfd, name, 0);
        snprintf(name, sizeof(name), "%s.lock", id);
        unlinkat(d->dirfd, name, 0);
        fsync(d->dirfd);
    }
    if (h) {
        close(h->fd);
        free(h);
    }
}

static int dj_begin(rs_journal *j, const rs_job *job, rs_error *err)
{
    struct dirj *d = j->priv;
    int fd = -1, rc;

    if (!id_is_safe(job->id))
        return rs_error_set(err, -EINVAL, "job id \"%s\": only [A-Za-z0-9_-] allowed", job->id);
    if (is_held(d, job->id))          /* claimed by our own list_orphans */
        return write_record(d, job, err);
    rc = take_lock(d, job->id, &fd, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return rs_error_set(err, -EBUSY, "job %s: already running (locked in %s)", job->id, d->dir);
    hold(d, job->id, fd);
    rc = write_record(d, job, err);
    if (rc < 0)
        unhold(d, job->id, false);
    return rc;
}

static int dj_step(rs_journal *j, const rs_job *job, rs_step step, int disk, const char *details,
                   rs_error *err)
{
    return write_record(j->priv, job, err);
}

static int dj_end(rs_journal *j, const rs_job *job, rs_error *err)
{
    struct dirj *d = j->priv;
    int rc = 0;

    if (job->state == RS_JOB_DONE || job->state == RS_JOB_ROLLED_BACK) {
        unhold(d, job->id, true);
        return 0;
    }
    rc = write_record(d, job, err);
    unhold(d, job->id, false);
    return rc;
}

static int read_file_at(int dirfd, const char *name, char **out)
{
    rs_autoclose int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t off = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size > (1 << 20))
        return -EFBIG;
    buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return -ENOMEM;
    while (off < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    buf[off] = '\0';
    *out = buf;
    return 0;
}

static int dj_list_orphans(rs_journal *j, rs_job **jobs, size_t *n, rs_error *err)
{
    struct dirj *d = j->priv;
    int dfd = dup(d->dirfd);
    DIR *dir;
    struct dirent *de;
    rs_job *out = NULL;
    size_t cnt = 0, cap = 0;

    if (dfd < 0)
        return rs_error_set(err, -errno, "journal %s: %s", d->dir, strerror(errno));
    dir = fdopendir(dfd);
    if (!dir) {
        close(dfd);
        return rs_error_set(err, -errno, "journal %s: %s", d->dir, strerror(errno));
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL) {
        char id[RS_JOB_ID_MAX];
        size_t len = strlen(de->d_name);
        rs_autofree char *text = NULL;
        rs_error perr = RS_ERROR_INIT;
        int fd = -1, rc;

        if (de->d_name[0] == '.' || !rs_str_has_suffix(de->d_name, ".json") ||
            len - 5 >= sizeof(id))
            continue;
        memcpy(id, de->d_name, len - 5);
        id[len - 5] = '\0';
        if (!id_is_safe(id))
            continue;
        rc = take_lock(d, id, &fd, &perr);
        if (rc <= 0) {
            if (rc == 0)
                rs_debug("msg=\"job owned by a live run\" job=%s", id);
            else
                rs_warn("msg=\"cannot lock job\" job=%s error=\"%s\"", id, rs_error_msg(&perr));
            continue;
        }
        if (read_file_at(d->dirfd, de->d_name, &text) < 0) {    /* vanished */
            close(fd);
            continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            rs_job *nj = realloc(out, cap * sizeof(*out));
            if (!nj) {
                close(fd);
                break;
            }
            out = nj;
        }
        if (rs_job_from_json(text, &out[cnt], &perr) < 0) {
            rs_warn("msg=\"unreadable journal record\" file=%s/%s error=\"%s\"", d->dir,
                    de->d_name, rs_error_msg(&perr));
            close(fd);
            continue;
        }
        if (strcmp(out[cnt].id, id) != 0) {
            rs_warn("msg=\"journal record id does not match its file\" file=%s/%s", d->dir,
                    de->d_name);
            close(fd);
            continue;
        }
        hold(d, id, fd);
        cnt++;
    }
    closedir(dir);
    *jobs = out;
    *n = cnt;
    return 0;
}

static void dj_release(rs_journal *j, const char *job_id)
{
    unhold(j->priv, job_id, false);
}

static void dj_close(rs_journal *j)
{
    struct dirj *d = j->priv;
    struct held_lock *h, *n;

    for (h = d->held; h; h = n) {
        n = h->next;
        close(h->fd);
        free(h);
    }
    close(d->dirfd);
    pthread_mutex_destroy(&d->lock);
    free(d->dir);
    free(d);
    free(j);
}

static const rs_journal_ops dir_ops = {
    .begin = dj_begin,
    .step_start = dj_step,
    .step_done = dj_step,
    .end = dj_end,
    .list_orphans = dj_list_orphans,
    .release = dj_release,
    .close = dj_close,
};

static int mkdir_p(const char *path, rs_error *err)
{
    rs_autofree char *p = strdup(path);
    if (!p)
        return rs_error_set(err, -ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return rs_error_set(err, -errno, "journal dir %s: mkdir %s: %s", path, p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return rs_error_set(err, -errno, "journal dir %s: %s", path, strerror(errno));
    return 0;
}

int rs_journal_dir_open(const char *dir, rs_journal **out, rs_error *err)
{
    struct dirj *d;
    rs_journal *j;
    int rc;

    if (!dir || !*dir)
        dir = RS_JOURNAL_DIR_DEFAULT;
    rc = mkdir_p(dir, err);
    if (rc < 0)
        return rc;
    d = calloc(1, sizeof(*d));
    j = calloc(1, sizeof(*j));
    if (!d || !j) {
        free(d);
        free(j);
        return rs_error_set(err, -ENOMEM, "out of memory");
    }
    d->dir = strdup(dir);
    d->dirfd = d->dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (!d->dir || d->dirfd < 0) {
        rc = rs_error_set(err, d->dir ? -errno : -ENOMEM, "journal dir %s: %s", dir,
                          strerror(d->dir ? errno : ENOMEM));
        if (d->dirfd >= 0)
            close(d->dirfd);
        free(d->dir);
        free(d);
        free(j);
        return rc;
    }
    pthread_mutex_init(&d->lock, NULL);
    j->ops = &dir_ops;
    j->priv = d;
    *out = j;
    return 0;
}
