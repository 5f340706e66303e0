/*
 * report.h - render a reaper plan (and, once run, its outcome) for
 * `rbdsnap gc [--dry-run] [--format plain|json]` and the daemon.
 *
 * The report lists what was found, what is (or was) deleted with its
 * ordered actions and their state, and what was skipped and why.
 */
#ifndef RS_GC_REPORT_H
#define RS_GC_REPORT_H

#include <stdbool.h>

#include "common/error.h"
#include "gc/policy.h"

typedef enum {
    RS_GC_REPORT_PLAIN = 0,
    RS_GC_REPORT_JSON,
} rs_gc_report_format;

/* "plain" or "json"; -EINVAL otherwise. */
int rs_gc_report_format_parse(const char *s, rs_gc_report_format *out);

/* Render into a fresh heap string (*out, free() it).  0 or -errno.
 * JSON: {"time", "dry_run", "summary": {found, delete, skipped, actions,
 * done, failed, not_run}, "delete": [{kind, object, reason, actions: [...]}],
 * "skipped": [{kind, object, skip, reason}]}. */
int rs_gc_report_render(const struct rs_gc_plan *plan, rs_gc_report_format fmt,
                        bool dry_run, char **out, rs_error *err);

#endif
