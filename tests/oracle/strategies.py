"""Hypothesis strategies for policies of the three kinds, biased towards adversarial spellings.

Designed so that the oracle's figures are exact or far from the thresholds:
- IPv4 CIDRs are either of prefix <= 8 (unions of whole /8s, and the oracle has one probe per /8
  weighted by its public size, so the covered share is exact), non-public ranges, or tiny public
  CIDRs (/16../32) that contain no probe address (X.200.88.99) and weigh < 0.01%.
- IPv6 CIDRs are of prefix <= 7 inside 2000::/3 (the oracle has one probe per /7), whole halves,
  NAT64 / IPv4-mapped /96s (read as the IPv4 space), non-public ranges or tiny ones.
- port ranges have their boundaries in the edge set, so a protocol's coverage is ~0%, ~50%, ~87.5%,
  ~98.4% or ~100% of 1-65535: never within 1% of the 90% port_coverage threshold.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NS = "team-a"

V4_SPLITS: tuple[tuple[str, ...], ...] = (
    ("0.0.0.0/0",),
    ("0.0.0.0/1", "128.0.0.0/1"),
    ("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1"),
    ("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"),  # all but 224/3: multicast and reserved only
    ("0.0.0.0/1", "128.0.0.0/2"),  # ~75%: below 90%
    ("0.0.0.0/1",),
    ("0.0.0.0/3", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"),
    ("8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"),  # all but 0-7/8
)
V6_SPLITS: tuple[tuple[str, ...], ...] = (
    ("::/0",),
    ("::/1", "8000::/1"),
    ("2000::/3",),
    ("2000::/4", "3000::/4"),
    ("2000::/4",),
    ("2000::/5", "2800::/5", "3000::/4"),
    ("64:ff9b::/96",),
    ("::ffff:0:0/96",),
    ("::ffff:0:0/97", "::ffff:128.0.0.0/97"),
    ("4000::/2", "8000::/1"),  # outside 2000::/3: not the IPv6 internet
)
SMALL_CIDRS = ("10.0.0.0/8", "192.168.0.0/16", "169.254.0.0/16", "169.254.169.254/32", "100.64.0.0/10",
               "8.8.8.8/32", "1.1.1.0/24", "52.94.0.0/16", "203.0.113.0/24", "fd00:ec2::254/128",
               "fd00::/8", "fe80::/10", "2001:db8::/32", "2600::/16", "2a00:1450::/32")
EXCEPTS = ("10.0.0.0/8", "169.254.169.254/32", "169.254.0.0/16", "192.168.0.0/16", "8.0.0.0/8",
           "64.0.0.0/2", "128.0.0.0/3", "0.0.0.0/1", "::ffff:169.254.169.254/128", "::ffff:0:0/97",
           "fd00:ec2::254/128", "2000::/4", "fd00::/8", "3000::/4", "::ffff:10.0.0.0/104")

PORT_SPLITS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((1, 65535),),
    ((1, 79), (81, 65535)),
    ((2, 65535),),
    ((1, 32767), (32768, 65535)),
    ((1, 1023), (1024, 65535)),
    ((1024, 65535),),
    ((1, 32767),),
    ((81, 65535),),
    ((80, 80),),
    ((443, 443),),
    ((53, 53),),
    ((1, 79), (81, 1023), (1024, 65535)),
    ((1, 57343),),  # 87.5%
)
ODD_SPELLINGS = {
    0: ("0", "00", "0x0", "0o0", "0_0"),
    1: ("1", "01", "0x1", "0b1"),
    2: ("2", "0x2", "02"),
    53: ("53", "0x35", "065", "5_3"),
    79: ("79", "0x4f", "0117"),
    80: ("80", "0x50", "0X50", "0120", "8_0", "0o120", "0b1010000", "0x_50"),
    81: ("81", "0x51", "0121"),
    443: ("443", "0x1bb", "0o673", "4_4_3"),
    1023: ("1023", "0x3ff", "01777"),
    1024: ("1024", "0x400", "1_024"),
    32767: ("32767", "0x7fff"),
    32768: ("32768", "0x8000", "0100000"),
    57343: ("57343", "0xdfff"),
    65534: ("65534", "0xfffe"),
    65535: ("65535", "0xffff", "65_535", "0177777"),
}
INVALID_PORTS = ("²", "+80", "65536", "-1", "8__0", "_80", "80_", " 80", "0x5_", "99999", "٨٠")

K8S_SUBJECTS: tuple[dict[str, Any], ...] = (
    {},
    {"matchLabels": {"app": "web"}},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    {"matchLabels": {"app": "web", "tier": "fe"}},
    {"matchLabels": {"tier": "fe", "app": "web"}},
    {"matchLabels": {"tier": "fe"}},
    {"matchLabels": {"app": "db"}},
    {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
)
CILIUM_SUBJECTS: tuple[dict[str, Any], ...] = (
    *K8S_SUBJECTS,
    {"matchLabels": {"k8s:app": "web"}},
    {"matchLabels": {"any:app": "web"}},
    {"matchExpressions": [{"key": "k8s:app", "operator": "In", "values": ["web"]}]},
)
ENDPOINT_PEERS: tuple[dict[str, Any], ...] = (
    {},
    {"matchLabels": {"app": "db"}},
    {"matchLabels": {"io.kubernetes.pod.namespace": "team-b"}},
    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "team-b", "app": "api"}},
    {"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}]},
    {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["team-b"]}]},
    {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "b"}},
    {"matchExpressions": [{"key": "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                           "operator": "Exists"}]},
    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}},
    {"matchLabels": {"k8s-app": "kube-dns"}},
    {"matchLabels": {"reserved:host": ""}},
    {"matchLabels": {"reserved:world": ""}},
    {"matchLabels": {"reserved:kube-apiserver": ""}},
    {"matchLabels": {"reserved:remote-node": ""}},
    {"matchLabels": {"reserved:ingress": ""}},
    {"matchExpressions": [{"key": "reserved:host", "operator": "Exists"}]},
    {"matchExpressions": [{"key": "reserved:host", "operator": "DoesNotExist"}]},
    {"matchExpressions": [{"key": "reserved:world", "operator": "NotIn", "values": [""]}]},
    {"matchExpressions": [{"key": "reserved:world", "operator": "In", "values": [""]}]},
)
K8S_PEER_SELECTORS: tuple[dict[str, Any], ...] = (
    {"podSelector": {}},
    {"podSelector": {"matchLabels": {"app": "db"}}},
    {"namespaceSelector": {}},
    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}},
    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}},
    {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                 "values": ["team-b"]}]}},
    {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}},
    {"namespaceSelector": {"matchLabels": {"team": "b"}}},
    {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}},
)
ENTITIES = ("world", "world-ipv4", "world-ipv6", "cluster", "host", "remote-node", "kube-apiserver", "health",
            "init", "ingress", "unmanaged", "all", "none")
NODE_SELECTORS = ({}, {"matchLabels": {"node-role.kubernetes.io/control-plane": ""}})


def _contained(outer: str, inner: str) -> bool:
    """Is `inner` a strict subset of `outer` as the Kubernetes API validates (Go net.IPNet.Contains, which
    accepts an IPv4-mapped IPv6 address inside an IPv4 network)."""
    import ipaddress

    o, i = ipaddress.ip_network(outer), ipaddress.ip_network(inner)
    if o.version == 4 and i.version == 6:
        mapped = ipaddress.ip_network("::ffff:0:0/96")
        if not i.subnet_of(mapped):  # type: ignore[arg-type]
            return False
        inner4 = ipaddress.ip_network((int(i.network_address) - int(mapped.network_address), i.prefixlen - 96))
        return inner4.subnet_of(o) and inner4.prefixlen > o.prefixlen  # type: ignore[arg-type]
    return o.version == i.version and i.subnet_of(o) and i.prefixlen > o.prefixlen  # type: ignore[arg-type]


@st.composite
def cidr_group(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    """A list of (cidr, excepts) pieces: a split of one family's space, or a few small CIDRs."""
    kind = draw(st.sampled_from(("v4", "v4", "v6", "small", "both")))
    if kind == "v4":
        pieces = list(draw(st.sampled_from(V4_SPLITS)))
    elif kind == "v6":
        pieces = list(draw(st.sampled_from(V6_SPLITS)))
    elif kind == "both":
        pieces = [*draw(st.sampled_from(V4_SPLITS)), *draw(st.sampled_from(V6_SPLITS))]
    else:
        pieces = draw(st.lists(st.sampled_from(SMALL_CIDRS), min_size=1, max_size=2, unique=True))
    out = []
    for cidr in pieces:
        candidates = [e for e in EXCEPTS if _contained(cidr, e)]
        excepts = draw(st.lists(st.sampled_from(candidates), max_size=2, unique=True)) if candidates else []
        out.append((cidr, excepts))
    return out


# Abstract rule: {"direction", "peers": list[abstract peer] | None (no peers), "ports": list[(proto, lo, hi)] | None}
# abstract peers: ("cidr", cidr, excepts) | ("entity", name) | ("endpoints", selector) | ("nodes", selector)
#                 | ("k8s", peer dict)


@st.composite
def port_entries(draw: st.DrawFn, cilium: bool) -> list[tuple[str | None, int, int]] | None:
    if draw(st.integers(0, 5)) == 0:
        return None  # no port restriction
    split = draw(st.sampled_from(PORT_SPLITS))
    protocols = ("TCP", "UDP", "SCTP", None, *(("ANY",) if cilium else ()))
    proto = draw(st.sampled_from(protocols))
    return [(proto, lo, hi) for lo, hi in split]


@st.composite
def abstract_rules(draw: st.DrawFn, cilium: bool) -> list[dict[str, Any]]:
    """Rules built around one adversarial idea: a split of CIDRs, a split of ports, or random peers."""
    direction = draw(st.sampled_from(("egress", "egress", "ingress")))
    mode = draw(st.sampled_from(("split-peers", "split-ports", "random", "random")))
    rules: list[dict[str, Any]] = []
    if mode == "split-peers":
        pieces = draw(cidr_group())
        ports = draw(port_entries(cilium))
        together = draw(st.booleans())
        peers = [("cidr", c, e) for c, e in pieces]
        if together:
            rules.append({"direction": direction, "peers": peers, "ports": ports})
        else:
            for peer in peers:
                rules.append({"direction": direction, "peers": [peer],
                              "ports": ports if draw(st.booleans()) else draw(port_entries(cilium))})
    elif mode == "split-ports":
        peers = draw(peer_list(cilium, allow_none=True))
        split = draw(st.sampled_from(PORT_SPLITS))
        proto = draw(st.sampled_from(("TCP", "UDP", None, *(("ANY",) if cilium else ()))))
        if draw(st.booleans()):
            rules.append({"direction": direction, "peers": peers, "ports": [(proto, lo, hi) for lo, hi in split]})
        else:
            for lo, hi in split:
                rules.append({"direction": direction, "peers": peers, "ports": [(proto, lo, hi)]})
    else:
        for _ in range(draw(st.integers(1, 3))):
            rules.append({"direction": draw(st.sampled_from(("egress", "ingress"))),
                          "peers": draw(peer_list(cilium, allow_none=True)), "ports": draw(port_entries(cilium))})
    return rules


@st.composite
def peer_list(draw: st.DrawFn, cilium: bool, allow_none: bool) -> list[tuple[Any, ...]] | None:
    if allow_none and draw(st.integers(0, 6)) == 0:
        return None
    out: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 2))):
        choice = draw(st.sampled_from(("cidr", "entity", "endpoints", "nodes") if cilium else ("cidr", "k8s")))
        if choice == "cidr":
            out.extend(("cidr", c, e) for c, e in draw(cidr_group()))
        elif choice == "entity":
            out.append(("entity", draw(st.sampled_from(ENTITIES))))
        elif choice == "endpoints":
            out.append(("endpoints", draw(st.sampled_from(ENDPOINT_PEERS))))
        elif choice == "nodes":
            out.append(("nodes", draw(st.sampled_from(NODE_SELECTORS))))
        else:
            out.append(("k8s", draw(st.sampled_from(K8S_PEER_SELECTORS))))
    return out


# --- rendering ----------------------------------------------------------------------------------


def render_k8s_rule(rule: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    field = "to" if rule["direction"] == "egress" else "from"
    out: dict[str, Any] = {}
    if rule["peers"] is None:
        if draw(st.booleans()):
            out[field] = []
    else:
        peers = []
        for peer in rule["peers"]:
            if peer[0] == "cidr":
                block: dict[str, Any] = {"cidr": peer[1]}
                if peer[2]:
                    block["except"] = list(peer[2])
                peers.append({"ipBlock": block})
            else:
                peers.append(dict(peer[1]))
        out[field] = peers
    if rule["ports"] is None:
        if draw(st.booleans()):
            out["ports"] = []
    else:
        entries = []
        for proto, lo, hi in rule["ports"]:
            entry: dict[str, Any] = {}
            if proto is not None:
                entry["protocol"] = proto
            if (lo, hi) != (1, 65535) or draw(st.booleans()):
                entry["port"] = lo
                if hi > lo:
                    entry["endPort"] = hi
            entries.append(entry)
        out["ports"] = entries
    return out


def render_cilium_rule(rule: dict[str, Any], draw: st.DrawFn, invalid: bool) -> dict[str, Any]:
    pre = "to" if rule["direction"] == "egress" else "from"
    out: dict[str, Any] = {}
    for peer in rule["peers"] or []:
        if peer[0] == "cidr":
            if peer[2] or draw(st.booleans()):
                item: dict[str, Any] = {"cidr": peer[1]}
                if peer[2]:
                    item["except"] = list(peer[2])
                out.setdefault(f"{pre}CIDRSet", []).append(item)
            else:
                out.setdefault(f"{pre}CIDR", []).append(peer[1])
        elif peer[0] == "entity":
            if peer[1] not in out.get(f"{pre}Entities", []):
                out.setdefault(f"{pre}Entities", []).append(peer[1])
        elif peer[0] == "endpoints":
            out.setdefault(f"{pre}Endpoints", []).append(dict(peer[1]))
        elif peer[0] == "nodes":
            out.setdefault(f"{pre}Nodes", []).append(dict(peer[1]))
    if rule["ports"] is not None or invalid:
        ports = []
        for proto, lo, hi in rule["ports"] or ():
            entry: dict[str, Any] = {}
            if (lo, hi) == (1, 65535):
                how = draw(st.sampled_from(("omit", "zero", "range")))
                if how == "zero":
                    entry["port"] = draw(st.sampled_from(ODD_SPELLINGS[0]))
                elif how == "range":
                    entry["port"] = draw(st.sampled_from(ODD_SPELLINGS[1]))
                    entry["endPort"] = 65535
            else:
                entry["port"] = draw(st.sampled_from(ODD_SPELLINGS.get(lo, (str(lo),))))
                if hi > lo:
                    entry["endPort"] = hi
            if invalid and "port" in entry:
                entry["port"] = draw(st.sampled_from(INVALID_PORTS))
                invalid = False
            if proto is not None:
                entry["protocol"] = proto
            ports.append(entry)
        if invalid:
            ports.append({"port": draw(st.sampled_from(INVALID_PORTS)), "protocol": "TCP"})
        # one toPorts entry, or one per port entry (equivalent)
        if draw(st.booleans()):
            out["toPorts"] = [{"ports": ports}]
        else:
            out["toPorts"] = [{"ports": [p]} for p in ports]
    return out


@st.composite
def kubernetes_policies(draw: st.DrawFn) -> dict[str, Any]:
    rules = draw(abstract_rules(cilium=False))
    spec: dict[str, Any] = {"podSelector": draw(st.sampled_from(K8S_SUBJECTS))}
    for rule in rules:
        spec.setdefault(rule["direction"], []).append(render_k8s_rule(rule, draw))
    types = draw(st.sampled_from((None, None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "generated", "namespace": NS}, "spec": spec}


@st.composite
def cilium_policies(draw: st.DrawFn, invalid_ports: bool = False) -> dict[str, Any]:
    kind = draw(st.sampled_from(("CiliumNetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")))
    rules = draw(abstract_rules(cilium=True))
    n_entries = draw(st.integers(1, 3))
    selectors = [draw(st.sampled_from(CILIUM_SUBJECTS)) for _ in range(n_entries)]
    entries: list[dict[str, Any]] = [{"endpointSelector": s} for s in selectors]
    invalid_at = draw(st.integers(0, len(rules) - 1)) if invalid_ports else -1
    for i, rule in enumerate(rules):
        entry = entries[draw(st.integers(0, n_entries - 1))]
        entry.setdefault(rule["direction"], []).append(render_cilium_rule(rule, draw, invalid=i == invalid_at))
    if invalid_ports and not any(
            "toPorts" in r for e in entries for d in ("ingress", "egress") for r in e.get(d, [])):
        entries[0].setdefault("egress", []).append(
            {"toEntities": ["world"], "toPorts": [{"ports": [{"port": draw(st.sampled_from(INVALID_PORTS))}]}]})
    for entry in entries:
        if draw(st.integers(0, 5)) == 0:
            entry["egressDeny"] = [{"toCIDR": ["169.254.169.254/32"]}]
        if draw(st.integers(0, 5)) == 0:
            entry["enableDefaultDeny"] = {"egress": draw(st.booleans()), "ingress": draw(st.booleans())}
    meta: dict[str, Any] = {"name": "generated"}
    if kind == "CiliumNetworkPolicy":
        meta["namespace"] = NS
    manifest: dict[str, Any] = {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta}
    if n_entries == 1 and draw(st.booleans()):
        manifest["spec"] = entries[0]
    else:
        manifest["specs"] = entries
    return manifest


def policies() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(kubernetes_policies(), cilium_policies(), cilium_policies())
