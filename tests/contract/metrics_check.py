"""Check a Prometheus text exposition with prometheus_client's own parser, and that histograms moved.

    metrics_check.py snapshot URL OUT.txt     save GET URL/metrics (with $AISLE_KEY as a bearer key if set)
    metrics_check.py compare BEFORE.txt AFTER.txt [--require-histogram NAME]... [--require-moved NAME]...

`compare` parses both files (a parse error fails), checks every histogram is well formed in both
(buckets per label set cumulative and non-decreasing in `le`, a `+Inf` bucket equal to `_count`,
`_sum` and `_count` present), checks counters never went down, and that each histogram named with
--require-moved (default: every histogram in AFTER) saw its `_count` and `_sum` grow and at least
one bucket grow. Exit status 0 when all hold, 1 otherwise, with one line per problem.
"""

import math
import os
import sys
import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def fetch(url: str) -> str:
    req = urllib.request.Request(url.rstrip("/") + "/metrics")
    key = os.environ.get("AISLE_KEY")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        ctype = resp.headers.get("Content-Type", "")
        if not ctype.startswith("text/plain"):
            raise SystemExit(f"/metrics answered Content-Type {ctype!r}, expected text/plain")
        return resp.read().decode("utf-8")


def parse(text: str, where: str):
    """{family name: Metric}; exits naming the file on a parse error.

    prometheus_client's parser is lenient: it accepts a family declared twice, samples with no
    `# TYPE` (family type "unknown"; also what a counter gets when its TYPE line lacks `_total`
    while its sample has it) and histograms without `+Inf`/`_sum`/`_count`. Those are checked here
    and in check_histogram.
    """
    try:
        listed = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError (and others) on a malformed line
        raise SystemExit(f"{where}: not a valid Prometheus text exposition: {e}")
    families, problems = {}, []
    for f in listed:
        if f.name in families:
            problems.append(f"{where}: family {f.name} appears more than once")
        if f.type == "unknown":
            problems.append(f"{where}: {f.name} has no (matching) # TYPE line")
        # A family with no samples is legal (a labelled family before its first observation);
        # --require-moved catches a histogram that never gets any.
        families[f.name] = f
    if problems:
        raise SystemExit("\n".join(problems))
    return families


def _labels_without(labels: dict, drop: str) -> tuple:
    return tuple(sorted((k, v) for k, v in labels.items() if k != drop))


def histogram_series(family):
    """{label set (without le): {"buckets": [(le, value)], "sum": x, "count": n}}."""
    series = defaultdict(lambda: {"buckets": [], "sum": None, "count": None})
    for s in family.samples:
        if s.name == family.name + "_bucket":
            le = s.labels.get("le")
            series[_labels_without(s.labels, "le")]["buckets"].append((float(le), s.value))
        elif s.name == family.name + "_sum":
            series[_labels_without(s.labels, "")]["sum"] = s.value
        elif s.name == family.name + "_count":
            series[_labels_without(s.labels, "")]["count"] = s.value
    return series


def check_histogram(family, where: str) -> list[str]:
    problems = []
    series = histogram_series(family)
    for labels, s in series.items():
        name = f"{family.name}{dict(labels) or ''}"
        if s["sum"] is None or s["count"] is None:
            problems.append(f"{where}: {name} lacks _sum or _count")
            continue
        buckets = sorted(s["buckets"])
        if not buckets or not math.isinf(buckets[-1][0]):
            problems.append(f"{where}: {name} has no le=\"+Inf\" bucket")
            continue
        values = [v for _, v in buckets]
        if any(b < a for a, b in zip(values, values[1:])):
            problems.append(f"{where}: {name} buckets are not cumulative: {buckets}")
        if values[-1] != s["count"]:
            problems.append(f"{where}: {name} +Inf bucket {values[-1]} != _count {s['count']}")
        if s["count"] < 0 or s["sum"] < 0:
            problems.append(f"{where}: {name} has a negative _count or _sum")
    return problems


def compare(before_path: str, after_path: str, required: list[str], moved: list[str] | None) -> int:
    before = parse(open(before_path, encoding="utf-8").read(), before_path)
    after = parse(open(after_path, encoding="utf-8").read(), after_path)
    problems = []
    for where, fams in ((before_path, before), (after_path, after)):
        for f in fams.values():
            if f.type == "histogram":
                problems += check_histogram(f, where)
    histograms = sorted(n for n, f in after.items() if f.type == "histogram")
    for name in required:
        if after.get(name) is None or after[name].type != "histogram":
            problems.append(f"{after_path}: no histogram named {name} (histograms: {histograms})")
    for name in moved if moved is not None else histograms:
        if name not in after or after[name].type != "histogram":
            problems.append(f"{after_path}: no histogram named {name}")
            continue
        b = histogram_series(before[name]) if name in before else {}
        a = histogram_series(after[name])
        grew_count = grew_sum = grew_bucket = False
        for labels, s in a.items():
            p = b.get(labels, {"buckets": [], "sum": 0.0, "count": 0.0})
            grew_count |= s["count"] > (p["count"] or 0)
            grew_sum |= s["sum"] > (p["sum"] or 0)
            pb = dict(p["buckets"])
            grew_bucket |= any(v > pb.get(le, 0) for le, v in s["buckets"])
        if not (grew_count and grew_sum and grew_bucket):
            problems.append(
                f"histogram {name} did not move (count grew: {grew_count}, sum grew: {grew_sum}, a bucket grew: {grew_bucket})"
            )
    for name, f in after.items():
        if f.type != "counter" or name not in before:
            continue
        prev = {(s.name, _labels_without(s.labels, "")): s.value for s in before[name].samples}
        for s in f.samples:
            key = (s.name, _labels_without(s.labels, ""))
            if s.name.endswith("_total") and key in prev and s.value < prev[key]:
                problems.append(f"counter {s.name}{s.labels or ''} went down: {prev[key]} -> {s.value}")
    for p in problems:
        print(p, file=sys.stderr)
    n_hist = len(histograms)
    print(f"metrics: {len(after)} families, {n_hist} histograms, {len(problems)} problems")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "snapshot":
        text = fetch(argv[1])
        parse(text, argv[1] + "/metrics")
        with open(argv[2], "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    if len(argv) >= 3 and argv[0] == "compare":
        required, moved, rest = [], [], argv[3:]
        while rest:
            flag, value, rest = rest[0], rest[1] if len(rest) > 1 else None, rest[2:]
            if flag == "--require-histogram" and value:
                required.append(value)
            elif flag == "--require-moved" and value:
                moved.append(value)
            else:
                print(f"unknown argument {flag}", file=sys.stderr)
                return 2
        return compare(argv[1], argv[2], required, moved or None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
