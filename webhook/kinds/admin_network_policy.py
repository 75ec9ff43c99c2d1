"""AdminNetworkPolicy (policy.networking.k8s.io/v1alpha1): cluster-scoped, the Admin tier.

Its rules are the network-policy-api language (webhook/kinds/npapi.py): actions Allow / Deny / Pass, a
`priority` from 0 to 1000 (lower first) within the Admin tier, which is evaluated before every NetworkPolicy
(apis/v1alpha1/adminnetworkpolicy_types.go). A CRD: clusters without network-policy-api do not serve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import npapi
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return npapi.subjects_and_rules(obj, npapi.ADMIN, npapi.V1ALPHA1_ACTIONS, npapi.EGRESS_PEERS, "ports")


def placement(obj: Mapping[str, Any]) -> tuple[str, float | None]:
    return npapi.ADMIN, npapi.priority(obj)



KIND = PolicyKind(
    gvk=GroupVersionKind("policy.networking.k8s.io", "v1alpha1", "AdminNetworkPolicy"),
    plural="adminnetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Kubernetes network-policy-api",
    # Its selectors are plain Kubernetes label selectors (namespaces by their labels), as NetworkPolicy's.
    flavor=Flavor.KUBERNETES,
    normalizer=normalize_spec,
    placement=placement,
    phrasing=Phrasing(a="an AdminNetworkPolicy", subjects_in="in every namespace"),
    order=100,
)
