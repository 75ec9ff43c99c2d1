"""What a policy does, in plain English, for the teams that write them (`netguard explain`).

Pure: reads a NormalizedPolicy that `facts.enrich` has filled in and returns an Explanation
(which pods it applies to, what it isolates, each rule with its field path) plus notes on the
effects people get wrong: `{}` meaning "everything" in Kubernetes and "nothing" in Cilium,
rules that policyTypes silently drops, `except` holes that deny nothing, open namespace
selectors, toFQDNs without a DNS rule. The wording follows the semantics documented in
the kind modules (webhook/kinds), which also say how a sentence names their kind; nothing here
re-reads the raw manifest.

Size: over 400 lines because it phrases every peer, port and subject form of three (soon more) kinds in one
voice; the kind-specific wording belongs in each kind's `Phrasing` (webhook/kinds/), where it moves as kinds
are added.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook import kinds
from webhook.core.facts import PRIVATE_RANGES, FactParams, parse_network
from webhook.core.netpolicy import (
    Action,
    Direction,
    Flavor,
    NamespaceScope,
    NormalizedPolicy,
    Peer,
    PeerType,
    PortRange,
    Reach,
    Rule,
    Scope,
    Subject,
)
from webhook.core.selectors import (
    CILIUM_NAMESPACE_LABEL,
    CILIUM_NAMESPACE_LABELS_PREFIX,
    NAMESPACE_NAME_LABEL,
    Requirement,
    Selector,
)

ENTITY_WORDS = {
    "world": "everything outside the cluster (the internet included)",
    "world-ipv4": "every IPv4 address outside the cluster (the IPv4 internet included)",
    "world-ipv6": "every IPv6 address outside the cluster (the IPv6 internet included)",
    "cluster": "every endpoint in the cluster: pods of every namespace, the nodes and the host",
    "host": "the node the pod runs on (its host network, kubelet included)",
    "remote-node": "the other nodes of the cluster",
    "kube-apiserver": "the Kubernetes API server",
    "health": "Cilium's health-check endpoints on every node",
    "init": "endpoints whose identity Cilium has not resolved yet (still starting)",
    "ingress": "Cilium's ingress proxy (Ingress and Gateway API traffic)",
    "unmanaged": "pods Cilium does not manage",
    "all": "every endpoint inside and outside the cluster: everything",
    "none": "nothing",
}
_FAMILY = {4: "IPv4", 6: "IPv6"}
_L7_NAMES = {"http": "HTTP", "dns": "DNS", "kafka": "Kafka", "serverNames": "TLS server names"}


@dataclass(frozen=True)
class Note:
    """A non-obvious effect, tied to the field that causes it."""

    path: str
    topic: str  # a stable key for tools: "allow-all", "default-deny", "except", ...
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "topic": self.topic, "text": self.text}


@dataclass(frozen=True)
class RuleExplanation:
    path: str
    action: str  # allow | deny
    effective: bool
    peers: tuple[str, ...]  # each peer in words; empty when the rule names none
    ports: str  # "TCP/443, UDP/53" or "every port"
    l7: tuple[str, ...]  # "HTTP GET /api/.*", "DNS lookups of any name"
    text: str  # the whole line without its path: "to ... on ..."

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action, "effective": self.effective, "peers": list(self.peers),
                "ports": self.ports, "l7": list(self.l7), "text": self.text}


@dataclass(frozen=True)
class Isolation:
    isolated: bool
    defaulted: bool  # policyTypes / enableDefaultDeny not written: the API's default decided
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"isolated": self.isolated, "defaulted": self.defaulted, "text": self.text}


@dataclass(frozen=True)
class SubjectExplanation:
    path: str
    selector_path: str
    selects: str  # "pods with app=web in namespace team-a"
    isolation: Mapping[str, Isolation]  # by direction
    ingress: tuple[RuleExplanation, ...]
    egress: tuple[RuleExplanation, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "selector_path": self.selector_path, "selects": self.selects,
                "isolation": {d: i.to_json() for d, i in self.isolation.items()},
                "ingress": [r.to_json() for r in self.ingress], "egress": [r.to_json() for r in self.egress]}


@dataclass(frozen=True)
class Explanation:
    kind: str
    name: str
    namespace: str
    subjects: tuple[SubjectExplanation, ...]
    notes: tuple[Note, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace,
                "subjects": [s.to_json() for s in self.subjects], "notes": [n.to_json() for n in self.notes]}


def explain(policy: NormalizedPolicy, params: FactParams | None = None) -> Explanation:
    """Explain an enriched policy; `params` only names the metadata addresses for `except` notes."""
    metadata_ips = (params or FactParams()).metadata_ips
    dns_entries = [e for r in policy.rules if r.direction is Direction.EGRESS and r.action is Action.ALLOW
                   for e in (r.l7.get("dns") or []) if isinstance(e, Mapping)]
    subjects = tuple(_subject(policy, s) for s in policy.subjects)
    notes: list[Note] = []
    notes.extend(_tier_notes(policy))
    for subject in policy.subjects:
        notes.extend(_subject_notes(policy, subject))
    for rule in policy.rules:
        notes.extend(_rule_notes(policy, rule, metadata_ips, dns_entries))
    notes.extend(Note(path, "log", "Log: matching traffic is logged and evaluation goes on to the next rule; this "
                      "rule neither allows nor denies") for path in policy.passive)
    for direction, facts in policy.facts.items():
        notes.extend(_reach_note(r, direction, every_port=True) for r in facts.combined_all_ports)
        notes.extend(_reach_note(r, direction, every_port=False) for r in facts.combined_any_ports)
    return Explanation(kind=policy.kind, name=policy.name, namespace=policy.namespace, subjects=subjects,
                       notes=tuple(notes))


def render_text(explanations: Sequence[tuple[str, Explanation]]) -> str:
    """Each explanation under its heading ("team-a/web (NetworkPolicy)"), blocks separated by a blank line."""
    blocks = []
    for heading, explanation in explanations:
        lines = [heading]
        for subject in explanation.subjects:
            lines.append(f"  {subject.selector_path}: applies to {subject.selects}")
            for direction in Direction:
                isolation = subject.isolation[direction.value]
                lines.append(f"    {direction.value}: {isolation.text}")
                rules = subject.ingress if direction is Direction.INGRESS else subject.egress
                lines.extend(f"      {r.path}: {r.text}" for r in rules)
        if explanation.notes:
            lines.append("  notes:")
            lines.extend(f"    - {n.path}: {n.text}" for n in explanation.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


# --- selectors and peers in words -------------------------------------------------------------

def _requirement(r: Requirement, key: str | None = None) -> str:
    k = key or r.key
    if r.operator == "In":
        return f"{k}={r.values[0]}" if len(r.values) == 1 else f"{k} in ({', '.join(r.values)})"
    if r.operator == "NotIn":
        return f"{k}!={r.values[0]}" if len(r.values) == 1 else f"{k} not in ({', '.join(r.values)})"
    return f"label {k}" if r.operator == "Exists" else f"no label {k}"


def _labels(selector: Selector) -> str:
    return " and ".join(_requirement(r) for r in selector.requirements)


def _things(selector: Selector, noun: str) -> str:
    """`every pod` or `pods with app=web`."""
    return f"every {noun}" if selector.empty else f"{noun}s with {_labels(selector)}"


def _namespace_requirements(scope: NamespaceScope, flavor: Flavor) -> str:
    if flavor is Flavor.KUBERNETES:
        return _labels(scope.selector)
    parts = []
    for r in scope.selector.requirements:
        if r.key == CILIUM_NAMESPACE_LABEL:
            parts.append(_requirement(r, "name"))
        elif r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX):
            parts.append(_requirement(r, r.key[len(CILIUM_NAMESPACE_LABELS_PREFIX):]))
    return " and ".join(parts)


def _namespaces(scope: NamespaceScope, flavor: Flavor, own: str) -> str:
    """`in namespace x`, `in every namespace`, `in namespaces with team=a`."""
    if scope.scope is Scope.OWN:
        return own
    if scope.scope is Scope.NAMED:
        if not scope.names:
            return "in no namespace (its namespace requirements contradict each other)"
        return ("in namespace " if len(scope.names) == 1 else "in namespaces ") + ", ".join(scope.names)
    if scope.scope is Scope.ALL:
        if scope.names:
            return "in every namespace except " + ", ".join(scope.names)
        reqs = _namespace_requirements(scope, flavor)
        if reqs and not _only_name_exists(scope):
            return f"in every namespace with {reqs}"
        return "in every namespace"
    return f"in namespaces with {_namespace_requirements(scope, flavor) or 'the required labels'}"


def _only_name_exists(scope: NamespaceScope) -> bool:
    """`kubernetes.io/metadata.name Exists` says nothing: every namespace has the label."""
    return all(r.operator == "Exists" and r.key in (NAMESPACE_NAME_LABEL, CILIUM_NAMESPACE_LABEL,
                                                      CILIUM_NAMESPACE_LABELS_PREFIX + NAMESPACE_NAME_LABEL)
               for r in scope.selector.requirements)


def _peer(peer: Peer, flavor: Flavor) -> str:
    if peer.raw.get("matches_nothing"):
        return peer.describe()
    if peer.type is PeerType.PODS and peer.namespaces is not None:
        text = f"{_things(peer.pods or Selector(), 'pod')} {_namespaces(peer.namespaces, flavor, 'in this namespace')}"
        return f"{text} ({peer.via})" if peer.via else text
    if peer.type is PeerType.CIDR:
        effect = _cidr_effect(peer)
        return peer.describe() + (f" ({effect})" if effect else "")
    if peer.type is PeerType.FQDN:
        return f"domain {peer.fqdn_name}" if peer.fqdn_name else f"domains matching {peer.fqdn_pattern}"
    if peer.type is PeerType.SERVICE and peer.namespaces is not None:
        where = _namespaces(peer.namespaces, flavor, "in this namespace")
        if peer.service == "(selector)":
            return f"services matching a label selector {where}"
        return f"service {peer.service} {where}"
    if peer.type is PeerType.NODES:
        nodes = "every node" if peer.raw.get("all") else "nodes with the selected labels"
        return f"{nodes} (the host and remote-node identities: kubelets, node services, host-network pods)"
    if peer.type is PeerType.GROUP:
        if "calicoNetworkSets" in peer.raw:
            return (f"Calico network sets whose labels match {peer.raw['calicoNetworkSets']} (their addresses live in "
                    "the cluster; netguard does not read them)")
        if "cidrGroup" in peer.raw:
            return f"the addresses of CIDR group {peer.raw['cidrGroup']}"
        return "the addresses of a cloud provider group (" + ", ".join(sorted(peer.raw)) + ")"
    return peer.describe()


def _cidr_effect(peer: Peer) -> str:
    """What a CIDR peer covers, from its facts: the internet, a private range, the metadata address."""
    facts = peer.facts
    family = _FAMILY.get(facts.family or 4, "IPv4")
    internet = facts.internet_v4 if family == "IPv4" else facts.internet_v6
    fraction = facts.public_v4_fraction if family == "IPv4" else facts.public_v6_fraction
    if facts.prefix_len == 0 and not peer.excepts:
        head = f"every {family} address"
    elif internet and [e for e in peer.excepts if e not in facts.ignored_excepts]:
        head = f"the whole {family} internet except " + ", ".join(
            e for e in peer.excepts if e not in facts.ignored_excepts)
    elif internet:
        head = f"the whole {family} internet"
    elif fraction >= 0.01:
        head = f"about {fraction:.0%} of the public {family} internet"
    else:
        head = ""
    extras = []
    if facts.metadata_ips and facts.prefix_len in (32, 128):
        return "the metadata address"
    if facts.metadata_ips:
        extras.append(f"the metadata address {', '.join(facts.metadata_ips)}")
    if facts.prefix_len != 0:
        wider = [r for r in facts.private_ranges if str(ipaddress.ip_network(peer.cidr, strict=False)) != r]
        if wider:
            extras.append(f"the private range{'s' if len(wider) > 1 else ''} {', '.join(wider)}")
    if head and extras:
        return f"{head}, {'including' if head.startswith('every') else 'plus'} {' and '.join(extras)}"
    return head or (f"includes {' and '.join(extras)}" if extras else "")


def _ports(rule: Rule) -> str:
    if rule.all_ports:
        return "every port"
    parts = [_port(p) for p in rule.ports] + [_icmp(i) for i in rule.icmp]
    if rule.facts.every_port:  # entries that add up to every port (1-79 + 81-65535)
        return f"{', '.join(parts)}, which together open {rule.open_ports_share()}: judged as every port"
    return ", ".join(parts)


def _port(port: PortRange) -> str:
    if port.protocol != "ANY":
        return port.label()
    if port.name:
        return f"port {port.name}"
    if port.all_ports:
        return "every port"
    if port.end is not None and port.end != port.start:
        return f"ports {port.start}-{port.end}"
    return f"port {port.start}"


def _icmp(entry: Mapping[str, Any]) -> str:
    fields = entry.get("fields") or []
    shown = []
    for f in fields if isinstance(fields, list) else []:
        if isinstance(f, Mapping):
            family = "ICMPv6" if str(f.get("family", "IPv4")).lower() == "ipv6" else "ICMP"
            shown.append(f"{family} type {f.get('type')}")
    return ", ".join(shown) or "ICMP"


def _l7(rule: Rule) -> tuple[str, ...]:
    out = []
    for proto, items in rule.l7.items():
        entries = items if isinstance(items, list) else []
        name = _L7_NAMES.get(proto, proto)
        if proto == "http":
            out.append("HTTP " + ", ".join(_http(e) for e in entries))
        elif proto == "dns":
            out.append("DNS lookups of " + ", ".join(_dns(e) for e in entries))
        elif proto == "kafka":
            out.append("Kafka " + ", ".join(_kafka(e) for e in entries))
        elif proto == "serverNames":
            out.append(f"{name} " + ", ".join(str(e) for e in entries))
        else:
            out.append(f"{name} rules")
    return tuple(out)


def _http(entry: Any) -> str:
    if not isinstance(entry, Mapping) or not entry:
        return "any request"
    words = [str(entry.get("method") or "any method"), str(entry.get("path") or "any path")]
    if entry.get("host"):
        words.append(f"on host {entry['host']}")
    if entry.get("headers"):
        words.append("with headers " + ", ".join(str(h) for h in entry["headers"]))
    return " ".join(words)


def _dns(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return str(entry)
    if entry.get("matchName"):
        return str(entry["matchName"])
    pattern = str(entry.get("matchPattern", ""))
    return "any name (*)" if pattern == "*" else pattern


def _kafka(entry: Any) -> str:
    if not isinstance(entry, Mapping) or not entry:
        return "any request"
    action = entry.get("role") or entry.get("apiKey") or "any request"
    return f"{action} on topic {entry['topic']}" if entry.get("topic") else str(action)


def _join(items: Sequence[str], conjunction: str = "or") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


# --- subjects and rules ---------------------------------------------------------------------

def _phrasing(policy: NormalizedPolicy) -> kinds.Phrasing:
    """How sentences name the policy's kind. A NormalizedPolicy carries its kind's name, not its API group:
    of the registered kinds of that name, the one with the policy's rule language and scope. Plain wording for
    a kind normalize does not produce (a model built by hand)."""
    for kind in kinds.with_name(policy.kind):
        if kind.flavor is policy.flavor and kind.namespaced is not policy.clusterwide:
            return kind.phrasing
    return kinds.Phrasing(a=f"a {policy.kind}", subjects_in="in every namespace" if policy.clusterwide
                          else "in the policy's namespace")


def _own_namespace(policy: NormalizedPolicy) -> str:
    return f"in namespace {policy.namespace}" if policy.namespace else _phrasing(policy).subjects_in


def _selects(policy: NormalizedPolicy, subject: Subject) -> str:
    if subject.selects == "nodes":
        return _things(subject.selector, "node")
    pods = _things(subject.selector.without(CILIUM_NAMESPACE_LABEL), "pod")
    if policy.clusterwide:
        return f"{pods} {_namespaces(subject.namespaces, policy.flavor, _phrasing(policy).subjects_in)}"
    scope = subject.namespaces
    if scope.scope is Scope.NAMED and policy.namespace not in scope.names:
        return "no pods at all (see notes)"
    return f"{pods} {_own_namespace(policy)}"


def _subject(policy: NormalizedPolicy, subject: Subject) -> SubjectExplanation:
    rules = [r for r in policy.rules if r.subject == subject.index]
    by_direction = {d: tuple(_rule(policy, r) for r in rules if r.direction is d) for d in Direction}
    isolation = {d.value: _isolation(policy, subject, d, [r for r in rules if r.direction is d]) for d in Direction}
    return SubjectExplanation(path=subject.path, selector_path=subject.selector_path,
                              selects=_selects(policy, subject), isolation=isolation,
                              ingress=by_direction[Direction.INGRESS], egress=by_direction[Direction.EGRESS])


def _isolation(policy: NormalizedPolicy, subject: Subject, direction: Direction, rules: list[Rule]) -> Isolation:
    name = direction.value
    if _tiered(policy):
        if subject.isolates[name]:
            return Isolation(True, False, f"default deny (a Baseline-tier deny-all): all {name} no NetworkPolicy "
                                          "decides is denied")
        if not rules:
            return Isolation(False, False, f"no {name} rules: this policy does not decide any {name}")
        return Isolation(False, False, f"no isolation: the first rule that matches decides ({name} that no rule "
                                       f"matches goes on to {_after(policy)})")
    isolated = bool(subject.isolates[name])
    allowing = [r for r in rules if r.action is Action.ALLOW and r.effective and not r.matches_nothing]
    what = f"these {subject.selects}"
    if isolated:
        rest = (f"only the {name} the rules allow gets through (allows of other policies selecting {what} "
                "add up)" if allowing else
                f"nothing is allowed: all {name} is denied (default deny) unless another policy selecting "
                f"{what} allows it")
    else:
        rest = f"this policy does not restrict {name}"
    if policy.flavor is Flavor.KUBERNETES:
        title = name.capitalize()
        if subject.policy_types_explicit:
            why = f"policyTypes lists {title}" if isolated else f"policyTypes leaves out {title}"
        else:
            types = ", ".join(d.value.capitalize() for d in Direction if subject.isolates[d.value])
            why = (f"policyTypes not written, defaulted to [{types}]: Kubernetes always adds Ingress, and "
                   "Egress only when spec.egress has rules")
        return Isolation(isolated, not subject.policy_types_explicit,
                         f"{'isolated' if isolated else 'not isolated'} ({why}): {rest}")
    if policy.flavor is Flavor.CALICO:  # `types` decides, as policyTypes does (projectcalico.org/v3 PolicySpec.Types)
        title = name.capitalize()
        if subject.policy_types_explicit:
            why = f"types lists {title}" if isolated else f"types leaves out {title}"
        else:
            why = "types not written: Calico defaults them from the rules the policy has"
        return Isolation(isolated, not subject.policy_types_explicit,
                         f"{'isolated' if isolated else 'not isolated'} ({why}): {rest}")
    explicit = subject.default_deny_explicit.get(name)
    if explicit is False and rules:
        actions = {r.action for r in rules}
        adds = ("allows and denies" if len(actions) == 2 else
                "denies" if Action.DENY in actions else "allows")
        return Isolation(False, False, f"does not isolate: only adds {adds} (enableDefaultDeny.{name}: false), "
                                       f"so all other {name} stays allowed unless another policy isolates "
                                       f"{what}")
    if not rules:
        return Isolation(False, explicit is None, f"not isolated (no {name} rules): {rest}")
    why = f"enableDefaultDeny.{name}: true" if explicit else f"default deny: the spec has {name} rules"
    return Isolation(isolated, explicit is None, f"isolated ({why}): {rest}")


def _rule(policy: NormalizedPolicy, rule: Rule) -> RuleExplanation:
    word = "from" if rule.direction is Direction.INGRESS else "to"
    granting = [p for p in rule.peers if not p.raw.get("requires")]
    requires = [p.path for p in rule.peers if p.raw.get("requires")]
    peers = tuple(_peer(p, policy.flavor) for p in granting)
    ports = _ports(rule)
    l7 = _l7(rule)
    if rule.matches_nothing:
        text = "allows nothing (an empty rule)" if rule.action is Action.ALLOW else "denies nothing (an empty rule)"
    else:
        endpoint = "every source" if rule.direction is Direction.INGRESS else "every destination"
        text = f"{word} {_join(peers) if peers else endpoint} on {ports}"
        if requires:
            text += f", and only peers that also match {', '.join(requires)}"
        if l7:
            text += "; only " + "; ".join(l7)
        if _tiered(policy):
            text = _tiered_rule(policy, rule, text)
        elif policy.flavor is Flavor.CALICO:  # rules in written order, the first Allow/Deny/Pass that matches ends
            verb = {Action.ALLOW: "allowed", Action.DENY: "denied", Action.PASS: "passed on to the next tier"}
            text = f"{verb[rule.action]}: {text} (unless an earlier rule or policy of the tier matched)"
        elif rule.action is Action.DENY:
            text = f"denied: {text} — deny rules win over any allow"
    if not rule.effective:
        text += f" (no effect: policyTypes leaves out {rule.direction.value.capitalize()})"
    return RuleExplanation(path=rule.path, action=rule.action.value, effective=rule.effective, peers=peers,
                           ports=ports, l7=l7, text=text)


# --- the tiers of the network-policy-api kinds ---------------------------------------------------
# Tier order (network-policy-api apis/v1alpha2 ClusterNetworkPolicySpec.Tier): Admin tier, then NetworkPolicy, then
# Baseline tier, then the default (allow). Within a tier lower priorities first; within a policy the rules in
# written order, the first match deciding. Pass skips the rest of the tier.

_TIERS = ("Admin", "Baseline")


def _tiered(policy: NormalizedPolicy) -> bool:
    """A network-policy-api kind (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy)."""
    return policy.clusterwide and policy.flavor is Flavor.KUBERNETES and policy.tier in _TIERS


def _after(policy: NormalizedPolicy) -> str:
    """Where traffic this policy does not decide (or passes) goes next."""
    if policy.tier == "Admin":
        return ("Admin-tier policies of higher priority numbers, then the NetworkPolicies selecting the pods, then "
                "the Baseline tier")
    return "the default: allowed"


def _tiered_rule(policy: NormalizedPolicy, rule: Rule, text: str) -> str:
    if rule.action is Action.PASS:
        where = ("NetworkPolicy, then the Baseline tier" if policy.tier == "Admin" else
                 "the default (allowed)")
        return f"passed on: {text} skips the rest of the {policy.tier} tier and goes on to {where}"
    verb = "accepted" if rule.action is Action.ALLOW else "denied"
    if policy.tier == "Admin":
        return f"{verb}: {text} — decided here, before any NetworkPolicy (unless an earlier rule matched)"
    return f"{verb}: {text} — only where no NetworkPolicy selects the pods (unless an earlier rule matched)"


def _tier_notes(policy: NormalizedPolicy) -> list[Note]:
    if policy.flavor is Flavor.CALICO:
        # Calico's policy model (projectcalico.org/v3 Tier, PolicySpec.Order): tiers in their own order, then within a
        # tier policies by `order` (lower first; none last; equal orders by name). The first Allow or Deny that
        # matches ends the evaluation, Pass jumps to the next tier, Log records and goes on; an endpoint a policy of
        # the tier selects but no rule decides is denied at the tier's end (its default action). Kubernetes
        # NetworkPolicies live in the `default` tier.
        order = f"order {policy.priority:g}" if policy.priority is not None else "no order (evaluated last in its tier)"
        return [Note("spec", "tier", f"Calico tier {policy.tier or 'default'}, {order}: tiers are evaluated in their "
                     "order and, within one, policies by order (lower first, then by name); the first Allow or Deny "
                     "that matches decides, Pass goes on to the next tier, Log records and goes on; traffic of "
                     "selected endpoints that no rule of the tier decides is denied at the tier's end")]
    if not _tiered(policy):
        return []
    if policy.tier == "Admin":
        order = (f"priority {policy.priority:g}, lower first" if policy.priority is not None else "")
        text = ("Admin tier" + (f", {order}" if order else "") + ": evaluated before every NetworkPolicy, which "
                "cannot override what it accepts or denies; its Pass rules hand traffic on to NetworkPolicy, then "
                "the Baseline tier")
    else:
        order = f", priority {policy.priority:g}" if policy.priority is not None else ""
        text = (f"Baseline tier{order}: evaluated after NetworkPolicy, so it decides only for pods no NetworkPolicy "
                "selects in that direction; what it does not decide is allowed (the Kubernetes default)")
    return [Note("spec.tier" if policy.kind == "ClusterNetworkPolicy" else "spec", "tier", text)]


# --- notes ----------------------------------------------------------------------------------

def _subject_notes(policy: NormalizedPolicy, subject: Subject) -> list[Note]:
    notes = []
    scope = subject.namespaces
    # A namespaced Cilium kind: Cilium adds the policy's namespace to its endpoint selector, so namespace keys
    # there can only narrow it (webhook/kinds/cilium_network_policy.py).
    if policy.flavor is Flavor.CILIUM and not policy.clusterwide and subject.selects == "pods":
        a_kind = _phrasing(policy).a
        others = [n for n in scope.names if n != policy.namespace]
        if scope.scope is Scope.NAMED and not scope.names:
            notes.append(Note(subject.selector_path, "selects-nothing",
                              "pins the pod namespace to values no namespace can have at once: selects no pods"))
        elif scope.scope is Scope.NAMED and policy.namespace not in scope.names:
            notes.append(Note(subject.selector_path, "selects-nothing",
                              f"names namespace {', '.join(others)}, but {a_kind} in "
                              f"{policy.namespace} only applies to {policy.namespace}'s pods: "
                              "this selects nothing"))
        elif scope.scope is Scope.NAMED and others:
            notes.append(Note(subject.selector_path, "other-namespace-subject",
                              f"also names namespace {', '.join(others)}, which {a_kind} in "
                              f"{policy.namespace} cannot reach: only {policy.namespace}'s pods are selected"))
        elif scope.scope in (Scope.ALL, Scope.SELECTED) and _namespace_requirements(scope, policy.flavor):
            notes.append(Note(subject.selector_path, "other-namespace-subject",
                              f"namespace keys cannot widen {a_kind}: it only applies to "
                              f"{policy.namespace}'s pods"))
    rules = [r for r in policy.rules if r.subject == subject.index]
    for direction in Direction:
        name = direction.value
        of_direction = [r for r in rules if r.direction is direction]
        explicit = subject.default_deny_explicit.get(name)
        if explicit is False and of_direction:
            notes.append(Note(f"{subject.path}.enableDefaultDeny.{name}", "no-default-deny",
                              f"does not isolate {name}: the rules only add to what other policies allow, "
                              f"and all {name} no other policy restricts stays allowed"))
        if not subject.isolates[name]:
            continue
        if any(r.action is Action.ALLOW and r.effective and not r.matches_nothing for r in of_direction):
            continue
        if policy.flavor is Flavor.KUBERNETES:
            path = "spec.policyTypes" if subject.policy_types_explicit else "spec"
            why = "" if subject.policy_types_explicit or direction is Direction.EGRESS else (
                "; policyTypes is not written, and Kubernetes defaults it to include Ingress even for a policy "
                "with only egress rules")
        else:
            path = f"{subject.path}.enableDefaultDeny.{name}" if explicit else subject.path
            why = ""
        notes.append(Note(path, "default-deny",
                          f"isolates {name} but allows none: all {name} of the selected {subject.selects} is "
                          f"denied (default deny) unless another policy selecting them allows it{why}"))
    return notes


def _rule_notes(policy: NormalizedPolicy, rule: Rule, metadata_ips: Sequence[str],
                dns_entries: Sequence[Mapping[str, Any]]) -> list[Note]:
    notes = []
    name = rule.direction.value
    endpoint = "source" if rule.direction is Direction.INGRESS else "destination"
    if policy.flavor is Flavor.KUBERNETES:
        if not rule.effective:
            notes.append(Note(rule.path, "ignored-rule",
                              f"has no effect: policyTypes leaves out {name.capitalize()}, so the {name} rules "
                              f"are ignored and this policy leaves {name} unrestricted"))
        elif rule.any_peer and not rule.ports:
            notes.append(Note(rule.path, "allow-all",
                              f"an empty rule {{}} allows every {endpoint} on every port"))
    else:
        if rule.matches_nothing:
            isolates = next(s for s in policy.subjects if s.index == rule.subject).isolates[name]
            effect = f", but it still isolates {name} (default deny)" if isolates else ""
            verb = "allows" if rule.action is Action.ALLOW else "denies"
            notes.append(Note(rule.path, "empty-rule", f"an empty Cilium rule {{}} {verb} nothing{effect}"))
        elif rule.any_peer:
            notes.append(Note(rule.path, "ports-only",
                              f"names ports but no peer: it applies to every {endpoint}, inside and outside "
                              f"the cluster, on {_ports(rule)}"))
    for peer in rule.peers:
        notes.extend(_peer_notes(policy, peer, metadata_ips))
        if peer.type is PeerType.FQDN and not _tiered(policy):  # Cilium's DNS proxy: not how domainNames work
            notes.extend(_fqdn_notes(peer, dns_entries))
    for port in rule.ports:
        if port.name:
            notes.append(Note(port.path, "named-port",
                              f"the named port {port.name} is resolved per pod from its container ports: it can "
                              "be a different number on each pod, and matches nothing on pods without it"))
    notes.extend(_l7_notes(rule))
    return notes


def _peer_notes(policy: NormalizedPolicy, peer: Peer, metadata_ips: Sequence[str]) -> list[Note]:
    if peer.type is PeerType.CIDR and peer.facts.ignored_excepts:
        return [Note(peer.path, "mapped-except",
                     f"{', '.join(peer.facts.ignored_excepts)} is written as IPv4-mapped IPv6; Cilium keeps such an "
                     f"except as IPv6, so it removes nothing from {peer.cidr} (netguard takes the reading that "
                     "allows more)")]
    if peer.type is PeerType.CIDR and peer.excepts:
        holes = _join([_hole(e, metadata_ips) for e in peer.excepts], "and")
        whole = "everything" if peer.facts.prefix_len == 0 else f"all of {peer.cidr}"
        return [Note(peer.path, "except",
                     f"{peer.describe()}: {whole} but {holes}; an except only narrows this peer, it does not "
                     "deny what another rule or policy allows")]
    if peer.type is PeerType.FQDN and peer.facts.fqdn_public_suffix:
        what = (f"names anyone can register under the public suffix {peer.facts.fqdn_suffix}, not only your own "
                "domains" if peer.facts.fqdn_suffix else "every domain name")
        return [Note(peer.path, "fqdn-wildcard", f"{peer.fqdn_pattern} matches {what}")]
    if peer.type is PeerType.ENTITY and peer.via:
        return [Note(peer.path, "reserved-selector",
                     f"this endpoint selector matches the reserved identity {peer.entity} "
                     f"({ENTITY_WORDS.get(peer.entity, peer.entity)}): {peer.via.split('; ', 1)[-1]}, so it is the "
                     f"entity {peer.entity} spelled as a selector, not pods of this namespace")]
    if peer.type is PeerType.ENTITY:
        return [Note(peer.path, "entity", f"entity {peer.entity} is {ENTITY_WORDS.get(peer.entity, peer.entity)}")]
    if peer.type is PeerType.NODES:
        return [Note(peer.path, "nodes", "a node selector reaches the nodes themselves (Cilium's host and remote-node "
                                         "identities): kubelets, node-local services and host-network pods")]
    if peer.type is PeerType.SERVICE and "kube-apiserver" in peer.facts.infrastructure:
        return [Note(peer.path, "api-server", "the Service default/kubernetes is the Kubernetes API server")]
    if peer.type is PeerType.GROUP and "cidrGroup" in peer.raw:
        return [Note(peer.path, "cidr-group", f"CIDR group {peer.raw['cidrGroup']} is a CiliumCIDRGroup: its "
                                              "addresses live in the cluster, so they cannot be judged without it")]
    if peer.type is not PeerType.PODS or peer.namespaces is None:
        return []
    scope = peer.namespaces
    if scope.scope is Scope.ALL:
        excluding = any(r.operator in ("NotIn", "DoesNotExist") for r in scope.selector.requirements)
        if policy.flavor is Flavor.KUBERNETES:
            # network-policy-api peers spell it `namespaces: {}`, or pods' namespaceSelector
            field = "namespaces" if _tiered(policy) and peer.path.endswith(".namespaces") else "namespaceSelector"
            how = (f"{field} {{}} matches" if scope.selector.empty else
                   f"{field} ({_labels(scope.selector)}) only excludes, so it matches" if excluding else
                   f"{field} ({_labels(scope.selector)}) only asks for labels every namespace has, "
                   "so it matches")
        elif not _namespace_requirements(scope, policy.flavor):
            how = "an endpoint selector without a namespace key in a clusterwide policy matches pods in"
        elif excluding:
            how = "the namespace keys only exclude, so the selector matches pods in"
        else:
            how = "the namespace keys only ask for labels every namespace has, so the selector matches pods in"
        except_names = f" except {', '.join(scope.names)}" if scope.names else ""
        return [Note(peer.path, "open-namespaces",
                     f"{how} every namespace{except_names}, including ones created later")]
    if policy.flavor is Flavor.CILIUM and scope.scope is Scope.OWN and (peer.pods or Selector()).empty:
        return [Note(peer.path, "own-namespace",
                     f"an empty endpoint selector in {_phrasing(policy).a} means every pod of this namespace, "
                     "not of the cluster")]
    return []


def _hole(cidr: str, metadata_ips: Sequence[str]) -> str:
    net = parse_network(cidr, cidr)
    inside = [ip for ip in metadata_ips if ipaddress.ip_address(ip).version == net.version
              and ipaddress.ip_address(ip) in net]
    if inside and net.num_addresses == 1:
        return "the metadata address"
    if inside:
        return f"{cidr} (with the metadata address)"
    if str(net) in PRIVATE_RANGES:
        return f"{cidr} (private)"
    return cidr


def _l7_notes(rule: Rule) -> list[Note]:
    notes = []
    for proto, items in rule.l7.items():
        entries = items if isinstance(items, list) else []
        if proto == "dns":
            if any(isinstance(e, Mapping) and e.get("matchPattern") == "*" for e in entries):
                notes.append(Note(rule.path, "dns-visibility",
                                  "the DNS rule matchPattern \"*\" is for visibility: it lets the DNS proxy see "
                                  "every lookup (which toFQDNs needs); it is NOT an allow to every domain"))
            else:
                notes.append(Note(rule.path, "l7",
                                  "the DNS rule restricts lookups on those ports to the listed names; the DNS "
                                  "proxy refuses the others"))
        else:
            label = _L7_NAMES.get(proto, proto)
            notes.append(Note(rule.path, "l7",
                              f"the {label} rules restrict what is allowed on those ports: only the listed "
                              "requests pass Cilium's proxy, everything else on the ports is refused"))
    return notes


def _fqdn_notes(peer: Peer, dns_entries: Sequence[Mapping[str, Any]]) -> list[Note]:
    """toFQDNs allows the IPs the DNS proxy saw in answers; without a DNS rule it sees none."""
    shown = peer.fqdn_name or peer.fqdn_pattern
    if not dns_entries:
        return [Note(peer.path, "fqdn-needs-dns",
                     f"toFQDNs {shown} only works together with a DNS rule (toPorts rules.dns) that sends the "
                     "pod's lookups through Cilium's DNS proxy; this policy has none, so unless another policy "
                     "does, the names will never resolve to allowed IPs")]
    if not any(_dns_covers(e, peer) for e in dns_entries):
        return [Note(peer.path, "fqdn-needs-dns",
                     f"no DNS rule of this policy lets the proxy see lookups of {shown}, so unless another policy "
                     "does, it will never resolve to allowed IPs")]
    return [Note(peer.path, "fqdn", f"toFQDNs {shown} allows the IPs that the DNS proxy sees in answers to the "
                                    "pod's lookups (through the DNS rule), for as long as they are valid")]


def _dns_covers(entry: Mapping[str, Any], peer: Peer) -> bool:
    target = peer.fqdn_name or peer.fqdn_pattern
    name = str(entry.get("matchName") or "").lower().rstrip(".")
    pattern = str(entry.get("matchPattern") or "").lower().rstrip(".")
    if pattern == "*" or (name and name == target):
        return True
    return bool(pattern) and (pattern == target or fnmatch.fnmatchcase(target, pattern))


def _reach_note(reach: Reach, direction: str, every_port: bool) -> Note:
    family = ("the whole IPv4 and IPv6 internet" if reach.internet_v4 and reach.internet_v6 else
              "the whole IPv4 internet" if reach.internet_v4 else "the whole IPv6 internet")
    if every_port:
        rules, on = _join(reach.rules, "and"), " on every port"
    else:
        rules, on = _join([f"{p} ({ports})" for p, ports in zip(reach.rules, reach.ports, strict=False)], "and"), ""
    return Note(reach.rules[0], "combined-reach",
                f"{rules} together reach {family}{on} through {', '.join(reach.cidrs)}, though no single "
                f"{direction} rule does")
