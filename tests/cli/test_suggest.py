"""`netguard suggest`: one least-privilege policy per workload from Hubble flows, which `netguard check` passes
as a team would submit it (warnings failing too), in both flavors."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flowgen import WORLD, endpoint, flow, lines
from webhook.cli import main

WEB = endpoint("team-a", "web-1", 12345, app="web", **{"pod-template-hash": "5d8f"})
API = endpoint("team-a", "api-1", 23456, app="api")
KUBE_DNS = endpoint("kube-system", "coredns-1", 101, **{"k8s-app": "kube-dns"})
PROMETHEUS = endpoint("monitoring", "prom-1", 555, **{"app.kubernetes.io/name": "prometheus"})
HOST = {"identity": 1, "labels": ["reserved:host"]}
API_SERVER = {"identity": 7, "labels": ["reserved:kube-apiserver", "reserved:remote-node"]}


def capture() -> list[dict[str, Any]]:
    """A namespace seen in policy audit mode: web looks a name up and calls it, calls api; api is scraped."""
    return [
        flow(source=WEB, destination=KUBE_DNS, dst="10.96.0.10", protocol="UDP", port=53,
             dns={"query": "api.stripe.com.", "ips": ["93.184.216.34"]}),
        flow(source=WEB, destination=WORLD, dst="93.184.216.34", port=443),
        flow(source=WEB, destination=WORLD, dst="198.51.100.7", port=443, verdict="AUDIT",
             names=["hooks.slack.com"]),
        flow(source=WEB, destination=API, dst="10.0.1.9", port=8080),
        flow(direction="INGRESS", source=WEB, destination=API, src="10.0.1.5", dst="10.0.1.9", port=8080),
        flow(direction="INGRESS", source=PROMETHEUS, destination=API, src="10.0.2.5", dst="10.0.1.9", port=9090),
        flow(direction="INGRESS", source=HOST, destination=API, src="10.0.0.1", dst="10.0.1.9", port=8081),
    ]


def suggest(tmp_path: Path, capsys: pytest.CaptureFixture[str], records: list[dict[str, Any]],
            *options: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The YAML suggested for team-a, and its policies by name."""
    flows = tmp_path / "flows.jsonl"
    flows.write_bytes(lines(records))
    assert main(["suggest", "--flows", str(flows), "--namespace", "team-a", *options]) == 0
    text = capsys.readouterr().out
    return text, {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(text) if doc}


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    path = tmp_path / "suggested.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["check", str(path), "--fail-on", "warn"])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("flavor", ["cilium", "kubernetes"])
def test_the_suggestion_passes_check_with_warnings_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           flavor: str) -> None:
    # API server and metadata egress are in the capture too: they are left out, as check would refuse them.
    records = [*capture(), flow(source=API, destination=API_SERVER, dst="172.18.0.2", port=6443),
               flow(source=API, destination=WORLD, dst="169.254.169.254", port=80)]
    text, policies = suggest(tmp_path, capsys, records, "--flavor", flavor)
    assert sorted(policies) == ["api-observed", "web-observed"]
    code, report = check(tmp_path, capsys, text)
    assert code == 0, report
    assert "0 errors, 0 warnings, 0 notes in 2 policies" in report


def test_cilium_names_world_peers_by_dns_and_routes_dns_through_the_proxy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, policies = suggest(tmp_path, capsys, capture())
    web = policies["web-observed"]
    assert web["kind"] == "CiliumNetworkPolicy"
    assert web["metadata"]["annotations"]["netguard.io/generated-from"].startswith(
        "netguard suggest, from Hubble flows: 7 flows from 2026-11-30T10:00:00.123456Z")
    spec = web["spec"]
    assert spec["endpointSelector"] == {"matchLabels": {"app": "web"}}  # workload labels, not pod-template-hash
    assert spec["enableDefaultDeny"] == {"ingress": True, "egress": True}
    assert spec["ingress"] == [{}]  # nothing seen coming in: isolated, nothing allowed
    dns, *rest = spec["egress"]
    assert dns == {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                    "k8s:k8s-app": "kube-dns"}}],
                   "toPorts": [{"ports": [{"port": "53", "protocol": "TCP"}, {"port": "53", "protocol": "UDP"}],
                                "rules": {"dns": [{"matchPattern": "*"}]}}]}
    https = [{"port": "443", "protocol": "TCP"}]
    # api.stripe.com from the DNS answer in the capture, hooks.slack.com from the flow's destination_names
    assert {"toFQDNs": [{"matchName": "api.stripe.com"}, {"matchName": "hooks.slack.com"}],
            "toPorts": [{"ports": https}]} in rest
    assert {"toEndpoints": [{"matchLabels": {"app": "api"}}], "toPorts": [{"ports": [
        {"port": "8080", "protocol": "TCP"}]}]} in rest
    assert not any("toCIDR" in rule or "toEntities" in rule for rule in rest)
    ingress = policies["api-observed"]["spec"]["ingress"]
    assert {"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "monitoring",
                                               "app.kubernetes.io/name": "prometheus"}}],
            "toPorts": [{"ports": [{"port": "9090", "protocol": "TCP"}]}]} in ingress
    assert {"fromEntities": ["host"], "toPorts": [{"ports": [{"port": "8081", "protocol": "TCP"}]}]} in ingress
    assert policies["api-observed"]["spec"]["egress"] == [{}]  # api sent nothing: no DNS rule either


def test_kubernetes_writes_addresses_and_dns_to_kube_dns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [*capture(), flow(source=API, destination=API_SERVER, dst="172.18.0.2", port=6443)]
    text, policies = suggest(tmp_path, capsys, records, "--flavor", "kubernetes")
    web, api = policies["web-observed"]["spec"], policies["api-observed"]["spec"]
    assert web["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in web
    assert web["egress"][0] == {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]}
    assert {"to": [{"ipBlock": {"cidr": "198.51.100.7/32"}}, {"ipBlock": {"cidr": "93.184.216.34/32"}}],
            "ports": [{"protocol": "TCP", "port": 443}]} in web["egress"]
    assert {"from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 8081}]} in api[
        "ingress"]
    assert {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]} in api[
        "egress"]
    assert "written as the ipBlock 172.18.0.2/32, which Cilium matches only with policy-cidr-match-mode" in text


def test_audit_flows_count_but_drops_and_replies_do_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [flow(source=WEB, destination=WORLD, dst="198.51.100.7", port=443, verdict="AUDIT"),
               flow(source=WEB, destination=WORLD, dst="203.0.113.9", port=8443, verdict="DROPPED",
                    drop_reason="POLICY_DENIED"),
               flow(source=WEB, destination=API, dst="10.0.1.9", port=40000, is_reply=True)]
    text, policies = suggest(tmp_path, capsys, records)
    egress = policies["web-observed"]["spec"]["egress"]
    assert {"toCIDR": ["198.51.100.7/32"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]} in egress
    assert "203.0.113.9" not in text and "40000" not in text
    assert "not counted: 1 dropped, 1 replies" in text


def test_what_check_would_refuse_is_left_out_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [flow(source=API, destination=API_SERVER, dst="172.18.0.2", port=6443),
               flow(source=API, destination=WORLD, dst="169.254.169.254", port=80),
               flow(source=API, destination=WORLD, dst="93.184.216.34", protocol="ICMPv4")]
    text, policies = suggest(tmp_path, capsys, records)
    assert policies["api-observed"]["spec"]["egress"] == [policies["api-observed"]["spec"]["egress"][0]]  # DNS only
    assert "egress to kube-apiserver on TCP/6443: left out: only the platform team" in text
    assert "egress to 169.254.169.254 on TCP/80: left out: the cloud metadata service" in text
    assert "1 ICMP or L3-only flows left out" in text


def test_the_output_is_the_same_whatever_the_order_of_the_flows(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    records = capture()
    first, _ = suggest(tmp_path, capsys, records)
    random.Random(7).shuffle(records)
    assert suggest(tmp_path, capsys, records)[0] == first


def test_names_are_dns_labels_and_stay_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = endpoint("team-a", "x-1", 1, app="Web_Server.v2")
    alike = endpoint("team-a", "y-1", 2, name="web-server-v2")
    _, policies = suggest(tmp_path, capsys, [flow(source=odd), flow(source=alike)])
    assert "web-server-v2-observed" in policies
    [other] = set(policies) - {"web-server-v2-observed"}
    assert other.startswith("web-server-v2-") and other.endswith("-observed") and len(other) <= 63


def test_the_window_limits_the_flows_and_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [flow(time="2026-11-30T09:00:00Z", source=WEB, dst="198.51.100.7"),
               flow(time="2026-11-30T11:00:00Z", source=WEB, dst="198.51.100.8")]
    text, _ = suggest(tmp_path, capsys, records, "--since", "2026-11-30T10:00:00Z", "-o", str(tmp_path / "out.yaml"))
    assert text == ""  # written to the file
    written = (tmp_path / "out.yaml").read_text(encoding="utf-8")
    assert "198.51.100.8/32" in written and "198.51.100.7" not in written
    assert "(asked for since 2026-11-30T10:00:00Z)" in written


def test_a_namespace_not_in_the_flows_gets_nothing_but_a_header(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows.jsonl"
    flows.write_bytes(lines(capture()))
    assert main(["suggest", "--flows", str(flows), "--namespace", "team-b"]) == 0
    out = capsys.readouterr().out
    assert "No flow of a workload of namespace team-b was seen" in out and "---" not in out


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["suggest", "--flows", str(missing), "--namespace", "team-a"]) == 2
    err = capsys.readouterr().err
    assert "No such file or directory" in err and str(missing) in err
    flows = tmp_path / "flows.jsonl"
    flows.write_bytes(lines(capture()))
    assert main(["suggest", "--flows", str(flows), "--namespace", "Team_A"]) == 2
    assert "namespace must be a DNS-1123 label" in capsys.readouterr().err
    assert main(["suggest", "--flows", str(flows), "--namespace", "team-a", "--since", "yesterday"]) == 2
    assert "is not an ISO 8601 time" in capsys.readouterr().err


def test_a_workload_seen_with_more_peers_than_a_policy_can_list_is_capped_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from webhook.offline import suggest as suggest_module

    monkeypatch.setattr(suggest_module, "MAX_SEEN", 5)
    web = endpoint("team-a", "web-1", 1001, app="web")
    records = [flow(source=web, dst=f"198.51.100.{i}", port=443) for i in range(1, 21)]
    path = tmp_path / "flows.jsonl"
    path.write_bytes(lines(records))
    assert main(["suggest", "--flows", str(path), "--namespace", "team-a", "--flavor", "kubernetes"]) == 0
    out = capsys.readouterr().out
    assert out.count("/32") == 5 and "15 flows left out" in out
