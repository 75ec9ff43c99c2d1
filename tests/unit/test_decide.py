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
