"""`netguard explain`: plain English for each policy in the files, text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook.cli import main

POLICIES = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: team-a}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress:
    - {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: team-a}
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
          rules:
            dns: [{matchPattern: "*"}]
"""


def test_text_explains_each_policy_with_its_non_obvious_effects(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICIES)
    assert main(["explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert "team-a/deny (NetworkPolicy" in out and "team-a/dns (CiliumNetworkPolicy" in out
    assert "spec.egress[0]: has no effect" in out  # policyTypes leaves out Egress
    assert "NOT an allow to every domain" in out  # the DNS visibility rule


def test_json_output_names_rule_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICIES)
    assert main(["explain", str(path), "--format", "json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained[1]["subjects"][0]["egress"][0]["path"] == "spec.egress[0]"


def test_a_malformed_policy_is_reported_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
                    "spec:\n  podSelector: {}\n  egress: all\n")
    assert main(["explain", str(path)]) == 2
    assert f"{path}:6:" in capsys.readouterr().err
