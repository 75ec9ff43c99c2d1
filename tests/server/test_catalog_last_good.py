"""A rule file broken on disk after start does not take the server down when a worker restarts.

Each gunicorn worker loads and compiles the catalog when it starts (no preload_app). A worker that restarts
(killed here; in production a crash, an OOM kill or the timeout) while a rule file on disk does not compile
serves the last good compiled catalog instead, says so (log, /metrics, /readyz) and stays ready; the next
worker start that finds a good catalog on disk serves it. A real server over TLS, one worker so that every
request reaches the restarted process.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from webhook.core.reviews import make_review
from webhook.pki.certs import CertPaths

from .conftest import Server, metric, run_server

T = TypeVar("T")
WAIT = 30.0
BROKEN_RULE = "\nviolation contains v if {\n\tv :=\n}\n"


def eventually(probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except OSError:  # no worker accepting for a moment
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def workers(server: Server) -> list[int]:
    """The gunicorn master's children (its workers; their evaluators are the workers' children)."""
    assert server.process is not None
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def restart_worker(server: Server) -> int:
    """Kill the one worker; gunicorn's master starts a new one. Returns the new worker's pid."""
    assert server.process is not None
    (old,) = workers(server)
    os.kill(old, signal.SIGKILL)

    def replaced() -> int | None:
        assert server.process is not None and server.process.poll() is None, server.log_text()[-3000:]
        found = [pid for pid in workers(server) if pid != old]
        return found[0] if found else None

    return eventually(replaced)


def ready(server: Server) -> dict[str, Any] | None:
    reply = server.get("/readyz")
    body: dict[str, Any] = reply.json()
    return body if reply.status == 200 else None


def denied_allow_all_egress(server: Server) -> bool:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "open", "namespace": "team-a"},
           "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}
    answer = server.review("/validate", make_review(obj, uid=str(uuid.uuid4())))
    return answer["response"]["allowed"] is False and "[no-allow-all-egress]" in answer["response"]["status"]["message"]


def test_a_worker_restarted_on_a_broken_catalog_serves_the_last_good_one_then_the_next_good_one(
        tmp_path: Path, certs: CertPaths, policies: Path) -> None:
    root = tmp_path / "policies"
    shutil.copytree(policies, root)
    rule = root / "no-allow-all-egress" / "rule.rego"
    good_rule = rule.read_text(encoding="utf-8")
    with run_server(tmp_path / "server", certs, root, workers=1) as server:
        first = eventually(lambda: ready(server))
        revision = first["policy_revision"]
        assert first["warnings"] == []

        rule.write_text(good_rule + BROKEN_RULE, encoding="utf-8")  # a bad ConfigMap update
        restart_worker(server)
        body = eventually(lambda: ready(server))
        assert body["policy_revision"] == revision  # the last good catalog, still enforced
        (warning,) = body["warnings"]
        assert warning.startswith(f"serving last good catalog {revision}; {rule}:")
        assert "expecting" in warning  # regorus' message: the file, the line and what is wrong
        assert body["catalog_error"].startswith(f"{rule}:")
        assert denied_allow_all_egress(server)
        assert metric(server, "netguard_catalog_load_errors_total", fallback="last_good") >= 1
        assert metric(server, "netguard_catalog_last_good_revision", revision=revision) == 1
        logged = server.wait_for_log(lambda line: line.get("event") == "catalog.load_failed")
        assert logged and logged[-1]["serving_revision"] == revision and str(rule) in logged[-1]["error"]

        # The next good version: a changed guardrail on disk is picked up by the next worker start.
        rule.write_text(good_rule + "\n# version 2\n", encoding="utf-8")
        restart_worker(server)
        fixed = eventually(lambda: (b := ready(server)) and b["policy_revision"] != revision and b)
        assert fixed["warnings"] == [] and "catalog_error" not in fixed
        assert denied_allow_all_egress(server)
        assert metric(server, "netguard_catalog_last_good_revision", revision=revision) == 0
