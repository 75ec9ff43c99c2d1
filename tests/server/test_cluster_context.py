"""Cluster context end to end: `netguard serve` (gunicorn workers, TLS) watching a cluster.

No API server can run here, so the cluster is tests/kube_standin.py: lists and chunked watch streams over
TLS on loopback, with the test pushing events, dropping watches and refusing connections. What is under
test is netguard's side: each worker lists and watches after the fork, /readyz waits for the first list,
the view follows events, and a lost watch makes the view stale (said in the response) and then recovers.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube_standin import KubeStandIn, Objects
from tests.server.conftest import REPO_ROOT, Server, run_server
from webhook.core.reviews import make_review
from webhook.pki.certs import CertPaths

RULE = "namespace-has-default-deny"
GUARDRAILS = ("no-allow-all-egress", RULE)
STALE_AFTER = 2
WAIT = 20.0  # bound for every "eventually": watches reconnect within a few backoff steps of at most 1 s


def _ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "100",
                         "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def _netpol(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
WEB = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                    "ports": [{"protocol": "TCP", "port": 8080}]}]}
ALLOW_ALL_EGRESS = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}


def _objects() -> Objects:
    return Objects(namespaces=[_ns(n) for n in ("team-a", "team-b", "team-c", "team-d")],
                   network_policies=[_netpol("default-deny", "team-d", DENY_ALL)],
                   cilium_network_policies=[], cilium_clusterwide_network_policies=[], pods=[])


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster-policies") / "policies"
    for name in ("lib", *GUARDRAILS):
        shutil.copytree(REPO_ROOT / "policies" / name, root / name)
    return root


@contextlib.contextmanager
def _cluster_server(workdir: Path, certs: CertPaths, policies: Path, standin: KubeStandIn, workers: int,
                    wait_for: str) -> Iterator[Server]:
    config = {
        "cluster": {"enabled": True, "kubeconfig": str(standin.kubeconfig), "stale_after_seconds": STALE_AFTER},
        "overrides": [{"namespace_labels": {"netguard.io/mode": "warn"}, "rules": {"*": "warn"},
                       "reason": "namespace label netguard.io/mode=warn"}],
    }
    with pytest.MonkeyPatch.context() as mp:  # loopback traffic must not go to a proxy from the environment
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(name, raising=False)
        with run_server(workdir, certs, policies, config, workers=workers, wait_for=wait_for) as server:
            yield server


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeStandIn]:
    with KubeStandIn(tmp_path_factory.mktemp("cluster-standin"), objects=_objects()) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path,
           standin: KubeStandIn) -> Iterator[Server]:
    """One worker, so there is one view and "eventually" means that view."""
    with _cluster_server(tmp_path_factory.mktemp("cluster-server"), certs, policies, standin, 1, "/readyz") as srv:
        yield srv


def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """The first truthy result of `check`, polled until `timeout`; fails with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"not within {timeout}s: {result!r}"
            return result
        time.sleep(0.1)


def _review(server: Server, obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    review = make_review(obj if operation != "DELETE" else None, old=obj if operation == "DELETE" else None,
                         operation=operation, username="alice", groups=("team", "system:authenticated"))
    response: dict[str, Any] = server.review("/validate", review)["response"]
    return response


def _warnings(response: dict[str, Any]) -> list[str]:
    return list(response.get("warnings") or [])


def _default_deny_warnings(response: dict[str, Any]) -> list[str]:
    return [w for w in _warnings(response) if w.startswith(f"[{RULE}]")]


def test_readyz_is_503_until_the_first_list_then_200_in_every_worker(
        tmp_path: Path, certs: CertPaths, policies: Path) -> None:
    with KubeStandIn(tmp_path / "standin", objects=_objects()) as standin:
        standin.refuse = True  # the API server cannot be reached yet
        with _cluster_server(tmp_path / "server", certs, policies, standin, 2, "/healthz") as server:
            eventually(lambda: len(standin.requests) >= 8)  # both workers have tried, and been cut off
            for _ in range(5):
                reply = server.get("/readyz")
                assert reply.status == 503, reply.body
                assert reply.json()["error"] == "cluster view not synced yet"
                time.sleep(0.1)
            assert reply.json()["cluster"]["watches_down"]  # the reason is in the answer
            standin.refuse = False
            eventually(lambda: all(server.get("/readyz").status == 200 for _ in range(6)))

            def ready_body() -> Any:
                # One more 200 (a busy machine can make a single readiness evaluation miss its budget).
                reply = server.get("/readyz")
                return reply.json() if reply.status == 200 else None

            ready = eventually(ready_body)
            assert ready["cluster"]["synced"] is True and ready["cluster"]["namespaces"] == 4
            # Each of the two workers watches the five resources itself (started after the fork).
            assert standin.wait_for_watches(10, timeout=WAIT)


def test_a_policy_in_a_namespace_without_default_deny_is_warned_and_one_that_provides_it_is_not(
        server: Server) -> None:
    response = _review(server, _netpol("web", "team-a", WEB))
    assert response["allowed"] is True
    assert _default_deny_warnings(response) == [
        f"[{RULE}] metadata.namespace: namespace team-a has no default-deny policy for ingress and egress: pods "
        "that no policy selects accept traffic from anywhere and can send traffic anywhere (warn: default)"]
    assert not _default_deny_warnings(_review(server, _netpol("default-deny", "team-a", DENY_ALL)))
    assert not _default_deny_warnings(_review(server, _netpol("web", "team-d", WEB)))  # team-d has one


def test_the_warning_disappears_once_the_cluster_reports_a_default_deny(server: Server, standin: KubeStandIn) -> None:
    assert _default_deny_warnings(_review(server, _netpol("web", "team-c", WEB)))
    standin.push("networkpolicies.networking.k8s.io", "ADDED", _netpol("default-deny", "team-c", DENY_ALL))
    eventually(lambda: not _default_deny_warnings(_review(server, _netpol("web", "team-c", WEB))))
    # Deleting it again is the loss the guardrail reports on DELETE.
    deleted = _review(server, _netpol("default-deny", "team-c", DENY_ALL), operation="DELETE")
    assert _default_deny_warnings(deleted) == [
        f"[{RULE}] metadata: deleting NetworkPolicy team-c/default-deny leaves namespace team-c without a "
        "default-deny policy for ingress and egress (warn: default)"]


def test_a_namespace_label_in_the_cluster_changes_the_mode_without_a_config_change(
        server: Server, standin: KubeStandIn) -> None:
    denied = _review(server, _netpol("open", "team-b", ALLOW_ALL_EGRESS))
    assert denied["allowed"] is False
    assert "[no-allow-all-egress]" in denied["status"]["message"]
    standin.push("namespaces", "MODIFIED", _ns("team-b", **{"netguard.io/mode": "warn"}))
    warned = eventually(lambda: (r := _review(server, _netpol("open", "team-b", ALLOW_ALL_EGRESS)))["allowed"] and r)
    assert any(w.startswith("[no-allow-all-egress]")
               and w.endswith("(warn: namespace override (namespace label netguard.io/mode=warn))")
               for w in _warnings(warned)), _warnings(warned)


def test_a_lost_watch_makes_the_view_stale_which_responses_say_and_then_it_recovers(
        server: Server, standin: KubeStandIn) -> None:
    stale_notice = f"netguard: [{RULE}] cluster view is stale (last update "
    assert _default_deny_warnings(_review(server, _netpol("web", "team-a", WEB)))
    standin.refuse = True
    try:
        standin.drop_watches(abrupt=True)
        started = time.monotonic()
        response = eventually(lambda: (r := _review(server, _netpol("web", "team-a", WEB)))
                              and any(w.startswith(stale_notice) for w in _warnings(r)) and r)
        assert time.monotonic() - started >= STALE_AFTER - 0.5  # not before stale_after_seconds
        assert not _default_deny_warnings(response)  # unknown, so not guessed either way
        assert any(w.endswith("s ago): default-deny status unknown") for w in _warnings(response))
        reply = server.get("/readyz")
        assert reply.status == 200  # serving with a stale view beats not serving (see server.py)
        assert reply.json()["cluster"]["stale"] is True
        # Labels fall back to the configuration (none here), and the requester is told.
        labelled = _review(server, _netpol("open", "team-b", ALLOW_ALL_EGRESS))
        assert labelled["allowed"] is False
        assert any("namespace labels for overrides come from the configuration" in w for w in _warnings(labelled))
        # Changes during the outage are seen after it: the watcher lists again.
        standin.push("networkpolicies.networking.k8s.io", "ADDED", _netpol("default-deny", "team-a", DENY_ALL))
    finally:
        standin.refuse = False
    recovered = eventually(lambda: (r := _review(server, _netpol("web", "team-a", WEB)))
                           and not any(w.startswith("netguard:") for w in _warnings(r)) and r)
    assert not _default_deny_warnings(recovered)
    lines = server.wait_for_log(lambda line: line.get("event") == "cluster.watch.down")
    assert lines and all(line.get("level") == "warning" for line in lines)
    assert server.wait_for_log(lambda line: line.get("event") == "admission.decision"
                               and any("cluster view is stale" in n for n in line.get("notices") or []))
