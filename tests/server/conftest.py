"""A real netguard server (gunicorn, gthread workers, TLS) on loopback, for the contract tests.

`netguard serve` runs as a subprocess with the same environment knobs a deployment uses; the
tests talk to it over HTTPS with the generated CA, exactly as the API server would.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.pki.certs import CertPaths, generate

REPO_ROOT = Path(__file__).resolve().parents[2]
# The guardrails these contract tests are written against, copied from the repository at session
# start: a guardrail added to policies/ later (or half-written by someone right now) must not
# change what the server-contract tests observe.
GUARDRAILS = ("no-allow-all-egress", "no-internet-egress-without-ports")
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
HOSTNAME = "localhost"  # a SAN of the generated serving certificate


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Server:
    base_url: str
    host: str
    port: int
    ca_path: Path
    log_path: Path
    check_port: int = 0  # the POST /v1/check listener (server.check_bind)
    # The gunicorn master (`netguard serve` execs it), for tests that signal it and read its exit status.
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    def check_listener(self) -> Server:
        """The same server, addressed on its /v1/check listener."""
        return replace(self, port=self.check_port, base_url=f"https://{HOSTNAME}:{self.check_port}")

    def ssl_context(self) -> ssl.SSLContext:
        """What the API server does: trust only the webhook's CA, check the host name."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
        return context

    def connection(self, timeout: float = 10.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl_context(), timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Reply:
        """One request on a fresh connection, fully read and closed (no ResourceWarning)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            with conn.getresponse() as resp:
                data = resp.read()
                return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> Reply:
        return self.request("POST", path, body=body, headers={"Content-Type": content_type})

    def post_oversized(self, path: str, body: bytes, content_type: str = "application/json") -> Reply:
        """Send all of `body` like the API server would, but read the answer even if the server
        stops reading after its early 413 (gunicorn drains at most 64 KiB of an unread body)."""
        conn = self.connection()
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            with contextlib.suppress(OSError):  # EOF/reset once the server has answered and closed
                conn.send(body)
            with conn.getresponse() as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def post_json(self, path: str, doc: Any) -> Reply:
        return self.post(path, json.dumps(doc).encode())

    def review(self, path: str, doc: Any) -> dict[str, Any]:
        """POST an AdmissionReview; the call must succeed with a JSON AdmissionReview answer."""
        reply = self.post_json(path, doc)
        assert reply.status == 200, reply.body[:500]
        assert reply.headers.get("content-type", "").startswith("application/json")
        out: dict[str, Any] = reply.json()
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of the server log (gunicorn's own plain-text lines are skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    lines.append(value)
        return lines

    def wait_for_log(self, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Log lines matching `predicate`, polling briefly (workers write, the test reads)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_lines() if predicate(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(host: str, port: int, context: ssl.SSLContext, path: str = "/readyz") -> bool:
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=2.0)
    try:
        conn.request("GET", path)
        with conn.getresponse() as resp:
            resp.read()
            return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the server we started, workers included
            proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def run_server(workdir: Path, certs: CertPaths, policies: Path,
               config: Mapping[str, Any] | None = None, workers: int = 2,
               wait_for: str = "/readyz") -> Iterator[Server]:
    """Start `python -m webhook.cli serve` on a free loopback port; stop it (SIGTERM, then kill) after.

    It is yielded once `wait_for` answers 200: /healthz for tests of readiness itself."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, check_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NETGUARD_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({
        "NETGUARD_BIND": f"127.0.0.1:{port}",
        "NETGUARD_CHECK_BIND": f"127.0.0.1:{check_port}",
        "NETGUARD_TLS_CERT": str(certs.cert),
        "NETGUARD_TLS_KEY": str(certs.key),
        "NETGUARD_WORKERS": str(workers),
        "NETGUARD_LOG_FORMAT": "json",
        "NETGUARD_POLICIES_DIR": str(policies),
        "PYTHONUNBUFFERED": "1",
    })
    if config is not None:
        config_path = workdir / "netguard.yaml"
        config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        env["NETGUARD_CONFIG"] = str(config_path)
    log_path = workdir / "server.log"
    server = Server(base_url=f"https://{HOSTNAME}:{port}", host=HOSTNAME, port=port,
                    ca_path=certs.ca_cert, log_path=log_path, check_port=check_port)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve"], cwd=REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = replace(server, process=proc)
    try:
        context = server.ssl_context()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _ready(HOSTNAME, port, context, wait_for):
            if proc.poll() is not None:
                pytest.fail(f"netguard serve exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"netguard not ready within {STARTUP_TIMEOUT}s:\n{server.log_text()[-4000:]}")
            time.sleep(0.1)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate("netguard", "netguard", tmp_path_factory.mktemp("netguard-certs") / "certs")


@pytest.fixture(scope="session")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of policies/lib and the GUARDRAILS folders (Rego, metadata, tests, samples)."""
    root = tmp_path_factory.mktemp("netguard-policies") / "policies"
    for name in ("lib", *GUARDRAILS):
        shutil.copytree(REPO_ROOT / "policies" / name, root / name)
    return root


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path) -> Iterator[Server]:
    """netguard with its default configuration: every guardrail in its own default mode (enforce)."""
    with run_server(tmp_path_factory.mktemp("netguard-default"), certs, policies) as srv:
        yield srv


@pytest.fixture(scope="module")
def warn_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path) -> Iterator[Server]:
    """A second server whose configuration file sets one rule to warn and one to audit."""
    config = {"rules": {"no-allow-all-egress": {"mode": "warn"},
                        "no-internet-egress-without-ports": {"mode": "audit"}}}
    with run_server(tmp_path_factory.mktemp("netguard-warn"), certs, policies, config) as srv:
        yield srv


@pytest.fixture(scope="module")
def dry_run_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths,
                   policies: Path) -> Iterator[Server]:
    """A third server with `dry_run: true`: every enforce becomes warn."""
    with run_server(tmp_path_factory.mktemp("netguard-dry-run"), certs, policies, {"dry_run": True}) as srv:
        yield srv


def metric(server: Server, name: str, **labels: str) -> float:
    """One Prometheus sample from /metrics by name and exact label set (0.0 when absent)."""
    text = server.get("/metrics").body.decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0
