"""`netguard check`: manifests through the admission pipeline, as the API server would send them.

Every document becomes a synthetic CREATE by the given requester (reviews.synthetic_create) and goes
through the same Pipeline.review as a webhook request (same normalization, Rego, configuration,
exceptions), so "passes check" means "passes admission". Findings are mapped back to source lines; an
object the pipeline could not judge (its decision's typed `failure`) is an input error at the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias

from webhook import kinds
from webhook.core.admission import ReviewError
from webhook.core.model import AppliedFinding, Decision, Mode, UserInfo, Verdict
from webhook.core.reviews import synthetic_create
from webhook.core.snapshot import ClusterSnapshot
from webhook.offline.sources import Document, SourceError
from webhook.pipeline import Pipeline, Review

DEFAULT_USER = "netguard-check"
DEFAULT_GROUPS = ("system:authenticated",)
EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
# --fail-on: the modes whose findings fail a check (exit EXIT_FINDINGS). "warn" fails on warnings as well, with the
# same exit code as enforce findings: CI needs one "findings" code, the report tells which kind they are.
FAIL_ON = {"enforce": (Mode.ENFORCE,), "warn": (Mode.ENFORCE, Mode.WARN)}


CHECK_USER = UserInfo(DEFAULT_USER, groups=DEFAULT_GROUPS)  # who a check reviews as, unless told


@dataclass(frozen=True)
class LocatedFinding:
    applied: AppliedFinding
    line: int
    column: int

    def to_json(self) -> dict[str, Any]:
        f = self.applied.finding
        return {"rule": f.rule, "severity": f.severity, "mode": self.applied.mode.value,
                "reason": self.applied.reason, "path": f.path, "line": self.line, "column": self.column,
                "message": f.message, "fix": f.fix}


@dataclass(frozen=True)
class DocumentResult:
    document: Document
    kind: str
    namespace: str
    name: str
    decision: Decision
    findings: tuple[LocatedFinding, ...] = ()

    @property
    def label(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.document.source, "index": self.document.index, "line": self.document.line,
                "kind": self.kind, "namespace": self.namespace, "name": self.name,
                "verdict": self.decision.verdict.value, "allowed": self.decision.allowed,
                "findings": [f.to_json() for f in self.findings], "notices": list(self.decision.notices),
                "exceptions_used": list(self.decision.exceptions_used)}


@dataclass(frozen=True)
class CheckReport:
    results: tuple[DocumentResult, ...]
    errors: tuple[SourceError, ...]
    skipped: int  # documents of other kinds (Deployments in the same folder, ...)
    revision: str
    engine: str
    rules: tuple[Any, ...] = field(default=())  # the guardrails, for SARIF rule metadata
    fail_on: str = "enforce"  # a key of FAIL_ON (--fail-on)

    def count(self, mode: Mode) -> int:
        return sum(1 for r in self.results for f in r.findings if f.applied.mode is mode)

    @property
    def exit_code(self) -> int:
        """EXIT_INPUT for an unreadable document, else EXIT_FINDINGS for a finding in a --fail-on mode, else 0."""
        if self.errors:
            return EXIT_INPUT
        return EXIT_FINDINGS if any(self.count(mode) for mode in FAIL_ON[self.fail_on]) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "netguard": {"policy_revision": self.revision, "engine": self.engine},
            "summary": {"documents": len(self.results) + self.skipped + len(self.errors),
                        "policies": len(self.results), "skipped": self.skipped, "errors": len(self.errors),
                        "denied": sum(1 for r in self.results if r.decision.verdict is Verdict.DENIED),
                        "enforce": self.count(Mode.ENFORCE), "warn": self.count(Mode.WARN),
                        "audit": self.count(Mode.AUDIT), "exit_code": self.exit_code, "fail_on": self.fail_on},
            "results": [r.to_json() for r in self.results],
            "errors": [{"source": e.source, "line": e.line, "column": e.col, "message": e.message}
                       for e in self.errors],
        }


def check_documents(pipeline: Pipeline, documents: Sequence[Document], errors: Sequence[SourceError] = (),
                    *, namespace: str | None = None, requester: UserInfo = CHECK_USER,
                    today: date | None = None,
                    requester_for: Callable[[Document], UserInfo] | None = None) -> CheckReport:
    """Review each policy document; `requester_for` picks a requester per document (the audit's attribution)."""
    return check_report(pipeline, (check_document(pipeline, doc, namespace=namespace,
                                                  requester=requester_for(doc) if requester_for else requester,
                                                  today=today) for doc in documents), errors)


Outcome: TypeAlias = DocumentResult | SourceError | None  # None: a document of another kind, skipped


def check_document(pipeline: Pipeline, doc: Document, *, namespace: str | None = None,
                   requester: UserInfo = CHECK_USER, today: date | None = None) -> Outcome:
    """One document as check_documents sees it: reviewed, not readable, or skipped (None)."""
    return review_document(pipeline, doc, namespace=namespace, requester=requester, today=today)[0]


def review_document(pipeline: Pipeline, doc: Document, *, namespace: str | None = None,
                    requester: UserInfo = CHECK_USER, today: date | None = None,
                    snapshot: ClusterSnapshot | None = None) -> tuple[Outcome, Review | None]:
    """check_document's outcome and the review behind it (the audit reads its policy); None for a document that
    was not reviewed. `snapshot`: the cluster to review against (the audit's inventory); without it the
    pipeline's own view, none for `netguard check` (a folder is a partial view of a cluster)."""
    kind = doc.obj.get("kind")
    if not isinstance(kind, str) or not isinstance(doc.obj.get("apiVersion"), str):
        return SourceError(doc.source, doc.line, 1, "not a Kubernetes object: apiVersion and kind are required"), None
    known = kinds.of(doc.obj)
    if known is None:  # group and kind, as the audit's inventory: extensions/v1beta1 is not guarded
        return None, None
    kind = known.name  # as netguard names it: Calico's NetworkPolicy is NetworkPolicy.projectcalico.org
    doc = doc.in_namespace(namespace)
    try:
        request = synthetic_create(doc.obj, user=requester, namespace=doc.namespace)
    except ReviewError as exc:
        return SourceError(doc.source, doc.line, 1, exc.message), None
    review = pipeline.review(request, snapshot, today=today)
    return _result(doc, kind, review.decision), review


def check_report(pipeline: Pipeline, outcomes: Iterable[Outcome], errors: Sequence[SourceError] = ()) -> CheckReport:
    """The report of check_document's outcomes, in order, after the errors met reading the input."""
    results: list[DocumentResult] = []
    problems = list(errors)
    skipped = 0
    for outcome in outcomes:
        if outcome is None:
            skipped += 1
        elif isinstance(outcome, SourceError):
            problems.append(outcome)
        else:
            results.append(outcome)
    return CheckReport(results=tuple(results), errors=tuple(problems), skipped=skipped,
                       revision=pipeline.revision, engine=pipeline.engine.name, rules=pipeline.policies.guardrails)


def _result(doc: Document, kind: str, decision: Decision) -> DocumentResult | SourceError:
    """The decision located in the document. A failure that denies is an input error at its field: an object that
    cannot be read, or guardrails that could not run and fail closed. Failing open, the document is reported
    with verdict error, as admission would let it through."""
    failure = decision.failure
    if failure is not None and not decision.allowed:
        line, col = doc.position(failure.path)
        return SourceError(doc.source, line, col, f"{failure.path}: {failure.problem}")
    meta = doc.obj.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    located = tuple(LocatedFinding(f, *doc.position(f.finding.path)) for f in decision.findings)
    return DocumentResult(document=doc, kind=kind, namespace=doc.namespace, name=name, decision=decision,
                          findings=located)
