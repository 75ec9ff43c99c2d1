"""The oracle itself, on hand-written manifests: it can be wrong too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.oracle.oracle import (
    IP_PROBES,
    RESERVED_PROBES,
    InvalidPolicy,
    Oracle,
    go_parse_uint16,
    make_pod,
)


def k8s(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "t", "namespace": "team-a"}, "spec": {"podSelector": {}, **spec}}


def cnp(*egress: dict[str, Any], kind: str = "CiliumNetworkPolicy", ingress: list[dict[str, Any]] | None = None,
        ) -> dict[str, Any]:
    spec: dict[str, Any] = {"endpointSelector": {}, "egress": list(egress)}
    if ingress is not None:
        spec["ingress"] = ingress
    meta = {"name": "t", "namespace": "team-a"} if kind == "CiliumNetworkPolicy" else {"name": "t"}
    return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}


def ip(text: str) -> Any:
    return next(p for p in IP_PROBES if str(p.ip) == text)


def reserved(name: str) -> Any:
    return next(p for p in RESERVED_PROBES if p.identity == name)


WEB = make_pod("team-a", {"app": "web"})
PUBLIC = "8.200.88.99"


@pytest.mark.parametrize(("text", "value"), [
    ("80", 80), ("0x50", 80), ("0X50", 80), ("0120", 80), ("8_0", 80), ("0o120", 80), ("0b1010000", 80),
    ("0x_50", 80), ("00", 0), ("0", 0), ("65_535", 65535), ("0xffff", 65535)])
def test_go_parse_uint_reads_go_literals(text: str, value: int) -> None:
    assert go_parse_uint16(text) == value


@pytest.mark.parametrize("text", ["²", "+80", "-1", "65536", "8__0", "_80", "80_", " 80", "0x5_", "08", ""])
def test_go_parse_uint_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        go_parse_uint16(text)


def test_k8s_port_without_protocol_is_tcp_and_unlisted_protocols_are_denied() -> None:
    oracle = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]}))
    assert oracle.allowed(WEB, "egress", ip(PUBLIC), "TCP", 80)
    assert not oracle.allowed(WEB, "egress", ip(PUBLIC), "UDP", 80)
    assert not oracle.allowed(WEB, "egress", ip(PUBLIC), "TCP", 81)


def test_k8s_policy_types_default_and_directions_left_out() -> None:
    assert Oracle(k8s({"egress": [{}]})).internet("egress", every_port=True).value is True
    left_out = Oracle(k8s({"policyTypes": ["Ingress"], "egress": [{}]}))
    assert left_out.internet("egress", every_port=False).value is False
    assert Oracle(k8s({"ingress": [{}]})).internet("ingress", every_port=True).value is True


def test_k8s_ipblock_except_and_end_port() -> None:
    oracle = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["8.0.0.0/8", "169.254.169.254/32"]}}],
        "ports": [{"protocol": "TCP", "port": 1000, "endPort": 2000}]}]}))
    assert not oracle.allowed(WEB, "egress", ip(PUBLIC), "TCP", 1500)
    assert oracle.allowed(WEB, "egress", ip("9.200.88.99"), "TCP", 1500)
    assert not oracle.allowed(WEB, "egress", ip("9.200.88.99"), "TCP", 2001)
    assert not oracle.metadata()
    assert oracle.internet("egress", every_port=False).value is True


def test_k8s_namespace_selectors() -> None:
    every = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {}}]}]}))
    assert every.all_namespaces_rules("egress") == ["spec.egress[0]"]
    own = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]}))
    assert own.all_namespaces_rules("egress") == []
    notin = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["team-b"]}]}}]}]}))
    assert notin.all_namespaces_rules("egress") == ["spec.egress[0]"]
    dns = Oracle(k8s({"policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
    assert dns.all_namespaces_rules("egress") == []


def test_cilium_ports_only_rule_reaches_every_peer_and_any_is_three_protocols() -> None:
    oracle = Oracle(cnp({"toPorts": [{"ports": [{"port": "0x50"}]}]}))
    for protocol in ("TCP", "UDP", "SCTP"):
        assert oracle.allowed(WEB, "egress", ip(PUBLIC), protocol, 80)
    assert oracle.metadata()
    assert oracle.internet("egress", every_port=True).value is False
    assert oracle.internet("egress", every_port=False).value is True


def test_cilium_invalid_port_string_is_an_invalid_policy() -> None:
    with pytest.raises(InvalidPolicy):
        Oracle(cnp({"toEntities": ["world"], "toPorts": [{"ports": [{"port": "+80"}]}]}))


def test_cilium_empty_rule_allows_nothing_and_l3_only_allows_every_port() -> None:
    assert Oracle(cnp({})).internet("egress", every_port=False).value is False
    assert Oracle(cnp({"toEntities": ["world"]})).internet("egress", every_port=True).value is True


def test_split_port_ranges_are_every_port_but_not_port_80() -> None:
    oracle = Oracle(cnp({"toEntities": ["world"], "toPorts": [{"ports": [
        {"port": "1", "endPort": 79, "protocol": "TCP"}, {"port": "81", "endPort": 65535, "protocol": "TCP"}]}]}))
    assert oracle.internet("egress", every_port=True).value is True
    assert not oracle.metadata()


def test_split_cidrs_add_up_and_halves_do_not() -> None:
    assert Oracle(cnp({"toCIDR": ["0.0.0.0/1"]}, {"toCIDR": ["128.0.0.0/1"]})).internet(
        "egress", every_port=True).value is True
    assert Oracle(cnp({"toCIDR": ["0.0.0.0/1"]})).internet("egress", every_port=False).value is False
    assert Oracle(cnp({"toCIDR": ["0.0.0.0/1", "128.0.0.0/2"]})).internet("egress", every_port=False).value is False
    # everything but 224/3 (multicast, reserved): the internet under both readings of "public"
    assert Oracle(cnp({"toCIDR": ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"]})).internet(
        "egress", every_port=True).value is True


def test_ipv6_internet_is_2000_slash_3_and_nat64_is_the_ipv4_internet() -> None:
    assert Oracle(cnp({"toCIDR": ["2000::/3"]})).internet("egress", every_port=True).value is True
    assert Oracle(cnp({"toCIDR": ["4000::/2", "8000::/1"]})).internet("egress", every_port=False).value is False
    assert Oracle(cnp({"toCIDR": ["64:ff9b::/96"]})).internet("egress", every_port=True).value is True


def test_mapped_except_does_not_carve_ipv4_but_mapped_cidr_counts_as_ipv4() -> None:
    oracle = Oracle(cnp({"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["::ffff:169.254.169.254/128"]}]}))
    assert oracle.metadata()
    mapped = Oracle(cnp({"toCIDRSet": [{"cidr": "::ffff:0:0/96", "except": ["::ffff:0:0/97"]}]}))
    assert mapped.allowed(WEB, "egress", ip("200.200.88.99"), "TCP", 443)
    assert not mapped.allowed(WEB, "egress", ip(PUBLIC), "TCP", 443)
    assert mapped.internet("egress", every_port=False).value is False


def test_reserved_selectors() -> None:
    world = Oracle(cnp({"toEndpoints": [{"matchLabels": {"reserved:world": ""}}]}))
    assert world.internet("egress", every_port=True).value is True
    assert world.all_namespaces_rules("egress") == []
    not_host = Oracle(cnp({"toEndpoints": [{"matchExpressions": [
        {"key": "reserved:host", "operator": "DoesNotExist"}]}]}))
    assert not_host.internet("egress", every_port=True).value is True
    assert not_host.all_namespaces_rules("egress") == ["spec.egress[0]"]
    assert not not_host.allowed(WEB, "egress", reserved("host"), "TCP", 10250)
    assert not_host.allowed(WEB, "egress", reserved("kube-apiserver"), "TCP", 443)
    host = Oracle(cnp({"toEndpoints": [{"matchLabels": {"reserved:host": ""}}]}))
    assert host.sensitive_rules() == (["spec.egress[0]"], ["spec.egress[0]"])


def test_endpoint_scoping_cnp_vs_ccnp() -> None:
    own = Oracle(cnp({"toEndpoints": [{}]}))
    assert own.all_namespaces_rules("egress") == []
    assert own.internet("egress", every_port=False).value is False
    cluster_wide = Oracle(cnp({"toEndpoints": [{}]}, kind="CiliumClusterwideNetworkPolicy"))
    assert cluster_wide.all_namespaces_rules("egress") == ["spec.egress[0]"]
    assert cluster_wide.internet("egress", every_port=False).value is False
    named = Oracle(cnp({"toEndpoints": [{"matchExpressions": [
        {"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["team-b"]}]}]}))
    assert named.all_namespaces_rules("egress") == ["spec.egress[0]"]


def test_entities_and_nodes() -> None:
    cluster = Oracle(cnp({"toEntities": ["cluster"]}))
    assert cluster.allowed(WEB, "egress", reserved("kube-apiserver"), "TCP", 443)
    assert cluster.sensitive_rules() == (["spec.egress[0]"], [])  # also a new namespace: other guardrails
    nodes = Oracle(cnp({"toNodes": [{}], "toPorts": [{"ports": [{"port": "10250", "protocol": "TCP"}]}]}))
    assert nodes.sensitive_rules() == (["spec.egress[0]"], ["spec.egress[0]"])
    assert Oracle(cnp({"toEntities": ["world-ipv6"]})).metadata()  # fd00:ec2::254


def test_specs_entries_add_up_for_pods_both_select() -> None:
    manifest = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "t", "namespace": "team-a"}, "specs": [
                    {"endpointSelector": {"matchLabels": {"app": "web"}}, "egress": [{"toCIDR": ["0.0.0.0/1"]}]},
                    {"endpointSelector": {"matchLabels": {"tier": "fe"}}, "egress": [{"toCIDR": ["128.0.0.0/1"]}]}]}
    assert Oracle(manifest).internet("egress", every_port=True).value is True
    manifest["specs"][1]["endpointSelector"] = {"matchLabels": {"app": "db"}}
    assert Oracle(manifest).internet("egress", every_port=False).value is False
