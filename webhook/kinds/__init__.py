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
    "GroupVersionKind", "Phrasing", "PolicyKind", "Registry", "by_plural", "discover", "lookup", "of", "with_name",
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
    """Kinds in a stable order, looked up by (group, kind), by plural or by the kind of a raw object."""

    def __init__(self, kinds: Iterable[PolicyKind]) -> None:
        self.all = tuple(kinds)
        self._by_group_kind: dict[tuple[str, str], PolicyKind] = {}
        self._by_plural: dict[str, PolicyKind] = {}
        self._by_name: dict[str, tuple[PolicyKind, ...]] = {}
        for kind in self.all:
            if (kind.group, kind.kind) in self._by_group_kind:
                raise ValueError(f"{kind.kind} of {kind.group} is registered twice")
            # The cluster view and the audit key what they list and watch on the plural alone (thread names,
            # resource keys): two groups' kinds of the same plural need those keys qualified first.
            if kind.plural in self._by_plural:
                other = self._by_plural[kind.plural]
                raise ValueError(f"{kind.kind} of {kind.group} and {other.kind} of {other.group} share the plural "
                                 f"{kind.plural}")
            self._by_group_kind[(kind.group, kind.kind)] = kind
            self._by_plural[kind.plural] = kind
            self._by_name[kind.kind] = (*self._by_name.get(kind.kind, ()), kind)
        self.names = frozenset(self._by_name)

    def lookup(self, group: str, kind: str) -> PolicyKind | None:
        """The kind `kind` of API group `group`, if netguard guards it."""
        return self._by_group_kind.get((group, kind))

    def by_plural(self, plural: str) -> PolicyKind | None:
        """The kind whose resource is `plural` (plurals are unique among registered kinds)."""
        return self._by_plural.get(plural)

    def with_name(self, kind: str) -> tuple[PolicyKind, ...]:
        """Every registered kind called `kind`, whatever its group: for values that carry no group (a
        NormalizedPolicy's kind) and for naming the groups in a message. Not an identity: see `lookup`."""
        return self._by_name.get(kind, ())

    def of(self, obj: Mapping[str, Any]) -> PolicyKind | None:
        """The registered kind of a raw object: its apiVersion's group and its kind. An object without an
        apiVersion (a fragment: the API server always sends one, and `check` refuses documents without one) is
        matched on its kind only when a single registered kind has that name."""
        kind = obj.get("kind")
        if not isinstance(kind, str):
            return None
        api_version = obj.get("apiVersion")
        if api_version:
            return self._by_group_kind.get((_group_of(api_version), kind)) if isinstance(api_version, str) else None
        same = self._by_name.get(kind, ())
        return same[0] if len(same) == 1 else None


REGISTRY = Registry(discover())
ALL = REGISTRY.all
NAMES = REGISTRY.names
lookup = REGISTRY.lookup
by_plural = REGISTRY.by_plural
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
