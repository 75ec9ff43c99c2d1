"""/validate over TLS refuses a forged netguard.io/last-modified-by (`attribution-mismatch`) and logs it."""

from __future__ import annotations

import uuid
from typing import Any

from webhook.core.mutate import ANNOTATION_LAST_MODIFIED_BY
from webhook.core.reviews import make_review

from .conftest import Server


def named(by: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"web-{uuid.uuid4().hex[:8]}", "namespace": "team-a"}
    if by is not None:
        meta["annotations"] = {ANNOTATION_LAST_MODIFIED_BY: by}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": 443}]}],
                     "policyTypes": ["Egress"]}}


def test_a_create_naming_someone_else_is_denied_with_its_own_rule(server: Server) -> None:
    review = make_review(named("platform-admin"), username="alice")
    response = server.review("/validate", review)["response"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "[attribution-mismatch]" in message and "'platform-admin'" in message
    uid = review["request"]["uid"]
    lines = server.wait_for_log(lambda line: line.get("uid") == uid and line.get("endpoint") == "validate")
    assert lines and lines[0]["rules"] == ["attribution-mismatch"] and lines[0]["allowed"] is False


def test_own_name_and_an_unchanged_stale_value_are_admitted(server: Server) -> None:
    own = server.review("/validate", make_review(named("alice"), username="alice"))["response"]
    assert own["allowed"] is True
    stale = named("bob")
    update = make_review(stale, operation="UPDATE", old=stale, username="alice")  # /mutate was skipped
    assert server.review("/validate", update)["response"]["allowed"] is True


def test_mutate_never_denies_and_writes_the_requester(server: Server) -> None:
    response = server.review("/mutate", make_review(named("platform-admin"), username="alice"))["response"]
    assert response["allowed"] is True and response.get("patch")  # /mutate fixes it; /validate then admits
