"""Does an allow rule carry a flow: a flow's ends as Cilium sees them (labels with the namespace's folded in, the
reserved identities), matched against a rule's peers and ports with Cilium's semantics, answering yes, no, or
maybe when the flow cannot settle it (offline/flow_match.py counts the answers).

A CIDR peer (toCIDR, ipBlock, networks) selects only addresses outside the cluster, never a pod or a node
(Cilium documentation, "Layer 3 Examples / IP/CIDR based": CIDR rules do not apply to traffic where both sides
are managed by Cilium or use a node's address); entities by the reserved labels Cilium gives each identity
(core/identities.py; dual-stack clusters label outside addresses world-ipv4 or world-ipv6 alone). toServices,
toGroups, selected nodes, named ports, ICMP types, Calico network sets not resolved, a namespace selector on
labels nobody gave (the namespace is neither in the inventory nor labelled on the identity), an IPv4-mapped
CIDR (Cilium versions read it differently) and the host entity against a remote node (an old Cilium setting)
are "maybe". tests/oracle/test_flow_match_oracle.py checks the answers against an independent evaluator.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from webhook.core.facts import INTERNET_ENTITIES
from webhook.core.flow_evidence import ObservedPeer, workload_labels
from webhook.core.fqdn import pattern_matches
from webhook.core.identities import RESERVED_IDENTITIES
from webhook.core.netpolicy import (
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
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, CILIUM_NAMESPACE_LABELS_PREFIX, NAMESPACE_NAME_LABEL
from webhook.offline.flow_breadth import address
from webhook.offline.flows import Endpoint


class Match(Enum):
    NO = 0
    YES = 1
    MAYBE = 2


@dataclass(frozen=True)
class FlowEnd:
    """A flow's endpoint as matching reads it: labels with the namespace's folded in, Cilium's way."""

    namespace: str
    labels: Mapping[str, str]  # pod labels plus io.kubernetes.pod.namespace and namespace-label keys
    namespace_labels: Mapping[str, str]
    reserved: frozenset[str]  # entity names of the reserved labels (world, host, ...)
    ip: str
    names: tuple[str, ...]
    # The namespace's labels are known (the inventory lists the namespace, or Cilium carried them on the identity):
    # otherwise a selector on them cannot be settled.
    namespace_known: bool = True

    @property
    def is_pod(self) -> bool:
        return bool(self.namespace) and not self.reserved

    @property
    def is_world(self) -> bool:
        # Dual-stack clusters give outside addresses reserved:world-ipv4 or world-ipv6 only (pkg/labels/cidr.go).
        return any(r.startswith("world") for r in self.reserved) or (not self.namespace and not self.reserved)


def flow_end(end: Endpoint, ip: str, names: tuple[str, ...], namespaces: Mapping[str, Mapping[str, str]]) -> FlowEnd:
    reserved = frozenset(k.removeprefix("reserved:") for k in end.labels if k.startswith("reserved:"))
    if not reserved and not end.namespace and not end.labels and end.identity in ENTITY_IDS:
        reserved = frozenset({ENTITY_IDS[end.identity]})  # a record without labels: its numeric identity
    ns_labels: dict[str, str] = {}
    if end.namespace:
        ns_labels = {NAMESPACE_NAME_LABEL: end.namespace, **namespaces.get(end.namespace, {})}
        for key, value in end.labels.items():  # Cilium carries the namespace's labels on the pod's identity
            if key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX):
                ns_labels.setdefault(key.removeprefix(CILIUM_NAMESPACE_LABELS_PREFIX), value)
    labels = dict(end.labels)
    if end.namespace:
        labels[CILIUM_NAMESPACE_LABEL] = end.namespace
        labels.update({CILIUM_NAMESPACE_LABELS_PREFIX + k: v for k, v in ns_labels.items()})
    known = not end.namespace or end.namespace in namespaces or any(
        k.startswith(CILIUM_NAMESPACE_LABELS_PREFIX) for k in end.labels)
    return FlowEnd(end.namespace, labels, ns_labels, reserved, ip, names, known)


_NAME_KEYS = frozenset({NAMESPACE_NAME_LABEL, CILIUM_NAMESPACE_LABEL,
                        CILIUM_NAMESPACE_LABELS_PREFIX + NAMESPACE_NAME_LABEL})


def _in_scope(scope: NamespaceScope, policy: NormalizedPolicy, end: FlowEnd) -> Match:
    if scope.scope is Scope.OWN:
        return _yes(end.namespace == policy.namespace)
    if scope.scope is Scope.NAMED:
        return _yes(end.namespace in scope.names)
    if scope.scope is Scope.ALL and end.namespace in scope.names:
        return Match.NO
    # ALL keeps its selector: an open one (only NotIn, DoesNotExist) still rules out the namespaces it names by
    # label. A Cilium selector mixes pod and namespace keys; Kubernetes and Calico namespace selectors read
    # namespace labels alone (a pod label must not satisfy them).
    cilium = policy.flavor is Flavor.CILIUM
    labels = end.labels if cilium else end.namespace_labels
    if not end.namespace_known and any(
            r.key not in _NAME_KEYS and (not cilium or r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX))
            for r in scope.selector.requirements):
        return Match.MAYBE  # it reads namespace labels nobody gave
    return _yes(scope.selector.matches(labels))


def _yes(value: bool) -> Match:
    return Match.YES if value else Match.NO


def selects(policy: NormalizedPolicy, subject: Subject, end: FlowEnd) -> Match:
    """Whether the subject selects the pod: MAYBE when that depends on namespace labels not known."""
    if subject.selects != "pods" or not end.is_pod or not subject.selector.matches(end.labels):
        return Match.NO
    return _in_scope(subject.namespaces, policy, end)


@dataclass(frozen=True)
class Partial:
    """A rule's answer for a flow before its outside address is known: what the other peers and the ports say,
    and the CIDR peers left to check against the address (flows to many addresses share everything else)."""

    others: Match  # the peers that are not CIDRs, with the ports
    ports: Match
    cidrs: tuple[Peer, ...] = ()

    def with_address(self, ip: str, outside: bool) -> Match:
        if self.others is Match.YES or not self.cidrs or not outside or self.ports is Match.NO:
            return self.others
        by_cidr = _best(_cidr_matches(p, ip) for p in self.cidrs)
        if by_cidr is Match.NO:
            return self.others
        return Match.YES if by_cidr is Match.YES and self.ports is Match.YES else Match.MAYBE


_NO = Partial(Match.NO, Match.NO)


def rule_matches_but_addresses(policy: NormalizedPolicy, rule: Rule, peer: FlowEnd, protocol: str,
                               port: int) -> Partial:
    by_port = _ports_match(rule, protocol, port)
    if by_port is Match.NO:
        return _NO
    cidrs = tuple(p for p in rule.peers if p.type is PeerType.CIDR and not p.raw.get("matches_nothing"))
    by_peer = Match.YES if rule.any_peer else _best(_peer_matches(policy, p, peer) for p in rule.peers
                                                    if p.type is not PeerType.CIDR)
    others = Match.NO if by_peer is Match.NO else (
        Match.YES if by_peer is Match.YES and by_port is Match.YES else Match.MAYBE)
    return Partial(others, by_port, cidrs if peer.is_world else ())


def _best(matches: Iterable[Match]) -> Match:
    best = Match.NO
    for m in matches:
        if m is Match.YES:
            return m
        if m is Match.MAYBE:
            best = m
    return best


def _ports_match(rule: Rule, protocol: str, port: int) -> Match:
    if rule.icmp:
        if protocol.startswith("ICMP"):
            return Match.MAYBE  # ICMP types are not read from the flow
        if not rule.ports:
            return Match.NO
    if not rule.ports:
        return Match.YES
    return _best(_port_matches(p, protocol, port) for p in rule.ports)


def _port_matches(entry: PortRange, protocol: str, port: int) -> Match:
    if entry.protocol not in ("ANY", protocol):
        return Match.NO
    if entry.name:
        return Match.MAYBE  # a named port is resolved per pod; the flow has only the number
    if entry.start is None:
        return Match.YES
    return Match.YES if port and entry.covers(protocol, port) else Match.NO


def _peer_matches(policy: NormalizedPolicy, peer: Peer, end: FlowEnd) -> Match:
    if peer.raw.get("matches_nothing"):
        return Match.NO
    if peer.type is PeerType.PODS:
        if not end.is_pod or peer.namespaces is None or (peer.pods is not None and not peer.pods.matches(end.labels)):
            return Match.NO
        return _in_scope(peer.namespaces, policy, end)
    if peer.type is PeerType.CIDR:
        return _cidr_matches(peer, end.ip) if end.is_world else Match.NO
    if peer.type is PeerType.ENTITY:
        return _entity_matches(peer.entity, end)
    if peer.type is PeerType.FQDN:
        return Match.YES if end.is_world and _fqdn_matches(peer, end.names) else Match.NO
    if peer.type is PeerType.NODES:
        if not end.reserved & {"host", "remote-node"}:
            return Match.NO
        return Match.YES if peer.raw.get("all") else Match.MAYBE
    if peer.type is PeerType.GROUP:  # cloud groups, unresolved Calico network sets: addresses outside the cluster
        return Match.MAYBE if end.is_world else Match.NO
    return Match.MAYBE  # toServices: the flow shows the backend, not the service


def _entity_matches(entity: str, end: FlowEnd) -> Match:
    if entity == "all":
        return Match.YES
    if entity == "cluster":
        return Match.YES if not end.is_world else Match.NO
    if entity in INTERNET_ENTITIES:
        if not end.is_world:
            return Match.NO
        family = (6 if ":" in end.ip else 4) if end.ip else None  # no parse: the entity needs the family only
        wants = INTERNET_ENTITIES[entity]
        return Match.YES if family is None or wants[family == 6] else Match.NO
    if entity in RESERVED_IDENTITIES:
        if entity in end.reserved:
            return Match.YES
        # `host` also covers the other nodes where Cilium runs without a remote-node identity (treatRemoteNodeAsHost,
        # an old opt-out): a setting the flow does not show.
        return Match.MAYBE if entity == "host" and "remote-node" in end.reserved else Match.NO
    return Match.MAYBE  # an entity this version does not know


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _span(cidr: str) -> tuple[int, int, int] | None:
    """(version, first, last) of a CIDR as integers: membership without building address objects."""
    net = _network(cidr)
    return None if net is None else (net.version, int(net.network_address), int(net.broadcast_address))


def _as_int(ip: str) -> tuple[int, int] | None:
    """(version, integer) of an address; socket's parser, a tenth of ipaddress's cost per flow."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        return (6 if family == socket.AF_INET6 else 4), int.from_bytes(socket.inet_pton(family, ip), "big")
    except (OSError, ValueError):
        return None


def in_cidr(ip: str, cidr: str, excepts: tuple[str, ...]) -> bool:
    found, net = _as_int(ip), _span(cidr)
    if found is None or net is None or found[0] != net[0] or not net[1] <= found[1] <= net[2]:
        return False
    return not any((e := _span(x)) is not None and e[0] == found[0] and e[1] <= found[1] <= e[2] for x in excepts)


def _cidr_matches(peer: Peer, ip: str) -> Match:
    if in_cidr(ip, peer.cidr, peer.excepts):
        return Match.YES
    # An IPv4-mapped IPv6 CIDR (::ffff:0:0/96): older Cilium read it as IPv4 (Go's net.ParseCIDR), newer keeps
    # it IPv6; which one runs is not in the flow.
    return Match.MAYBE if _mapped_in(ip, peer.cidr) else Match.NO


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _mapped_in(ip: str, cidr: str) -> bool:
    """An IPv4 address whose IPv4-mapped IPv6 form is in an IPv6 CIDR of the mapped range."""
    found, net = address(ip), _network(cidr)
    if found is None or found.version != 4 or net is None or net.version != 6:
        return False
    mapped = ipaddress.IPv6Address(int(_MAPPED.network_address) + int(found))
    return net.prefixlen >= _MAPPED.prefixlen and mapped in net  # inside ::ffff:0:0/96


def _fqdn_matches(peer: Peer, names: tuple[str, ...]) -> bool:
    wanted = peer.fqdn_name.rstrip(".").lower()
    for name in names:
        name = name.rstrip(".").lower()
        if (wanted and name == wanted) or (peer.fqdn_pattern and pattern_matches(peer.fqdn_pattern, name)):
            return True
    return False


# -- what the counts say ------------------------------------------------------------------------------------


# Reserved identities by label, most specific first: the API server's address also carries reserved:host or
# reserved:remote-node; world-ipv4/ipv6 are world split by family (dual-stack clusters).
ENTITY_LABELS = ("kube-apiserver", "host", "remote-node", "health", "ingress", "init", "unmanaged",
                 "world", "world-ipv4", "world-ipv6")
# Cilium's numeric reserved identities (pkg/identity/numericidentity.go), for records without labels.
ENTITY_IDS = {1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
              7: "kube-apiserver", 8: "ingress", 9: "world", 10: "world"}


def entity_of(endpoint: Endpoint) -> str:
    """The reserved identity of a flow's end ("" for a pod): by its labels, else by its numeric identity."""
    entity = next((e for e in ENTITY_LABELS if f"reserved:{e}" in endpoint.labels), "")
    if not entity and not endpoint.namespace and not endpoint.labels:
        entity = ENTITY_IDS.get(endpoint.identity, "")
    return entity


def observed_peer(endpoint: Endpoint, ip: str, names: tuple[str, ...] = ()) -> ObservedPeer:
    """The other end of a flow as evidence: a reserved identity (entity or world), else a pod, else an address
    outside the cluster (with the DNS names Cilium saw for it)."""
    entity = entity_of(endpoint)
    if entity.startswith("world") or (not entity and not endpoint.namespace):
        return ObservedPeer("world", ip=ip, names=tuple(sorted(set(names))))
    if entity:
        return ObservedPeer("entity", ip=ip, entity=entity)
    return ObservedPeer("pod", namespace=endpoint.namespace, labels=workload_labels(endpoint.labels))
