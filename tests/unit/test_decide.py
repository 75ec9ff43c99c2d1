"""Modes turn findings into a verdict."""

from __future__ import annotations

from pathlib import Path

from webhook.config import from_mapping
from webhook.decide import decide, engine_failure, resolve_mode
from webhook.model import Finding, Mode, Verdict
from webhook.policies import load_policy_set

REPO = Path(__file__).resolve().parents[2]
F = Finding("no-allow-all-egress", "spec.egress[0]", "m")


def test_any_enforced_finding_denies() -> None:
    decision = decide([F, Finding("other", "p", "m")], {"no-allow-all-egress": (Mode.ENFORCE, "default"),
                                                        "other": (Mode.WARN, "config")})
    assert decision.verdict is Verdict.DENIED and not decision.allowed


def test_warn_and_audit_allow() -> None:
    assert decide([F], {F.rule: (Mode.WARN, "config")}).verdict is Verdict.WARNED
    assert decide([F], {F.rule: (Mode.AUDIT, "config")}).verdict is Verdict.AUDITED
    assert decide([F], {F.rule: (Mode.OFF, "config")}).verdict is Verdict.ALLOWED


def test_dry_run_turns_enforce_into_warn_and_says_so() -> None:
    guardrail = load_policy_set(REPO / "policies").get("no-allow-all-egress")
    assert resolve_mode(guardrail, from_mapping({})) == (Mode.ENFORCE, "default")
    assert resolve_mode(guardrail, from_mapping({"dry_run": True})) == (Mode.WARN, "dry-run")
    assert resolve_mode(guardrail, from_mapping({"rules": {"no-allow-all-egress": {"mode": "audit"}}})) == (
        Mode.AUDIT, "config")


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
        assert engine_failure("x", "deny", kind, 1.0).failure == kind
        assert engine_failure("x", "allow", kind, 1.0).failure == kind
    assert decide([], {}).failure is None
    modes = {"no-allow-all-egress": (Mode.ENFORCE, "default")}
    denied = decide([Finding(rule="no-allow-all-egress", path="spec", message="m", fix="f", severity="high")], modes)
    assert denied.verdict is Verdict.DENIED and denied.failure is None
