"""What a policy kind is: the API identity and the facts every layer asks of it, declared once per kind.

A `PolicyKind` is a value: the kind modules beside this one each declare one as `KIND`, and
webhook/kinds/__init__.py is the registry that finds them and the rest of netguard derives its lists from
(admission, the cluster view, the audit, the CLI, deploy/). Pure: nothing here imports a web, server or
cluster library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.netpolicy import Flavor, Rule, Subject

# A kind's normalizer: the raw object and its metadata.namespace ("" when unset) -> the subjects and rules
# its spec means, API defaults applied. webhook/core/normalize.py reads the metadata, which every kind shares.
Normalizer = Callable[[Mapping[str, Any], str], tuple[tuple[Subject, ...], tuple[Rule, ...]]]
# Where a policy of a tiered kind sits: (tier, priority) read from the raw object.
Placement = Callable[[Mapping[str, Any]], tuple[str, float | None]]
# A kind's rules that neither allow nor deny (Calico's Log): the raw object (already normalized) -> their paths.
Passive = Callable[[Mapping[str, Any]], tuple[str, ...]]


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version} {self.kind}"


@dataclass(frozen=True)
class Phrasing:
    """How sentences name the kind (explain's notes, the messages about reading a cluster)."""

    a: str  # the kind with its article: "a CiliumNetworkPolicy", "an AdminNetworkPolicy"
    # Where the pods it selects are when no namespace key narrows them, and the policy's namespace is not
    # known: "in the policy's namespace" (namespaced kinds), "in every namespace" (cluster-scoped ones).
    subjects_in: str


@dataclass(frozen=True)
class PolicyKind:
    """One guarded policy kind. Identity is (group, kind): two groups may serve kinds of the same name
    (crd.antrea.io, projectcalico.org and networking.k8s.io all have a NetworkPolicy)."""

    gvk: GroupVersionKind  # the version netguard reads and the webhook configurations ask for
    plural: str  # the resource name: RBAC rules, webhook rules, list and watch paths
    namespaced: bool  # False: cluster-scoped (no metadata.namespace; namespaceSelector does not apply to it)
    # A CustomResourceDefinition that a cluster may not have installed: the audit and the cluster view look it
    # up (API discovery) and carry on without it instead of failing.
    optional_crd: bool
    project: str  # who defines the kind, for messages: "Kubernetes", "Cilium"
    flavor: Flavor  # the rule language its spec is written in (what the facts and the Rego branch on)
    normalizer: Normalizer
    phrasing: Phrasing
    # Where the kind stands wherever kinds are listed (messages, the guardrail schema's enum, deploy/'s rules,
    # the audit's lists): ascending, unique among registered kinds. The registry finds kind modules by listing
    # the package, so the order is declared, not taken from file names; tens leave room for a kind in between.
    order: int
    # Whether netguard names the kind with its group, as kubectl spells a qualified kind
    # ("NetworkPolicy.projectcalico.org"): for a kind whose name another guarded kind already has. See `name`.
    qualified: bool = False
    # Whether the network enforces the kind's policies. False: a staged kind (Calico's Staged*, whose policies only
    # report what they would do until promoted, webhook/kinds/staged_action.py): its findings warn, never deny
    # (webhook/core/decide.py), so a team sees a problem before it promotes the policy.
    enforced: bool = True
    # Tiered kinds (the network-policy-api kinds, Calico's): reads a policy's (tier, priority); None for kinds
    # without tiers (their policies sit in tier "" with no priority).
    placement: Placement | None = None
    # Kinds with rules that only record (Calico's Log): lists them for explain; None where every rule decides.
    passive: Passive | None = None

    @property
    def name(self) -> str:
        """The kind as netguard names it where no group is carried: guardrails' `kinds:` lists, a
        NormalizedPolicy's `kind` (so the guardrails that run, exceptions and reports), metrics. Unique among
        registered kinds: the kind itself, or "Kind.group" for a `qualified` kind."""
        return f"{self.kind}.{self.group}" if self.qualified else self.kind

    @property
    def resource(self) -> str:
        """The resource qualified by its group, as kubectl spells it ("networkpolicies.networking.k8s.io",
        "networkpolicies.projectcalico.org"): what the cluster view, the reader and the audit key what they list
        and watch on, since two groups serve a `networkpolicies`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group(self) -> str:
        return self.gvk.group

    @property
    def version(self) -> str:
        return self.gvk.version

    @property
    def kind(self) -> str:
        return self.gvk.kind

    @property
    def api_version(self) -> str:
        return self.gvk.api_version

    @property
    def plural_kind(self) -> str:
        """The kind in the plural, for messages: "NetworkPolicies"."""
        return self.kind[:-1] + "ies" if self.kind.endswith("y") else self.kind + "s"

    @property
    def collection_path(self) -> str:
        """The URL path listing every object of the kind, in every namespace."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{prefix}/{self.plural}"
