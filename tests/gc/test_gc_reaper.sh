#!/bin/bash
# test_gc_reaper.sh - acceptance test of `rbdsnap gc` on the real lab (Ceph +
# Glance): a scenario builder makes realistic debris with the rbd CLI and
# Glance's API, then checks that
#   - with the default grace nothing of ours is deleted (all young);
#   - `gc --dry-run --grace 0` lists exactly the garbage and changes nothing;
#   - a real run removes exactly the garbage, children first, and leaves
#     everything else as it was (listing before/after differs only by the
#     garbage); a second run removes the source snapshot an orphan clone
#     kept alive (and its rbdsnap.snap.<name> key); a third finds nothing;
#   - a second reaper while the RADOS lock is held says so and exits 1,
#     and waits with --wait.
# Every image name holds a random tag ($TAG: the uuids start with it) and
# every run passes --match $TAG, so concurrent tests on the same lab are
# never touched; everything created is removed at the end, also on failure.
set -uo pipefail
export LC_ALL=C

: "${RBDSNAP_BUILD_DIR:?RBDSNAP_BUILD_DIR not set}"
: "${CEPH_CONF:?lab environment missing (run through tests/run-integration)}"
: "${GLANCE_URL:?lab environment missing (no Glance)}"
RBDSNAP="$RBDSNAP_BUILD_DIR/cli/rbdsnap"
PY=/usr/bin/python3
TAG=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
TBD=_to_be_deleted_by_glance
FMT=${RBDSNAP_LAB_CLONE_FORMAT:-2}
TMPD=$(mktemp -d /tmp/rbdsnap-gc-test.XXXXXX)
export RBDSNAP_CONF
NFAIL=0
RECORDS=()

fail() { echo "FAIL: $*" >&2; NFAIL=$((NFAIL + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
# rbd, quiet (progress goes to stderr); the error is shown and the run stops.
rbdq() {
    rbd "$@" >/dev/null 2>"$TMPD/rbd.err" || { cat "$TMPD/rbd.err" >&2; die "rbd $*"; }
}

# A uuid that starts with $TAG.
u() { local x; x=$(uuidgen); echo "$TAG${x:8}"; }

# ---- cleanup (also on failure) ------------------------------------------
cleanup() {
    local id pool img snap round left
    for id in "${RECORDS[@]}"; do
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$id" || true
    done
    for round in 1 2 3 4 5 6 7 8; do
        left=0
        for pool in vms images; do
            while read -r id img; do
                [ -n "${id:-}" ] || continue
                case $img in *"$TAG"*) ;; *) continue ;; esac
                left=1
                rbd trash restore -p "$pool" "$id" >/dev/null 2>&1 || true
            done < <(rbd trash ls -p "$pool" 2>/dev/null)
            for img in $(rbd ls -p "$pool" 2>/dev/null | grep -F "$TAG"); do
                left=1
                for snap in $(rbd snap ls --all --format json "$pool/$img" 2>/dev/null |
                              "$PY" -c 'import json,sys
for s in json.load(sys.stdin): print(s["id"], s["name"], s.get("protected","false"))' |
                              awk '{print $1":"$2":"$3}'); do
                    IFS=: read -r sid sname sprot <<<"$snap"
                    [ "$sprot" = true ] && rbd snap unprotect "$pool/$img@$sname" >/dev/null 2>&1
                    rbd snap rm --snap-id "$sid" "$pool/$img" >/dev/null 2>&1 || true
                done
                rbd rm "$pool/$img" >/dev/null 2>&1 || true
            done
        done
        [ $left = 0 ] && break
    done
    rados -p "$JPOOL" --namespace "$JNS" lock break rbdsnap.gc.lock rbdsnap.gc \
        "${LOCKER:-none}" --lock-cookie "test-$TAG" >/dev/null 2>&1 || true
    rm -rf "$TMPD"
}
JPOOL=images
JNS=rbdsnap
trap cleanup EXIT

# ---- builders --------------------------------------------------------------
mk() { rbdq create --size 16M "$1"; }
snap() { rbdq snap create "$1@$2"; [ "${3:-}" = p ] && rbdq snap protect "$1@$2"; return 0; }
clone() { rbdq clone --rbd-default-clone-format "$FMT" "$1" "$2"; }
meta() { rbdq image-meta set "$1" "$2" "$3"; }
# glance_record NAME [PROPERTY=VALUE...] -> prints the id
glance_record() {
    local name=$1; shift
    local body
    body=$("$PY" -c 'import json,sys
d={"name":sys.argv[1],"disk_format":"raw","container_format":"bare"}
for kv in sys.argv[2:]:
    k,v=kv.split("=",1); d[k]=v
print(json.dumps(d))' "$name" "$@")
    curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "$GLANCE_URL/v2/images" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
glance_status() {
    curl -s "$GLANCE_URL/v2/images/$1" | "$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get("status","gone"))
except Exception: print("gone")'
}

# ---- the scenario ----------------------------------------------------------
echo "tag $TAG, clone format $FMT"
# 1. tbd tree, depth 1
U1=$(u); T1="vms/${U1}_disk$TBD"
mk "$T1"; snap "$T1" s p
# 2. tbd tree, depth 2 (clone of the instance disk, clone naming scheme)
U2=$(u); T2="vms/${U2}_disk$TBD"; U2B=$(u); T2B="vms/${U2B}_disk_clone_0a1b$TBD"
mk "$T2"; snap "$T2" s p; clone "$T2@s" "$T2B"
# 3. tbd tree, depth 3 across pools (+ a trash-namespace snapshot child, format 2)
A=$(u); B=$(u); C=$(u); D=$(u)
TA="vms/${A}_disk$TBD"; TB="images/${B}$TBD"; TC="vms/${C}_disk$TBD"; TD="vms/${D}_disk_clone_00ff$TBD"
mk "$TA"; snap "$TA" s1 p; clone "$TA@s1" "$TB"; snap "$TB" snap p; clone "$TB@snap" "$TC"
snap "$TC" s p
if [ "$FMT" = 2 ]; then
    snap "$TB" s2; clone "$TB@s2" "$TD"; rbdq snap rm "$TB@s2"
fi
# 4. an image Glance moved to the trash (protected @snap, a tbd clone), no record
E=$(u); F=$(u)
mk "images/$E"; snap "images/$E" snap p; clone "images/$E@snap" "vms/${F}_disk$TBD"
rbdq trash mv "images/$E"
# 5. the same, but its clone is a live instance disk: kept
E2=$(u); L2=$(u)
mk "images/$E2"; snap "images/$E2" snap p; clone "images/$E2@snap" "vms/${L2}_disk"
rbdq trash mv "images/$E2"
# 6. orphan clone of a killed snapshot run (the flow's metadata), no Glance record
L=$(u); G=$(u); SS="rbdsnap-${TAG}aa"; JOB6="job-$(u)"
mk "vms/${L}_disk"; meta "vms/${L}_disk" "rbdsnap.snap.$SS" "$JOB6"
if [ "$FMT" = 1 ]; then snap "vms/${L}_disk" "$SS" p; else snap "vms/${L}_disk" "$SS"; fi
clone "vms/${L}_disk@$SS" "images/$G"
meta "images/$G" rbdsnap.job_id "$JOB6"; meta "images/$G" rbdsnap.role clone
meta "images/$G" rbdsnap.instance_uuid "$L"
# 7. a Glance record rbdsnap left queued (no data)
JOB7="job-$(u)"
R7=$(glance_record "gc-test-$TAG-stuck" "rbdsnap_job_id=$JOB7" image_type=snapshot) ||
    die "cannot create a Glance record"
RECORDS+=("$R7")
# 8. a live instance whose rbdsnap snapshot is still in use by an active image
L3=$(u); G3=$(u); SS3="rbdsnap-${TAG}bb"; JOB8="job-$(u)"
mk "vms/${L3}_disk"; meta "vms/${L3}_disk" "rbdsnap.snap.$SS3" "$JOB8"
snap "vms/${L3}_disk" "$SS3" p; clone "vms/${L3}_disk@$SS3" "images/$G3"
meta "images/$G3" rbdsnap.job_id "$JOB8"; meta "images/$G3" rbdsnap.role clone
snap "images/$G3" snap p
R8=$(curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"id\":\"$G3\",\"name\":\"gc-test-$TAG-live\",\"disk_format\":\"raw\",\"container_format\":\"bare\",\"rbdsnap_job_id\":\"$JOB8\"}" \
    "$GLANCE_URL/v2/images" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
    die "cannot create the live Glance record"
RECORDS+=("$R8")
add_location() {
    local code try
    for try in 1 2 3 4 5; do
        code=$(curl -s -o "$TMPD/loc.out" -w '%{http_code}' -X PATCH \
            -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
            -d "[{\"op\":\"add\",\"path\":\"/locations/-\",\"value\":{\"url\":\"rbd://$CEPH_FSID/images/$1/snap\",\"metadata\":{}}}]" \
            "$GLANCE_URL/v2/images/$1")
        [ "$code" = 200 ] && return 0
        echo "add location of $1: HTTP $code: $(head -c 300 "$TMPD/loc.out") (attempt $try)" >&2
        [ "$(glance_status "$1")" = active ] && return 0
        sleep 2
    done
    return 1
}
add_location "$G3" || die "cannot add the location of $G3"
# 9. a user's own images with snapshots (and a clone)
mk "vms/gcuser-$TAG"; snap "vms/gcuser-$TAG" mine p; snap "vms/gcuser-$TAG" other
clone "vms/gcuser-$TAG@mine" "vms/gcuser-$TAG-clone"
# 10. a tbd image that still has a live grandchild
P=$(u); Q=$(u); R=$(u)
mk "images/${P}$TBD"; snap "images/${P}$TBD" snap p
clone "images/${P}$TBD@snap" "vms/${Q}_disk$TBD"; snap "vms/${Q}_disk$TBD" s p
clone "vms/${Q}_disk$TBD@s" "vms/${R}_disk"
# 11. a snapshot with rbdsnap's prefix but no tag: unknown owner
L4=$(u); mk "vms/${L4}_disk"; snap "vms/${L4}_disk" "rbdsnap-${TAG}cc"
# 12. an untagged image in the Glance pool without a record: unknown owner
N=$(u); mk "images/$N"
# 13. a tbd image whose Glance record is still queued (someone's upload)
K=$(u)
RK=$(curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"id\":\"$K\",\"name\":\"gc-test-$TAG-upload\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" \
    "$GLANCE_URL/v2/images" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
    die "cannot create the queued record"
RECORDS+=("$RK")
mk "images/${K}$TBD"
# 14. a tbd image with a Cinder volume cloned from it: kept
V=$(u); mk "vms/${V}_disk$TBD"; snap "vms/${V}_disk$TBD" s p
clone "vms/${V}_disk$TBD@s" "vms/volume-$(u)"
ok "scenario built (14 cases)"

GARBAGE_IMAGES=("$T1" "$T2" "$T2B" "$TA" "$TB" "$TC" "vms/${F}_disk$TBD" "images/$G")
[ "$FMT" = 2 ] && GARBAGE_IMAGES+=("$TD")
GARBAGE_TRASH=("images/$E")

# ---- listing of everything of ours -------------------------------------------
listing() {
    local pool img id
    for pool in vms images; do
        for img in $(rbd ls -p "$pool" | grep -F "$TAG"); do
            echo "image $pool/$img"
            rbd snap ls --all --format json "$pool/$img" | "$PY" -c 'import json,sys
t = sys.stdin.read().strip()
for s in (json.loads(t) if t else []):
    ns = s.get("namespace", {}).get("type", "user")
    name = s["name"] if ns != "trash" else "trash:" + s["namespace"].get("original_name", "?")
    print("snap %s@%s protected=%s" % (sys.argv[1], name, s.get("protected", "false")))' "$pool/$img"
            rbd image-meta list --format json "$pool/$img" 2>/dev/null | "$PY" -c 'import json,sys
t = sys.stdin.read().strip()
for k, v in sorted((json.loads(t) if t.startswith("{") else {}).items()):
    if k.startswith("rbdsnap."): print("meta %s %s=%s" % (sys.argv[1], k, v))' "$pool/$img"
        done
        while read -r id img; do
            [ -n "${id:-}" ] || continue
            case $img in *"$TAG"*) echo "trash $pool/$img" ;; esac
        done < <(rbd trash ls -p "$pool")
    done
    for id in "${RECORDS[@]}"; do echo "glance $id $(glance_status "$id")"; done
}

gc() { "$RBDSNAP" gc --match "$TAG" "$@"; }

listing | sort >"$TMPD/before"
echo "--- our objects before:"; cat "$TMPD/before"

# ---- 1: default grace: everything is young ------------------------------------
gc --dry-run --format json >"$TMPD/young.json" 2>"$TMPD/young.err"
check "dry run with the default grace exits 0" test $? = 0
check "default grace: nothing of ours to delete, garbage skipped for grace" \
    "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
assert d["summary"]["delete"] == 0, d["summary"]
assert any(s["skip"] == "grace" for s in d["skipped"]), d["skipped"]' "$TMPD/young.json"

# ---- 2: dry run, grace 0: exactly the garbage ---------------------------------
gc --dry-run --grace 0 --max-items 0 --format json >"$TMPD/dry.json" 2>"$TMPD/dry.err"
check "dry run exits 0" test $? = 0
"$PY" - "$TMPD/dry.json" "$FMT" "$T1" "$T2" "$TA" "images/$E" "images/$G" "$R7" \
    "vms/${U1}" "images/${P}" "vms/${Q}" "vms/${V}" "images/${K}" "images/$E2" \
    "vms/${L}_disk@rbdsnap-${TAG}aa" "vms/${L3}_disk@rbdsnap-${TAG}bb" \
    "vms/${L4}_disk@rbdsnap-${TAG}cc" <<'PYEOF' || fail "dry-run plan"
import json, sys
d = json.load(open(sys.argv[1]))
fmt = sys.argv[2]
T1, T2, TA, E, G, R7 = sys.argv[3:9]
P, Q, V, K, E2, SNAP6, SNAP8, SNAP11 = sys.argv[10:18]
dele = {x["object"]: x for x in d["delete"]}
skip = {x["object"]: x for x in d["skipped"]}
print("plan delete:", sorted((x["kind"], o) for o, x in dele.items()))
print("plan skip:", sorted((x["kind"], o, x["skip"]) for o, x in skip.items()))
def find(m, prefix):
    return [o for o in m if o.startswith(prefix)]
assert dele.get(T1, {}).get("kind") == "tbd_tree", "T1"
assert dele.get(T2, {}).get("kind") == "tbd_tree", "T2"
assert dele.get(TA, {}).get("kind") == "tbd_tree", "TA"
assert len(find(dele, E + " ")) == 1 and dele[find(dele, E + " ")[0]]["kind"] == "trashed_image", "E"
assert dele.get(G, {}).get("kind") == "orphan_image", "G"
assert dele.get("glance:" + R7, {}).get("kind") == "stuck_record", "R7"
assert len(dele) == 6, "exactly six garbage items, got %d" % len(dele)
# depth-3 tree: every image of it, children before parents
acts = dele[TA]["actions"]
imgs = [a["image"] for a in acts if a["type"] == "remove_image"]
assert len(imgs) == (4 if fmt == "2" else 3), imgs
assert imgs[-1].startswith(TA.split("/")[1]), "root last"
for a in acts:
    assert a["type"] in ("unprotect_snap", "remove_snap", "remove_image"), a
# kept, with the right reasons
assert skip.get(SNAP6, {}).get("skip") == "has_children", "source snap of the orphan"
assert skip.get(SNAP11, {}).get("skip") == "unknown_owner", "untagged prefix snap"
assert skip.get(SNAP8, {}).get("skip") == "has_children", "snapshot in use"
for pre in (P, Q, V, K, E2):
    hits = find(skip, pre)
    assert hits, "no skip for " + pre
    assert not find(dele, pre), "deleting " + pre
assert skip[find(skip, P)[0]]["skip"] in ("live_ancestor", "live_descendant"), skip[find(skip, P)[0]]
assert skip[find(skip, V)[0]]["skip"] == "live_descendant", skip[find(skip, V)[0]]
assert skip[find(skip, K)[0]]["skip"] == "glance_record", skip[find(skip, K)[0]]
assert d["scan"]["glance_complete"] is True
PYEOF
listing | sort >"$TMPD/after-dry"
check "dry run changed nothing" cmp -s "$TMPD/before" "$TMPD/after-dry"

# ---- 3: a second reaper while the lock is held ----------------------------------
rados -p "$JPOOL" --namespace "$JNS" lock get rbdsnap.gc.lock rbdsnap.gc --lock-type exclusive \
    --lock-cookie "test-$TAG" --lock-duration 60 --lock-description "test $TAG" ||
    fail "cannot take the reaper lock for the test"
LOCKER=$(rados -p "$JPOOL" --namespace "$JNS" lock info rbdsnap.gc.lock rbdsnap.gc 2>/dev/null |
         "$PY" -c 'import json,sys; print(json.load(sys.stdin)["lockers"][0]["name"])' 2>/dev/null)
gc --dry-run >"$TMPD/busy.out" 2>"$TMPD/busy.err"
rc=$?
check "second reaper exits 1 while the lock is held" test $rc = 1
check "second reaper says another reaper runs" grep -q "another reaper is running" "$TMPD/busy.err"
cat "$TMPD/busy.err"
gc --dry-run --wait >"$TMPD/wait.out" 2>&1 &
WPID=$!
sleep 2
check "--wait waits for the lock" kill -0 $WPID
rados -p "$JPOOL" --namespace "$JNS" lock break rbdsnap.gc.lock rbdsnap.gc "$LOCKER" \
    --lock-cookie "test-$TAG" || fail "cannot release the test lock"
wait $WPID
check "--wait runs once the lock is free" test $? = 0

# ---- 4: the real run ---------------------------------------------------------
gc --grace 0 --max-items 0 --format json >"$TMPD/run.json" 2>"$TMPD/run.err"
rc=$?
check "real run exits 0" test $rc = 0
[ $rc = 0 ] || { cat "$TMPD/run.err"; head -c 4000 "$TMPD/run.json"; }
check "real run: every action done" "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
s=d["summary"]
assert s["delete"] == 6 and s["failed"] == 0 and s["not_run"] == 0 and s["done"] == s["actions"], s
' "$TMPD/run.json"
listing | sort >"$TMPD/after1"

# What may differ: the garbage images (and their snapshots, metadata), the
# trashed image, the stuck record.
expected_gone() {
    local x
    for x in "${GARBAGE_IMAGES[@]}"; do grep -E "^(image|snap|meta) $x(@| |$)" "$TMPD/before"; done
    for x in "${GARBAGE_TRASH[@]}"; do grep -E "^trash $x$" "$TMPD/before"; done
    grep -E "^glance $R7 " "$TMPD/before"
}
expected_gone | sort -u >"$TMPD/gone1"
comm -23 "$TMPD/before" "$TMPD/after1" >"$TMPD/diff-gone"
comm -13 "$TMPD/before" "$TMPD/after1" | grep -v -x "glance $R7 gone" >"$TMPD/diff-new"
echo "--- removed by run 1:"; cat "$TMPD/diff-gone"
check "run 1 removed exactly the garbage" cmp -s "$TMPD/gone1" "$TMPD/diff-gone"
cmp -s "$TMPD/gone1" "$TMPD/diff-gone" || diff "$TMPD/gone1" "$TMPD/diff-gone"
check "run 1 created or changed nothing else" test ! -s "$TMPD/diff-new"
[ -s "$TMPD/diff-new" ] && { echo "--- new/changed:"; cat "$TMPD/diff-new"; }
check "stuck record is gone from Glance" test "$(glance_status "$R7")" = gone
check "live record kept active" test "$(glance_status "$G3")" = active

# ---- 5: second run: the orphan's source snapshot, with its tag -----------------
gc --grace 0 --max-items 0 --format json >"$TMPD/run2.json" 2>"$TMPD/run2.err"
check "run 2 exits 0" test $? = 0
check "run 2 deletes only the freed source snapshot" "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
assert [(x["kind"], x["object"]) for x in d["delete"]] == [("source_snap", sys.argv[2])], d["delete"]
' "$TMPD/run2.json" "vms/${L}_disk@$SS"
listing | sort >"$TMPD/after2"
comm -23 "$TMPD/after1" "$TMPD/after2" >"$TMPD/diff2"
echo "--- removed by run 2:"; cat "$TMPD/diff2"
check "run 2 removed the snapshot and its rbdsnap.snap key, nothing else" \
    test "$(grep -c . "$TMPD/diff2")" = 2 -a "$(grep -c "vms/${L}_disk" "$TMPD/diff2")" = 2
check "run 2 added nothing" test ! -s <(comm -13 "$TMPD/after1" "$TMPD/after2")

# ---- 6: nothing left --------------------------------------------------------------
gc --grace 0 --max-items 0 --format json >"$TMPD/run3.json" 2>/dev/null
check "run 3 finds nothing to delete" "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1])); assert d["summary"]["delete"] == 0, d["delete"]' "$TMPD/run3.json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("scan figures:", d["scan"])' \
    "$TMPD/run3.json"

if [ $NFAIL -gt 0 ]; then
    echo "$NFAIL check(s) failed"
    exit 1
fi
echo "all checks passed"
exit 0
