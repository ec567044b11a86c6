"""Run the fault tests against the release binary: `python3 tests/faults/run.py [NAME...]`.

Tests: crash_under_load, disk_full, slow_clients (all by default). Each starts its own
servers over fresh temporary data directories and cleans up after itself. Prints one
PASS / FAIL / SKIPPED line per test with its runtime; exits 1 if any test failed.

Environment: AISLE_BIN (default ${CARGO_TARGET_DIR:-target}/release/aisle), AISLE_MODELS_DIR,
AISLE_CHAT_MODEL (default SmolLM2-135M-Instruct), FAULT_KEEP=1 keeps the temp dirs and
server logs, FAULT_TMPFS_MB and FAULT_IDLE_WAIT_S tune disk_full and slow_clients.
"""

import importlib
import os
import resource
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

TESTS = ["crash_under_load", "disk_full", "slow_clients"]


def raise_nofile():
    """Open-file limit up to the hard limit (500 idle sockets and the servers' files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(names):
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown test(s): {', '.join(unknown)}; known: {', '.join(TESTS)}", file=sys.stderr)
        return 2
    if not os.access(harness.BIN, os.X_OK):
        print(f"no aisle binary at {harness.BIN} (cargo build --release, or set AISLE_BIN)", file=sys.stderr)
        return 1
    if not os.path.exists(os.path.join(harness.MODELS, "all-MiniLM-L6-v2", "model.safetensors")):
        print(f"models are missing under {harness.MODELS}: run models/fetch.sh", file=sys.stderr)
        return 1
    nofile = raise_nofile()
    print(f"fault tests: {harness.BIN}, chat model {harness.CHAT_MODEL}, open-file limit {nofile}", flush=True)
    results = []
    for name in names or TESTS:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"test_{name}")
        ctx = harness.Context(name)
        started = time.monotonic()
        try:
            module.run(ctx)
            outcome, why = "PASS", ""
        except harness.Skip as e:
            outcome, why = "SKIPPED", str(e)
        except harness.Failure as e:
            outcome, why = "FAIL", str(e)
        except Exception:  # a bug in the test, or the server answering something unparseable
            outcome, why = "FAIL", "error in the test:\n" + traceback.format_exc()
        finally:
            ctx.cleanup()
        secs = time.monotonic() - started
        results.append((name, outcome, secs, why))
        print(f"{outcome} {name} ({secs:.1f} s){': ' + why if why else ''}", flush=True)
    print("\nsummary:")
    for name, outcome, secs, why in results:
        first = why.splitlines()[0] if why else ""
        print(f"  {outcome:8} {name:18} {secs:6.1f} s  {first}")
    return 1 if any(o == "FAIL" for _, o, _, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
