#!/bin/bash
# rbdsnap tree / graph on a known multi-level scenario across both pools:
#   vms/A@s1 -> images/B (clone, rbdsnap metadata) @snap -> vms/C
#   vms/A@rbdsnap-x (trash namespace after rbd snap rm) -> images/E
#   vms/D_to_be_deleted_by_glance, vms/T in the RBD trash,
#   images/<uuid> registered in Glance (when the lab has Glance).
. "$(dirname "$0")/lib.sh"

A=vms/${SFX}_A B=images/${SFX}_B C=vms/${SFX}_C E=images/${SFX}_E
D=vms/${SFX}_D_to_be_deleted_by_glance T=vms/${SFX}_T
rbd create --size 32M "$A" || die "create A"
rbd snap create "$A@s1" >/dev/null 2>&1 && rbd snap protect "$A@s1" || die "A@s1"
rbd clone "$A@s1" "$B" && rbd image-meta set "$B" rbdsnap.job_id "job-$SFX" >/dev/null || die "B"
rbd snap create "$B@snap" >/dev/null 2>&1 && rbd snap protect "$B@snap" || die "B@snap"
rbd clone "$B@snap" "$C" || die "C"
rbd snap create "$A@rbdsnap-x$SFX" >/dev/null 2>&1 && rbd clone "$A@rbdsnap-x$SFX" "$E" || die "E"
rbd snap rm "$A@rbdsnap-x$SFX" >/dev/null 2>&1 || die "snap rm (clone format 2 needed)"
rbd create --size 8M "$D" || die "D"
rbd create --size 4M "$T" && rbd trash mv "$T" || die "T"

# Glance: an image in the Glance pool named by a Glance image id, and one
# named by a UUID Glance does not know.  With the lab's Glance when it runs,
# else with a small stand-in (tests/cli/glance_stub.py).
GID=$("$PY" -c 'import uuid; print(uuid.uuid4())')
NOREC=$("$PY" -c 'import uuid; print(uuid.uuid4())')
glance_setup "$GID"
rbd clone "$B@snap" "images/$GID" || die "glance clone"
rbd create --size 4M "images/$NOREC" || die "no-record image"
extra_cleanup() {
    rbd rm --no-progress "images/$GID" >/dev/null 2>&1
    rbd rm --no-progress "images/$NOREC" >/dev/null 2>&1
    [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null
    cleanup_all
}
trap extra_cleanup EXIT

# ---- tree, plain, from A --------------------------------------------------
"$RBDSNAP" tree "$A" > "$TMPD/tree.txt" 2> "$TMPD/tree.err"
check "tree exit 0" [ $? = 0 ]
cat "$TMPD/tree.txt"
exp_lines=(
    "^vms/${SFX}_A  32 MiB  "
    "^|-- @s1  protected  "
    "^|   \`-- images/${SFX}_B  32 MiB  .*\[rbdsnap\]"
    "^|       [|\`]-- @snap  protected  "
    "^|           [|\`]-- vms/${SFX}_C  32 MiB  [0-9]+[smhd]$"
    "^\`-- @rbdsnap-x${SFX}  trash-snap  .*\[rbdsnap\]  \[trash\]"
    "^    \`-- images/${SFX}_E  32 MiB  "
)
for re in "${exp_lines[@]}"; do
    check "tree line /$re/" grep -qE "$re" "$TMPD/tree.txt"
done
check "C not marked rbdsnap (metadata inherited from B)" bash -c "! grep -E 'vms/${SFX}_C .*rbdsnap' '$TMPD/tree.txt'"

# ---- tree of the whole cluster: D and T marked -----------------------------
"$RBDSNAP" tree > "$TMPD/all.txt" 2>&1
check "tree (all) exit 0" [ $? = 0 ]
check "tbd marked" grep -qE "^vms/${SFX}_D_to_be_deleted_by_glance  8 MiB  .*\[to-be-deleted-by-glance\]" "$TMPD/all.txt"
check "trash image marked" grep -qE "^vms/${SFX}_T  4 MiB  .*\[trash\]" "$TMPD/all.txt"
check "A once, as a root" [ "$(grep -c "^vms/${SFX}_A " "$TMPD/all.txt")" = 1 ]
check "C appears once" [ "$(grep -c "vms/${SFX}_C " "$TMPD/all.txt")" = 1 ]
check "glance record shown" grep -qE "images/$GID .*glance=$GID \"$GNAME\" $GSTATUS" "$TMPD/all.txt"
check "glance: no record" grep -qE "^images/$NOREC .*glance=$NOREC \(no record\)" "$TMPD/all.txt"
"$RBDSNAP" tree --pool images > "$TMPD/img.txt"
check "pool tree: B as root with its parent" grep -qE "^images/${SFX}_B .*\(clone of vms/${SFX}_A@s1\)" "$TMPD/img.txt"
check "pool tree: C below B (across pools)" grep -qE "^    \`-- vms/${SFX}_C " "$TMPD/img.txt"

# ---- tree JSON ---------------------------------------------------------------
"$RBDSNAP" --format json tree "$A" > "$TMPD/tree.json"
check "tree json exit 0" [ $? = 0 ]
check "tree json structure" jcheck "$TMPD/tree.json" "
len(d['roots'])==1 and d['roots'][0]['pool']=='vms' and d['roots'][0]['image']=='${SFX}_A'
and d['roots'][0]['parent'] is None and d['roots'][0]['size']==32*1024*1024
and [s['name'] for s in d['roots'][0]['snapshots']]==['s1','rbdsnap-x${SFX}']
and d['roots'][0]['snapshots'][0]['protected'] and not d['roots'][0]['snapshots'][0]['trash']
and d['roots'][0]['snapshots'][1]['trash'] and d['roots'][0]['snapshots'][1]['rbdsnap']
and 'trash_name' in d['roots'][0]['snapshots'][1]
and d['roots'][0]['snapshots'][1]['children'][0]['image']=='${SFX}_E'
and d['roots'][0]['snapshots'][0]['children'][0]['image']=='${SFX}_B'
and d['roots'][0]['snapshots'][0]['children'][0]['rbdsnap'] is True
and d['roots'][0]['snapshots'][0]['children'][0]['metadata']=={'rbdsnap.job_id':'job-${SFX}'}
and d['roots'][0]['snapshots'][0]['children'][0]['parent']=='vms/${SFX}_A@s1'
and any(c['image']=='${SFX}_C' and c['rbdsnap'] is False for c in d['roots'][0]['snapshots'][0]['children'][0]['snapshots'][0]['children'])
and all(k in d['roots'][0] for k in ('id','created_at','trash','to_be_deleted_by_glance','glance','metadata'))"
"$RBDSNAP" --format json tree > "$TMPD/all.json"
check "all json: D and T" jcheck "$TMPD/all.json" "
any(r['image']=='${SFX}_D_to_be_deleted_by_glance' and r['to_be_deleted_by_glance'] for r in d['roots'])
and any(r['image']=='${SFX}_T' and r['trash'] for r in d['roots']) and 'vms' in d['pools'] and 'images' in d['pools']"
check "json glance" jcheck "$TMPD/all.json" "d['glance'] is True and any(g['glance'] and g['glance']['id']=='$GID' and g['glance']['found'] and g['glance']['name']=='$GNAME' and g['glance']['status']=='$GSTATUS' for r in d['roots'] for s in r['snapshots'] for b in s['children'] for bs in b['snapshots'] for g in bs['children'])"
check "json glance no record" jcheck "$TMPD/all.json" "any(r['image']=='$NOREC' and r['glance']['found'] is False and r['glance']['status'] is None for r in d['roots'])"

# ---- graph -------------------------------------------------------------------
"$RBDSNAP" graph "$A" > "$TMPD/g.dot"
check "graph exit 0" [ $? = 0 ]
check "dot renders" bash -c "dot -Tsvg '$TMPD/g.dot' > '$TMPD/g.svg' && grep -q '<svg' '$TMPD/g.svg'"
check "dot has pool clusters" bash -c "grep -q 'subgraph \"cluster_vms\"' '$TMPD/g.dot' && grep -q 'subgraph \"cluster_images\"' '$TMPD/g.dot'"
check "dot has the trash snapshot" grep -q 'label="@rbdsnap-x'"$SFX"'\\n\[rbdsnap\]\\n\[trash\]"' "$TMPD/g.dot"
check "dot: 5 images + 3 snapshots" [ "$(grep -c '\[shape=' "$TMPD/g.dot")" = 8 ]
check "dot: 7 edges" [ "$(grep -c ' -> ' "$TMPD/g.dot")" = 7 ]
"$RBDSNAP" graph --svg "$TMPD/out.svg" > "$TMPD/svg.out"
check "--svg exit 0" [ $? = 0 ]
check "--svg wrote svg" grep -q '<svg' "$TMPD/out.svg"
check "--svg with tbd image" grep -q "${SFX}_D_to_be_deleted_by_glance" "$TMPD/out.svg"
"$RBDSNAP" --format json graph "$A" > "$TMPD/g.json"
check "graph json" jcheck "$TMPD/g.json" "d['dot'].startswith('digraph rbdsnap {') and d['nodes']==8 and d['edges']==7 and d['svg'] is None"
PATH=/nonexistent "$RBDSNAP" graph --svg "$TMPD/x.svg" > /dev/null 2> "$TMPD/nodot.err"
check "--svg without dot: exit 1" [ $? = 1 ]
check "--svg without dot: says graphviz" grep -q "graphviz" "$TMPD/nodot.err"

# ---- errors --------------------------------------------------------------------
"$RBDSNAP" tree "vms/${SFX}_missing" > /dev/null 2> "$TMPD/m.err"
check "tree missing exit 1" [ $? = 1 ]
check "tree missing message" grep -qx "rbdsnap tree: error: vms/${SFX}_missing: No such image" "$TMPD/m.err"
"$RBDSNAP" tree "$A" --pool vms > /dev/null 2>&1
check "tree spec+pool exit 2" [ $? = 2 ]

finish
