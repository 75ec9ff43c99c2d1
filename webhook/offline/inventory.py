"""What an audit looks at: namespaces, policies and (when available) workloads.

An Inventory comes from a live cluster (kube.py) or from manifests on disk (from_documents);
the audit itself never knows which, so both paths report the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook import kinds
from webhook.core.selectors import NAMESPACE_NAME_LABEL
from webhook.core.snapshot import is_cidr_group, is_network_set
from webhook.offline.sources import Document, SourceError

# Workload kinds whose pod template labels stand for their pods when auditing manifests.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
                            "ReplicationController"})


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """Pods that share labels: a Pod, or a controller's pod template (kind/name say which)."""

    namespace: str
    kind: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    source: str  # "cluster <context>" or "files a.yaml, b/"
    namespaces: tuple[Namespace, ...]
    policies: tuple[Document, ...]
    workloads: tuple[Workload, ...] | None = None  # None: not available (no permission, not in the files)
    errors: tuple[SourceError, ...] = ()
    # The named address lists rules may refer to: CiliumCIDRGroups and Calico (Global)NetworkSets, as objects.
    address_sets: tuple[Mapping[str, Any], ...] = ()
    # Whether `address_sets` holds every object of its family, so that a reference nothing matches can be told
    # apart from one whose target was not read (ClusterSnapshot.cidr_groups_known / network_sets_known).
    cidr_groups_known: bool = False
    network_sets_known: bool = False

    def namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {ns.name: ns.labels for ns in self.namespaces}


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _pod_template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if obj.get("kind") == "CronJob":
        job = spec.get("jobTemplate") if isinstance(spec.get("jobTemplate"), dict) else {}
        spec = job.get("spec") if isinstance(job, dict) and isinstance(job.get("spec"), dict) else {}
    template = spec.get("template") if isinstance(spec, dict) and isinstance(spec.get("template"), dict) else {}
    meta = template.get("metadata") if isinstance(template, dict) else {}
    return _labels(meta.get("labels") if isinstance(meta, dict) else None)


def from_documents(documents: Sequence[Document], errors: Sequence[SourceError], source: str,
                   default_namespace: str = "default") -> Inventory:
    """Manifests on disk: Namespace objects, the policies, and workloads from Pods and pod templates.

    Namespaces that only appear in metadata.namespace are included with no labels, so a folder of
    policies still yields per-namespace figures.

    The folder is read as the cluster, as for namespaces and default deny: CiliumCIDRGroups and Calico
    (Global)NetworkSets in it are those that exist, once it holds one of the family. A folder with none of a
    family says nothing about it: references to that family stay "cannot be judged" (a notice naming them).
    """
    namespaces: dict[str, Namespace] = {}
    policies: list[Document] = []
    workloads: list[Workload] = []
    address_sets: list[Mapping[str, Any]] = []
    for doc in documents:
        kind = doc.obj.get("kind")
        policy_kind = kinds.of(doc.obj)
        meta = doc.obj.get("metadata") if isinstance(doc.obj.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        name = str(meta.get("name", ""))
        ns = str(meta.get("namespace") or default_namespace)
        if is_cidr_group(doc.obj) or is_network_set(doc.obj):
            address_sets.append(doc.in_namespace(default_namespace).obj if kind == "NetworkSet" else doc.obj)
        elif kind == "Namespace":
            namespaces[name] = Namespace(name, {NAMESPACE_NAME_LABEL: name, **_labels(meta.get("labels"))})
        elif policy_kind is not None:
            if policy_kind.namespaced:
                namespaces.setdefault(ns, Namespace(ns, {NAMESPACE_NAME_LABEL: ns}))
            policies.append(doc.in_namespace(default_namespace))
        elif kind == "Pod":
            workloads.append(Workload(ns, "Pod", name, _labels(meta.get("labels"))))
            namespaces.setdefault(ns, Namespace(ns, {NAMESPACE_NAME_LABEL: ns}))
        elif kind in WORKLOAD_KINDS:
            workloads.append(Workload(ns, str(kind), name, _pod_template_labels(doc.obj)))
            namespaces.setdefault(ns, Namespace(ns, {NAMESPACE_NAME_LABEL: ns}))
    return Inventory(source=source, namespaces=tuple(sorted(namespaces.values(), key=lambda n: n.name)),
                     policies=tuple(policies), workloads=tuple(workloads) if workloads else None,
                     errors=tuple(errors), address_sets=tuple(address_sets),
                     cidr_groups_known=any(map(is_cidr_group, address_sets)),
                     network_sets_known=any(map(is_network_set, address_sets)))

