/*
 * snapshot_file.h - snapshot of a libvirt domain whose root disk is a file
 * (qcow2 with a backing file, or raw), for rs_snapshot_run().
 *
 *   glance_create  the Glance record first, as in the RBD flow
 *   copy           live: shallow block copy into a qcow2 delta with the
 *                  disk's backing file, freeze only around ending the job
 *                  (no pivot), thaw; cold: managed save, copy, restore in
 *                  the previous state (paused if it was paused).  The data
 *                  goes straight into a new RBD image <dest_pool>/<image id>
 *                  (raw, sparse; upload "rbd"), or is streamed to Glance
 *                  with PUT /file (upload "glance") - never a local copy.
 *   tag, snap      upload "rbd": provenance metadata (rbdsnap.job_id,
 *                  .instance_uuid, .created_at, .version, .role=clone,
 *                  .source) on the image, then @snap created and protected
 *   register       rbd:// location added, image active
 *
 * Mode (request `mode`, else snapshot.file_mode): "live", "cold", or
 * "auto" = live for a running domain (cold when libvirt refuses the block
 * copy), cold for a paused or shut-off one.
 *
 * Crash safety: before each step a crash would leave half done, a state
 * file <snapshot.work_dir>/rbdsnap-file-<image id>.json (mode 0600,
 * replaced atomically) records the domain, the disk, the delta, whether the
 * domain was saved or undefined (its inactive XML then in
 * rbdsnap-file-<image id>.xml, 0600: it may hold secrets) and the RBD
 * image.  rs_snapshot_file_recover() repairs from it (rs_virt_recover: domain
 * defined and in its previous state, no block job, no delta; RBD image
 * removed).  The daemon's resume and rollback call it.  The file is removed
 * when the job ends cleanly.
 *
 * Failure of a run: Glance record deleted, RBD image removed, delta removed,
 * domain defined and in its previous state; what could not be undone is
 * named in @err and res->leftovers is set (the state file is kept).
 */
#ifndef RS_SERVICE_SNAPSHOT_FILE_H
#define RS_SERVICE_SNAPSHOT_FILE_H

#include <stdbool.h>

#include "common/error.h"
#include "service/snapshot.h"
#include "virt/virt.h"

/* Does @req (instance_uuid or domain) name a libvirt domain whose root disk
 * is a file?  *@is_file false when there is no libvirt, no such domain or
 * the root disk is RBD. */
int rs_snapshot_file_applies(const rs_snapshot_env *env, const rs_snapshot_req *req,
                             bool *is_file, rs_error *err);
/* Same for a domain already looked up. */
bool rs_snapshot_file_domain(rs_virt_dom *dom);

/* Run the file-backed snapshot.  @req->job_id and @req->image_id must be
 * set.  Same contract as rs_snapshot_run(). */
int rs_snapshot_file_run(const rs_snapshot_env *env, const rs_snapshot_req *req,
                         const rs_snapshot_observer *obs, rs_snapshot_result *res,
                         rs_error *err);

/* Repair what an interrupted file-backed job of image @image_id left:
 * returns 0 when there was nothing (no state file), 1 when it repaired it
 * (state file removed), or -errno (state file kept).  @keep_image: leave the
 * RBD image (the job had finished registering it). */
int rs_snapshot_file_recover(const rs_snapshot_env *env, const char *image_id, bool keep_image,
                             rs_error *err);

#endif
