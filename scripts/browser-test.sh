#!/usr/bin/env bash
# Browser tests of the console (/console), the storefront demo (/shop) and the widget
# (/widget.js): Debian's headless Chromium driven by Playwright for Python (PyPI, pinned; it uses
# the system Chromium, no browser download), against real aisle servers with the real models:
#
#   - a keyed server over the demo catalog (admin, app and read keys; the widget's origin in
#     [server] cors_origins);
#   - a retailer's page on another origin (python's http.server) that embeds the widget;
#   - a server without keys over a second catalog (data/home), for the shop on other data.
#
# Screenshots (desktop and phone width) go to BROWSER_REPORT_DIR (default: a new temporary
# directory; its path is printed), with the servers' logs. The first load of the console's
# overview (bytes transferred, time until drawn) is printed as a MEASURED line, not asserted.
#
# Needs the release binary (scripts/test.sh builds it), the models and data/fetch.sh's catalogs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
pw=1.65.2
if ! command -v chromium > /dev/null; then
  echo "installing chromium from Debian's packages (for the browser tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
venv=${AISLE_CACHE:-$HOME/.cache/aisle}/venv-browser-playwright-$pw
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright' 2> /dev/null; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet "playwright==$pw"
fi
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
[ -x "$bin" ] || { echo "browser: no release binary at $bin (scripts/test.sh builds it; set CARGO_TARGET_DIR)" >&2; exit 1; }

out=${BROWSER_REPORT_DIR:-$(mktemp -d /tmp/aisle-browser-XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pids=()
dirs=()
cleanup() {
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done
  rm -rf ${dirs[@]+"${dirs[@]}"}
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Start `aisle serve` over DATA_DIR with a log named NAME; sets served (its URL).
serve() {
  local data=$1 name=$2 url=""
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$out/$name.out" 2> "$out/$name.log" &
  pids+=($!)
  for _ in $(seq 1 900); do
    url=$(sed -n 's/^aisle listening on //p' "$out/$name.out")
    if [ -n "$url" ] && curl -sf "$url/readyz" > /dev/null; then served=$url; return 0; fi
    kill -0 "${pids[-1]}" 2> /dev/null || { tail -20 "$out/$name.log" >&2; echo "aisle serve exited" >&2; return 1; }
    sleep 0.2
  done
  echo "aisle serve did not become ready" >&2; return 1
}

data=$(mktemp -d); dirs+=("$data")
# A configured pseudonym secret (for this store from its first write), which the console's
# configuration page must not show.
export AISLE_PRIVACY_SECRET=$("$py" -c 'import secrets; print(secrets.token_hex(16))')
started=$SECONDS
"$bin" import products data/demo/products.ndjson --data-dir "$data" > /dev/null 2> "$out/import.log"
echo "browser: imported the demo catalog in $((SECONDS - started))s"
# A benchmark report where the console looks for reports (the one the README shows).
mkdir -p "$data/reports" && cp docs/bench-quick.json "$data/reports/bench-quick.json"
key() { "$bin" keys create --role "$1" --name "browser-$1" --data-dir "$data" 2> /dev/null; }
export AISLE_ADMIN_KEY=$(key admin) AISLE_APP_KEY=$(key app) AISLE_READ_KEY=$(key read)
widget_key=$(key widget)  # the widget's own key: what a shopper's page may do, nothing more

# The retailer's page: another origin, with the documented snippet and a widget key.
site=$(mktemp -d); dirs+=("$site")
site_port=$(free_port)
export AISLE_SERVER_CORS_ORIGINS="http://127.0.0.1:$site_port"
serve "$data" demo
url=$served
cat > "$site/index.html" <<EOF
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>A retailer's page</title></head>
<body>
<h1>Our shop</h1>
<div data-aisle="recommendations" data-limit="4" data-product="el-0001"></div>
<div data-aisle="assistant"></div>
<script src="$url/widget.js" data-key="$widget_key" data-customer="widget-shopper-1" defer></script>
</body></html>
EOF
(cd "$site" && exec "$py" -m http.server "$site_port" --bind 127.0.0.1 > "$out/site.log" 2>&1) &
pids+=($!)
export BROWSER_SECRET=$AISLE_PRIVACY_SECRET
unset AISLE_SERVER_CORS_ORIGINS AISLE_PRIVACY_SECRET

# The second catalog, on a server without keys (open on loopback).
second=$(mktemp -d); dirs+=("$second")
"$bin" import products data/home/products.ndjson --data-dir "$second" > /dev/null 2> "$out/import-home.log"
serve "$second" home
second_url=$served

echo "browser: servers at $url and $second_url, the widget's page at http://127.0.0.1:$site_port/"
WIDGET_PAGE_URL="http://127.0.0.1:$site_port/" SECOND_URL="$second_url" \
  "$venv/bin/python" tests/browser/pages.py "$url" "$out"
