"""How much of the internet a set of allow rules opens, and on how many ports, taken together.

A pod gets the union of every rule that selects it, so coverage is judged on addresses x ports,
not rule by rule: 0.0.0.0/0 on TCP 1-32767 in one rule and 0.0.0.0/0 on TCP 32768-65535 in the
next open every port of the whole internet. The address space of a family is cut at every rule
boundary into segments; each segment gets the union of the port sets of the rules that cover it;
a public address counts as "open on every port" when that union reaches `port_coverage` for some
protocol. Work is O(segments x rules) over at most a few boundaries per CIDR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webhook.deadline import check as check_deadline
from webhook.ports import PortSet

Interval = tuple[int, int]  # inclusive


@dataclass(frozen=True)
class Opening:
    """One rule's contribution: the addresses of one family it reaches, and its ports."""

    index: int
    intervals: tuple[Interval, ...]
    ports: PortSet
    some_traffic: bool  # any port or ICMP at all


@dataclass(frozen=True)
class Figures:
    every_port_fraction: float  # share of the public space open on every port (union of the rules)
    some_port_fraction: float  # share of the public space open on at least one port
    every_port_rules: tuple[int, ...]  # rules that open public segments counted as every port
    some_port_rules: tuple[int, ...]


def _public_size(start: int, end: int, public: Sequence[Interval]) -> int:
    total = 0
    for p_start, p_end in public:
        lo, hi = max(start, p_start), min(end, p_end)
        if lo <= hi:
            total += hi - lo + 1
    return total


def figures(openings: Sequence[Opening], public: Sequence[Interval], public_size: int,
            port_coverage: float) -> Figures:
    """A sweep over the rule boundaries: O(boundaries log boundaries) plus one port union per segment
    over the rules active there (memoized by the active set)."""
    events: list[tuple[int, int, int]] = []
    for o in openings:
        for start, end in o.intervals:
            events.append((start, 1, o.index))
            events.append((end + 1, -1, o.index))
    events.sort()
    by_index = {o.index: o for o in openings}
    active: dict[int, int] = {}
    every = some = 0
    every_rules: set[int] = set()
    some_rules: set[int] = set()
    verdicts: dict[frozenset[int], tuple[bool, bool]] = {}
    i = 0
    while i < len(events):
        position = events[i][0]
        if not i % 1024:
            check_deadline("coverage")
        while i < len(events) and events[i][0] == position:
            _, delta, index = events[i]
            active[index] = active.get(index, 0) + delta
            if not active[index]:
                del active[index]
            i += 1
        if not active or i >= len(events):
            continue
        size = _public_size(position, events[i][0] - 1, public)
        if not size:
            continue
        key = frozenset(active)
        if key not in verdicts:
            union = PortSet()
            for index in key:
                union = union.union(by_index[index].ports)
            verdicts[key] = (any(by_index[x].some_traffic for x in key), union.every_port(port_coverage))
        has_traffic, every_port = verdicts[key]
        if has_traffic:
            some += size
            some_rules.update(x for x in key if by_index[x].some_traffic)
        if every_port:
            every += size
            every_rules.update(x for x in key if not by_index[x].ports.empty)
    return Figures(every / public_size, some / public_size, tuple(sorted(every_rules)), tuple(sorted(some_rules)))
