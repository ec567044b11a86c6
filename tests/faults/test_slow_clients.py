"""slow_clients: misbehaving clients must not slow the others down.

While (a) 500 TCP connections send nothing, (b) one client sends a request body one byte per
second and (c) a few clients open server-sent-event streams (chat completions and the
assistant) and never read them, a normal client's GET /v1/products/{id} and POST /v1/search
must keep succeeding with a median latency within FACTOR x the baseline measured before
(or FLOOR_S, whichever is larger). The idle connections must be closed by the server within
IDLE_WAIT_S (a header read timeout); what happens to the slow body is reported.
"""

import os
import selectors
import socket
import statistics
import threading
import time

from harness import CHAT_MODEL, MODELS, Failure, demo_products, describe_exc, log, request

IDLE_CONNECTIONS = 500
SSE_CLIENTS = 3
SAMPLES = 16                 # requests of each kind per latency measurement
FACTOR = 10.0
FLOOR_S = 0.5
IDLE_WAIT_S = float(os.environ.get("FAULT_IDLE_WAIT_S", "40"))  # hyper's usual header timeout is 30 s


def connect(base, rcvbuf=None):
    """A raw TCP connection to the server (optionally with a tiny receive buffer)."""
    host, port = base.removeprefix("http://").split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, int(port)))
    return s


def closed_by_peer(s):
    """Whether the server has closed (or reset) this connection, without blocking."""
    try:
        s.setblocking(False)
        data = s.recv(4096)
        return True if data == b"" else f"answered {data[:200]!r}"
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.setblocking(True)


def measure(base, pids, tag):
    """SAMPLES GETs and SAMPLES searches (each query new, so it is embedded); returns the
    latencies per kind and the failures."""
    lat = {"get": [], "search": []}
    failures = []
    for i in range(SAMPLES):
        for kind in ("get", "search"):
            try:
                if kind == "get":
                    r = request(base, "GET", f"/v1/products/{pids[i % len(pids)]}", timeout=30)
                else:
                    r = request(base, "POST", "/v1/search", {"query": f"wireless headphones {tag} {i}", "limit": 5},
                                timeout=30)
                if r.status != 200:
                    failures.append(f"{kind}: {r.short(300)}")
                else:
                    lat[kind].append(r.elapsed)
            except OSError as e:
                failures.append(f"{kind}: {describe_exc(e)}")
    return lat, failures


def summary(lat):
    return ", ".join(f"{k} median {statistics.median(v) * 1000:.1f} ms max {max(v) * 1000:.1f} ms"
                     for k, v in lat.items() if v)


class SlowBody(threading.Thread):
    """Sends a POST /v1/search whose declared body arrives one byte per second."""

    def __init__(self, base, stop):
        super().__init__(daemon=True)
        self.base, self.stop = base, stop
        self.sent = 0
        self.outcome = None

    def run(self):
        body = b'{"query": "' + b"a" * 400 + b'"}'
        s = connect(self.base)
        s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode())
        started = time.monotonic()
        try:
            while not self.stop.is_set() and self.sent < len(body):
                state = closed_by_peer(s)
                if state:
                    self.outcome = (f"server ended it after {time.monotonic() - started:.0f} s and {self.sent} "
                                    f"body bytes: {'closed' if state is True else state}")
                    return
                s.sendall(body[self.sent:self.sent + 1])
                self.sent += 1
                self.stop.wait(1.0)
            self.outcome = f"still open after {time.monotonic() - started:.0f} s and {self.sent} body bytes"
        except OSError as e:
            self.outcome = f"server ended it after {time.monotonic() - started:.0f} s: {e!r}"
        finally:
            s.close()


def open_sse(base, path, body):
    """Send a streaming request on a socket with a tiny receive buffer and never read."""
    s = connect(base, rcvbuf=2048)
    data = body.encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return s


def metric(base, name):
    """One value from /metrics (None when absent)."""
    r = request(base, "GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def run(ctx):
    srv = ctx.server(ctx.path("data"))
    catalog = demo_products(60)
    r = request(srv.base, "POST", "/v1/products:batch", {"products": catalog}, timeout=180)
    if r.status != 200 or r.json().get("accepted") != len(catalog):
        raise Failure(f"seeding the catalog failed: {r.short()}")
    pids = [p["id"] for p in catalog]
    request(srv.base, "POST", "/v1/search", {"query": "warm up", "limit": 5})
    base_lat, base_fail = measure(srv.base, pids, "baseline")
    if base_fail:
        raise Failure(f"baseline requests failed: {base_fail[:3]}")
    log(f"baseline: {summary(base_lat)}")

    # (a) idle connections
    idle = []
    opened = time.monotonic()
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(connect(srv.base))
    except OSError as e:
        ctx.expect(False, f"opening idle connection {len(idle) + 1}: {describe_exc(e)}")
    log(f"{len(idle)} idle connections open")
    # (b) a slow body
    stop = threading.Event()
    slow = SlowBody(srv.base, stop)
    slow.start()
    # (c) streams nobody reads
    streams = []
    have_chat = os.path.exists(os.path.join(MODELS, CHAT_MODEL))
    if have_chat:
        tokens_before = metric(srv.base, "aisle_chat_generated_tokens_total")
        for i in range(SSE_CLIENTS):
            if i == 0:
                body = ('{"stream": true, "messages": [{"role": "user", "content": "wireless headphones under $200"}]}')
                streams.append(open_sse(srv.base, "/v1/assistant/chat", body))
            else:
                body = ('{"model": "%s", "stream": true, "max_tokens": 2000, "messages": [{"role": "user", '
                        '"content": "Write a very long story about a lighthouse keeper, chapter %d."}]}' % (CHAT_MODEL, i))
                streams.append(open_sse(srv.base, "/v1/chat/completions", body))
        # Measure while the model generates for them (the prompts are read first).
        deadline = time.monotonic() + 20
        while (metric(srv.base, "aisle_chat_generated_tokens_total") or 0) < (tokens_before or 0) + 20:
            if time.monotonic() > deadline:
                ctx.note("the unread streams generated fewer than 20 tokens in 20 s")
                break
            time.sleep(0.2)
        log(f"{len(streams)} SSE streams open, generating, never read")
    else:
        ctx.note(f"SKIPPED the SSE part: no chat model {CHAT_MODEL} under {MODELS}")
    time.sleep(1.0)

    load_lat, load_fail = measure(srv.base, pids, "loaded")
    log(f"under slow clients: {summary(load_lat)}")
    ctx.expect(not load_fail, f"{len(load_fail)} of {2 * SAMPLES} requests failed under slow clients: {load_fail[:4]}")
    for kind in ("get", "search"):
        if base_lat[kind] and load_lat[kind]:
            b, l = statistics.median(base_lat[kind]), statistics.median(load_lat[kind])
            limit = max(FACTOR * b, FLOOR_S)
            ctx.expect(l <= limit, f"{kind} median {l * 1000:.1f} ms under slow clients > {limit * 1000:.0f} ms "
                                   f"(baseline {b * 1000:.1f} ms x {FACTOR:g}, floor {FLOOR_S * 1000:.0f} ms)")
    if have_chat:
        active = metric(srv.base, "aisle_chat_active")
        generated = metric(srv.base, "aisle_chat_generated_tokens_total")
        time.sleep(3.0)
        later = metric(srv.base, "aisle_chat_generated_tokens_total")
        ctx.note(f"streams not read: aisle_chat_active={active}, generated tokens {tokens_before} -> {generated} "
                 f"-> {later} 3 s later")

    # The idle connections: closed by the server within IDLE_WAIT_S?
    sel = selectors.DefaultSelector()
    for s in idle:
        sel.register(s, selectors.EVENT_READ)
    closed, answered, first, last = 0, [], None, None
    pending = set(idle)
    while pending and time.monotonic() - opened < IDLE_WAIT_S:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            state = closed_by_peer(s)
            if state:
                sel.unregister(s)
                pending.discard(s)
                closed += 1
                t = time.monotonic() - opened
                first = first if first is not None else t
                last = t
                if state is not True:
                    answered.append(state)
    waited = time.monotonic() - opened
    stop.set()
    slow.join(5)
    log(f"idle connections closed by the server: {closed}/{len(idle)} within {waited:.0f} s"
        + (f" (first at {first:.1f} s, last at {last:.1f} s)" if closed else ""))
    if answered:
        ctx.note(f"idle connections got answers: {answered[:2]}")
    ctx.expect(closed == len(idle), f"{len(idle) - closed} of {len(idle)} idle connections (no request bytes) were "
                                    f"still open {waited:.0f} s after they opened: no header read timeout")
    ctx.note(f"slow body (1 byte/s): {slow.outcome}")
    for s in idle + streams:
        s.close()
    # Still serving after all this.
    r = request(srv.base, "GET", f"/v1/products/{pids[0]}", timeout=30)
    ctx.expect(r.status == 200, f"GET after the slow clients left: {r.short()}")
    ctx.expect(srv.alive(), f"server died: {srv.exit_text()}")
    ctx.fail_if_problems()
