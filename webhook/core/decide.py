"""Findings + modes -> Decision. Pure: the only place that knows what a mode does.

A finding's mode is resolved in this order, each step naming itself in the reason:
configuration or the guardrail's default, namespace overrides (later ones win), exceptions
(an unexpired one turns the finding into audit), UPDATE leniency (a violation the object
already had is warned, not denied), a staged kind (enforce becomes warn: the network does not enforce it), and
last the global dry-run (enforce becomes warn).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from typing import Any

from webhook.core.exceptions import Exemption
from webhook.core.guardrails import Guardrail, PolicySet
from webhook.core.model import INVALID_OBJECT, AppliedFinding, Decision, Failure, Finding, Mode, Verdict
from webhook.core.settings import Settings
from webhook.kinds import named as kind_named

FindingKey = tuple[str, str, str]
ENGINE_ERROR = "engine-error"  # pseudo-rule of a fail-closed evaluation failure
LIMITS = "limits"  # pseudo-rule of an object over a configured size limit (webhook/core/limits.py)
ENGINE_FAILURE_KINDS = ("timeout", "unreachable", "error")  # engine.TIMEOUT, UNREACHABLE, ERROR (not overloaded)
EVALUATION = "(evaluation)"  # the path of an engine failure: no field of the object is at fault
STAGED = "staged: Calico does not enforce it; enforce when promoted"  # the reason of a capped finding


@dataclass(frozen=True)
class ModeContext:
    """What mode resolution needs to know about the object and the request."""

    namespace: str = ""
    name: str = ""
    kind: str = ""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    exemptions: tuple[Exemption, ...] = ()
    today: date = field(default_factory=date.today)
    previous: frozenset[FindingKey] | None = None  # the old object's findings, on UPDATE
    notices: tuple[str, ...] = ()  # problems with exception tokens, told to the requester


def key(finding: Finding) -> FindingKey:
    return (finding.rule, finding.path, finding.message)


def rule_mode(guardrail: Guardrail, settings: Settings, ctx: ModeContext) -> tuple[Mode, str]:
    """The mode a guardrail has in this namespace, before per-finding steps."""
    configured = settings.rules.get(guardrail.id)
    if configured is not None and configured.mode is not None:
        mode, reason = configured.mode, "config"
    else:
        mode, reason = guardrail.mode, "default"
    for override in settings.overrides:
        if not _override_matches(override.namespaces, override.namespace_labels, ctx):
            continue
        chosen = override.rules.get(guardrail.id, override.rules.get("*"))
        if chosen is not None:
            where = override.reason or _describe_override(override.namespaces, override.namespace_labels)
            mode, reason = chosen, f"namespace override ({where})"
    return mode, reason


def _override_matches(globs: Iterable[str], labels: Mapping[str, str], ctx: ModeContext) -> bool:
    globs = tuple(globs)
    if globs and not any(fnmatchcase(ctx.namespace, g) for g in globs):
        return False
    return all(ctx.namespace_labels.get(k) == v for k, v in labels.items())


def _describe_override(globs: Iterable[str], labels: Mapping[str, str]) -> str:
    parts = [",".join(globs)] if globs else []
    parts += [f"{k}={v}" for k, v in labels.items()]
    return " ".join(parts) or "all namespaces"


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
                fix=str(v.get("fix", "")).rstrip("."),
                severity=guardrail.severity,
            ))
    return sorted(set(out), key=lambda f: (f.rule, f.path, f.message))


def apply_modes(findings: Iterable[Finding], policies: PolicySet, settings: Settings, ctx: ModeContext) -> Decision:
    applied: list[AppliedFinding] = []
    used: list[str] = []
    for f in findings:
        guardrail = policies.get(f.rule)
        mode, reason = rule_mode(guardrail, settings, ctx)
        if mode is Mode.OFF:
            continue
        covering = [e for e in ctx.exemptions if e.covers(f.rule, ctx.namespace, ctx.name, ctx.kind)]
        active = [e for e in covering if e.applies(ctx.today)]
        if active:
            mode, reason = Mode.AUDIT, active[0].label()
            used.append(active[0].label())
        elif covering:  # expired, or a signed token that no longer applies (revoked, spec changed, ...)
            reason = f"{reason}; {covering[0].lapse(ctx.today)}"
        if (mode is Mode.ENFORCE and ctx.previous is not None and settings.existing_violations == "warn"
                and guardrail.grandfather and key(f) in ctx.previous):
            mode, reason = Mode.WARN, "already present before this update; fix it when you can"
        if mode is Mode.ENFORCE and _staged(ctx.kind) and guardrail.grandfather:
            mode, reason = Mode.WARN, STAGED
        if mode is Mode.ENFORCE and settings.dry_run:
            mode, reason = Mode.WARN, "dry-run"
        applied.append(AppliedFinding(f, mode, reason))
    return _verdict(applied, ctx.notices, tuple(dict.fromkeys(used)))


def _staged(kind: str) -> bool:
    """Whether the policy is of a kind the network does not enforce (`PolicyKind.enforced`: Calico's Staged kinds).

    Its findings are capped at warn: what it would do is only reported (flow logs) until a team promotes it, and
    the promoted kind is judged in full then; a denial now would only keep the team from seeing the preview.
    Requester rules are not capped: `grandfather: false` marks the guardrails that judge who writes the object,
    not the traffic it decides (cluster-scoped-policy-restricted, protect-baseline, no-default-deny-opt-out;
    docs/configuration.md). A team staging a StagedGlobalNetworkPolicy still writes a cluster-scoped object, one
    that previews traffic of every namespace and is promoted as it stands; so it stays the platform's, as its
    GlobalNetworkPolicy would be.
    """
    policy_kind = kind_named(kind)
    return policy_kind is not None and not policy_kind.enforced


def _verdict(applied: list[AppliedFinding], notices: tuple[str, ...], used: tuple[str, ...]) -> Decision:
    present = {a.mode for a in applied}
    if Mode.ENFORCE in present:
        verdict = Verdict.DENIED
    elif Mode.WARN in present:
        verdict = Verdict.WARNED
    elif Mode.AUDIT in present:
        verdict = Verdict.AUDITED
    else:
        verdict = Verdict.ALLOWED
    return Decision(verdict=verdict, findings=tuple(applied), notices=notices, exceptions_used=used)


def invalid_object(path: str, problem: str) -> Decision:
    """A malformed object is denied with the field named, never a 500: the typed `failure` for callers, and an
    INVALID_OBJECT finding for the API server's message, the decision log and the metrics."""
    failure = Failure(INVALID_OBJECT, problem, path or "(object)")
    finding = Finding(rule=INVALID_OBJECT, path=failure.path, message=problem,
                      fix="correct the field so it matches the API schema", severity="high")
    return Decision(verdict=Verdict.DENIED, findings=(AppliedFinding(finding, Mode.ENFORCE, "schema"),),
                    failure=failure)


def unreadable_delete(path: str, problem: str) -> Decision:
    """Removing an object that cannot be read is never blocked; `failure` still says it was not judged."""
    return Decision(verdict=Verdict.ALLOWED, reason=f"old object unreadable: {path} {problem}",  # as ShapeError says it
                    failure=Failure(INVALID_OBJECT, problem, path or "(object)"))


def over_limit(path: str, problem: str, fix: str) -> Decision:
    """An object larger than the configured limits is denied before any work, with the limit named."""
    finding = Finding(rule=LIMITS, path=path or "(object)", message=problem, fix=fix, severity="high")
    return Decision(verdict=Verdict.DENIED, findings=(AppliedFinding(finding, Mode.ENFORCE, "limits"),),
                    reason=f"over a limit: {path or '(object)'}: {problem}")


def engine_failure(message: str, on_error: str, kind: str = "error", budget_seconds: float | None = None) -> Decision:
    """The answer when the guardrails could not be evaluated: denied (fail closed) or allowed with a warning.

    `kind` is timeout, unreachable, error or overloaded: the kind of the decision's `failure`; the reason says
    "engine <kind>: ..." for the decision log.
    """
    if kind == "timeout" and budget_seconds is not None:
        what, detail = f"guardrails could not be evaluated within {budget_seconds} s", f" ({message})"
    else:
        what, detail = f"guardrails could not be evaluated: {message}", ""
    if on_error == "allow":
        return Decision(verdict=Verdict.ERROR, reason=f"engine {kind}: {what}{detail}; allowed by fail-open",
                        failure=Failure(kind, f"{what}{detail}; allowed by fail-open", EVALUATION))
    failure = Failure(kind, f"{what}; failing closed", EVALUATION)
    finding = Finding(rule=ENGINE_ERROR, path=EVALUATION, message=failure.problem,
                      fix="retry; if it persists, contact the platform team (netguard fails closed)",
                      severity="high")
    return Decision(verdict=Verdict.DENIED, findings=(AppliedFinding(finding, Mode.ENFORCE, "fail-closed"),),
                    reason=f"engine {kind}: {message}; failing closed", failure=failure)
