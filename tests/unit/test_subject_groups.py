"""webhook.core.facts.subject_groups and webhook.core.selectors.satisfiable: entries of a Cilium `specs` list add
up for the pods they can select together, whatever the spelling of their selectors."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.facts import FactParams, enrich, subject_groups
from webhook.core.normalize import normalize
from webhook.core.selectors import Requirement, parse_selector, satisfiable


def reqs(*selectors: dict[str, Any]) -> tuple[Requirement, ...]:
    return tuple(r for s in selectors for r in parse_selector(s, "s").requirements)


WEB = {"matchLabels": {"app": "web"}}


@pytest.mark.parametrize(("a", "b"), [
    ({}, WEB),
    (WEB, WEB),
    ({"matchLabels": {"app": "web", "tier": "fe"}}, {"matchLabels": {"tier": "fe", "app": "web"}}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "in", "values": ["db", "web"]}]}),
    (WEB, {"matchLabels": {"app": "web", "tier": "fe"}}),
    (WEB, {"matchLabels": {"tier": "fe"}}),
    (WEB, {"matchLabels": {"k8s:app": "web"}}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}),
    (WEB, {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
     {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
])
def test_selectors_one_pod_can_meet_together(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert satisfiable(reqs(a, b))


@pytest.mark.parametrize(("a", "b"), [
    (WEB, {"matchLabels": {"app": "db"}}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
    (WEB, {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
     {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]},
     {"matchExpressions": [{"key": "app", "operator": "In", "values": ["c"]}]}),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}, {}),
])
def test_selectors_no_pod_can_meet_together(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert not satisfiable(reqs(a, b))


def test_in_minus_not_in_keeps_what_is_left() -> None:
    a = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}
    assert satisfiable(reqs(a, {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}))
    assert not satisfiable(reqs(a, {"matchExpressions": [
        {"key": "app", "operator": "NotIn", "values": ["web", "db"]}]}))


def specs(*selectors: dict[str, Any], kind: str = "CiliumNetworkPolicy",
          cidrs: tuple[str, ...] = ("0.0.0.0/1", "128.0.0.0/1")) -> dict[str, Any]:
    entries = [{"endpointSelector": s, "egress": [{"toCIDR": [cidrs[i % len(cidrs)]]}]}
               for i, s in enumerate(selectors)]
    meta = {"name": "s"} if kind == "CiliumClusterwideNetworkPolicy" else {"name": "s", "namespace": "team-a"}
    return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "specs": entries}


def groups(*selectors: dict[str, Any]) -> list[tuple[int, ...]]:
    return subject_groups(normalize(specs(*selectors)))


def test_a_single_spec_is_its_own_group() -> None:
    assert subject_groups(normalize(specs(WEB))) == [(0,)]


@pytest.mark.parametrize("other", [
    {},
    {"matchLabels": {"app": "web"}},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    {"matchLabels": {"app": "web", "tier": "fe"}},
    {"matchLabels": {"tier": "fe"}},
])
def test_entries_that_can_select_one_pod_are_grouped(other: dict[str, Any]) -> None:
    assert groups(WEB, other) == [(0, 1)]


def test_disjoint_entries_stay_apart() -> None:
    assert groups(WEB, {"matchLabels": {"app": "db"}}) == [(0,), (1,)]


def test_groups_are_maximal_and_may_overlap() -> None:
    # {} meets both; web and db never meet: two groups, each with the {} entry.
    assert groups({}, WEB, {"matchLabels": {"app": "db"}}) == [(0, 1), (0, 2)]
    # web, fe and {web, fe} all meet in one pod.
    assert groups(WEB, {"matchLabels": {"tier": "fe"}}, {"matchLabels": {"app": "web", "tier": "fe"}}) == [(0, 1, 2)]


def test_an_entry_no_pod_can_meet_is_in_no_group() -> None:
    never = {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}
    assert groups(WEB, never) == [(0,)]


def test_pod_and_node_entries_are_never_grouped() -> None:
    obj = specs(WEB, WEB, kind="CiliumClusterwideNetworkPolicy")
    obj["specs"][1] = {"nodeSelector": {}, "egress": [{"toCIDR": ["128.0.0.0/1"]}]}
    assert subject_groups(normalize(obj)) == [(0,), (1,)]


def test_many_entries_fall_back_to_pairwise_grouping_without_losing_pairs() -> None:
    # 14 mutually compatible entries: the search gives up and groups every pair that can overlap.
    many = [{"matchLabels": {f"k{i}": "v"}} for i in range(14)]
    found = groups(*many)
    assert found and all(len(g) == 14 for g in found)


def combined(obj: dict[str, Any]) -> tuple[Any, ...]:
    return enrich(normalize(obj), FactParams()).facts["egress"].combined_all_ports


@pytest.mark.parametrize("other", [
    {"matchLabels": {"app": "web"}},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    {},
    {"matchLabels": {"app": "web", "tier": "fe"}},
    {"matchLabels": {"tier": "fe"}},
])
def test_halves_in_grouped_entries_are_the_internet_on_every_port(other: dict[str, Any]) -> None:
    (reach,) = combined(specs(WEB, other))
    assert reach.internet_v4 and reach.rules == ("specs[0].egress[0]", "specs[1].egress[0]")


def test_halves_in_disjoint_entries_are_not_combined() -> None:
    assert combined(specs(WEB, {"matchLabels": {"app": "db"}})) == ()
