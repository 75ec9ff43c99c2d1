"""spread.Table: how workers decide to stand back from accepting (webhook/serve/spread.py).

The table itself is the real shared memory; the workers are played by pids and clock values given to it,
so every case is decided exactly (the server-level effect is measured by make bench, per worker)."""

from __future__ import annotations

import itertools
import os

from webhook.serve.spread import AHEAD_BY, STALE_AFTER, Table

NOW = 1000.0


def table_with(*workers: tuple[int, int, float]) -> tuple[Table, list[int]]:
    table = Table.create(slots=8)
    slots = []
    for pid, conns, beat in workers:
        slot = table.claim(pid=pid, now=beat)
        assert slot is not None
        table.publish(slot, conns, pid=pid, now=beat)
        slots.append(slot)
    return table, slots


def test_a_worker_far_ahead_of_a_live_one_stands_back_and_the_other_accepts() -> None:
    table, (a, b) = table_with((101, 0, NOW), (102, 0, NOW))
    table.publish(a, AHEAD_BY, pid=101, now=NOW)
    assert not table.may_accept(a, AHEAD_BY, now=NOW)
    assert table.may_accept(b, 0, now=NOW)
    assert table.may_accept(a, AHEAD_BY - 1, now=NOW), "one ahead still accepts: the split is never forced exactly"


def test_a_stale_or_released_worker_is_not_waited_for() -> None:
    table, (a, b) = table_with((101, 9, NOW), (102, 0, NOW - STALE_AFTER - 0.1))
    assert table.may_accept(a, 9, now=NOW), "the other worker's heartbeat is too old: it may be gone or stuck"
    table.publish(b, 0, pid=102, now=NOW)
    assert not table.may_accept(a, 9, now=NOW)
    table.release(b)
    assert table.may_accept(a, 9, now=NOW)


def test_without_a_slot_a_worker_always_accepts() -> None:
    table = Table.create(slots=1)
    assert table.claim(pid=1, now=NOW) == 0
    assert table.claim(pid=2, now=NOW) is None  # full: that worker is not balanced, and never blocked
    assert table.may_accept(None, 1000, now=NOW)


def test_a_slot_is_reclaimed_from_a_worker_that_stopped_beating() -> None:
    table = Table.create(slots=1)
    assert table.claim(pid=101, now=NOW - STALE_AFTER - 1) == 0
    assert table.claim(pid=202, now=NOW) == 0, "the old owner has not beaten for longer than STALE_AFTER"
    assert table.claim(pid=303, now=NOW) is None, "the new owner is live"


def test_two_live_workers_never_both_stand_back() -> None:
    """Each worker's own count is exact (published at every accept) and what it reads of the other is its
    true count or higher (a close not yet published): for every such state at least one of them accepts."""
    for a_true, b_true, a_extra, b_extra in itertools.product(range(12), range(12), range(4), range(4)):
        table, (a, b) = table_with((101, a_true + a_extra, NOW), (102, b_true + b_extra, NOW))
        assert table.may_accept(a, a_true, now=NOW) or table.may_accept(b, b_true, now=NOW), \
            (a_true, b_true, a_extra, b_extra)


def test_the_table_is_shared_with_a_forked_child() -> None:
    table = Table.create(slots=4)
    slot = table.claim(pid=os.getpid(), now=NOW)
    pid = os.fork()
    if pid == 0:  # the child publishes through the inherited mapping
        table.publish(slot, 7, pid=4242, now=NOW)
        os._exit(0)
    os.waitpid(pid, 0)
    assert slot is not None and table.read(slot) == (4242, 7, NOW)
