"""`netguard tighten`: a policy narrowed to what Hubble flows show its rules carried, as a diff; unused rules
removed, broad ones cut to the observed peers and ports, never allowing more than the original and never losing
a direction's isolation."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flowgen import WORLD, endpoint, flow, lines
from webhook.cli import main
from webhook.core.fqdn import pattern_matches
from webhook.core.netpolicy import Action, NormalizedPolicy, Peer, PeerType, PortRange, Rule, Scope
from webhook.core.normalize import normalize

WEB = endpoint("team-a", "web-1", 12345, app="web")
API_B = endpoint("team-b", "api-1", 23456, app="api", tier="backend")
FRONT = endpoint("team-c", "front-1", 34567, app="front")
KUBE_DNS = endpoint("kube-system", "coredns-1", 101, **{"k8s-app": "kube-dns"})

# No policyTypes: Kubernetes defaults them to [Ingress, Egress] because spec.egress has rules.
K8S = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: team-a}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - namespaceSelector: {}
      ports: [{protocol: TCP, port: 8080}]
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
      ports: [{protocol: TCP, port: 443}]
    - to:
        - namespaceSelector: {}
          podSelector:
            matchLabels: {tier: backend}
      ports: [{protocol: TCP, port: 8080}]
    - to:
        - podSelector:
            matchLabels: {app: legacy}
      ports: [{protocol: TCP, port: 9000}]
"""
CILIUM = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: team-a}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: legacy}
  egress:
    - toEntities: [world]
      toPorts:
        - ports: [{port: "443", protocol: TCP}]
    - toEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
          rules:
            dns: [{matchPattern: "*"}]
    - toServices:
        - k8sService: {serviceName: db, namespace: team-a}
"""


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, records: list[dict[str, Any]],
        *options: str) -> tuple[int, str, str]:
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "flows.jsonl").write_bytes(lines(records))
    code = main(["tighten", str(tmp_path / "policy.yaml"), "--flows", str(tmp_path / "flows.jsonl"), *options])
    out, err = capsys.readouterr()
    return code, out, err


def narrowed(tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str,
             records: list[dict[str, Any]]) -> dict[str, Any]:
    code, out, _ = run(tmp_path, capsys, policy, records, "--format", "yaml")
    assert code == 0
    [doc] = [d for d in yaml.safe_load_all(out) if d]
    assert_never_wider(yaml.safe_load(policy), doc)
    return dict(doc)


# --- "never allows more": every tightened rule inside a rule of the original, isolation kept ---------------------

def assert_never_wider(original: dict[str, Any], tightened: dict[str, Any]) -> None:
    before, after = normalize(original), normalize(tightened)
    assert [s.selector for s in after.subjects] == [s.selector for s in before.subjects]
    for old, new in zip(before.subjects, after.subjects, strict=True):
        for direction, isolated in old.isolates.items():
            assert new.isolates[direction] or not isolated, f"{new.path} lost {direction} isolation"
    for rule in allows(after):
        assert any(rule_within(rule, old, before) for old in allows(before)
                   if old.subject == rule.subject and old.direction is rule.direction), f"{rule.path} is wider"


def allows(policy: NormalizedPolicy) -> list[Rule]:
    return [r for r in policy.rules if r.action is Action.ALLOW and r.effective and not r.matches_nothing]


def rule_within(rule: Rule, old: Rule, policy: NormalizedPolicy) -> bool:
    if old.l7 != rule.l7 and old.l7:
        return False
    ports = not old.ports or (bool(rule.ports) and all(any(port_within(p, o) for o in old.ports) for p in rule.ports))
    peers = old.any_peer or (not rule.any_peer and all(any(peer_within(p, o, policy) for o in old.peers)
                                                       for p in rule.peers))
    return ports and peers


def port_within(port: PortRange, old: PortRange) -> bool:
    if port.name or old.name:
        return port.name == old.name and port.protocol == old.protocol
    if old.protocol not in ("ANY", port.protocol) or port.start is None:
        return old.protocol in ("ANY", port.protocol) and old.start is None
    return old.covers(port.protocol, port.start) and old.covers(port.protocol, port.end or port.start)


def peer_within(peer: Peer, old: Peer, policy: NormalizedPolicy) -> bool:
    if old.type is PeerType.ENTITY and old.entity == "all":
        return True
    if peer.type is PeerType.PODS and old.type is PeerType.PODS:
        assert peer.namespaces is not None and old.namespaces is not None and peer.pods and old.pods is not None
        scope, wide = peer.namespaces, old.namespaces
        namespaces = (wide.scope is Scope.ALL and not set(scope.names) & set(wide.names)) or (
            scope.scope is Scope.OWN and wide.scope is Scope.OWN) or (
            scope.scope is Scope.NAMED and wide.scope is Scope.NAMED and set(scope.names) <= set(wide.names))
        return namespaces and set(old.pods.requirements) <= set(peer.pods.requirements)
    if peer.type is PeerType.CIDR and old.type is PeerType.CIDR:
        net, within = ipaddress.ip_network(peer.cidr), ipaddress.ip_network(old.cidr)
        inside = net.version == within.version and net.subnet_of(within)  # type: ignore[arg-type]
        return inside and not any(net.overlaps(ipaddress.ip_network(e)) for e in old.excepts)
    world = old.type is PeerType.ENTITY and old.entity == "world"
    if peer.type in (PeerType.CIDR, PeerType.FQDN) and world:
        return True
    if peer.type is PeerType.FQDN and old.type is PeerType.FQDN:
        return peer.fqdn_name == old.fqdn_name or pattern_matches(old.fqdn_pattern, peer.fqdn_name)
    if peer.type is PeerType.ENTITY and old.type is PeerType.ENTITY:
        return peer.entity == old.entity
    return peer.type is old.type and peer.describe() == old.describe()  # kept as it was (toServices)


def test_the_never_wider_check_catches_a_widening() -> None:
    original = yaml.safe_load(K8S)
    wider = yaml.safe_load(K8S.replace("port: 443}", "port: 443}, {protocol: TCP, port: 80}"))
    with pytest.raises(AssertionError, match=r"spec.egress\[0\] is wider"):
        assert_never_wider(original, wider)
    open_egress = yaml.safe_load(K8S)
    del open_egress["spec"]["egress"]  # no policyTypes: egress no longer isolated
    with pytest.raises(AssertionError, match="lost egress isolation"):
        assert_never_wider(original, open_egress)


# --- Kubernetes NetworkPolicy --------------------------------------------------------------------------------------

def k8s_flows() -> list[dict[str, Any]]:
    return [flow(source=WEB, destination=WORLD, dst="93.184.216.34", port=443, names=["api.stripe.com"]),
            flow(source=WEB, destination=WORLD, dst="198.51.100.7", port=443),
            flow(source=WEB, destination=API_B, dst="10.0.2.9", port=8080),
            flow(direction="INGRESS", source=FRONT, destination=WEB, src="10.0.3.3", dst="10.0.1.5", port=8080)]


def test_an_unused_rule_is_removed_and_broad_ones_get_the_observed_peers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = narrowed(tmp_path, capsys, K8S, k8s_flows())["spec"]
    assert spec["egress"] == [
        {"to": [{"ipBlock": {"cidr": "198.51.100.7/32"}}, {"ipBlock": {"cidr": "93.184.216.34/32"}}],
         "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
                 "podSelector": {"matchLabels": {"tier": "backend", "app": "api"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]}]  # app=legacy on 9000 carried nothing: gone
    assert spec["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "team-c"}}, "podSelector": {"matchLabels": {"app": "front"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert spec["policyTypes"] == ["Ingress", "Egress"]


def test_removing_every_egress_rule_keeps_egress_isolated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Only ingress was seen: every egress rule goes, and without policyTypes egress would stop being isolated.
    doc = narrowed(tmp_path, capsys, K8S, k8s_flows()[3:])
    assert "egress" not in doc["spec"]
    assert doc["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert normalize(doc).subjects[0].isolates == {"ingress": True, "egress": True}


def test_the_default_output_is_a_unified_diff_and_the_changes_are_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(tmp_path, capsys, K8S, k8s_flows())
    assert code == 0
    assert out.startswith(f"--- a/{str(tmp_path).lstrip('/')}/policy.yaml\n+++ b/")
    assert "-        cidr: 0.0.0.0/0\n+        cidr: 198.51.100.7/32\n" in out
    assert "+  policyTypes:\n" in out and "+    netguard.io/tightened-from: " in out
    assert "spec.egress[2]: removed: no flow in the window matched it" in err
    assert "spec.egress[0]: narrowed: peers to 198.51.100.7, api.stripe.com" in err


def test_output_writes_the_narrowed_policy_and_prints_the_diff(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(tmp_path, capsys, K8S, k8s_flows(), "-o", str(tmp_path / "narrowed.yaml"))
    assert code == 0 and out.startswith("--- a/")
    written = yaml.safe_load((tmp_path / "narrowed.yaml").read_text(encoding="utf-8"))
    assert written["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert main(["check", str(tmp_path / "narrowed.yaml")]) == 0


def test_a_policy_whose_pods_are_not_in_the_flows_is_left_alone(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = endpoint("team-a", "db-1", 1, app="db")
    code, out, err = run(tmp_path, capsys, K8S, [flow(source=other, dst="198.51.100.7")])
    assert (code, out) == (0, "")
    assert "no pod it selects is in the flows" in err


def test_dropped_flows_and_replies_carry_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [flow(source=WEB, destination=WORLD, dst="198.51.100.7", port=443),
               flow(source=WEB, destination=API_B, dst="10.0.2.9", port=8080, verdict="DROPPED",
                    drop_reason="POLICY_DENIED"),
               flow(source=WEB, destination=endpoint("team-a", "legacy-1", 9, app="legacy"), dst="10.0.1.7",
                    port=9000, is_reply=True)]
    spec = narrowed(tmp_path, capsys, K8S, records)["spec"]
    assert spec["egress"] == [{"to": [{"ipBlock": {"cidr": "198.51.100.7/32"}}],
                               "ports": [{"protocol": "TCP", "port": 443}]}]


# --- Cilium -------------------------------------------------------------------------------------------------------

def cilium_flows() -> list[dict[str, Any]]:
    return [flow(source=WEB, destination=KUBE_DNS, dst="10.0.0.10", protocol="UDP", port=53,
                 dns={"query": "api.stripe.com.", "ips": ["93.184.216.34"]}),
            flow(source=WEB, destination=WORLD, dst="93.184.216.34", port=443),
            flow(source=WEB, destination=WORLD, dst="140.82.112.3", port=443, names=["github.com"]),
            flow(source=WEB, destination=WORLD, dst="198.51.100.7", port=443)]


def test_cilium_world_narrows_to_names_and_addresses_one_peer_field_per_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = narrowed(tmp_path, capsys, CILIUM, cilium_flows())["spec"]
    https = [{"ports": [{"port": "443", "protocol": "TCP"}]}]
    assert spec["egress"][:2] == [{"toCIDR": ["198.51.100.7/32"], "toPorts": https},
                                  {"toFQDNs": [{"matchName": "api.stripe.com"}, {"matchName": "github.com"}],
                                   "toPorts": https}]
    assert spec["egress"][2]["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"] == "kube-dns"  # used, DNS rule kept
    assert spec["egress"][3] == {"toServices": [{"k8sService": {"serviceName": "db", "namespace": "team-a"}}]}
    # the unused ingress rule is gone, and ingress stays isolated
    assert spec["ingress"] == [{}] and spec["enableDefaultDeny"] == {"ingress": True}


def test_cilium_losing_every_egress_rule_stays_in_default_deny(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    policy = CILIUM.replace("    - toServices:\n        - k8sService: {serviceName: db, namespace: team-a}\n", "")
    spec = narrowed(tmp_path, capsys, policy, [flow(direction="INGRESS", source=endpoint(
        "team-a", "legacy-1", 9, app="legacy"), destination=WEB, src="10.0.1.7", dst="10.0.1.5", port=80)])["spec"]
    assert spec["egress"] == [{}] and spec["enableDefaultDeny"] == {"egress": True}
    assert spec["ingress"] == [{"fromEndpoints": [{"matchLabels": {"app": "legacy"}}],
                                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]  # every port -> 80


def test_a_clusterwide_peer_of_every_namespace_narrows_to_those_seen(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    policy = """\
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: web-ingress}
spec:
  endpointSelector:
    matchLabels: {k8s:io.kubernetes.pod.namespace: team-a, app: web}
  ingress:
    - fromEndpoints: [{}]
      toPorts:
        - ports: [{port: "8080", protocol: TCP}]
"""
    records = [flow(direction="INGRESS", source=FRONT, destination=WEB, src="10.0.3.3", dst="10.0.1.5", port=8080),
               flow(direction="INGRESS", source=API_B, destination=WEB, src="10.0.2.9", dst="10.0.1.5", port=8080)]
    spec = narrowed(tmp_path, capsys, policy, records)["spec"]
    assert spec["ingress"] == [{"fromEndpoints": [
        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "team-b", "app": "api"}},
        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "team-c", "app": "front"}}],
        "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]


# --- bad input ----------------------------------------------------------------------------------------------------

def test_other_kinds_and_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calico = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: x, namespace: a}\nspec: {}\n"
    code, out, err = run(tmp_path, capsys, calico, k8s_flows())
    assert (code, out) == (2, "")
    assert "tighten rewrites NetworkPolicy (networking.k8s.io), CiliumNetworkPolicy" in err
    assert "not NetworkPolicy (projectcalico.org/v3)" in err
    assert main(["tighten", str(tmp_path / "nope.yaml"), "--flows", str(tmp_path / "flows.jsonl")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    (tmp_path / "policy.yaml").write_text(K8S, encoding="utf-8")
    assert main(["tighten", str(tmp_path / "policy.yaml"), "--flows", str(tmp_path / "nope.jsonl")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    (tmp_path / "policy.yaml").write_text(K8S.replace("port: 443}", "port: 443, endPort: 1}"), encoding="utf-8")
    assert main(["tighten", str(tmp_path / "policy.yaml"), "--flows", str(tmp_path / "flows.jsonl")]) == 2
    assert "policy.yaml:13:42: error: spec.egress[0].ports[0].endPort must be" in capsys.readouterr().err


def test_narrowing_to_fqdns_warns_when_no_dns_proxy_rule_makes_them_work(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    world = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-out, namespace: team-a}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""
    records = [flow(source=WEB, destination=WORLD, dst="140.82.112.3", port=443, names=["github.com"])]
    code, _, err = run(tmp_path, capsys, world, records)
    assert code == 0 and "toFQDNs allows only names resolved through Cilium's DNS proxy" in err
    with_dns = world + """\
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
"""
    records.append(flow(source=WEB, destination=KUBE_DNS, dst="10.0.0.10", protocol="UDP", port=53))
    code, _, err = run(tmp_path, capsys, with_dns, records)
    assert code == 0 and "DNS proxy" not in err
