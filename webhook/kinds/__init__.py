"""The policy kinds netguard guards: one registry, from which every list of kinds in netguard derives.

Admission (which requests are judged), normalization (which normalizer reads an object), the cluster view and
the audit (what is listed and watched, which CRDs may be missing), `check`, `explain` and the CLI all ask
here; deploy/'s webhook rules and RBAC rules are generated from it (`make deploy-policies`) and, with the
guardrail metadata schema, held to it by tests/unit/test_kinds_registry.py.

A new kind is one module beside these that declares `KIND = PolicyKind(...)`: the registry finds the kinds by
listing this package, not from a list kept by hand, and lists them in their declared `order`. The other
modules (kind.py: `PolicyKind` itself; cilium.py: the rule language both Cilium kinds share) are helpers:
they declare no KIND, and tests/unit/test_kinds_registry.py names them, so a kind module that forgot its KIND
fails there instead of silently guarding nothing.

A kind is identified by its API group and kind together, never by the kind alone: several groups serve a
NetworkPolicy (networking.k8s.io, crd.antrea.io, projectcalico.org) and a ClusterNetworkPolicy
(crd.antrea.io, policy.networking.k8s.io). Versions are not part of the identity: netguard reads the version
each kind declares, and the API server converts the others (matchPolicy: Equivalent).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any

from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind

__all__ = [
    "ALL", "CILIUM_CLUSTERWIDE_NETWORK_POLICY", "CILIUM_NETWORK_POLICY", "NAMES", "NETWORK_POLICY", "REGISTRY",
    "GroupVersionKind", "Phrasing", "PolicyKind", "Registry", "by_resource", "discover", "lookup", "named", "of",
    "with_name",
]


def discover() -> tuple[PolicyKind, ...]:
    """The `KIND` of every module of this package that declares one, in their `order`. Importing them all costs
    nothing extra: normalization needs every kind's normalizer anyway."""
    found: list[PolicyKind] = []
    for module in pkgutil.iter_modules(__path__, f"{__name__}."):
        kind = getattr(importlib.import_module(module.name), "KIND", None)
        if kind is None:  # a helper
            continue
        if not isinstance(kind, PolicyKind):
            raise TypeError(f"{module.name}.KIND is a {type(kind).__name__}, not a PolicyKind")
        found.append(kind)
    orders = [k.order for k in found]
    if len(orders) != len(set(orders)):
        raise ValueError(f"two kinds declare the same order: {sorted((k.order, k.kind) for k in found)}")
    return tuple(sorted(found, key=lambda k: k.order))


def _group_of(api_version: str) -> str:
    """The API group of an apiVersion: "cilium.io" for "cilium.io/v2", "" (the core group) for "v1"."""
    return api_version.rpartition("/")[0]


class Registry:
    """Kinds in a stable order, looked up by (group, kind), by resource (plural.group) or by the kind of a raw
    object."""

    def __init__(self, kinds: Iterable[PolicyKind]) -> None:
        self.all = tuple(kinds)
        self._by_group_kind: dict[tuple[str, str], PolicyKind] = {}
        self._by_resource: dict[str, PolicyKind] = {}
        self._by_name: dict[str, tuple[PolicyKind, ...]] = {}  # the kind alone, and the name netguard gives it
        named: dict[str, PolicyKind] = {}
        for kind in self.all:
            if (kind.group, kind.kind) in self._by_group_kind:
                raise ValueError(f"{kind.kind} of {kind.group} is registered twice")
            # The cluster view, the reader and the audit key what they list and watch on the resource qualified by
            # its group (networkpolicies of networking.k8s.io and of projectcalico.org are two resources).
            if kind.resource in self._by_resource:
                raise ValueError(f"the resource {kind.resource} is registered twice")
            # Guardrails' `kinds:` lists and a NormalizedPolicy name a kind without its group: a second kind of the
            # same name declares itself `qualified`.
            if kind.name in named:
                other = named[kind.name]
                raise ValueError(f"{kind.kind} of {kind.group} and {other.kind} of {other.group} are both named "
                                 f"{kind.name}: declare the later one qualified")
            named[kind.name] = kind
            self._by_group_kind[(kind.group, kind.kind)] = kind
            self._by_resource[kind.resource] = kind
            for name in dict.fromkeys((kind.kind, kind.name)):
                self._by_name[name] = (*self._by_name.get(name, ()), kind)
        self._named = named
        # The names a request's `kind` field or a guardrail's `kinds:` list may carry (a first filter).
        self.names = frozenset(self._by_name)

    def lookup(self, group: str, kind: str) -> PolicyKind | None:
        """The kind `kind` of API group `group`, if netguard guards it."""
        return self._by_group_kind.get((group, kind))

    def by_resource(self, resource: str) -> PolicyKind | None:
        """The kind whose resource (plural.group, `PolicyKind.resource`) is `resource`."""
        return self._by_resource.get(resource)

    def named(self, name: str) -> PolicyKind | None:
        """The kind netguard names `name` (`PolicyKind.name`: a NormalizedPolicy's kind, a guardrail's `kinds:`)."""
        return self._named.get(name)

    def with_name(self, kind: str) -> tuple[PolicyKind, ...]:
        """Every registered kind called `kind` (or named so: `PolicyKind.name`), whatever its group: for values that
        carry no group and for naming the groups in a message. Not an identity: see `lookup` and `named`."""
        return self._by_name.get(kind, ())

    def of(self, obj: Mapping[str, Any]) -> PolicyKind | None:
        """The registered kind of a raw object: its apiVersion's group and its kind. An object without an
        apiVersion (a fragment: the API server always sends one, and `check` refuses documents without one) is
        the kind netguard names so (`name`: of the kinds called NetworkPolicy, the Kubernetes one; Calico's is
        named NetworkPolicy.projectcalico.org), else matched on its kind only when a single registered kind has
        that kind."""
        kind = obj.get("kind")
        if not isinstance(kind, str):
            return None
        api_version = obj.get("apiVersion")
        if api_version:
            return self._by_group_kind.get((_group_of(api_version), kind)) if isinstance(api_version, str) else None
        named = self._named.get(kind)
        if named is not None and named.kind == kind:
            return named
        same = tuple(k for k in self._by_name.get(kind, ()) if k.kind == kind)
        return same[0] if len(same) == 1 else None


REGISTRY = Registry(discover())
ALL = REGISTRY.all
NAMES = REGISTRY.names
lookup = REGISTRY.lookup
by_resource = REGISTRY.by_resource
named = REGISTRY.named
with_name = REGISTRY.with_name
of = REGISTRY.of


def _named(group: str, kind: str) -> PolicyKind:
    found = REGISTRY.lookup(group, kind)
    if found is None:
        raise ImportError(f"no kind module of webhook/kinds declares {kind} of {group or 'the core group'}")
    return found


# The kinds that code names one by one (model.NETWORK_POLICY, the pipeline's warm-up request; tests): found in the
# registry, so it is an import error, not a silent gap, if their module stops declaring them.
NETWORK_POLICY = _named("networking.k8s.io", "NetworkPolicy")
CILIUM_NETWORK_POLICY = _named("cilium.io", "CiliumNetworkPolicy")
CILIUM_CLUSTERWIDE_NETWORK_POLICY = _named("cilium.io", "CiliumClusterwideNetworkPolicy")
