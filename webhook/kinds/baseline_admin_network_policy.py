"""BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1): cluster-scoped, the Baseline tier.

A singleton named `default` (the CRD's validation rule), evaluated after every NetworkPolicy: it decides only
for traffic no NetworkPolicy selects. Its rules are the network-policy-api language (webhook/kinds/npapi.py)
with actions Allow / Deny and no domainNames peers (apis/v1alpha1/baselineadminnetworkpolicy_types.go).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import npapi
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return npapi.subjects_and_rules(obj, npapi.BASELINE, npapi.BANP_ACTIONS, npapi.BANP_EGRESS_PEERS, "ports")


def placement(obj: Mapping[str, Any]) -> tuple[str, float | None]:
    return npapi.BASELINE, None



KIND = PolicyKind(
    gvk=GroupVersionKind("policy.networking.k8s.io", "v1alpha1", "BaselineAdminNetworkPolicy"),
    plural="baselineadminnetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Kubernetes network-policy-api",
    flavor=Flavor.KUBERNETES,
    normalizer=normalize_spec,
    placement=placement,
    phrasing=Phrasing(a="a BaselineAdminNetworkPolicy", subjects_in="in every namespace"),
    order=110,
)
