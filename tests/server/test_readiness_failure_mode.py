"""/readyz follows engine.on_error: an unreachable engine makes a fail-closed webhook unready and leaves a
fail-open one ready (saying so), on a real server over TLS.

OPA is replaced by tests/opa_standin.py (OPA's REST API evaluated by regorus; no OPA binary runs here):
stopping it is an OPA that cannot be reached. With `on_error: allow` every admission request is allowed
with a warning while OPA is down, so a 503 from /readyz would take the pod out of its Service and turn
that fail-open choice into the API server's failurePolicy (Fail: every policy change refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.opa_standin import OpaStandIn
from webhook.pki.certs import CertPaths

from .conftest import Server, run_server

FAILING_OPEN = "engine unreachable; failing open (engine.on_error: allow)"


@dataclass(frozen=True)
class OpaServer:
    server: Server
    opa: OpaStandIn
    on_error: str


@pytest.fixture(params=["allow", "deny"])
def opa_server(request: pytest.FixtureRequest, tmp_path: Path, certs: CertPaths,
               policies: Path) -> Iterator[OpaServer]:
    """netguard with engine.type opa (the stand-in), one worker: every /readyz asks the same process."""
    with OpaStandIn() as standin:
        config = {"engine": {"type": "opa", "on_error": request.param, "budget_seconds": 2.0,
                             "opa": {"url": standin.url, "timeout_seconds": 1.0}}}
        with run_server(tmp_path / f"netguard-{request.param}", certs, policies, config, workers=1) as srv:
            yield OpaServer(srv, standin, request.param)


def test_readyz_with_an_unreachable_engine_follows_engine_on_error(opa_server: OpaServer) -> None:
    server = opa_server.server
    before = server.get("/readyz")
    assert before.status == 200 and before.json()["status"] == "ready"
    assert before.json()["warnings"] == []
    opa_server.opa.stop()
    reply = server.get("/readyz")
    body = reply.json()
    if opa_server.on_error == "allow":
        assert reply.status == 200, body
        assert body["status"] == "ready"
        assert body["warnings"] == [FAILING_OPEN]
        assert body["engine_error"].startswith("OPA at ")  # the cause, as the decision log says it
        assert body["policy_revision"] == before.json()["policy_revision"]
        lines = server.wait_for_log(lambda line: line.get("event") == "readiness.failing_open")
        assert lines and lines[-1]["error"] == body["engine_error"]
    else:
        assert reply.status == 503, body
        assert body["status"] == "not ready"
        assert "OPA at " in body["error"] and "unreachable" in body["error"]


def test_readyz_with_a_reachable_engine_is_ready_either_way(opa_server: OpaServer) -> None:
    reply = opa_server.server.get("/readyz")
    assert reply.status == 200
    assert reply.json()["status"] == "ready" and reply.json()["engine"] == "opa"
