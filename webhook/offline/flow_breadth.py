"""How an allow rule is broader than the traffic it carried, and the allow a dropped DNS query needed: the
evidence the flow guardrails (broader-than-observed, dropped-needed) report, with the narrower peers and ports,
or the missing rule, spelled for the policy's own kind. Pure: offline/flow_match.py counts, this reads the counts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from webhook.core.facts import INTERNET_ENTITIES
from webhook.core.flow_evidence import Breadth, ObservedPeer, RuleUsage, port_label
from webhook.core.netpolicy import Flavor, NormalizedPolicy, PeerType, Rule, Scope
from webhook.core.selectors import NAMESPACE_NAME_LABEL

DNS_PORT = 53


@lru_cache(maxsize=1 << 14)
def address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def ip_family(ip: str) -> int | None:
    found = address(ip)
    return found.version if found is not None else None


def host_cidr(ip: str) -> str:
    """The /32 (/128) of an address, "" when it is not one."""
    found = address(ip)
    return f"{found}/{found.max_prefixlen}" if found is not None else ""


def breadth(policy: NormalizedPolicy, rule: Rule, usage: RuleUsage) -> tuple[Breadth, ...]:
    """How the rule is broader than the traffic it carried: the internet with a few addresses seen, every
    namespace with a few seen, every port with a few seen. Each comes with what would have carried every flow;
    the guardrail's parameter decides what "a few" is."""
    out: list[Breadth] = []
    world = [p for p in usage.peers if p.kind == "world"]
    internet = rule.any_peer or rule.facts.internet or any(
        p.type is PeerType.ENTITY and p.entity in ("all", *INTERNET_ENTITIES) for p in rule.peers)
    if internet and world and not usage.more_peers:
        out.append(Breadth("internet", "the whole internet", tuple(sorted({p.describe() for p in world})),
                           narrower=_narrower_world(policy.flavor, world)))
    pods = [p for p in usage.peers if p.kind == "pod"]
    every_namespace = rule.any_peer or rule.facts.all_namespaces or any(
        p.type is PeerType.PODS and p.namespaces is not None and p.namespaces.scope is Scope.ALL for p in rule.peers)
    if every_namespace and pods and not usage.more_peers:
        seen = tuple(sorted({p.namespace for p in pods}))
        out.append(Breadth("namespaces", "pods of every namespace", seen,
                           narrower="only the namespaces " + ", ".join(seen) + " (by kubernetes.io/metadata.name)"))
    if rule.every_port and usage.ports and not usage.more_ports:
        seen = tuple(port_label(p) for p in usage.ports)
        out.append(Breadth("ports", "every port", seen, narrower="only " + ", ".join(seen)))
    return tuple(out)


def _narrower_world(flavor: Flavor, world: Sequence[ObservedPeer]) -> str:
    named = sorted({p.names[0] for p in world if p.names})
    bare = sorted({p.ip for p in world if not p.names})
    parts = []
    if named:
        parts.append(("toFQDNs matchName " if flavor is Flavor.CILIUM else "the addresses of ") + ", ".join(named))
    if bare:
        parts.append(", ".join(host_cidr(ip) for ip in bare))
    return "only " + " and ".join(parts)


def dns_rule(policy: NormalizedPolicy, dest: ObservedPeer) -> dict[str, Any]:
    """The egress rule that allows DNS to `dest`, in the policy's own kind; empty for the network-policy-api
    kinds, whose rules carry a name and an action the platform team chooses."""
    flavor = policy.flavor
    if flavor is Flavor.KUBERNETES and policy.kind != "NetworkPolicy":
        return {}
    if dest.kind == "pod":
        pod_labels = dict(dest.labels)
        if flavor is Flavor.CILIUM:
            selector = {f"k8s:{k}": v for k, v in pod_labels.items()}
            selector["k8s:io.kubernetes.pod.namespace"] = dest.namespace
            return {"toEndpoints": [{"matchLabels": selector}],
                    "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}]}]}
        if flavor is Flavor.CALICO:
            expression = " && ".join(f"{k} == '{v}'" for k, v in pod_labels.items()) or "all()"
            return {"action": "Allow", "protocol": "UDP",
                    "destination": {"selector": expression,
                                    "namespaceSelector": f"{NAMESPACE_NAME_LABEL} == '{dest.namespace}'",
                                    "ports": [DNS_PORT]}}
        return {"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: dest.namespace}},
                        "podSelector": {"matchLabels": pod_labels}}],
                "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
    cidr = host_cidr(dest.ip)
    if not cidr:
        return {}
    if flavor is Flavor.CILIUM:
        return {"toCIDR": [cidr],
                "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}]}]}
    if flavor is Flavor.CALICO:
        return {"action": "Allow", "protocol": "UDP", "destination": {"nets": [cidr], "ports": [DNS_PORT]}}
    return {"to": [{"ipBlock": {"cidr": cidr}}],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
