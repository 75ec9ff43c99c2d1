"""`netguard audit --from DIR` reads the folder as the cluster: CiliumCIDRGroups and Calico (Global)NetworkSets in it
are the ones that exist, so rules naming them are judged on their addresses; a folder with none of a family leaves
such rules "not judged", said in every audit format (never silence). A staged policy opens nothing, so it is in no
exposure figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook.cli import main

CALICO_POLICY = """apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-partners, namespace: team-a}
spec:
  selector: app == 'web'
  types: [Egress]
  egress:
    - action: Allow
      destination: {selector: role == 'partner'}
"""

NETWORK_SET = """apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {{name: partners, namespace: team-a, labels: {{role: partner}}}}
spec: {{nets: [{nets}]}}
"""

CILIUM_POLICY = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-vpn, namespace: team-b}
spec:
  endpointSelector: {matchLabels: {app: api}}
  egress:
    - toCIDRSet: [{cidrGroupRef: partner-vpn}]
"""

CIDR_GROUP = """apiVersion: cilium.io/v2
kind: CiliumCIDRGroup
metadata: {{name: {name}}}
spec: {{externalCIDRs: [{cidrs}]}}
"""


def _audit(capsys: pytest.CaptureFixture[str], folder: Path, fmt: str = "json") -> Any:
    main(["audit", "--from", str(folder), "--format", fmt])
    out = capsys.readouterr().out
    return json.loads(out) if fmt == "json" else out


def _write(folder: Path, **files: str) -> Path:
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def _rules(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The findings about the rules (not the namespace's missing default deny, which every folder here has)."""
    return sorted((f["name"], f["rule"], f["path"]) for f in report["findings"]
                  if f["rule"] != "namespace-has-default-deny")


def _listed(report: dict[str, Any], figure: str) -> list[str]:
    return [p["name"] for p in report["posture"][figure]["policies"]]


def test_a_network_set_in_the_folder_is_judged_on_its_nets(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    report = _audit(capsys, _write(tmp_path, policy=CALICO_POLICY, netset=NETWORK_SET.format(nets="0.0.0.0/0")))
    assert ("to-partners", "no-internet-egress-without-ports", "spec.egress[0]") in _rules(report)
    internet = next(f for f in report["findings"] if f["rule"] == "no-internet-egress-without-ports")
    assert "from Calico NetworkSet team-a/partners" in internet["message"]
    assert report["notices"] == []
    assert _listed(report, "internet_egress_all_ports") == ["to-partners"]


def test_a_narrow_network_set_passes_and_is_not_a_notice(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    report = _audit(capsys, _write(tmp_path, policy=CALICO_POLICY, netset=NETWORK_SET.format(nets="198.51.100.7/32")))
    assert _rules(report) == []
    assert report["notices"] == []


def test_without_network_sets_in_the_folder_the_rule_is_said_not_judged_in_every_format(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path, policy=CALICO_POLICY)
    report = _audit(capsys, folder)
    assert _rules(report) == []
    assert report["summary"]["notices"] == 1
    [notice] = report["notices"]
    assert (notice["kind"], notice["namespace"], notice["name"]) == (
        "NetworkPolicy.projectcalico.org", "team-a", "to-partners")
    assert notice["text"].startswith("spec.egress[0].destination.selector: Calico NetworkSets whose labels match")
    markdown = _audit(capsys, folder, "markdown")
    assert "## Not judged" in markdown and "role == 'partner'" in markdown
    html = _audit(capsys, folder, "html")
    assert "<h2>Not judged</h2>" in html and "role == &#x27;partner&#x27;" in html


def test_a_cidr_group_in_the_folder_is_judged_and_a_missing_one_allows_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = _audit(capsys, _write(tmp_path, policy=CILIUM_POLICY,
                                 group=CIDR_GROUP.format(name="partner-vpn", cidrs="0.0.0.0/0")))
    assert ("to-vpn", "no-internet-egress-without-ports", "spec.egress[0]") in _rules(wide)
    assert wide["notices"] == []
    # The folder holds CIDR groups, but not this one: the reference names no group, so it allows nothing.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = _audit(capsys, _write(elsewhere, policy=CILIUM_POLICY,
                                  group=CIDR_GROUP.format(name="other", cidrs="0.0.0.0/0")))
    assert _rules(other) == [] and other["notices"] == []


def test_without_cidr_groups_in_the_folder_the_reference_is_not_judged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _audit(capsys, _write(tmp_path, policy=CILIUM_POLICY))
    assert _rules(report) == []
    assert [n["name"] for n in report["notices"]] == ["to-vpn"]
    assert "CiliumCIDRGroup partner-vpn cannot be judged" in report["notices"][0]["text"]


def test_a_staged_policy_is_in_no_exposure_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    staged = CALICO_POLICY.replace("kind: NetworkPolicy", "kind: StagedNetworkPolicy").replace(
        "name: to-partners", "name: staged-partners")
    report = _audit(capsys, _write(tmp_path, policy=CALICO_POLICY, staged=staged,
                                   netset=NETWORK_SET.format(nets="0.0.0.0/0")))
    assert _listed(report, "internet_egress_all_ports") == ["to-partners"]
    assert _listed(report, "metadata") == ["to-partners"]
    # Still reviewed: its findings warn (Calico does not enforce it), they are not dropped.
    staged_findings = {(f["rule"], f["mode"]) for f in report["findings"] if f["name"] == "staged-partners"}
    assert ("no-internet-egress-without-ports", "warn") in staged_findings
