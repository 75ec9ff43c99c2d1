"""Calico's NetworkPolicy (projectcalico.org/v3): the namespaced Calico kind.

Its rules are the Calico policy language (webhook/kinds/calico.py). Namespaced: it selects endpoints of its own
namespace, and a peer selector without namespaceSelector means endpoints of that namespace
(projectcalico/api pkg/apis/projectcalico/v3/networkpolicy.go, policy_common.go EntityRule.NamespaceSelector).
Its name is qualified ("NetworkPolicy.projectcalico.org"): Kubernetes has a NetworkPolicy too.

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
    return calico.subjects_and_rules(obj, namespace, clusterwide=False)



KIND = PolicyKind(
    gvk=GroupVersionKind("projectcalico.org", "v3", "NetworkPolicy"),
    plural="networkpolicies",
    namespaced=True,
    optional_crd=True,
    project="Calico",
    flavor=Flavor.CALICO,
    normalizer=normalize_spec,
    placement=calico.placement,
    passive=calico.logged,
    phrasing=Phrasing(a="a Calico NetworkPolicy", subjects_in="in the policy's namespace"),
    order=60,
    qualified=True,
)
