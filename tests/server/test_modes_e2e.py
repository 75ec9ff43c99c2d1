"""Namespace overrides and exceptions as the API server sees them: response fields and the decision log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from webhook.core.reviews import make_review
from webhook.pki.certs import CertPaths

from .conftest import REPO_ROOT, Server, run_server

CONFIG = {
    "overrides": [{"namespaces": ["legacy-*"], "rules": {"*": "warn"}, "reason": "legacy apps (SEC-7)"}],
    "exceptions": [{"rules": ["no-allow-all-egress", "no-internet-egress-without-ports", "no-metadata-egress"],
                    "namespace": "team-a", "name": "vendor-agent", "expires": "2099-12-31",
                    "reason": "vendor agent", "ticket": "SEC-42"}],
}


@pytest.fixture(scope="module")
def modes_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("netguard-modes"), certs, REPO_ROOT / "policies", CONFIG) as srv:
        yield srv


def allow_all(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Egress"],
                     "egress": [{}]}}


def test_a_namespace_override_warns_and_the_warning_says_why(modes_server: Server) -> None:
    response = modes_server.review("/validate", make_review(allow_all("legacy-billing", "web")))["response"]
    assert response["allowed"] is True
    assert any("[no-allow-all-egress]" in w and "legacy apps (SEC-7)" in w for w in response["warnings"])


def test_a_used_exception_is_recorded_in_audit_annotations_and_the_log(modes_server: Server) -> None:
    review = make_review(allow_all("team-a", "vendor-agent"), uid="exception-used")
    response = modes_server.review("/validate", review)["response"]
    assert response["allowed"] is True
    used = json.loads(response["auditAnnotations"]["exceptions-used"])
    assert any("SEC-42" in u for u in used)
    line = modes_server.wait_for_log(lambda e: e.get("uid") == "exception-used")[0]
    assert any("SEC-42" in u for u in line["exceptions_used"])
    assert "audit(exception SEC-42" in json.dumps(line["modes"])


def test_the_exception_does_not_cover_another_policy(modes_server: Server) -> None:
    response = modes_server.review("/validate", make_review(allow_all("team-a", "other")))["response"]
    assert response["allowed"] is False
    assert "(enforce: default)" in response["status"]["message"]
