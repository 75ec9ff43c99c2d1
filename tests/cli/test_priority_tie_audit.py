"""`no-priority-tie` offline: `netguard audit` gives the guardrail the policies it audits, `netguard check` gives it
no cluster (a folder is a partial view) and it stays silent there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook.cli import main

ANP = """apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: {name}}}
spec:
  priority: {priority}
  subject: {{namespaces: {{}}}}
  ingress:
    - name: from-sandbox
      action: Deny
      from: [{{namespaces: {{matchLabels: {{env: sandbox}}}}}}]
"""


def _write(folder: Path, **priorities: int) -> Path:
    for name, priority in priorities.items():
        (folder / f"{name}.yaml").write_text(ANP.format(name=name, priority=priority), encoding="utf-8")
    return folder


def _findings(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[str, str]]:
    main(list(argv))
    report = json.loads(capsys.readouterr().out)
    if "findings" in report:
        return sorted((f["name"], f["rule"]) for f in report["findings"] if f["rule"] == "no-priority-tie")
    return sorted((r["name"], f["rule"]) for r in report["results"] for f in r["findings"]
                  if f["rule"] == "no-priority-tie")


def test_the_audit_warns_both_policies_of_a_tie(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path, first=10, second=10, third=20)
    assert _findings(capsys, "audit", "--from", str(folder), "--format", "json") == [
        ("first", "no-priority-tie"), ("second", "no-priority-tie")]


def test_check_without_a_cluster_says_nothing_about_ties(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path, first=10, second=10)
    assert _findings(capsys, "check", str(folder), "--format", "json") == []
