"""The generated entry point (data.netguard.static.findings, what regorus evaluates) answers exactly what the
catalog's documented one (data.netguard.findings in policies/lib/netguard.rego, what OPA evaluates) answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from webhook.core.facts import FactParams, enrich
from webhook.core.guardrails import PolicySet, static_findings_module
from webhook.core.normalize import normalize
from webhook.engine.engines import FINDINGS_RULE, STATIC_FINDINGS_RULE, RegorusEngine
from webhook.offline.samples import sample_files

CATALOG = Path(__file__).resolve().parents[2] / "policies"


def _samples(policies: PolicySet) -> list[Path]:
    return [s for g in policies.guardrails for which in ("good", "bad") for s in sample_files(g, which)]


def test_every_sample_gets_the_same_findings_from_both_entry_points(policies: PolicySet) -> None:
    engine = RegorusEngine(policies)
    everything = [g.package_name for g in policies.guardrails]
    seen_findings = 0
    try:
        for sample in _samples(policies):
            obj = yaml.safe_load(sample.read_text(encoding="utf-8"))
            policy = {"policy": enrich(normalize(obj), FactParams()).to_input()}
            # all guardrails, none, and a subset (the modes leave some out of input.rules)
            for rules in (everything, [], everything[::3]):
                doc = {**policy, "rules": rules, "parameters": {}}
                static = engine.eval_rule(STATIC_FINDINGS_RULE, doc)
                assert static == engine.eval_rule(FINDINGS_RULE, doc), f"{sample} with rules {rules}"
                assert set(static or {}) <= set(rules)
                seen_findings += sum(len(v) for v in (static or {}).values())
    finally:
        engine.close()
    assert seen_findings > 50, "the bad samples must exercise the entry points"


def test_the_generated_module_names_every_guardrail_once(policies: PolicySet) -> None:
    text = static_findings_module(policies).text
    for g in policies.guardrails:
        assert text.count(f"data.guardrails.{g.package_name}.violation") == 1


@pytest.mark.parametrize("rules", [["no_such_guardrail"], ["no_allow_all_egress", "no_such_guardrail"]])
def test_an_unknown_package_in_rules_is_ignored(policies: PolicySet, rules: list[str]) -> None:
    """The pipeline only names catalog packages; should another name slip in, the known ones still report
    (regorus's dynamic form then answers nothing at all, hence the comparison with the known names only)."""
    engine = RegorusEngine(policies)
    try:
        sample = sorted((CATALOG / "no-allow-all-egress" / "samples" / "bad").glob("*.yaml"))[0]
        doc = {"rules": rules,
               "policy": enrich(normalize(yaml.safe_load(sample.read_text())), FactParams()).to_input()}
        known = [r for r in rules if r != "no_such_guardrail"]
        assert engine.eval_rule(STATIC_FINDINGS_RULE, doc) == engine.eval_rule(FINDINGS_RULE, {**doc, "rules": known})
    finally:
        engine.close()
