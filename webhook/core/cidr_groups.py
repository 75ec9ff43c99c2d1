"""CiliumCIDRGroup references resolved into the CIDR peers they stand for.

`toCIDRSet: [{cidrGroupRef: corp}]` allows what the group's `spec.externalCIDRs` list, so it is
judged like that list (internet coverage, metadata, private ranges). The groups live in the
cluster: with the cluster view they come from the snapshot; without it the peer stays a group
and the requester is told it could not be judged, never silently passed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace

from webhook.core.deadline import check as check_deadline
from webhook.core.netpolicy import NormalizedPolicy, Peer, PeerType
from webhook.core.shape import ShapeError
from webhook.core.snapshot import ClusterSnapshot

# peer -> the CIDRs of the groups it names (None: cannot tell), and the groups' names for messages
Lookup = Callable[[Peer], tuple[tuple[str, ...], str] | None]


def _inside(hole: str, cidr: str) -> bool:
    try:
        h, c = ipaddress.ip_network(hole.strip(), strict=False), ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return True  # let facts.py report the malformed except with its path
    return h.version == c.version and h.subnet_of(c)  # type: ignore[arg-type]


def expand(peer: Peer, cidrs: Sequence[str], names: str) -> list[Peer]:
    via = f"from CiliumCIDRGroup {names}"
    return [Peer(path=peer.path, type=PeerType.CIDR, cidr=c, excepts=tuple(e for e in peer.excepts if _inside(e, c)),
                 via=via) for c in cidrs]


def resolve(policy: NormalizedPolicy, lookup: Lookup) -> tuple[NormalizedPolicy, tuple[str, ...]]:
    """The policy with group peers replaced by their CIDRs, and a notice per group that stays unknown."""
    notices: list[str] = []
    rules = []
    for rule in policy.rules:
        check_deadline("CIDR groups")
        peers: list[Peer] = []
        for peer in rule.peers:
            if peer.type is PeerType.GROUP and "calicoNetworkSets" in peer.raw:  # webhook/kinds/calico.py
                sets = "NetworkSets and GlobalNetworkSets" if peer.raw.get("global") else "NetworkSets"
                notices.append(f"{peer.path}: Calico {sets} whose labels match {peer.raw['calicoNetworkSets']!r} "
                               "are peers too; netguard does not read network sets, so their addresses were not "
                               "checked")
            if peer.type is not PeerType.GROUP or "cidrGroup" not in peer.raw:
                peers.append(peer)
                continue
            found = lookup(peer)
            if found is None:
                notices.append(f"{peer.path}: CiliumCIDRGroup {peer.raw['cidrGroup']} cannot be judged without the "
                               "cluster (netguard's cluster view is off, not synced or stale, or the group's CIDRs "
                               "are unreadable); its addresses were not checked")
                peers.append(peer)
                continue
            cidrs, names = found
            expanded = expand(peer, cidrs, names)
            # A group with no CIDRs (or no group) allows nothing: keep the peer so the rule still names a peer.
            peers.extend(expanded or [peer])
        changed = len(peers) != len(rule.peers) or any(a is not b for a, b in zip(peers, rule.peers, strict=False))
        rules.append(replace(rule, peers=tuple(peers)) if changed else rule)
    if all(a is b for a, b in zip(rules, policy.rules, strict=True)):
        return policy, tuple(notices)  # no group peers: nothing to copy
    return replace(policy, rules=tuple(rules)), tuple(notices)


def snapshot_lookup(snapshot: ClusterSnapshot) -> Lookup:
    """Group peers looked up in a cluster snapshot (None where it cannot tell)."""

    def lookup(peer: Peer) -> tuple[tuple[str, ...], str] | None:
        if "cidrGroupRef" in peer.raw:
            groups = snapshot.cidr_groups()
            if groups is None:
                return None
            name = str(peer.raw["cidrGroupRef"])
            group = groups.get(name)
            if group is None:
                return (), f"{name} (no such group: allows nothing)"
            return None if group.invalid else (group.cidrs, name)
        try:
            chosen = snapshot.select_cidr_groups(peer.raw.get("cidrGroupSelector"), f"{peer.path}.cidrGroupSelector")
        except ShapeError:
            return None
        if chosen is None or any(g.invalid for g in chosen):
            return None
        return tuple(c for g in chosen for c in g.cidrs), ", ".join(g.name for g in chosen) or "(none selected)"

    return lookup
