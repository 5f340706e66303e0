#!/bin/bash
# RBD-backed lab guest with a guest agent (rbdsnap-lab-rbd), quiesce=required,
# through `rbdsnap snapshot --domain` (the RBD flow with the freeze around
# the snapshot create): FILESNAP_RBD_RUNS runs (default 10), each image active
# in Glance; the exported snap of some runs passes e2fsck -fn; the freeze
# window of every run is reported with the median (no timing assertion).
T_NAME=filesnap_rbd_quiesce
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

conf=$(f_conf q required)
dom=$F_RBD_DOM
runs=${FILESNAP_RBD_RUNS:-10}
[[ $(f_state "$dom") == running ]] || t_die "lab domain $dom is not running"
wins=()
for ((i = 1; i <= runs; i++)); do
    name=filesnap-rbdq-$T_RAND-$i
    out=$("$F_CLI" -c "$conf" --format json snapshot --domain "$dom" --name "$name" \
        --quiesce required 2>>"$T_DIR/cli.log")
    rc=$?
    if ((rc != 0)); then
        t_fail "run $i: CLI exit status $rc: $(tail -n 2 "$T_DIR/cli.log") $out"
        continue
    fi
    img=$(echo "$out" | json 'd["image_id"]')
    t_track_image "$img"
    [[ $(echo "$out" | json 'd["quiesced"]') == True ]] || t_fail "run $i: not quiesced: $out"
    [[ $(t_glance_status "$img") == active ]] || t_fail "run $i: Glance image $img not active"
    w=$(echo "$out" | json 'd["freeze_ms"]')
    ((w > 0)) || t_fail "run $i: no freeze window"
    wins+=("$w")
    if ((i == 1 || i == runs || i == (runs + 1) / 2)); then
        f_fsck "$img" "run $i"
    fi
    # Keep the pool small: drop the image now (the trap does it on failure).
    curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$img"
done
f_thawed "$dom" "after $runs runs"
if ((${#wins[@]})); then
    sorted=$(printf '%s\n' "${wins[@]}" | sort -n | tr '\n' ' ')
    med=$(printf '%s\n' "${wins[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}')
    t_log "freeze window over ${#wins[@]} runs (ms): $sorted; median $med ms"
fi
t_finish
