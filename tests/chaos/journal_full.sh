#!/bin/bash
# Chaos: the journal pool fills up (a dedicated journal pool, journal.pool,
# with a quota of max_objects 1 while it holds the journal and the lease).
#   - a job accepted before the pool filled and running while it is full
#     is not lost: it finishes or rolls back once the quota is lifted;
#   - a POST while the pool is full is refused at once with a clear error
#     (nothing created: no Glance record, no snapshot, no journal record);
#   - the journal never holds a half-written job (own.<id> without
#     req.<id> or the reverse);
#   - once the quota is lifted, new jobs are accepted and finish.
C_NAME=journal_full
. "$(dirname "$0")/lib.sh"

c_lab ceph glance
JP=chaos-journal-$C_RAND
ceph osd pool create "$JP" 8 8 >/dev/null 2>&1 || c_die "cannot create pool $JP"
ceph osd pool application enable "$JP" rbdsnap >/dev/null 2>&1
drop_pool() { ceph osd pool delete "$JP" "$JP" --yes-i-really-really-mean-it >/dev/null 2>&1; }
C_EXTRA_CLEANUP=drop_pool
jkeys() { rados -p "$JP" --namespace "$C_NS" listomapkeys rbdsnap.journal 2>/dev/null; }
# Journal consistency: every job has both own.<id> and req.<id>.
consistent() {
    local keys own req
    keys=$(jkeys)
    own=$(grep '^own\.' <<<"$keys" | sed 's/^own\.//' | sort)
    req=$(grep '^req\.' <<<"$keys" | sed 's/^req\.//' | sort)
    [[ $own == "$req" ]] || { c_log "journal: own=[$own] req=[$req]"; return 1; }
}
pool_full() { local l; l=$(ceph osd pool ls detail 2>/dev/null | grep "'$JP'"); [[ $l == *full* ]]; }

conf=$(c_conf d "$RBDSNAP_CONF" journal.pool="\"$JP\"" ceph.osd_op_timeout=5 \
    journal.lease_seconds=6)
# The first job waits 14 s before its Glance step, long enough to fill the
# pool under it.
c_start d "$conf" RBDSNAP_FAILPOINTS="service.snapshot.glance_create=1*sleep:14000"

u1=$(c_instance 64M 1)
r=$(c_http d POST /v1/snapshots "{\"instance_uuid\":\"$u1\",\"name\":\"chaos-$C_RAND-1\"}")
[[ ${r%% *} == 202 ]] || c_die "POST before the quota: $r"
job1=$(echo "${r#* }" | json 'd["job_id"]')
id1=$(echo "${r#* }" | json 'd["image_id"]')
c_track_image "$id1"

ceph osd pool set-quota "$JP" max_objects 1 >/dev/null 2>&1 || c_die "set-quota failed"
t_full=$(c_now)
for _ in $(seq 120); do pool_full && break; sleep 0.5; done
pool_full || c_die "pool $JP never flagged full"
c_log "pool $JP full after $(c_since "$t_full") s"

u2=$(c_instance 64M 1)
t0=$(c_now)
r=$(c_http d POST /v1/snapshots "{\"instance_uuid\":\"$u2\",\"name\":\"chaos-$C_RAND-2\"}")
code=${r%% *}
msg=$(echo "${r#* }" | json 'd.get("message","")')
refused_in=$(c_since "$t0")
c_log "POST while full: $code in ${refused_in} s: $msg"
if [[ $code =~ ^5 && $code != 500 && -n $msg ]] || [[ $code == 507 ]]; then
    c_ok "refused with $code"
else
    [[ $code == 202 ]] && c_track_image "$(echo "${r#* }" | json 'd.get("image_id","")')"
    c_fail "POST while the journal pool is full: $r"
fi
[[ $msg =~ journal|quota|full|space ]] || c_fail "message does not say what is wrong: $msg"
n=$(rbd snap ls --all "vms/${u2}_disk" --format json 2>/dev/null | json 'len(d or [])')
[[ ${n:-0} == 0 ]] || c_fail "refused job left $n snapshot(s) on vms/${u2}_disk"
consistent || c_fail "half-written journal entry while full"

sleep 25   # job 1 wakes up and hits the full journal
st1=$(c_http d GET "/v1/jobs/$job1" | cut -d' ' -f2- | json 'd.get("state","")')
c_log "job 1 while full: $st1"
consistent || c_fail "half-written journal entry while job 1 ran against the full pool"

ceph osd pool set-quota "$JP" max_objects 0 >/dev/null 2>&1
t_lift=$(c_now)
for _ in $(seq 120); do pool_full || break; sleep 0.5; done
out=$(c_job_wait d "$job1" 300) || c_fail "job 1 never finished after the quota was lifted"
st1=$(echo "$out" | json 'd.get("state","")')
c_log "job 1: $st1 ($(echo "$out" | json '(d.get("error") or {}).get("message","")'))"
read -r o1 secs < <(c_wait_outcome "$u1" "$id1" 180)
c_log "job 1 outcome $o1 (${secs} s)"
[[ $o1 == clean || $o1 == complete ]] || c_fail "job 1 left $o1"
[[ $st1 == done || $st1 == rolled_back ]] || c_fail "job 1 ended $st1"
# Job 1's records in the test journal: c_outcome looked at the images pool
# namespace; check the dedicated pool too.
for _ in $(seq 60); do [[ -z $(jkeys | grep -v '^$') ]] && break; sleep 1; done
[[ -z $(jkeys) ]] || c_fail "journal keys left: $(jkeys | tr '\n' ' ')"
recover=$(c_since "$t_lift")

u3=$(c_instance 64M 1)
r=$(c_http d POST /v1/snapshots "{\"instance_uuid\":\"$u3\",\"name\":\"chaos-$C_RAND-3\"}")
[[ ${r%% *} == 202 ]] || c_fail "POST after the quota was lifted: $r"
job3=$(echo "${r#* }" | json 'd.get("job_id","")')
c_track_image "$(echo "${r#* }" | json 'd.get("image_id","")')"
out=$(c_job_wait d "$job3" 180)
[[ $(echo "$out" | json 'd.get("state","")') == done ]] || c_fail "job after the quota: $out"
c_stop d
if ((C_FAILS == 0)); then
    c_result "Journal pool full (quota)" PASS "job 1 $st1 and journal empty ${recover} s after the quota was lifted" 0 \
        "POST refused $code in ${refused_in} s: \`$(echo "$msg" | cut -c1-90)\`; journal consistent throughout"
else
    c_result "Journal pool full (quota)" FAIL "${recover:-n/a}" "?" "POST $code: $(echo "$msg" | cut -c1-60); job 1 $st1"
fi
c_finish
