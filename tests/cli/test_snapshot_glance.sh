#!/bin/bash
# test_snapshot_glance.sh - `rbdsnap snapshot --image ...` with Glance
# configured (the lab's no-auth Glance): end to end, and a failure injected
# at every step of snapshot + register leaves nothing in RBD or Glance.
#
#   1. success: the Glance image is active with the RBD clone's size, has the
#      properties Nova sets for a snapshot, its location is
#      rbd://<fsid>/images/<id>/snap, <id>@snap is protected; Glance's own
#      DELETE removes it cleanly (no RBD leftovers);
#   2. for each step (RBD flow steps and Glance steps, before and after):
#      failpoint `error` -> exit 1, no Glance record, no clone, no rbdsnap
#      snapshot (trash namespace included) or metadata key on the source;
#   3. `_exit` in the middle, then `rbdsnap recover`: the same.
. "$(dirname "$0")/lib.sh"

: "${GLANCE_URL:?lab Glance missing}"
JDIR=$TMPD/journal
SRC="vol-$SFX"
IDS=()
glance_cleanup() {
    local id
    for id in "${IDS[@]}"; do
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$id" || true
    done
}
trap 'glance_cleanup; cleanup_all' EXIT

newid() { local u; u=$(cat /proc/sys/kernel/random/uuid); IDS+=("$u"); echo "$u"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$GLANCE_URL/v2/images/$1"; }

rbd create --size 64M "vms/$SRC" || die "cannot create vms/$SRC"
rbd bench --io-type write --io-size 1M --io-total 8M "vms/$SRC" >/dev/null 2>&1 || die "cannot write vms/$SRC"

nothing_left() {    # nothing_left ID WHAT
    local id=$1 what=$2 st snaps keys
    st=$(status_of "$id")
    [ "$st" = 404 ] || fail "$what: Glance record $id still there (HTTP $st)"
    rbd ls images | grep -qx "$id" && fail "$what: clone images/$id left"
    rbd ls images | grep -q "^${id}_" && fail "$what: extra clone images/${id}_* left"
    snaps=$(rbd snap ls --all "vms/$SRC" 2>/dev/null | grep -c rbdsnap-)
    [ "$snaps" = 0 ] || fail "$what: $snaps rbdsnap snapshot(s) left on vms/$SRC"
    keys=$(rbd image-meta list "vms/$SRC" 2>/dev/null | grep -c 'rbdsnap.snap.')
    [ "$keys" = 0 ] || fail "$what: $keys rbdsnap.snap.* key(s) left on vms/$SRC"
    ls "$JDIR" 2>/dev/null | grep -q . && [ -n "$(ls "$JDIR"/*.json 2>/dev/null)" ] &&
        fail "$what: journal record left in $JDIR"
    return 0
}

# ---- 1. success ----------------------------------------------------------------
id=$(newid)
out=$TMPD/ok.json
if "$RBDSNAP" --format json snapshot --pool vms --image "$SRC" --name "$id" \
        --image-name "rbdsnap-test-$SFX" --property "os_distro=cirros" \
        --journal-dir "$JDIR" >"$out" 2>"$TMPD/ok.err"; then
    ok "snapshot into Glance"
else
    cat "$TMPD/ok.err" >&2
    die "snapshot into Glance failed"
fi
check "result names the image" jcheck "$out" "d['image_id'] == '$id' and d['location'].endswith('/images/$id/snap')"
curl -s "$GLANCE_URL/v2/images/$id" >"$TMPD/img.json"
size=$(rbd info --format json "images/$id" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["size"])')
check "Glance image active, right size, Nova's snapshot properties" jcheck "$TMPD/img.json" "
    d['status'] == 'active' and d['size'] == $size and
    d['disk_format'] == 'raw' and d['container_format'] == 'bare' and
    d['visibility'] == 'private' and
    d['image_type'] == 'snapshot' and d['image_location'] == 'snapshot' and
    d['image_state'] == 'available' and 'rbdsnap_job_id' in d and
    d['os_distro'] == 'cirros' and d['name'] == 'rbdsnap-test-$SFX' and
    d.get('direct_url', '').startswith('rbd://') and d['direct_url'].endswith('/images/$id/snap')"
check "images/$id@snap protected" bash -c "rbd snap ls --format json images/$id | grep -q '\"protected\":\"true\"'"
st=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$GLANCE_URL/v2/images/$id")
check "Glance's own DELETE removes it (HTTP $st)" test "$st" = 204
check "no RBD leftovers after Glance's delete" nothing_left "$id" "after delete"

# ---- 2. an error at every step --------------------------------------------------
steps="tag_source snap_create clone tag_clone clone_snap_create clone_snap_protect source_snap_remove"
points=()
for s in $steps; do points+=("rbd.flow.$s" "rbd.flow.$s.done"); done
points+=(rbd.flow.flatten rbd.flow.flatten.done)
for s in glance_create register wait_active; do
    points+=("service.snapshot.$s" "service.snapshot.$s.done")
done
for fp in "${points[@]}"; do
    id=$(newid)
    flat=no
    case $fp in rbd.flow.flatten*) flat=yes ;; esac
    RBDSNAP_FAILPOINTS="$fp=error:EIO" "$RBDSNAP" snapshot --pool vms --image "$SRC" \
        --name "$id" --flatten "$flat" --journal-dir "$JDIR" >"$TMPD/fp.out" 2>"$TMPD/fp.err"
    rc=$?
    if [ "$rc" = 1 ]; then ok "$fp: fails with exit 1"; else fail "$fp: exit $rc (want 1)"; fi
    grep -q "rbdsnap snapshot" "$TMPD/fp.err" || fail "$fp: no error line on stderr"
    nothing_left "$id" "$fp" && ok "$fp: nothing left"
done

# ---- 3. a crash in the middle, then recover --------------------------------------
for fp in rbd.flow.clone.done rbd.flow.clone_snap_protect service.snapshot.register; do
    id=$(newid)
    RBDSNAP_FAILPOINTS="$fp=exit:99" "$RBDSNAP" snapshot --pool vms --image "$SRC" \
        --name "$id" --journal-dir "$JDIR" >/dev/null 2>&1
    rc=$?
    [ "$rc" = 99 ] || fail "$fp: crash exit $rc (want 99)"
    if "$RBDSNAP" recover --journal-dir "$JDIR" >"$TMPD/rec.out" 2>&1; then
        ok "$fp: recover"
    else
        cat "$TMPD/rec.out" >&2
        fail "$fp: recover failed"
    fi
    nothing_left "$id" "crash at $fp + recover" && ok "crash at $fp + recover: nothing left"
done

[ "$NFAIL" = 0 ] || die "$NFAIL check(s) failed"
echo "all snapshot-into-Glance checks passed"
