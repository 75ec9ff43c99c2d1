"""Rego evaluations in child processes, so a deadline can be kept and a runaway evaluation stopped.

regorus holds the GIL for the whole of an evaluation (measured: a thread waiting with a timeout
on a 3 s evaluation wakes up after 3 s, not at its timeout), so a thread pool cannot answer in
time, and nothing in-process can stop a Rust loop. Each evaluator is a small Python process
that compiled the same modules; the caller sends the input document over a pipe and waits with
a deadline. Past the deadline the evaluator is killed (SIGKILL) and replaced, so a stuck
evaluation holds its slot for at most one budget and can never exhaust the pool.

The evaluators also run outside the worker's GIL, so the threads of one gunicorn worker can
evaluate in parallel. Cost: one pipe round trip per evaluation (about 0.1 ms here) and one
process per slot (about 12 MB of private memory).
This module imports nothing heavy: the child starts with the standard library and regorus only.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LENGTH = struct.Struct(">I")
_OK, _FAILED, _DIED = b"0", b"1", b"2"  # answered, evaluation error, cannot go on
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# The child's entry point: put this checkout (or site-packages) first, then serve the two pipe fds.
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from webhook.engine.evalpool import child_main; child_main()"


class EvaluatorTimeout(Exception):
    """No answer within the deadline (the evaluator was busy past it and has been replaced)."""


class EvaluatorBusy(EvaluatorTimeout):
    """Every evaluator stayed busy until the deadline: the evaluation never started."""


class EvaluatorFailed(Exception):
    """The evaluation raised an error (the Rego's fault); the evaluator stays usable."""


class EvaluatorDied(EvaluatorFailed):
    """The evaluator process exited or could not start; it is replaced."""


# Starting an evaluator: interpreter, `import regorus` and compiling the catalog (about 0.1 s here).
START_TIMEOUT = 30.0
RESPAWN_PAUSE = 1.0


class _Child:
    """One evaluator process and the parent's ends of its two pipes."""

    def __init__(self, modules_frame: bytes, deadline: float) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, _PACKAGE_ROOT, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                stdout=2,  # to stderr: a stray print() in Rego must not corrupt the protocol
                close_fds=True)
        except BaseException:
            for fd in (self._to_child, self._from_child):
                os.close(fd)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        os.set_blocking(self._to_child, False)
        os.set_blocking(self._from_child, False)
        try:
            self._write(modules_frame, deadline)
            self._read_answer(deadline)  # "compiled"
        except BaseException:
            self.kill()
            raise

    def call(self, payload: bytes, deadline: float) -> bytes:
        self._write(_LENGTH.pack(len(payload)) + payload, deadline)
        return self._read_answer(deadline)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._to_child, write=True, deadline=deadline)
            try:
                sent = os.write(self._to_child, view)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise EvaluatorDied(self._death()) from None
            view = view[sent:]

    def _read_answer(self, deadline: float) -> bytes:
        header = self._read(1 + _LENGTH.size, deadline)
        status, (length,) = header[:1], _LENGTH.unpack(header[1:])
        body = self._read(length, deadline)
        if status == _FAILED:
            raise EvaluatorFailed(body.decode("utf-8", "replace"))
        if status != _OK:
            raise EvaluatorDied(body.decode("utf-8", "replace"))
        return body

    def _read(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            self._wait(self._from_child, write=False, deadline=deadline)
            try:
                chunk = os.read(self._from_child, min(size, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise EvaluatorDied(self._death())
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _wait(fd: int, *, write: bool, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EvaluatorTimeout()
        poller = select.poll()
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        if not poller.poll(max(1, int(remaining * 1000))):
            raise EvaluatorTimeout()

    def _death(self) -> str:
        code = self.proc.poll()
        if code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=1)
        return f"evaluator process exited unexpectedly (exit status {code})"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.close()

    def close(self) -> None:
        """Closing the pipes ends the child's loop; a child still busy after a second is killed."""
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class EvaluatorPool:
    """`size` evaluator processes shared by the threads of one process, one call each at a time.

    Bounded twice: a caller waits for a free evaluator only until its own deadline (then
    EvaluatorBusy), and an evaluator that overruns a deadline is killed at once and replaced in
    the background, so slots are never lost to a stuck evaluation.
    """

    def __init__(self, modules: Sequence[tuple[str, str]], size: int) -> None:
        if size < 1:
            raise ValueError("an evaluator pool needs at least one process")
        body = json.dumps([list(m) for m in modules]).encode()
        self._modules_frame = _LENGTH.pack(len(body)) + body
        self._idle: queue.LifoQueue[_Child] = queue.LifoQueue()  # the most recently used is warmest
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._closed = threading.Event()
        self.size = size
        self.replaced = 0  # evaluators killed and replaced
        try:
            for _ in range(size):
                self._idle.put(self._start())
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Child:
        child = _Child(self._modules_frame, time.monotonic() + START_TIMEOUT)
        with self._lock:
            self._children.add(child)
        return child

    def _replace(self) -> None:
        """Start a new evaluator for a retired one; retried while starting fails (e.g. out of memory)."""
        while not self._closed.is_set():
            try:
                child = self._start()
            except (OSError, EvaluatorFailed, EvaluatorTimeout) as exc:
                _log().error("evaluator.start_failed", error=str(exc) or type(exc).__name__,
                             retry_in_seconds=RESPAWN_PAUSE)
                self._closed.wait(RESPAWN_PAUSE)
                continue
            if self._closed.is_set():
                self._discard(child)
            else:
                self._idle.put(child)
            return

    def evaluate(self, rule: str, input_json: bytes | str, timeout: float) -> str:
        """The rule's value as JSON text, within `timeout` seconds or EvaluatorTimeout."""
        if timeout <= 0:
            raise EvaluatorBusy()  # no time left: do not take (and then kill) an evaluator for nothing
        deadline = time.monotonic() + timeout
        try:
            child = self._idle.get(timeout=timeout)
        except queue.Empty:
            raise EvaluatorBusy() from None
        healthy = False
        try:
            body = input_json.encode() if isinstance(input_json, str) else input_json
            answer = child.call(b"%s\n%s" % (rule.encode(), body), deadline).decode()
            healthy = True
            return answer
        except EvaluatorFailed as exc:
            healthy = not isinstance(exc, EvaluatorDied)  # a Rego error leaves the evaluator in sync
            raise
        finally:
            if self._closed.is_set():
                self._discard(child)
            elif healthy:
                self._idle.put(child)
            else:
                self._retire(child)

    def _retire(self, child: _Child) -> None:
        """Overran its deadline (maybe still looping), died, or out of sync: kill it, start another."""
        with self._lock:
            self._children.discard(child)
            self.replaced += 1
        child.kill()
        _log().warning("evaluator.replaced", pid=child.proc.pid, exit_status=child.proc.returncode)
        threading.Thread(target=self._replace, name="netguard-evaluator-start", daemon=True).start()

    def _discard(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)
        child.close()

    def close(self) -> None:
        """Stop the idle evaluators now; one still answering a request stops when that call returns."""
        self._closed.set()
        while True:
            try:
                child = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(child)


def _log() -> Any:
    from webhook.logs import get_logger  # not at import: the child needs neither structlog nor its set-up

    return get_logger("netguard.evaluator")


# -- the child side ------------------------------------------------------------------------------


def _read_frame(fd: int) -> bytes | None:
    header = _read_exactly(fd, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    return _read_exactly(fd, length)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None  # the parent closed the pipe (worker exited): stop
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _answer(fd: int, status: bytes, body: bytes) -> None:
    data = memoryview(status + _LENGTH.pack(len(body)) + body)
    while data:
        data = data[os.write(fd, data):]


def child_main() -> None:
    """Compile the modules of the first frame, then answer `rule\\ninput` frames until EOF."""
    import regorus

    # Ctrl-C in a terminal reaches the whole process group: the worker decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    read_fd, write_fd = int(sys.argv[2]), int(sys.argv[3])
    frame = _read_frame(read_fd)
    if frame is None:
        return
    engine = regorus.Engine()
    try:
        for path, text in json.loads(frame):
            engine.add_policy(path, text)
    except RuntimeError as exc:
        _answer(write_fd, _DIED, f"compile: {exc}".encode())
        return
    _answer(write_fd, _OK, b"compiled")
    while (frame := _read_frame(read_fd)) is not None:
        rule, _, input_json = frame.partition(b"\n")
        try:
            engine.set_input_json(input_json.decode())
            result = engine.eval_rule_as_json(rule.decode())
        except RuntimeError as exc:
            _answer(write_fd, _FAILED, str(exc).encode())
        else:
            _answer(write_fd, _OK, result.encode())
