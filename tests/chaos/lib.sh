# tests/chaos/lib.sh: helpers for the chaos scenarios (bash, sourced).
#
# Chaos tests kill lab daemons (OSD, Glance, Keystone, libvirtd), so they
# never use the shared lab: each runs against a private lab in
# $RBDSNAP_CHAOS_LAB_DIR (default /tmp/rbdsnap-lab-chaos, port base
# $RBDSNAP_CHAOS_PORT_BASE, default 19300) which the test starts itself
# (lab/start is idempotent) and the ctest fixture chaos_lab_down stops at
# the end of the run.  ctest serialises the scenarios (RESOURCE_LOCK).
#
# Every scenario appends one line to the results table
# $RBDSNAP_RELIABILITY_RESULTS (default $RBDSNAP_BUILD_DIR/reliability-results.md),
# pasted into docs/RELIABILITY.md:
#   | scenario | result | time to recover | leftovers | notes |
#
# Everything a test creates (disks, Glance images, journal namespace,
# daemons) is registered and removed by the EXIT trap, also on failure.
set -uo pipefail

C_NAME=${C_NAME:-$(basename "$0" .sh)}
C_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
C_BUILD=${RBDSNAP_BUILD_DIR:-$C_SRC/build}
C_BIN=${RBDSNAP_DAEMON:-$C_BUILD/service/rbdsnapd}
C_CLI=$C_BUILD/cli/rbdsnap
C_RAND=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
C_DIR=$(mktemp -d "/tmp/rbdsnap-chaos-$C_NAME.XXXXXX")
C_NS="chaos-$C_NAME-$C_RAND"
C_RESULTS=${RBDSNAP_RELIABILITY_RESULTS:-$C_BUILD/reliability-results.md}
C_FAILS=0
C_PIDS=()

c_log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$C_NAME" "$*" >&2; }
c_fail() { c_log "FAIL: $*"; C_FAILS=$((C_FAILS + 1)); }
c_ok() { c_log "ok: $*"; }
c_die() { c_log "FATAL: $*"; C_FAILS=$((C_FAILS + 1)); exit 1; }
c_now() { date +%s.%N; }
c_since() { awk -v a="$1" -v b="$(c_now)" 'BEGIN { printf "%.1f", b - a }'; }

if [[ ${RBDSNAP_SKIP_INTEGRATION:-0} == 1 ]]; then
    echo "SKIP: RBDSNAP_SKIP_INTEGRATION=1"
    exit 77
fi
[[ -x $C_BIN ]] || { echo "no daemon binary at $C_BIN" >&2; exit 1; }

export RBDSNAP_LAB_DIR=${RBDSNAP_CHAOS_LAB_DIR:-/tmp/rbdsnap-lab-chaos}
export RBDSNAP_LAB_PORT_BASE=${RBDSNAP_CHAOS_PORT_BASE:-19300}

# c_lab COMPONENT...: make sure the private lab runs them; load its env.
c_lab() {
    mkdir -p "$RBDSNAP_LAB_DIR"
    if ! flock -o "$RBDSNAP_LAB_DIR.lock" "$C_SRC/lab/start" "$@" >"$C_DIR/lab-start.log" 2>&1; then
        tail -n 30 "$C_DIR/lab-start.log" >&2
        c_die "lab/start $* failed"
    fi
    set -a
    # shellcheck disable=SC1091
    . "$RBDSNAP_LAB_DIR/env"
    set +a
}

# c_lab_pid NAME: the recorded PID of lab process NAME (ceph-osd, glance, ...).
c_lab_pid() { cat "$RBDSNAP_LAB_DIR/pids/$1.pid" 2>/dev/null; }

# c_lab_kill NAME [SIGNAL]: kill one lab process and wait until it is gone.
c_lab_kill() {
    local pid i
    pid=$(c_lab_pid "$1") || c_die "no pid recorded for $1"
    kill "-${2:-KILL}" "$pid" 2>/dev/null || c_die "cannot signal $1 ($pid)"
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    c_die "$1 ($pid) did not die"
}

# json EXPR: evaluate a python expression on the JSON on stdin (as d).
json() {
    /usr/bin/python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    d = None
try:
    r = eval(sys.argv[1])
except Exception:
    r = None
print(json.dumps(r) if isinstance(r, (dict, list)) else ("" if r is None else r))' "$1"
}

# shellcheck source=../lib/free_port.sh
source "$C_SRC/tests/lib/free_port.sh"
c_free_port() { free_port; }

# c_conf NAME BASE [group.key=value...]: a daemon config derived from BASE
# (a lab config) with a free port, this test's journal namespace and the
# given overrides.  Prints the path; the port is in $C_DIR/NAME.port.
c_conf() {
    local name=$1 base=$2 port f
    shift 2
    port=$(c_free_port) || c_die "no free port"
    f=$C_DIR/$name.conf
    /usr/bin/python3 - "$base" "$f" "daemon.port=$port" "journal.namespace=\"$C_NS\"" \
        "libvirt.uri=\"test:///default\"" "snapshot.quiesce=\"off\"" "$@" <<'PY'
import re, sys
src, dst, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(src).read()
for s in sets:
    key, val = s.split("=", 1)
    if "." not in key:
        text, n = re.subn(r'(?m)^%s = .*;$' % re.escape(key), '%s = %s;' % (key, val), text)
        if not n:
            text += '%s = %s;\n' % (key, val)
        continue
    grp, k = key.split(".", 1)
    m = re.search(r'(?ms)^%s = \{\n(.*?)^\};' % re.escape(grp), text)
    if not m:
        text += '%s = {\n  %s = %s;\n};\n' % (grp, k, val)
        continue
    body = m.group(1)
    body, n = re.subn(r'(?m)^  %s = .*;$' % re.escape(k), '  %s = %s;' % (k, val), body)
    if not n:
        body += '  %s = %s;\n' % (k, val)
    text = text[:m.start(1)] + body + text[m.end(1):]
open(dst, "w").write(text)
PY
    echo "$port" >"$C_DIR/$name.port"
    echo "$f"
}

c_url() { echo "http://127.0.0.1:$(cat "$C_DIR/$1.port")"; }

# c_start NAME CONF [ENV=VALUE...]: start a daemon and wait for /v1/health.
c_start() {
    local name=$1 conf=$2 pid i
    shift 2
    env "$@" ${C_WRAP:-} "$C_BIN" -c "$conf" >>"$C_DIR/$name.log" 2>&1 &
    pid=$!
    C_PIDS+=("$pid")
    echo "$pid" >"$C_DIR/$name.pid"
    for ((i = 0; i < 600; i++)); do
        curl -s -o /dev/null -m 2 "$(c_url "$name")/v1/health" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$C_DIR/$name.log" >&2; c_die "daemon $name died at start"; }
        sleep 0.1
    done
    c_die "daemon $name not answering"
}

c_daemon_pid() { cat "$C_DIR/$1.pid"; }

# c_stop NAME: SIGTERM a daemon and wait; exit status in C_RC.
c_stop() {
    local pid
    pid=$(c_daemon_pid "$1")
    kill -TERM "$pid" 2>/dev/null
    C_RC=0
    wait "$pid" 2>/dev/null || C_RC=$?
}

# c_http NAME METHOD PATH [BODY] [CURL ARGS...]: prints "STATUS BODY".
c_http() {
    local name=$1 method=$2 path=$3 body=${4-} out code
    shift 3
    (($#)) && shift
    out=$C_DIR/http.$$.$RANDOM
    if [[ -n $body ]]; then
        code=$(curl -s -m 30 -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "$(c_url "$name")$path")
    else
        code=$(curl -s -m 30 -o "$out" -w '%{http_code}' -X "$method" "$@" "$(c_url "$name")$path")
    fi
    printf '%s %s\n' "$code" "$(cat "$out" 2>/dev/null)"
    rm -f "$out"
}

# c_instance [SIZE] [DATA_MB]: a fresh vms/<uuid>_disk with some data
# (registered for cleanup); prints the uuid.
c_instance() {
    local u size=${1:-64M} mb=${2:-1}
    u=$(cat /proc/sys/kernel/random/uuid)
    rbd create "vms/${u}_disk" --size "$size" >/dev/null 2>&1 || c_die "rbd create vms/${u}_disk"
    echo "vms/${u}_disk" >>"$C_DIR/cleanup-disks"
    rbd bench --io-type write --io-size 1M --io-total "${mb}M" --io-pattern seq "vms/${u}_disk" \
        >/dev/null 2>&1 || c_die "rbd bench vms/${u}_disk"
    echo "$u"
}

c_track_image() { echo "$1" >>"$C_DIR/cleanup-images"; }

# c_job_wait NAME JOB TIMEOUT: wait for a final state; prints the job JSON.
c_job_wait() {
    local name=$1 job=$2 i st body=""
    for ((i = 0; i < $3 * 4; i++)); do
        body=$(curl -s -m 5 "$(c_url "$name")/v1/jobs/$job")
        st=$(echo "$body" | json 'd.get("state","")')
        case $st in
        done | rolled_back | failed) echo "$body"; return 0 ;;
        esac
        sleep 0.25
    done
    echo "$body"
    return 1
}

# c_job_wait_step NAME JOB STEP TIMEOUT: wait until the job runs STEP.
c_job_wait_step() {
    local i body
    for ((i = 0; i < $4 * 10; i++)); do
        body=$(curl -s -m 5 "$(c_url "$1")/v1/jobs/$2")
        [[ $(echo "$body" | json 'd.get("step","")') == "$3" ]] && return 0
        [[ $(echo "$body" | json 'd.get("state","")') =~ ^(done|rolled_back|failed)$ ]] && return 1
        sleep 0.1
    done
    return 1
}

c_journal_keys() {
    rados -p "${1:-images}" --namespace "$C_NS" listomapkeys rbdsnap.journal 2>/dev/null
}

# c_leftovers UUID IMAGE_ID: count what a job left: source snapshots (any
# namespace) on vms/<uuid>_disk, the clone images/<id>, a Glance record,
# journal records.  Prints the count and a description on stderr.
c_leftovers() {
    local u=$1 id=$2 n=0 s
    s=$(rbd snap ls --all "vms/${u}_disk" --format json 2>/dev/null | json 'len(d or [])')
    ((${s:-0} > 0)) && { c_log "leftover: $s snapshot(s) on vms/${u}_disk"; n=$((n + s)); }
    if rbd info "images/$id" >/dev/null 2>&1; then
        c_log "leftover: images/$id"; n=$((n + 1))
    fi
    if [[ -n ${GLANCE_URL:-} ]]; then
        s=$(curl -s -m 10 "$GLANCE_URL/v2/images/$id" | json 'd.get("status","")')
        [[ -n $s && $s != deleted ]] && { c_log "leftover: Glance image $id ($s)"; n=$((n + 1)); }
    fi
    s=$(c_journal_keys | grep -c .)
    ((s > 0)) && { c_log "leftover: $s journal key(s)"; n=$((n + s)); }
    echo "$n"
}

# c_wait_clean UUID IMAGE_ID TIMEOUT: wait until nothing is left; prints
# the seconds it took (or "timeout").
c_wait_clean() {
    local t0 i
    t0=$(c_now)
    for ((i = 0; i < $3; i++)); do
        [[ $(c_leftovers "$1" "$2" 2>/dev/null) == 0 ]] && { c_since "$t0"; return 0; }
        sleep 1
    done
    echo timeout
    return 1
}

# c_result SCENARIO RESULT RECOVER LEFTOVERS NOTES: one row of the table.
c_result() {
    mkdir -p "$(dirname "$C_RESULTS")"
    printf '| %s | %s | %s | %s | %s |\n' "$@" >>"$C_RESULTS"
    c_log "result: $*"
}

c_cleanup() {
    local pid img d s
    for pid in "${C_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for img in $(cat "$C_DIR/cleanup-images" 2>/dev/null); do
        [[ -n ${GLANCE_URL:-} ]] && curl -s -m 20 -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$img"
        rbd snap unprotect "images/$img@snap" >/dev/null 2>&1
        rbd snap purge "images/$img" >/dev/null 2>&1
        rbd rm --no-progress "images/$img" >/dev/null 2>&1
    done
    for d in $(cat "$C_DIR/cleanup-disks" 2>/dev/null); do
        for s in $(rbd snap ls "$d" --format json 2>/dev/null | json '" ".join(x["name"] for x in d or [])'); do
            rbd snap unprotect "$d@$s" >/dev/null 2>&1
        done
        rbd snap purge "$d" >/dev/null 2>&1
        for _ in 1 2 3; do
            rbd rm --no-progress "$d" >/dev/null 2>&1 && break
            sleep 2
        done
    done
    for o in $(rados -p images --namespace "$C_NS" ls 2>/dev/null); do
        rados -p images --namespace "$C_NS" rm "$o" 2>/dev/null
    done
    [[ -n ${C_EXTRA_CLEANUP:-} ]] && eval "$C_EXTRA_CLEANUP"
    if ((C_FAILS == 0)) && [[ -z ${RBDSNAP_KEEP_LOGS:-} ]]; then rm -rf "$C_DIR"; else c_log "logs kept in $C_DIR"; fi
}
trap c_cleanup EXIT

c_finish() {
    if ((C_FAILS)); then
        c_log "$C_FAILS failure(s)"
        exit 1
    fi
    c_log PASS
    exit 0
}

# c_outcome UUID IMAGE_ID: what a job left once the dust settled:
#   clean     nothing at all (rolled back)
#   complete  a finished snapshot and nothing else: Glance image active,
#             images/<id>@snap; a source snapshot only as its parent
#   pending   journal records remain (recovery still working)
#   debris    anything else (described on stderr)
c_outcome() {
    local u=$1 id=$2 snaps clone gl keys par
    keys=$(c_journal_keys | grep -c .)
    snaps=$(rbd snap ls --all "vms/${u}_disk" --format json 2>/dev/null | json 'len(d or [])')
    clone=no
    rbd info "images/$id" >/dev/null 2>&1 && clone=yes
    gl=$(curl -s -m 10 "$GLANCE_URL/v2/images/$id" | json 'd.get("status","")')
    if ((keys > 0)); then echo pending; return; fi
    if [[ ${snaps:-0} == 0 && $clone == no && -z $gl ]]; then echo clean; return; fi
    par=$(rbd info "images/$id" --format json 2>/dev/null | json '"yes" if d.get("parent") else "no"')
    # Unflattened (flatten=no, clone format 2): the source snapshot lives on
    # in the trash namespace as the clone's parent; that is the product.
    local csnaps
    csnaps=$(rbd snap ls "images/$id" --format json 2>/dev/null | json '" ".join(x["name"] for x in d or [])')
    if [[ $clone == yes && $gl == active && ($par == yes || ${snaps:-0} == 0) && " $csnaps " == *" snap "* ]]; then
        echo complete
        return
    fi
    c_log "debris: source snapshots=${snaps:-?} clone=$clone parent=$par glance=${gl:-none} journal=$keys"
    echo debris
}

# c_wait_outcome UUID IMAGE_ID TIMEOUT: wait for clean/complete; prints
# "OUTCOME SECONDS" (SECONDS since the call) or "OUTCOME timeout".
c_wait_outcome() {
    local t0 i o=""
    t0=$(c_now)
    for ((i = 0; i < $3; i++)); do
        o=$(c_outcome "$1" "$2" 2>/dev/null)
        case $o in clean | complete) echo "$o $(c_since "$t0")"; return 0 ;; esac
        sleep 1
    done
    c_outcome "$1" "$2" >/dev/null
    echo "$o timeout"
    return 1
}
