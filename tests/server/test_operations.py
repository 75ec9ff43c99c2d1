"""Running it: certificate rotation, graceful shutdown and the evaluation budget, on real servers.

Each test starts `netguard serve` (gunicorn, gthread workers, TLS on loopback) and drives it
with clients that behave like the API server: keep-alive connections, a fresh connection now
and then, and (for the restart) a Service in front of several replicas. Stand-ins, because no
cluster or OPA runs here: tests/secret_volume.py writes the certificate the way the kubelet
updates a mounted Secret, tests/opa_standin.py answers OPA's REST API, and `Endpoints` below is
the Service (endpoint removal, new connections spread over the ready replicas).

A test-only guardrail, `test-slow-evaluation`, spins for n² steps when the policy carries the
annotation `netguard.test/spin: "n"` (measured with regorus here, idle machine: n = 1000 about 0.3 s,
n = 2000 about 1.1 s, n = 3000 about 3 s), so one request can be slow while every other one is fast.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import select
import shutil
import signal
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.opa_standin import OpaStandIn
from tests.secret_volume import SecretVolume
from webhook.core.reviews import make_review
from webhook.pki.certs import CertPaths, generate
from webhook.serve.tls import CHECK_INTERVAL

from .conftest import Server, metric, run_server

SPIN_ANNOTATION = "netguard.test/spin"
SLOW_RULE = """package guardrails.test_slow_evaluation

import rego.v1

# Test only: n² steps for the annotation's n; nothing for every other policy.
spin := to_number(object.get(input.object, ["metadata", "annotations", "netguard.test/spin"], "0"))

violation contains v if {
	spin > 0
	every i in numbers.range(1, spin) {
		every j in numbers.range(1, spin) {
			i + j > 0
		}
	}
	v := {"path": "metadata.annotations", "msg": sprintf("spun %d steps", [spin * spin]), "fix": "none"}
}
"""
SLOW_TEST = """package guardrails.test_slow_evaluation_test

import rego.v1

test_no_annotation_no_spin if {
	count(data.guardrails.test_slow_evaluation.violation) == 0 with input as {"object": {"metadata": {}}}
}
"""
SLOW_METADATA = """id: test-slow-evaluation
title: Test only, slow on purpose
severity: low
mode: audit
kinds: [NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy]
operations: [CREATE, UPDATE]
description: Spins for n squared steps when the policy has the netguard.test/spin annotation.
rationale: Tests of the evaluation budget and of graceful shutdown need one slow request.
remediation: None; it exists only in tests.
example: "{}"
"""
RUNAWAY = 10000  # minutes of spinning: only a deadline ends it
SLOW = 2000  # about 1.1 s of CPU, several seconds on a busy machine; well inside a 9 s budget


@pytest.fixture(scope="module")
def slow_policies(tmp_path_factory: pytest.TempPathFactory, policies: Path) -> Path:
    """The contract tests' catalog plus test-slow-evaluation."""
    root = tmp_path_factory.mktemp("netguard-slow-policies") / "policies"
    shutil.copytree(policies, root)
    folder = root / "test-slow-evaluation"
    shutil.copytree(policies / "no-allow-all-egress" / "samples", folder / "samples")
    (folder / "policy.yaml").write_text(SLOW_METADATA, encoding="utf-8")
    (folder / "rule.rego").write_text(SLOW_RULE, encoding="utf-8")
    (folder / "rule_test.rego").write_text(SLOW_TEST, encoding="utf-8")
    return root


def policy(name: str, spin: int = 0) -> dict[str, Any]:
    """A NetworkPolicy every contract guardrail allows (web -> db on 5432), optionally slow."""
    annotations = {SPIN_ANNOTATION: str(spin)} if spin else {}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "team-a", "annotations": annotations},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                                 "ports": [{"protocol": "TCP", "port": 5432}]}]}}


def review_body(name: str, spin: int = 0, uid: str | None = None) -> bytes:
    return json.dumps(make_review(policy(name, spin), uid=uid or str(uuid.uuid4()))).encode()


def post(server: Server, body: bytes, timeout: float = 30.0) -> tuple[int, dict[str, Any], float]:
    """POST /validate on a fresh connection: status, JSON answer and seconds taken."""
    started = time.monotonic()
    reply = server.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"},
                           timeout=timeout)
    return reply.status, reply.json(), time.monotonic() - started


def decision_line(server: Server, uid: str) -> dict[str, Any]:
    lines = server.wait_for_log(lambda line: line.get("uid") == uid and line.get("event") == "admission.decision")
    assert len(lines) == 1, lines
    return lines[0]


# -- clients like the API server behind a Service ----------------------------------------------


class Endpoints:
    """The Service: the ready replicas a NEW connection may go to, round-robin (kube-proxy).

    Removing a replica affects new connections only: a kept-alive connection stays with its pod,
    as conntrack keeps it, until one side closes it.
    """

    def __init__(self, servers: list[Server]) -> None:
        self._servers = list(servers)
        self._lock = threading.Lock()

    def remove(self, server: Server) -> None:
        with self._lock:
            self._servers.remove(server)

    def add(self, server: Server) -> None:
        with self._lock:
            self._servers.append(server)

    def pick(self, turn: int) -> Server:
        """The `turn`-th choice of one client (each client counts its own, from its index)."""
        with self._lock:
            return self._servers[turn % len(self._servers)]


@dataclass(frozen=True)
class Outcome:
    started: float
    finished: float
    port: int
    keepalive: bool
    opened: float  # when the connection was opened (before `started` for a reused one)
    status: int
    error: str
    peer: bytes  # the certificate the server presented (DER)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


class Connection:
    """One client connection; `closed_by_server` is what Go's transport notices on an idle connection."""

    def __init__(self, server: Server, context: ssl.SSLContext) -> None:
        self.server = server
        self.opened = time.monotonic()
        self.http = http.client.HTTPSConnection(server.host, server.port, context=context, timeout=30)
        self.http.connect()
        assert isinstance(self.http.sock, ssl.SSLSocket)
        self.peer = self.http.sock.getpeercert(binary_form=True) or b""

    def closed_by_server(self) -> bool:
        """An idle connection turns readable only when the server closed it (FIN or close_notify)."""
        sock = self.http.sock
        return sock is None or bool(select.select([sock], [], [], 0)[0])

    def post(self, body: bytes) -> tuple[int, bool]:
        """Status and whether the connection may be reused."""
        self.http.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
        with self.http.getresponse() as response:
            response.read()
            return response.status, not response.will_close

    def close(self) -> None:
        self.http.close()


class LoadLoop:
    """Threads posting reviews until stopped: `keepalive` of them reuse one connection each, the
    others open a fresh connection per request. Every request is recorded, failures included."""

    def __init__(self, endpoints: Endpoints, ca: Path, *, keepalive: int, fresh: int, pause: float = 0.01) -> None:
        self._endpoints = endpoints
        self._context = ssl.create_default_context(cafile=str(ca))
        self._pause = pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._run, args=(i, i < keepalive), daemon=True)
                         for i in range(keepalive + fresh)]

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hung"

    def _run(self, index: int, keepalive: bool) -> None:
        conn: Connection | None = None
        body = review_body("load")
        turns = itertools.count(index)
        while not self._stop.is_set():
            started = time.monotonic()
            server, opened, status, error, peer = None, started, 0, "", b""
            try:
                if conn is not None and conn.closed_by_server():
                    conn.close()
                    conn = None
                if conn is None:
                    server = self._endpoints.pick(next(turns))
                    conn = Connection(server, self._context)
                server, opened, peer = conn.server, conn.opened, conn.peer
                status, reusable = conn.post(body)
                if not (keepalive and reusable):
                    conn.close()
                    conn = None
            except Exception as exc:  # every failure counts; none is expected
                error = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                    conn = None
            with self._lock:
                self.outcomes.append(Outcome(started, time.monotonic(), server.port if server else 0, keepalive,
                                             opened, status, error, peer))
            self._stop.wait(self._pause)
        if conn is not None:
            conn.close()

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if not o.ok]

    def where(self, predicate: Callable[[Outcome], bool]) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if predicate(o)]


# -- 1. certificate rotation ---------------------------------------------------------------------


def der(certs: CertPaths) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certs.cert.read_text(encoding="utf-8"))


def test_a_renewed_certificate_is_served_without_failing_a_request(tmp_path: Path, policies: Path) -> None:
    """The Secret is updated the kubelet's way while requests flow on new and kept-alive connections."""
    old = generate("netguard", "netguard", tmp_path / "ca-1")
    new = generate("netguard", "netguard", tmp_path / "ca-2")  # a new CA too: the worst case
    bundle = tmp_path / "trusted.crt"  # the caBundle during a CA rotation holds both
    bundle.write_bytes(old.ca_cert.read_bytes() + new.ca_cert.read_bytes())
    volume = SecretVolume(tmp_path / "secret", {"tls.crt": old.cert.read_bytes(), "tls.key": old.key.read_bytes()})
    mounted = CertPaths(ca_cert=bundle, ca_key=old.ca_key, cert=volume.path("tls.crt"), key=volume.path("tls.key"))

    with run_server(tmp_path / "server", mounted, policies) as server:
        with LoadLoop(Endpoints([server]), bundle, keepalive=3, fresh=3) as load:
            time.sleep(1.0)
            swapped = time.monotonic()
            volume.update({"tls.crt": new.cert.read_bytes(), "tls.key": new.key.read_bytes()})
            time.sleep(CHECK_INTERVAL + 2.0)
        reloads = server.wait_for_log(lambda line: line.get("event") == "tls.certificate_reloaded")

    assert load.failures() == []
    assert len(load.outcomes) > 50
    fresh_before = load.where(lambda o: not o.keepalive and o.finished < swapped)
    assert fresh_before and all(o.peer == der(old) for o in fresh_before)
    # Each worker looks at the files at most once per CHECK_INTERVAL, at its next handshake.
    fresh_after = load.where(lambda o: not o.keepalive and o.opened > swapped + CHECK_INTERVAL + 0.2)
    assert fresh_after and all(o.peer == der(new) for o in fresh_after)
    # Connections opened before the swap go on, with the session they have.
    kept = load.where(lambda o: o.keepalive and o.opened < swapped and o.started > swapped + CHECK_INTERVAL)
    assert kept and all(o.peer == der(old) for o in kept)
    assert reloads and {line["serial"] for line in reloads} == {format(_serial(new), "x")}


def _serial(certs: CertPaths) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(certs.cert.read_bytes()).serial_number


# -- 2. graceful shutdown ------------------------------------------------------------------------

GRACEFUL = 15  # server.graceful_timeout_seconds in these tests
SHUTDOWN_CONFIG = {"engine": {"budget_seconds": 9.0}, "server": {"graceful_timeout_seconds": GRACEFUL}}


class SlowRequest(threading.Thread):
    """One slow review on its own connection, in the background; the result is kept."""

    def __init__(self, server: Server, spin: int = SLOW) -> None:
        super().__init__(daemon=True)
        self.server, self.uid = server, f"slow-{uuid.uuid4()}"
        self.body = review_body("slow", spin, self.uid)
        self.status = 0
        self.answer: dict[str, Any] = {}
        self.error = ""
        self.done_at = 0.0

    def run(self) -> None:
        try:
            self.status, self.answer, _ = post(self.server, self.body, timeout=60)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.done_at = time.monotonic()

    def in_flight(self, timeout: float = 10.0) -> None:
        """Wait until the server has the request: its evaluator process is spinning."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_alive():
            assert self.server.process is not None
            if _busy_evaluator(self.server.process.pid):
                return
            time.sleep(0.05)
        pytest.fail(f"the slow request never started (error: {self.error or 'none'})")


def _busy_evaluator(master: int) -> bool:
    """One of this server's evaluator processes (in the master's process group) is spinning: running now,
    with more CPU time than starting one takes (about 0.1 s)."""
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        state, group, cpu = fields[0], int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks
        if state == "R" and group == master and cpu > 0.4 and b"webhook.engine.evalpool" in cmdline:
            return True
    return False


def test_on_sigterm_requests_in_flight_finish_kept_alive_connections_are_answered_and_the_server_exits(
        tmp_path: Path, certs: CertPaths, slow_policies: Path) -> None:
    """gthread's drain: stop accepting, finish the requests it has, answer a request that arrives on a
    kept-alive connection within 2 s with `Connection: close`, exit 0 once nothing is open."""
    # One worker: the probes, the kept-alive connection and the slow request all meet the same one.
    with run_server(tmp_path / "server", certs, slow_policies, SHUTDOWN_CONFIG, workers=1) as server:
        proc = server.process
        assert proc is not None
        for _ in range(4):  # TCP probes (connect, close): they made stock gunicorn 27 lose count
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        kept = Connection(server, server.ssl_context())
        assert kept.post(review_body("before")) == (200, True)
        slow = SlowRequest(server)
        slow.start()
        slow.in_flight()
        terminated = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        during_drain = kept.post(review_body("during-drain"))
        kept.close()
        code = proc.wait(timeout=GRACEFUL + 5)
        exited = time.monotonic()
        slow.join(timeout=30)

    assert during_drain == (200, False)  # answered, and told to close the connection
    assert slow.error == "" and slow.status == 200, slow.error
    assert slow.answer["response"]["uid"] == slow.uid and slow.answer["response"]["allowed"] is True
    assert code == 0
    assert slow.done_at <= exited
    assert exited - terminated < GRACEFUL


def test_a_rolling_restart_behind_a_service_fails_no_request(tmp_path: Path, certs: CertPaths,
                                                             slow_policies: Path) -> None:
    """Kubernetes order: the pod leaves the endpoints (preStop sleep), then gets SIGTERM, drains and exits;
    its replacement becomes ready and joins the endpoints. Kept-alive connections to the old pod are
    still used after it left the endpoints, as conntrack keeps them, until it answers `Connection: close`."""
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(run_server(tmp_path / "replica-1", certs, slow_policies, SHUTDOWN_CONFIG))
        second = stack.enter_context(run_server(tmp_path / "replica-2", certs, slow_policies, SHUTDOWN_CONFIG))
        endpoints = Endpoints([first, second])
        with LoadLoop(endpoints, certs.ca_cert, keepalive=3, fresh=2) as load:
            time.sleep(0.5)
            slow = SlowRequest(first)
            slow.start()
            slow.in_flight()
            endpoints.remove(first)  # the endpoint goes first (readiness / preStop) ...
            time.sleep(0.3)
            terminated = time.monotonic()
            assert first.process is not None
            first.process.send_signal(signal.SIGTERM)  # ... then the kubelet sends SIGTERM
            code = first.process.wait(timeout=GRACEFUL + 5)
            exited = time.monotonic()
            replacement = stack.enter_context(run_server(tmp_path / "replica-1b", certs, slow_policies,
                                                         SHUTDOWN_CONFIG))
            endpoints.add(replacement)
            joined = time.monotonic()
            time.sleep(1.5)
        slow.join(timeout=30)

    assert load.failures() == []
    assert slow.error == "" and slow.status == 200 and slow.answer["response"]["uid"] == slow.uid
    assert code == 0 and exited - terminated < GRACEFUL
    # Kept-alive connections to the old replica were used after SIGTERM and answered.
    assert load.where(lambda o: o.port == first.port and o.started > terminated)
    assert not load.where(lambda o: o.port == first.port and o.started > exited)
    assert load.where(lambda o: o.port == replacement.port and o.started > joined)


# -- 3. the evaluation budget --------------------------------------------------------------------

BUDGET = 0.5
IN_TIME = 2.0  # the budget plus generous slack, far below the webhook's timeoutSeconds (5)


@dataclass(frozen=True)
class BudgetServer:
    server: Server
    on_error: str


@pytest.fixture(scope="module", params=["deny", "allow"])
def budgeted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certs: CertPaths,
             slow_policies: Path) -> Iterator[BudgetServer]:
    """One worker (2 evaluators), so every request of a test meets the same worker."""
    config = {"engine": {"budget_seconds": BUDGET, "on_error": request.param, "evaluators": 2}}
    with run_server(tmp_path_factory.mktemp(f"netguard-budget-{request.param}"), certs, slow_policies,
                    config, workers=1) as srv:
        yield BudgetServer(srv, request.param)


def test_an_evaluation_over_the_budget_is_answered_in_time_with_the_failure_policy(budgeted: BudgetServer) -> None:
    budget_server, on_error = budgeted.server, budgeted.on_error
    uid = f"runaway-{uuid.uuid4()}"
    status, answer, took = post(budget_server, review_body("runaway", RUNAWAY, uid))
    response = answer["response"]

    assert status == 200 and response["uid"] == uid
    assert took < IN_TIME
    expected = f"guardrails could not be evaluated within {BUDGET} s"
    line = decision_line(budget_server, uid)
    assert line["reason"].startswith("engine timeout:")
    assert_failure_policy(response, line, on_error, expected)
    if on_error == "deny":
        assert f"{expected}; failing closed" in response["status"]["message"]
        assert line["rules"] == ["engine-error"]
    assert metric(budget_server, "netguard_engine_errors_total", engine="regorus", reason="timeout") >= 1


def test_after_runaway_evaluations_the_next_requests_are_evaluated_normally(budgeted: BudgetServer) -> None:
    for _ in range(3):
        status, _, _ = post(budgeted.server, review_body("runaway", RUNAWAY))
        assert status == 200
    for _ in range(4):  # every evaluator: the stopped ones were replaced
        status, answer, took = post(budgeted.server, review_body("fine"))
        assert status == 200 and answer["response"]["allowed"] is True
        assert "warnings" not in answer["response"]
        assert took < IN_TIME


def test_a_runaway_evaluation_does_not_hold_up_other_requests(budgeted: BudgetServer) -> None:
    """regorus holds the GIL while it evaluates: in the worker's own process it would freeze every thread
    of the worker (TLS handshakes included) until it finished, and no deadline could fire."""
    runaway = SlowRequest(budgeted.server, spin=RUNAWAY)
    runaway.start()
    time.sleep(BUDGET / 3)  # the runaway is spinning in one evaluator now
    status, answer, took = post(budgeted.server, review_body("fine"))
    answered = time.monotonic()
    runaway.join(timeout=30)
    assert status == 200 and "warnings" not in answer["response"]
    assert took < BUDGET / 2
    assert runaway.status == 200 and answered < runaway.done_at


@dataclass(frozen=True)
class OpaServer:
    server: Server
    opa: OpaStandIn
    on_error: str


@pytest.fixture(scope="module", params=["deny", "allow"])
def opa_budgeted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certs: CertPaths,
                 policies: Path) -> Iterator[OpaServer]:
    """netguard with engine.type opa, pointed at a stand-in OPA this module can slow down or stop."""
    with OpaStandIn() as standin:
        config = {"engine": {"type": "opa", "budget_seconds": BUDGET, "on_error": request.param,
                             "opa": {"url": standin.url, "timeout_seconds": 1.5}}}
        with run_server(tmp_path_factory.mktemp(f"netguard-opa-{request.param}"), certs, policies, config) as srv:
            yield OpaServer(srv, standin, request.param)


def assert_failure_policy(response: dict[str, Any], line: dict[str, Any], on_error: str, expected: str) -> None:
    """Denied naming the cause (deny), or allowed with the cause as a warning (allow); logged either way."""
    if on_error == "deny":
        assert response["allowed"] is False
        assert expected in response["status"]["message"]
        assert line["verdict"] == "denied"
    else:
        assert response["allowed"] is True
        assert any(expected in w and "allowed by fail-open" in w for w in response["warnings"])
        assert line["verdict"] == "error"


def test_a_slow_opa_is_a_timeout_within_the_budget(opa_budgeted: OpaServer) -> None:
    """OPA's HTTP timeout is the smaller of engine.opa.timeout_seconds (1.5) and the budget (0.5)."""
    server, opa = opa_budgeted.server, opa_budgeted.opa
    opa.delay_seconds = 30
    uid = f"slow-opa-{uuid.uuid4()}"
    try:
        status, answer, took = post(server, review_body("slow-opa", uid=uid))
    finally:
        opa.delay_seconds = 0
    assert status == 200 and answer["response"]["uid"] == uid
    assert took < IN_TIME
    line = decision_line(server, uid)
    assert line["reason"].startswith("engine timeout:")
    assert_failure_policy(answer["response"], line, opa_budgeted.on_error,
                          f"guardrails could not be evaluated within {BUDGET} s")
    assert metric(server, "netguard_engine_errors_total", engine="opa", reason="timeout") >= 1


def test_an_unreachable_opa_is_reported_as_such_within_the_budget(opa_budgeted: OpaServer) -> None:
    server, opa = opa_budgeted.server, opa_budgeted.opa
    status, answer, _ = post(server, review_body("before"))
    assert status == 200 and answer["response"]["allowed"] is True and "warnings" not in answer["response"]
    opa.stop()
    uid = f"no-opa-{uuid.uuid4()}"
    status, answer, took = post(server, review_body("no-opa", uid=uid))
    assert status == 200 and answer["response"]["uid"] == uid
    assert took < IN_TIME
    line = decision_line(server, uid)
    assert line["reason"].startswith("engine unreachable:")
    assert_failure_policy(answer["response"], line, opa_budgeted.on_error,
                          "guardrails could not be evaluated: OPA at")
    assert metric(server, "netguard_engine_errors_total", engine="opa", reason="unreachable") == 1
