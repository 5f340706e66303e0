/*
 * service.h - rbdsnapd, the snapshot daemon (see docs/DAEMON.md and
 * docs/API.md).  The daemon's pieces (job engine, HTTP API, metrics,
 * sd_notify) are internal (service-priv.h); the snapshot orchestration
 * shared with the CLI is service/snapshot.h.
 */
#ifndef RS_SERVICE_SERVICE_H
#define RS_SERVICE_SERVICE_H

/* The whole daemon: parse arguments (-c FILE), load and validate the
 * configuration (exit 2 on a bad file, before touching anything), connect,
 * take over unfinished jobs, serve until SIGTERM/SIGINT.  Returns the exit
 * status. */
int rs_daemon_main(int argc, char **argv);

#endif
