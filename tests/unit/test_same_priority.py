"""`input.cluster.same_priority`: stored policies that tie with the request on kind, tier and priority.

Kinds with tiers come from issue 14; the snapshot only compares the normalized fields, so NetworkPolicies with a
tier and priority set by hand stand in for them here."""

from __future__ import annotations

from dataclasses import replace

from webhook.core.model import Operation
from webhook.core.netpolicy import NormalizedPolicy
from webhook.core.normalize import normalize
from webhook.core.snapshot import DISABLED, ClusterSnapshot, policy_key


def _policy(name: str, tier: str = "Admin", priority: float | None = 10) -> NormalizedPolicy:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": "team-a"}, "spec": {"podSelector": {}}}
    return replace(normalize(obj), tier=tier, priority=priority)


def _snapshot(*policies: NormalizedPolicy) -> ClusterSnapshot:
    return ClusterSnapshot(synced=True, age_seconds=0.0, namespaces={"team-a": {}},
                           by_namespace={"team-a": {policy_key(p): p for p in policies}})


def test_a_stored_policy_of_the_same_kind_tier_and_priority_is_named() -> None:
    snap = _snapshot(_policy("first"), _policy("other-priority", priority=20), _policy("baseline", tier="Baseline"))
    cluster = snap.to_input("team-a", _policy("second"), Operation.CREATE, {})
    assert cluster["same_priority"] == [{"kind": "NetworkPolicy", "namespace": "team-a", "name": "first"}]


def test_the_policy_itself_a_delete_and_kinds_without_priority_tie_with_nothing() -> None:
    snap = _snapshot(_policy("first"), _policy("no-tier", tier="", priority=None))
    assert snap.to_input("team-a", _policy("first"), Operation.UPDATE, {})["same_priority"] == []
    assert snap.to_input("team-a", _policy("second"), Operation.DELETE, {})["same_priority"] == []
    assert snap.to_input("team-a", _policy("plain", tier="", priority=None), Operation.CREATE, {})[
        "same_priority"] == []


def test_an_untrusted_view_names_nothing() -> None:
    stale = replace(_snapshot(_policy("first")), stale=True)
    assert stale.to_input("team-a", _policy("second"), Operation.CREATE, {})["same_priority"] == []
    assert DISABLED.to_input("team-a", _policy("second"), Operation.CREATE, {})["same_priority"] == []
