"""Check the guardrail catalog without an `opa` binary: Rego unit tests and sample manifests.

No `opa test` can run here, so `run_rego_tests` does its job with regorus: every
`test_*` rule of a guardrail's rule_test.rego must evaluate to `true`. `run_sample_checks`
pushes the gatekeeper-library style samples through the real pipeline, so a guardrail is
checked with the same normalization, facts and engine that admission uses.
Both return plain results; the caller (CLI, pytest) decides how to report them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regorus
import yaml

from webhook.core.admission import ReviewError
from webhook.core.guardrails import Guardrail, PolicySet, RegoModule
from webhook.core.model import Verdict
from webhook.engine.engines import clean_error
from webhook.offline.samples import load_sample, sample_cluster, sample_files, sample_request
from webhook.pipeline import Pipeline

# A test is a rule whose name starts with test_ at the start of a line. Functions
# (`test_x(arg)`) are not tests, as in `opa test`; \b stops \w+ backtracking past "(".
_TEST_RULE_RE = re.compile(r"^(test_\w+)\b(?!\s*\()", re.MULTILINE)
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)\s*$", re.MULTILINE)
_UNDEFINED = '"<undefined>"'
NO_TESTS = "(no tests)"
LIBRARY = "lib"


@dataclass(frozen=True)
class RegoTestResult:
    guardrail: str
    name: str
    passed: bool
    error: str = ""


@dataclass(frozen=True)
class SampleResult:
    """One sample manifest: `expected` is "good" (no finding) or "bad" (at least one)."""

    guardrail: str
    sample: Path
    expected: str
    passed: bool
    findings: tuple[str, ...] = ()  # "path: message" of this guardrail only
    error: str = ""


def find_test_rules(module: RegoModule) -> list[str]:
    """Test rule names in file order; a name defined twice (OR-ed bodies) is one test."""
    return list(dict.fromkeys(_TEST_RULE_RE.findall(module.text)))


def run_rego_tests(policies: PolicySet) -> list[RegoTestResult]:
    """Evaluate every test rule of every guardrail (and of lib/*_test.rego); only JSON `true` passes.

    Each guardrail gets a fresh engine with the library, its rule and its tests only, so a
    test cannot lean on another guardrail and a broken guardrail does not hide the others.
    A rule_test.rego without tests is reported as a failure: an empty suite must not pass.
    Library tests are optional (the loader skips them) and are reported as guardrail "lib".
    """
    results: list[RegoTestResult] = []
    for guardrail in policies.guardrails:
        results.extend(_run_suite(guardrail.id, (*policies.library, guardrail.rule), guardrail.tests))
    for path in sorted((policies.root / "lib").glob("*_test.rego")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            results.append(RegoTestResult(LIBRARY, path.name, False, f"{path}: cannot read: {exc}"))
            continue
        package = _PACKAGE_RE.search(text)
        tests = RegoModule(path=path, text=text, package=package.group(1) if package else "")
        results.extend(_run_suite(LIBRARY, policies.library, tests))
    return results


def _run_suite(label: str, modules: tuple[RegoModule, ...], tests: RegoModule) -> list[RegoTestResult]:
    names = find_test_rules(tests)
    if not names:
        return [RegoTestResult(label, NO_TESTS, False, f"{tests.path}: no test_ rules found")]
    engine = regorus.Engine()  # created and used on this thread only (pyo3 unsendable)
    try:
        for module in (*modules, tests):
            engine.add_policy(str(module.path), module.text)
    except RuntimeError as exc:
        error = f"compile error: {clean_error(exc)}"
        return [RegoTestResult(label, name, False, error) for name in names]
    return [_run_one(engine, label, f"data.{tests.package}.{name}", name) for name in names]


def _run_one(engine: Any, label: str, rule: str, name: str) -> RegoTestResult:
    try:
        raw = engine.eval_rule_as_json(rule)
    except RuntimeError as exc:
        return RegoTestResult(label, name, False, clean_error(exc))
    if raw == _UNDEFINED:
        return RegoTestResult(label, name, False, "undefined (a condition of the test did not hold)")
    value = json.loads(raw)
    if value is True:
        return RegoTestResult(label, name, True)
    return RegoTestResult(label, name, False, f"evaluated to {json.dumps(value)[:200]}, expected true")


def run_sample_checks(pipeline: Pipeline) -> list[SampleResult]:
    """Review every sample (a CREATE unless its .request.yaml says otherwise): bad samples need a
    finding of their guardrail, good ones none.

    Only the sample's own guardrail counts: a good sample may well trip another guardrail.
    A skipped review, an engine failure or an unreadable object is a failure with the reason,
    never a silent pass of a good sample. Modes apply as configured, so pass a pipeline whose
    settings leave every guardrail on (a guardrail that is off reports nothing).
    """
    known = {g.id for g in pipeline.policies.guardrails}
    return [_check_sample(pipeline, guardrail, sample, expected, known)
            for guardrail in pipeline.policies.guardrails
            for expected in ("good", "bad")
            for sample in sample_files(guardrail, expected)]


def _check_sample(pipeline: Pipeline, guardrail: Guardrail, sample: Path, expected: str,
                  known: set[str]) -> SampleResult:
    def failed(error: str) -> SampleResult:
        return SampleResult(guardrail.id, sample, expected, False, error=error)

    try:
        obj, _ = load_sample(sample)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return failed(f"cannot read sample: {exc}")
    if not isinstance(obj, dict):
        return failed("sample is not a YAML mapping")
    try:
        decision = pipeline.review(sample_request(sample), sample_cluster(sample)).decision
    except (ReviewError, ValueError) as exc:
        return failed(f"not a valid admission request: {getattr(exc, 'message', exc)}")
    if decision.verdict in (Verdict.SKIPPED, Verdict.ERROR):
        return failed(f"review {decision.verdict.value}: {decision.reason}")
    if decision.failure is not None:  # an unreadable sample, or an engine failing closed: never judged
        return failed(f"[{decision.failure.kind}] {decision.failure.path}: {decision.failure.problem}")
    others = sorted({f.finding.rule for f in decision.findings} - known)
    if others:  # limits: the sample is over a configured size limit, never judged either
        details = "; ".join(f"[{f.finding.rule}] {f.finding.path}: {f.finding.message}"
                            for f in decision.findings if f.finding.rule in others)
        return failed(details)
    own = tuple(f"{f.finding.path}: {f.finding.message}" for f in decision.findings
                if f.finding.rule == guardrail.id)
    if expected == "bad" and not own:
        return failed(f"expected a {guardrail.id} finding, got none")
    if expected == "good" and own:
        return SampleResult(guardrail.id, sample, expected, False, findings=own,
                            error=f"expected no {guardrail.id} finding, got: {'; '.join(own)}")
    return SampleResult(guardrail.id, sample, expected, True, findings=own)
