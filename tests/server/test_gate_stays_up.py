"""The gate stays up: slow and idle clients, overload and /v1/check cannot take admission's threads.

Real `netguard serve` (gunicorn, webhook/serve/worker.py, TLS) on loopback. Clients that send part of a TLS
handshake, part of a request head or part of a body are cut off after their limit while /healthz and
/validate keep answering; silent and idle connections do not keep new ones out; a request that waited
too long for a thread is answered at once with engine.on_error (a deliberately slow OPA stand-in and a
one-thread pool make it deterministic); /v1/check lives on its own listener with its own limits.
Every loop is bounded in count and time; timing bounds are generous (performance is in bench/).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.opa_standin import OpaStandIn
from webhook.core.reviews import make_review
from webhook.pki.certs import CertPaths

from .conftest import Server, metric, run_server

LIMIT = 1.5  # handshake, head and body limits of the slow-client server
SLACK = 6.0  # generous: a cut or an answer within LIMIT + SLACK
THREADS = 4
PARTIAL_HANDSHAKE = b"\x16\x03\x01\x02\x00\x01"  # a TLS record header and the first byte of a ClientHello

SLOW_CLIENT_CONFIG = {"server": {"threads": THREADS, "handshake_timeout_seconds": LIMIT,
                                 "head_timeout_seconds": LIMIT, "body_timeout_seconds": LIMIT,
                                 "max_connections": 40, "max_idle_connections": 8}}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path) -> Iterator[Server]:
    """One worker, so every client of a test meets the same worker and its THREADS threads."""
    with run_server(tmp_path_factory.mktemp("netguard-slow-clients"), certs, policies, SLOW_CLIENT_CONFIG,
                    workers=1) as srv:
        yield srv


def policy(name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                                 "ports": [{"protocol": "TCP", "port": 5432}]}]}}


def review(name: str = "fine", uid: str | None = None) -> dict[str, Any]:
    return make_review(policy(name), uid=uid or str(uuid.uuid4()))


def assert_serving(server: Server) -> None:
    """/healthz and /validate answer (a fresh connection each, as a new API server connection would)."""
    assert server.get("/healthz").status == 200
    answer = server.review("/validate", review())
    assert answer["response"]["allowed"] is True


def raw(server: Server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=SLACK + LIMIT)


def tls(server: Server) -> ssl.SSLSocket:
    return server.ssl_context().wrap_socket(raw(server), server_hostname=server.host)


def read_until_closed(sock: socket.socket, limit: float = LIMIT + SLACK) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds from now)."""
    started, data = time.monotonic(), b""
    sock.settimeout(limit)
    with contextlib.suppress(ConnectionResetError, ssl.SSLError):
        while time.monotonic() - started < limit:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data, time.monotonic() - started


def is_open(sock: socket.socket) -> bool:
    """Not closed by the server, without waiting: these clients have asked for nothing, so the server
    only ever sends them its close (EOF, reset or a TLS close alert; TLS 1.3 session tickets aside)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    if not isinstance(sock, ssl.SSLSocket):
        return False
    sock.settimeout(0.0)
    try:
        return bool(sock.recv(1))
    except ssl.SSLWantReadError:  # only session tickets were there
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(LIMIT + SLACK)


# -- 1. slow and idle clients ---------------------------------------------------------------------

def test_partial_tls_handshakes_are_cut_off_while_admission_answers(slow_server: Server) -> None:
    stalled = [raw(slow_server) for _ in range(THREADS * 2)]
    try:
        for sock in stalled:
            sock.sendall(PARTIAL_HANDSHAKE)
        assert_serving(slow_server)
        assert all(is_open(sock) for sock in stalled)  # answered while every stalled client was still there
        for sock in stalled:
            _, took = read_until_closed(sock)
            assert took < LIMIT + SLACK
    finally:
        for sock in stalled:
            sock.close()
    assert metric(slow_server, "netguard_connections_cut_total", phase="handshake") >= len(stalled)


def test_partial_request_heads_are_cut_off_while_admission_answers(slow_server: Server) -> None:
    stalled = [tls(slow_server) for _ in range(THREADS * 2)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        assert_serving(slow_server)
        assert all(is_open(sock) for sock in stalled)
        for sock in stalled:
            data, took = read_until_closed(sock)
            assert data == b"" and took < LIMIT + SLACK
    finally:
        for sock in stalled:
            sock.close()
    assert metric(slow_server, "netguard_connections_cut_total", phase="head") >= len(stalled)


def test_partial_bodies_are_answered_408_after_the_limit_while_admission_answers(slow_server: Server) -> None:
    """The event loop reads bodies too: clients that send half a body never hold a thread (measured with
    make bench-hostile: when threads read bodies, 4 such clients per worker shed every ordinary review)."""
    body = json.dumps(review()).encode()
    stalled = [tls(slow_server) for _ in range(THREADS * 2)]  # more than the worker's threads
    try:
        for sock in stalled:
            sock.sendall(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:20])
        assert_serving(slow_server)
        assert all(is_open(sock) for sock in stalled)  # answered while every stalled client was still there
        for sock in stalled:
            data, took = read_until_closed(sock)
            assert data.startswith(b"HTTP/1.1 408 ") and took < LIMIT + SLACK
    finally:
        for sock in stalled:
            sock.close()
    assert metric(slow_server, "netguard_connections_cut_total", phase="body") >= len(stalled)


def test_silent_connections_beyond_the_connection_limit_do_not_keep_new_ones_out(slow_server: Server) -> None:
    silent = [raw(slow_server) for _ in range(60)]  # max_connections is 40 in this server
    try:
        started = time.monotonic()
        assert_serving(slow_server)
        assert time.monotonic() - started < LIMIT + SLACK
    finally:
        for sock in silent:
            sock.close()


def test_idle_connections_are_capped_oldest_first_and_kept_alive_connections_are_reused(
        slow_server: Server) -> None:
    idle = [tls(slow_server) for _ in range(20)]  # handshake done, no request; max_idle_connections is 8
    try:
        assert_serving(slow_server)
        deadline = time.monotonic() + SLACK
        while is_open(idle[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_open(idle[0])  # the oldest idle connection made room
        assert is_open(idle[-1])
        newest = idle[-1]
        newest.settimeout(SLACK)
        newest.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert newest.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in idle:
            sock.close()
    assert metric(slow_server, "netguard_connections_cut_total", phase="idle_evicted") >= 1

    conn = slow_server.connection()  # the API server's way: one connection, many requests
    try:
        first = None
        for _ in range(5):
            body = json.dumps(review()).encode()
            conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
            with conn.getresponse() as resp:
                assert resp.status == 200 and json.loads(resp.read())["response"]["allowed"] is True
                assert resp.getheader("Connection", "").lower() != "close"
            first = first or conn.sock
            assert conn.sock is first  # the same connection every time
    finally:
        conn.close()


def test_a_pipelined_second_request_on_a_kept_alive_connection_is_answered(slow_server: Server) -> None:
    sock = tls(slow_server)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2)
        data, started = b"", time.monotonic()
        sock.settimeout(SLACK)
        while data.count(b"HTTP/1.1 200 ") < 2 and time.monotonic() - started < SLACK:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 200 ") == 2
    finally:
        sock.close()


# -- 2. load shedding, 3. the check listener ------------------------------------------------------

OPA_DELAY = 2.5  # one admission request holds the only thread this long
SHED_FRACTION = 0.2  # of the 5 s deadline: a request that waited more than 1 s for a thread is shed


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths,
               policies: Path) -> Iterator[tuple[Server, OpaStandIn]]:
    """One worker, one admission thread, and an OPA stand-in the test slows down."""
    with OpaStandIn() as standin:
        config = {"engine": {"type": "opa", "budget_seconds": 4.0,
                             "opa": {"url": standin.url, "timeout_seconds": 4.0}},
                  "server": {"threads": 1, "shed_queue_fraction": SHED_FRACTION,
                             "check": {"timeout_seconds": 1.0}}}
        with run_server(tmp_path_factory.mktemp("netguard-overloaded"), certs, policies, config,
                        workers=1) as srv:
            yield srv, standin


class Post(threading.Thread):
    def __init__(self, server: Server, path: str, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(daemon=True)
        self.server, self.path, self.body, self.content_type = server, path, body, content_type
        self.status, self.answer, self.took = 0, b"", 0.0

    def run(self) -> None:
        started = time.monotonic()
        reply = self.server.request("POST", self.path, body=self.body, headers={"Content-Type": self.content_type},
                                    timeout=30)
        self.status, self.answer, self.took = reply.status, reply.body, time.monotonic() - started


def test_a_request_that_waited_too_long_for_a_thread_is_shed_with_the_failure_policy(
        overloaded: tuple[Server, OpaStandIn]) -> None:
    server, opa = overloaded
    uid = f"shed-{uuid.uuid4()}"
    opa.delay_seconds = OPA_DELAY
    try:
        slow = Post(server, "/validate?timeout=5s", json.dumps(review("slow")).encode())
        slow.start()
        time.sleep(0.3)  # the slow request holds the worker's only admission thread now
        # The check listener has its own threads: it answers while admission's are all busy.
        check = Post(server.check_listener(), "/v1/check", b"kind: ConfigMap\napiVersion: v1\n", "application/yaml")
        check.start()
        check.join(timeout=OPA_DELAY)
        assert check.status == 200 and slow.is_alive()
        shed = Post(server, "/validate?timeout=5s", json.dumps(review("queued", uid)).encode())
        shed.start()
        shed.join(timeout=30)
        slow.join(timeout=30)
    finally:
        opa.delay_seconds = 0
    assert slow.status == 200 and json.loads(slow.answer)["response"]["allowed"] is True  # evaluated
    assert shed.status == 200
    response = json.loads(shed.answer)["response"]
    assert response["uid"] == uid and response["allowed"] is False  # engine.on_error: deny
    assert "netguard is overloaded" in response["status"]["message"]
    assert shed.took < OPA_DELAY + SLACK  # answered without an evaluation of its own
    assert metric(server, "netguard_shed_total", endpoint="validate") >= 1


YAML_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p{index}, namespace: team-a}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
    - {{}}
"""


def yaml_policies(count: int) -> bytes:
    return "---\n".join(YAML_POLICY.format(index=i) for i in range(count)).encode()


def test_a_check_past_its_time_limit_is_stopped(overloaded: tuple[Server, OpaStandIn]) -> None:
    server, opa = overloaded
    opa.delay_seconds = 0.8  # per document; server.check.timeout_seconds is 1
    try:
        reply = server.check_listener().post("/v1/check", yaml_policies(4), content_type="application/yaml")
    finally:
        opa.delay_seconds = 0
    assert reply.status == 503 and "server.check.timeout_seconds" in reply.json()["error"]


def test_check_is_served_only_on_its_own_listener(server: Server) -> None:
    moved = server.post("/v1/check", yaml_policies(1), content_type="application/yaml")
    assert moved.status == 404 and "server.check_bind" in moved.json()["error"]
    assert "8444" in moved.json()["error"] or str(server.check_port) in moved.json()["error"]
    check = server.check_listener()
    assert check.post_json("/validate", review()).status == 404
    assert check.get("/metrics").status == 404
    assert check.get("/healthz").status == 200
    assert check.post("/v1/check", yaml_policies(1), content_type="application/yaml").status == 200


@pytest.fixture(scope="module")
def check_limited(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path) -> Iterator[Server]:
    config = {"server": {"check": {"max_documents": 3, "max_body_bytes": 2048, "max_response_bytes": 1024}}}
    with run_server(tmp_path_factory.mktemp("netguard-check-limits"), certs, policies, config,
                    workers=1) as srv:
        yield srv.check_listener()


def test_check_limits_documents_bytes_and_answer_size(check_limited: Server) -> None:
    too_many = check_limited.post("/v1/check", b"---\n".join([b"kind: A\napiVersion: v1\n"] * 4),
                                  content_type="application/yaml")
    assert too_many.status == 413 and "server.check.max_documents" in too_many.json()["error"]
    too_big = check_limited.post_oversized("/v1/check", b"# padding\n" * 300, content_type="application/yaml")
    assert too_big.status == 413 and "server.check.max_body_bytes" in too_big.json()["error"]
    too_long = check_limited.post("/v1/check", yaml_policies(3), content_type="application/yaml")
    assert too_long.status == 413 and "server.check.max_response_bytes" in too_long.json()["error"]
    fine = check_limited.post("/v1/check", b"kind: A\napiVersion: v1\n", content_type="application/yaml")
    assert fine.status == 200 and fine.json()["summary"]["skipped"] == 1


# -- 4. bounded metrics ---------------------------------------------------------------------------

def test_a_made_up_kind_is_counted_as_other(server: Server) -> None:
    made_up = review()
    made_up["request"]["kind"] = {"group": "example.com", "version": "v1", "kind": "MadeUp" + "x" * 500}
    made_up["request"]["resource"] = {"group": "example.com", "version": "v1", "resource": "madeups"}
    assert server.post_json("/validate", made_up).status == 200
    text = server.get("/metrics").body.decode()
    assert "MadeUp" not in text
    kinds = set(re.findall(r'netguard_admission_requests_total\{[^}]*kind="([^"]*)"', text))
    assert "other" in kinds
    assert kinds <= {"NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "other"}


def test_http_client_still_works_on_fresh_connections(server: Server) -> None:
    """A plain http.client round trip after all of the above (the contract tests' way of calling)."""
    conn = http.client.HTTPSConnection(server.host, server.port, context=server.ssl_context(), timeout=10)
    try:
        conn.request("GET", "/healthz")
        with conn.getresponse() as resp:
            assert resp.status == 200 and resp.read()
    finally:
        conn.close()


def test_a_chunked_body_is_read_whole_by_the_event_loop_and_answered(slow_server: Server) -> None:
    body = json.dumps(review()).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:50], body[50:])) + b"0\r\n\r\n"
    with tls(slow_server) as sock:
        sock.sendall(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
        data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b'"allowed":true' in data
