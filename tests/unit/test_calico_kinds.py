"""Calico's NetworkPolicy and GlobalNetworkPolicy (webhook/kinds/calico*.py) read into the normalized model."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.calico_selectors import NOTHING
from webhook.core.netpolicy import Action, Direction, Flavor, PeerType, Scope
from webhook.core.normalize import normalize
from webhook.core.selectors import Requirement, Selector
from webhook.core.shape import ShapeError


def np(spec: dict[str, Any], kind: str = "NetworkPolicy") -> Any:
    meta = {"name": "p", "namespace": "team-a"}
    return normalize({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec})


def gnp(spec: dict[str, Any]) -> Any:
    return np(spec, "GlobalNetworkPolicy")


@pytest.mark.parametrize(("spec", "ingress", "egress"), [
    ({}, True, False),
    ({"ingress": [{"action": "Allow"}]}, True, False),
    ({"egress": [{"action": "Allow"}]}, False, True),
    ({"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}, True, True),
    ({"types": ["Egress"], "ingress": [{"action": "Allow"}]}, False, True),
])
def test_types_default_as_calico_defaults_them(spec: dict[str, Any], ingress: bool, egress: bool) -> None:
    subject = np(spec).subjects[0]
    assert dict(subject.isolates) == {"ingress": ingress, "egress": egress}
    assert subject.policy_types_explicit == ("types" in spec)


def test_kind_tier_order_and_actions() -> None:
    policy = np({"tier": "security", "order": 10, "egress": [
        {"action": "Log"}, {"action": "Deny", "destination": {"nets": ["10.0.0.0/8"]}}, {"action": "Pass"},
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}]})
    assert (policy.kind, policy.flavor, policy.tier, policy.priority) == (
        "NetworkPolicy.projectcalico.org", Flavor.CALICO, "security", 10.0)
    # Log allows and denies nothing: no rule of the model; the paths of the others are kept.
    assert [(r.path, r.action) for r in policy.rules] == [
        ("spec.egress[1]", Action.DENY), ("spec.egress[2]", Action.PASS), ("spec.egress[3]", Action.ALLOW)]
    assert np({}).tier == "default" and np({}).priority is None
    cluster = gnp({})
    assert (cluster.kind, cluster.clusterwide, cluster.namespace) == ("GlobalNetworkPolicy", True, "")


def test_a_side_without_criteria_matches_everything_and_not_nets_opens_the_rest() -> None:
    rules = np({"egress": [{"action": "Allow"},
                           {"action": "Allow", "destination": {"notNets": ["10.0.0.0/8", "fd00::/8"]}},
                           {"action": "Allow", "destination": {"notSelector": "app == 'db'"}},
                           {"action": "Allow",
                            "destination": {"nets": ["0.0.0.0/0"], "notNets": ["10.0.0.0/8"]}}]}).rules
    assert rules[0].any_peer and not rules[0].peers and not rules[0].ports
    assert [(p.cidr, p.excepts) for p in rules[1].peers] == [("0.0.0.0/0", ("10.0.0.0/8",)), ("::/0", ("fd00::/8",))]
    # notNets of one family: felix drops the rule for the other, so it opens that family only.
    only_v4 = np({"egress": [{"action": "Allow", "destination": {"notNets": ["10.0.0.0/8"]}}]}).rules[0]
    assert [(p.cidr, p.excepts) for p in only_v4.peers] == [("0.0.0.0/0", ("10.0.0.0/8",))]
    assert rules[2].any_peer  # every peer but the db pods: the internet included
    assert [(p.path, p.cidr, p.excepts) for p in rules[3].peers] == [
        ("spec.egress[3].destination.nets[0]", "0.0.0.0/0", ("10.0.0.0/8",))]


def test_peer_selectors_namespaces_and_network_sets() -> None:
    rules = np({"ingress": [
        {"action": "Allow", "source": {"selector": "app == 'web'"}},
        {"action": "Allow", "source": {"selector": "app == 'web'", "namespaceSelector": "all()"}},
        {"action": "Allow", "source": {"namespaceSelector": "projectcalico.org/name == 'mon'"}},
        {"action": "Allow", "source": {"selector": "role == 'lb'", "namespaceSelector": "global()"}}]}).rules
    pods, sets = rules[0].peers
    assert pods.type is PeerType.PODS and pods.namespaces is not None and pods.namespaces.scope is Scope.OWN
    assert pods.pods == Selector((Requirement("app", "In", ("web",)),))
    assert sets.type is PeerType.GROUP and sets.raw == {"calicoNetworkSets": "app == 'web'", "global": False,
                                                        "namespaces": "own", "namespace": "team-a",
                                                        "namespaceSelector": None}
    assert rules[1].peers[0].namespaces.scope is Scope.ALL
    assert rules[2].peers[0].namespaces.names == ("mon",)
    assert [p.type for p in rules[3].peers] == [PeerType.GROUP]  # host endpoints and GlobalNetworkSets only
    cluster = gnp({"ingress": [{"action": "Allow", "source": {"selector": "app == 'web'"}}]}).rules[0]
    assert cluster.peers[0].namespaces.scope is Scope.ALL and cluster.peers[1].raw["global"]


def test_ports_protocols_and_not_ports() -> None:
    rule = np({"egress": [{"action": "Allow", "protocol": "TCP",
                           "destination": {"ports": [80, "8000:8080", "https"]}}]}).rules[0]
    assert [p.label() for p in rule.ports] == ["TCP/80", "TCP/8000-8080", "TCP/https"]
    rule = np({"egress": [{"action": "Allow", "protocol": 17, "destination": {"notPorts": [53, "100:200"]}}]}).rules[0]
    assert [p.label() for p in rule.ports] == ["UDP/1-52", "UDP/54-99", "UDP/201-65535"]
    rule = np({"egress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]}).rules[0]
    assert [p.label() for p in rule.ports] == ["ICMP"] and rule.icmp == ({"type": 8},)
    assert np({"egress": [{"action": "Allow", "protocol": "UDP"}]}).rules[0].all_ports


def test_services_service_accounts_and_domains() -> None:
    rules = np({"egress": [
        {"action": "Allow", "destination": {"services": {"name": "kubernetes", "namespace": "default"}}},
        {"action": "Allow", "destination": {"serviceAccounts": {"names": ["api"]}}},
        {"action": "Allow", "destination": {"domains": ["*.example.com", "api.example.org"]}}]}).rules
    assert rules[0].peers[0].type is PeerType.SERVICE and rules[0].peers[0].service == "default/kubernetes"
    assert rules[1].peers[0].pods == Selector((Requirement("projectcalico.org/serviceaccount", "In", ("api",)),))
    assert [(p.fqdn_pattern, p.fqdn_name) for p in rules[2].peers] == [("*.example.com", ""), ("", "api.example.org")]


def test_the_subject_is_what_the_selector_surely_selects() -> None:
    assert np({"selector": "all()"}).subjects[0].selector.empty
    assert np({"selector": "app == 'a' || tier == 'b'"}).subjects[0].selector == Selector(
        (Requirement("app", "In", ("a",)),))
    assert np({"selector": "app contains 'x'"}).subjects[0].selector == NOTHING
    accounts = np({"serviceAccountSelector": "role == 'admin'"}).subjects[0].selector
    assert accounts == Selector((Requirement("pcsa.role", "In", ("admin",)),))
    cluster = gnp({"selector": "projectcalico.org/namespace == 'a'"}).subjects[0]
    assert cluster.namespaces.scope is Scope.NAMED and cluster.namespaces.names == ("a",)
    assert gnp({"namespaceSelector": "team == 'x'"}).subjects[0].namespaces.scope is Scope.SELECTED
    assert gnp({}).subjects[0].namespaces.scope is Scope.ALL


@pytest.mark.parametrize(("spec", "path"), [
    ({"egress": [{}]}, "spec.egress[0].action"),
    ({"egress": [{"action": "Accept"}]}, "spec.egress[0].action"),
    ({"egress": [{"action": "Allow", "destination": {"ports": [80]}}]}, "spec.egress[0].destination.ports[0]"),
    ({"egress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["9:1"]}}]},
     "spec.egress[0].destination.ports[0]"),
    ({"egress": [{"action": "Allow", "protocol": "XTP"}]}, "spec.egress[0].protocol"),
    ({"types": ["Both"]}, "spec.types[0]"),
    ({"selector": "app === 'x'"}, "spec.selector"),
    ({"ingress": [{"action": "Allow", "source": {"selector": "has(a"}}]}, "spec.ingress[0].source.selector"),
    ({"order": "first"}, "spec.order"),
])
def test_malformed_fields_are_named(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(ShapeError) as caught:
        np(spec)
    assert caught.value.path == path


def test_direction_and_effective() -> None:
    rule = np({"types": ["Ingress"], "egress": [{"action": "Allow"}]}).rules[0]
    assert rule.direction is Direction.EGRESS and not rule.effective


def test_a_hostile_selector_is_an_input_error_at_its_field() -> None:
    with pytest.raises(ShapeError) as caught:
        np({"egress": [{"action": "Allow", "destination": {"selector": "a == 'x' && " * 100_000 + "all()"}}]})
    assert caught.value.path == "spec.egress[0].destination.selector"
