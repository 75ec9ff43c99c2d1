"""One deadline per request: it covers normalization, facts and evaluation, and the core stops at it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from webhook.config import from_mapping
from webhook.core import deadline
from webhook.core.admission import parse_review
from webhook.core.facts import FactParams, enrich
from webhook.core.model import Verdict
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]


def pipeline(on_error: str = "deny") -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"),
                                        "engine": {"on_error": on_error, "budget_seconds": 1.0}}))


def cnp(rules: int) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "x", "namespace": "a"},
            "spec": {"endpointSelector": {}, "egress": [{"toCIDR": [f"203.0.{i % 256}.0/24"]} for i in range(rules)]}}


def test_check_does_nothing_outside_a_bounded_block() -> None:
    deadline.check("anything")
    assert deadline.remaining() is None


def test_check_raises_once_the_deadline_has_passed_and_names_the_stage() -> None:
    with deadline.bounded(time.monotonic() - 0.01), pytest.raises(deadline.DeadlineExceeded, match="during facts"):
        deadline.check("facts")
    with deadline.bounded(time.monotonic() + 60):
        deadline.check("facts")
        remaining = deadline.remaining()
        assert remaining is not None and 59 < remaining <= 60


def test_facts_stop_at_the_deadline_instead_of_finishing_the_object() -> None:
    policy = normalize(cnp(50))
    with deadline.bounded(time.monotonic() - 1), pytest.raises(deadline.DeadlineExceeded):
        enrich(policy, FactParams())


@pytest.mark.parametrize(("on_error", "allowed"), [("deny", False), ("allow", True)])
def test_a_request_read_before_its_budget_ran_out_is_answered_per_on_error(on_error: str, allowed: bool) -> None:
    """`started` is when the server read the request; the time already spent counts against the budget."""
    p = pipeline(on_error)
    request = parse_review(make_review(cnp(5)))
    decision = p.review(request, started=time.monotonic() - 5).decision
    assert decision.allowed is allowed
    assert decision.reason.startswith("engine timeout:")
    assert "request deadline passed during normalization" in decision.reason
    if not allowed:
        assert decision.verdict is Verdict.DENIED
        assert "could not be evaluated within 1.0 s; failing closed" in decision.findings[0].finding.message


def test_a_request_within_its_budget_is_reviewed_normally() -> None:
    decision = pipeline().review(parse_review(make_review(cnp(5))), started=time.monotonic()).decision
    assert decision.verdict is not Verdict.ERROR and not decision.reason.startswith("engine")
