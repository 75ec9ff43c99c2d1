"""An independent second opinion on what a network policy ALLOWS.

Deliberately written from the Kubernetes and Cilium documentation and source, NOT from netguard's
webhook/core/normalize.py, facts.py, selectors.py or netpolicy.py (it shares no code with them): when the
two disagree, one of them is wrong, and the test says which predicate they disagree on.

The oracle answers `Oracle(manifest).allowed(subject, direction, peer, protocol, port)` from the allow
rules only. Deny rules (Cilium ingressDeny / egressDeny) are ignored on purpose: netguard judges what
a policy allows. It also answers the guardrail-level predicates the property tests compare with
netguard's findings (`internet`, `metadata`, `all_namespaces`, `sensitive`).

Semantics and where they come from:

Kubernetes NetworkPolicy (https://kubernetes.io/docs/concepts/services-networking/network-policies/,
https://kubernetes.io/docs/reference/kubernetes-api/networking-resources/network-policy-v1/):
- a rule with `to`/`from` missing or empty matches every peer; `ports` missing or empty = every port of
  every protocol; a port entry without protocol is TCP; an entry without port = every port of that
  protocol; `endPort` makes a range; a protocol no entry names is not allowed.
- policyTypes defaults to [Ingress] plus Egress when spec.egress has rules (SetDefaults_NetworkPolicy);
  rules of a direction not in policyTypes allow nothing.
- ipBlock = cidr minus except and selects cluster-external IPs only ("ipBlock ... should be
  cluster-external IPs, since Pod IPs are ephemeral"); podSelector alone = pods of the policy's namespace;
  namespaceSelector {} = every namespace; both = those pods in those namespaces.

Cilium (https://docs.cilium.io/en/stable/security/policy/language/, cilium/cilium pkg/policy/api,
pkg/k8s/apis/cilium.io/utils/utils.go):
- a rule with toPorts but no L3 field applies to every peer on those ports; a rule with L3 peers and no
  toPorts allows every port of every protocol; a rule with neither allows nothing.
- a port entry without port, or port 0, is every port; protocol ANY or missing = TCP, UDP and SCTP;
  the port string is read by strconv.ParseUint(s, 0, 16) (pkg/policy: `port, _ :=
  strconv.ParseUint(p.Port, 0, 16)`), so "0x50" = 80, "0120" = 80 (octal), "8_0" = 80; a string that
  neither parses nor is an IANA service name is rejected (PortProtocol sanitize) -> InvalidPolicy.
- toEntities: world = every address outside the cluster (both families), world-ipv4 / world-ipv6 one
  family, all = everything, cluster = every pod of every namespace plus host, remote-node, init,
  ingress, health, unmanaged and kube-apiserver (api/entity.go InitEntities).
- toCIDR / toCIDRSet: cidr minus except; CIDR selectors do not select pods or nodes. An IPv4-mapped IPv6
  except (::ffff:a.b.c.d/128) does not carve an IPv4 address out of an IPv4 cidr (different families;
  we take the reading that allows more). A CIDR inside ::ffff:0:0/96 also counts as the IPv4 range it
  denotes (again the reading that allows more).
- toEndpoints selectors (utils.go getEndpointSelector): a selector with a `reserved:` key is returned
  unscoped (it selects reserved identities: matchLabels reserved:world == the world entity;
  DoesNotExist / NotIn on a reserved key match every identity lacking it); otherwise, unless it names
  io.kubernetes.pod.namespace (any source), a CiliumNetworkPolicy scopes it to its own namespace (not
  when it names io.cilium.k8s.namespace.labels.* keys) and a CiliumClusterwideNetworkPolicy adds
  `io.kubernetes.pod.namespace Exists` (every pod of every namespace, no reserved identity).
  Label sources k8s: / any: are honoured (a key without source is any:).
- toNodes / fromNodes reach the nodes (host and remote-node identities).
- `specs`: a pod selected by several entries gets the union of their rules. enableDefaultDeny does
  not change what is allowed.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"

PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_PORT = 65535
EDGE_PORTS = (1, 2, 79, 80, 81, 1023, 1024, 32767, 32768, 65534, 65535)
# A dense sample for point queries (`allowed`); coverage itself is computed exactly on intervals.
PORT_SAMPLES = tuple(sorted({*EDGE_PORTS, 22, 53, 443, 8080, *range(1, MAX_PORT + 1, 1031)}))

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
NET = ipaddress.IPv4Network | ipaddress.IPv6Network

Intervals = tuple[tuple[int, int], ...]
ALL_PORTS: Intervals = ((1, MAX_PORT),)


class InvalidPolicy(ValueError):
    """The object would be rejected by the API server / Cilium: netguard must answer invalid-object."""


# --- parameters ---------------------------------------------------------------------------------


def _parameters(guardrail: str) -> dict[str, Any]:
    path = POLICIES / guardrail / "policy.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return dict((doc or {}).get("parameters") or {})


def _parameter(name: str, default: Any) -> Any:
    for folder in sorted(POLICIES.glob("*/policy.yaml")):
        params = _parameters(folder.parent.name)
        if name in params:
            return params[name]
    return default


INTERNET_COVERAGE = float(_parameter("internet_coverage", 0.9))
PORT_COVERAGE = float(_parameter("port_coverage", 0.9))  # being added by the lead; 0.9 meanwhile
SENSITIVE_ENTITIES = tuple(_parameter("entities", ["host", "remote-node", "kube-apiserver", "health", "init"]))
SHARED_SERVICES = tuple(_parameter("shared_services", [
    {"name": "kube-dns", "pod_labels": {"k8s-app": "kube-dns"}, "ports": ["UDP/53", "TCP/53"]}]))
METADATA_ADDRESSES = tuple(_parameters("no-metadata-egress").get("addresses", ["169.254.169.254", "fd00:ec2::254"]))
METADATA_PORTS = tuple(_parameters("no-metadata-egress").get("ports", [80]))

# Uncertainty bands: figures this close to a threshold are not asserted (see `Figure`).
PORT_BAND = 0.01
INTERNET_BAND = 0.01


# --- Go strconv.ParseUint(s, 0, 16) and the IANA service-name check -----------------------------


def _underscore_ok(s: str) -> bool:
    """Go strconv.underscoreOK: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and "a" <= c.lower() <= "f"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def go_parse_uint16(s: str) -> int:
    """strconv.ParseUint(s, 0, 16); raises ValueError like Go returns an error."""
    if s == "":
        raise ValueError("empty")
    s0, base = s, 10
    if s[0] == "0":
        if len(s) >= 3 and s[1].lower() == "b":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1].lower() == "o":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1].lower() == "x":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    n, underscores = 0, False
    for c in s:
        if c == "_":
            underscores = True
            continue
        if not c.isascii():
            raise ValueError(f"syntax: {s0!r}")
        if "0" <= c <= "9":
            d = ord(c) - ord("0")
        elif "a" <= c.lower() <= "z":
            d = ord(c.lower()) - ord("a") + 10
        else:
            raise ValueError(f"syntax: {s0!r}")
        if d >= base:
            raise ValueError(f"syntax: {s0!r}")
        n = n * base + d
        if n > 0xFFFF:
            raise ValueError(f"range: {s0!r}")
    if underscores and not _underscore_ok(s0):
        raise ValueError(f"syntax: {s0!r}")
    return n


def is_iana_svc_name(s: str) -> bool:
    """k8s.io IsValidPortName / Cilium iana.IsSvcName: 1-15 [a-z0-9-], a letter, no '--', no edge '-'."""
    return (0 < len(s) <= 15 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in s)
            and any(c.isalpha() for c in s) and "--" not in s and not s.startswith("-") and not s.endswith("-"))


# --- intervals ----------------------------------------------------------------------------------


def union(intervals: Iterable[tuple[int, int]]) -> Intervals:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def measure(intervals: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in intervals)


def contains(intervals: Intervals, port: int) -> bool:
    return any(lo <= port <= hi for lo, hi in intervals)


PortSet = Mapping[str, Intervals]  # protocol -> allowed port intervals


def every_port() -> dict[str, Intervals]:
    return dict.fromkeys(PROTOCOLS, ALL_PORTS)


# --- the identities (probes) --------------------------------------------------------------------

Label = tuple[str, str]  # (source, key)


@dataclass(frozen=True)
class Probe:
    """One peer (or subject) identity of the universe."""

    name: str
    kind: str  # "ip", "pod", "node", "reserved"
    labels: Mapping[Label, str] = field(default_factory=dict, hash=False, compare=False)
    ip: IP | None = None
    family: str = ""  # "v4", "v6", "nat64" for public internet probes; "" otherwise
    weight: float = 0.0  # share of the public space of `family` (strict reading)
    weight_loose: float = 0.0  # same, counting IPv4 multicast as public (the loose reading)
    namespace: str = ""
    ns_labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    tomorrow: bool = False  # in a namespace created tomorrow (unknown name, no labels we know)
    identity: str = ""  # reserved identity name for nodes/reserved/ip probes (world, host, ...)

    @property
    def plain_labels(self) -> dict[str, str]:
        return {k: v for (src, k), v in self.labels.items() if src == "k8s"}


# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors) plus multicast (RFC 5771).
V4_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4"))
V4_MULTICAST = ipaddress.ip_network("224.0.0.0/4")
MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv6: IANA allocates global unicast from 2000::/3 only (RFC 4291 2.4, IANA IPv6 address space);
# the public share is read against 2000::/3 (documentation, 6to4, protocol blocks are negligible).
V6_GLOBAL = ipaddress.ip_network("2000::/3")


def _v4_public_size(block: ipaddress.IPv4Network, *, loose: bool) -> int:
    size = block.num_addresses
    specials = [*V4_SPECIAL] + ([] if loose else [V4_MULTICAST])
    for special in specials:
        if block.subnet_of(special):
            return 0
        if special.subnet_of(block):
            size -= special.num_addresses
    return size


def _ip_probes() -> list[Probe]:
    probes: list[Probe] = []
    world4 = {("reserved", "world"): "", ("reserved", "world-ipv4"): ""}
    world6 = {("reserved", "world"): "", ("reserved", "world-ipv6"): ""}
    blocks = [ipaddress.IPv4Network(f"{x}.0.0.0/8") for x in range(256)]
    strict = [_v4_public_size(b, loose=False) for b in blocks]
    loose = [_v4_public_size(b, loose=True) for b in blocks]
    total_s, total_l = sum(strict), sum(loose)
    for x in range(256):
        # X.200.88.99 lies in the public part of every /8 that has one (100.64/10, 169.254/16,
        # 172.16/12, 192.168/16, 198.18/15 do not reach .200) and in no small CIDR the generators use.
        addr = ipaddress.IPv4Address(f"{x}.200.88.99")
        probes.append(Probe(f"v4:{addr}", "ip", world4, addr, "v4", strict[x] / total_s, loose[x] / total_l,
                            identity="world"))
    for x in range(0, 256, 8):  # NAT64: one probe per /5, weighted by its public IPv4 share
        addr = ipaddress.IPv4Address(f"{x}.200.88.99")
        w = sum(strict[x:x + 8]) / total_s
        if w:
            mapped = ipaddress.IPv6Address(int(NAT64.network_address) + int(addr))
            probes.append(Probe(f"nat64:{mapped}", "ip", world6, mapped, "nat64", w, w, identity="world"))
    for i in range(16):  # 2000::/3 as 16 /7 blocks of equal weight
        first = 0x2000 + i * 0x200 + 0x155
        addr6 = ipaddress.IPv6Address(f"{first:x}:77:88::99")
        probes.append(Probe(f"v6:{addr6}", "ip", world6, addr6, "v6", 1 / 16, 1 / 16, identity="world"))
    for text in ("10.1.2.3", "172.16.5.5", "192.168.1.1", "100.64.1.1", "169.254.1.1", *METADATA_ADDRESSES,
                 "fd12:3456::1", "fe80::1", "4000::1", "8000::1", "c000::1"):
        addr = ipaddress.ip_address(text)
        probes.append(Probe(f"ip:{addr}", "ip", world4 if addr.version == 4 else world6, addr, identity="world"))
    return probes


IP_PROBES = tuple(_ip_probes())
RESERVED_IDENTITIES = ("host", "remote-node", "kube-apiserver", "health", "init", "ingress", "unmanaged")
NODE_LABELS = {
    "host": {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux"},
    "remote-node": {"kubernetes.io/hostname": "node-2", "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": ""},
}


def _reserved_probes() -> list[Probe]:
    out = []
    for name in RESERVED_IDENTITIES:
        labels: dict[Label, str] = {("reserved", name): ""}
        for k, v in NODE_LABELS.get(name, {}).items():
            labels[("k8s", k)] = v
        out.append(Probe(f"reserved:{name}", "node" if name in NODE_LABELS else "reserved", labels, identity=name))
    return out


RESERVED_PROBES = tuple(_reserved_probes())

NAMESPACES: dict[str, dict[str, str]] = {
    "team-a": {"team": "a"},
    "team-b": {"team": "b", "env": "prod"},
    "kube-system": {},
}
TOMORROW = "ns-created-tomorrow"
CLUSTER_NAME = "default"
BASE_POD_LABELS: tuple[dict[str, str], ...] = (
    {}, {"app": "web"}, {"app": "web", "tier": "fe"}, {"app": "db"}, {"app": "api", "tier": "be"},
    {"k8s-app": "kube-dns"},
)


def make_pod(namespace: str, labels: Mapping[str, str], *, tomorrow: bool = False) -> Probe:
    ns_labels = {"kubernetes.io/metadata.name": namespace, **({} if tomorrow else NAMESPACES.get(namespace, {}))}
    cl: dict[Label, str] = {("k8s", k): v for k, v in labels.items()}
    cl[("k8s", "io.kubernetes.pod.namespace")] = namespace
    cl[("k8s", "io.cilium.k8s.policy.cluster")] = CLUSTER_NAME
    for k, v in ns_labels.items():
        cl[("k8s", f"io.cilium.k8s.namespace.labels.{k}")] = v
    name = f"pod:{namespace}/" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return Probe(name, "pod", cl, namespace=namespace, ns_labels=ns_labels, tomorrow=tomorrow)


# --- selectors ----------------------------------------------------------------------------------

SOURCES = ("k8s", "any", "reserved", "cidr", "container", "unspec", "fqdn", "cilium-generated", "reserved")


def split_key(key: str) -> Label:
    head, sep, rest = key.partition(":")
    if sep and head in SOURCES:
        return head, rest
    return "any", key


def _requirements(selector: Any, where: str, *, sources: bool) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(source, key, operator, values) of a LabelSelector; `sources`: Cilium key prefixes are read."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        raise InvalidPolicy(f"{where}: selector is not an object")
    reqs = []
    for key, value in (selector.get("matchLabels") or {}).items():
        src, k = split_key(str(key)) if sources else ("any", str(key))
        reqs.append((src, k, "In", (str(value if value is not None else ""),)))
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = tuple(str(v) for v in (expr.get("values") or []))
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise InvalidPolicy(f"{where}: operator {op!r}")
        if op in ("In", "NotIn") and not values:
            raise InvalidPolicy(f"{where}: {op} without values")
        if op in ("Exists", "DoesNotExist") and values:
            raise InvalidPolicy(f"{where}: {op} with values")
        src, k = split_key(str(expr.get("key", ""))) if sources else ("any", str(expr.get("key", "")))
        reqs.append((src, k, op, values))
    return reqs


Requirement = tuple[str, str, str, tuple[str, ...]]


def matches(reqs: Sequence[Requirement], labels: Mapping[Label, str]) -> bool:
    for src, key, op, values in reqs:
        found = [v for (s, k), v in labels.items() if k == key and (src == "any" or s == src)]
        if op == "In" and not any(v in values for v in found):
            return False
        if op == "NotIn" and any(v in values for v in found):
            return False
        if op == "Exists" and not found:
            return False
        if op == "DoesNotExist" and found:
            return False
    return True


def plain(labels: Mapping[str, str]) -> dict[Label, str]:
    return {("k8s", k): v for k, v in labels.items()}


def canonical_labels(reqs: Sequence[Requirement]) -> list[dict[str, str]]:
    """Pod labels that satisfy the positive requirements (one per In value), sources stripped."""
    choices: list[list[tuple[str, str]]] = []
    for src, key, op, values in reqs:
        if src == "reserved" or key == "io.kubernetes.pod.namespace" or key.startswith("io.cilium.k8s."):
            continue
        if op == "In":
            choices.append([(key, v) for v in values])
        elif op == "Exists":
            choices.append([(key, "x")])
    out = []
    for combo in itertools.product(*choices):
        labels: dict[str, str] = {}
        for k, v in combo:
            labels.setdefault(k, v)
        out.append(labels)
    return out[:8]


# --- rules --------------------------------------------------------------------------------------


@dataclass
class Rule:
    direction: str  # "ingress" or "egress"
    path: str
    peer: Callable[[Probe], bool]  # does the rule's L3 part select this identity
    ports: dict[str, Intervals]
    explicit: bool  # names peers (False: every peer)
    pod_selectors: list[list[Requirement]] = field(default_factory=list)  # to derive tomorrow's pods

    def port_allowed(self, protocol: str, port: int) -> bool:
        return contains(self.ports.get(protocol, ()), port)

    @property
    def allows_some_port(self) -> bool:
        return any(self.ports.get(p) for p in PROTOCOLS)


@dataclass
class Entry:
    """A group of rules applied to the subjects one selector picks."""

    subject: Callable[[Probe], bool]
    subject_reqs: list[Requirement]
    rules: list[Rule]


def _ip_in(net: NET, probe: Probe) -> bool:
    """Is the probe's address in the CIDR; CIDRs inside ::ffff:0:0/96 also denote their IPv4 range."""
    ip = probe.ip
    if ip is None:
        return False
    if ip.version == net.version:
        return ip in net
    if ip.version == 4 and net.version == 6 and net.subnet_of(MAPPED):  # type: ignore[arg-type]
        return ipaddress.IPv6Address(int(MAPPED.network_address) + int(ip)) in net
    return False


def _except_hits(excepts: Sequence[NET], probe: Probe) -> bool:
    """An except carves an address out only within its own family (a mapped except does not touch IPv4
    addresses of an IPv4 cidr: the reading that allows more)."""
    ip = probe.ip
    assert ip is not None
    return any(ex.version == ip.version and ip in ex for ex in excepts)


def _cidr_peer(cidr: str, excepts: Sequence[str], where: str) -> Callable[[Probe], bool]:
    try:
        net = ipaddress.ip_network(cidr)
        exs = [ipaddress.ip_network(e) for e in excepts]
    except ValueError as exc:
        raise InvalidPolicy(f"{where}: {exc}") from None

    def peer(probe: Probe) -> bool:
        if probe.kind != "ip" or not _ip_in(net, probe):
            return False
        if probe.ip is not None and probe.ip.version == 4 and net.version == 6:
            mapped = ipaddress.IPv6Address(int(MAPPED.network_address) + int(probe.ip))
            return not any(ex.version == 6 and mapped in ex for ex in exs)
        return not _except_hits(exs, probe)

    return peer


def _any(preds: Sequence[Callable[[Probe], bool]]) -> Callable[[Probe], bool]:
    return lambda p: any(f(p) for f in preds)


def _everything(_: Probe) -> bool:
    return True


# Kubernetes ------------------------------------------------------------------------------------


def _k8s_ports(ports: Any, where: str) -> dict[str, Intervals]:
    if not ports:
        return every_port()
    acc: dict[str, list[tuple[int, int]]] = {p: [] for p in PROTOCOLS}
    for i, entry in enumerate(ports):
        protocol = entry.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            raise InvalidPolicy(f"{where}[{i}].protocol {protocol!r}")
        port, end = entry.get("port"), entry.get("endPort")
        if port is None:
            acc[protocol].append((1, MAX_PORT))
        elif isinstance(port, int) and not isinstance(port, bool):
            if not 1 <= port <= MAX_PORT:
                raise InvalidPolicy(f"{where}[{i}].port {port}")
            if end is not None and not port <= end <= MAX_PORT:
                raise InvalidPolicy(f"{where}[{i}].endPort {end}")
            acc[protocol].append((port, end if end is not None else port))
        else:  # a named port: resolves against the peer pod's containers; never an IP probe's port
            if not is_iana_svc_name(str(port)):
                raise InvalidPolicy(f"{where}[{i}].port {port!r}")
    return {p: union(v) for p, v in acc.items()}


def _k8s_peer(peer: Mapping[str, Any], namespace: str, where: str) -> tuple[Callable[[Probe], bool], list[Any]]:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return _cidr_peer(block["cidr"], block.get("except") or [], where), []
    pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
    pod_reqs = _requirements(pod_sel, where + ".podSelector", sources=False)
    ns_reqs = _requirements(ns_sel, where + ".namespaceSelector", sources=False)

    def match(probe: Probe) -> bool:
        if probe.kind != "pod":
            return False
        if ns_sel is None:
            if probe.namespace != namespace:
                return False
        elif not matches(ns_reqs, plain(probe.ns_labels)):
            return False
        return matches(pod_reqs, plain(probe.plain_labels))

    return match, [pod_reqs]


def _kubernetes(manifest: Mapping[str, Any]) -> tuple[list[Entry], str]:
    meta = manifest.get("metadata") or {}
    namespace = str(meta.get("namespace") or "team-a")
    spec = manifest.get("spec") or {}
    subject_reqs = _requirements(spec.get("podSelector") or {}, "spec.podSelector", sources=False)
    egress = spec.get("egress")
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress", *(["Egress"] if egress else [])]
    rules: list[Rule] = []
    for direction, key, field_name in (("ingress", "ingress", "from"), ("egress", "egress", "to")):
        if direction.capitalize() not in types:
            continue
        for i, raw in enumerate(spec.get(key) or []):
            where = f"spec.{key}[{i}]"
            peers = raw.get(field_name)
            ports = _k8s_ports(raw.get("ports"), where + ".ports")
            if not peers:
                rules.append(Rule(direction, where, _everything, ports, explicit=False))
                continue
            preds, sels = [], []
            for j, p in enumerate(peers):
                pred, s = _k8s_peer(p, namespace, f"{where}.{field_name}[{j}]")
                preds.append(pred)
                sels.extend(s)
            rules.append(Rule(direction, where, _any(preds), ports, explicit=True, pod_selectors=sels))

    def subject(probe: Probe) -> bool:
        return probe.kind == "pod" and probe.namespace == namespace and matches(subject_reqs, plain(probe.plain_labels))

    return [Entry(subject, subject_reqs, rules)], namespace


# Cilium ----------------------------------------------------------------------------------------

ENTITIES = ("all", "world", "world-ipv4", "world-ipv6", "cluster", *RESERVED_IDENTITIES, "none")


def _entity(name: str, where: str) -> Callable[[Probe], bool]:
    if name not in ENTITIES:
        raise InvalidPolicy(f"{where}: entity {name!r}")
    if name == "all":
        return _everything
    if name == "none":
        return lambda p: False
    if name == "world":
        return lambda p: p.kind == "ip"
    if name == "world-ipv4":
        return lambda p: p.kind == "ip" and p.ip is not None and p.ip.version == 4
    if name == "world-ipv6":
        return lambda p: p.kind == "ip" and p.ip is not None and p.ip.version == 6
    if name == "cluster":
        return lambda p: p.kind in ("pod", "node", "reserved")
    if name == "host":  # treat-remote-node-as-host: the reading that allows more
        return lambda p: p.identity in ("host", "remote-node")
    return lambda p, n=name: p.identity == n  # type: ignore[misc]


NS_KEY = "io.kubernetes.pod.namespace"
NS_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."


def _endpoint_selector(selector: Any, namespace: str, where: str) -> tuple[Callable[[Probe], bool], list[Requirement]]:
    reqs = _requirements(selector or {}, where, sources=True)
    if any(src == "reserved" for src, *_ in reqs):
        scoped = list(reqs)  # utils.go: returned as is, not namespace scoped
    elif any(k == NS_KEY and src in ("k8s", "any") for src, k, *_ in reqs):
        scoped = list(reqs)
    elif namespace == "":  # CCNP: only Cilium-managed pods of some namespace
        scoped = [*reqs, ("k8s", NS_KEY, "Exists", ())]
    elif any(k.startswith(NS_LABELS_PREFIX) and src in ("k8s", "any") for src, k, *_ in reqs):
        scoped = list(reqs)
    else:
        scoped = [*reqs, ("k8s", NS_KEY, "In", (namespace,))]

    def match(probe: Probe) -> bool:
        return matches(scoped, probe.labels)

    return match, reqs


def _cilium_ports(to_ports: Any, where: str) -> dict[str, Intervals]:
    acc: dict[str, list[tuple[int, int]]] = {p: [] for p in PROTOCOLS}
    for i, port_rule in enumerate(to_ports):
        for j, entry in enumerate(port_rule.get("ports") or []):
            at = f"{where}[{i}].ports[{j}]"
            protocol = entry.get("protocol") or "ANY"
            protocols = PROTOCOLS if protocol == "ANY" else (protocol,)
            if protocol not in (*PROTOCOLS, "ANY"):
                if protocol in ("ICMP", "ICMPv6", "VRRP", "IGMP"):
                    continue
                raise InvalidPolicy(f"{at}.protocol {protocol!r}")
            raw = entry.get("port")
            end = entry.get("endPort")
            if raw is None or raw == "":
                interval: tuple[int, int] | None = (1, MAX_PORT)
            else:
                try:
                    number = go_parse_uint16(str(raw))
                except ValueError:
                    if not is_iana_svc_name(str(raw)):
                        raise InvalidPolicy(f"{at}.port {raw!r}") from None
                    interval = None  # named port: resolves against destination pods only
                else:
                    if number == 0:
                        interval = (1, MAX_PORT)
                    else:
                        hi = int(end) if end else number
                        interval = (number, max(hi, number))
            if interval is not None:
                for p in protocols:
                    acc[p].append(interval)
    return {p: union(v) for p, v in acc.items()}


L3_FIELDS = {
    "egress": ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toNodes", "toFQDNs", "toServices",
               "toGroups", "toRequires"),
    "ingress": ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "fromNodes", "fromRequires",
                "fromGroups"),
}


def _cilium_rule(raw: Mapping[str, Any], direction: str, namespace: str, where: str) -> Rule | None:
    pre = "to" if direction == "egress" else "from"
    has_l3 = any(raw.get(f) is not None for f in L3_FIELDS[direction] if not f.endswith("Requires"))
    to_ports = raw.get("toPorts")
    if not has_l3 and not to_ports:
        return None  # `{}` (or only ICMP, which we do not model): allows nothing we probe
    ports = _cilium_ports(to_ports, f"{where}.toPorts") if to_ports else every_port()
    if not has_l3:
        return Rule(direction, where, _everything, ports, explicit=False)
    preds: list[Callable[[Probe], bool]] = []
    sels: list[list[Requirement]] = []
    for j, sel in enumerate(raw.get(f"{pre}Endpoints") or []):
        pred, reqs = _endpoint_selector(sel, namespace, f"{where}.{pre}Endpoints[{j}]")
        preds.append(pred)
        sels.append(reqs)
    for j, name in enumerate(raw.get(f"{pre}Entities") or []):
        preds.append(_entity(str(name), f"{where}.{pre}Entities[{j}]"))
    for j, cidr in enumerate(raw.get(f"{pre}CIDR") or []):
        preds.append(_cidr_peer(str(cidr), [], f"{where}.{pre}CIDR[{j}]"))
    for j, cset in enumerate(raw.get(f"{pre}CIDRSet") or []):
        if "cidr" not in cset:
            continue  # cidrGroupRef / cidrGroupSelector: not modelled
        preds.append(_cidr_peer(str(cset["cidr"]), [str(e) for e in cset.get("except") or []],
                                f"{where}.{pre}CIDRSet[{j}]"))
    if raw.get(f"{pre}Nodes") is not None and raw.get(f"{pre}Nodes"):
        # getNodeSelector: any node matching; node labels are unknown to a policy author, so any selector
        # may pick the local host and remote nodes (the reading that allows more).
        preds.append(lambda p: p.identity in ("host", "remote-node"))
    return Rule(direction, where, _any(preds), ports, explicit=True, pod_selectors=sels)


def _cilium(manifest: Mapping[str, Any]) -> tuple[list[Entry], str]:
    kind = manifest.get("kind")
    meta = manifest.get("metadata") or {}
    namespace = "" if kind == "CiliumClusterwideNetworkPolicy" else str(meta.get("namespace") or "team-a")
    specs: list[tuple[str, Mapping[str, Any]]] = []
    if manifest.get("spec") is not None:
        specs.append(("spec", manifest["spec"]))
    for i, s in enumerate(manifest.get("specs") or []):
        specs.append((f"specs[{i}]", s))
    entries = []
    for where, spec in specs:
        if spec.get("endpointSelector") is None:
            continue  # nodeSelector policies (host firewall) are not modelled: no pod subject
        subject_reqs = _requirements(spec["endpointSelector"], f"{where}.endpointSelector", sources=True)
        rules = []
        for direction in ("ingress", "egress"):
            for i, raw in enumerate(spec.get(direction) or []):
                rule = _cilium_rule(raw, direction, namespace, f"{where}.{direction}[{i}]")
                if rule is not None:
                    rules.append(rule)

        def subject(probe: Probe, reqs: list[Requirement] = subject_reqs) -> bool:
            if probe.kind != "pod" or probe.tomorrow:
                return False
            if namespace and probe.namespace != namespace:
                return False
            return matches(reqs, probe.labels)

        entries.append(Entry(subject, subject_reqs, rules))
    return entries, namespace


# --- the oracle ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A predicate whose value may be uncertain: None = too close to a threshold to assert."""

    value: bool | None
    detail: str = ""


class Oracle:
    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.manifest = manifest
        self.kind = str(manifest.get("kind"))
        if self.kind == "NetworkPolicy":
            self.entries, self.namespace = _kubernetes(manifest)
        elif self.kind in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"):
            self.entries, self.namespace = _cilium(manifest)
        else:
            raise InvalidPolicy(f"kind {self.kind!r}")
        self.subjects = self._subjects()
        self.tomorrow_pods = self._tomorrow_pods()
        self.universe: tuple[Probe, ...] = (*IP_PROBES, *RESERVED_PROBES, *self._pods(), *self.tomorrow_pods)
        self._reach: dict[int, frozenset[int]] = {}

    # universe --------------------------------------------------------------------------------
    def _subjects(self) -> list[Probe]:
        """Pods each entry selects, and pods selected by several entries at once (their labels merged)."""
        namespace = self.namespace or "team-a"
        canon = [canonical_labels(e.subject_reqs) or [{}] for e in self.entries]
        candidates: dict[str, Probe] = {}
        for labels in BASE_POD_LABELS:
            pod = make_pod(namespace, labels)
            candidates[pod.name] = pod
        for size in range(1, len(canon) + 1):
            for group in itertools.combinations(range(len(canon)), size):
                for combo in itertools.product(*(canon[i] for i in group)):
                    merged: dict[str, str] = {}
                    for labels in combo:
                        merged.update(labels)
                    pod = make_pod(namespace, merged)
                    candidates[pod.name] = pod
        return [p for p in candidates.values() if any(e.subject(p) for e in self.entries)]

    def _pods(self) -> list[Probe]:
        return [make_pod(ns, labels) for ns in NAMESPACES for labels in BASE_POD_LABELS]

    def _tomorrow_pods(self) -> list[Probe]:
        label_sets = [dict(x) for x in BASE_POD_LABELS]
        for entry in self.entries:
            for rule in entry.rules:
                for reqs in rule.pod_selectors:
                    label_sets.extend(canonical_labels(reqs))
        seen: dict[str, Probe] = {}
        for labels in label_sets:
            pod = make_pod(TOMORROW, labels, tomorrow=True)
            seen[pod.name] = pod
        return list(seen.values())

    # rules -----------------------------------------------------------------------------------
    def rules_for(self, subject: Probe, direction: str) -> list[Rule]:
        return [r for e in self.entries if e.subject(subject) for r in e.rules if r.direction == direction]

    def reach(self, rule: Rule) -> frozenset[int]:
        """Indexes (into self.universe) of the identities the rule's L3 part selects."""
        key = id(rule)
        if key not in self._reach:
            self._reach[key] = frozenset(i for i, p in enumerate(self.universe) if rule.peer(p))
        return self._reach[key]

    def allowed(self, subject: Probe, direction: str, peer: Probe, protocol: str, port: int) -> bool:
        return any(r.peer(peer) and r.port_allowed(protocol, port) for r in self.rules_for(subject, direction))

    # predicates ------------------------------------------------------------------------------
    def internet(self, direction: str, *, every_port: bool) -> Figure:
        """Some subject reaches >= internet_coverage of the public space of some family, on >=
        port_coverage of the ports of some protocol (every_port) or on at least one port."""
        certain_true: list[str] = []
        all_false = True
        families = {"v4": [], "v6": [], "nat64": []}  # type: dict[str, list[tuple[int, Probe]]]
        for i, p in enumerate(self.universe):
            if p.family:
                families[p.family].append((i, p))
        seen: set[tuple[int, ...]] = set()
        coverage: dict[frozenset[int], float] = {}
        for subject in self.subjects:
            rules = self.rules_for(subject, direction)
            key = tuple(sorted(id(r) for r in rules))
            if not rules or key in seen:
                continue
            seen.add(key)
            reaches = [(self.reach(r), r) for r in rules]
            for family, probes in families.items():
                lo = {"strict": 0.0, "loose": 0.0}
                hi = {"strict": 0.0, "loose": 0.0}
                for i, p in probes:
                    hit = [r for reach, r in reaches if i in reach]
                    which = frozenset(id(r) for r in hit)
                    if which not in coverage:
                        coverage[which] = self._port_coverage(hit)
                    cov = coverage[which]
                    if every_port:
                        sure, maybe = cov >= PORT_COVERAGE + PORT_BAND, cov >= PORT_COVERAGE - PORT_BAND
                    else:
                        sure = maybe = cov > 0
                    for reading, w in (("strict", p.weight), ("loose", p.weight_loose)):
                        lo[reading] += w if sure else 0.0
                        hi[reading] += w if maybe else 0.0
                readings = ("strict", "loose") if family == "v4" else ("strict",)
                if all(lo[r] >= INTERNET_COVERAGE + INTERNET_BAND for r in readings):
                    certain_true.append(f"{subject.name} {family} {lo['strict']:.3f}")
                if not all(hi[r] < INTERNET_COVERAGE - INTERNET_BAND for r in readings):
                    all_false = False
        if certain_true:
            return Figure(True, "; ".join(certain_true))
        return Figure(False) if all_false else Figure(None, "near a threshold")

    @staticmethod
    def _port_coverage(rules: Sequence[Rule]) -> float:
        best = 0
        for protocol in PROTOCOLS:
            best = max(best, measure(union(iv for r in rules for iv in r.ports.get(protocol, ()))))
        return best / MAX_PORT

    def metadata(self) -> bool:
        """A metadata address is reachable on a metadata port over TCP."""
        targets = [p for p in self.universe if p.ip is not None and str(p.ip) in METADATA_ADDRESSES]
        return any(self.allowed(s, "egress", t, "TCP", port)
                   for s in self.subjects for t in targets for port in METADATA_PORTS)

    def all_namespaces_rules(self, direction: str) -> list[str]:
        """Rules with explicit peers that allow a pod of a namespace created tomorrow (not merely a
        shared service on its own ports)."""
        out = []
        for subject in self.subjects:
            for rule in self.rules_for(subject, direction):
                if not rule.explicit or not rule.allows_some_port:
                    continue
                if any(rule.peer(p) and not self._shared_service_only(p, rule) for p in self.tomorrow_pods):
                    out.append(rule.path)
        return sorted(set(out))

    @staticmethod
    def _shared_service_only(pod: Probe, rule: Rule) -> bool:
        """no-all-namespaces-peer's exemption: the pod is a shared service and the rule allows only its ports."""
        entries = [(p, lo, hi) for p in PROTOCOLS for lo, hi in rule.ports.get(p, ())]
        for service in SHARED_SERVICES:
            wanted = service.get("pod_labels") or {}
            if not wanted or any(pod.plain_labels.get(k) != v for k, v in wanted.items()):
                continue
            listed = {str(x) for x in service.get("ports") or []}
            if entries and all(lo == hi and f"{p}/{lo}" in listed for p, lo, hi in entries):
                return True
        return False

    def sensitive_rules(self) -> tuple[list[str], list[str]]:
        """(rules with explicit peers reaching a sensitive identity on egress, those of them that reach
        neither the internet nor a pod of tomorrow's namespace: no other guardrail covers them)."""
        if self.kind == "NetworkPolicy":
            return [], []
        any_rules, narrow = [], []
        for subject in self.subjects:
            for rule in self.rules_for(subject, "egress"):
                if not rule.explicit or not rule.allows_some_port:
                    continue
                reach = [self.universe[i] for i in self.reach(rule)]
                if any(p.identity in SENSITIVE_ENTITIES for p in reach):
                    any_rules.append(rule.path)
                    if not any(p.tomorrow or p.family for p in reach):
                        narrow.append(rule.path)
        return sorted(set(any_rules)), sorted(set(narrow))
