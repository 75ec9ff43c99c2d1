"""CiliumNetworkPolicy (cilium.io/v2): the namespaced Cilium kind.

Its rules are the Cilium policy language (webhook/kinds/cilium.py). Namespaced: Cilium adds the policy's
namespace to its endpoint selector (pkg/policy/api/rule.go `getEndpointSelector`), so it only ever selects
pods of its own namespace, and an endpoint selector in its rules without a namespace key means pods of that
namespace. A CRD: clusters without Cilium do not serve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import cilium
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return cilium.subjects_and_rules(obj, namespace, clusterwide=False)


KIND = PolicyKind(
    gvk=GroupVersionKind("cilium.io", "v2", "CiliumNetworkPolicy"),
    plural="ciliumnetworkpolicies",
    namespaced=True,
    optional_crd=True,
    project="Cilium",
    flavor=Flavor.CILIUM,
    normalizer=normalize_spec,
    phrasing=Phrasing(a="a CiliumNetworkPolicy", subjects_in="in the policy's namespace"),
    order=20,
)
