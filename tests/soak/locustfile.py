"""The soak's traffic (locust): shoppers searching, reading products, getting recommendations,
sending events and asking the assistant, in proportions a shop sees (reads first), over the
catalog the server was started with.

Every answer that is not 2xx is a failure named by its status, so the summary counts 5xx apart
from everything else. Run by scripts/soak.sh; AISLE_SOAK_CATALOG names the NDJSON catalog the
server holds (ids, titles and categories are read from it).
"""

import itertools
import json
import os
import random
import uuid

from locust import HttpUser, between, task

with open(os.environ["AISLE_SOAK_CATALOG"]) as f:
    PRODUCTS = [json.loads(line) for line in f if line.strip()]
IDS = [p["id"] for p in PRODUCTS]
# Queries made from the catalog's own words: a title's first words, a category, a brand.
QUERIES = sorted({" ".join(p["title"].split()[:3]) for p in PRODUCTS}
                 | {c for p in PRODUCTS for c in p.get("categories", [])}
                 | {p["brand"] for p in PRODUCTS if p.get("brand")})
QUESTIONS = [f"I am looking for {q.lower()}" for q in QUERIES[:200]] + [
    f"something like {p['title']} but cheaper" for p in PRODUCTS[:100]]
KINDS = ["view", "view", "view", "click", "add_to_cart", "purchase"]
_counter = itertools.count()


def check(response):
    """Everything but 2xx is a failure, named by its status."""
    if not 200 <= response.status_code < 300:
        response.failure(f"HTTP {response.status_code}")


class Shopper(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self):
        self.customer = f"soak-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        self.session = []

    @task(6)
    def search(self):
        body = {"query": random.choice(QUERIES), "limit": 10}
        with self.client.post("/v1/search", json=body, name="POST /v1/search", catch_response=True) as r:
            check(r)

    @task(4)
    def product(self):
        pid = random.choice(IDS)
        with self.client.get(f"/v1/products/{pid}", name="GET /v1/products/{id}", catch_response=True) as r:
            check(r)
        self.session = ([pid] + self.session)[:5]

    @task(3)
    def events(self):
        events = [{"id": uuid.uuid4().hex, "customer_id": self.customer, "session_id": self.customer,
                   "product_id": random.choice(IDS), "kind": random.choice(KINDS)} for _ in range(5)]
        with self.client.post("/v1/events", json={"events": events}, name="POST /v1/events",
                              catch_response=True) as r:
            check(r)

    @task(3)
    def recommend(self):
        if self.session and random.random() < 0.5:
            body = {"session": {"items": self.session}, "limit": 10}
            with self.client.post("/v1/recommendations", json=body, name="POST /v1/recommendations",
                                  catch_response=True) as r:
                check(r)
        else:
            with self.client.get(f"/v1/customers/{self.customer}/recommendations?limit=10",
                                 name="GET /v1/customers/{id}/recommendations", catch_response=True) as r:
                check(r)

    @task(1)
    def assistant(self):
        body = {"customer_id": self.customer, "messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}
        with self.client.post("/v1/assistant/chat", json=body, name="POST /v1/assistant/chat",
                              catch_response=True, timeout=120) as r:
            check(r)
