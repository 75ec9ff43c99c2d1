"""Rules that reach the internet only together: the combined reach handed to the Rego.

webhook/core/facts.py groups the spec entries that may select the same pods, and per group reports
only the internet families that the rules cover together but no single rule covers alone
(input.policy.facts.<direction>.combined_all_ports / combined_any_ports).
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.facts import FactParams, enrich
from webhook.core.netpolicy import DirectionFacts
from webhook.core.normalize import normalize

EVERY_PORT = "every port"


def block(cidr: str) -> dict[str, Any]:
    return {"to": [{"ipBlock": {"cidr": cidr}}]}


def on_port(rule: dict[str, Any], port: int) -> dict[str, Any]:
    return {**rule, "ports": [{"protocol": "TCP", "port": port}]}


def kubernetes(*egress: dict[str, Any], ingress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "web"}}, "egress": list(egress)}
    if ingress is not None:
        spec["ingress"] = ingress
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "team-a"}, "spec": spec}


def cilium(*specs: tuple[dict[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """A CiliumNetworkPolicy with one `specs` entry per (matchLabels, egress rules)."""
    return {
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "p", "namespace": "team-a"},
        "specs": [{"endpointSelector": {"matchLabels": labels} if labels else {}, "egress": rules}
                  for labels, rules in specs],
    }


def to_cidr(cidr: str) -> dict[str, Any]:
    return {"toCIDR": [cidr]}


def facts(manifest: dict[str, Any], direction: str = "egress") -> DirectionFacts:
    return enrich(normalize(manifest), FactParams()).facts[direction]


def test_two_halves_on_every_port_are_one_combined_all_ports_entry() -> None:
    got = facts(kubernetes(block("0.0.0.0/1"), block("128.0.0.0/1")))
    assert len(got.combined_all_ports) == 1
    reach = got.combined_all_ports[0]
    assert reach.internet_v4 and not reach.internet_v6
    assert reach.rules == ("spec.egress[0]", "spec.egress[1]")
    assert reach.cidrs == ("0.0.0.0/1", "128.0.0.0/1")
    assert reach.ports == (EVERY_PORT, EVERY_PORT)
    assert got.combined_any_ports == ()


def test_to_input_carries_the_entries_as_lists() -> None:
    got = facts(kubernetes(block("0.0.0.0/1"), block("128.0.0.0/1"))).to_input()
    assert got["combined_any_ports"] == []
    assert got["combined_all_ports"] == [{
        "internet_v4": True, "internet_v6": False, "internet": True,
        "rules": ["spec.egress[0]", "spec.egress[1]"], "cidrs": ["0.0.0.0/1", "128.0.0.0/1"],
        "ports": [EVERY_PORT, EVERY_PORT],
    }]


def test_halves_on_ports_are_only_combined_any_ports() -> None:
    got = facts(kubernetes(on_port(block("0.0.0.0/1"), 443), on_port(block("128.0.0.0/1"), 80)))
    assert got.combined_all_ports == ()
    assert len(got.combined_any_ports) == 1
    reach = got.combined_any_ports[0]
    assert reach.internet_v4 and not reach.internet_v6
    assert reach.rules == ("spec.egress[0]", "spec.egress[1]")
    assert reach.ports == ("TCP/443", "TCP/80")


def test_one_half_on_every_port_is_not_combined_all_ports() -> None:
    got = facts(kubernetes(block("0.0.0.0/1"), on_port(block("128.0.0.0/1"), 443)))
    assert got.combined_all_ports == ()
    assert [r.ports for r in got.combined_any_ports] == [(EVERY_PORT, "TCP/443")]


@pytest.mark.parametrize("whole", [block("0.0.0.0/0"), on_port(block("0.0.0.0/0"), 443)])
def test_a_rule_covering_the_family_alone_leaves_no_combined_entry(whole: dict[str, Any]) -> None:
    got = facts(kubernetes(whole, block("128.0.0.0/1")))
    assert got.combined_all_ports == ()
    assert got.combined_any_ports == ()


def test_one_half_alone_is_no_combined_entry() -> None:
    got = facts(kubernetes(block("0.0.0.0/1")))
    assert got == DirectionFacts()


def test_halves_in_one_rule_are_the_rule_s_own_finding() -> None:
    got = facts(kubernetes({"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}]}))
    assert got == DirectionFacts()


def test_ipv6_rule_beside_ipv4_halves_gives_combined_ipv4_only() -> None:
    # 2000::/3 (global unicast) leaves out 64:ff9b::/96: ::/0 would reach the IPv4 internet through NAT64.
    got = facts(kubernetes(block("2000::/3"), block("0.0.0.0/1"), block("128.0.0.0/1")))
    assert len(got.combined_all_ports) == 1
    reach = got.combined_all_ports[0]
    assert reach.internet_v4 and not reach.internet_v6
    assert {"spec.egress[1]", "spec.egress[2]"} <= set(reach.rules)
    assert got.combined_any_ports == ()


def test_ipv6_rule_is_not_named_as_part_of_the_ipv4_reach() -> None:
    reach = facts(kubernetes(block("2000::/3"), block("0.0.0.0/1"), block("128.0.0.0/1"))).combined_all_ports[0]
    assert reach.rules == ("spec.egress[1]", "spec.egress[2]")
    assert reach.cidrs == ("0.0.0.0/1", "128.0.0.0/1")


def test_specs_entries_with_different_selectors_do_not_add_up() -> None:
    got = facts(cilium(({"app": "a"}, [to_cidr("0.0.0.0/1")]), ({"app": "b"}, [to_cidr("128.0.0.0/1")])))
    assert got == DirectionFacts()


def test_specs_entries_with_the_same_selector_add_up() -> None:
    got = facts(cilium(({"app": "a"}, [to_cidr("0.0.0.0/1")]), ({"app": "a"}, [to_cidr("128.0.0.0/1")])))
    assert [r.rules for r in got.combined_all_ports] == [("specs[0].egress[0]", "specs[1].egress[0]")]


def test_specs_entry_selecting_every_pod_adds_up_with_the_others() -> None:
    got = facts(cilium(({"app": "a"}, [to_cidr("0.0.0.0/1")]), ({}, [to_cidr("128.0.0.0/1")])))
    assert len(got.combined_all_ports) == 1
    reach = got.combined_all_ports[0]
    assert reach.internet_v4 and not reach.internet_v6
    assert reach.rules == ("specs[0].egress[0]", "specs[1].egress[0]")
    assert got.combined_any_ports == ()


def test_the_same_reach_from_several_groups_is_reported_once() -> None:
    got = facts(cilium(({}, [to_cidr("0.0.0.0/1"), to_cidr("128.0.0.0/1")]),
                       ({"app": "a"}, [to_cidr("10.0.0.0/8")]), ({"app": "b"}, [to_cidr("10.0.0.0/8")])))
    assert [r.rules for r in got.combined_all_ports] == [("specs[0].egress[0]", "specs[0].egress[1]")]


def test_world_ipv4_and_world_ipv6_in_separate_rules_are_each_their_own_finding() -> None:
    got = facts(cilium(({}, [{"toEntities": ["world-ipv4"]}, {"toEntities": ["world-ipv6"]}])))
    assert got == DirectionFacts()


def test_combined_any_ports_does_not_repeat_a_family_of_combined_all_ports() -> None:
    got = facts(kubernetes(block("0.0.0.0/1"), block("128.0.0.0/1"),
                           on_port(block("2000::/4"), 443), on_port(block("3000::/4"), 443)))
    assert [(r.internet_v4, r.internet_v6) for r in got.combined_all_ports] == [(True, False)]
    assert len(got.combined_any_ports) == 1
    loose = got.combined_any_ports[0]
    assert not loose.internet_v4 and loose.internet_v6


def test_halves_on_every_port_are_not_repeated_in_combined_any_ports() -> None:
    got = facts(kubernetes(block("0.0.0.0/1"), block("128.0.0.0/1"), on_port(block("0.0.0.0/2"), 443)))
    assert len(got.combined_all_ports) == 1
    assert got.combined_any_ports == ()


def test_ingress_is_computed_separately() -> None:
    manifest = kubernetes(ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]},
                                   {"from": [{"ipBlock": {"cidr": "128.0.0.0/1"}}]}])
    assert facts(manifest, "egress") == DirectionFacts()
    assert [r.rules for r in facts(manifest, "ingress").combined_all_ports] == [("spec.ingress[0]", "spec.ingress[1]")]


def test_rules_left_out_by_policy_types_do_not_add_up() -> None:
    manifest = kubernetes(block("0.0.0.0/1"), block("128.0.0.0/1"))
    manifest["spec"]["policyTypes"] = ["Ingress"]
    assert facts(manifest) == DirectionFacts()


def test_deny_rules_do_not_add_up() -> None:
    manifest = cilium(({}, [to_cidr("0.0.0.0/1")]))
    manifest["specs"][0]["egressDeny"] = [to_cidr("128.0.0.0/1")]
    assert facts(manifest) == DirectionFacts()
