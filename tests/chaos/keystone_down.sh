#!/bin/bash
# Chaos: Keystone goes down while rbdsnapd (daemon.auth = "keystone") serves.
# Tokens the daemon already validated keep working until they expire; a
# token it has not seen, and an expired one, get 503 with a message that
# says Keystone is unreachable; once Keystone is back, new tokens work.
# Tokens are made short-lived (keystone.conf [token] expiration = 25 s in
# the private lab, restored at the end) so expiry is reached in the test.
C_NAME=keystone_down
. "$(dirname "$0")/lib.sh"

EXP=25
c_lab ceph keystone
ksconf=$RBDSNAP_LAB_DIR/keystone/keystone.conf
[[ -f $ksconf ]] || c_die "no $ksconf"
restore_ks() {
    sed -i "s/^expiration = $EXP\$/expiration = 86400/" "$ksconf"
    if ! curl -s -m 5 -o /dev/null "$OS_AUTH_URL"; then c_lab keystone; fi
}
C_EXTRA_CLEANUP=restore_ks
sed -i "s/^expiration = [0-9]*\$/expiration = $EXP/" "$ksconf"
c_lab_kill keystone TERM
c_lab ceph keystone

# token: issue an admin token (password from the lab env via a 0600 file,
# never on a command line); prints "TOKEN EXPIRES_EPOCH".
token() {
    local f=$C_DIR/auth.json h=$C_DIR/auth.h b=$C_DIR/auth.b
    (umask 077; /usr/bin/python3 -c '
import json, os
print(json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": os.environ["OS_USERNAME"], "domain": {"name": "Default"},
    "password": os.environ["OS_PASSWORD"]}}},
    "scope": {"project": {"name": os.environ["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}))' >"$f")
    curl -s -m 30 -D "$h" -o "$b" -H 'Content-Type: application/json' --data-binary "@$f" \
        "$OS_AUTH_URL/auth/tokens" || return 1
    rm -f "$f"
    local t e
    t=$(tr -d '\r' <"$h" | awk -F': ' 'tolower($1) == "x-subject-token" { print $2 }')
    e=$(json 'd["token"]["expires_at"]' <"$b")
    [[ -n $t && -n $e ]] || return 1
    echo "$t $(date -d "$e" +%s)"
}

conf=$(c_conf d "$RBDSNAP_CONF_KEYSTONE" journal.lease_seconds=10)
c_start d "$conf"

read -r tokA expA < <(token) || c_die "no token from Keystone"
read -r tokB expB < <(token) || c_die "no second token from Keystone"
c_log "tokens expire in $((expA - $(date +%s))) s"
r=$(c_http d GET /v1/jobs "" -H "X-Auth-Token: $tokA")
[[ ${r%% *} == 200 ]] || c_fail "token A before the outage: ${r:0:200}"

c_lab_kill keystone KILL
t_down=$(c_now)
ok=0
for _ in 1 2 3; do
    r=$(c_http d GET /v1/jobs "" -H "X-Auth-Token: $tokA")
    [[ ${r%% *} == 200 ]] && ok=$((ok + 1))
done
if ((ok == 3)); then c_ok "cached token works with Keystone down"; else c_fail "cached token refused with Keystone down: ${r:0:200}"; fi
rB=$(c_http d GET /v1/jobs "" -H "X-Auth-Token: $tokB")
msgB=$(echo "${rB#* }" | json 'd.get("message","")')
if [[ ${rB%% *} == 503 && $msgB =~ [Kk]eystone ]]; then
    c_ok "unseen token: 503 \"$msgB\""
else
    c_fail "unseen token with Keystone down: ${rB:0:300}"
fi

# Past the cached token's expiry.
while (($(date +%s) <= expA)); do sleep 1; done
rA=$(c_http d GET /v1/jobs "" -H "X-Auth-Token: $tokA")
msgA=$(echo "${rA#* }" | json 'd.get("message","")')
if [[ ${rA%% *} == 503 && $msgA =~ [Kk]eystone ]]; then
    c_ok "expired cached token: 503 \"$msgA\""
else
    c_fail "cached token after expiry with Keystone down: ${rA:0:300}"
fi
h=$(c_http d GET /v1/health)
[[ ${h%% *} == 200 ]] || c_fail "health while Keystone is down: ${h:0:200}"

t_up=$(c_now)
c_lab keystone
read -r tokC _ < <(token) || c_die "no token after Keystone restart"
back=""
for _ in $(seq 60); do
    r=$(c_http d GET /v1/jobs "" -H "X-Auth-Token: $tokC")
    [[ ${r%% *} == 200 ]] && { back=$(c_since "$t_up"); break; }
    sleep 1
done
[[ -n $back ]] || c_fail "new token refused after Keystone came back: ${r:0:200}"
c_log "Keystone down for $(awk -v a="$t_down" -v b="$t_up" 'BEGIN { printf "%.0f", b - a }') s; API usable ${back} s after the restart"
c_stop d
if ((C_FAILS == 0)); then
    c_result "Keystone down (token expiry ${EXP} s)" PASS "${back} s after Keystone restart" 0 \
        "cached token 200 until expiry; unseen/expired token 503 \`$(echo "$msgA" | cut -c1-80)\`"
else
    c_result "Keystone down" FAIL "${back:-n/a}" 0 "see test log"
fi
c_finish
