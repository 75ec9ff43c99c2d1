"""Availability under hostile load: ordinary admission traffic while slow, idle and oversized clients attack.

    .venv/bin/python bench/hostile_bench.py [--duration 30] [--json]

A benchmark, not a test: it prints figures and PASS/FAIL lines against the targets of the issue, and
exits 0 whatever they say (non-zero only when it cannot run). It starts netguard as `make run` does
(default configuration, 2 workers, TLS with certs/) and the bare Flask app bench/baseline_app.py under
the same gunicorn settings, both on free loopback ports (the helpers of bench/admission_bench.py).
Against each server in turn it runs, after a few calm seconds of ordinary traffic alone, AT THE SAME
TIME for --duration seconds:

* slow clients, 4 of each kind per worker: 6 bytes of a TLS ClientHello; a completed handshake and
  part of a request head; a complete head with Content-Length and part of the body. Each one stops
  sending and holds the connection; when the server closes it, it reconnects (0.1 s later);
* 1,000 idle TCP connections (no byte sent), reopened when the server closes them;
* a stream of hostile policies at 2/s: a valid NetworkPolicy with 8,000 ipBlock.except entries
  (10.0.0.0/8 except every other /24, so none merge), as AdmissionReviews to /validate;
* ordinary traffic at 50 reviews/s, open loop: sends are scheduled (allowed and denied NetworkPolicy
  alternating) and latency runs from the scheduled time, so a stalled server is not hidden by a
  client that waits for it (coordinated omission). Requests go over a few keep-alive connections,
  more are opened while those are busy, as the API server's HTTP client does.

Each load runs in its own process, so the client's GIL does not couple them. Everything binds to
127.0.0.1 only; every loop is bounded in count and time; the servers and the load processes are
stopped at the end, also on Ctrl-C or SIGTERM. See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import http.client
import json
import multiprocessing
import os
import platform
import queue
import re
import resource
import select
import selectors
import shlex
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import admission_bench as ab

from webhook import config
from webhook.core.reviews import make_review
from webhook.core.settings import ConfigError
from webhook.engine.engines import EngineError
from webhook.engine.policies import PolicyLoadError

RESULTS_FILE = ab.BENCH_DIR / "results" / "hostile-latest.json"
API_TIMEOUT_S = 5.0  # the webhook configuration's timeoutSeconds: the API server gives up after this
TARGET_P99_S = 1.0
TARGET_HOSTILE_S = 1.0
SLOW_KINDS = ("tls-hello", "partial-head", "partial-body")
UID_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
RECONNECT_PAUSE_S = 0.1
IDLE_REOPEN_PER_S = 1000  # idle connections the server closed are reopened, at most this many per second
IDLE_CONNECT_TIMEOUT_S = 10.0
SETUP_TIMEOUT_S = 60.0  # a load process must be ready (imports, pre-opened connections) within this
GROUPS = ("team-a", "system:authenticated")


# --------------------------------------------------------------------------------------------
# Request bodies


def ordinary_bodies() -> list[ab.Body]:
    """np-allowed and np-denied of admission_bench (850 and 745 bytes)."""
    return [b for b in ab.build_bodies() if b.name in ("np-allowed", "np-denied")]


def hostile_policy(excepts: int) -> dict[str, Any]:
    """A NetworkPolicy the API server accepts: 10.0.0.0/8 except `excepts` distinct /24s inside it.

    Every other /24 (10.0.0.0, 10.0.2.0, ...), so no two excepts are adjacent and none merge: the
    address arithmetic has to keep all of them apart. 10.0.0.0/8 holds 32,768 such /24s.
    """
    if not 0 < excepts <= 32768:
        raise ValueError("excepts must be between 1 and 32768")
    cidrs = [f"10.{2 * i // 256}.{2 * i % 256}.0/24" for i in range(excepts)]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "many-excepts", "namespace": "team-a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": cidrs}}],
                        "ports": [{"protocol": "TCP", "port": 443}]}],
        },
    }


def template(review: Mapping[str, Any]) -> bytes:
    """The review as compact JSON with a placeholder uid, replaced per request (cheap on 140 KB)."""
    doc = json.loads(json.dumps(review))
    doc["request"]["uid"] = UID_PLACEHOLDER
    return json.dumps(doc, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# Open-loop HTTPS load (ordinary reviews, hostile policies): runs in its own process


Verdict = tuple[bool, tuple[str, ...]]


def rules_named(message: str) -> tuple[str, ...]:
    """The [rule-id]s a deny message or the warnings name: an [engine-error] instead of the calm answer's
    rules is a degraded answer even when `allowed` is the same."""
    return tuple(sorted(set(re.findall(r"\[([a-z][a-z0-9-]*)\]", message))))


def one_line(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" \(policy revision [0-9a-f]+\)", "", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class StreamSpec:
    name: str
    port: int
    ca: str | None
    path: str  # /validate?timeout=5s, as the API server calls it
    # name, template, expected answer: `allowed` and the [rule] ids its message names (None: any answer)
    bodies: list[tuple[str, bytes, Verdict | None]]
    rate: float  # requests per second, scheduled
    begin: float  # seconds after the start this process is given
    timeout: float  # a request not answered this long after its scheduled time is a timeout
    keep: int  # keep-alive connections kept idle between requests (pre-opened)
    max_inflight: int  # sender threads: at most this many requests (and connections) at once


@dataclass
class Sample:
    t: float  # scheduled time, seconds after the stream's start (ordinary: the calm start; hostile: the attack's)
    body: str
    latency: float  # scheduled time -> answer read (timeouts: up to the moment given up)
    outcome: str  # ok, wrong-verdict, non-200, malformed, timeout, connection
    status: int = 0
    allowed: bool | None = None
    message: str = ""
    new_connection: bool = False
    error: str = ""


class _Pool:
    """Idle keep-alive connections, oldest first; a busy pool dials a new one (the API server's client does)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, keep: int) -> None:
        self.port, self.ctx, self.keep = port, ctx, keep
        self.idle: deque[http.client.HTTPSConnection] = deque()
        self.lock = threading.Lock()
        self.dialed = 0
        self.found_closed = 0  # idle connections the server had closed (noticed before reuse, not a failure)
        self.closed_by_server = 0  # answers with Connection: close

    def dial(self, timeout: float) -> http.client.HTTPSConnection:
        with self.lock:
            self.dialed += 1
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        conn.connect()
        return conn

    def get(self, timeout: float) -> tuple[http.client.HTTPSConnection, bool]:
        while True:
            with self.lock:
                conn = self.idle.popleft() if self.idle else None
            if conn is None:
                return self.dial(timeout), True
            if _still_open(conn):
                return conn, False
            conn.close()
            with self.lock:
                self.found_closed += 1

    def put(self, conn: http.client.HTTPSConnection) -> None:
        with self.lock:
            if len(self.idle) < self.keep:
                self.idle.append(conn)
                return
        conn.close()

    def close_all(self) -> None:
        with self.lock:
            conns, self.idle = list(self.idle), deque()
        for conn in conns:
            conn.close()


def _still_open(conn: http.client.HTTPSConnection) -> bool:
    """An idle connection is reusable unless the server closed it (EOF) or wrote to it (e.g. a 408).

    Go's HTTP client (the API server's) notices such a connection in its background read and never
    sends on it; a request written on a connection the server closes meanwhile is lost there too.
    """
    sock = conn.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1)
    except (ssl.SSLWantReadError, BlockingIOError):
        return True  # only a TLS record without application data (a TLS 1.3 session ticket)
    except (OSError, ssl.SSLError):
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return False  # EOF, or the server wrote something unasked (an error page before closing)


def _message(doc: Any) -> str:
    response = doc.get("response", {}) if isinstance(doc, dict) else {}
    status = response.get("status") or {}
    text = status.get("message") if isinstance(status, dict) else None
    if not text and response.get("warnings"):
        text = "warnings: " + " | ".join(str(w) for w in response["warnings"])
    return str(text or "")[:600]


def _send(pool: _Pool, spec: StreamSpec, sched: float, start: float, name: str, raw: bytes,
          expected: Verdict | None) -> Sample:
    deadline = start + sched + spec.timeout
    sample = Sample(t=sched, body=name, latency=0.0, outcome="timeout")
    uid = str(uuid.uuid4())
    body = raw.replace(UID_PLACEHOLDER.encode(), uid.encode(), 1)
    conn: http.client.HTTPSConnection | None = None
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            sample.error = "not sent: every sender busy until its deadline"
            raise TimeoutError
        conn, sample.new_connection = pool.get(remaining)
        assert conn.sock is not None
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        conn.request("POST", spec.path, body=body, headers={"Content-Type": "application/json"})
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        resp = conn.getresponse()
        data = resp.read()
        sample.status = resp.status
        if resp.will_close:
            with pool.lock:
                pool.closed_by_server += 1
            conn.close()
        else:
            pool.put(conn)
        conn = None
    except TimeoutError:
        sample.outcome = "timeout"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        sample.outcome = "connection"
        sample.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if conn is not None:
            conn.close()
    sample.latency = time.monotonic() - (start + sched)
    if sample.status == 0:
        if sample.outcome == "timeout":
            sample.latency = max(sample.latency, spec.timeout)
        return sample
    if sample.latency > spec.timeout:
        sample.outcome = "timeout"
        sample.error = f"answered after {sample.latency:.2f} s"
        return sample
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    response = doc.get("response") if isinstance(doc, dict) else None
    if isinstance(response, dict) and isinstance(response.get("allowed"), bool):
        sample.allowed = response["allowed"]
    sample.message = _message(doc) if doc is not None else data[:200].decode(errors="replace")
    if sample.status != 200:
        sample.outcome = "non-200"
    elif not isinstance(response, dict) or response.get("uid") != uid or sample.allowed is None:
        sample.outcome = "malformed"
    elif expected is not None and (sample.allowed, rules_named(sample.message)) != expected:
        sample.outcome = "wrong-verdict"
    else:
        sample.outcome = "ok"
    return sample


def run_stream(spec: StreamSpec, pipe: Connection) -> None:
    """Process entry: pre-open spec.keep connections, report ready, wait for the start, send open loop."""
    ctx = ab.client_context(Path(spec.ca) if spec.ca else None)
    pool = _Pool(spec.port, ctx, spec.keep)
    errors: list[str] = []
    for _ in range(spec.keep):
        try:
            pool.put(pool.dial(5.0))
        except (OSError, ssl.SSLError) as exc:
            errors.append(f"pre-open: {type(exc).__name__}: {exc}")
    pool.dialed = 0
    pipe.send("ready")
    if not pipe.poll(SETUP_TIMEOUT_S * 2):
        return
    start, stop = pipe.recv()
    jobs: queue.Queue[tuple[float, str, bytes, Verdict | None] | None] = queue.Queue()
    samples: list[Sample] = []
    lock = threading.Lock()

    def sender() -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            sample = _send(pool, spec, job[0], start, *job[1:])
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(spec.max_inflight)]
    for t in threads:
        t.start()
    count = int((stop - start - spec.begin) * spec.rate)
    for i in range(max(0, count)):
        sched = spec.begin + i / spec.rate
        name, raw, expected = spec.bodies[i % len(spec.bodies)]
        delay = start + sched - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        jobs.put((sched, name, raw, expected))
    for _ in threads:
        jobs.put(None)
    give_up = time.monotonic() + spec.timeout + 10
    for t in threads:
        t.join(max(0.0, give_up - time.monotonic()))
    with lock:
        done = list(samples)
    pool.close_all()
    pipe.send({"samples": [asdict(s) for s in done], "scheduled": count, "dialed": pool.dialed,
               "found_closed": pool.found_closed, "closed_by_server": pool.closed_by_server,
               "unfinished": count - len(done), "errors": errors})


# --------------------------------------------------------------------------------------------
# Slow clients: each holds a connection with a partial TLS handshake, head or body; reconnects when cut


def _slow_attempt(kind: str, port: int, ctx: ssl.SSLContext, stop: float, body_bytes: bytes) -> dict[str, Any]:
    connected = time.monotonic()
    result: dict[str, Any] = {"kind": kind, "at": connected, "hold": 0.0, "cut": False, "stage": "connect",
                              "answer": "", "error": ""}
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=max(0.01, stop - connected))
        connected = result["at"] = time.monotonic()
        if kind == "tls-hello":
            # A TLS record header (handshake, TLS 1.0 record version, 512 bytes) and the ClientHello type.
            sock.sendall(b"\x16\x03\x01\x02\x00\x01")
        else:
            result["stage"] = "handshake"
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1", do_handshake_on_connect=False)
            sock.settimeout(max(0.01, stop - time.monotonic()))
            sock.do_handshake()
            head = b"POST /validate?timeout=5s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            if kind == "partial-head":
                sock.sendall(head[:60])
            else:
                sock.sendall(head + b"Content-Length: 65536\r\n\r\n" + (body_bytes * 2)[:1024])
        result["stage"] = "holding"
        while True:
            sock.settimeout(max(0.01, stop - time.monotonic()))
            data = sock.recv(4096)
            if not data:
                result["cut"] = True
                break
            if not result["answer"]:
                result["answer"] = data.split(b"\r\n", 1)[0][:60].decode(errors="replace")
    except TimeoutError:
        pass  # held until the end of the run (or the connect/handshake did not finish by then)
    except (OSError, ssl.SSLError) as exc:
        result["cut"] = result["stage"] != "connect"  # a refused connect is no cut
        result["error"] = type(exc).__name__ if not isinstance(exc, ssl.SSLError) else f"SSL {exc.reason}"
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
    result["hold"] = time.monotonic() - connected
    return result


def run_slow(port: int, ca: str | None, per_kind: int, kinds: Sequence[str], body_bytes: bytes,
             pipe: Connection) -> None:
    """Process entry: per_kind clients of each kind, one thread each, from the start to the stop."""
    ctx = ab.client_context(Path(ca) if ca else None)
    pipe.send("ready")
    if not pipe.poll(SETUP_TIMEOUT_S * 2):
        return
    start, stop = pipe.recv()
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(kind: str) -> None:
        for _ in range(100_000):  # bounded in count as well as in time
            if time.monotonic() >= stop - 0.05:
                return
            r = _slow_attempt(kind, port, ctx, stop, body_bytes)
            r["at"] -= start
            with lock:
                results.append(r)
            time.sleep(RECONNECT_PAUSE_S)

    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    threads = [threading.Thread(target=client, args=(kind,), daemon=True)
               for kind in kinds for _ in range(per_kind)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop - time.monotonic()) + 15)
    with lock:
        pipe.send({"attempts": list(results), "threads_alive": sum(t.is_alive() for t in threads)})


# --------------------------------------------------------------------------------------------
# Idle TCP connections: opened and kept (no byte sent), reopened when the server closes them


def run_idle(port: int, count: int, pipe: Connection) -> None:
    """Process entry: one selector loop over `count` non-blocking sockets."""
    pipe.send("ready")
    if not pipe.poll(SETUP_TIMEOUT_S * 2):
        return
    start, stop = pipe.recv()
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    sel = selectors.DefaultSelector()
    connecting: dict[socket.socket, float] = {}
    established: dict[socket.socket, float] = {}
    to_open = count
    reopen_at: deque[float] = deque()
    holds: list[float] = []
    errors: Counter[str] = Counter()
    opened = max_open = first_full_at = 0.0
    tokens, last_refill = float(count), time.monotonic()
    opened_initially = 0
    initial_phase_until = time.monotonic() + 5.0

    def open_one() -> None:
        nonlocal opened
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            errors[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
            reopen_at.append(time.monotonic() + 1.0)
            return
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            errors[errno.errorcode.get(rc, str(rc))] += 1
            s.close()
            reopen_at.append(time.monotonic() + 1.0)
            return
        connecting[s] = time.monotonic()
        sel.register(s, selectors.EVENT_WRITE)
        opened += 1

    for _ in range(10_000_000):  # bounded: the loop also ends at `stop`
        now = time.monotonic()
        if now >= stop:
            break
        tokens = min(float(IDLE_REOPEN_PER_S), tokens + (now - last_refill) * IDLE_REOPEN_PER_S)
        last_refill = now
        while to_open > 0 and tokens >= 1:
            to_open -= 1
            tokens -= 1
            open_one()
        while reopen_at and reopen_at[0] <= now and tokens >= 1:
            reopen_at.popleft()
            tokens -= 1
            open_one()
        for pending, since in list(connecting.items()):
            if now - since > IDLE_CONNECT_TIMEOUT_S:
                errors["connect timeout"] += 1
                sel.unregister(pending)
                del connecting[pending]
                pending.close()
                reopen_at.append(now + RECONNECT_PAUSE_S)
        for key, _ in sel.select(timeout=min(0.05, max(0.0, stop - now))):
            fileobj = key.fileobj
            assert isinstance(fileobj, socket.socket)
            s = fileobj
            if s in connecting:
                del connecting[s]
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    errors[errno.errorcode.get(err, str(err))] += 1
                    sel.unregister(s)
                    s.close()
                    reopen_at.append(time.monotonic() + RECONNECT_PAUSE_S)
                    continue
                established[s] = time.monotonic()
                sel.modify(s, selectors.EVENT_READ)
                if time.monotonic() < initial_phase_until:
                    opened_initially += 1
                continue
            try:
                data = s.recv(1024)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                continue  # the server wrote something (an error page); keep waiting for the close
            holds.append(time.monotonic() - established.pop(s))
            sel.unregister(s)
            s.close()
            reopen_at.append(time.monotonic() + RECONNECT_PAUSE_S)
        if len(established) > max_open:
            max_open = len(established)
            if max_open >= count and not first_full_at:
                first_full_at = time.monotonic() - start
    end = time.monotonic()
    held_to_end = [end - since for since in established.values()]
    for s in [*connecting, *established]:
        with contextlib.suppress(OSError):
            s.close()
    sel.close()
    pipe.send({"requested": count, "opened": int(opened), "max_open": int(max_open), "open_at_end": len(held_to_end),
               "opened_in_first_5s": opened_initially, "all_open_after_s": first_full_at or None,
               "cut": holds, "held_to_end": held_to_end, "connect_errors": dict(errors),
               "connecting_at_end": len(connecting)})


# --------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class Phase:
    target: str
    duration_s: float
    calm_s: float
    ordinary: dict[str, Any] = field(default_factory=dict)
    hostile: dict[str, Any] = field(default_factory=dict)
    slow: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    date: str
    command: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    phases: list[Phase] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class LoadProcs:
    """The load processes of one phase: started, told the common start, collected, always stopped."""

    def __init__(self) -> None:
        self.mp = multiprocessing.get_context("spawn")
        self.procs: dict[str, tuple[Any, Connection]] = {}

    def start(self, name: str, target: Callable[..., None], *args: Any) -> None:
        parent, child = self.mp.Pipe()
        proc = self.mp.Process(target=target, args=(*args, child), name=f"hostile-bench-{name}", daemon=True)
        proc.start()
        child.close()
        self.procs[name] = (proc, parent)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        for name, (proc, pipe) in self.procs.items():
            if not pipe.poll(max(0.0, deadline - time.monotonic())) or pipe.recv() != "ready":
                raise RuntimeError(f"load process {name} was not ready within {SETUP_TIMEOUT_S:.0f} s "
                                   f"(exit code {proc.exitcode})")

    def collect(self, until: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (proc, pipe) in self.procs.items():
            try:
                ok = pipe.poll(max(0.0, until - time.monotonic()))
                out[name] = pipe.recv() if ok else None
            except (EOFError, OSError):
                out[name] = None
            if out[name] is None:
                out[name] = {"error": f"no result from the {name} load process (exit code {proc.exitcode})"}
        return out

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each load process."""
        table = ab.process_table()
        return {name: table.get(proc.pid, (0, 0.0))[1] for name, (proc, _) in self.procs.items()}

    def stop(self) -> None:
        for proc, pipe in self.procs.values():
            proc.join(2)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            pipe.close()
        self.procs.clear()


def run_phase(server: ab.Server, args: argparse.Namespace, ca: str | None, bodies: list[ab.Body],
              expected: Mapping[str, Verdict], hostile_raw: bytes) -> Phase:
    phase = Phase(target=server.name, duration_s=args.duration, calm_s=args.calm)
    path = f"{ab.PATH}?timeout={int(API_TIMEOUT_S)}s"
    ordinary = StreamSpec(
        name="ordinary", port=server.port, ca=ca, path=path,
        bodies=[(b.name, template(b.review), expected[b.name]) for b in bodies],
        rate=args.ordinary_rate, begin=0.0, timeout=API_TIMEOUT_S, keep=args.ordinary_connections,
        max_inflight=args.ordinary_max_connections)
    hostile = StreamSpec(
        name="hostile", port=server.port, ca=ca, path=path, bodies=[("hostile", hostile_raw, None)],
        rate=args.hostile_rate, begin=0.0, timeout=args.hostile_timeout, keep=2,  # starts with the attack
        max_inflight=args.hostile_max_connections)
    ab.wait_idle(server)
    workers_before = set(ab.children_of(server.proc.pid))
    procs = LoadProcs()
    try:
        procs.start("ordinary", run_stream, ordinary)
        if args.hostile_rate > 0:
            procs.start("hostile", run_stream, hostile)
        if args.slow_per_worker > 0:
            procs.start("slow", run_slow, server.port, ca, args.slow_per_worker * ab.WORKERS, args.slow_kinds,
                        bodies[0].raw)
        if args.idle > 0:
            procs.start("idle", run_idle, server.port, args.idle)
        procs.wait_ready()
        calm_start = time.monotonic() + 0.5
        attack_start = calm_start + args.calm
        stop = attack_start + args.duration
        procs.procs["ordinary"][1].send((calm_start, stop))
        for name, (_, pipe) in procs.procs.items():
            if name != "ordinary":
                pipe.send((attack_start, stop))
        time.sleep(max(0.0, attack_start - time.monotonic()))
        cpu0, load0, busy0, t0 = (server.cpu_by_process(), procs.cpu(), ab.machine_busy_seconds(),
                                  time.monotonic())
        time.sleep(max(0.0, stop - time.monotonic()))
        cpu1, load1, busy1, t1 = (server.cpu_by_process(), procs.cpu(), ab.machine_busy_seconds(),
                                  time.monotonic())
        raw = procs.collect(stop + max(API_TIMEOUT_S, args.hostile_timeout) + 30)
    finally:
        procs.stop()
    workers_after = set(ab.children_of(server.proc.pid))
    server_cpu = sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in cpu1)
    load_cpu = {name: load1.get(name, 0.0) - load0.get(name, 0.0) for name in load1}
    span = t1 - t0
    phase.server = {
        "cores": server_cpu / span, "load_cores": sum(load_cpu.values()) / span,
        "load_cores_by_process": {k: round(v / span, 3) for k, v in load_cpu.items()},
        # everything else on the machine (the test suite of a colleague, ...): noise when well above 0
        "other_cores": max(0.0, (busy1 - busy0) - server_cpu - sum(load_cpu.values())) / span,
        "workers_replaced": len(workers_before - workers_after), "alive": server.proc.poll() is None,
        "answers_after": _answers_after(server, ca, bodies[0]),
    }
    phase.raw = raw
    phase.ordinary = summarize_stream(raw["ordinary"], args.calm, args.duration)
    if "hostile" in raw:
        phase.hostile = summarize_hostile(raw["hostile"])
    if "slow" in raw:
        phase.slow = summarize_slow(raw["slow"])
    if "idle" in raw:
        phase.idle = summarize_idle(raw["idle"])
    return phase


def _answers_after(server: ab.Server, ca: str | None, body: ab.Body) -> dict[str, Any]:
    """One review on a fresh connection right after the load: does the server serve again, how soon."""
    ctx = ab.client_context(Path(ca) if ca else None)
    t0 = time.monotonic()
    for _ in range(20):
        try:
            status, _ = ab.https_request(server.port, ctx, "POST", ab.PATH, body.raw, timeout=10)
            return {"status": status, "seconds": time.monotonic() - t0}
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() - t0 > 20:
                return {"status": 0, "seconds": time.monotonic() - t0, "error": type(exc).__name__}
            time.sleep(0.5)
    return {"status": 0, "seconds": time.monotonic() - t0}


# --------------------------------------------------------------------------------------------
# Summaries


FAILURES = ("non-200", "malformed", "timeout", "connection", "wrong-verdict")


def _latency_figures(latencies: Sequence[float]) -> dict[str, float]:
    s = sorted(latencies)
    return {"p50": ab.percentile(s, 50), "p90": ab.percentile(s, 90), "p99": ab.percentile(s, 99),
            "max": s[-1] if s else float("nan")}


def summarize_stream(raw: Mapping[str, Any], calm: float, duration: float) -> dict[str, Any]:
    if "error" in raw:
        return {"error": raw["error"]}
    samples = raw["samples"]
    out: dict[str, Any] = {"dialed": raw["dialed"], "found_closed": raw["found_closed"],
                           "closed_by_server": raw["closed_by_server"], "unfinished": raw["unfinished"]}
    for window, seconds, chosen in (("calm", calm, [s for s in samples if s["t"] < calm]),
                                    ("hostile", duration, [s for s in samples if s["t"] >= calm])):
        outcomes = Counter(s["outcome"] for s in chosen)
        ok = [s for s in chosen if s["outcome"] == "ok"]
        # latency over every request (timeouts count at the time given up), not only the good ones
        figures = _latency_figures([s["latency"] for s in chosen])
        errors = Counter(s["error"].split(":")[0] for s in chosen if s["error"])
        out[window] = {
            "sent": len(chosen), "ok": len(ok), **figures,
            "failures": sum(outcomes[k] for k in FAILURES), "outcomes": dict(outcomes),
            "achieved_per_s": len(ok) / seconds if seconds else 0.0,  # good answers per second of the window
            "errors": dict(errors.most_common(5)),
            "statuses": dict(Counter(str(s["status"]) for s in chosen if s["status"] not in (0, 200))),
            # failures per second of scheduled time: waves show which hostile client holds what for how long
            "failures_per_s": _per_second(chosen, calm if window == "hostile" else 0.0, seconds),
            "messages": dict(Counter(one_line(s["message"], 240) for s in chosen
                                     if s["outcome"] != "ok" and s["message"]).most_common(3)),
        }
    return out


def _per_second(samples: Sequence[Mapping[str, Any]], begin: float, seconds: float) -> list[int]:
    buckets = [0] * max(1, int(seconds + 0.999))
    for s in samples:
        if s["outcome"] != "ok":
            buckets[min(len(buckets) - 1, max(0, int(s["t"] - begin)))] += 1
    return buckets


def server_side_latency(log_path: Path, names: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """latency_ms of netguard's decision log lines (info level), per object name: the time from the body
    read to the answer, without the wait for a thread or the TLS and HTTP around it."""
    found: dict[str, list[float]] = {label: [] for label in names.values()}
    with contextlib.suppress(OSError), open(log_path, errors="replace") as f:
        for n, line in enumerate(f):
            if n > 2_000_000:
                break
            if '"admission.decision"' not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            label = names.get(str(doc.get("name")))
            if label is not None and isinstance(doc.get("latency_ms"), int | float):
                found[label].append(doc["latency_ms"] / 1000)
    return {label: {"count": len(v), **_latency_figures(v)} for label, v in found.items() if v}


def summarize_hostile(raw: Mapping[str, Any]) -> dict[str, Any]:
    if "error" in raw:
        return {"error": raw["error"]}
    samples = raw["samples"]
    answered = [s for s in samples if s["status"]]
    verdicts: Counter[str] = Counter()
    for s in samples:
        if not s["status"]:
            verdicts[f"no answer ({s['outcome']}{': ' + s['error'][:60] if s['error'] else ''})"] += 1
        elif s["status"] != 200:
            verdicts[f"HTTP {s['status']}: {s['message'][:100]}"] += 1
        else:
            named = "".join(f" [{r}]" for r in rules_named(s["message"]))
            verdicts[f"{'allowed' if s['allowed'] else 'denied'}{named}"] += 1
    messages = Counter(one_line(s["message"], 300) for s in samples if s["message"])
    lat = sorted(s["latency"] for s in samples)
    return {
        "sent": len(samples), "answered": len(answered), **_latency_figures(lat),
        "within_1s": sum(1 for s in answered if s["latency"] <= TARGET_HOSTILE_S),
        "over_5s": sum(1 for s in samples if s["latency"] > API_TIMEOUT_S),
        "verdicts": dict(verdicts.most_common()), "messages": dict(messages.most_common(5)),
        "dialed": raw["dialed"], "unfinished": raw["unfinished"],
    }


def summarize_slow(raw: Mapping[str, Any]) -> dict[str, Any]:
    if "error" in raw:
        return {"error": raw["error"]}
    out: dict[str, Any] = {}
    for kind in sorted({a["kind"] for a in raw["attempts"]}, key=SLOW_KINDS.index):
        attempts = [a for a in raw["attempts"] if a["kind"] == kind]
        cut = sorted(a["hold"] for a in attempts if a["cut"])
        held = sorted(a["hold"] for a in attempts if not a["cut"])
        out[kind] = {
            "connections": len(attempts), "cut": len(cut),
            "connect_failed": sum(1 for a in attempts if a["stage"] == "connect" and a["error"]),
            "cut_p50": ab.percentile(cut, 50), "cut_max": cut[-1] if cut else float("nan"),
            "held_to_end": len(held), "held_to_end_max": held[-1] if held else float("nan"),
            "answers": dict(Counter(a["answer"] or "(closed without an answer)" for a in attempts if a["cut"])),
            "cut_during": dict(Counter(a["stage"] for a in attempts if a["cut"])),
            "errors": dict(Counter(a["error"] for a in attempts if a["error"])),
        }
    return out


def summarize_idle(raw: Mapping[str, Any]) -> dict[str, Any]:
    if "error" in raw:
        return {"error": raw["error"]}
    cut = sorted(raw["cut"])
    return {k: v for k, v in raw.items() if k not in ("cut", "held_to_end")} | {
        "cut": len(cut), "cut_p50": ab.percentile(cut, 50), "cut_max": cut[-1] if cut else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# Output


def _s(seconds: float) -> str:
    return ab.fmt_ms(seconds) if seconds == seconds and seconds < 10 else (
        "-" if seconds != seconds else f"{seconds:.1f} s")


def print_report(result: Result, args: argparse.Namespace) -> None:
    w = print
    st = result.settings
    w(f"\n## Ordinary traffic: {st['ordinary_rate']:g} reviews/s open loop (np-allowed / np-denied alternating), "
      f"{st['ordinary_connections']} keep-alive connections (more opened while those are busy, at most "
      f"{st['ordinary_max_connections']}); failure = non-200, malformed, no answer within {API_TIMEOUT_S:g} s of "
      "the scheduled send, connection error, or a verdict other than the calm one\n")
    w("| target | window | sent | ok | p50 | p90 | p99 | max | failures | achieved/s | new connections |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for ph in result.phases:
        o = ph.ordinary
        if "error" in o:
            w(f"| {ph.target} | - | {o['error']} |")
            continue
        for window, label in (("calm", f"calm, {ph.calm_s:g} s"), ("hostile", f"under attack, {ph.duration_s:g} s")):
            r = o[window]
            kinds = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items() if k != "ok")
            fails = f"{r['failures']}" + (f" ({kinds})" if kinds else "")
            new = o["dialed"] if window == "hostile" else ""
            w(f"| {ph.target} | {label} | {r['sent']} | {r['ok']} | {_s(r['p50'])} | {_s(r['p90'])} | "
              f"{_s(r['p99'])} | {_s(r['max'])} | {fails} | {r['achieved_per_s']:.1f} | {new} |")
    for ph in result.phases:
        o = ph.ordinary
        if "error" in o:
            continue
        for window in ("calm", "hostile"):
            r = o[window]
            if r["errors"]:
                w(f"  {ph.target}/{window} errors: {r['errors']}")
            if r["statuses"]:
                w(f"  {ph.target}/{window} statuses: {r['statuses']}")
            for msg, n in r["messages"].items():
                w(f"  {ph.target}/{window} {n}x: {msg}")
        if o["hostile"]["failures"]:
            w(f"  {ph.target}: failures per second under attack: "
              + " ".join(str(n) for n in o["hostile"]["failures_per_s"]))
        if o["found_closed"] or o["closed_by_server"]:
            w(f"  {ph.target}: {o['found_closed']} idle keep-alive connections found closed by the server before "
              f"reuse, {o['closed_by_server']} answers with Connection: close")

    w(f"\n## Hostile policies: {st['hostile_rate']:g}/s from {ph_start(st)} for {st['duration_s']:g} s, "
      f"NetworkPolicy 10.0.0.0/8 except {st['hostile_excepts']:,} /24s ({st['hostile_bytes']:,} bytes); "
      f"latency from the scheduled send, waited for up to {st['hostile_timeout_s']:g} s; in the app = netguard's "
      "decision log latency_ms, from the body read to the answer (no thread wait, TLS or HTTP)\n")
    w("| target | sent | answered | within 1 s | over 5 s | p50 | p99 | max | in the app: p50 / max | verdicts |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for ph in result.phases:
        h = ph.hostile
        if not h:
            continue
        if "error" in h:
            w(f"| {ph.target} | {h['error']} |")
            continue
        verdicts = "; ".join(f"{n}x {v}" for v, n in h["verdicts"].items())
        app = h.get("server_side")
        in_app = f"{_s(app['p50'])} / {_s(app['max'])}" if app else "-"
        w(f"| {ph.target} | {h['sent']} | {h['answered']} | {h['within_1s']} | {h['over_5s']} | {_s(h['p50'])} | "
          f"{_s(h['p99'])} | {_s(h['max'])} | {in_app} | {verdicts} |")
    for ph in result.phases:
        for msg, n in ph.hostile.get("messages", {}).items():
            w(f"  {ph.target} {n}x: {msg}")

    w(f"\n## Slow clients: {st['slow_per_worker']} of each kind per worker ({st['slow_per_worker'] * ab.WORKERS} per "
      f"kind), each reconnecting {RECONNECT_PAUSE_S:g} s after the server closes it; held = connect to close\n")
    w("| target | kind | connections | cut off | held before cut: p50 | max | still held at the end | "
      "server's last word |")
    w("|---|---|---:|---:|---:|---:|---:|---|")
    for ph in result.phases:
        for kind, k in ph.slow.items():
            if kind == "error":
                w(f"| {ph.target} | {k} |")
                continue
            answers = ", ".join(f"{v}x {a}" for a, v in k["answers"].items()) or "-"
            w(f"| {ph.target} | {kind} | {k['connections']} | {k['cut']} | {_s(k['cut_p50'])} | "
              f"{_s(k['cut_max'])} | {k['held_to_end']} | {answers} |")

    w(f"\n## Idle TCP connections: {st['idle']:,} requested, opened at the start and reopened when closed "
      f"(at most {IDLE_REOPEN_PER_S}/s)\n")
    w("| target | open at once (max) | all open after | open at the end | opened in all | cut off | "
      "held before cut: p50 | max | connect errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for ph in result.phases:
        i = ph.idle
        if not i:
            continue
        if "error" in i:
            w(f"| {ph.target} | {i['error']} |")
            continue
        full = f"{i['all_open_after_s']:.2f} s" if i["all_open_after_s"] is not None else "never"
        w(f"| {ph.target} | {i['max_open']:,} | {full} | {i['open_at_end']:,} | {i['opened']:,} | {i['cut']:,} | "
          f"{_s(i['cut_p50'])} | "
          f"{_s(i['cut_max'])} | {i['connect_errors'] or '-'} |")

    w("\n## Servers during the attack\n")
    w("| target | server cores | load generators' cores | other cores | workers replaced | "
      "answers a fresh review after |")
    w("|---|---:|---:|---:|---:|---|")
    for ph in result.phases:
        s = ph.server
        after = s["answers_after"]
        by = ", ".join(f"{k} {v:.2f}" for k, v in s["load_cores_by_process"].items())
        w(f"| {ph.target} | {s['cores']:.2f} | {s['load_cores']:.2f} ({by}) | {s['other_cores']:.2f} | "
          f"{s['workers_replaced']} | HTTP {after['status']} in {_s(after['seconds'])} |")
    busy = [ph for ph in result.phases if ph.server["other_cores"] > 0.25]
    if busy:
        w(f"WARNING: other processes used up to {max(ph.server['other_cores'] for ph in busy):.2f} of the "
          f"{result.machine['cpus']} cores during the attack on {', '.join(ph.target for ph in busy)}: "
          "those figures are disturbed; rerun on a quiet machine.")
    for note in result.notes:
        w(f"NOTE: {note}")
    w("\n## Targets (netguard under attack; a benchmark: these lines never change the exit status)\n")
    for line in result.verdicts:
        w(line)


def ph_start(st: Mapping[str, Any]) -> str:
    return f"t={st['calm_s']:g} s"


def verdict_lines(result: Result) -> list[str]:
    ng = next((p for p in result.phases if p.target == "netguard"), None)
    if ng is None or "error" in ng.ordinary:
        return ["FAIL netguard: no figures (see above)"]
    o = ng.ordinary["hostile"]
    lines = [
        f"{'PASS' if o['p99'] < TARGET_P99_S else 'FAIL'} ordinary p99 under {TARGET_P99_S:g} s: {_s(o['p99'])}",
        f"{'PASS' if o['failures'] == 0 and o['sent'] else 'FAIL'} ordinary failures = 0: {o['failures']} of "
        f"{o['sent']}" + (f" ({', '.join(f'{k} {v}' for k, v in o['outcomes'].items() if k != 'ok')})"
                          if o["failures"] else ""),
    ]
    h = ng.hostile
    if h and "error" not in h:
        ok = h["within_1s"] == h["sent"] and h["sent"] > 0
        lines.append(f"{'PASS' if ok else 'FAIL'} every hostile policy answered within {TARGET_HOSTILE_S:g} s: "
                     f"{h['within_1s']} of {h['sent']} (max {_s(h['max'])})")
    else:
        lines.append("FAIL every hostile policy answered within 1 s: no hostile stream figures")
    return lines


# --------------------------------------------------------------------------------------------
# Main


def raise_nofile(needed: int) -> tuple[int, int, int]:
    """Soft RLIMIT_NOFILE up to what the run needs (or the hard limit); the servers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, needed)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if want != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


def run(args: argparse.Namespace) -> Result:
    bodies = ordinary_bodies()
    hostile_doc = make_review(hostile_policy(args.hostile_excepts), groups=GROUPS)
    hostile_raw = template(hostile_doc)
    started = datetime.now(UTC)
    needed = args.idle + 3 * args.slow_per_worker * ab.WORKERS + args.ordinary_max_connections \
        + args.hostile_max_connections + 256
    soft_before, soft, hard = raise_nofile(needed)
    result = Result(
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join([".venv/bin/python", "bench/hostile_bench.py", *sys.argv[1:]]),
        machine={"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                 "platform": platform.platform(), "gunicorn": ab.version_of("gunicorn"),
                 "flask": ab.version_of("flask"), "openssl": ssl.OPENSSL_VERSION,
                 "nofile": {"before": soft_before, "now": soft, "hard": hard}},
        settings={"duration_s": args.duration, "calm_s": args.calm, "ordinary_rate": args.ordinary_rate,
                  "ordinary_connections": args.ordinary_connections,
                  "ordinary_max_connections": args.ordinary_max_connections, "hostile_rate": args.hostile_rate,
                  "hostile_excepts": args.hostile_excepts, "hostile_bytes": len(hostile_raw),
                  "hostile_timeout_s": args.hostile_timeout, "slow_per_worker": args.slow_per_worker,
                  "slow_kinds": args.slow_kinds,
                  "idle": args.idle, "workers": ab.WORKERS, "targets": args.targets},
    )
    if soft < needed:
        result.notes.append(f"RLIMIT_NOFILE is {soft} (hard {hard}), below the {needed} descriptors this run "
                            "needs: fewer idle connections can be opened than requested.")
    print(f"netguard hostile-load benchmark, {result.date}, {result.machine['cpus']} CPUs, Python "
          f"{result.machine['python']}, gunicorn {result.machine['gunicorn']}, RLIMIT_NOFILE {soft} "
          f"(was {soft_before}, hard {hard})", flush=True)

    with tempfile.TemporaryDirectory(prefix="netguard-hostile-") as tmpdir, ab.sigterm_as_exit():
        tmp = Path(tmpdir)
        cert, key, ca, cert_source = ab.find_certs(tmp)
        ctx = ab.client_context(ca)
        ca_str = str(ca) if ca else None
        policies_dir = Path(args.policies).resolve() if args.policies else ab.ROOT / "policies"
        ng_port, base_port = ab.free_port(), ab.free_port()
        while base_port == ng_port:
            base_port = ab.free_port()
        env = dict(os.environ)
        env.update({
            "NETGUARD_BIND": f"127.0.0.1:{ng_port}", "NETGUARD_WORKERS": str(ab.WORKERS),
            "NETGUARD_TLS_CERT": str(cert), "NETGUARD_TLS_KEY": str(key), "NETGUARD_POLICIES_DIR": str(policies_dir),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        })
        if args.netguard_log_level:
            env["NETGUARD_LOG_LEVEL"] = args.netguard_log_level
        if "NETGUARD_CHECK_BIND" in getattr(config, "ENV_OVERRIDES", {}):
            # /v1/check's own listener (server.check_bind, 0.0.0.0:8444 by default): loopback, a free port.
            env["NETGUARD_CHECK_BIND"] = f"127.0.0.1:{ab.free_port()}"
        (tmp / "metrics").mkdir()
        srv = config.load(env=env).server
        (tmp / "baseline_conf.py").write_text(ab._BASELINE_CONF.format(
            bind=f"127.0.0.1:{base_port}", workers=ab.WORKERS, threads=srv.threads, keepalive=srv.keepalive_seconds,
            graceful=srv.graceful_timeout_seconds, cert=str(cert), key=str(key)))
        limits = {k: v for k, v in asdict(srv).items() if k not in ("bind", "tls_cert", "tls_key")}
        result.settings["netguard_server"] = limits
        result.settings["tls"] = cert_source
        print(f"netguard server settings (default configuration): {json.dumps(limits)}")

        servers: list[ab.Server] = []
        try:
            if "netguard" in args.targets:
                servers.append(ab.start_server("netguard", [sys.executable, "-m", "webhook.cli", "serve"], env=env,
                                               port=ng_port, log_path=tmp / "netguard.log"))
            if "baseline" in args.targets:
                servers.append(ab.start_server(
                    "baseline", [sys.executable, "-m", "gunicorn", "--config", str(tmp / "baseline_conf.py"),
                                 "--pythonpath", str(ab.BENCH_DIR), "baseline_app:create_app()"],
                    env={k: v for k, v in env.items() if not k.startswith("NETGUARD_")}, port=base_port,
                    log_path=tmp / "baseline.log"))
            for server in servers:
                ab.wait_ready(server, bodies[0].raw, ctx, ab.WORKERS)
            for server in servers:
                expected: dict[str, Verdict] = {}
                for body in bodies:
                    status, doc = ab.https_request(server.port, ctx, "POST", ab.PATH, body.raw)
                    response = doc.get("response", {}) if isinstance(doc, dict) else {}
                    if status != 200 or not isinstance(response.get("allowed"), bool):
                        raise RuntimeError(f"{server.name} answered {body.name} with HTTP {status} {str(doc)[:300]}")
                    expected[body.name] = (response["allowed"], rules_named(_message(doc)))
                    meant = body.allowed if server.name == "netguard" else True
                    if response["allowed"] is not meant:
                        result.notes.append(f"{server.name} answers {body.name} allowed={response['allowed']}, "
                                            f"meant to be {meant}; that answer is the expected one here.")
                print(f"\n# {server.name} on 127.0.0.1:{server.port}: {args.calm:g} s calm, then {args.duration:g} s "
                      "under attack ...", flush=True)
                phase = run_phase(server, args, ca_str, bodies, expected, hostile_raw)
                phase.server["log_tail"] = server.log_tail(15)
                phase.server["log_counts"] = _log_counts(server.log_path)
                if phase.hostile and "error" not in phase.hostile:
                    phase.hostile["server_side"] = server_side_latency(
                        server.log_path, {"many-excepts": "hostile"}).get("hostile")
                result.phases.append(phase)
                if server.proc.poll() is not None:
                    result.notes.append(f"{server.name} exited during the run; log:\n{server.log_tail()}")
        finally:
            for server in reversed(servers):
                ab.stop_server(server)
    for ph in result.phases:
        if ph.idle and "error" not in ph.idle and ph.idle["max_open"] < args.idle:
            result.notes.append(f"{ph.target}: at most {ph.idle['max_open']:,} of the {args.idle:,} idle connections "
                                f"were open at once (connect errors: {ph.idle['connect_errors'] or 'none'}; "
                                "the rest were being reopened after the server closed them).")
    result.verdicts = verdict_lines(result)
    return result


def _log_counts(path: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        for n, line in enumerate(f):
            if n > 2_000_000:
                break
            for word in ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT", '"level": "error"',
                         '"level": "warning"', "admission.decision"):
                if word in line:
                    counts[word] += 1
    return dict(counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=30, help="seconds under attack per server (default 30)")
    parser.add_argument("--calm", type=float, default=5,
                        help="seconds of ordinary traffic alone before the attack (default 5)")
    parser.add_argument("--ordinary-rate", type=float, default=50, help="ordinary reviews per second (default 50)")
    parser.add_argument("--ordinary-connections", type=int, default=4,
                        help="keep-alive connections of the ordinary stream (default 4)")
    parser.add_argument("--ordinary-max-connections", type=int, default=32,
                        help="at most this many ordinary requests in flight, each on its own connection (default 32)")
    parser.add_argument("--hostile-rate", type=float, default=2,
                        help="hostile policies per second (default 2; 0: none)")
    parser.add_argument("--hostile-excepts", type=int, default=8000, help="ipBlock.except entries (default 8000)")
    parser.add_argument("--hostile-timeout", type=float, default=15,
                        help="seconds to wait for a hostile policy's answer (default 15)")
    parser.add_argument("--hostile-max-connections", type=int, default=32,
                        help="at most this many hostile requests in flight (default 32)")
    parser.add_argument("--slow-per-worker", type=int, default=4,
                        help="slow clients of each kind per server worker (default 4; 0: none)")
    parser.add_argument("--slow-kinds", default=",".join(SLOW_KINDS),
                        help=f"comma-separated slow-client kinds (default all: {','.join(SLOW_KINDS)})")
    parser.add_argument("--idle", type=int, default=1000, help="idle TCP connections (default 1000; 0: none)")
    parser.add_argument("--targets", default="netguard,baseline",
                        help="comma-separated: netguard, baseline (default both)")
    parser.add_argument("--policies", help="policies folder for netguard (default: policies/)")
    parser.add_argument("--netguard-log-level", choices=("debug", "info", "warning", "error"),
                        help="NETGUARD_LOG_LEVEL (default: the configuration's, info, as `make run`)")
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS_FILE.relative_to(ab.ROOT)}")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or any(t not in ("netguard", "baseline") for t in args.targets):
        parser.error("--targets takes netguard and/or baseline")
    if not 1 <= args.duration <= 600 or not 0 <= args.calm <= 60:
        parser.error("--duration must be 1..600 s, --calm 0..60 s")
    if not 0 < args.ordinary_rate <= 1000 or not 0 <= args.hostile_rate <= 50:
        parser.error("--ordinary-rate must be in (0, 1000], --hostile-rate in [0, 50]")
    args.slow_kinds = [k.strip() for k in args.slow_kinds.split(",") if k.strip()]
    if any(k not in SLOW_KINDS for k in args.slow_kinds):
        parser.error(f"--slow-kinds takes {', '.join(SLOW_KINDS)}")
    if not args.slow_kinds:
        args.slow_per_worker = 0
    if not 0 <= args.idle <= 20000 or not 0 <= args.slow_per_worker <= 64:
        parser.error("--idle must be 0..20000, --slow-per-worker 0..64")
    if not 1 <= args.ordinary_connections <= args.ordinary_max_connections <= 256 \
            or not 1 <= args.hostile_max_connections <= 256 or not 0 < args.hostile_timeout <= 60:
        parser.error("connections: 1 <= --ordinary-connections <= --ordinary-max-connections <= 256, "
                     "--hostile-max-connections 1..256, --hostile-timeout (0, 60]")
    try:
        result = run(args)
    except RuntimeError as exc:
        print(f"\nhostile_bench: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, PolicyLoadError, EngineError) as exc:
        print(f"\nhostile_bench: netguard cannot load its configuration or policies: {exc}", file=sys.stderr)
        return 2
    print_report(result, args)
    if args.json:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(to_json(result), indent=2, default=str) + "\n")
        print(f"\nwrote {RESULTS_FILE.relative_to(ab.ROOT)}")
    return 0


def to_json(result: Result) -> dict[str, Any]:
    doc = asdict(result)
    for ph in doc["phases"]:
        # keep the per-request samples of the hostile stream and every slow-client attempt; the ordinary
        # stream's samples are many, so only their summary stays (and the non-ok ones)
        ordinary = ph["raw"].get("ordinary", {})
        if "samples" in ordinary:
            ordinary["samples"] = [s for s in ordinary["samples"] if s["outcome"] != "ok"][:500]
    return doc


if __name__ == "__main__":
    raise SystemExit(main())
