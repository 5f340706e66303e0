# lab/lib/rbdsnapd.sh: the rbdsnapd daemon built from this tree, run against
# the lab with $LAB_DIR/rbdsnap.conf (Glance no-auth, daemon.auth "none",
# 127.0.0.1:BASE+110).  The binary comes from $RBDSNAP_BUILD_DIR or build/
# (service/rbdsnapd).  Logs go to $LAB_DIR/log/rbdsnapd.log.  Writes
# RBDSNAP_URL into the lab's env.  Sourced by lab/start and lab/stop.

_lab_rbdsnapd_bin() {
    local src b
    src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    for b in "${RBDSNAP_BUILD_DIR:-}" "$src/build"; do
        [[ -n $b && -x $b/service/rbdsnapd ]] && { echo "$b/service/rbdsnapd"; return 0; }
    done
    return 1
}

lab_rbdsnapd_running() {
    lab_pid_alive rbdsnapd && lab_port_open "$(lab_port 110)"
}

lab_rbdsnapd_start() {
    local bin port conf
    bin=$(_lab_rbdsnapd_bin) ||
        lab_die "rbdsnapd: no binary (build first, or set RBDSNAP_BUILD_DIR to the build dir)"
    port=$(lab_port 110)
    lab_rbdsnapd_stop
    lab_require_port_free "$port" rbdsnapd
    # The conf file is written at the end of lab/start; write it now so the
    # daemon finds the current Ceph and Glance settings.
    lab_write_rbdsnap_conf
    conf=$LAB_DIR/rbdsnap.conf
    "$bin" -c "$conf" --check >>"$LAB_LOG_DIR/rbdsnapd.log" 2>&1 ||
        lab_die "rbdsnapd: $conf invalid (see $LAB_LOG_DIR/rbdsnapd.log)"
    lab_spawn rbdsnapd "$LAB_LOG_DIR/rbdsnapd.log" "$bin" -c "$conf"
    if ! lab_wait_http "http://127.0.0.1:$port/v1/health" 30 rbdsnapd; then
        tail -n 20 "$LAB_LOG_DIR/rbdsnapd.log" >&2
        lab_die "rbdsnapd: not answering on 127.0.0.1:$port"
    fi
    lab_env_set RBDSNAP_URL "http://127.0.0.1:$port"
}

lab_rbdsnapd_stop() {
    # SIGTERM lets running jobs reach a safe point (daemon.shutdown_timeout).
    lab_pid_stop rbdsnapd 40
    lab_env_unset RBDSNAP_URL
}
