/*
 * virt-priv.h - internals of virt/ shared between its files and exposed to
 * the unit tests.  Not part of the public API.
 */
#ifndef RS_VIRT_VIRT_PRIV_H
#define RS_VIRT_VIRT_PRIV_H

#include "virt/virt.h"

/* virt_xml.c: parse a domain XML document (live or inactive) into disks.
 * @flags as rs_virt_domain_disks(). */
int rs_virt_parse_disks(const char *xml, unsigned flags,
                        rs_virt_disk_list **out, rs_error *err);
void rs_virt_disk_clear(rs_virt_disk *d);

/* virt_quiesce.c: what to do when a freeze failed with libvirt error
 * @vir_code (virErrorNumber) and message @vir_msg.  Returns 0 (proceed
 * unfrozen; *@warning set, caller frees) or a negative errno (@err set). */
int rs_virt_quiesce_decide(rs_virt_quiesce_policy policy, const char *dom_name,
                           int vir_code, const char *vir_msg,
                           char **warning, rs_error *err);
/* The watchdog thawed the guest. */
bool rs_virt_quiesce_watchdog_fired(const rs_virt_quiesce *q);

/* virt_copy.c: qemu-img target for an RBD image, escaped for QEMU's
 * "rbd:pool/image:key=value" syntax.  NULL on ENOMEM / bad input. */
char *rs_virt_rbd_target(const char *pool, const char *image,
                         const char *conf, const char *id,
                         const char *keyring);

/* virt_conn.c: the underlying handles, for virt/ files and tests. */
struct _virConnect;
struct _virDomain;
struct _virConnect *rs_virt_conn_ptr(rs_virt_conn *c);   /* borrowed */
/* A live, referenced handle (reconnects if needed); virConnectClose() it. */
struct _virConnect *rs_virt_conn_get(rs_virt_conn *c, rs_error *err);
struct _virDomain *rs_virt_dom_ptr(rs_virt_dom *d);
rs_virt_conn *rs_virt_dom_conn(rs_virt_dom *d);
/* If @d's connection is dead (libvirtd restarted), reconnect through the
 * shared connection and re-look the domain up by uuid; rs_virt_dom_ptr()
 * then returns the new handle.  0 when alive or renewed. */
int rs_virt_dom_refresh(rs_virt_dom *d, rs_error *err);
/* Last libvirt error of this thread: code (virErrorNumber, 0 if none) and
 * message (never NULL). */
int rs_virt_last_error(const char **msg);

/* virt_copy.c: run a program (argv[0] looked up in PATH), no shell.  Its
 * stderr (tail) goes into @err on failure.  @cancel may be NULL;
 * @timeout_s 0 means none.  0, -ECANCELED, -ETIMEDOUT or -EIO. */
int rs_virt_run(char *const argv[], const atomic_bool *cancel, int timeout_s,
                rs_error *err);

#endif
