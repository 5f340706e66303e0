/*
 * failpoint.h - deterministic fault injection, compiled into every build.
 *
 * Inert unless configured.  Configure from the environment variable
 * RBDSNAP_FAILPOINTS (read once, lazily) or with rs_failpoint_configure()
 * (the config file key `failpoints`).  The spec is a comma-separated list:
 *
 *     NAME=ACTION[,NAME=ACTION...]
 *
 * ACTION is one of
 *     error          the failpoint returns -EIO
 *     error:ERRNO    returns -ERRNO (number, or a name such as ENOSPC)
 *     exit           the process calls _exit(99) at once (simulates a crash)
 *     exit:N         _exit(N)
 *     sleep:MS       sleeps MS milliseconds, then continues
 *     off            ignored
 * An action may be prefixed with COUNT* to trigger only on the COUNT-th hit
 * (e.g. "rbd.flow.clone=2*error" fails the second clone only).
 *
 * Code calls rs_failpoint("module.step") at the place to break.  Names used
 * by the RBD flow are listed in docs/FAILPOINTS.md.
 */
#ifndef RS_COMMON_FAILPOINT_H
#define RS_COMMON_FAILPOINT_H

/* Returns 0 (continue) or a negative errno the caller must treat as the
 * step's failure.  May not return (exit action). */
int rs_failpoint(const char *name);
/* Replace the active set.  Returns -EINVAL for a malformed spec (nothing
 * changed).  NULL or "" clears. */
int rs_failpoint_configure(const char *spec);
/* Check a spec without applying it: 0 or -EINVAL. */
int rs_failpoint_validate(const char *spec);
/* Number of times @name was reached since configuration (for tests). */
unsigned rs_failpoint_hits(const char *name);

#endif
