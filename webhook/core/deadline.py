"""One deadline per request, checked cooperatively by the pure core.

The validating webhook fails closed, so an answer that comes after the API server gave up is as bad
as a denial for everybody. `Pipeline.review` starts a deadline when the request has been read (the
server passes its start time) and binds it here; normalization, CIDR and port arithmetic and the
group search call `check()` at their loop heads, so a request past its deadline stops spending CPU
at the next check and is answered per `engine.on_error`. The engine gets the same deadline (the
evaluator processes kill an evaluation that overruns it). A context variable keeps the core's
function signatures free of plumbing, like Go's context.Context but implicit; outside a bounded
block `check()` does nothing (the CLI's explain, tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class DeadlineExceeded(Exception):
    """The request's deadline passed during `stage`."""

    def __init__(self, stage: str, over_by: float) -> None:
        super().__init__(f"request deadline passed during {stage} ({over_by * 1000:.0f} ms over)")
        self.stage = stage


_expires: ContextVar[float | None] = ContextVar("netguard_deadline", default=None)


@contextmanager
def bounded(expires: float | None) -> Iterator[None]:
    """Bind a deadline (time.monotonic() value) for the work done inside the block."""
    token = _expires.set(expires)
    try:
        yield
    finally:
        _expires.reset(token)


def check(stage: str) -> None:
    expires = _expires.get()
    if expires is not None:
        now = time.monotonic()
        if now > expires:
            raise DeadlineExceeded(stage, now - expires)


def remaining() -> float | None:
    expires = _expires.get()
    return None if expires is None else expires - time.monotonic()
