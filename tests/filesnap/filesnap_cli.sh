#!/bin/bash
# File-backed snapshots through `rbdsnap snapshot --domain` against the lab's
# real libvirtd, TCG guests with a guest agent and a writer, Ceph and Glance:
#   1. live (rbd upload): image active, tagged, @snap protected, fsck-clean,
#      guest never paused, freeze window reported, nothing left locally;
#   2. cold of a paused guest: image identical to the disk (qemu-img
#      compare), guest back paused; cold of a running guest: back running,
#      downtime reported;
#   3. live with upload=glance (PUT /file from qemu-nbd): active, fsck-clean;
#   4. no-agent guest: optional proceeds unfrozen with a warning; required
#      fails with nothing left (no Glance record, no RBD image, domain
#      running, no block job, work dir empty);
#   5. bad requests: --mode/--upload values, all_disks.
T_NAME=filesnap_cli
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

conf=$(f_conf cli)
dom=$F_FILE_DOM
[[ $(f_state "$dom") == running ]] || t_die "lab domain $dom is not running"

snap() { "$F_CLI" -c "$conf" --format json snapshot --domain "$@" 2>>"$T_DIR/cli.log"; }

# 1. live
name=filesnap-live-$T_RAND
f_sampler_start "$dom"
out=$(snap "$dom" --name "$name" --mode live) || t_fail "live: CLI failed: $(tail -n 3 "$T_DIR/cli.log")"
samples=$(f_sampler_stop)
img=$(echo "$out" | json 'd["image_id"] if d else ""')
if [[ -n $img ]]; then
    t_track_image "$img"
    t_log "live: $(echo "$out" | json '{k: d[k] for k in ("mode","freeze_ms","quiesced","downtime_ms")}') states: $samples"
    [[ $(echo "$out" | json 'd["mode"]') == live ]] || t_fail "live: mode not live: $out"
    [[ $(echo "$out" | json 'd["quiesced"]') == True ]] || t_fail "live: not quiesced: $out"
    (($(echo "$out" | json 'd["freeze_ms"]') > 0)) || t_fail "live: no freeze window: $out"
    [[ $samples != *paused* && $samples != *shut* && $samples == *running* ]] ||
        t_fail "live: guest left running: $samples"
    [[ $(t_glance_status "$img") == active ]] || t_fail "live: Glance image $img not active"
    [[ $(f_meta "$img" rbdsnap.role) == clone ]] || t_fail "live: rbdsnap.role not clone"
    [[ $(f_meta "$img" rbdsnap.job_id) == "$(echo "$out" | json 'd["job_id"]')" ]] ||
        t_fail "live: rbdsnap.job_id wrong"
    [[ -n $(f_meta "$img" rbdsnap.created_at) && -n $(f_meta "$img" rbdsnap.version) ]] ||
        t_fail "live: created_at/version missing"
    [[ $(f_meta "$img" rbdsnap.instance_uuid) == "$(virsh domuuid "$dom" | head -n 1)" ]] ||
        t_fail "live: rbdsnap.instance_uuid is not the domain uuid"
    prot=$(rbd snap ls "images/$img" --format json | json '[s["name"] for s in d if s["name"]=="snap" and s.get("protected")=="true"]')
    [[ $prot == '["snap"]' ]] || t_fail "live: images/$img@snap missing or unprotected: $prot"
    used=$(rbd du --format json "images/$img@snap" 2>/dev/null | json 'd["images"][0]["used_size"]')
    t_log "live: images/$img@snap uses $((used / 1048576)) MiB of 1 GiB"
    ((used < 700 * 1048576)) || t_fail "live: image not sparse ($used bytes used)"
    f_fsck "$img" live
    t_ok "live snapshot $img"
fi
f_domain_clean "$dom" running live
f_thawed "$dom" live

# 2a. cold of a paused guest: identical to the disk, back paused
virsh suspend "$dom" >/dev/null || t_fail "cannot pause $dom"
name=filesnap-cold-paused-$T_RAND
out=$(snap "$dom" --name "$name" --mode cold) || t_fail "cold paused: CLI failed: $(tail -n 3 "$T_DIR/cli.log")"
img=$(echo "$out" | json 'd["image_id"] if d else ""')
st=$(f_state "$dom")
if [[ -n $img ]]; then
    t_track_image "$img"
    t_log "cold paused: $(echo "$out" | json '{k: d[k] for k in ("mode","freeze_ms","downtime_ms")}')"
    [[ $st == paused ]] || t_fail "cold paused: domain is '$st' after the snapshot"
    # The guest is still paused: its disk is what was copied.
    if qemu-img compare -U -f qcow2 -F raw "$LAB_FILE_DISK" \
        "rbd:images/$img@snap:conf=$CEPH_CONF:id=admin:keyring=$CEPH_KEYRING" >"$T_DIR/compare.out" 2>&1; then
        t_ok "cold paused: image identical to the disk"
    else
        t_fail "cold paused: image differs: $(tail -n 2 "$T_DIR/compare.out")"
    fi
    (($(echo "$out" | json 'd["downtime_ms"]') > 0)) || t_fail "cold paused: no downtime reported"
fi
virsh resume "$dom" >/dev/null 2>&1
f_domain_clean "$dom" running "cold paused"

# 2b. cold of a running guest
name=filesnap-cold-$T_RAND
out=$(snap "$dom" --name "$name" --mode cold) || t_fail "cold: CLI failed: $(tail -n 3 "$T_DIR/cli.log")"
img=$(echo "$out" | json 'd["image_id"] if d else ""')
if [[ -n $img ]]; then
    t_track_image "$img"
    t_log "cold running: $(echo "$out" | json '{k: d[k] for k in ("mode","freeze_ms","downtime_ms")}')"
    [[ $(echo "$out" | json 'd["mode"]') == cold ]] || t_fail "cold: mode not cold"
    (($(echo "$out" | json 'd["downtime_ms"]') > 0)) || t_fail "cold: no downtime reported"
    [[ $(t_glance_status "$img") == active ]] || t_fail "cold: Glance image not active"
    t_ok "cold snapshot $img"
fi
f_domain_clean "$dom" running cold

# 3. live, streamed to Glance (PUT /file)
if [[ ${FILESNAP_SKIP_GLANCE_UPLOAD:-0} != 1 ]]; then
    name=filesnap-upload-$T_RAND
    out=$(snap "$dom" --name "$name" --mode live --upload glance) ||
        t_fail "upload: CLI failed: $(tail -n 3 "$T_DIR/cli.log")"
    img=$(echo "$out" | json 'd["image_id"] if d else ""')
    if [[ -n $img ]]; then
        t_track_image "$img"
        [[ $(t_glance_status "$img") == active ]] || t_fail "upload: Glance image not active"
        size=$(curl -s "$GLANCE_URL/v2/images/$img" | json 'd["size"]')
        [[ $size == 1073741824 ]] || t_fail "upload: Glance size $size"
        f_fsck "$img" upload
        t_ok "upload snapshot $img"
    fi
    f_domain_clean "$dom" running upload
fi

# 4. no agent
ndom=$F_NOAGENT_DOM
name=filesnap-noagent-opt-$T_RAND
out=$(snap "$ndom" --name "$name" --quiesce optional) || t_fail "noagent optional: CLI failed: $(tail -n 3 "$T_DIR/cli.log")"
img=$(echo "$out" | json 'd["image_id"] if d else ""')
if [[ -n $img ]]; then
    t_track_image "$img"
    [[ $(echo "$out" | json 'd["quiesced"]') == False ]] || t_fail "noagent optional: quiesced?"
    [[ -n $(echo "$out" | json 'd.get("warning","")') ]] || t_fail "noagent optional: no warning: $out"
    [[ $(t_glance_status "$img") == active ]] || t_fail "noagent optional: not active"
    t_ok "noagent optional: $(echo "$out" | json 'd.get("warning","")')"
fi
f_domain_clean "$ndom" running "noagent optional"

name=filesnap-noagent-req-$T_RAND
id=$(cat /proc/sys/kernel/random/uuid)
t_track_image "$id"
if snap "$ndom" --name "$name" --quiesce required --image-id "$id" >/dev/null; then
    t_fail "noagent required: succeeded"
else
    t_ok "noagent required failed: $(grep -i error "$T_DIR/cli.log" | tail -n 1)"
fi
f_image_gone "$id" "noagent required"
[[ -z $(f_glance_by_name "$name") ]] || t_fail "noagent required: a Glance record named $name is left"
f_domain_clean "$ndom" running "noagent required"

# 5. bad requests (usage errors: exit 2, nothing created)
"$F_CLI" -c "$conf" snapshot --domain "$dom" --name x --mode warm >/dev/null 2>&1
[[ $? == 2 ]] || t_fail "--mode warm not a usage error"
"$F_CLI" -c "$conf" snapshot --domain "$dom" --name x --upload ftp >/dev/null 2>&1
[[ $? == 2 ]] || t_fail "--upload ftp not a usage error"
name=filesnap-alldisks-$T_RAND
snap "$dom" --name "$name" --all-disks >/dev/null && t_fail "--all-disks on a file domain succeeded"
[[ -z $(f_glance_by_name "$name") ]] || t_fail "--all-disks left a Glance record"
f_domain_clean "$dom" running "bad requests"

t_finish
