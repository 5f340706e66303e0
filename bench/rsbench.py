#!/usr/bin/python3
"""rsbench.py - the measuring parts of bench/run that are easiest in Python.

Run with Debian's /usr/bin/python3 (python3-rbd, python3-rados, python3-nova,
python3-glanceclient).  Every subcommand appends JSON rows (one object a line)
to --out; bench/run turns them into the table (subcommand `report`).

  snap       RBD snapshot, no flatten, request -> Glance image active, one
             method at several concurrency levels:
               daemon   rbdsnapd API: POST /v1/snapshots, job until done
               cli      rbdsnap snapshot (direct CLI; it creates the Glance
                        record and adds the location itself)
               rbdcli   the rbd CLI doing the same steps + Glance with curl
               nova     Nova's own code: nova.storage.rbd_utils.RBDDriver in
                        the order of Imagebackend Rbd.direct_snapshot (incl.
                        its flatten: Nova has no way to skip it), Glance with
                        python3-glanceclient in the order of Nova's
                        image API (create, update, add_location); eventlet
                        green threads like nova-compute.
  freeze     freeze window of quiesced snapshots of the lab's agent guest,
             1 disk and all disks (further disks hot-added for the run)
  freeze-cleanup  detach and remove the disks a freeze run added
  memory     rbdsnapd RSS idle and with 1,000 queued jobs
  mkimages   create many empty images quickly (reaper scan input)
  rmprefix   remove images (and their snapshots) by name prefix
  report     print the table, write the JSON document

Every object created carries the run's random tag and is removed at the end,
also after a failure.
"""
import sys

if len(sys.argv) > 2 and sys.argv[1] == "snap" and "nova" in sys.argv[2:]:
    # nova-compute runs monkey-patched; its RBD calls go through tpool.
    import eventlet
    eventlet.monkey_patch()

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import urllib.parse
import uuid

ENV = os.environ


def log(msg):
    print("%s rsbench: %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def emit(out, row):
    row.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def pct(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ---- Ceph ---------------------------------------------------------------

def rados_connect():
    import rados
    c = rados.Rados(rados_id=ENV.get("CEPH_ID", "admin"), conffile=ENV["CEPH_CONF"],
                    conf={"keyring": ENV["CEPH_KEYRING"], "admin_socket": ""})
    c.connect(timeout=30)
    return c


def create_sources(cl, pool, names, size_mib, written_mib):
    import rbd
    buf = b"\x5a" * (1 << 20)
    with cl.open_ioctx(pool) as io:
        have = set(rbd.RBD().list(io))
        names = [n for n in names if n not in have]

        def one(n):
            rbd.RBD().create(io, n, size_mib << 20, old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                             | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                             | rbd.RBD_FEATURE_DEEP_FLATTEN)
            with rbd.Image(io, n) as img:
                for m in range(written_mib):
                    img.write(buf, m << 20)
        with cf.ThreadPoolExecutor(8) as ex:
            list(ex.map(one, names))


def remove_image_tree(io, name):
    """Remove an image, its user snapshots (unprotecting) and nothing else."""
    import rbd
    try:
        with rbd.Image(io, name) as img:
            for s in list(img.list_snaps()):
                try:
                    if img.is_protected_snap(s["name"]):
                        img.unprotect_snap(s["name"])
                    img.remove_snap(s["name"])
                except Exception:
                    pass
    except rbd.ImageNotFound:
        return
    except Exception:
        pass
    for _ in range(3):
        try:
            rbd.RBD().remove(io, name)
            return
        except rbd.ImageNotFound:
            return
        except Exception:
            time.sleep(0.5)


def remove_plain(io, name):
    import rbd
    try:
        rbd.RBD().remove(io, name)
    except rbd.ImageNotFound:
        pass
    except Exception:
        remove_image_tree(io, name)


def remove_prefix(cl, pool, prefix, threads=8, plain=False):
    import rbd
    with cl.open_ioctx(pool) as io:
        names = [n for n in rbd.RBD().list(io) if n.startswith(prefix)]
        if plain:
            with cf.ThreadPoolExecutor(threads) as ex:
                list(ex.map(lambda n: remove_plain(io, n), names))
            names = [n for n in rbd.RBD().list(io) if n.startswith(prefix)]
        # children before parents: clones have the prefix too, try twice
        for _ in range(2):
            with cf.ThreadPoolExecutor(threads) as ex:
                list(ex.map(lambda n: remove_image_tree(io, n), names))
            names = [n for n in rbd.RBD().list(io) if n.startswith(prefix)]
            if not names:
                break
        return len(names)


# ---- Glance over HTTP (no-auth Glance of the lab) -------------------------

def glance_props(instance, image_id):
    return {"image_type": "snapshot", "instance_uuid": instance,
            "base_image_ref": "", "image_location": "snapshot",
            "image_state": "available", "owner_id": "bench", "user_id": "bench"}


def curl(args, data=None):
    p = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code}"] + args,
                       input=data, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("curl %s: %s %s" % (args[-1], p.stdout, p.stderr.strip()))


def glance_curl_create(image_id, name, instance):
    body = {"id": image_id, "name": name, "disk_format": "raw", "container_format": "bare",
            "visibility": "private"}
    body.update(glance_props(instance, image_id))
    curl(["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-",
          ENV["GLANCE_URL"] + "/v2/images"], json.dumps(body))


def glance_curl_location(image_id, url):
    patch = [{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {}}}]
    curl(["-X", "PATCH", "-H", "Content-Type: application/openstack-images-v2.1-json-patch",
          "--data-binary", "@-", ENV["GLANCE_URL"] + "/v2/images/" + image_id], json.dumps(patch))


class Http:
    """Tiny keep-alive JSON client (one per thread)."""

    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def req(self, method, path, body=None, headers=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                h = {"Content-Type": "application/json"} if body is not None else {}
                h.update(headers or {})
                self.conn.request(method, path, body=None if body is None else
                                  (body if isinstance(body, (bytes, str)) else json.dumps(body)),
                                  headers=h)
                r = self.conn.getresponse()
                data = r.read()
                try:
                    doc = json.loads(data) if data else None
                except ValueError:
                    doc = None
                return r.status, doc
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise


def glance_delete_many(ids, threads=8):
    local = threading.local()

    def one(i):
        if not hasattr(local, "h"):
            local.h = Http(ENV["GLANCE_URL"])
        for _ in range(3):
            try:
                st, _ = local.h.req("DELETE", "/v2/images/" + i)
                if st in (204, 404):
                    return True
            except Exception:
                pass
            time.sleep(0.3)
        return False
    with cf.ThreadPoolExecutor(threads) as ex:
        return sum(1 for ok in ex.map(one, ids) if not ok)


def drop_images(cl, pool, ids, threads=8):
    """Remove snapshot images: each clone POOL/<id> (with its @snap) through
    librbd first, in parallel, then the Glance records.  Glance's delete
    would remove the clone itself, but one by one in its single process with
    a new RADOS connection each (~220 ms per image on a quiet lab machine);
    with the clone gone it only drops the record ("image data not found in
    the store"): ~115 ms per image in all, measured side by side.  Deletes
    are never measured; this only shortens the run."""
    if not ids:
        return 0
    with cl.open_ioctx(pool) as io:
        with cf.ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: remove_image_tree(io, i), ids))
    return glance_delete_many(ids, threads)


# ---- snapshot methods -----------------------------------------------------

class Ctx:
    pass


def rbd_cmd(*args):
    cmd = ["rbd", "--id", ENV.get("CEPH_ID", "admin"), "--keyring", ENV["CEPH_KEYRING"]] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), p.stderr.strip()[-300:]))


def snap_rbdcli(ctx, src, image_id):
    """The rbd CLI doing rbdsnap's steps (no flatten), then Glance by curl."""
    glance_curl_create(image_id, "bench-" + image_id, ctx.instance)
    snap = "bench-%016x" % random.getrandbits(64)
    s = "%s/%s@%s" % (ctx.src_pool, src, snap)
    clone = "%s/%s" % (ctx.dst_pool, image_id)
    rbd_cmd("snap", "create", s, "--no-progress")
    if ctx.fmt == 1:
        rbd_cmd("snap", "protect", s)
    rbd_cmd("clone", "--rbd-default-clone-format", str(ctx.fmt), s, clone)
    rbd_cmd("snap", "create", clone + "@snap", "--no-progress")
    rbd_cmd("snap", "protect", clone + "@snap")
    if ctx.fmt == 2:
        rbd_cmd("snap", "rm", s, "--no-progress")
    glance_curl_location(image_id, "rbd://%s/%s/%s/snap" % (ctx.fsid, ctx.dst_pool, image_id))


def snap_cli(ctx, src, image_id):
    """rbdsnap snapshot (direct CLI, journaled): with Glance configured it
    creates the record itself (id = image_id), runs the flow and adds the
    location."""
    p = subprocess.run([ctx.rbdsnap, "-c", ENV["RBDSNAP_CONF"], "snapshot", "--pool", ctx.src_pool,
                        "--image", src, "--dest-pool", ctx.dst_pool, "--name", image_id,
                        "--image-name", "bench-" + image_id,
                        "--flatten", "no", "--journal-dir", ctx.journal_dir,
                        "--instance-uuid", ctx.instance, "--format", "json"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("rbdsnap snapshot: " + p.stderr.strip()[-300:])


def snap_nova(ctx, src, image_id):
    """Nova: compute API creates the image, libvirt driver direct_snapshot,
    then image update + add_location (nova/image/glance.py)."""
    gc = ctx.glance
    t = {}
    t0 = time.monotonic()
    gc.images.create(id=image_id, name="bench-" + image_id, **glance_props(ctx.instance, image_id))
    d = ctx.driver
    snapshot_name = uuid.uuid4().hex
    # Rbd.direct_snapshot (nova/virt/libvirt/imagebackend.py)
    fsid = d.get_fsid()
    try:
        parent_pool, _im, _snap = d.parent_info(src)
    except ctx.ImageUnacceptable:
        parent_pool = ctx.dst_pool    # Nova would ask Glance for the base image's store
    d.create_snap(src, snapshot_name, protect=True)
    location = {"url": "rbd://%s/%s/%s/%s" % (fsid, d.pool, src, snapshot_name)}
    try:
        d.clone(location, image_id, dest_pool=parent_pool)
        t1 = time.monotonic()
        d.flatten(image_id, pool=parent_pool)
        t["flatten"] = time.monotonic() - t1
    finally:
        _f, _pool, _im, _snap = d.parse_url(location["url"])
        d.remove_snap(_im, _snap, pool=_pool, force=True, ignore_errors=False)
    d.create_snap(image_id, "snap", pool=parent_pool, protect=True)
    url = "rbd://%s/%s/%s/snap" % (fsid, parent_pool, image_id)
    # GlanceImageServiceV2.update(purge_props=False) -> _update_v2
    gc.images.update(image_id, disk_format="raw", container_format="bare")
    gc.images.add_location(image_id, url, {})
    t["total"] = time.monotonic() - t0
    return t


def run_level_threads(ctx, fn, srcs, conc):
    lat, fails, extra = [], [], []
    lock = threading.Lock()
    ids = []
    deadline = time.monotonic() + ctx.budget

    def one(src):
        if time.monotonic() > deadline:
            return
        image_id = str(uuid.uuid4())
        with lock:
            ids.append(image_id)
        t0 = time.monotonic()
        try:
            r = fn(ctx, src, image_id)
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                if isinstance(r, dict):
                    extra.append(r)
        except Exception as e:  # noqa: BLE001 - report and count
            with lock:
                fails.append(str(e)[:300])
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(conc) as ex:
        list(ex.map(one, srcs))
    return time.monotonic() - t0, lat, fails, ids, extra


def run_level_green(ctx, fn, srcs, conc):
    import eventlet
    lat, fails, ids, extra = [], [], [], []
    deadline = time.monotonic() + ctx.budget

    def one(src):
        if time.monotonic() > deadline:
            return
        image_id = str(uuid.uuid4())
        ids.append(image_id)
        t0 = time.monotonic()
        try:
            r = fn(ctx, src, image_id)
            lat.append(time.monotonic() - t0)
            extra.append(r)
        except Exception as e:  # noqa: BLE001
            fails.append("%s: %s" % (type(e).__name__, str(e)[:300]))
    pool = eventlet.GreenPool(conc)
    t0 = time.monotonic()
    for s in srcs:
        pool.spawn_n(one, s)
    pool.waitall()
    return time.monotonic() - t0, lat, fails, ids, extra


def run_level_daemon(ctx, srcs, conc):
    """POST at concurrency C (C jobs in flight); one poller thread lists the
    queued and running jobs every 10 ms: a job that left both lists is
    finished at that moment (resolution 10 ms, the same for every level)."""
    base = ENV["RBDSNAP_URL"]
    lock = threading.Lock()
    cond = threading.Condition(lock)
    inflight = {}        # job id -> t0
    done_t = {}          # job id -> t_end
    registered = {}      # job id -> when it was known to exist (after its POST)
    lat, fails, ids = [], [], []
    stop = threading.Event()

    def poller():
        h = Http(base)
        while not stop.is_set():
            live = set()
            complete = True
            t_poll = time.monotonic()   # only jobs known before the lists were read
            try:
                for st in ("queued", "running", "rolling_back"):
                    code, doc = h.req("GET", "/v1/jobs?state=" + st)
                    if code != 200 or not isinstance(doc, dict) or "jobs" not in doc:
                        complete = False
                        break
                    live.update(j["id"] for j in doc["jobs"])
            except Exception:
                complete = False
            if not complete:        # never conclude "finished" from a partial view
                time.sleep(0.05)
                continue
            now = time.monotonic()
            with cond:
                for jid in list(inflight):
                    if jid not in live and registered[jid] < t_poll:
                        done_t[jid] = now
                        del inflight[jid]
                        cond.notify_all()
            time.sleep(0.01)
    pt = threading.Thread(target=poller, daemon=True)
    pt.start()
    sem = threading.Semaphore(conc)
    jobs = []
    per_job = {}
    extra = []

    def submit(src):
        h = Http(base)
        t0 = time.monotonic()
        code, doc = h.req("POST", "/v1/snapshots",
                          {"disks": ["%s/%s" % (ctx.src_pool, src)], "name": "bench-" + src,
                           "flatten": "no", "quiesce": "off"})
        if code != 202:
            with lock:
                fails.append("POST %d %s" % (code, doc))
            sem.release()
            return
        jid = doc["job_id"]
        with cond:
            ids.append(doc["image_id"])
            jobs.append(jid)
            inflight[jid] = t0
            registered[jid] = time.monotonic()
            while jid not in done_t:
                cond.wait(1.0)
            per_job[jid] = done_t[jid] - t0
        sem.release()
    t0 = time.monotonic()
    threads = []
    for s in srcs:
        sem.acquire()
        if time.monotonic() > t0 + ctx.budget:
            sem.release()
            break
        th = threading.Thread(target=submit, args=(s,))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    stop.set()
    pt.join()
    # final states (a job that left the lists may have rolled back)
    h = Http(base)
    for jid in jobs:
        # a finished job never runs again; wait for any that still runs
        # (its Glance record must not be deleted under it)
        for _ in range(600):
            code, doc = h.req("GET", "/v1/jobs/" + jid)
            if code != 200 or doc.get("state") not in ("queued", "running", "rolling_back"):
                break
            time.sleep(0.5)
        if code != 200 or doc.get("state") != "done":
            fails.append("job %s: %s %s" % (jid, doc.get("state") if doc else code,
                                            (doc or {}).get("error")))
        elif jid in per_job:
            lat.append(per_job[jid])
            steps = {}
            for st in doc.get("steps", []):
                steps[st["name"]] = steps.get(st["name"], 0) + st.get("duration_ms", 0)
            extra.append(steps)
    return wall, lat, fails, ids, extra


def cmd_snap(a):
    ctx = Ctx()
    ctx.src_pool, ctx.dst_pool = a.pool, a.dest_pool
    ctx.instance = str(uuid.uuid4())
    ctx.rbdsnap = a.rbdsnap
    ctx.journal_dir = a.journal_dir
    ctx.budget = a.budget if a.budget > 0 else 1e9
    tag = a.tag or "rsb%04x" % random.getrandbits(16)
    levels = [int(x) for x in a.conc.split(",")]
    cl = rados_connect()
    ctx.fsid = cl.get_fsid()
    ctx.fmt = a.clone_format
    srcs = ["%s-src-%03d_disk" % (tag, i) for i in range(a.n)]
    log("snap %s: %d source images of %d MiB (%d MiB written), levels %s"
        % (a.method, a.n, a.size_mib, a.written_mib, levels))
    all_ids = []
    rc = 0
    try:
        create_sources(cl, a.pool, srcs, a.size_mib, a.written_mib)
        log("snap %s: source images ready" % a.method)
        if a.method == "nova":
            import nova.conf
            from nova import exception
            from nova.storage import rbd_utils
            from glanceclient import Client
            conf = nova.conf.CONF
            conf([], project="nova", default_config_files=[])
            conf.set_override("images_rbd_pool", a.pool, group="libvirt")
            conf.set_override("images_rbd_ceph_conf", ENV["CEPH_CONF"], group="libvirt")
            conf.set_override("rbd_user", ENV.get("CEPH_ID", "admin"), group="libvirt")
            ctx.driver = rbd_utils.RBDDriver()
            ctx.ImageUnacceptable = exception.ImageUnacceptable
            ctx.glance = Client("2", endpoint=ENV["GLANCE_URL"], token="bench")
        for conc in levels:
            if a.method == "daemon":
                wall, lat, fails, ids, extra = run_level_daemon(ctx, srcs, conc)
            elif a.method == "nova":
                wall, lat, fails, ids, extra = run_level_green(ctx, snap_nova, srcs, conc)
            else:
                fn = snap_cli if a.method == "cli" else snap_rbdcli
                wall, lat, fails, ids, extra = run_level_threads(ctx, fn, srcs, conc)
            all_ids += ids
            row = {"section": "snapshot", "method": a.method, "conc": conc,
                   "n": len(lat) + len(fails), "n_max": len(srcs), "budget_s": a.budget,
                   "ok": len(lat), "failed": len(fails), "wall_s": wall,
                   "p50_ms": (pct(lat, 50) or 0) * 1000, "p95_ms": (pct(lat, 95) or 0) * 1000,
                   "mean_ms": (statistics.mean(lat) if lat else 0) * 1000,
                   "throughput": len(lat) / wall if wall > 0 else 0,
                   "size_mib": a.size_mib, "written_mib": a.written_mib, "clone_format": ctx.fmt}
            if extra and a.method == "daemon":
                names = []
                for e in extra:
                    names += [k for k in e if k not in names]
                row["steps_p50_ms"] = {k: pct([e.get(k, 0) for e in extra], 50) for k in names}
            elif extra:
                fl = [e["flatten"] for e in extra if "flatten" in e]
                rest = [e["total"] - e.get("flatten", 0) for e in extra]
                row["flatten_p50_ms"] = (pct(fl, 50) or 0) * 1000
                row["p50_ms_without_flatten"] = (pct(rest, 50) or 0) * 1000
                row["p95_ms_without_flatten"] = (pct(rest, 95) or 0) * 1000
            if fails:
                row["errors"] = fails[:3]
                rc = 1
            emit(a.out, row)
            log("snap %s c=%d: p50 %.0f ms p95 %.0f ms %.2f/s failed %d"
                % (a.method, conc, row["p50_ms"], row["p95_ms"], row["throughput"], len(fails)))
            if fails:
                log("  first error: " + fails[0])
            drop_images(cl, a.dest_pool, ids)
            log("snap %s c=%d: %d snapshots removed" % (a.method, conc, len(ids)))
            all_ids = [i for i in all_ids if i not in set(ids)]
    finally:
        drop_images(cl, a.dest_pool, all_ids)
        remove_prefix(cl, a.dest_pool, tag)   # clones whose Glance record failed
        if not a.keep_sources:
            left = remove_prefix(cl, a.pool, tag)
            if left:
                log("warning: %d source images with prefix %s left in %s" % (left, tag, a.pool))
        cl.shutdown()
    return rc


# ---- freeze window --------------------------------------------------------

def daemon_job(h, body, timeout=300):
    code, doc = h.req("POST", "/v1/snapshots", body)
    if code != 202:
        raise RuntimeError("POST %d %s" % (code, doc))
    jid = doc["job_id"]
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        code, j = h.req("GET", "/v1/jobs/" + jid)
        if code == 200 and j["state"] not in ("queued", "running", "rolling_back"):
            return j
        time.sleep(0.05)
    raise RuntimeError("job %s not finished after %d s" % (jid, timeout))


# Further disks for the freeze section: the lab's agent guest has a root
# disk and eph0; more are hot-added for the run under Nova's names for an
# instance's further disks, each a 64 MiB RBD image next to the root disk,
# tagged with image metadata (rbdsnap-bench.tag) so that only what a bench
# run added is ever detached and removed.
EXTRA_SUFFIXES = ["swap", "eph1", "eph2", "eph3", "eph4", "eph5"]
BENCH_META = "rbdsnap-bench.tag"


def virsh(*args, check=True):
    p = subprocess.run(["virsh", "-q"] + list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("virsh %s: %s" % (" ".join(args[:2]), p.stderr.strip()[-300:]))
    return p.stdout


def domain_rbd_disks(domain):
    """(uuid, [(target, pool, image, <disk> element)]) from the live XML."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(virsh("dumpxml", domain))
    disks = []
    for d in root.findall("./devices/disk"):
        src, tgt = d.find("source"), d.find("target")
        if d.get("type") == "network" and src is not None and src.get("protocol") == "rbd" \
                and tgt is not None and "/" in (src.get("name") or ""):
            pool, image = src.get("name").split("/", 1)
            disks.append((tgt.get("dev"), pool, image, d))
    return root.findtext("uuid"), disks


def extra_disks_attach(cl, domain, tag, want):
    """Hot-add RBD disks until DOMAIN has WANT of them; returns what was added."""
    import copy
    import tempfile
    import xml.etree.ElementTree as ET
    import rbd
    uuid_, disks = domain_rbd_disks(domain)
    if not disks:
        raise RuntimeError("domain %s has no RBD disk" % domain)
    base = next((d for d in disks if d[0] == "vda"), disks[0])
    pool = base[1]
    targets = {d[0] for d in disks}
    names = {d[2] for d in disks}
    added = []
    with cl.open_ioctx(pool) as io:
        for suffix in EXTRA_SUFFIXES:
            if len(disks) + len(added) >= want:
                break
            name = "%s_disk.%s" % (uuid_, suffix)
            if name in names:
                continue
            try:
                rbd.RBD().create(io, name, 64 << 20, old_format=False,
                                 features=rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                                 | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                                 | rbd.RBD_FEATURE_DEEP_FLATTEN)
            except rbd.ImageExists:
                log("freeze: %s/%s exists already (not the bench's); next name" % (pool, name))
                continue
            with rbd.Image(io, name) as img:
                img.metadata_set(BENCH_META, tag)
            dev = next("vd" + c for c in "cdefghijklmnop" if "vd" + c not in targets)
            el = copy.deepcopy(base[3])
            for child in list(el):
                if child.tag in ("alias", "address", "backingStore"):
                    el.remove(child)
            src = el.find("source")
            src.set("name", "%s/%s" % (pool, name))
            src.attrib.pop("index", None)
            el.find("target").set("dev", dev)
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
                f.write(ET.tostring(el, encoding="unicode"))
            try:
                virsh("attach-device", domain, f.name, "--live")
            except Exception:
                remove_plain(io, name)
                raise
            finally:
                os.unlink(f.name)
            targets.add(dev)
            added.append("%s/%s" % (pool, name))
            log("freeze: attached %s/%s to %s as %s" % (pool, name, domain, dev))
    if len(disks) + len(added) < want:
        raise RuntimeError("domain %s: only %d RBD disks" % (domain, len(disks) + len(added)))
    return added


def extra_disks_remove(cl, domain, tag=None):
    """Detach from DOMAIN and remove every RBD disk a bench run added (with
    TAG, or any bench tag), with the clones rbdsnap made of it.  Returns the
    number of disks that could not be removed."""
    import rbd
    left = 0
    try:
        _, disks = domain_rbd_disks(domain)
    except Exception as e:  # noqa: BLE001 - the domain may be gone
        log("freeze: %s: %s" % (domain, e))
        disks = []
    for dev, pool, image, el in disks:
        with cl.open_ioctx(pool) as io:
            try:
                with rbd.Image(io, image, read_only=True) as img:
                    t = dict(img.metadata_list()).get(BENCH_META)
            except Exception:  # noqa: BLE001
                continue
            if t is None or (tag and t != tag):
                continue
            import tempfile
            import xml.etree.ElementTree as ET
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
                f.write(ET.tostring(el, encoding="unicode"))
            virsh("detach-device", domain, f.name, "--live", check=False)
            os.unlink(f.name)
            for _ in range(100):      # the guest answers the unplug asynchronously
                if all(d[2] != image for d in domain_rbd_disks(domain)[1]):
                    break
                time.sleep(0.1)
            else:
                log("freeze: %s still attached to %s" % (image, domain))
                left += 1
                continue
            try:    # clones of its snapshots (trash namespace with format 2)
                with rbd.Image(io, image, read_only=True) as img:
                    kids = list(img.list_descendants())
            except Exception:  # noqa: BLE001
                kids = []
            for k in kids:
                with cl.open_ioctx(k["pool"]) as kio:
                    remove_image_tree(kio, k["image"])
            remove_image_tree(io, image)
            if image in rbd.RBD().list(io):
                left += 1
            else:
                log("freeze: detached and removed %s/%s" % (pool, image))
    return left


def cmd_freeze(a):
    """Quiesced snapshots of DOMAIN through the daemon, for each disk count
    of --disks: 1 = the root disk only; more = all_disks, with disks
    hot-added (and removed at the end) until the domain has that many."""
    h = Http(a.url)
    cl = rados_connect()
    rc = 0
    try:
        for ndisks in sorted(int(x) for x in a.disks.split(",")):
            wins, ids, errs, names = [], [], [], []
            try:
                if ndisks > 1:
                    extra_disks_attach(cl, a.domain, a.tag, ndisks)
                    names = ["%s/%s" % (d[1], d[2]) for d in domain_rbd_disks(a.domain)[1]]
                    if len(names) != ndisks:
                        raise RuntimeError("domain %s has %d RBD disks, not %d"
                                           % (a.domain, len(names), ndisks))
            except Exception as e:  # noqa: BLE001
                errs.append(str(e))
            for _ in range(a.repeat if not errs else 0):
                try:
                    j = daemon_job(h, {"domain": a.domain, "name": "bench-freeze", "flatten": "no",
                                       "quiesce": "required", "all_disks": ndisks > 1})
                    ids.append(j.get("image_id"))
                    fz = j.get("freeze") or {}
                    # one "clone" step per disk of the snapshot
                    got = sum(1 for s in j.get("steps", []) if s.get("name") == "clone")
                    if j["state"] != "done" or not fz.get("quiesced"):
                        errs.append("%s quiesced=%s %s" % (j["state"], fz.get("quiesced"),
                                                           j.get("error")))
                    elif got != ndisks:
                        errs.append("job %s snapshotted %d disks, not %d" % (j["id"], got, ndisks))
                    else:
                        wins.append(fz.get("window_ms", 0))
                except Exception as e:  # noqa: BLE001
                    errs.append(str(e))
            ids = [i for i in ids if i]
            drop_images(cl, "images", ids)
            # Glance holds the root disk's clone; the other disks' clones
            # (<image id>_eph0, ...) are rbdsnap's alone: removed here.
            for i in ids:
                remove_prefix(cl, "images", i + "_")
            row = {"section": "freeze", "disks": ndisks, "n": a.repeat, "ok": len(wins),
                   "failed": len(errs), "p50_ms": pct(wins, 50),
                   "max_ms": max(wins) if wins else None, "values_ms": wins}
            if names:
                row["disk_names"] = names
            if errs:
                row["errors"] = errs[:3]
                rc = 1
            emit(a.out, row)
            log("freeze %d disk(s): %s ms (errors %d%s)" % (ndisks, wins, len(errs),
                                                           ": " + errs[0] if errs else ""))
    finally:
        if extra_disks_remove(cl, a.domain, a.tag):
            rc = 1
        cl.shutdown()
    return rc


def cmd_freeze_cleanup(a):
    cl = rados_connect()
    try:
        return 1 if extra_disks_remove(cl, a.domain, a.tag) else 0
    finally:
        cl.shutdown()


# ---- daemon memory --------------------------------------------------------

def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_detail(pid):
    """RSS split: anonymous (heap, stacks) vs file (library text, shared)."""
    d = {k: rss_kib(pid, k) / 1024.0 for k in ("RssAnon", "RssFile", "RssShmem")}
    d["threads"] = rss_kib(pid, "Threads")
    return d


def cmd_memory(a):
    h = Http(a.url)
    pid = a.pid
    time.sleep(1.0)
    idle = rss_kib(pid)
    idle_detail = rss_detail(pid)
    ids, jobs, bad = [], [], 0
    for i in range(a.jobs):
        code, doc = h.req("POST", "/v1/snapshots",
                          {"disks": [a.disk], "name": "bench-mem-%d" % i, "flatten": "no",
                           "quiesce": "off"})
        if code == 202:
            jobs.append(doc["job_id"])
            ids.append(doc["image_id"])
        else:
            bad += 1
    code, q = h.req("GET", "/v1/jobs?state=queued")
    queued = len(q.get("jobs", [])) if code == 200 else -1
    loaded = rss_kib(pid)
    loaded_detail = rss_detail(pid)
    # cancel everything (queued jobs are dropped, nothing was done for them)
    for jid in jobs:
        try:
            h.req("DELETE", "/v1/jobs/" + jid)
        except Exception:
            pass
    after = rss_kib(pid)
    row = {"section": "memory", "idle_rss_mib": idle / 1024.0, "jobs_posted": len(jobs),
           "rejected": bad, "queued_seen": queued, "loaded_rss_mib": loaded / 1024.0,
           "after_cancel_rss_mib": after / 1024.0, "idle_detail": idle_detail,
           "loaded_detail": loaded_detail,
           "per_job_kib": (loaded - idle) / max(1, queued if queued > 0 else len(jobs))}
    emit(a.out, row)
    log("memory: idle %.1f MiB, %d queued %.1f MiB" % (idle / 1024, queued, loaded / 1024))
    with open(a.ids_file, "w") as f:
        f.write("\n".join(ids))
    return 0 if bad == 0 else 1


# ---- many images ----------------------------------------------------------

def cmd_mkimages(a):
    import rbd
    cl = rados_connect()
    t0 = time.monotonic()
    failed = 0
    with cl.open_ioctx(a.pool) as io:
        r = rbd.RBD()

        def one(i):
            try:
                r.create(io, "%s%06d" % (a.prefix, i), a.size_mib << 20, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
                return True
            except rbd.ImageExists:
                return True
            except Exception:
                return False
        with cf.ThreadPoolExecutor(a.threads) as ex:
            failed = sum(1 for ok in ex.map(one, range(a.start, a.count)) if not ok)
    cl.shutdown()
    log("mkimages: %d..%d in %s: %.1f s, %d failed" % (a.start, a.count, a.pool,
                                                      time.monotonic() - t0, failed))
    return 1 if failed else 0


def cmd_rmprefix(a):
    cl = rados_connect()
    left = 0
    for pool in a.pool:
        left += remove_prefix(cl, pool, a.prefix, threads=a.threads, plain=a.plain)
    cl.shutdown()
    return 1 if left else 0


# ---- report ---------------------------------------------------------------

def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def cmd_report(a):
    rows = []
    if os.path.exists(a.results):
        with open(a.results) as f:
            rows = [json.loads(x) for x in f if x.strip()]
    meta = {}
    if a.meta and os.path.exists(a.meta):
        with open(a.meta) as f:
            meta = json.load(f)
    table = []   # (section, row, value, compared with, ratio, target, verdict)

    def add(sec, what, value, comp="", ratio=None, target="", met=None):
        table.append({"section": sec, "row": what, "value": value, "compared_with": comp,
                      "ratio": ratio, "target": target,
                      "verdict": "" if met is None else ("met" if met else "MISSED")})

    snap = {(r["method"], r["conc"]): r for r in rows if r["section"] == "snapshot"}
    names = {"daemon": "rbdsnap daemon API", "cli": "rbdsnap CLI",
             "rbdcli": "rbd CLI + curl", "nova": "Nova RBDDriver + glanceclient"}
    nova1 = snap.get(("nova", 1))
    for (m, c), r in sorted(snap.items(), key=lambda kv: (["daemon", "cli", "rbdcli", "nova"]
                                                          .index(kv[0][0]), kv[0][1])):
        val = "p50 %s ms, p95 %s ms, %.2f/s%s" % (fmt(r["p50_ms"]), fmt(r["p95_ms"]),
                                                  r["throughput"],
                                                  ", %d failed" % r["failed"] if r["failed"] else "")
        if m == "nova" and "p50_ms_without_flatten" in r:
            val += " (p50 %s ms without its flatten)" % fmt(r["p50_ms_without_flatten"])
        ratio = comp = target = ""
        met = None
        nv = snap.get(("nova", c))
        if m != "nova" and nv and r["p50_ms"]:
            ratio = "%.1fx faster p50, %.1fx throughput" % (nv["p50_ms"] / r["p50_ms"],
                                                           r["throughput"] / nv["throughput"]
                                                           if nv["throughput"] else 0)
            comp = "Nova c=%d" % c
            if m == "daemon":
                target = ">= 2x faster than Nova"
                met = nv["p50_ms"] / r["p50_ms"] >= 2
        add("1 snapshot", "%s c=%d (N=%d)" % (names[m], c, r["n"]), val, comp, ratio, target, met)
        if m == "daemon" and c == max(cc for (mm, cc) in snap if mm == "daemon") and nova1 \
                and nova1["throughput"]:
            x = r["throughput"] / nova1["throughput"]
            add("1 snapshot", "rbdsnap daemon c=%d throughput" % c, "%.2f/s" % r["throughput"],
                "Nova sequential %.2f/s" % nova1["throughput"], "%.1fx" % x,
                ">= 10x Nova sequential", x >= 10)
    for r in rows:
        if r["section"] == "flow":
            add("1b flow (library)", r["label"], "%.1f ms/snap, %.1f/s" % (r["ms"], r["per_s"]),
                r.get("compared_with", ""), r.get("ratio", ""), "", None)
    for r in rows:
        if r["section"] == "freeze":
            what = ""
            if r.get("disk_names"):     # <uuid>_disk, <uuid>_disk.eph0, ... -> root + eph0 ...
                what = ": " + " + ".join(n.rsplit("_disk", 1)[-1].lstrip(".") or "root"
                                         for n in r["disk_names"])
            add("2 freeze", "quiesced snapshot, %d disk(s)%s (n=%d)" % (r["disks"], what, r["n"]),
                "p50 %s ms, max %s ms%s" % (fmt(r["p50_ms"]), fmt(r["max_ms"]),
                                           ", %d failed" % r["failed"] if r["failed"] else ""),
                "Nova: never freezes (crash-consistent only)")
    fl = [r for r in rows if r["section"] == "flatten"]
    limit = next((r["mib_s"] for r in fl if r["tool"] == "rados bench"), None)
    for r in fl:
        ratio = met = None
        target = ""
        if limit and r["tool"] != "rados bench":
            ratio = "%.0f%% of rados bench" % (100.0 * r["mib_s"] / limit)
            if r["tool"].startswith("rbdsnap"):
                target = ">= 90% of rados bench"
                met = r["mib_s"] >= 0.9 * limit
        add("3 flatten", r["tool"] + (" ops=%s" % r["ops"] if r.get("ops") else ""),
            "%.1f MiB/s (%.1f s for %d MiB)" % (r["mib_s"], r["seconds"], r["mib"]),
            "rados bench write" if ratio else "", ratio or "", target, met)
    fb = {r["method"]: r for r in rows if r["section"] == "filebacked"}
    for m, r in fb.items():
        ratio = met = None
        target = ""
        nv = fb.get("nova")
        if m != "nova" and nv and r.get("seconds"):
            x = nv["seconds"] / r["seconds"]
            ratio, target, met = "%.1fx faster" % x, ">= 2x faster than Nova", x >= 2
        add("4 file-backed", r.get("label", m), "%.1f s" % r["seconds"] if r.get("seconds") else
            r.get("note", "-"), "Nova's method" if ratio else "", ratio or "", target, met)
    for r in rows:
        if r["section"] == "reaper":
            met = None
            target = ""
            if r["images"] >= 10000:
                target, met = "<= 10 s", r["scan_s"] <= 10
            add("5 reaper scan", "%d images" % r["images"], "%.2f s (%s)" % (r["scan_s"], r["tool"]),
                "", "", target, met)
    for r in rows:
        if r["section"] == "memory":
            d = r.get("idle_detail", {})
            add("6 daemon RSS", "idle", "%.1f MiB (anon %.1f, file %.1f, %d threads)"
                % (r["idle_rss_mib"], d.get("RssAnon", 0), d.get("RssFile", 0), d.get("threads", 0)),
                "", "", "<= 20 MiB", r["idle_rss_mib"] <= 20)
            add("6 daemon RSS", "%d queued jobs" % r["queued_seen"], "%.1f MiB (+%.1f KiB/job)"
                % (r["loaded_rss_mib"], r["per_job_kib"]))
    for r in rows:
        if r["section"] == "error":
            add(r.get("for", "?"), "ERROR", r.get("message", ""))

    w = [18, 44, 56, 24, 36, 24, 7]
    hdr = ["section", "row", "value", "compared with", "ratio", "target", "verdict"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
    for t in table:
        lines.append("| " + " | ".join(str(t[k] if t[k] is not None else "") for k in
                                       ("section", "row", "value", "compared_with", "ratio",
                                        "target", "verdict")) + " |")
    del w
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    if a.json:
        doc = {"meta": meta, "table": table, "rows": rows}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


def main():
    p = argparse.ArgumentParser(prog="rsbench.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snap")
    s.add_argument("method", choices=["daemon", "cli", "rbdcli", "nova"])
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--conc", default="1,8,32")
    s.add_argument("--pool", default="vms")
    s.add_argument("--dest-pool", default="images")
    s.add_argument("--size-mib", type=int, default=64)
    s.add_argument("--written-mib", type=int, default=8)
    s.add_argument("--clone-format", type=int, default=2)
    s.add_argument("--rbdsnap", default="rbdsnap")
    s.add_argument("--journal-dir", default="/tmp")
    s.add_argument("--tag", help="name prefix (shared source images between runs)")
    s.add_argument("--keep-sources", action="store_true")
    s.add_argument("--budget", type=float, default=0,
                   help="stop submitting after this many seconds per level (0: none)")
    s.add_argument("--out", required=True)
    s = sub.add_parser("freeze")
    s.add_argument("--url", required=True)
    s.add_argument("--domain", required=True)
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--disks", default="1,3", help="disk counts, e.g. 1,3")
    s.add_argument("--tag", default="rsbfreeze", help="metadata tag of the disks added")
    s.add_argument("--out", required=True)
    s = sub.add_parser("freeze-cleanup")
    s.add_argument("--domain", required=True)
    s.add_argument("--tag", help="only disks added with this tag (default: any bench run's)")
    s = sub.add_parser("memory")
    s.add_argument("--url", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--disk", required=True)
    s.add_argument("--jobs", type=int, default=1000)
    s.add_argument("--ids-file", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("mkimages")
    s.add_argument("--pool", required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--size-mib", type=int, default=1)
    s.add_argument("--threads", type=int, default=16)
    s = sub.add_parser("rmprefix")
    s.add_argument("--pool", action="append", required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--threads", type=int, default=16)
    s.add_argument("--plain", action="store_true", help="images without snapshots: remove directly")
    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--meta")
    s.add_argument("--json")
    s.add_argument("--markdown")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return {"snap": cmd_snap, "freeze": cmd_freeze, "freeze-cleanup": cmd_freeze_cleanup,
            "memory": cmd_memory,
            "mkimages": cmd_mkimages, "rmprefix": cmd_rmprefix, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
