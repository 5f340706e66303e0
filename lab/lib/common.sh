# lab/lib/common.sh: helpers shared by lab/start, lab/stop, lab/status and
# every component file lab/lib/<comp>.sh.  Sourced, never executed.
#
# Component contract: lab/lib/<comp>.sh defines lab_<comp>_start,
# lab_<comp>_stop and lab_<comp>_running ('-' in a component name becomes
# '_').  start must be idempotent enough to be called after a failed start;
# stop must work whatever state the component is in; running returns 0 only
# when the component is up.  Every long-running process is started through
# lab_spawn (or recorded with lab_pid_record) so that lab/stop can end
# exactly the processes the lab started.
#
# Environment: RBDSNAP_LAB_DIR (default /tmp/rbdsnap-lab),
# RBDSNAP_LAB_PORT_BASE (default 16800; remembered in the lab dir).

# The order in which components start; lab/stop uses the reverse.
LAB_COMPONENTS=(ceph keystone glance glance-keystone libvirt guest rbdsnapd)

LAB_DIR=${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}
LAB_DIR=${LAB_DIR%/}
export RBDSNAP_LAB_DIR=$LAB_DIR
LAB_ENV_FILE=$LAB_DIR/env
LAB_PID_DIR=$LAB_DIR/pids
LAB_LOG_DIR=$LAB_DIR/log
# Per-component log of the setup commands (lab/start output stays short).
LAB_SETUP_LOG=$LAB_LOG_DIR/setup.log
LAB_CACHE_DIR=${RBDSNAP_LAB_CACHE_DIR:-/var/cache/rbdsnap-lab}

# Port base: explicit variable > the one remembered in the lab dir > 16800.
if [[ -n ${RBDSNAP_LAB_PORT_BASE:-} ]]; then
    LAB_PORT_BASE=$RBDSNAP_LAB_PORT_BASE
elif [[ -s $LAB_DIR/port-base ]]; then
    LAB_PORT_BASE=$(<"$LAB_DIR/port-base")
else
    LAB_PORT_BASE=16800
fi
export RBDSNAP_LAB_PORT_BASE=$LAB_PORT_BASE

lab_log() {
    printf '%s lab: %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

lab_die() {
    printf '%s lab: ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

# lab_python: Debian's interpreter (another python3 may come first on PATH).
lab_python() {
    /usr/bin/python3 "$@"
}

# lab_port OFFSET: prints BASE+OFFSET.
lab_port() {
    echo $((LAB_PORT_BASE + $1))
}

# Seconds since the epoch with milliseconds, for timings.
lab_now() {
    date +%s.%N | cut -c1-14
}

lab_elapsed() { # START
    awk -v s="$1" -v e="$(lab_now)" 'BEGIN { printf "%.1f", e - s }'
}

# lab_init_dir: create the lab dir layout; remember the port base.
lab_init_dir() {
    mkdir -p "$LAB_DIR" "$LAB_PID_DIR" "$LAB_LOG_DIR" || lab_die "cannot create $LAB_DIR"
    chmod 0755 "$LAB_DIR"
    if [[ -s $LAB_DIR/port-base && $(<"$LAB_DIR/port-base") != "$LAB_PORT_BASE" ]]; then
        if lab_any_alive; then
            lab_die "$LAB_DIR runs with port base $(<"$LAB_DIR/port-base"), not $LAB_PORT_BASE; lab/stop it first"
        fi
    fi
    echo "$LAB_PORT_BASE" >"$LAB_DIR/port-base"
    if [[ ! -e $LAB_ENV_FILE ]]; then
        (umask 077 && : >"$LAB_ENV_FILE")
    fi
    chmod 0600 "$LAB_ENV_FILE"
}

# --- processes ------------------------------------------------------------

# Start time of a process in clock ticks since boot (field 22 of stat), to
# tell a recorded process from a later one that reused its PID.
lab_proc_starttime() { # PID
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # after "pid (comm) ", field 3 is the state; starttime is field 22.
    set -- $stat
    echo "${20}"
}

# lab_pid_record NAME PID: remember PID as the lab process NAME.
lab_pid_record() {
    local name=$1 pid=$2 st
    mkdir -p "$LAB_PID_DIR"
    echo "$pid" >"$LAB_PID_DIR/$name.pid"
    if st=$(lab_proc_starttime "$pid"); then
        echo "$st" >"$LAB_PID_DIR/$name.start"
    else
        rm -f "$LAB_PID_DIR/$name.start"
    fi
}

# lab_pid_of NAME: prints the recorded PID of NAME if that process still
# runs (and is the same process); returns 1 otherwise.
lab_pid_of() {
    local name=$1 pid st rec state
    [[ -s $LAB_PID_DIR/$name.pid ]] || return 1
    pid=$(<"$LAB_PID_DIR/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[1] }' "/proc/$pid/stat" 2>/dev/null)
    [[ $state == Z || -z $state ]] && return 1
    if [[ -s $LAB_PID_DIR/$name.start ]]; then
        rec=$(<"$LAB_PID_DIR/$name.start")
        st=$(lab_proc_starttime "$pid") || return 1
        [[ $st == "$rec" ]] || return 1
    fi
    echo "$pid"
}

# lab_pid_alive NAME: 0 if the recorded process NAME runs.
lab_pid_alive() {
    lab_pid_of "$1" >/dev/null
}

# lab_any_alive: 0 if any recorded lab process of this dir runs.
lab_any_alive() {
    local f name
    for f in "$LAB_PID_DIR"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        lab_pid_alive "$name" && return 0
    done
    return 1
}

# lab_spawn NAME LOGFILE CMD...: run CMD in the background in its own
# session (stdin /dev/null, stdout+stderr appended to LOGFILE) and record
# its PID as NAME.  CMD must stay in the foreground (no self-daemonising).
lab_spawn() {
    local name=$1 logfile=$2 pid
    shift 2
    mkdir -p "$(dirname "$logfile")"
    # A background job of a non-interactive shell is not a process-group
    # leader, so setsid execs CMD in place: $! is CMD's own PID.  The
    # daemon must inherit no fd but 0-2: a lock fd (lab_lock's fd 9, the
    # env lock, a caller's "flock FILE lab/start") held by a daemon would
    # stay locked until the lab stops.
    (
        fds=(/proc/$BASHPID/fd/*)
        for fd in "${fds[@]##*/}"; do
            ((fd > 2)) && eval "exec $fd>&-"
        done 2>/dev/null
        exec setsid "$@" </dev/null >>"$logfile" 2>&1
    ) &
    pid=$!
    lab_pid_record "$name" "$pid"
    lab_log "started $name pid=$pid"
}

# lab_pid_stop NAME [TIMEOUT]: TERM the recorded process NAME (and the
# process group it leads), wait up to TIMEOUT seconds (default 10), then
# KILL.  Removes the pid file.
lab_pid_stop() {
    local name=$1 timeout=${2:-10} pid i
    if pid=$(lab_pid_of "$name"); then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < timeout * 10; i++)); do
            lab_pid_alive "$name" || break
            sleep 0.1
        done
        if lab_pid_alive "$name"; then
            lab_log "$name pid=$pid did not stop after ${timeout}s, killing it"
            kill -KILL "$pid" 2>/dev/null
            for ((i = 0; i < 50; i++)); do
                lab_pid_alive "$name" || break
                sleep 0.1
            done
        fi
        # Children left in its session/process group (e.g. worker processes).
        if [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') != "$pid" ]]; then
            pkill_group "$pid"
        fi
        lab_log "stopped $name pid=$pid"
    fi
    rm -f "$LAB_PID_DIR/$name.pid" "$LAB_PID_DIR/$name.start"
}

# Kill what is left of the process group PGID that a lab process led
# (only processes whose group is exactly that PID).
pkill_group() { # PGID
    local pgid=$1 left
    left=$(ps -eo pid=,pgid= | awk -v g="$pgid" '$2 == g { print $1 }')
    [[ -n $left ]] || return 0
    kill -TERM -- "-$pgid" 2>/dev/null
    sleep 0.5
    kill -KILL -- "-$pgid" 2>/dev/null
    return 0
}

# lab_stop_all_pids [TIMEOUT]: end every recorded process (in parallel:
# TERM all, wait, KILL the rest).
lab_stop_all_pids() {
    local timeout=${1:-15} f name pid i alive
    local -a names=() pids=()
    for f in "$LAB_PID_DIR"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        if pid=$(lab_pid_of "$name"); then
            names+=("$name")
            pids+=("$pid")
            kill -TERM "$pid" 2>/dev/null
        else
            rm -f "$LAB_PID_DIR/$name.pid" "$LAB_PID_DIR/$name.start"
        fi
    done
    ((${#names[@]})) || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        alive=0
        for name in "${names[@]}"; do
            lab_pid_alive "$name" && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for i in "${!names[@]}"; do
        name=${names[$i]}
        pid=${pids[$i]}
        if lab_pid_alive "$name"; then
            lab_log "$name pid=$pid still runs after ${timeout}s, killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        pkill_group "$pid"
        rm -f "$LAB_PID_DIR/$name.pid" "$LAB_PID_DIR/$name.start"
        lab_log "stopped $name pid=$pid"
    done
}

# --- waiting --------------------------------------------------------------

# lab_port_open PORT: 0 if something accepts connections on 127.0.0.1:PORT.
lab_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# lab_wait_port PORT TIMEOUT: wait until 127.0.0.1:PORT accepts connections.
lab_wait_port() {
    local port=$1 timeout=${2:-30} i
    for ((i = 0; i < timeout * 10; i++)); do
        lab_port_open "$port" && return 0
        sleep 0.1
    done
    return 1
}

# lab_wait_http URL TIMEOUT [PIDNAME]: wait until URL answers (any HTTP
# status < 500).  Gives up early if the process PIDNAME died.
lab_wait_http() {
    local url=$1 timeout=${2:-30} pidname=${3:-} i code
    for ((i = 0; i < timeout * 10; i++)); do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)
        if [[ $code =~ ^[1-4][0-9][0-9]$ ]]; then
            return 0
        fi
        if [[ -n $pidname ]] && ! lab_pid_alive "$pidname"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# lab_port_free PORT: die if PORT is already taken (by someone else).
lab_require_port_free() { # PORT WHAT
    if lab_port_open "$1"; then
        lab_die "port $1 ($2) is already in use on 127.0.0.1; choose another RBDSNAP_LAB_PORT_BASE"
    fi
}

# lab_run LOGNAME CMD...: run a setup command with its output going to
# $LAB_LOG_DIR/LOGNAME.log; on failure, show the tail and return its status.
lab_run() {
    local logname=$1 rc=0
    shift
    mkdir -p "$LAB_LOG_DIR"
    echo "+ $*" >>"$LAB_LOG_DIR/$logname.log"
    "$@" >>"$LAB_LOG_DIR/$logname.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        lab_log "command failed (rc=$rc): $1 ... (see $LAB_LOG_DIR/$logname.log)"
        tail -n 15 "$LAB_LOG_DIR/$logname.log" | sed 's/^/    /' >&2
    fi
    return $rc
}

# --- env file -------------------------------------------------------------

# Concurrent components (lab/start runs independent ones in parallel)
# update the env file under a lock (fd 8).
_lab_env_edit() { # KEY [VALUE]: drop KEY, then append it if VALUE given
    local key=$1 tmp quoted
    mkdir -p "$LAB_DIR"
    {
        flock -w 60 8 || lab_log "WARNING: env lock not taken"
        tmp=$(mktemp "$LAB_DIR/.env.XXXXXX")
        chmod 0600 "$tmp"
        if [[ -e $LAB_ENV_FILE ]]; then
            grep -v -E "^export $key=" "$LAB_ENV_FILE" >"$tmp" || true
        fi
        if (($# > 1)); then
            printf -v quoted '%q' "$2"
            printf 'export %s=%s\n' "$key" "$quoted" >>"$tmp"
        fi
        mv -f "$tmp" "$LAB_ENV_FILE"
    } 8>>"$LAB_DIR/.envlock"
}

# lab_env_set KEY VALUE: write/replace "export KEY=VALUE" (shell-quoted)
# in $LAB_DIR/env (mode 0600), and export it here too.
lab_env_set() {
    [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || lab_die "lab_env_set: bad name '$1'"
    _lab_env_edit "$1" "$2"
    export "$1=$2"
}

# lab_env_unset KEY: drop KEY from the env file.
lab_env_unset() {
    [[ -e $LAB_ENV_FILE ]] || return 0
    _lab_env_edit "$1"
}

# lab_env_get KEY: prints KEY's value from the env file (empty if unset).
lab_env_get() {
    [[ -e $LAB_ENV_FILE ]] || return 0
    (
        set +u
        unset "$1"
        # shellcheck disable=SC1090
        source "$LAB_ENV_FILE" >/dev/null 2>&1
        printf '%s' "${!1-}"
    )
}

# lab_secret NAME: prints a random secret stored under
# $LAB_DIR/secrets/NAME (mode 0600), creating it once per lab dir.
lab_secret() {
    local f=$LAB_DIR/secrets/$1 tmp
    if [[ ! -s $f ]]; then
        mkdir -p "$LAB_DIR/secrets"
        chmod 0700 "$LAB_DIR/secrets"
        tmp=$(mktemp "$LAB_DIR/secrets/.new.XXXXXX")
        head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$tmp"
        # First writer wins when components race.
        ln "$tmp" "$f" 2>/dev/null
        rm -f "$tmp"
    fi
    cat "$f"
}

# --- rbdsnap configuration files ------------------------------------------

# Quote a string for libconfig.
lab_conf_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# lab_write_rbdsnap_conf: (re)write $LAB_DIR/rbdsnap.conf (Glance no-auth)
# and $LAB_DIR/rbdsnap-keystone.conf (Glance behind Keystone) from the
# values in the env file.  Called at the end of every lab/start and by any
# component that changes a value the files contain.
lab_write_rbdsnap_conf() {
    local ceph_conf ceph_id keyring glance_url glance_ks_url auth_url
    local os_user os_pass os_project os_udom os_pdom os_region libvirt_uri
    local daemon_port f
    ceph_conf=$(lab_env_get CEPH_CONF)
    ceph_id=$(lab_env_get CEPH_ID)
    keyring=$(lab_env_get CEPH_KEYRING)
    glance_url=$(lab_env_get GLANCE_URL)
    glance_ks_url=$(lab_env_get GLANCE_KS_URL)
    auth_url=$(lab_env_get OS_AUTH_URL)
    os_user=$(lab_env_get OS_USERNAME)
    os_pass=$(lab_env_get OS_PASSWORD)
    os_project=$(lab_env_get OS_PROJECT_NAME)
    os_udom=$(lab_env_get OS_USER_DOMAIN_NAME)
    os_pdom=$(lab_env_get OS_PROJECT_DOMAIN_NAME)
    os_region=$(lab_env_get OS_REGION_NAME)
    libvirt_uri=$(lab_env_get LIBVIRT_DEFAULT_URI)
    daemon_port=$(lab_port 110)
    : "${ceph_id:=admin}" "${os_udom:=Default}" "${os_pdom:=Default}"
    # The lab's libvirt only while it runs (else the usual system URI).
    if declare -F lab_libvirt_running >/dev/null && ! lab_libvirt_running 2>/dev/null; then
        libvirt_uri=""
    fi
    [[ -n $libvirt_uri ]] || libvirt_uri="qemu:///system"

    _lab_conf_common() { # GLANCE_BLOCK
        cat <<EOF
# Generated by lab/start for the lab in $LAB_DIR; rewritten on every start.
log_level = "info";
failpoints = "";
ceph = {
  conf = $(lab_conf_str "$ceph_conf");
  id = $(lab_conf_str "$ceph_id");
  keyring = $(lab_conf_str "$keyring");
  key_file = "";
  mount_timeout = 30;
  mon_op_timeout = 30;
  osd_op_timeout = 60;
};
snapshot = {
  source_pool = "vms";
  dest_pool = "images";
  flatten = "no";
  clone_format = "auto";
  quiesce = "optional";
  quiesce_timeout = 10;
  max_freeze = 30;
  snap_prefix = "rbdsnap-";
};
$1
libvirt = {
  uri = $(lab_conf_str "$libvirt_uri");
};
daemon = {
  listen = "127.0.0.1";
  port = $daemon_port;
  unix_socket = "";
  workers = 4;
  queue_limit = 200;
  max_body = 65536;
  auth = "none";
  required_role = "admin";
};
journal = {
  pool = "images";
  namespace = "rbdsnap";
  lease_seconds = 30;
};
gc = {
  enabled = true;
  interval = 600;
  jitter = 60;
  max_items = 100;
  max_seconds = 60;
  grace = 3600;
};
EOF
    }

    f=$LAB_DIR/rbdsnap.conf
    (umask 077 && _lab_conf_common "glance = {
  url = $(lab_conf_str "$glance_url");
  auth = \"none\";
  auth_url = \"\";
  username = \"\";
  password = \"\";
  user_domain_name = \"Default\";
  project_name = \"\";
  project_domain_name = \"Default\";
  application_credential_id = \"\";
  application_credential_secret = \"\";
  interface = \"public\";
  region = \"\";
  ca_file = \"\";
  insecure = false;
  connect_timeout = 10;
  timeout = 300;
  retries = 3;
};" >"$f.tmp") && mv -f "$f.tmp" "$f"

    f=$LAB_DIR/rbdsnap-keystone.conf
    (umask 077 && _lab_conf_common "glance = {
  url = $(lab_conf_str "$glance_ks_url");
  auth = \"password\";
  auth_url = $(lab_conf_str "$auth_url");
  username = $(lab_conf_str "$os_user");
  password = $(lab_conf_str "$os_pass");
  user_domain_name = $(lab_conf_str "$os_udom");
  project_name = $(lab_conf_str "$os_project");
  project_domain_name = $(lab_conf_str "$os_pdom");
  application_credential_id = \"\";
  application_credential_secret = \"\";
  interface = \"public\";
  region = $(lab_conf_str "$os_region");
  ca_file = \"\";
  insecure = false;
  connect_timeout = 10;
  timeout = 300;
  retries = 3;
};" | sed 's/^  auth = "none";$/  auth = "keystone";/' >"$f.tmp") && mv -f "$f.tmp" "$f"
    unset -f _lab_conf_common

    lab_env_set RBDSNAP_CONF "$LAB_DIR/rbdsnap.conf"
    lab_env_set RBDSNAP_CONF_KEYSTONE "$LAB_DIR/rbdsnap-keystone.conf"
}

# --- components -----------------------------------------------------------

# Dependencies (direct) of each component.
declare -A LAB_DEPS=(
    [ceph]=""
    [keystone]=""
    [glance]="ceph"
    [glance-keystone]="ceph keystone"
    [libvirt]=""
    [guest]="libvirt ceph"
    [rbdsnapd]="ceph glance"
)

# lab_source_components LABSRC: source every lab/lib/<comp>.sh that exists
# (glance.sh also provides glance-keystone).
lab_source_components() {
    local src=$1 c f
    for c in "${LAB_COMPONENTS[@]}"; do
        f=$src/lib/$c.sh
        # shellcheck disable=SC1090
        [[ -f $f ]] && source "$f"
    done
    return 0
}

# lab_available COMP: 0 if the component's functions are defined.
lab_available() {
    local fn=${1//-/_}
    declare -F "lab_${fn}_start" >/dev/null &&
        declare -F "lab_${fn}_stop" >/dev/null &&
        declare -F "lab_${fn}_running" >/dev/null
}

# lab_resolve COMP...: prints the components to start (with their
# dependencies) in start order; 'all' = every available component.
lab_resolve() {
    local -A want=()
    local c d changed=1
    for c in "$@"; do
        if [[ $c == all ]]; then
            for d in "${LAB_COMPONENTS[@]}"; do
                lab_available "$d" && want[$d]=1
            done
        elif [[ -v LAB_DEPS[$c] ]]; then
            want[$c]=1
        else
            lab_log "ERROR: unknown component '$c' (known: ${LAB_COMPONENTS[*]} all)"
            return 1
        fi
    done
    while ((changed)); do
        changed=0
        for c in "${!want[@]}"; do
            for d in ${LAB_DEPS[$c]}; do
                if [[ ! -v want[$d] ]]; then
                    want[$d]=1
                    changed=1
                fi
            done
        done
    done
    for c in "${LAB_COMPONENTS[@]}"; do
        [[ -v want[$c] ]] || continue
        if ! lab_available "$c"; then
            lab_log "ERROR: component '$c' is not available (lab/lib/${c%%-*}.sh missing or incomplete)"
            return 1
        fi
        echo "$c"
    done
}

# lab_level COMP: 0 for a component without dependencies, else 1 + the
# highest level of its dependencies.  lab/start starts one level at a
# time, the components of a level in parallel.
lab_level() {
    local d l max=-1
    for d in ${LAB_DEPS[$1]}; do
        l=$(lab_level "$d")
        ((l > max)) && max=$l
    done
    echo $((max + 1))
}

# lab_lock [TIMEOUT [soft]]: serialise lab/start and lab/stop on one lab
# dir (held until the calling script exits).  With "soft", go on without
# the lock after TIMEOUT (lab/stop must always be able to stop).
lab_lock() {
    local timeout=${1:-900} soft=${2:-}
    mkdir -p "$LAB_DIR"
    exec 9>>"$LAB_DIR/.lock"
    if ! flock -w "$timeout" 9; then
        [[ $soft == soft ]] || lab_die "could not lock $LAB_DIR/.lock within $timeout s"
        lab_log "WARNING: $LAB_DIR/.lock still held after $timeout s; going on without it"
    fi
}
