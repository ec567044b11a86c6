#!/usr/bin/env bash
# Run the official `openai` Python client (PyPI, pinned; `jsonschema` checks structured outputs) against a real aisle server started
# on a free loopback port over an empty data directory, then stop the server.
# Needs the release binary (scripts/test.sh builds it) and the models (models/fetch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
venv=${AISLE_CACHE:-$HOME/.cache/aisle}/venv-openai-3.54.0-jsonschema-4.26.0
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet openai==3.54.0 jsonschema==4.26.0
fi
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
# The small chat model unless told otherwise (the server's default is the strongest present);
# server and client must agree on its name.
export AISLE_CHAT_MODEL=${AISLE_CHAT_MODEL:-SmolLM2-135M-Instruct}
data=$(mktemp -d)
log=$(mktemp)
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$log.out" 2> "$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$log" "$log.out"' EXIT
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^aisle listening on //p' "$log.out")
  if [ -n "$url" ] && curl -sf "$url/readyz" > /dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$log" >&2; echo "aisle serve exited" >&2; exit 1; fi
  sleep 0.2
done
curl -sf "$url/readyz" > /dev/null || { cat "$log" >&2; echo "aisle serve did not become ready" >&2; exit 1; }
AISLE_URL="$url" "$venv/bin/python" tests/openai_client.py
