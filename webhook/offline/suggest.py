"""`netguard suggest`: a least-privilege policy per workload of a namespace, from what Hubble saw it do (issue 15).

Teams write policies by guessing. A capture of a namespace in Cilium's policy audit mode (verdict AUDIT: the
flow would have been dropped) or before any policy (FORWARDED) says what each workload really sends and
receives. Each workload (its pods grouped by `flow_evidence.workload_labels`) gets one policy that selects
it, isolates both directions and allows the observed peers on the observed ports, nothing wider:

- a pod peer by its namespace and workload labels; an address outside the cluster by the DNS names Cilium saw
  for it (`destination_names`, else the answers of DNS lookups in the capture) as toFQDNs matchName in the
  cilium flavor, else as a /32 (/128) CIDR; a reserved identity as its Cilium entity (kubernetes flavor: the
  /32 of the address seen, as NetworkPolicy has no entities);
- one rule per peer field and port set, so that a rule's peers x ports is exactly what was seen (Cilium also
  refuses a rule mixing toEndpoints, toCIDR, toFQDNs or toEntities: pkg/policy/api/rule_validation.go,
  EgressRule.sanitize);
- DNS to kube-dns (UDP and TCP 53) for every workload that sends anything; in the cilium flavor through the
  DNS proxy (`rules.dns`), without which toFQDNs learns no address.

Dropped flows and replies are not traffic to allow (a reply rides on the connection its request opened).
What the team could not submit, or that no rule can say, is left out and listed in the header: egress to
infrastructure entities (no-sensitive-entities: the platform grants those), to cloud metadata
(no-metadata-egress), ICMP and L3-only flows (the record carries no port or ICMP type), pods without a
workload label (no selector picks them alone). Pure: flows in, objects out; the CLI reads files and prints.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from webhook.core.facts import FactParams
from webhook.core.flow_evidence import ObservedPeer, Window, port_label, workload_labels
from webhook.core.fqdn import METADATA_HOSTS
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, NAMESPACE_NAME_LABEL
from webhook.offline.flow_breadth import host_cidr
from webhook.offline.flow_rules import observed_peer
from webhook.offline.flows import L4_PROTOCOLS, Flow

FLAVORS = ("cilium", "kubernetes")
GENERATED = "netguard.io/generated-from"
MANAGED_BY = {"app.kubernetes.io/managed-by": "netguard"}
COUNTED_VERDICTS = frozenset({"FORWARDED", "AUDIT"})
DNS_NAMESPACE = "kube-system"
DNS_LABELS: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
DNS_PORTS = frozenset({("UDP", 53), ("TCP", 53)})
# no-sensitive-entities' default `entities`: egress to them is the platform team's to grant.
SENSITIVE_ENTITIES = frozenset({"host", "remote-node", "kube-apiserver", "health", "init"})
# What one workload's policy can list before it stops meaning least privilege (and before a capture of a busy
# internet client grows without bound): further peer and port pairs are left out, and counted.
MAX_SEEN = 2000
MAX_ANSWERS = 200_000  # DNS answers kept for naming addresses
CILIUM_MAX_PORTS = 40  # ports of one toPorts entry (rule_validation.go, maxPorts)
_FQDN = re.compile(r"[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?)*")
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NOT_NAME = re.compile(r"[^a-z0-9-]+")

Port = tuple[str, int]
Workload = tuple[tuple[str, str], ...]
Seen = tuple[str, ObservedPeer, Port]  # (direction, peer, port)
Entry = tuple[str, Any]  # (Cilium peer field, item) or ("peer", a NetworkPolicyPeer)


@dataclass(frozen=True)
class Observation:
    """What the namespace's workloads were seen doing, and the flows left out by reason."""

    namespace: str
    traffic: Mapping[Workload, frozenset[Seen]] = field(default_factory=dict)
    counted: int = 0
    left_out: Mapping[str, int] = field(default_factory=dict)  # dropped, replies, other verdicts, portless, ...


@dataclass(frozen=True)
class Suggestion:
    objects: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]  # what was seen but not written, and why


def check_namespace(namespace: str) -> None:
    """ValueError unless `namespace` can name a namespace (a DNS-1123 label)."""
    if not (len(namespace) <= 63 and _DNS_1123_LABEL.fullmatch(namespace)):
        raise ValueError(f"namespace must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending "
                         f"with a letter or digit, at most 63 characters), got {namespace!r}")


def observe(flows: Iterable[Flow], namespace: str) -> Observation:
    """The traffic of each workload of `namespace`, its world peers named from the DNS the capture saw."""
    traffic: dict[Workload, set[Seen]] = {}
    names = FlowNames()
    left_out: Counter[str] = Counter()
    counted = 0
    for flow in flows:
        names.learn(flow, namespace)
        egress = flow.direction == "EGRESS"
        subject, other, other_ip = ((flow.source, flow.destination, flow.destination_ip) if egress else
                                    (flow.destination, flow.source, flow.source_ip))
        if not flow.direction or subject.namespace != namespace:
            continue
        workload = workload_labels(subject.labels)
        reason = _left_out(flow, workload)
        if reason:
            left_out[reason] += 1
            continue
        peer = observed_peer(other, other_ip)
        seen = traffic.setdefault(workload, set())
        item = (flow.direction.lower(), peer, (flow.protocol, flow.destination_port))
        if item not in seen and len(seen) >= MAX_SEEN:
            left_out["over the cap"] += 1
            continue
        counted += 1
        seen.add(item)
        if egress and peer.kind == "world":
            names.seen.setdefault((workload, peer.ip), set()).update(flow.destination_names)
    named = {w: frozenset((d, names.name(p, w), port) for d, p, port in seen) for w, seen in traffic.items()}
    return Observation(namespace, named, counted, dict(left_out))


def _left_out(flow: Flow, workload: Workload) -> str:
    """Why a flow of the namespace allows nothing ("" when it counts)."""
    if not workload:
        return "unlabelled"
    if flow.is_reply:
        return "replies"
    if flow.verdict not in COUNTED_VERDICTS:
        return "dropped" if flow.verdict == "DROPPED" else "other verdicts"
    return "portless" if flow.protocol not in L4_PROTOCOLS or not flow.destination_port else ""


@dataclass
class FlowNames:
    """DNS names of addresses: those Cilium put on a workload's own flows (`seen`), and DNS answers in the
    capture (`answers`), per workload that asked and for anyone (workload None)."""

    seen: dict[tuple[Workload, str], set[str]] = field(default_factory=dict)
    answers: dict[tuple[Workload | None, str], set[str]] = field(default_factory=dict)

    def learn(self, flow: Flow, namespace: str | None) -> None:
        """The answers of a DNS record, for the workload of `namespace` that asked (None: for anyone only); at most
        MAX_ANSWERS addresses are kept, so a capture's memory does not grow with the DNS traffic in it."""
        if not (flow.dns_query and flow.dns_ips) or len(self.answers) >= MAX_ANSWERS:
            return
        asker = next((e for e in (flow.source, flow.destination) if namespace and e.namespace == namespace), None)
        workload = workload_labels(asker.labels) if asker is not None else ()
        for ip in flow.dns_ips:
            self.answers.setdefault((None, ip), set()).add(flow.dns_query)
            if workload:
                self.answers.setdefault((workload, ip), set()).add(flow.dns_query)

    def name(self, peer: ObservedPeer, workload: Workload) -> ObservedPeer:
        """A world peer with its names: its own records first, then the workload's lookups, then anyone's (a
        CDN address serves many names, and the workload's own are the ones it needs)."""
        if peer.kind != "world":
            return peer
        for found in (self.seen.get((workload, peer.ip)), self.answers.get((workload, peer.ip)),
                      self.answers.get((None, peer.ip))):
            valid = sorted({n for n in (dns_name(raw) for raw in found or ()) if n})
            if valid:
                return replace(peer, names=tuple(valid))
        return peer


def dns_name(raw: str) -> str:
    """A DNS name as toFQDNs matchName takes it (lower case, no trailing dot), "" when it is not one."""
    name = raw.strip().rstrip(".").lower()
    return name if len(name) <= 253 and _FQDN.fullmatch(name) else ""


# --- the shapes both flavors write (tighten writes them too) ---------------------------------------------------

def selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(labels)} if labels else {}


def peer_entries(peer: ObservedPeer, direction: str, flavor: str, namespace: str) -> tuple[Entry, ...]:
    """How a policy of `flavor` in `namespace` names an observed peer (several entries for several names)."""
    to = "to" if direction == "egress" else "from"
    if flavor == "kubernetes":
        if peer.kind == "pod":
            item: dict[str, Any] = {"podSelector": selector(dict(peer.labels))}
            if peer.namespace != namespace:
                item = {"namespaceSelector": selector({NAMESPACE_NAME_LABEL: peer.namespace}), **item}
            return (("peer", item),)
        cidr = host_cidr(peer.ip)
        return (("peer", {"ipBlock": {"cidr": cidr}}),) if cidr else ()
    if peer.kind == "pod":
        where = {f"k8s:{CILIUM_NAMESPACE_LABEL}": peer.namespace} if peer.namespace != namespace else {}
        return ((f"{to}Endpoints", selector({**where, **dict(peer.labels)})),)
    if peer.kind == "entity":
        return ((f"{to}Entities", peer.entity),)
    if peer.names and direction == "egress":
        return tuple(("toFQDNs", {"matchName": name}) for name in peer.names)
    cidr = host_cidr(peer.ip)
    return ((f"{to}CIDR", cidr),) if cidr else ()


_DEFAULT_FACTS = FactParams()


def refusal(peer: ObservedPeer, direction: str, flavor: str, params: FactParams = _DEFAULT_FACTS) -> str:
    """Why the catalog would refuse a team's rule to this peer ("" when it would not)."""
    if direction != "egress":
        return ""
    if flavor == "cilium" and peer.kind == "entity" and peer.entity in SENSITIVE_ENTITIES:
        return "only the platform team allows egress to infrastructure entities (no-sensitive-entities)"
    if peer.ip in params.metadata_ips or any(n in METADATA_HOSTS for n in peer.names):
        return "the cloud metadata service (no-metadata-egress)"
    return ""


def port_items(flavor: str, ports: Iterable[Port]) -> tuple[str, list[Any]]:
    """The ports field of a rule: Kubernetes `ports`, or Cilium `toPorts` entries of at most 40 ports."""
    ordered = sorted(set(ports), key=lambda p: (p[1], p[0]))
    if flavor == "kubernetes":
        return "ports", [{"protocol": protocol, "port": port} for protocol, port in ordered]
    listed = [{"port": str(port), "protocol": protocol} for protocol, port in ordered]
    return "toPorts", [{"ports": listed[i:i + CILIUM_MAX_PORTS]} for i in range(0, len(listed), CILIUM_MAX_PORTS)]


def rules(flavor: str, direction: str, entries: Mapping[str, tuple[Entry, frozenset[Port]]]) -> list[dict[str, Any]]:
    """The rules for entries with their ports (keyed by `entry_key`): one per peer field and port set."""
    groups: dict[tuple[str, tuple[Port, ...]], list[str]] = {}
    for key, ((name, _), ports) in entries.items():
        groups.setdefault((name, tuple(sorted(ports))), []).append(key)
    out = []
    for (name, port_set), keys in sorted(groups.items()):
        peers_field = name if flavor == "cilium" else ("to" if direction == "egress" else "from")
        port_field, listed = port_items(flavor, port_set)
        out.append({peers_field: [entries[k][0][1] for k in sorted(keys)], port_field: listed})
    return out


def entry_key(entry: Entry) -> str:
    return json.dumps(entry, sort_keys=True)


def dns_rule(flavor: str) -> dict[str, Any]:
    """Egress to kube-dns on UDP and TCP 53; in Cilium through its DNS proxy, which toFQDNs learns from."""
    if flavor == "kubernetes":
        peer = {"namespaceSelector": selector({NAMESPACE_NAME_LABEL: DNS_NAMESPACE}),
                "podSelector": selector(dict(DNS_LABELS))}
        return {"to": [peer], "ports": port_items(flavor, DNS_PORTS)[1]}
    labels = {f"k8s:{CILIUM_NAMESPACE_LABEL}": DNS_NAMESPACE, **{f"k8s:{k}": v for k, v in DNS_LABELS}}
    [entry] = port_items(flavor, DNS_PORTS)[1]
    return {"toEndpoints": [selector(labels)], "toPorts": [{**entry, "rules": {"dns": [{"matchPattern": "*"}]}}]}


def _is_dns(direction: str, peer: ObservedPeer, port: Port) -> bool:
    return (direction == "egress" and port in DNS_PORTS and peer.kind == "pod"
            and peer.namespace == DNS_NAMESPACE and peer.labels == DNS_LABELS)


# --- one policy per workload -----------------------------------------------------------------------------------

def suggest(observation: Observation, flavor: str, window: Window) -> Suggestion:
    """The policies (sorted by workload) and what was left out of them."""
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
    objects: list[dict[str, Any]] = []
    notes: list[str] = []
    taken: set[str] = set()
    for workload in sorted(observation.traffic):
        name = _unique(policy_name(workload), workload, taken)
        spec, left = _spec(workload, observation.traffic[workload], observation.namespace, flavor)
        objects.append(_object(flavor, name, observation.namespace, window, spec))
        notes += [f"{name}: {line}" for line in left]
    counts = observation.left_out
    if counts.get("portless"):
        notes.append(f"{counts['portless']} ICMP or L3-only flows left out: the record has no port or ICMP type")
    if counts.get("over the cap"):
        notes.append(f"{counts['over the cap']} flows left out: their workload had already been seen with {MAX_SEEN} "
                     "distinct peer and port pairs, more than a least-privilege policy can list (write those rules "
                     "by hand, e.g. toFQDNs patterns)")
    if counts.get("unlabelled"):
        notes.append(f"{counts['unlabelled']} flows of pods without a workload label left out: no selector picks "
                     "those pods alone")
    return Suggestion(tuple(objects), tuple(notes))


def _spec(workload: Workload, seen: frozenset[Seen], namespace: str, flavor: str) -> tuple[dict[str, Any], list[str]]:
    entries: dict[str, dict[str, tuple[Entry, frozenset[Port]]]] = {"ingress": {}, "egress": {}}
    left: dict[tuple[str, str, str], list[Port]] = {}
    sends = False
    for direction, peer, port in sorted(seen):
        sends = sends or direction == "egress"
        reason = refusal(peer, direction, flavor)
        if reason:
            left.setdefault((direction, peer.describe(), f"left out: {reason}"), []).append(port)
            continue
        if _is_dns(direction, peer, port):
            continue  # the DNS rule below allows it
        if flavor == "kubernetes" and peer.kind == "entity":
            # Cilium selects a node's address by CIDR only with policy-cidr-match-mode: nodes (cilium/cilium#28421).
            written = f"written as the ipBlock {host_cidr(peer.ip) or '(no address)'}, which Cilium matches only with "
            left.setdefault((direction, peer.describe(), written + "policy-cidr-match-mode: nodes"), []).append(port)
        for entry in peer_entries(peer, direction, flavor, namespace):
            key = entry_key(entry)
            previous = entries[direction].get(key, (entry, frozenset()))[1]
            entries[direction][key] = (entry, previous | {port})
    ingress, egress = rules(flavor, "ingress", entries["ingress"]), rules(flavor, "egress", entries["egress"])
    if sends:
        egress.insert(0, dns_rule(flavor))
    labels = dict(workload)
    if flavor == "kubernetes":
        spec: dict[str, Any] = {"podSelector": selector(labels), "policyTypes": ["Ingress", "Egress"]}
        spec.update({k: v for k, v in (("ingress", ingress), ("egress", egress)) if v})
    else:
        # A rule `{}` selects the endpoints into default deny and allows nothing; enableDefaultDeny alone, with
        # no rule in a direction, does not (cilium/cilium#35558), so a direction with nothing seen gets `[{}]`.
        spec = {"endpointSelector": selector(labels), "enableDefaultDeny": {"ingress": True, "egress": True},
                "ingress": ingress or [{}], "egress": egress or [{}]}
    return spec, [f"{direction} {'to' if direction == 'egress' else 'from'} {who} on "
                  f"{', '.join(port_label(p) for p in sorted(set(ports)))}: {reason}"
                  for (direction, who, reason), ports in sorted(left.items())]


def policy_name(workload: Workload) -> str:
    """`<workload>-observed` as a DNS-1123 label: the workload labels' values, lower-cased, '-' for the rest."""
    base = _NOT_NAME.sub("-", "-".join(v for _, v in workload).lower()).strip("-")[:54].strip("-")
    return f"{base or 'workload'}-observed"


def _unique(name: str, workload: Workload, taken: set[str]) -> str:
    if name in taken:  # two workloads spelled alike (app=web, name=web): a suffix from the labels keeps it stable
        digest = hashlib.sha256(json.dumps(workload).encode()).hexdigest()[:6]
        name = f"{name[:-len('-observed')][:47]}-{digest}-observed"
    taken.add(name)
    return name


def window_text(window: Window) -> str:
    asked = [f"{word} {when.isoformat().replace('+00:00', 'Z')}"
             for word, when in (("since", window.since), ("until", window.until)) if when is not None]
    return f"Hubble flows: {window.describe()}" + (f" (asked for {' and '.join(asked)})" if asked else "")


def _object(flavor: str, name: str, namespace: str, window: Window, spec: dict[str, Any]) -> dict[str, Any]:
    api = ("networking.k8s.io/v1", "NetworkPolicy") if flavor == "kubernetes" else ("cilium.io/v2",
                                                                                       "CiliumNetworkPolicy")
    return {"apiVersion": api[0], "kind": api[1],
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY),
                         "annotations": {GENERATED: f"netguard suggest, from {window_text(window)}"}},
            "spec": spec}


def render_yaml(suggestion: Suggestion, namespace: str, flavor: str, window: Window,
                left_out: Mapping[str, int]) -> str:
    """Multi-document YAML, with a header saying where it comes from and what it leaves out."""
    names = ", ".join(str(o["metadata"]["name"]) for o in suggestion.objects) or "none"
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(left_out.items())
                        if reason in ("dropped", "replies", "other verdicts"))
    header = [f"# netguard suggest for namespace {namespace} ({flavor}): {names}.",
              f"# From {window_text(window)}. FORWARDED and AUDIT flows only"
              + (f" (not counted: {skipped})." if skipped else "."),
              "# Each policy allows what its workload was seen doing and denies the rest: review it, then",
              "# `netguard check` it and apply."]
    if not suggestion.objects:
        header.append(f"# No flow of a workload of namespace {namespace} was seen: nothing to suggest.")
    if suggestion.notes:
        header += ["# Notes:", *(f"#   - {note}" for note in suggestion.notes)]
    docs = [yaml.safe_dump(o, sort_keys=False, default_flow_style=False, width=4096) for o in suggestion.objects]
    return "\n".join(header) + "\n" + "".join(f"---\n{d}" for d in docs)
