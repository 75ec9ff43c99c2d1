"""`netguard audit --flows`: Hubble exports (files, gzip, stdin) matched to the audited policies, the three flow
guardrails in the report with the rule's path, the window stated, --since/--until honoured, modes configurable.
Flows come from tests/flowgen.py (the documented Hubble fields)."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import IO, Any, cast

import pytest
import yaml

from tests.flowgen import endpoint, flow, lines
from webhook.cli import main

WEB = endpoint("team-a", "web-1", 1001, app="web")
API = endpoint("team-a", "api-1", 1003, app="api")
DNS = endpoint("kube-system", "coredns-1", 3000, **{"k8s-app": "kube-dns"})

POLICIES = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "web", "namespace": "team-a"},
     "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                          "ports": [{"protocol": "TCP", "port": 5432}]},
                         {"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                          "ports": [{"protocol": "TCP", "port": 8080}]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "web-out", "namespace": "team-a"},
     "spec": {"endpointSelector": {"matchLabels": {"app": "web"}},
              "egress": [{"toEntities": ["world"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}},
]

FLOWS = [
    flow(time="2026-11-30T10:00:00Z", destination=API, dst="10.0.1.9", port=8080),
    flow(time="2026-11-30T10:01:00Z", names=["api.github.com"], dst="140.82.112.6"),
    flow(time="2026-11-30T10:02:00Z", names=["pypi.org"], dst="151.101.0.223"),
    flow(time="2026-11-30T10:03:00Z", verdict="DROPPED", drop_reason="POLICY_DENIED", destination=DNS,
         dst="10.96.0.10", protocol="UDP", port=53),
    flow(time="2026-12-01T09:00:00Z", destination=endpoint("team-a", "db-0", 1002, app="db"), dst="10.0.1.8",
         port=5432),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump_all(POLICIES), encoding="utf-8")
    return tmp_path


def export(path: Path, records: list[dict[str, Any]], *, compress: bool = False) -> Path:
    data = lines(records)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def audit(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["audit", *args, "--format", "json", "--jobs", "1"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def findings(report: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule]


def test_the_three_flow_guardrails_report_with_the_rule_path_and_the_window(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = export(tmp_path / "flows.jsonl", FLOWS[:4])
    report = audit(capsys, "--from", str(folder / "policies.yaml"), "--flows", str(flows))
    (unused,) = findings(report, "unused-rule")
    assert (unused["name"], unused["path"], unused["mode"]) == ("web", "spec.egress[0]", "audit")
    assert "from 2026-11-30T10:00:00Z to 2026-11-30T10:03:00Z" in unused["message"]
    (broad,) = findings(report, "broader-than-observed")
    assert (broad["name"], broad["path"]) == ("web-out", "spec.egress[0]")
    assert "api.github.com, pypi.org" in broad["message"] and "toFQDNs matchName" in broad["fix"]
    (dns,) = findings(report, "dropped-needed")
    assert dns["path"] == "spec.egress" and "kube-dns" in dns["fix"]
    window = report["flows"]["window"]
    assert (window["flows"], window["first"], window["last"]) == (4, "2026-11-30T10:00:00Z", "2026-11-30T10:03:00Z")
    web = next(p for p in report["flows"]["policies"] if p["name"] == "web")
    assert [(r["path"], r["flows"]) for r in web["rules"]] == [("spec.egress[0]", 0), ("spec.egress[1]", 1)]
    assert web["rules"][1]["peers"] == ["team-a/app=api"] and web["rules"][1]["ports"] == ["TCP/8080"]


def test_nothing_is_called_unused_for_traffic_outside_the_window(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = export(tmp_path / "flows.jsonl", FLOWS)
    whole = audit(capsys, "--from", str(folder), "--flows", str(flows))
    assert findings(whole, "unused-rule") == []  # the db flow of 1 December used the rule
    early = audit(capsys, "--from", str(folder), "--flows", str(flows), "--until", "2026-11-30T23:59:59Z")
    assert [(f["name"], f["path"]) for f in findings(early, "unused-rule")] == [("web", "spec.egress[0]")]
    assert early["flows"]["window"]["outside_window"] == 1
    assert early["flows"]["window"]["until"] == "2026-11-30T23:59:59Z"
    late = audit(capsys, "--from", str(folder), "--flows", str(flows), "--since", "2026-12-01")
    # only the db flow is left: the api rule and the world rule carried nothing then
    assert sorted((f["name"], f["path"]) for f in findings(late, "unused-rule")) == [
        ("web", "spec.egress[1]"), ("web-out", "spec.egress[0]")]


def test_gzip_several_files_and_stdin_are_read_alike(folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    plain = export(tmp_path / "a.jsonl", FLOWS[:2])
    packed = export(tmp_path / "b.jsonl.gz", FLOWS[2:4], compress=True)
    split = audit(capsys, "--from", str(folder), "--flows", str(plain), str(packed))
    assert split["flows"]["window"]["flows"] == 4
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(lines(FLOWS[:4])))))
    piped = audit(capsys, "--from", str(folder), "--flows", "-")
    assert piped["flows"] == split["flows"]
    assert [f["rule"] for f in piped["findings"]] == [f["rule"] for f in split["findings"]]


def test_bad_lines_are_counted_not_fatal(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows.jsonl"
    flows.write_bytes(lines(FLOWS[:2]) + b"{not json\n\xff\xfe\n" + lines(FLOWS[2:4]))
    report = audit(capsys, "--from", str(folder), "--flows", str(flows))
    assert report["flows"]["window"]["malformed"] == 2 and report["flows"]["window"]["flows"] == 4


def test_the_mode_is_configurable_like_any_guardrail(folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text("rules:\n  unused-rule: {mode: warn}\n  broader-than-observed: {mode: 'off'}\n",
                      encoding="utf-8")
    flows = export(tmp_path / "flows.jsonl", FLOWS[:4])
    report = audit(capsys, "--from", str(folder), "--flows", str(flows), "--config", str(config))
    assert [f["mode"] for f in findings(report, "unused-rule")] == ["warn"]
    assert findings(report, "broader-than-observed") == []


def test_without_flows_the_flow_guardrails_say_nothing(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = audit(capsys, "--from", str(folder))
    assert report["flows"] is None
    assert not [f for f in report["findings"] if f["rule"] in ("unused-rule", "broader-than-observed",
                                                                "dropped-needed")]


def test_a_missing_export_is_a_usage_error(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--from", str(folder), "--flows", str(tmp_path / "nope.jsonl"), "--format", "json"]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_on_a_terminal_reading_an_export_shows_a_progress_bar(folder: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    flows = export(tmp_path / "flows.jsonl", FLOWS[:4])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["audit", "--from", str(folder), "--flows", str(flows), "--format", "json", "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "flows.jsonl:" in err and "B/s" in err  # a bar by bytes read, per export
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert main(["audit", "--from", str(folder), "--flows", str(flows), "--format", "json", "--jobs", "1"]) == 0
    assert "flows.jsonl" not in capsys.readouterr().err


def test_the_bar_counts_every_byte_the_reader_takes(tmp_path: Path) -> None:
    from webhook.cli import _Counted
    from webhook.offline.flows import FlowStats, read_flows

    data = gzip.compress(lines(FLOWS))
    seen: list[int] = []
    stats = FlowStats()
    counted = cast(IO[bytes], _Counted(io.BytesIO(data), seen.append))
    assert len(list(read_flows([counted], stats))) == len(FLOWS)
    assert sum(seen) == len(data)


def test_against_a_cluster_namespace_selectors_read_the_cluster_s_namespace_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cluster is the API-server stand-in (tests/kube_standin.py: a live API server cannot run here). Its
    team-a/web allows ingress from namespaces labelled team=b; Hubble's records carry no namespace labels, so
    only the cluster's own make the flow from team-b a certain match."""
    from tests.kube_standin import KubeStandIn

    web = endpoint("team-a", "web-1", 1001, app="web")
    front = endpoint("team-b", "front-1", 2001, app="front")
    records = [flow(direction="INGRESS", source=front, destination=web, src="10.0.2.4", dst="10.0.1.5", port=8080)]
    flows = export(tmp_path / "flows.jsonl", records)
    with KubeStandIn(tmp_path / "cluster") as standin:
        report = audit(capsys, "--kubeconfig", str(standin.kubeconfig), "--flows", str(flows))
    web_policy = next(p for p in report["flows"]["policies"] if (p["namespace"], p["name"]) == ("team-a", "web"))
    assert [(r["path"], r["flows"], r["uncertain"]) for r in web_policy["rules"]] == [
        ("spec.ingress[0]", 1, 0), ("spec.egress[0]", 0, 0)]
    assert [f["path"] for f in findings(report, "unused-rule") if f["name"] == "web"] == ["spec.egress[0]"]


def test_the_evidence_a_rule_needs_before_it_is_called_unused_is_a_parameter(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text("rules:\n  unused-rule: {parameters: {min_subject_flows: 100}}\n", encoding="utf-8")
    flows = export(tmp_path / "flows.jsonl", FLOWS[:4])
    report = audit(capsys, "--from", str(folder), "--flows", str(flows), "--config", str(config))
    assert findings(report, "unused-rule") == []  # 4 flows of web's pods: not enough evidence for 100
    assert findings(report, "broader-than-observed")  # the others keep theirs
