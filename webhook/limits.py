"""Size limits on a policy object, counted on the raw object before any normalization.

The work netguard does per request (normalization, CIDR arithmetic, the Rego) grows with the
number of rules, peers, ports, excepts and selector requirements of the object. The API server
accepts objects far larger than any real policy (up to the 3 MiB request body), so an object over
a limit is refused with the limit, the field path and the count named, before any of that work is
done. Counting is cheap: list lengths, top-down, stopping at the first limit passed (a rule with a
million peers is never looked into); malformed shapes are skipped here and reported by
normalize.py with the field named.

What each limit counts (docs/configuration.md has the defaults and the corpus maxima):

- `max_specs`: spec entries of a Cilium policy (`spec` plus the entries of `specs`).
- `max_rules`: rules in the whole object, every direction of every spec entry together (ingress,
  egress, and for Cilium ingressDeny, egressDeny). Chosen over a per-list limit because the work
  is per rule of the object; the path named is the largest list.
- `max_peers_per_rule`: peer entries of one rule: `to`/`from` (Kubernetes); toEndpoints, toCIDR,
  toCIDRSet, toEntities, toServices, toGroups, toNodes, toRequires and their from* twins together
  (Cilium). toFQDNs entries are counted by `max_fqdn_patterns`.
- `max_ports_per_rule`: port entries of one rule: `ports` (Kubernetes); the `ports` of every
  `toPorts` entry, an entry without ports counting as one (Cilium).
- `max_excepts_per_peer`: `ipBlock.except` / `toCIDRSet[].except` entries of one peer.
- `max_selector_requirements`: matchLabels entries plus matchExpressions of one label selector
  (pod, namespace, endpoint, node, service and CIDR group selectors).
- `max_fqdn_patterns`: toFQDNs entries (matchName or matchPattern) of one rule.
- `max_cidrs`: CIDR strings in the whole object (ipBlock.cidr, toCIDR, toCIDRSet cidr, and every
  except); each is parsed and cut into intervals. The path named is the rule with the most.

Pure: no I/O, no configuration reading (config.py builds `Limits` from the `limits:` section).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

KUBERNETES_KIND = "NetworkPolicy"
CILIUM_KINDS = frozenset({"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"})
_K8S_SECTIONS = (("ingress", "from"), ("egress", "to"))
_CILIUM_SECTIONS = ("ingress", "ingressDeny", "egress", "egressDeny")
_CILIUM_PEER_FIELDS = {
    "ingress": ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes", "fromGroups", "fromRequires"),
    "egress": ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toGroups", "toNodes",
               "toRequires"),
}
_SELECTOR_LISTS = frozenset({"fromEndpoints", "toEndpoints", "fromRequires", "toRequires", "fromNodes", "toNodes"})

# What each limit counts, as the message says it ("<count> <what>").
WHAT = {
    "max_specs": "spec entries",
    "max_rules": "rules in the object (every direction of every spec entry together)",
    "max_peers_per_rule": "peers in this rule",
    "max_ports_per_rule": "port entries in this rule",
    "max_excepts_per_peer": "except entries in this peer",
    "max_selector_requirements": "requirements in this selector (matchLabels entries plus matchExpressions)",
    "max_fqdn_patterns": "toFQDNs entries in this rule",
    "max_cidrs": "CIDRs in the object (peers' CIDRs and their excepts together)",
}


@dataclass(frozen=True)
class Limits:
    """The largest object netguard judges. Defaults: at least 10x the largest real policy measured
    (bench/corpus_limits.py over /work/shared/corpus; table in docs/configuration.md)."""

    max_specs: int = 32
    max_rules: int = 1000
    max_peers_per_rule: int = 10000
    max_ports_per_rule: int = 200
    max_excepts_per_peer: int = 1000
    max_selector_requirements: int = 64
    max_fqdn_patterns: int = 200
    max_cidrs: int = 10000

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Count:
    """One counted thing: which limit counts it, where, and how many."""

    limit: str
    path: str
    count: int
    detail: str = ""  # more about the count (the largest list of a total)


@dataclass(frozen=True)
class LimitViolation:
    limit: str  # a field of Limits
    path: str  # the field path in the object ("" = the object)
    count: int
    maximum: int
    detail: str = ""

    @property
    def problem(self) -> str:
        detail = f"; {self.detail}" if self.detail else ""
        return (f"{self.count} {WHAT[self.limit]}{detail}, more than limits.{self.limit} ({self.maximum}); "
                f"netguard does not judge objects this large")

    @property
    def fix(self) -> str:
        return (f"split the policy (or the rule) into smaller ones that stay within {self.maximum}, or ask the "
                f"platform team to raise limits.{self.limit} in netguard's configuration")


def check_limits(obj: Mapping[str, Any], limits: Limits) -> LimitViolation | None:
    """The first limit the raw object passes, or None. Never raises: shapes are normalize.py's job."""
    for c in counts(obj):
        maximum: int = getattr(limits, c.limit)
        if c.count > maximum:
            return LimitViolation(c.limit, c.path, c.count, maximum, c.detail)
    return None


def counts(obj: Mapping[str, Any]) -> Iterator[Count]:
    """Every counted thing of the object, each list's length before anything inside it, so a consumer
    that stops at the first count over its limit never walks an oversized list."""
    if not isinstance(obj, Mapping):
        return
    kind = obj.get("kind")
    if kind == KUBERNETES_KIND:
        spec = obj.get("spec")
        if isinstance(spec, Mapping):
            yield from _kubernetes(spec)
    elif kind in CILIUM_KINDS:
        yield from _cilium(obj)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _selector(value: Any, path: str) -> Iterator[Count]:
    if isinstance(value, Mapping):
        labels, expressions = value.get("matchLabels"), value.get("matchExpressions")
        size = (len(labels) if isinstance(labels, Mapping) else 0) + (
            len(expressions) if isinstance(expressions, list) else 0)
        yield Count("max_selector_requirements", path, size)


def _rules_total(lists: list[tuple[str, list[Any]]]) -> Count:
    total = sum(len(items) for _, items in lists)
    path, largest = max(lists, key=lambda pl: len(pl[1]), default=("spec", []))
    return Count("max_rules", path, total, f"{path} has {len(largest)}" if len(lists) > 1 else "")


class _CidrTally:
    """CIDR strings across the object, and the rule holding the most."""

    def __init__(self) -> None:
        self.total = 0
        self.top = ("", 0)

    def add(self, rule_path: str, n: int) -> None:
        self.total += n
        if n > self.top[1]:
            self.top = (rule_path, n)

    def count(self) -> Count:
        path, n = self.top
        return Count("max_cidrs", path, self.total, f"{path} has {n}" if n != self.total else "")


def _kubernetes(spec: Mapping[str, Any]) -> Iterator[Count]:
    yield from _selector(spec.get("podSelector"), "spec.podSelector")
    lists = [(f"spec.{section}", _list(spec.get(section))) for section, _ in _K8S_SECTIONS]
    yield _rules_total(lists)
    cidrs = _CidrTally()
    for (path, items), (_, peer_key) in zip(lists, _K8S_SECTIONS, strict=True):
        for i, item in enumerate(items):
            rule = _mapping(item)
            where = f"{path}[{i}]"
            peers = _list(rule.get(peer_key))
            yield Count("max_peers_per_rule", f"{where}.{peer_key}", len(peers))
            yield Count("max_ports_per_rule", f"{where}.ports", len(_list(rule.get("ports"))))
            in_rule = 0
            for j, raw in enumerate(peers):
                peer = _mapping(raw)
                at = f"{where}.{peer_key}[{j}]"
                block = peer.get("ipBlock")
                if isinstance(block, Mapping):
                    excepts = _list(block.get("except"))
                    yield Count("max_excepts_per_peer", f"{at}.ipBlock.except", len(excepts))
                    in_rule += 1 + len(excepts)
                yield from _selector(peer.get("podSelector"), f"{at}.podSelector")
                yield from _selector(peer.get("namespaceSelector"), f"{at}.namespaceSelector")
            cidrs.add(where, in_rule)
    yield cidrs.count()


def _cilium(obj: Mapping[str, Any]) -> Iterator[Count]:
    specs: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(obj.get("spec"), Mapping):
        specs.append(("spec", obj["spec"]))
    listed = _list(obj.get("specs"))
    yield Count("max_specs", "specs", len(specs) + len(listed))
    specs.extend((f"specs[{i}]", item) for i, item in enumerate(listed) if isinstance(item, Mapping))
    lists = [(f"{path}.{section}", _list(spec.get(section))) for path, spec in specs for section in _CILIUM_SECTIONS]
    yield _rules_total(lists)
    cidrs = _CidrTally()
    for path, spec in specs:
        for key in ("endpointSelector", "nodeSelector"):
            yield from _selector(spec.get(key), f"{path}.{key}")
        for section in _CILIUM_SECTIONS:
            peer_fields = _CILIUM_PEER_FIELDS["ingress" if section.startswith("ingress") else "egress"]
            for i, item in enumerate(_list(spec.get(section))):
                yield from _cilium_rule(_mapping(item), f"{path}.{section}[{i}]", peer_fields, cidrs)
    yield cidrs.count()


def _cilium_rule(rule: Mapping[str, Any], where: str, peer_fields: tuple[str, ...],
                 cidrs: _CidrTally) -> Iterator[Count]:
    present = [(name, _list(rule.get(name))) for name in peer_fields if rule.get(name) is not None]
    total = sum(len(items) for _, items in present)
    detail = ", ".join(f"{name} {len(items)}" for name, items in present if items) if len(present) > 1 else ""
    yield Count("max_peers_per_rule", f"{where}.{present[0][0]}" if len(present) == 1 else where, total, detail)
    yield Count("max_fqdn_patterns", f"{where}.toFQDNs", len(_list(rule.get("toFQDNs"))))
    port_entries = _list(rule.get("toPorts"))
    yield Count("max_ports_per_rule", f"{where}.toPorts",
                sum(max(1, len(_list(_mapping(e).get("ports")))) for e in port_entries))
    in_rule = 0
    for name, items in present:
        if name in ("toCIDR", "fromCIDR"):
            in_rule += len(items)
        for j, raw in enumerate(items):
            at = f"{where}.{name}[{j}]"
            if name in _SELECTOR_LISTS:
                yield from _selector(raw, at)
            elif name in ("toCIDRSet", "fromCIDRSet"):
                entry = _mapping(raw)
                excepts = _list(entry.get("except"))
                yield Count("max_excepts_per_peer", f"{at}.except", len(excepts))
                yield from _selector(entry.get("cidrGroupSelector"), f"{at}.cidrGroupSelector")
                in_rule += len(excepts) + (entry.get("cidr") is not None)
            elif name == "toServices":
                selector = _mapping(_mapping(raw).get("k8sServiceSelector")).get("selector")
                yield from _selector(selector, f"{at}.k8sServiceSelector.selector")
    cidrs.add(where, in_rule)
