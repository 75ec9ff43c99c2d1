"""Calico's GlobalNetworkPolicy (projectcalico.org/v3): the cluster-scoped Calico kind.

Its rules are the Calico policy language (webhook/kinds/calico.py). Cluster-scoped: it selects endpoints of
every namespace (narrowed by spec.namespaceSelector) and host endpoints, and a peer selector without
namespaceSelector means endpoints of every namespace (projectcalico/api pkg/apis/projectcalico/v3/
globalnetworkpolicy.go, policy_common.go EntityRule.NamespaceSelector).

It reaches an admission webhook only where the API server serves projectcalico.org/v3 as CRDs (Calico's native
v3 CRD mode); behind Calico's aggregated API server the webhook never sees these writes (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import calico
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return calico.subjects_and_rules(obj, namespace, clusterwide=True)



KIND = PolicyKind(
    gvk=GroupVersionKind("projectcalico.org", "v3", "GlobalNetworkPolicy"),
    plural="globalnetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Calico",
    flavor=Flavor.CALICO,
    normalizer=normalize_spec,
    placement=calico.placement,
    passive=calico.logged,
    phrasing=Phrasing(a="a GlobalNetworkPolicy", subjects_in="in every namespace"),
    order=70,
)
