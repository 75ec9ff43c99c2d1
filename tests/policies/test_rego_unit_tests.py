"""The Rego unit tests of every guardrail pass, and the runner reports failures it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policies.conftest import POLICIES, copy_catalog
from webhook.core.guardrails import PolicySet, RegoModule
from webhook.engine.policies import load_policy_set
from webhook.offline.regotest import LIBRARY, NO_TESTS, RegoTestResult, find_test_rules, run_rego_tests

CATALOG = load_policy_set(POLICIES)
LIB_TESTS = sorted((POLICIES / "lib").glob("*_test.rego"))
CASES = [(g.id, name) for g in CATALOG.guardrails for name in find_test_rules(g.tests)] + [
    (LIBRARY, name) for path in LIB_TESTS for name in find_test_rules(
        RegoModule(path=path, text=path.read_text(encoding="utf-8"), package=""))]


@pytest.fixture(scope="module")
def results(policies: PolicySet) -> dict[tuple[str, str], RegoTestResult]:
    return {(r.guardrail, r.name): r for r in run_rego_tests(policies)}


@pytest.mark.parametrize(("guardrail", "name"), CASES, ids=[f"{g}::{n}" for g, n in CASES])
def test_rego_test_passes(results: dict[tuple[str, str], RegoTestResult], guardrail: str, name: str) -> None:
    result = results[(guardrail, name)]
    assert result.passed, f"{guardrail} {name}: {result.error}"


def test_runner_ran_exactly_the_tests_in_the_files(results: dict[tuple[str, str], RegoTestResult]) -> None:
    assert set(results) == set(CASES)


def test_every_guardrail_has_rego_tests() -> None:
    for guardrail in CATALOG.guardrails:
        assert find_test_rules(guardrail.tests), f"{guardrail.tests.path} has no test_ rules"


FAILING_TESTS = """
test_deliberately_false if {
	1 == 2
}

test_not_true := 7

test_helper_function_is_not_a_test(x) := x

test_calls_missing_function if {
	no_such_function(1)
}
"""


def _with_extra_tests(tmp_path: Path, extra: str) -> tuple[PolicySet, str]:
    root = copy_catalog(tmp_path)
    catalog = load_policy_set(root)
    target = catalog.guardrails[0]
    with target.tests.path.open("a", encoding="utf-8") as handle:
        handle.write(extra)
    return load_policy_set(root), target.id


def test_failing_rego_tests_are_reported_as_failed(tmp_path: Path) -> None:
    catalog, rule_id = _with_extra_tests(tmp_path, FAILING_TESTS)
    results = {r.name: r for r in run_rego_tests(catalog) if r.guardrail == rule_id}

    assert "test_helper_function_is_not_a_test" not in results
    false, seven, missing = (results[n] for n in
                             ("test_deliberately_false", "test_not_true", "test_calls_missing_function"))
    assert not false.passed and "undefined" in false.error
    assert not seven.passed and "7" in seven.error
    assert not missing.passed and "no_such_function" in missing.error
    assert "Stack backtrace" not in missing.error
    # The real tests in the same file still pass: failures are per test, not per file.
    real = [r for n, r in results.items() if (rule_id, n) in CASES]
    assert real and all(r.passed for r in real)


def test_a_compile_error_fails_every_test_of_that_guardrail_only(tmp_path: Path) -> None:
    catalog, rule_id = _with_extra_tests(tmp_path, "\ntest_broken if {\n\tx := \n}\n")
    results = run_rego_tests(catalog)

    broken = [r for r in results if r.guardrail == rule_id]
    assert broken and not any(r.passed for r in broken)
    assert all("rule_test.rego:" in r.error and "Stack backtrace" not in r.error for r in broken)
    others = [r for r in results if r.guardrail != rule_id]
    assert all(r.passed for r in others)


def test_a_test_file_without_tests_is_a_failure(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    target = load_policy_set(root).guardrails[0]
    target.tests.path.write_text(f"package {target.tests.package}\n\nimport rego.v1\n", encoding="utf-8")

    results = [r for r in run_rego_tests(load_policy_set(root)) if r.guardrail == target.id]
    assert [(r.name, r.passed) for r in results] == [(NO_TESTS, False)]


def test_library_tests_are_run_too(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    (root / "lib" / "helpers_test.rego").write_text(
        "package netguard.lib_test\n\nimport rego.v1\n\n"
        "test_peer_word if data.netguard.lib.peer_word(\"egress\") == \"to\"\n\n"
        "test_wrong_word if data.netguard.lib.peer_word(\"ingress\") == \"to\"\n", encoding="utf-8")

    results = {r.name: r for r in run_rego_tests(load_policy_set(root)) if r.guardrail == LIBRARY}
    assert set(results) == {"test_peer_word", "test_wrong_word"}
    assert results["test_peer_word"].passed
    assert not results["test_wrong_word"].passed
