"""Normalization: one model for three kinds, with the API's defaulting and semantics."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.netpolicy import Action, Direction, PeerType, Scope
from webhook.core.normalize import normalize
from webhook.core.shape import ShapeError


def k8s(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "team-a"}, "spec": spec}


def cnp(spec: dict[str, Any] | None = None, kind: str = "CiliumNetworkPolicy", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": {"name": "c", "namespace": "team-a"}}
    if spec is not None:
        obj["spec"] = spec
    obj.update(extra)
    return obj


def test_policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() -> None:
    only_ingress = normalize(k8s({"podSelector": {}, "ingress": [{}]}))
    assert dict(only_ingress.subjects[0].isolates) == {"ingress": True, "egress": False}
    both = normalize(k8s({"podSelector": {}, "egress": [{}]}))
    assert dict(both.subjects[0].isolates) == {"ingress": True, "egress": True}
    assert both.subjects[0].policy_types_explicit is False


def test_rules_of_a_direction_left_out_of_policy_types_have_no_effect() -> None:
    policy = normalize(k8s({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}))
    assert policy.rules[0].effective is False


def test_a_kubernetes_rule_without_peers_matches_every_peer_and_port() -> None:
    rule = normalize(k8s({"podSelector": {}, "egress": [{"to": [], "ports": []}]})).rules[0]
    assert rule.any_peer and rule.all_ports and rule.path == "spec.egress[0]"


def test_kubernetes_ports_default_to_tcp_and_keep_named_ports_and_ranges() -> None:
    rule = normalize(k8s({"podSelector": {}, "ingress": [{"ports": [
        {"port": 80}, {"port": "http", "protocol": "UDP"}, {"port": 1000, "endPort": 2000}, {"protocol": "SCTP"},
    ]}]})).rules[0]
    labels = [p.label() for p in rule.ports]
    assert labels == ["TCP/80", "UDP/http", "TCP/1000-2000", "SCTP/all ports"]
    assert rule.all_ports  # SCTP without a port is every SCTP port
    assert rule.ports[2].span == 1001


@pytest.mark.parametrize(("selector", "scope"), [
    ({}, Scope.ALL),
    ({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}, Scope.ALL),
    ({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["a"]}]}, Scope.ALL),
    ({"matchExpressions": [{"key": "nobody-sets-this", "operator": "DoesNotExist"}]}, Scope.ALL),
    ({"matchLabels": {"kubernetes.io/metadata.name": "db"}}, Scope.NAMED),
    ({"matchLabels": {"team": "db"}}, Scope.SELECTED),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, Scope.SELECTED),
])
def test_namespace_selectors_are_read_for_what_they_match(selector: dict[str, Any], scope: Scope) -> None:
    rule = normalize(k8s({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": selector}]}]})).rules[0]
    assert rule.peers[0].namespaces is not None
    assert rule.peers[0].namespaces.scope is scope


def test_a_pod_selector_alone_stays_in_the_policy_namespace() -> None:
    peer = normalize(k8s({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})).rules[0].peers[0]
    assert peer.type is PeerType.PODS and peer.namespaces is not None and peer.namespaces.scope is Scope.OWN


def test_cilium_empty_rules_match_nothing_but_still_select_the_endpoints() -> None:
    policy = normalize(cnp({"endpointSelector": {}, "egress": [{}]}))
    assert policy.rules[0].matches_nothing
    assert policy.subjects[0].isolates["egress"] is True


def test_cilium_port_only_rules_apply_to_every_peer() -> None:
    rule = normalize(cnp({"endpointSelector": {}, "egress": [
        {"toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]})).rules[0]
    assert rule.any_peer and not rule.all_ports and rule.ports[0].label() == "UDP/53"


def test_cilium_port_zero_and_protocol_any_mean_every_port() -> None:
    rule = normalize(cnp({"endpointSelector": {}, "egress": [
        {"toEntities": ["world"], "toPorts": [{"ports": [{"port": "0", "protocol": "ANY"}]}]}]})).rules[0]
    assert rule.all_ports


def test_cilium_icmp_rules_are_not_all_ports() -> None:
    rule = normalize(cnp({"endpointSelector": {}, "egress": [
        {"toEntities": ["world"], "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]}]})).rules[0]
    assert not rule.all_ports


def test_cilium_endpoint_peers_default_to_the_policy_namespace_or_the_cluster() -> None:
    spec = {"endpointSelector": {}, "egress": [{"toEndpoints": [{}]}]}
    namespaced = normalize(cnp(spec)).rules[0].peers[0]
    clusterwide = normalize(cnp(spec, kind="CiliumClusterwideNetworkPolicy")).rules[0].peers[0]
    assert namespaced.namespaces is not None and namespaced.namespaces.scope is Scope.OWN
    assert clusterwide.namespaces is not None and clusterwide.namespaces.scope is Scope.ALL


@pytest.mark.parametrize(("labels", "scope"), [
    ({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system"}}, Scope.NAMED),
    ({"matchLabels": {"io.kubernetes.pod.namespace": "db"}}, Scope.NAMED),
    ({"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}]}, Scope.ALL),
    ({"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["x"]}]},
     Scope.ALL),
    ({"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "a"}}, Scope.SELECTED),
    ({"matchLabels": {"app": "web"}}, Scope.OWN),
])
def test_cilium_namespace_labels_decide_the_peer_scope(labels: dict[str, Any], scope: Scope) -> None:
    peer = normalize(cnp({"endpointSelector": {}, "ingress": [{"fromEndpoints": [labels]}]})).rules[0].peers[0]
    assert peer.namespaces is not None and peer.namespaces.scope is scope


def test_cilium_specs_lists_give_one_subject_each_with_their_paths() -> None:
    policy = normalize(cnp(None, specs=[
        {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]},
        {"nodeSelector": {}, "ingressDeny": [{"fromEntities": ["world"]}], "enableDefaultDeny": {"ingress": False}},
    ]))
    assert [s.path for s in policy.subjects] == ["specs[0]", "specs[1]"]
    assert [r.path for r in policy.rules] == ["specs[0].egress[0]", "specs[1].ingressDeny[0]"]
    assert policy.rules[1].action is Action.DENY and policy.rules[1].direction is Direction.INGRESS
    assert policy.subjects[1].selects == "nodes"
    assert policy.subjects[1].isolates["ingress"] is False
    assert policy.subjects[1].default_deny_explicit["ingress"] is False


def test_cilium_peers_of_every_type_are_classified() -> None:
    rule = normalize(cnp({"endpointSelector": {}, "egress": [{
        "toCIDR": ["10.0.0.1"], "toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}],
        "toEntities": ["kube-apiserver"], "toFQDNs": [{"matchPattern": "*.Example.com"}],
        "toServices": [{"k8sService": {"serviceName": "db", "namespace": "data"}}],
        "toGroups": [{"aws": {"securityGroupsIds": ["sg-1"]}}], "toNodes": [{}],
    }]})).rules[0]
    assert [p.type for p in rule.peers] == [PeerType.CIDR, PeerType.CIDR, PeerType.ENTITY, PeerType.FQDN,
                                            PeerType.SERVICE, PeerType.GROUP, PeerType.NODES]
    assert rule.peers[1].excepts == ("10.1.0.0/16",)
    assert rule.peers[3].fqdn_pattern == "*.example.com"
    assert rule.peers[4].namespaces is not None and rule.peers[4].namespaces.names == ("data",)


def test_l7_rules_are_collected() -> None:
    rule = normalize(cnp({"endpointSelector": {}, "egress": [{"toPorts": [{
        "ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}]})).rules[0]
    assert rule.l7 == {"dns": [{"matchPattern": "*"}]}


@pytest.mark.parametrize(("obj", "path"), [
    (k8s({"podSelector": {}, "egress": "all"}), "spec.egress"),
    (k8s({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": 5}}]}]}), "spec.egress[0].to[0].ipBlock.cidr"),
    (k8s({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}), "spec.ingress[0].ports[0].port"),
    (k8s({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 10}]}]}),
     "spec.ingress[0].ports[0].endPort"),
    (k8s({"podSelector": {}, "ingress": [{"from": [{}]}]}), "spec.ingress[0].from[0]"),
    (k8s({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Maybe"}]}}),
     "spec.podSelector.matchExpressions[0].operator"),
    (k8s({"podSelector": {}, "policyTypes": ["Sideways"]}), "spec.policyTypes[0]"),
    ({"kind": "NetworkPolicy", "metadata": {}}, "spec"),
    (cnp({"endpointSelector": {}, "nodeSelector": {}}), "spec"),
    (cnp({"endpointSelector": {}, "egress": [{"toEntities": ["everything"]}]}), "spec.egress[0].toEntities[0]"),
    (cnp({"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "HTTP"}]}]}]}),
     "spec.egress[0].toPorts[0].ports[0].protocol"),
    (cnp({"endpointSelector": {}, "enableDefaultDeny": {"egress": "no"}}), "spec.enableDefaultDeny.egress"),
    (cnp(None), "spec"),
    ({"kind": "Pod"}, "kind"),
])
def test_malformed_objects_raise_a_shape_error_naming_the_field(obj: dict[str, Any], path: str) -> None:
    with pytest.raises(ShapeError) as err:
        normalize(obj)
    assert err.value.path == path


def test_selector_operators_are_read_case_insensitively_as_cilium_examples_write_them() -> None:
    peer = normalize(cnp({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchExpressions": [
        {"key": "k8s:io.kubernetes.pod.namespace", "operator": "in", "values": ["prod"]}]}]}]})).rules[0].peers[0]
    assert peer.namespaces is not None and peer.namespaces.scope is Scope.NAMED
    assert peer.namespaces.names == ("prod",)
