"""What a set of normalized policies means for a namespace: the one definition of default deny.

Shared by the audit's posture figures (audit.py) and the webhook's cluster view (cluster_view.py),
so `netguard audit` and the namespace-has-default-deny guardrail can never disagree about which
namespaces are protected. Pure: policies and namespace labels in, booleans out.

The network-policy-api kinds (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy) isolate
nothing by selecting pods; their default deny is a Baseline-tier rule that denies every peer, which decides
whatever no NetworkPolicy decides (network-policy-api apis/v1alpha2 ClusterNetworkPolicySpec.Tier): a
BaselineAdminNetworkPolicy or a Baseline-tier ClusterNetworkPolicy deny-all is a default-deny baseline. An
Admin-tier deny-all is not a baseline: nothing after it can allow anything.

A policy of a kind the network does not enforce (Calico's Staged kinds, `PolicyKind.enforced`) protects nothing:
it only reports what it would do until promoted (webhook/kinds/staged_action.py), so it is no baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from webhook.core.netpolicy import Action, Flavor, NormalizedPolicy, Peer, PeerType, Rule, Scope, Subject
from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, CILIUM_NAMESPACE_LABELS_PREFIX, NAMESPACE_NAME_LABEL

DIRECTIONS = ("ingress", "egress")
# The tiers of the network-policy-api kinds (NormalizedPolicy.tier); the baseline tier decides after NetworkPolicy.
NPAPI_TIERS = ("Admin", "Baseline")
BASELINE_TIER = "Baseline"
_WHOLE_FAMILIES = frozenset({"0.0.0.0/0", "::/0"})


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
    if policy.flavor is Flavor.KUBERNETES:  # a network-policy-api namespace selector: the namespace's own labels
        return scope.selector.matches({**ns_labels.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace})
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
    from webhook import kinds  # lazily: kinds/npapi.py imports this module

    for policy in policies:
        policy_kind = kinds.named(policy.kind)
        if policy_kind is not None and not policy_kind.enforced:
            continue
        if _network_policy_api(policy):
            if policy.tier == BASELINE_TIER:
                yield from ((policy, s) for s in policy.subjects if baseline_deny_all(policy.rules, s, direction))
            continue
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


def _network_policy_api(policy: NormalizedPolicy) -> bool:
    """A network-policy-api kind: clusterwide, Kubernetes label selectors, an Admin or Baseline tier."""
    return policy.clusterwide and policy.flavor is Flavor.KUBERNETES and policy.tier in NPAPI_TIERS


def baseline_deny_all(rules: Iterable[Rule], subject: Subject, direction: str) -> bool:
    """Read on a Baseline-tier policy's rules (the network-policy-api kinds mark such a subject as isolating the
    direction, kinds/npapi.py): the subject selects every pod of its namespaces and its first rule of
    `direction` that decides for every peer on every port denies (rules are evaluated in written order, the
    first match wins): a rule before it that accepts or passes some traffic lets that through, so the subject
    is then no deny-all."""
    if not subject.selector.pod_part().empty:
        return False
    for rule in rules:
        if rule.subject != subject.index or rule.direction.value != direction:
            continue
        if rule.action is Action.DENY and _every_peer(rule):
            return True
        if rule.action is not Action.DENY:
            return False
    return False


def _every_peer(rule: Rule) -> bool:
    """Every peer on every port. Ingress peers are pods only (namespaces, pods), so every pod is every source
    they can name; egress reaches outside the cluster too, so it takes networks holding both whole address
    families (which hold every pod as well: networks match pod traffic)."""
    if not rule.all_ports:
        return False
    if rule.direction.value == "ingress":
        return any(_every_pod(p) for p in rule.peers)
    return {p.cidr for p in rule.peers if p.type is PeerType.CIDR} >= _WHOLE_FAMILIES


def _every_pod(peer: Peer) -> bool:
    """Every pod of every namespace: an empty namespaces selector (or pods with both selectors empty)."""
    return (peer.type is PeerType.PODS and peer.namespaces is not None and peer.namespaces.scope is Scope.ALL
            and not peer.namespaces.names and (peer.pods is None or peer.pods.empty))
