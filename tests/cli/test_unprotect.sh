#!/bin/bash
# rbdsnap unprotect: refused with the list of children (in any pool, in the
# RBD trash or not), JSON fields, --flatten-children, never a force.
. "$(dirname "$0")/lib.sh"

A=vms/${SFX}_A
S="$A@s1"
mkimg "$A" 32M || die "create $A"
rbd snap create "$S" >/dev/null 2>&1 && rbd snap protect "$S" || die "snap/protect"
rbd clone "$S" "images/${SFX}_B" || die "clone B"
rbd clone "$S" "vms/${SFX}_C" || die "clone C"
rbd clone "$S" "vms/${SFX}_T" && rbd trash mv "vms/${SFX}_T" || die "trash T"

# 1. Refused, children listed (plain: stdout lines + one error line).
"$RBDSNAP" unprotect "$S" > "$TMPD/r.out" 2> "$TMPD/r.err"
check "refused exit 1" [ $? = 1 ]
check "lists B" grep -qx "child images/${SFX}_B" "$TMPD/r.out"
check "lists C" grep -qx "child vms/${SFX}_C" "$TMPD/r.out"
check "lists trashed T" grep -qx "child vms/${SFX}_T (in trash)" "$TMPD/r.out"
check "one error line" [ "$(wc -l < "$TMPD/r.err")" = 1 ]
check "error names the children" grep -q "rbdsnap unprotect: error: $S: 3 clone(s) depend on it: .*images/${SFX}_B.*vms/${SFX}_T (in trash)" "$TMPD/r.err"
check "still protected" bash -c "rbd snap ls $A --format json | /usr/bin/python3 -c 'import json,sys; sys.exit(0 if [s for s in json.load(sys.stdin) if s[\"name\"]==\"s1\" and s[\"protected\"]==\"true\"] else 1)'"

# 2. JSON.
"$RBDSNAP" --format json unprotect "$S" > "$TMPD/r.json" 2>/dev/null
check "json refused exit 1" [ $? = 1 ]
check "json fields" jcheck "$TMPD/r.json" \
    "d['snapshot']=='$S' and d['unprotected'] is False and d['was_protected'] is True and d['flattened']==[] and sorted((c['pool'],c['image'],c['trash']) for c in d['children'])==sorted([('images','${SFX}_B',False),('vms','${SFX}_C',False),('vms','${SFX}_T',True)])"

# 3. --flatten-children refuses while a child is in the trash (never forced).
"$RBDSNAP" unprotect "$S" --flatten-children > "$TMPD/t.out" 2> "$TMPD/t.err"
check "trash child blocks --flatten-children" [ $? = 1 ]
check "trash reason" grep -q "in the RBD trash cannot be flattened" "$TMPD/t.err"
check "nothing was flattened" bash -c "rbd info images/${SFX}_B | grep -q parent:"

# 4. Remove the trashed child, then --flatten-children works (with progress).
id=$(rbd trash ls vms | awk -v n="${SFX}_T" '$2==n {print $1}')
rbd trash rm --no-progress "vms/$id" >/dev/null 2>&1 || rbd trash rm --no-progress -p vms "$id" >/dev/null 2>&1
"$RBDSNAP" --format json unprotect "$S" --flatten-children > "$TMPD/f.json" 2> "$TMPD/f.err"
check "flatten-children exit 0" [ $? = 0 ]
check "flatten-children json" jcheck "$TMPD/f.json" \
    "d['unprotected'] is True and d['was_protected'] is True and d['children']==[] and sorted(d['flattened'])==sorted(['images/${SFX}_B','vms/${SFX}_C'])"
check "progress shown" grep -q "flatten images/${SFX}_B: 100%" "$TMPD/f.err"
check "B flat" bash -c "! rbd info images/${SFX}_B | grep -q parent:"
check "snapshot unprotected" bash -c "rbd snap ls $A --format json | /usr/bin/python3 -c 'import json,sys; sys.exit(0 if [s for s in json.load(sys.stdin) if s[\"name\"]==\"s1\" and s[\"protected\"]==\"false\"] else 1)'"

# 5. Again: not protected, nothing to do; unknown snapshot: exit 1.
"$RBDSNAP" unprotect "$S" > "$TMPD/a.out"
check "idempotent exit 0" [ $? = 0 ]
check "says not protected" grep -q "not protected" "$TMPD/a.out"
"$RBDSNAP" unprotect "$A@nope" > /dev/null 2> "$TMPD/n.err"
check "unknown snapshot exit 1" [ $? = 1 ]
check "unknown snapshot one line" [ "$(wc -l < "$TMPD/n.err")" = 1 ]
"$RBDSNAP" unprotect "$A" > /dev/null 2>&1
check "missing @SNAP exit 2" [ $? = 2 ]

finish
