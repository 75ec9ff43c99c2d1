"""`netguard baseline --flavor calico`: Calico projectcalico.org/v3 NetworkPolicies read back by netguard itself
(normalized, judged by the pipeline, counted by the posture, explained), so the flavor cannot drift from how
netguard reads Calico."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webhook.config import from_mapping
from webhook.core.admission import parse_review
from webhook.core.explain import explain, render_text
from webhook.core.facts import FactParams, enrich
from webhook.core.model import Mode, Verdict
from webhook.core.netpolicy import Direction, PeerType, Scope
from webhook.core.normalize import normalize
from webhook.core.posture import default_deny
from webhook.core.reviews import make_review
from webhook.core.selectors import Requirement
from webhook.offline.baseline import BaselineOptions, baseline_objects
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = BaselineOptions("team-a", "calico", allow_dns=True, allow_same_namespace=True)


def named(name: str) -> dict[str, Any]:
    return next(o for o in baseline_objects(EVERYTHING) if o["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))


def test_every_object_is_a_marked_calico_network_policy_of_the_namespace() -> None:
    for obj in baseline_objects(EVERYTHING):
        assert (obj["apiVersion"], obj["kind"]) == ("projectcalico.org/v3", "NetworkPolicy")
        assert obj["metadata"]["namespace"] == "team-a"
        assert obj["metadata"]["labels"]["netguard.io/baseline"] == "true"


def test_the_default_deny_selects_every_endpoint_isolates_both_ways_and_is_the_namespaces_default_deny() -> None:
    policy = normalize(named("default-deny"))
    assert policy.rules == () and (policy.tier, policy.priority) == ("default", 1000)
    (subject,) = policy.subjects
    assert subject.selector.empty and subject.namespaces.scope is Scope.OWN
    assert dict(subject.isolates) == {"ingress": True, "egress": True}
    assert default_deny("team-a", [policy], {"team-a": {}}) == {"ingress": True, "egress": True}
    assert default_deny("team-b", [policy], {"team-b": {}}) == {"ingress": False, "egress": False}


def test_the_dns_policy_allows_port_53_only_towards_the_kube_dns_pods() -> None:
    policy = normalize(named("allow-dns"))
    assert policy.priority == 100  # before the default deny (lower first)
    assert dict(policy.subjects[0].isolates) == {"ingress": False, "egress": True}
    assert {r.direction for r in policy.rules} == {Direction.EGRESS}
    for rule in policy.rules:
        pods = [p for p in rule.peers if p.type is PeerType.PODS]
        assert len(pods) == 1 and pods[0].namespaces is not None and pods[0].pods is not None
        assert (pods[0].namespaces.scope, pods[0].namespaces.names) == (Scope.NAMED, ("kube-system",))
        assert pods[0].pods.requirements == (Requirement("k8s-app", "In", ("kube-dns",)),)
        assert all(p.start == 53 and p.end in (None, 53) for p in rule.ports)
    assert sorted(p.protocol for r in policy.rules for p in r.ports) == ["TCP", "UDP"]


def test_the_same_namespace_policy_reaches_only_its_own_namespace() -> None:
    policy = normalize(named("allow-same-namespace"))
    assert {r.direction for r in policy.rules} == {Direction.INGRESS, Direction.EGRESS}
    for rule in policy.rules:
        pods = [p for p in rule.peers if p.type is PeerType.PODS]
        assert len(pods) == 1 and pods[0].namespaces is not None and pods[0].namespaces.scope is Scope.OWN


def test_the_platform_applies_it_with_no_enforce_or_warn_finding(pipeline: Pipeline) -> None:
    for obj in baseline_objects(EVERYTHING):
        review = make_review(obj, username="platform-admin", groups=["system:masters"])
        decision = pipeline.review(parse_review(review)).decision
        assert decision.verdict is Verdict.ALLOWED, decision.reason
        assert not decision.by_mode(Mode.ENFORCE) and not decision.by_mode(Mode.WARN)


def test_explain_speaks_calico() -> None:
    text = render_text([("team-a/default-deny", explain(enrich(normalize(named("default-deny")), FactParams())))])
    assert "isolated (types lists Ingress)" in text and "isolated (types lists Egress)" in text
    assert "Calico tier default, order 1000" in text and "not isolated" not in text
