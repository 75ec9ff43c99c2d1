"""netguard against a bare Flask app, same gunicorn settings, same load, same run.

    .venv/bin/python bench/admission_bench.py [--duration 10] [--connections 8] [--json]

Starts two servers as subprocesses on free loopback ports, both gunicorn gthread with netguard's
worker settings (2 workers, the configured threads and keep-alive, TLS with the certificates in
certs/): the bare app in bench/baseline_app.py and `python -m webhook.cli serve`. Then loads each
with the same AdmissionReview bodies (wrk if it is on PATH, else a Python client whose figures are
client-bound), prints requests/s and latency per target and body and the netguard/baseline ratio,
and an in-process microbenchmark of `pipeline.review(parse_review(...))` that separates evaluation
cost from HTTP/TLS cost. The servers are always stopped (SIGTERM, then SIGKILL to their process
group). See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from webhook import certs as certs_mod
from webhook import config
from webhook.engine import EngineError
from webhook.policies import PolicyLoadError
from webhook.reviews import make_review

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"

WORKERS = 2
WRK_THREADS = 2
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
PATH = "/validate"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# gunicorn does not balance connections between workers: whichever worker wakes first accepts, and a
# keep-alive connection then stays with it. wrk opens its connections in a burst, and the worker that
# runs first can drain the whole backlog (always so when the other is still busy, see wait_idle), so
# all 8 land on one worker and the row measures one worker instead of two. Such a run (one worker over
# PINNED_SHARE % of the CPU) is redone, at most twice.
PINNED_SHARE = 75.0
PINNED_RETRIES = 2


# --------------------------------------------------------------------------------------------
# Request bodies


@dataclass(frozen=True)
class Body:
    name: str
    description: str
    review: dict[str, Any]
    allowed: bool  # what netguard must answer; checked before measuring

    @property
    def raw(self) -> bytes:
        return json.dumps(self.review, separators=(",", ":")).encode()


def _ports(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"ports": [{"port": port, "protocol": proto} for port, proto in pairs]}]


def _cilium_spec(i: int) -> dict[str, Any]:
    """One entry of `specs`: a realistic service policy with several ingress and egress rules."""
    app = f"svc-{i}"
    return {
        "endpointSelector": {"matchLabels": {"app": app, "tier": "backend"}},
        "ingress": [
            {"fromEndpoints": [{"matchLabels": {"app": f"svc-{(i + 1) % 10}"}}],
             "toPorts": _ports(("8080", "TCP"))},
            {"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "monitoring",
                                                "app": "prometheus"}}],
             "toPorts": _ports(("9090", "TCP"))},
        ],
        "egress": [
            {"toEndpoints": [{"matchLabels": {"app": "postgres"}}], "toPorts": _ports(("5432", "TCP"))},
            {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                              "k8s-app": "kube-dns"}}],
             "toPorts": _ports(("53", "UDP"), ("53", "TCP"))},
            {"toFQDNs": [{"matchName": f"api-{i}.example.com"}, {"matchPattern": "*.storage.example.com"}],
             "toPorts": _ports(("443", "TCP"))},
            {"toCIDRSet": [{"cidr": "10.20.0.0/16", "except": ["10.20.1.0/24"]}],
             "toPorts": _ports(("8443", "TCP"), ("9443", "TCP"))},
            {"toServices": [{"k8sService": {"serviceName": "search", "namespace": "team-a"}}],
             "toPorts": _ports(("9200", "TCP"))},
        ],
    }


def build_bodies() -> list[Body]:
    groups = ("team-a", "system:authenticated")
    allowed = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-to-db", "namespace": "team-a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}],
        },
    }
    denied = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-egress", "namespace": "team-a"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }
    cilium = {
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "team-a-services", "namespace": "team-a"},
        "specs": [_cilium_spec(i) for i in range(10)],
    }
    return [
        Body("np-allowed", "NetworkPolicy web -> db:5432 (allowed)",
             make_review(allowed, groups=groups), allowed=True),
        Body("np-denied", "NetworkPolicy egress: [{}], allow-all egress (denied)",
             make_review(denied, groups=groups), allowed=False),
        Body("cnp-10-specs", "CiliumNetworkPolicy, specs: 10 x (2 ingress + 5 egress rules) (allowed)",
             make_review(cilium, groups=groups), allowed=True),
    ]


# --------------------------------------------------------------------------------------------
# Small helpers


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms != ms:  # nan
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process, from /proc.

    CPU = utime + stime + cutime + cstime: a child that exits and is reaped (a replaced evaluator)
    moves into its parent's figure instead of vanishing from the totals.
    """
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK)
    return table


def children_of(pid: int, table: Mapping[int, tuple[int, float]] | None = None) -> list[int]:
    table = process_table() if table is None else table
    return [child for child, (parent, _) in table.items() if parent == pid]


def subtree_cpu(pid: int, table: Mapping[int, tuple[int, float]]) -> float:
    """CPU of a process and all its descendants (a gunicorn worker and its evaluator processes)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += table.get(current, (0, 0.0))[1]
        stack.extend(children_of(current, table))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat), to spot other load on the machine."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def client_cpu_seconds() -> float:
    """CPU of this process plus its reaped children (wrk), for the client's share of the machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: str = ""

    def cpu_by_process(self) -> dict[int, float]:
        """The master's own CPU, and each worker's including whatever processes it started."""
        table = process_table()
        master = self.proc.pid
        cpu = {master: table.get(master, (0, 0.0))[1]}
        for worker in children_of(master, table):
            cpu[worker] = subtree_cpu(worker, table)
        return cpu

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def start_server(name: str, argv: list[str], env: Mapping[str, str], port: int, log_path: Path) -> Server:
    with open(log_path, "wb") as log:
        # Own session, so the whole gunicorn tree (master and workers) can be signalled as a group.
        proc = subprocess.Popen(argv, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return Server(name=name, port=port, proc=proc, log_path=log_path)


def stop_server(server: Server) -> None:
    """SIGTERM to the gunicorn master (graceful), then SIGKILL to whatever is left of its group."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def https_request(port: int, ctx: ssl.SSLContext, method: str, path: str,
                  body: bytes | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data[:200]


def wait_ready(server: Server, probe: bytes, ctx: ssl.SSLContext, workers: int) -> None:
    """Ready = a review is answered and the master has forked all its workers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {server.proc.returncode} before it was ready; "
                               f"log {server.log_path}:\n{server.log_tail()}")
        try:
            status, _ = https_request(server.port, ctx, "POST", PATH, probe, timeout=2)
        except (OSError, http.client.HTTPException):
            status = 0
        if status == 200 and len(children_of(server.proc.pid)) >= workers:
            return
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT_S:.0f} s; log {server.log_path}:\n"
                       f"{server.log_tail()}")


def check_answers(server: Server, bodies: Sequence[Body], ctx: ssl.SSLContext,
                  expected_allowed: Mapping[str, bool] | None) -> None:
    """Each body once, before measuring: a 4xx measured at full speed would be a meaningless figure.

    expected_allowed: netguard's in-process answers (same policies); None for the baseline (always allows).
    """
    for body in bodies:
        status, doc = https_request(server.port, ctx, "POST", PATH, body.raw)
        response = doc.get("response", {}) if isinstance(doc, dict) else {}
        expected = expected_allowed[body.name] if expected_allowed is not None else True
        if status != 200 or response.get("uid") != body.review["request"]["uid"] \
                or response.get("allowed") is not expected:
            raise RuntimeError(f"{server.name} answered {body.name} with HTTP {status} {str(doc)[:300]} "
                               f"(expected 200, allowed={expected})")


# --------------------------------------------------------------------------------------------
# Load generators


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_s: float
    p99_s: float
    errors: int  # socket errors and timeouts
    non_2xx: int
    raw: str = ""


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _wrk_time(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    """wrk 4.x text output with --latency: Requests/sec, the latency distribution, error lines."""
    def grab(pattern: str) -> re.Match[str]:
        m = re.search(pattern, output, re.MULTILINE)
        if not m:
            raise ValueError(f"wrk output has no match for {pattern!r}:\n{output}")
        return m

    rps = float(grab(r"^Requests/sec:\s+([\d.]+)").group(1))
    p50 = grab(r"^\s+50(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\b")
    p99 = grab(r"^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\b")
    done = grab(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(m.group(1)) if m else 0
    return LoadResult(requests=int(done.group(1)), seconds=_wrk_time(done.group(2), done.group(3)), rps=rps,
                      p50_s=_wrk_time(*p50.groups()), p99_s=_wrk_time(*p99.groups()),
                      errors=errors, non_2xx=non_2xx, raw=output)


_LUA = """-- generated by bench/admission_bench.py: POST one AdmissionReview body on every request
local f = assert(io.open({path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    m = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return m.group(1) if m else "?"


def run_wrk(wrk: str, port: int, lua: Path, duration: int, connections: int) -> LoadResult:
    argv = [wrk, f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "5s", "-s", str(lua), f"https://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return parse_wrk(out.stdout)


def run_python_load(port: int, body: bytes, duration: int, connections: int, ctx: ssl.SSLContext) -> LoadResult:
    """One thread per connection, each a persistent HTTPSConnection (keep-alive). GIL-bound client."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    non_2xx = [0] * connections
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    stop_at = start + duration

    def client(i: int) -> None:
        conn: http.client.HTTPSConnection | None = None
        while time.perf_counter() < stop_at:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            t0 = time.perf_counter()
            try:
                conn.request("POST", PATH, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = None
                continue
            latencies[i].append(time.perf_counter() - t0)
            if not 200 <= resp.status < 400:
                non_2xx[i] += 1
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, stop_at - time.perf_counter()) + 10)
    elapsed = time.perf_counter() - start
    samples = sorted(x for per in latencies for x in per)
    return LoadResult(requests=len(samples), seconds=elapsed, rps=len(samples) / elapsed,
                      p50_s=percentile(samples, 50), p99_s=percentile(samples, 99),
                      errors=sum(errors), non_2xx=sum(non_2xx))


# --------------------------------------------------------------------------------------------
# Measurement


@dataclass
class HttpRow:
    body: str
    target: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_req: float
    server_cores: float
    client_cores: float
    other_cores: float  # everything else on the machine during the run: noise if well above 0
    worker_cpu_split: list[float]
    errors: int
    non_2xx: int
    ratio_rps: float | None = None


@dataclass
class MicroRow:
    body: str
    bytes: int
    verdict: str
    allowed: bool
    decode_p50_ms: float
    review_p50_ms: float
    review_p99_ms: float
    iterations: int
    # The same with the engine the webhook uses (build_pipeline(..., isolate=True): regorus in evaluator
    # processes, input sent over a pipe); None when this netguard has no such option.
    isolated_p50_ms: float | None = None
    isolated_p99_ms: float | None = None


@dataclass
class Run:
    date: str
    command: str
    machine: dict[str, Any]
    servers: dict[str, Any]
    load: dict[str, Any]
    http: list[HttpRow] = field(default_factory=list)
    micro: list[MicroRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    policies: dict[str, Any] = field(default_factory=dict)


def microbench(bodies: Sequence[Body], iterations: int, policies_dir: Path,
               run_info: Run) -> list[MicroRow]:
    """pipeline.review(parse_review(doc)) in this process: evaluation without HTTP, TLS, logs or metrics."""
    from webhook.admission import decode_json, parse_review
    from webhook.pipeline import build_pipeline

    settings = config.with_overrides(config.Settings(), policies_dir=str(policies_dir))
    pipeline = build_pipeline(settings)
    run_info.policies = {"dir": str(policies_dir), "guardrails": len(pipeline.policies.guardrails),
                         "revision": pipeline.revision}
    print(f"policies: {policies_dir}, {len(pipeline.policies.guardrails)} guardrails, "
          f"revision {pipeline.revision}, engine {pipeline.engine.name}\n")
    rows = []
    try:
        for body in bodies:
            raw = body.raw
            decision = pipeline.review(parse_review(body.review))
            if decision.allowed is not body.allowed:
                run_info.notes.append(
                    f"{body.name} was meant to be {'allowed' if body.allowed else 'denied'} but this policy set "
                    f"answers {decision.verdict.value} ({', '.join(decision.rule_ids) or decision.reason}): "
                    "it no longer exercises the path its name says.")
            review_ns = _time_review(pipeline, body, iterations)
            depth = settings.server.max_json_depth
            decode_ns = sorted(_time_ns(partial(decode_json, raw, "application/json", depth), iterations))
            rows.append(MicroRow(
                body=body.name, bytes=len(raw), verdict=decision.verdict.value, allowed=decision.allowed,
                decode_p50_ms=percentile(decode_ns, 50) / 1e6, review_p50_ms=percentile(review_ns, 50) / 1e6,
                review_p99_ms=percentile(review_ns, 99) / 1e6, iterations=iterations,
            ))
    finally:
        pipeline.engine.close()

    try:
        isolated = build_pipeline(settings, isolate=True)
    except TypeError:  # a netguard without evaluator processes
        return rows
    try:
        for row, body in zip(rows, bodies, strict=True):
            ns = _time_review(isolated, body, iterations)
            row.isolated_p50_ms, row.isolated_p99_ms = percentile(ns, 50) / 1e6, percentile(ns, 99) / 1e6
    finally:
        isolated.engine.close()
    return rows


def _time_ns(fn: Any, iterations: int) -> list[int]:
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def _time_review(pipeline: Any, body: Body, iterations: int) -> list[int]:
    """Sorted durations of pipeline.review(parse_review(doc)), after a short warm-up."""
    from webhook.admission import parse_review

    _time_ns(lambda: pipeline.review(parse_review(body.review)), max(10, iterations // 20))
    return sorted(_time_ns(lambda: pipeline.review(parse_review(body.review)), iterations))


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM to this script unwinds through the finally blocks, so the servers are stopped."""
    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def pinned(row: HttpRow) -> bool:
    return len(row.worker_cpu_split) > 1 and max(row.worker_cpu_split) > PINNED_SHARE


def wait_idle(server: Server, timeout: float = 10.0) -> None:
    """Until the server has used no CPU for 0.3 s: requests left over from the previous run done.

    A worker still busy when the next run connects loses every accept to the idle one, and the whole
    run then lands on one worker.
    """
    deadline = time.monotonic() + timeout
    last = sum(server.cpu_by_process().values())
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = sum(server.cpu_by_process().values())
        if now - last < 1.5 / CLK_TCK:
            return
        last = now


def measure(server: Server, body: Body, run_load: Any) -> HttpRow:
    wait_idle(server)
    before_srv = server.cpu_by_process()
    before_cli = client_cpu_seconds()
    before_all = machine_busy_seconds()
    result: LoadResult = run_load(server, body)
    after_all = machine_busy_seconds()
    after_cli = client_cpu_seconds()
    after_srv = server.cpu_by_process()
    deltas = {pid: after_srv.get(pid, 0.0) - before_srv.get(pid, 0.0) for pid in after_srv}
    total = sum(deltas.values())
    workers = sorted((d for pid, d in deltas.items() if pid != server.proc.pid), reverse=True)
    split = [round(100 * d / total, 1) if total else 0.0 for d in workers]
    client = after_cli - before_cli
    other = max(0.0, (after_all - before_all) - total - client)
    return HttpRow(
        body=body.name, target=server.name, requests=result.requests, rps=result.rps,
        p50_ms=result.p50_s * 1000, p99_ms=result.p99_s * 1000,
        server_cpu_ms_per_req=1000 * total / result.requests if result.requests else float("nan"),
        server_cores=total / result.seconds, client_cores=client / result.seconds,
        other_cores=other / result.seconds,
        worker_cpu_split=split, errors=result.errors, non_2xx=result.non_2xx,
    )


def find_certs(tmp: Path) -> tuple[Path, Path, Path | None, str]:
    d = ROOT / "certs"
    if (d / "tls.crt").is_file() and (d / "tls.key").is_file():
        ca = d / "ca.crt"
        return d / "tls.crt", d / "tls.key", ca if ca.is_file() else None, "certs/"
    paths = certs_mod.generate("netguard", "netguard", tmp / "certs")
    return paths.cert, paths.key, paths.ca_cert, "generated into a temp dir (certs/ is missing)"


def client_context(ca: Path | None) -> ssl.SSLContext:
    if ca is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(ca))


_BASELINE_CONF = """# generated by bench/admission_bench.py: netguard's worker settings for the baseline app
import ssl
bind = [{bind!r}]
workers = {workers}
worker_class = "gthread"
threads = {threads}
keepalive = {keepalive}
graceful_timeout = {graceful}
timeout = 30
certfile = {cert!r}
keyfile = {key!r}
accesslog = None
errorlog = "-"
loglevel = "warning"
proc_name = "netguard-bench-baseline"


def ssl_context(conf, default_ssl_context_factory):
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
"""


def run(args: argparse.Namespace) -> Run:
    bodies = build_bodies()
    wrk = shutil.which("wrk") if args.load_generator in ("auto", "wrk") else None
    if args.load_generator == "wrk" and wrk is None:
        raise SystemExit("wrk is not on PATH; install it with `apt-get install -y wrk` (Debian/Ubuntu)")

    started = datetime.now(UTC)
    run_info = Run(
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join([".venv/bin/python", "bench/admission_bench.py", *sys.argv[1:]]),
        machine={"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                 "platform": platform.platform(), "gunicorn": version_of("gunicorn"),
                 "flask": version_of("flask"), "openssl": ssl.OPENSSL_VERSION},
        servers={}, load={},
    )

    print(f"netguard admission benchmark, {run_info.date}, {run_info.machine['cpus']} CPUs, "
          f"Python {run_info.machine['python']}, gunicorn {run_info.machine['gunicorn']}")
    print(f"\n## In-process: pipeline.review(parse_review(doc)), {args.iterations} iterations per body\n",
          flush=True)
    policies_dir = Path(args.policies).resolve() if args.policies else ROOT / "policies"
    run_info.micro = microbench(bodies, args.iterations, policies_dir, run_info)
    print_micro(run_info.micro)

    with tempfile.TemporaryDirectory(prefix="netguard-bench-") as tmpdir, sigterm_as_exit():
        tmp = Path(tmpdir)
        cert, key, ca, cert_source = find_certs(tmp)
        ctx = client_context(ca)
        for body in bodies:
            (tmp / f"{body.name}.json").write_bytes(body.raw)
            (tmp / f"{body.name}.lua").write_text(_LUA.format(path=json.dumps(str(tmp / f"{body.name}.json"))))

        ng_port, base_port = free_port(), free_port()
        while base_port == ng_port:
            base_port = free_port()
        env = dict(os.environ)
        env.update({
            "NETGUARD_BIND": f"127.0.0.1:{ng_port}", "NETGUARD_CHECK_BIND": f"127.0.0.1:{free_port()}",
            "NETGUARD_WORKERS": str(WORKERS),
            "NETGUARD_LOG_LEVEL": args.netguard_log_level, "NETGUARD_TLS_CERT": str(cert),
            "NETGUARD_TLS_KEY": str(key), "NETGUARD_POLICIES_DIR": str(policies_dir),
            # Inside our temp dir, so nothing is left behind even if a server has to be killed.
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        })
        (tmp / "metrics").mkdir()
        srv = config.load(env=env).server  # the settings netguard will run with, copied to the baseline
        (tmp / "baseline_conf.py").write_text(_BASELINE_CONF.format(
            bind=f"127.0.0.1:{base_port}", workers=WORKERS, threads=srv.threads, keepalive=srv.keepalive_seconds,
            graceful=srv.graceful_timeout_seconds, cert=str(cert), key=str(key)))
        run_info.servers = {
            "worker_class": "gthread", "workers": WORKERS, "threads": srv.threads,
            "keepalive_s": srv.keepalive_seconds, "tls": f"{cert_source} ({cert.name})",
            "netguard_log_level": args.netguard_log_level, "bind": "127.0.0.1",
        }

        servers: list[Server] = []
        try:
            baseline = start_server(
                "baseline", [sys.executable, "-m", "gunicorn", "--config", str(tmp / "baseline_conf.py"),
                             "--pythonpath", str(BENCH_DIR), "baseline_app:create_app()"],
                env={k: v for k, v in env.items() if not k.startswith("NETGUARD_")}, port=base_port,
                log_path=tmp / "baseline.log")
            servers.append(baseline)
            netguard = start_server("netguard", [sys.executable, "-m", "webhook.cli", "serve"], env=env,
                                    port=ng_port, log_path=tmp / "netguard.log")
            servers.append(netguard)
            for server in servers:
                wait_ready(server, bodies[0].raw, ctx, WORKERS)
            status, ready = https_request(ng_port, ctx, "GET", "/readyz")
            if status == 200 and isinstance(ready, dict):
                netguard.info = (f"engine {ready.get('engine')}, {ready.get('guardrails')} guardrails, "
                                 f"policy revision {ready.get('policy_revision')}")
                run_info.servers["netguard"] = ready
            check_answers(baseline, bodies, ctx, None)
            check_answers(netguard, bodies, ctx, {m.body: m.allowed for m in run_info.micro})

            connections = args.connections
            if wrk:
                version = wrk_version(wrk)
                run_info.load = {"tool": f"wrk {version}", "threads": min(WRK_THREADS, connections),
                                 "connections": connections, "duration_s": args.duration, "client_bound": False}

                def run_load(server: Server, body: Body) -> LoadResult:
                    assert wrk is not None
                    return run_wrk(wrk, server.port, tmp / f"{body.name}.lua", args.duration, connections)

                def warm(server: Server) -> None:
                    assert wrk is not None
                    run_wrk(wrk, server.port, tmp / f"{bodies[0].name}.lua", args.warmup, connections)
            else:
                run_info.load = {"tool": "python (http.client threads)", "threads": connections,
                                 "connections": connections, "duration_s": args.duration, "client_bound": True}
                why = "--load-generator python" if args.load_generator == "python" else "wrk is not on PATH"
                run_info.notes.append(
                    f"{why}: the load comes from Python threads in this process (GIL-bound), so "
                    "req/s and latencies are CLIENT-BOUND and understate both servers; the ratio is only "
                    "indicative. Install wrk (`apt-get install -y wrk`) for server figures.")

                def run_load(server: Server, body: Body) -> LoadResult:
                    return run_python_load(server.port, body.raw, args.duration, connections, ctx)

                def warm(server: Server) -> None:
                    run_python_load(server.port, bodies[0].raw, args.warmup, connections, ctx)

            print_header(run_info, servers)
            if args.warmup > 0:
                for server in servers:
                    warm(server)  # workers fully booted, first requests of each thread served
            for body in bodies:
                pair = []
                for server in servers:  # baseline then netguard, back to back, per body
                    print(f"  {body.name:<13} {server.name:<9} ...", end="", flush=True)
                    row = measure(server, body, run_load)
                    for _ in range(PINNED_RETRIES):  # see PINNED_SHARE
                        if not pinned(row):
                            break
                        print(f" {row.rps:.0f} req/s with {max(row.worker_cpu_split):.0f}% on one worker, again ...",
                              end="", flush=True)
                        run_info.notes.append(
                            f"{server.name}/{body.name} was run again: one worker did "
                            f"{max(row.worker_cpu_split):.0f}% of the work ({row.rps:,.0f} req/s).")
                        row = measure(server, body, run_load)
                    print(f" {row.rps:8.0f} req/s", flush=True)
                    pair.append(row)
                base_row, ng_row = pair
                ng_row.ratio_rps = ng_row.rps / base_row.rps if base_row.rps else None
                run_info.http.extend(pair)
            for server in servers:
                if server.proc.poll() is not None:
                    run_info.notes.append(f"{server.name} exited during the run; log:\n{server.log_tail()}")
        finally:
            for server in reversed(servers):
                stop_server(server)
    return run_info


# --------------------------------------------------------------------------------------------
# Output


def print_micro(rows: Sequence[MicroRow]) -> None:
    isolated = any(r.isolated_p50_ms is not None for r in rows)
    extra = (" via evaluators p50 | via evaluators p99 |", "---:|---:|") if isolated else ("", "")
    print(f"| body | bytes | verdict | decode_json p50 | parse+review p50 | parse+review p99 |{extra[0]}")
    print(f"|---|---:|---|---:|---:|---:|{extra[1]}")
    for r in rows:
        line = (f"| {r.body} | {r.bytes:,} | {r.verdict} | {fmt_ms(r.decode_p50_ms / 1000)} | "
                f"{fmt_ms(r.review_p50_ms / 1000)} | {fmt_ms(r.review_p99_ms / 1000)} |")
        if isolated:
            p50, p99 = r.isolated_p50_ms or math.nan, r.isolated_p99_ms or math.nan
            line += f" {fmt_ms(p50 / 1000)} | {fmt_ms(p99 / 1000)} |"
        print(line)
    print("\n(decode_json = bytes -> JSON value with the depth check; parse+review = parse_review + "
          "pipeline.review with build_pipeline(Settings()), regorus on this thread: normalize, facts, Rego "
          "evaluation, decide; no HTTP, TLS, log or metrics."
          + (" via evaluators = the same with build_pipeline(..., isolate=True) as the webhook runs it: "
             "regorus in evaluator processes, the input document sent over a pipe." if isolated else "")
          + ")")


def print_header(run_info: Run, servers: Sequence[Server]) -> None:
    s, load = run_info.servers, run_info.load
    print(f"\n## Over HTTPS: {load['tool']}, {load['threads']} threads, {load['connections']} connections, "
          f"{load['duration_s']} s per run, on this machine\n")
    print(f"servers: gunicorn {s['worker_class']}, {s['workers']} workers x {s['threads']} threads, "
          f"keep-alive {s['keepalive_s']} s, TLS 1.2+ with {s['tls']}, bound to 127.0.0.1 only")
    for server in servers:
        extra = f": {server.info}" if server.info else ""
        print(f"  {server.name} on port {server.port}{extra}")
    print(f"netguard runs with NETGUARD_LOG_LEVEL={s['netguard_log_level']}: "
          + ("its per-request decision log lines (info) are off so they do not dominate; metrics stay on."
             if s["netguard_log_level"] in ("warning", "error") else "decision log lines are ON (to a file)."))
    if load["client_bound"]:
        print("WARNING: " + run_info.notes[-1])
    print("The load generator shares the CPUs with the servers (see the client cores column).\n", flush=True)


def print_http(rows: Sequence[HttpRow]) -> None:
    print("| body | target | req/s | p50 | p99 | server CPU/req | server cores | client cores | other cores | "
          "workers' CPU split | netguard/baseline req/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        ratio = f"**{r.ratio_rps:.2f}**" if r.ratio_rps is not None else ""
        split = "/".join(f"{x:.0f}" for x in r.worker_cpu_split)
        print(f"| {r.body} | {r.target} | {r.rps:,.0f} | {fmt_ms(r.p50_ms / 1000)} | {fmt_ms(r.p99_ms / 1000)} | "
              f"{fmt_ms(r.server_cpu_ms_per_req / 1000)} | {r.server_cores:.2f} | {r.client_cores:.2f} | "
              f"{r.other_cores:.2f} | "
              f"{split}% | {ratio} |")
    bad = [r for r in rows if r.errors or r.non_2xx]
    for r in bad:
        print(f"WARNING: {r.target}/{r.body}: {r.errors} socket errors, {r.non_2xx} non-2xx responses")
    for r in rows:
        if pinned(r):
            print(f"WARNING: {r.target}/{r.body}: one worker did {max(r.worker_cpu_split):.0f}% of the work. With "
                  "keep-alive a connection stays on the worker that accepted it, and here most connections "
                  "landed on one worker, so this row measures about one worker, not two.")
    busy = [r for r in rows if r.other_cores > 0.25]
    if busy:
        print(f"WARNING: other processes used up to {max(r.other_cores for r in busy):.2f} cores during "
              f"{len(busy)} of the runs: those figures (and ratios) are disturbed; rerun on a quiet machine.")


def to_json(run_info: Run) -> dict[str, Any]:
    return asdict(run_info)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--json", action="store_true",
                        help=f"also write the results to {RESULTS_FILE.relative_to(ROOT)}")
    parser.add_argument("--iterations", type=int, default=2000, help="in-process iterations per body (default 2000)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load per server before measuring (default 2)")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk if on PATH, else Python threads (client-bound)")
    parser.add_argument("--policies", help="policies folder for netguard and the microbenchmark "
                                           "(default: policies/ of this repository)")
    parser.add_argument("--netguard-log-level", choices=("debug", "info", "warning", "error"), default="warning",
                        help="NETGUARD_LOG_LEVEL for the server (default warning: no per-request decision lines)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.iterations < 1 or args.warmup < 0:
        parser.error("--duration, --connections and --iterations must be >= 1, --warmup >= 0")
    if args.duration > 600:
        parser.error("--duration is capped at 600 s")

    try:
        run_info = run(args)
    except RuntimeError as exc:
        print(f"\nadmission_bench: {exc}", file=sys.stderr)
        return 1
    except (config.ConfigError, PolicyLoadError, EngineError) as exc:
        print(f"\nadmission_bench: netguard cannot load its configuration or policies: {exc}", file=sys.stderr)
        return 2
    print()
    print_http(run_info.http)
    print("\nratio = netguard req/s / baseline req/s for the same body in this run (1.00 = no overhead over a "
          "bare Flask app under the same gunicorn settings). server CPU/req = CPU seconds of the gunicorn "
          "master, workers and their child processes (netguard's evaluators) during the run / requests served.")
    for note in run_info.notes:
        print(f"NOTE: {note}")
    if args.json:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(to_json(run_info), indent=2, default=str) + "\n")
        print(f"\nwrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
