"""One function over a list, in forked worker processes, results in input order (`netguard audit --jobs`).

The audit reads and reviews thousands of documents one by one, each independent of the others, on a
single thread (regorus holds the GIL). `ordered` runs ``work(state, i)`` for every index in chunks
over `jobs` processes forked from this one: the workers inherit `state` (a built pipeline with its
compiled regorus engines, the documents) without pickling it, which the engines would not allow;
only the chunk bounds go out and the results come back. Results are yielded in index order, so a
report built from them is the one the sequential loop builds.

Falls back to the sequential loop in this process with one job, too few items to pay for the
processes, or where fork is not available.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

S = TypeVar("S")
R = TypeVar("R")

MIN_PER_JOB = 64  # fewer items per process than this: not worth forking (a fork and a round trip cost ~ms)
CHUNKS_PER_JOB = 8  # several chunks per process, so a process slowed by other work does not hold up the end
MAX_CHUNK = 256

_work: tuple[Callable[[Any, int], Any], Any] | None = None  # in a worker: what its chunks run


def default_jobs() -> int:
    """The CPUs this process may use: those it may run on, capped by a cgroup CPU limit (a container's
    limits.cpu, which os.cpu_count() does not see: a pod limited to one CPU on a 32-CPU node gets 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(cpus, limit) if limit is not None else cpus)


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by the cgroup's quota, rounded up; None without a quota (or without cgroups)."""
    try:  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1: -1 without a quota
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def workers_for(count: int, jobs: int) -> int:
    """How many processes `ordered` uses for `count` items with `jobs` allowed; 1 means this process."""
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(jobs, count // MIN_PER_JOB))


@contextmanager
def ordered(work: Callable[[S, int], R], state: S, count: int, jobs: int) -> Iterator[Iterator[R]]:
    """``work(state, i)`` for i in range(count), in order. The processes are forked on entry (so before any
    thread the caller starts inside the block) and stopped on exit; an exception in `work` is raised here."""
    workers = workers_for(count, jobs)
    if workers == 1:
        yield (work(state, i) for i in range(count))
        return
    size = max(1, min(MAX_CHUNK, math.ceil(count / (workers * CHUNKS_PER_JOB))))
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start, initargs=(work, state))
    # What exists now is shared with the workers copy-on-write: out of the collector's sight, so that their
    # collections neither walk it (every worker, again and again) nor write to it (copying its pages).
    gc.freeze()
    try:
        futures = [executor.submit(_chunk, start, min(start + size, count)) for start in range(0, count, size)]
        yield (result for future in futures for result in future.result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _start(work: Callable[[Any, int], Any], state: Any) -> None:
    global _work
    _work = (work, state)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool


def _chunk(start: int, stop: int) -> list[Any]:
    assert _work is not None, "not in a worker started by ordered()"
    work, state = _work
    return [work(state, i) for i in range(start, stop)]
