"""CIDR and reachability facts computed in Python and handed to the Rego.

regorus has no net.cidr_intersects / net.cidr_merge, and literal checks are bypassed in
practice (0.0.0.0/1 + 128.0.0.0/1, a /0 with a token `except`, ::ffff:0:0/96), so coverage is
computed here with integer interval arithmetic over the standard `ipaddress` module.

Size: over 400 lines on purpose for now: every fact here is computed from the same peers in one pass with
shared, bounded caches (peer facts keyed on content, coverages on (cidr, excepts)), and the per-review cost is
measured in bench/. The self-contained arithmetic already lives apart (coverage.py, fqdn.py, ports.py); the
next cut would be subject/selector facts from address facts.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from threading import Lock

from webhook.core.coverage import Opening, figures
from webhook.core.deadline import check as check_deadline
from webhook.core.fqdn import metadata_host, wildcard_reach
from webhook.core.netpolicy import (
    Action,
    Direction,
    DirectionFacts,
    NormalizedPolicy,
    Peer,
    PeerFacts,
    PeerType,
    Reach,
    Rule,
    RuleFacts,
    Scope,
    Subject,
    updated,
)
from webhook.core.ports import PortSet, port_set
from webhook.core.ports import merge as merge_intervals
from webhook.core.selectors import Requirement, parse_selector, satisfiable
from webhook.core.shape import ShapeError

Interval = tuple[int, int]  # inclusive [start, end]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates): not reachable on the
# public internet, so left out of "how much of the internet does this cover".
_IPV4_NON_PUBLIC = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)
# Global unicast (RFC 4291 section 2.4): the IPv6 internet.
_IPV6_PUBLIC = ("2000::/3",)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Whole private ranges a single peer should not open up (RFC 1918, RFC 6598 shared, RFC 4193 ULA).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")

INTERNET_ENTITIES = {"world": (True, True), "world-ipv4": (True, False), "world-ipv6": (False, True),
                     "all": (True, True)}
ALL_NAMESPACE_ENTITIES = frozenset({"all", "cluster"})
# The cluster's own infrastructure (no-sensitive-entities decides which of these it judges).
INFRASTRUCTURE_ENTITIES = frozenset({"host", "remote-node", "kube-apiserver", "health", "init", "ingress",
                                     "unmanaged"})
# The labels the API server puts on the default/kubernetes Service.
API_SERVER_SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
EVERYTHING_ENTITIES = frozenset({"all", "world"})


@dataclass(frozen=True)
class FactParams:
    """The configuration facts depend on (from the guardrails' parameters)."""

    metadata_ips: tuple[str, ...] = ("169.254.169.254", "fd00:ec2::254")
    metadata_ports: tuple[int, ...] = (80,)
    internet_coverage: float = 0.9  # share of the public address space that counts as "the internet"
    port_coverage: float = 0.9  # share of 1-65535 of one protocol that counts as "every port"


def parse_network(text: str, path: str) -> IPNetwork:
    """A CIDR (or bare address) as a network; IPv4-mapped IPv6 becomes the IPv4 it denotes."""
    net = _read_network(text)
    if net is None:
        raise ShapeError(path, f"{text!r} is not a valid CIDR")
    return net


# Parsing with ipaddress dominates the cost of the facts, and a policy repeats its strings (the same
# CIDR in several rules, the old and new object of an UPDATE), so each string is parsed once. The
# entries are small (a string and a network), so the bound keeps the memory to a few MB.
_PARSED_CIDRS = 16384


@lru_cache(maxsize=_PARSED_CIDRS)
def _read_network(text: str) -> IPNetwork | None:
    net = _read_raw(text)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        base = int(net.network_address) - int(_MAPPED.network_address)
        return ipaddress.IPv4Network((base, net.prefixlen - 96))
    return net


@lru_cache(maxsize=_PARSED_CIDRS)
def _read_raw(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def _interval(net: IPNetwork) -> Interval:
    return int(net.network_address), int(net.broadcast_address)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    return list(merge_intervals(intervals))  # one implementation for addresses and ports (ports.py)


def subtract(base: Sequence[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """`base` minus the holes: what is left of each base interval, in base order. The holes are
    merged and sorted once; each base interval finds its first hole by bisection and walks only the
    holes inside it, so the work is O((base + holes) log holes + output)."""
    merged = merge(holes)
    ends = [h_end for _, h_end in merged]
    result: list[Interval] = []
    for start, end in base:
        at = start
        k = bisect_left(ends, start)  # the first hole that ends at or after the base starts
        while k < len(merged) and merged[k][0] <= end:
            h_start, h_end = merged[k]
            if at < h_start:
                result.append((at, h_start - 1))
            at = max(at, h_end + 1)
            k += 1
        if at <= end:
            result.append((at, end))
    return result


def intersect_size(a: Sequence[Interval], b: Sequence[Interval]) -> int:
    """The sum of the overlaps of every pair (one from `a`, one from `b`): the size of the intersection
    when each side is merged. Two pointers when both sides are sorted and disjoint (merged, the usual
    case), else a sweep over the sorted boundaries: O((a + b) log(a + b))."""
    if _disjoint(a) and _disjoint(b):
        return _merged_intersect_size(a, b)
    events: list[tuple[int, int, int]] = []  # (position, change of a's depth, change of b's depth)
    for start, end in a:
        events += ((start, 1, 0), (end + 1, -1, 0))
    for start, end in b:
        events += ((start, 0, 1), (end + 1, 0, -1))
    events.sort()
    total = depth_a = depth_b = 0
    previous = 0
    for position, change_a, change_b in events:
        if depth_a and depth_b:
            total += depth_a * depth_b * (position - previous)
        depth_a += change_a
        depth_b += change_b
        previous = position
    return total


def _merged_intersect_size(a: Sequence[Interval], b: Sequence[Interval]) -> int:
    """intersect_size of two merged (sorted, disjoint) sides: two pointers. Coverage holds merged
    intervals only, so its figures skip intersect_size's check of both sides."""
    total = i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            total += hi - lo + 1
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _public_size(intervals: Sequence[Interval], public: Sequence[Interval]) -> int:
    """intersect_size with a public space (merged by construction, so only `intervals` is checked)."""
    return _merged_intersect_size(intervals, public) if _disjoint(intervals) else intersect_size(intervals, public)


def _disjoint(intervals: Sequence[Interval]) -> bool:
    """Sorted, each interval well formed and apart from the next."""
    return all(s <= e for s, e in intervals) and all(
        intervals[k][1] < intervals[k + 1][0] for k in range(len(intervals) - 1))


_V4_ALL: list[Interval] = [(0, 2**32 - 1)]
_V6_ALL: Interval = (0, 2**128 - 1)
V4_PUBLIC = subtract(_V4_ALL, [_interval(ipaddress.ip_network(c)) for c in _IPV4_NON_PUBLIC])
V6_PUBLIC = merge(_interval(ipaddress.ip_network(c)) for c in _IPV6_PUBLIC)
_V4_PUBLIC_SIZE = sum(e - s + 1 for s, e in V4_PUBLIC)
_V6_PUBLIC_SIZE = sum(e - s + 1 for s, e in V6_PUBLIC)


@lru_cache(maxsize=64)
def _network_interval(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr)
    return (net.version, *_interval(net))


def nat64_v4(v6: Iterable[Interval]) -> list[Interval]:
    """The IPv4 addresses IPv6 ranges reach through NAT64 (RFC 6052's 64:ff9b::/96: 64:ff9b::a.b.c.d is
    a.b.c.d behind a NAT64 gateway). Whether a cluster has one is not known, so the reading that allows
    more counts them: 64:ff9b::/96 (or ::/0) is the IPv4 internet too."""
    lo, hi = _interval(_NAT64)
    return [(max(s, lo) - lo, min(e, hi) - lo) for s, e in v6 if s <= hi and e >= lo]


@dataclass(frozen=True)
class Coverage:
    """The address ranges a set of CIDR peers reaches, per family, after their excepts (merged: sorted
    and disjoint). A coverage is shared by every peer and rule that asks for it (_COVERAGES), so its
    figures are computed once, on first use."""

    v4: tuple[Interval, ...] = ()
    v6: tuple[Interval, ...] = ()

    @property
    def public_v4_fraction(self) -> float:
        return self._fractions()[0]

    @property
    def public_v6_fraction(self) -> float:
        return self._fractions()[1]

    def _fractions(self) -> tuple[float, float]:
        """(IPv4 with NAT64, IPv6) shares of the public space, kept in the instance's __dict__
        (functools.cached_property takes a lock per read on Python 3.11)."""
        found: tuple[float, float] | None = self.__dict__.get("_shares")
        if found is None:
            if not self.v6:
                v4 = _public_size(self.v4, V4_PUBLIC) / _V4_PUBLIC_SIZE if self.v4 else 0.0
            else:
                v4 = _public_size(merge([*self.v4, *nat64_v4(self.v6)]), V4_PUBLIC) / _V4_PUBLIC_SIZE
            v6 = _public_size(self.v6, V6_PUBLIC) / _V6_PUBLIC_SIZE if self.v6 else 0.0
            found = self.__dict__["_shares"] = (v4, v6)
        return found

    def covers_network(self, cidr: str) -> bool:
        version, start, end = _network_interval(cidr)
        ranges = self.v4 if version == 4 else self.v6
        return any(s <= start and end <= e for s, e in ranges)

    def contains(self, address: str) -> bool:
        ip = _address(address)
        value = int(ip)
        ranges = self.v4 if ip.version == 4 else self.v6
        return any(s <= value <= e for s, e in ranges)


_CoverageKey = tuple[str, tuple[str, ...]]  # (cidr, excepts): all a coverage depends on


class _CoverageCache:
    """Coverages already computed, least recently used first out, bounded by the intervals they hold
    rather than by their number: one peer with a thousand excepts weighs a thousand, so requests
    full of excepts cannot grow the memory of a long-running worker (about 130 bytes an interval).

    Keyed on the CIDR and its excepts only: the field path a peer sits at changes the message of a
    malformed CIDR, never a coverage, and errors are not cached (each raises with its own path). So
    the same CIDR in every entry of `specs` is cut into intervals once."""

    def __init__(self, max_intervals: int) -> None:
        self.max_intervals = max_intervals
        self.entries: OrderedDict[_CoverageKey, Coverage] = OrderedDict()
        self.held = 0
        self.lock = Lock()  # gthread: requests of one worker share the cache

    def get(self, cidr: str, excepts: tuple[str, ...], path: str, cidr_path: str) -> Coverage:
        key = (cidr, excepts)
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        cov = _cidr_coverage(cidr, excepts, path, cidr_path)
        weight = self.weight(key, cov)
        with self.lock:
            if key not in self.entries and weight <= self.max_intervals:
                self.entries[key] = cov
                self.held += weight
                while self.held > self.max_intervals:
                    old_key, old = self.entries.popitem(last=False)
                    self.held -= self.weight(old_key, old)
        return cov

    @staticmethod
    def weight(key: _CoverageKey, cov: Coverage) -> int:
        return len(cov.v4) + len(cov.v6) + len(key[1]) + 1


# Facts ask for a peer's coverage several times (peer, rule, combined reach); keep them within a request.
_COVERAGES = _CoverageCache(max_intervals=1 << 18)
_NO_COVERAGE = Coverage()


def peer_coverage(peer: Peer) -> Coverage:
    if peer.type is not PeerType.CIDR:
        return _NO_COVERAGE
    return _COVERAGES.get(peer.cidr, peer.excepts, peer.path, _cidr_path(peer))


def _cidr_coverage(cidr: str, excepts: tuple[str, ...], path: str, cidr_path: str) -> Coverage:
    """`path` and `cidr_path` only name the field in a ShapeError."""
    net = parse_network(cidr, cidr_path)
    cidr_mapped = _is_mapped(cidr)
    n_start, n_end = _interval(net)
    holes = []
    for i, text in enumerate(excepts):
        if _ignored_except(text, net, cidr_mapped):
            continue
        # Read the except the way its CIDR is read: mapped together with a mapped CIDR (one consistent
        # reading), as plain IPv6 under a plain IPv6 CIDR (::/0 except ::ffff:169.254.169.254/128).
        hole = parse_network(text, f"{path}.except[{i}]") if net.version == 4 else _raw_network(
            text, f"{path}.except[{i}]")
        h_start, h_end = _interval(hole)
        if hole.version != net.version or not (n_start <= h_start and h_end <= n_end):  # inside the CIDR
            raise ShapeError(f"{path}.except[{i}]", f"{excepts[i]} is not inside {cidr}")
        holes.append((h_start, h_end))
    left = subtract([(n_start, n_end)], holes)
    return Coverage(v4=tuple(left), v6=()) if net.version == 4 else Coverage(v4=(), v6=tuple(left))


@lru_cache(maxsize=_PARSED_CIDRS)
def _is_mapped(text: str) -> bool:
    net = _read_raw(text)
    return isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED)


def _raw_network(text: str, path: str) -> IPNetwork:
    net = _read_raw(text)
    if net is None:
        raise ShapeError(path, f"{text!r} is not a valid CIDR")
    return net


def _ignored_except(text: str, net: IPNetwork, cidr_mapped: bool = False) -> bool:
    """An IPv4-mapped IPv6 except (::ffff:169.254.169.254/128) under an IPv4 CIDR, or under a mapped
    CIDR that we count as IPv4: Cilium keeps the except as IPv6, so it carves nothing out of the IPv4
    traffic (the Kubernetes API server accepts it: Go's IPNet.Contains unmaps it). CNIs differ; the
    reading that allows more wins, so the except removes nothing."""
    return net.version == 4 and not cidr_mapped and _is_mapped(text)


def ignored_excepts(peer: Peer) -> tuple[str, ...]:
    if peer.type is not PeerType.CIDR:
        return ()
    net = parse_network(peer.cidr, _cidr_path(peer))
    return tuple(e for e in peer.excepts if _ignored_except(e, net, _is_mapped(peer.cidr)))


def _cidr_path(peer: Peer) -> str:
    return peer.path if peer.path.split(".")[-1].startswith(("toCIDR[", "fromCIDR[")) else f"{peer.path}.cidr"


def union(covs: Iterable[Coverage]) -> Coverage:
    covs = list(covs)
    return Coverage(v4=tuple(merge(i for c in covs for i in c.v4)), v6=tuple(merge(i for c in covs for i in c.v6)))


def is_api_server_service(peer: Peer, own: str) -> bool:
    """toServices naming the `kubernetes` Service of `default` (by name, or by a selector its labels
    meet): that is the API server."""
    if peer.type is not PeerType.SERVICE or peer.namespaces is None:
        return False
    names = peer.namespaces.names if peer.namespaces.scope is Scope.NAMED else (own,)
    # A clusterwide policy's selector without a namespace is read as every namespace (the reading
    # that allows more), so it can pick the default/kubernetes Service too.
    if "default" not in names and names != ("",):
        return False
    if peer.service == "kubernetes":
        return True
    selector = peer.raw.get("selector")
    if peer.service != "(selector)" or not isinstance(selector, dict):
        return False
    try:
        return parse_selector(selector, peer.path).matches(API_SERVER_SERVICE_LABELS)
    except ShapeError:
        return False


def _other_namespaces(peer: Peer, own: str) -> bool:
    if peer.namespaces is None:
        return False
    scope = peer.namespaces.scope
    if scope is Scope.OWN:
        return False
    if scope is Scope.NAMED:
        return any(name != own for name in peer.namespaces.names)
    return True


def peer_facts(peer: Peer, params: FactParams, namespace: str = "") -> PeerFacts:
    if peer.type is PeerType.CIDR:
        cov = peer_coverage(peer)
        net = parse_network(peer.cidr, _cidr_path(peer))
        v4, v6 = cov.public_v4_fraction, cov.public_v6_fraction
        private = tuple(r for r in PRIVATE_RANGES if cov.covers_network(r))
        return PeerFacts(internet_v4=v4 >= params.internet_coverage, internet_v6=v6 >= params.internet_coverage,
                         public_v4_fraction=v4, public_v6_fraction=v6,
                         metadata_ips=tuple(ip for ip in params.metadata_ips if cov.contains(ip)),
                         prefix_len=net.prefixlen, family=net.version, private_ranges=private,
                         ignored_excepts=ignored_excepts(peer),
                         nat64=net.version == 6 and v4 >= params.internet_coverage)
    if peer.type is PeerType.ENTITY:
        v4_net, v6_net = INTERNET_ENTITIES.get(peer.entity, (False, False))
        # Cilium classes link-local metadata addresses as `world` (outside the cluster).
        reach = tuple(ip for ip in params.metadata_ips
                      if (v4_net if ipaddress.ip_address(ip).version == 4 else v6_net))
        everywhere = peer.entity in ALL_NAMESPACE_ENTITIES
        return PeerFacts(internet_v4=v4_net, internet_v6=v6_net, public_v4_fraction=float(v4_net),
                         public_v6_fraction=float(v6_net), metadata_ips=reach,
                         all_namespaces=everywhere, other_namespaces=everywhere,
                         infrastructure=(peer.entity,) if peer.entity in INFRASTRUCTURE_ENTITIES else ())
    if peer.type is PeerType.NODES:
        # toNodes/fromNodes reach the nodes themselves: the host and remote-node identities.
        return PeerFacts(infrastructure=("host", "remote-node"))
    if peer.type is PeerType.FQDN:
        host = metadata_host(peer.fqdn_name, peer.fqdn_pattern)
        if not peer.fqdn_pattern:
            return PeerFacts(metadata_host=host)
        wild = wildcard_reach(peer.fqdn_pattern)
        return PeerFacts(fqdn_suffix=wild.suffix, fqdn_public_suffix=wild.public, fqdn_example=wild.example,
                         metadata_host=host)
    if peer.type in (PeerType.PODS, PeerType.SERVICE) and peer.namespaces is not None:
        return PeerFacts(all_namespaces=peer.namespaces.scope is Scope.ALL,
                         other_namespaces=_other_namespaces(peer, namespace),
                         infrastructure=("kube-apiserver",) if is_api_server_service(peer, namespace) else ())
    return PeerFacts()


# What peer_facts reads of a peer of each type (the path only names the field of a malformed CIDR, and
# the first peer with given content raises before any other is looked up): peers alike share facts.
# Services are left out (their facts read the raw selector).
_FactsKey = tuple[object, ...]


def _facts_key(peer: Peer) -> _FactsKey | None:
    kind = peer.type
    if kind is PeerType.CIDR:
        return (kind, peer.cidr, peer.excepts)
    if kind is PeerType.PODS:
        scope = peer.namespaces
        return (kind,) if scope is None else (kind, scope.scope, scope.names)
    if kind is PeerType.ENTITY:
        return (kind, peer.entity)
    if kind is PeerType.FQDN:
        return (kind, peer.fqdn_name, peer.fqdn_pattern)
    if kind is PeerType.NODES or kind is PeerType.GROUP:
        return (kind,)
    return None


def _shared_peer_facts(peer: Peer, params: FactParams, namespace: str, memo: dict[_FactsKey, PeerFacts]) -> PeerFacts:
    """peer_facts, computed once per distinct content within one enrich (`memo`)."""
    key = _facts_key(peer)
    if key is None:
        return peer_facts(peer, params, namespace)
    found = memo.get(key)
    if found is None:
        found = memo[key] = peer_facts(peer, params, namespace)
    return found


_NO_PORT, _EVERY_PORT = PortSet(), PortSet.everything()
# Rule facts are built as a copy of this (netpolicy.updated): a frozen dataclass's __init__ sets each field
# through object.__setattr__, twice the cost, and a large policy builds a thousand of them.
_NO_RULE_FACTS = RuleFacts()


def rule_ports(rule: Rule) -> PortSet:
    """The rule's ports, merged per protocol (no port entries: every port of every protocol)."""
    if not rule.ports:
        return _NO_PORT if rule.icmp else _EVERY_PORT
    return port_set(tuple((p.protocol, p.start, p.end, p.name) for p in rule.ports))


def rule_facts(rule: Rule, params: FactParams) -> RuleFacts:
    """The rule's facts; its peers must carry theirs (enrich)."""
    return _rule_facts(rule, rule.peers, params)


def _rule_facts(rule: Rule, peers: tuple[Peer, ...], params: FactParams) -> RuleFacts:
    """rule_facts of `rule` with `peers` (its peers with their facts) in place of its own: one pass
    over the peers gathers what each fact needs."""
    cidr_peers: list[Peer] = []
    entity_v4 = entity_v6 = all_ns = everything_entity = False
    contributing: list[str] = []
    reach_ips: set[str] = set()
    for p in peers:
        facts = p.facts
        if p.type is PeerType.CIDR:
            cidr_peers.append(p)
            if facts.public_v4_fraction or facts.public_v6_fraction:
                contributing.append(p.describe())
        elif p.type is PeerType.ENTITY:
            entity_v4 = entity_v4 or facts.internet_v4
            entity_v6 = entity_v6 or facts.internet_v6
            everything_entity = everything_entity or p.entity in EVERYTHING_ENTITIES
            if p.entity in INTERNET_ENTITIES:
                contributing.append(p.describe())
        all_ns = all_ns or facts.all_namespaces
        reach_ips.update(facts.metadata_ips)
    if not cidr_peers:
        v4_share = v6_share = 0.0
    else:  # one peer: its own (cached) coverage is the union
        cov = peer_coverage(cidr_peers[0]) if len(cidr_peers) == 1 else union(peer_coverage(p) for p in cidr_peers)
        v4_share, v6_share = cov.public_v4_fraction, cov.public_v6_fraction
    internet_v4 = rule.any_peer or v4_share >= params.internet_coverage or entity_v4
    internet_v6 = rule.any_peer or v6_share >= params.internet_coverage or entity_v6
    ports = rule_ports(rule)
    # An allow rule counts as "every port" on the union of its entries (1-79 + 81-65535 is every port
    # but one); a deny rule only when it literally blocks every port, so a deny never excuses more
    # than it blocks.
    every_port = rule.all_ports or (rule.action is Action.ALLOW and ports.every_port(params.port_coverage))
    on_port = any(ports.allows("TCP", port) for port in params.metadata_ports)  # the metadata service is TCP
    metadata: tuple[str, ...] = ()
    if on_port:
        if rule.any_peer:
            reach_ips.update(params.metadata_ips)
        metadata = tuple(sorted(reach_ips))
    # "Everything": no peer restriction, or an entity that stands for every peer outside (world)
    # or inside and outside (all) the cluster. CIDRs covering the internet are reported by the
    # internet guardrails instead, so one finding names one problem.
    everything = every_port and (rule.any_peer or everything_entity)
    coverage = ports.coverage() if rule.ports else (0.0 if rule.icmp else 1.0)
    return updated(_NO_RULE_FACTS, internet_v4=internet_v4, internet_v6=internet_v6, internet_cidrs=tuple(contributing),
                     all_namespaces=rule.any_peer or all_ns, metadata=metadata, allows_everything=everything,
                     every_port=every_port, port_coverage=coverage,
                     open_protocol=ports.open_protocol(params.port_coverage) if every_port and rule.ports else "")


@dataclass(frozen=True)
class _RuleReach:
    """A rule's reach for the sweep: its merged addresses per family (IPv4 with NAT64), its ports, and
    whether those addresses hold any public address (a rule that holds none is never active over a
    counted segment, so the sweep leaves it out)."""

    v4: tuple[Interval, ...]
    v6: tuple[Interval, ...]
    ports: PortSet
    public_v4: bool
    public_v6: bool


_NO_REACH = _RuleReach((), (), _NO_PORT, public_v4=False, public_v6=False)


def _rule_reach(rule: Rule) -> _RuleReach:
    if not rule.any_peer and not any(p.type is PeerType.CIDR or p.type is PeerType.ENTITY for p in rule.peers):
        return _NO_REACH  # pods, services, names: no address the figures count (ports never looked at)
    v4: list[Interval] = []
    v6: list[Interval] = []
    if rule.any_peer:
        v4.append(_V4_ALL[0])
        v6.append(_V6_ALL)
    for p in rule.peers:
        if p.type is PeerType.ENTITY:
            internet_v4, internet_v6 = INTERNET_ENTITIES.get(p.entity, (False, False))
            if internet_v4:
                v4.append(_V4_ALL[0])
            if internet_v6:
                v6.append(_V6_ALL)
        elif p.type is PeerType.CIDR:
            cov = peer_coverage(p)
            v4.extend(cov.v4)
            v4.extend(nat64_v4(cov.v6))
            v6.extend(cov.v6)
    merged_v4, merged_v6 = tuple(merge(v4)), tuple(merge(v6))
    return _RuleReach(merged_v4, merged_v6, rule_ports(rule),
                      public_v4=bool(merged_v4) and _merged_intersect_size(merged_v4, V4_PUBLIC) > 0,
                      public_v6=bool(merged_v6) and _merged_intersect_size(merged_v6, V6_PUBLIC) > 0)


def _family_openings(rules: Sequence[Rule], family: int, memo: dict[int, _RuleReach] | None = None) -> list[Opening]:
    """`memo` (by id of the rule, within one enrich) keeps each rule's reach across the subject groups.
    Rules with no public address of the family open nothing the figures count: left out."""
    memo = {} if memo is None else memo
    out = []
    for index, rule in enumerate(rules):
        reach = _memo_reach(rule, memo)
        if reach.public_v4 if family == 4 else reach.public_v6:
            ports = reach.ports
            out.append(Opening(index, reach.v4 if family == 4 else reach.v6, ports,
                               some_traffic=not ports.empty or bool(rule.icmp)))
    return out


def _memo_reach(rule: Rule, memo: dict[int, _RuleReach]) -> _RuleReach:
    reach = memo.get(id(rule))
    if reach is None:
        reach = memo[id(rule)] = _rule_reach(rule)
    return reach


def _combined(rules: list[Rule], params: FactParams,
              memo: dict[int, _RuleReach] | None = None) -> tuple[Reach | None, Reach | None]:
    """What these rules open only together: (every port, some port) families no single rule opens.

    Every-port families are left out of the some-port reach (they are the stronger finding). A
    combined reach names at least two rules, and only rules holding public addresses can be among
    them, so with fewer such rules there is nothing to sweep."""
    memo = {} if memo is None else memo
    reaches = [_memo_reach(r, memo) for r in rules]
    if sum(1 for reach in reaches if reach.public_v4 or reach.public_v6) < 2:
        return None, None
    every: dict[int, tuple[int, ...]] = {}
    some: dict[int, tuple[int, ...]] = {}
    for family, public, size in ((4, V4_PUBLIC, _V4_PUBLIC_SIZE), (6, V6_PUBLIC, _V6_PUBLIC_SIZE)):
        single_every = any(r.facts.every_port and (r.facts.internet_v4 if family == 4 else r.facts.internet_v6)
                           for r in rules)
        single_some = any(r.facts.internet_v4 if family == 4 else r.facts.internet_v6 for r in rules)
        fig = figures(_family_openings(rules, family, memo), public, size, params.port_coverage)
        if fig.every_port_fraction >= params.internet_coverage and not single_every:
            every[family] = fig.every_port_rules
        elif fig.some_port_fraction >= params.internet_coverage and not single_some and not single_every:
            some[family] = fig.some_port_rules
    return _reach(rules, every), _reach(rules, some)


def _reach(rules: list[Rule], families: dict[int, tuple[int, ...]]) -> Reach | None:
    indexes = sorted({i for members in families.values() for i in members})
    if not families or len(indexes) < 2:
        return None
    chosen = [rules[i] for i in indexes]
    v4, v6 = 4 in families, 6 in families

    def adds(peer: Peer) -> bool:
        return (v4 and (peer.facts.public_v4_fraction > 0 or peer.facts.internet_v4)) or (
            v6 and (peer.facts.public_v6_fraction > 0 or peer.facts.internet_v6))

    return Reach(internet_v4=v4, internet_v6=v6, rules=tuple(r.path for r in chosen),
                 cidrs=tuple(p.describe() for r in chosen for p in r.peers
                             if p.type in (PeerType.CIDR, PeerType.ENTITY) and adds(p))
                 + tuple("every destination" for r in chosen if r.any_peer),
                 ports=tuple(r.ports_label() for r in chosen))


# Past this many steps, requirements examined or groups found, the search for subject groups stops and
# every pair that can overlap is grouped (more findings, never fewer). The work bound matters as much as
# the steps: each step checks the conjunction of up to every entry's requirements.
_GROUP_SEARCH_STEPS = 4096
_GROUP_SEARCH_WORK = 100_000
_GROUP_SEARCH_FOUND = 256


# More entries than this (limits.max_specs is far lower by default) skip the exact search.
_GROUP_SEARCH_DEPTH = 256


def subject_groups(policy: NormalizedPolicy) -> list[tuple[int, ...]]:
    """The sets of spec entries that can select one pod together (maximal), whose rules add up.

    Two entries overlap when the conjunction of their selectors can be met by one label set: the
    same requirements in another order or spelling, a subset (`{}` and `{app: web}`; `{app: web}` and
    `{app: web, tier: fe}`), or merely compatible selectors (`{app: web}` and `{tier: fe}`)."""
    subjects = list(policy.subjects)
    if len(subjects) == 1:
        return [(subjects[0].index,)]
    if len(subjects) > _GROUP_SEARCH_DEPTH:  # the search recurses once per chosen entry
        return _pairwise_groups(subjects)
    found: set[tuple[int, ...]] = set()
    steps = work = 0

    def extend(chosen: list[Subject], requirements: tuple[Requirement, ...], rest: list[Subject]) -> bool:
        nonlocal steps, work
        steps += 1
        check_deadline("grouping specs entries")
        if steps > _GROUP_SEARCH_STEPS:
            return False
        grew = False
        for i, s in enumerate(rest):
            if s.selects != chosen[0].selects:
                continue
            combined = requirements + s.selector.requirements
            work += len(combined)
            if work > _GROUP_SEARCH_WORK:
                return False
            if satisfiable(combined):
                grew = True
                if not extend([*chosen, s], combined, rest[i + 1:]):
                    return False
        if not grew:
            found.add(tuple(sorted(c.index for c in chosen)))
        return len(found) <= _GROUP_SEARCH_FOUND

    for i, s in enumerate(subjects):
        if not satisfiable(s.selector.requirements):
            continue
        if not extend([s], s.selector.requirements, subjects[i + 1:]):
            return _pairwise_groups(subjects)
    groups = sorted(found)
    # keep only maximal sets (a set found from a later start can be inside an earlier one)
    masks = [sum(1 << i for i in g) for g in groups]
    return [g for g, m in zip(groups, masks, strict=True) if not any(m & h == m != h for h in masks)]


def _pairwise_groups(subjects: list[Subject]) -> list[tuple[int, ...]]:
    return sorted({tuple(t.index for t in subjects if t.selects == s.selects and satisfiable(
        s.selector.requirements + t.selector.requirements)) for s in subjects})


def _direction_facts(policy: NormalizedPolicy, rules: list[Rule], direction: Direction,
                     params: FactParams, groups: list[tuple[int, ...]] | None = None) -> DirectionFacts:
    all_ports: dict[Reach, None] = {}  # ordered sets
    any_ports: dict[Reach, None] = {}
    allowing_rules = [r for r in rules if r.direction is direction and r.action is Action.ALLOW and r.effective
                      and not r.matches_nothing]
    memo: dict[int, _RuleReach] = {}  # each rule's reach, computed once for every group it is in
    for group in subject_groups(policy) if groups is None else groups:
        members = set(group)
        strict, loose = _combined([r for r in allowing_rules if r.subject in members], params, memo)
        if strict is not None:
            all_ports.setdefault(strict)
        if loose is not None:
            any_ports.setdefault(loose)
    return DirectionFacts(combined_all_ports=tuple(all_ports), combined_any_ports=tuple(any_ports))


def enrich(policy: NormalizedPolicy, params: FactParams) -> NormalizedPolicy:
    """Return the policy with peer, rule and policy facts filled in. Each rule is copied once, with its
    peers and its facts together; peers alike share one computation of their facts."""
    shared: dict[_FactsKey, PeerFacts] = {}
    namespace = policy.namespace
    rules = []
    for rule in policy.rules:
        check_deadline("facts")
        if rule.peers:
            peers = tuple(updated(p, facts=_shared_peer_facts(p, params, namespace, shared)) for p in rule.peers)
            rules.append(updated(rule, peers=peers, facts=_rule_facts(rule, peers, params)))
        else:
            rules.append(updated(rule, facts=_rule_facts(rule, rule.peers, params)))
    groups = subject_groups(policy)
    facts = {d.value: _direction_facts(policy, rules, d, params, groups) for d in Direction}
    return updated(policy, rules=tuple(rules), facts=facts)
