"""OpaEngine over HTTP, against the stand-in OPA server: push, evaluate, and every failure mode.

The stand-in (tests/opa_standin.py) implements OPA's REST API over regorus because no OPA
binary can run here; these tests cover netguard's client side of that API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.opa_standin import OpaStandIn
from tests.policies.conftest import SETTINGS, copy_catalog, opa_settings
from webhook.core.admission import parse_review
from webhook.core.facts import FactParams, enrich
from webhook.core.guardrails import PolicySet
from webhook.core.model import Verdict
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.core.settings import EngineSettings
from webhook.engine.engines import EngineError, OpaEngine, RegorusEngine
from webhook.engine.policies import load_policy_set
from webhook.offline.samples import sample_files
from webhook.pipeline import build_pipeline

# Loose bound for "fails fast": far below the injected delay, far above the timeout.
FAST = 5.0
HTTP = 5.0


@pytest.fixture
def engine(policies: PolicySet, standin: OpaStandIn) -> Iterator[OpaEngine]:
    opa = OpaEngine(policies, opa_settings(standin, timeout=0.5))
    yield opa
    opa.close()


def document(policies: PolicySet, sample: Path) -> dict[str, Any]:
    """The parts of the pipeline's input document the guardrails read."""
    obj = yaml.safe_load(sample.read_text(encoding="utf-8"))
    return {"rules": [g.package_name for g in policies.guardrails],
            "policy": enrich(normalize(obj), FactParams()).to_input()}


def test_push_uploads_every_module_but_the_tests(policies: PolicySet, standin: OpaStandIn,
                                                 engine: OpaEngine) -> None:
    listed = requests.get(f"{standin.url}/v1/policies", timeout=HTTP).json()["result"]
    assert {p["id"]: p["raw"] for p in listed} == {f"netguard/{m.module_id}": m.text for m in policies.modules}
    assert not any(p["id"].endswith("_test") for p in listed)


def test_evaluate_matches_the_embedded_engine(policies: PolicySet, engine: OpaEngine) -> None:
    embedded = RegorusEngine(policies)
    guardrail = policies.get("no-allow-all-egress")
    doc = document(policies, sample_files(guardrail, "bad")[0])

    found = engine.evaluate(doc)
    assert found[guardrail.package_name], "the bad sample must produce a violation over HTTP too"
    assert found == embedded.evaluate(doc)
    assert engine.evaluate({**doc, "rules": []}) == {}


def test_evaluation_goes_to_the_findings_document(standin: OpaStandIn, engine: OpaEngine) -> None:
    standin.requests.clear()
    engine.evaluate({"rules": []})
    assert standin.requests == [("POST", "/v1/data/netguard/findings")]


def test_slow_opa_is_an_engine_error_within_the_timeout(standin: OpaStandIn, engine: OpaEngine) -> None:
    standin.delay_seconds = 30
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"(?i)timeout|timed out") as excinfo:
        engine.evaluate({"rules": []})
    assert time.monotonic() - started < FAST
    assert excinfo.value.reason == "timeout"


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_opa_error_status_is_an_engine_error(standin: OpaStandIn, engine: OpaEngine, status: int) -> None:
    standin.fail_status = status
    started = time.monotonic()
    with pytest.raises(EngineError, match=str(status)):
        engine.evaluate({"rules": []})
    assert time.monotonic() - started < FAST  # no retries, no back-off


def test_stopped_opa_is_an_engine_error(standin: OpaStandIn, engine: OpaEngine) -> None:
    standin.stop()
    started = time.monotonic()
    with pytest.raises(EngineError, match="ConnectionError") as excinfo:
        engine.evaluate({"rules": []})
    assert time.monotonic() - started < FAST
    assert excinfo.value.reason == "unreachable"


def test_the_http_timeout_is_cut_to_the_budget_and_to_the_deadline(policies: PolicySet, standin: OpaStandIn) -> None:
    opa = OpaEngine(policies, opa_settings(standin, timeout=5), budget_seconds=0.3)  # 0.3 s, not 5 s
    try:
        standin.delay_seconds = 30
        for deadline in (None, time.monotonic() + 0.2):
            started = time.monotonic()
            with pytest.raises(EngineError) as excinfo:
                opa.evaluate({"rules": []}, deadline)
            assert excinfo.value.reason == "timeout"
            assert time.monotonic() - started < 0.3 + 0.5
        with pytest.raises(EngineError, match="no time left") as excinfo:
            opa.evaluate({"rules": []}, time.monotonic() - 1)
        assert excinfo.value.reason == "timeout"
    finally:
        opa.close()


def test_unreachable_opa_stops_start_up(policies: PolicySet) -> None:
    with OpaStandIn() as server:
        settings = opa_settings(server, timeout=0.5)
    with pytest.raises(EngineError) as excinfo:
        OpaEngine(policies, settings)
    assert str(policies.modules[0].path) in str(excinfo.value)


def test_pushing_a_broken_module_names_the_file(tmp_path: Path, standin: OpaStandIn) -> None:
    root = copy_catalog(tmp_path)
    rule = load_policy_set(root).guardrails[0].folder / "rule.rego"
    rule.write_text(rule.read_text(encoding="utf-8") + "\nbroken if {\n\tx := \n}\n", encoding="utf-8")
    policies = load_policy_set(root)

    with pytest.raises(EngineError) as excinfo:
        OpaEngine(policies, opa_settings(standin))
    assert str(rule) in str(excinfo.value)
    assert "parsing" in str(excinfo.value)  # OPA's error detail is passed on
    broken_id = next(f"netguard/{m.module_id}" for m in policies.modules if m.path == rule)
    assert broken_id not in standin.modules  # a rejected module is not stored


def test_opa_without_the_policies_is_an_engine_error(policies: PolicySet, standin: OpaStandIn) -> None:
    opa = OpaEngine(policies, replace(opa_settings(standin), push_policies=False))
    try:
        with pytest.raises(EngineError):
            opa.evaluate({"rules": [g.package_name for g in policies.guardrails]})
    finally:
        opa.close()


@pytest.mark.parametrize(("on_error", "verdict"), [("deny", Verdict.DENIED), ("allow", Verdict.ERROR)])
def test_pipeline_applies_the_failure_policy(policies: PolicySet, standin: OpaStandIn, on_error: str,
                                             verdict: Verdict) -> None:
    settings = replace(SETTINGS, engine=EngineSettings(type="opa", on_error=on_error,
                                                       opa=opa_settings(standin, timeout=0.5)))
    opa = OpaEngine(policies, settings.engine.opa)
    try:
        pipeline = build_pipeline(settings, engine=opa)
        standin.delay_seconds = 30
        good = sample_files(policies.get("no-allow-all-egress"), "good")[0]
        sample = yaml.safe_load(good.read_text(encoding="utf-8"))
        started = time.monotonic()
        decision = pipeline.review(parse_review(make_review(sample))).decision
        assert time.monotonic() - started < FAST
    finally:
        opa.close()
    assert decision.verdict is verdict
    if on_error == "deny":
        assert [f.finding.rule for f in decision.findings] == ["engine-error"]


# -- the stand-in itself answers like OPA where netguard depends on it ----------------------


def test_standin_data_api_shapes(standin: OpaStandIn) -> None:
    module = "package demo\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.ok\n"
    assert requests.put(f"{standin.url}/v1/policies/demo", data=module, timeout=HTTP).json() == {}

    def data(path: str, body: Any) -> dict[str, Any]:
        response = requests.post(f"{standin.url}/v1/data/{path}", json=body, timeout=HTTP)
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        return result

    assert data("demo/allow", {"input": {"ok": True}}) == {"result": True}
    assert data("demo/allow", {"input": {}}) == {"result": False}  # false is a value, not undefined
    assert data("demo/missing", {"input": {}}) == {}  # undefined: no "result" key
    assert data("demo", {"input": {"ok": True}}) == {"result": {"allow": True}}
    assert requests.get(f"{standin.url}/health", timeout=HTTP).status_code == 200
    assert requests.delete(f"{standin.url}/v1/policies/demo", timeout=HTTP).status_code == 200
    assert requests.get(f"{standin.url}/v1/policies", timeout=HTTP).json() == {"result": []}
    assert requests.delete(f"{standin.url}/v1/policies/demo", timeout=HTTP).status_code == 404


def test_standin_compile_error_shape(standin: OpaStandIn) -> None:
    response = requests.put(f"{standin.url}/v1/policies/bad", data="package bad\n\nx if {\n\ty := \n}\n",
                            timeout=HTTP)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_parameter"
    assert body["message"]
    [error] = body["errors"]
    assert error["location"]["file"] == "bad"
    assert error["location"]["row"] == 4
    assert standin.modules == {}
