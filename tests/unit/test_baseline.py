"""`netguard baseline`: the recommended policies for a namespace, checked by netguard's own pipeline."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.config import from_mapping
from webhook.core.admission import parse_review
from webhook.core.model import Decision, Mode, Verdict
from webhook.core.netpolicy import Direction, PeerType, Rule, Scope
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.core.selectors import Requirement
from webhook.offline.baseline import BaselineOptions, baseline_objects, render_yaml
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
FLAVORS = ("kubernetes", "cilium")
KINDS = {"kubernetes": ("networking.k8s.io/v1", "NetworkPolicy"), "cilium": ("cilium.io/v2", "CiliumNetworkPolicy")}
COMBINATIONS = [
    BaselineOptions("team-a", flavor, allow_dns=dns, allow_same_namespace=same)
    for flavor, dns, same in itertools.product(FLAVORS, (False, True), (False, True))
]


def option_id(options: BaselineOptions) -> str:
    return f"{options.flavor}-dns={options.allow_dns}-same={options.allow_same_namespace}"


def all_options(flavor: str) -> BaselineOptions:
    return BaselineOptions("team-a", flavor, allow_dns=True, allow_same_namespace=True)


def named(options: BaselineOptions, name: str) -> dict[str, Any]:
    return next(o for o in baseline_objects(options) if o["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))


def review(p: Pipeline, obj: dict[str, Any], username: str, groups: list[str]) -> Decision:
    return p.review(parse_review(make_review(obj, username=username, groups=groups))).decision


def allow_rules(obj: dict[str, Any]) -> list[Rule]:
    return [r for r in normalize(obj).rules if not r.matches_nothing]


@pytest.mark.parametrize("options", COMBINATIONS, ids=option_id)
def test_the_options_choose_which_policies_are_produced(options: BaselineOptions) -> None:
    names = [o["metadata"]["name"] for o in baseline_objects(options)]
    expected = (["default-deny"] + ["allow-dns"] * options.allow_dns
                + ["allow-same-namespace"] * options.allow_same_namespace)
    assert names == expected


@pytest.mark.parametrize("options", COMBINATIONS, ids=option_id)
def test_every_object_is_a_marked_described_policy_of_the_chosen_flavor(options: BaselineOptions) -> None:
    for obj in baseline_objects(options):
        assert (obj["apiVersion"], obj["kind"]) == KINDS[options.flavor]
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["labels"] == {"netguard.io/baseline": "true", "app.kubernetes.io/managed-by": "netguard"}
        assert "team-a" in meta["annotations"]["netguard.io/description"]


@pytest.mark.parametrize("options", COMBINATIONS, ids=option_id)
def test_the_platform_team_applies_the_baseline_without_any_finding(pipeline: Pipeline,
                                                                     options: BaselineOptions) -> None:
    for obj in baseline_objects(options):
        decision = review(pipeline, obj, "platform-admin", ["system:masters"])
        assert decision.verdict is Verdict.ALLOWED, decision.reason
        assert not decision.by_mode(Mode.ENFORCE) and not decision.by_mode(Mode.WARN)
        assert [f.short() for f in decision.findings] == []  # audit findings (explicit-policy-types) too


@pytest.mark.parametrize("options", COMBINATIONS, ids=option_id)
def test_a_team_member_creating_the_baseline_is_denied_by_protect_baseline_alone(pipeline: Pipeline,
                                                                                  options: BaselineOptions) -> None:
    for obj in baseline_objects(options):
        decision = review(pipeline, obj, "alice", ["system:authenticated", "team-a-devs"])
        assert decision.verdict is Verdict.DENIED
        assert [(f.finding.rule, f.finding.path, f.mode) for f in decision.findings] == [
            ("protect-baseline", "metadata", Mode.ENFORCE)]
        assert "netguard.io/baseline=true" in decision.findings[0].finding.message


@pytest.mark.parametrize("options", COMBINATIONS, ids=option_id)
def test_the_rendered_yaml_reads_back_as_the_same_objects(options: BaselineOptions) -> None:
    objects = baseline_objects(options)
    text = render_yaml(objects)
    assert text.startswith("# netguard baseline for namespace team-a")
    assert "protect-baseline" in text.split("---", 1)[0]
    assert text.count("\n---\n") == len(objects)
    assert [d for d in yaml.safe_load_all(text) if d is not None] == objects


@pytest.mark.parametrize("flavor", FLAVORS)
def test_default_deny_isolates_both_directions_and_allows_nothing(flavor: str) -> None:
    policy = normalize(named(BaselineOptions("team-a", flavor), "default-deny"))
    assert len(policy.subjects) == 1
    assert dict(policy.subjects[0].isolates) == {"ingress": True, "egress": True}
    assert policy.subjects[0].selector.empty and policy.subjects[0].namespaces.scope is Scope.OWN
    if flavor == "kubernetes":
        assert policy.rules == () and policy.subjects[0].policy_types_explicit
    else:
        assert {r.direction for r in policy.rules} == {Direction.INGRESS, Direction.EGRESS}
        assert all(r.matches_nothing for r in policy.rules)
        assert dict(policy.subjects[0].default_deny_explicit) == {"ingress": True, "egress": True}


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_dns_policy_allows_only_port_53_towards_the_kube_dns_pods(flavor: str) -> None:
    obj = named(all_options(flavor), "allow-dns")
    policy = normalize(obj)
    assert dict(policy.subjects[0].isolates) == {"ingress": False, "egress": True}
    rules = allow_rules(obj)
    assert len(rules) == 1 and rules[0].direction is Direction.EGRESS and not rules[0].any_peer
    for peer in rules[0].peers:
        assert peer.type is PeerType.PODS and peer.namespaces is not None and peer.pods is not None
        assert (peer.namespaces.scope, peer.namespaces.names) == (Scope.NAMED, ("kube-system",))
        assert peer.pods.requirements == (Requirement("k8s-app", "In", ("kube-dns",)),)
    ports = rules[0].ports
    assert ports and all(p.start == 53 and p.end in (None, 53) and not p.name for p in ports)
    expected = {"UDP", "TCP"} if flavor == "kubernetes" else {"ANY"}
    assert {p.protocol for p in ports} == expected
    assert any(p.covers("UDP", 53) for p in ports) and any(p.covers("TCP", 53) for p in ports)
    assert not any(p.covers("TCP", 54) or p.covers("UDP", 5353) for p in ports)


def test_the_cilium_dns_policy_routes_every_lookup_through_the_dns_proxy() -> None:
    rules = allow_rules(named(all_options("cilium"), "allow-dns"))
    assert dict(rules[0].l7) == {"dns": [{"matchPattern": "*"}]}


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_same_namespace_policy_reaches_only_pods_of_its_own_namespace_both_ways(flavor: str) -> None:
    obj = named(all_options(flavor), "allow-same-namespace")
    assert dict(normalize(obj).subjects[0].isolates) == {"ingress": True, "egress": True}
    rules = allow_rules(obj)
    assert {r.direction for r in rules} == {Direction.INGRESS, Direction.EGRESS} and len(rules) == 2
    for rule in rules:
        assert not rule.any_peer and rule.all_ports and len(rule.peers) == 1
        peer = rule.peers[0]
        assert peer.type is PeerType.PODS and peer.namespaces is not None and peer.pods is not None
        assert peer.namespaces.scope is Scope.OWN and peer.pods.empty


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_custom_dns_namespace_and_labels_are_used_for_the_dns_peer(flavor: str) -> None:
    options = BaselineOptions("team-a", flavor, allow_dns=True, dns_namespace="dns",
                              dns_labels={"app.kubernetes.io/name": "coredns"})
    (rule,) = allow_rules(named(options, "allow-dns"))
    peer = rule.peers[0]
    assert peer.namespaces is not None and peer.namespaces.names == ("dns",)
    assert peer.pods is not None and peer.pods.requirements == (
        Requirement("app.kubernetes.io/name", "In", ("coredns",)),)


@pytest.mark.parametrize("namespace", ["", "Team-A", "team_a", "-team", "team-", "team.a", "a" * 64, "team a"])
def test_a_namespace_that_is_not_a_dns_1123_label_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace must be a DNS-1123 label"):
        baseline_objects(BaselineOptions(namespace))


def test_the_longest_valid_namespace_is_accepted() -> None:
    assert baseline_objects(BaselineOptions("a" * 63))[0]["metadata"]["namespace"] == "a" * 63


def test_an_unknown_flavor_is_refused() -> None:
    with pytest.raises(ValueError, match="flavor must be one of kubernetes, cilium"):
        baseline_objects(BaselineOptions("team-a", flavor="weave"))


def test_an_invalid_dns_namespace_or_empty_dns_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="DNS namespace must be a DNS-1123 label"):
        baseline_objects(BaselineOptions("team-a", allow_dns=True, dns_namespace="Kube_System"))
    with pytest.raises(ValueError, match="DNS labels must not be empty"):
        baseline_objects(BaselineOptions("team-a", allow_dns=True, dns_labels={}))
