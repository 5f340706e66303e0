# lab/lib/libvirt.sh: a private libvirtd + virtlogd for the lab (sourced).
# shellcheck shell=bash
#
# libvirtd and virtlogd run inside their own mount namespace in which private
# directories under $RBDSNAP_LAB_DIR/libvirt/ are bind-mounted over
# /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
# /var/cache/libvirt. Nothing of the host's libvirt state is read or written,
# and several labs (one per RBDSNAP_LAB_DIR) can run side by side.
#
# Clients stay outside the namespace and connect through the private socket:
#   qemu+unix:///system?socket=$RBDSNAP_LAB_DIR/libvirt/run/libvirt-sock
# which is exported as LIBVIRT_DEFAULT_URI.
#
# QEMU runs with TCG (domains use type='qemu'), no security driver, no
# cgroups (so two labs never fight over cgroup names) and no private /dev.
#
# Every QEMU this lab starts carries "rbdsnap.lab=<lab dir>" on its kernel
# command line; lab_libvirt_stop uses that marker and libvirt's pid files to
# prove that no QEMU of this lab survives.
#
# Defines: lab_libvirt_start, lab_libvirt_stop, lab_libvirt_running,
#          lab_libvirt_uri, lab_libvirt_virsh.

# libvirt-daemon (not -system: its maintainer scripts want to start services).
LAB_PACKAGES_LIBVIRT="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils qemu-block-extra util-linux"
# Tell lab-core's package lists (lab/lib/packages.sh) what this component needs.
if declare -p LAB_PKGS_libvirt >/dev/null 2>&1; then
    # shellcheck disable=SC2206
    LAB_PKGS_libvirt+=($LAB_PACKAGES_LIBVIRT)
fi

: "${LAB_LIBVIRT_START_TIMEOUT:=60}"
: "${LAB_LIBVIRT_STOP_TIMEOUT:=20}"

_lab_libvirt_log() {
    if declare -F lab_log >/dev/null; then lab_log "libvirt: $*"; else echo "lab: libvirt: $*" >&2; fi
}

_lab_libvirt_die() {
    if declare -F lab_die >/dev/null; then lab_die "libvirt: $*"; fi
    echo "lab: libvirt: ERROR: $*" >&2
    exit 1
}

_lab_libvirt_dir() { echo "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/libvirt"; }

lab_libvirt_uri() {
    echo "qemu+unix:///system?socket=$(_lab_libvirt_dir)/run/libvirt-sock"
}

# virsh against the lab's daemon, whatever LIBVIRT_DEFAULT_URI says.
lab_libvirt_virsh() {
    virsh -q -c "$(lab_libvirt_uri)" "$@"
}

# Install what is missing: through lab-core's helper when there is one.
_lab_libvirt_packages() {
    local missing=0 p
    for p in libvirtd virtlogd virsh qemu-system-x86_64 qemu-img unshare; do
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || missing=1
    done
    [ -e /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so ] || missing=1
    [ "$missing" = 0 ] && return 0
    if declare -F lab_packages_ensure >/dev/null; then
        lab_packages_ensure libvirt
    else
        if [ ! -e /var/lib/rbdsnap-lab-apt-updated ] ; then
            apt-get update -q >/dev/null && mkdir -p /var/lib && touch /var/lib/rbdsnap-lab-apt-updated
        fi
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $LAB_PACKAGES_LIBVIRT >/dev/null ||
            _lab_libvirt_die "cannot install $LAB_PACKAGES_LIBVIRT"
    fi
}

# pid of a daemon from its pid file (inside the private /run/libvirt).
_lab_libvirt_pidfile_pid() {
    local f
    f="$(_lab_libvirt_dir)/run/$1.pid"
    [ -s "$f" ] || return 1
    tr -dc '0-9' <"$f"
}

# Is PID alive and running program NAME (guards against pid reuse)?
_lab_libvirt_pid_is() {
    local pid=$1 name=$2 exe
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    case "$exe" in */"$name"|*/"$name"" (deleted)") return 0 ;; esac
    return 1
}

lab_libvirt_running() {
    local pid
    pid=$(_lab_libvirt_pidfile_pid libvirtd) || return 1
    _lab_libvirt_pid_is "$pid" libvirtd || return 1
    [ -S "$(_lab_libvirt_dir)/run/libvirt-sock" ]
}

_lab_libvirt_write_conf() {
    local d=$1
    cat >"$d/etc/libvirtd.conf" <<'EOF'
# lab libvirtd: unix socket only, no authentication, log to a file.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
max_clients = 200
max_anonymous_clients = 200
max_workers = 20
max_client_requests = 20
keepalive_interval = 5
keepalive_count = 5
EOF
    cat >"$d/etc/virtlogd.conf" <<'EOF'
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
max_clients = 1024
EOF
    cat >"$d/etc/qemu.conf" <<'EOF'
# lab QEMU driver: TCG guests as root, nothing that needs systemd, polkit,
# cgroups or a security module.
security_driver = "none"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "logd"
set_process_name = 1
EOF
    # Nothing may autostart from the host's configuration (no default network).
    mkdir -p "$d/etc/qemu" "$d/etc/qemu/networks" "$d/etc/secrets" "$d/etc/storage" "$d/etc/nwfilter"
}

lab_libvirt_start() {
    local d t0 t1 i pid
    d=$(_lab_libvirt_dir)
    if lab_libvirt_running; then
        declare -F lab_env_set >/dev/null && lab_env_set LIBVIRT_DEFAULT_URI "$(lab_libvirt_uri)"
        export LIBVIRT_DEFAULT_URI
        LIBVIRT_DEFAULT_URI=$(lab_libvirt_uri)
        _lab_libvirt_log "already running (pid $(_lab_libvirt_pidfile_pid libvirtd))"
        return 0
    fi
    _lab_libvirt_packages
    t0=$(date +%s%N)
    mkdir -p "$d"/etc "$d"/run "$d"/lib "$d"/log "$d"/cache
    chmod 0700 "$d"
    # Leftovers of a daemon that died: stale sockets and pid files.
    rm -f "$d"/run/*.pid "$d"/run/*-sock "$d"/run/*-sock-ro "$d"/run/*-admin-sock
    _lab_libvirt_write_conf "$d"
    # qemu capabilities are probed once per lab dir; seed them from the
    # machine-wide cache so a fresh lab does not probe again.
    local capcache=/var/cache/rbdsnap-lab/libvirt-qemu-capabilities
    if [ -d "$capcache" ] && [ ! -d "$d/cache/qemu/capabilities" ]; then
        mkdir -p "$d/cache/qemu"
        cp -a "$capcache" "$d/cache/qemu/capabilities" 2>/dev/null || true
    fi

    cat >"$d/ns-start.sh" <<EOF
# Runs inside the lab's private mount namespace (written by lab_libvirt_start).
set -e
d='$d'
mount --bind "\$d/etc" /etc/libvirt
mount --bind "\$d/run" /run/libvirt
mount --bind "\$d/lib" /var/lib/libvirt
mount --bind "\$d/log" /var/log/libvirt
mount --bind "\$d/cache" /var/cache/libvirt
virtlogd -d -f /etc/libvirt/virtlogd.conf -p /run/libvirt/virtlogd.pid
exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
EOF
    mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt
    # setsid: the daemons must survive the shell that runs lab/start.
    setsid unshare -m --propagation private bash "$d/ns-start.sh" \
        >>"$d/log/daemons.out" 2>&1 </dev/null 9>&- &
    i=0
    while :; do
        if lab_libvirt_running && lab_libvirt_virsh version >/dev/null 2>&1; then
            break
        fi
        i=$((i + 1))
        if [ "$i" -gt $((LAB_LIBVIRT_START_TIMEOUT * 10)) ]; then
            tail -n 20 "$d/log/daemons.out" "$d/log/libvirtd.log" >&2 2>/dev/null
            _lab_libvirt_die "libvirtd did not answer within ${LAB_LIBVIRT_START_TIMEOUT}s (logs in $d/log)"
        fi
        sleep 0.1
    done
    t1=$(date +%s%N)
    pid=$(_lab_libvirt_pidfile_pid libvirtd)
    if declare -F lab_pid_record >/dev/null; then
        lab_pid_record libvirtd "$pid"
        lab_pid_record virtlogd "$(_lab_libvirt_pidfile_pid virtlogd)"
    fi
    export LIBVIRT_DEFAULT_URI
    LIBVIRT_DEFAULT_URI=$(lab_libvirt_uri)
    declare -F lab_env_set >/dev/null && lab_env_set LIBVIRT_DEFAULT_URI "$LIBVIRT_DEFAULT_URI"
    # Keep the probed capabilities for the next lab (best effort, atomic).
    if [ ! -d "$capcache" ]; then
        lab_libvirt_virsh capabilities >/dev/null 2>&1 || true
        if [ -d "$d/cache/qemu/capabilities" ]; then
            mkdir -p /var/cache/rbdsnap-lab
            local tmp
            tmp=$(mktemp -d /var/cache/rbdsnap-lab/.capcache.XXXXXX)
            cp -a "$d/cache/qemu/capabilities/." "$tmp/" && mv -T "$tmp" "$capcache" 2>/dev/null || rm -rf "$tmp"
        fi
    fi
    _lab_libvirt_log "libvirtd pid=$pid up in $(( (t1 - t0) / 1000000 )) ms, uri=$LIBVIRT_DEFAULT_URI"
}

# PIDs of QEMU processes that belong to this lab: libvirt's pid files, plus
# any process whose command line carries this lab's marker.
_lab_libvirt_qemu_pids() {
    local d f pid p marker cmd
    d=$(_lab_libvirt_dir)
    marker="rbdsnap.lab=${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}"
    {
        for f in "$d"/run/qemu/*.pid; do
            [ -s "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            _lab_libvirt_pid_is "$pid" qemu-system-x86_64 && echo "$pid"
        done
        for p in /proc/[0-9]*; do
            case "$(readlink "$p/exe" 2>/dev/null)" in
                */qemu-system-*) ;;
                *) continue ;;
            esac
            cmd=$(tr '\0\n' '  ' <"$p/cmdline" 2>/dev/null) || continue
            if [[ " $cmd " == *" $marker "* ]]; then
                echo "${p#/proc/}"
            fi
        done
    } | sort -u
}

_lab_libvirt_kill_wait() {
    # _lab_libvirt_kill_wait NAME PID...: TERM, wait, then KILL.
    local name=$1 i pid alive
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    for ((i = 0; i < LAB_LIBVIRT_STOP_TIMEOUT * 10; i++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    _lab_libvirt_log "$name did not stop on TERM, killing: $*"
    kill -KILL "$@" 2>/dev/null
    sleep 0.2
}

# libvirtd/virtlogd processes of this lab dir that the pid files no longer
# name: a libvirtd restarted in its own new namespace (tests/chaos) leaves the
# old namespace's virtlogd behind.  Found by the lab dir in their environment.
_lab_libvirt_strays() {
    local p
    # (two calls: pgrep refuses a name pattern longer than 15 characters)
    for p in $(pgrep -x virtlogd) $(pgrep -x libvirtd); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
            grep -Fx "RBDSNAP_LAB_DIR=$LAB_DIR" >/dev/null; then
            echo "$p"
        fi
    done
    return 0
}

lab_libvirt_stop() {
    local d dom lpid vpid qpids strays rc=0
    d=$(_lab_libvirt_dir)
    [ -d "$d" ] || return 0
    lpid=$(_lab_libvirt_pidfile_pid libvirtd) || lpid=
    vpid=$(_lab_libvirt_pidfile_pid virtlogd) || vpid=
    _lab_libvirt_pid_is "$lpid" libvirtd || lpid=
    _lab_libvirt_pid_is "$vpid" virtlogd || vpid=
    # Destroy every running domain of the private daemon first: all of them
    # are lab domains, and no QEMU must be orphaned.
    if [ -n "$lpid" ]; then
        for dom in $(lab_libvirt_virsh list --name 2>/dev/null); do
            timeout 30 virsh -q -c "$(lab_libvirt_uri)" destroy "$dom" >/dev/null 2>&1 ||
                _lab_libvirt_log "destroy $dom failed"
        done
        _lab_libvirt_kill_wait libvirtd "$lpid"
    fi
    [ -n "$vpid" ] && _lab_libvirt_kill_wait virtlogd "$vpid"
    strays=$(_lab_libvirt_strays)
    if [ -n "$strays" ]; then
        _lab_libvirt_log "stopping stray libvirtd/virtlogd of this lab: $(echo $strays)"
        # shellcheck disable=SC2086
        _lab_libvirt_kill_wait libvirt-stray $strays
    fi
    # Whatever QEMU is still there (daemon crashed, destroy failed) goes too.
    qpids=$(_lab_libvirt_qemu_pids)
    if [ -n "$qpids" ]; then
        _lab_libvirt_log "killing leftover qemu: $(echo $qpids)"
        # shellcheck disable=SC2086
        _lab_libvirt_kill_wait qemu $qpids
    fi
    qpids=$(_lab_libvirt_qemu_pids)
    if [ -n "$qpids" ]; then
        _lab_libvirt_log "ERROR: qemu still running: $(echo $qpids)"
        rc=1
    fi
    if _lab_libvirt_pid_is "$lpid" libvirtd || _lab_libvirt_pid_is "$vpid" virtlogd; then
        _lab_libvirt_log "ERROR: libvirtd/virtlogd still running"
        rc=1
    fi
    rm -f "$d"/run/*.pid "$d"/run/*-sock "$d"/run/*-sock-ro "$d"/run/*-admin-sock "$d"/run/qemu/*.pid
    [ "$rc" = 0 ] && _lab_libvirt_log "stopped"
    return "$rc"
}
