"""disk_full: the data directory on a small tmpfs, filled up by a filler file while the
server runs.

With the disk full, writes must fail cleanly: an `application/problem+json` answer with
status 507 or 503 (never a 500, a hang, a reset or a dead process), reads (GET a product,
search) must keep working; once the filler is deleted, writes must succeed again; after a
restart everything acknowledged must be there.
"""

import collections
import contextlib
import errno
import os
import shutil
import subprocess
import time

from harness import (Failure, demo_products, describe_exc, free_bytes, log, product, request,
                     same_product, version_of)

FS = os.environ.get("FAULT_DISK_FS", "tmpfs")  # or "ext4": a loop-mounted image (a real disk's filesystem)
# 128 MiB: on a tmpfs the embedded store transiently takes ~30-55 MiB while it starts (measured),
# so on a 64 MiB one a restart dies with SIGBUS even after a clean stop. FAULT_TMPFS_MB also sizes
# the ext4 image.
TMPFS_MB = int(os.environ.get("FAULT_TMPFS_MB", "128"))
PRESSURE_SECS = 45          # at most this long writing into the full disk
PRESSURE_ATTEMPTS = 80
ENOUGH_FAILURES = 4         # failing writes of each kind (products, events) to look at
RECOVERY_SECS = 20          # after the filler goes, writes must succeed within this
# The server's disk watermark ([store] min_free_mb, 256 MiB by default) scaled to this small
# filesystem: writes are refused (507) under 16 MiB free.
ENV = {"AISLE_STORE_MIN_FREE_MB": "16"}


def fill(path):
    """Write a filler file until the filesystem refuses (ENOSPC); returns its size."""
    size = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    size += f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return size


class Writes:
    """Acknowledged writes (to check after the restart) and every failed write's answer."""

    def __init__(self):
        self.products = {}      # id -> acknowledged product
        self.events = []        # acknowledged event ids
        self.failures = []      # (kind, description) of each failed write
        self.next_event = 0

    def put_product(self, base, pid, version, pad=0):
        """PUT one product; returns (ok, outcome text)."""
        p = product(pid, version, pad)
        try:
            r = request(base, "PUT", f"/v1/products/{pid}", {k: v for k, v in p.items() if k != "id"}, timeout=20)
        except OSError as e:
            return False, ("exception", describe_exc(e), None)
        if 200 <= r.status < 300:
            self.products[pid] = p
            return True, None
        return False, ("answer", r, None)

    def post_events(self, base, n, product_ids):
        """POST a batch of n events with fresh ids; returns (ok, outcome)."""
        evs = []
        for i in range(n):
            self.next_event += 1
            evs.append({"id": f"df-ev-{self.next_event}", "session_id": "s-df",
                        "product_id": product_ids[i % len(product_ids)], "kind": "view"})
        try:
            r = request(base, "POST", "/v1/events", {"events": evs}, timeout=20)
        except OSError as e:
            return False, ("exception", describe_exc(e), None)
        if r.status == 200:
            results = r.json()["results"]
            self.events += [x["id"] for x in results if x.get("status") == "accepted"]
            if all(x.get("status") == "accepted" for x in results):
                return True, None
        return False, ("answer", r, None)


def judge_failure(ctx, srv, kind, outcome):
    """Check one failed write against the contract; returns a one-line summary."""
    how, what, _ = outcome
    if how == "exception":
        # A dying process closes its listener before it can be reaped: give it a moment.
        with contextlib.suppress(subprocess.TimeoutExpired):
            srv.proc.wait(2)
        ctx.expect(False, f"{kind} write with the disk full: {what}; server {srv.exit_text()}")
        return f"{kind}: {what}"
    r = what
    summary = f"{kind}: {r.short(300)}"
    ok = r.status in (503, 507) and r.content_type.startswith("application/problem+json")
    if not ok:
        detail = r.short(600)
        try:
            rid = r.json().get("request_id")
        except ValueError:
            rid = None
        lines = srv.log_lines_with(rid) if rid else []
        ctx.expect(False, f"{kind} write with the disk full answered {detail}"
                          + (f"\n      log lines for request {rid}:\n" + "\n".join("      | " + l[:500] for l in lines)
                             if lines else ""))
    return summary


def diagnose_restart(ctx, mnt, data):
    """The restart failed: tell a damaged data directory from one that needs more free space
    to start. On tmpfs, remount 4x larger and start on the same directory; elsewhere, start
    on a copy on the ordinary disk. Returns that server (to check the writes on), or None."""
    if FS == "tmpfs":
        subprocess.run(["mount", "-o", f"remount,size={TMPFS_MB * 4}m", mnt], check=True)
        where, log_name = f"the same data directory on the tmpfs remounted at {TMPFS_MB * 4} MiB", "remount.log"
    else:
        data_copy = os.path.join(ctx.path("diagnose"), "data")
        shutil.copytree(data, data_copy)
        data, where, log_name = data_copy, "a copy of the data directory on the ordinary disk", "copy.log"
    try:
        srv = ctx.server(data, env=ENV, log_name=log_name)
    except Failure as e:
        ctx.note(f"{where} does not start either (damaged?): {str(e)[:2000]}")
        return None
    ctx.note(f"{where} starts: the acknowledged writes are checked there")
    return srv


def run(ctx):
    mnt = ctx.path("mnt")
    ctx.mount(mnt, TMPFS_MB, FS)
    data = os.path.join(mnt, "data")
    os.makedirs(data)
    srv = ctx.server(data, env=ENV)

    # A small catalog and some events, acknowledged before the disk fills.
    w = Writes()
    demo = demo_products(30)
    r = request(srv.base, "POST", "/v1/products:batch", {"products": demo}, timeout=120)
    if r.status != 200 or r.json().get("accepted") != len(demo):
        raise Failure(f"seeding the catalog failed: {r.short()}")
    for p in demo:
        w.products[p["id"]] = p
    for i in range(5):
        ok, outcome = w.put_product(srv.base, f"df-seed-{i}", i + 1, pad=2000)
        if not ok:
            raise Failure(f"seeding product df-seed-{i} failed: {outcome}")
    ok, outcome = w.post_events(srv.base, 20, [p["id"] for p in demo])
    if not ok:
        raise Failure(f"seeding events failed: {outcome}")
    used = (TMPFS_MB << 20) - free_bytes(mnt)
    filler = os.path.join(mnt, "filler")
    filled = fill(filler)
    log(f"{FS} {TMPFS_MB} MiB, {used / 2**20:.1f} MiB used after seeding; filler of {filled / 2**20:.1f} MiB leaves {free_bytes(mnt)} bytes free")

    # Write into the full disk until enough writes of each kind have failed.
    failures = {"product": [], "event": []}
    acked_when_full = collections.Counter()
    started = time.monotonic()
    attempt = 0
    while (attempt < PRESSURE_ATTEMPTS and time.monotonic() - started < PRESSURE_SECS
           and min(len(v) for v in failures.values()) < ENOUGH_FAILURES and srv.alive()):
        attempt += 1
        if attempt % 2:
            kind = "product"
            ok, outcome = w.put_product(srv.base, f"df-full-{attempt}", 1000 + attempt, pad=4000)
        else:
            kind = "event"
            ok, outcome = w.post_events(srv.base, 50, [p["id"] for p in demo])
        if ok:
            acked_when_full[kind] += 1
        else:
            failures[kind].append(judge_failure(ctx, srv, kind, outcome))
    secs = time.monotonic() - started
    log(f"{attempt} writes in {secs:.1f} s with the disk full: acknowledged {dict(acked_when_full)}, "
        f"failed products {len(failures['product'])}, events {len(failures['event'])}")
    distinct = collections.Counter(s for v in failures.values() for s in v)
    for s, n in distinct.most_common(6):
        log(f"  {n} x {s}")
    ctx.expect(srv.alive(), f"the server died with the disk full ({srv.exit_text()}); log:\n{srv.log_tail(15)}")
    ctx.expect(any(failures.values()), f"no write failed in {attempt} attempts with {free_bytes(mnt)} bytes free "
                                       f"({dict(acked_when_full)} acknowledged): are writes durable?")

    if srv.alive():
        # Reads keep working with the disk full.
        for pid in ["df-seed-0", demo[0]["id"]]:
            try:
                r = request(srv.base, "GET", f"/v1/products/{pid}", timeout=20)
                ctx.expect(r.status == 200, f"GET /v1/products/{pid} with the disk full: {r.short()}")
            except OSError as e:
                ctx.expect(False, f"GET /v1/products/{pid} with the disk full: {describe_exc(e)}")
        try:
            r = request(srv.base, "POST", "/v1/search", {"query": "batteries", "limit": 3}, timeout=20)
            ctx.expect(r.status == 200 and r.json().get("items"), f"search with the disk full: {r.short()}")
        except OSError as e:
            ctx.expect(False, f"search with the disk full: {describe_exc(e)}")

    # Space again: writes succeed (503s with Retry-After are allowed while the server recovers).
    os.remove(filler)
    log(f"filler deleted: {free_bytes(mnt) / 2**20:.1f} MiB free")
    if srv.alive():
        recovered = None
        seen = collections.Counter()
        deadline = time.monotonic() + RECOVERY_SECS
        n = 0
        while time.monotonic() < deadline:
            n += 1
            ok, outcome = w.put_product(srv.base, f"df-after-{n}", 5000 + n)
            if ok:
                recovered = time.monotonic() - (deadline - RECOVERY_SECS)
                break
            how, what, _ = outcome
            seen[what.short(200) if how == "answer" else what] += 1
            time.sleep(1.0)
        if ctx.expect(recovered is not None, f"product writes still fail {RECOVERY_SECS} s after the disk has space "
                                             f"again: {dict(seen)}; log:\n{srv.log_tail(10, 'ERROR|WARN')}"):
            log(f"product writes succeed again after {recovered:.1f} s ({sum(seen.values())} failures before)")
            ok, outcome = w.post_events(srv.base, 10, [p["id"] for p in demo])
            ctx.expect(ok, f"event write after the disk has space again: {outcome and outcome[1]}")

    # Restart: everything acknowledged is there.
    how = srv.stop()
    log(f"SIGTERM: {how}")
    try:
        srv = ctx.server(data, env=ENV, log_name="restart.log")
    except Failure as e:
        ctx.expect(False, f"restart on the data directory after the disk-full episode failed: {e}")
        srv = diagnose_restart(ctx, mnt, data)
        if srv is None:
            ctx.fail_if_problems()
    missing, wrong = [], []
    for pid, sent in w.products.items():
        r = request(srv.base, "GET", f"/v1/products/{pid}")
        if r.status != 200:
            missing.append(f"{pid}: {r.status}")
        elif pid.startswith("df-") and not (version_of(r.json()) is not None and same_product(r.json(), sent)):
            wrong.append(f"{pid}: {r.json()}")
    ctx.expect(not missing, f"{len(missing)} of {len(w.products)} acknowledged products missing after restart: "
                            f"{missing[:8]}")
    ctx.expect(not wrong, f"{len(wrong)} acknowledged products changed after restart: {wrong[:3]}")
    lost = []
    for i in range(0, len(w.events), 500):
        evs = [{"id": e, "session_id": "s-df", "product_id": demo[0]["id"], "kind": "view"}
               for e in w.events[i:i + 500]]
        r = request(srv.base, "POST", "/v1/events", {"events": evs}, timeout=60)
        if not ctx.expect(r.status == 200, f"re-sending acknowledged events after restart: {r.short()}"):
            break
        lost += [x.get("id") for x in r.json()["results"] if x.get("status") != "duplicate"]
    ctx.expect(not lost, f"{len(lost)} of {len(w.events)} acknowledged events lost after restart: {lost[:8]}")
    ctx.note(f"{len(w.products)} products and {len(w.events)} events acknowledged in all; failed writes: "
             + "; ".join(f"{n} x {s}" for s, n in distinct.most_common(3)))
    ctx.fail_if_problems()
