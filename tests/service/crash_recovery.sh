#!/bin/bash
# kill -9 of the daemon at each step of the flow (failpoint action "exit":
# _exit(99) on the spot), then a restart without failpoints: every job ends
# done or rolled_back, with nothing left behind in RBD or Glance (a done job
# leaves exactly its registered image), and the journal is empty.  Also a
# job that crashes the daemon again while it is resumed: rolled back.
#
# Most of a case's time is the restarted daemon waiting until the OSD times
# the dead daemon's watch out (osd client watch timeout, 8 s in the lab):
# only then can it take the images' exclusive locks back.  So the cases run
# in CRASH_SHARDS (default 4) copies of this script in parallel, which
# overlap those waits; each takes the next case from a shared queue (the
# double crashes, the longest, first).  Each shard is a whole test of its
# own (lib.sh): its own work dir, daemon port (so its own daemon id),
# instance disk and journal namespace, so shards never see each other's
# jobs, locks or journal keys.
#
# CRASH_POINTS="fp ..." and CRASH_TWICE="fp ..." run a subset (" ": none);
# CRASH_SHARDS=1 runs every case in this process, one after another.
T_NAME=${T_NAME:-service_crash_recovery}

points=(
    service.snapshot.glance_create service.snapshot.glance_create.done
    rbd.flow.tag_source rbd.flow.tag_source.done
    rbd.flow.snap_create rbd.flow.snap_create.done
    rbd.flow.clone rbd.flow.clone.done
    rbd.flow.tag_clone rbd.flow.tag_clone.done
    rbd.flow.flatten rbd.flow.flatten.done
    rbd.flow.clone_snap_create rbd.flow.clone_snap_create.done
    rbd.flow.clone_snap_protect rbd.flow.clone_snap_protect.done
    rbd.flow.source_snap_remove rbd.flow.source_snap_remove.done
    service.snapshot.register service.snapshot.register.done
    service.snapshot.wait_active service.snapshot.wait_active.done
)
[[ -n ${CRASH_POINTS:-} ]] && read -r -a points <<<"$CRASH_POINTS"
twice=(service.snapshot.glance_create.done rbd.flow.clone.done service.snapshot.register)
[[ -n ${CRASH_TWICE:-} ]] && read -r -a twice <<<"$CRASH_TWICE"
cases=()
for fp in "${twice[@]}"; do cases+=("twice $fp"); done
for fp in "${points[@]}"; do cases+=("once $fp"); done

# ---- parent: start the shards, collect their results ---------------------
shards=${CRASH_SHARDS:-4}
((shards > ${#cases[@]})) && shards=${#cases[@]}
if [[ -z ${CRASH_QUEUE:-} ]] && ((shards > 1)); then
    CRASH_QUEUE=$(mktemp /tmp/rbdsnap-crash-queue.XXXXXX)
    export CRASH_QUEUE
    echo 0 >"$CRASH_QUEUE"
    declare -a pids=()
    trap 'rm -f "$CRASH_QUEUE" "$CRASH_QUEUE.lock"' EXIT
    trap '((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 1' INT TERM
    start=$SECONDS
    for ((s = 0; s < shards; s++)); do
        T_NAME=$T_NAME-s$s bash "$0" &
        pids+=($!)
    done
    rc=0
    for ((s = 0; s < shards; s++)); do
        wait "${pids[s]}" || { echo "$(date +%H:%M:%S) $T_NAME: shard s$s FAILED" >&2; rc=1; }
    done
    echo "$(date +%H:%M:%S) $T_NAME: ${#cases[@]} cases in $shards shards, $((SECONDS - start)) s:" \
        "$( ((rc)) && echo FAIL || echo PASS)" >&2
    exit $rc
fi

# ---- one shard (or everything) --------------------------------------------
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# next_case: the index of the next case nobody took yet in $case_i; fails
# when none is left.
next_i=0
next_case() {
    local fd
    if [[ -z ${CRASH_QUEUE:-} ]]; then
        case_i=$next_i
        next_i=$((next_i + 1))
    else
        exec {fd}>>"$CRASH_QUEUE.lock"
        flock "$fd"
        case_i=$(cat "$CRASH_QUEUE")
        echo $((case_i + 1)) >"$CRASH_QUEUE"
        exec {fd}>&-
    fi
    ((case_i < ${#cases[@]}))
}

# crash_once FP: crash at FP, restart, check.
crash_once() {
    local fp=$1 fl=no code resp job img body st gs user_snaps md keys
    t_start d "$conf" "RBDSNAP_FAILPOINTS=$fp=exit"
    [[ $fp == rbd.flow.flatten* ]] && fl=yes
    read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"crash-$T_RAND\",\"flatten\":\"$fl\"}")
    if [[ $code != 202 ]]; then
        t_fail "$fp: POST $code $resp"
        t_stop d KILL
        return
    fi
    job=$(echo "$resp" | json 'd["job_id"]')
    img=$(echo "$resp" | json 'd["image_id"]')
    t_track_image "$img"
    t_wait_exit d 60
    if [[ $T_RC != 99 ]]; then
        t_fail "$fp: daemon did not crash at the failpoint (status $T_RC)"
        t_stop d KILL
        return
    fi
    # Restart (same daemon id): it breaks its own stale lease at once.
    t_start d "$conf"
    body=$(t_job_wait d "$job" 120) || t_fail "$fp: job $job not finished after restart: $body"
    st=$(echo "$body" | json 'd["state"]')
    gs=$(t_glance_status "$img")
    case $st in
    done)
        [[ $gs == active ]] || t_fail "$fp: done but Glance image $img is '$gs'"
        rbd info "images/$img@snap" >/dev/null 2>&1 || t_fail "$fp: done but no images/$img@snap"
        ;;
    rolled_back)
        [[ -z $gs ]] || t_fail "$fp: rolled back but Glance image $img is '$gs'"
        rbd info "images/$img" >/dev/null 2>&1 && t_fail "$fp: rolled back but images/$img exists"
        ;;
    *) t_fail "$fp: job state '$st': $body" ;;
    esac
    user_snaps=$(rbd snap ls "vms/${u}_disk" --format json | json 'len(d)')
    [[ $user_snaps == 0 ]] || t_fail "$fp: $user_snaps snapshot(s) left on vms/${u}_disk"
    md=$(rbd image-meta list "vms/${u}_disk" --format json 2>/dev/null | json 'len([k for k in (d or {}) if k.startswith("rbdsnap.snap.")])')
    [[ $md == 0 ]] || t_fail "$fp: rbdsnap.snap.* metadata left on vms/${u}_disk"
    keys=$(t_journal_keys | grep -v '^$' | wc -l)
    [[ $keys == 0 ]] || t_fail "$fp: journal keeps $keys key(s): $(t_journal_keys | head -3)"
    t_stop d
    [[ $T_RC == 0 ]] || t_fail "$fp: daemon exit status $T_RC after SIGTERM"
    t_log "$fp -> $st"
    # Clean the done image right away (keeps the pool small).
    if [[ $st == done ]]; then
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$img"
    fi
}

# crash_twice FP: crash at FP, crash again at FP while the restart resumes
# the job, restart: the job is rolled back, cleanly.
crash_twice() {
    local fp=$1 code resp job img body st
    t_start d "$conf" "RBDSNAP_FAILPOINTS=$fp=exit"
    read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"crash2-$T_RAND\"}")
    [[ $code == 202 ]] || { t_fail "$fp x2: POST $code $resp"; t_stop d KILL; return; }
    job=$(echo "$resp" | json 'd["job_id"]')
    img=$(echo "$resp" | json 'd["image_id"]')
    t_track_image "$img"
    t_wait_exit d 60
    [[ $T_RC == 99 ]] || { t_fail "$fp x2: first crash missing ($T_RC)"; t_stop d KILL; return; }
    t_start_nowait d "$conf" "RBDSNAP_FAILPOINTS=$fp=exit"
    t_wait_exit d 60
    [[ $T_RC == 99 ]] || { t_fail "$fp x2: second crash missing ($T_RC)"; t_stop d KILL; return; }
    t_start d "$conf"
    body=$(t_job_wait d "$job" 120) || t_fail "$fp x2: job not finished: $body"
    st=$(echo "$body" | json 'd["state"]')
    [[ $st == rolled_back ]] || t_fail "$fp x2: state '$st', want rolled_back"
    [[ -z $(t_glance_status "$img") ]] || t_fail "$fp x2: Glance image $img left"
    rbd info "images/$img" >/dev/null 2>&1 && t_fail "$fp x2: images/$img left"
    [[ $(rbd snap ls "vms/${u}_disk" --format json | json 'len(d)') == 0 ]] || t_fail "$fp x2: snapshot left"
    [[ -z $(t_journal_keys) ]] || t_fail "$fp x2: journal not empty"
    t_stop d
    t_log "$fp twice -> $st"
}

conf=$(t_conf d)
u=$(t_instance)
ran=0
while next_case; do
    read -r kind fp <<<"${cases[case_i]}"
    "crash_$kind" "$fp"
    ran=$((ran + 1))
done
t_log "$ran case(s) run"
t_finish
