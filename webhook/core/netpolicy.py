"""The normalized policy model: one shape for NetworkPolicy, CiliumNetworkPolicy and
CiliumClusterwideNetworkPolicy, with API defaults applied and every element carrying the
field path it came from. Guardrails reason over this, never over the raw manifest, so one
rule covers all three kinds. `to_input()` is the JSON contract with the Rego (docs/input.md).

Size: just over 400 lines: the dataclasses of the normalized model and their one JSON form for the Rego
(`to_input`, docs/input.md), kept together so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from webhook.core.selectors import Selector

MAX_PORT = 65535
_T = TypeVar("_T")
PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP", "ANY"})


def updated(obj: _T, **changes: Any) -> _T:
    """A copy of a frozen model object with some fields changed, without dataclasses.replace's
    re-initialisation (which was ~9 % of a large Cilium policy's review: facts are attached to every
    peer and rule). Only for these plain models: they have no __post_init__ to re-run and keep their
    fields in __dict__, so the copy is one dict copy (copy.copy's reduce protocol cost ten times more).
    Only the dataclass fields are copied: nothing derived from the old values comes along."""
    new = object.__new__(type(obj))
    state = obj.__dict__
    fields = obj.__dataclass_fields__  # type: ignore[attr-defined]
    if not changes.keys() <= fields.keys():
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(changes.keys() - fields.keys()))}")
    new.__dict__.update(state if len(state) == len(fields) else {name: state[name] for name in fields}, **changes)
    return new


# Shared defaults: the models are frozen, so one empty selector or facts value serves every object (a
# default_factory built a new one for each of the thousands of peers and rules of a large policy).
_ANY_SELECTOR = Selector()


class Flavor(StrEnum):
    KUBERNETES = "kubernetes"
    CILIUM = "cilium"
    CALICO = "calico"  # projectcalico.org/v3 rules: ordered, with Allow/Deny/Log/Pass actions (webhook/kinds/calico.py)


class Direction(StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    # Skip the rest of this tier: the traffic goes on to the next tier (AdminNetworkPolicy's Pass, Calico's Pass),
    # ending at NetworkPolicy or the baseline tier. Never an allow: a guardrail that counts what a rule opens
    # reads only ALLOW rules (policies/lib allow_rules).
    PASS = "pass"


class PeerType(StrEnum):
    PODS = "pods"  # pods (endpoints) chosen by namespace + pod selectors
    CIDR = "cidr"
    ENTITY = "entity"  # Cilium entities: world, cluster, host, ...
    FQDN = "fqdn"
    SERVICE = "service"
    GROUP = "group"  # Cilium toGroups (cloud security groups)
    NODES = "nodes"  # Cilium fromNodes/toNodes


class Scope(StrEnum):
    """Which namespaces a peer or subject can be in."""

    OWN = "own"  # the policy's own namespace
    NAMED = "named"  # an explicit list of namespace names
    SELECTED = "selected"  # namespaces chosen by labels (a restricting selector)
    ALL = "all"  # every namespace, present and future (empty or open selector)


@dataclass(frozen=True)
class NamespaceScope:
    scope: Scope
    names: tuple[str, ...] = ()  # NAMED: the names; ALL: the names explicitly excluded
    selector: Selector = _ANY_SELECTOR

    def to_input(self) -> dict[str, Any]:
        return {"scope": self.scope._value_, "names": list(self.names), "selector": self.selector.to_input()}


@dataclass(frozen=True)
class PortRange:
    """One allowed port entry. start None means every port of the protocol."""

    protocol: str
    start: int | None = None
    end: int | None = None
    name: str = ""  # a named port (resolved per pod, so it stays symbolic)
    path: str = ""

    @property
    def all_ports(self) -> bool:
        """Every port of a protocol that has ports: an entry for VRRP, IGMP or ICMP (no ports at all) is
        that protocol only, not every port."""
        return not self.name and self.protocol in PORT_PROTOCOLS and (
            self.start is None or (self.start <= 1 and (self.end or 0) >= MAX_PORT))

    @property
    def span(self) -> int:
        if self.name:
            return 1
        if self.protocol not in PORT_PROTOCOLS:
            return 0  # VRRP, IGMP, ICMP: the protocol has no ports
        if self.start is None:
            return MAX_PORT
        return (self.end if self.end is not None else self.start) - self.start + 1

    def label(self) -> str:
        return self._label(self.all_ports)

    def _label(self, all_ports: bool) -> str:
        if self.name:
            return f"{self.protocol}/{self.name}"
        if self.protocol not in PORT_PROTOCOLS:
            return self.protocol
        if all_ports:
            return f"{self.protocol}/all ports" if self.protocol != "ANY" else "all ports"
        if self.end is not None and self.end != self.start:
            return f"{self.protocol}/{self.start}-{self.end}"
        return f"{self.protocol}/{self.start}"

    def covers(self, protocol: str, port: int) -> bool:
        if self.protocol not in ("ANY", protocol) or self.name:
            return False
        if self.start is None:
            return True
        return self.start <= port <= (self.end if self.end is not None else self.start)

    def to_input(self) -> dict[str, Any]:
        all_ports = self.all_ports
        return {"protocol": self.protocol, "port": self.start, "end_port": self.end, "name": self.name,
                "path": self.path, "all_ports": all_ports, "span": self.span, "label": self._label(all_ports)}


@dataclass(frozen=True)
class PeerFacts:
    """What a peer covers, computed in Python (facts.py) so the Rego needs no net.* built-ins."""

    internet_v4: bool = False
    internet_v6: bool = False
    public_v4_fraction: float = 0.0
    public_v6_fraction: float = 0.0
    all_namespaces: bool = False
    metadata_ips: tuple[str, ...] = ()  # metadata addresses inside the peer (after except)
    prefix_len: int | None = None
    family: int | None = None
    private_ranges: tuple[str, ...] = ()  # whole private ranges (RFC 1918, ULA) the peer covers
    other_namespaces: bool = False  # may match pods outside the policy's own namespace
    fqdn_suffix: str = ""  # the fixed part of a toFQDNs pattern after its last wildcard label
    fqdn_public_suffix: bool = False  # that fixed part is empty or a public suffix (*.com, *.github.io)
    fqdn_example: str = ""  # a name the pattern matches that anyone could register
    metadata_host: str = ""  # a cloud metadata host name a toFQDNs entry can reach
    infrastructure: tuple[str, ...] = ()  # infrastructure identities reached (host, remote-node, kube-apiserver)
    ignored_excepts: tuple[str, ...] = ()  # excepts that remove nothing (IPv4-mapped IPv6 under an IPv4 CIDR)
    nat64: bool = False  # an IPv6 CIDR holding the NAT64 prefix 64:ff9b::/96: the IPv4 internet through NAT64

    def to_input(self) -> dict[str, Any]:
        # Peers alike share one facts value (facts.enrich), so its scalars are laid out once (kept in the
        # instance's __dict__: functools.cached_property takes a lock per read on Python 3.11); the
        # lists are new on every call, as a caller may change what it is given.
        template: dict[str, Any] | None = self.__dict__.get("_template")
        if template is None:
            template = self.__dict__["_template"] = self._input()
        out = template.copy()
        out["metadata_ips"] = list(self.metadata_ips)
        out["private_ranges"] = list(self.private_ranges)
        out["infrastructure"] = list(self.infrastructure)
        out["ignored_excepts"] = list(self.ignored_excepts)
        return out

    def _input(self) -> dict[str, Any]:
        return {"internet_v4": self.internet_v4, "internet_v6": self.internet_v6,
                "internet": self.internet_v4 or self.internet_v6,
                "public_v4_fraction": round(self.public_v4_fraction, 6),
                "public_v6_fraction": round(self.public_v6_fraction, 6),
                "all_namespaces": self.all_namespaces, "metadata_ips": list(self.metadata_ips),
                "prefix_len": self.prefix_len, "family": self.family, "private_ranges": list(self.private_ranges),
                "other_namespaces": self.other_namespaces, "fqdn_suffix": self.fqdn_suffix,
                "fqdn_public_suffix": self.fqdn_public_suffix, "fqdn_example": self.fqdn_example,
                "metadata_host": self.metadata_host, "infrastructure": list(self.infrastructure),
                "ignored_excepts": list(self.ignored_excepts), "nat64": self.nat64}


_NO_PEER_FACTS = PeerFacts()


@dataclass(frozen=True)
class Peer:
    path: str
    type: PeerType
    namespaces: NamespaceScope | None = None  # PODS, SERVICE
    pods: Selector | None = None  # PODS: the pod part of the selector
    cidr: str = ""
    excepts: tuple[str, ...] = ()
    entity: str = ""
    fqdn_name: str = ""
    fqdn_pattern: str = ""
    service: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)  # GROUP / NODES details
    via: str = ""  # how it was spelled when that is not the obvious way (a reserved: selector)
    facts: PeerFacts = _NO_PEER_FACTS

    def describe(self) -> str:
        text = self._describe()
        return f"{text} ({self.via})" if self.via else text

    def _describe(self) -> str:
        if self.raw.get("matches_nothing"):
            return "no endpoint (the selector cannot match any)"
        if self.type is PeerType.NODES:
            return "every node" if self.raw.get("all") else "selected nodes"
        if self.type is PeerType.CIDR:
            text = self.cidr + (f" except {', '.join(self.excepts)}" if self.excepts else "")
            if self.facts.nat64:
                text += " (it holds 64:ff9b::/96, the IPv4 internet through a NAT64 gateway)"
            if self.facts.ignored_excepts:
                many = len(self.facts.ignored_excepts) > 1
                it, removes = ("them", "they remove") if many else ("it", "it removes")
                text += (f" ({', '.join(self.facts.ignored_excepts)} {'are' if many else 'is'} IPv4-mapped IPv6: "
                         f"Cilium keeps {it} as IPv6, so {removes} no IPv4 address)")
            return text
        if self.type is PeerType.ENTITY:
            return f"entity {self.entity}"
        if self.type is PeerType.FQDN:
            return self.fqdn_name or self.fqdn_pattern
        if self.type is PeerType.SERVICE:
            return f"service {self.service}"
        if self.type is PeerType.PODS and self.namespaces is not None:
            where = {"own": "this namespace", "all": "every namespace",
                     "named": "namespaces " + ", ".join(self.namespaces.names),
                     "selected": "labelled namespaces"}[self.namespaces.scope._value_]
            return f"pods in {where}"
        return self.type._value_

    def to_input(self) -> dict[str, Any]:
        return {
            "path": self.path, "type": self.type._value_,
            "namespaces": self.namespaces.to_input() if self.namespaces else None,
            "pods": self.pods.to_input() if self.pods else None,
            "cidr": self.cidr, "except": list(self.excepts), "entity": self.entity,
            "fqdn": {"name": self.fqdn_name, "pattern": self.fqdn_pattern} if self.type is PeerType.FQDN else None,
            "service": self.service, "raw": dict(self.raw), "via": self.via, "description": self.describe(),
            "facts": self.facts.to_input(),
        }


@dataclass(frozen=True)
class RuleFacts:
    internet_v4: bool = False
    internet_v6: bool = False
    internet_cidrs: tuple[str, ...] = ()  # the peers that together make up the internet coverage
    all_namespaces: bool = False
    metadata: tuple[str, ...] = ()  # metadata addresses reachable on a metadata port
    allows_everything: bool = False  # every peer on every port
    every_port: bool = False  # allow rules: the union of the port entries reaches port_coverage of one protocol
    port_coverage: float = 0.0  # the largest share of 1-65535 the rule opens for one protocol
    open_protocol: str = ""  # the protocol counted as every port when the entries spell it in pieces

    @property
    def internet(self) -> bool:
        return self.internet_v4 or self.internet_v6

    def to_input(self) -> dict[str, Any]:
        return {"internet_v4": self.internet_v4, "internet_v6": self.internet_v6,
                "internet": self.internet_v4 or self.internet_v6, "internet_cidrs": list(self.internet_cidrs),
                "all_namespaces": self.all_namespaces, "metadata": list(self.metadata),
                "allows_everything": self.allows_everything, "every_port": self.every_port,
                "port_coverage": round(self.port_coverage, 6), "open_protocol": self.open_protocol}


_NO_RULE_FACTS = RuleFacts()


@dataclass(frozen=True)
class Rule:
    """One ingress/egress (or Cilium *Deny) rule of one subject."""

    path: str
    subject: int
    direction: Direction
    action: Action
    peers: tuple[Peer, ...] = ()
    any_peer: bool = False  # no peer restriction: every source/destination matches
    ports: tuple[PortRange, ...] = ()  # empty: no port restriction
    icmp: tuple[Mapping[str, Any], ...] = ()
    l7: Mapping[str, Any] = field(default_factory=dict)
    matches_nothing: bool = False  # a Cilium rule with no peers and no ports selects no traffic
    effective: bool = True  # False for K8s rules whose direction policyTypes leaves out
    facts: RuleFacts = _NO_RULE_FACTS

    @property
    def all_ports(self) -> bool:
        """Literally every port: no port entries, or one entry without a port (or 1-65535)."""
        return not self.icmp and (not self.ports or any(p.all_ports for p in self.ports))

    @property
    def every_port(self) -> bool:
        """What the guardrails judge: all_ports, or entries that together open every port (facts.py)."""
        return self.all_ports or self.facts.every_port

    def ports_label(self) -> str:
        return self._ports_label(self.all_ports)

    def _ports_label(self, all_ports: bool) -> str:
        if all_ports:
            return "every port"
        parts = [p.label() for p in self.ports] + (["ICMP"] if self.icmp else [])
        if self.facts.every_port:
            return f"{', '.join(parts)} ({self.open_ports_share()}: counts as every port)"
        return ", ".join(parts)

    def open_ports_share(self) -> str:
        """How much of one protocol's port space entries that count as every port open, in words."""
        closed = MAX_PORT - round(self.facts.port_coverage * MAX_PORT)
        protocol = self.facts.open_protocol or "TCP"
        if closed == 0:
            return f"all {MAX_PORT} {protocol} ports"
        return f"all but {closed} of the {MAX_PORT} {protocol} ports"

    def to_input(self) -> dict[str, Any]:
        all_ports = self.all_ports
        return {
            "path": self.path, "subject": self.subject, "direction": self.direction._value_,
            "action": self.action._value_, "peers": [p.to_input() for p in self.peers],
            "any_peer": self.any_peer, "ports": [p.to_input() for p in self.ports],
            "all_ports": all_ports or self.facts.every_port, "literal_all_ports": all_ports,
            "ports_label": self._ports_label(all_ports),
            "icmp": [dict(i) for i in self.icmp],
            "l7": dict(self.l7), "matches_nothing": self.matches_nothing, "effective": self.effective,
            "facts": self.facts.to_input(),
        }


@dataclass(frozen=True)
class Subject:
    """What a policy (or one entry of a Cilium `specs` list) applies to."""

    index: int
    path: str  # "spec" or "specs[1]"
    selector_path: str
    selects: str  # "pods" or "nodes"
    selector: Selector
    namespaces: NamespaceScope
    isolates: Mapping[str, bool]  # direction -> does the policy make the subject default-deny
    default_deny_explicit: Mapping[str, bool | None]  # Cilium enableDefaultDeny as written
    policy_types_explicit: bool = True

    def to_input(self) -> dict[str, Any]:
        return {
            "index": self.index, "path": self.path, "selector_path": self.selector_path,
            "selects": self.selects, "selector": self.selector.to_input(),
            "namespaces": self.namespaces.to_input(), "isolates": dict(self.isolates),
            "default_deny_explicit": dict(self.default_deny_explicit),
            "policy_types_explicit": self.policy_types_explicit,
        }


@dataclass(frozen=True)
class Reach:
    """Several rules that reach the internet only together (0.0.0.0/1 here, 128.0.0.0/1 there).

    Only families that no single contributing rule covers on its own are set: single rules are
    reported by their own findings.
    """

    internet_v4: bool = False
    internet_v6: bool = False
    rules: tuple[str, ...] = ()  # paths of the rules that contribute
    cidrs: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # ports_label of each contributing rule

    def to_input(self) -> dict[str, Any]:
        return {"internet_v4": self.internet_v4, "internet_v6": self.internet_v6,
                "internet": self.internet_v4 or self.internet_v6, "rules": list(self.rules),
                "cidrs": list(self.cidrs), "ports": list(self.ports)}


@dataclass(frozen=True)
class DirectionFacts:
    """Per direction, for each group of spec entries that may select the same pods."""

    combined_all_ports: tuple[Reach, ...] = ()  # rules with no port restriction, together
    combined_any_ports: tuple[Reach, ...] = ()  # all allow rules together, families not in combined_all_ports

    def to_input(self) -> dict[str, Any]:
        return {"combined_all_ports": [r.to_input() for r in self.combined_all_ports],
                "combined_any_ports": [r.to_input() for r in self.combined_any_ports]}


@dataclass(frozen=True)
class NormalizedPolicy:
    kind: str
    flavor: Flavor
    name: str
    namespace: str
    clusterwide: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    subjects: tuple[Subject, ...]
    rules: tuple[Rule, ...]
    facts: Mapping[str, DirectionFacts] = field(default_factory=dict)  # by direction, filled by facts.enrich
    # Where the policy sits among the tiers that decide before and after NetworkPolicy: "" for the kinds without
    # tiers (NetworkPolicy, Cilium's); "Admin" / "Baseline" for the network-policy-api kinds; a Calico tier name.
    tier: str = ""
    # The order within the tier, lower first (AdminNetworkPolicy and ClusterNetworkPolicy `priority`, Calico
    # `order`); None where the kind has none.
    priority: float | None = None
    # Rules that neither allow nor deny (Calico's Log: record the packet, go on to the next rule), by path: for
    # explain; not in the engine input, as no guardrail has anything to judge in them.
    passive: tuple[str, ...] = ()

    def to_input(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "flavor": self.flavor._value_, "name": self.name, "namespace": self.namespace,
            "clusterwide": self.clusterwide, "tier": self.tier, "priority": self.priority,
            "labels": dict(self.labels), "annotations": dict(self.annotations),
            "subjects": [s.to_input() for s in self.subjects], "rules": [r.to_input() for r in self.rules],
            "facts": {d: f.to_input() for d, f in self.facts.items()},
        }
