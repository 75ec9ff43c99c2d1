"""Calico's StagedNetworkPolicy (projectcalico.org/v3): a Calico NetworkPolicy staged, not enforced.

Its spec is Calico's NetworkPolicy spec plus `stagedAction` (projectcalico/api pkg/apis/projectcalico/v3/
stagednetworkpolicy.go StagedNetworkPolicySpec); it is read as Calico's NetworkPolicy reads it
(webhook/kinds/calico_network_policy.py), through `staged_action.staged`. Calico does not enforce it, so
netguard reviews it by the same guardrails but never denies it for what it would do (`enforced=False`,
webhook/core/decide.py): the team sees the problem before it promotes the policy.
"""

from __future__ import annotations

from webhook.core.netpolicy import Flavor
from webhook.kinds import calico
from webhook.kinds.calico_network_policy import normalize_spec as enforced_spec
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind
from webhook.kinds.staged_action import staged

normalize_spec = staged(enforced_spec)


KIND = PolicyKind(
    gvk=GroupVersionKind("projectcalico.org", "v3", "StagedNetworkPolicy"),
    plural="stagednetworkpolicies",
    namespaced=True,
    optional_crd=True,
    project="Calico",
    flavor=Flavor.CALICO,
    normalizer=normalize_spec,
    placement=calico.placement,
    passive=calico.logged,
    phrasing=Phrasing(a="a StagedNetworkPolicy", subjects_in="in the policy's namespace"),
    order=80,
    enforced=False,
)
