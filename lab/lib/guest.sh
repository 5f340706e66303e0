# lab/lib/guest.sh: the lab's three test guests (sourced).
# shellcheck shell=bash
#
# All three boot Debian's kernel directly (uncompressed vmlinux, PVH) with a
# busybox initramfs built by lab/guest/build-image (cached machine-wide under
# /var/cache/rbdsnap-lab/guest/). The guest mounts /dev/vda at /data and
# /dev/vdb (if any) at /eph0, runs qemu-guest-agent on the virtio-serial port
# org.qemu.guest_agent.0 when there is one, and with rbdsnap.writer=1 keeps
# writing to its disks (lab/guest/rootfs/usr/local/bin/writer).
#
#   rbdsnap-lab-rbd      root disk RBD vms/<uuid>_disk (1 GiB ext4, Nova's
#                        naming with the domain's UUID), ephemeral disk
#                        vms/<uuid>_disk.eph0 (128 MiB ext4), cephx through a
#                        libvirt secret, guest agent
#   rbdsnap-lab-file     qcow2 overlay (1 GiB) on a raw ext4 base, guest agent
#   rbdsnap-lab-noagent  qcow2 overlay on the same base, no agent channel
#
# Disk files live in $RBDSNAP_LAB_DIR/guest/; the domain UUID and the
# secret's UUID are kept there too, so a restart finds the same instance.
#
# Defines: lab_guest_start, lab_guest_stop, lab_guest_running,
#          lab_guest_agent_ping DOMAIN.
# Tunables: LAB_GUEST_MEMORY_MIB (160), LAB_GUEST_TB_CACHE_MIB (64, QEMU's
#           TCG translation cache), LAB_GUEST_WRITER (1),
#           LAB_GUEST_WRITER_MS (100), LAB_GUEST_BOOT_TIMEOUT (180 s).

LAB_PACKAGES_GUEST="busybox-static qemu-guest-agent qemu-utils cpio e2fsprogs xz-utils ceph-common uuid-runtime"
if declare -p LAB_PKGS_guest >/dev/null 2>&1; then
    # shellcheck disable=SC2206
    LAB_PKGS_guest+=($LAB_PACKAGES_GUEST)
fi

LAB_DOMAIN_RBD_NAME=rbdsnap-lab-rbd
LAB_DOMAIN_FILE_NAME=rbdsnap-lab-file
LAB_DOMAIN_NOAGENT_NAME=rbdsnap-lab-noagent

: "${LAB_GUEST_MEMORY_MIB:=160}"
: "${LAB_GUEST_TB_CACHE_MIB:=64}"
: "${LAB_GUEST_WRITER:=1}"
: "${LAB_GUEST_WRITER_MS:=100}"
: "${LAB_GUEST_BOOT_TIMEOUT:=180}"

_LAB_GUEST_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../guest" && pwd)

_lab_guest_log() {
    if declare -F lab_log >/dev/null; then lab_log "guest: $*"; else echo "lab: guest: $*" >&2; fi
}

_lab_guest_die() {
    if declare -F lab_die >/dev/null; then lab_die "guest: $*"; fi
    echo "lab: guest: ERROR: $*" >&2
    exit 1
}

_lab_guest_dir() { echo "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/guest"; }

_lab_guest_virsh() {
    virsh -q -c "$(lab_libvirt_uri)" "$@"
}

_lab_guest_ms() { date +%s%3N; }

# A value from the environment, else from the lab's env file.
_lab_guest_env() {
    local v=${!1:-}
    if [ -z "$v" ] && [ -r "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/env" ]; then
        v=$(
            set +u
            # shellcheck disable=SC1090
            . "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/env" >/dev/null 2>&1
            printf '%s' "${!1:-}"
        )
    fi
    printf '%s' "$v"
}

_lab_guest_rbd() {
    # A sick cluster must not hang lab/start.
    timeout 120 rbd -c "$_lab_guest_ceph_conf" --keyring "$_lab_guest_ceph_keyring" --id "$_lab_guest_ceph_id" \
        --rados-mon-op-timeout 30 --rados-osd-op-timeout 60 "$@"
}

# Fill a template: _lab_guest_fill FILE KEY=VALUE...
_lab_guest_fill() {
    local text kv
    text=$(<"$_LAB_GUEST_SRC/$1")
    shift
    for kv in "$@"; do
        text=${text//@${kv%%=*}@/"${kv#*=}"}
    done
    printf '%s\n' "$text"
}

_lab_guest_packages() {
    local missing=0 p
    for p in /bin/busybox /usr/sbin/qemu-ga /usr/bin/qemu-img /usr/bin/cpio /sbin/mkfs.ext4 /usr/bin/rbd /usr/bin/uuidgen; do
        [ -x "$p" ] || missing=1
    done
    [ "$missing" = 0 ] && return 0
    if declare -F lab_packages_ensure >/dev/null; then
        lab_packages_ensure guest
    else
        [ -e /var/lib/rbdsnap-lab-apt-updated ] || { apt-get update -q >/dev/null && touch /var/lib/rbdsnap-lab-apt-updated; }
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $LAB_PACKAGES_GUEST >/dev/null ||
            _lab_guest_die "cannot install $LAB_PACKAGES_GUEST"
    fi
}

# A persistent UUID kept in FILE.
_lab_guest_uuid() {
    local f=$1
    if [ ! -s "$f" ]; then
        uuidgen -r >"$f.tmp" && mv "$f.tmp" "$f"
    fi
    tr -dc '0-9a-f-' <"$f"
}

# Make an ext4 image file: _lab_guest_mkfs FILE SIZE LABEL
_lab_guest_mkfs() {
    local file=$1 size=$2 label=$3 seed
    seed=$(mktemp -d "$(_lab_guest_dir)/.seed.XXXXXX")
    printf 'rbdsnap lab disk %s, made %s\n' "$label" "$(date -u +%FT%TZ)" >"$seed/README"
    rm -f "$file"
    truncate -s "$size" "$file"
    mkfs.ext4 -q -F -L "$label" -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 \
        -d "$seed" "$file" >/dev/null 2>&1
    local rc=$?
    rm -rf "$seed"
    return $rc
}

# The cephx secret in libvirt (usage ceph), value from ceph auth get-key,
# which goes through a 0600 file that is removed at once and is never printed.
_lab_guest_secret() {
    local d=$1 uuid usage keyfile xml rc=0
    uuid=$(_lab_guest_uuid "$d/ceph-secret.uuid")
    usage="rbdsnap-lab client.$_lab_guest_ceph_id secret"
    if ! _lab_guest_virsh secret-dumpxml "$uuid" >/dev/null 2>&1; then
        xml=$(mktemp "$d/.secret.XXXXXX")
        _lab_guest_fill secret-ceph.xml.in "UUID=$uuid" "USAGE=$usage" \
            "CEPH_USER=$_lab_guest_ceph_id" >"$xml"
        _lab_guest_virsh secret-define "$xml" >/dev/null || rc=1
        rm -f "$xml"
        [ "$rc" = 0 ] || _lab_guest_die "cannot define the libvirt ceph secret"
    fi
    keyfile=$(umask 077 && mktemp "$d/.key.XXXXXX")
    if timeout 60 ceph -c "$_lab_guest_ceph_conf" --keyring "$_lab_guest_ceph_keyring" --id "$_lab_guest_ceph_id" \
        auth get-key "client.$_lab_guest_ceph_id" -o "$keyfile" >/dev/null 2>&1 && [ -s "$keyfile" ]; then
        # The value is the base64 key as ceph prints it (no --plain).
        _lab_guest_virsh secret-set-value "$uuid" --file "$keyfile" >/dev/null 2>&1 || rc=1
    else
        rc=1
    fi
    rm -f "$keyfile"
    [ "$rc" = 0 ] || _lab_guest_die "cannot set the libvirt ceph secret's value"
    echo "$uuid"
}

# RBD image POOL/NAME with an ext4 of SIZE, made unless it exists.
_lab_guest_rbd_disk() {
    local spec=$1 size=$2 label=$3 d tmp
    if _lab_guest_rbd info "$spec" >/dev/null 2>&1; then
        return 0
    fi
    d=$(_lab_guest_dir)
    tmp="$d/.import-$label.raw"
    _lab_guest_mkfs "$tmp" "$size" "$label" || { rm -f "$tmp"; _lab_guest_die "mkfs.ext4 for $spec failed"; }
    if ! _lab_guest_rbd import --no-progress "$tmp" "$spec" >/dev/null 2>&1; then
        rm -f "$tmp"
        _lab_guest_die "rbd import $spec failed"
    fi
    rm -f "$tmp"
    _lab_guest_log "created rbd image $spec ($size ext4)"
}

_lab_guest_cmdline() {
    local name=$1 writer=$2
    # Quiet and quick under TCG; the marker rbdsnap.lab= lets lab/stop find
    # every QEMU of this lab.
    printf '%s' "console=ttyS0 quiet loglevel=4 panic=0 mitigations=off tsc=reliable no_timer_check" \
        " i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd cryptomgr.notests random.trust_cpu=on" \
        " 8250.nr_uarts=1 nowatchdog audit=0" \
        " rbdsnap.name=$name rbdsnap.writer=$writer rbdsnap.writer_ms=$LAB_GUEST_WRITER_MS" \
        " rbdsnap.lab=${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}"
}

# Define (or redefine, when not running) and start a domain.
# _lab_guest_define NAME UUID DISKS_XML CHANNEL_XML
_lab_guest_define() {
    local name=$1 uuid=$2 disks=$3 channel=$4 d xml state
    d=$(_lab_guest_dir)
    state=$(_lab_guest_virsh domstate "$name" 2>/dev/null | head -n1)
    case "$state" in
        running | paused | "in shutdown") return 0 ;;
    esac
    xml="$d/$name.xml"
    _lab_guest_fill domain.xml.in "NAME=$name" "UUID=$uuid" "LAB_DIR=${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}" \
        "MEMORY_MIB=$LAB_GUEST_MEMORY_MIB" "TB_CACHE_MIB=$LAB_GUEST_TB_CACHE_MIB" "KERNEL=$_lab_guest_kernel" "INITRD=$_lab_guest_initrd" \
        "CMDLINE=$(_lab_guest_cmdline "$name" "$LAB_GUEST_WRITER")" \
        "DISKS=$disks" "CHANNEL=$channel" "CONSOLE_LOG=$d/$name.console.log" >"$xml"
    _lab_guest_virsh define "$xml" >/dev/null || _lab_guest_die "cannot define $name (see $xml)"
}

_lab_guest_boot() {
    local name=$1 state
    state=$(_lab_guest_virsh domstate "$name" 2>/dev/null | head -n1)
    case "$state" in
        running) return 0 ;;
        paused) _lab_guest_virsh resume "$name" >/dev/null || _lab_guest_die "cannot resume $name" ;;
        *)
            # A fresh console log per boot (QEMU appends, so that a managed
            # save + restore keeps the boot messages).
            : >"$(_lab_guest_dir)/$name.console.log"
            if ! _lab_guest_virsh start "$name" >/dev/null; then
                # A managed-save image that no longer fits the definition.
                _lab_guest_virsh managedsave-remove "$name" >/dev/null 2>&1 &&
                    _lab_guest_virsh start "$name" >/dev/null ||
                    _lab_guest_die "cannot start $name"
            fi
            ;;
    esac
}

# 0 if the guest agent of DOMAIN answers guest-ping.
lab_guest_agent_ping() {
    _lab_guest_virsh qemu-agent-command --timeout 5 "$1" '{"execute":"guest-ping"}' >/dev/null 2>&1
}

_lab_guest_qemu_pid() {
    local f
    f="$(_lab_libvirt_dir)/run/qemu/$1.pid"
    [ -s "$f" ] && tr -dc '0-9' <"$f"
}

_lab_guest_ceph_vars() {
    _lab_guest_ceph_conf=$(_lab_guest_env CEPH_CONF)
    _lab_guest_ceph_keyring=$(_lab_guest_env CEPH_KEYRING)
    _lab_guest_ceph_id=$(_lab_guest_env CEPH_ID)
    : "${_lab_guest_ceph_id:=admin}"
}

# 0 if the RBD guest's root disk exists in the (current) cluster: a Ceph
# that was made anew under a running guest leaves that guest without disks.
_lab_guest_rbd_disk_present() {
    local uuid f
    f="$(_lab_guest_dir)/$LAB_DOMAIN_RBD_NAME.uuid"
    [ -s "$f" ] || return 1
    uuid=$(tr -dc '0-9a-f-' <"$f")
    _lab_guest_ceph_vars
    [ -n "$_lab_guest_ceph_conf" ] || return 1
    _lab_guest_rbd info "vms/${uuid}_disk" >/dev/null 2>&1
}

lab_guest_running() {
    local dom
    lab_libvirt_running || return 1
    for dom in $LAB_DOMAIN_RBD_NAME $LAB_DOMAIN_FILE_NAME $LAB_DOMAIN_NOAGENT_NAME; do
        [ "$(_lab_guest_virsh domstate "$dom" 2>/dev/null | head -n1)" = running ] || return 1
    done
    for dom in $LAB_DOMAIN_RBD_NAME $LAB_DOMAIN_FILE_NAME; do
        lab_guest_agent_ping "$dom" || return 1
    done
    _lab_guest_rbd_disk_present
}

lab_guest_start() {
    local d img rbd_uuid file_uuid noagent_uuid secret_uuid disks channel base overlay noagent_overlay
    local mon_host mon_port pool=vms t0 dom i pending pid rbd_state
    lab_libvirt_running || _lab_guest_die "libvirt is not running (lab/start libvirt first)"
    _lab_guest_packages
    _lab_guest_ceph_vars
    mon_host=$(_lab_guest_env CEPH_MON_HOST)
    mon_port=$(_lab_guest_env CEPH_MON_PORT)
    : "${mon_host:=127.0.0.1}"
    [ -n "$_lab_guest_ceph_conf" ] && [ -n "$mon_port" ] ||
        _lab_guest_die "Ceph is not set up (CEPH_CONF/CEPH_MON_PORT unknown; lab/start ceph first)"

    d=$(_lab_guest_dir)
    mkdir -p "$d"
    t0=$(_lab_guest_ms)
    img=$("$_LAB_GUEST_SRC/build-image") || _lab_guest_die "cannot build the guest image"
    if [ -e "$img/vmlinux" ]; then _lab_guest_kernel=$img/vmlinux; else _lab_guest_kernel=$img/vmlinuz; fi
    _lab_guest_initrd=$img/initramfs.cpio

    # --- rbdsnap-lab-rbd -------------------------------------------------
    rbd_uuid=$(_lab_guest_uuid "$d/$LAB_DOMAIN_RBD_NAME.uuid")
    secret_uuid=$(_lab_guest_secret "$d") || _lab_guest_die "no libvirt secret for Ceph"
    case "$(_lab_guest_virsh domstate $LAB_DOMAIN_RBD_NAME 2>/dev/null | head -n1)" in
        running | paused) rbd_state=up ;;
        *) rbd_state=down ;;
    esac
    if [ "$rbd_state" = up ] && ! _lab_guest_rbd_disk_present; then
        # Its cluster went away under it (Ceph made anew): start it afresh.
        _lab_guest_log "$LAB_DOMAIN_RBD_NAME runs without its RBD disk; restarting it"
        _lab_guest_virsh destroy $LAB_DOMAIN_RBD_NAME >/dev/null 2>&1
    fi
    _lab_guest_rbd_disk "$pool/${rbd_uuid}_disk" 1G root
    _lab_guest_rbd_disk "$pool/${rbd_uuid}_disk.eph0" 128M eph0
    disks=$(
        _lab_guest_fill disk-rbd.xml.in "CEPH_USER=$_lab_guest_ceph_id" "SECRET_UUID=$secret_uuid" \
            "POOL=$pool" "IMAGE=${rbd_uuid}_disk" "MON_HOST=$mon_host" "MON_PORT=$mon_port" "DEV=vda"
        _lab_guest_fill disk-rbd.xml.in "CEPH_USER=$_lab_guest_ceph_id" "SECRET_UUID=$secret_uuid" \
            "POOL=$pool" "IMAGE=${rbd_uuid}_disk.eph0" "MON_HOST=$mon_host" "MON_PORT=$mon_port" "DEV=vdb"
    )
    channel=$(_lab_guest_fill channel-agent.xml.in)
    _lab_guest_define $LAB_DOMAIN_RBD_NAME "$rbd_uuid" "$disks" "$channel"

    # --- rbdsnap-lab-file and rbdsnap-lab-noagent ---------------------------
    base=$d/file-base.raw
    overlay=$d/$LAB_DOMAIN_FILE_NAME.qcow2
    noagent_overlay=$d/$LAB_DOMAIN_NOAGENT_NAME.qcow2
    if [ ! -s "$base" ]; then
        _lab_guest_mkfs "$base.tmp" 1G base && mv "$base.tmp" "$base" ||
            _lab_guest_die "cannot make $base"
        rm -f "$overlay" "$noagent_overlay"
    fi
    for f in "$overlay" "$noagent_overlay"; do
        if [ ! -s "$f" ]; then
            qemu-img create -q -f qcow2 -F raw -b "$base" "$f" 1G ||
                _lab_guest_die "cannot create $f"
        fi
    done
    file_uuid=$(_lab_guest_uuid "$d/$LAB_DOMAIN_FILE_NAME.uuid")
    noagent_uuid=$(_lab_guest_uuid "$d/$LAB_DOMAIN_NOAGENT_NAME.uuid")
    _lab_guest_define $LAB_DOMAIN_FILE_NAME "$file_uuid" \
        "$(_lab_guest_fill disk-file.xml.in "FILE=$overlay" "DEV=vda")" "$channel"
    _lab_guest_define $LAB_DOMAIN_NOAGENT_NAME "$noagent_uuid" \
        "$(_lab_guest_fill disk-file.xml.in "FILE=$noagent_overlay" "DEV=vda")" ""

    lab_env_set LIBVIRT_DEFAULT_URI "$(lab_libvirt_uri)"
    lab_env_set LAB_DOMAIN_RBD $LAB_DOMAIN_RBD_NAME
    lab_env_set LAB_DOMAIN_FILE $LAB_DOMAIN_FILE_NAME
    lab_env_set LAB_DOMAIN_NOAGENT $LAB_DOMAIN_NOAGENT_NAME
    lab_env_set LAB_RBD_INSTANCE_UUID "$rbd_uuid"
    lab_env_set LAB_FILE_DISK "$overlay"
    lab_env_set LAB_FILE_BACKING "$base"
    lab_env_set LAB_NOAGENT_DISK "$noagent_overlay"
    _lab_guest_log "disks ready after $(( $(_lab_guest_ms) - t0 )) ms"

    # --- boot and wait for the agents ---------------------------------------
    local -A booted=()
    for dom in $LAB_DOMAIN_RBD_NAME $LAB_DOMAIN_FILE_NAME $LAB_DOMAIN_NOAGENT_NAME; do
        _lab_guest_boot "$dom"
        booted[$dom]=$(_lab_guest_ms)
        pid=$(_lab_guest_qemu_pid "$dom")
        [ -n "$pid" ] && declare -F lab_pid_record >/dev/null && lab_pid_record "qemu-$dom" "$pid"
    done
    pending="$LAB_DOMAIN_RBD_NAME $LAB_DOMAIN_FILE_NAME"
    for ((i = 0; i < LAB_GUEST_BOOT_TIMEOUT * 2; i++)); do
        local left=""
        for dom in $pending; do
            if lab_guest_agent_ping "$dom"; then
                _lab_guest_log "$dom: agent answers guest-ping $(( $(_lab_guest_ms) - booted[$dom] )) ms after start"
            else
                [ "$(_lab_guest_virsh domstate "$dom" 2>/dev/null | head -n1)" = running ] ||
                    _lab_guest_die "$dom stopped while booting (console: $d/$dom.console.log)"
                left="$left $dom"
            fi
        done
        pending=$left
        [ -z "$pending" ] && break
        sleep 0.5
    done
    [ -z "$pending" ] ||
        _lab_guest_die "no guest-ping from$pending within ${LAB_GUEST_BOOT_TIMEOUT}s (console logs in $d)"
    _lab_guest_log "guests ready after $(( $(_lab_guest_ms) - t0 )) ms"
}

lab_guest_stop() {
    local dom
    lab_libvirt_running || return 0
    for dom in $LAB_DOMAIN_RBD_NAME $LAB_DOMAIN_FILE_NAME $LAB_DOMAIN_NOAGENT_NAME; do
        case "$(_lab_guest_virsh domstate "$dom" 2>/dev/null | head -n1)" in
            running | paused | "in shutdown" | blocked | pmsuspended)
                timeout 30 virsh -q -c "$(lab_libvirt_uri)" destroy "$dom" >/dev/null 2>&1 ||
                    _lab_guest_log "destroy $dom failed"
                ;;
        esac
        rm -f "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/pids/qemu-$dom.pid" "${RBDSNAP_LAB_DIR:-/tmp/rbdsnap-lab}/pids/qemu-$dom.start"
    done
    return 0
}
