/*
 * journal_rados.h - the daemon's job journal in RADOS omap, shared by every
 * rbdsnapd of a cluster.
 *
 * One object, "rbdsnap.journal", in the pool and namespace of the config
 * (journal.pool, journal.namespace), holds per job id:
 *
 *   own.<id>    the owning daemon's id ("host:port")
 *   req.<id>    the daemon's record (JSON text, opaque here: request, phase)
 *   flow.<id>   the RBD flow's record (rs_job_to_json), via rs_journal_ops
 *
 * Every write for a job after its creation is fenced by an omap compare
 * "own.<id> == me" in the same write operation, so a daemon whose jobs were
 * taken over can never write (or run a further step) again: its next
 * journal call fails with -ESTALE.
 *
 * Leases: each daemon holds an exclusive rados lock (rados_lock_exclusive,
 * duration journal.lease_seconds) on "rbdsnap.lease.<owner>", renewed by
 * the daemon's timer.  Another daemon that manages to take that lock knows
 * the owner is dead (its lease expired) and claims its jobs (compare and
 * swap of own.<id>).  A restarted daemon with the same id breaks its own
 * previous incarnation's lock at once and resumes its jobs.
 *
 * Only rbd/ includes librados.
 */
#ifndef RS_RBD_JOURNAL_RADOS_H
#define RS_RBD_JOURNAL_RADOS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "rbd/cluster.h"
#include "rbd/journal.h"

#define RS_JOURNAL_RADOS_OBJECT "rbdsnap.journal"
#define RS_JOURNAL_RADOS_LEASE_PREFIX "rbdsnap.lease."

typedef struct rs_journal_rados_opts {
    const char *pool;
    const char *ns;             /* namespace; "" = default */
    const char *owner;          /* this daemon's id, unique per cluster */
    int lease_seconds;
} rs_journal_rados_opts;

/* The returned journal implements rs_journal_ops (for rs_flow_run) plus the
 * calls below.  Holds a reference on @cl. */
int rs_journal_rados_open(rs_cluster *cl, const rs_journal_rados_opts *o, rs_journal **out,
                          rs_error *err);
/* True if @j was made by rs_journal_rados_open. */
bool rs_journal_is_rados(const rs_journal *j);

/* Take this daemon's lease (breaking a stale lock of a previous process with
 * the same owner id).  -EBUSY if another live process holds it. */
int rs_journal_rados_lease_acquire(rs_journal *j, rs_error *err);
/* Renew it; re-acquires an expired lease nobody took.  -EBUSY: lost. */
int rs_journal_rados_lease_renew(rs_journal *j, rs_error *err);
void rs_journal_rados_lease_release(rs_journal *j);

/* Create the records of a new job (own.<id> = me, req.<id> = @text). */
int rs_journal_rados_create(rs_journal *j, const char *id, const char *text, rs_error *err);
/* Replace req.<id>, fenced (-ESTALE when the job is no longer ours). */
int rs_journal_rados_update(rs_journal *j, const char *id, const char *text, rs_error *err);
/* Drop every key of job @id, fenced. */
int rs_journal_rados_forget(rs_journal *j, const char *id, rs_error *err);

/* Claim the jobs of daemons whose lease expired.  *claimed (may be NULL)
 * gets the number of jobs now owned by this daemon as a result. */
int rs_journal_rados_takeover(rs_journal *j, int *claimed, rs_error *err);

typedef struct rs_journal_rados_entry {
    char id[RS_JOB_ID_MAX];
    char *request;              /* req.<id> text or NULL */
    bool has_flow;
    rs_job flow;                /* valid when has_flow */
} rs_journal_rados_entry;

/* Jobs owned by this daemon that no thread of this process works on; they
 * are marked active (claimed) until rs_journal_release(j, id). */
int rs_journal_rados_list_mine(rs_journal *j, rs_journal_rados_entry **out, size_t *n,
                               rs_error *err);
void rs_journal_rados_entries_free(rs_journal_rados_entry *e, size_t n);
/* Mark @id as worked on by this process (new jobs) or not. */
void rs_journal_rados_set_active(rs_journal *j, const char *id, bool active);
/* Number of jobs in the journal (all owners); for health and tests. */
int rs_journal_rados_count(rs_journal *j, size_t *n, rs_error *err);

#endif
