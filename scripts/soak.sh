#!/usr/bin/env bash
# The soak: mixed search, product reads, recommendations, events and assistant traffic from
# locust (PyPI, pinned) against a real server holding the demo catalog, for SOAK_MINUTES
# (default 10) at SOAK_USERS shoppers (default 6, each waiting 0.2-1 s between requests: a rate
# two cores sustain). It reports requests, failures (5xx apart), p50/p99 per route and the
# server's resident memory after the first minute and at the end, and fails on any 5xx or on
# memory at the end more than 10% above the first minute's. A benchmark, not part of
# scripts/test.sh: its figures are in the README.
#
# Needs the release binary, the models and the demo catalog (scripts/demo.sh or scripts/test.sh
# make them). SOAK_OUT keeps the locust CSVs, the memory samples and the server log.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
locust_version=2.47.0
venv=${AISLE_CACHE:-$HOME/.cache/aisle}/venv-locust-$locust_version
if [ ! -x "$venv/bin/locust" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet "locust==$locust_version"
fi
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
minutes=${SOAK_MINUTES:-10}
users=${SOAK_USERS:-6}
out=${SOAK_OUT:-$(mktemp -d)}
mkdir -p "$out"
catalog=data/demo/products.ndjson
export AISLE_CHAT_MODEL=${AISLE_CHAT_MODEL:-SmolLM2-135M-Instruct}
data=$(mktemp -d)
pid=""
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$data"
}
trap cleanup EXIT
"$bin" import products "$catalog" --data-dir "$data" > /dev/null 2>&1
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$out/server.out" 2> "$out/server.log" &
pid=$!
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^aisle listening on //p' "$out/server.out")
  if [ -n "$url" ] && curl -sf "$url/readyz" > /dev/null; then break; fi
  kill -0 $pid 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.2
done
curl -sf "$url/readyz" > /dev/null || { echo "the server did not become ready" >&2; exit 1; }
echo "soak: $users shoppers for $minutes min against $url ($AISLE_CHAT_MODEL), output in $out"
# Resident memory every 5 s: seconds since the load started, kB.
start=$(date +%s)
( while kill -0 $pid 2>/dev/null; do
    echo "$(( $(date +%s) - start )) $(awk '/^VmRSS/ {print $2}' /proc/$pid/status)"; sleep 5
  done ) > "$out/rss.txt" &
sampler=$!
AISLE_SOAK_CATALOG=$catalog "$venv/bin/locust" -f tests/soak/locustfile.py --headless --only-summary \
  -u "$users" -r 2 -t "${minutes}m" --host "$url" --csv "$out/soak" > "$out/locust.log" 2>&1 || true
"$py" - "$out" "$minutes" <<'PY'
import csv, json, sys
out, minutes = sys.argv[1], float(sys.argv[2])
rows = list(csv.DictReader(open(f"{out}/soak_stats.csv")))
fails = list(csv.DictReader(open(f"{out}/soak_failures.csv")))
five = sum(int(f["Occurrences"]) for f in fails if f["Error"].startswith("HTTP 5"))
other = sum(int(f["Occurrences"]) for f in fails) - five
rss = [tuple(map(int, l.split())) for l in open(f"{out}/rss.txt") if len(l.split()) == 2]
first = min(rss, key=lambda r: abs(r[0] - 60))[1] if rss else 0
last = rss[-1][1] if rss else 0
print(f"| route | requests | failures | p50 ms | p99 ms | req/s |")
print(f"|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['Name']} | {r['Request Count']} | {r['Failure Count']} | {r['50%']} | {r['99%']} | {float(r['Requests/s']):.1f} |")
growth = (last - first) / first if first else 0.0
print(f"5xx: {five}; other failures: {other}; resident memory {first / 1024:.0f} MiB after 1 min, "
      f"{last / 1024:.0f} MiB after {minutes:g} min ({growth:+.1%})")
for f in fails:
    print(f"  {f['Method']} {f['Name']}: {f['Error']} x{f['Occurrences']}")
json.dump({"rows": rows, "5xx": five, "other_failures": other, "rss_kb_1min": first, "rss_kb_end": last},
          open(f"{out}/summary.json", "w"), indent=1)
sys.exit(1 if five or growth > 0.10 else 0)
PY
