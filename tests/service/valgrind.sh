#!/bin/bash
# rbdsnapd under valgrind (memcheck): start, a few bad requests, snapshot
# jobs (flatten no and deferred), a cancel, metrics, SIGTERM.  No memory
# error and nothing definitely lost.  Also measures idle RSS of the daemon
# without valgrind (reported; the aim is <= 20 MiB).
T_NAME=service_valgrind
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }

# Idle RSS first, without valgrind.
conf=$(t_conf r)
t_start r "$conf"
sleep 2
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$(t_pid r)/status")
t_log "idle RSS: $((rss / 1024)) MiB ($rss kB)"
echo "$rss" >"${RBDSNAP_BUILD_DIR:-/tmp}/rbdsnapd-idle-rss-kb" 2>/dev/null || true
t_stop r

conf=$(t_conf d)
vlog=$T_DIR/valgrind.log
T_WRAP="valgrind --log-file=$vlog --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 --error-exitcode=42" \
    t_start d "$conf"
u=$(t_instance)
read -r code _ < <(t_http d POST /v1/snapshots '{')
[[ $code == 400 ]] || t_fail "malformed JSON: $code"
read -r code _ < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$(cat /proc/sys/kernel/random/uuid)\",\"name\":\"v\"}")
[[ $code == 404 ]] || t_fail "unknown instance: $code"
declare -a jobs=()
for fl in no deferred yes; do
    read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"vg-$T_RAND\",\"flatten\":\"$fl\"}")
    [[ $code == 202 ]] || { t_fail "POST $fl: $code $resp"; continue; }
    jobs+=("$(echo "$resp" | json 'd["job_id"]')")
    t_track_image "$(echo "$resp" | json 'd["image_id"]')"
done
read -r code resp < <(t_http d POST /v1/snapshots "{\"instance_uuid\":\"$u\",\"name\":\"vg-$T_RAND-c\"}")
cj=$(echo "$resp" | json 'd["job_id"]')
t_track_image "$(echo "$resp" | json 'd["image_id"]')"
t_http d DELETE "/v1/jobs/$cj" >/dev/null
for j in "${jobs[@]}"; do
    body=$(t_job_wait d "$j" 300)
    [[ $(echo "$body" | json 'd["state"]') == done ]] || t_fail "job $j: $body"
done
t_job_wait d "$cj" 120 >/dev/null
sleep 2
curl -s "$(t_url d)/metrics" >/dev/null
curl -s "$(t_url d)/v1/jobs" >/dev/null
t_stop d
t_log "valgrind exit status $T_RC"
[[ $T_RC == 0 ]] || t_fail "daemon under valgrind exited $T_RC (42 = valgrind errors)"
grep -E "ERROR SUMMARY|definitely lost" "$vlog" | sed 's/^/    /' >&2
grep -q "ERROR SUMMARY: 0 errors" "$vlog" || { t_fail "valgrind reported errors"; grep -A25 "Invalid\|uninitialised\|definitely lost in" "$vlog" | head -80 >&2; }
t_finish
