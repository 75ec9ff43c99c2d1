"""Findings + modes -> Decision. Pure: the only place that knows what a mode does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webhook.config import Settings
from webhook.model import AppliedFinding, Decision, Finding, Mode, Verdict
from webhook.policies import Guardrail, PolicySet


def resolve_mode(guardrail: Guardrail, settings: Settings) -> tuple[Mode, str]:
    """The mode in force for a guardrail and why (shown in the response and the log)."""
    configured = settings.rules.get(guardrail.id)
    if configured is not None and configured.mode is not None:
        mode, reason = configured.mode, "config"
    else:
        mode, reason = guardrail.mode, "default"
    if mode is Mode.ENFORCE and settings.dry_run:
        return Mode.WARN, "dry-run"
    return mode, reason


def findings_from_raw(raw: Mapping[str, list[dict[str, Any]]], policies: PolicySet) -> list[Finding]:
    """Engine output keyed by package to Findings; unknown packages are ignored."""
    by_package = policies.by_package
    out: list[Finding] = []
    for package, violations in sorted(raw.items()):
        guardrail = by_package.get(package)
        if guardrail is None:
            continue
        for v in violations:
            out.append(Finding(
                rule=guardrail.id,
                path=str(v.get("path", "")),
                message=str(v.get("msg", "violation")).rstrip("."),
                fix=str(v.get("fix", "")),
                severity=guardrail.severity,
            ))
    return sorted(set(out), key=lambda f: (f.rule, f.path, f.message))


def decide(findings: Iterable[Finding], modes: Mapping[str, tuple[Mode, str]]) -> Decision:
    applied = []
    for f in findings:
        mode, reason = modes.get(f.rule, (Mode.ENFORCE, "default"))
        if mode is not Mode.OFF:
            applied.append(AppliedFinding(f, mode, reason))
    present = {a.mode for a in applied}
    if Mode.ENFORCE in present:
        verdict = Verdict.DENIED
    elif Mode.WARN in present:
        verdict = Verdict.WARNED
    elif Mode.AUDIT in present:
        verdict = Verdict.AUDITED
    else:
        verdict = Verdict.ALLOWED
    return Decision(verdict=verdict, findings=tuple(applied))


def invalid_object(path: str, problem: str) -> Decision:
    """A malformed object is denied with the field named, never a 500."""
    finding = Finding(rule="invalid-object", path=path or "(object)", message=problem,
                      fix="correct the field so it matches the API schema", severity="high")
    return Decision(verdict=Verdict.DENIED, findings=(AppliedFinding(finding, Mode.ENFORCE, "schema"),))


def engine_failure(message: str, on_error: str) -> Decision:
    if on_error == "allow":
        return Decision(verdict=Verdict.ERROR, reason=f"guardrails not evaluated ({message}); allowed by fail-open")
    finding = Finding(rule="engine-error", path="(evaluation)", message=f"guardrails could not be evaluated: {message}",
                      fix="retry; if it persists, contact the platform team (netguard fails closed)",
                      severity="high")
    return Decision(verdict=Verdict.DENIED, findings=(AppliedFinding(finding, Mode.ENFORCE, "fail-closed"),),
                    reason="engine error, failing closed")
