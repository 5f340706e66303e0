#!/bin/bash
# File-backed snapshots through rbdsnapd (POST /v1/snapshots {"domain": ...})
# against the lab's libvirtd, guests, Ceph and Glance:
#   1. live job: done, job JSON with mode=live, downtime_ms=0, freeze window;
#   2. cold job: done, mode=cold, downtime_ms > 0, guest running again;
#   3. bad mode/upload values: 400, nothing created;
#   4. daemon killed (failpoint virt.blockjob_abort=exit: mirror running,
#      guest frozen) in the middle of a live copy, then restarted: the job
#      ends done or rolled_back, the domain is defined, running and thawed,
#      no block job, no delta or state file, no RBD image of the job but
#      the registered one (if done), the journal is empty;
#   5. the same, but the restarted daemon crashes again at the same point
#      (a job that kills the daemon twice is rolled back): rolled_back, and
#      nothing at all is left (no Glance record, no RBD image, no delta);
#   6. the same in a cold copy (failpoint virt.convert=exit: the domain is
#      managed-saved, i.e. shut off, when the daemon dies): restarted, the
#      domain runs again.
T_NAME=filesnap_daemon
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

conf=$(f_conf d)
dom=$F_FILE_DOM
[[ $(f_state "$dom") == running ]] || t_die "lab domain $dom is not running"

post() {
    read -r code resp < <(t_http d POST /v1/snapshots "$1")
}

# 1 + 2. live and cold jobs
t_start d "$conf"
for mode in live cold; do
    post "{\"domain\":\"$dom\",\"name\":\"filesnap-d-$mode-$T_RAND\",\"mode\":\"$mode\"}"
    if [[ $code != 202 ]]; then
        t_fail "$mode: POST $code $resp"
        continue
    fi
    job=$(echo "$resp" | json 'd["job_id"]')
    img=$(echo "$resp" | json 'd["image_id"]')
    t_track_image "$img"
    body=$(t_job_wait d "$job" 300) || t_fail "$mode: job not finished: $body"
    t_log "$mode job: $(echo "$body" | json '{k: d.get(k) for k in ("state","mode","downtime_ms","freeze","warning")}')"
    [[ $(echo "$body" | json 'd["state"]') == done ]] || t_fail "$mode: job not done: $body"
    [[ $(echo "$body" | json 'd.get("mode")') == "$mode" ]] || t_fail "$mode: job JSON mode: $body"
    down=$(echo "$body" | json 'd.get("downtime_ms", -1)')
    win=$(echo "$body" | json 'd["freeze"]["window_ms"]')
    if [[ $mode == live ]]; then
        [[ $down == 0 ]] || t_fail "live: downtime_ms $down"
        ((win > 0)) || t_fail "live: no freeze window"
        f_fsck "$img" "$mode job"
    else
        ((down > 0)) || t_fail "cold: downtime_ms $down"
    fi
    [[ $(t_glance_status "$img") == active ]] || t_fail "$mode: Glance image not active"
    f_domain_clean "$dom" running "$mode job"
done

# 3. bad requests
for b in '"mode":"warm"' '"upload":"ftp"' '"mode":1'; do
    post "{\"domain\":\"$dom\",\"name\":\"filesnap-bad-$T_RAND\",$b}"
    [[ $code == 400 ]] || t_fail "bad request {$b}: $code $resp"
done
[[ -z $(f_glance_by_name "filesnap-bad-$T_RAND") ]] || t_fail "bad requests created a Glance record"
t_stop d

# 4 + 5. crash in the middle, restart
for case in "live virt.blockjob_abort 1" "live virt.blockjob_abort 2" "cold virt.convert 1"; do
    read -r mode fp crashes <<<"$case"
    t_start d "$conf" "RBDSNAP_FAILPOINTS=$fp=exit"
    post "{\"domain\":\"$dom\",\"name\":\"filesnap-crash-$mode-$T_RAND\",\"mode\":\"$mode\"}"
    if [[ $code != 202 ]]; then
        t_fail "crash $mode: POST $code $resp"
        t_stop d KILL
        continue
    fi
    job=$(echo "$resp" | json 'd["job_id"]')
    img=$(echo "$resp" | json 'd["image_id"]')
    t_track_image "$img"
    t_wait_exit d 300
    if [[ $T_RC != 99 ]]; then
        t_fail "crash $mode: daemon did not die at $fp (status $T_RC)"
        t_stop d KILL
        continue
    fi
    [[ -f $F_WORK/rbdsnap-file-$img.json ]] || t_fail "crash $mode: no state file after the crash"
    t_log "crash $mode: after the crash: domain $(f_state "$dom"), work dir: $(ls "$F_WORK" | tr '\n' ' ')"
    if ((crashes == 2)); then
        t_start_nowait d "$conf" "RBDSNAP_FAILPOINTS=$fp=exit"
        t_wait_exit d 300
        [[ $T_RC == 99 ]] || t_fail "crash $mode: the resumed job did not crash again (status $T_RC)"
        t_log "crash $mode: crashed again: domain $(f_state "$dom"), work dir: $(ls "$F_WORK" | tr '\n' ' ')"
    fi
    t_start d "$conf"
    body=$(t_job_wait d "$job" 400) || t_fail "crash $mode: job not finished after restart: $body"
    st=$(echo "$body" | json 'd["state"]')
    t_log "crash $mode: after restart: job $st, domain $(f_state "$dom")"
    [[ $crashes == 2 && $st != rolled_back ]] && t_fail "crash $mode twice: job $st, expected rolled_back"
    case $st in
    done)
        [[ $(t_glance_status "$img") == active ]] || t_fail "crash $mode: done but Glance not active"
        rbd info "images/$img@snap" >/dev/null 2>&1 || t_fail "crash $mode: done but no images/$img@snap"
        f_no_job_images "$job" "crash $mode" "$img"
        [[ $mode == live ]] && f_fsck "$img" "crash $mode"
        ;;
    rolled_back)
        f_image_gone "$img" "crash $mode"
        f_no_job_images "$job" "crash $mode"
        ;;
    *) t_fail "crash $mode: job ended '$st': $body" ;;
    esac
    f_domain_clean "$dom" running "crash $mode"
    f_thawed "$dom" "crash $mode"
    keys=$(t_journal_keys | tr '\n' ' ')
    [[ -z $keys ]] || t_fail "crash $mode: journal keys left: $keys"
    t_stop d
    ((T_FAILS == 0)) && t_ok "crash ($crashes x) in $mode copy at $fp repaired (job $st)"
done

t_finish
