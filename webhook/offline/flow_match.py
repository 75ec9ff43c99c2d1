"""Hubble flows matched to the allow rules that carried them (issue 15): netguard matches each flow itself,
because Hubble attributes a flow to a policy, never to a rule.

A flow is judged at the end whose policy governs it: an EGRESS flow against the egress rules of the policies
selecting its source, an INGRESS flow against the ingress rules of those selecting its destination. Replies
(`is_reply`) are carried by connection tracking, not by a rule, and are left out. FORWARDED flows are traffic a
rule carried; a DROPPED flow with `POLICY_DENIED` (no rule allowed it) or an AUDIT flow (policy audit mode: it
would have been dropped) is traffic no rule allowed, read for `dropped-needed`.

Peers are matched with Cilium's semantics (offline/flow_rules.py). What a flow cannot settle counts as
`uncertain`, never as a match or a miss: a rule with uncertain flows is never called unused or broad. Hubble's
own attribution (`*_allowed_by`) is a second opinion: a flow it credits to a policy that none of the policy's
rules matched here is a disagreement, and such a policy has no rule called unused.

Work is per distinct flow shape (ends, port, verdict), cached, so a 1 GB export costs a dictionary lookup per
line once its shapes are known; what is kept per rule is capped (MAX_KEPT peers and ports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from webhook.core.flow_evidence import (
    FlowEvidence,
    MissingAllow,
    ObservedPeer,
    PolicyEvidence,
    RuleUsage,
    port_label,
)
from webhook.core.netpolicy import (
    Action,
    Direction,
    NormalizedPolicy,
    Peer,
    PeerType,
    Rule,
)
from webhook.core.snapshot import policy_key
from webhook.offline.flow_breadth import DNS_PORT, allow_rule, breadth, dns_rule
from webhook.offline.flow_rules import Match, Partial, flow_end, observed_peer, rule_matches_but_addresses, selects
from webhook.offline.flows import Endpoint, Flow, FlowStats

MAX_KEPT = 32  # distinct peers and ports kept per rule; more is reported as "more", never as a small share
_CACHE_SIZE = 1 << 14  # flow shapes kept; outside addresses make many, so it is emptied when full
# ... and the characters of the labels and names their keys hold: an export's label values are not limited as the
# API server limits them (a forged or broken one may carry 1 MiB lines), so the caches are bounded by weight too.
_CACHE_CHARS = 1 << 25
CARRIED = frozenset({"FORWARDED", "REDIRECTED"})  # REDIRECTED: allowed, and sent to the L7 proxy


@dataclass
class _Usage:
    flows: int = 0
    uncertain: int = 0
    last: datetime | None = None
    peers: dict[ObservedPeer, None] = field(default_factory=dict)
    ports: dict[tuple[str, int], None] = field(default_factory=dict)
    more_peers: bool = False
    more_ports: bool = False

    def add(self, when: datetime | None, peer: ObservedPeer, port: tuple[str, int]) -> None:
        self.flows += 1
        if when is not None and (self.last is None or when > self.last):
            self.last = when
        if peer not in self.peers:
            if len(self.peers) < MAX_KEPT:
                self.peers[peer] = None
            else:
                self.more_peers = True
        if port not in self.ports:
            if len(self.ports) < MAX_KEPT:
                self.ports[port] = None
            else:
                self.more_ports = True


@dataclass
class _Missing:
    flows: int = 0
    last: datetime | None = None
    sources: dict[str, None] = field(default_factory=dict)
    destination: ObservedPeer | None = None
    ports: dict[tuple[str, int], None] = field(default_factory=dict)


# Why dropped flows need an allow: DNS (to anyone, on 53), or the other side's policy allows them (its index).
DNS = -1


@dataclass
class _State:
    policies: Sequence[NormalizedPolicy]
    namespaces: Mapping[str, Mapping[str, str]]
    by_namespace: dict[str, list[int]]
    allow: list[dict[Direction, tuple[tuple[int, Rule], ...]]]
    usage: dict[tuple[int, int], _Usage] = field(default_factory=dict)
    observed: dict[int, int] = field(default_factory=dict)
    # (policy, direction, DNS or the index of the other side's policy that allows it, the peer for the latter)
    missing: dict[tuple[int, str, int, ObservedPeer | None], _Missing] = field(default_factory=dict)
    missing_per_policy: dict[int, int] = field(default_factory=dict)  # at most MAX_KEPT each
    cache: dict[tuple[Any, ...], _Classified] = field(default_factory=dict)
    by_key: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # Flows Hubble says a policy allowed (`*_allowed_by`) that none of its rules matched here: a second opinion
    # from the datapath. Any disagreement means netguard's matching missed something for that policy.
    disagreements: dict[int, int] = field(default_factory=dict)
    selections: dict[tuple[str, frozenset[tuple[str, str]]], _Selection] = field(default_factory=dict)
    cache_chars: int = 0
    selection_chars: int = 0


# (policies selecting the governed end, (policy, rule, its answer but the address, whether a subject certainly
# selects the end) per allow rule that may carry the flow, for a denied flow the policy to report the missing allow
# on and why (DNS, or the other side's policy that allows it), and the other end as evidence)
_Classified = tuple[tuple[int, ...], tuple[tuple[int, int, Partial, bool], ...], tuple[int, int] | None,
                    ObservedPeer]
# A policy that may select a flow's end: its index, the subjects that select it and those that may (their
# namespace's labels are not known), the directions a subject that selects it isolates.
_Selection = tuple[tuple[int, frozenset[int], frozenset[int], frozenset[str]], ...]


def match_flows(policies: Sequence[NormalizedPolicy], flows: Iterable[Flow],
                namespaces: Mapping[str, Mapping[str, str]], stats: FlowStats, since: datetime | None = None,
                until: datetime | None = None) -> FlowEvidence:
    """Every flow matched to every allow rule of `policies` (normalized, CIDR groups resolved): per rule the flows
    it carried, and per policy the denied flows one obvious allow would have passed. `stats` is filled as `flows`
    is read (read_flows); `namespaces` gives namespace labels for namespace selectors (Hubble's own are read too)."""
    by_namespace: dict[str, list[int]] = {}
    for i, policy in enumerate(policies):
        by_namespace.setdefault("" if policy.clusterwide else policy.namespace, []).append(i)
    # Each policy's allow rules that can carry traffic, per direction: (index in policy.rules, rule), found once.
    allow = [{d: tuple((ri, r) for ri, r in enumerate(p.rules) if r.direction is d and r.action is Action.ALLOW
                       and r.effective and not r.matches_nothing) for d in Direction} for p in policies]
    state = _State(policies, namespaces, by_namespace, allow)
    # Hubble names a policy in `*_allowed_by` by the kind Cilium derived its rules from, its namespace ("" when
    # clusterwide) and its name: its policy_key.
    state.by_key = {policy_key(p): i for i, p in enumerate(policies)}
    for flow in flows:
        _account(state, flow)
    return FlowEvidence(stats.window(since, until),
                        {policy_key(p): _evidence(state, i, p) for i, p in enumerate(policies)})


def _account(state: _State, flow: Flow) -> None:
    if flow.is_reply or flow.direction not in ("INGRESS", "EGRESS"):
        return
    egress = flow.direction == "EGRESS"
    carried = flow.verdict in CARRIED
    denied = flow.verdict == "AUDIT" or (flow.verdict == "DROPPED" and flow.drop_reason == "POLICY_DENIED")
    if not (carried or denied):
        return
    own, other = (flow.source, flow.destination) if egress else (flow.destination, flow.source)
    own_ip, other_ip = (flow.source_ip, flow.destination_ip) if egress else (flow.destination_ip, flow.source_ip)
    # The shape of a flow leaves out the other end's address: only CIDR peers read it, and they are checked per
    # flow (Partial.with_address), so flows to a thousand addresses of one service share one shape. A pod's DNS
    # names decide nothing (FQDN peers select outside the cluster); an outside address's family does (world-ipv4).
    outside = not other.namespace
    family = (6 if ":" in other_ip else 4) if outside and other_ip else 0
    key = (egress, carried, own.shape, other.shape, family,
           flow.destination_names if outside and egress else (), flow.protocol, flow.destination_port)
    found = state.cache.get(key)
    if found is None:
        state.cache_chars += _weight(own) + _weight(other) + sum(map(len, key[5]))
        if len(state.cache) >= _CACHE_SIZE or state.cache_chars > _CACHE_CHARS:
            state.cache.clear()
            state.cache_chars = 0
        found = state.cache[key] = _classify(state, flow, egress, carried, own, other, own_ip, other_ip)
    selecting, partials, missing_in, peer = found
    if outside:
        peer = observed_peer(other, other_ip, flow.destination_names if egress else ())
    matches = [(pi, ri, how) for pi, ri, partial, certain in partials
               if (how := _final(partial.with_address(other_ip, True) if outside else partial.others, certain))
               is not Match.NO]
    matched = {pi for pi, _, _ in matches}
    for i in selecting:
        state.observed[i] = state.observed.get(i, 0) + 1
    if carried:
        for ref in flow.allowed_by:
            pi = state.by_key.get((ref.kind, ref.namespace, ref.name))
            if pi is not None and pi not in matched:
                state.disagreements[pi] = state.disagreements.get(pi, 0) + 1
    port = (flow.protocol, flow.destination_port)
    for pi, ri, how in matches:
        usage = state.usage.setdefault((pi, ri), _Usage())
        if how is Match.YES:
            usage.add(flow.time, peer, port)
        else:
            usage.uncertain += 1
    if missing_in is not None:
        target, why = missing_in
        key4 = (target, flow.direction.lower(), why, None if why == DNS else peer)
        entry = state.missing.get(key4)
        if entry is None and state.missing_per_policy.get(target, 0) < MAX_KEPT:
            entry = state.missing[key4] = _Missing()
            state.missing_per_policy[target] = state.missing_per_policy.get(target, 0) + 1
        if entry is not None:
            entry.flows += 1
            if flow.time is not None and (entry.last is None or flow.time > entry.last):
                entry.last = flow.time
            if len(entry.sources) < MAX_KEPT:
                entry.sources[observed_peer(own, own_ip, ()).describe()] = None
            entry.destination = entry.destination or peer
            if len(entry.ports) < MAX_KEPT:
                entry.ports[port] = None


def _weight(end: Endpoint) -> int:
    return sum(len(k) + len(v) for k, v in end.labels.items())


def _classify(state: _State, flow: Flow, egress: bool, carried: bool, own: Endpoint, other: Endpoint, own_ip: str,
              other_ip: str) -> _Classified:
    direction = Direction.EGRESS if egress else Direction.INGRESS
    names = flow.destination_names if egress else ()
    observed = observed_peer(other, other_ip, names)
    selection = _selection(state, own, own_ip)
    if not selection:
        return (), (), None, observed
    peer = flow_end(other, other_ip, names, state.namespaces)
    partials: list[tuple[int, int, Partial, bool]] = []
    for pi, certain, possible, _ in selection if carried else ():
        policy = state.policies[pi]
        for ri, rule in state.allow[pi][direction]:
            if rule.subject in certain or rule.subject in possible:
                partial = rule_matches_but_addresses(policy, rule, peer, flow.protocol, flow.destination_port)
                if partial.others is not Match.NO or partial.cidrs:
                    partials.append((pi, ri, partial, rule.subject in certain))
    return (tuple(pi for pi, certain, _, _ in selection if certain), tuple(partials),
            None if carried else _missing(state, flow, direction, selection, own, other, own_ip, other_ip), observed)


def _missing(state: _State, flow: Flow, direction: Direction, selection: _Selection, own: Endpoint, other: Endpoint,
             own_ip: str, other_ip: str) -> tuple[int, int] | None:
    """For a flow no rule allowed: (the policy to report it on, DNS or the other side's policy that allows it), when
    one obvious allow would have passed it; the first policy, by kind and name, that isolates the pod there."""
    isolating = sorted((policy_key(state.policies[pi]), pi) for pi, _, _, isolates in selection
                       if direction._value_ in isolates)
    if not isolating:
        return None
    target = isolating[0][1]
    if direction is Direction.EGRESS and flow.protocol in ("UDP", "TCP") and flow.destination_port == DNS_PORT:
        return target, DNS
    if not other.namespace or not flow.destination_port:
        return None
    # The other end's own policy allows this very flow on its side: the team there opened it, this side forgot.
    me = flow_end(own, own_ip, (), state.namespaces)
    opposite = Direction.INGRESS if direction is Direction.EGRESS else Direction.EGRESS
    for pi, certain, _, _ in _selection(state, other, other_ip):
        policy = state.policies[pi]
        for _, rule in state.allow[pi][opposite]:
            if rule.subject in certain and rule_matches_but_addresses(
                    policy, rule, me, flow.protocol, flow.destination_port).others is Match.YES:
                return target, pi
    return None


def _final(how: Match, certain_subject: bool) -> Match:
    """A rule's match, uncertain when whether its subject selects the pod is (unknown namespace labels)."""
    return how if certain_subject or how is Match.NO else Match.MAYBE


def _selection(state: _State, own: Endpoint, own_ip: str) -> _Selection:
    """The policies whose subjects select this end (a pod), worked out once per distinct pod identity."""
    key = own.shape
    found = state.selections.get(key)
    if found is None:
        state.selection_chars += _weight(own)
        if len(state.selections) >= _CACHE_SIZE or state.selection_chars > _CACHE_CHARS:
            state.selections.clear()
            state.selection_chars = 0
        me = flow_end(own, own_ip, (), state.namespaces)
        out = []
        for pi in (*state.by_namespace.get(me.namespace, ()), *state.by_namespace.get("", ())) if me.is_pod else ():
            policy = state.policies[pi]
            how = {s.index: selects(policy, s, me) for s in policy.subjects}
            certain = frozenset(i for i, m in how.items() if m is Match.YES)
            possible = frozenset(i for i, m in how.items() if m is Match.MAYBE)
            if certain or possible:
                isolates = frozenset(d for s in policy.subjects if s.index in certain
                                     for d, on in s.isolates.items() if on)
                out.append((pi, certain, possible, isolates))
        found = state.selections[key] = tuple(out)
    return found


def _evidence(state: _State, pi: int, policy: NormalizedPolicy) -> PolicyEvidence:
    seen = state.observed.get(pi, 0)
    if not seen:
        return PolicyEvidence(observed=False)
    rules = tuple(_rule_usage(policy, rule, state.usage.get((pi, ri), _Usage()))
                  for ri, rule in sorted(r for by_direction in state.allow[pi].values() for r in by_direction))
    missing = tuple(_missing_allow(state, policy, direction, why, found)
                    for (target, direction, why, _), found in sorted(state.missing.items(), key=_missing_order)
                    if target == pi and found.destination is not None)
    return PolicyEvidence(observed=True, subject_flows=seen, rules=rules, missing=missing,
                          disagreements=state.disagreements.get(pi, 0))


def _not_judged(rule: Rule) -> str:
    if any(p.type is PeerType.SERVICE for p in rule.peers):
        return "it names services, and a flow shows the backend pod, not the service"
    return ""


def _rule_usage(policy: NormalizedPolicy, rule: Rule, usage: _Usage) -> RuleUsage:
    why = _not_judged(rule)
    peers = tuple(sorted(usage.peers))
    ports = tuple(sorted(usage.ports))
    out = RuleUsage(path=rule.path, direction=rule.direction._value_, flows=usage.flows,
                    uncertain=usage.uncertain, last_seen=usage.last, peers=peers, ports=ports,
                    more_peers=usage.more_peers, more_ports=usage.more_ports, judged=not why, not_judged=why,
                    allows=_allows(rule))
    if why or not usage.flows or usage.uncertain:
        return out
    return replace(out, breadth=breadth(policy, rule, out))


def _allows(rule: Rule) -> str:
    who = "every peer" if rule.any_peer else ", ".join(_peer_words(p) for p in rule.peers)
    return f"{'to' if rule.direction is Direction.EGRESS else 'from'} {who} on {rule.ports_label()}"


def _peer_words(peer: Peer) -> str:
    """A peer for a report row: pods with their selector (app=db), which Peer.describe leaves out."""
    text = peer.describe()
    if peer.type is not PeerType.PODS or peer.pods is None or peer.pods.empty:
        return text
    words = {"In": "{k}={v}", "NotIn": "{k}!={v}", "Exists": "{k}", "DoesNotExist": "!{k}"}
    labels = ",".join(words[r.operator].format(k=r.key, v="|".join(r.values)) for r in peer.pods.requirements)
    return f"{text} labelled {labels}"


def _missing_order(item: tuple[tuple[int, str, int, ObservedPeer | None], _Missing]) -> tuple[Any, ...]:
    (_, direction, why, peer), _ = item
    return direction, why != DNS, peer.describe() if peer else ""


def _missing_allow(state: _State, policy: NormalizedPolicy, direction: str, why: int,
                   found: _Missing) -> MissingAllow:
    dest = found.destination
    assert dest is not None
    where = f"{policy.subjects[0].path if policy.subjects else 'spec'}.{direction}"
    if why == DNS:
        return MissingAllow(path=where, direction=direction, what=f"DNS to {dest.describe()} on UDP/53 and TCP/53",
                            flows=found.flows, last_seen=found.last, sources=tuple(found.sources),
                            rule=dns_rule(policy, dest))
    ports = sorted(found.ports)
    other = state.policies[why]
    side = f"{other.kind} {other.namespace + '/' if other.namespace else ''}{other.name}"
    what = (f"{', '.join(port_label(p) for p in ports)} {'to' if direction == 'egress' else 'from'} "
            f"{dest.describe()}, which {side} allows on its side")
    return MissingAllow(path=where, direction=direction, what=what, flows=found.flows, last_seen=found.last,
                        sources=tuple(found.sources), rule=allow_rule(policy, direction, dest, ports))
