# tests/filesnap/lib.sh: helpers for the file-backed snapshot tests (bash).
# Builds on tests/service/lib.sh (private work dir, daemons, cleanup trap
# that deletes every tracked Glance image and RBD image, also on failure).
# shellcheck source=../service/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../service/lib.sh"

F_CLI=${RBDSNAP_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}/cli/rbdsnap
[[ -x $F_CLI ]] || t_die "no CLI binary at $F_CLI"
[[ -n ${LIBVIRT_DEFAULT_URI:-} ]] || t_die "no lab libvirt (LIBVIRT_DEFAULT_URI)"
F_FILE_DOM=${LAB_DOMAIN_FILE:-rbdsnap-lab-file}
F_NOAGENT_DOM=${LAB_DOMAIN_NOAGENT:-rbdsnap-lab-noagent}
F_RBD_DOM=${LAB_DOMAIN_RBD:-rbdsnap-lab-rbd}
F_WORK=$T_DIR/work
mkdir -p "$F_WORK"

# f_conf NAME [quiesce]: a config (free port, private journal namespace)
# whose snapshot.work_dir is the test's; prints the path.
f_conf() {
    local f
    f=$(t_conf "$1")
    sed -i -e "s|^  snap_prefix = \"\\([^\"]*\\)\";|  snap_prefix = \"\\1\";\\n  work_dir = \"$F_WORK\";|" \
        -e "s|^  quiesce = \"[a-z]*\";|  quiesce = \"${2:-optional}\";|" "$f"
    grep -q "work_dir = \"$F_WORK\"" "$f" || t_die "cannot set work_dir in $f"
    echo "$f"
}

# f_state DOM: libvirt state word of a domain ("running", "paused", ...).
f_state() { virsh domstate "$1" 2>/dev/null | head -n 1; }

# f_sampler_start DOM: sample the domain's state every ~50 ms into a file.
f_sampler_start() {
    F_SAMPLES=$T_DIR/samples.$RANDOM
    (while :; do f_state "$1"; sleep 0.05; done) >"$F_SAMPLES" 2>/dev/null &
    F_SAMPLER=$!
    T_PIDS+=("$F_SAMPLER")
}
# f_sampler_stop: prints "N samples, states: ..." and fails nothing itself.
f_sampler_stop() {
    kill "$F_SAMPLER" 2>/dev/null
    wait "$F_SAMPLER" 2>/dev/null
    sort "$F_SAMPLES" | uniq -c | tr '\n' ' '
}

# f_domain_clean DOM STATE WHAT: defined (persistent), in STATE, no block
# job on vda, no delta/state/socket file left in the work dir.
f_domain_clean() {
    local dom=$1 want=$2 what=$3 st
    st=$(f_state "$dom")
    [[ $st == "$want" ]] || t_fail "$what: domain $dom is '$st', expected '$want'"
    local info job left
    info=$(virsh dominfo "$dom" 2>&1)
    [[ $info =~ Persistent:\ *yes ]] || t_fail "$what: domain $dom is not persistent: $info"
    job=$(virsh blockjob "$dom" vda --info 2>&1 | sed '/^ *$/d')
    [[ -z $job || $job == *"No current block job"* ]] ||
        t_fail "$what: a block job is left on $dom/vda: $job"
    left=$(find "$F_WORK" -mindepth 1 2>/dev/null | tr '\n' ' ')
    [[ -z $left ]] || t_fail "$what: left in the work dir: $left"
}

# f_thawed DOM WHAT: the guest agent says the filesystems are thawed.
f_thawed() {
    local out
    out=$(virsh qemu-agent-command "$1" '{"execute":"guest-fsfreeze-status"}' 2>&1)
    [[ $out == *thawed* ]] || t_fail "$2: guest $1 not thawed: $out"
}

# f_fsck IMG WHAT: export images/IMG@snap to a temp file and e2fsck -fn it.
f_fsck() {
    local img=$1 what=$2 f=$T_DIR/export.$RANDOM.raw out
    if ! rbd export --no-progress "images/$img@snap" "$f" >/dev/null 2>&1; then
        t_fail "$what: rbd export images/$img@snap failed"
        rm -f "$f"
        return
    fi
    out=$(e2fsck -fn "$f" 2>&1) || t_fail "$what: e2fsck -fn failed: $(echo "$out" | tail -n 5)"
    rm -f "$f"
}

# f_meta IMG KEY: RBD metadata value.
f_meta() { rbd image-meta get "images/$1" "$2" 2>/dev/null; }

# f_image_gone IMG WHAT: neither a Glance record nor an RBD image.
f_image_gone() {
    local gs
    gs=$(t_glance_status "$1")
    [[ -z $gs || $gs == deleted ]] || t_fail "$2: Glance image $1 is '$gs'"
    rbd info "images/$1" >/dev/null 2>&1 && t_fail "$2: images/$1 still exists"
    return 0
}

# f_no_job_images JOB WHAT [KEEP]: no RBD image in the images pool is tagged
# with job JOB, except KEEP.
f_no_job_images() {
    local i
    for i in $(rbd ls images 2>/dev/null); do
        [[ $i == "${3:-}" ]] && continue
        [[ $(f_meta "$i" rbdsnap.job_id) == "$1" ]] && t_fail "$2: images/$i of job $1 left"
    done
    return 0
}

# f_glance_by_name NAME: ids of Glance images called NAME.
f_glance_by_name() {
    curl -s "$GLANCE_URL/v2/images?name=$1" | json '" ".join(i["id"] for i in d.get("images", []))'
}
