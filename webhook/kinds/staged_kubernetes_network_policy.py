"""Calico's StagedKubernetesNetworkPolicy (projectcalico.org/v3): a Kubernetes NetworkPolicy staged by Calico.

Its spec is a Kubernetes NetworkPolicySpec (podSelector, ingress, egress, policyTypes) plus `stagedAction`
(projectcalico/api pkg/apis/projectcalico/v3/stagedkubernetesnetworkpolicy.go); promoted, it becomes a
networking.k8s.io/v1 NetworkPolicy (ConvertStagedKubernetesPolicyToK8SEnforced), so it is read as that kind
reads it (webhook/kinds/networkpolicy.py, policyTypes defaulting included), through `staged_action.staged`.
Calico does not enforce it, so netguard never denies it for what it would do (`enforced=False`,
webhook/core/decide.py).
"""

from __future__ import annotations

from webhook.core.netpolicy import Flavor
from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind
from webhook.kinds.networkpolicy import normalize_spec as enforced_spec
from webhook.kinds.staged_action import staged

normalize_spec = staged(enforced_spec)

KIND = PolicyKind(
    gvk=GroupVersionKind("projectcalico.org", "v3", "StagedKubernetesNetworkPolicy"),
    plural="stagedkubernetesnetworkpolicies",
    namespaced=True,
    optional_crd=True,
    project="Calico",
    flavor=Flavor.KUBERNETES,
    normalizer=normalize_spec,
    phrasing=Phrasing(a="a StagedKubernetesNetworkPolicy", subjects_in="in the policy's namespace"),
    order=90,
    enforced=False,
)
