"""CiliumCIDRGroup references resolved into the CIDR peers they stand for.

`toCIDRSet: [{cidrGroupRef: corp}]` allows what the group's `spec.externalCIDRs` list, so it is
judged like that list (internet coverage, metadata, private ranges). The groups live in the
cluster: with the cluster view they come from the snapshot; without it the peer stays a group
and the requester is told it could not be judged, never silently passed.

Calico's NetworkSets and GlobalNetworkSets are the same for a Calico rule's `selector`/`namespaceSelector` peer
(webhook/kinds/calico.py leaves a `calicoNetworkSets` group peer): the sets whose labels the selector may match
become CIDR peers of their `spec.nets`. The selector is matched by its *over* bound (core/calico_selectors.py:
at least every label set it matches), so a set that could match is never missed; a set it cannot match may be
counted in, which reports at worst too much reach.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace

from webhook.core import calico_selectors
from webhook.core.deadline import check as check_deadline
from webhook.core.netpolicy import NormalizedPolicy, Peer, PeerType
from webhook.core.shape import ShapeError
from webhook.core.snapshot import ClusterSnapshot, NetworkSet

# Labels Calico gives what its selectors match, that a (Global)NetworkSet object does not carry itself: a namespace
# by name (projectcalico.org/name, as in kinds/calico.py) and a namespaced endpoint's namespace
# (projectcalico.org/namespace). A set is matched with and without the latter, so either way it is not missed.
_NAMESPACE_NAME = "projectcalico.org/name"
_ENDPOINT_NAMESPACE = "projectcalico.org/namespace"

# peer -> the CIDRs of the groups it names (None: cannot tell), and the groups' names for messages
Lookup = Callable[[Peer], tuple[tuple[str, ...], str] | None]


def _inside(hole: str, cidr: str) -> bool:
    try:
        h, c = ipaddress.ip_network(hole.strip(), strict=False), ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return True  # let facts.py report the malformed except with its path
    return h.version == c.version and h.subnet_of(c)  # type: ignore[arg-type]


def expand(peer: Peer, cidrs: Sequence[str], names: str, *, via: str = "") -> list[Peer]:
    via = via or f"from CiliumCIDRGroup {names}"
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
                found = lookup(peer)
                if found is None:
                    sets = "NetworkSets and GlobalNetworkSets" if peer.raw.get("global") else "NetworkSets"
                    notices.append(f"{peer.path}: Calico {sets} whose labels match "
                                   f"{peer.raw['calicoNetworkSets']!r} are peers too; they cannot be judged without "
                                   "the cluster's network sets (netguard's cluster view is off, not synced or stale; "
                                   "the audited files or credentials hold none; or a set's nets are unreadable), so "
                                   "their addresses were not checked")
                    peers.append(peer)
                    continue
                cidrs, names = found
                # No set matches (or none has nets): the placeholder stays, inert, as for an empty CIDR group.
                peers.extend(expand(peer, cidrs, names, via=f"from Calico {names}") or [peer])
                continue
            if peer.type is not PeerType.GROUP or "cidrGroup" not in peer.raw:
                peers.append(peer)
                continue
            found = lookup(peer)
            if found is None:
                notices.append(f"{peer.path}: CiliumCIDRGroup {peer.raw['cidrGroup']} cannot be judged without the "
                               "cluster's CIDR groups (netguard's cluster view is off, not synced or stale; the "
                               "audited files or credentials hold none; or the group's CIDRs are unreadable); its "
                               "addresses were not checked")
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
        if "calicoNetworkSets" in peer.raw:
            matched = network_sets_of(snapshot, peer)
            if matched is None or any(s.invalid for s in matched):
                return None
            return tuple(c for s in matched for c in s.nets), ", ".join(s.title for s in matched) or "(none selected)"
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


def network_sets_of(snapshot: ClusterSnapshot, peer: Peer) -> tuple[NetworkSet, ...] | None:
    """The (Global)NetworkSets a Calico `calicoNetworkSets` peer may match, in (namespace, name) order, or None when
    the snapshot cannot tell (no usable view, sets not listed, or a selector that does not parse). Where they may
    live is the peer's `namespaces`: "none" (global(): GlobalNetworkSets alone), "own", "all", or "selected" by
    its `namespaceSelector`; GlobalNetworkSets join when `global` is set (calico.py)."""
    sets = snapshot.network_sets()
    if sets is None:
        return None
    raw = peer.raw
    try:
        selector = calico_selectors.bounds(calico_selectors.parse(raw.get("calicoNetworkSets"), peer.path)).over
        where = str(raw.get("namespaces") or "")
        namespaces = None
        if where == "selected":
            namespaces = calico_selectors.bounds(calico_selectors.parse(raw.get("namespaceSelector"),
                                                                        f"{peer.path}.namespaceSelector")).over
    except ShapeError:
        return None
    if where not in ("none", "own", "all", "selected"):
        return None  # a placeholder of an older shape: cannot tell where its sets live

    def reached(namespace: str) -> bool:
        if not namespace:
            return bool(raw.get("global"))
        if where == "own":
            return namespace == raw.get("namespace")
        if namespaces is not None:  # "selected"; a namespace the view has not seen is counted in
            known = snapshot.namespaces.get(namespace)
            return known is None or namespaces.matches({**known, _NAMESPACE_NAME: namespace})
        return where == "all"

    chosen = []
    for (namespace, _), found in sorted(sets.items()):
        check_deadline("Calico network sets")
        if not reached(namespace):
            continue
        if selector.matches(found.labels) or (
                namespace and selector.matches({**found.labels, _ENDPOINT_NAMESPACE: namespace})):
            chosen.append(found)
    return tuple(chosen)
