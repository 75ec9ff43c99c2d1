"""Calico's StagedGlobalNetworkPolicy (projectcalico.org/v3): a GlobalNetworkPolicy staged, not enforced.

Its spec is the GlobalNetworkPolicy spec plus `stagedAction` (projectcalico/api pkg/apis/projectcalico/v3/
stagedglobalnetworkpolicy.go StagedGlobalNetworkPolicySpec); it is read as the GlobalNetworkPolicy reads it
(webhook/kinds/calico_global_network_policy.py), through `staged_action.staged`. Cluster-scoped. Calico does
not enforce it, so netguard never denies it for what it would do (`enforced=False`, webhook/core/decide.py);
who may write it is another matter: cluster-scoped-policy-restricted still denies a team (see decide.py).
"""

from __future__ import annotations

from webhook.core.netpolicy import Flavor
from webhook.kinds import calico
from webhook.kinds.calico_global_network_policy import normalize_spec as enforced_spec
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind
from webhook.kinds.staged_action import staged

normalize_spec = staged(enforced_spec)


KIND = PolicyKind(
    gvk=GroupVersionKind("projectcalico.org", "v3", "StagedGlobalNetworkPolicy"),
    plural="stagedglobalnetworkpolicies",
    namespaced=False,
    optional_crd=True,
    project="Calico",
    flavor=Flavor.CALICO,
    normalizer=normalize_spec,
    placement=calico.placement,
    passive=calico.logged,
    phrasing=Phrasing(a="a StagedGlobalNetworkPolicy", subjects_in="in every namespace"),
    order=85,
    enforced=False,
)
