#!/usr/bin/env python3
"""Exposure of a shop's recommendation lists, measured: a past of 4,000 events (Zipf-distributed
over the catalog, fixed seed) gives products their popularity; then anonymous shoppers each look
at one to three products and ask for a list, and GET /v1/stats/exposure reports who the lists
showed, per source and per experiment variant. Run it on a fresh data directory.

    python3 scripts/exposure-demo.py URL [SHOPPERS] [CATALOG.ndjson]

Start the server with an experiment to compare settings in one run, e.g.
AISLE_EXPERIMENTS='[{"name": "mmr", "variants": [{"name": "mmr"},
{"name": "relevance", "mmr_lambda": 1.0}, {"name": "no-trending", "weights": {"trending": 0}}]}]'.
Standard library only.
"""

import json
import random
import sys
import urllib.request

URL = sys.argv[1].rstrip("/")
SHOPPERS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
CATALOG = sys.argv[3] if len(sys.argv) > 3 else "data/demo/products.ndjson"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read().decode())


products = [json.loads(line)["id"] for line in open(CATALOG) if line.strip()]
rng = random.Random(20261201)
# A shop's past: what shoppers look at follows a Zipf law over the catalog (a shuffled order),
# one event in ten a purchase. It gives products their popularity.
order = products[:]
rng.shuffle(order)
weights = [1.0 / (r + 1) for r in range(len(order))]
def draw(k):
    return list(dict.fromkeys(rng.choices(order, weights, k=k)))
past = [{"session_id": f"past-{i // 4}", "product_id": p, "kind": "purchase" if rng.random() < 0.1 else "view"}
        for i, p in enumerate(rng.choices(order, weights, k=4000))]
for i in range(0, len(past), 1000):
    call("POST", "/v1/events", {"events": past[i:i + 1000]})
# Now the shoppers: each has looked at one to three products (drawn the same way) and asks.
for i in range(SHOPPERS):
    seen = draw(rng.randint(1, 3))
    call("POST", "/v1/recommendations", {"session": {"id": f"exposure-{i}", "items": seen}, "limit": 10})

r = call("GET", "/v1/stats/exposure")
print(f"{r['lists']} lists, {r['total']['impressions']} impressions over {r['catalog_products']} products")
print("| set | impressions | coverage | Gini | long-tail share |")
print("|---|---|---|---|---|")
rows = [("all", r["total"])] + [(f"source {k}", v) for k, v in r["per_source"].items()]
rows += [(f"variant {k}", v) for k, v in r["per_variant"].items()]
for name, s in rows:
    print(f"| {name} | {s['impressions']} | {s['coverage']:.3f} | {s['gini']:.3f} | {s['long_tail_share']:.3f} |")
print("impression share per popularity decile (1 = most popular tenth):",
      " ".join(f"{d['impression_share']:.3f}" for d in r["deciles"]))
for kind in ("categories", "brands"):
    g = r[kind]
    top = ", ".join(f"{x['name']} {x['ratio']:.1f}x" for x in g["top"][:5])
    print(f"{kind}: {g['count']}, Gini {g['gini']:.3f}; most shown against their catalog share: {top}")
