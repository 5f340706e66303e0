/*
 * virt.h - the libvirt adapter of rbdsnap.
 *
 * The only module that talks to libvirt (and parses domain XML).  It offers:
 *
 *   - a shared, thread-safe, keep-alive connection (rs_virt_conn), reopened
 *     transparently when libvirtd went away;
 *   - domain lookup by instance uuid or name, and the domain's disks read
 *     from its live XML (RBD network disks and file disks with their
 *     backing chain; cdroms and config drives skipped);
 *   - guest quiesce (fsfreeze/fsthaw through the guest agent) with a policy,
 *     an agent timeout and a watchdog that thaws the guest when the freeze
 *     outlasts a maximum window;
 *   - the file-backed snapshot mechanics: live copy (shallow block copy to a
 *     qcow2 delta, then qemu-img convert into a new RBD image) and cold copy
 *     (managed save, convert, restore), each reporting phase timings;
 *   - crash recovery for what a dead live/cold copy left behind.
 *
 * Errors: 0 or a negative errno; @err filled once at the failure site.
 * Threads: a rs_virt_conn may be used from any number of threads; a
 * rs_virt_dom belongs to one thread at a time.  See docs/VIRT.md.
 */
#ifndef RS_VIRT_VIRT_H
#define RS_VIRT_VIRT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* ---- connection and domains -------------------------------------------- */

typedef struct rs_virt_conn rs_virt_conn;
typedef struct rs_virt_dom rs_virt_dom;

/* Open @uri (e.g. "qemu:///system", "qemu+unix:///system?socket=/x/sock",
 * "test:///default"; NULL means libvirt's default / LIBVIRT_DEFAULT_URI).
 * Keep-alive is enabled (5 s interval, 3 missed answers) on remote URIs. */
int rs_virt_connect(const char *uri, rs_virt_conn **out, rs_error *err);
/* Reference counting: rs_virt_connect returns one reference. */
rs_virt_conn *rs_virt_conn_ref(rs_virt_conn *c);
void rs_virt_conn_unref(rs_virt_conn *c);   /* NULL is fine */

/* Find a domain by uuid (canonical form) or, failing that, by name.
 * -ENOENT when there is none. */
int rs_virt_domain_lookup(rs_virt_conn *c, const char *uuid_or_name,
                          rs_virt_dom **out, rs_error *err);
void rs_virt_dom_free(rs_virt_dom *d);      /* NULL is fine */
const char *rs_virt_dom_name(const rs_virt_dom *d);
const char *rs_virt_dom_uuid(const rs_virt_dom *d);

typedef enum {
    RS_VIRT_STATE_OTHER = 0,
    RS_VIRT_STATE_RUNNING,
    RS_VIRT_STATE_PAUSED,
    RS_VIRT_STATE_SHUTOFF,
} rs_virt_state;

int rs_virt_dom_state(rs_virt_dom *d, rs_virt_state *state, rs_error *err);

/* ---- disks -------------------------------------------------------------- */

typedef enum {
    RS_VIRT_DISK_RBD = 1,     /* <disk type='network'><source protocol='rbd'> */
    RS_VIRT_DISK_FILE = 2,    /* <disk type='file'> (also type='block') */
} rs_virt_disk_kind;

typedef struct rs_virt_backing {
    char *path;               /* NULL for a non-file backing element */
    char *format;             /* driver/@type, "raw" when missing */
} rs_virt_backing;

typedef struct rs_virt_disk {
    rs_virt_disk_kind kind;
    char *target;             /* target/@dev: "vda" */
    char *bus;                /* target/@bus, may be NULL */
    char *format;             /* driver/@type ("raw", "qcow2"), may be NULL */
    /* RBD */
    char *pool;               /* from source/@name "pool/image[@snap]" */
    char *image;
    char *snap;               /* usually NULL */
    char **hosts;             /* "host:port" ("host" when no port) */
    size_t n_hosts;
    char *auth_user;          /* auth/@username, may be NULL */
    char *secret_uuid;        /* auth/secret/@uuid, may be NULL */
    /* file */
    char *path;               /* source/@file or source/@dev */
    rs_virt_backing *backing; /* chain from the top: backing[0] is the
                                 disk's direct backing file */
    size_t n_backing;
} rs_virt_disk;

typedef struct rs_virt_disk_list {
    rs_virt_disk *disks;
    size_t n;
} rs_virt_disk_list;

enum {
    RS_VIRT_DISKS_ROOT = 0,       /* only the root disk ("vda", else first) */
    RS_VIRT_DISKS_ALL = 1 << 0,   /* every snapshot-able disk, XML order */
};

/* Read the live XML of @d and list its disks.  -ENOENT if no usable disk. */
int rs_virt_domain_disks(rs_virt_dom *d, unsigned flags,
                         rs_virt_disk_list **out, rs_error *err);
void rs_virt_disk_list_free(rs_virt_disk_list *l);   /* NULL is fine */
const rs_virt_disk *rs_virt_disk_list_find(const rs_virt_disk_list *l,
                                           const char *target);

/* ---- quiesce ------------------------------------------------------------ */

typedef enum {
    RS_VIRT_QUIESCE_OFF = 0,
    RS_VIRT_QUIESCE_OPTIONAL,     /* try; on failure warn and proceed */
    RS_VIRT_QUIESCE_REQUIRED,     /* fail (guest thawed) if it cannot freeze */
} rs_virt_quiesce_policy;

int rs_virt_quiesce_policy_parse(const char *s, rs_virt_quiesce_policy *out);
const char *rs_virt_quiesce_policy_name(rs_virt_quiesce_policy p);

typedef struct rs_virt_quiesce rs_virt_quiesce;

/* Freeze the guest's filesystems according to @policy.  @timeout_s bounds
 * each agent call (virDomainAgentSetResponseTimeout); @max_window_ms is the
 * longest the guest may stay frozen: a watchdog thread thaws it then.
 *
 * Returns 0 and a handle in *@q that MUST be passed to
 * rs_virt_quiesce_end(), frozen or not.  With OPTIONAL, a freeze that fails
 * gives 0, an unfrozen handle and a warning in *@warning (caller frees;
 * @warning may be NULL).  With REQUIRED, it gives -EIO (no agent channel,
 * domain paused, other) or -ETIMEDOUT (agent unresponsive), *@q NULL, and
 * the guest thawed.  A shut-off domain needs no freeze: 0, unfrozen. */
int rs_virt_quiesce_begin(rs_virt_dom *dom, rs_virt_quiesce_policy policy,
                          int timeout_s, unsigned max_window_ms,
                          rs_virt_quiesce **q, char **warning, rs_error *err);
/* Thaw (if still frozen), stop the watchdog, free @q (NULL is fine).
 * *@freeze_ms (may be NULL) gets the freeze window in milliseconds, from
 * the start of the freeze call to the end of the thaw call; 0 if the guest
 * was never frozen.  -ETIMEDOUT if the watchdog had to thaw the guest (the
 * work inside the window was not covered by the freeze); -EIO if the thaw
 * failed. */
int rs_virt_quiesce_end(rs_virt_quiesce *q, uint64_t *freeze_ms, rs_error *err);
/* True from a successful freeze until a thaw (by the caller or the watchdog)
 * has returned. */
bool rs_virt_quiesce_frozen(const rs_virt_quiesce *q);

/* ---- file-backed copies ------------------------------------------------- */

/* Journal callback: called before each step that a crash would leave
 * half-done, with what rs_virt_recover() needs.  A negative return aborts
 * the copy before the step (everything done so far is undone). */
typedef enum {
    RS_VIRT_J_DELTA = 1,      /* about to create delta_path */
    RS_VIRT_J_UNDEFINE,       /* about to undefine; saved_xml is set */
    RS_VIRT_J_MANAGED_SAVE,   /* about to managed-save the domain */
    RS_VIRT_J_DONE,           /* everything undone/cleaned; forget it */
} rs_virt_journal_event;

typedef struct rs_virt_journal_rec {
    rs_virt_journal_event event;
    const char *domain_name;
    const char *domain_uuid;
    const char *disk;         /* target dev */
    const char *delta_path;   /* may be NULL */
    const char *saved_xml;    /* may be NULL; may hold secrets (SECURE XML) */
    bool was_paused;
} rs_virt_journal_rec;

typedef int (*rs_virt_journal_fn)(void *opaque, const rs_virt_journal_rec *rec);

enum {
    /* never use VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB: undefine/copy/define */
    RS_VIRT_COPY_NO_TRANSIENT_JOB = 1 << 0,
};

typedef struct rs_virt_copy_opts {
    const char *work_dir;       /* temporary files; default "/var/tmp" */
    const char *qemu_img;       /* default "qemu-img" (PATH) */
    /* destination: an RBD image created by qemu-img ... */
    const char *ceph_conf;
    const char *ceph_id;        /* without "client." */
    const char *ceph_keyring;   /* may be NULL (from ceph.conf) */
    const char *dest_pool;
    const char *dest_image;
    /* ... or, when set, a local raw file (tests, export) */
    const char *dest_file;
    rs_virt_quiesce_policy quiesce;
    int quiesce_timeout_s;
    unsigned max_freeze_ms;
    int job_timeout_s;          /* mirror must be ready within; default 600 */
    int convert_timeout_s;      /* 0: none */
    const atomic_bool *cancel;  /* may be NULL; checked while waiting */
    rs_virt_journal_fn journal; /* may be NULL */
    void *journal_opaque;
    unsigned flags;
    /* When set, called instead of qemu-img convert with the source to copy
     * (@format, backing chain intact, readable until it returns): live, the
     * delta after the job ended and the domain was re-defined; cold, the
     * disk itself while the domain is saved.  For streaming the data
     * elsewhere (an upload) without a local copy. */
    int (*consume)(void *opaque, const char *src, const char *format,
                   uint64_t virtual_size, rs_error *err);
    void *consume_opaque;
} rs_virt_copy_opts;

typedef struct rs_virt_copy_report {
    uint64_t total_ms;
    uint64_t prepare_ms;      /* abort old job, create delta, start copy */
    uint64_t mirror_ms;       /* until the mirror is ready */
    uint64_t freeze_ms;       /* guest frozen (0 if not) */
    uint64_t end_job_ms;      /* BlockJobAbort */
    uint64_t convert_ms;      /* qemu-img convert */
    uint64_t downtime_ms;     /* cold: managed save .. running again */
    uint64_t virtual_size;    /* bytes */
    bool transient_job;       /* TRANSIENT_JOB used (no undefine) */
    bool quiesced;
    bool dest_created;        /* the RBD image / file may exist: on failure
                                 the caller removes it */
    char *warning;            /* quiesce warning; rs_virt_copy_report_clear */
} rs_virt_copy_report;

void rs_virt_copy_report_clear(rs_virt_copy_report *r);

/* Live copy of a file disk of a running domain (see docs/VIRT.md). */
int rs_virt_live_copy(rs_virt_dom *dom, const rs_virt_disk *disk,
                      const rs_virt_copy_opts *o, rs_virt_copy_report *rep,
                      rs_error *err);
/* Cold copy: managed save (if active), convert the disk's chain, start it
 * again in its previous state (running or paused).  A shut-off domain is
 * simply converted. */
int rs_virt_cold_copy(rs_virt_dom *dom, const rs_virt_disk *disk,
                      const rs_virt_copy_opts *o, rs_virt_copy_report *rep,
                      rs_error *err);

/* ---- crash recovery ----------------------------------------------------- */

typedef struct rs_virt_recover_info {
    const char *domain;       /* name or uuid */
    const char *saved_xml;    /* define from this if the domain is gone or
                                 transient; may be NULL */
    const char *disk;         /* abort any block job on it; may be NULL */
    const char *delta_path;   /* removed if present; may be NULL */
    bool start;               /* make sure the domain runs */
    bool start_paused;        /* ... paused */
    bool thaw;                /* the copy died maybe inside a freeze: thaw the
                                 guest if it runs (agent errors ignored,
                                 10 s agent timeout) */
} rs_virt_recover_info;

/* Idempotent: defined (from saved_xml if needed), no block job left on the
 * disk, delta removed, running (or paused) when @start. */
int rs_virt_recover(rs_virt_conn *c, const rs_virt_recover_info *ri,
                    rs_error *err);

#endif
