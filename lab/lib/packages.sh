# lab/lib/packages.sh: Debian 12 packages each lab component needs, and
# lab_packages_ensure COMPONENT... which installs whatever is missing
# (apt-get update at most once per run, and only if something is missing).
#
# A component file may add to its list: LAB_PKGS_libvirt+=(foo).
# Lists are complete for a fresh Debian 12 machine (no recommends).

# Build dependencies of rbdsnap itself (lab/start --install-only build).
LAB_PKGS_build=(
    cmake gcc make pkg-config git
    libcurl4-openssl-dev libjansson-dev libvirt-dev libconfig-dev
    libmicrohttpd-dev libcmocka-dev libxml2-dev
    librbd-dev librados-dev
    valgrind
)
# Tools every component's scripts use.
LAB_PKGS_base=(
    ca-certificates curl jq procps iproute2 util-linux uuid-runtime
    coreutils sed grep sqlite3
)
LAB_PKGS_ceph=(
    ceph-mon ceph-osd ceph-mgr ceph-common python3-rbd python3-rados
    librbd-dev librados-dev
)
LAB_PKGS_keystone=(
    python3-keystone python3-openstackclient python3-keystoneclient python3-bcrypt
)
LAB_PKGS_glance=(
    python3-glance python3-glance-store python3-rbd python3-rados
    python3-glanceclient
)
LAB_PKGS_glance_keystone=(
    "${LAB_PKGS_glance[@]}" python3-keystonemiddleware python3-keystoneclient
    python3-openstackclient
)
LAB_PKGS_libvirt=(
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils qemu-block-extra
)
LAB_PKGS_guest=(
    qemu-utils busybox-static qemu-guest-agent cpio e2fsprogs xz-utils zstd
)
LAB_PKGS_rbdsnapd=(
    "${LAB_PKGS_build[@]}"
)
# Fuzzing (tests/fuzz, -DRBDSNAP_FUZZ=ON): clang and libFuzzer's runtime.
LAB_PKGS_fuzz=(
    clang libclang-rt-14-dev
)
# bench/run: Nova's own RBD code and Glance client as baselines.
LAB_PKGS_bench=(
    python3-nova python3-glanceclient python3-rbd python3-rados qemu-utils
)

_lab_apt_updated=0

# lab_packages_list COMPONENT...: prints the packages (one a line, unique).
lab_packages_list() {
    local comp var
    {
        printf '%s\n' "${LAB_PKGS_base[@]}"
        for comp in "$@"; do
            var="LAB_PKGS_${comp//-/_}[@]"
            if ! declare -p "LAB_PKGS_${comp//-/_}" >/dev/null 2>&1; then
                lab_die "no package list for component '$comp'"
            fi
            printf '%s\n' "${!var}"
        done
    } | sort -u
}

# lab_packages_missing PKG...: prints those not installed.
lab_packages_missing() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)
        [[ $status == ii* ]] || echo "$p"
    done
}

# lab_packages_ensure COMPONENT...: install what these components need.
lab_packages_ensure() {
    local -a want missing
    mapfile -t want < <(lab_packages_list "$@")
    mapfile -t missing < <(lab_packages_missing "${want[@]}")
    ((${#missing[@]})) || return 0
    lab_log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages must not start services on this machine (no init system
    # here; the lab runs its own private daemons).
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    local rc=0
    if ((_lab_apt_updated == 0)); then
        apt-get update -q >&2 || rc=$?
        _lab_apt_updated=1
    fi
    if ((rc == 0)); then
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
    fi
    ((created_policy)) && rm -f "$policy"
    ((rc == 0)) || lab_die "apt-get failed (rc=$rc) installing: ${missing[*]}"
    mapfile -t missing < <(lab_packages_missing "${want[@]}")
    ((${#missing[@]} == 0)) || lab_die "still missing after install: ${missing[*]}"
}
