"""The sig-network network-policy-api language that AdminNetworkPolicy, BaselineAdminNetworkPolicy
(policy.networking.k8s.io/v1alpha1) and ClusterNetworkPolicy (v1alpha2) write their spec in.

Types relied on (kubernetes-sigs/network-policy-api, apis/v1alpha1/{adminnetworkpolicy,baselineadminnetworkpolicy,
shared}_types.go and apis/v1alpha2/clusternetworkpolicy_types.go):
- `subject`: exactly one of `namespaces` (a namespace label selector: every pod of those namespaces) and `pods`
  ({namespaceSelector, podSelector}; an empty selector selects every namespace / pod). Host-networked pods are
  never subjects.
- `ingress` / `egress`: ordered rules (the first match wins within a policy) with an `action`: v1alpha1
  Allow / Deny / Pass (BANP: Allow / Deny), v1alpha2 Accept / Deny / Pass. Pass skips the rest of the tier: the
  traffic goes on to NetworkPolicy, then the Baseline tier. Rules with no peers do not exist: `from` / `to` hold
  at least one peer, each setting exactly one field.
- peers: `namespaces`, `pods` (both directions); egress also `nodes` (node IPs, a label selector: empty = every
  node), `networks` (CIDRs: they match cluster-internal traffic too, so an Accept to 0.0.0.0/0 accepts all IPv4
  pod-to-pod traffic: ClusterNetworkPolicyEgressPeer.networks) and `domainNames` (ANP, CNP; "*." matches one or
  more leading labels).
- ports: v1alpha1 `ports` [{portNumber {protocol (default TCP), port}} | {portRange {protocol, start, end}} |
  {namedPort}]; v1alpha2 `protocols` [{tcp|udp|sctp {destinationPort {number} | {range {start, end}}}} |
  {destinationNamedPort}]. No entry: every port of every protocol.
These kinds have no isolation (a subject is not put in default deny by being selected): a subject isolates a
direction only as a Baseline-tier deny-all, the default-deny baseline posture.py defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.deadline import check as check_deadline
from webhook.core.netpolicy import (
    Action,
    Direction,
    NamespaceScope,
    Peer,
    PeerType,
    PortRange,
    Rule,
    Subject,
    updated,
)
from webhook.core.normalize import namespace_scope
from webhook.core.posture import baseline_deny_all
from webhook.core.selectors import NAMESPACE_NAME_LABEL, Selector, parse_selector
from webhook.core.shape import ShapeError, expect_list, expect_mapping, expect_str, optional_list, optional_str

PROTOCOLS = ("TCP", "UDP", "SCTP")
ADMIN = "Admin"
BASELINE = "Baseline"

V1ALPHA1_ACTIONS = {"Allow": Action.ALLOW, "Deny": Action.DENY, "Pass": Action.PASS}
BANP_ACTIONS = {"Allow": Action.ALLOW, "Deny": Action.DENY}
V1ALPHA2_ACTIONS = {"Accept": Action.ALLOW, "Deny": Action.DENY, "Pass": Action.PASS}

INGRESS_PEERS = ("namespaces", "pods")
EGRESS_PEERS = ("namespaces", "pods", "nodes", "networks", "domainNames")
BANP_EGRESS_PEERS = ("namespaces", "pods", "nodes", "networks")  # no domainNames in BANP (v1alpha1)

# Said of an accepted networks entry that holds a whole address family: networks match cluster-internal traffic too,
# so it accepts every pod of that family as well (the API's own warning, ClusterNetworkPolicyEgressPeer.networks).
POD_TRAFFIC_NOTE = "networks match pod traffic too: this also accepts every pod of the cluster"


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    if obj.get("spec") is None:
        raise ShapeError("spec", "is required")
    return expect_mapping(obj["spec"], "spec")


def priority(obj: Mapping[str, Any]) -> int:
    """spec.priority: 0 to 1000, lower first (required)."""
    value = _spec(obj).get("priority")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError("spec.priority", "is required: a whole number from 0 to 1000")
    if not 0 <= value <= 1000:
        raise ShapeError("spec.priority", f"must be between 0 and 1000, got {value}")
    return value


def tier(obj: Mapping[str, Any]) -> str:
    """ClusterNetworkPolicy's spec.tier: Admin or Baseline (required)."""
    value = _spec(obj).get("tier")
    if value not in (ADMIN, BASELINE):
        raise ShapeError("spec.tier", f"must be {ADMIN} or {BASELINE}, got {value!r}")
    return str(value)


def subjects_and_rules(obj: Mapping[str, Any], tier: str, actions: Mapping[str, Action], egress_peers: tuple[str, ...],
                       ports_key: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    """The one subject and its rules, in written order. `ports_key` is "ports" (v1alpha1) or "protocols".
    A Baseline-tier subject whose rules deny every peer first isolates that direction: it is the default deny
    of the pods no NetworkPolicy selects (posture.baseline_deny_all, the one definition)."""
    spec = _spec(obj)
    subject = _subject(spec)
    rules: list[Rule] = []
    for direction, key, allowed in ((Direction.INGRESS, "from", INGRESS_PEERS), (Direction.EGRESS, "to", egress_peers)):
        for i, item in enumerate(optional_list(spec, direction.value, "spec")):
            check_deadline("normalization")
            path = f"spec.{direction.value}[{i}]"
            rules.append(_rule(expect_mapping(item, path), path, direction, key, allowed, actions, ports_key))
    if tier == BASELINE:
        subject = updated(subject, isolates={d: baseline_deny_all(rules, subject, d) for d in ("ingress", "egress")})
    return (subject,), tuple(rules)


def _subject(spec: Mapping[str, Any]) -> Subject:
    if spec.get("subject") is None:
        raise ShapeError("spec.subject", "is required")
    raw = expect_mapping(spec["subject"], "spec.subject")
    field_name = _one_of(raw, ("namespaces", "pods"), "spec.subject")
    path = f"spec.subject.{field_name}"
    if field_name == "namespaces":
        pods, namespaces, selector_path = Selector(), _namespaces(raw[field_name], path), path
    else:
        pods, namespaces = _namespaced_pod(raw[field_name], path)
        selector_path = f"{path}.podSelector"
    return Subject(index=0, path="spec", selector_path=selector_path, selects="pods", selector=pods,
                   namespaces=namespaces, isolates={"ingress": False, "egress": False},
                   default_deny_explicit={"ingress": None, "egress": None})


def _one_of(raw: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> str:
    present = [k for k, v in raw.items() if v is not None]
    unknown = [k for k in present if k not in allowed]
    if unknown:
        raise ShapeError(f"{path}.{unknown[0]}", f"is not a field here; one of {', '.join(allowed)}")
    if len(present) != 1:
        raise ShapeError(path, f"must set exactly one of {', '.join(allowed)}")
    return present[0]


def _namespaces(value: Any, path: str) -> NamespaceScope:
    """A namespace label selector: empty = every namespace, present and future."""
    return namespace_scope(parse_selector(value, path), NAMESPACE_NAME_LABEL, unkeyed=None)


def _namespaced_pod(value: Any, path: str) -> tuple[Selector, NamespaceScope]:
    raw = expect_mapping(value, path)
    for key in raw:
        if key not in ("namespaceSelector", "podSelector"):
            raise ShapeError(f"{path}.{key}", "is not a field here; namespaceSelector, podSelector")
    if raw.get("podSelector") is None:
        raise ShapeError(f"{path}.podSelector", "is required (an empty selector selects every pod)")
    pods = parse_selector(raw["podSelector"], f"{path}.podSelector")
    return pods, _namespaces(raw.get("namespaceSelector"), f"{path}.namespaceSelector")


def _rule(raw: Mapping[str, Any], path: str, direction: Direction, key: str, allowed: tuple[str, ...],
          actions: Mapping[str, Action], ports_key: str) -> Rule:
    written = raw.get("action")
    action = actions.get(written) if isinstance(written, str) else None
    if action is None:
        raise ShapeError(f"{path}.action", f"must be one of {', '.join(actions)}, got {written!r}")
    items = expect_list(raw.get(key), f"{path}.{key}") if raw.get(key) is not None else []
    if not items:
        raise ShapeError(f"{path}.{key}", "is required: at least one peer")
    peers: list[Peer] = []
    for j, item in enumerate(items):
        peers.extend(_peers(expect_mapping(item, f"{path}.{key}[{j}]"), f"{path}.{key}[{j}]", allowed, action))
    other = "protocols" if ports_key == "ports" else "ports"
    if raw.get(other) is not None:
        raise ShapeError(f"{path}.{other}", f"is not a field of this version; {ports_key}")
    entries = optional_list(raw, ports_key, path)
    read = _port if ports_key == "ports" else _protocol
    ports = tuple(read(expect_mapping(e, f"{path}.{ports_key}[{k}]"), f"{path}.{ports_key}[{k}]")
                  for k, e in enumerate(entries))
    return Rule(path=path, subject=0, direction=direction, action=action, peers=tuple(peers), ports=ports)


def _peers(raw: Mapping[str, Any], path: str, allowed: tuple[str, ...], action: Action) -> list[Peer]:
    field_name = _one_of(raw, allowed, path)
    value = raw[field_name]
    at = f"{path}.{field_name}"
    if field_name == "namespaces":
        return [Peer(path=at, type=PeerType.PODS, namespaces=_namespaces(value, at), pods=Selector())]
    if field_name == "pods":
        pods, namespaces = _namespaced_pod(value, at)
        return [Peer(path=at, type=PeerType.PODS, namespaces=namespaces, pods=pods)]
    if field_name == "nodes":
        # Node IPs (node.status.addresses): the host and remote-node identities of the model (facts.py).
        selector = parse_selector(value, at)
        return [Peer(path=at, type=PeerType.NODES, raw={"all": selector.empty}, pods=selector)]
    entries = expect_list(value, at)
    if not entries:
        raise ShapeError(at, "must hold at least one entry")
    if field_name == "networks":
        out = []
        for k, entry in enumerate(entries):
            cidr = expect_str(entry, f"{at}[{k}]").strip()
            whole = cidr.endswith("/0")
            out.append(Peer(path=f"{at}[{k}]", type=PeerType.CIDR, cidr=cidr,
                            via=POD_TRAFFIC_NOTE if whole and action is Action.ALLOW else ""))
        return out
    # domainNames: exact names, or "*." then a name (one or more leading labels), as Cilium's matchPattern
    # reads a leading "*." for the wildcard facts (fqdn.py).
    out = []
    for k, entry in enumerate(entries):
        name = expect_str(entry, f"{at}[{k}]").lower().rstrip(".")
        wild = name.startswith("*")
        out.append(Peer(path=f"{at}[{k}]", type=PeerType.FQDN, fqdn_name="" if wild else name,
                        fqdn_pattern=name if wild else ""))
    return out


def _port(raw: Mapping[str, Any], path: str) -> PortRange:
    """v1alpha1 AdminNetworkPolicyPort: exactly one of portNumber, portRange, namedPort."""
    field_name = _one_of(raw, ("portNumber", "portRange", "namedPort"), path)
    at = f"{path}.{field_name}"
    if field_name == "namedPort":
        # A named port has no protocol: the container port's own (any protocol here).
        return PortRange(protocol="ANY", name=expect_str(raw[field_name], at), path=path)
    entry = expect_mapping(raw[field_name], at)
    protocol = _protocol_name(optional_str(entry, "protocol", at, "TCP"), f"{at}.protocol")
    if field_name == "portNumber":
        port = _number(entry.get("port"), f"{at}.port")
        return PortRange(protocol=protocol, start=port, path=path)
    return _range(protocol, entry, at, path)


def _protocol(raw: Mapping[str, Any], path: str) -> PortRange:
    """v1alpha2 ClusterNetworkPolicyProtocol: exactly one of tcp, udp, sctp, destinationNamedPort."""
    field_name = _one_of(raw, ("tcp", "udp", "sctp", "destinationNamedPort"), path)
    at = f"{path}.{field_name}"
    if field_name == "destinationNamedPort":
        return PortRange(protocol="ANY", name=expect_str(raw[field_name], at), path=path)
    protocol = field_name.upper()
    entry = expect_mapping(raw[field_name], at)
    if entry.get("destinationPort") is None:
        return PortRange(protocol=protocol, path=path)  # the protocol, every port
    port = expect_mapping(entry["destinationPort"], f"{at}.destinationPort")
    which = _one_of(port, ("number", "range"), f"{at}.destinationPort")
    if which == "number":
        return PortRange(protocol=protocol, start=_number(port["number"], f"{at}.destinationPort.number"),
                         path=path)
    return _range(protocol, expect_mapping(port["range"], f"{at}.destinationPort.range"),
                  f"{at}.destinationPort.range", path)


def _range(protocol: str, entry: Mapping[str, Any], at: str, path: str) -> PortRange:
    start = _number(entry.get("start"), f"{at}.start")
    end = _number(entry.get("end"), f"{at}.end")
    if end < start:  # the CRD asks start < end; an equal pair is still one port, read as such
        raise ShapeError(f"{at}.end", f"must not be below start ({start}), got {end}")
    return PortRange(protocol=protocol, start=start, end=end, path=path)


def _protocol_name(value: str, path: str) -> str:
    protocol = value.upper()
    if protocol not in PROTOCOLS:
        raise ShapeError(path, f"must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    return protocol


def _number(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(path, "is required: a whole number from 1 to 65535")
    if not 1 <= value <= 65535:
        raise ShapeError(path, f"must be between 1 and 65535, got {value}")
    return value
