#!/bin/bash
# Chaos: the OSD is killed in the middle of a flatten and in the middle of a
# clone, then restarted (lab/start ceph).  The job must end with a clear
# error (ETIMEDOUT from ceph.osd_op_timeout, naming the image) or be resumed
# from the journal; once the cluster is back, recovery must leave either
# nothing (rolled back) or a complete snapshot (resumed) — never debris.
C_NAME=osd_stop
. "$(dirname "$0")/lib.sh"

c_lab ceph glance
conf=$(c_conf d "$RBDSNAP_CONF" ceph.osd_op_timeout=5 ceph.mon_op_timeout=5 \
    journal.lease_seconds=6 glance.timeout=30)

scenario() {  # scenario LABEL STEP FAILPOINT DATA_MB
    local label=$1 step=$2 fpt=$3 mb=$4 u body job id st err t0 out outcome secs p0 p
    c_log "--- $label"
    c_start d "$conf" RBDSNAP_FAILPOINTS="$fpt"
    u=$(c_instance 256M "$mb")
    body=$(c_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"chaos-$C_RAND\",\"flatten\":\"yes\"}")
    [[ ${body%% *} == 202 ]] || { c_fail "$label: POST: $body"; c_stop d; return; }
    job=$(echo "${body#* }" | json 'd["job_id"]')
    id=$(echo "${body#* }" | json 'd["image_id"]')
    c_track_image "$id"
    c_job_wait_step d "$job" "$step" 120 || { c_fail "$label: job never reached $step"; c_stop d; return; }
    if [[ $step == flatten ]]; then
        # Kill only once the flatten is copying (its progress moves).
        p0=$(c_http d GET "/v1/jobs/$job" | cut -d' ' -f2- | json 'd.get("progress",0)')
        for _ in $(seq 300); do
            p=$(c_http d GET "/v1/jobs/$job" | cut -d' ' -f2- | json 'd.get("progress",0)')
            [[ $p != "$p0" ]] && break
            sleep 0.05
        done
        c_log "flatten progress $p0 -> $p: killing the OSD"
    fi
    c_lab_kill ceph-osd KILL
    t0=$(c_now)
    out=$(c_job_wait d "$job" 300) || c_log "$label: job still not final 300 s after the kill"
    st=$(echo "$out" | json 'd.get("state","")')
    err=$(echo "$out" | json '(d.get("error") or {}).get("message","")')
    c_log "$label: state=$st after $(c_since "$t0") s, error: $err"
    case $st in
    failed | rolled_back)
        [[ -n $err ]] || c_fail "$label: $st without an error message"
        [[ $err == *"$u"* || $err == *"$id"* || $err == *images/* || $err == *vms/* ]] ||
            c_fail "$label: error does not name the object: $err"
        ;;
    done) c_log "$label: job finished before the kill took effect" ;;
    *) c_fail "$label: job state '$st' long after the OSD died" ;;
    esac
    t0=$(c_now)
    c_lab ceph
    c_log "$label: OSD back after $(c_since "$t0") s"
    read -r outcome secs < <(c_wait_outcome "$u" "$id" 300)
    c_log "$label: outcome $outcome after ${secs} s"
    out=$(c_http d GET "/v1/jobs/$job" | cut -d' ' -f2-)
    c_log "$label: job now $(echo "$out" | json 'd.get("state","")') recovered=$(echo "$out" | json 'd.get("recovered","")')"
    if [[ $outcome == clean || $outcome == complete ]]; then
        c_ok "$label: $outcome"
        c_result "OSD killed mid-$step, restarted" PASS "${secs} s after restart" 0 \
            "job $st (\`$(echo "$err" | cut -c1-90)\`); after restart: $outcome"
    else
        c_fail "$label: $outcome"
        c_result "OSD killed mid-$step, restarted" FAIL "$secs" "$outcome" "job $st"
    fi
    c_stop d
}

scenario "OSD killed in the middle of a flatten" flatten "rbd.flow.flatten=sleep:1500" 128
scenario "OSD killed in the middle of a clone" clone "rbd.flow.clone=sleep:3000" 8
c_finish
