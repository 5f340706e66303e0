/*
 * snapshot_file.c - the file-backed snapshot path (see snapshot_file.h).
 *
 * Design.  virt/ does the libvirt and qemu-img mechanics (live/cold copy,
 * recovery); this file orders them with Glance and RBD exactly as the RBD
 * flow does (record first, location last) and makes every step
 * recoverable:
 *
 *   state file   <work_dir>/rbdsnap-file-<image id>.json, written before the
 *                copy (domain, disk, previous state, RBD image) and at each
 *                virt journal event (delta path, managed save, undefine with
 *                the inactive XML in a 0600 side file, done).  The domain and
 *                the delta live on this host, so their journal does too; the
 *                cluster-wide job record (req.<id>) stays the daemon's.
 *   copy         rs_virt_live_copy / rs_virt_cold_copy into
 *                rbd:<dest_pool>/<image id> (qemu-img creates it sparse), or,
 *                for upload "glance", through the consume callback: the
 *                source (delta or disk, backing chain followed) is exported
 *                read-only by a private qemu-nbd on a UNIX socket and its raw
 *                bytes are read with a minimal NBD client straight into
 *                Glance's PUT /file.  No local copy in either mode.
 *   finish       tag, @snap create + protect, location, wait active.
 *
 * Steps are reported to the observer ("glance_create", "copy_live" or
 * "copy_cold", "tag", "snap_create", "snap_protect", "register",
 * "wait_active", "upload") and bracketed by failpoints
 * service.file.<step> and service.file.<step>.done.
 *
 * Threads: one job per call; nothing here is shared between jobs but the
 * env's handles, which are thread-safe.
 */
#define RS_LOG_MODULE "snapshot.file"
#include "service/snapshot_file.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "rbd/flow.h"
#include "rbd/ops.h"

#ifndef RBDSNAP_VERSION
#define RBDSNAP_VERSION "0"
#endif

extern char **environ;

/* ---- observer helpers ----------------------------------------------------- */

static bool cancelled(const rs_snapshot_observer *obs)
{
    return obs && obs->cancel && atomic_load(obs->cancel);
}

static void step(const rs_snapshot_observer *obs, const char *name, bool begin, int rc)
{
    if (obs && obs->step)
        obs->step(obs->arg, name, begin, rc);
}

static void progress(const rs_snapshot_observer *obs, int pct)
{
    if (obs && obs->progress)
        obs->progress(obs->arg, pct);
}

static int announce(const rs_snapshot_observer *obs, rs_snapshot_phase p,
                    const rs_snapshot_req *req, rs_error *err)
{
    if (cancelled(obs))
        return rs_error_set(err, -ECANCELED, "job %s cancelled before %s", req->job_id,
                            rs_snapshot_phase_name(p));
    if (obs && obs->phase) {
        int rc = obs->phase(obs->arg, p, req);
        if (rc < 0)
            return rs_error_set(err, rc, "job %s: %s stopped before %s", req->job_id,
                                rc == -ESHUTDOWN ? "daemon stopping" : "journal",
                                rs_snapshot_phase_name(p));
    }
    return 0;
}

static int fp(const char *name, const char *suffix, rs_error *err)
{
    char n[96];
    snprintf(n, sizeof n, "service.file.%s%s", name, suffix);
    int rc = rs_failpoint(n);
    if (rc < 0)
        rs_error_set(err, rc, "failpoint %s", n);
    return rc;
}

/* ---- the state file --------------------------------------------------------- */

typedef struct fstate {
    char path[PATH_MAX];        /* the JSON file */
    char xml_path[PATH_MAX];    /* saved inactive XML (undefine fallback) */
    char job_id[RS_JOB_ID_MAX];
    char image_id[RS_JOB_ID_MAX];
    char domain[256];
    char domain_uuid[64];
    char disk[64];
    char delta[PATH_MAX];
    char upload[8];
    char dest_pool[RS_JOB_NAME_MAX];
    bool was_active;            /* running or paused when the job began */
    bool was_paused;
    bool saved;                 /* managed save done, no DONE yet */
    bool xml;                   /* undefined, XML in xml_path, no DONE yet */
    bool virt_dirty;            /* a virt step began and has not said DONE */
    bool dest;                  /* the RBD image may exist */
} fstate;

static int mkdir_p(const char *dir, rs_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return rs_error_set(err, -ENAMETOOLONG, "work dir %s: name too long", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return rs_error_set(err, -errno, "work dir %s: mkdir %s: %s", dir, tmp,
                                strerror(errno));
        *p = '/';
    }
    /* 0711: QEMU (another user in production) must reach the delta. */
    if (mkdir(tmp, 0711) < 0 && errno != EEXIST)
        return rs_error_set(err, -errno, "work dir %s: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return rs_error_set(err, -ENOTDIR, "work dir %s: not a directory", dir);
    return 0;
}

static const char *work_dir(const rs_conf *conf)
{
    return conf->snapshot.work_dir && *conf->snapshot.work_dir ? conf->snapshot.work_dir
                                                               : "/var/lib/rbdsnap/work";
}

static void state_paths(fstate *st, const rs_conf *conf, const char *image_id)
{
    snprintf(st->path, sizeof st->path, "%s/rbdsnap-file-%s.json", work_dir(conf), image_id);
    snprintf(st->xml_path, sizeof st->xml_path, "%s/rbdsnap-file-%s.xml", work_dir(conf),
             image_id);
    snprintf(st->image_id, sizeof st->image_id, "%s", image_id);
}

static int fsync_dir_of(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    int fd = open(d[0] ? d : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Write @text to @path atomically, mode 0600. */
static int write_file_atomic(const char *path, const char *text, rs_error *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return rs_error_set(err, -errno, "state file %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -errno;
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rs_error_set(err, rc, "state file %s: %s", path, strerror(-rc));
    }
    fsync_dir_of(path);
    return 0;
}

static int state_save(const fstate *st, rs_error *err)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, "
                          "s:b, s:b, s:I}",
                          "version", 1, "job_id", st->job_id, "image_id", st->image_id,
                          "domain", st->domain, "domain_uuid", st->domain_uuid, "disk",
                          st->disk, "delta", st->delta, "upload", st->upload, "dest_pool",
                          st->dest_pool, "was_active", st->was_active, "was_paused",
                          st->was_paused, "saved", st->saved, "xml", st->xml, "virt_dirty",
                          st->virt_dirty, "dest", st->dest, "updated_at",
                          (json_int_t)rs_wall_time());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return rs_error_set(err, -ENOMEM, "state file %s: out of memory", st->path);
    int rc = write_file_atomic(st->path, text, err);
    free(text);
    return rc;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* 0 and *st filled, -ENOENT when there is no state file. */
static int state_load(fstate *st, const rs_conf *conf, const char *image_id, rs_error *err)
{
    memset(st, 0, sizeof *st);
    state_paths(st, conf, image_id);
    json_error_t je;
    json_t *o = json_load_file(st->path, 0, &je);
    if (!o) {
        if (access(st->path, F_OK) < 0 && errno == ENOENT)
            return -ENOENT;
        return rs_error_set(err, -EBADMSG, "state file %s: %s", st->path, je.text);
    }
    copy_str(st->job_id, sizeof st->job_id, o, "job_id");
    copy_str(st->domain, sizeof st->domain, o, "domain");
    copy_str(st->domain_uuid, sizeof st->domain_uuid, o, "domain_uuid");
    copy_str(st->disk, sizeof st->disk, o, "disk");
    copy_str(st->delta, sizeof st->delta, o, "delta");
    copy_str(st->upload, sizeof st->upload, o, "upload");
    copy_str(st->dest_pool, sizeof st->dest_pool, o, "dest_pool");
    st->was_active = json_is_true(json_object_get(o, "was_active"));
    st->was_paused = json_is_true(json_object_get(o, "was_paused"));
    st->saved = json_is_true(json_object_get(o, "saved"));
    st->xml = json_is_true(json_object_get(o, "xml"));
    st->virt_dirty = json_is_true(json_object_get(o, "virt_dirty"));
    st->dest = json_is_true(json_object_get(o, "dest"));
    json_decref(o);
    return 0;
}

static void state_remove(const fstate *st)
{
    if (unlink(st->xml_path) < 0 && errno != ENOENT)
        rs_warn("image=%s cannot remove %s: %s", st->image_id, st->xml_path, strerror(errno));
    if (unlink(st->path) < 0 && errno != ENOENT)
        rs_warn("image=%s cannot remove %s: %s", st->image_id, st->path, strerror(errno));
    fsync_dir_of(st->path);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The virt journal callback: persist before the step. */
static int on_virt_journal(void *opaque, const rs_virt_journal_rec *rec)
{
    fstate *st = opaque;
    rs_error err = RS_ERROR_INIT;
    switch (rec->event) {
    case RS_VIRT_J_DELTA:
        snprintf(st->delta, sizeof st->delta, "%s", rec->delta_path ? rec->delta_path : "");
        st->virt_dirty = true;
        break;
    case RS_VIRT_J_UNDEFINE:
        if (!rec->saved_xml || write_file_atomic(st->xml_path, rec->saved_xml, &err) < 0) {
            rs_err("job=%s image=%s cannot keep the domain XML: %s", st->job_id, st->image_id,
                   rs_error_msg(&err));
            return -EIO;
        }
        st->xml = true;
        st->virt_dirty = true;
        break;
    case RS_VIRT_J_MANAGED_SAVE:
        st->saved = true;
        st->was_paused = rec->was_paused;
        st->virt_dirty = true;
        break;
    case RS_VIRT_J_DONE:
        st->delta[0] = '\0';
        st->saved = st->xml = st->virt_dirty = false;
        break;
    }
    int rc = state_save(st, &err);
    if (rc < 0) {
        rs_err("job=%s image=%s journal: %s", st->job_id, st->image_id, rs_error_msg(&err));
        return rc;
    }
    if (rec->event == RS_VIRT_J_DONE)
        unlink(st->xml_path);
    return 0;
}

/* ---- undo ------------------------------------------------------------------------ */

/* Domain defined, previous state, no block job, no delta. */
static int undo_virt(const rs_snapshot_env *env, fstate *st, rs_error *err)
{
    if (!st->virt_dirty)
        return 0;
    if (!env->virt)
        return rs_error_set(err, -ENOTCONN, "domain %s: libvirt not connected; cannot repair "
                                            "(state kept in %s)", st->domain, st->path);
    char *xml = st->xml ? read_text(st->xml_path) : NULL;
    if (st->xml && !xml)
        rs_warn("image=%s saved XML %s unreadable", st->image_id, st->xml_path);
    rs_virt_recover_info ri = {
        .domain = st->domain_uuid[0] ? st->domain_uuid : st->domain,
        .saved_xml = xml,
        .disk = st->disk[0] ? st->disk : NULL,
        .delta_path = st->delta[0] ? st->delta : NULL,
        .start = st->was_active,
        .start_paused = st->was_paused,
        .thaw = st->was_active && !st->was_paused,
    };
    int rc = rs_virt_recover(env->virt, &ri, err);
    free(xml);
    if (rc < 0)
        return rc;
    rs_info("job=%s domain=%s image=%s repaired (defined, no block job, delta removed%s)",
            st->job_id, st->domain, st->image_id, st->was_active ? ", started" : "");
    st->delta[0] = '\0';
    st->saved = st->xml = st->virt_dirty = false;
    unlink(st->xml_path);
    return 0;
}

static int undo_rbd(const rs_snapshot_env *env, fstate *st, rs_error *err)
{
    if (!st->dest || strcmp(st->upload, "rbd") != 0)
        return 0;
    int rc = rs_rbd_snap_remove(env->cluster, st->dest_pool, st->image_id, RS_FLOW_CLONE_SNAP,
                                true, err);
    if (rc == 0 || rc == -ENOENT) {
        rs_error_clear(err);
        rc = rs_rbd_image_remove(env->cluster, st->dest_pool, st->image_id, err);
    }
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0)
        st->dest = false;
    return rc;
}

int rs_snapshot_file_recover(const rs_snapshot_env *env, const char *image_id, bool keep_image,
                             rs_error *err)
{
    fstate st;
    if (!image_id || !*image_id)
        return 0;
    int rc = state_load(&st, env->conf, image_id, err);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    rs_info("job=%s image=%s domain=%s recovering file-backed job (dirty=%d saved=%d "
            "undefined=%d delta=%s dest=%d)", st.job_id, image_id, st.domain, st.virt_dirty,
            st.saved, st.xml, st.delta[0] ? st.delta : "-", st.dest);
    rc = undo_virt(env, &st, err);
    if (rc == 0 && !keep_image)
        rc = undo_rbd(env, &st, err);
    if (rc < 0) {
        rs_error state_err = RS_ERROR_INIT;
        state_save(&st, &state_err);
        return rc;
    }
    state_remove(&st);
    return 1;
}

/* ---- Glance upload through qemu-nbd --------------------------------------------------- */

#define NBD_MAGIC 0x4e42444d41474943ULL         /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454F5054ULL
#define NBD_REQUEST_MAGIC 0x25609513U
#define NBD_REPLY_MAGIC 0x67446698U
#define NBD_FLAG_FIXED_NEWSTYLE 1
#define NBD_FLAG_NO_ZEROES 2
#define NBD_OPT_EXPORT_NAME 1
#define NBD_CMD_READ 0
#define NBD_CMD_DISC 2
#define NBD_CHUNK (4u << 20)

typedef struct nbd_reader {
    pid_t pid;
    int fd;
    char sock[PATH_MAX];
    uint64_t size;          /* export size */
    uint64_t off;           /* next offset to fetch */
    uint64_t handle;
    char *buf;
    size_t blen, bpos;
    const atomic_bool *cancel;
    int rc;
    char msg[256];
} nbd_reader;

static int io_full(int fd, void *buf, size_t len, bool wr)
{
    char *p = buf;
    while (len) {
        ssize_t n = wr ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int nbd_request(nbd_reader *r, uint16_t type, uint64_t off, uint32_t len)
{
    unsigned char h[28];
    uint32_t m = htobe32(NBD_REQUEST_MAGIC), l = htobe32(len);
    uint16_t f = 0, t = htobe16(type);
    uint64_t hd = htobe64(++r->handle), o = htobe64(off);
    memcpy(h, &m, 4);
    memcpy(h + 4, &f, 2);
    memcpy(h + 6, &t, 2);
    memcpy(h + 8, &hd, 8);
    memcpy(h + 16, &o, 8);
    memcpy(h + 24, &l, 4);
    return io_full(r->fd, h, sizeof h, true);
}

static int nbd_read(nbd_reader *r, uint64_t off, uint32_t len, void *out)
{
    int rc = nbd_request(r, NBD_CMD_READ, off, len);
    unsigned char h[16];
    if (rc == 0)
        rc = io_full(r->fd, h, sizeof h, false);
    if (rc < 0) {
        snprintf(r->msg, sizeof r->msg, "NBD read at %llu: %s", (unsigned long long)off,
                 strerror(-rc));
        return rc;
    }
    uint32_t magic, error;
    uint64_t hd;
    memcpy(&magic, h, 4);
    memcpy(&error, h + 4, 4);
    memcpy(&hd, h + 8, 8);
    if (be32toh(magic) != NBD_REPLY_MAGIC || be64toh(hd) != r->handle) {
        snprintf(r->msg, sizeof r->msg, "NBD read at %llu: bad reply", (unsigned long long)off);
        return -EBADMSG;
    }
    if (error) {
        snprintf(r->msg, sizeof r->msg, "NBD read at %llu: server error %u",
                 (unsigned long long)off, be32toh(error));
        return -EIO;
    }
    rc = io_full(r->fd, out, len, false);
    if (rc < 0)
        snprintf(r->msg, sizeof r->msg, "NBD read at %llu: %s", (unsigned long long)off,
                 strerror(-rc));
    return rc;
}

static void nbd_close(nbd_reader *r)
{
    if (r->fd >= 0) {
        nbd_request(r, NBD_CMD_DISC, 0, 0);
        close(r->fd);
        r->fd = -1;
    }
    if (r->pid > 0) {
        /* Without --persistent qemu-nbd leaves after its client. */
        int status;
        for (int i = 0; i < 50; i++) {
            if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
                r->pid = 0;
                break;
            }
            rs_sleep_ms(100);
        }
        if (r->pid > 0) {
            kill(r->pid, SIGTERM);
            waitpid(r->pid, &status, 0);
            r->pid = 0;
        }
    }
    unlink(r->sock);
    free(r->buf);
    r->buf = NULL;
}

/* Export @src (format @fmt, read-only) with a private qemu-nbd and connect. */
static int nbd_open(nbd_reader *r, const char *dir, const char *image_id, const char *src,
                    const char *fmt, rs_error *err)
{
    char hex[9];
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (rs_random_hex(hex, 4) < 0)
        return rs_error_set(err, -EIO, "no random bytes");
    snprintf(r->sock, sizeof r->sock, "%s/rbdsnap-nbd-%.8s-%s.sock", dir, image_id, hex);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(r->sock) >= sizeof sa.sun_path)
        return rs_error_set(err, -ENAMETOOLONG, "socket path %s too long (work_dir)", r->sock);
    memcpy(sa.sun_path, r->sock, strlen(r->sock) + 1);
    r->buf = malloc(NBD_CHUNK);
    if (!r->buf)
        return rs_error_set(err, -ENOMEM, "out of memory");

    char fmtarg[32], sockarg[PATH_MAX + 16];
    snprintf(fmtarg, sizeof fmtarg, "--format=%s", fmt);
    snprintf(sockarg, sizeof sockarg, "--socket=%s", r->sock);
    char *argv[] = { "qemu-nbd", "--read-only", fmtarg, sockarg, "--shared=1",
                     (char *)src, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&r->pid, "qemu-nbd", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        r->pid = 0;
        free(r->buf);
        r->buf = NULL;
        return rs_error_set(err, -rc, "qemu-nbd %s: %s", src, strerror(rc));
    }
    /* Wait for the socket (bounded), noticing an early exit. */
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            nbd_close(r);
            return rs_error_set(err, -EIO, "qemu-nbd %s exited (status %d) before serving",
                                src, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (r->fd < 0) {
            rc = -errno;
            nbd_close(r);
            return rs_error_set(err, rc, "socket: %s", strerror(-rc));
        }
        if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        close(r->fd);
        r->fd = -1;
        rs_sleep_ms(50);
    }
    if (r->fd < 0) {
        nbd_close(r);
        return rs_error_set(err, -ETIMEDOUT, "qemu-nbd %s: socket %s never answered", src,
                            r->sock);
    }
    struct timeval tv = { .tv_sec = 120 };
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    /* Fixed newstyle handshake, NBD_OPT_EXPORT_NAME "" (qemu-nbd's default). */
    unsigned char hs[18];
    rc = io_full(r->fd, hs, sizeof hs, false);
    uint64_t m1, m2;
    uint16_t hflags;
    memcpy(&m1, hs, 8);
    memcpy(&m2, hs + 8, 8);
    memcpy(&hflags, hs + 16, 2);
    hflags = be16toh(hflags);
    if (rc == 0 && (be64toh(m1) != NBD_MAGIC || be64toh(m2) != NBD_IHAVEOPT))
        rc = -EPROTO;
    uint32_t cflags = htobe32(NBD_FLAG_FIXED_NEWSTYLE | (hflags & NBD_FLAG_NO_ZEROES));
    if (rc == 0)
        rc = io_full(r->fd, &cflags, 4, true);
    unsigned char opt[16];
    uint64_t om = htobe64(NBD_IHAVEOPT);
    uint32_t on = htobe32(NBD_OPT_EXPORT_NAME), ol = 0;
    memcpy(opt, &om, 8);
    memcpy(opt + 8, &on, 4);
    memcpy(opt + 12, &ol, 4);
    if (rc == 0)
        rc = io_full(r->fd, opt, sizeof opt, true);
    unsigned char ex[10 + 124];
    size_t exlen = (hflags & NBD_FLAG_NO_ZEROES) ? 10 : sizeof ex;
    if (rc == 0)
        rc = io_full(r->fd, ex, exlen, false);
    if (rc < 0) {
        nbd_close(r);
        return rs_error_set(err, rc == -EPROTO ? -EPROTO : rc, "qemu-nbd %s: handshake: %s",
                            src, strerror(-rc));
    }
    uint64_t size;
    memcpy(&size, ex, 8);
    r->size = be64toh(size);
    return 0;
}

/* rs_glance_read_cb */
static ssize_t nbd_upload_read(void *ctx, char *buf, size_t len)
{
    nbd_reader *r = ctx;
    if (r->cancel && atomic_load(r->cancel)) {
        r->rc = -ECANCELED;
        snprintf(r->msg, sizeof r->msg, "cancelled");
        return -ECANCELED;
    }
    if (r->bpos == r->blen) {
        if (r->off >= r->size)
            return 0;
        uint64_t left = r->size - r->off;
        uint32_t n = left < NBD_CHUNK ? (uint32_t)left : NBD_CHUNK;
        int rc = nbd_read(r, r->off, n, r->buf);
        if (rc < 0) {
            r->rc = rc;
            return rc;
        }
        r->off += n;
        r->blen = n;
        r->bpos = 0;
    }
    size_t n = r->blen - r->bpos < len ? r->blen - r->bpos : len;
    memcpy(buf, r->buf + r->bpos, n);
    r->bpos += n;
    return (ssize_t)n;
}

typedef struct upload_ctx {
    const rs_snapshot_env *env;
    const rs_snapshot_observer *obs;
    const char *image_id;
    const char *job_id;
    uint64_t bytes;
    uint64_t upload_ms;
} upload_ctx;

/* rs_virt_copy_opts.consume for upload "glance". */
static int consume_upload(void *opaque, const char *src, const char *format,
                          uint64_t virtual_size, rs_error *err)
{
    upload_ctx *u = opaque;
    nbd_reader r;
    uint64_t t0 = rs_now_ms();
    step(u->obs, "upload", true, 0);
    int rc = fp("upload", "", err);
    if (rc == 0)
        rc = nbd_open(&r, work_dir(u->env->conf), u->image_id, src, format, err);
    if (rc == 0) {
        r.cancel = u->obs ? u->obs->cancel : NULL;
        if (virtual_size && r.size != virtual_size)
            rs_warn("job=%s image=%s export size %llu, disk capacity %llu", u->job_id,
                    u->image_id, (unsigned long long)r.size, (unsigned long long)virtual_size);
        rc = rs_glance_image_upload(u->env->glance, u->image_id, nbd_upload_read, &r,
                                    (int64_t)r.size, err);
        if (rc < 0 && r.rc < 0)
            rs_error_prefix(err, "%s", r.msg);
        u->bytes = r.off;
        nbd_close(&r);
    }
    if (rc == 0)
        rc = fp("upload", ".done", err);
    u->upload_ms = rs_now_ms() - t0;
    step(u->obs, "upload", false, rc);
    if (rc == 0)
        rs_info("job=%s image=%s uploaded src=%s bytes=%llu dur_ms=%llu", u->job_id,
                u->image_id, src, (unsigned long long)u->bytes,
                (unsigned long long)u->upload_ms);
    return rc;
}

/* ---- applies ------------------------------------------------------------------------ */

bool rs_snapshot_file_domain(rs_virt_dom *dom)
{
    rs_virt_disk_list *l = NULL;
    if (rs_virt_domain_disks(dom, RS_VIRT_DISKS_ROOT, &l, NULL) < 0)
        return false;
    bool file = l->n > 0 && l->disks[0].kind == RS_VIRT_DISK_FILE;
    rs_virt_disk_list_free(l);
    return file;
}

int rs_snapshot_file_applies(const rs_snapshot_env *env, const rs_snapshot_req *req,
                             bool *is_file, rs_error *err)
{
    (void)err;
    *is_file = false;
    const char *who = req->instance_uuid ? req->instance_uuid : req->domain;
    if (!env->virt || !who || (req->disks && req->ndisks))
        return 0;
    rs_virt_dom *dom = NULL;
    if (rs_virt_domain_lookup(env->virt, who, &dom, NULL) < 0)
        return 0;
    *is_file = rs_snapshot_file_domain(dom);
    rs_virt_dom_free(dom);
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------ */

static int glance_create(const rs_snapshot_env *env, const rs_snapshot_req *req,
                         const rs_snapshot_observer *obs, bool *created, rs_error *err)
{
    int rc = announce(obs, RS_SNAP_PHASE_GLANCE_CREATE, req, err);
    if (rc < 0)
        return rc;
    step(obs, "glance_create", true, 0);
    progress(obs, 5);
    rs_kv *extra = calloc(req->nprops + 1, sizeof *extra);
    if (!extra) {
        rc = rs_error_set(err, -ENOMEM, "out of memory");
        step(obs, "glance_create", false, rc);
        return rc;
    }
    for (size_t i = 0; i < req->nprops; i++)
        extra[i] = req->props[i];
    extra[req->nprops] = (rs_kv){ "rbdsnap_job_id", req->job_id };
    rs_glance_image_spec spec = {
        .id = req->image_id, .name = req->name ? req->name : req->image_id, .snapshot = true,
        .instance_uuid = req->instance_uuid, .base_image_ref = req->base_image_ref,
        .owner_id = req->owner_id, .user_id = req->user_id, .disk_format = "raw",
        .container_format = "bare", .extra = extra, .nextra = req->nprops + 1,
    };
    bool exists = false;
    rc = fp("glance_create", "", err);
    if (rc == 0 && req->resume) {
        rs_glance_image *img = NULL;
        if (rs_glance_image_get(env->glance, req->image_id, &img, NULL) == 0) {
            exists = img->status && strcmp(img->status, "queued") == 0;
            rs_glance_image_free(img);
        }
    }
    if (rc == 0 && !exists)
        rc = rs_glance_image_create(env->glance, &spec, NULL, err);
    free(extra);
    if (rc == 0)
        *created = true;
    if (rc == 0)
        rc = fp("glance_create", ".done", err);
    step(obs, "glance_create", false, rc);
    return rc;
}

/* Provenance metadata, then @snap created and protected. */
static int finish_rbd(const rs_snapshot_env *env, const rs_snapshot_req *req,
                      const rs_snapshot_observer *obs, const char *pool, const char *source,
                      rs_error *err)
{
    char created[32];
    snprintf(created, sizeof created, "%lld", (long long)rs_wall_time());
    const char *keys[] = { RS_MD_JOB_ID, RS_MD_INSTANCE_UUID, RS_MD_CREATED_AT, RS_MD_VERSION,
                           RS_MD_ROLE, RS_MD_SOURCE };
    const char *vals[] = { req->job_id, req->instance_uuid ? req->instance_uuid : "", created,
                           RBDSNAP_VERSION, "clone", source };
    step(obs, "tag", true, 0);
    int rc = fp("tag", "", err);
    if (rc == 0)
        rc = rs_rbd_metadata_set_many(env->cluster, pool, req->image_id, keys, vals, 6, err);
    if (rc == 0)
        rc = fp("tag", ".done", err);
    step(obs, "tag", false, rc);
    if (rc < 0)
        return rc;
    step(obs, "snap_create", true, 0);
    rc = fp("snap_create", "", err);
    if (rc == 0)
        rc = rs_rbd_snap_create(env->cluster, pool, req->image_id, RS_FLOW_CLONE_SNAP, err);
    if (rc == 0)
        rc = fp("snap_create", ".done", err);
    step(obs, "snap_create", false, rc);
    if (rc < 0)
        return rc;
    step(obs, "snap_protect", true, 0);
    rc = fp("snap_protect", "", err);
    if (rc == 0)
        rc = rs_rbd_snap_protect(env->cluster, pool, req->image_id, RS_FLOW_CLONE_SNAP, err);
    if (rc == 0)
        rc = fp("snap_protect", ".done", err);
    step(obs, "snap_protect", false, rc);
    return rc;
}

static int register_rbd(const rs_snapshot_env *env, const rs_snapshot_req *req,
                        const rs_snapshot_observer *obs, const char *pool,
                        rs_snapshot_result *res, rs_error *err)
{
    char *url = NULL;
    int rc = rs_rbd_url_format(rs_cluster_fsid(env->cluster), pool, req->image_id,
                               RS_FLOW_CLONE_SNAP, &url, err);
    if (rc < 0)
        return rc;
    snprintf(res->location, sizeof res->location, "%s", url);
    step(obs, "register", true, 0);
    rc = fp("register", "", err);
    if (rc == 0) {
        rs_glance_image *img = NULL;
        bool active = false;
        if (rs_glance_image_get(env->glance, req->image_id, &img, NULL) == 0) {
            active = img->status && strcmp(img->status, "active") == 0;
            rs_glance_image_free(img);
        }
        /* The image is complete: while Glance is down, retry with backoff
         * until glance.register_deadline (as the RBD flow does). */
        uint64_t t0 = rs_now_ms();
        unsigned delay = 500;
        while (!active) {
            rs_error_clear(err);
            rc = rs_glance_image_add_location(env->glance, req->image_id, url, err);
            bool down = rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EHOSTUNREACH ||
                        rc == -ENOTCONN || rc == -EIO || rc == -ETIMEDOUT || rc == -EAGAIN;
            if (rc == 0 || !down ||
                rs_now_ms() - t0 >= (uint64_t)env->conf->glance.register_deadline * 1000u)
                break;
            rs_warn("job=%s image=%s glance unavailable rc=%d retry_in_ms=%u", req->job_id,
                    req->image_id, rc, delay);
            for (unsigned slept = 0; slept < delay && !cancelled(obs); slept += 100)
                rs_sleep_ms(100);
            if (cancelled(obs))
                break;
            delay = delay * 2 > 8000 ? 8000 : delay * 2;
        }
    }
    if (rc == 0)
        rc = fp("register", ".done", err);
    step(obs, "register", false, rc);
    free(url);
    return rc;
}

static int wait_active(const rs_snapshot_env *env, const rs_snapshot_req *req,
                       const rs_snapshot_observer *obs, rs_error *err)
{
    step(obs, "wait_active", true, 0);
    int rc = fp("wait_active", "", err);
    if (rc == 0)
        rc = rs_glance_image_wait_status(env->glance, req->image_id, "active",
                                         env->conf->glance.timeout, err);
    if (rc == 0)
        rc = fp("wait_active", ".done", err);
    step(obs, "wait_active", false, rc);
    return rc;
}

typedef enum { MODE_AUTO, MODE_LIVE, MODE_COLD } file_mode;

int rs_snapshot_file_run(const rs_snapshot_env *env, const rs_snapshot_req *req,
                         const rs_snapshot_observer *obs, rs_snapshot_result *res,
                         rs_error *err)
{
    const rs_conf *conf = env->conf;
    const char *mode_s = req->mode ? req->mode : conf->snapshot.file_mode;
    const char *upload = req->upload ? req->upload : conf->snapshot.file_upload;
    const char *who = req->instance_uuid ? req->instance_uuid : req->domain;
    const char *pool = conf->snapshot.dest_pool;
    rs_virt_dom *dom = NULL;
    rs_virt_disk_list *disks = NULL;
    rs_virt_quiesce_policy qpol;
    file_mode mode;
    fstate st;
    bool glance_created = false, in_copy = false;
    int rc;

    snprintf(res->job_id, sizeof res->job_id, "%s", req->job_id);
    snprintf(res->image_id, sizeof res->image_id, "%s", req->image_id);
    res->ndisks = 1;
    if (!mode_s || strcmp(mode_s, "auto") == 0)
        mode = MODE_AUTO;
    else if (strcmp(mode_s, "live") == 0)
        mode = MODE_LIVE;
    else if (strcmp(mode_s, "cold") == 0)
        mode = MODE_COLD;
    else
        return rs_error_set(err, -EINVAL, "mode: expected auto|live|cold, got \"%s\"", mode_s);
    if (!upload || (strcmp(upload, "rbd") != 0 && strcmp(upload, "glance") != 0))
        return rs_error_set(err, -EINVAL, "upload: expected rbd|glance");
    if (rs_virt_quiesce_policy_parse(req->quiesce ? req->quiesce : conf->snapshot.quiesce,
                                     &qpol) < 0)
        return rs_error_set(err, -EINVAL, "quiesce: expected required|optional|off");
    if (req->all_disks)
        return rs_error_set(err, -EINVAL, "domain %s: all_disks is not supported for "
                                          "file-backed disks (root disk only)", who);
    if (strcmp(upload, "glance") == 0 && !env->glance)
        return rs_error_set(err, -EINVAL, "upload=glance needs Glance configured");
    if (!env->virt)
        return rs_error_set(err, -ENOTCONN, "domain %s: libvirt not connected", who);

    rc = rs_virt_domain_lookup(env->virt, who, &dom, err);
    if (rc < 0)
        return rc;
    rc = rs_virt_domain_disks(dom, RS_VIRT_DISKS_ROOT, &disks, err);
    if (rc < 0)
        goto out_free;
    const rs_virt_disk *disk = &disks->disks[0];
    if (disk->kind != RS_VIRT_DISK_FILE) {
        rc = rs_error_set(err, -EINVAL, "domain %s: root disk %s is not a file",
                          rs_virt_dom_name(dom), disk->target);
        goto out_free;
    }
    /* The state file: repair a previous attempt first (resume). */
    rc = mkdir_p(work_dir(conf), err);
    if (rc < 0)
        goto out_free;
    if (req->resume) {
        bool done = false;
        if (env->glance) {
            rs_glance_image *img = NULL;
            if (rs_glance_image_get(env->glance, req->image_id, &img, NULL) == 0) {
                done = img->status && strcmp(img->status, "active") == 0;
                rs_glance_image_free(img);
            }
        }
        rc = rs_snapshot_file_recover(env, req->image_id, done, err);
        if (rc < 0)
            goto out_free;
        if (done) {
            rs_info("job=%s image=%s already active; only the domain was repaired",
                    req->job_id, req->image_id);
            rc = 0;
            goto out_free;
        }
    }
    rs_virt_state vst;
    rc = rs_virt_dom_state(dom, &vst, err);
    if (rc < 0)
        goto out_free;
    bool active = vst == RS_VIRT_STATE_RUNNING || vst == RS_VIRT_STATE_PAUSED;
    if (mode == MODE_AUTO)
        mode = vst == RS_VIRT_STATE_RUNNING ? MODE_LIVE : MODE_COLD;
    if (mode == MODE_COLD && qpol == RS_VIRT_QUIESCE_REQUIRED && active) {
        rc = rs_error_set(err, -EINVAL, "domain %s: quiesce=required cannot be honoured by a "
                                        "cold copy (the guest is saved, not frozen); use "
                                        "mode=live or quiesce=optional", rs_virt_dom_name(dom));
        goto out_free;
    }

    memset(&st, 0, sizeof st);
    state_paths(&st, conf, req->image_id);
    if (access(st.path, F_OK) == 0) {
        rc = rs_error_set(err, -EEXIST, "image %s: a file-backed job state %s already exists",
                          req->image_id, st.path);
        goto out_free;
    }
    snprintf(st.job_id, sizeof st.job_id, "%s", req->job_id);
    snprintf(st.domain, sizeof st.domain, "%s", rs_virt_dom_name(dom));
    snprintf(st.domain_uuid, sizeof st.domain_uuid, "%s", rs_virt_dom_uuid(dom));
    snprintf(st.disk, sizeof st.disk, "%s", disk->target ? disk->target : "");
    snprintf(st.upload, sizeof st.upload, "%s", upload);
    snprintf(st.dest_pool, sizeof st.dest_pool, "%s", pool);
    st.was_active = active;
    st.was_paused = vst == RS_VIRT_STATE_PAUSED;
    /* Nova's instance uuid is the domain's uuid. */
    rs_snapshot_req rq = *req;
    if (!rq.instance_uuid && rs_is_uuid(st.domain_uuid))
        rq.instance_uuid = st.domain_uuid;
    req = &rq;

    /* 1. The Glance record. */
    if (env->glance) {
        rc = glance_create(env, req, obs, &glance_created, err);
        if (rc < 0)
            goto fail;
    }

    /* 2. The copy. */
    rc = announce(obs, RS_SNAP_PHASE_FLOW, req, err);
    if (rc < 0)
        goto fail;
    st.dest = strcmp(upload, "rbd") == 0;
    rc = state_save(&st, err);
    if (rc < 0)
        goto fail;
    in_copy = true;
    upload_ctx uc = { .env = env, .obs = obs, .image_id = req->image_id, .job_id = req->job_id };
    rs_virt_copy_opts co = {
        .work_dir = work_dir(conf),
        .ceph_conf = conf->ceph.conf, .ceph_id = conf->ceph.id,
        .ceph_keyring = conf->ceph.keyring && *conf->ceph.keyring ? conf->ceph.keyring : NULL,
        .dest_pool = pool, .dest_image = req->image_id,
        .quiesce = qpol, .quiesce_timeout_s = conf->snapshot.quiesce_timeout,
        .max_freeze_ms = (unsigned)conf->snapshot.max_freeze * 1000u,
        .cancel = obs ? obs->cancel : NULL,
        .journal = on_virt_journal, .journal_opaque = &st,
        .consume = strcmp(upload, "glance") == 0 ? consume_upload : NULL,
        .consume_opaque = &uc,
    };
    rs_virt_copy_report rep;
    memset(&rep, 0, sizeof rep);
    progress(obs, 10);
    if (mode == MODE_LIVE) {
        step(obs, "copy_live", true, 0);
        rc = fp("copy_live", "", err);
        if (rc == 0)
            rc = rs_virt_live_copy(dom, disk, &co, &rep, err);
        step(obs, "copy_live", false, rc);
        /* auto: libvirt refused the block copy before any mirror ran */
        bool nothing_done = rep.prepare_ms == 0 && !rep.dest_created && !st.virt_dirty;
        if (rc < 0 && nothing_done && rc != -ECANCELED && rc != -ENOMEM &&
            !(req->mode && strcmp(req->mode, "live") == 0) &&
            strcmp(conf->snapshot.file_mode, "live") != 0 &&
            qpol != RS_VIRT_QUIESCE_REQUIRED) {
            rs_warn("job=%s domain=%s live copy impossible (%s); copying cold", req->job_id,
                    st.domain, rs_error_msg(err));
            snprintf(res->warning, sizeof res->warning, "live copy impossible (%s); cold copy",
                     rs_error_msg(err));
            rs_error_clear(err);
            rs_virt_copy_report_clear(&rep);
            memset(&rep, 0, sizeof rep);
            mode = MODE_COLD;
        }
    }
    if (mode == MODE_COLD) {
        step(obs, "copy_cold", true, 0);
        rc = fp("copy_cold", "", err);
        if (rc == 0)
            rc = rs_virt_cold_copy(dom, disk, &co, &rep, err);
        step(obs, "copy_cold", false, rc);
    }
    snprintf(res->mode, sizeof res->mode, "%s", mode == MODE_LIVE ? "live" : "cold");
    res->freeze_ms = rep.freeze_ms;
    res->quiesced = rep.quiesced;
    res->downtime_ms = rep.downtime_ms;
    if (rep.warning && !res->warning[0])
        snprintf(res->warning, sizeof res->warning, "%s", rep.warning);
    rs_info("job=%s domain=%s image=%s mode=%s upload=%s rc=%d total_ms=%llu freeze_ms=%llu "
            "downtime_ms=%llu convert_ms=%llu quiesced=%d", req->job_id, st.domain,
            req->image_id, res->mode, upload, rc, (unsigned long long)rep.total_ms,
            (unsigned long long)rep.freeze_ms, (unsigned long long)rep.downtime_ms,
            (unsigned long long)rep.convert_ms, rep.quiesced);
    rs_virt_copy_report_clear(&rep);
    if (rc < 0)
        goto fail;
    progress(obs, 80);

    /* 3. Provenance and @snap (Glance's store did both for an upload). */
    if (strcmp(upload, "rbd") == 0) {
        char source[PATH_MAX + 16];
        snprintf(source, sizeof source, "file:%s", disk->path);
        rc = finish_rbd(env, req, obs, pool, source, err);
        if (rc < 0)
            goto fail;
    }

    /* 4. Location and active. */
    if (env->glance) {
        rc = announce(obs, RS_SNAP_PHASE_REGISTER, req, err);
        if (rc == 0 && strcmp(upload, "rbd") == 0)
            rc = register_rbd(env, req, obs, pool, res, err);
        progress(obs, 90);
        if (rc == 0)
            rc = wait_active(env, req, obs, err);
        if (rc < 0)
            goto fail;
    }
    state_remove(&st);
    progress(obs, 100);
    rs_info("job=%s domain=%s image=%s done mode=%s upload=%s freeze_ms=%llu downtime_ms=%llu",
            req->job_id, st.domain, req->image_id, res->mode, upload,
            (unsigned long long)res->freeze_ms, (unsigned long long)res->downtime_ms);
    rc = 0;
    goto out_free;

fail:
    if (rc == -ESHUTDOWN || rc == -ESTALE) {
        /* Stopped at a safe point: the journal and the state file keep it. */
        if (!in_copy)
            state_remove(&st);
        goto out_free;
    }
    {
        rs_error uerr = RS_ERROR_INIT;
        bool left = false;
        if (in_copy && undo_virt(env, &st, &uerr) < 0) {
            rs_error_prefix(err, "and the domain could not be repaired (%s)",
                            rs_error_msg(&uerr));
            left = true;
        }
        if (glance_created) {
            rs_error_clear(&uerr);
            int grc = rs_glance_image_delete(env->glance, req->image_id, &uerr);
            if (grc < 0 && grc != -ENOENT) {
                rs_error_prefix(err, "and the Glance record %s could not be deleted (%s)",
                                req->image_id, rs_error_msg(&uerr));
                left = true;
            }
        }
        rs_error_clear(&uerr);
        if (in_copy && undo_rbd(env, &st, &uerr) < 0) {
            rs_error_prefix(err, "and %s/%s could not be removed (%s)", pool, req->image_id,
                            rs_error_msg(&uerr));
            left = true;
        }
        if (left) {
            res->leftovers = true;
            rs_error serr = RS_ERROR_INIT;
            if (in_copy)
                state_save(&st, &serr);
        } else {
            state_remove(&st);
        }
        rs_warn("job=%s domain=%s image=%s failed rc=%d leftovers=%d error=\"%s\"",
                req->job_id, st.domain, req->image_id, rc, left, rs_error_msg(err));
    }

out_free:
    rs_virt_disk_list_free(disks);
    rs_virt_dom_free(dom);
    return rc;
}
