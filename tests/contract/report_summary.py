"""One line from a schemathesis JSON run report (--report json), and its verdict.

    report_summary.py LABEL REPORT.json

Prints e.g.
    contract keyed: 1534 cases, 33/33 operations, 0 server errors, 0 response schema mismatches, 0 other failures, 0 errors
and exits 1 when the run did not complete or anything failed or errored (schemathesis's own exit
status says the same; this names the counts for the log).
"""

import json
import sys

SERVER_ERRORS = {"ST101", "ST102"}  # 5xx; 5xx on an undeclared request Content-Type
SCHEMA_MISMATCHES = {"ST104", "ST105", "ST106", "ST107", "ST108", "ST109", "ST110", "ST111"}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    label, path = argv
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    counts = {"server": 0, "schema": 0, "other": 0}
    lines = []
    for failure in report.get("failures", []):
        code, n = failure.get("code"), int(failure.get("count", 1))
        kind = "server" if code in SERVER_ERRORS else "schema" if code in SCHEMA_MISMATCHES else "other"
        counts[kind] += n
        lines.append(f"  {code} {failure.get('title')}: {n} ({', '.join(failure.get('operations', []))})")
    errors = report.get("errors", [])
    ops = report.get("operations", {})
    cases = report.get("test_cases", {})
    print(
        f"contract {label}: {cases.get('generated', 0)} cases, {ops.get('tested', 0)}/{ops.get('selected', 0)} operations, "
        f"{counts['server']} server errors, {counts['schema']} response schema mismatches, "
        f"{counts['other']} other failures, {len(errors)} errors"
    )
    for line in lines:
        print(line)
    for e in errors:
        print(f"  error: {json.dumps(e)[:300]}")
    warnings = {k: v for k, v in (report.get("warnings") or {}).items() if v}
    if warnings:
        print(f"  warnings: {json.dumps(warnings)[:600]}")
    ok = report.get("complete") and not any(counts.values()) and not errors and report.get("exit_code", 1) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
