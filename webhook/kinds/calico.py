"""The Calico policy language (projectcalico.org/v3) that Calico's NetworkPolicy and GlobalNetworkPolicy write.

Semantics relied on (github.com/projectcalico/api, pkg/apis/projectcalico/v3: networkpolicy.go,
globalnetworkpolicy.go, policy_common.go; pkg/lib/numorstring/port.go), Apache-2.0:

- `selector` picks the endpoints the policy applies to (empty: `all()`); a GlobalNetworkPolicy's
  `namespaceSelector` narrows them to namespaces (empty: every namespace, and host endpoints too).
- `types` defaults to [Ingress] without egress rules, [Egress] with egress rules and no ingress rules, both with
  both (NetworkPolicySpec.Types); an endpoint a policy of a type selects is denied, at the end of its tier, what
  no rule allowed (default deny, as a NetworkPolicy's policyTypes).
- Rules are ordered; `action` is Allow, Deny, Log or Pass. Log records the packet and evaluation goes on: it
  allows and denies nothing, so it is not a rule of the model. Pass skips to the next tier (Action.PASS).
- A rule's peer is its `source` on ingress and its `destination` on egress; ports are the destination's on both
  (the local endpoint's on ingress). Every criterion of an EntityRule must hold together. A side without
  selector, nets or services matches every peer; `notNets` and `notSelector` match everything but what they
  name (`notNets: [10.0.0.0/8]` alone opens the internet); `notPorts` every port but those.
- In a NetworkPolicy a peer without `namespaceSelector` is in the policy's namespace; `global()` means endpoints
  of no namespace (host endpoints, GlobalNetworkSets). In a GlobalNetworkPolicy it means every namespace.
- A selector also matches NetworkSets (in the namespaces it reaches) and GlobalNetworkSets by their labels:
  their CIDRs live in the cluster, so such a peer carries a `calicoNetworkSets` group peer that the pipeline
  replaces by the matching sets' nets from the cluster view, or reports as not judged (webhook/core/cidr_groups.py).
- Felix renders a rule per IP family and drops it for a family none of its `nets` (or `notNets`) is of
  (felix/rules FilterRuleToIPVersion): `notNets` of IPv4 CIDRs alone opens IPv4 only.
- Ports: a number, "start:end", or a port name ([a-zA-Z0-9_.-]{1,128}); they need protocol TCP, UDP or SCTP.
- `destination.domains` (egress DNS names, `*` wildcards) is Calico Enterprise's; the open-source API has no
  such field. Read as FQDN peers when present.

Selectors are read by webhook/core/calico_selectors.py: peers by their over bound (what they can reach),
subjects by their under bound (what they surely select).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from webhook.core import calico_selectors
from webhook.core.calico_selectors import Bounds
from webhook.core.deadline import check as check_deadline
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
from webhook.core.normalize import listed_directions, namespace_scope
from webhook.core.selectors import NAMESPACE_NAME_LABEL, Requirement, Selector
from webhook.core.shape import (
    ShapeError,
    expect_list,
    expect_mapping,
    expect_str,
    optional_list,
    optional_mapping,
    optional_str,
    type_name,
)

_ACTIONS = {"Allow": Action.ALLOW, "Deny": Action.DENY, "Pass": Action.PASS}
# numorstring.Protocol: names, or a number 1-255 (the common ones read as their names).
_PROTOCOL_NAMES = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP", "ICMP": "ICMP", "ICMPV6": "ICMPV6",
                   "UDPLITE": "UDPLITE"}
_PROTOCOL_NUMBERS = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP", 58: "ICMPV6", 136: "UDPLITE"}
_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP", "UDPLITE")
_PORT_RANGE = re.compile(r"(\d+):(\d+)")
_PORT_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
# Calico's names for what a selector may say about a namespace and a service account (the labels it gives
# workload endpoints): projectcalico.org/name on a namespace is its name; pcsa.<key> a service account's label.
CALICO_NAMESPACE_NAME = "projectcalico.org/name"
# An endpoint's namespace as a GlobalNetworkPolicy's selector may name it (GlobalNetworkPolicy reference:
# "projectcalico.org/namespace == 'default'").
ENDPOINT_NAMESPACE = "projectcalico.org/namespace"
SERVICE_ACCOUNT_NAME = "projectcalico.org/serviceaccount"
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."


def subjects_and_rules(obj: Mapping[str, Any], namespace: str,
                       clusterwide: bool) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    """spec.selector (with namespaceSelector and serviceAccountSelector) as the one subject, the rules in order."""
    if obj.get("spec") is None:
        raise ShapeError("spec", "is required")
    spec = expect_mapping(obj["spec"], "spec")
    ingress = optional_list(spec, "ingress", "spec")
    egress = optional_list(spec, "egress", "spec")
    raw_types = optional_list(spec, "types", "spec")
    types = listed_directions(raw_types, "spec.types")
    if not raw_types:  # NetworkPolicySpec.Types defaulting
        types = {"Egress"} if egress and not ingress else ({"Ingress", "Egress"} if egress else {"Ingress"})
    selector = calico_selectors.bounds(calico_selectors.parse(spec.get("selector"), "spec.selector"))
    accounts = _service_accounts_selector(spec.get("serviceAccountSelector"), "spec.serviceAccountSelector")
    pods = _conjoin(selector.under, accounts.under)
    if clusterwide and spec.get("namespaceSelector") is None:
        scope = _endpoint_namespaces(pods)
    elif clusterwide:
        scope = _namespaces(spec.get("namespaceSelector"), "spec.namespaceSelector", under=True)
    else:
        scope = NamespaceScope(Scope.OWN)
    subject = Subject(index=0, path="spec", selector_path="spec.selector", selects="pods", selector=pods,
                      namespaces=scope, isolates={"ingress": "Ingress" in types, "egress": "Egress" in types},
                      default_deny_explicit={"ingress": None, "egress": None}, policy_types_explicit=bool(raw_types))
    rules: list[Rule] = []
    for direction, items in ((Direction.INGRESS, ingress), (Direction.EGRESS, egress)):
        for i, item in enumerate(items):
            check_deadline("normalization")
            rule = _rule(item, f"spec.{direction.value}[{i}]", direction, namespace, clusterwide,
                         subject.isolates[direction.value])
            if rule is not None:
                rules.append(rule)
    return (subject,), tuple(rules)


def logged(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The paths of the Log rules, which _rule leaves out (they record and go on; run after normalize_spec has
    read the object, so its shape is known)."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return ()
    return tuple(f"spec.{direction}[{i}]" for direction in ("ingress", "egress")
                 for i, rule in enumerate(spec.get(direction) or ())
                 if isinstance(rule, Mapping) and rule.get("action") == "Log")


def placement(obj: Mapping[str, Any]) -> tuple[str, float | None]:
    """The policy's tier (spec.tier, "default" when unset) and its order in the tier (spec.order; None: last)."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return "default", None
    tier = optional_str(spec, "tier", "spec") or "default"
    order = spec.get("order")
    if order is None:
        return tier, None
    if isinstance(order, bool) or not isinstance(order, (int, float)):
        raise ShapeError("spec.order", f"must be a number, got {type_name(order)}")
    return tier, float(order)


def _rule(value: Any, path: str, direction: Direction, namespace: str, clusterwide: bool,
          effective: bool) -> Rule | None:
    rule = expect_mapping(value, path)
    raw_action = expect_str(rule.get("action"), f"{path}.action")
    if raw_action == "Log":
        return None  # logs and goes on: neither allows nor denies
    action = _ACTIONS.get(raw_action)
    if action is None:
        raise ShapeError(f"{path}.action", f"must be Allow, Deny, Log or Pass, got {raw_action[:40]!r}")
    protocol = _protocol(rule.get("protocol"), f"{path}.protocol")
    if rule.get("notProtocol") is not None:
        _protocol(rule["notProtocol"], f"{path}.notProtocol")
        protocol = None  # every protocol but one: read as every protocol (it opens at least that much less one)
    source = optional_mapping(rule, "source", path)
    destination = optional_mapping(rule, "destination", path)
    peer_key = "source" if direction is Direction.INGRESS else "destination"
    peer_side = source if direction is Direction.INGRESS else destination
    peers, any_peer = _peers(peer_side, f"{path}.{peer_key}", namespace, clusterwide,
                             domains=direction is Direction.EGRESS)
    ports = _ports(destination, f"{path}.destination", protocol)
    icmp: tuple[Mapping[str, Any], ...] = ()
    if rule.get("icmp") is not None:
        icmp = (dict(expect_mapping(rule["icmp"], f"{path}.icmp")),)
    l7 = {"http": dict(expect_mapping(rule["http"], f"{path}.http"))} if rule.get("http") is not None else {}
    return Rule(path=path, subject=0, direction=direction, action=action, peers=tuple(peers), any_peer=any_peer,
                ports=ports, icmp=icmp, l7=l7, effective=effective)


def _protocol(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ShapeError(path, "must be a protocol name or a number from 1 to 255")
    if isinstance(value, int):
        if not 1 <= value <= 255:
            raise ShapeError(path, f"must be between 1 and 255, got {value}")
        return _PROTOCOL_NUMBERS.get(value, str(value))
    text = expect_str(value, path)
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 255:
        return _PROTOCOL_NUMBERS.get(int(text), text)
    name = _PROTOCOL_NAMES.get(text.upper())
    if name is None:
        raise ShapeError(path, f"must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number, got {text[:40]!r}")
    return name


def _ports(side: Mapping[str, Any], path: str, protocol: str | None) -> tuple[PortRange, ...]:
    """The destination's ports: `ports`, or every port but `notPorts`; no ports: every port of the protocol."""
    listed = [_port(v, f"{path}.ports[{i}]", protocol) for i, v in enumerate(optional_list(side, "ports", path))]
    excluded = [_port(v, f"{path}.notPorts[{i}]", protocol)
                for i, v in enumerate(optional_list(side, "notPorts", path))]
    if listed:
        return tuple(listed)  # notPorts only removes from them: read as what ports opens (at least as much)
    if protocol is None:
        return ()
    if excluded:
        return _complement(protocol, excluded, f"{path}.notPorts")
    return (PortRange(protocol=protocol, path=path),)


def _port(value: Any, path: str, protocol: str | None) -> PortRange:
    if protocol not in _PORT_PROTOCOLS:
        raise ShapeError(path, "ports need protocol TCP, UDP, SCTP or UDPLite on the rule")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ShapeError(path, f"must be a port number, \"start:end\" or a port name, got {type_name(value)}")
    text = str(value)
    if text.isascii() and text.isdigit():
        start = end = int(text)
    elif (found := _PORT_RANGE.fullmatch(text)) is not None:
        start, end = int(found.group(1)), int(found.group(2))
    elif _PORT_NAME.fullmatch(text):
        return PortRange(protocol=protocol, name=text, path=path)
    else:
        raise ShapeError(path, f"must be a port number, \"start:end\" or a port name, got {text[:40]!r}")
    if not 0 <= start <= end <= 65535:
        raise ShapeError(path, f"must be ports from 0 to 65535, start first, got {text[:40]!r}")
    return PortRange(protocol=protocol, start=max(start, 1), end=end if end != start else None, path=path)


def _complement(protocol: str, excluded: list[PortRange], path: str) -> tuple[PortRange, ...]:
    """Every port of `protocol` but the numbered `excluded` (named ones are left open: at least as much)."""
    cuts = sorted((p.start, p.end or p.start) for p in excluded if p.start is not None)
    out: list[PortRange] = []
    low = 1
    for start, end in cuts:
        if start > low:
            out.append(PortRange(protocol=protocol, start=low, end=start - 1 if start - 1 != low else None,
                                 path=path))
        low = max(low, end + 1)
    if low <= 65535:
        out.append(PortRange(protocol=protocol, start=low, end=65535 if low != 65535 else None, path=path))
    return tuple(out)


def _peers(side: Mapping[str, Any], path: str, namespace: str, clusterwide: bool,
           domains: bool) -> tuple[list[Peer], bool]:
    """The peers one side of a rule names, and whether it matches every peer. Criteria that narrow one another
    (nets and a selector) are read by the one that says most about reach: each alone reaches at least as much."""
    if domains and side.get("domains") is not None:
        names = [expect_str(d, f"{path}.domains[{i}]").lower()
                 for i, d in enumerate(expect_list(side["domains"], f"{path}.domains"))]
        return [Peer(path=f"{path}.domains[{i}]", type=PeerType.FQDN, fqdn_name="" if "*" in d else d,
                     fqdn_pattern=d if "*" in d else "") for i, d in enumerate(names)], False
    services = optional_mapping(side, "services", path)
    if services:
        name = expect_str(services.get("name"), f"{path}.services.name")
        where = optional_str(services, "namespace", f"{path}.services") or namespace
        scope = NamespaceScope(Scope.NAMED, names=(where,)) if where else NamespaceScope(Scope.ALL)
        return [Peer(path=f"{path}.services", type=PeerType.SERVICE, service=f"{where}/{name}" if where else name,
                     namespaces=scope)], False
    nets = [expect_str(n, f"{path}.nets[{i}]") for i, n in enumerate(optional_list(side, "nets", path))]
    not_nets = [expect_str(n, f"{path}.notNets[{i}]") for i, n in enumerate(optional_list(side, "notNets", path))]
    if nets:
        return [Peer(path=f"{path}.nets[{i}]", type=PeerType.CIDR, cidr=n, excepts=_inside(not_nets, n))
                for i, n in enumerate(nets)], False
    if not_nets:
        # Every address but those, in the IP families the list names: felix renders a rule per family and drops
        # it for a family its notNets has no CIDR of (projectcalico/calico felix/rules FilterRuleToIPVersion,
        # filterNets), so `notNets: [10.0.0.0/8]` opens IPv4 only.
        families = ([every] for every, v6 in (("0.0.0.0/0", False), ("::/0", True))
                    if any((":" in n) == v6 for n in not_nets))
        return [Peer(path=f"{path}.notNets", type=PeerType.CIDR, cidr=every, excepts=_inside(not_nets, every),
                     via="notNets: every address but these") for (every,) in families], False
    has_selector = side.get("selector") is not None or side.get("namespaceSelector") is not None
    accounts = optional_mapping(side, "serviceAccounts", path)
    if not has_selector and not accounts:
        if side.get("notSelector") is not None:  # every endpoint and address but those: read as every peer
            calico_selectors.parse(side["notSelector"], f"{path}.notSelector")
        return [], True
    selector = calico_selectors.bounds(calico_selectors.parse(side.get("selector"), f"{path}.selector"))
    pods = selector.over
    if accounts:
        pods = _conjoin(pods, _account_match(accounts, f"{path}.serviceAccounts").over)
    ns_text = side.get("namespaceSelector")
    ns_expr = calico_selectors.parse(ns_text, f"{path}.namespaceSelector") if ns_text is not None else None
    selector_path = f"{path}.selector" if side.get("selector") is not None else f"{path}.namespaceSelector"
    only_global = ns_expr is not None and calico_selectors.is_global(ns_expr)
    # Where the network sets it may match live (webhook/core/cidr_groups.py resolves them from the cluster view):
    # "none" for global() (GlobalNetworkSets alone), "own" (the policy's namespace), "all", or "selected" by
    # `namespaceSelector`; GlobalNetworkSets too when `global`.
    where = "none" if only_global else ("selected" if ns_expr is not None else ("all" if clusterwide else "own"))
    sets = Peer(path=selector_path, type=PeerType.GROUP, via="Calico network sets chosen by label",
                raw={"calicoNetworkSets": str(side.get("selector") or "all()"), "global": only_global or clusterwide,
                     "namespaces": where, "namespace": namespace,
                     "namespaceSelector": str(ns_text) if where == "selected" else None})
    if only_global:
        # Host endpoints and GlobalNetworkSets: no pods.
        return [sets], False
    if ns_expr is None:
        scope = _endpoint_namespaces(pods) if clusterwide else NamespaceScope(Scope.OWN)
    else:
        scope = _scope(calico_selectors.bounds(ns_expr).over)
    return [Peer(path=selector_path, type=PeerType.PODS, namespaces=scope, pods=pods), sets], False


def _inside(holes: list[str], cidr: str) -> tuple[str, ...]:
    """The notNets that lie inside `cidr` (of its family): the others remove nothing from it."""
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return ()  # facts.py reports the malformed CIDR with its path
    out = []
    for hole in holes:
        try:
            h = ipaddress.ip_network(hole.strip(), strict=False)
        except ValueError:
            out.append(hole)  # let facts.py name it
            continue
        if h.version == net.version and h.subnet_of(net):  # type: ignore[arg-type]
            out.append(hole)
    return tuple(out)


def _namespaces(value: Any, path: str, *, under: bool) -> NamespaceScope:
    """A namespaceSelector of a GlobalNetworkPolicy's subject: every namespace when unset."""
    if value is None:
        return NamespaceScope(Scope.ALL)
    found = calico_selectors.bounds(calico_selectors.parse(value, path))
    return _scope(found.under if under else found.over)


def _endpoint_namespaces(selector: Selector) -> NamespaceScope:
    """Where a GlobalNetworkPolicy's selector without namespaceSelector reaches: the namespaces its
    projectcalico.org/namespace requirements allow, else every namespace."""
    named = Selector(tuple(Requirement(NAMESPACE_NAME_LABEL, r.operator, r.values)
                           for r in selector.requirements if r.key == ENDPOINT_NAMESPACE))
    if named.empty:
        return NamespaceScope(Scope.ALL)
    return namespace_scope(named, NAMESPACE_NAME_LABEL, unkeyed=None)


def _scope(selector: Selector) -> NamespaceScope:
    """Namespaces chosen by labels: Calico's projectcalico.org/name is the namespace's name."""
    renamed = Selector(tuple(Requirement(NAMESPACE_NAME_LABEL, r.operator, r.values)
                             if r.key == CALICO_NAMESPACE_NAME else r for r in selector.requirements))
    return namespace_scope(renamed, NAMESPACE_NAME_LABEL, unkeyed=None)


def _service_accounts_selector(value: Any, path: str) -> Bounds:
    """A serviceAccountSelector: the service account's labels, which Calico gives endpoints as pcsa.<key>."""
    found = calico_selectors.bounds(calico_selectors.parse(value, path))
    return Bounds(_prefixed(found.over), _prefixed(found.under))


def _account_match(value: Mapping[str, Any], path: str) -> Bounds:
    """serviceAccounts: {names, selector}, ANDed."""
    names = tuple(expect_str(n, f"{path}.names[{i}]") for i, n in enumerate(optional_list(value, "names", path)))
    found = _service_accounts_selector(value.get("selector"), f"{path}.selector")
    named = Selector((Requirement(SERVICE_ACCOUNT_NAME, "In", tuple(sorted(set(names)))),)) if names else Selector()
    return Bounds(_conjoin(found.over, named), _conjoin(found.under, named))


def _prefixed(selector: Selector) -> Selector:
    if selector == calico_selectors.NOTHING:
        return selector
    return Selector(tuple(Requirement(SERVICE_ACCOUNT_LABEL_PREFIX + r.key, r.operator, r.values)
                          for r in selector.requirements))


def _conjoin(a: Selector, b: Selector) -> Selector:
    if calico_selectors.NOTHING in (a, b):
        return calico_selectors.NOTHING
    return Selector(tuple(dict.fromkeys((*a.requirements, *b.requirements))))
