"""The Cilium policy language (pkg/policy/api.Rule) that both Cilium kinds write their spec in.

CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy carry the same rules (`spec`, or a list in `specs`);
they differ only in where an endpoint selector without a namespace key reaches: the policy's namespace, or
the whole cluster. Their kind modules call `subjects_and_rules` with that difference.

Semantics relied on: https://docs.cilium.io/en/stable/security/policy/language/ . An empty rule `{}` selects
the endpoints (and so puts them in default deny) but allows nothing; a rule with only toPorts allows every
peer on those ports; an empty endpoint selector in to/fromEndpoints means every endpoint of the policy's
namespace (CiliumNetworkPolicy) or of the cluster (CiliumClusterwideNetworkPolicy). enableDefaultDeny
defaults to true for each direction that has rules (Rule API reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.deadline import check as check_deadline
from webhook.core.identities import EVERY_RESERVED_ENTITY, endpoint_reach, has_reserved_key
from webhook.core.netpolicy import (
    Action,
    Direction,
    NamespaceScope,
    Peer,
    PeerType,
    PortRange,
    Rule,
    Scope,
    Subject,
)
from webhook.core.normalize import namespace_scope, port_range
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, Selector, parse_selector
from webhook.core.shape import (
    ShapeError,
    expect_list,
    expect_mapping,
    expect_str,
    optional_list,
    optional_mapping,
    optional_str,
)

CILIUM_PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "ANY", "VRRP", "IGMP")
CILIUM_ENTITIES = frozenset({"all", "world", "world-ipv4", "world-ipv6", "cluster", "host", "remote-node",
                             "kube-apiserver", "health", "init", "ingress", "unmanaged", "none"})

_PEER_FIELDS = {
    Direction.INGRESS: ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes", "fromGroups",
                        "fromRequires"),
    Direction.EGRESS: ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toFQDNs", "toServices", "toGroups",
                       "toNodes", "toRequires"),
}


def subjects_and_rules(obj: Mapping[str, Any], namespace: str,
                       clusterwide: bool) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    """Each entry of `spec` and `specs` as a subject with its rules (allow and deny, both directions)."""
    specs: list[tuple[str, Mapping[str, Any]]] = []
    if obj.get("spec") is not None:
        specs.append(("spec", expect_mapping(obj["spec"], "spec")))
    for i, item in enumerate(optional_list(obj, "specs", "")):
        specs.append((f"specs[{i}]", expect_mapping(item, f"specs[{i}]")))
    if not specs:
        raise ShapeError("spec", "is required (or a non-empty specs list)")
    subjects: list[Subject] = []
    rules: list[Rule] = []
    for index, (path, spec) in enumerate(specs):
        subject, spec_rules = _spec(spec, path, index, namespace, clusterwide)
        subjects.append(subject)
        rules.extend(spec_rules)
    return tuple(subjects), tuple(rules)


def _spec(spec: Mapping[str, Any], path: str, index: int, namespace: str,
                 clusterwide: bool) -> tuple[Subject, list[Rule]]:
    has_endpoint = spec.get("endpointSelector") is not None
    has_node = spec.get("nodeSelector") is not None
    if has_endpoint == has_node:
        raise ShapeError(path, "must set exactly one of endpointSelector and nodeSelector")
    key = "endpointSelector" if has_endpoint else "nodeSelector"
    selector = parse_selector(spec[key], f"{path}.{key}")
    if has_node:
        scope = NamespaceScope(Scope.ALL)
    else:
        scope = namespace_scope(selector, CILIUM_NAMESPACE_LABEL, _unkeyed(clusterwide))
    sections = {
        (Direction.INGRESS, Action.ALLOW): optional_list(spec, "ingress", path),
        (Direction.INGRESS, Action.DENY): optional_list(spec, "ingressDeny", path),
        (Direction.EGRESS, Action.ALLOW): optional_list(spec, "egress", path),
        (Direction.EGRESS, Action.DENY): optional_list(spec, "egressDeny", path),
    }
    default_deny = optional_mapping(spec, "enableDefaultDeny", path)
    explicit: dict[str, bool | None] = {}
    isolates: dict[str, bool] = {}
    for direction in Direction:
        value = default_deny.get(direction.value)
        if value is not None and not isinstance(value, bool):
            raise ShapeError(f"{path}.enableDefaultDeny.{direction.value}", "must be true or false")
        explicit[direction.value] = value
        has_rules = bool(sections[(direction, Action.ALLOW)] or sections[(direction, Action.DENY)])
        isolates[direction.value] = has_rules if value is None else (value and has_rules)
    subject = Subject(index=index, path=path, selector_path=f"{path}.{key}", selects="nodes" if has_node else "pods",
                      selector=selector, namespaces=scope, isolates=isolates, default_deny_explicit=explicit)
    rules = []
    for (direction, action), items in sections.items():
        field_name = direction.value + ("Deny" if action is Action.DENY else "")
        for i, item in enumerate(items):
            check_deadline("normalization")
            rules.append(_rule(item, f"{path}.{field_name}[{i}]", index, direction, action, namespace,
                                      clusterwide))
    return subject, rules


def _rule(value: Any, path: str, subject: int, direction: Direction, action: Action, namespace: str,
                 clusterwide: bool) -> Rule:
    rule = expect_mapping(value, path)
    peers: list[Peer] = []
    for field_name in _PEER_FIELDS[direction]:
        listed = rule.get(field_name)  # most rules set one or two of the nine fields: look only at those
        if listed is None:
            continue
        for j, item in enumerate(expect_list(listed, f"{path}.{field_name}")):
            peers.extend(_peer(field_name, item, f"{path}.{field_name}[{j}]", namespace, clusterwide))
    # fromRequires/toRequires only narrow other selectors; they never grant anything alone.
    granting = [p for p in peers if not p.raw.get("requires")]
    ports: list[PortRange] = []
    l7: dict[str, Any] = {}
    port_key = "toPorts"
    for j, item in enumerate(optional_list(rule, port_key, path)):
        where = f"{path}.{port_key}[{j}]"
        entry = expect_mapping(item, where)
        entry_ports = optional_list(entry, "ports", where)
        if not entry_ports:
            ports.append(PortRange(protocol="ANY", path=where))
        for k, p in enumerate(entry_ports):
            pp = expect_mapping(p, f"{where}.ports[{k}]")
            protocol = optional_str(pp, "protocol", f"{where}.ports[{k}]", "ANY").upper()
            if protocol not in CILIUM_PROTOCOLS:
                raise ShapeError(f"{where}.ports[{k}].protocol",
                                 f"must be one of {', '.join(CILIUM_PROTOCOLS)}, got {protocol!r}")
            ports.append(port_range(protocol, pp.get("port"), pp.get("endPort"), f"{where}.ports[{k}]", cilium=True))
        rules_l7 = optional_mapping(entry, "rules", where)
        for proto, items in rules_l7.items():
            if isinstance(items, list):
                l7.setdefault(str(proto), []).extend(items)
        if entry.get("serverNames") is not None:
            l7.setdefault("serverNames", []).extend(optional_list(entry, "serverNames", where))
    icmp = tuple(expect_mapping(x, f"{path}.icmps[{k}]") for k, x in enumerate(optional_list(rule, "icmps", path)))
    no_l3 = not granting
    return Rule(
        path=path, subject=subject, direction=direction, action=action, peers=tuple(peers),
        # A rule with ports (or ICMP) but no L3 peer applies to every peer on those ports.
        any_peer=no_l3 and bool(ports or icmp), ports=tuple(ports), icmp=icmp, l7=l7,
        matches_nothing=no_l3 and not ports and not icmp,
    )


def _endpoint_peers(selector: Selector, path: str, namespace: str, clusterwide: bool) -> list[Peer]:
    """A to/fromEndpoints selector as the peers Cilium matches with it: pods (scoped as Cilium scopes
    them) and the reserved identities a `reserved:` key or an unrequired namespace key lets in."""
    reach = endpoint_reach(selector, namespace, clusterwide)
    via = f"written as an endpoint selector; {reach.unscoped}" if reach.unscoped else ""
    if set(reach.entities) == EVERY_RESERVED_ENTITY and reach.pods is not None and reach.pods.without(
            CILIUM_NAMESPACE_LABEL).empty and not reach.pods.keyed(CILIUM_NAMESPACE_LABEL):
        return [Peer(path=path, type=PeerType.ENTITY, entity="all", via=via)]
    peers = []
    if reach.pods is not None:
        if has_reserved_key(selector):
            scope = namespace_scope(reach.pods, CILIUM_NAMESPACE_LABEL, Scope.ALL)
        else:
            scope = namespace_scope(selector, CILIUM_NAMESPACE_LABEL, _unkeyed(clusterwide))
        peers.append(Peer(path=path, type=PeerType.PODS, namespaces=scope,
                          pods=reach.pods.without(CILIUM_NAMESPACE_LABEL), via=via))
    peers.extend(Peer(path=path, type=PeerType.ENTITY, entity=entity, via=via) for entity in reach.entities)
    if not peers:  # a selector no endpoint can meet still restricts the rule: it grants nothing
        peers.append(Peer(path=path, type=PeerType.PODS, namespaces=NamespaceScope(Scope.NAMED),
                          pods=selector, raw={"matches_nothing": True}))
    return peers


def _cidr_group_peer(entry: Mapping[str, Any], path: str, excepts: tuple[str, ...]) -> Peer:
    """A toCIDRSet entry naming CiliumCIDRGroups instead of a CIDR: resolved against the cluster view
    (webhook/core/cidr_groups.py), or reported as not judgeable without it."""
    if entry.get("cidrGroupRef") is not None:
        name = expect_str(entry["cidrGroupRef"], f"{path}.cidrGroupRef")
        return Peer(path=path, type=PeerType.GROUP, excepts=excepts, raw={"cidrGroup": name, "cidrGroupRef": name})
    if entry.get("cidrGroupSelector") is not None:
        selector = parse_selector(entry["cidrGroupSelector"], f"{path}.cidrGroupSelector")
        if selector.empty:
            # Cilium turns the group selector into an endpoint selector; an empty one selects every
            # identity. Read as the whole outside world (the reading that allows more).
            return Peer(path=path, type=PeerType.ENTITY, entity="world",
                        via="an empty cidrGroupSelector, which Cilium does not limit to CIDR groups")
        labels = ", ".join(f"{r.key} {r.operator} {','.join(r.values)}".strip() for r in selector.requirements)
        return Peer(path=path, type=PeerType.GROUP, excepts=excepts,
                    raw={"cidrGroup": f"selected by ({labels})",
                         "cidrGroupSelector": dict(expect_mapping(entry["cidrGroupSelector"], path))})
    raise ShapeError(path, "must set cidr, cidrGroupRef or cidrGroupSelector")


def _unkeyed(clusterwide: bool) -> Scope:
    return Scope.ALL if clusterwide else Scope.OWN


def _peer(field_name: str, item: Any, path: str, namespace: str, clusterwide: bool) -> list[Peer]:
    if field_name in ("fromEndpoints", "toEndpoints"):
        return _endpoint_peers(parse_selector(item, path), path, namespace, clusterwide)
    if field_name in ("fromRequires", "toRequires"):
        parse_selector(item, path)
        return [Peer(path=path, type=PeerType.PODS, namespaces=NamespaceScope(Scope.SELECTED),
                     raw={"requires": True})]
    if field_name in ("fromCIDR", "toCIDR"):
        return [Peer(path=path, type=PeerType.CIDR, cidr=expect_str(item, path))]
    if field_name in ("fromCIDRSet", "toCIDRSet"):
        entry = expect_mapping(item, path)
        excepts = tuple(expect_str(e, f"{path}.except[{k}]")
                        for k, e in enumerate(optional_list(entry, "except", path)))
        if entry.get("cidr") is None:
            return [_cidr_group_peer(entry, path, excepts)]
        return [Peer(path=path, type=PeerType.CIDR, cidr=expect_str(entry["cidr"], f"{path}.cidr"),
                     excepts=excepts)]
    if field_name in ("fromEntities", "toEntities"):
        entity = expect_str(item, path).lower()
        if entity not in CILIUM_ENTITIES:
            raise ShapeError(path, f"unknown entity {entity!r}; one of {', '.join(sorted(CILIUM_ENTITIES))}")
        return [Peer(path=path, type=PeerType.ENTITY, entity=entity)]
    if field_name == "toFQDNs":
        entry = expect_mapping(item, path)
        name = optional_str(entry, "matchName", path)
        pattern = optional_str(entry, "matchPattern", path)
        if not name and not pattern:
            raise ShapeError(path, "must set matchName or matchPattern")
        return [Peer(path=path, type=PeerType.FQDN, fqdn_name=name.lower(), fqdn_pattern=pattern.lower())]
    if field_name == "toServices":
        entry = expect_mapping(item, path)
        ref = optional_mapping(entry, "k8sService", path)
        if ref:
            ns = optional_str(ref, "namespace", f"{path}.k8sService")
            scope = NamespaceScope(Scope.NAMED, names=(ns,)) if ns else NamespaceScope(Scope.OWN)
            return [Peer(path=path, type=PeerType.SERVICE, namespaces=scope,
                         service=optional_str(ref, "serviceName", f"{path}.k8sService"))]
        if entry.get("k8sServiceSelector") is None:
            # Neither k8sService nor k8sServiceSelector: Cilium matches no service with it.
            return [Peer(path=path, type=PeerType.SERVICE, namespaces=NamespaceScope(Scope.NAMED), service="",
                         raw={"matches_nothing": True})]
        sel = optional_mapping(entry, "k8sServiceSelector", path)
        ns = optional_str(sel, "namespace", f"{path}.k8sServiceSelector")
        scope = NamespaceScope(Scope.NAMED, names=(ns,)) if ns else NamespaceScope(Scope.OWN)
        parse_selector(sel.get("selector"), f"{path}.k8sServiceSelector.selector")
        return [Peer(path=path, type=PeerType.SERVICE, namespaces=scope, service="(selector)",
                     raw={"selector": dict(optional_mapping(sel, "selector", path))})]
    if field_name in ("fromNodes", "toNodes"):
        selector = parse_selector(item, path)
        return [Peer(path=path, type=PeerType.NODES, raw={"all": selector.empty}, pods=selector)]
    # fromGroups / toGroups
    return [Peer(path=path, type=PeerType.GROUP, raw=dict(expect_mapping(item, path)))]
