"""netguard's public pipeline, built once, and a helper that reads which guardrails fired."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from webhook.core.admission import parse_review
from webhook.core.model import Verdict
from webhook.core.reviews import make_review
from webhook.core.settings import Settings
from webhook.pipeline import Pipeline, build_pipeline

ROOT = Path(__file__).resolve().parents[2]
INVALID = "invalid-object"


@dataclass(frozen=True)
class Verdicts:
    """What netguard said about one manifest: (guardrail id, finding path) pairs, or invalid."""

    findings: frozenset[tuple[str, str]]
    invalid: bool
    verdict: Verdict

    @property
    def rules(self) -> frozenset[str]:
        return frozenset(rule for rule, _ in self.findings)

    def paths(self, rule: str) -> list[str]:
        return sorted(path for r, path in self.findings if r == rule)


@functools.cache
def pipeline() -> Pipeline:
    """The embedded regorus engine on the real catalog (the CLI's setup), built once per session."""
    return build_pipeline(Settings(policies_dir=str(ROOT / "policies")))


def judge(manifest: Mapping[str, Any]) -> Verdicts:
    """netguard's verdict on a CREATE by an ordinary team member (not the platform)."""
    decision = pipeline().review(parse_review(make_review(manifest, username="alice",
                                                          groups=("system:authenticated",)))).decision
    assert decision.verdict is not Verdict.ERROR, f"netguard errored: {decision.reason}"
    rules = {(f.finding.rule, f.finding.path) for f in decision.findings}
    assert "engine-error" not in {r for r, _ in rules}, decision
    return Verdicts(frozenset(rules), INVALID in {r for r, _ in rules}, decision.verdict)


@pytest.fixture(scope="session")
def netguard() -> Pipeline:
    return pipeline()
