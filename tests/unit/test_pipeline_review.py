"""Pipeline.review -> Review: the decision with the normalized policy it was made on (None exactly when none was
built), and an object that cannot be read as the decision's typed `failure`, never told by a rule id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from webhook.config import from_mapping
from webhook.core.admission import parse_review
from webhook.core.model import INVALID_OBJECT, Failure, Operation, UserInfo, Verdict
from webhook.core.reviews import make_review, synthetic_create
from webhook.core.snapshot import ClusterSnapshot
from webhook.core.verdict_cache import VerdictCache
from webhook.engine.engines import EngineError
from webhook.pipeline import Pipeline, Review, build_pipeline

REPO = Path(__file__).resolve().parents[2]
ALICE = UserInfo("alice", groups=("system:authenticated",))


def netpol(spec: Any, name: str = "web", namespace: str = "team-a") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


WEB = netpol({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
              "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]})
DENY_ALL = netpol({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, name="default-deny")
BROKEN = netpol({"podSelector": 5})


@pytest.fixture(scope="module")
def base() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"), "excluded_namespaces": ["kube-system"],
                                        "limits": {"max_rules": 3}}))


@pytest.fixture
def pipeline(base: Pipeline) -> Pipeline:
    return replace(base, cache=VerdictCache(16))


def review(pipeline: Pipeline, obj: Mapping[str, Any], snapshot: ClusterSnapshot | None = None) -> Review:
    return pipeline.review(synthetic_create(obj, user=ALICE), snapshot)


def test_a_judged_request_comes_with_the_policy_it_was_judged_on(pipeline: Pipeline) -> None:
    got = review(pipeline, WEB)
    assert got.decision.verdict is not Verdict.SKIPPED and got.decision.failure is None
    assert got.policy is not None and (got.policy.kind, got.policy.namespace, got.policy.name) == (
        "NetworkPolicy", "team-a", "web")
    assert got.policy == pipeline.model(WEB, pipeline.snapshot())[0]  # enriched: facts attached


def test_no_policy_when_none_was_built(pipeline: Pipeline) -> None:
    skipped = review(pipeline, netpol({"podSelector": {}}, namespace="kube-system"))
    assert skipped.decision.verdict is Verdict.SKIPPED and skipped.policy is None
    over = review(pipeline, netpol({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}] * 5}))
    assert over.decision.rule_ids == ("limits",) and over.decision.failure is None and over.policy is None
    invalid = review(pipeline, BROKEN)
    assert invalid.policy is None
    first = review(pipeline, WEB)
    cached = review(pipeline, WEB)
    assert first.policy is not None and cached.decision.cached and cached.policy is None
    assert cached.decision == first.decision


def test_an_unreadable_object_is_a_typed_failure_naming_the_field(pipeline: Pipeline) -> None:
    decision = review(pipeline, BROKEN).decision
    assert decision.verdict is Verdict.DENIED
    assert decision.failure == Failure(INVALID_OBJECT, "must be an object, got number", "spec.podSelector")
    # The webhook's answer is unchanged: the API server's message names the pseudo-rule and the field.
    assert [(f.finding.rule, f.finding.path) for f in decision.findings] == [("invalid-object", "spec.podSelector")]


def test_an_unreadable_object_is_still_cached_an_engine_failure_never(pipeline: Pipeline) -> None:
    review(pipeline, BROKEN)
    assert review(pipeline, BROKEN).decision.cached  # about the object: the same object fails the same way

    class Failing:
        name = pipeline.engine.name

        def evaluate(self, document: Any, deadline: float | None = None) -> Any:
            raise EngineError("boom")

        def close(self) -> None:
            pass

    failing = replace(pipeline, engine=Failing(), cache=VerdictCache(16))
    got = review(failing, WEB)
    assert got.decision.failure is not None and got.decision.failure.kind == "error"
    assert got.decision.failure.path == "(evaluation)" and got.policy is not None  # built before the engine failed
    assert not review(failing, WEB).decision.cached


def test_deleting_an_unreadable_object_is_allowed_and_says_why(pipeline: Pipeline) -> None:
    request = parse_review(make_review(None, old=BROKEN, operation="DELETE"))
    assert request.operation is Operation.DELETE
    got = pipeline.review(request)
    assert got.decision.allowed and got.policy is None
    assert got.decision.reason == "old object unreadable: spec.podSelector must be an object, got number"
    assert got.decision.failure == Failure(INVALID_OBJECT, "must be an object, got number", "spec.podSelector")


def test_a_snapshot_given_is_what_the_cluster_aware_guardrails_read(pipeline: Pipeline) -> None:
    without = ClusterSnapshot.from_objects({"team-a": {}}, [WEB])
    with_baseline = ClusterSnapshot.from_objects({"team-a": {}}, [WEB, DENY_ALL])
    assert "namespace-has-default-deny" in review(pipeline, WEB, without).decision.rule_ids
    assert "namespace-has-default-deny" not in review(pipeline, WEB, with_baseline).decision.rule_ids
    assert "namespace-has-default-deny" not in review(pipeline, WEB).decision.rule_ids  # no cluster: silent
