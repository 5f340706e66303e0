#!/bin/bash
# rbdsnap flatten: progress bar under a pseudo-terminal, plain lines
# without one, JSON fields, clean cancel (SIGINT raised from the progress
# callback by a failpoint), --cleanup-parent (removes only what rbdsnap made
# and nothing depends on), --async (detached process), errors.
. "$(dirname "$0")/lib.sh"

A=vms/${SFX}_A
mkimg "$A" || die "create $A"
rbd snap create "$A@rbdsnap-$SFX" >/dev/null 2>&1 || die "snap"
rbd snap protect "$A@rbdsnap-$SFX" || die "protect"
rbd snap create "$A@user-$SFX" >/dev/null 2>&1 || die "snap"
for c in B C D E F; do
    rbd clone "$A@rbdsnap-$SFX" "images/${SFX}_$c" || die "clone $c"
done
rbd clone "$A@user-$SFX" "images/${SFX}_U" || die "clone U"

has_parent() { rbd info "$1" 2>/dev/null | grep -q "parent:"; }

# 1. Under a pseudo-terminal: the bar (carriage returns, [###, %, MiB/s, ETA).
script -qec "$RBDSNAP flatten images/${SFX}_B" /dev/null > "$TMPD/tty.out" 2>&1
rc=$?
check "tty flatten exit 0" [ "$rc" = 0 ]
check "tty output has a redrawn bar" grep -q $'\r' "$TMPD/tty.out"
check "tty bar shape" grep -q 'flatten images/'"${SFX}"'_B \[#*\.*\] *[0-9]*%  .* MiB/s  ETA' "$TMPD/tty.out"
check "tty 100%" grep -q '100%' "$TMPD/tty.out"
check "B flattened" bash -c "! rbd info images/${SFX}_B | grep -q parent:"

# 2. No terminal: plain progress lines on stderr, result on stdout.
"$RBDSNAP" flatten "images/${SFX}_C" > "$TMPD/c.out" 2> "$TMPD/c.err"
rc=$?
check "plain flatten exit 0" [ "$rc" = 0 ]
check "plain lines, no carriage return" bash -c "! grep -q $'\r' '$TMPD/c.err'"
check "plain progress lines" grep -qE "^flatten images/${SFX}_C: [0-9]+% .*MiB/s ETA" "$TMPD/c.err"
check "plain 100% line" grep -qE "^flatten images/${SFX}_C: 100% " "$TMPD/c.err"
check "plain result line" grep -q "^flattened images/${SFX}_C (was a clone of $A@rbdsnap-$SFX)" "$TMPD/c.out"

# 3. JSON.
"$RBDSNAP" --format json flatten "images/${SFX}_D" --no-progress > "$TMPD/d.json" 2> "$TMPD/d.err"
check "json flatten exit 0" [ $? = 0 ]
check "json fields" jcheck "$TMPD/d.json" \
    "d['image']=='images/${SFX}_D' and d['flattened'] is True and d['already_flat'] is False and d['parent']=='$A@rbdsnap-$SFX' and d['size']==64*1024*1024 and isinstance(d['duration_ms'],int) and d['cleanup_parent']=={'requested':False,'action':'none'}"
check "no progress with --no-progress" bash -c "! grep -q '%' '$TMPD/d.err'"
"$RBDSNAP" --format json flatten "images/${SFX}_D" > "$TMPD/d2.json"
check "json already flat" jcheck "$TMPD/d2.json" "d['already_flat'] is True and d['flattened'] is False and d['parent'] is None"

# 4. Ctrl-C: the failpoint raises SIGINT in the second progress callback.
RBDSNAP_FAILPOINTS="cli.flatten.progress=2*error" "$RBDSNAP" flatten "images/${SFX}_E" \
    > "$TMPD/e.out" 2> "$TMPD/e.err"
rc=$?
check "cancel exits 1" [ "$rc" = 1 ]
check "cancel says so" grep -q "rbdsnap flatten: error: images/${SFX}_E: flatten cancelled" "$TMPD/e.err"
check "cancel: exactly one error line" [ "$(grep -c 'error:' "$TMPD/e.err")" = 1 ]
check "cancelled image is still a clone" has_parent "images/${SFX}_E"
check "cancelled image still readable" rbdq info "images/${SFX}_E"

# 5. --cleanup-parent: E and F still depend on the snapshot -> kept.
"$RBDSNAP" --format json flatten "images/${SFX}_E" --cleanup-parent --no-progress > "$TMPD/e.json"
check "cleanup kept while other clones depend" jcheck "$TMPD/e.json" \
    "d['flattened'] and d['cleanup_parent']['action']=='kept' and 'depend' in d['cleanup_parent']['reason']"
check "snapshot still there" rbdq snap ls "$A" --format json
rbd snap ls "$A" | grep -q "rbdsnap-$SFX" || fail "rbdsnap snapshot vanished too early"
# Not made by rbdsnap -> kept.
"$RBDSNAP" --format json flatten "images/${SFX}_U" --cleanup-parent --no-progress > "$TMPD/u.json"
check "cleanup keeps foreign snapshot" jcheck "$TMPD/u.json" \
    "d['cleanup_parent']['action']=='kept' and d['cleanup_parent']['reason']=='not made by rbdsnap'"
rbd snap ls "$A" | grep -q "user-$SFX" || fail "foreign snapshot removed"

# 6. --async: detached process, pid + log; the last clone F, with cleanup.
"$RBDSNAP" --format json flatten --async "images/${SFX}_F" --cleanup-parent > "$TMPD/f.json"
check "async exit 0" [ $? = 0 ]
check "async json" jcheck "$TMPD/f.json" "d['async'] is True and d['mode']=='process' and d['pid']>1 and d['log'].endswith('.log')"
pid=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$TMPD/f.json")
log=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["log"])' "$TMPD/f.json")
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
check "async child finished" bash -c "! kill -0 $pid 2>/dev/null"
check "async log says done" grep -q "flatten images/${SFX}_F: done" "$log"
check "async log has the cleanup" grep -q "parent snapshot $A@rbdsnap-$SFX: removed" "$log"
check "F flattened" bash -c "! rbd info images/${SFX}_F | grep -q parent:"
check "rbdsnap snapshot removed by the last cleanup" bash -c "! rbd snap ls $A | grep -q rbdsnap-$SFX"

# 7. Errors: one line on stderr, exit codes.
"$RBDSNAP" flatten "images/${SFX}_nope" > /dev/null 2> "$TMPD/n.err"
rc=$?
check "missing image exit 1" [ "$rc" = 1 ]
check "missing image message" grep -qx "rbdsnap flatten: error: images/${SFX}_nope: No such image" "$TMPD/n.err"
"$RBDSNAP" flatten noslash > /dev/null 2>&1
check "bad spec exit 2" [ $? = 2 ]
"$RBDSNAP" flatten > /dev/null 2>&1
check "missing spec exit 2" [ $? = 2 ]

finish
