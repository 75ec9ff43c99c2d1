"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2, network-policy-api v0.2.0): cluster-scoped, the
successor of AdminNetworkPolicy and BaselineAdminNetworkPolicy in one kind.

`spec.tier` (Admin or Baseline) says where it is evaluated: Admin before every NetworkPolicy, Baseline after;
`spec.priority` (0 to 1000, lower first) orders it within the tier. Actions Accept / Deny / Pass; ports are
`protocols` entries (apis/v1alpha2/clusternetworkpolicy_types.go; webhook/kinds/npapi.py). Matched on its API
group: Antrea's crd.antrea.io ClusterNetworkPolicy is another kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import npapi
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return npapi.subjects_and_rules(obj, npapi.tier(obj), npapi.V1ALPHA2_ACTIONS, npapi.EGRESS_PEERS, "protocols")


def placement(obj: Mapping[str, Any]) -> tuple[str, float | None]:
    return npapi.tier(obj), npapi.priority(obj)



KIND = PolicyKind(
    gvk=GroupVersionKind("policy.networking.k8s.io", "v1alpha2", "ClusterNetworkPolicy"),
    plural="clusternetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Kubernetes network-policy-api",
    flavor=Flavor.KUBERNETES,
    normalizer=normalize_spec,
    placement=placement,
    phrasing=Phrasing(a="a ClusterNetworkPolicy", subjects_in="in every namespace"),
    order=120,
)
