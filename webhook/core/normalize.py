"""Raw policy object -> NormalizedPolicy: what every kind shares, and the dispatch to the kind's normalizer.

Pure: no I/O, no configuration. The kind is looked up in the registry (webhook/kinds) by apiVersion group and
kind; its normalizer turns the spec into subjects and rules, applying API defaulting (policyTypes, protocols,
Cilium enableDefaultDeny) because the CLI sees manifests before the API server defaults them. The semantics
each kind relies on are cited in its module (webhook/kinds/networkpolicy.py, webhook/kinds/cilium.py).

Here: the metadata every kind has, and the helpers more than one rule language uses (port entries, namespace
scopes of selectors). The kind modules import these, so this module reaches the registry only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from webhook.core.netpolicy import NamespaceScope, NormalizedPolicy, PortRange, Scope
from webhook.core.ports import PortSyntaxError, is_service_name, parse_cilium_port
from webhook.core.selectors import CILIUM_NAMESPACE_LABELS_PREFIX, Selector
from webhook.core.shape import ShapeError, expect_mapping, expect_str, optional_mapping, optional_str, type_name

if TYPE_CHECKING:
    from webhook.kinds import Registry

NormalizationError = ShapeError

def normalize(obj: Mapping[str, Any]) -> NormalizedPolicy:
    """Normalize one policy object; ShapeError names the first malformed field."""
    from webhook import kinds

    api_version = optional_str(obj, "apiVersion", "")
    kind = optional_str(obj, "kind", "")
    meta = optional_mapping(obj, "metadata", "")
    name = optional_str(meta, "name", "metadata")
    namespace = optional_str(meta, "namespace", "metadata")
    labels = _string_map(meta.get("labels"), "metadata.labels")
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    policy_kind = kinds.of(obj)
    if policy_kind is None:
        raise _not_guarded(kinds.REGISTRY, api_version, kind)
    subjects, rules = policy_kind.normalizer(obj, namespace)
    tier, priority = policy_kind.placement(obj) if policy_kind.placement is not None else ("", None)
    # The kind as netguard names it (PolicyKind.name): Calico's NetworkPolicy is "NetworkPolicy.projectcalico.org".
    return NormalizedPolicy(kind=policy_kind.name, flavor=policy_kind.flavor, name=name,
                            namespace=namespace if policy_kind.namespaced else "",
                            clusterwide=not policy_kind.namespaced, labels=labels,
                            annotations=annotations, subjects=subjects, rules=rules, tier=tier, priority=priority,
                            passive=policy_kind.passive(obj) if policy_kind.passive is not None else ())


def _not_guarded(registry: Registry, api_version: str, kind: str) -> ShapeError:
    """Why `kind` of `api_version` is not a kind netguard reads: an unknown kind, a known kind of another API
    group (another project's kind of the same name), or a name several groups share, without apiVersion."""
    same = registry.with_name(kind)
    served = " or ".join(k.api_version for k in same)
    if same and api_version:
        return ShapeError("apiVersion", f"{api_version!r} is not the API group of the {kind} netguard guards "
                                        f"({served})")
    if same:
        return ShapeError("apiVersion", f"is required: {kind} is a kind of {served}")
    names = [k.kind for k in registry.all]
    return ShapeError("kind", f"{kind!r} is not a {', '.join(names[:-1])} or {names[-1]}")


def _string_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    out = {}
    for k, v in expect_mapping(value, path).items():
        out[str(k)] = expect_str(v, f"{path}.{k}")
    return out


def listed_directions(raw: list[Any], path: str) -> set[str]:
    """The directions a policyTypes-like list names (NetworkPolicy `policyTypes`, Calico `types`); ShapeError at the
    entry that is neither Ingress nor Egress."""
    types = set()
    for i, t in enumerate(raw):
        if t not in ("Ingress", "Egress"):
            raise ShapeError(f"{path}[{i}]", f"must be Ingress or Egress, got {t!r}")
        types.add(t)
    return types


def port_range(protocol: str, raw_port: Any, raw_end: Any, path: str, *, cilium: bool = False) -> PortRange:
    """One port entry. Cilium reads port strings with Go's ParseUint(s, 0, 16) (ports.py), so "0x50"
    is port 80 there; Kubernetes takes a number or an IANA port name. Anything else is an input
    error naming the field, whatever the characters (fail closed, never a crash)."""
    if raw_port is None or raw_port == "" or raw_port == 0:
        # No port, or Cilium's port 0: every port of the protocol.
        return PortRange(protocol=protocol, path=path)
    if isinstance(raw_port, bool) or not isinstance(raw_port, (int, str)):
        shown = repr(raw_port)[:20] if isinstance(raw_port, float) else type_name(raw_port)
        raise ShapeError(f"{path}.port", f"must be a whole number from 1 to 65535 or a port name, got {shown}")
    if isinstance(raw_port, int):
        start = raw_port
    elif cilium:
        try:
            parsed = parse_cilium_port(raw_port)
        except PortSyntaxError as exc:
            raise ShapeError(f"{path}.port", str(exc)) from None
        if parsed.number is None:
            return _named(protocol, parsed.name, raw_end, path)
        if parsed.number == 0:  # "0", "00", "0x0": every port, as Cilium reads it
            return PortRange(protocol=protocol, path=path)
        start = parsed.number
    elif raw_port.isascii() and raw_port.isdigit():
        start = int(raw_port)
    elif is_service_name(raw_port):
        return _named(protocol, raw_port, raw_end, path)
    else:
        raise ShapeError(f"{path}.port", f"must be a whole number from 1 to 65535 or a port name (IANA service "
                                         f"name: up to 15 letters, digits and '-'), got {raw_port[:40]!r}")
    if not 1 <= start <= 65535:
        raise ShapeError(f"{path}.port", f"must be between 1 and 65535, got {start}")
    end = None
    if raw_end is not None:
        if isinstance(raw_end, bool) or not isinstance(raw_end, int):
            shown = repr(raw_end)[:20] if isinstance(raw_end, float) else type_name(raw_end)
            raise ShapeError(f"{path}.endPort", f"must be a whole number, got {shown}")
        if not start <= raw_end <= 65535:
            raise ShapeError(f"{path}.endPort", f"must be between port ({start}) and 65535, got {raw_end}")
        end = raw_end
    return PortRange(protocol=protocol, start=start, end=end, path=path)


def _named(protocol: str, name: str, raw_end: Any, path: str) -> PortRange:
    if raw_end is not None:
        raise ShapeError(f"{path}.endPort", "cannot be used with a named port")
    return PortRange(protocol=protocol, name=name, path=path)


# A pure function of immutable values, asked again for every rule that repeats a selector (the same
# peer in each entry of `specs`): kept for light selectors (Selector.weight, about bytes; 1024 entries of
# at most this weight), keyed on its arguments (all it depends on).
_CACHED_WEIGHT = 1024


def namespace_scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    if selector.weight <= _CACHED_WEIGHT:
        return _cached_scope(selector, name_key, unkeyed)
    return _scope(selector, name_key, unkeyed)


@lru_cache(maxsize=1024)
def _cached_scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    return _scope(selector, name_key, unkeyed)


def _scope(selector: Selector, name_key: str, unkeyed: Scope | None) -> NamespaceScope:
    """Which namespaces a selector allows.

    For a Kubernetes namespaceSelector (unkeyed None) the whole selector is about namespaces.
    For a Cilium endpoint selector only the namespace keys are; without any, the scope is
    `unkeyed` (own namespace for a namespaced policy, every namespace for a clusterwide one).
    """
    ns_reqs = selector.keyed(name_key)
    label_reqs = tuple(r for r in selector.requirements if r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX))
    pinned = selector.pinned_values(name_key)
    if pinned is not None:
        return NamespaceScope(Scope.NAMED, names=pinned, selector=selector)
    relevant = selector if unkeyed is None else Selector(ns_reqs + label_reqs)
    if unkeyed is not None and relevant.empty:
        return NamespaceScope(unkeyed, selector=selector)
    if relevant.is_open():
        return NamespaceScope(Scope.ALL, names=relevant.excluded_values(name_key), selector=selector)
    return NamespaceScope(Scope.SELECTED, selector=selector)
