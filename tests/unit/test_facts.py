"""CIDR facts: what a policy really reaches, however it is spelled."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.core.facts import Coverage, FactParams, enrich, merge, subtract
from webhook.core.normalize import normalize
from webhook.core.shape import ShapeError


def rule_facts(peers: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None) -> Any:
    rule: dict[str, Any] = {"to": peers}
    if ports:
        rule["ports"] = ports
    policy = normalize({"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
                        "spec": {"podSelector": {}, "egress": [rule]}})
    return enrich(policy, FactParams()).rules[0].facts


def block(cidr: str, *excepts: str) -> dict[str, Any]:
    return {"ipBlock": {"cidr": cidr, "except": list(excepts)}}


def test_two_halves_together_are_the_ipv4_internet() -> None:
    facts = rule_facts([block("0.0.0.0/1"), block("128.0.0.0/1")])
    assert facts.internet_v4 and not facts.internet_v6
    assert facts.internet_cidrs == ("0.0.0.0/1", "128.0.0.0/1")


def test_one_half_alone_is_not_the_internet() -> None:
    assert not rule_facts([block("0.0.0.0/1")]).internet_v4


def test_excepting_private_ranges_still_leaves_the_internet() -> None:
    assert rule_facts([block("0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]).internet_v4


def test_excepting_most_of_the_space_is_no_longer_the_internet() -> None:
    assert not rule_facts([block("0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/2")]).internet_v4


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert rule_facts([block("::ffff:0.0.0.0/96")]).internet_v4


def test_ipv6_global_unicast_is_the_ipv6_internet() -> None:
    facts = rule_facts([block("2000::/3")])
    assert facts.internet_v6 and not facts.internet_v4


def test_ipv6_default_route_reaches_the_ipv4_internet_through_nat64_too() -> None:
    """::/0 holds 64:ff9b::/96 (RFC 6052): behind a NAT64 gateway that is every IPv4 address."""
    facts = rule_facts([block("::/0")])
    assert facts.internet_v6 and facts.internet_v4
    assert rule_facts([block("64:ff9b::/96")]).internet_v4
    assert not rule_facts([block("64:ff9b::/97")]).internet_v4  # half the IPv4 space


def test_metadata_is_reached_through_a_broader_cidr_on_all_ports() -> None:
    assert rule_facts([block("169.254.0.0/16")]).metadata == ("169.254.169.254",)


def test_metadata_is_not_reached_on_an_unrelated_port() -> None:
    assert rule_facts([block("0.0.0.0/0")], [{"port": 443}]).metadata == ()


def test_metadata_is_reached_on_port_80() -> None:
    assert rule_facts([block("0.0.0.0/0")], [{"port": 80}]).metadata == ("169.254.169.254",)


def test_an_except_removes_the_metadata_address() -> None:
    assert rule_facts([block("0.0.0.0/0", "169.254.169.254/32")]).metadata == ()


def test_an_except_outside_its_cidr_is_a_shape_error() -> None:
    with pytest.raises(ShapeError) as err:
        rule_facts([block("10.0.0.0/8", "11.0.0.0/8")])
    assert err.value.path == "spec.egress[0].to[0].except[0]"


def test_an_invalid_cidr_is_a_shape_error_naming_the_field() -> None:
    with pytest.raises(ShapeError) as err:
        rule_facts([block("10.0.0.300/8")])
    assert err.value.path == "spec.egress[0].to[0].cidr"


@given(st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 2**10)), max_size=12),
       st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 2**10)), max_size=12))
def test_interval_subtraction_matches_set_arithmetic(base: list[tuple[int, int]], holes: list[tuple[int, int]]) -> None:
    def as_set(intervals: list[tuple[int, int]]) -> set[int]:
        return {x for s, e in intervals for x in range(s, e + 1)}

    base_iv = merge((s, s + n) for s, n in base)
    hole_iv = [(s, s + n) for s, n in holes]
    assert as_set(subtract(base_iv, hole_iv)) == as_set(base_iv) - as_set(hole_iv)


def test_coverage_contains_checks_both_families() -> None:
    cov = Coverage(v4=((0, 2**32 - 1),), v6=())
    assert cov.contains("1.2.3.4") and not cov.contains("::1")


def test_a_whole_private_range_is_reported_only_when_fully_covered() -> None:
    policy = normalize({"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
                        "spec": {"podSelector": {}, "egress": [{"to": [block("10.0.0.0/8"),
                                                                         block("10.0.0.0/8", "10.1.0.0/16")]}]}})
    peers = enrich(policy, FactParams()).rules[0].peers
    assert peers[0].facts.private_ranges == ("10.0.0.0/8",)
    assert peers[1].facts.private_ranges == ()


def test_a_cached_coverage_does_not_hide_the_path_of_a_later_malformed_except() -> None:
    # Coverages are kept per CIDR and excepts (not per path): the same CIDR at another path with an except
    # outside it is still an error naming that path.
    with pytest.raises(ShapeError) as err:
        rule_facts([block("10.0.0.0/8", "10.1.0.0/16"), block("10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8")])
    assert err.value.path == "spec.egress[0].to[1].except[1]"


def test_peers_alike_get_equal_facts_in_every_rule() -> None:
    rules = [{"to": [block("0.0.0.0/0", "10.0.0.0/8")], "ports": [{"port": 80}]},
             {"to": [block("0.0.0.0/0", "10.0.0.0/8")], "ports": [{"port": 80}]}]
    policy = enrich(normalize({"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
                               "spec": {"podSelector": {}, "egress": rules}}), FactParams())
    first, second = (r.to_input() for r in policy.rules)
    assert first["peers"][0]["facts"] == second["peers"][0]["facts"]
    assert first["peers"][0]["facts"]["internet_v4"] and first["facts"]["metadata"] == ["169.254.169.254"]
    first["peers"][0]["facts"]["metadata_ips"].append("x")  # what a caller is given is its own
    assert policy.rules[0].to_input()["peers"][0]["facts"]["metadata_ips"] == ["169.254.169.254"]
