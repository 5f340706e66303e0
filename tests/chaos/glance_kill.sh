#!/bin/bash
# Chaos: Glance is killed between the clone and the add-location.  The job
# keeps retrying with backoff (glance.register_deadline):
#   a) Glance comes back within the deadline: the job completes;
#   b) Glance stays down past the deadline: the job rolls back its RBD work
#      with a clear error, and once Glance is back the daemon's recovery
#      deletes the Glance record: nothing is left.
C_NAME=glance_kill
. "$(dirname "$0")/lib.sh"

c_lab ceph glance

scenario() {  # scenario LABEL DEADLINE DOWN_SECONDS EXPECT
    local label=$1 deadline=$2 down=$3 expect=$4 conf u body job id st err out t_kill t_up outcome secs
    c_log "--- $label"
    conf=$(c_conf d "$RBDSNAP_CONF" glance.register_deadline="$deadline" glance.retries=1 \
        glance.connect_timeout=3 glance.timeout=20 journal.lease_seconds=6)
    c_start d "$conf" RBDSNAP_FAILPOINTS="service.snapshot.register=sleep:2000"
    u=$(c_instance 64M 2)
    body=$(c_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"chaos-$C_RAND\"}")
    [[ ${body%% *} == 202 ]] || { c_fail "$label: POST: $body"; c_stop d; return; }
    job=$(echo "${body#* }" | json 'd["job_id"]')
    id=$(echo "${body#* }" | json 'd["image_id"]')
    c_track_image "$id"
    c_job_wait_step d "$job" register 120 || { c_fail "$label: job never reached register"; c_stop d; return; }
    rbd info "images/$id" >/dev/null 2>&1 || c_fail "$label: no clone images/$id at register"
    c_lab_kill glance KILL
    t_kill=$(c_now)
    c_log "$label: Glance killed at step register"
    sleep "$down"
    out=$(c_http d GET "/v1/jobs/$job" | cut -d' ' -f2-)
    st=$(echo "$out" | json 'd.get("state","")')
    local err_down
    err_down=$(echo "$out" | json '(d.get("error") or {}).get("message","")')
    c_log "$label: job $st after ${down} s without Glance${err_down:+: $err_down}"
    t_up=$(c_now)
    c_lab glance
    c_log "$label: Glance back after $(c_since "$t_up") s"
    out=$(c_job_wait d "$job" 300)
    st=$(echo "$out" | json 'd.get("state","")')
    err=$(echo "$out" | json '(d.get("error") or {}).get("message","")')
    c_log "$label: job $st $(c_since "$t_kill") s after the kill; error: $err"
    read -r outcome secs < <(c_wait_outcome "$u" "$id" 180)
    c_log "$label: outcome $outcome (${secs} s more)"
    local recover
    recover=$(awk -v a="$t_up" -v b="$(c_now)" 'BEGIN { printf "%.1f", b - a }')
    if [[ $expect == complete ]]; then
        if [[ $st == done && $outcome == complete ]]; then
            c_ok "$label"
            c_result "Glance killed between clone and add-location, back within the deadline ($deadline s)" \
                PASS "job done ${recover} s after Glance restart (Glance down ${down} s)" 0 "retried with backoff, then completed"
        else
            c_fail "$label: state $st outcome $outcome"
            c_result "Glance killed, back within deadline" FAIL "$recover" "$outcome" "state $st"
        fi
    else
        # Past the deadline the job reports the deadline while Glance is
        # still down; recovery finishes the rollback once Glance is back.
        # (the job's error is the latest attempt's; the deadline one is in
        # the daemon's log)
        local gave_up
        gave_up=$(grep -o "gave up after [0-9]* attempts in [0-9]* s: glance.register_deadline = $deadline" \
            "$C_DIR/d.log" | head -n 1)
        if [[ $st =~ ^(rolled_back|failed)$ && -n $gave_up && $outcome == clean ]]; then
            err="Glance unreachable ... ($gave_up)"
            c_ok "$label"
            c_result "Glance killed between clone and add-location, down past the deadline ($deadline s)" \
                PASS "clean ${recover} s after Glance restart" 0 \
                "job $st: \`$(echo "$err" | cut -c1-100)\`"
        else
            c_fail "$label: state $st outcome $outcome error '$err'"
            c_result "Glance killed, down past deadline" FAIL "$recover" "$outcome" "state $st"
        fi
    fi
    c_stop d
}

scenario "Glance back within the deadline" 120 8 complete
scenario "Glance down past the deadline" 10 25 rollback
c_finish
