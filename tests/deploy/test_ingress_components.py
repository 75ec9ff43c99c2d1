"""deploy/ is safe to apply as shipped (issue 11, point 8): netguard's own ingress restriction is opt-in.

A NetworkPolicy with a placeholder API server address in deploy/base made the webhook unreachable for
whoever applied the base as the README says, and, failing closed, blocked every network policy change.
Now the base has no policy of its own; deploy/components/apiserver-ingress adds it and cannot be built
without the real address (a kustomize replacement from a ConfigMap value the user's overlay must
give), check-ingress adds the /v1/check clients the same way, and apiserver-ingress-cilium names the
API server by Cilium's kube-apiserver entity instead of an address.

The overlays here are written to a temporary folder the way the component's comments tell users to,
and built with `kubectl kustomize` (skipped without kubectl, as the other build tests).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import BUILDS, DEPLOY, build, kubectl, one
from tests.deploy.test_manifests import validate
from webhook import cli

COMPONENTS = DEPLOY / "components"
PLACEHOLDERS = ("192.0.2.0/24", "198.51.100.0/24", "REQUIRED")


def _overlay(tmp_path: Path, components: list[str], literals: dict[str, str] | None,
             resource: str = "base") -> subprocess.CompletedProcess[str]:
    """A user's overlay of deploy/<resource> with the given components and ConfigMap values, built."""
    folder = tmp_path / "my-netguard"
    folder.mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / resource, folder)],
        "components": [os.path.relpath(COMPONENTS / c, folder) for c in components],
    }
    if literals is not None:
        doc["configMapGenerator"] = [{
            "name": "netguard-apiserver-ingress", "literals": [f"{k}={v}" for k, v in literals.items()],
            "options": {"disableNameSuffixHash": True,
                        "annotations": {"config.kubernetes.io/local-config": "true"}}}]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60,
                          check=False)


def _docs(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_the_base_and_every_overlay_ship_no_network_policy_of_netguards_own() -> None:
    """What `kubectl apply -k deploy/base` applies leaves the webhook reachable by the API server."""
    for target in BUILDS:
        docs = build(target)
        assert [d["kind"] for d in docs if d["kind"] in ("NetworkPolicy", "CiliumNetworkPolicy")] == [], target
        text = json.dumps([d for d in docs if d["kind"] != "ConfigMap"])  # the catalog's samples use them
        assert not any(p in text for p in PLACEHOLDERS), target


def test_the_ingress_component_cannot_be_built_without_the_apiserver_cidr(tmp_path: Path) -> None:
    result = _overlay(tmp_path, ["apiserver-ingress"], None)
    assert result.returncode != 0
    assert "netguard-apiserver-ingress" in result.stderr  # kustomize names what is missing
    result = _overlay(tmp_path, ["apiserver-ingress"], {"check-cidr": "10.20.0.0/24"})  # the wrong value only
    assert result.returncode != 0


def test_the_ingress_component_admits_the_given_apiserver_cidr_on_8443_only(tmp_path: Path) -> None:
    docs = _docs(_overlay(tmp_path, ["apiserver-ingress"], {"apiserver-cidr": "10.0.0.0/28"}))
    assert [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "netguard-apiserver-ingress"] \
        == []  # local-config: read by kustomize, never applied
    policy = one(docs, "NetworkPolicy", "netguard")
    validate(policy)
    assert policy["metadata"]["namespace"] == "netguard"
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= one(
        docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ingress, egress = policy["spec"]["ingress"], policy["spec"]["egress"]
    assert ingress[0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/28"}}]
    assert {(p["protocol"], p["port"]) for rule in ingress for p in rule["ports"]} == {("TCP", 8443)}
    assert egress[0]["to"] == [{"ipBlock": {"cidr": "10.0.0.0/28"}}]
    assert {(p["protocol"], p["port"]) for rule in egress for p in rule["ports"]} == {
        ("TCP", 443), ("TCP", 6443), ("UDP", 53), ("TCP", 53)}
    assert not any(p in json.dumps(policy) for p in PLACEHOLDERS)


def test_check_ingress_admits_its_cidr_on_8444_only_needs_its_value_and_adds_nothing_alone(
        tmp_path: Path) -> None:
    values = {"apiserver-cidr": "10.0.0.0/28", "check-cidr": "10.20.0.0/24"}
    docs = _docs(_overlay(tmp_path, ["apiserver-ingress", "check-ingress"], values))
    policy = one(docs, "NetworkPolicy", "netguard")
    validate(policy)
    rules = policy["spec"]["ingress"]
    assert len(rules) == 3
    for rule in rules:  # /v1/check clients reach only 8444, and only from the listed CIDR
        ports = {p["port"] for p in rule["ports"]}
        assert ports in ({8443}, {8444})
        if ports == {8444}:
            assert rule["from"] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    assert _overlay(tmp_path, ["apiserver-ingress", "check-ingress"], {"apiserver-cidr": "10.0.0.0/28"}).returncode
    # Alone it has no NetworkPolicy to extend: it adds nothing (the webhook stays reachable, as in the base).
    alone = _docs(_overlay(tmp_path, ["check-ingress"], values))
    assert [d for d in alone if d["kind"] == "NetworkPolicy"] == []


def test_the_cilium_variant_names_the_api_server_by_entity_and_needs_no_address(tmp_path: Path) -> None:
    docs = _docs(_overlay(tmp_path, ["apiserver-ingress-cilium"], None))
    assert [d for d in docs if d["kind"] == "NetworkPolicy"] == []
    policy = one(docs, "CiliumNetworkPolicy", "netguard")
    validate(policy)
    assert policy["metadata"]["namespace"] == "netguard"
    assert policy["spec"]["endpointSelector"]["matchLabels"].items() <= one(
        docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    ingress, egress = policy["spec"]["ingress"], policy["spec"]["egress"]
    assert ingress[0]["fromEntities"] == ["kube-apiserver"]
    assert ingress[0]["toPorts"] == [{"ports": [{"port": "8443", "protocol": "TCP"}]}]
    assert {p["port"] for rule in ingress for tp in rule["toPorts"] for p in tp["ports"]} == {"8443"}
    assert egress[0]["toEntities"] == ["kube-apiserver"]
    assert not any(p in json.dumps(policy) for p in PLACEHOLDERS)


@pytest.mark.parametrize("component", ["apiserver-ingress", "apiserver-ingress-cilium"])
def test_each_variant_passes_netguards_own_guardrails_as_the_platform_team(
        component: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """netguard does not review its own namespace; check the policy as if it did (platform identity: the
    API server entity is a sensitive entity only the platform team may name)."""
    docs = _docs(_overlay(tmp_path, [component, *(["check-ingress"] if component == "apiserver-ingress" else [])],
                          {"apiserver-cidr": "10.0.0.0/28", "check-cidr": "10.20.0.0/24"}))
    policies = [d for d in docs if d["kind"] in ("NetworkPolicy", "CiliumNetworkPolicy")]
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(yaml.safe_dump_all(policies))
    settings = tmp_path / "netguard.yaml"
    settings.write_text("excluded_namespaces: []\n")
    code = cli.main(["check", str(manifest), "--config", str(settings), "--format", "json",
                     "--group", "system:masters"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["findings"] for r in report["results"]] == [[]]
