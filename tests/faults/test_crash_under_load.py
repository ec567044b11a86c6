"""crash_under_load: SIGKILL the server while 4 clients write products and events, restart
it on the same data directory, and check that every acknowledged write is there, with its
acknowledged content, and that nothing readable is half-written.

A write is acknowledged by a 2xx answer (for a batch: the items the answer counts as
accepted, for events: those whose result is `accepted`). A write in flight at the kill may or
may not have landed; either is fine, but if it landed it must be whole.
"""

import random
import threading
import time

from harness import (Failure, list_all_products, log, product, request, same_product,
                     version_of)

THREADS = 4
LOAD_SECS = 2.5
ROUNDS = 2          # kill/restart cycles: the second crashes a store recovered from the first
IDS_PER_THREAD = 25
BASE = 20  # products that events refer to, written before the load


class Writer(threading.Thread):
    """One client: PUT products, batches of products and event batches, in turn, recording
    what was acknowledged and what was sent without an answer."""

    def __init__(self, base, t, stop, first_version):
        super().__init__(daemon=True)
        self.base, self.t, self.stop = base, t, stop
        self.rng = random.Random(first_version + t)
        self.version = first_version
        self.acked = {}          # product id -> last acknowledged version
        self.sent = {}           # product id -> every version sent
        self.unanswered = {}     # product id -> versions sent after its last ack, not answered
        self.events_acked = []
        self.events_unanswered = []
        self.busy = False
        self.errors = []         # unexpected answers (not connection errors)
        self.requests = 0        # answered requests
        self.batches = 0         # event batches sent (event ids are unique per batch)

    def ids(self, n):
        return self.rng.sample([f"cl-t{self.t}-{k}" for k in range(IDS_PER_THREAD)], n)

    def send_products(self, pids, batch):
        items = []
        for pid in pids:
            self.version += 1
            items.append(product(pid, self.version))
            self.sent.setdefault(pid, set()).add(self.version)
        try:
            self.busy = True
            if batch:
                r = request(self.base, "POST", "/v1/products:batch", {"products": items}, timeout=30)
            else:
                body = {k: v for k, v in items[0].items() if k != "id"}
                r = request(self.base, "PUT", f"/v1/products/{pids[0]}", body, timeout=30)
        except OSError:
            for p in items:
                self.unanswered.setdefault(p["id"], set()).add(int(p["attributes"]["version"]))
            return False
        finally:
            self.busy = False
        self.requests += 1
        ok = 200 <= r.status < 300 and (not batch or r.json().get("accepted") == len(items))
        if not ok:
            self.errors.append(r.short())
            return True
        for p in items:
            self.acked[p["id"]] = int(p["attributes"]["version"])
            self.unanswered.pop(p["id"], None)
        return True

    def send_events(self, n):
        self.batches += 1
        evs = [{"id": f"ev-v{self.version}-t{self.t}-{self.batches}-{i}", "session_id": f"s-{self.t}",
                "product_id": f"base-{self.rng.randrange(BASE)}", "kind": self.rng.choice(["view", "click", "cart"])}
               for i in range(n)]
        try:
            self.busy = True
            r = request(self.base, "POST", "/v1/events", {"events": evs}, timeout=30)
        except OSError:
            self.events_unanswered.extend(e["id"] for e in evs)
            return False
        finally:
            self.busy = False
        self.requests += 1
        if r.status != 200:
            self.errors.append(r.short())
            return True
        for res in r.json()["results"]:
            if res.get("status") == "accepted":
                self.events_acked.append(res["id"])
            else:
                self.errors.append(f"event result {res}")
        return True

    def run(self):
        step = 0
        while not self.stop.is_set():
            step += 1
            match step % 3:
                case 0:
                    alive = self.send_products(self.ids(1), batch=False)
                case 1:
                    alive = self.send_products(self.ids(5), batch=True)
                case _:
                    alive = self.send_events(20)
            if not alive:
                # The server is gone (the kill): stop after the first connection error.
                return


def load_and_kill(ctx, srv, rnd):
    """Run the writers against srv for LOAD_SECS, SIGKILL it mid-write, return the writers."""
    stop = threading.Event()
    writers = [Writer(srv.base, t, stop, first_version=rnd * 100_000) for t in range(THREADS)]
    for w in writers:
        w.start()
    time.sleep(LOAD_SECS)
    deadline = time.monotonic() + 30
    while sum(len(w.acked) for w in writers) == 0:  # at least one acknowledged product before the kill
        if time.monotonic() > deadline:
            raise Failure(f"no product write acknowledged after 30 s of load; log:\n{srv.log_tail()}")
        time.sleep(0.2)
    in_flight = sum(w.busy for w in writers)
    srv.kill()
    stop.set()
    for w in writers:
        w.join(35)
    log(f"round {rnd}: killed with {in_flight}/{THREADS} requests in flight after "
        f"{sum(w.requests for w in writers)} answered requests: "
        f"{sum(len(w.acked) for w in writers)} products and {sum(len(w.events_acked) for w in writers)} events "
        f"acknowledged; {sum(len(v) for w in writers for v in w.unanswered.values())} product versions and "
        f"{sum(len(w.events_unanswered) for w in writers)} events unanswered")
    for w in writers:
        for e in w.errors[:3]:
            ctx.expect(False, f"round {rnd}, writer {w.t}: unexpected answer under load: {e}")
    ctx.expect(in_flight > 0, f"round {rnd}: no write was in flight at the kill (no torn write exercised)")
    return writers, in_flight


class Ledger:
    """What every round of writers was told, merged in order: per product the last
    acknowledged version and the versions sent after it without an answer."""

    def __init__(self):
        self.acked, self.pending, self.sent = {}, {}, {}
        self.events_acked = []

    def add(self, writers):
        for w in writers:
            for pid, v in w.acked.items():
                self.acked[pid] = v
                self.pending[pid] = set()
            for pid, vs in w.unanswered.items():
                self.pending.setdefault(pid, set()).update(vs)
            for pid, vs in w.sent.items():
                self.sent.setdefault(pid, set()).update(vs)
            self.events_acked += w.events_acked


def verify(ctx, srv, ledger, base_items, rnd):
    """Every acknowledged write is there and whole; nothing readable is half-written."""
    for pid, v in sorted(ledger.acked.items()):
        r = request(srv.base, "GET", f"/v1/products/{pid}")
        if not ctx.expect(r.status == 200, f"round {rnd}: acknowledged product {pid} v{v} is missing after "
                                           f"restart: {r.short()}"):
            continue
        stored = r.json()
        sv = version_of(stored)
        allowed = {v} | ledger.pending.get(pid, set())
        ctx.expect(sv in allowed and same_product(stored, product(pid, sv)),
                   f"round {rnd}: product {pid}: acknowledged v{v} (later unanswered versions: "
                   f"{sorted(ledger.pending.get(pid, []))}), stored {stored}")
    for b in base_items:
        r = request(srv.base, "GET", f"/v1/products/{b['id']}")
        ctx.expect(r.status == 200 and r.json()["title"] == b["title"], f"base product {b['id']}: {r.short()}")
    listed = list_all_products(srv.base)
    for stored in listed:
        pid = stored.get("id", "")
        if pid.startswith("base-"):
            continue
        sv = version_of(stored)
        ctx.expect(pid in ledger.sent and sv in ledger.sent[pid] and same_product(stored, product(pid, sv)),
                   f"round {rnd}: listed product is not a whole version that was sent: {stored}")
    never_acked = set(ledger.sent) - set(ledger.acked)
    log(f"round {rnd}: {len(listed)} products listed; {len(never_acked)} ids were only ever in flight "
        f"({sum(1 for s in listed if s['id'] in never_acked)} of them landed)")
    lost = []
    for i in range(0, len(ledger.events_acked), 500):
        chunk = ledger.events_acked[i:i + 500]
        evs = [{"id": e, "session_id": "s-resend", "product_id": "base-0", "kind": "view"} for e in chunk]
        r = request(srv.base, "POST", "/v1/events", {"events": evs}, timeout=60)
        if not ctx.expect(r.status == 200, f"round {rnd}: re-sending events failed: {r.short()}"):
            break
        lost += [res.get("id") for res in r.json()["results"] if res.get("status") != "duplicate"]
    ctx.expect(not lost, f"round {rnd}: {len(lost)} of {len(ledger.events_acked)} acknowledged events were not "
                         f"duplicates after the restart (lost): {lost[:10]}")
    r = request(srv.base, "POST", "/v1/search", {"query": "fault test desk lamp", "limit": 5})
    ctx.expect(r.status == 200 and r.json()["items"], f"round {rnd}: search after restart: {r.short()}")


def run(ctx):
    data = ctx.path("data")
    srv = ctx.server(data)
    base_items = [{"id": f"base-{i}", "title": f"Base product {i}", "price": i + 1.0} for i in range(BASE)]
    r = request(srv.base, "POST", "/v1/products:batch", {"products": base_items}, timeout=60)
    if r.status != 200 or r.json().get("accepted") != BASE:
        raise Failure(f"writing the base products failed: {r.short()}")
    ledger = Ledger()
    in_flight = 0
    for rnd in range(1, ROUNDS + 1):
        writers, n = load_and_kill(ctx, srv, rnd)
        in_flight += n
        ledger.add(writers)
        srv = ctx.server(data)
        log(f"round {rnd}: restarted on the same data directory")
        verify(ctx, srv, ledger, base_items, rnd)
    ctx.expect(not srv.log_lines_with("panicked"), f"panic in the log:\n{srv.log_tail(10, 'panick')}")
    ctx.note(f"{ROUNDS} kill/restart rounds: {len(ledger.acked)} acknowledged products and "
             f"{len(ledger.events_acked)} acknowledged events checked; {in_flight} writes in flight at the kills")
    ctx.fail_if_problems()
