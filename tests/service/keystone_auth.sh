#!/bin/bash
# Keystone mode ($RBDSNAP_CONF_KEYSTONE: daemon.auth = "keystone"): no token
# -> 401, a bad token -> 401, a token without the required role (the lab's
# member-only user) -> 403, an admin token -> accepted.  Nothing is created
# by the refused requests.  /v1/health stays open.
T_NAME=service_keystone_auth
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[[ -n ${RBDSNAP_CONF_KEYSTONE:-} && -r $RBDSNAP_CONF_KEYSTONE ]] || t_die "RBDSNAP_CONF_KEYSTONE missing"
conf=$(t_conf d "$RBDSNAP_CONF_KEYSTONE")
grep -q '^  auth = "keystone";' "$conf" || t_die "$conf: daemon.auth is not keystone"
t_start d "$conf"

token() { # USER PASSWORD PROJECT
    local body
    body=$(printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"%s","domain":{"name":"Default"},"password":"%s"}}},"scope":{"project":{"name":"%s","domain":{"name":"Default"}}}}}' "$1" "$2" "$3")
    curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "$body" "$OS_AUTH_URL/auth/tokens" |
        awk 'tolower($1) == "x-subject-token:" { print $2 }' | tr -d '\r'
}
admin_tok=$(token "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME")
member_tok=$(token "$LAB_MEMBER_USER" "$LAB_MEMBER_PASSWORD" "$LAB_MEMBER_PROJECT")
[[ -n $admin_tok && -n $member_tok ]] || t_die "cannot get Keystone tokens"

u=$(t_instance)
body="{\"instance_uuid\":\"$u\",\"name\":\"ks-$T_RAND\"}"
check() { # WANT DESC CURL-ARGS...
    local want=$1 desc=$2 got
    shift 2
    got=$(curl -s -o "$T_DIR/out" -w '%{http_code}' "$@")
    if [[ $got != "$want" ]]; then
        t_fail "$desc: got $got, want $want: $(head -c 200 "$T_DIR/out")"
    else
        t_ok "$desc -> $got"
    fi
}
U=$(t_url d)
check 401 "POST without token" -X POST -H 'Content-Type: application/json' -d "$body" "$U/v1/snapshots"
check 401 "GET jobs without token" "$U/v1/jobs"
check 401 "POST with a bogus token" -X POST -H 'X-Auth-Token: gAAAAABbogus' -H 'Content-Type: application/json' -d "$body" "$U/v1/snapshots"
check 403 "POST with a member token" -X POST -H "X-Auth-Token: $member_tok" -H 'Content-Type: application/json' -d "$body" "$U/v1/snapshots"
check 403 "GET jobs with a member token (cached)" -H "X-Auth-Token: $member_tok" "$U/v1/jobs"
check 200 "health without token" "$U/v1/health"
check 200 "GET jobs with an admin token" -H "X-Auth-Token: $admin_tok" "$U/v1/jobs"
n=$(json 'len(d["jobs"])' <"$T_DIR/out")
[[ $n == 0 ]] || t_fail "refused requests created $n job(s)"
[[ -z $(t_journal_keys) ]] || t_fail "refused requests wrote the journal"
[[ $(rbd snap ls --all "vms/${u}_disk" | wc -l) == 0 ]] || t_fail "refused requests made snapshots"

# The admin token is accepted end to end (Glance behind Keystone).
resp=$(curl -s -X POST -H "X-Auth-Token: $admin_tok" -H 'Content-Type: application/json' -d "$body" "$U/v1/snapshots")
job=$(echo "$resp" | json 'd.get("job_id")')
img=$(echo "$resp" | json 'd.get("image_id")')
[[ -n $job ]] || t_die "admin POST refused: $resp"
t_track_image "$img"
for ((i = 0; i < 300; i++)); do
    st=$(curl -s -H "X-Auth-Token: $admin_tok" "$U/v1/jobs/$job" | json 'd.get("state")')
    [[ $st == done || $st == rolled_back || $st == failed ]] && break
    sleep 0.2
done
[[ $st == done ]] || t_fail "admin job ended '$st': $(curl -s -H "X-Auth-Token: $admin_tok" "$U/v1/jobs/$job")"
# Clean the image through Keystone-mode Glance.
curl -s -o /dev/null -X DELETE -H "X-Auth-Token: $admin_tok" "$GLANCE_KS_URL/v2/images/$img"
t_stop d
[[ $T_RC == 0 ]] || t_fail "daemon exit status $T_RC"
t_finish
