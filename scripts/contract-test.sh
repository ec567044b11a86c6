#!/usr/bin/env bash
# Contract test: check aisle's OpenAPI 3.1 document (GET /openapi.json) against the 3.1 schema
# (openapi-spec-validator), then run schemathesis (PyPI, pinned) over every operation of it
# against a real server, with valid and invalid data (examples, coverage, fuzzing and stateful
# phases): once on a keyed server with an admin key (`Authorization: Bearer`), once on an
# unkeyed one (open on loopback). Each run must end with no failure at all: no 5xx, no response
# that differs from the document (status, content type, headers, body schema, SSE events), no
# invalid request accepted and no valid one rejected. Around each run, GET /metrics is parsed
# with prometheus_client's parser and its histograms must be well formed and have moved.
#
# Seed and settings are in tests/schemathesis.toml: the same seed, document and server give the
# same requests. Reports (JUnit, a VCR cassette of every request, a JSON summary, the server's
# log, schemathesis's crash files for `st replay`) go to CONTRACT_REPORT_DIR (default: a new
# temporary directory, kept when something fails and removed otherwise).
#
# Needs the release binary (scripts/test.sh builds it) and the models (models/fetch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
# hypothesis and jsonschema-rs are pinned too: the seed reproduces a run only with the same
# generator (hypothesis) and validator.
st=4.32.5 hyp=6.170.17 jrs=0.60.3 osv=0.9.0 prom=0.26.0
venv=${AISLE_CACHE:-$HOME/.cache/aisle}/venv-contract-schemathesis-$st-hypothesis-$hyp-jsonschema-rs-$jrs-osv-$osv-prometheus-client-$prom
if [ ! -x "$venv/bin/schemathesis" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$st" "hypothesis==$hyp" "jsonschema-rs==$jrs" \
    "openapi-spec-validator==$osv" "prometheus-client==$prom"
fi
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
# The small chat model unless told otherwise, and short answers: every generated token costs
# time, and schemathesis calls the model-backed operations with many inputs. (The hooks cap an
# explicit max_tokens; these cap the defaults.)
export AISLE_CHAT_MODEL=${AISLE_CHAT_MODEL:-SmolLM2-135M-Instruct}
export AISLE_CHAT_DEFAULT_MAX_TOKENS=${AISLE_CHAT_DEFAULT_MAX_TOKENS:-16}
export AISLE_ASSISTANT_MAX_TOKENS=${AISLE_ASSISTANT_MAX_TOKENS:-32}
export SCHEMATHESIS_HOOKS=$root/tests/contract/hooks.py
config=$root/tests/schemathesis.toml

if [ -n "${CONTRACT_REPORT_DIR:-}" ]; then
  work=$CONTRACT_REPORT_DIR; mkdir -p "$work"; keep=1
else
  work=$(mktemp -d); keep=${CONTRACT_KEEP:-0}
fi
work=$(cd "$work" && pwd)
pid=""
data_dirs=()
cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf ${data_dirs[@]+"${data_dirs[@]}"}
  if [ "$keep" = 1 ] || [ "$status" != 0 ]; then echo "contract: reports in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Start `aisle serve` on a free loopback port over DATA_DIR; sets url and pid.
start_server() {
  local data=$1 log=$2
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$log.out" 2> "$log" &
  pid=$!
  url=""
  for _ in $(seq 1 600); do
    url=$(sed -n 's/^aisle listening on //p' "$log.out")
    if [ -n "$url" ] && curl -sf "$url/readyz" > /dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "aisle serve exited" >&2; exit 1; fi
    sleep 0.2
  done
  cat "$log" >&2; echo "aisle serve did not become ready" >&2; exit 1
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

failed=0
# One schemathesis run: MODE is keyed or open.
run_mode() {
  local mode=$1 dir="$work/$1" data key=""
  mkdir -p "$dir"
  data=$(mktemp -d); data_dirs+=("$data")
  # A small catalog (the demo's first 60 products), so that reads, search and recommendations
  # answer with products rather than empty lists.
  head -n 60 data/demo/products.ndjson > "$data/catalog.ndjson"
  "$bin" import products "$data/catalog.ndjson" --data-dir "$data" > /dev/null 2>&1 \
    || { echo "aisle import failed" >&2; exit 1; }
  local auth=()
  if [ "$mode" = keyed ]; then
    # The key is the only line on stdout (the notice goes to stderr).
    key=$("$bin" keys create --role admin --name contract --data-dir "$data" 2> /dev/null)
    [ -n "$key" ] || { echo "aisle keys create printed no key" >&2; exit 1; }
    auth=(-H "Authorization: Bearer $key")
  else
    # The server is open, but the document says keys are required: without this, schemathesis
    # reports every operation for accepting requests without a key (ignored_auth) and for
    # accepting its "missing Authorization" negative cases.
    auth=(--generation-with-security-parameters false --exclude-checks ignored_auth)
    # Making a key on a server without keys gives it keys (by design: from then on it is closed
    # to requests without one), which would end this run; the keyed run covers the operation.
    auth+=(--exclude-operation-id createKey)
  fi
  # The data-acceptance checks (off in tests/schemathesis.toml; see there) on request.
  [ "${CONTRACT_DATA_CHECKS:-0}" = 1 ] && auth+=(--checks all)
  start_server "$data" "$dir/server.log"
  echo "contract $mode: server at $url"

  curl -sf "$url/openapi.json" -o "$dir/openapi.json"
  if [ "$mode" = keyed ]; then
    "$venv/bin/openapi-spec-validator" --schema 3.1 "$dir/openapi.json" || failed=1
    "$venv/bin/python" tests/contract/check_openapi.py "$dir/openapi.json" "$config" || failed=1
  elif ! cmp -s "$dir/openapi.json" "$work/keyed/openapi.json"; then
    echo "contract: the unkeyed server's document differs from the keyed one's" >&2; failed=1
  fi

  AISLE_KEY=$key "$venv/bin/python" tests/contract/metrics_check.py snapshot "$url" "$dir/metrics-before.txt"
  local started=$SECONDS rc=0
  # Inside the report directory: schemathesis writes .schemathesis/ (crash files for
  # `st replay`) and .hypothesis/ into the current directory.
  (cd "$dir" && "$venv/bin/schemathesis" --config-file "$config" run "$url/openapi.json" "${auth[@]}" \
      --no-color --report junit,vcr,json --report-dir . \
      --report-junit-path junit.xml --report-vcr-path cassette.yaml --report-json-path report.json \
      > schemathesis.log 2>&1) || rc=$?
  echo "contract $mode: schemathesis exited $rc after $((SECONDS - started))s"
  if [ "$rc" != 0 ]; then
    failed=1
    # Failures, errors and warnings (each failure with a curl line and a Test Case ID).
    sed -n '/^=* \(FAILURES\|ERRORS\|WARNINGS\) =*$/,/^=* SUMMARY =*$/p' "$dir/schemathesis.log" | head -400
  fi
  sed -n '/^=* SUMMARY =*$/,$p' "$dir/schemathesis.log"
  if [ "$rc" != 0 ]; then
    # The crash files are in $dir/.schemathesis; the document is saved next to them because the
    # server that served it (and its port) is gone.
    echo "replay (against a server started again${key:+, with a key of its own}):"
    echo "  cd $dir && $venv/bin/st replay [TEST_CASE_ID] --keep --schema-location openapi.json --url URL${key:+ -H 'Authorization: Bearer KEY'}"
    echo "or the whole run: the same seed replays it (scripts/contract-test.sh; tests/schemathesis.toml)"
  fi
  [ -f "$dir/report.json" ] && { "$venv/bin/python" tests/contract/report_summary.py "$mode" "$dir/report.json" || failed=1; }

  AISLE_KEY=$key "$venv/bin/python" tests/contract/metrics_check.py snapshot "$url" "$dir/metrics-after.txt"
  # Every histogram must have moved, or only those named in CONTRACT_HISTOGRAMS (space-separated).
  local moved=()
  for h in ${CONTRACT_HISTOGRAMS:-}; do moved+=(--require-moved "$h"); done
  "$venv/bin/python" tests/contract/metrics_check.py compare "$dir/metrics-before.txt" "$dir/metrics-after.txt" \
    ${moved[@]+"${moved[@]}"} || failed=1
  "$venv/bin/python" tests/contract/dashboard_check.py docs/grafana-dashboard.json README.md "$dir/metrics-after.txt" \
    || failed=1
  stop_server
}

run_mode keyed
run_mode open
if [ "$failed" != 0 ]; then
  keep=1
  echo "contract: FAILED" >&2
  exit 1
fi
echo "contract: OK"
