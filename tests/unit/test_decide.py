"""Modes turn findings into a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webhook.config import from_mapping
from webhook.core.decide import ModeContext, apply_modes, engine_failure, invalid_object, unreadable_delete
from webhook.core.model import INVALID_OBJECT, Decision, Failure, Finding, Mode, Verdict
from webhook.engine.policies import load_policy_set

REPO = Path(__file__).resolve().parents[2]
POLICIES = load_policy_set(REPO / "policies")
F = Finding("no-allow-all-egress", "spec.egress[0]", "m")  # enforce by default
W = Finding("no-wide-port-range", "spec.egress[0].ports[0]", "m")  # warn by default


def decided(findings: list[Finding], config: dict[str, Any] | None = None) -> Decision:
    return apply_modes(findings, POLICIES, from_mapping(config or {}), ModeContext())


def test_any_enforced_finding_denies() -> None:
    decision = decided([F, W])
    assert decision.verdict is Verdict.DENIED and not decision.allowed
    assert [(f.finding.rule, f.mode) for f in decision.findings] == [
        ("no-allow-all-egress", Mode.ENFORCE), ("no-wide-port-range", Mode.WARN)]


def test_warn_and_audit_allow() -> None:
    def with_mode(mode: str) -> Verdict:
        return decided([F], {"rules": {"no-allow-all-egress": {"mode": mode}}}).verdict

    assert with_mode("warn") is Verdict.WARNED
    assert with_mode("audit") is Verdict.AUDITED
    assert with_mode("off") is Verdict.ALLOWED


def test_dry_run_turns_enforce_into_warn_and_says_so() -> None:
    def mode(config: dict[str, Any]) -> tuple[Mode, str]:
        applied = decided([F], config).findings[0]
        return applied.mode, applied.reason

    assert mode({}) == (Mode.ENFORCE, "default")
    assert mode({"dry_run": True}) == (Mode.WARN, "dry-run")
    assert mode({"rules": {"no-allow-all-egress": {"mode": "audit"}}}) == (Mode.AUDIT, "config")


def test_engine_failures_fail_closed_or_open_as_configured() -> None:
    closed = engine_failure("OPA unreachable", "deny")
    assert closed.verdict is Verdict.DENIED and "OPA unreachable" in closed.findings[0].finding.message
    opened = engine_failure("OPA unreachable", "allow")
    assert opened.allowed and "fail-open" in opened.reason


def test_an_evaluation_over_the_budget_names_the_budget_and_the_failure_policy() -> None:
    closed = engine_failure("regorus was still evaluating at the deadline", "deny", "timeout", 2.0)
    assert closed.verdict is Verdict.DENIED
    assert closed.findings[0].finding.message == "guardrails could not be evaluated within 2.0 s; failing closed"
    assert closed.reason == "engine timeout: regorus was still evaluating at the deadline; failing closed"
    opened = engine_failure("regorus was still evaluating at the deadline", "allow", "timeout", 2.0)
    assert opened.verdict is Verdict.ERROR and opened.allowed
    assert opened.reason == ("engine timeout: guardrails could not be evaluated within 2.0 s (regorus was still "
                             "evaluating at the deadline); allowed by fail-open")


def test_the_failure_kind_is_a_typed_field_for_the_metrics() -> None:
    for kind in ("timeout", "unreachable", "error", "overloaded"):
        closed, opened = engine_failure("x", "deny", kind, 1.0), engine_failure("x", "allow", kind, 1.0)
        assert closed.failure is not None and opened.failure is not None
        assert (closed.failure.kind, opened.failure.kind) == (kind, kind)
        assert closed.failure.transient and opened.failure.transient  # about the moment: never cached
        assert (closed.failure.path, closed.failure.problem) == ("(evaluation)", closed.findings[0].finding.message)
    assert decided([]).failure is None
    denied = decided([F])
    assert denied.verdict is Verdict.DENIED and denied.failure is None


def test_an_invalid_object_is_a_typed_failure_with_its_field() -> None:
    denied = invalid_object("spec.podSelector", "must be an object, got number")
    assert denied.verdict is Verdict.DENIED
    assert denied.failure == Failure(INVALID_OBJECT, "must be an object, got number", "spec.podSelector")
    assert not denied.failure.transient  # about the object: the same object is denied again
    # The API server's message, the decision log and the metrics still name the pseudo-rule.
    assert [(f.finding.rule, f.finding.path, f.mode) for f in denied.findings] == [
        ("invalid-object", "spec.podSelector", Mode.ENFORCE)]
    assert invalid_object("", "must be an object").failure == Failure(INVALID_OBJECT, "must be an object", "(object)")
    removed = unreadable_delete("spec", "must be an object, got string")
    assert removed.allowed and removed.reason == "old object unreadable: spec must be an object, got string"
    assert removed.failure == Failure(INVALID_OBJECT, "must be an object, got string", "spec")
