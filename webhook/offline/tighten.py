"""`netguard tighten`: an existing policy narrowed to the traffic Hubble saw its rules carry (issue 15).

The flow matcher (offline/flow_match.py) says, per allow rule, the flows it carried and how it is broader than
them (`RuleUsage.breadth`). From that:

- a judged rule that carried no flow in the window is removed (a rule netguard cannot match a flow to, or one
  with flows it could not settle, stays as it is);
- a rule broader than its traffic (the internet, every namespace, every port) gets the observed peers and
  ports, in the shapes `netguard suggest` writes, each one cut from a peer of the rule itself: a pod peer is the
  rule's own selectors AND the observed namespace and workload labels, an address the /32 inside the rule's
  CIDR, a name a matchName the rule's world entity or matchPattern already allowed. So a narrowed rule never
  allows what the original did not; when an observed peer cannot be cut from the rule that way (the capture
  was capped, a selector it cannot read), the rule keeps its peers.

Isolation is never lost. A NetworkPolicy gets explicit `policyTypes` with the directions the original isolated
(without them, removing the last egress rule would default egress isolation away: a widening). A Cilium
direction whose rules are all removed keeps `[{}]`, a rule that selects the endpoints into default deny and
allows nothing, with `enableDefaultDeny` for that direction written true: Cilium defaults it to true only for a
direction that has rules (pkg/policy/api/rule_validation.go, Rule.Sanitize), and the field alone, without a rule,
does not isolate (cilium/cilium#35558). Pure: objects and evidence in, objects and a diff out.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from webhook.core.facts import INTERNET_ENTITIES
from webhook.core.flow_evidence import ObservedPeer, PolicyEvidence, RuleUsage, Window, port_label
from webhook.core.fqdn import pattern_matches
from webhook.core.netpolicy import Flavor, NormalizedPolicy, Peer, PeerType, Rule, Scope
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, NAMESPACE_NAME_LABEL, Selector, strip_source
from webhook.offline.flow_breadth import host_cidr
from webhook.offline.flow_rules import in_cidr
from webhook.offline.flows import Flow
from webhook.offline.suggest import (
    FlowNames,
    Port,
    dns_name,
    entry_key,
    peer_entries,
    port_items,
    window_text,
)

TIGHTENED = "netguard.io/tightened-from"
SUPPORTED = {("networking.k8s.io", "NetworkPolicy"), ("cilium.io", "CiliumNetworkPolicy"),
             ("cilium.io", "CiliumClusterwideNetworkPolicy")}
_CILIUM_PEER_FIELDS = {"ingress": ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes",
                                   "fromGroups"),
                       "egress": ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toFQDNs", "toServices",
                                  "toGroups", "toNodes")}
_PATH_STEP = re.compile(r"([A-Za-z]+)(?:\[(\d+)\])?")
Entry = tuple[str, Any]


@dataclass(frozen=True)
class Change:
    path: str
    what: str


@dataclass(frozen=True)
class Tightened:
    original: Mapping[str, Any]
    narrowed: dict[str, Any]
    changes: tuple[Change, ...]
    observed: bool  # some flow in the window had a pod the policy selects; otherwise nothing was judged


def check_supported(obj: Mapping[str, Any], source: str) -> None:
    """ValueError for a kind tighten does not rewrite."""
    api, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
    if (api.partition("/")[0], kind) not in SUPPORTED:
        raise ValueError(f"{source}: tighten rewrites NetworkPolicy (networking.k8s.io), CiliumNetworkPolicy and "
                         f"CiliumClusterwideNetworkPolicy (cilium.io), not {kind or 'an object without a kind'} "
                         f"({api or 'no apiVersion'})")


def learning_names(flows: Iterable[Flow], names: FlowNames) -> Iterator[Flow]:
    """The flows, unchanged, while the DNS answers among them are kept for naming addresses."""
    for flow in flows:
        names.learn(flow, None)
        yield flow


def tighten(obj: Mapping[str, Any], policy: NormalizedPolicy, evidence: PolicyEvidence, window: Window,
            names: FlowNames | None = None) -> Tightened:
    """`obj` narrowed to what `evidence` (matched against `policy`, its normalized form) saw."""
    narrowed = copy.deepcopy(dict(obj))
    if not evidence.observed:
        return Tightened(obj, narrowed, (), False)
    flavor = "kubernetes" if policy.flavor is Flavor.KUBERNETES else "cilium"
    usages = {u.path: u for u in evidence.rules}
    rules = {r.path: r for r in policy.rules}
    changes: list[Change] = []
    for subject in policy.subjects:
        spec = _at(narrowed, subject.path)
        for direction in ("ingress", "egress"):
            items = spec.get(direction)
            if not isinstance(items, list) or not items:
                continue
            kept: list[Any] = []
            for i, item in enumerate(items):
                path = f"{subject.path}.{direction}[{i}]"
                new, change = _rule(item, rules.get(path), usages.get(path), flavor, policy, obj, names)
                kept += new
                changes += [change] if change else []
            if kept == items:
                continue
            if kept:
                spec[direction] = kept
            elif flavor == "kubernetes":
                del spec[direction]  # policyTypes, written below, keeps the direction isolated
            else:
                spec[direction] = [{}]  # selects into default deny, allows nothing
                if subject.isolates.get(direction):
                    spec["enableDefaultDeny"] = {**(spec.get("enableDefaultDeny") or {}), direction: True}
        if flavor == "kubernetes" and changes:
            types = [d.capitalize() for d in ("ingress", "egress") if subject.isolates.get(d)]
            if "policyTypes" not in spec:  # written after the pod selector, where people look for it
                rest = {k: spec.pop(k) for k in list(spec) if k != "podSelector"}
                spec.update({"policyTypes": types, **rest})
            spec["policyTypes"] = types
    if _mentions(narrowed, "toFQDNs") and not _mentions(obj, "toFQDNs") and not _mentions(narrowed, "dns"):
        # toFQDNs learns addresses only from lookups through Cilium's DNS proxy (an L7 `rules.dns` rule).
        changes.append(Change("spec", "note: toFQDNs allows only names resolved through Cilium's DNS proxy: a policy "
                                      "selecting these pods needs a DNS rule with toPorts rules.dns (`netguard "
                                      "baseline --flavor cilium --allow-dns` writes one)"))
    if changes:
        meta = narrowed.setdefault("metadata", {})
        note = f"netguard tighten, from {window_text(window)}"
        meta["annotations"] = {**(meta.get("annotations") or {}), TIGHTENED: note}
    return Tightened(obj, narrowed, tuple(changes), True)


def _rule(item: Any, rule: Rule | None, usage: RuleUsage | None, flavor: str, policy: NormalizedPolicy,
          obj: Mapping[str, Any], names: FlowNames | None) -> tuple[list[Any], Change | None]:
    """The rule as it stays (several rules when Cilium needs one per peer field), and what changed."""
    if rule is None or usage is None or not usage.judged or usage.uncertain or not isinstance(item, Mapping):
        return [item], None
    if not usage.flows:
        return [], Change(usage.path, "removed: no flow in the window matched it")
    aspects = {b.aspect for b in usage.breadth}
    peers = [_named(p, names) for p in usage.peers]
    entries = (_narrow_peers(peers, rule, flavor, policy, obj)
               if aspects - {"ports"} and not usage.more_peers else None)
    ports = _narrow_ports(usage.ports, rule) if "ports" in aspects and not usage.more_ports else None
    if entries is None and ports is None:
        return [item], None
    base = dict(item)
    what = []
    if ports is not None:
        key, listed = port_items(flavor, ports)
        base[key] = listed
        what.append("ports to " + ", ".join(port_label(p) for p in ports))
    if entries is None:
        return [base], Change(usage.path, "narrowed: " + "; ".join(what))
    what.insert(0, "peers to " + ", ".join(sorted({p.describe() for p in peers})))
    change = Change(usage.path, "narrowed: " + "; ".join(what))
    if flavor == "kubernetes":
        peers_field = "to" if rule.direction.value == "egress" else "from"
        return [{peers_field: [e[1] for e in entries], **{k: v for k, v in base.items() if k != peers_field}}], change
    rest = {k: v for k, v in base.items() if k not in _CILIUM_PEER_FIELDS[rule.direction.value]}
    fields: dict[str, list[Any]] = {}
    for name, value in entries:
        fields.setdefault(name, []).append(value)
    return [{name: values, **rest} for name, values in sorted(fields.items())], change


def _named(peer: ObservedPeer, names: FlowNames | None) -> ObservedPeer:
    """A world peer with valid DNS names: its own, else those DNS answers in the capture gave its address."""
    valid = tuple(sorted({n for n in map(dns_name, peer.names) if n}))
    if valid or names is None:
        return replace(peer, names=valid)
    return names.name(replace(peer, names=()), ())


def _narrow_peers(peers: Iterable[ObservedPeer], rule: Rule, flavor: str, policy: NormalizedPolicy,
                  obj: Mapping[str, Any]) -> list[Entry] | None:
    """Entries for every observed peer, each inside a peer of the rule; None if one cannot be placed."""
    found: dict[str, Entry] = {}
    for observed in peers:
        direction = rule.direction.value
        entries = (list(peer_entries(observed, direction, flavor, policy.namespace)) if rule.any_peer else
                   [e for p in rule.peers for e in _inside(observed, p, direction, flavor, policy, obj)])
        if not entries:
            return None
        found.update((entry_key(e), e) for e in entries)
    return [found[k] for k in sorted(found)]


def _inside(observed: ObservedPeer, peer: Peer, direction: str, flavor: str, policy: NormalizedPolicy,
            obj: Mapping[str, Any]) -> list[Entry]:
    """The observed peer cut from one peer of the rule: entries allowing no more than `peer` does."""
    to = "to" if direction == "egress" else "from"
    if peer.raw.get("matches_nothing"):
        return []
    if observed.kind == "pod":
        if peer.type is PeerType.ENTITY and peer.entity in ("all", "cluster"):
            return list(peer_entries(observed, direction, flavor, policy.namespace))
        return _inside_pods(observed, peer, flavor, policy, obj, f"{to}Endpoints")
    address = host_cidr(observed.ip)
    if peer.type is PeerType.CIDR and address and in_cidr(observed.ip, peer.cidr, peer.excepts):
        return [("peer", {"ipBlock": {"cidr": address}}) if flavor == "kubernetes" else (f"{to}CIDR", address)]
    if peer.type is not PeerType.ENTITY and peer.type is not PeerType.FQDN:
        return []
    if observed.kind == "entity":
        same = peer.entity in (observed.entity, "all") or (peer.entity == "cluster" and observed.entity != "world")
        return [(f"{to}Entities", observed.entity)] if same and peer.type is PeerType.ENTITY else []
    if peer.type is PeerType.FQDN:
        return [("toFQDNs", {"matchName": n}) for n in observed.names
                if n == peer.fqdn_name or (peer.fqdn_pattern and pattern_matches(peer.fqdn_pattern, n))]
    if peer.entity not in INTERNET_ENTITIES or not address:
        return []
    if peer.entity in ("world", "all") and observed.names and direction == "egress":
        return [("toFQDNs", {"matchName": n}) for n in observed.names]
    v4, v6 = INTERNET_ENTITIES[peer.entity]
    return [(f"{to}CIDR", address)] if (v6 if ":" in address else v4) else []


def _inside_pods(observed: ObservedPeer, peer: Peer, flavor: str, policy: NormalizedPolicy, obj: Mapping[str, Any],
                 field_name: str) -> list[Entry]:
    """A pod peer AND the observed namespace and workload labels, when the pod can be one it selects."""
    if peer.type is not PeerType.PODS or peer.namespaces is None or peer.via or peer.raw:
        return []
    namespace, labels = observed.namespace, dict(observed.labels)
    scope = peer.namespaces
    fits = {Scope.OWN: namespace == policy.namespace, Scope.NAMED: namespace in scope.names,
            Scope.ALL: namespace not in scope.names,
            Scope.SELECTED: _compatible(scope.selector, {NAMESPACE_NAME_LABEL: namespace,
                                                         CILIUM_NAMESPACE_LABEL: namespace})}[scope.scope]
    if not fits or (peer.pods is not None and not _compatible(peer.pods, labels)):
        return []
    raw = _at(obj, peer.path)
    if flavor == "kubernetes":
        item: dict[str, Any] = {"podSelector": _conjoin(raw.get("podSelector"), labels)}
        if raw.get("namespaceSelector") is not None or namespace != policy.namespace:
            item = {"namespaceSelector": _conjoin(raw.get("namespaceSelector"), {NAMESPACE_NAME_LABEL: namespace}),
                    **item}
        return [("peer", item)]
    where = {} if scope.scope is Scope.OWN else {f"k8s:{CILIUM_NAMESPACE_LABEL}": namespace}
    return [(field_name, _conjoin(raw, {**where, **labels}))]


def _mentions(node: Any, key: str) -> bool:
    """Whether `key` is a field anywhere in a raw object."""
    if isinstance(node, Mapping):
        return key in node or any(_mentions(v, key) for v in node.values())
    return isinstance(node, list) and any(_mentions(v, key) for v in node)


def _compatible(selector: Selector, labels: Mapping[str, str]) -> bool:
    """No requirement on a key of `labels` rules them out (keys not given could be anything)."""
    for r in selector.requirements:
        if r.key not in labels:
            continue
        value = labels[r.key]
        if (r.operator == "In" and value not in r.values) or (r.operator == "NotIn" and value in r.values) or (
                r.operator == "DoesNotExist"):
            return False
    return True


def _conjoin(raw: Any, labels: Mapping[str, str]) -> dict[str, Any]:
    """A label selector that also requires `labels`: what it selects is inside what `raw` selected."""
    selector = dict(raw) if isinstance(raw, Mapping) else {}
    match = dict(selector.get("matchLabels") or {})
    have = {strip_source(k) for k in match}
    match.update({k: v for k, v in labels.items() if strip_source(k) not in have})
    return {**selector, "matchLabels": match} if match else selector


def _narrow_ports(observed: Iterable[Port], rule: Rule) -> list[Port] | None:
    """The observed ports, each inside a port entry of the rule; None where ports cannot be narrowed safely
    (ICMP or L7 rules, named ports, a port the rule's entries do not hold)."""
    ports = sorted(set(observed))
    if rule.icmp or rule.l7 or any(p.name for p in rule.ports) or not ports:
        return None
    inside = all(port and (not rule.ports or any(p.covers(protocol, port) for p in rule.ports))
                 for protocol, port in ports)
    return ports if inside else None


def _at(obj: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The mapping at a field path (`specs[1].egress[0].toEndpoints[2]`) of a raw object."""
    node: Any = obj
    for step in path.split("."):
        matched = _PATH_STEP.fullmatch(step)
        if matched is None or not isinstance(node, Mapping):
            raise ValueError(f"no field {path}")
        node = node.get(matched.group(1))
        if matched.group(2) is not None:
            node = node[int(matched.group(2))] if isinstance(node, list) else None
    if not isinstance(node, dict):
        raise ValueError(f"no mapping at {path}")
    return node


def render(objects: Iterable[Mapping[str, Any]]) -> str:
    return "".join(f"---\n{yaml.safe_dump(dict(o), sort_keys=False, default_flow_style=False, width=4096)}"
                   for o in objects)


def diff(results: Iterable[Tightened], source: str) -> str:
    """A unified diff from the policies as they are to as narrowed (both written alike, so only changes show)."""
    listed = list(results)
    before = render(r.original for r in listed).splitlines(keepends=True)
    after = render(r.narrowed for r in listed).splitlines(keepends=True)
    where = source.lstrip("/")
    return "".join(difflib.unified_diff(before, after, f"a/{where}", f"b/{where}"))

