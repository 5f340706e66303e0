#!/bin/bash
# A table of bad requests: each gets the expected 4xx with a JSON
# {code, message} body, and nothing is created (no job, no journal record,
# no Glance image, no RBD clone).
T_NAME=service_bad_requests
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

conf=$(t_conf d)
# A small body limit so the 413 case stays small.
sed -i 's/^  max_body = [0-9]*;/  max_body = 4096;/' "$conf"
t_start d "$conf"

u=$(t_instance)
unknown=$(cat /proc/sys/kernel/random/uuid)
name="badreq-$T_RAND"
big=$(head -c 6000 /dev/zero | tr '\0' 'a')
images_before=$(rbd ls images | sort)

# method | path | content-type | body | expected status
cases=(
    "POST|/v1/snapshots|application/json|{|400"
    "POST|/v1/snapshots|application/json|[]|400"
    "POST|/v1/snapshots|application/json||400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":5,\"name\":\"$name\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"not-a-uuid\",\"name\":\"$name\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$unknown\",\"name\":\"$name\"}|404"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"a/b\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"..\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"x\\u0001y\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"flatten\":\"maybe\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"quiesce\":1}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"bogus\":1}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"domain\":\"x\",\"name\":\"$name\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"properties\":{\"k\":1}}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"properties\":{\"owner_id\":\"x\"}}|400"
    "POST|/v1/snapshots|application/json|{\"disks\":[\"vms/../x\"],\"name\":\"$name\"}|400"
    "POST|/v1/snapshots|application/json|{\"domain\":\"a/b\",\"name\":\"$name\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"all_disks\":\"yes\"}|400"
    "POST|/v1/snapshots|application/json|{\"instance_uuid\":\"$u\",\"name\":\"$name\",\"x\":\"$big\"}|413"
    "POST|/v1/snapshots|text/plain|{\"instance_uuid\":\"$u\",\"name\":\"$name\"}|415"
    "PUT|/v1/snapshots|application/json|{}|405"
    "GET|/v1/snapshots|||405"
    "GET|/v1/nope|||404"
    "GET|/v2/snapshots|||404"
    "GET|/v1/jobs/$unknown|||404"
    "DELETE|/v1/jobs/$unknown|||404"
    "DELETE|/v1/jobs/not-a-uuid|||404"
    "GET|/v1/jobs?state=bogus|||400"
    "POST|/v1/jobs|application/json|{}|405"
    "DELETE|/v1/health|||405"
)

n=0
for c in "${cases[@]}"; do
    IFS='|' read -r method path ctype body want <<<"$c"
    out=$T_DIR/out
    args=(-s -o "$out" -w '%{http_code}' -X "$method")
    [[ -n $ctype ]] && args+=(-H "Content-Type: $ctype")
    [[ $method == POST || $method == PUT ]] && args+=(--data-binary "$body")
    got=$(curl "${args[@]}" "$(t_url d)$path")
    n=$((n + 1))
    if [[ $got != "$want" ]]; then
        t_fail "case $n: $method $path body=${body:0:80}: got $got, want $want: $(head -c 200 "$out")"
        continue
    fi
    code=$(json 'd.get("code") if isinstance(d, dict) else None' <"$out")
    msg=$(json 'd.get("message") if isinstance(d, dict) else None' <"$out")
    if [[ $code != "$want" || -z $msg ]]; then
        t_fail "case $n: body is not {code, message}: $(head -c 200 "$out")"
    fi
done
t_log "$n bad requests checked"

# Nothing was created.
jobs=$(curl -s "$(t_url d)/v1/jobs" | json 'len(d["jobs"])')
[[ $jobs == 0 ]] || t_fail "jobs were created: $jobs"
keys=$(t_journal_keys | grep -c '^own\.')
[[ $keys == 0 ]] || t_fail "journal records were created: $keys"
gl=$(curl -s "$GLANCE_URL/v2/images?name=$name" | json 'len(d["images"])')
[[ $gl == 0 ]] || t_fail "Glance images named $name exist: $gl"
images_after=$(rbd ls images | sort)
new=$(comm -13 <(echo "$images_before") <(echo "$images_after") | grep -v '^$' || true)
# Other tests may create images in parallel: only ours would carry our marker.
for i in $new; do
    md=$(rbd image-meta get "images/$i" rbdsnap.instance_uuid 2>/dev/null || true)
    [[ $md == "$u" ]] && t_fail "an RBD clone of the test instance was created: $i"
done
snaps=$(rbd snap ls --all "vms/${u}_disk" | tail -n +2 | wc -l)
[[ $snaps == 0 ]] || t_fail "snapshots were created on the instance disk"
submitted=$(curl -s "$(t_url d)/metrics" | awk '/^rbdsnap_jobs_submitted_total/ { s += $2 } END { print s + 0 }')
[[ $submitted == 0 ]] || t_fail "metrics count $submitted submitted jobs"

t_stop d
[[ $T_RC == 0 ]] || t_fail "daemon exit status $T_RC after SIGTERM"
t_finish
