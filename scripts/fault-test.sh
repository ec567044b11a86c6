#!/usr/bin/env bash
# Fault tests against real aisle servers (tests/faults/, Python standard library only):
#   crash_under_load  SIGKILL during concurrent product and event writes; acknowledged writes survive
#   disk_full         a small tmpfs fills up: clean 507/503 problem+json, reads keep working, recovery
#   slow_clients      idle connections, a 1 byte/s body and unread SSE streams do not slow others down
# Each test starts its own servers on fresh temporary data directories and cleans up.
# Usage: scripts/fault-test.sh [TEST...]   (all by default; FAULT_KEEP=1 keeps data and logs)
# Needs the release binary (scripts/test.sh builds it), the models (models/fetch.sh) and the demo
# catalog (data/fetch.sh); disk_full needs permission to mount a tmpfs (root), else it is SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
bin="${CARGO_TARGET_DIR:-target}/release/aisle"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "SKIPPED fault tests: they need python3 >= 3.10 ($py)"
  exit 0
fi
if [ ! -x "$bin" ]; then
  echo "no aisle binary at $bin: build it first (cargo build --release)" >&2
  exit 1
fi
# The small chat model unless told otherwise: the tests check behaviour, not prose.
export AISLE_CHAT_MODEL=${AISLE_CHAT_MODEL:-SmolLM2-135M-Instruct}
AISLE_BIN="$(realpath "$bin")" exec "$py" tests/faults/run.py "$@"
