"""Check that docs/grafana-dashboard.json and the README's metric table name real metrics.

    dashboard_check.py DASHBOARD.json README.md METRICS.txt

Every `aisle_*` metric a dashboard expression uses must be listed in the README's metric table,
and every metric of that table must be in METRICS.txt (a /metrics exposition taken after traffic)
unless the table says it appears only once something happens. Exit status 0 when all hold, 1
otherwise, with one line per problem.
"""

import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"\baisle_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def family(name: str) -> str:
    for s in SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def main(dashboard: str, readme: str, metrics: str) -> int:
    used = set()
    for panel in json.load(open(dashboard))["panels"]:
        for target in panel.get("targets", []):
            used |= {family(n) for n in NAME.findall(target["expr"])}
    # The README's metric table: rows "| `name` | type | ... |".
    listed, lazy = set(), set()
    for line in open(readme):
        cells = line.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`aisle_"):
            continue
        names = re.findall(r"`(aisle_[a-z0-9_]+)`", cells[1])
        listed.update(names)
        if "once it happens" in line:
            lazy.update(names)
    present = set()
    for f in text_string_to_metric_families(open(metrics).read()):
        present.add(f.name)
        present.add(f.name + "_total")  # the parser drops a counter's _total
    problems = [f"the dashboard uses {n}, which the README's metric table does not list" for n in sorted(used - listed)]
    problems += [f"the README lists {n}, which /metrics does not have" for n in sorted(listed - present - lazy)]
    if len(listed) < 20:
        problems.append(f"the README's metric table lists only {len(listed)} metrics")
    for p in problems:
        print(p)
    print(f"dashboard: {len(used)} metrics used, {len(listed)} listed in the README, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
