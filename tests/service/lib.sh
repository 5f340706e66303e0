# tests/service/lib.sh: helpers for the rbdsnapd integration tests (bash).
#
# Each test gets a private work dir, its own daemon port(s) and its own
# journal namespace, so tests never see each other's jobs; everything a
# test creates (instance disks, Glance images, journal objects, daemons) is
# registered and removed by the EXIT trap, also on failure.
#
# Needs the lab env (tests/run-integration exports it) and
# RBDSNAP_BUILD_DIR (set by ctest).
set -uo pipefail

T_NAME=${T_NAME:-$(basename "$0" .sh)}
T_RAND=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
T_DIR=$(mktemp -d "/tmp/rbdsnap-test-$T_NAME.XXXXXX")
T_NS="t-$T_NAME-$T_RAND"
T_BIN=${RBDSNAP_DAEMON:-${RBDSNAP_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}/service/rbdsnapd}
T_FAILS=0
declare -a T_PIDS=()

t_log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$T_NAME" "$*" >&2; }
t_fail() { t_log "FAIL: $*"; T_FAILS=$((T_FAILS + 1)); }
# (t_die counts as a failure too, so the EXIT trap keeps the logs)
t_die() { t_log "FATAL: $*"; T_FAILS=$((T_FAILS + 1)); exit 1; }
t_ok() { t_log "ok: $*"; }

[[ -x $T_BIN ]] || t_die "no daemon binary at $T_BIN"
[[ -n ${RBDSNAP_CONF:-} && -r $RBDSNAP_CONF ]] || t_die "RBDSNAP_CONF not set (run through tests/run-integration)"

# json EXPR: evaluate a python expression on the JSON document on stdin
# (bound to d).  Prints the result (JSON for dicts/lists, plain otherwise).
json() {
    /usr/bin/python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    d = None
r = eval(sys.argv[1])
print(json.dumps(r) if isinstance(r, (dict, list)) else ("" if r is None else r))' "$1"
}

# t_free_port: a port nothing listens on, below the kernel's ephemeral range
# (an outgoing connection's local port is invisible to the probe, yet makes
# the daemon's bind fail: seen with 32770) and above the labs' port bases.
# shellcheck source=../lib/free_port.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/free_port.sh"
t_free_port() { free_port; }

# t_conf NAME [BASECONF] [LEASE] [EXTRA_SED]: write $T_DIR/NAME.conf with a free
# port and the test's journal namespace.  Prints the path.
t_conf() {
    local name=$1 base=${2:-$RBDSNAP_CONF} lease=${3:-30} port f
    port=$(t_free_port) || t_die "no free port"
    f=$T_DIR/$name.conf
    sed -e "s/^  port = [0-9]*;/  port = $port;/" \
        -e "s/^  namespace = \"[^\"]*\";/  namespace = \"$T_NS\";/" \
        -e "s/^  lease_seconds = [0-9]*;/  lease_seconds = $lease;/" \
        -e "s/^log_level = \"[a-z]*\";/log_level = \"${T_LOG_LEVEL:-info}\";/" \
        "$base" >"$f"
    echo "$port" >"$T_DIR/$name.port"
    echo "$f"
}

# t_start NAME CONF [ENV=VALUE...]: start a daemon; waits for /v1/health.
t_start() {
    local name=$1 conf=$2 pid i
    shift 2
    env "$@" ${T_WRAP:-} "$T_BIN" -c "$conf" >>"$T_DIR/$name.log" 2>&1 &
    pid=$!
    T_PIDS+=("$pid")
    eval "T_PID_${name//-/_}=$pid"
    for ((i = 0; i < 300; i++)); do
        curl -s -o /dev/null -m 1 "$(t_url "$name")/v1/health" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$T_DIR/$name.log" >&2; t_die "daemon $name died at start"; }
        sleep 0.1
    done
    t_die "daemon $name not answering"
}

# t_start_nowait NAME CONF [ENV=VALUE...]: start a daemon, do not wait.
t_start_nowait() {
    local name=$1 conf=$2 pid
    shift 2
    env "$@" ${T_WRAP:-} "$T_BIN" -c "$conf" >>"$T_DIR/$name.log" 2>&1 &
    pid=$!
    T_PIDS+=("$pid")
    eval "T_PID_${name//-/_}=$pid"
}

t_pid() { local v="T_PID_${1//-/_}"; echo "${!v}"; }

# t_stop NAME [SIGNAL]: stop a daemon and wait for it; its exit status in
# T_RC (not in a subshell: the daemon is this shell's child).
t_stop() {
    local pid
    pid=$(t_pid "$1")
    kill "-${2:-TERM}" "$pid" 2>/dev/null
    T_RC=0
    wait "$pid" 2>/dev/null || T_RC=$?
}

# t_wait_exit NAME TIMEOUT: wait for a daemon to exit by itself; status in
# T_RC ("timeout" if it still runs).
t_wait_exit() {
    local pid i
    pid=$(t_pid "$1")
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        T_RC=timeout
        return 1
    fi
    T_RC=0
    wait "$pid" 2>/dev/null || T_RC=$?
}

t_port() { cat "$T_DIR/$1.port"; }
t_url() { echo "http://127.0.0.1:$(t_port "$1")"; }

# t_http NAME METHOD PATH [BODY] [CURL ARGS...]: prints "STATUS BODY".
t_http() {
    local name=$1 method=$2 path=$3 body=${4-} out code
    shift 3
    (($#)) && shift
    out=$T_DIR/http.$$.$RANDOM
    if [[ -n $body ]]; then
        code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "$(t_url "$name")$path")
    else
        code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" "$@" "$(t_url "$name")$path")
    fi
    printf '%s %s\n' "$code" "$(cat "$out")"
    rm -f "$out"
}

# t_instance: create an instance disk vms/<uuid>_disk (registered for
# cleanup); prints the uuid.
t_instance() {
    local u size=${1:-32M}
    u=$(cat /proc/sys/kernel/random/uuid)
    rbd create "vms/${u}_disk" --size "$size" >/dev/null 2>&1 || t_die "rbd create vms/${u}_disk"
    # A little data so clones and flattens have something to copy.
    rbd bench --io-type write --io-size 64K --io-total 256K --io-pattern rand "vms/${u}_disk" >/dev/null 2>&1
    # (a file, not an array: callers run this in $(...))
    echo "vms/${u}_disk" >>"$T_DIR/cleanup-disks"
    echo "$u"
}

t_track_image() { echo "$1" >>"$T_DIR/cleanup-images"; }

# Glance: status of an image ("" when absent or deleted).
t_glance_status() {
    curl -s "$GLANCE_URL/v2/images/$1" | json 'd.get("status","") if isinstance(d, dict) else ""'
}

# t_job_wait NAME JOB TIMEOUT: wait for a final state; prints the job JSON.
t_job_wait() {
    local name=$1 job=$2 i st body
    for ((i = 0; i < $3 * 5; i++)); do
        body=$(curl -s -m 2 "$(t_url "$name")/v1/jobs/$job")
        # Parse (a python run) only once a final state shows in the body:
        # a python run every 0.2 s was a third of crash_recovery's CPU time.
        if [[ $body =~ \"state\":\ *\"(done|rolled_back|failed)\" ]]; then
            st=$(echo "$body" | json 'd.get("state","") if isinstance(d, dict) else ""')
            case $st in
            done | rolled_back | failed)
                echo "$body"
                return 0
                ;;
            esac
        fi
        sleep 0.2
    done
    echo "$body"
    return 1
}

t_journal_keys() {
    rados -p images --namespace "$T_NS" listomapkeys rbdsnap.journal 2>/dev/null
}

t_cleanup() {
    local pid img d s
    for pid in "${T_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for img in $(cat "$T_DIR/cleanup-images" 2>/dev/null); do
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$img"
        # Whatever Glance did not remove (a clone never registered).
        rbd snap unprotect "images/$img@snap" >/dev/null 2>&1
        rbd snap purge "images/$img" >/dev/null 2>&1
        rbd rm --no-progress "images/$img" >/dev/null 2>&1
    done
    for d in $(cat "$T_DIR/cleanup-disks" 2>/dev/null); do
        for s in $(rbd snap ls "$d" --format json 2>/dev/null | json '" ".join(x["name"] for x in d or [])'); do
            rbd snap unprotect "$d@$s" >/dev/null 2>&1
        done
        rbd snap purge "$d" >/dev/null 2>&1
        for _ in 1 2 3 4 5; do
            rbd rm --no-progress "$d" >/dev/null 2>&1 && break
            sleep 2
        done
        rbd info "$d" >/dev/null 2>&1 && t_log "cleanup: cannot remove $d"
    done
    for o in $(rados -p images --namespace "$T_NS" ls 2>/dev/null); do
        rados -p images --namespace "$T_NS" rm "$o" 2>/dev/null
    done
    if ((T_FAILS == 0)) && [[ -z ${T_KEEP:-} ]]; then
        rm -rf "$T_DIR"
    else
        t_log "logs kept in $T_DIR"
    fi
}
trap t_cleanup EXIT

t_finish() {
    if ((T_FAILS)); then
        t_log "$T_FAILS failure(s)"
        exit 1
    fi
    t_log "PASS"
    exit 0
}
