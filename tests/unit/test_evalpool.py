"""Evaluator processes: answers like in-process regorus, keeps deadlines, survives runaways and deaths.

Real child processes; the runaway is a Rego rule that spins for input.n² steps (about 0.3 s per
million on this machine), so no test depends on a sleep inside the engine.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.engine.engines import TIMEOUT, EngineError, RegorusEngine
from webhook.engine.evalpool import EvaluatorBusy, EvaluatorDied, EvaluatorFailed, EvaluatorPool, EvaluatorTimeout
from webhook.engine.policies import load_policy_set

MODULE = ("spin.rego", """package spin

import rego.v1

# input.n² steps: n = 10000 is minutes, far past any deadline here.
done if {
	every i in numbers.range(1, input.n) {
		every j in numbers.range(1, input.n) {
			i + j > 0
		}
	}
}

double := input.n * 2

broken := count(input.n)

chatty if {
	print("a stray print must not reach the protocol")
	true
}
""")
RUNAWAY = json.dumps({"n": 10000})
SLACK = 1.0  # scheduling on a busy 2-core machine; far below the runaway's minutes


@pytest.fixture
def pool() -> Iterator[EvaluatorPool]:
    evaluators = EvaluatorPool([MODULE], size=2)
    yield evaluators
    evaluators.close()


def wait_for_replacement(pool: EvaluatorPool, timeout: float = 10.0) -> None:
    """The replacement starts in the background; a call with a long deadline waits for it."""
    assert pool.evaluate("data.spin.double", json.dumps({"n": 1}), timeout) == "2"


def test_answers_are_the_rule_values_as_json(pool: EvaluatorPool) -> None:
    assert pool.evaluate("data.spin.double", json.dumps({"n": 21}), 5.0) == "42"
    assert pool.evaluate("data.spin.done", json.dumps({"n": 3}), 5.0) == "true"


def test_a_runaway_evaluation_is_stopped_at_the_deadline_and_its_evaluator_replaced(pool: EvaluatorPool) -> None:
    pids = {child.proc.pid for child in pool._children}
    started = time.monotonic()
    with pytest.raises(EvaluatorTimeout):
        pool.evaluate("data.spin.done", RUNAWAY, 0.3)
    assert time.monotonic() - started < 0.3 + SLACK
    assert pool.replaced == 1
    stopped = pids - {child.proc.pid for child in pool._children}
    assert len(stopped) == 1
    with pytest.raises(ChildProcessError):  # killed and reaped: no CPU spent on an answer nobody waits for
        os.waitpid(stopped.pop(), os.WNOHANG)
    for _ in range(pool.size + 1):  # every slot answers again
        wait_for_replacement(pool)


def test_a_caller_waits_for_a_free_evaluator_only_until_its_deadline(pool: EvaluatorPool) -> None:
    outcomes: list[BaseException] = []

    def runaway() -> None:
        try:
            pool.evaluate("data.spin.done", RUNAWAY, 1.5)
        except Exception as exc:
            outcomes.append(exc)

    stuck = [threading.Thread(target=runaway) for _ in range(pool.size)]
    for thread in stuck:
        thread.start()
    time.sleep(0.2)  # every evaluator busy
    started = time.monotonic()
    with pytest.raises(EvaluatorBusy):
        pool.evaluate("data.spin.double", json.dumps({"n": 1}), 0.3)
    assert time.monotonic() - started < 0.3 + SLACK
    for thread in stuck:
        thread.join(timeout=10)
    assert [type(exc) for exc in outcomes] == [EvaluatorTimeout] * pool.size
    for _ in range(pool.size):  # the stuck ones were replaced: the pool is whole again
        wait_for_replacement(pool)
    assert pool.replaced == pool.size


def test_a_call_with_no_time_left_takes_no_evaluator(pool: EvaluatorPool) -> None:
    with pytest.raises(EvaluatorBusy):
        pool.evaluate("data.spin.double", json.dumps({"n": 1}), 0.0)
    assert pool.replaced == 0


def test_a_rego_error_is_reported_and_the_evaluator_kept(pool: EvaluatorPool) -> None:
    with pytest.raises(EvaluatorFailed, match="requires array/object/set/str") as excinfo:
        pool.evaluate("data.spin.broken", json.dumps({"n": 1}), 5.0)
    assert not isinstance(excinfo.value, EvaluatorDied)
    assert pool.replaced == 0
    assert pool.evaluate("data.spin.chatty", "{}", 5.0) == "true"


def test_an_evaluator_that_dies_is_replaced(pool: EvaluatorPool) -> None:
    for child in list(pool._children):
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait()
    with pytest.raises(EvaluatorDied, match="exit status -9"):
        pool.evaluate("data.spin.double", json.dumps({"n": 1}), 5.0)
    with pytest.raises(EvaluatorDied):
        pool.evaluate("data.spin.double", json.dumps({"n": 1}), 5.0)
    wait_for_replacement(pool)
    assert pool.replaced == 2


def test_close_stops_every_evaluator() -> None:
    pool = EvaluatorPool([MODULE], size=2)
    procs = [child.proc for child in pool._children]
    pool.close()
    assert all(proc.poll() is not None for proc in procs)


def test_the_regorus_engine_turns_an_overrun_into_a_timeout_engine_error() -> None:
    policies = load_policy_set(Path(__file__).resolve().parents[2] / "policies")
    engine = RegorusEngine(policies, evaluators=1, default_timeout=5.0)
    try:
        assert engine.evaluate({"rules": []}) == {}
        started = time.monotonic()
        with pytest.raises(EngineError) as excinfo:
            engine.evaluate({"rules": []}, deadline=time.monotonic() - 1)  # no time left
        assert excinfo.value.reason == TIMEOUT
        assert time.monotonic() - started < SLACK
    finally:
        engine.close()
