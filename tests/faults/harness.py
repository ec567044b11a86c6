"""Shared pieces of the fault tests: real `aisle serve` processes on loopback, plain HTTP
with timeouts, tmpfs mounts, and a context that records problems and cleans up.

Standard library only (python3.11). Nothing is mocked: every test talks to the real binary
with the real models over real sockets.
"""

import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("AISLE_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "release", "aisle")
MODELS = os.environ.get("AISLE_MODELS_DIR", os.path.join(ROOT, "models"))
CHAT_MODEL = os.environ.get("AISLE_CHAT_MODEL", "SmolLM2-135M-Instruct")
DEMO = os.path.join(ROOT, "data", "demo", "products.ndjson")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Skip(Exception):
    """The test cannot run here (missing permission or file); not a failure."""


class Failure(AssertionError):
    """The server misbehaved; the message says how."""


def log(msg):
    """Progress line on stdout (flushed: the runner's output interleaves with ours)."""
    print(f"    {msg}", flush=True)


# ---------------------------------------------------------------------------- HTTP


class Response:
    """A finished HTTP exchange."""

    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return self.short(300)

    def short(self, n=600):
        """Status, content type and the start of the body, for reports."""
        text = self.body.decode("utf-8", "replace")
        if len(text) > n:
            text = text[:n] + "..."
        return f"{self.status} [{self.content_type}] {text}"


def request(base, method, path, body=None, timeout=30.0, headers=None):
    """One request on a fresh connection. Raises on connection errors and timeouts (the
    callers tell a hang from a reset by the exception type)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload, time.monotonic() - started)
    finally:
        conn.close()


def describe_exc(e):
    """A connection-level failure in words: hang, reset, refused, closed."""
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"hang (no answer within the client timeout: {e!r})"
    if isinstance(e, ConnectionResetError):
        return f"connection reset ({e!r})"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused ({e!r})"
    if isinstance(e, http.client.RemoteDisconnected):
        return f"connection closed without a response ({e!r})"
    return repr(e)


# ---------------------------------------------------------------------------- catalog data


def product(pid, version, pad=0):
    """A product whose every field names its version, so that a half-written mix of two
    versions is visible. `pad` adds that many characters to the description."""
    return {
        "id": pid,
        "title": f"Fault test lamp {pid} v{version}",
        "description": f"Desk lamp {pid} version {version}." + (" x" * (pad // 2)),
        "brand": f"Brand{version % 7}",
        "categories": ["Fault Lamps", f"Version {version % 5}"],
        "price": float(version) + 0.5,
        "currency": "USD",
        "attributes": {"version": str(version)},
    }


COMPARED = ("title", "description", "brand", "categories", "price", "attributes")


def same_product(stored, sent):
    """Whether a stored product carries exactly the sent fields."""
    return all(stored.get(k) == sent.get(k) for k in COMPARED)


def version_of(stored):
    """The version a stored fault-test product claims in its attributes (None if unreadable)."""
    try:
        return int(stored["attributes"]["version"])
    except (KeyError, TypeError, ValueError):
        return None


def demo_products(n):
    """The first n products of the demo catalog (data/fetch.sh makes it)."""
    if not os.path.exists(DEMO):
        raise Skip(f"the demo catalog is missing: {DEMO} (run data/fetch.sh)")
    with open(DEMO) as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def list_all_products(base):
    """Every product, through `GET /v1/products` cursors."""
    items, cursor = [], None
    while True:
        path = "/v1/products?limit=500" + (f"&cursor={cursor}" if cursor else "")
        r = request(base, "GET", path)
        if r.status != 200:
            raise Failure(f"listing products failed: {r.short()}")
        doc = r.json()
        items.extend(doc["items"])
        cursor = doc.get("next_cursor")
        if not cursor:
            return items


# ---------------------------------------------------------------------------- servers


def _die_with_parent():
    """In the child: SIGKILL when the spawning process goes (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Server:
    """An `aisle serve` process on a free loopback port; stderr goes to a log file."""

    def __init__(self, data_dir, log_path, env=None):
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = env or {}
        self.proc = None
        self.base = None

    def start(self, ready_timeout=180.0):
        """Spawn and wait until `/readyz` answers 200."""
        env = dict(os.environ)
        # Chat off ("") when the chat model is not there, so that the tests that do not need it run.
        chat = CHAT_MODEL if os.path.exists(os.path.join(MODELS, CHAT_MODEL)) else ""
        env.update({"RUST_LOG": "info,qdrant_edge=warn", "NO_COLOR": "1", "AISLE_CHAT_MODEL": chat})
        env.pop("QDRANT_URL", None)
        env.update(self.env)
        logf = open(self.log_path, "ab")
        logf.write(f"----- start {time.strftime('%H:%M:%S')} -----\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, "--models-dir", MODELS],
            stdout=subprocess.PIPE, stderr=logf, env=env, preexec_fn=_die_with_parent)
        logf.close()
        found = {}

        def read_stdout():
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("aisle listening on "):
                    found["url"] = line.removeprefix("aisle listening on ")

        threading.Thread(target=read_stdout, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"aisle serve exited during startup ({self.exit_text()}); log:\n{self.log_tail()}")
            if "url" in found:
                self.base = found["url"]
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if request(self.base, "GET", "/readyz", timeout=5).status == 200:
                        return self
            time.sleep(0.1)
        raise Failure(f"aisle serve not ready after {ready_timeout:.0f} s; log:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_text(self):
        """How the process ended, e.g. 'killed by SIGBUS'."""
        rc = self.proc.poll() if self.proc else None
        if rc is None:
            return "still running"
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        return f"exit status {rc}"

    def kill(self):
        """SIGKILL (no shutdown, no flush) and reap."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(30)

    def stop(self, timeout=60.0):
        """SIGTERM (graceful) and reap; SIGKILL after `timeout`. Returns the exit text."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
                return f"did not stop within {timeout:.0f} s of SIGTERM (killed)"
        return self.exit_text()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return ANSI.sub("", f.read().decode("utf-8", "replace"))

    def log_tail(self, n=25, pattern=None):
        """The last n log lines (those matching `pattern` when given), indented."""
        lines = self.log_text().splitlines()
        if pattern:
            lines = [l for l in lines if re.search(pattern, l)]
        return "\n".join("      | " + l[:400] for l in lines[-n:])

    def log_lines_with(self, needle):
        """Log lines holding `needle` (e.g. a request id)."""
        return [l for l in self.log_text().splitlines() if needle in l]


# ---------------------------------------------------------------------------- tmpfs


def mount_tmpfs(path, size_mb):
    """Mount a tmpfs of size_mb MiB at path; Skip if not permitted."""
    if not shutil.which("mount"):
        raise Skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip(f"cannot mount a tmpfs: {' '.join(r.stderr.split()) or r.returncode}")


def mount_ext4(path, size_mb, image):
    """Mount a fresh ext4 image file of size_mb MiB at path through a loop device; Skip if
    that is not possible here (no loop devices, no mkfs.ext4)."""
    if not shutil.which("mkfs.ext4"):
        raise Skip("no mkfs.ext4 for FAULT_DISK_FS=ext4")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", image], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip(f"mkfs.ext4 failed: {r.stderr.strip()}")
    r = subprocess.run(["mount", "-o", "loop", image, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip(f"cannot loop-mount an ext4 image: {r.stderr.strip() or r.returncode}")


def umount(path):
    """Unmount, lazily if something still holds it."""
    r = subprocess.run(["umount", path], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, text=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# ---------------------------------------------------------------------------- context


class Context:
    """One test's resources and findings: temp dirs, servers, mounts; `expect` records a
    problem without stopping the test, `fail_if_problems` raises them all at the end."""

    def __init__(self, name):
        self.name = name
        self.root = tempfile.mkdtemp(prefix=f"aisle-fault-{name}-")
        self.servers = []
        self.mounts = []
        self.problems = []
        self.notes = []

    def path(self, *parts):
        p = os.path.join(self.root, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def server(self, data_dir, env=None, log_name="server.log"):
        """Start a server over data_dir (logs under this test's temp dir)."""
        s = Server(data_dir, os.path.join(self.root, log_name), env)
        self.servers.append(s)
        return s.start()

    def mount(self, path, size_mb, fs="tmpfs"):
        """A small filesystem at path: a tmpfs, or (fs="ext4") a loop-mounted ext4 image."""
        if fs == "ext4":
            mount_ext4(path, size_mb, os.path.join(self.root, "disk.img"))
        else:
            mount_tmpfs(path, size_mb)
        self.mounts.append(path)

    def expect(self, cond, msg):
        """Record a problem when cond is false; returns cond."""
        if not cond:
            self.problems.append(msg)
            log(f"PROBLEM: {msg}")
        return cond

    def note(self, msg):
        """An observation for the report that is not a failure."""
        self.notes.append(msg)
        log(f"note: {msg}")

    def fail_if_problems(self):
        if self.problems:
            raise Failure(f"{len(self.problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in self.problems))

    def cleanup(self):
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.kill()
        for m in reversed(self.mounts):
            if os.environ.get("FAULT_KEEP"):
                subprocess.run(["cp", "-a", "--sparse=always", m, m.rstrip("/") + "-copy"], capture_output=True)
            umount(m)
        if os.environ.get("FAULT_KEEP"):
            log(f"kept {self.root} (FAULT_KEEP)")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
