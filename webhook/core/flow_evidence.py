"""What observed traffic says about each policy's allow rules (issue 15): the facts the flow guardrails
(`unused-rule`, `broader-than-observed`, `dropped-needed`) read as `input.cluster.flows`, and what the audit
reports per rule. Values only: offline/flow_match.py computes them from Hubble flows, the Rego decides.

A rule is judged only inside the observed window, and only for a policy some of whose pods appear in a flow
of that window (`PolicyEvidence.observed`): a capture that never saw a pod says nothing about its rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webhook.core.model import PolicyKey


def port_label(port: tuple[str, int]) -> str:
    return f"{port[0]}/{port[1]}" if port[1] else port[0]


def iso(when: datetime | None) -> str | None:
    """A time as the reports and the engine input write it (UTC as Z)."""
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


@dataclass(frozen=True)
class Window:
    """The flows read: the time they cover (first..last flow seen) and the window asked for (--since/--until)."""

    flows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None
    lines: int = 0
    malformed: int = 0
    outside_window: int = 0

    def period(self) -> str:
        """When the flows were observed, for a sentence: "from <first> to <last>"."""
        if self.first is None or self.last is None:
            return "in the export (its flows carry no time)"
        return f"from {iso(self.first)} to {iso(self.last)}"

    def describe(self) -> str:
        return f"{self.flows} flows {self.period()}"

    def to_input(self) -> dict[str, Any]:
        return {"flows": self.flows, "first": iso(self.first), "last": iso(self.last),
                "since": iso(self.since), "until": iso(self.until), "period": self.period(),
                "description": self.describe(),
                "lines": self.lines, "malformed": self.malformed, "outside_window": self.outside_window}


# The labels that name a workload, most telling first; a peer is described (and a suggested selector built) by
# the first one it carries, else by every label that is not per-pod or per-namespace bookkeeping.
WORKLOAD_KEYS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "component")
_BOOKKEEPING = ("pod-template-hash", "controller-revision-hash", "pod-template-generation",
                "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index",
                "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name")
_BOOKKEEPING_PREFIXES = ("io.kubernetes.", "io.cilium.", "reserved:", "cidr:", "fqdn:")


# Kubernetes label limits (a key: 253-character prefix, "/", 63-character name; a value: 63 characters): what
# exceeds them is no pod label, whatever an export says, and is not kept (evidence is held per rule).
_MAX_KEY, _MAX_VALUE, _MAX_LABELS = 317, 63, 32


def workload_labels(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The labels that identify a pod's workload (sorted pairs); () for an endpoint with no pod labels."""
    valid = {k: v for k, v in labels.items() if len(k) <= _MAX_KEY and len(v) <= _MAX_VALUE}
    for key in WORKLOAD_KEYS:
        if key in valid:
            return ((key, valid[key]),)
    return tuple(sorted((k, v) for k, v in valid.items()
                        if k not in _BOOKKEEPING and not k.startswith(_BOOKKEEPING_PREFIXES)))[:_MAX_LABELS]


@dataclass(frozen=True, order=True)
class ObservedPeer:
    """The other end of a flow as evidence: a pod (`namespace` + its workload `labels`), an address outside the
    cluster (`ip`, with the DNS `names` Cilium saw for it), or a reserved identity (`entity`: host, remote-node,
    kube-apiserver, ...)."""

    kind: str  # "pod", "world" or "entity"
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    ip: str = ""
    names: tuple[str, ...] = ()
    entity: str = ""

    def describe(self) -> str:
        if self.kind == "pod":
            who = ",".join(f"{k}={v}" for k, v in self.labels) or "any pod"
            return f"{self.namespace}/{who}"
        if self.kind == "world":
            return self.names[0] if self.names else self.ip
        return self.entity


@dataclass(frozen=True)
class Breadth:
    """One way an allow rule is broader than what it carried: `aspect` is internet, namespaces or ports;
    `allowed` says what the rule allows, `observed` what went through (capped, `more` when cut), `narrower` the
    peers or ports that would have carried every observed flow."""

    aspect: str
    allowed: str
    observed: tuple[str, ...]
    more: bool = False
    narrower: str = ""

    def to_input(self) -> dict[str, Any]:
        return {"aspect": self.aspect, "allowed": self.allowed, "observed": list(self.observed),
                "observed_count": len(self.observed), "more": self.more, "narrower": self.narrower}


@dataclass(frozen=True)
class RuleUsage:
    """The flows one allow rule matched. `judged` is false for a rule whose peers a flow can never settle
    (toServices: a flow shows the backend pod, not the service); flows that only may match it (named ports,
    toGroups, selected nodes, ...) are `uncertain`. Neither is ever called unused or broad."""

    path: str
    direction: str
    flows: int = 0
    uncertain: int = 0  # flows it may have carried: the flow could not settle it (named port, service, ...)
    last_seen: datetime | None = None
    peers: tuple[ObservedPeer, ...] = ()  # the distinct peers observed (capped: more_peers)
    ports: tuple[tuple[str, int], ...] = ()  # the distinct (protocol, port) observed; port 0 for ICMP
    more_peers: bool = False  # more distinct peers than kept
    more_ports: bool = False
    judged: bool = True
    not_judged: str = ""  # why, when not judged
    allows: str = ""  # what the rule allows, in words (its peers and ports)
    breadth: tuple[Breadth, ...] = ()

    def to_input(self) -> dict[str, Any]:
        return {"path": self.path, "direction": self.direction, "flows": self.flows, "uncertain": self.uncertain,
                "last_seen": iso(self.last_seen), "peers": sorted(p.describe() for p in self.peers),
                "ports": [port_label(p) for p in self.ports],
                "more_peers": self.more_peers, "more_ports": self.more_ports, "judged": self.judged,
                "not_judged": self.not_judged, "allows": self.allows,
                "breadth": [b.to_input() for b in self.breadth]}


@dataclass(frozen=True)
class MissingAllow:
    """Dropped flows that one obvious allow would have passed (DNS, or what the other end's own policy allows on
    its side), with that allow as a rule of the policy's own kind (`rule`, ready to paste under `path`)."""

    path: str  # where the rule goes: spec.egress
    direction: str
    what: str  # "DNS to kube-system/k8s-app=kube-dns on UDP/53"
    flows: int
    last_seen: datetime | None
    sources: tuple[str, ...]  # the pods whose flows were dropped
    rule: Mapping[str, Any] = field(default_factory=dict)

    def to_input(self) -> dict[str, Any]:
        return {"path": self.path, "direction": self.direction, "what": self.what, "flows": self.flows,
                "last_seen": iso(self.last_seen), "sources": list(self.sources), "rule": dict(self.rule),
                "rule_text": json.dumps(self.rule) if self.rule else ""}


@dataclass(frozen=True)
class PolicyEvidence:
    """Everything the flows say about one policy. `observed`: some flow in the window had one of its pods at
    the end its rules govern; otherwise its rules are not judged (the capture may simply not include them)."""

    observed: bool
    subject_flows: int = 0
    rules: tuple[RuleUsage, ...] = ()
    missing: tuple[MissingAllow, ...] = ()
    # Flows Hubble attributes to this policy (`*_allowed_by`) that none of its rules matched here: netguard's
    # matching missed something, so no rule of it is called unused.
    disagreements: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"observed": self.observed, "subject_flows": self.subject_flows, "disagreements": self.disagreements,
                "rules": [r.to_input() for r in self.rules], "missing": [m.to_input() for m in self.missing]}

    def to_input(self, window: Window) -> dict[str, Any]:
        return {"window": window.to_input(), **self.to_json()}


NOT_OBSERVED = PolicyEvidence(observed=False)


@dataclass(frozen=True)
class FlowEvidence:
    window: Window
    policies: Mapping[PolicyKey, PolicyEvidence] = field(default_factory=dict)

    def for_policy(self, key: PolicyKey) -> PolicyEvidence:
        return self.policies.get(key, NOT_OBSERVED)

    def to_input(self, key: PolicyKey) -> dict[str, Any]:
        """`input.cluster.flows` for one policy (docs/input.md)."""
        return self.for_policy(key).to_input(self.window)

    def to_json(self) -> dict[str, Any]:
        """For a report: the window, and per policy its rules' use and the drops it explains."""
        return {"window": self.window.to_input(),
                "policies": [{"kind": k[0], "namespace": k[1], "name": k[2], **e.to_json()}
                             for k, e in sorted(self.policies.items())]}
