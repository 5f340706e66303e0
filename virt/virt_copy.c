/*
 * virt_copy.c - file-backed snapshot mechanics: live copy, cold copy and
 * crash recovery.
 *
 * Live copy (Nova's method, without its weak spots):
 *   1. abort any block job on the disk and wait until it is gone;
 *   2. create a qcow2 delta in the work dir with the disk's own backing file
 *      (qemu-img create -f qcow2 -o backing_file=B,backing_fmt=F DELTA SIZE);
 *   3. virDomainBlockCopy(SHALLOW|REUSE_EXT|TRANSIENT_JOB): the domain stays
 *      persistent.  Where TRANSIENT_JOB is refused (libvirt < 8) fall back to
 *      Nova's undefine -> copy -> define, with the inactive XML handed to the
 *      journal callback *before* the undefine, and the define done on every
 *      path after it;
 *   4. poll virDomainGetBlockJobInfo until end != 0 && cur == end (timeout,
 *      cancellation flag);
 *   5. freeze (policy), virDomainBlockJobAbort(dom, disk, 0) (no pivot:
 *      the delta now holds the disk's top layer as of this instant), thaw;
 *   6. qemu-img convert -f qcow2 -O raw DELTA rbd:POOL/IMAGE:conf=..:id=..
 *      (qemu-img creates the image; zero and unallocated clusters are not
 *      written, so the RBD image stays sparse); the delta's backing chain is
 *      followed, so the result is standalone;
 *   7. delete the delta.
 * The guest never pauses; only the freeze window (step 5) stops its I/O.
 *
 * Cold copy: virDomainManagedSave, convert straight from the disk's chain,
 * virDomainCreateWithFlags (restores the saved state; START_PAUSED when the
 * guest was paused).  Downtime = managed save .. create returned.
 *
 * Every temporary file lives in the work dir and is removed on every path;
 * a crash between the journal callback and DONE is repaired by
 * rs_virt_recover().
 */
#define RS_LOG_MODULE "virt"
#include "virt/virt-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/util.h"

#define POLL_MS 100
#define OLD_JOB_WAIT_MS 30000

void rs_virt_copy_report_clear(rs_virt_copy_report *r)
{
    if (!r)
        return;
    free(r->warning);
    memset(r, 0, sizeof(*r));
}

/* ---- helpers ------------------------------------------------------------ */

static size_t escape_into(char *out, const char *s, const char *special)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '\\' || strchr(special, *s)) {
            if (out)
                out[n] = '\\';
            n++;
        }
        if (out)
            out[n] = *s;
        n++;
    }
    return n;
}

static char *escape(const char *s, const char *special)
{
    size_t n = escape_into(NULL, s, special);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    escape_into(out, s, special);
    out[n] = '\0';
    return out;
}

char *rs_virt_rbd_target(const char *pool, const char *image,
                         const char *conf, const char *id,
                         const char *keyring)
{
    char *p = NULL, *i = NULL, *c = NULL, *u = NULL, *k = NULL, *res = NULL;

    if (!pool || !*pool || !image || !*image)
        return NULL;
    p = escape(pool, ":/@=");
    i = escape(image, ":/@=");
    c = conf && *conf ? escape(conf, ":=") : NULL;
    u = id && *id ? escape(id, ":=") : NULL;
    k = keyring && *keyring ? escape(keyring, ":=") : NULL;
    if (p && i && (c || !(conf && *conf)) && (u || !(id && *id)) &&
        (k || !(keyring && *keyring)))
        res = rs_strdup_printf("rbd:%s/%s%s%s%s%s%s%s", p, i,
                               c ? ":conf=" : "", c ? c : "",
                               u ? ":id=" : "", u ? u : "",
                               k ? ":keyring=" : "", k ? k : "");
    free(p);
    free(i);
    free(c);
    free(u);
    free(k);
    return res;
}

static int journal(const rs_virt_copy_opts *o, rs_virt_journal_event ev,
                   rs_virt_dom *d, const rs_virt_disk *disk, const char *delta,
                   const char *xml, bool was_paused, rs_error *err)
{
    rs_virt_journal_rec rec = {
        .event = ev,
        .domain_name = rs_virt_dom_name(d),
        .domain_uuid = rs_virt_dom_uuid(d),
        .disk = disk->target,
        .delta_path = delta,
        .saved_xml = xml,
        .was_paused = was_paused,
    };
    int rc;

    if (!o->journal)
        return 0;
    rc = o->journal(o->journal_opaque, &rec);
    if (rc < 0)
        return rs_error_set(err, rc, "domain %s disk %s: journal write failed (event %d)",
                            rec.domain_name, disk->target, (int)ev);
    return 0;
}

static bool cancelled(const rs_virt_copy_opts *o)
{
    return o->cancel && atomic_load(o->cancel);
}

/* The qemu-img destination argument (malloc'ed). */
static char *dest_arg(const rs_virt_copy_opts *o, rs_error *err)
{
    char *t;
    if (o->dest_file && *o->dest_file) {
        t = strdup(o->dest_file);
    } else {
        if (!o->dest_pool || !o->dest_image) {
            rs_error_set(err, -EINVAL, "copy: no destination (dest_pool/dest_image)");
            return NULL;
        }
        t = rs_virt_rbd_target(o->dest_pool, o->dest_image, o->ceph_conf,
                               o->ceph_id, o->ceph_keyring);
    }
    if (!t)
        rs_error_set(err, -ENOMEM, "copy: out of memory");
    return t;
}

static const char *dest_name(const rs_virt_copy_opts *o, char *buf, size_t len)
{
    if (o->dest_file && *o->dest_file)
        snprintf(buf, len, "%s", o->dest_file);
    else
        snprintf(buf, len, "%s/%s", o->dest_pool ? o->dest_pool : "?",
                 o->dest_image ? o->dest_image : "?");
    return buf;
}

/* qemu-img convert SRC (format FMT, chain followed) to the destination. */
static int convert(const rs_virt_copy_opts *o, const char *src, const char *fmt,
                   rs_virt_copy_report *rep, rs_error *err)
{
    const char *qemu_img = o->qemu_img ? o->qemu_img : "qemu-img";
    char *target = NULL;
    char dn[512];
    uint64_t t0 = rs_now_ms();
    int rc;

    rc = rs_failpoint("virt.convert");
    if (rc < 0)
        return rs_error_set(err, rc, "convert %s -> %s: failpoint",
                            src, dest_name(o, dn, sizeof(dn)));
    if (o->consume) {
        rc = o->consume(o->consume_opaque, src, fmt ? fmt : "raw", rep->virtual_size, err);
        rep->convert_ms = rs_now_ms() - t0;
        return rc;
    }
    target = dest_arg(o, err);
    if (!target)
        return err ? err->code : -ENOMEM;
    {
        char *argv[] = { (char *)qemu_img, "convert", "-f", (char *)(fmt ? fmt : "raw"),
                         "-O", "raw", "-W", "-m", "8", (char *)src, target, NULL };
        rep->dest_created = true;
        rc = rs_virt_run(argv, o->cancel, o->convert_timeout_s, err);
    }
    free(target);
    rep->convert_ms = rs_now_ms() - t0;
    if (rc < 0) {
        rs_error_prefix(err, "convert %s -> %s", src, dest_name(o, dn, sizeof(dn)));
        return rc;
    }
    rs_info("msg=\"converted\" src=%s dest=%s dur_ms=%llu", src,
            dest_name(o, dn, sizeof(dn)), (unsigned long long)rep->convert_ms);
    return 0;
}

static bool no_job_error(int code)
{
    return code == VIR_ERR_INVALID_ARG || code == VIR_ERR_OPERATION_INVALID ||
           code == VIR_ERR_NO_SUPPORT;
}

/* Abort any block job on @disk and wait (bounded) until none is left. */
static int abort_old_job(virDomainPtr dom, const char *name, const char *disk,
                         rs_error *err)
{
    virDomainBlockJobInfo info;
    const char *msg;
    uint64_t deadline;
    int r;

    r = virDomainGetBlockJobInfo(dom, disk, &info, 0);
    if (r <= 0)
        return 0;      /* no job (or cannot tell: BlockCopy will say) */
    rs_warn("msg=\"aborting existing block job\" domain=%s disk=%s type=%d",
            name, disk, info.type);
    if (virDomainBlockJobAbort(dom, disk, 0) < 0) {
        int code = rs_virt_last_error(&msg);
        if (!no_job_error(code))
            return rs_error_set(err, -EBUSY, "domain %s disk %s: cannot abort existing "
                                "block job: %s", name, disk, msg);
    }
    deadline = rs_now_ms() + OLD_JOB_WAIT_MS;
    while (virDomainGetBlockJobInfo(dom, disk, &info, 0) == 1) {
        if (rs_now_ms() >= deadline)
            return rs_error_set(err, -EBUSY, "domain %s disk %s: existing block job "
                                "does not go away", name, disk);
        rs_sleep_ms(POLL_MS);
    }
    return 0;
}

/* Abort the block job on @disk and wait (bounded) for it to go.  True when
 * no job is left (as far as libvirt can tell). */
static bool end_job_quietly(virDomainPtr dom, const char *name, const char *disk)
{
    virDomainBlockJobInfo info;
    const char *msg;
    if (virDomainBlockJobAbort(dom, disk, 0) < 0) {
        int code = rs_virt_last_error(&msg);
        if (!no_job_error(code))
            rs_err("msg=\"cannot abort block job\" domain=%s disk=%s err=\"%s\"",
                   name, disk, msg);
    }
    for (int i = 0; i < OLD_JOB_WAIT_MS / POLL_MS &&
                    virDomainGetBlockJobInfo(dom, disk, &info, 0) == 1; i++)
        rs_sleep_ms(POLL_MS);
    return virDomainGetBlockJobInfo(dom, disk, &info, 0) == 0;
}

/* The domain handle of @d, renewed first if its connection died (libvirtd
 * restarted): every clean-up call must go through a live connection. */
static virDomainPtr live_dom(rs_virt_dom *d)
{
    rs_error lerr = RS_ERROR_INIT;
    if (rs_virt_dom_refresh(d, &lerr) < 0)
        rs_err("msg=\"cannot renew libvirt connection\" domain=%s err=\"%s\"",
               rs_virt_dom_name(d), rs_error_msg(&lerr));
    rs_error_clear(&lerr);
    return rs_virt_dom_ptr(d);
}

/* End the copy job on a live connection; one more try on a renewed one if
 * the connection died meanwhile.  True when no job is left. */
static bool end_job_fresh(rs_virt_dom *d, const char *disk)
{
    const char *name = rs_virt_dom_name(d);
    for (int attempt = 0; attempt < 2; attempt++) {
        virDomainPtr dom = live_dom(d);
        if (end_job_quietly(dom, name, disk))
            return true;
        if (virConnectIsAlive(virDomainGetConnect(dom)) == 1)
            break;
    }
    rs_err("msg=\"block job may still run, delta kept for recovery\" domain=%s disk=%s",
           name, disk);
    return false;
}

static int redefine(rs_virt_dom *d, const char *name, const char *xml,
                    rs_error *err)
{
    virDomainPtr nd = virDomainDefineXML(virDomainGetConnect(live_dom(d)), xml);
    const char *msg;
    if (!nd) {
        rs_virt_last_error(&msg);
        rs_err("msg=\"cannot re-define domain\" domain=%s err=\"%s\"", name, msg);
        return rs_error_set(err, -EIO, "domain %s: cannot re-define after copy "
                            "(XML kept in the journal): %s", name, msg);
    }
    virDomainFree(nd);
    rs_info("msg=\"domain re-defined\" domain=%s", name);
    return 0;
}

static char *delta_path_new(const rs_virt_copy_opts *o, const char *name,
                            const char *disk)
{
    char hex[17];
    if (rs_random_hex(hex, 8) < 0)
        return NULL;
    return rs_strdup_printf("%s/rbdsnap-%s-%s-%s.delta.qcow2",
                            o->work_dir && *o->work_dir ? o->work_dir : "/var/tmp",
                            name, disk, hex);
}

static int create_delta(const rs_virt_copy_opts *o, const rs_virt_disk *disk,
                        const char *delta, unsigned long long size, rs_error *err)
{
    const char *qemu_img = o->qemu_img ? o->qemu_img : "qemu-img";
    char sz[32];
    char *opt = NULL;
    int rc;

    snprintf(sz, sizeof(sz), "%llu", size);
    if (disk->n_backing && disk->backing[0].path) {
        /* ',' is doubled, not backslash-escaped, in -o values */
        const char *bp = disk->backing[0].path;
        size_t n = strlen(bp) + 1, j = 0;
        char *b;
        for (const char *p = bp; *p; p++)
            n += *p == ',';
        b = malloc(n);
        if (b) {
            for (const char *p = bp; *p; p++) {
                b[j++] = *p;
                if (*p == ',')
                    b[j++] = ',';
            }
            b[j] = '\0';
        }
        if (b)
            opt = rs_strdup_printf("backing_file=%s,backing_fmt=%s", b,
                                   disk->backing[0].format ? disk->backing[0].format : "raw");
        free(b);
        if (!opt)
            return rs_error_set(err, -ENOMEM, "delta %s: out of memory", delta);
        char *argv[] = { (char *)qemu_img, "create", "-q", "-f", "qcow2", "-o", opt,
                         (char *)delta, sz, NULL };
        rc = rs_virt_run(argv, NULL, 120, err);
    } else {
        char *argv[] = { (char *)qemu_img, "create", "-q", "-f", "qcow2",
                         (char *)delta, sz, NULL };
        rc = rs_virt_run(argv, NULL, 120, err);
    }
    free(opt);
    if (rc < 0)
        rs_error_prefix(err, "create delta %s", delta);
    return rc;
}

/* Start @dom (restoring a managed save image if there is one) in the
 * wanted state: paused or running.  START_PAUSED where the driver has it,
 * else start and suspend; a saved state that disagrees is corrected. */
static int start_in_state(virDomainPtr dom, bool paused, const char **msg)
{
    int st = 0, reason = 0;

    if (virDomainCreateWithFlags(dom, paused ? VIR_DOMAIN_START_PAUSED : 0) < 0) {
        int code = rs_virt_last_error(msg);
        if (!paused || (code != VIR_ERR_INVALID_ARG && code != VIR_ERR_NO_SUPPORT))
            return -1;
        if (virDomainCreate(dom) < 0) {
            rs_virt_last_error(msg);
            return -1;
        }
    }
    if (virDomainGetState(dom, &st, &reason, 0) < 0)
        return 0;
    if (paused && st == VIR_DOMAIN_RUNNING && virDomainSuspend(dom) < 0) {
        rs_virt_last_error(msg);
        return -1;
    }
    if (!paused && st == VIR_DOMAIN_PAUSED && virDomainResume(dom) < 0) {
        rs_virt_last_error(msg);
        return -1;
    }
    return 0;
}

/* ---- live copy ---------------------------------------------------------- */

int rs_virt_live_copy(rs_virt_dom *d, const rs_virt_disk *disk,
                      const rs_virt_copy_opts *o, rs_virt_copy_report *rep,
                      rs_error *err)
{
    const char *name = rs_virt_dom_name(d);
    virDomainPtr dom = rs_virt_dom_ptr(d);
    virDomainBlockInfo binfo;
    virDomainBlockJobInfo jinfo;
    rs_virt_quiesce *q = NULL;
    rs_virt_state st;
    char *delta = NULL, *saved_xml = NULL, *destxml = NULL;
    char abort_msg[512] = "";
    const char *msg;
    bool shallow, job_started = false, undefined = false, delta_made = false;
    bool cleanup_ok = true;
    uint64_t t0 = rs_now_ms(), t;
    unsigned flags;
    int rc, r;

    memset(rep, 0, sizeof(*rep));
    if (!disk || disk->kind != RS_VIRT_DISK_FILE || !disk->path || !disk->target)
        return rs_error_set(err, -EINVAL, "domain %s: live copy needs a file disk", name);
    rc = rs_virt_dom_state(d, &st, err);
    if (rc < 0)
        return rc;
    if (st == RS_VIRT_STATE_SHUTOFF) {
        rs_info("msg=\"domain shut off, copying cold\" domain=%s", name);
        return rs_virt_cold_copy(d, disk, o, rep, err);
    }

    /* 1. no job left on the disk */
    rc = abort_old_job(dom, name, disk->target, err);
    if (rc < 0)
        goto out;
    if (virDomainGetBlockInfo(dom, disk->target, &binfo, 0) < 0) {
        rs_virt_last_error(&msg);
        rc = rs_error_set(err, -EIO, "domain %s disk %s: cannot get block info: %s",
                          name, disk->target, msg);
        goto out;
    }
    rep->virtual_size = binfo.capacity;

    /* 2. the delta */
    delta = delta_path_new(o, name, disk->target);
    destxml = delta ? rs_strdup_printf("<disk type='file'><driver type='qcow2'/>"
                                       "<source file='%s'/></disk>", delta) : NULL;
    if (!delta || !destxml) {
        rc = rs_error_set(err, -ENOMEM, "domain %s: out of memory", name);
        goto out;
    }
    if (strchr(delta, '\'') || strchr(delta, '<') || strchr(delta, '&')) {
        rc = rs_error_set(err, -EINVAL, "work dir %s: unusable characters", o->work_dir);
        goto out;
    }
    rc = journal(o, RS_VIRT_J_DELTA, d, disk, delta, NULL, false, err);
    if (rc < 0)
        goto out;
    delta_made = true;
    rc = create_delta(o, disk, delta, binfo.capacity, err);
    if (rc < 0)
        goto out;

    /* 3. the mirror */
    shallow = disk->n_backing > 0 && disk->backing[0].path;
    flags = VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | (shallow ? VIR_DOMAIN_BLOCK_COPY_SHALLOW : 0);
    r = -1;
    if (!(o->flags & RS_VIRT_COPY_NO_TRANSIENT_JOB)) {
        rc = rs_failpoint("virt.blockcopy");
        if (rc < 0) {
            rs_error_set(err, rc, "domain %s disk %s: block copy: failpoint", name,
                         disk->target);
            goto out;
        }
        r = virDomainBlockCopy(dom, disk->target, destxml, NULL, 0,
                               flags | VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB);
        if (r == 0) {
            rep->transient_job = true;
        } else {
            int code = rs_virt_last_error(&msg);
            /* only an unknown flag justifies the fallback */
            if (code != VIR_ERR_INVALID_ARG && code != VIR_ERR_ARGUMENT_UNSUPPORTED) {
                rc = rs_error_set(err, -EIO, "domain %s disk %s: block copy failed: %s",
                                  name, disk->target, msg);
                goto out;
            }
            rs_warn("msg=\"TRANSIENT_JOB refused, undefine/define fallback\" "
                    "domain=%s err=\"%s\"", name, msg);
        }
    }
    if (r != 0) {
        if (virDomainIsPersistent(dom) == 1) {
            saved_xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE |
                                                 VIR_DOMAIN_XML_SECURE);
            if (!saved_xml) {
                rs_virt_last_error(&msg);
                rc = rs_error_set(err, -EIO, "domain %s: cannot read inactive XML: %s",
                                  name, msg);
                goto out;
            }
            rc = journal(o, RS_VIRT_J_UNDEFINE, d, disk, delta, saved_xml, false, err);
            if (rc < 0)
                goto out;
            if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) < 0 &&
                virDomainUndefine(dom) < 0) {
                rs_virt_last_error(&msg);
                rc = rs_error_set(err, -EIO, "domain %s: cannot undefine: %s", name, msg);
                goto out;
            }
            undefined = true;
        }
        r = virDomainBlockCopy(dom, disk->target, destxml, NULL, 0, flags);
        if (r < 0) {
            rs_virt_last_error(&msg);
            rc = rs_error_set(err, -EIO, "domain %s disk %s: block copy failed: %s",
                              name, disk->target, msg);
            goto out;
        }
    }
    job_started = true;
    t = rs_now_ms();
    rep->prepare_ms = t - t0;

    /* 4. wait for the mirror to be ready */
    for (;;) {
        r = virDomainGetBlockJobInfo(dom, disk->target, &jinfo, 0);
        if (r < 0) {
            rs_virt_last_error(&msg);
            rc = rs_error_set(err, -EIO, "domain %s disk %s: block job info: %s",
                              name, disk->target, msg);
            goto out;
        }
        if (r == 0) {
            job_started = false;
            rc = rs_error_set(err, -EIO, "domain %s disk %s: block job ended before "
                              "the mirror was ready", name, disk->target);
            goto out;
        }
        if (jinfo.end != 0 && jinfo.cur == jinfo.end)
            break;
        if (cancelled(o)) {
            rc = rs_error_set(err, -ECANCELED, "domain %s disk %s: cancelled while "
                              "mirroring", name, disk->target);
            goto out;
        }
        if (rs_now_ms() - t > (uint64_t)(o->job_timeout_s > 0 ? o->job_timeout_s : 600) * 1000u) {
            rc = rs_error_set(err, -ETIMEDOUT, "domain %s disk %s: mirror not ready "
                              "after %d s (%llu/%llu)", name, disk->target,
                              o->job_timeout_s > 0 ? o->job_timeout_s : 600,
                              (unsigned long long)jinfo.cur,
                              (unsigned long long)jinfo.end);
            goto out;
        }
        rs_sleep_ms(POLL_MS);
    }
    rep->mirror_ms = rs_now_ms() - t;

    /* 5. freeze, end the job (no pivot), thaw */
    rc = rs_virt_quiesce_begin(d, o->quiesce, o->quiesce_timeout_s, o->max_freeze_ms,
                               &q, &rep->warning, err);
    if (rc < 0)
        goto out;
    rep->quiesced = rs_virt_quiesce_frozen(q);
    t = rs_now_ms();
    if (rs_failpoint("virt.blockjob_abort") < 0) {
        r = -1;
        snprintf(abort_msg, sizeof(abort_msg), "failpoint virt.blockjob_abort");
    } else {
        r = virDomainBlockJobAbort(dom, disk->target, 0);
        if (r < 0) {
            rs_virt_last_error(&msg);
            snprintf(abort_msg, sizeof(abort_msg), "%s", msg);
        }
    }
    rep->end_job_ms = rs_now_ms() - t;
    rc = rs_virt_quiesce_end(q, &rep->freeze_ms, err);
    q = NULL;
    if (r < 0) {
        bool lost = virConnectIsAlive(virDomainGetConnect(dom)) != 1;
        rc = rs_error_set(err, -EIO, "domain %s disk %s: ending the block job failed: %s%s",
                          name, disk->target, abort_msg,
                          lost ? " (libvirt connection lost, copy rolled back)" : "");
        goto out;
    }
    job_started = false;
    if (rc < 0)
        goto out;
    rs_info("msg=\"mirror ended\" domain=%s disk=%s mirror_ms=%llu freeze_ms=%llu "
            "end_job_ms=%llu quiesced=%d", name, disk->target,
            (unsigned long long)rep->mirror_ms, (unsigned long long)rep->freeze_ms,
            (unsigned long long)rep->end_job_ms, rep->quiesced);

    if (undefined) {
        rc = redefine(d, name, saved_xml, err);
        if (rc < 0) {
            cleanup_ok = false;
            goto out;
        }
        undefined = false;
    }

    /* 6. convert the delta (its backing chain followed) */
    rc = convert(o, delta, "qcow2", rep, err);

out:
    /* after a libvirtd restart the old handle is dead: end the job through
     * a renewed connection, and never delete a delta QEMU may still write */
    if (job_started && !end_job_fresh(d, disk->target)) {
        cleanup_ok = false;
        delta_made = false;
    }
    if (undefined && redefine(d, name, saved_xml, err) < 0) {
        cleanup_ok = false;
        if (rc == 0)
            rc = err ? err->code : -EIO;
    }
    if (delta_made && unlink(delta) < 0 && errno != ENOENT) {
        rs_err("msg=\"cannot remove delta\" path=%s errno=%d", delta, errno);
        cleanup_ok = false;
    }
    if (cleanup_ok && delta_made)
        journal(o, RS_VIRT_J_DONE, d, disk, delta, NULL, false, NULL);
    rep->total_ms = rs_now_ms() - t0;
    rs_info("msg=\"live copy %s\" domain=%s disk=%s total_ms=%llu prepare_ms=%llu "
            "mirror_ms=%llu freeze_ms=%llu convert_ms=%llu transient_job=%d rc=%d",
            rc == 0 ? "done" : "failed", name, disk->target,
            (unsigned long long)rep->total_ms, (unsigned long long)rep->prepare_ms,
            (unsigned long long)rep->mirror_ms, (unsigned long long)rep->freeze_ms,
            (unsigned long long)rep->convert_ms, rep->transient_job, rc);
    free(delta);
    free(destxml);
    free(saved_xml);
    return rc;
}

/* ---- cold copy ---------------------------------------------------------- */

int rs_virt_cold_copy(rs_virt_dom *d, const rs_virt_disk *disk,
                      const rs_virt_copy_opts *o, rs_virt_copy_report *rep,
                      rs_error *err)
{
    const char *name = rs_virt_dom_name(d);
    virDomainPtr dom = rs_virt_dom_ptr(d);
    rs_virt_state st;
    const char *msg;
    bool saved = false, was_paused = false;
    uint64_t t0 = rs_now_ms(), tdown = 0;
    int rc, rc2;

    memset(rep, 0, sizeof(*rep));
    if (!disk || disk->kind != RS_VIRT_DISK_FILE || !disk->path)
        return rs_error_set(err, -EINVAL, "domain %s: cold copy needs a file disk", name);
    rc = rs_virt_dom_state(d, &st, err);
    if (rc < 0)
        return rc;
    {
        virDomainBlockInfo bi;
        if (disk->target && virDomainGetBlockInfo(dom, disk->target, &bi, 0) == 0)
            rep->virtual_size = bi.capacity;
    }

    if (st == RS_VIRT_STATE_RUNNING || st == RS_VIRT_STATE_PAUSED) {
        was_paused = st == RS_VIRT_STATE_PAUSED;
        rc = journal(o, RS_VIRT_J_MANAGED_SAVE, d, disk, NULL, NULL, was_paused, err);
        if (rc < 0)
            return rc;
        tdown = rs_now_ms();
        if (virDomainManagedSave(dom, was_paused ? VIR_DOMAIN_SAVE_PAUSED
                                                 : VIR_DOMAIN_SAVE_RUNNING) < 0) {
            rs_virt_last_error(&msg);
            rc = rs_error_set(err, -EIO, "domain %s: managed save failed: %s", name, msg);
            /* still running: nothing to undo */
            journal(o, RS_VIRT_J_DONE, d, disk, NULL, NULL, was_paused, NULL);
            return rc;
        }
        saved = true;
        rs_info("msg=\"domain saved\" domain=%s was_paused=%d save_ms=%llu", name,
                was_paused, (unsigned long long)(rs_now_ms() - tdown));
    } else if (st != RS_VIRT_STATE_SHUTOFF) {
        return rs_error_set(err, -EBUSY, "domain %s: neither running, paused nor shut "
                            "off; cannot copy cold", name);
    }

    rc = convert(o, disk->path, disk->format ? disk->format : "raw", rep, err);

    if (saved) {
        rc2 = rs_failpoint("virt.restore");
        if (rc2 == 0 && start_in_state(dom, was_paused, &msg) < 0) {
            rc2 = rs_error_set(err, -EIO, "domain %s: restore after managed save "
                               "failed: %s", name, msg);
        } else if (rc2 < 0) {
            rs_error_set(err, rc2, "domain %s: restore: failpoint", name);
        }
        rep->downtime_ms = rs_now_ms() - tdown;
        if (rc2 < 0) {
            rs_err("msg=\"domain left saved\" domain=%s rc=%d", name, rc2);
            if (rc == 0)
                rc = rc2;
            /* no DONE: rs_virt_recover() must start it */
        } else {
            journal(o, RS_VIRT_J_DONE, d, disk, NULL, NULL, was_paused, NULL);
        }
    }
    rep->total_ms = rs_now_ms() - t0;
    rs_info("msg=\"cold copy %s\" domain=%s disk=%s total_ms=%llu downtime_ms=%llu "
            "convert_ms=%llu rc=%d", rc == 0 ? "done" : "failed", name, disk->target,
            (unsigned long long)rep->total_ms, (unsigned long long)rep->downtime_ms,
            (unsigned long long)rep->convert_ms, rc);
    return rc;
}

/* ---- recovery ----------------------------------------------------------- */

int rs_virt_recover(rs_virt_conn *c, const rs_virt_recover_info *ri, rs_error *err)
{
    rs_virt_dom *d = NULL;
    virDomainPtr dom;
    const char *msg;
    rs_error lerr = RS_ERROR_INIT;
    int rc, active;

    if (!ri || !ri->domain)
        return rs_error_set(err, -EINVAL, "recover: no domain given");
    rc = rs_virt_domain_lookup(c, ri->domain, &d, &lerr);
    if (rc == -ENOENT && ri->saved_xml) {
        virConnectPtr vc = rs_virt_conn_get(c, err);
        virDomainPtr nd;
        if (!vc)
            return err ? err->code : -ECONNREFUSED;
        nd = virDomainDefineXML(vc, ri->saved_xml);
        if (!nd) {
            rs_virt_last_error(&msg);
            rc = rs_error_set(err, -EIO, "recover domain %s: cannot define: %s",
                              ri->domain, msg);
            virConnectClose(vc);
            return rc;
        }
        virDomainFree(nd);
        virConnectClose(vc);
        rs_warn("msg=\"recover: domain re-defined from journal\" domain=%s", ri->domain);
        rs_error_clear(&lerr);
        rc = rs_virt_domain_lookup(c, ri->domain, &d, &lerr);
    }
    if (rc < 0)
        return rs_error_set(err, rc, "recover: %s", rs_error_msg(&lerr));
    dom = rs_virt_dom_ptr(d);

    if (ri->saved_xml && virDomainIsPersistent(dom) == 0) {
        virDomainPtr nd = virDomainDefineXML(virDomainGetConnect(dom), ri->saved_xml);
        if (!nd) {
            rs_virt_last_error(&msg);
            rc = rs_error_set(err, -EIO, "recover domain %s: cannot define: %s",
                              ri->domain, msg);
            goto out;
        }
        virDomainFree(nd);
        rs_warn("msg=\"recover: transient domain made persistent again\" domain=%s",
                ri->domain);
    }

    active = virDomainIsActive(dom);
    if (ri->disk && active == 1)
        end_job_quietly(dom, rs_virt_dom_name(d), ri->disk);
    if (ri->thaw && active == 1) {
        int st = 0, reason = 0;
        if (virDomainGetState(dom, &st, &reason, 0) == 0 && st == VIR_DOMAIN_RUNNING) {
            virDomainAgentSetResponseTimeout(dom, 10, 0);
            int n = virDomainFSThaw(dom, NULL, 0, 0);
            if (n < 0)
                rs_virt_last_error(&msg);
            else if (n > 0)
                rs_warn("msg=\"recover: guest was frozen, thawed\" domain=%s filesystems=%d",
                        ri->domain, n);
            virDomainAgentSetResponseTimeout(dom, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT, 0);
        }
    }

    if (ri->delta_path && unlink(ri->delta_path) < 0 && errno != ENOENT) {
        rc = rs_error_set(err, -errno, "recover domain %s: cannot remove delta %s: %s",
                          ri->domain, ri->delta_path, strerror(errno));
        goto out;
    }

    if (ri->start && active == 0) {
        if (start_in_state(dom, ri->start_paused, &msg) < 0) {
            rc = rs_error_set(err, -EIO, "recover domain %s: cannot start: %s",
                              ri->domain, msg);
            goto out;
        }
        rs_warn("msg=\"recover: domain started\" domain=%s paused=%d", ri->domain,
                ri->start_paused);
    }
    rc = 0;
out:
    rs_virt_dom_free(d);
    return rc;
}
