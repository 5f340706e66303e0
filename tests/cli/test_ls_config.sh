#!/bin/bash
# rbdsnap ls (what rbdsnap made: clones with rbdsnap.* metadata, source
# snapshots by prefix or by the rbdsnap.snap.<name> key; age, size, state,
# Glance status) and rbdsnap config show|check.
. "$(dirname "$0")/lib.sh"

A=vms/${SFX}_A
GID=$("$PY" -c 'import uuid; print(uuid.uuid4())')
rbd create --size 16M "$A" || die "A"
rbd image-meta set "$A" "rbdsnap.snap.keyed-$SFX" "job-$SFX" >/dev/null || die "meta"
rbd snap create "$A@keyed-$SFX" >/dev/null 2>&1 || die "keyed snap"
rbd snap protect "$A@keyed-$SFX" || die "protect"
rbd snap create "$A@rbdsnap-p$SFX" >/dev/null 2>&1 || die "prefixed snap"
rbd snap create "$A@user-$SFX" >/dev/null 2>&1 || die "user snap"
glance_setup "$GID"
rbd clone "$A@keyed-$SFX" "images/$GID" || die "clone"
rbd image-meta set "images/$GID" rbdsnap.job_id "job-$SFX" >/dev/null || die "clone meta"
rbd clone "$A@rbdsnap-p$SFX" "images/${SFX}_N" || die "plain clone"
rbd snap rm "$A@rbdsnap-p$SFX" >/dev/null 2>&1 || die "snap rm -> trash"
extra_cleanup() {
    rbd rm --no-progress "images/$GID" >/dev/null 2>&1
    cleanup_all
}
trap extra_cleanup EXIT

"$RBDSNAP" ls > "$TMPD/ls.txt" 2> "$TMPD/ls.err"
check "ls exit 0" [ $? = 0 ]
grep -E "^KIND|$SFX|$GID" "$TMPD/ls.txt"
check "header" grep -qE "^KIND +NAME +AGE +SIZE +STATE$" "$TMPD/ls.txt"
check "clone row" grep -qE "^clone +images/$GID +[0-9]+s +16 MiB +unflattened,glance=$GSTATUS$" "$TMPD/ls.txt"
check "keyed snapshot row" grep -qE "^snapshot +vms/${SFX}_A@keyed-$SFX +[0-9]+s +16 MiB +protected,clones=1$" "$TMPD/ls.txt"
check "prefixed trash snapshot row" grep -qE "^snapshot +vms/${SFX}_A@rbdsnap-p$SFX +[0-9]+s +16 MiB +trash,clones=1$" "$TMPD/ls.txt"
check "user snapshot not listed" bash -c "! grep -q 'user-$SFX' '$TMPD/ls.txt'"
check "plain clone not listed" bash -c "! grep -q 'images/${SFX}_N' '$TMPD/ls.txt'"
check "source image not listed as a clone" bash -c "! grep -qE '^clone +vms/${SFX}_A ' '$TMPD/ls.txt'"

"$RBDSNAP" --format json ls --pool vms > "$TMPD/ls.json"
check "ls json exit 0" [ $? = 0 ]
check "ls json fields" jcheck "$TMPD/ls.json" "
[a for a in d['artifacts'] if a['name']=='vms/${SFX}_A@keyed-$SFX'][0] == dict([a for a in d['artifacts'] if a['name']=='vms/${SFX}_A@keyed-$SFX'][0], kind='snapshot', pool='vms', image='${SFX}_A', snap='keyed-$SFX', size=16*1024*1024, state='protected,clones=1', clones=1, parent=None, job_id='job-$SFX', glance_status=None)
and all(set(a)=={'kind','name','pool','image','snap','created_at','age_seconds','size','state','clones','parent','job_id','glance_status'} for a in d['artifacts'])
and all(a['age_seconds']>=0 and a['created_at']>0 for a in d['artifacts'] if '$SFX' in a['name'])
and any(a['kind']=='clone' and a['name']=='images/$GID' and a['job_id']=='job-$SFX' and a['parent']=='vms/${SFX}_A@keyed-$SFX' and a['glance_status']=='$GSTATUS' and a['state']=='unflattened,glance=$GSTATUS' for a in d['artifacts'])"

# config show / check
"$RBDSNAP" config show > "$TMPD/show.txt"
check "config show exit 0" [ $? = 0 ]
check "config show keys" grep -qx "snapshot.snap_prefix = rbdsnap-" "$TMPD/show.txt"
"$RBDSNAP" --format json config show > "$TMPD/show.json"
check "config show json" jcheck "$TMPD/show.json" "d['path']=='$RBDSNAP_CONF' and d['keys']['snapshot.dest_pool']=='images' and d['keys']['glance.password'] in ('', '<set>')"
"$RBDSNAP" --format json config check --connect > "$TMPD/check.json"
check "config check json" jcheck "$TMPD/check.json" "d['valid'] is True and d['connected'] is True and d['fsid']=='$CEPH_FSID'"
printf 'snapshot = { flatten = "sometimes"; };\n' > "$TMPD/bad.conf"
"$RBDSNAP" -c "$TMPD/bad.conf" config check > /dev/null 2> "$TMPD/bad.err"
check "bad config exit 2" [ $? = 2 ]
check "bad config names file, line and key" grep -q "$TMPD/bad.conf:1: snapshot.flatten" "$TMPD/bad.err"
"$RBDSNAP" config frobnicate > /dev/null 2>&1
check "config bad verb exit 2" [ $? = 2 ]

finish
