"""What a set of normalized policies means for a namespace: the one definition of default deny.

Shared by the audit's posture figures (audit.py) and the webhook's cluster view (cluster_view.py),
so `netguard audit` and the namespace-has-default-deny guardrail can never disagree about which
namespaces are protected. Pure: policies and namespace labels in, booleans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from webhook.core.netpolicy import NormalizedPolicy, Scope, Subject
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, CILIUM_NAMESPACE_LABELS_PREFIX

DIRECTIONS = ("ingress", "egress")


def subject_covers_namespace(policy: NormalizedPolicy, subject: Subject, namespace: str,
                             ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    """Does this subject's namespace scope include `namespace`?"""
    if subject.selects != "pods":
        return False
    scope = subject.namespaces
    if not policy.clusterwide:
        return policy.namespace == namespace and scope.scope is Scope.OWN
    if scope.scope is Scope.ALL:
        return namespace not in scope.names
    if scope.scope is Scope.NAMED:
        return namespace in scope.names
    return scope.selector.namespace_part().matches(cilium_namespace_labels(namespace, ns_labels))


def cilium_namespace_labels(namespace: str, ns_labels: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The labels a clusterwide Cilium endpoint selector sees for pods of `namespace`."""
    labels = {CILIUM_NAMESPACE_LABEL: namespace}
    labels.update({CILIUM_NAMESPACE_LABELS_PREFIX + k: v for k, v in ns_labels.get(namespace, {}).items()})
    return labels


def has_default_deny(namespace: str, direction: str, policies: Iterable[NormalizedPolicy],
                     ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    """A default-deny baseline: a policy that selects every pod of the namespace, isolates the direction
    and allows nothing in it (kubeaudit's definition), so only what other policies allow gets through."""
    return any(subject_covers_namespace(policy, subject, namespace, ns_labels)
               for policy, subject in baseline_subjects(direction, policies))


def baseline_subjects(direction: str,
                      policies: Iterable[NormalizedPolicy]) -> Iterator[tuple[NormalizedPolicy, Subject]]:
    """The subjects that make a default-deny baseline for `direction` in every namespace they cover: they
    select every pod, isolate the direction and no rule of theirs allows anything in it."""
    for policy in policies:
        for subject in policy.subjects:
            if not subject.isolates.get(direction) or not subject.selector.pod_part().empty:
                continue
            if not any(r.subject == subject.index and r.direction.value == direction and r.action.value == "allow"
                       and r.effective and not r.matches_nothing for r in policy.rules):
                yield policy, subject


def default_deny(namespace: str, policies: Iterable[NormalizedPolicy],
                 ns_labels: Mapping[str, Mapping[str, str]]) -> dict[str, bool]:
    """{"ingress": bool, "egress": bool} for `namespace`."""
    policies = tuple(policies)
    return {d: has_default_deny(namespace, d, policies, ns_labels) for d in DIRECTIONS}
