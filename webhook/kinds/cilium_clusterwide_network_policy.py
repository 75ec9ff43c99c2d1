"""CiliumClusterwideNetworkPolicy (cilium.io/v2): the cluster-scoped Cilium kind.

Its rules are the Cilium policy language (webhook/kinds/cilium.py). Cluster-scoped: no metadata.namespace,
its endpoint selector selects pods of every namespace unless a namespace key narrows it, and so does an
endpoint selector in its rules. The API server ignores a webhook's namespaceSelector for it (cluster-scoped
objects), so every one is sent to netguard. A CRD: clusters without Cilium do not serve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject
from webhook.kinds import cilium
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind


def normalize_spec(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
    return cilium.subjects_and_rules(obj, namespace, clusterwide=True)


KIND = PolicyKind(
    gvk=GroupVersionKind("cilium.io", "v2", "CiliumClusterwideNetworkPolicy"),
    plural="ciliumclusterwidenetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Cilium",
    flavor=Flavor.CILIUM,
    normalizer=normalize_spec,
    phrasing=Phrasing(a="a CiliumClusterwideNetworkPolicy", subjects_in="in every namespace"),
    order=30,
)
