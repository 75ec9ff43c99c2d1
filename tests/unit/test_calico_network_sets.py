"""Calico NetworkSets and GlobalNetworkSets (webhook/core/cidr_groups.py, core/snapshot.py): a Calico rule's
selector peer is judged with the nets of every set its selector may match (over bound) when the cluster view
knows the sets, and keeps its notice when it does not, never silently passed."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kube_standin import KubeStandIn, Objects
from webhook.cluster.cluster_view import OPTIONAL_RESOURCES, RESOURCES, ClusterView, Watcher
from webhook.config import from_mapping
from webhook.core.admission import parse_review
from webhook.core.cidr_groups import network_sets_of, resolve, snapshot_lookup
from webhook.core.facts import FactParams, enrich
from webhook.core.netpolicy import NormalizedPolicy, PeerType
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.core.settings import ClusterSettings
from webhook.core.shape import ShapeError
from webhook.core.snapshot import DISABLED, ClusterSnapshot, network_set
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def netset(name: str, *nets: str, namespace: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet" if namespace else "GlobalNetworkSet",
            "metadata": meta, "spec": {"nets": list(nets)}}


def calico(destination: dict[str, Any], kind: str = "NetworkPolicy") -> NormalizedPolicy:
    meta = {"name": "p", "namespace": "team-a"} if kind == "NetworkPolicy" else {"name": "p"}
    return normalize({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta,
                      "spec": {"selector": "app == 'web'", "types": ["Egress"],
                               "egress": [{"action": "Allow", "destination": destination}]}})


def view(*objects: dict[str, Any], known: bool = True, **kw: Any) -> ClusterSnapshot:
    namespaces = {"team-a": {"env": "prod"}, "team-b": {"env": "dev"}}
    return ClusterSnapshot.from_objects(namespaces, list(objects), network_sets_known=known, **kw)


HALVES = netset("halves", "0.0.0.0/1", "128.0.0.0/1", namespace="team-a", labels={"role": "egress"})
SETS = (HALVES,
        netset("elsewhere", "198.51.100.0/24", namespace="team-b", labels={"role": "egress"}),
        netset("corp", "203.0.113.0/24", labels={"role": "egress"}),
        netset("other", "192.0.2.0/24", namespace="team-a", labels={"role": "db"}))


def sets_peer(policy: NormalizedPolicy) -> Any:
    (found,) = [p for p in policy.rules[0].peers if "calicoNetworkSets" in p.raw]
    return found


def test_a_selector_peer_becomes_the_nets_of_the_sets_it_matches_in_its_namespace() -> None:
    policy = calico({"selector": "role == 'egress'"})
    resolved, notices = resolve(policy, snapshot_lookup(view(*SETS)))
    assert notices == ()
    pods, *cidrs = resolved.rules[0].peers
    assert pods.type is PeerType.PODS
    assert [(p.type, p.cidr) for p in cidrs] == [(PeerType.CIDR, "0.0.0.0/1"), (PeerType.CIDR, "128.0.0.0/1")]
    assert all(p.path == "spec.egress[0].destination.selector" and "NetworkSet team-a/halves" in p.via
               for p in cidrs)
    facts = enrich(resolved, FactParams()).rules[0].facts
    assert facts.internet_v4 and facts.every_port  # the set's nets are the IPv4 internet, judged as such


def test_global_network_sets_and_every_namespace_for_a_global_policy() -> None:
    policy = calico({"selector": "role == 'egress'"}, "GlobalNetworkPolicy")
    chosen = network_sets_of(view(*SETS), sets_peer(policy))
    assert [s.title for s in chosen or ()] == ["GlobalNetworkSet corp", "NetworkSet team-a/halves",
                                               "NetworkSet team-b/elsewhere"]
    only_global = calico({"selector": "role == 'egress'", "namespaceSelector": "global()"})
    assert [s.title for s in network_sets_of(view(*SETS), sets_peer(only_global)) or ()] == [
        "GlobalNetworkSet corp"]


def test_a_namespace_selector_picks_the_namespaces_by_their_labels() -> None:
    dev = calico({"selector": "role == 'egress'", "namespaceSelector": "env == 'dev'"})
    assert [s.title for s in network_sets_of(view(*SETS), sets_peer(dev)) or ()] == ["NetworkSet team-b/elsewhere"]
    by_name = calico({"namespaceSelector": "projectcalico.org/name == 'team-a'"})  # selector all(): every set there
    assert [s.title for s in network_sets_of(view(*SETS), sets_peer(by_name)) or ()] == [
        "NetworkSet team-a/halves", "NetworkSet team-a/other"]


def test_the_over_bound_is_used_so_a_set_that_could_match_is_not_missed() -> None:
    # `role starts with 'eg'` has no exact model selector: its over bound is `has(role)`, so both sets are counted in
    policy = calico({"selector": "role starts with 'eg' || role == 'db'"})
    assert [s.name for s in network_sets_of(view(*SETS), sets_peer(policy)) or ()] == ["halves", "other"]
    by_namespace = calico({"selector": "projectcalico.org/namespace == 'team-a' && role == 'db'"},
                          "GlobalNetworkPolicy")
    assert [s.name for s in network_sets_of(view(*SETS), sets_peer(by_namespace)) or ()] == ["other"]


def test_without_a_usable_view_the_notice_stays_and_the_peer_too() -> None:
    policy = calico({"selector": "role == 'egress'"})
    for snapshot in (DISABLED, view(*SETS, known=False), view(*SETS, synced=False), view(*SETS, stale=True)):
        resolved, notices = resolve(policy, snapshot_lookup(snapshot))
        assert resolved.rules == policy.rules
        (notice,) = notices
        assert notice.startswith("spec.egress[0].destination.selector: Calico NetworkSets whose labels match "
                                 "\"role == 'egress'\" are peers too")
        assert "cannot be judged without the cluster" in notice


def test_a_set_with_unreadable_nets_cannot_be_judged() -> None:
    broken = netset("broken", "not-a-cidr", namespace="team-a", labels={"role": "egress"})
    _, notices = resolve(calico({"selector": "role == 'egress'"}), snapshot_lookup(view(broken)))
    assert len(notices) == 1


def test_no_matching_set_leaves_the_inert_placeholder_and_no_notice() -> None:
    policy = calico({"selector": "role == 'none'"})
    resolved, notices = resolve(policy, snapshot_lookup(view(*SETS)))
    assert notices == () and resolved.rules == policy.rules


def test_network_set_objects_are_read_and_checked() -> None:
    found = network_set(netset("a", " 10.0.0.0/8", "10.1.2.3", "x", namespace="ns"))
    assert (found.namespace, found.nets, found.invalid) == ("ns", ("10.0.0.0/8", "10.1.2.3"), ("x",))
    assert network_set(netset("g")).namespace == ""
    for bad in ({"kind": "NetworkSet", "metadata": {"name": "a"}}, {"kind": "GlobalNetworkSet", "metadata": {}}):
        try:
            network_set(bad)
        except ShapeError:
            continue
        raise AssertionError(bad)


# --- the cluster view ------------------------------------------------------------------------------------------

NETWORK_SET_RESOURCES = ("networksets.projectcalico.org", "globalnetworksets.projectcalico.org")


def test_the_view_holds_network_sets_from_lists_and_events() -> None:
    view = ClusterView(resources=("namespaces", *NETWORK_SET_RESOURCES))
    view.replace("namespaces", [{"metadata": {"name": "team-a"}}])
    view.replace(NETWORK_SET_RESOURCES[0], [HALVES])
    assert view.snapshot().network_sets() is None  # not synced: cannot tell
    view.replace(NETWORK_SET_RESOURCES[1], [{k: v for k, v in SETS[2].items() if k != "kind"}])  # a list's items
    assert set(view.snapshot().network_sets() or {}) == {("team-a", "halves"), ("", "corp")}
    view.apply(NETWORK_SET_RESOURCES[0], "ADDED", SETS[3])
    view.apply(NETWORK_SET_RESOURCES[0], "DELETED", HALVES)
    view.apply(NETWORK_SET_RESOURCES[0], "ADDED", {**netset("bad", namespace="team-a"), "spec": "x"})
    assert set(view.snapshot().network_sets() or {}) == {("team-a", "other"), ("", "corp")}
    assert list(view.unreadable) == [("NetworkSet", "team-a", "bad")]
    view.replace(NETWORK_SET_RESOURCES[1], [])  # a list of one kind keeps the other kind's sets
    assert set(view.snapshot().network_sets() or {}) == {("team-a", "other")}
    assert view.status()["network_sets"] == 1
    # A view that does not watch them cannot tell (as with the view off): the notice stays.
    assert ClusterView(resources=("namespaces",)).snapshot().network_sets_known is False
    assert ClusterView().snapshot().network_sets_known is True
    assert set(NETWORK_SET_RESOURCES) <= set(RESOURCES) and set(NETWORK_SET_RESOURCES) <= OPTIONAL_RESOURCES


def test_the_watcher_lists_and_watches_network_sets(tmp_path: Path) -> None:
    served = Objects(namespaces=[{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}],
                     network_policies=[], cilium_network_policies=[], cilium_clusterwide_network_policies=[],
                     pods=[], network_sets=[HALVES], global_network_sets=[SETS[2]])
    with KubeStandIn(tmp_path, objects=served) as standin:
        watcher = Watcher(ClusterView(), ClusterSettings(enabled=True, kubeconfig=str(standin.kubeconfig)),
                          rng=random.Random(1))
        watcher.start()
        try:
            view = watcher.view
            assert wait_until(lambda: view.synced)
            assert set(view.snapshot().network_sets() or {}) == {("team-a", "halves"), ("", "corp")}
            assert standin.wait_for_watches(len(RESOURCES))
            standin.push(NETWORK_SET_RESOURCES[0], "DELETED", HALVES)
            assert wait_until(lambda: set(view.snapshot().network_sets() or {}) == {("", "corp")})
            reads = {r.path for r in standin.requests if "networksets" in r.path}
            assert reads == {"/apis/projectcalico.org/v3/networksets", "/apis/projectcalico.org/v3/globalnetworksets"}
        finally:
            watcher.stop()


def test_the_pipeline_judges_a_network_sets_nets_with_the_view_and_notices_without(pipeline: Pipeline) -> None:
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
           "metadata": {"name": "out", "namespace": "team-a"},
           "spec": {"selector": "app == 'web'", "types": ["Egress"],
                    "egress": [{"action": "Allow", "destination": {"selector": "role == 'egress'"}}]}}
    path = "spec.egress[0].destination.selector"
    with_view = pipeline.review(parse_review(make_review(obj)), view(*SETS)).decision
    assert any(f.finding.path == path for f in with_view.findings)  # the set's nets are the internet
    assert not any("NetworkSets whose labels match" in n for n in with_view.notices)
    without = pipeline.review(parse_review(make_review(obj)), DISABLED).decision
    assert not any(f.finding.path == path for f in without.findings)
    assert any("NetworkSets whose labels match" in n for n in without.notices)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))
