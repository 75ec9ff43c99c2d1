"""`netguard audit`: the whole catalog over what is in a cluster (or on disk), plus posture figures.

Findings come from the same check pipeline as admission (check.check_documents), so an audit
finding is exactly what admission would say today. Posture figures read the normalized model
and its facts; none of them re-implements a guardrail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from webhook import exceptions as exc_mod
from webhook.check import CheckReport, Requester, check_documents
from webhook.decisionlog import DecisionStats
from webhook.inventory import Inventory, Workload
from webhook.limits import check_limits
from webhook.mutate import ANNOTATION_LAST_MODIFIED_BY
from webhook.netpolicy import NormalizedPolicy, Subject
from webhook.pipeline import Pipeline
from webhook.posture import has_default_deny, subject_covers_namespace
from webhook.shape import ShapeError
from webhook.sources import Document, SourceError

EXPIRING_WITHIN = timedelta(days=14)
# Audit evaluates as this requester when nobody is recorded: ownership guardrails judge *who*
# changes an object, which an audit of what exists cannot know.
UNKNOWN_REQUESTER = Requester("netguard-audit (last change unknown)", ("system:masters",))


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

    def to_json(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "namespace": self.namespace, "name": self.name,
                "expires": self.expires.isoformat(), "reason": self.reason, "ticket": self.ticket,
                "source": self.source, "expiring_soon": self.expiring_soon}


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

    def to_json(self) -> dict[str, Any]:
        by_mode = Counter(f.mode for f in self.findings)
        return {
            "netguard": {"policy_revision": self.policy_revision},
            "generated_at": self.generated_at.isoformat(),
            "source": self.source,
            "summary": {"policies": self.policies, "findings": len(self.findings),
                        "enforce": by_mode["enforce"], "warn": by_mode["warn"], "audit": by_mode["audit"],
                        "errors": len(self.errors)},
            "posture": self.posture.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "decisions": self.decisions.to_json() if self.decisions else None,
            "errors": [{"source": e.source, "line": e.line, "column": e.col, "message": e.message}
                       for e in self.errors],
        }


def requester_from_annotation(doc: Document) -> Requester:
    meta = doc.obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    who = annotations.get(ANNOTATION_LAST_MODIFIED_BY) if isinstance(annotations, dict) else None
    return Requester(str(who), ("system:authenticated",)) if who else UNKNOWN_REQUESTER


def audit(pipeline: Pipeline, inventory: Inventory, *, decisions: DecisionStats | None = None,
          today: date | None = None, now: datetime | None = None,
          progress: Callable[[Iterable[Document]], Iterable[Document]] = lambda docs: docs) -> AuditReport:
    today = today or date.today()
    docs = list(progress(inventory.policies))
    check = check_documents(pipeline, docs, inventory.errors, today=today, requester_for=requester_from_annotation)
    last_by = decisions.last_changed_by if decisions else {}
    findings = tuple(_audit_findings(check, last_by))
    normalized = _normalized(pipeline, docs)
    posture = _posture(pipeline, inventory, normalized, today)
    return AuditReport(generated_at=now or datetime.now(UTC), source=inventory.source,
                       policy_revision=pipeline.revision, findings=findings, posture=posture, decisions=decisions,
                       errors=check.errors, policies=len(check.results), rules=pipeline.policies.guardrails)


def _audit_findings(check: CheckReport, last_by: Mapping[tuple[str, str, str], str]) -> Iterable[AuditFinding]:
    for result in check.results:
        who = requester_from_annotation(result.document).username
        if who == UNKNOWN_REQUESTER.username:
            who = last_by.get((result.kind, result.namespace, result.name), "unknown")
        for f in result.findings:
            finding = f.applied.finding
            yield AuditFinding(kind=result.kind, namespace=result.namespace, name=result.name,
                               source=result.document.source, line=f.line, rule=finding.rule,
                               severity=finding.severity, mode=f.applied.mode.value, reason=f.applied.reason,
                               path=finding.path, message=finding.message, fix=finding.fix, last_changed_by=who)


def _normalized(pipeline: Pipeline, docs: Sequence[Document]) -> list[tuple[Document, NormalizedPolicy]]:
    out = []
    for doc in docs:
        if check_limits(doc.obj, pipeline.settings.limits) is not None:
            continue  # reported by the check as a `limits` finding; too large to read for posture
        try:
            out.append((doc, pipeline.model(doc.obj, pipeline.snapshot())[0]))  # as the check read it
        except ShapeError:
            continue  # reported by the check as an input error
    return out


def _ref(policy: NormalizedPolicy, paths: Iterable[str], detail: str = "") -> PolicyRef:
    return PolicyRef(policy.kind, policy.namespace, policy.name, tuple(paths), detail)


def _posture(pipeline: Pipeline, inventory: Inventory, normalized: list[tuple[Document, NormalizedPolicy]],
             today: date) -> Posture:
    ns_labels = inventory.namespace_labels()
    namespaces = tuple(sorted(n.name for n in inventory.namespaces
                              if n.name not in pipeline.settings.excluded_namespaces))
    policies = [p for _, p in normalized]
    lists: dict[str, list[PolicyRef]] = {k: [] for k in (
        "egress_all", "egress_limited", "ingress_all", "ingress_limited", "all_ns", "metadata")}
    for policy in policies:
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
                lists[f"{direction}_all"].append(_ref(policy, [r.path for r in everywhere] + everywhere_paths))
            if limited or limited_paths:
                lists[f"{direction}_limited"].append(_ref(
                    policy, [r.path for r in limited] + limited_paths,
                    "; ".join(f"{r.path}: {r.ports_label()}" for r in limited)))
        open_rules = [r for r in policy.rules if r.action.value == "allow" and r.effective and not r.matches_nothing
                      and not r.any_peer and r.facts.all_namespaces]
        if open_rules:
            lists["all_ns"].append(_ref(policy, [r.path for r in open_rules]))
        meta_rules = [r for r in policy.rules if r.direction.value == "egress" and r.action.value == "allow"
                      and r.effective and r.facts.metadata]
        if meta_rules:
            lists["metadata"].append(_ref(policy, [r.path for r in meta_rules],
                                          ", ".join(sorted({ip for r in meta_rules for ip in r.facts.metadata}))))
    gaps = _workload_gaps(inventory.workloads, policies, ns_labels, pipeline.settings.excluded_namespaces)
    return Posture(
        namespaces=namespaces,
        no_default_deny_ingress=tuple(n for n in namespaces
                                      if not has_default_deny(n, "ingress", policies, ns_labels)),
        no_default_deny_egress=tuple(n for n in namespaces if not has_default_deny(n, "egress", policies, ns_labels)),
        internet_egress_all_ports=tuple(lists["egress_all"]),
        internet_egress_ports_limited=tuple(lists["egress_limited"]),
        internet_ingress_all_ports=tuple(lists["ingress_all"]),
        internet_ingress_ports_limited=tuple(lists["ingress_limited"]),
        all_namespaces=tuple(lists["all_ns"]), metadata=tuple(lists["metadata"]),
        exceptions=_exceptions(pipeline, normalized, today),
        workloads=None if inventory.workloads is None else len(inventory.workloads),
        workloads_without_ingress=gaps[0], workloads_without_egress=gaps[1],
    )


def _workload_gaps(workloads: Sequence[Workload] | None, policies: Sequence[NormalizedPolicy],
                   ns_labels: Mapping[str, Mapping[str, str]],
                   excluded: Sequence[str]) -> tuple[tuple[WorkloadGap, ...], tuple[WorkloadGap, ...]]:
    if workloads is None:
        return (), ()
    missing: dict[str, list[WorkloadGap]] = {"ingress": [], "egress": []}
    for w in workloads:
        if w.namespace in excluded:
            continue
        for direction in ("ingress", "egress"):
            if not any(_selects(policy, subject, w, ns_labels) for policy in policies for subject in policy.subjects
                       if subject.isolates.get(direction)):
                missing[direction].append(WorkloadGap(w.namespace, w.kind, w.name))
    return tuple(missing["ingress"]), tuple(missing["egress"])


def _selects(policy: NormalizedPolicy, subject: Subject, workload: Workload,
             ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    if not subject_covers_namespace(policy, subject, workload.namespace, ns_labels):
        return False
    return subject.selector.pod_part().matches(workload.labels)


def _exceptions(pipeline: Pipeline, normalized: list[tuple[Document, NormalizedPolicy]],
                today: date) -> tuple[ExceptionInForce, ...]:
    out: list[ExceptionInForce] = []
    granted = list(pipeline.config_exemptions)
    for _, policy in normalized:
        ns = policy.namespace
        result = exc_mod.from_annotation(policy.annotations, pipeline.settings.exception_keys, ns, policy.name,
                                         policy.kind)
        granted.extend(result.exemptions)
    for e in granted:
        if e.expired(today):
            continue
        out.append(ExceptionInForce(rules=e.rules, namespace=e.namespace, name=e.name, expires=e.expires,
                                    reason=e.reason, ticket=e.ticket, source=e.source,
                                    expiring_soon=e.expires - today <= EXPIRING_WITHIN))
    return tuple(sorted(set(out), key=lambda x: (x.expires, x.namespace, x.name)))
