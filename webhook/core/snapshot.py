"""The cluster as one review sees it: an immutable ClusterSnapshot of namespace labels, network policies,
CiliumCIDRGroups and Calico (Global)NetworkSets, and what it says about default deny and baselines. Pure: the
watch that keeps one current is webhook/cluster/cluster_view.py, the audit builds one from its inventory."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from webhook.core.flow_evidence import FlowEvidence
from webhook.core.model import Operation, PolicyKey
from webhook.core.netpolicy import NormalizedPolicy
from webhook.core.normalize import normalize
from webhook.core.posture import DIRECTIONS, baseline_subjects, default_deny, subject_covers_namespace
from webhook.core.selectors import NAMESPACE_NAME_LABEL, Selector, parse_selector
from webhook.core.shape import ShapeError, expect_mapping, optional_list

CIDR_GROUP_KIND = "CiliumCIDRGroup"
# Calico's named address lists (projectcalico.org/v3, github.com/projectcalico/api pkg/apis/projectcalico/v3/
# networkset.go and globalnetworkset.go): `spec.nets`, a list of CIDRs (or bare addresses), chosen by a rule's
# selector by their labels; a NetworkSet lives in a namespace, a GlobalNetworkSet in none.
CALICO_GROUP = "projectcalico.org"
NETWORK_SET_KINDS = frozenset({"NetworkSet", "GlobalNetworkSet"})


BASELINE_LABEL = "netguard.io/baseline"


def policy_key(policy: NormalizedPolicy) -> PolicyKey:
    return (policy.kind, policy.namespace, policy.name)


def object_meta(obj: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(namespace, name, labels) of a raw object, "" and {} for what is missing or malformed."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    labels = meta.get("labels")
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), labels


@dataclass(frozen=True)
class CidrGroup:
    """A CiliumCIDRGroup as policies see it: what `cidrGroupRef: <name>` and a matching `cidrGroupSelector` mean.

    `cidrs` are the spec.externalCIDRs entries that parse as CIDRs (or bare addresses), stripped. `invalid`
    holds the entries that do not (the CRD's `format: cidr` should keep them out of a live cluster, not out of
    files): a caller must treat a group with invalid entries as "cannot be judged", never as those addresses
    not being there.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    cidrs: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


def cidr_group(obj: Mapping[str, Any]) -> CidrGroup:
    """A CiliumCIDRGroup object (any served version) to a CidrGroup; ShapeError when it cannot be read."""
    _, name, labels = object_meta(obj)
    if not name:
        raise ShapeError("metadata.name", "must be set")
    spec = expect_mapping(obj.get("spec"), "spec")
    cidrs, invalid = _cidrs(optional_list(spec, "externalCIDRs", "spec"))
    return CidrGroup(name=name, labels=labels, cidrs=cidrs, invalid=invalid)


@dataclass(frozen=True)
class NetworkSet:
    """A Calico NetworkSet (namespace set) or GlobalNetworkSet (namespace ""): what a rule selector that matches
    its labels adds as peers. `nets` and `invalid` as CidrGroup's `cidrs` and `invalid`."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    nets: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"NetworkSet {self.namespace}/{self.name}" if self.namespace else f"GlobalNetworkSet {self.name}"


def is_cidr_group(obj: Mapping[str, Any]) -> bool:
    """A cilium.io CiliumCIDRGroup manifest (any version)."""
    return obj.get("kind") == CIDR_GROUP_KIND and str(obj.get("apiVersion") or "").startswith("cilium.io/")


def is_network_set(obj: Mapping[str, Any]) -> bool:
    """A projectcalico.org NetworkSet or GlobalNetworkSet manifest."""
    return obj.get("kind") in NETWORK_SET_KINDS and str(obj.get("apiVersion") or "").startswith(f"{CALICO_GROUP}/")


def network_set(obj: Mapping[str, Any]) -> NetworkSet:
    """A NetworkSet or GlobalNetworkSet object to a NetworkSet; ShapeError when it cannot be read."""
    namespace, name, labels = object_meta(obj)
    if not name:
        raise ShapeError("metadata.name", "must be set")
    if obj.get("kind") == "NetworkSet" and not namespace:
        raise ShapeError("metadata.namespace", "must be set")
    spec = expect_mapping(obj.get("spec") if obj.get("spec") is not None else {}, "spec")
    nets, invalid = _cidrs(optional_list(spec, "nets", "spec"))
    return NetworkSet(namespace=namespace if obj.get("kind") == "NetworkSet" else "", name=name, labels=labels,
                      nets=nets, invalid=invalid)


def _cidrs(entries: Iterable[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the entries that parse as CIDRs or bare addresses, stripped; the others)."""
    cidrs: list[str] = []
    invalid: list[str] = []
    for entry in entries:
        try:
            cidr = entry.strip()
            ipaddress.ip_network(cidr, strict=False)  # as webhook/core/facts.py reads CIDRs
        except (AttributeError, ValueError):
            invalid.append(str(entry))
        else:
            cidrs.append(cidr)
    return tuple(cidrs), tuple(invalid)


@dataclass(frozen=True)
class ClusterSnapshot:
    """The cluster as one request sees it. Immutable; `enabled=False` is the snapshot of "no cluster"."""

    enabled: bool = True
    synced: bool = False
    stale: bool = False
    age_seconds: float | None = None  # since the view was last known current (0 while every watch is up)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Policies by namespace; "" holds the clusterwide ones (they may select pods of any namespace).
    by_namespace: Mapping[str, Mapping[PolicyKey, NormalizedPolicy]] = field(default_factory=dict)
    # CiliumCIDRGroups by name (cluster-scoped); read them through cidr_groups(), which knows when not to.
    cidr_groups_by_name: Mapping[str, CidrGroup] = field(default_factory=dict)
    # The version of the view's content this snapshot holds: a ClusterView takes a new one, unique in the
    # process, on every change (list or event), so equal generations mean equal content (the verdict cache's
    # key). 0 for snapshots not taken from a ClusterView (files, tests, DISABLED): they carry no version.
    generation: int = 0
    # False when the snapshot's source did not list CiliumCIDRGroups (the audit's inventory): cidr_groups() then
    # cannot tell, as without a cluster view, instead of answering that a referenced group does not exist.
    cidr_groups_known: bool = True
    # Calico NetworkSets and GlobalNetworkSets by (namespace, name), namespace "" for the global ones; read them
    # through network_sets(). Known only when the source listed them all (the cluster view watching them): a
    # snapshot that says nothing of them cannot tell a Calico peer's network sets from none.
    network_sets_by_key: Mapping[tuple[str, str], NetworkSet] = field(default_factory=dict)
    network_sets_known: bool = False
    # What observed traffic (Hubble flows) says about each policy's rules: the audit's `--flows`, never the
    # webhook's view (admission judges what a policy could allow; the flow guardrails stay silent without it).
    flows: FlowEvidence | None = None
    # Per key of by_namespace, its policies that can be a default-deny baseline ("deny") and those labelled as a
    # baseline ("marked"), worked out on first use: default_deny and baselines look at these alone (the audit asks
    # about every policy of a namespace, and walking the whole namespace each time made that quadratic).
    _subsets: dict[tuple[str, str], tuple[NormalizedPolicy, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    @property
    def usable(self) -> bool:
        """Trustworthy enough to decide with: watched, listed once, not stale."""
        return self.enabled and self.synced and not self.stale

    @property
    def policies(self) -> dict[PolicyKey, NormalizedPolicy]:
        return {k: p for inner in self.by_namespace.values() for k, p in inner.items()}

    def labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, or None when the view cannot tell (unusable, or not seen yet)."""
        if not self.usable:
            return None
        return self.namespaces.get(namespace)

    def cidr_groups(self) -> Mapping[str, CidrGroup] | None:
        """Every CiliumCIDRGroup by name, or None when the view cannot tell (disabled, not synced, stale, groups not
        listed): then a `cidrGroupRef` or `cidrGroupSelector` cannot be judged without the cluster. A name missing
        from the mapping is a group that does not exist (an empty mapping where Cilium is not installed)."""
        if not self.usable or not self.cidr_groups_known:
            return None
        return self.cidr_groups_by_name

    def network_sets(self) -> Mapping[tuple[str, str], NetworkSet] | None:
        """Every Calico (Global)NetworkSet by (namespace, name), or None when the view cannot tell (disabled, not
        synced, stale, sets not listed): then a Calico selector peer's network sets cannot be judged."""
        if not self.usable or not self.network_sets_known:
            return None
        return self.network_sets_by_key

    def select_cidr_groups(self, selector: Selector | Mapping[str, Any] | None,
                           path: str = "cidrGroupSelector") -> tuple[CidrGroup, ...] | None:
        """The groups a `cidrGroupSelector` selects by their labels (Kubernetes label-selector semantics, by name),
        or None when the view cannot tell. `selector` is the manifest's LabelSelector (ShapeError at `path` when
        malformed) or a parsed Selector. An empty selector matches every group here; note that Cilium turns it into
        an empty endpoint selector, which may select more than CIDR groups."""
        groups = self.cidr_groups()
        if groups is None:
            return None
        parsed = selector if isinstance(selector, Selector) else parse_selector(selector, path)
        return tuple(g for _, g in sorted(groups.items()) if parsed.matches(g.labels))

    def status(self) -> str:
        """Why the view cannot be trusted, in words for a notice; "" when it can."""
        if not self.enabled or self.usable:
            return ""
        if not self.synced:
            return "cluster view has not synced yet"
        return f"cluster view is stale (last update {round(self.age_seconds or 0)} s ago)"

    def relevant(self, namespace: str) -> list[NormalizedPolicy]:
        """Policies that may select pods of `namespace`: its own and the clusterwide ones."""
        own = self.by_namespace.get(namespace, {}) if namespace else {}
        return [*own.values(), *self.by_namespace.get("", {}).values()]

    def default_deny(self, namespace: str, *, without: PolicyKey | None = None,
                     adding: NormalizedPolicy | None = None) -> dict[str, bool]:
        """Default deny per direction for `namespace`, optionally as if `without` were gone and `adding` stored
        (the request's own policy: a CREATE of a default deny provides it)."""
        policies = [p for p in self._relevant_subset("deny", namespace) if policy_key(p) != without]
        if adding is not None:
            policies.append(adding)
        return default_deny(namespace, policies, self.namespaces)

    def _relevant_subset(self, subset: str, namespace: str) -> list[NormalizedPolicy]:
        """relevant(namespace), only the policies of `subset` (see _subsets)."""
        return [*(self._subset(subset, namespace) if namespace else ()), *self._subset(subset, "")]

    def _subset(self, subset: str, key: str) -> tuple[NormalizedPolicy, ...]:
        found = self._subsets.get((subset, key))
        if found is None:
            policies = self.by_namespace.get(key, {}).values()
            if subset == "deny":  # a default deny in some direction
                found = tuple(p for p in policies if any(True for d in DIRECTIONS for _ in baseline_subjects(d, (p,))))
            else:
                found = tuple(p for p in policies if p.labels.get(BASELINE_LABEL) == "true")
            self._subsets[(subset, key)] = found
        return found

    def baselines(self, namespace: str) -> list[dict[str, str]]:
        """Stored policies marked netguard.io/baseline=true that apply to `namespace`: its own, and the
        clusterwide ones whose namespace scope includes it."""
        return [{"kind": p.kind, "namespace": p.namespace, "name": p.name}
                for p in sorted(self._relevant_subset("marked", namespace), key=policy_key)
                if not namespace or any(subject_covers_namespace(p, s, namespace, self.namespaces)
                                        for s in p.subjects)]

    def to_input(self, namespace: str, policy: NormalizedPolicy | None, operation: Operation,
                 namespace_labels: Mapping[str, str]) -> dict[str, Any]:
        """`input.cluster` (docs/input.md). Default-deny status is null unless the view is usable."""
        out: dict[str, Any] = {
            "enabled": self.enabled, "synced": self.synced, "stale": self.stale,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
            "namespace": namespace, "namespace_labels": dict(namespace_labels),
            "default_deny": None, "default_deny_before": None, "baselines": [], "same_priority": [],
            "flows": self.flows.to_input(policy_key(policy)) if self.flows is not None and policy is not None
            else None,
        }
        if not self.usable:
            return out
        out["baselines"] = self.baselines(namespace)
        if policy is not None and operation is not Operation.DELETE:
            out["same_priority"] = self.same_priority(policy)
        if not namespace or policy is None or policy.clusterwide:
            return out
        key = (policy.kind, namespace, policy.name)
        own = policy if policy.namespace == namespace else replace(policy, namespace=namespace)
        out["default_deny_before"] = self.default_deny(namespace)
        out["default_deny"] = self.default_deny(
            namespace, without=key, adding=None if operation is Operation.DELETE else own)
        return out

    def same_priority(self, policy: NormalizedPolicy) -> list[dict[str, str]]:
        """Stored policies of the same kind, scope, tier and priority as `policy` (itself left out): the API gives
        no order between them (network-policy-api: "if two AdminNetworkPolicies have the same priority, the
        behavior is undefined"), so which one wins can change with the implementation or a restart. Empty for kinds
        without a priority."""
        if not policy.tier or policy.priority is None:
            return []
        where = "" if policy.clusterwide else policy.namespace
        return [{"kind": p.kind, "namespace": p.namespace, "name": p.name}
                for p in sorted(self.by_namespace.get(where, {}).values(), key=policy_key)
                if p.kind == policy.kind and p.tier == policy.tier and p.priority == policy.priority
                and p.name != policy.name]

    @classmethod
    def from_objects(cls, namespaces: Mapping[str, Mapping[str, str]], objects: Iterable[Mapping[str, Any]], *,
                     synced: bool = True, stale: bool = False, age_seconds: float = 0.0,
                     skip_unreadable: bool = False, cidr_groups_known: bool = True,
                     network_sets_known: bool = False) -> ClusterSnapshot:
        """A snapshot from manifests (sample request files, tests, the audit's inventory): policies of the guarded
        kinds, CiliumCIDRGroups (any version) and Calico (Global)NetworkSets; unreadable objects raise ShapeError,
        or are left out with `skip_unreadable`. The CIDR groups are exactly those given: a group the files leave
        out does not exist for this snapshot, unless `cidr_groups_known` is false (the objects say nothing about
        groups). Network sets are the same with `network_sets_known`, false unless the caller says the objects
        list them all (a folder of policies seldom holds the cluster's network sets)."""
        by_ns: dict[str, dict[PolicyKey, NormalizedPolicy]] = {}
        groups: dict[str, CidrGroup] = {}
        sets: dict[tuple[str, str], NetworkSet] = {}
        for obj in objects:
            try:
                if isinstance(obj, Mapping) and obj.get("kind") == CIDR_GROUP_KIND:
                    group = cidr_group(obj)
                    groups[group.name] = group
                    continue
                if isinstance(obj, Mapping) and is_network_set(obj):
                    found = network_set(obj)
                    sets[(found.namespace, found.name)] = found
                    continue
                policy = normalize(obj)
            except ShapeError:
                if skip_unreadable:
                    continue
                raise
            by_ns.setdefault(policy.namespace, {})[policy_key(policy)] = policy
        labels = {name: {NAMESPACE_NAME_LABEL: name, **dict(ls)} for name, ls in namespaces.items()}
        return cls(enabled=True, synced=synced, stale=stale, age_seconds=age_seconds, namespaces=labels,
                   by_namespace=by_ns, cidr_groups_by_name=groups, cidr_groups_known=cidr_groups_known,
                   network_sets_by_key=sets, network_sets_known=network_sets_known)


DISABLED = ClusterSnapshot(enabled=False)


class SnapshotSource(Protocol):
    """What the pipeline and the server's readiness need of a watched cluster (cluster/cluster_view.ClusterView):
    a snapshot taken from memory, whether it has listed everything once, and its state for /readyz. A protocol, so
    the pipeline does not import the layer that talks to the API server."""

    @property
    def synced(self) -> bool: ...

    def snapshot(self) -> ClusterSnapshot: ...

    def status(self) -> dict[str, Any]: ...
