"""Kubernetes NetworkPolicy (networking.k8s.io/v1): the kind, and its spec as subjects and rules.

Semantics relied on: https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the
NetworkPolicy API reference. A rule without `to`/`from` matches every peer; a rule without `ports` matches
every port; policyTypes defaults to Ingress, plus Egress when spec.egress is non-empty
(SetDefaults_NetworkPolicy); rules of a direction that policyTypes leaves out have no effect. A peer without
namespaceSelector is in the policy's own namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.deadline import check as check_deadline
from webhook.core.netpolicy import (
    Action,
    Direction,
    Flavor,
    NamespaceScope,
    Peer,
    PeerType,
    PortRange,
    Rule,
    Scope,
    Subject,
)
from webhook.core.normalize import listed_directions, namespace_scope, port_range
from webhook.core.selectors import NAMESPACE_NAME_LABEL, parse_selector
from webhook.core.shape import ShapeError, expect_mapping, expect_str, optional_list, optional_str
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind

K8S_PROTOCOLS = ("TCP", "UDP", "SCTP")


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    """spec.podSelector as the one subject, spec.ingress/egress as its allow rules."""
    if obj.get("spec") is None:
        raise ShapeError("spec", "is required")
    spec = expect_mapping(obj["spec"], "spec")
    selector = parse_selector(spec.get("podSelector"), "spec.podSelector")
    ingress = optional_list(spec, "ingress", "spec")
    egress = optional_list(spec, "egress", "spec")
    raw_types = optional_list(spec, "policyTypes", "spec")
    types = listed_directions(raw_types, "spec.policyTypes")
    if not raw_types:  # API defaulting (SetDefaults_NetworkPolicy)
        types = {"Ingress"} | ({"Egress"} if egress else set())
    subject = Subject(
        index=0, path="spec", selector_path="spec.podSelector", selects="pods", selector=selector,
        namespaces=NamespaceScope(Scope.OWN),
        isolates={"ingress": "Ingress" in types, "egress": "Egress" in types},
        default_deny_explicit={"ingress": None, "egress": None}, policy_types_explicit=bool(raw_types),
    )
    rules = []
    for direction, items, peer_key in ((Direction.INGRESS, ingress, "from"), (Direction.EGRESS, egress, "to")):
        for i, item in enumerate(items):
            check_deadline("normalization")
            path = f"spec.{direction.value}[{i}]"
            rule = expect_mapping(item, path)
            peers = tuple(_peer(p, f"{path}.{peer_key}[{j}]")
                          for j, p in enumerate(optional_list(rule, peer_key, path)))
            ports = tuple(_port(p, f"{path}.ports[{j}]") for j, p in enumerate(optional_list(rule, "ports", path)))
            rules.append(Rule(path=path, subject=0, direction=direction, action=Action.ALLOW, peers=peers,
                              any_peer=not peers, ports=ports,
                              effective=subject.isolates[direction.value]))
    return (subject,), tuple(rules)


def _peer(value: Any, path: str) -> Peer:
    peer = expect_mapping(value, path)
    if peer.get("ipBlock") is not None:
        if peer.get("podSelector") is not None or peer.get("namespaceSelector") is not None:
            raise ShapeError(path, "ipBlock cannot be combined with podSelector or namespaceSelector")
        block = expect_mapping(peer["ipBlock"], f"{path}.ipBlock")
        cidr = expect_str(block.get("cidr"), f"{path}.ipBlock.cidr")
        excepts = tuple(expect_str(e, f"{path}.ipBlock.except[{k}]")
                        for k, e in enumerate(optional_list(block, "except", f"{path}.ipBlock")))
        return Peer(path=path, type=PeerType.CIDR, cidr=cidr, excepts=excepts)
    if peer.get("podSelector") is None and peer.get("namespaceSelector") is None:
        raise ShapeError(path, "must set podSelector, namespaceSelector or ipBlock")
    pods = parse_selector(peer.get("podSelector"), f"{path}.podSelector")
    if peer.get("namespaceSelector") is None:
        scope = NamespaceScope(Scope.OWN)
    else:
        scope = namespace_scope(parse_selector(peer["namespaceSelector"], f"{path}.namespaceSelector"),
                                NAMESPACE_NAME_LABEL, unkeyed=None)
    return Peer(path=path, type=PeerType.PODS, namespaces=scope, pods=pods)


def _port(value: Any, path: str) -> PortRange:
    port = expect_mapping(value, path)
    protocol = optional_str(port, "protocol", path, "TCP").upper()
    if protocol not in K8S_PROTOCOLS:
        raise ShapeError(f"{path}.protocol", f"must be one of {', '.join(K8S_PROTOCOLS)}, got {protocol!r}")
    return port_range(protocol, port.get("port"), port.get("endPort"), path)


KIND = PolicyKind(
    gvk=GroupVersionKind("networking.k8s.io", "v1", "NetworkPolicy"),
    plural="networkpolicies",
    namespaced=True,
    optional_crd=False,  # built into every API server since Kubernetes 1.7 (networking.k8s.io/v1 since 1.8)
    project="Kubernetes",
    flavor=Flavor.KUBERNETES,
    normalizer=normalize_spec,
    phrasing=Phrasing(a="a NetworkPolicy", subjects_in="in the policy's namespace"),
    order=10,
)
