"""`netguard check` over Calico's documentation examples (tests/corpus/calico, Apache-2.0, see its README): the
reference samples' bare `egress: [{action: Allow}]` opens every destination, a GlobalNetworkPolicy is the
platform team's, its peer selector reaches every namespace, and selector peers carry the network-set notice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "calico"
OPEN_EGRESS = ["no-allow-all-egress", "no-internet-egress-without-ports", "no-metadata-egress"]


def check(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, Any]]:
    main(["check", str(CORPUS), "--format", "json", *extra])
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == []
    return {Path(r["source"]).name: r for r in report["results"]}


def rules(result: dict[str, Any]) -> list[str]:
    return sorted(f["rule"] for f in result["findings"])


def test_what_check_says_of_each_example(capsys: pytest.CaptureFixture[str]) -> None:
    found = check(capsys, "--user", "alice", "--group", "team-a")
    assert set(found) == {"networkpolicy-reference-sample.yaml", "service-policy-api-access.yaml",
                          "globalnetworkpolicy-reference-sample.yaml"}
    namespaced = found["networkpolicy-reference-sample.yaml"]
    assert rules(namespaced) == OPEN_EGRESS
    assert {f["path"] for f in namespaced["findings"]} == {"spec.egress[0]"}
    # The ingress rule's source selector also matches NetworkSets of the namespace: said, not silently passed.
    assert any(n.startswith("spec.ingress[0].source.selector: Calico NetworkSets whose labels match")
               for n in namespaced["notices"])
    assert rules(found["service-policy-api-access.yaml"]) == []  # one named Service
    cluster = found["globalnetworkpolicy-reference-sample.yaml"]
    assert rules(cluster) == sorted(["cluster-scoped-policy-restricted", "no-all-namespaces-peer", *OPEN_EGRESS])
    peer = next(f for f in cluster["findings"] if f["rule"] == "no-all-namespaces-peer")
    assert peer["path"] == "spec.ingress[0].source.selector" and "role=frontend in every namespace" in peer["message"]


def test_the_platform_team_may_apply_the_global_policy(capsys: pytest.CaptureFixture[str]) -> None:
    found = check(capsys, "--user", "platform-admin", "--group", "system:masters")
    assert "cluster-scoped-policy-restricted" not in rules(found["globalnetworkpolicy-reference-sample.yaml"])
