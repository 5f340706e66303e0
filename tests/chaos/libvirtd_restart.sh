#!/bin/bash
# Chaos: libvirtd is restarted in the middle of a live copy of a
# file-backed disk (qcow2 on a backing file).  The copy is held with its
# mirror ready (failpoint virt.blockjob_abort=sleep) while the lab's
# libvirtd is killed and started again.  Afterwards the domain must be
# intact and running on its original disk, with no block job and no delta
# file left; the snapshot either completed or left nothing in RBD/Glance.
C_NAME=libvirtd_restart
. "$(dirname "$0")/lib.sh"

c_lab ceph glance libvirt
V() { virsh -q -c "$LIBVIRT_DEFAULT_URI" "$@"; }
DOM=chaos-$C_RAND
mkdir -p "$C_DIR/img" "$C_DIR/work"
qemu-img create -q -f raw "$C_DIR/img/base.raw" 64M || c_die "qemu-img base"
qemu-img create -q -f qcow2 -o backing_file="$C_DIR/img/base.raw",backing_fmt=raw \
    "$C_DIR/img/top.qcow2" 64M || c_die "qemu-img top"
cat >"$C_DIR/dom.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$C_DIR/img/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
XML
drop_dom() { V destroy "$DOM" >/dev/null 2>&1; }
C_EXTRA_CLEANUP=drop_dom
V create "$C_DIR/dom.xml" >/dev/null || c_die "cannot start domain $DOM"
[[ $(V domstate "$DOM") == running ]] || c_die "domain $DOM not running"

conf=$(c_conf cli "$RBDSNAP_CONF" libvirt.uri="\"$LIBVIRT_DEFAULT_URI\"" \
    snapshot.work_dir="\"$C_DIR/work\"" snapshot.journal_dir="\"$C_DIR/journal\"")
id=$(cat /proc/sys/kernel/random/uuid)
c_track_image "$id"
RBDSNAP_FAILPOINTS="virt.blockjob_abort=sleep:15000" "$C_CLI" -c "$conf" snapshot --domain "$DOM" \
    --name "chaos-$C_RAND" --image-id "$id" --mode live --upload rbd --quiesce off --format json \
    >"$C_DIR/cli.out" 2>"$C_DIR/cli.err" &
cli=$!
# Wait for the mirror (a block job on vda), then restart libvirtd.
seen=0
for _ in $(seq 600); do
    # (no grep -q in a pipeline under pipefail: SIGPIPE would hide a match)
    bj=$(V blockjob "$DOM" vda --info 2>&1)
    if [[ $bj == *[Cc]opy* ]]; then seen=1; break; fi
    kill -0 "$cli" 2>/dev/null || break
    sleep 0.1
done
((seen)) || { cat "$C_DIR/cli.err" >&2; c_die "never saw the block copy job"; }
c_log "block copy running: $(V blockjob "$DOM" vda --info 2>&1 | tr '\n' ' ')"
t0=$(c_now)
c_lab_kill libvirtd TERM
c_lab libvirt
c_log "libvirtd back after $(c_since "$t0") s"
rc=0
wait "$cli" || rc=$?
c_log "CLI exit $rc: $(tail -c 400 "$C_DIR/cli.err" | tr '\n' ' ')"
# Whatever the CLI did, it must have cleaned up after itself.
st=$(V domstate "$DOM" 2>&1)
[[ $st == running ]] || c_fail "domain state after the restart: $st"
bj=$(V blockjob "$DOM" vda --info 2>&1)
[[ -z $bj || $bj =~ [Nn]o\ current ]] || c_fail "block job left: $bj"
src=$(V domblklist "$DOM" 2>/dev/null | awk '$1 == "vda" { print $2 }')
[[ $src == "$C_DIR/img/top.qcow2" ]] || c_fail "vda now on '$src'"
left=$(find "$C_DIR/work" -type f 2>/dev/null | wc -l)
((left == 0)) || c_fail "$left file(s) left in the work dir: $(ls "$C_DIR/work")"
qemu-img check -q "$C_DIR/img/top.qcow2" 2>/dev/null || c_log "note: qemu-img check of the live top image (in use) not clean"
if ((rc == 0)); then
    rbd info "images/$id" >/dev/null 2>&1 || c_fail "CLI succeeded but images/$id is missing"
    outcome="snapshot completed"
else
    n=0
    rbd info "images/$id" >/dev/null 2>&1 && n=$((n + 1))
    g=$(curl -s -m 10 "$GLANCE_URL/v2/images/$id" | json 'd.get("status","")')
    [[ -n $g ]] && n=$((n + 1))
    ((n == 0)) || c_fail "failed snapshot left $n object(s) (image/Glance $g)"
    outcome="snapshot failed cleanly: \`$(grep -o 'error:.*' "$C_DIR/cli.err" | head -1 | cut -c1-90)\`"
fi
took=$(c_since "$t0")
if ((C_FAILS == 0)); then
    c_result "libvirtd restarted during a live copy" PASS "${took} s from the kill to a clean state" 0 \
        "domain running on its disk, no block job, no delta; $outcome"
else
    c_result "libvirtd restarted during a live copy" FAIL "$took" "see log" "$outcome"
fi
c_finish
