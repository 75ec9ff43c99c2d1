"""Every sample manifest behaves as its folder says, on both engines, with identical findings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.policies.conftest import POLICIES, SETTINGS, copy_catalog
from webhook.core.model import Decision, Verdict
from webhook.engine.policies import load_policy_set
from webhook.offline.regotest import run_sample_checks
from webhook.offline.samples import sample_cluster, sample_files, sample_request
from webhook.pipeline import Pipeline, build_pipeline

CATALOG = load_policy_set(POLICIES)
SAMPLES = [(g.id, which, path) for g in CATALOG.guardrails for which in ("good", "bad")
           for path in sample_files(g, which)]
IDS = [f"{rule}/{which}/{path.name}" for rule, which, path in SAMPLES]
ENGINES = ("regorus", "opa")


@pytest.fixture
def pipelines(embedded_pipeline: Pipeline, opa_pipeline: Pipeline) -> dict[str, Pipeline]:
    return {"regorus": embedded_pipeline, "opa": opa_pipeline}


def review(pipeline: Pipeline, path: Path) -> Decision:
    decision = pipeline.review(sample_request(path), snapshot=sample_cluster(path)).decision
    assert decision.verdict not in (Verdict.SKIPPED, Verdict.ERROR), decision.reason
    assert not {f.finding.rule for f in decision.findings} & {"engine-error", "invalid-object"}, decision
    return decision


def test_samples_were_found() -> None:
    assert SAMPLES
    for guardrail in CATALOG.guardrails:
        assert {which for rule, which, _ in SAMPLES if rule == guardrail.id} == {"good", "bad"}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("rule", "which", "path"), SAMPLES, ids=IDS)
def test_sample(pipelines: dict[str, Pipeline], engine: str, rule: str, which: str, path: Path) -> None:
    decision = review(pipelines[engine], path)
    own = [f.finding for f in decision.findings if f.finding.rule == rule]
    if which == "bad":
        assert own, f"{path}: {rule} did not fire on {engine}"
        assert all(f.path and f.message for f in own)
    else:
        assert not own, f"{path}: {rule} fired on {engine}: {own}"


@pytest.mark.parametrize(("rule", "which", "path"), SAMPLES, ids=IDS)
def test_engines_agree(pipelines: dict[str, Pipeline], rule: str, which: str, path: Path) -> None:
    del rule, which
    found = {}
    for engine in ENGINES:
        decision = review(pipelines[engine], path)
        found[engine] = {(f.finding.rule, f.finding.path, f.finding.message, f.finding.fix) for f in decision.findings}
    assert found["regorus"] == found["opa"]


@pytest.mark.parametrize("engine", ENGINES)
def test_run_sample_checks_passes_on_the_catalog(pipelines: dict[str, Pipeline], engine: str) -> None:
    results = run_sample_checks(pipelines[engine])
    assert [(r.guardrail, r.expected, r.sample) for r in results] == SAMPLES
    assert [r for r in results if not r.passed] == []


def test_run_sample_checks_reports_misfiled_samples(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    guardrail = load_policy_set(root).get("no-allow-all-egress")
    bad, good = sample_files(guardrail, "bad")[0], sample_files(guardrail, "good")[0]
    bad.rename(guardrail.folder / "samples" / "good" / f"misfiled-{bad.name}")
    good.rename(guardrail.folder / "samples" / "bad" / f"misfiled-{good.name}")

    results = run_sample_checks(build_pipeline(replace(SETTINGS, policies_dir=str(root))))
    failed = {(r.expected, r.sample.name): r for r in results if not r.passed}
    assert set(failed) == {("good", f"misfiled-{bad.name}"), ("bad", f"misfiled-{good.name}")}
    assert "expected no" in failed[("good", f"misfiled-{bad.name}")].error
    assert "got none" in failed[("bad", f"misfiled-{good.name}")].error


def test_run_sample_checks_reports_unreviewable_samples(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    guardrail = load_policy_set(root).get("no-allow-all-egress")
    good = guardrail.folder / "samples" / "good"
    (good / "zz-excluded-namespace.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: x, namespace: kube-system}\nspec: {podSelector: {}}\n", encoding="utf-8")
    (good / "zz-invalid.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: x, namespace: a}\nspec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: nope}}]}]}\n",
        encoding="utf-8")
    (good / "zz-list.yaml").write_text("- not a manifest\n", encoding="utf-8")

    results = run_sample_checks(build_pipeline(replace(SETTINGS, policies_dir=str(root))))
    failed = {r.sample.name: r.error for r in results if not r.passed}
    assert set(failed) == {"zz-excluded-namespace.yaml", "zz-invalid.yaml", "zz-list.yaml"}
    assert "skipped" in failed["zz-excluded-namespace.yaml"]
    assert "invalid-object" in failed["zz-invalid.yaml"]
    assert "mapping" in failed["zz-list.yaml"]
