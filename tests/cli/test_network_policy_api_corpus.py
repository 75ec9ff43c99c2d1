"""`netguard check` and `netguard audit` over upstream network-policy-api examples (tests/corpus/network-policy-api,
Apache-2.0, see its README): they are read as ClusterNetworkPolicies, only the platform team may apply them, and
the Baseline-tier deny-all is the cluster's default deny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "network-policy-api"
FILES = ("deny-with-ports.yaml", "user-story-1.yaml", "user-story-2.yaml", "user-story-5.yaml")


def check(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, list[str]]:
    """Rule ids found per file."""
    main(["check", str(CORPUS), "--format", "json", *extra])
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == []
    assert all(r["kind"] == "ClusterNetworkPolicy" for r in report["results"])
    return {Path(r["source"]).name: sorted(f["rule"] for f in r["findings"]) for r in report["results"]}


def test_a_team_member_may_apply_none_of_them(capsys: pytest.CaptureFixture[str]) -> None:
    found = check(capsys, "--user", "alice", "--group", "team-a")
    assert set(found) == set(FILES)
    for name in FILES:
        expected = ["cluster-scoped-policy-restricted"]
        if name == "user-story-5.yaml":  # tier: Baseline, the cluster's baseline
            expected.append("protect-baseline")
        assert found[name] == expected, name


def test_the_platform_team_applies_them_without_findings(capsys: pytest.CaptureFixture[str]) -> None:
    # Deny rules from every namespace (user stories 1 and 5) open nothing; user story 2 accepts named peers only.
    found = check(capsys, "--user", "platform-admin", "--group", "system:masters")
    assert found == {name: [] for name in FILES}


def test_the_baseline_tier_deny_all_is_every_namespace_s_ingress_default_deny(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespaces = tmp_path / "namespaces.yaml"
    namespaces.write_text("".join(f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n"
                                  for n in ("team-a", "sensitive-ns")), encoding="utf-8")
    main(["audit", "--from", str(namespaces), "--from", str(CORPUS / "user-story-5.yaml"), "--format", "json"])
    posture = json.loads(capsys.readouterr().out)["posture"]
    assert posture["no_default_deny_ingress"]["namespaces"] == []
    assert posture["no_default_deny_egress"]["namespaces"] == ["sensitive-ns", "team-a"]
