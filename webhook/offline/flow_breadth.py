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
    """The egress rule that allows DNS to `dest` (UDP and TCP 53), in the policy's own kind."""
    return allow_rule(policy, "egress", dest, (("UDP", DNS_PORT), ("TCP", DNS_PORT)))


def allow_rule(policy: NormalizedPolicy, direction: str, peer: ObservedPeer,
               ports: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The rule that allows `peer` on `ports` in `direction`, in the policy's own kind; empty where there is no
    obvious spelling: the network-policy-api kinds (their rules carry a name and an action the platform team
    chooses), a Calico rule over several protocols (one protocol per rule), a peer without labels or address."""
    flavor = policy.flavor
    if flavor is Flavor.KUBERNETES and policy.kind != "NetworkPolicy":
        return {}
    egress = direction == "egress"
    if flavor is Flavor.CALICO:
        return _calico_rule(egress, peer, ports)
    if peer.kind == "pod":
        pod_labels = dict(peer.labels)
        if flavor is Flavor.CILIUM:
            selector = {f"k8s:{k}": v for k, v in pod_labels.items()}
            selector["k8s:io.kubernetes.pod.namespace"] = peer.namespace
            return {"toEndpoints" if egress else "fromEndpoints": [{"matchLabels": selector}],
                    "toPorts": [{"ports": [{"port": str(n), "protocol": p} for p, n in ports]}]}
        item = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}},
                "podSelector": {"matchLabels": pod_labels}}
        return {"to" if egress else "from": [item], "ports": [{"protocol": p, "port": n} for p, n in ports]}
    cidr = host_cidr(peer.ip)
    if not cidr:
        return {}
    if flavor is Flavor.CILIUM:
        return {"toCIDR" if egress else "fromCIDR": [cidr],
                "toPorts": [{"ports": [{"port": str(n), "protocol": p} for p, n in ports]}]}
    return {"to" if egress else "from": [{"ipBlock": {"cidr": cidr}}],
            "ports": [{"protocol": p, "port": n} for p, n in ports]}


def _calico_rule(egress: bool, peer: ObservedPeer, ports: Sequence[tuple[str, int]]) -> dict[str, Any]:
    protocols = {p for p, _ in ports}
    if len(protocols) != 1:
        return {}
    if peer.kind == "pod":
        expression = " && ".join(f"{k} == '{v}'" for k, v in peer.labels) or "all()"
        where: dict[str, Any] = {"selector": expression,
                                 "namespaceSelector": f"{NAMESPACE_NAME_LABEL} == '{peer.namespace}'"}
    elif host_cidr(peer.ip):
        where = {"nets": [host_cidr(peer.ip)]}
    else:
        return {}
    # Calico: the destination carries the ports in both directions (the service's side).
    ports_at = {"ports": sorted({n for _, n in ports})}
    if egress:
        return {"action": "Allow", "protocol": protocols.pop(), "destination": {**where, **ports_at}}
    return {"action": "Allow", "protocol": protocols.pop(), "source": where, "destination": ports_at}
