"""What a Cilium endpoint selector reaches: pods, and the reserved identities behind other names.

Cilium scopes a to/fromEndpoints selector to the policy's namespace only when the selector has
no `reserved:` key and no namespace key (cilium/cilium pkg/k8s/apis/cilium.io/utils/utils.go,
`getEndpointSelector`: "The k8s prefix must not be added to reserved labels"; a clusterwide
policy gets `Exists io.kubernetes.pod.namespace` instead). So `{matchLabels: {reserved:world: ""}}`
is the `world` entity spelled as a selector, and `{matchExpressions: [{key: reserved:host,
operator: DoesNotExist}]}` matches every identity there is. Likewise a selector that mentions the
namespace key without requiring it (NotIn, DoesNotExist) is not scoped, and matches the reserved
identities, which carry no namespace label.

Each reserved identity is evaluated as the label set Cilium gives it (pkg/labels/reserved.go,
pkg/identity/reserved.go). Where versions differ we take the reading that matches more: the IPv4
and IPv6 world identities carry both `reserved:world` and their family label (dual-stack splits
world into world-ipv4/world-ipv6 since Cilium 1.15), and CIDR identities count as world.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, Requirement, Selector

RESERVED_PREFIX = "reserved:"

# identity (as the matching entity name) -> the labels Cilium gives it
RESERVED_IDENTITIES: dict[str, dict[str, str]] = {
    "world": {"reserved:world": ""},  # single-stack clusters
    "world-ipv4": {"reserved:world": "", "reserved:world-ipv4": ""},
    "world-ipv6": {"reserved:world": "", "reserved:world-ipv6": ""},
    "host": {"reserved:host": ""},
    "remote-node": {"reserved:remote-node": ""},
    "kube-apiserver": {"reserved:kube-apiserver": ""},
    "health": {"reserved:health": ""},
    "init": {"reserved:init": ""},
    "ingress": {"reserved:ingress": ""},
    "unmanaged": {"reserved:unmanaged": ""},
}

# What endpoint_reach reports for a selector that matches every reserved identity.
EVERY_RESERVED_ENTITY = frozenset({"world"} | {k for k in RESERVED_IDENTITIES if not k.startswith("world")})


@dataclass(frozen=True)
class EndpointReach:
    """`pods` is the selector as Cilium applies it to pods (None: it matches no pod); `entities` are the
    Cilium entities (world, world-ipv4, world-ipv6, host, ...) it matches; `unscoped` says why the
    selector is not limited to the policy's namespace ("" when it is)."""

    pods: Selector | None
    entities: tuple[str, ...]
    unscoped: str = ""


def has_reserved_key(selector: Selector) -> bool:
    return any(r.key.startswith(RESERVED_PREFIX) for r in selector.requirements)


def effective_selector(selector: Selector, namespace: str, clusterwide: bool) -> tuple[Selector, str]:
    """The selector Cilium enforces (getEndpointSelector), and why it is unscoped ("" if scoped)."""
    if has_reserved_key(selector):
        keys = sorted({r.key for r in selector.requirements if r.key.startswith(RESERVED_PREFIX)})
        return selector, f"it names {', '.join(keys)}, which Cilium does not limit to a namespace"
    if selector.keyed(CILIUM_NAMESPACE_LABEL):
        return selector, ""
    added = (Requirement(CILIUM_NAMESPACE_LABEL, "Exists") if clusterwide or not namespace
             else Requirement(CILIUM_NAMESPACE_LABEL, "In", (namespace,)))
    return Selector((*selector.requirements, added)), ""


# Selectors up to this weight (Selector.weight, about bytes) have their reach kept: a policy repeats its
# endpoint selectors across rules and `specs` entries. Heavier ones are rare and would make the cache heavy
# (1024 entries of at most this weight: a few MB at most).
_CACHED_WEIGHT = 1024


def endpoint_reach(selector: Selector, namespace: str, clusterwide: bool) -> EndpointReach:
    if selector.weight <= _CACHED_WEIGHT:
        return _cached_reach(selector, namespace, clusterwide)
    return _endpoint_reach(selector, namespace, clusterwide)


@lru_cache(maxsize=1024)
def _cached_reach(selector: Selector, namespace: str, clusterwide: bool) -> EndpointReach:
    """Keyed on all the reach depends on; every value in it is immutable."""
    return _endpoint_reach(selector, namespace, clusterwide)


def _endpoint_reach(selector: Selector, namespace: str, clusterwide: bool) -> EndpointReach:
    effective, unscoped = effective_selector(selector, namespace, clusterwide)
    matched = [name for name, labels in RESERVED_IDENTITIES.items() if effective.matches(labels)]
    if "world" in matched or ("world-ipv4" in matched and "world-ipv6" in matched):
        matched = ["world"] + [m for m in matched if not m.startswith("world")]
    if matched and not unscoped:
        unscoped = "it does not require the namespace label, which reserved identities lack"
    return EndpointReach(pods=_pod_part(effective), entities=tuple(matched), unscoped=unscoped)


def _pod_part(effective: Selector) -> Selector | None:
    """Pods carry no reserved labels: In/Exists on a reserved key matches no pod, NotIn/DoesNotExist
    every pod (so those requirements drop out). A pod always has its namespace label."""
    kept = []
    for r in effective.requirements:
        if r.key.startswith(RESERVED_PREFIX):
            if r.operator in ("In", "Exists"):
                return None
            continue
        if r.key == CILIUM_NAMESPACE_LABEL and r.operator == "DoesNotExist":
            return None
        kept.append(r)
    return Selector(tuple(kept))
