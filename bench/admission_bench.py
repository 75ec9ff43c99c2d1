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
import queue
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import struct
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

from webhook import config
from webhook.core.reviews import make_review
from webhook.core.settings import ConfigError, Settings
from webhook.engine.engines import EngineError
from webhook.engine.policies import PolicyLoadError
from webhook.pki import certs as certs_mod

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


# Where a body changes from one request to the next: every request carries a new uid (as the API server sends),
# and a "new" body also a new object (a label value), so a verdict cache cannot answer it from an earlier request.
TOKEN = "NGVAR"


@dataclass(frozen=True)
class Body:
    name: str
    description: str
    review: dict[str, Any]  # with TOKEN where the request varies (the uid, and for a new object a label value)
    allowed: bool  # what netguard must answer; checked before measuring
    new: bool = True  # a different object on every request (False: the same object, only the uid changes)
    micro: str = ""  # the in-process row whose answer this body must get (default: its own name)

    @property
    def template(self) -> bytes:
        return json.dumps(self.review, separators=(",", ":")).encode()

    @property
    def raw(self) -> bytes:
        return self.variant(0)

    def variant(self, n: int) -> bytes:
        return self.template.replace(TOKEN.encode(), str(n).encode())

    def review_variant(self, n: int) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.variant(n))
        return value


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


def _thousand_rules() -> dict[str, Any]:
    """A NetworkPolicy of 1,000 rules (500 ingress, 500 egress), at limits.max_rules and within every other limit:
    pods, namespaces, private CIDR blocks with an except, and a few public /32s, each rule with its ports."""
    ingress, egress = [], []
    for i in range(500):
        if i % 2:
            peer: dict[str, Any] = {"podSelector": {"matchLabels": {"app": f"client-{i}"}}}
        else:
            peer = {"namespaceSelector": {"matchLabels": {"team": f"team-{i % 50}"}},
                    "podSelector": {"matchLabels": {"role": "frontend"}}}
        ingress.append({"from": [peer], "ports": [{"protocol": "TCP", "port": 8000 + i % 100}]})
        if i % 25 == 0:
            target: dict[str, Any] = {"ipBlock": {"cidr": f"203.0.113.{i // 25}/32"}}
        elif i % 3 == 0:
            target = {"ipBlock": {"cidr": f"10.{i // 256}.{i % 256}.0/24", "except": [f"10.{i // 256}.{i % 256}.0/28"]}}
        else:
            target = {"podSelector": {"matchLabels": {"app": f"backend-{i}"}}}
        egress.append({"to": [target], "ports": [{"protocol": "TCP", "port": 443},
                                                 {"protocol": "TCP", "port": 9000 + i % 50}]})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "big-app", "namespace": "team-a"},
        "spec": {"podSelector": {"matchLabels": {"app": f"big-{TOKEN}"}}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": ingress, "egress": egress},
    }


def _review(obj: dict[str, Any]) -> dict[str, Any]:
    review = make_review(obj, groups=("team-a", "system:authenticated"))
    review["request"]["uid"] = f"bench-{TOKEN}"
    return review


def build_bodies() -> list[Body]:
    """The in-process bodies; http_bodies() are the ones sent over HTTPS."""
    allowed = _allowed_np(f"web-{TOKEN}")
    denied = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-egress", "namespace": "team-a"},
        "spec": {"podSelector": {"matchLabels": {"app": f"any-{TOKEN}"}}, "policyTypes": ["Egress"],
                 "egress": [{}]},
    }
    cilium = _cilium(f"svc-0-{TOKEN}")
    return [
        Body("np-allowed", "NetworkPolicy web -> db:5432 (allowed)", _review(allowed), allowed=True),
        Body("np-denied", "NetworkPolicy egress: [{}], allow-all egress (denied)", _review(denied), allowed=False),
        Body("cnp-10-specs", "CiliumNetworkPolicy, specs: 10 x (2 ingress + 5 egress rules) (allowed)",
             _review(cilium), allowed=True),
        Body("np-1000-rules", "NetworkPolicy, 500 ingress + 500 egress rules (limits.max_rules)",
             _review(_thousand_rules()), allowed=True),
    ]


def http_bodies() -> list[Body]:
    """Over HTTPS: a new small NetworkPolicy per request, the same one repeated, a new Cilium policy per request."""
    return [
        Body("np-new", "NetworkPolicy web -> db:5432, a new object per request (allowed)",
             _review(_allowed_np(f"web-{TOKEN}")), allowed=True, micro="np-allowed"),
        Body("np-same", "the same NetworkPolicy on every request, only the uid changes (allowed)",
             _review(_allowed_np("web")), allowed=True, new=False, micro="np-allowed"),
        Body("cnp-new", "CiliumNetworkPolicy 10 specs x 7 rules, a new object per request (allowed)",
             _review(_cilium(f"svc-0-{TOKEN}")), allowed=True, micro="cnp-10-specs"),
    ]


def _cilium(first_app: str) -> dict[str, Any]:
    specs = [_cilium_spec(i) for i in range(10)]
    specs[0]["endpointSelector"]["matchLabels"]["app"] = first_app
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "team-a-services", "namespace": "team-a"}, "specs": specs}


def _allowed_np(app: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-to-db", "namespace": "team-a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": app}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}],
        },
    }


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
    # Where each worker's count of answered reviews is: netguard's Prometheus multiprocess files
    # (counter_<pid>.db), the baseline's BENCH_COUNTS_DIR files (<pid>, 8 bytes).
    metrics_dir: Path | None = None
    counts_dir: Path | None = None

    def requests_by_worker(self) -> dict[int, int]:
        """Reviews answered so far, per worker pid (a worker that exited keeps its file)."""
        from prometheus_client.mmap_dict import MmapedDict

        out: dict[int, int] = {}
        if self.metrics_dir is not None:
            for path in self.metrics_dir.glob("counter_*.db"):
                pid = int(path.stem.rsplit("_", 1)[1])
                total = 0.0
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
                    for key, value, _ts, _pos in values:
                        if json.loads(key)[1] == "netguard_admission_requests_total":
                            total += value
                out[pid] = int(total)
        elif self.counts_dir is not None:
            for path in self.counts_dir.iterdir():
                with contextlib.suppress(OSError, ValueError, struct.error):
                    out[int(path.name)] = struct.unpack("<Q", path.read_bytes()[:8])[0]
        return out

    def memory_by_worker(self) -> list[dict[str, Any]]:
        """Per worker: RSS and PSS of the worker and every process under it (netguard's evaluators), in MiB."""
        table = process_table()
        rows = []
        for worker in sorted(children_of(self.proc.pid, table)):
            pids, stack = [], [worker]
            while stack:
                pid = stack.pop()
                pids.append(pid)
                stack.extend(children_of(pid, table))
            rss = sum(_proc_kib(pid, "status", "VmRSS:") for pid in pids) / 1024
            pss = sum(_proc_kib(pid, "smaps_rollup", "Pss:") for pid in pids) / 1024
            own = _proc_kib(worker, "status", "VmRSS:") / 1024
            rows.append({"pid": worker, "processes": len(pids), "rss_mib": round(rss, 1),
                         "pss_mib": round(pss, 1), "worker_rss_mib": round(own, 1)})
        return rows

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


def _proc_kib(pid: int, name: str, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


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
        if status != 200 or response.get("uid") != body.review_variant(0)["request"]["uid"] \
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


_LUA = """-- generated by bench/admission_bench.py: POST an AdmissionReview on every request, with {token} in the
-- template replaced by a number no other request of this benchmark run uses (a new uid; for a new object a label)
local f = assert(io.open({path}, "rb"))
local template = f:read("*a")
f:close()
local parts, start = {{}}, 1
while true do
  local i, j = string.find(template, "{token}", start, true)
  if not i then break end
  table.insert(parts, string.sub(template, start, i - 1))
  start = j + 1
end
table.insert(parts, string.sub(template, start))
local headers = {{["Content-Type"] = "application/json"}}
local threads, counter = 0, 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function request()
  counter = counter + 1
  local n = {base} + (id or 0) * 1000000000 + counter
  return wrk.format("POST", nil, headers, table.concat(parts, string.format("%d", n)))
end
"""
_runs = iter(range(1, 1 << 20))  # each load run numbers its requests from its own base


def write_lua(tmp: Path, body: Body) -> Path:
    (tmp / f"{body.name}.json").write_bytes(body.template)
    lua = tmp / f"{body.name}.lua"
    lua.write_text(_LUA.format(path=json.dumps(str(tmp / f"{body.name}.json")), token=TOKEN,
                               base=next(_runs) * 10**11))
    return lua


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


def run_python_load(port: int, body: Body, duration: int, connections: int, ctx: ssl.SSLContext) -> LoadResult:
    """One thread per connection, each a persistent HTTPSConnection (keep-alive). GIL-bound client."""
    base = next(_runs) * 10**11
    numbers = iter(range(base, base + 10**11))
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
                conn.request("POST", PATH, body=body.variant(next(numbers)), headers=headers)
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


@dataclass
class OpenLoopRow:
    body: str
    target: str
    rate: float  # scheduled sends per second
    connections: int
    sent: int
    ok: int
    errors: int  # no answer within 5 s, connection errors, a status other than 200
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    achieved_rps: float
    worker_requests: list[int] = field(default_factory=list)


def run_open_loop(server: Server, body: Body, rate: float, duration: int, connections: int,
                  ctx: ssl.SSLContext) -> OpenLoopRow:
    """Open loop: sends scheduled at `rate`, latency from the scheduled time, so a slow answer cannot delay the
    next sends and hide itself (coordinated omission). `connections` keep-alive connections, opened (and used
    once) before the clock starts; a send waits for a free one, and that wait counts in its latency."""
    base = next(_runs) * 10**11
    numbers = iter(range(base, base + 10**11))
    jobs: queue.Queue[tuple[float, int] | None] = queue.Queue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}
    ready = threading.Barrier(connections + 1)

    def send(conn: http.client.HTTPSConnection, n: int) -> bool:
        conn.request("POST", PATH, body=body.variant(n), headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200

    def client() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=5)
        with contextlib.suppress(OSError, http.client.HTTPException):
            send(conn, next(numbers))
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=30)
        while (job := jobs.get()) is not None:
            scheduled, n = job
            try:
                good = send(conn, n)
            except (OSError, http.client.HTTPException):
                good = False
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=5)
            with lock:
                if good:
                    latencies.append(time.perf_counter() - scheduled)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=30)
    before = server.requests_by_worker()
    total = int(rate * duration)
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((scheduled, next(numbers)))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(timeout=15)
    elapsed = time.perf_counter() - start
    after = server.requests_by_worker()
    samples = sorted(latencies)
    return OpenLoopRow(
        body=body.name, target=server.name, rate=rate, connections=connections, sent=total, ok=len(samples),
        errors=errors[0], p50_ms=percentile(samples, 50) * 1000, p90_ms=percentile(samples, 90) * 1000,
        p99_ms=percentile(samples, 99) * 1000, max_ms=(samples[-1] if samples else math.nan) * 1000,
        achieved_rps=len(samples) / elapsed if elapsed > 0 else 0.0,
        worker_requests=sorted((after.get(pid, 0) - before.get(pid, 0) for pid in after), reverse=True),
    )


# --------------------------------------------------------------------------------------------
# netguard audit of many policies on disk


def audit_bench(count: int, tmp: Path, policies_dir: Path) -> dict[str, Any]:
    """`netguard audit --from DIR` over `count` policies in one file each (100 per namespace folder): wall time."""
    root = tmp / "audit-corpus"
    namespaces = max(1, count // 100)
    for ns in range(namespaces):
        d = root / f"ns-{ns:03d}"
        d.mkdir(parents=True)
        (d / "namespace.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{ns:03d}\n"
                                          f"  labels:\n    team: team-{ns % 10}\n")
    for i in range(count):
        folder = f"ns-{i % namespaces:03d}"
        (root / folder / f"policy-{i:05d}.yaml").write_text(_audit_policy(i, folder))
    return _timed_audit(["--from", str(root)], tmp / "audit.json", policies_dir, count, namespaces)


def _timed_audit(source: list[str], out: Path, policies_dir: Path, count: int, namespaces: int) -> dict[str, Any]:
    """Run `netguard audit <source> --format json -o out` and time it: wall and CPU seconds, exit, findings."""
    env = dict(os.environ, NETGUARD_POLICIES_DIR=str(policies_dir))
    argv = [sys.executable, "-m", "webhook.cli", "audit", *source, "--format", "json", "-o", str(out)]
    before = client_cpu_seconds()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"policies": count, "seconds": math.nan, "error": "no result within 600 s"}
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {"policies": count, "namespaces": namespaces, "seconds": round(seconds, 2),
                              "cpu_seconds": round(client_cpu_seconds() - before, 2), "exit": proc.returncode}
    if proc.returncode not in (0, 1):  # 1: findings at enforce (none in this mix, but not an error either)
        result["error"] = proc.stderr[-500:]
    with contextlib.suppress(OSError, ValueError):
        report = json.loads(out.read_text())
        result["findings"] = len(report.get("findings", []))
        result["reported_policies"] = report.get("policies")
    return result


def audit_cluster_bench(count: int, tmp: Path, policies_dir: Path) -> dict[str, Any]:
    """`netguard audit --kubeconfig` against the API server stand-in (tests/kube_standin.py: the list endpoints
    the audit reads, paged, over HTTPS) serving the same `count` policies as audit_bench: wall time."""
    import yaml

    sys.path.insert(0, str(ROOT))  # tests/ is not installed: the stand-in is imported from the checkout
    from tests.kube_standin import KubeStandIn, Objects

    namespaces = max(1, count // 100)
    nps: list[dict[str, Any]] = []
    cnps: list[dict[str, Any]] = []
    for i in range(count):
        obj = yaml.safe_load(_audit_policy(i, f"ns-{i % namespaces:03d}"))
        obj["metadata"].update(uid=f"uid-{i}", resourceVersion="1", creationTimestamp="2026-01-01T00:00:00Z")
        (cnps if obj["kind"] == "CiliumNetworkPolicy" else nps).append(obj)
    objects = Objects(
        namespaces=[{"metadata": {"name": f"ns-{n:03d}", "labels": {"team": f"team-{n % 10}"}}}
                    for n in range(namespaces)],
        network_policies=nps, cilium_network_policies=cnps, cilium_clusterwide_network_policies=[], pods=[],
        cilium_cidr_groups=[])
    standin_dir = tmp / "kube-standin"
    standin_dir.mkdir()
    with KubeStandIn(standin_dir, objects=objects) as standin:
        result = _timed_audit(["--kubeconfig", str(standin.kubeconfig)], tmp / "audit-cluster.json", policies_dir,
                              count, namespaces)
        result["api_requests"] = len(standin.requests)
    return result


def _audit_policy(i: int, ns: str) -> str:
    """A mix: small NetworkPolicies (60 %), with an ipBlock (20 %), default deny (10 %), Cilium (10 %)."""
    kind = i % 10
    if kind < 6:
        return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: app-{i}\n"
                f"  namespace: {ns}\nspec:\n  podSelector:\n    matchLabels:\n      app: app-{i}\n"
                f"  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - podSelector:\n"
                f"        matchLabels:\n          app: client-{i}\n    ports:\n    - {{protocol: TCP, port: 8080}}\n"
                f"  egress:\n  - to:\n    - podSelector:\n        matchLabels:\n          app: db-{i % 7}\n"
                f"    ports:\n    - {{protocol: TCP, port: 5432}}\n")
    if kind < 8:
        return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: cidr-{i}\n"
                f"  namespace: {ns}\nspec:\n  podSelector:\n    matchLabels:\n      app: app-{i}\n"
                f"  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock:\n"
                f"        cidr: 10.{i % 256}.0.0/16\n        except: [10.{i % 256}.1.0/24]\n"
                f"    ports:\n    - {{protocol: TCP, port: 443}}\n")
    if kind < 9:
        return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-{i}\n"
                f"  namespace: {ns}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n")
    return (f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp-{i}\n"
            f"  namespace: {ns}\nspec:\n  endpointSelector:\n    matchLabels:\n      app: app-{i}\n"
            f"  egress:\n  - toEndpoints:\n    - matchLabels:\n        app: api-{i % 5}\n"
            f"    toPorts:\n    - ports:\n      - {{port: '8080', protocol: TCP}}\n"
            f"  - toFQDNs:\n    - matchName: api-{i}.example.com\n"
            f"    toPorts:\n    - ports:\n      - {{port: '443', protocol: TCP}}\n")


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
    worker_requests: list[int] = field(default_factory=list)  # reviews answered by each worker, most first
    attempts: int = 1  # 2 or 3 when a run with one worker over PINNED_SHARE % of the CPU was redone
    first_worker_requests: list[int] = field(default_factory=list)  # the first attempt's split


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
    open_loop: list[OpenLoopRow] = field(default_factory=list)
    memory: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    audit_cluster: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    load_average: dict[str, list[float]] = field(default_factory=dict)


def microbench(bodies: Sequence[Body], iterations: int, policies_dir: Path,
               run_info: Run, large_iterations: int, tuned_gc: bool) -> list[MicroRow]:
    """pipeline.review(parse_review(doc)) in this process: evaluation without HTTP, TLS, logs or metrics.

    Every iteration reviews a new object (Body.variant), so a verdict cache cannot answer from an earlier one.
    With tuned_gc the collector is set up as in the webhook's workers (gunicorn_conf.tune_gc).
    """
    from webhook.core.admission import decode_json, parse_review
    from webhook.pipeline import build_pipeline

    settings = config.with_overrides(Settings(), policies_dir=str(policies_dir))
    pipeline = build_pipeline(settings)
    if tuned_gc:
        from webhook.serve.gunicorn_conf import tune_gc

        tune_gc()
    run_info.policies = {"dir": str(policies_dir), "guardrails": len(pipeline.policies.guardrails),
                         "revision": pipeline.revision}
    print(f"policies: {policies_dir}, {len(pipeline.policies.guardrails)} guardrails, "
          f"revision {pipeline.revision}, engine {pipeline.engine.name}\n")
    rows = []
    try:
        for body in bodies:
            raw = body.raw
            decision = pipeline.review(parse_review(body.review_variant(0))).decision
            if decision.allowed is not body.allowed:
                run_info.notes.append(
                    f"{body.name} was meant to be {'allowed' if body.allowed else 'denied'} but this policy set "
                    f"answers {decision.verdict.value} ({', '.join(decision.rule_ids) or decision.reason}): "
                    "it no longer exercises the path its name says.")
            review_ns = _time_review(pipeline, body, _iterations(body, iterations, large_iterations))
            depth = settings.server.max_json_depth
            decode_ns = sorted(_time_ns(partial(decode_json, raw, "application/json", depth), iterations))
            rows.append(MicroRow(
                body=body.name, bytes=len(raw), verdict=decision.verdict.value, allowed=decision.allowed,
                decode_p50_ms=percentile(decode_ns, 50) / 1e6, review_p50_ms=percentile(review_ns, 50) / 1e6,
                review_p99_ms=percentile(review_ns, 99) / 1e6, iterations=len(review_ns),
            ))
    finally:
        pipeline.engine.close()

    try:
        isolated = build_pipeline(settings, isolate=True)
    except TypeError:  # a netguard without evaluator processes
        return rows
    try:
        for row, body in zip(rows, bodies, strict=True):
            ns = _time_review(isolated, body, _iterations(body, iterations, large_iterations))
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


def _iterations(body: Body, iterations: int, large_iterations: int) -> int:
    return large_iterations if len(body.raw) > 64 * 1024 else iterations


_variants = iter(range(1, 1 << 62))  # every timed review in this process gets an object never seen before


def _time_review(pipeline: Any, body: Body, iterations: int) -> list[int]:
    """Sorted durations of pipeline.review(parse_review(doc)), a new object each time, after a short warm-up."""
    from webhook.core.admission import parse_review

    out = []
    for i in range(max(3, iterations // 20) + iterations):
        doc = body.review_variant(next(_variants))  # built outside the timing
        t0 = time.perf_counter_ns()
        pipeline.review(parse_review(doc))
        if i >= max(3, iterations // 20):
            out.append(time.perf_counter_ns() - t0)
    return sorted(out)


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
    before_req = server.requests_by_worker()
    before_cli = client_cpu_seconds()
    before_all = machine_busy_seconds()
    result: LoadResult = run_load(server, body)
    after_all = machine_busy_seconds()
    after_cli = client_cpu_seconds()
    after_srv = server.cpu_by_process()
    after_req = server.requests_by_worker()
    served = sorted((after_req.get(pid, 0) - before_req.get(pid, 0) for pid in after_req), reverse=True)
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
        worker_cpu_split=split, errors=result.errors, non_2xx=result.non_2xx, worker_requests=served,
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
reuse_port = {reuse_port}
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


# For A/B runs (--reuse-port, --default-gc): netguard's own gunicorn settings with one of them undone.
_NETGUARD_CONF = """# generated by bench/admission_bench.py: webhook/serve/gunicorn_conf.py, some tuning undone (A/B)
from webhook.serve.gunicorn_conf import *  # noqa: F403
{overrides}
"""


def run(args: argparse.Namespace) -> Run:
    bodies = build_bodies()
    loads = http_bodies()
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
    run_info.load_average["start"] = list(os.getloadavg())

    print(f"netguard admission benchmark, {run_info.date}, {run_info.machine['cpus']} CPUs, "
          f"Python {run_info.machine['python']}, gunicorn {run_info.machine['gunicorn']}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"\n## In-process: pipeline.review(parse_review(doc)), a new object per iteration, {args.iterations} "
          f"iterations per body ({args.large_iterations} for np-1000-rules), "
          f"GC {'as in the workers (tune_gc)' if not args.default_gc else 'Python defaults'}\n", flush=True)
    policies_dir = Path(args.policies).resolve() if args.policies else ROOT / "policies"
    run_info.micro = microbench(bodies, args.iterations, policies_dir, run_info, args.large_iterations,
                                tuned_gc=not args.default_gc)
    print_micro(run_info.micro)

    with tempfile.TemporaryDirectory(prefix="netguard-bench-") as tmpdir, sigterm_as_exit():
        tmp = Path(tmpdir)
        if args.audit_policies > 0:
            print(f"\n## netguard audit --from DIR: {args.audit_policies:,} policies on disk ...", end="", flush=True)
            run_info.audit = audit_bench(args.audit_policies, tmp, policies_dir)
            print(f" {run_info.audit.get('seconds')} s", flush=True)
            print(f"## netguard audit --kubeconfig (the API server stand-in): {args.audit_policies:,} policies ...",
                  end="", flush=True)
            run_info.audit_cluster = audit_cluster_bench(args.audit_policies, tmp, policies_dir)
            print(f" {run_info.audit_cluster.get('seconds')} s", flush=True)
        cert, key, ca, cert_source = find_certs(tmp)
        ctx = client_context(ca)

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
        (tmp / "counts").mkdir()
        srv = config.load(env=env).server  # the settings netguard will run with, copied to the baseline
        reuse_port = bool(args.reuse_port)
        (tmp / "baseline_conf.py").write_text(_BASELINE_CONF.format(
            bind=f"127.0.0.1:{base_port}", workers=WORKERS, threads=srv.threads, keepalive=srv.keepalive_seconds,
            graceful=srv.graceful_timeout_seconds, cert=str(cert), key=str(key), reuse_port=reuse_port))
        netguard_argv = [sys.executable, "-m", "webhook.cli", "serve"]
        overrides = (["reuse_port = True"] if reuse_port else []) + (
            ["\n\ndef post_worker_init(worker):\n    pass"] if args.default_gc else [])
        if overrides:  # an A/B run: netguard's settings with some tuning undone
            (tmp / "netguard_conf.py").write_text(_NETGUARD_CONF.format(overrides="\n".join(overrides)))
            netguard_argv = [sys.executable, "-m", "gunicorn", "--config", str(tmp / "netguard_conf.py"),
                             "webhook.serve.server:create_app()"]
        run_info.servers = {
            "worker_class": "gthread", "workers": WORKERS, "threads": srv.threads,
            "keepalive_s": srv.keepalive_seconds, "tls": f"{cert_source} ({cert.name})",
            "netguard_log_level": args.netguard_log_level, "bind": "127.0.0.1", "reuse_port": reuse_port,
            "gc": "Python defaults" if args.default_gc else "gunicorn_conf.tune_gc (freeze, thresholds)",
        }

        servers: list[Server] = []
        try:
            baseline = start_server(
                "baseline", [sys.executable, "-m", "gunicorn", "--config", str(tmp / "baseline_conf.py"),
                             "--pythonpath", str(BENCH_DIR), "baseline_app:create_app()"],
                env={**{k: v for k, v in env.items() if not k.startswith("NETGUARD_")},
                     "BENCH_COUNTS_DIR": str(tmp / "counts")}, port=base_port, log_path=tmp / "baseline.log")
            baseline.counts_dir = tmp / "counts"
            servers.append(baseline)
            netguard = start_server("netguard", netguard_argv, env=env, port=ng_port, log_path=tmp / "netguard.log")
            netguard.metrics_dir = tmp / "metrics"
            servers.append(netguard)
            for server in servers:
                wait_ready(server, loads[0].raw, ctx, WORKERS)
            status, ready = https_request(ng_port, ctx, "GET", "/readyz")
            if status == 200 and isinstance(ready, dict):
                netguard.info = (f"engine {ready.get('engine')}, {ready.get('guardrails')} guardrails, "
                                 f"policy revision {ready.get('policy_revision')}")
                run_info.servers["netguard"] = ready
            micro = {m.body: m.allowed for m in run_info.micro}
            check_answers(baseline, loads, ctx, None)
            check_answers(netguard, loads, ctx, {b.name: micro.get(b.micro or b.name, b.allowed) for b in loads})

            connections = args.connections
            if wrk:
                version = wrk_version(wrk)
                run_info.load = {"tool": f"wrk {version}", "threads": min(WRK_THREADS, connections),
                                 "connections": connections, "duration_s": args.duration, "client_bound": False}

                def run_load(server: Server, body: Body) -> LoadResult:
                    assert wrk is not None
                    return run_wrk(wrk, server.port, write_lua(tmp, body), args.duration, connections)

                def warm(server: Server) -> None:
                    assert wrk is not None
                    run_wrk(wrk, server.port, write_lua(tmp, loads[0]), args.warmup, connections)
            else:
                run_info.load = {"tool": "python (http.client threads)", "threads": connections,
                                 "connections": connections, "duration_s": args.duration, "client_bound": True}
                why = "--load-generator python" if args.load_generator == "python" else "wrk is not on PATH"
                run_info.notes.append(
                    f"{why}: the load comes from Python threads in this process (GIL-bound), so "
                    "req/s and latencies are CLIENT-BOUND and understate both servers; the ratio is only "
                    "indicative. Install wrk (`apt-get install -y wrk`) for server figures.")

                def run_load(server: Server, body: Body) -> LoadResult:
                    return run_python_load(server.port, body, args.duration, connections, ctx)

                def warm(server: Server) -> None:
                    run_python_load(server.port, loads[0], args.warmup, connections, ctx)

            print_header(run_info, servers)
            if args.warmup > 0:
                for server in servers:
                    warm(server)  # workers fully booted, first requests of each thread served
            for body in loads:
                pair = []
                for server in servers:  # baseline then netguard, back to back, per body
                    print(f"  {body.name:<13} {server.name:<9} ...", end="", flush=True)
                    row = measure(server, body, run_load)
                    first = row.worker_requests
                    attempts = 1
                    for _ in range(PINNED_RETRIES):  # see PINNED_SHARE
                        if not pinned(row):
                            break
                        print(f" {row.rps:.0f} req/s with {max(row.worker_cpu_split):.0f}% on one worker, again ...",
                              end="", flush=True)
                        run_info.notes.append(
                            f"{server.name}/{body.name} was run again: one worker did "
                            f"{max(row.worker_cpu_split):.0f}% of the work ({row.rps:,.0f} req/s).")
                        row = measure(server, body, run_load)
                        attempts += 1
                    row.attempts, row.first_worker_requests = attempts, first
                    print(f" {row.rps:8.0f} req/s", flush=True)
                    pair.append(row)
                base_row, ng_row = pair
                ng_row.ratio_rps = ng_row.rps / base_row.rps if base_row.rps else None
                run_info.http.extend(pair)
            if args.rate > 0:
                for server in servers:
                    print(f"  open loop {loads[0].name} {server.name} at {args.rate:g}/s ...", end="", flush=True)
                    wait_idle(server)
                    ol = run_open_loop(server, loads[0], args.rate, args.duration, connections, ctx)
                    print(f" p99 {ol.p99_ms:.1f} ms", flush=True)
                    run_info.open_loop.append(ol)
            for server in servers:
                run_info.memory[server.name] = server.memory_by_worker()
                if server.proc.poll() is not None:
                    run_info.notes.append(f"{server.name} exited during the run; log:\n{server.log_tail()}")
        finally:
            for server in reversed(servers):
                stop_server(server)
    run_info.load_average["end"] = list(os.getloadavg())
    run_info.targets = targets(run_info)
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
          "workers' CPU split | requests per worker | netguard/baseline req/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        ratio = f"**{r.ratio_rps:.2f}**" if r.ratio_rps is not None else ""
        split = "/".join(f"{x:.0f}" for x in r.worker_cpu_split)
        print(f"| {r.body} | {r.target} | {r.rps:,.0f} | {fmt_ms(r.p50_ms / 1000)} | {fmt_ms(r.p99_ms / 1000)} | "
              f"{fmt_ms(r.server_cpu_ms_per_req / 1000)} | {r.server_cores:.2f} | {r.client_cores:.2f} | "
              f"{r.other_cores:.2f} | "
              f"{split}% | {'/'.join(f'{n:,}' for n in r.worker_requests)}"
              f"{f' ({r.attempts} attempts)' if r.attempts > 1 else ''} | {ratio} |")
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


# --------------------------------------------------------------------------------------------
# The targets ("The fast path"): every figure in one table, PASS/FAIL per target, never an exit status


def targets(run_info: Run) -> list[dict[str, Any]]:
    http = {(r.target, r.body): r for r in run_info.http}
    micro = {m.body: m for m in run_info.micro}
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str, *, at_least: bool = False,
            detail: str = "") -> None:
        known = value is not None and value == value
        passed = known and (value >= limit if at_least else value <= limit)  # type: ignore[operator]
        rows.append({"target": name, "value": value if known else None, "limit": limit, "unit": unit,
                     "op": ">=" if at_least else "<=", "pass": bool(passed), "detail": detail})

    def ratio(body: str) -> float | None:
        row = http.get(("netguard", body))
        return row.ratio_rps if row else None

    def rps_detail(body: str) -> str:
        ng, base = http.get(("netguard", body)), http.get(("baseline", body))
        if not ng or not base:
            return ""
        return f"netguard {ng.rps:,.0f} req/s, baseline {base.rps:,.0f} req/s, {run_info.load.get('connections')} conns"

    add("new typical NetworkPolicy (np-new): netguard/baseline req/s", ratio("np-new"), 0.35, "x", at_least=True,
        detail=rps_detail("np-new"))
    ol = next((o for o in run_info.open_loop if o.target == "netguard"), None)
    add(f"np-new open loop at {ol.rate:g}/s: p99" if ol else "np-new open loop: p99",
        ol.p99_ms if ol and ol.errors == 0 else (math.nan if ol is None else math.inf), 10.0, "ms",
        detail=(f"p50 {ol.p50_ms:.2f} ms, p90 {ol.p90_ms:.2f} ms, max {ol.max_ms:.1f} ms, {ol.ok}/{ol.sent} ok, "
                f"{ol.errors} errors" if ol else ""))
    add("same content repeated (np-same): netguard/baseline req/s", ratio("np-same"), 0.7, "x", at_least=True,
        detail=rps_detail("np-same"))
    cnp = micro.get("cnp-10-specs")
    evaluators = (f"; via evaluators p50 {cnp.isolated_p50_ms:.2f} / p99 {cnp.isolated_p99_ms:.2f} ms"
                  if cnp and cnp.isolated_p50_ms is not None and cnp.isolated_p99_ms is not None else "")
    add("CiliumNetworkPolicy 10 specs x 7 rules, in-process p50", cnp.review_p50_ms if cnp else None, 2.0, "ms",
        detail=f"{cnp.iterations} new objects{evaluators}" if cnp else "")
    add("CiliumNetworkPolicy 10 specs x 7 rules, in-process p99", cnp.review_p99_ms if cnp else None, 5.0, "ms")
    add("CiliumNetworkPolicy, new per request (cnp-new): netguard/baseline req/s", ratio("cnp-new"), 0.25, "x",
        at_least=True, detail=rps_detail("cnp-new"))
    big = micro.get("np-1000-rules")
    add("1,000-rule NetworkPolicy, in-process p99", big.review_p99_ms if big else None, 50.0, "ms",
        detail=(f"p50 {big.review_p50_ms:.1f} ms, {big.iterations} new objects"
                + (f"; via evaluators p50 {big.isolated_p50_ms:.1f} / p99 {big.isolated_p99_ms:.1f} ms"
                   if big.isolated_p50_ms is not None and big.isolated_p99_ms is not None else "")) if big else "")
    audit = run_info.audit
    add(f"netguard audit of {audit.get('policies', 0):,} policies on disk", audit.get("seconds") if audit else None,
        15.0, "s", detail=(f"{audit.get('cpu_seconds')} s CPU, {audit.get('findings')} findings, exit "
                           f"{audit.get('exit')}" + (f", error: {audit['error'][:120]}" if audit.get("error") else ""))
        if audit else "not run (--audit-policies 0)")
    cluster = run_info.audit_cluster
    add(f"netguard audit of {cluster.get('policies', 0):,} policies from the cluster stand-in",
        cluster.get("seconds") if cluster else None, 30.0, "s",
        detail=(f"{cluster.get('cpu_seconds')} s CPU, {cluster.get('api_requests')} API requests, "
                f"{cluster.get('findings')} findings, exit {cluster.get('exit')}"
                + (f", error: {cluster['error'][:120]}" if cluster.get("error") else ""))
        if cluster else "not run (--audit-policies 0)")
    memory = run_info.memory.get("netguard", [])
    add("memory per netguard worker incl. its evaluators (RSS, largest)",
        max((m["rss_mib"] for m in memory), default=None), 150.0, "MiB",
        detail=", ".join(f"pid {m['pid']}: RSS {m['rss_mib']:.0f} MiB (worker {m['worker_rss_mib']:.0f}), "
                         f"PSS {m['pss_mib']:.0f} MiB, {m['processes']} processes" for m in memory))
    shares = [100 * max(r.first_worker_requests) / sum(r.first_worker_requests)
              for r in run_info.http if r.target == "netguard" and r.first_worker_requests
              and sum(r.first_worker_requests) > 0]
    add("connections spread: busiest worker's share of the requests, worst netguard run (first attempts)",
        max(shares, default=None), PINNED_SHARE, "%",
        detail="; ".join(f"{r.body}: {'/'.join(f'{n:,}' for n in r.first_worker_requests)}"
                         for r in run_info.http if r.target == "netguard"))
    return rows


def _fmt_value(t: dict[str, Any]) -> str:
    v = t["value"]
    if v is None:
        return "-"
    if v == math.inf:
        return "errors"
    unit = t["unit"]
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "%":
        return f"{v:.0f} %"
    return f"{v:,.2f} {unit}" if v < 10 else f"{v:,.1f} {unit}"


def print_targets(run_info: Run) -> None:
    print("\n## The issue's targets (the fast path)\n")
    print("| target | figure | goal | result | details |")
    print("|---|---:|---:|---|---|")
    for t in run_info.targets:
        goal = f"{t['op']} {t['limit']:g}{'x' if t['unit'] == 'x' else ' ' + t['unit']}"
        print(f"| {t['target']} | {_fmt_value(t)} | {goal} | {'PASS' if t['pass'] else 'FAIL'} | {t['detail']} |")
    print()
    for t in run_info.targets:
        goal = f"{t['op']} {t['limit']:g}{'x' if t['unit'] == 'x' else ' ' + t['unit']}"
        print(f"{'PASS' if t['pass'] else 'FAIL'} {t['target']}: {_fmt_value(t)} (goal {goal})")
    la = run_info.load_average
    print(f"\nmachine load average (1 min) at start {la.get('start', [math.nan])[0]:.2f}, "
          f"at end {la.get('end', [math.nan])[0]:.2f} on {run_info.machine.get('cpus')} CPUs")


def print_open_loop(rows: Sequence[OpenLoopRow]) -> None:
    if not rows:
        return
    print("\n| open loop | target | rate | connections | sent | ok | errors | p50 | p90 | p99 | max | "
          "requests per worker |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for o in rows:
        print(f"| {o.body} | {o.target} | {o.rate:g}/s | {o.connections} | {o.sent} | {o.ok} | {o.errors} | "
              f"{o.p50_ms:.2f} ms | {o.p90_ms:.2f} ms | {o.p99_ms:.2f} ms | {o.max_ms:.1f} ms | "
              f"{'/'.join(f'{n:,}' for n in o.worker_requests)} |")
    print("(latency from the scheduled send time; a send waits for a free connection, and that wait counts)")


def print_memory(memory: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    if not memory:
        return
    print("\n| memory after the runs | worker pid | processes | RSS worker + children | worker alone | PSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in memory.items():
        for m in rows:
            print(f"| {name} | {m['pid']} | {m['processes']} | {m['rss_mib']:.1f} MiB | {m['worker_rss_mib']:.1f} MiB"
                  f" | {m['pss_mib']:.1f} MiB |")
    print("(RSS counts shared pages once per process, so it overstates; PSS shares them out.)")


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
    parser.add_argument("--large-iterations", type=int, default=40,
                        help="in-process iterations for the 1,000-rule policy (default 40)")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="open-loop sends per second of np-new, for the p99 target (default 300; 0 skips)")
    parser.add_argument("--audit-policies", type=int, default=10_000,
                        help="policies written to a temp dir for the `netguard audit` timing (default 10000; 0 skips)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="A/B: both servers with SO_REUSEPORT (each worker its own listening socket)")
    parser.add_argument("--default-gc", action="store_true",
                        help="A/B: netguard's workers and the in-process runs without gunicorn_conf.tune_gc")
    parser.add_argument("--netguard-log-level", choices=("debug", "info", "warning", "error"), default="info",
                        help="NETGUARD_LOG_LEVEL for the server (default info: the decision log on, as in production "
                             "and as the targets are stated; warning turns the per-request lines off for an A/B)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.iterations < 1 or args.warmup < 0 \
            or args.large_iterations < 1 or args.rate < 0 or args.audit_policies < 0:
        parser.error("--duration, --connections, --iterations, --large-iterations must be >= 1; --warmup, --rate "
                     "and --audit-policies >= 0")
    if args.rate > 5000 or args.audit_policies > 100_000:
        parser.error("--rate is capped at 5000/s and --audit-policies at 100000")
    if args.duration > 600:
        parser.error("--duration is capped at 600 s")

    try:
        run_info = run(args)
    except RuntimeError as exc:
        print(f"\nadmission_bench: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, PolicyLoadError, EngineError) as exc:
        print(f"\nadmission_bench: netguard cannot load its configuration or policies: {exc}", file=sys.stderr)
        return 2
    print()
    print_http(run_info.http)
    print_open_loop(run_info.open_loop)
    print_memory(run_info.memory)
    print("\nratio = netguard req/s / baseline req/s for the same body in this run (1.00 = no overhead over a "
          "bare Flask app under the same gunicorn settings). server CPU/req = CPU seconds of the gunicorn "
          "master, workers and their child processes (netguard's evaluators) during the run / requests served.")
    for note in run_info.notes:
        print(f"NOTE: {note}")
    print_targets(run_info)
    if args.json:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(to_json(run_info), indent=2, default=str) + "\n")
        print(f"\nwrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
