"""webhook/core/cidr_groups.py: `cidrGroupRef` / `cidrGroupSelector` peers are judged as the CIDRs of the
CiliumCIDRGroups they name (with the cluster view), or reported as not judgeable (without it), never
silently passed."""

from __future__ import annotations

from typing import Any

from webhook.core.cidr_groups import resolve, snapshot_lookup
from webhook.core.facts import FactParams, enrich
from webhook.core.netpolicy import NormalizedPolicy, PeerType
from webhook.core.normalize import normalize
from webhook.core.snapshot import DISABLED, ClusterSnapshot


def group(name: str, *cidrs: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumCIDRGroup",
            "metadata": {"name": name, "labels": labels or {}}, "spec": {"externalCIDRs": list(cidrs)}}


def policy(*entries: dict[str, Any], to_ports: bool = False) -> NormalizedPolicy:
    rule: dict[str, Any] = {"toCIDRSet": list(entries)}
    if to_ports:
        rule["toPorts"] = [{"ports": [{"port": "443", "protocol": "TCP"}]}]
    return normalize({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                      "metadata": {"name": "g", "namespace": "team-a"},
                      "spec": {"endpointSelector": {}, "egress": [rule]}})


def snapshot(*objects: dict[str, Any]) -> ClusterSnapshot:
    return ClusterSnapshot.from_objects({"team-a": {}}, list(objects))


HALVES = group("halves", "0.0.0.0/1", "128.0.0.0/1")


def test_a_group_reference_is_replaced_by_the_groups_cidrs() -> None:
    resolved, notices = resolve(policy({"cidrGroupRef": "halves"}), snapshot_lookup(snapshot(HALVES)))
    assert notices == ()
    peers = resolved.rules[0].peers
    assert [(p.type, p.cidr) for p in peers] == [(PeerType.CIDR, "0.0.0.0/1"), (PeerType.CIDR, "128.0.0.0/1")]
    assert all(p.path == "spec.egress[0].toCIDRSet[0]" and "halves" in p.via for p in peers)
    facts = enrich(resolved, FactParams()).rules[0].facts
    assert facts.internet_v4 and facts.every_port  # the two halves are the IPv4 internet on every port


def test_the_entrys_excepts_follow_the_cidrs_they_fall_in() -> None:
    entry = {"cidrGroupRef": "halves", "except": ["169.254.169.254/32", "10.0.0.0/8"]}
    resolved, _ = resolve(policy(entry), snapshot_lookup(snapshot(HALVES)))
    low, high = resolved.rules[0].peers
    assert low.excepts == ("10.0.0.0/8",) and high.excepts == ("169.254.169.254/32",)
    assert enrich(resolved, FactParams()).rules[0].facts.metadata == ()


def test_a_group_selector_expands_every_group_it_selects() -> None:
    view = snapshot(group("low", "0.0.0.0/1", labels={"owner": "a"}),
                    group("high", "128.0.0.0/1", labels={"owner": "a"}),
                    group("other", "198.51.100.0/24", labels={"owner": "b"}))
    resolved, notices = resolve(policy({"cidrGroupSelector": {"matchLabels": {"owner": "a"}}}), snapshot_lookup(view))
    assert notices == ()
    assert sorted(p.cidr for p in resolved.rules[0].peers) == ["0.0.0.0/1", "128.0.0.0/1"]


def test_without_the_cluster_view_a_notice_names_the_group_and_the_peer_stays() -> None:
    for view in (DISABLED, ClusterSnapshot.from_objects({}, [HALVES], stale=True),
                 ClusterSnapshot.from_objects({}, [HALVES], synced=False)):
        resolved, notices = resolve(policy({"cidrGroupRef": "halves"}), snapshot_lookup(view))
        assert len(notices) == 1
        assert notices[0].startswith("spec.egress[0].toCIDRSet[0]: CiliumCIDRGroup halves cannot be judged")
        assert [p.type for p in resolved.rules[0].peers] == [PeerType.GROUP]


def test_without_the_view_a_selector_notice_names_the_labels() -> None:
    _, notices = resolve(policy({"cidrGroupSelector": {"matchLabels": {"owner": "a"}}}), snapshot_lookup(DISABLED))
    assert len(notices) == 1 and "owner In a" in notices[0]


def test_a_missing_group_allows_nothing() -> None:
    resolved, notices = resolve(policy({"cidrGroupRef": "nope"}), snapshot_lookup(snapshot(HALVES)))
    assert notices == ()
    (peer,) = resolved.rules[0].peers
    assert peer.type is PeerType.GROUP  # kept so the rule still names a peer, but it reaches no address
    facts = enrich(resolved, FactParams()).rules[0].facts
    assert not facts.internet_v4 and not facts.internet_v6 and facts.metadata == ()


def test_an_empty_group_allows_nothing() -> None:
    resolved, notices = resolve(policy({"cidrGroupRef": "empty"}), snapshot_lookup(snapshot(group("empty"))))
    assert notices == ()
    facts = enrich(resolved, FactParams()).rules[0].facts
    assert not facts.internet_v4 and facts.metadata == ()


def test_a_group_with_unreadable_cidrs_cannot_be_judged() -> None:
    view = snapshot(group("broken", "0.0.0.0/1", "not-a-cidr"))
    _, notices = resolve(policy({"cidrGroupRef": "broken"}), snapshot_lookup(view))
    assert len(notices) == 1 and "broken" in notices[0]


def test_peers_that_are_not_groups_are_left_alone() -> None:
    original = policy({"cidr": "198.51.100.0/24"}, {"cidrGroupRef": "halves"})
    resolved, _ = resolve(original, snapshot_lookup(snapshot(HALVES)))
    assert resolved.rules[0].peers[0] == original.rules[0].peers[0]
    assert len(resolved.rules[0].peers) == 3


def test_an_empty_group_selector_is_read_as_the_world() -> None:
    (peer,) = policy({"cidrGroupSelector": {}}).rules[0].peers
    assert (peer.type, peer.entity) == (PeerType.ENTITY, "world")
