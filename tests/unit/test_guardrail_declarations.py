"""Guardrails declare what Python computes for them (policy.yaml `facts`, `cluster_view`): no id in Python."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from webhook.config import from_mapping
from webhook.core.facts import FactParams
from webhook.engine.policies import PolicyLoadError, load_policy_set, resolve_parameters
from webhook.pipeline import fact_params

REPO = Path(__file__).resolve().parents[2]


def test_configured_parameters_reach_the_facts_they_are_declared_for() -> None:
    policies = load_policy_set(REPO / "policies")
    settings = from_mapping({"rules": {
        "no-metadata-egress": {"parameters": {"addresses": ["100.100.100.200"], "ports": [80, 8080]}},
        "no-internet-egress-without-ports": {"parameters": {"port_coverage": 0.5}},
    }})
    params = fact_params(policies, resolve_parameters(policies, settings))
    assert params.metadata_ips == ("100.100.100.200",) and params.metadata_ports == (80, 8080)
    assert params.port_coverage == 0.5 and params.internet_coverage == FactParams().internet_coverage


def test_the_catalog_declares_its_cluster_view_guardrails() -> None:
    policies = load_policy_set(REPO / "policies")
    assert {g.id: g.cluster_view for g in policies.guardrails if g.cluster_view} == {
        "namespace-has-default-deny": "default-deny status unknown", "no-priority-tie": "priority ties unknown"}


def test_an_unknown_fact_is_a_load_error_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root)
    meta = root / "no-metadata-egress" / "policy.yaml"
    meta.write_text(meta.read_text().replace("  metadata_ports: ports\n", "  metadata_port: ports\n"))
    policies = load_policy_set(root)
    with pytest.raises(PolicyLoadError, match=r"no-metadata-egress/policy.yaml: facts: 'metadata_port'"):
        fact_params(policies, resolve_parameters(policies, from_mapping({})))
