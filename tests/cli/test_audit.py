"""`netguard audit` end to end: manifests on disk and a (stand-in) cluster, every format, the decision log,
attribution, and `netguard baseline` clearing a namespace's "no default deny" figure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from webhook.cli import main

TEAM_A_ALLOW_ALL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all
  namespace: team-a
  annotations: {netguard.io/last-modified-by: bob}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - {}
"""
TEAM_B_WEB = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: team-b
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {}
      ports:
        - {protocol: TCP, port: 8080}
"""
WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-b}
spec:
  template:
    metadata:
      labels: {app: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: team-b}
spec:
  template:
    metadata:
      labels: {app: worker}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "team-a.yaml").write_text(TEAM_A_ALLOW_ALL)
    (root / "team-b.yaml").write_text(TEAM_B_WEB)
    (root / "workloads.yaml").write_text(WORKLOADS)
    return root


def audit(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["audit", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar or chatter when stderr is not a terminal
    return out


def test_json_report_has_findings_posture_and_attribution(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads(audit(["--from", str(manifests), "--format", "json"], capsys))
    posture = report["posture"]
    assert posture["no_default_deny_ingress"]["namespaces"] == ["team-a", "team-b"]
    assert posture["internet_egress_all_ports"]["namespaces"] == ["team-a"]
    assert posture["metadata"]["count"] == 1
    assert posture["all_namespaces"]["namespaces"] == ["team-b"]
    gaps = posture["workloads"]
    assert gaps["count"] == 2
    assert [w["name"] for w in gaps["without_ingress_policy"]] == ["worker"]  # web is selected by team-b/web
    allow_all = [f for f in report["findings"] if f["name"] == "allow-all"]
    assert {f["rule"] for f in allow_all} >= {"no-allow-all-egress", "no-internet-egress-without-ports"}
    assert {f["last_changed_by"] for f in allow_all} == {"bob"}


def test_csv_report_parses_back_one_row_per_finding(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = audit(["--from", str(manifests), "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    as_json = json.loads(audit(["--from", str(manifests), "--format", "json"], capsys))
    assert len(rows) == len(as_json["findings"])
    assert {(r["namespace"], r["rule"]) for r in rows} >= {("team-a", "no-allow-all-egress"),
                                                           ("team-b", "no-all-namespaces-peer")}


def test_html_report_is_self_contained_and_shows_the_figures(manifests: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "report.html"
    audit(["--from", str(manifests), "--format", "html", "--output", str(out_file)], capsys)
    page = out_file.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "no-allow-all-egress" in page and "team-a" in page and "bob" in page
    assert "<script" not in page and "https://" not in page.split("</head>")[0]


def test_markdown_report_lists_namespaces_without_default_deny(manifests: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = audit(["--from", str(manifests), "--format", "markdown"], capsys)
    assert "Namespaces without default deny for ingress | 2 of 2" in out


def test_policyreport_output_is_one_report_per_namespace(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = list(yaml.safe_load_all(audit(["--from", str(manifests), "--format", "policyreport"], capsys)))
    reports = {d["metadata"].get("namespace", ""): d for d in docs if d}
    assert reports["team-a"]["kind"] == "PolicyReport" and reports["team-a"]["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert reports["team-a"]["summary"]["fail"] >= 2
    assert any(d["kind"] == "ClusterPolicyReport" for d in docs if d)


def test_a_decision_log_is_summarised_and_names_who_changed_an_object(manifests: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def line(**fields: object) -> str:
        base = {"event": "admission.decision", "endpoint": "validate", "kind": "NetworkPolicy",
                "operation": "CREATE", "allowed": True, "verdict": "allowed", "modes": {}, "authenticated": True}
        return json.dumps({**base, **fields})

    log = tmp_path / "decisions.jsonl"
    log.write_text("\n".join([
        line(timestamp="2026-11-01T10:00:00Z", namespace="team-b", name="web", user="carol", verdict="warned",
             modes={"no-all-namespaces-peer@spec.ingress[0].from[0]": "warn(dry-run)"}),
        line(timestamp="2026-11-02T10:00:00Z", namespace="team-a", name="allow-all", user="mallory",
             allowed=False, verdict="denied", modes={"no-allow-all-egress@spec.egress[0]": "enforce(default)"}),
        line(timestamp="2025-01-01T00:00:00Z", namespace="team-a", name="old", user="x", verdict="denied"),
        # Posted to the port by someone without the API server's client certificate (or before server.client_ca).
        line(timestamp="2026-11-03T10:00:00Z", namespace="team-b", name="web", user="eve", authenticated=False),
        "not json",
    ]) + "\n")
    report = json.loads(audit(["--from", str(manifests), "--format", "json", "--decisions", str(log),
                               "--since", "2026-10-01"], capsys))
    decisions = report["decisions"]
    assert decisions["total"] == 2 and decisions["denied"] == 1 and decisions["warned"] == 1
    assert decisions["malformed_lines"] == 1 and decisions["unauthenticated_lines"] == 1
    assert decisions["by_requester"]["mallory"]["denied"] == 1 and "eve" not in decisions["by_requester"]
    web = [f for f in report["findings"] if f["name"] == "web"]
    assert web and {f["last_changed_by"] for f in web} == {"carol"}  # from the log: no annotation on it
    everything = json.loads(audit(["--from", str(manifests), "--format", "json", "--decisions", str(log),
                                   "--since", "2026-10-01", "--include-unauthenticated"], capsys))
    assert everything["decisions"]["total"] == 3 and everything["decisions"]["by_requester"]["eve"]["warned"] == 0
    assert {f["last_changed_by"] for f in everything["findings"] if f["name"] == "web"} == {"eve"}


def test_baseline_output_passes_check_and_clears_the_namespace_figure(manifests: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "--namespace", "team-a", "--allow-dns"]) == 0
    baseline = capsys.readouterr().out
    path = tmp_path / "baseline.yaml"
    path.write_text(baseline)
    # Only the platform team may create baselines (protect-baseline): check as the platform.
    assert main(["check", str(path), "--user", "platform-admin", "--group", "system:masters"]) == 0
    assert "0 errors, 0 warnings, 0 notes" in capsys.readouterr().out
    (manifests / "baseline.yaml").write_text(baseline)
    posture = json.loads(audit(["--from", str(manifests), "--format", "json"], capsys))["posture"]
    assert "team-a" not in posture["no_default_deny_ingress"]["namespaces"]
    assert "team-a" not in posture["no_default_deny_egress"]["namespaces"]
    assert "team-b" in posture["no_default_deny_ingress"]["namespaces"]


TEAM_C = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: team-c}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: team-c}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: team-c}
spec: {podSelector: 5}
"""
DEFAULT_DENY_RULE = "namespace-has-default-deny"


def test_the_audit_reviews_against_the_inventory_and_check_without(manifests: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """namespace-has-default-deny reads the cluster: the audit gives it the inventory, so the policies of team-a
    and team-b (no default deny) are told, team-c's (a baseline beside them) are not, as the posture figure says;
    a policy that cannot be read stays an input error and does not break the picture. `check` reviews a folder
    without a cluster (a default deny may live elsewhere), so the guardrail stays silent there."""
    (manifests / "team-c.yaml").write_text(TEAM_C)
    assert main(["audit", "--from", str(manifests), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    told = [f for f in report["findings"] if f["rule"] == DEFAULT_DENY_RULE]
    assert {(f["namespace"], f["name"], f["mode"]) for f in told} == {("team-a", "allow-all", "warn"),
                                                                      ("team-b", "web", "warn")}
    assert "no default-deny policy for ingress" in next(f["message"] for f in told if f["namespace"] == "team-b")
    assert report["posture"]["no_default_deny_ingress"]["namespaces"] == ["team-a", "team-b"]
    assert [e["message"] for e in report["errors"]] == ["spec.podSelector: must be an object, got number"]
    assert main(["check", str(manifests), "--format", "json"]) == 2  # the broken policy
    checked = json.loads(capsys.readouterr().out)
    assert checked["results"] and not [f for r in checked["results"] for f in r["findings"]
                                       if f["rule"] == DEFAULT_DENY_RULE]


def test_a_cluster_is_audited_through_the_kubernetes_client(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Against tests/kube_standin.py: no real API server can run here, so a stand-in on loopback serves
    recorded list responses over HTTPS; the real kubernetes client reads them."""
    from tests.kube_standin import KubeStandIn

    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with KubeStandIn(tmp_path) as standin:
        report = json.loads(audit(["--kubeconfig", str(standin.kubeconfig), "--format", "json"], capsys))
    assert report["source"].startswith("cluster ")
    assert report["summary"]["policies"] == 5  # 3 NetworkPolicies, 1 CNP, 1 CCNP as recorded
    posture = report["posture"]
    # The recorded CCNP has only egressDeny, which still turns on egress default deny for every pod
    # (enableDefaultDeny defaults to true for a direction with rules); only team-a has an ingress baseline.
    assert posture["no_default_deny_ingress"]["namespaces"] == ["default", "team-b"]
    assert posture["no_default_deny_egress"]["count"] == 0
    assert posture["workloads"]["count"] == 3
    assert [w["namespace"] for w in posture["workloads"]["without_ingress_policy"]] == ["team-b"]


def test_a_terminal_gets_a_progress_bar(manifests: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["audit", "--from", str(manifests), "--format", "json", "-o", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "auditing" in err and "policy" in err and "wrote" in err


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {"token": "t"}}]}))
    assert main(["audit", "--kubeconfig", str(kubeconfig)]) == 2
    assert "127.0.0.1:1" in capsys.readouterr().err


PLATFORM_CCNP = """\
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: baseline-dns
  annotations: {netguard.io/last-modified-by: root}
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
"""


def restricted(report: dict[str, object]) -> list[dict[str, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["rule"] == "cluster-scoped-policy-restricted"]


def test_an_annotation_never_makes_the_platform_but_the_decision_log_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A client writes last-modified-by; the API server's userInfo (in the decision log) is what counts."""
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "ccnp.yaml").write_text(PLATFORM_CCNP)
    config = tmp_path / "netguard.yaml"
    config.write_text("platform:\n  users: [root]\n")  # the annotation names a platform user
    alone = json.loads(audit(["--from", str(root), "--format", "json", "--config", str(config)], capsys))
    found = restricted(alone)
    assert found and found[0]["last_changed_by"] == "root" and found[0]["last_changed_from"] == "annotation"

    log = tmp_path / "decisions.jsonl"
    log.write_text(json.dumps({
        "event": "admission.decision", "endpoint": "validate", "kind": "CiliumClusterwideNetworkPolicy",
        "operation": "CREATE", "allowed": True, "verdict": "allowed", "modes": {}, "namespace": None,
        "name": "baseline-dns", "user": "root", "groups": ["system:authenticated"],
        "timestamp": "2026-11-01T10:00:00Z", "authenticated": True}) + "\n")
    logged = json.loads(audit(["--from", str(root), "--format", "json", "--decisions", str(log),
                               "--config", str(config)], capsys))
    assert restricted(logged) == []  # the platform, as the API server authenticated it


def test_an_unknown_last_modifier_is_judged_as_an_app_team(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "ccnp.yaml").write_text(PLATFORM_CCNP.replace("  annotations: {netguard.io/last-modified-by: root}\n", ""))
    found = restricted(json.loads(audit(["--from", str(root), "--format", "json"], capsys)))
    assert found and found[0]["last_changed_by"] == "unknown" and found[0]["last_changed_from"] == ""
