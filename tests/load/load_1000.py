#!/usr/bin/python3
"""Load: 1,000 snapshot jobs submitted at once to rbdsnapd (queue_limit 200).

Checks: every answer is 202 or 429 (the excess gets 429, nothing else), every
accepted job finishes `done`, the daemon's memory stays bounded (VmHWM under
RBDSNAP_LOAD_MAX_RSS_MB, default 512) and it leaks no file descriptor (open
fds in /proc/PID/fd counted after a warm-up job and again after all jobs,
equal up to RBDSNAP_LOAD_FD_SLACK, default 2).  The jobs snapshot RBD disks
only (Glance off: this measures the daemon, not Glance).  Everything created
(source images, clones, the journal namespace) is removed at the end, also on
failure.  Appends a row to the reliability results table.

Runs under tests/run-integration (needs the lab's Ceph: CEPH_CONF).
"""
import concurrent.futures as cf
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time

import rados
import rbd

N_JOBS = int(os.environ.get("RBDSNAP_LOAD_JOBS", "1000"))
QUEUE = int(os.environ.get("RBDSNAP_LOAD_QUEUE", "200"))
N_DISKS = 40
MAX_RSS_MB = int(os.environ.get("RBDSNAP_LOAD_MAX_RSS_MB", "512"))
FD_SLACK = int(os.environ.get("RBDSNAP_LOAD_FD_SLACK", "2"))
BUILD = os.environ.get("RBDSNAP_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
DAEMON = os.environ.get("RBDSNAP_DAEMON", os.path.join(BUILD, "service/rbdsnapd"))
RESULTS = os.environ.get("RBDSNAP_RELIABILITY_RESULTS", os.path.join(BUILD, "reliability-results.md"))
RAND = secrets.token_hex(4)
NS = "load-" + RAND
failures = []


def log(*a):
    print(time.strftime("%H:%M:%S"), "load_1000:", *a, file=sys.stderr, flush=True)


def fail(msg):
    log("FAIL:", msg)
    failures.append(msg)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_conf(base, path, port):
    text = open(base).read()

    def setkey(text, grp, key, val):
        m = re.search(r"(?ms)^%s = \{\n(.*?)^\};" % re.escape(grp), text)
        body = m.group(1)
        body, n = re.subn(r"(?m)^  %s = .*;$" % re.escape(key), "  %s = %s;" % (key, val), body)
        if not n:
            body += "  %s = %s;\n" % (key, val)
        return text[:m.start(1)] + body + text[m.end(1):]
    for grp, key, val in [("daemon", "port", str(port)), ("daemon", "queue_limit", str(QUEUE)),
                          ("daemon", "workers", "4"), ("daemon", "auth", '"none"'),
                          ("journal", "namespace", '"%s"' % NS),
                          ("glance", "url", '""'), ("glance", "auth", '"none"'),
                          ("libvirt", "uri", '"test:///default"'),
                          ("snapshot", "quiesce", '"off"'), ("snapshot", "flatten", '"no"')]:
        text = setkey(text, grp, key, val)
    text = re.sub(r'(?m)^log_level = .*;$', 'log_level = "warn";', text)
    open(path, "w").write(text)


def req(port, method, path, body=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdr = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdr)
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data
    finally:
        c.close()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def wait_final(port, job, deadline):
    while time.time() < deadline:
        st, j = req(port, "GET", "/v1/jobs/" + job)
        if st == 200 and j.get("state") in ("done", "rolled_back", "failed"):
            return j
        time.sleep(0.5)
    return None


def main():
    if os.environ.get("RBDSNAP_SKIP_INTEGRATION") == "1":
        print("SKIP: RBDSNAP_SKIP_INTEGRATION=1")
        return 77
    cluster = rados.Rados(conffile=os.environ["CEPH_CONF"], rados_id=os.environ.get("CEPH_ID", "admin"))
    cluster.conf_set("admin_socket", "")
    cluster.connect()
    vms, images = cluster.open_ioctx("vms"), cluster.open_ioctx("images")
    disks = ["load-%s-%02d" % (RAND, i) for i in range(N_DISKS)]
    tmp = tempfile.mkdtemp(prefix="rbdsnap-load.")
    proc = None
    accepted = {}
    try:
        for d in disks:
            rbd.RBD().create(vms, d, 16 << 20)
        port = free_port()
        conf = os.path.join(tmp, "d.conf")
        write_conf(os.environ["RBDSNAP_CONF"], conf, port)
        logf = open(os.path.join(tmp, "d.log"), "w")
        proc = subprocess.Popen([DAEMON, "-c", conf], stdout=logf, stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                if req(port, "GET", "/v1/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("daemon died at start; see " + logf.name)
            time.sleep(0.1)
        # Warm-up: one job, so connections and pools are open before counting.
        st, j = req(port, "POST", "/v1/snapshots", {"disks": ["vms/" + disks[0]], "name": "warm-" + RAND})
        if st != 202:
            raise RuntimeError("warm-up POST: %s %s" % (st, j))
        accepted[j["job_id"]] = j["image_id"]
        if not wait_final(port, j["job_id"], time.time() + 300):
            raise RuntimeError("warm-up job did not finish")
        time.sleep(1)
        before = proc_status(proc.pid)
        log("before:", before)

        peak = dict(before)
        stop = [False]

        def sampler():
            while not stop[0]:
                try:
                    s = proc_status(proc.pid)
                except OSError:
                    return
                for k in ("VmRSS", "fds", "Threads"):
                    peak[k] = max(peak[k], s[k])
                time.sleep(0.2)
        ex = cf.ThreadPoolExecutor(max_workers=101)
        samp = ex.submit(sampler)

        def submit(i):
            try:
                return req(port, "POST", "/v1/snapshots",
                           {"disks": ["vms/" + disks[i % N_DISKS]], "name": "load-%s-%d" % (RAND, i)})
            except OSError as e:
                return 0, str(e)
        t0 = time.time()
        results = list(ex.map(submit, range(N_JOBS)))
        t_submit = time.time() - t0
        codes = {}
        for st, j in results:
            codes[st] = codes.get(st, 0) + 1
            if st == 202:
                accepted[j["job_id"]] = j["image_id"]
        log("submitted %d in %.1f s: %s" % (N_JOBS, t_submit, codes))
        other = {k: v for k, v in codes.items() if k not in (202, 429)}
        if other:
            fail("answers other than 202/429: %s" % other)
        # How many get in depends on how fast the workers drain the queue
        # during the burst (no timing assumption): at least queue_limit, and
        # the rest refused with 429.
        if codes.get(429, 0) == 0:
            fail("no 429 for %d jobs at once (queue_limit %d)" % (N_JOBS, QUEUE))
        if codes.get(202, 0) < min(QUEUE, N_JOBS):
            fail("fewer than queue_limit accepted: %s" % codes.get(202, 0))
        for st, j in results:
            if st == 429 and not (isinstance(j, dict) and "queue" in j.get("message", "")):
                fail("429 without a clear message: %s" % j)
                break

        deadline = time.time() + float(os.environ.get("RBDSNAP_LOAD_TIMEOUT", "1500"))
        states = {}
        for job in accepted:
            j = wait_final(port, job, deadline)
            s = j["state"] if j else "timeout"
            states[s] = states.get(s, 0) + 1
        t_all = time.time() - t0
        stop[0] = True
        samp.result()
        ex.shutdown()
        log("accepted jobs finished in %.1f s: %s" % (t_all, states))
        if states.get("done", 0) != len(accepted):
            fail("not every accepted job is done: %s" % states)
        time.sleep(2)
        after = proc_status(proc.pid)
        log("after:", after, "peak:", peak)
        if after["fds"] > before["fds"] + FD_SLACK:
            fail("fd leak: %d open before, %d after" % (before["fds"], after["fds"]))
        hwm_mb = after["VmHWM"] / 1024
        if hwm_mb > MAX_RSS_MB:
            fail("memory: VmHWM %.0f MiB > %d MiB" % (hwm_mb, MAX_RSS_MB))
        _, m = req(port, "GET", "/metrics")
        proc.terminate()
        rc = proc.wait(timeout=120)
        if rc != 0:
            fail("daemon exit status %d after SIGTERM" % rc)
        row = ("| %d jobs at once, queue_limit %d | %s | %d accepted, all done in %.0f s "
               "(%.1f jobs/s) | 0 | %d × 429, other codes %s; RSS %.0f → peak %.0f → %.0f MiB "
               "(VmHWM %.0f); fds %d → peak %d → %d; threads peak %d |\n" % (
                   N_JOBS, QUEUE, "FAIL" if failures else "PASS", len(accepted), t_all,
                   len(accepted) / t_all, codes.get(429, 0), other or "none",
                   before["VmRSS"] / 1024, peak["VmRSS"] / 1024, after["VmRSS"] / 1024, hwm_mb,
                   before["fds"], peak["fds"], after["fds"], peak["Threads"]))
        os.makedirs(os.path.dirname(os.path.abspath(RESULTS)), exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(row)
        log("result:", row.strip())
    except Exception as e:  # noqa: BLE001 - report and clean up
        fail("error: %r" % e)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        cleanup(cluster, vms, images, disks, accepted)
        vms.close()
        images.close()
        cluster.shutdown()
    if failures:
        log("%d failure(s); daemon log in %s" % (len(failures), tmp))
        return 1
    subprocess.run(["rm", "-rf", tmp])
    log("PASS")
    return 0


def cleanup(cluster, vms, images, disks, accepted):
    r = rbd.RBD()

    def remove_clone(img):
        try:
            with rbd.Image(images, img) as im:
                for s in list(im.list_snaps()):
                    if im.is_protected_snap(s["name"]):
                        im.unprotect_snap(s["name"])
                    im.remove_snap(s["name"])
            r.remove(images, img)
        except rbd.ImageNotFound:
            pass
        except Exception as e:  # noqa: BLE001
            log("cleanup: images/%s: %r" % (img, e))
    # The clones first (in parallel: a few hundred of them), then their
    # parents.
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(remove_clone, accepted.values()))
    for d in disks:
        try:
            with rbd.Image(vms, d) as im:
                for s in list(im.list_snaps()):
                    try:
                        if im.is_protected_snap(s["name"]):
                            im.unprotect_snap(s["name"])
                        im.remove_snap(s["name"])
                    except Exception:  # noqa: BLE001
                        pass
            r.remove(vms, d)
        except rbd.ImageNotFound:
            pass
        except Exception as e:  # noqa: BLE001
            log("cleanup: vms/%s: %r" % (d, e))
    try:
        images.set_namespace(NS)
        for o in images.list_objects():
            images.remove_object(o.key)
    except Exception as e:  # noqa: BLE001
        log("cleanup: journal namespace: %r" % e)
    finally:
        images.set_namespace("")


if __name__ == "__main__":
    sys.exit(main())
