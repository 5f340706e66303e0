/*
 * progress.h - progress of a long RBD operation (flatten) on stderr.
 *
 * On a terminal: one redrawn line with a bar, percent, MiB/s and ETA,
 *   flatten images/x [##########..........]  50%  12.5 MiB/s  ETA 0:04
 * otherwise plain lines at every 10 % step (and at 0 % and 100 %):
 *   flatten images/x: 50% 12.5 MiB/s ETA 0:04
 * librbd reports progress in objects; the byte rate is derived from the
 * image size.  Not thread-safe: one progress per operation.
 */
#ifndef RS_CLI_PROGRESS_H
#define RS_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    RS_PROGRESS_AUTO = 0,    /* bar if @f is a terminal, else lines */
    RS_PROGRESS_BAR,
    RS_PROGRESS_LINES,
    RS_PROGRESS_NONE,
} rs_progress_mode;

typedef struct rs_progress rs_progress;

/* @label e.g. "flatten images/x"; @bytes the image size (0 unknown). */
rs_progress *rs_progress_new(FILE *f, rs_progress_mode mode, const char *label, uint64_t bytes);
/* @done of @total units (librbd's callback arguments). */
void rs_progress_update(rs_progress *p, uint64_t done, uint64_t total);
/* Final line: "done", "cancelled" or "failed" according to @rc. */
void rs_progress_finish(rs_progress *p, int rc);
void rs_progress_free(rs_progress *p);
/* The mode AUTO resolved to for @f. */
rs_progress_mode rs_progress_resolve(FILE *f, rs_progress_mode mode);

/* Flatten @pool/@image showing progress on stderr.  SIGINT/SIGTERM (and
 * the failpoint "cli.flatten.progress", which raises SIGINT from the
 * progress callback) cancel it cleanly: -ECANCELED, the image stays a
 * valid clone.  The previous signal handlers are restored afterwards. */
typedef struct rs_cluster rs_cluster;
#include "common/error.h"
int rs_progress_flatten(rs_cluster *cl, const char *pool, const char *image, uint64_t bytes,
                        rs_progress_mode mode, rs_error *err);
/* True once SIGINT/SIGTERM arrived during rs_progress_flatten(). */
bool rs_progress_interrupted(void);

/* Formatting (exposed for tests).  @rate bytes/s (< 0 unknown), @eta
 * seconds (< 0 unknown); @width bar cells (0: no bar). */
void rs_progress_format(char *buf, size_t len, const char *label, int width, uint64_t done,
                        uint64_t total, double rate, double eta);

#endif
