#!/bin/bash
# test_report.sh SRC: bench/run and bench/rsbench.py parse; `rsbench.py
# report` turns known result rows into the table with the right ratios and
# verdicts (met/MISSED), an error row stays visible, and the JSON holds the
# meta, the table and the rows.
set -uo pipefail
src=${1:?usage: test_report.sh SRC}
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/rsbench-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

bash -n "$src/bench/run" || fail "bench/run does not parse"
PYTHONDONTWRITEBYTECODE=1 $py -c "import ast,sys; ast.parse(open(sys.argv[1]).read())" \
    "$src/bench/rsbench.py" || fail "rsbench.py does not parse"

cat >"$tmp/r.jsonl" <<'ROWS'
{"section": "snapshot", "method": "daemon", "conc": 1, "n": 10, "ok": 10, "failed": 0, "wall_s": 5, "p50_ms": 400, "p95_ms": 600, "throughput": 2.0}
{"section": "snapshot", "method": "daemon", "conc": 32, "n": 40, "ok": 40, "failed": 0, "wall_s": 4, "p50_ms": 3000, "p95_ms": 3500, "throughput": 10.0}
{"section": "snapshot", "method": "nova", "conc": 1, "n": 10, "ok": 10, "failed": 0, "wall_s": 10, "p50_ms": 1000, "p95_ms": 1200, "throughput": 1.0, "p50_ms_without_flatten": 900}
{"section": "snapshot", "method": "nova", "conc": 32, "n": 40, "ok": 38, "failed": 2, "wall_s": 20, "p50_ms": 9000, "p95_ms": 9900, "throughput": 1.9}
{"section": "flatten", "tool": "rados bench", "ops": null, "seconds": 10, "mib": 1000, "mib_s": 100.0}
{"section": "flatten", "tool": "rbdsnap flatten", "ops": 20, "seconds": 12, "mib": 1024, "mib_s": 95.0}
{"section": "flatten", "tool": "rbd flatten", "ops": 20, "seconds": 12, "mib": 1024, "mib_s": 50.0}
{"section": "reaper", "images": 10000, "scan_s": 12.5, "tool": "x"}
{"section": "memory", "idle_rss_mib": 15.0, "queued_seen": 1000, "loaded_rss_mib": 40.0, "per_job_kib": 25.6, "idle_detail": {"RssAnon": 5, "RssFile": 10, "threads": 9}}
{"section": "error", "for": "2 freeze", "message": "lab/start libvirt guest failed"}
ROWS
echo '{"commit": "abc", "cpus": 2}' >"$tmp/meta.json"
PYTHONDONTWRITEBYTECODE=1 $py "$src/bench/rsbench.py" report --results "$tmp/r.jsonl" \
    --meta "$tmp/meta.json" --json "$tmp/out.json" --markdown "$tmp/t.md" >"$tmp/stdout" ||
    fail "report failed"
cat "$tmp/stdout"
row() { grep -F "$1" "$tmp/t.md" || fail "no row matching '$1'"; }
# latency: Nova 1000 ms / 400 ms = 2.5x -> met; c=32: 9000/3000 = 3.0x
row "rbdsnap daemon API c=1 (N=10)" | grep -q "2.5x faster p50.*| met |" || fail "c=1 ratio/verdict"
row "rbdsnap daemon API c=32 (N=40)" | grep -q "3.0x faster p50, 5.3x throughput" || fail "c=32 ratio"
# throughput at c=32 vs Nova sequential: 10 / 1 = 10x -> met
row "rbdsnap daemon c=32 throughput" | grep -q "10.0x | >= 10x Nova sequential | met" || fail "throughput target"
row "Nova RBDDriver + glanceclient c=32" | grep -q "2 failed" || fail "failures not shown"
row "rbdsnap flatten ops=20" | grep -q "95% of rados bench | >= 90% of rados bench | met" || fail "flatten"
row "rbd flatten ops=20" | grep -q "50% of rados bench" || fail "rbd flatten ratio"
row "10000 images" | grep -q "MISSED" || fail "reaper target"
row "| idle |" | grep -q "| met |" || fail "rss target"
row "ERROR" | grep -q "lab/start libvirt guest failed" || fail "error row"
$py -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["meta"]["commit"]=="abc"; assert len(d["rows"])==10; assert any(t["verdict"]=="MISSED" for t in d["table"])' \
    "$tmp/out.json" || fail "JSON document"
cmp -s "$tmp/stdout" "$tmp/t.md" || fail "printed table differs from the markdown file"
echo "PASS"
