"""The O(n log n) interval arithmetic (facts.subtract, facts.intersect_size, coverage.figures) against the
straightforward quadratic definitions they replaced, on random inputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.coverage import Figures, Opening, figures
from webhook.core.facts import intersect_size as fast_intersect_size
from webhook.core.facts import merge, subtract
from webhook.core.ports import PortSet

Interval = tuple[int, int]


def naive_subtract(base: Sequence[Interval], holes: Iterable[Interval]) -> list[Interval]:
    result = list(base)
    for h_start, h_end in merge(holes):
        nxt: list[Interval] = []
        for start, end in result:
            if h_end < start or h_start > end:
                nxt.append((start, end))
                continue
            if start < h_start:
                nxt.append((start, h_start - 1))
            if h_end < end:
                nxt.append((h_end + 1, end))
        result = nxt
    return result


def naive_intersect_size(a: Sequence[Interval], b: Sequence[Interval]) -> int:
    total = 0
    for a_start, a_end in a:
        for b_start, b_end in b:
            lo, hi = max(a_start, b_start), min(a_end, b_end)
            if lo <= hi:
                total += hi - lo + 1
    return total


def naive_figures(openings: Sequence[Opening], public: Sequence[Interval], public_size: int,
                  port_coverage: float) -> Figures:
    """Every elementary segment, with the port union of the rules covering it computed from scratch."""
    points = sorted({p for o in openings for s, e in o.intervals for p in (s, e + 1)})
    every = some = 0
    every_rules: set[int] = set()
    some_rules: set[int] = set()
    for start, nxt in pairwise(points):
        covering = [o for o in openings if any(s <= start <= e for s, e in o.intervals)]
        size = sum(max(0, min(nxt - 1, pe) - max(start, ps) + 1) for ps, pe in public)
        if not covering or not size:
            continue
        union = PortSet()
        for o in covering:
            union = union.union(o.ports)
        if any(o.some_traffic for o in covering):
            some += size
            some_rules.update(o.index for o in covering if o.some_traffic)
        if union.every_port(port_coverage):
            every += size
            every_rules.update(o.index for o in covering if not o.ports.empty)
    return Figures(every / public_size, some / public_size, tuple(sorted(every_rules)), tuple(sorted(some_rules)))


def interval(limit: int) -> st.SearchStrategy[Interval]:
    return st.tuples(st.integers(0, limit), st.integers(0, limit // 4)).map(lambda t: (t[0], t[0] + t[1]))


intervals = st.lists(interval(1000), max_size=30)


@given(intervals, intervals)
def test_subtract_is_the_pairwise_definition(base: list[Interval], holes: list[Interval]) -> None:
    assert subtract(base, holes) == naive_subtract(base, holes)


@given(intervals, intervals)
def test_intersect_size_is_the_sum_over_pairs(a: list[Interval], b: list[Interval]) -> None:
    assert fast_intersect_size(a, b) == naive_intersect_size(a, b)
    assert fast_intersect_size(merge(a), merge(b)) == naive_intersect_size(merge(a), merge(b))


def test_subtract_many_holes_leaves_the_gaps_between_them() -> None:
    holes = [(2 * i, 2 * i) for i in range(8000)]  # every other address: 8,000 holes that do not merge
    left = subtract([(0, 2**32 - 1)], holes)
    assert len(left) == 8000
    assert left[0] == (1, 1) and left[-1] == (15999, 2**32 - 1)


port_entries = st.lists(st.tuples(st.sampled_from(["TCP", "UDP", "ANY"]), st.integers(1, 65535),
                                  st.integers(0, 40000)), max_size=3)


@st.composite
def openings(draw: st.DrawFn) -> list[Opening]:
    out = []
    for index in range(draw(st.integers(0, 6))):
        spans = merge(draw(st.lists(interval(200), min_size=1, max_size=4)))
        entries = draw(port_entries)
        every = draw(st.booleans())
        ports = PortSet.everything() if every else PortSet.of(
            (proto, start, min(65535, start + width), "") for proto, start, width in entries)
        out.append(Opening(index, tuple(spans), ports, some_traffic=not ports.empty or draw(st.booleans())))
    return out


@settings(max_examples=300)
@given(openings(), st.lists(interval(250), min_size=1, max_size=4), st.sampled_from([0.3, 0.6, 0.9, 1.0]))
def test_figures_is_the_union_per_segment(given_openings: list[Opening], public: list[Interval],
                                          port_coverage: float) -> None:
    public = merge(public)
    size = sum(e - s + 1 for s, e in public)
    assert figures(given_openings, public, size, port_coverage) == naive_figures(given_openings, public, size,
                                                                                port_coverage)
