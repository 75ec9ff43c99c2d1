"""`attribution-mismatch`: /validate refuses a netguard.io/last-modified-by that nobody vouches for."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core import attribution
from webhook.core.admission import parse_review
from webhook.core.model import AppliedFinding, Decision, Finding, Mode, Verdict
from webhook.core.mutate import ANNOTATION_LAST_MODIFIED_BY
from webhook.core.reviews import make_review


def policy(by: str | None = None, port: int = 443) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "team-a"}
    if by is not None:
        meta["annotations"] = {ANNOTATION_LAST_MODIFIED_BY: by}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, "egress": [{"ports": [{"port": port}]}], "policyTypes": ["Egress"]}}


def rule(review: dict[str, Any]) -> str | None:
    found = attribution.mismatch(parse_review(review))
    return found.rule if found else None


@pytest.mark.parametrize(("written", "expected"), [
    (None, None),  # nothing written: /mutate writes it
    ("alice", None),  # the requester: what /mutate would have written
    ("platform-admin", "attribution-mismatch"),  # someone else: forged
    ("", "attribution-mismatch"),  # emptied: not the requester either
])
def test_a_create_may_only_name_its_requester(written: str | None, expected: str | None) -> None:
    assert rule(make_review(policy(written), username="alice")) == expected


@pytest.mark.parametrize(("stored", "written", "expected"), [
    ("bob", "bob", None),  # unchanged by this request: a skipped /mutate leaves it stale, not forged
    ("bob", "alice", None),  # the requester
    ("bob", None, None),  # removed: the audit then knows less, but is told nothing false
    ("bob", "platform-admin", "attribution-mismatch"),  # neither the requester nor the stored value
    (None, "platform-admin", "attribution-mismatch"),  # added, naming someone else
])
def test_an_update_may_keep_the_stored_value_or_name_its_requester(stored: str | None, written: str | None,
                                                                   expected: str | None) -> None:
    review = make_review(policy(written, 8443), operation="UPDATE", old=policy(stored), username="alice")
    assert rule(review) == expected


def test_a_delete_is_never_judged() -> None:
    assert rule(make_review(None, operation="DELETE", old=policy("platform-admin"), username="alice")) is None


def test_the_finding_is_enforced_whatever_the_decision_and_names_both_users() -> None:
    request = parse_review(make_review(policy("platform-admin"), username="alice"))
    exempted = Finding(rule="no-allow-all-egress", path="spec.egress[0]", message="m", fix="f", severity="high")
    audited = Decision(verdict=Verdict.AUDITED, findings=(AppliedFinding(exempted, Mode.AUDIT, "exception T-1"),),
                       exceptions_used=("T-1",))
    decided = attribution.enforce(request, audited)
    assert decided.verdict is Verdict.DENIED and decided.exceptions_used == ("T-1",)
    first = decided.findings[0]
    assert first.finding.rule == "attribution-mismatch" and first.mode is Mode.ENFORCE
    assert "'platform-admin'" in first.finding.message and "'alice'" in first.finding.message
    assert first.finding.path == f"metadata.annotations.{ANNOTATION_LAST_MODIFIED_BY}"


def test_a_skipped_request_stays_skipped() -> None:
    request = parse_review(make_review(policy("platform-admin"), username="alice"))
    skipped = Decision(verdict=Verdict.SKIPPED, reason="namespace kube-system is excluded")
    assert attribution.enforce(request, skipped) is skipped
