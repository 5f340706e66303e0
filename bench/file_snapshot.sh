#!/bin/bash
# bench/file_snapshot.sh [ROUNDS]: file-backed snapshot of a 1 GiB disk
# (about 300 MiB allocated: 250 MiB in a raw base, 50 MiB in the qcow2
# overlay) of a running throw-away domain, two ways in one run:
#
#   rbdsnap   `rbdsnap snapshot --domain D --mode live`: block copy into a
#             delta, `qemu-img convert` straight into images/<id> (sparse),
#             snap + protect, Glance location;
#   nova      what Nova's libvirt driver does: the same block copy into a
#             delta, `qemu-img convert` to a local raw file, then Glance
#             POST /v2/images and PUT /file of that file (curl -T).
#
# Prints both wall-clock times per round, the medians and the ratio.  Needs
# the lab (ceph glance libvirt): source $RBDSNAP_LAB_DIR/env first, and
# RBDSNAP_BUILD_DIR (default ./build) for the CLI.  Everything it creates
# (domain, files, Glance images) is removed at exit.
set -uo pipefail
rounds=${1:-1}
src=$(cd "$(dirname "$0")/.." && pwd)
cli=${RBDSNAP_BUILD_DIR:-$src/build}/cli/rbdsnap
[[ -x $cli ]] || { echo "no $cli (set RBDSNAP_BUILD_DIR)" >&2; exit 2; }
[[ -n ${GLANCE_URL:-} && -n ${LIBVIRT_DEFAULT_URI:-} && -n ${RBDSNAP_CONF:-} ]] ||
    { echo "source the lab's env first" >&2; exit 2; }
rand=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
dir=$(mktemp -d "/var/tmp/rbdsnap-bench-file.XXXXXX")
dom=rbdsnap-bench-$rand
ids=$dir/images      # Glance image ids created (the runs are subshells)

cleanup() {
    virsh destroy "$dom" >/dev/null 2>&1
    local i
    for i in $(cat "$ids" 2>/dev/null); do
        curl -s -o /dev/null -X DELETE "$GLANCE_URL/v2/images/$i"
    done
    rm -rf "$dir"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# The disk: base raw (250 MiB data) + qcow2 overlay (50 MiB data), 1 GiB.
qemu-img create -q -f raw "$dir/base.raw" 1G
qemu-io -f raw -c 'write -q -P 0x5a 0 250M' "$dir/base.raw" >/dev/null
qemu-img create -q -f qcow2 -o backing_file="$dir/base.raw",backing_fmt=raw "$dir/disk.qcow2" 1G
qemu-io -f qcow2 -c 'write -q -P 0xa5 600M 50M' "$dir/disk.qcow2" >/dev/null
cat >"$dir/dom.xml" <<XML
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$dir/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>
XML
virsh create "$dir/dom.xml" >/dev/null || { echo "cannot start $dom" >&2; exit 1; }
conf=$dir/rbdsnap.conf
sed -e "s|^  snap_prefix = \"\\([^\"]*\\)\";|  snap_prefix = \"\\1\";\\n  work_dir = \"$dir/work\";|" \
    -e 's|^log_level = "[a-z]*";|log_level = "warn";|' "$RBDSNAP_CONF" >"$conf"

run_rbdsnap() {
    local out t0 t1
    t0=$(now)
    out=$("$cli" -c "$conf" --format json snapshot --domain "$dom" --name "bench-rbdsnap-$rand" \
        --mode live --quiesce off) || { echo "rbdsnap snapshot failed" >&2; return 1; }
    t1=$(now)
    echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["image_id"])' >>"$ids"
    elapsed "$t0" "$t1"
}

run_nova() {
    local t0 t1 id st
    t0=$(now)
    qemu-img create -q -f qcow2 -o backing_file="$dir/base.raw",backing_fmt=raw "$dir/delta.qcow2" 1G
    virsh blockcopy "$dom" vda "$dir/delta.qcow2" --shallow --reuse-external --transient-job \
        --wait --finish >/dev/null || { echo "blockcopy failed" >&2; return 1; }
    qemu-img convert -f qcow2 -O raw "$dir/delta.qcow2" "$dir/nova.raw"
    rm -f "$dir/delta.qcow2"
    id=$(curl -s -X POST -H 'Content-Type: application/json' \
        -d "{\"name\":\"bench-nova-$rand\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" \
        "$GLANCE_URL/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    echo "$id" >>"$ids"
    st=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
        -T "$dir/nova.raw" "$GLANCE_URL/v2/images/$id/file")
    [[ $st == 204 ]] || { echo "upload failed: $st" >&2; return 1; }
    rm -f "$dir/nova.raw"
    t1=$(now)
    elapsed "$t0" "$t1"
}

a=() b=()
for ((r = 1; r <= rounds; r++)); do
    ta=$(run_rbdsnap) || exit 1
    tb=$(run_nova) || exit 1
    a+=("$ta") b+=("$tb")
    printf 'round %d: rbdsnap %.2f s, nova %.2f s\n' "$r" "$ta" "$tb"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(median "${a[@]}")
mb=$(median "${b[@]}")
used=$(rbd du --format json "images/$(head -n 1 "$ids")@snap" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["used_size"]//1048576)' 2>/dev/null)
echo "file-backed snapshot, 1 GiB disk, ~300 MiB allocated (base 250 MiB + overlay 50 MiB), $rounds round(s)"
printf '  rbdsnap (live copy straight into RBD + location): %6.2f s  (RBD used %s MiB)\n' "$ma" "${used:-?}"
printf '  nova    (convert to local raw + PUT /file):       %6.2f s\n' "$mb"
printf '  ratio   nova / rbdsnap:                           %6.2fx\n' "$(echo "$mb / $ma" | bc -l)"
