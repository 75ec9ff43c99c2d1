"""Raw NetworkPolicy / CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy -> NormalizedPolicy.

Pure: no I/O, no configuration. API defaulting is applied here (policyTypes, protocols,
Cilium enableDefaultDeny) because the CLI sees manifests before the API server defaults them.

Semantics relied on:
- Kubernetes: https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the
  NetworkPolicy API reference. A rule without `to`/`from` matches every peer; a rule without
  `ports` matches every port; policyTypes defaults to Ingress, plus Egress when spec.egress
  is non-empty; rules of a direction that policyTypes leaves out have no effect.
- Cilium: https://docs.cilium.io/en/stable/security/policy/language/ . An empty rule `{}`
  selects the endpoints (and so puts them in default deny) but allows nothing; a rule with
  only toPorts allows every peer on those ports; an empty endpoint selector in to/fromEndpoints
  means every endpoint of the policy's namespace (CiliumNetworkPolicy) or of the cluster
  (CiliumClusterwideNetworkPolicy). enableDefaultDeny defaults to true for each direction that
  has rules (Rule API reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from webhook.deadline import check as check_deadline
from webhook.identities import EVERY_RESERVED_ENTITY, endpoint_reach, has_reserved_key
from webhook.netpolicy import (
    Action,
    Direction,
    Flavor,
    NamespaceScope,
    NormalizedPolicy,
    Peer,
    PeerType,
    PortRange,
    Rule,
    Scope,
    Subject,
)
from webhook.ports import PortSyntaxError, is_service_name, parse_cilium_port
from webhook.selectors import (
    CILIUM_NAMESPACE_LABEL,
    CILIUM_NAMESPACE_LABELS_PREFIX,
    NAMESPACE_NAME_LABEL,
    Selector,
    parse_selector,
)
from webhook.shape import (
    ShapeError,
    expect_list,
    expect_mapping,
    expect_str,
    optional_list,
    optional_mapping,
    optional_str,
    type_name,
)

KUBERNETES_KINDS = {"NetworkPolicy"}
CILIUM_KINDS = {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}
K8S_PROTOCOLS = ("TCP", "UDP", "SCTP")
CILIUM_PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "ANY", "VRRP", "IGMP")
CILIUM_ENTITIES = frozenset({"all", "world", "world-ipv4", "world-ipv6", "cluster", "host", "remote-node",
                             "kube-apiserver", "health", "init", "ingress", "unmanaged", "none"})
NormalizationError = ShapeError


def normalize(obj: Mapping[str, Any]) -> NormalizedPolicy:
    """Normalize one policy object; ShapeError names the first malformed field."""
    kind = optional_str(obj, "kind", "")
    meta = optional_mapping(obj, "metadata", "")
    name = optional_str(meta, "name", "metadata")
    namespace = optional_str(meta, "namespace", "metadata")
    labels = _string_map(meta.get("labels"), "metadata.labels")
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    if kind in KUBERNETES_KINDS:
        subjects, rules = _kubernetes(obj)
        flavor = Flavor.KUBERNETES
    elif kind in CILIUM_KINDS:
        subjects, rules = _cilium(obj, namespace, clusterwide=kind == "CiliumClusterwideNetworkPolicy")
        flavor = Flavor.CILIUM
    else:
        raise ShapeError("kind", f"{kind!r} is not a NetworkPolicy, CiliumNetworkPolicy or "
                                 "CiliumClusterwideNetworkPolicy")
    return NormalizedPolicy(kind=kind, flavor=flavor, name=name,
                            namespace="" if kind == "CiliumClusterwideNetworkPolicy" else namespace,
                            clusterwide=kind == "CiliumClusterwideNetworkPolicy", labels=labels,
                            annotations=annotations, subjects=subjects, rules=rules)


def _string_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    out = {}
    for k, v in expect_mapping(value, path).items():
        out[str(k)] = expect_str(v, f"{path}.{k}")
    return out


# --- Kubernetes NetworkPolicy -------------------------------------------------------------

def _kubernetes(obj: Mapping[str, Any]) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    if obj.get("spec") is None:
        raise ShapeError("spec", "is required")
    spec = expect_mapping(obj["spec"], "spec")
    selector = parse_selector(spec.get("podSelector"), "spec.podSelector")
    ingress = optional_list(spec, "ingress", "spec")
    egress = optional_list(spec, "egress", "spec")
    raw_types = optional_list(spec, "policyTypes", "spec")
    types = set()
    for i, t in enumerate(raw_types):
        if t not in ("Ingress", "Egress"):
            raise ShapeError(f"spec.policyTypes[{i}]", f"must be Ingress or Egress, got {t!r}")
        types.add(t)
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
            peers = tuple(_k8s_peer(p, f"{path}.{peer_key}[{j}]")
                          for j, p in enumerate(optional_list(rule, peer_key, path)))
            ports = tuple(_k8s_port(p, f"{path}.ports[{j}]") for j, p in enumerate(optional_list(rule, "ports", path)))
            rules.append(Rule(path=path, subject=0, direction=direction, action=Action.ALLOW, peers=peers,
                              any_peer=not peers, ports=ports,
                              effective=subject.isolates[direction.value]))
    return (subject,), tuple(rules)


def _k8s_peer(value: Any, path: str) -> Peer:
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
        scope = _namespace_scope(parse_selector(peer["namespaceSelector"], f"{path}.namespaceSelector"),
                                 NAMESPACE_NAME_LABEL, unkeyed=None)
    return Peer(path=path, type=PeerType.PODS, namespaces=scope, pods=pods)


def _k8s_port(value: Any, path: str) -> PortRange:
    port = expect_mapping(value, path)
    protocol = optional_str(port, "protocol", path, "TCP").upper()
    if protocol not in K8S_PROTOCOLS:
        raise ShapeError(f"{path}.protocol", f"must be one of {', '.join(K8S_PROTOCOLS)}, got {protocol!r}")
    return _port_range(protocol, port.get("port"), port.get("endPort"), path)


def _port_range(protocol: str, raw_port: Any, raw_end: Any, path: str, *, cilium: bool = False) -> PortRange:
    """One port entry. Cilium reads port strings with Go's ParseUint(s, 0, 16) (ports.py), so "0x50"
    is port 80 there; Kubernetes takes a number or an IANA port name. Anything else is an input
    error naming the field, whatever the characters (fail closed, never a crash)."""
    if raw_port is None or raw_port == "" or raw_port == 0:
        # No port, or Cilium's port 0: every port of the protocol.
        return PortRange(protocol=protocol, path=path)
    if isinstance(raw_port, bool) or not isinstance(raw_port, (int, str)):
        shown = repr(raw_port)[:20] if isinstance(raw_port, float) else type_name(raw_port)
        raise ShapeError(f"{path}.port", f"must be a whole number from 1 to 65535 or a port name, got {shown}")
    if isinstance(raw_port, int):
        start = raw_port
    elif cilium:
        try:
            parsed = parse_cilium_port(raw_port)
        except PortSyntaxError as exc:
            raise ShapeError(f"{path}.port", str(exc)) from None
        if parsed.number is None:
            return _named(protocol, parsed.name, raw_end, path)
        if parsed.number == 0:  # "0", "00", "0x0": every port, as Cilium reads it
            return PortRange(protocol=protocol, path=path)
        start = parsed.number
    elif raw_port.isascii() and raw_port.isdigit():
        start = int(raw_port)
    elif is_service_name(raw_port):
        return _named(protocol, raw_port, raw_end, path)
    else:
        raise ShapeError(f"{path}.port", f"must be a whole number from 1 to 65535 or a port name (IANA service "
                                         f"name: up to 15 letters, digits and '-'), got {raw_port[:40]!r}")
    if not 1 <= start <= 65535:
        raise ShapeError(f"{path}.port", f"must be between 1 and 65535, got {start}")
    end = None
    if raw_end is not None:
        if isinstance(raw_end, bool) or not isinstance(raw_end, int):
            shown = repr(raw_end)[:20] if isinstance(raw_end, float) else type_name(raw_end)
            raise ShapeError(f"{path}.endPort", f"must be a whole number, got {shown}")
        if not start <= raw_end <= 65535:
            raise ShapeError(f"{path}.endPort", f"must be between port ({start}) and 65535, got {raw_end}")
        end = raw_end
    return PortRange(protocol=protocol, start=start, end=end, path=path)


def _named(protocol: str, name: str, raw_end: Any, path: str) -> PortRange:
    if raw_end is not None:
        raise ShapeError(f"{path}.endPort", "cannot be used with a named port")
    return PortRange(protocol=protocol, name=name, path=path)


# A pure function of immutable values, asked again for every rule that repeats a selector (the same
# peer in each entry of `specs`): kept for light selectors (Selector.weight, about bytes; 1024 entries of
# at most this weight), keyed on its arguments (all it depends on).
_CACHED_WEIGHT = 1024


def _namespace_scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    if selector.weight <= _CACHED_WEIGHT:
        return _cached_scope(selector, name_key, unkeyed)
    return _scope(selector, name_key, unkeyed)


@lru_cache(maxsize=1024)
def _cached_scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    return _scope(selector, name_key, unkeyed)


def _scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    """Which namespaces a selector allows.

    For a Kubernetes namespaceSelector (unkeyed None) the whole selector is about namespaces.
    For a Cilium endpoint selector only the namespace keys are; without any, the scope is
    `unkeyed` (own namespace for a namespaced policy, every namespace for a clusterwide one).
    """
    ns_reqs = selector.keyed(name_key)
    label_reqs = tuple(r for r in selector.requirements if r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX))
    pinned = selector.pinned_values(name_key)
    if pinned is not None:
        return NamespaceScope(Scope.NAMED, names=pinned, selector=selector)
    relevant = selector if unkeyed is None else Selector(ns_reqs + label_reqs)
    if unkeyed is not None and relevant.empty:
        return NamespaceScope(unkeyed, selector=selector)
    if relevant.is_open():
        return NamespaceScope(Scope.ALL, names=relevant.excluded_values(name_key), selector=selector)
    return NamespaceScope(Scope.SELECTED, selector=selector)


# --- Cilium ---------------------------------------------------------------------------------

_CILIUM_PEER_FIELDS = {
    Direction.INGRESS: ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes", "fromGroups",
                        "fromRequires"),
    Direction.EGRESS: ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toFQDNs", "toServices", "toGroups",
                       "toNodes", "toRequires"),
}


def _cilium(obj: Mapping[str, Any], namespace: str, clusterwide: bool) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
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
        subject, spec_rules = _cilium_spec(spec, path, index, namespace, clusterwide)
        subjects.append(subject)
        rules.extend(spec_rules)
    return tuple(subjects), tuple(rules)


def _cilium_spec(spec: Mapping[str, Any], path: str, index: int, namespace: str,
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
        scope = _namespace_scope(selector, CILIUM_NAMESPACE_LABEL, _unkeyed(clusterwide))
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
            rules.append(_cilium_rule(item, f"{path}.{field_name}[{i}]", index, direction, action, namespace,
                                      clusterwide))
    return subject, rules


def _cilium_rule(value: Any, path: str, subject: int, direction: Direction, action: Action, namespace: str,
                 clusterwide: bool) -> Rule:
    rule = expect_mapping(value, path)
    peers: list[Peer] = []
    for field_name in _CILIUM_PEER_FIELDS[direction]:
        listed = rule.get(field_name)  # most rules set one or two of the nine fields: look only at those
        if listed is None:
            continue
        for j, item in enumerate(expect_list(listed, f"{path}.{field_name}")):
            peers.extend(_cilium_peer(field_name, item, f"{path}.{field_name}[{j}]", namespace, clusterwide))
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
            ports.append(_port_range(protocol, pp.get("port"), pp.get("endPort"), f"{where}.ports[{k}]", cilium=True))
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
            scope = _namespace_scope(reach.pods, CILIUM_NAMESPACE_LABEL, Scope.ALL)
        else:
            scope = _namespace_scope(selector, CILIUM_NAMESPACE_LABEL, _unkeyed(clusterwide))
        peers.append(Peer(path=path, type=PeerType.PODS, namespaces=scope,
                          pods=reach.pods.without(CILIUM_NAMESPACE_LABEL), via=via))
    peers.extend(Peer(path=path, type=PeerType.ENTITY, entity=entity, via=via) for entity in reach.entities)
    if not peers:  # a selector no endpoint can meet still restricts the rule: it grants nothing
        peers.append(Peer(path=path, type=PeerType.PODS, namespaces=NamespaceScope(Scope.NAMED),
                          pods=selector, raw={"matches_nothing": True}))
    return peers


def _cidr_group_peer(entry: Mapping[str, Any], path: str, excepts: tuple[str, ...]) -> Peer:
    """A toCIDRSet entry naming CiliumCIDRGroups instead of a CIDR: resolved against the cluster view
    (webhook/cidr_groups.py), or reported as not judgeable without it."""
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


def _cilium_peer(field_name: str, item: Any, path: str, namespace: str, clusterwide: bool) -> list[Peer]:
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
