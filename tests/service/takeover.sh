#!/bin/bash
# Two daemons on one cluster (same journal), one killed mid-job: the other
# takes the job over once the dead one's lease expired, and finishes it.
# Also: the survivor never runs a job the other still owns.
T_NAME=service_takeover
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

LEASE=3
ca=$(t_conf a "$RBDSNAP_CONF" $LEASE)
cb=$(t_conf b "$RBDSNAP_CONF" $LEASE)
u=$(t_instance)
# A stalls inside the clone step long enough to be killed there.
t_start a "$ca" "RBDSNAP_FAILPOINTS=rbd.flow.clone=sleep:60000"
t_start b "$cb"

read -r code resp < <(t_http a POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"takeover-$T_RAND\"}")
[[ $code == 202 ]] || t_die "POST: $code $resp"
job=$(echo "$resp" | json 'd["job_id"]')
img=$(echo "$resp" | json 'd["image_id"]')
t_track_image "$img"
for ((i = 0; i < 100; i++)); do
    step=$(curl -s "$(t_url a)/v1/jobs/$job" | json 'd["step"]')
    [[ $step == clone ]] && break
    sleep 0.1
done
[[ $step == clone ]] || t_fail "job never reached the clone step on A (step $step)"
# While A is alive, B must not touch the job.
sleep $((LEASE + 1))
code=$(curl -s -o /dev/null -w '%{http_code}' "$(t_url b)/v1/jobs/$job")
[[ $code == 404 ]] || t_fail "B took the job while A was alive (GET on B: $code)"
owner=$(rados -p images --namespace "$T_NS" getomapval rbdsnap.journal "own.$job" /dev/stdout 2>/dev/null | tr -d '\n')
[[ $owner == *":$(t_port a)" ]] || t_fail "journal owner of $job is '$owner', want A"

t_stop a KILL
t_log "A killed mid-job; waiting for B to take over (lease ${LEASE}s)"
body=""
for ((i = 0; i < 150; i++)); do
    code=$(curl -s -o "$T_DIR/j" -w '%{http_code}' "$(t_url b)/v1/jobs/$job")
    [[ $code == 200 ]] && break
    sleep 0.2
done
[[ $code == 200 ]] || t_die "B never took job $job over"
body=$(t_job_wait b "$job" 120) || t_fail "job not finished on B: $body"
st=$(echo "$body" | json 'd["state"]')
[[ $st == done ]] || t_fail "job ended $st on B, want done: $body"
[[ $(echo "$body" | json 'd.get("recovered")') == True ]] || t_fail "job not marked recovered"
[[ $(t_glance_status "$img") == active ]] || t_fail "Glance image $img not active"
owner_left=$(t_journal_keys | wc -l)
[[ $owner_left == 0 ]] || t_fail "journal not empty: $(t_journal_keys)"
taken=$(curl -s "$(t_url b)/metrics" | awk '$1 == "rbdsnap_jobs_taken_over_total" { print $2 }')
[[ $taken == 1 ]] || t_fail "rbdsnap_jobs_taken_over_total = '$taken'"
t_stop b
[[ $T_RC == 0 ]] || t_fail "B exit status $T_RC"
t_finish
