"""`netguard audit`: the whole catalog over what is in a cluster (or on disk), plus posture figures.

Findings come from the same check pipeline as admission (check.review_document), so an audit
finding is exactly what admission would say today with netguard's cluster view on: every review
reads a ClusterSnapshot of the inventory (its namespaces and policies), so the guardrails that
judge a policy against the rest of the cluster (namespace-has-default-deny) work offline too.
Posture figures read the normalized model and its facts, the very model the review built
(Review.policy); none of them re-implements a guardrail. With `jobs` > 1 the reviews run in forked
processes (fanout.py), each also working out its policies' share of the posture; the parent merges
in input order, so the report does not depend on the number of processes.

Size: about 500 lines: the report's dataclasses and the posture figures, which read the reviews the audit
already made, and the models the flow evidence is matched against (--flows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from webhook import kinds
from webhook.core import exceptions as exc_mod
from webhook.core.flow_evidence import FlowEvidence
from webhook.core.limits import check_limits
from webhook.core.model import UserInfo, Verdict
from webhook.core.mutate import ANNOTATION_LAST_MODIFIED_BY
from webhook.core.netpolicy import NormalizedPolicy, Subject
from webhook.core.posture import DIRECTIONS, baseline_subjects, has_default_deny, subject_covers_namespace
from webhook.core.selectors import Selector
from webhook.core.shape import ShapeError
from webhook.core.snapshot import ClusterSnapshot
from webhook.offline import fanout
from webhook.offline.check import CheckReport, DocumentResult, Outcome, check_report, review_document
from webhook.offline.decisionlog import DecisionStats
from webhook.offline.inventory import Inventory, Workload
from webhook.offline.sources import Document, SourceError
from webhook.pipeline import Pipeline

EXPIRING_WITHIN = timedelta(days=14)
# Ownership guardrails (cluster-scoped-policy-restricted, protect-baseline) judge *who* changed an object.
# Whoever last changed a policy is judged as an app team unless the decision log, written from what the API
# server authenticated, names them: the last-modified-by annotation is written by clients and only shown.
APP_TEAM = UserInfo("netguard-audit (last change not in the decision log: judged as an app team)")
LastChanged = Mapping[tuple[str, str, str], tuple[str, tuple[str, ...]]]  # (kind, ns, name) -> (user, groups)


@dataclass(frozen=True)
class AuditFinding:
    kind: str
    namespace: str
    name: str
    source: str
    line: int
    rule: str
    severity: str
    mode: str
    reason: str
    path: str
    message: str
    fix: str
    last_changed_by: str
    # Where last_changed_by comes from: "decision log" (authenticated by the API server), "annotation"
    # (written by a client: shown, never trusted), or "" when unknown.
    last_changed_from: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuditNotice:
    """What a review could not judge about a policy (a CIDR group or network set not read, a namespace's labels
    not known): no finding, but never silence either."""

    kind: str
    namespace: str
    name: str
    source: str
    line: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PolicyRef:
    kind: str
    namespace: str
    name: str
    paths: tuple[str, ...]
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "paths": list(self.paths),
                "detail": self.detail}


@dataclass(frozen=True)
class ExceptionInForce:
    rules: tuple[str, ...]
    namespace: str
    name: str
    expires: date
    reason: str
    ticket: str
    source: str
    expiring_soon: bool
    id: str = ""  # a signed token's id (exceptions.token_id); "" for a configuration grant
    bound: bool = False  # a signed token bound to the policy's spec (--bind-spec)

    def to_json(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "namespace": self.namespace, "name": self.name,
                "expires": self.expires.isoformat(), "reason": self.reason, "ticket": self.ticket,
                "source": self.source, "expiring_soon": self.expiring_soon, "id": self.id, "bound": self.bound}


@dataclass(frozen=True)
class WorkloadGap:
    namespace: str
    kind: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class Posture:
    namespaces: tuple[str, ...]
    no_default_deny_ingress: tuple[str, ...]
    no_default_deny_egress: tuple[str, ...]
    internet_egress_all_ports: tuple[PolicyRef, ...]
    internet_egress_ports_limited: tuple[PolicyRef, ...]
    internet_ingress_all_ports: tuple[PolicyRef, ...]
    internet_ingress_ports_limited: tuple[PolicyRef, ...]
    all_namespaces: tuple[PolicyRef, ...]
    metadata: tuple[PolicyRef, ...]
    exceptions: tuple[ExceptionInForce, ...]
    workloads: int | None = None  # None: workloads were not available
    workloads_without_ingress: tuple[WorkloadGap, ...] = ()
    workloads_without_egress: tuple[WorkloadGap, ...] = ()

    def namespaces_of(self, refs: Iterable[PolicyRef]) -> tuple[str, ...]:
        return tuple(sorted({r.namespace or "(clusterwide)" for r in refs}))

    def to_json(self) -> dict[str, Any]:
        def refs(items: Iterable[PolicyRef]) -> dict[str, Any]:
            items = tuple(items)
            return {"count": len(items), "namespaces": list(self.namespaces_of(items)),
                    "policies": [r.to_json() for r in items]}

        return {
            "namespaces": len(self.namespaces),
            "no_default_deny_ingress": {"count": len(self.no_default_deny_ingress),
                                        "namespaces": list(self.no_default_deny_ingress)},
            "no_default_deny_egress": {"count": len(self.no_default_deny_egress),
                                       "namespaces": list(self.no_default_deny_egress)},
            "internet_egress_all_ports": refs(self.internet_egress_all_ports),
            "internet_egress_ports_limited": refs(self.internet_egress_ports_limited),
            "internet_ingress_all_ports": refs(self.internet_ingress_all_ports),
            "internet_ingress_ports_limited": refs(self.internet_ingress_ports_limited),
            "all_namespaces": refs(self.all_namespaces),
            "metadata": refs(self.metadata),
            "exceptions": {"count": len(self.exceptions),
                           "expiring_soon": sum(1 for e in self.exceptions if e.expiring_soon),
                           "items": [e.to_json() for e in self.exceptions]},
            "workloads": None if self.workloads is None else {
                "count": self.workloads,
                "without_ingress_policy": [w.to_json() for w in self.workloads_without_ingress],
                "without_egress_policy": [w.to_json() for w in self.workloads_without_egress],
            },
        }


@dataclass(frozen=True)
class AuditReport:
    generated_at: datetime
    source: str
    policy_revision: str
    findings: tuple[AuditFinding, ...]
    posture: Posture
    decisions: DecisionStats | None = None
    errors: tuple[SourceError, ...] = ()
    policies: int = 0
    rules: tuple[Any, ...] = field(default=())  # the guardrails (title, severity, remediation)
    notices: tuple[AuditNotice, ...] = ()
    flows: FlowEvidence | None = None  # what observed traffic said about each policy's rules (--flows)

    def to_json(self) -> dict[str, Any]:
        by_mode = Counter(f.mode for f in self.findings)
        return {
            "netguard": {"policy_revision": self.policy_revision},
            "generated_at": self.generated_at.isoformat(),
            "source": self.source,
            "summary": {"policies": self.policies, "findings": len(self.findings),
                        "enforce": by_mode["enforce"], "warn": by_mode["warn"], "audit": by_mode["audit"],
                        "notices": len(self.notices), "errors": len(self.errors)},
            "posture": self.posture.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "notices": [n.to_json() for n in self.notices],
            "flows": None if self.flows is None else self.flows.to_json(),
            "decisions": self.decisions.to_json() if self.decisions else None,
            "errors": [{"source": e.source, "line": e.line, "column": e.col, "message": e.message}
                       for e in self.errors],
        }


def annotated_modifier(doc: Document) -> str | None:
    """The last-modified-by annotation: for display only (any client can write it; /validate refuses a forged
    one, but a policy admitted before that check, or with netguard off, may carry anything)."""
    meta = doc.obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    who = annotations.get(ANNOTATION_LAST_MODIFIED_BY) if isinstance(annotations, dict) else None
    return str(who) if who else None


def _object_key(doc: Document) -> tuple[str, str, str]:
    meta = doc.obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(doc.obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", ""))


def requester_for(doc: Document, last_changed: LastChanged) -> UserInfo:
    """The requester a policy is judged as: its last modifier with their groups when the decision log recorded
    the change, else an app team (never the platform; never from the annotation)."""
    logged = last_changed.get(_object_key(doc))
    return UserInfo(logged[0], groups=logged[1]) if logged else APP_TEAM


def audit(pipeline: Pipeline, inventory: Inventory, *, decisions: DecisionStats | None = None,
          today: date | None = None, now: datetime | None = None,
          progress: Callable[[Iterable[Document]], Iterable[Document]] = lambda docs: docs,
          jobs: int = 1, flows: FlowMatcher | None = None) -> AuditReport:
    """`jobs` > 1: the policies are reviewed in that many forked processes (webhook/offline/fanout.py); same report.
    `flows` (--flows): matches the observed traffic to the policies, before any review, so the flow guardrails
    read it from the snapshot (`input.cluster.flows`) like any other fact about the cluster."""
    today = today or date.today()
    docs = inventory.policies
    if pipeline.engine.name != "regorus":
        jobs = 1  # OPA: forked processes would share the client's open connections
    outcomes: list[Outcome] = []
    shares: list[_PolicyPosture] = []
    last_changed = decisions.last_changed if decisions else {}
    snapshot = inventory_snapshot(inventory, pipeline.settings.namespace_labels)  # once: the workers inherit it
    if flows is not None:
        snapshot = replace(snapshot, flows=flows(_models(pipeline, docs, snapshot), snapshot.namespaces))
    with fanout.ordered(_review, (pipeline, docs, today, last_changed, snapshot), len(docs), jobs) as reviewed:
        for doc, (outcome, share) in zip(progress(docs), reviewed, strict=True):
            if isinstance(outcome, DocumentResult) and outcome.document == _GIVEN:  # a copy, from a worker
                outcome = replace(outcome, document=doc)
            outcomes.append(outcome)
            if share is not None:
                shares.append(share)
    check = check_report(pipeline, outcomes, inventory.errors)
    findings = tuple(_audit_findings(check, last_changed))
    notices = tuple(AuditNotice(r.kind, r.namespace, r.name, r.document.source, r.document.line, text)
                    for r in check.results for text in r.decision.notices)
    posture = _posture(pipeline, inventory, shares, today)
    return AuditReport(generated_at=now or datetime.now(UTC), source=inventory.source,
                       policy_revision=pipeline.revision, findings=findings, posture=posture, decisions=decisions,
                       errors=check.errors, policies=len(check.results), rules=pipeline.policies.guardrails,
                       notices=notices, flows=snapshot.flows)


FlowMatcher = Callable[[Sequence[NormalizedPolicy], Mapping[str, Mapping[str, str]]], FlowEvidence]


def _models(pipeline: Pipeline, docs: Sequence[Document], snapshot: ClusterSnapshot) -> list[NormalizedPolicy]:
    """The policies as the reviews will read them (CIDR groups resolved, facts attached), for matching flows;
    those that cannot be read or are over a limit are left out, as their reviews judge no rule."""
    out = []
    for doc in docs:
        if kinds.of(doc.obj) is None:
            continue
        obj = doc.in_namespace(None).obj
        if check_limits(obj, pipeline.settings.limits) is not None:
            continue
        try:
            out.append(pipeline.model(obj, snapshot)[0])
        except ShapeError:
            continue
    return out


def inventory_snapshot(inventory: Inventory,
                       configured: Mapping[str, Mapping[str, str]] | None = None) -> ClusterSnapshot:
    """The cluster as the inventory shows it, as netguard's cluster view would hold it: every namespace with its
    labels and every policy that can be read; an unreadable one is left out (its review reports it as an error),
    and so is a document without an apiVersion (check_document: not an object the API server would hold).

    `configured` (the settings' namespace_labels) replaces a namespace's labels, as `netguard audit` merges them
    (cli._run_audit): namespace overrides read the labels they read without a snapshot. CiliumCIDRGroups and
    Calico (Global)NetworkSets are those the inventory read; where it could not tell that it read them all
    (`Inventory.cidr_groups_known`, `network_sets_known`), a reference to one stays "cannot be judged", as
    without a cluster view, rather than "no such group"."""
    return ClusterSnapshot.from_objects(
        {**inventory.namespace_labels(), **(configured or {})},
        (*(d.obj for d in inventory.policies if isinstance(d.obj.get("apiVersion"), str)), *inventory.address_sets),
        skip_unreadable=True, cidr_groups_known=inventory.cidr_groups_known,
        network_sets_known=inventory.network_sets_known)


def _review(shared: tuple[Pipeline, Sequence[Document], date, LastChanged, ClusterSnapshot],
            i: int) -> tuple[Outcome, _PolicyPosture | None]:
    """The check's outcome for one policy and, unless it cannot be read, its share of the posture figures."""
    pipeline, docs, today, last_changed, snapshot = shared
    doc = docs[i]
    outcome, review = review_document(pipeline, doc, requester=requester_for(doc, last_changed), today=today,
                                      snapshot=snapshot)
    policy = review.policy if review is not None else None
    if review is not None and review.decision.verdict is Verdict.SKIPPED:
        policy = _unguarded(pipeline, doc, snapshot)
    if isinstance(outcome, DocumentResult) and outcome.document is doc:
        outcome = replace(outcome, document=_GIVEN)  # the caller has it: not sent back from a worker
    return outcome, None if policy is None else _policy_posture(pipeline, policy, doc.obj, today)


_GIVEN = Document("", 0, {}, 0, MappingProxyType({}))  # stands for the document that _review was given


def _audit_findings(check: CheckReport, last_changed: LastChanged) -> Iterable[AuditFinding]:
    for result in check.results:
        who, where = _last_changed_by(result.document, last_changed.get((result.kind, result.namespace,
                                                                         result.name)))
        for f in result.findings:
            finding = f.applied.finding
            yield AuditFinding(kind=result.kind, namespace=result.namespace, name=result.name,
                               source=result.document.source, line=f.line, rule=finding.rule,
                               severity=finding.severity, mode=f.applied.mode.value, reason=f.applied.reason,
                               path=finding.path, message=finding.message, fix=finding.fix, last_changed_by=who,
                               last_changed_from=where)


def _last_changed_by(doc: Document, logged: tuple[str, tuple[str, ...]] | None) -> tuple[str, str]:
    """(who, from where) for the report: the decision log first, then the annotation, else unknown."""
    if logged:
        return logged[0], "decision log"
    annotated = annotated_modifier(doc)
    return (annotated, "annotation") if annotated else ("unknown", "")


def _unguarded(pipeline: Pipeline, doc: Document, snapshot: ClusterSnapshot) -> NormalizedPolicy | None:
    """A policy admission does not guard (an excluded namespace, a kind version not evaluated), so its review
    skipped it without reading it: still part of the cluster's posture, read here as a review would read it;
    None when over the limits or malformed."""
    if check_limits(doc.obj, pipeline.settings.limits) is not None:
        return None
    try:
        return pipeline.model(doc.obj, snapshot)[0]
    except ShapeError:
        return None


def _ref(policy: NormalizedPolicy, paths: Iterable[str], detail: str = "") -> PolicyRef:
    return PolicyRef(policy.kind, policy.namespace, policy.name, tuple(paths), detail)


@dataclass(frozen=True)
class _PolicyPosture:
    """One policy's share of the posture figures, worked out next to its review (in a worker with --jobs):
    what needs its rules and facts is done there, so the policy comes back without them (far less to send)."""

    policy: NormalizedPolicy  # kind, names, clusterwide and the subjects that isolate a direction; no rules
    refs: tuple[tuple[str, PolicyRef], ...]  # (figure, this policy in it) for the lists of policies
    exemptions: tuple[exc_mod.Exemption, ...]  # granted by a signed token on the policy
    baseline: NormalizedPolicy | None  # with its rules, if it can be a default-deny baseline somewhere


_POLICY_LISTS = ("egress_all", "egress_limited", "ingress_all", "ingress_limited", "all_ns", "metadata")


def _policy_posture(pipeline: Pipeline, policy: NormalizedPolicy, obj: Mapping[str, Any] | None = None,
                    today: date | None = None) -> _PolicyPosture:
    policy_kind = kinds.named(policy.kind)
    # A staged policy (Calico's Staged kinds) opens nothing until it is promoted: it is in no exposure figure, as
    # it is no baseline (posture.baseline_subjects).
    refs = _exposure(policy) if policy_kind is None or policy_kind.enforced else []
    granted = exc_mod.from_annotation(policy.annotations, pipeline.settings.exception_keys, policy.namespace,
                                      policy.name, policy.kind, obj=obj, rules=pipeline.settings.exception_tokens,
                                      today=today).exemptions
    isolating = tuple(s for s in policy.subjects if any(s.isolates.get(d) for d in DIRECTIONS))
    slim = replace(policy, labels={}, annotations={}, subjects=isolating, rules=(), facts={})
    baseline = any(True for d in DIRECTIONS for _ in baseline_subjects(d, (policy,)))
    return _PolicyPosture(slim, tuple(refs), tuple(granted), replace(slim, rules=policy.rules) if baseline else None)


def _exposure(policy: NormalizedPolicy) -> list[tuple[str, PolicyRef]]:
    """Which exposure figures the policy counts in (internet egress/ingress on every port or some, other
    namespaces, metadata), each with the rules that put it there."""
    refs: list[tuple[str, PolicyRef]] = []
    for direction in ("egress", "ingress"):
        rules = [r for r in policy.rules if r.direction.value == direction and r.action.value == "allow"
                 and r.effective and not r.matches_nothing]
        everywhere = [r for r in rules if r.facts.internet and r.every_port]
        limited = [r for r in rules if r.facts.internet and not r.every_port]
        combined = policy.facts.get(direction)
        if combined is not None:
            everywhere_paths = [p for reach in combined.combined_all_ports for p in reach.rules]
            limited_paths = [p for reach in combined.combined_any_ports for p in reach.rules]
        else:
            everywhere_paths, limited_paths = [], []
        if everywhere or everywhere_paths:
            refs.append((f"{direction}_all", _ref(policy, [r.path for r in everywhere] + everywhere_paths)))
        if limited or limited_paths:
            refs.append((f"{direction}_limited", _ref(
                policy, [r.path for r in limited] + limited_paths,
                "; ".join(f"{r.path}: {r.ports_label()}" for r in limited))))
    open_rules = [r for r in policy.rules if r.action.value == "allow" and r.effective and not r.matches_nothing
                  and not r.any_peer and r.facts.all_namespaces]
    if open_rules:
        refs.append(("all_ns", _ref(policy, [r.path for r in open_rules])))
    meta_rules = [r for r in policy.rules if r.direction.value == "egress" and r.action.value == "allow"
                  and r.effective and r.facts.metadata]
    if meta_rules:
        refs.append(("metadata", _ref(policy, [r.path for r in meta_rules],
                                      ", ".join(sorted({ip for r in meta_rules for ip in r.facts.metadata})))))
    return refs


def _posture(pipeline: Pipeline, inventory: Inventory, shares: Sequence[_PolicyPosture], today: date) -> Posture:
    ns_labels = inventory.namespace_labels()
    namespaces = tuple(sorted(n.name for n in inventory.namespaces
                              if n.name not in pipeline.settings.excluded_namespaces))
    policies = [share.policy for share in shares]
    lists: dict[str, list[PolicyRef]] = {k: [] for k in _POLICY_LISTS}
    for share in shares:
        for figure, ref in share.refs:
            lists[figure].append(ref)
    gaps = _workload_gaps(inventory.workloads, policies, ns_labels, pipeline.settings.excluded_namespaces)
    # has_default_deny over the policies that can be a baseline; a namespaced one only for its own namespace.
    baselines: dict[str | None, list[NormalizedPolicy]] = {}
    for share in shares:
        if share.baseline is not None:
            where = None if share.baseline.clusterwide else share.baseline.namespace
            baselines.setdefault(where, []).append(share.baseline)

    def no_default_deny(direction: str) -> tuple[str, ...]:
        return tuple(n for n in namespaces if not has_default_deny(
            n, direction, baselines.get(n, []) + baselines.get(None, []), ns_labels))

    return Posture(
        namespaces=namespaces,
        no_default_deny_ingress=no_default_deny("ingress"),
        no_default_deny_egress=no_default_deny("egress"),
        internet_egress_all_ports=tuple(lists["egress_all"]),
        internet_egress_ports_limited=tuple(lists["egress_limited"]),
        internet_ingress_all_ports=tuple(lists["ingress_all"]),
        internet_ingress_ports_limited=tuple(lists["ingress_limited"]),
        all_namespaces=tuple(lists["all_ns"]), metadata=tuple(lists["metadata"]),
        exceptions=_exceptions(pipeline, [e for share in shares for e in share.exemptions], today),
        workloads=None if inventory.workloads is None else len(inventory.workloads),
        workloads_without_ingress=gaps[0], workloads_without_egress=gaps[1],
    )


def _workload_gaps(workloads: Sequence[Workload] | None, policies: Sequence[NormalizedPolicy],
                   ns_labels: Mapping[str, Mapping[str, str]],
                   excluded: Sequence[str]) -> tuple[tuple[WorkloadGap, ...], tuple[WorkloadGap, ...]]:
    if workloads is None:
        return (), ()
    # The subjects isolating each direction, with their pod selectors. A namespaced policy's subjects only cover
    # its own namespace (subject_covers_namespace): a workload looks at its namespace's and the clusterwide ones.
    isolating: dict[tuple[str, str | None], list[tuple[NormalizedPolicy, Subject, Selector]]] = {}
    for policy in policies:
        for subject in policy.subjects:
            for direction in ("ingress", "egress"):
                if subject.isolates.get(direction):
                    where = None if policy.clusterwide else policy.namespace
                    isolating.setdefault((direction, where), []).append(
                        (policy, subject, subject.selector.pod_part()))
    missing: dict[str, list[WorkloadGap]] = {"ingress": [], "egress": []}
    for w in workloads:
        if w.namespace in excluded:
            continue
        for direction in ("ingress", "egress"):
            candidates = isolating.get((direction, w.namespace), []) + isolating.get((direction, None), [])
            if not any(subject_covers_namespace(policy, subject, w.namespace, ns_labels) and pods.matches(w.labels)
                       for policy, subject, pods in candidates):
                missing[direction].append(WorkloadGap(w.namespace, w.kind, w.name))
    return tuple(missing["ingress"]), tuple(missing["egress"])


def _exceptions(pipeline: Pipeline, signed: Sequence[exc_mod.Exemption], today: date) -> tuple[ExceptionInForce, ...]:
    out: list[ExceptionInForce] = []
    for e in [*pipeline.config_exemptions, *signed]:
        if not e.applies(today):  # expired, or a token that no longer applies (revoked, spec changed, ...)
            continue
        out.append(ExceptionInForce(rules=e.rules, namespace=e.namespace, name=e.name, expires=e.expires,
                                    reason=e.reason, ticket=e.ticket, source=e.source,
                                    expiring_soon=e.expires - today <= EXPIRING_WITHIN, id=e.token_id,
                                    bound=bool(e.spec_digest)))
    return tuple(sorted(set(out), key=lambda x: (x.expires, x.namespace, x.name)))
