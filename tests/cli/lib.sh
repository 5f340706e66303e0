# lib.sh - shared by the rbdsnap CLI integration tests (sourced).
#
# Gives: $RBDSNAP (the binary), $SFX (a unique suffix), fail/pass helpers,
# jq-like checks through Debian's python3 (jcheck), and a cleanup trap that
# removes every image (live or in the RBD trash) whose name contains $SFX,
# children before parents, also when the test fails.
set -uo pipefail

: "${RBDSNAP_BUILD_DIR:?RBDSNAP_BUILD_DIR not set}"
: "${CEPH_CONF:?lab environment missing (run through tests/run-integration)}"
RBDSNAP="$RBDSNAP_BUILD_DIR/cli/rbdsnap"
PY=/usr/bin/python3
SFX="t$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
TMPD=$(mktemp -d "/tmp/rbdsnap-cli-test.XXXXXX")
export RBDSNAP_CONF=${RBDSNAP_CONF:-}
export TMPDIR=$TMPD
NFAIL=0

fail() { echo "FAIL: $*" >&2; NFAIL=$((NFAIL + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# check CONDITION-DESCRIPTION COMMAND...: run COMMAND, record pass/fail.
check() {
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# jcheck FILE PYTHON-EXPR: evaluate EXPR with `d` = the parsed JSON of FILE.
jcheck() {
    "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
ok = eval("(" + sys.argv[2] + "\n)")
if not ok:
    print("JSON check failed: %s\n%s" % (sys.argv[2], json.dumps(d, indent=1)[:3000]), file=sys.stderr)
sys.exit(0 if ok else 1)
PYEOF
}

rbdq() { rbd "$@" >/dev/null 2>&1; }

# Remove everything of this run; several rounds so children go before parents.
cleanup_all() {
    local round pool img id snap left
    for round in 1 2 3 4 5 6; do
        left=0
        for pool in vms images; do
            # Trash entries of this run.
            while read -r id img; do
                [ -n "${id:-}" ] || continue
                case $img in *"$SFX"*) ;; *) continue ;; esac
                left=1
                rbdq trash restore -p "$pool" "$id" || true
            done < <(rbd trash ls -p "$pool" 2>/dev/null)
            for img in $(rbd ls -p "$pool" 2>/dev/null | grep -F "$SFX"); do
                left=1
                for snap in $(rbd snap ls --format json "$pool/$img" 2>/dev/null |
                              "$PY" -c 'import json,sys; [print(s["name"]) for s in json.load(sys.stdin)]'); do
                    rbdq snap unprotect "$pool/$img@$snap" || true
                    rbdq snap rm --no-progress "$pool/$img@$snap" || true
                done
                rbdq rm --no-progress "$pool/$img" || true
            done
        done
        [ "$left" = 0 ] && break
    done
    [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null
    for g in ${GLANCE_IDS:-}; do
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$g" || true
    done
    rm -rf "$TMPD"
}
trap cleanup_all EXIT

finish() {
    if [ "$NFAIL" -gt 0 ]; then
        echo "$NFAIL check(s) failed" >&2
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

# glance_setup ID: make the Glance image ID exist with the lab's Glance when
# it runs (status queued), else with tests/cli/glance_stub.py (status
# active) and a configuration pointing at it.  Sets GNAME and GSTATUS.
STUB_PID=""
glance_setup() {
    local gid=$1 port
    if [ -n "${GLANCE_URL:-}" ] && curl -sf -o /dev/null "$GLANCE_URL/versions"; then
        GNAME="img-$SFX" GSTATUS=queued
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d "{\"id\":\"$gid\",\"name\":\"$GNAME\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" \
            "$GLANCE_URL/v2/images" || die "glance create"
        GLANCE_IDS="${GLANCE_IDS:-} $gid"
        return 0
    fi
    echo "note: no Glance in this lab: using tests/cli/glance_stub.py"
    GNAME="stub-${gid:0:8}" GSTATUS=active
    coproc STUB { exec "$PY" "$(dirname "${BASH_SOURCE[0]}")/glance_stub.py" "$gid" 2>/dev/null; }
    read -r _ port <&"${STUB[0]}" || die "glance stub did not start"
    sed "s|^  url = \"\";|  url = \"http://127.0.0.1:$port\";|" "$RBDSNAP_CONF" > "$TMPD/glance.conf"
    grep -q "127.0.0.1:$port" "$TMPD/glance.conf" || die "could not point the configuration at the stub"
    export RBDSNAP_CONF="$TMPD/glance.conf"
}

[ -x "$RBDSNAP" ] || die "$RBDSNAP not built"

# A 64 MiB image with data in every object, so flatten has work to do.
mkimg() {
    rbd create --size "${2:-64M}" "$1" || return 1
    rbd bench --io-type write --io-size 4M --io-pattern seq --io-total "${2:-64M}" "$1" >/dev/null 2>&1
}
