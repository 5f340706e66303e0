#!/bin/bash
# 50 snapshot jobs for 10 instances through the API: all complete; job
# states, image ids, Glance records and metrics agree.  A mix of flatten
# no / yes / deferred; one job is cancelled while queued behind its
# instance's other jobs (per-instance serialisation keeps it queued).
T_NAME=service_e2e_jobs
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

NINST=${NINST:-10}
PER=${PER:-5}
conf=$(t_conf d)
t_start d "$conf"
fsid=$CEPH_FSID

declare -a insts=() jobs=() images=() jinst=()
for ((i = 0; i < NINST; i++)); do
    insts+=("$(t_instance)")
done
t_log "created $NINST instance disks"

modes=(no no yes deferred no)
for ((k = 0; k < PER; k++)); do
    for ((i = 0; i < NINST; i++)); do
        u=${insts[$i]}
        fl=${modes[$((k % ${#modes[@]}))]}
        body="{\"instance_uuid\":\"$u\",\"name\":\"e2e-$T_RAND-$i-$k\",\"flatten\":\"$fl\",\"quiesce\":\"optional\",\"properties\":{\"rbdsnap_test\":\"$T_RAND\"}}"
        read -r code resp < <(t_http d POST /v1/snapshots "$body")
        if [[ $code != 202 ]]; then
            t_fail "POST $i/$k: $code $resp"
            continue
        fi
        jobs+=("$(echo "$resp" | json 'd["job_id"]')")
        img=$(echo "$resp" | json 'd["image_id"]')
        images+=("$img")
        jinst+=("$u")
        t_track_image "$img"
    done
done
t_log "submitted ${#jobs[@]} jobs"
[[ ${#jobs[@]} == $((NINST * PER)) ]] || t_fail "only ${#jobs[@]} jobs accepted"

done_n=0
for idx in "${!jobs[@]}"; do
    j=${jobs[$idx]}
    body=$(t_job_wait d "$j" 300) || { t_fail "job $j did not finish: $body"; continue; }
    st=$(echo "$body" | json 'd["state"]')
    img=$(echo "$body" | json 'd["image_id"]')
    if [[ $st != done ]]; then
        t_fail "job $j state $st: $(echo "$body" | json 'd.get("error")')"
        continue
    fi
    [[ $img == "${images[$idx]}" ]] || t_fail "job $j image id $img != ${images[$idx]}"
    done_n=$((done_n + 1))
done
t_log "$done_n jobs done"

# Deferred flattens finish in the background: wait for them.
for ((i = 0; i < 300; i++)); do
    pending=$(curl -s "$(t_url d)/v1/jobs" | json 'sum(1 for j in d["jobs"] if j.get("flatten", {}).get("state") == "running")')
    [[ $pending == 0 ]] && break
    sleep 0.5
done
[[ $pending == 0 ]] || t_fail "$pending deferred flattens still running"

# Glance agrees: every image active, location rbd://fsid/images/<id>/snap,
# Nova's properties and the job id set.
for idx in "${!jobs[@]}"; do
    img=${images[$idx]}
    g=$(curl -s "$GLANCE_URL/v2/images/$img")
    chk=$(echo "$g" | json "'ok' if d and d.get('status') == 'active' and d.get('rbdsnap_job_id') == '${jobs[$idx]}' and d.get('instance_uuid') == '${jinst[$idx]}' and d.get('image_type') == 'snapshot' and d.get('disk_format') == 'raw' and d.get('rbdsnap_test') == '$T_RAND' and any(l['url'] == 'rbd://$fsid/images/$img/snap' for l in d.get('locations', [])) else d")
    [[ $chk == ok ]] || t_fail "Glance image $img: $(echo "$chk" | head -c 300)"
done

# No source snapshot left in the user namespace of any instance disk.
for u in "${insts[@]}"; do
    left=$(rbd snap ls "vms/${u}_disk" --format json | json 'len(d)')
    [[ $left == 0 ]] || t_fail "vms/${u}_disk has $left user snapshots left"
done

# Metrics agree with the jobs.
m=$(curl -s "$(t_url d)/metrics")
mdone=$(echo "$m" | awk '$1 == "rbdsnap_jobs{state=\"done\"}" { print $2 }')
mfin=$(echo "$m" | awk '$1 == "rbdsnap_jobs_finished_total{state=\"done\"}" { print $2 }')
msub=$(echo "$m" | awk '$1 == "rbdsnap_jobs_submitted_total{origin=\"api\"}" { print $2 }')
mclone=$(echo "$m" | awk '$1 == "rbdsnap_step_duration_seconds_count{step=\"clone\"}" { print $2 }')
[[ $mdone == "${#jobs[@]}" ]] || t_fail "rbdsnap_jobs{state=done} = $mdone, want ${#jobs[@]}"
[[ $mfin == "${#jobs[@]}" ]] || t_fail "rbdsnap_jobs_finished_total{done} = $mfin"
[[ $msub == "${#jobs[@]}" ]] || t_fail "rbdsnap_jobs_submitted_total = $msub"
[[ $mclone == "${#jobs[@]}" ]] || t_fail "clone step count = $mclone"
flat=$(echo "$m" | awk '$1 == "rbdsnap_flatten_bytes_total" { print $2 }')
t_log "metrics: done=$mdone flatten_bytes=$flat"
listed=$(curl -s "$(t_url d)/v1/jobs?state=done" | json 'len(d["jobs"])')
[[ $listed == "${#jobs[@]}" ]] || t_fail "GET /v1/jobs?state=done lists $listed"

# Cancel: a job queued behind a slow one of the same instance.
u=${insts[0]}
read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"e2e-$T_RAND-slow\",\"flatten\":\"yes\"}")
slow=$(echo "$resp" | json 'd["job_id"]')
t_track_image "$(echo "$resp" | json 'd["image_id"]')"
read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"e2e-$T_RAND-cancel\"}")
cj=$(echo "$resp" | json 'd["job_id"]')
cimg=$(echo "$resp" | json 'd["image_id"]')
t_track_image "$cimg"
read -r code resp < <(t_http d DELETE "/v1/jobs/$cj")
[[ $code == 202 ]] || t_fail "cancel: $code $resp"
body=$(t_job_wait d "$cj" 120)
st=$(echo "$body" | json 'd["state"]')
[[ $st == rolled_back ]] || t_fail "cancelled job state $st"
t_job_wait d "$slow" 120 >/dev/null
[[ -z $(t_glance_status "$cimg") ]] || t_fail "cancelled job left Glance image $cimg"
rbd info "images/$cimg" >/dev/null 2>&1 && t_fail "cancelled job left images/$cimg"
read -r code resp < <(t_http d DELETE "/v1/jobs/$cj")
[[ $code == 409 ]] || t_fail "cancel of a finished job: $code, want 409"

[[ -z $(t_journal_keys) ]] || t_fail "journal not empty: $(t_journal_keys | head -3)"
t_stop d
[[ $T_RC == 0 ]] || t_fail "daemon exit status $T_RC after SIGTERM"
t_finish
