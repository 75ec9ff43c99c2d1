"""How much of the internet a set of allow rules opens, and on how many ports, taken together.

A pod gets the union of every rule that selects it, so coverage is judged on addresses x ports,
not rule by rule: 0.0.0.0/0 on TCP 1-32767 in one rule and 0.0.0.0/0 on TCP 32768-65535 in the
next open every port of the whole internet. The address space of a family is cut at every rule
boundary into segments; each segment gets the union of the port sets of the rules that cover it;
a public address counts as "open on every port" when that union reaches `port_coverage` for some
protocol. Work is O(boundaries log boundaries): the sweep keeps the port union of the rules active
at each point incrementally, so a segment never walks every rule.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.deadline import check as check_deadline
from webhook.core.ports import MAX_PORT, PortSet

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


class _Cover:
    """How many distinct ports a multiset of port ranges covers, with ranges added and removed in any
    order: a segment tree over the ranges' boundaries (each node counts the ranges that cover it
    whole and the length covered below it), O(log boundaries) per change."""

    def __init__(self, boundaries: Sequence[int]):
        self.points = sorted(set(boundaries))  # elementary pieces: [points[i], points[i + 1])
        size = max(1, len(self.points) - 1)
        self.count = [0] * (4 * size)
        self.length = [0] * (4 * size)
        self.pieces = size

    @property
    def covered(self) -> int:
        return self.length[1]

    def change(self, start: int, end: int, delta: int) -> None:
        """Add (delta 1) or remove (delta -1) the inclusive range start-end."""
        lo, hi = bisect_left(self.points, start), bisect_left(self.points, end + 1)
        if lo < hi:
            self._update(1, 0, self.pieces, lo, hi, delta)

    def _update(self, node: int, left: int, right: int, lo: int, hi: int, delta: int) -> None:
        if hi <= left or right <= lo:
            return
        if lo <= left and right <= hi:
            self.count[node] += delta
        else:
            middle = (left + right) // 2
            self._update(2 * node, left, middle, lo, hi, delta)
            self._update(2 * node + 1, middle, right, lo, hi, delta)
        if self.count[node]:
            self.length[node] = self.points[right] - self.points[left]
        elif right - left == 1:
            self.length[node] = 0
        else:
            self.length[node] = self.length[2 * node] + self.length[2 * node + 1]


class _PortUnion:
    """The union of the port sets of the rules active at a point of the sweep, kept incrementally: each
    distinct port set is added to (or taken out of) the per-protocol covers when the first (last) rule
    holding it becomes active (inactive)."""

    def __init__(self, port_sets: Sequence[PortSet], threshold: float):
        self.port_sets = port_sets  # distinct; a rule refers to its own by position
        boundaries: dict[str, list[int]] = {}
        for ports in port_sets:
            for protocol, ranges in ports.ranges:
                for start, end in ranges:
                    boundaries.setdefault(protocol, []).extend((start, end + 1))
        self.covers = {protocol: _Cover(points) for protocol, points in boundaries.items()}
        self.threshold = threshold
        self.holders = [0] * len(port_sets)  # active rules holding each port set

    def change(self, which: int, delta: int) -> None:
        held = self.holders[which] = self.holders[which] + delta
        if (delta > 0 and held == 1) or (delta < 0 and held == 0):
            for protocol, ranges in self.port_sets[which].ranges:
                for start, end in ranges:
                    self.covers[protocol].change(start, end, delta)

    def every_port(self) -> bool:
        """PortSet.every_port of the union: the largest share of 1-65535 open for one protocol."""
        return max((c.covered for c in self.covers.values()), default=0) / MAX_PORT >= self.threshold


def figures(openings: Sequence[Opening], public: Sequence[Interval], public_size: int,
            port_coverage: float) -> Figures:
    """A sweep over the rule boundaries, O(boundaries log boundaries): the port union of the active rules
    is kept incrementally (_PortUnion), and a rule joins the reported rules once, when it is first active
    over a counted segment, so no segment ever walks the set of active rules."""
    events: list[tuple[int, int, int]] = []
    for o in openings:
        for start, end in o.intervals:
            events.append((start, 1, o.index))
            events.append((end + 1, -1, o.index))
    events.sort()
    by_index = {o.index: o for o in openings}
    distinct: dict[PortSet, int] = {}
    port_set_of = {o.index: distinct.setdefault(o.ports, len(distinct)) for o in openings}
    ports = _PortUnion(list(distinct), port_coverage)
    active: dict[int, int] = {}
    traffic = 0  # active rules with some traffic
    every = some = 0
    every_rules: set[int] = set()
    some_rules: set[int] = set()
    # active rules not reported yet, per figure: emptied into the figure's rules at a counted segment
    every_waiting: set[int] = set()
    some_waiting: set[int] = set()
    i = 0
    while i < len(events):
        check_deadline("coverage")
        position = events[i][0]
        while i < len(events) and events[i][0] == position:
            _, delta, index = events[i]
            before = active.get(index, 0)
            after = before + delta
            if after:
                active[index] = after
            else:
                del active[index]
            if not before or not after:  # the rule becomes active or inactive here
                o = by_index[index]
                ports.change(port_set_of[index], delta)
                traffic += delta if o.some_traffic else 0
                for waiting, joins, done in ((some_waiting, o.some_traffic, some_rules),
                                             (every_waiting, not o.ports.empty, every_rules)):
                    if joins and index not in done:
                        if after:
                            waiting.add(index)
                        else:
                            waiting.discard(index)
            i += 1
        if not active or i >= len(events):
            continue
        size = _public_size(position, events[i][0] - 1, public)
        if not size:
            continue
        if traffic:
            some += size
            some_rules |= some_waiting
            some_waiting.clear()
        if ports.every_port():
            every += size
            every_rules |= every_waiting
            every_waiting.clear()
    return Figures(every / public_size, some / public_size, tuple(sorted(every_rules)), tuple(sorted(some_rules)))
