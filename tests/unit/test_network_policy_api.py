"""The sig-network network-policy-api kinds (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
ClusterNetworkPolicy): normalization, the default-deny posture, explain and `netguard baseline --flavor cnp-*`."""

from __future__ import annotations

from typing import Any

import pytest

from webhook import kinds
from webhook.core.explain import explain, render_text
from webhook.core.facts import FactParams, enrich
from webhook.core.netpolicy import Action, Direction, NormalizedPolicy, PeerType, Scope
from webhook.core.normalize import normalize
from webhook.core.posture import default_deny
from webhook.core.shape import ShapeError
from webhook.offline.baseline import BaselineOptions, baseline_objects

GROUP = "policy.networking.k8s.io"
SENSITIVE = {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "sensitive"}}}


def anp(spec: dict[str, Any], name: str = "anp") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "AdminNetworkPolicy", "metadata": {"name": name},
            "spec": {"priority": 10, "subject": SENSITIVE, **spec}}


def banp(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}}, **spec}}


def cnp(spec: dict[str, Any], tier: str = "Admin") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ClusterNetworkPolicy", "metadata": {"name": "cnp"},
            "spec": {"tier": tier, "priority": 30, "subject": SENSITIVE, **spec}}


DENY_ALL_INGRESS = [{"action": "Deny", "from": [{"namespaces": {}}]}]


# --- the registry --------------------------------------------------------------------------------

def test_the_kinds_are_registered_by_group_and_kind_as_cluster_scoped_optional_crds() -> None:
    for version, kind in (("v1alpha1", "AdminNetworkPolicy"), ("v1alpha1", "BaselineAdminNetworkPolicy"),
                          ("v1alpha2", "ClusterNetworkPolicy")):
        found = kinds.lookup(GROUP, kind)
        assert found is not None and found.version == version
        assert not found.namespaced and found.optional_crd
    # Antrea's ClusterNetworkPolicy is another API group: not read as the network-policy-api kind.
    assert kinds.lookup("crd.antrea.io", "ClusterNetworkPolicy") is None


# --- normalization -------------------------------------------------------------------------------

def test_tier_and_priority_are_set_per_kind() -> None:
    assert (normalize(anp({})).tier, normalize(anp({})).priority) == ("Admin", 10)
    assert (normalize(banp({})).tier, normalize(banp({})).priority) == ("Baseline", None)
    assert (normalize(cnp({}, tier="Baseline")).tier, normalize(cnp({}, tier="Baseline")).priority) == ("Baseline", 30)
    assert normalize(cnp({})).clusterwide


def test_actions_map_to_allow_deny_and_pass() -> None:
    peer = [{"namespaces": {}}]
    policy = normalize(anp({"ingress": [{"action": a, "from": peer} for a in ("Allow", "Deny", "Pass")]}))
    assert [r.action for r in policy.rules] == [Action.ALLOW, Action.DENY, Action.PASS]
    policy = normalize(cnp({"egress": [{"action": a, "to": peer} for a in ("Accept", "Deny", "Pass")]}))
    assert [r.action for r in policy.rules] == [Action.ALLOW, Action.DENY, Action.PASS]


@pytest.mark.parametrize(("obj", "field"), [
    (banp({"ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}), "spec.ingress[0].action"),
    (cnp({"ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}), "spec.ingress[0].action"),
    (anp({"ingress": [{"action": "Allow", "from": []}]}), "spec.ingress[0].from"),
    (anp({"ingress": [{"action": "Allow", "from": [{"networks": ["0.0.0.0/0"]}]}]}),
     "spec.ingress[0].from[0].networks"),
    (banp({"egress": [{"action": "Allow", "to": [{"domainNames": ["a.example.com"]}]}]}),
     "spec.egress[0].to[0].domainNames"),
    (anp({"egress": [{"action": "Allow", "to": [{"namespaces": {}, "nodes": {}}]}]}), "spec.egress[0].to[0]"),
    (anp({"egress": [{"action": "Allow", "to": [{"namespaces": {}}], "ports": [{"portNumber": {"port": 0}}]}]}),
     "spec.egress[0].ports[0].portNumber.port"),
    (cnp({"egress": [{"action": "Accept", "to": [{"namespaces": {}}], "ports": []}]}), "spec.egress[0].ports"),
    ({**cnp({}), "spec": {**cnp({})["spec"], "tier": "Platform"}}, "spec.tier"),
    ({**anp({}), "spec": {**anp({})["spec"], "priority": 1001}}, "spec.priority"),
    ({**anp({}), "spec": {"priority": 1}}, "spec.subject"),
])
def test_shape_errors_name_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(ShapeError) as caught:
        normalize(obj)
    assert caught.value.path == field


def test_subjects_have_a_namespace_scope() -> None:
    policy = normalize(anp({}))
    (subject,) = policy.subjects
    assert subject.namespaces.scope is Scope.NAMED and subject.namespaces.names == ("sensitive",)
    assert subject.selector.empty and subject.selector_path == "spec.subject.namespaces"
    pods = normalize(anp({"subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}}}))
    assert pods.subjects[0].namespaces.scope is Scope.ALL
    assert not pods.subjects[0].selector.empty and pods.subjects[0].selector_path == "spec.subject.pods.podSelector"


def test_peers_keep_their_paths_and_map_to_the_model() -> None:
    policy = enrich(normalize(anp({"egress": [{"action": "Allow", "to": [
        {"namespaces": {}},
        {"pods": {"namespaceSelector": SENSITIVE["namespaces"], "podSelector": {}}},
        {"networks": ["10.0.0.0/8", "0.0.0.0/0"]},
        {"nodes": {}},
        {"domainNames": ["*.example.com", "api.example.org"]},
    ]}]})), FactParams())
    peers = {p.path: p for p in policy.rules[0].peers}
    base = "spec.egress[0].to"
    assert peers[f"{base}[0].namespaces"].facts.all_namespaces  # no-all-namespaces-peer sees it
    assert peers[f"{base}[1].pods"].namespaces is not None
    assert peers[f"{base}[1].pods"].namespaces.names == ("sensitive",)
    assert peers[f"{base}[2].networks[0]"].type is PeerType.CIDR
    assert "pod traffic" in peers[f"{base}[2].networks[1]"].describe()  # the API's documented trap
    assert "pod traffic" not in peers[f"{base}[2].networks[0]"].describe()
    assert peers[f"{base}[3].nodes"].facts.infrastructure == ("host", "remote-node")
    assert peers[f"{base}[4].domainNames[0]"].fqdn_pattern == "*.example.com"
    assert peers[f"{base}[4].domainNames[1]"].fqdn_name == "api.example.org"
    assert policy.rules[0].facts.internet_v4


def test_ports_of_both_versions() -> None:
    v1 = normalize(anp({"ingress": [{"action": "Allow", "from": [{"namespaces": {}}], "ports": [
        {"portNumber": {"port": 80}}, {"portRange": {"protocol": "UDP", "start": 1000, "end": 2000}},
        {"namedPort": "http"}]}]}))
    assert [p.label() for p in v1.rules[0].ports] == ["TCP/80", "UDP/1000-2000", "ANY/http"]
    v2 = normalize(cnp({"ingress": [{"action": "Accept", "from": [{"namespaces": {}}], "protocols": [
        {"tcp": {"destinationPort": {"number": 8080}}},
        {"sctp": {"destinationPort": {"range": {"start": 1, "end": 9}}}},
        {"destinationNamedPort": "metrics"}]}]}))
    assert [p.label() for p in v2.rules[0].ports] == ["TCP/8080", "SCTP/1-9", "ANY/metrics"]
    assert [p.path for p in v2.rules[0].ports] == [f"spec.ingress[0].protocols[{i}]" for i in range(3)]


# --- posture -------------------------------------------------------------------------------------

def _deny(policies: list[NormalizedPolicy], namespace: str = "team-a") -> dict[str, bool]:
    labels = {"team-a": {"team": "a"}, "sensitive": {}}
    return default_deny(namespace, policies, labels)


def test_a_baseline_deny_all_is_a_default_deny() -> None:
    egress = [{"action": "Deny", "to": [{"networks": ["0.0.0.0/0", "::/0"]}]}]
    assert _deny([normalize(banp({"ingress": DENY_ALL_INGRESS, "egress": egress}))]) == {"ingress": True,
                                                                                         "egress": True}
    baseline_cnp = normalize(cnp({"ingress": DENY_ALL_INGRESS}, tier="Baseline"))
    assert _deny([baseline_cnp], "sensitive") == {"ingress": True, "egress": False}
    assert _deny([baseline_cnp], "team-a") == {"ingress": False, "egress": False}  # not its subject


def test_a_subject_selected_by_namespace_labels_covers_namespaces_with_those_labels() -> None:
    obj = banp({"subject": {"namespaces": {"matchLabels": {"team": "a"}}}, "ingress": DENY_ALL_INGRESS})
    assert _deny([normalize(obj)], "team-a")["ingress"]
    assert not _deny([normalize(obj)], "sensitive")["ingress"]


@pytest.mark.parametrize("obj", [
    anp({"subject": {"namespaces": {}}, "ingress": DENY_ALL_INGRESS}),  # the Admin tier is no baseline
    banp({"ingress": [{"action": "Allow", "from": [SENSITIVE]}, *DENY_ALL_INGRESS]}),  # an allow before it
    banp({"ingress": [{"action": "Deny", "from": [SENSITIVE]}]}),  # not every peer
    banp({"ingress": [{"action": "Deny", "from": [{"namespaces": {}}], "ports": [{"portNumber": {"port": 1}}]}]}),
    banp({"egress": [{"action": "Deny", "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0"]}]}]}),  # IPv6 open
    banp({"subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}},
          "ingress": DENY_ALL_INGRESS}),  # some pods only
])
def test_what_is_not_a_default_deny(obj: dict[str, Any]) -> None:
    assert _deny([normalize(obj)]) == {"ingress": False, "egress": False}


# --- explain -------------------------------------------------------------------------------------

def _text(obj: dict[str, Any]) -> str:
    return render_text([("heading", explain(enrich(normalize(obj), FactParams())))])


def test_explain_says_the_tier_the_priority_and_where_pass_goes() -> None:
    admin = _text(anp({"ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}))
    assert "Admin tier, priority 10" in admin and "before every NetworkPolicy" in admin
    assert "goes on to NetworkPolicy, then the Baseline tier" in admin
    baseline = _text(banp({"ingress": DENY_ALL_INGRESS}))
    assert "Baseline tier: evaluated after NetworkPolicy" in baseline
    assert "default deny (a Baseline-tier deny-all)" in baseline
    assert "deny rules win" not in baseline  # the order decides, not the action
    assert "namespaces {} matches every namespace" in baseline  # the field as this kind spells it


# --- netguard baseline --flavor cnp-admin|cnp-baseline -------------------------------------------------

@pytest.mark.parametrize(("flavor", "tier"), [("cnp-admin", "Admin"), ("cnp-baseline", "Baseline")])
def test_cnp_baselines_deny_all_in_their_tier(flavor: str, tier: str) -> None:
    objects = baseline_objects(BaselineOptions("team-a", flavor, allow_dns=True, allow_same_namespace=True))
    policies = [normalize(o) for o in objects]
    assert {p.kind for p in policies} == {"ClusterNetworkPolicy"} and {p.tier for p in policies} == {tier}
    deny = next(p for p in policies if p.name == "team-a-default-deny")
    allows = [p for p in policies if p is not deny]
    assert all(p.priority is not None and deny.priority is not None and p.priority < deny.priority for p in allows)
    assert all(r.action is Action.DENY for r in deny.rules)
    assert {r.direction for r in deny.rules} == {Direction.INGRESS, Direction.EGRESS}
    expected = tier == "Baseline"
    assert _deny([deny], "team-a") == {"ingress": expected, "egress": expected}
    assert _deny([deny], "sensitive") == {"ingress": False, "egress": False}
