/*
 * service.h - rbdsnapd, the snapshot daemon (see docs/DAEMON.md and
 * docs/API.md).  The daemon's pieces (job engine, HTTP API, metrics,
 * sd_notify) are internal (service-priv.h); the snapshot orchestration
 * shared with the CLI is service/snapshot.h.
 */
#ifndef RS_SERVICE_SERVICE_H
#define RS_SERVICE_SERVICE_H

#include "common/error.h"

/* The whole daemon: parse arguments (-c FILE), load and validate the
 * configuration (exit 2 on a bad file, before touching anything), connect,
 * take over unfinished jobs, serve until SIGTERM/SIGINT.  Returns the exit
 * status. */
int rs_daemon_main(int argc, char **argv);

/* ---- client of the daemon's API (the CLI's job commands) -------------- */

/* One HTTP/1.0 request to rbdsnapd.  @endpoint: "http://HOST:PORT",
 * "unix:/path" or "/path" (UNIX socket).  @token (may be NULL) goes in
 * X-Auth-Token, @body (may be NULL) is sent as application/json.  On
 * success *status is the HTTP status and *resp the body (malloc'ed).
 * TLS is not supported here (use the UNIX socket locally). */
int rs_daemon_call(const char *endpoint, const char *token, const char *method,
                   const char *path, const char *body, int timeout_s, int *status, char **resp,
                   rs_error *err);

#endif
