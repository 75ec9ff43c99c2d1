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
  (Cilium); `nets` and `serviceAccounts.names` of one side (`source` or `destination`) together
  (Calico: each name is an endpoint set of its own). toFQDNs entries are counted by `max_fqdn_patterns`.
- `max_ports_per_rule`: port entries of one rule: `ports` (Kubernetes); the `ports` of every
  `toPorts` entry, an entry without ports counting as one (Cilium); `ports` and `notPorts` of one
  side together (Calico).
- `max_excepts_per_peer`: `ipBlock.except` / `toCIDRSet[].except` entries of one peer; a Calico
  side's `notNets` (they are carved from each of its `nets`, or from every address).
- `max_selector_requirements`: matchLabels entries plus matchExpressions of one label selector
  (pod, namespace, endpoint, node, service and CIDR group selectors). Calico's selectors are text,
  bounded in length and nesting by their parser (core/calico_selectors.py), so nothing is counted here.
- `max_fqdn_patterns`: toFQDNs entries (matchName or matchPattern) of one rule; a Calico side's
  `domains` (Calico Enterprise).
- `max_cidrs`: CIDR strings in the whole object (ipBlock.cidr, toCIDR, toCIDRSet cidr, and every
  except); each is parsed and cut into intervals. The path named is the rule with the most. A Calico
  side counts as the normalizer makes peers of it: each of its `nets` with every `notNets` as its
  excepts, `nets x (1 + notNets)` (notNets alone: every address and them, `1 + notNets`), since each
  notNet is tested against each net (kinds/calico.py `_inside`).

Pure: no I/O, no configuration reading (config.py builds `Limits` from the `limits:` section).

Size: over 400 lines, as each rule language (Kubernetes, Cilium, Calico) is counted twice, by `counts` (paths
and details, for the message) and by `_Within` (the quick check), kept side by side so that a test can hold
the two equal over every sample at small limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from webhook import kinds
from webhook.core.netpolicy import Flavor

_K8S_SECTIONS = (("ingress", "from"), ("egress", "to"))
_CILIUM_SECTIONS = ("ingress", "ingressDeny", "egress", "egressDeny")
_CILIUM_PEER_FIELDS = {
    "ingress": ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes", "fromGroups", "fromRequires"),
    "egress": ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toGroups", "toNodes",
               "toRequires"),
}
_SELECTOR_LISTS = frozenset({"fromEndpoints", "toEndpoints", "fromRequires", "toRequires", "fromNodes", "toNodes"})
# projectcalico.org/v3 (github.com/projectcalico/api pkg/apis/projectcalico/v3/policy_common.go): a rule's two
# EntityRule sides, both counted (the normalizer reads the peer side and the destination's ports).
_CALICO_SECTIONS = ("ingress", "egress")
_CALICO_SIDES = ("source", "destination")

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
    """The first limit the raw object passes, or None. Never raises: shapes are normalize.py's job.

    Nearly every object is within its limits, so a plain walk (_Within: the same counts, no paths, no
    Count objects) answers first; only an object it finds over a limit is walked again by `counts`,
    which names the first limit passed, its field and its count."""
    if _Within(limits).object(obj):
        return None
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
    flavor = _flavor(obj)
    if flavor is Flavor.KUBERNETES:
        spec = obj.get("spec")
        if isinstance(spec, Mapping):
            yield from _kubernetes(spec)
    elif flavor is Flavor.CILIUM:
        yield from _cilium(obj)
    elif flavor is Flavor.CALICO:
        spec = obj.get("spec")
        if isinstance(spec, Mapping):
            yield from _calico(spec)


def _flavor(obj: Mapping[str, Any]) -> Flavor | None:
    """The rule language of the object's kind (what is counted), None for a kind netguard does not guard."""
    kind = kinds.of(obj)
    return kind.flavor if kind is not None else None


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


def _calico_side_peers(side: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """A Calico side's peer lists that are present: nets, and the service account names."""
    accounts = _mapping(side.get("serviceAccounts"))
    found = [("nets", side.get("nets")), ("serviceAccounts.names", accounts.get("names"))]
    return [(name, _list(value)) for name, value in found if value is not None]


def _calico_cidrs(side: Mapping[str, Any]) -> int:
    """The CIDRs the normalizer makes of a side: each net with every notNet as an except (notNets alone: every
    address, with them)."""
    nets, not_nets = len(_list(side.get("nets"))), len(_list(side.get("notNets")))
    return (nets or (1 if not_nets else 0)) * (1 + not_nets)


def _calico(spec: Mapping[str, Any]) -> Iterator[Count]:
    lists = [(f"spec.{section}", _list(spec.get(section))) for section in _CALICO_SECTIONS]
    yield _rules_total(lists)
    cidrs = _CidrTally()
    for path, items in lists:
        for i, item in enumerate(items):
            where = f"{path}[{i}]"
            rule = _mapping(item)
            in_rule = 0
            for side_key in _CALICO_SIDES:
                side = _mapping(rule.get(side_key))
                at = f"{where}.{side_key}"
                present = _calico_side_peers(side)
                detail = ", ".join(f"{name} {len(items)}" for name, items in present if items) \
                    if len(present) > 1 else ""
                yield Count("max_peers_per_rule", f"{at}.{present[0][0]}" if len(present) == 1 else at,
                            sum(len(items) for _, items in present), detail)
                yield Count("max_excepts_per_peer", f"{at}.notNets", len(_list(side.get("notNets"))),
                            "notNets are the excepts of each of the side's nets")
                ports = [(name, _list(side.get(name))) for name in ("ports", "notPorts") if side.get(name) is not None]
                yield Count("max_ports_per_rule", f"{at}.{ports[0][0]}" if len(ports) == 1 else at,
                            sum(len(items) for _, items in ports),
                            ", ".join(f"{name} {len(items)}" for name, items in ports) if len(ports) > 1 else "")
                yield Count("max_fqdn_patterns", f"{at}.domains", len(_list(side.get("domains"))))
                in_rule += _calico_cidrs(side)
            cidrs.add(where, in_rule)
    yield cidrs.count()


class _Within:
    """Whether every count of `counts` is within its limit, counted in the same order and the same way
    (a test checks the two agree). Each list's length is compared before the list is looked into, so
    an oversized list is never walked: the answer is then False and `counts` names it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.cidrs = 0

    def object(self, obj: Any) -> bool:
        if not isinstance(obj, Mapping):
            return True
        flavor = _flavor(obj)
        if flavor is Flavor.KUBERNETES:
            spec = obj.get("spec")
            return not isinstance(spec, Mapping) or self._kubernetes(spec)
        if flavor is Flavor.CILIUM:
            return self._cilium(obj)
        if flavor is Flavor.CALICO:
            spec = obj.get("spec")
            return not isinstance(spec, Mapping) or self._calico(spec)
        return True

    def _selector(self, value: Any) -> bool:
        if not isinstance(value, Mapping):
            return True
        labels, expressions = value.get("matchLabels"), value.get("matchExpressions")
        size = (len(labels) if isinstance(labels, Mapping) else 0) + (
            len(expressions) if isinstance(expressions, list) else 0)
        return size <= self.limits.max_selector_requirements

    def _kubernetes(self, spec: Mapping[str, Any]) -> bool:
        limits = self.limits
        if not self._selector(spec.get("podSelector")):
            return False
        lists = [(_list(spec.get(section)), peer_key) for section, peer_key in _K8S_SECTIONS]
        if sum(len(items) for items, _ in lists) > limits.max_rules:
            return False
        cidrs = 0
        for items, peer_key in lists:
            for item in items:
                rule = _mapping(item)
                peers = _list(rule.get(peer_key))
                if len(peers) > limits.max_peers_per_rule or len(_list(rule.get("ports"))) > limits.max_ports_per_rule:
                    return False
                for raw in peers:
                    peer = _mapping(raw)
                    block = peer.get("ipBlock")
                    if isinstance(block, Mapping):
                        excepts = len(_list(block.get("except")))
                        if excepts > limits.max_excepts_per_peer:
                            return False
                        cidrs += 1 + excepts
                    if not (self._selector(peer.get("podSelector")) and self._selector(peer.get("namespaceSelector"))):
                        return False
        return cidrs <= limits.max_cidrs

    def _cilium(self, obj: Mapping[str, Any]) -> bool:
        limits = self.limits
        specs: list[Mapping[str, Any]] = [obj["spec"]] if isinstance(obj.get("spec"), Mapping) else []
        listed = _list(obj.get("specs"))
        if len(specs) + len(listed) > limits.max_specs:
            return False
        specs.extend(item for item in listed if isinstance(item, Mapping))
        if sum(len(_list(spec.get(section))) for spec in specs for section in _CILIUM_SECTIONS) > limits.max_rules:
            return False
        for spec in specs:
            if not (self._selector(spec.get("endpointSelector")) and self._selector(spec.get("nodeSelector"))):
                return False
            for section in _CILIUM_SECTIONS:
                peer_fields = _CILIUM_PEER_FIELDS["ingress" if section.startswith("ingress") else "egress"]
                for item in _list(spec.get(section)):
                    if not self._cilium_rule(_mapping(item), peer_fields):
                        return False
        return self.cidrs <= limits.max_cidrs

    def _cilium_rule(self, rule: Mapping[str, Any], peer_fields: tuple[str, ...]) -> bool:
        limits = self.limits
        present = [(name, _list(rule.get(name))) for name in peer_fields if rule.get(name) is not None]
        if sum(len(items) for _, items in present) > limits.max_peers_per_rule:
            return False
        if len(_list(rule.get("toFQDNs"))) > limits.max_fqdn_patterns:
            return False
        if sum(max(1, len(_list(_mapping(e).get("ports")))) for e in _list(rule.get("toPorts"))) > \
                limits.max_ports_per_rule:
            return False
        for name, items in present:
            if name in ("toCIDR", "fromCIDR"):
                self.cidrs += len(items)
            elif name in _SELECTOR_LISTS:
                if not all(self._selector(raw) for raw in items):
                    return False
            elif name in ("toCIDRSet", "fromCIDRSet"):
                for raw in items:
                    entry = _mapping(raw)
                    excepts = len(_list(entry.get("except")))
                    if excepts > limits.max_excepts_per_peer or not self._selector(entry.get("cidrGroupSelector")):
                        return False
                    self.cidrs += excepts + (entry.get("cidr") is not None)
            elif name == "toServices" and not all(
                    self._selector(_mapping(_mapping(raw).get("k8sServiceSelector")).get("selector")) for raw in items):
                return False
        return True

    def _calico(self, spec: Mapping[str, Any]) -> bool:
        limits = self.limits
        lists = [_list(spec.get(section)) for section in _CALICO_SECTIONS]
        if sum(len(items) for items in lists) > limits.max_rules:
            return False
        cidrs = 0
        for items in lists:
            for item in items:
                rule = _mapping(item)
                for side_key in _CALICO_SIDES:
                    side = _mapping(rule.get(side_key))
                    if (sum(len(names) for _, names in _calico_side_peers(side)) > limits.max_peers_per_rule
                            or len(_list(side.get("notNets"))) > limits.max_excepts_per_peer
                            or len(_list(side.get("ports"))) + len(_list(side.get("notPorts")))
                            > limits.max_ports_per_rule
                            or len(_list(side.get("domains"))) > limits.max_fqdn_patterns):
                        return False
                    cidrs += _calico_cidrs(side)
        return cidrs <= limits.max_cidrs
