"""Connections spread over the gunicorn workers: a worker far ahead of another stops accepting for a while.

All workers accept on one listening socket. The kernel wakes every worker's event loop for a new connection
and the quickest one takes it, so a burst (the API server opening its connection pool, a load generator's 8
connections) can all land on one worker while the other idles: measured, 8 of 8 connections on one worker
and half the throughput. SO_REUSEPORT spreads by a hash instead, but resets the connections queued on a
worker's own socket when that worker exits (docs/performance.md), which a fail-closed webhook should not do.

So each worker publishes its open-connection count and a heartbeat in a small table of shared memory, made
by the master when it imports this module (before the fork, so every worker maps the same pages), and stands
back from accepting while it holds at least two connections more than a live worker. A worker publishes its
own count at every accept, so what it reads of another can only be too high (a close not yet published):
from the same readings two workers can never both stand back, and as each worker's loop reads the table
again every few milliseconds while it stands back (worker.SPREAD_EVERY), decisions made from readings of
different moments cannot keep both out for longer than that. A worker whose heartbeat is older than
STALE_AFTER (stuck, or gone) is not waited for.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass

SLOTS = 16  # a worker that finds no free slot is not balanced, and never blocked
STALE_AFTER = 1.0  # seconds without a heartbeat: that worker is not waited for (its loop wakes every 0.2 s)
AHEAD_BY = 2  # stand back while holding this many connections more than a live worker

_SLOT = struct.Struct("=qqd")  # pid, open connections, heartbeat (time.monotonic(), one clock per machine)


@dataclass
class Table:
    """The shared table: one slot per worker process."""

    memory: mmap.mmap

    @classmethod
    def create(cls, slots: int = SLOTS) -> Table:
        return cls(mmap.mmap(-1, slots * _SLOT.size))  # anonymous and shared: children of a fork see it

    @property
    def slots(self) -> int:
        return len(self.memory) // _SLOT.size

    def read(self, slot: int) -> tuple[int, int, float]:
        pid, conns, beat = _SLOT.unpack_from(self.memory, slot * _SLOT.size)
        return int(pid), int(conns), float(beat)

    def write(self, slot: int, pid: int, conns: int, beat: float) -> None:
        _SLOT.pack_into(self.memory, slot * _SLOT.size, pid, conns, beat)

    def claim(self, pid: int | None = None, now: float | None = None) -> int | None:
        """A slot for this process: its own, a free one, or one whose owner stopped beating; None if full."""
        pid = os.getpid() if pid is None else pid
        now = time.monotonic() if now is None else now
        for step in range(self.slots):
            slot = (pid + step) % self.slots  # workers starting at once mostly look at different slots first
            owner, _conns, beat = self.read(slot)
            if owner == pid or owner == 0 or now - beat > STALE_AFTER:
                self.write(slot, pid, 0, now)
                return slot
        return None

    def publish(self, slot: int | None, conns: int, pid: int | None = None, now: float | None = None) -> None:
        if slot is not None:
            self.write(slot, os.getpid() if pid is None else pid, conns, time.monotonic() if now is None else now)

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self.write(slot, 0, 0, 0.0)

    def may_accept(self, slot: int | None, conns: int, now: float | None = None) -> bool:
        """False while a live worker holds AHEAD_BY or more connections fewer than `conns`."""
        if slot is None:
            return True
        now = time.monotonic() if now is None else now
        for other, (owner, theirs, beat) in enumerate(_SLOT.iter_unpack(self.memory)):
            if other != slot and owner and now - beat <= STALE_AFTER and conns >= theirs + AHEAD_BY:
                return False
        return True


# Made at import: gunicorn's master imports the worker class (and so this module) before it forks the workers.
TABLE = Table.create()
