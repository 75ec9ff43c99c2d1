"""The engine input carries the raw object only when a rule reads it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from webhook.config import from_mapping
from webhook.core.admission import parse_review
from webhook.core.guardrails import RegoModule
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.pipeline import build_pipeline

REPO = Path(__file__).resolve().parents[2]
POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "a", "namespace": "b"},
          "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]}}


def test_the_catalog_reads_no_raw_object_so_the_input_leaves_it_out() -> None:
    pipeline = build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))
    assert pipeline.policies.reads_raw_object is False
    document = pipeline.document(parse_review(make_review(POLICY)), normalize(POLICY), None, [])
    assert "object" not in document and "old_object" not in document
    assert "policy" in document


def test_a_module_that_reads_input_object_gets_it() -> None:
    pipeline = build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))
    for text in ('x := input.object.metadata.name', 'y := object.get(input, ["old_object"], null)',
                 'z := [p | walk(input, p)]'):
        module = RegoModule(path=REPO / "policies" / "custom" / "rule.rego", text=text, package="custom")
        policies = replace(pipeline.policies, library=(*pipeline.policies.library, module))
        assert policies.reads_raw_object, text
        document = replace(pipeline, policies=policies).document(
            parse_review(make_review(POLICY)), normalize(POLICY), None, [])
        assert document["object"] == POLICY and json.dumps(document)


def test_input_json_keeps_every_value_the_standard_library_would_write() -> None:
    """orjson, with json for what it refuses: the engine reads the same document either way."""
    from webhook.engine.engines import input_json

    doc = {"a": [1, 2.5, True, None, "é\u2028"], "t": (1, 2), "big": 2**70, "nested": {"k": {"v": -0.0}}}
    assert json.loads(input_json(doc)) == json.loads(json.dumps(doc))
    assert json.loads(input_json({k: v for k, v in doc.items() if k != "big"})) == {
        k: v for k, v in json.loads(json.dumps(doc)).items() if k != "big"}
