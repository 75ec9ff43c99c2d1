"""CheckReport -> text (compiler style), JSON, SARIF 2.1.0, JUnit XML.

Each format is a pure function of the report, so the CLI and POST /v1/check print the same thing.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from webhook.check import FAIL_ON, CheckReport
from webhook.model import Mode
from webhook.terminal import PLAIN, Paint

LEVEL = {Mode.ENFORCE: "error", Mode.WARN: "warning", Mode.AUDIT: "note"}
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/netguard/netguard"


def render_text(report: CheckReport, *, paint: Paint = PLAIN, quiet: bool = False) -> str:
    """`path:LINE:COL: error[rule] message` then the fix, like a compiler.

    `paint` colours the level (error red, warning yellow, note dim) on a terminal; stripped of its codes
    the text is the same. `quiet` leaves out the summary line: only findings, notices and input errors.
    """
    out: list[str] = []
    style = {"error": paint.error, "warning": paint.warning, "note": paint.note}
    for err in report.errors:
        out.append(f"{err.source}:{err.line}:{err.col}: {paint.error('error[input]')} {err.message}")
    for result in report.results:
        for f in result.findings:
            finding = f.applied.finding
            level = LEVEL.get(f.applied.mode, "note")
            mode = f"{f.applied.mode.value}: {f.applied.reason}"
            out.append(f"{result.document.source}:{f.line}:{f.column}: {style[level](f'{level}[{finding.rule}]')} "
                       f"{finding.path}: {finding.message} ({result.label}; {mode})")
            if finding.fix:
                out.append(f"  {paint.bold('fix:')} {finding.fix}")
        for notice in result.decision.notices:
            out.append(f"{result.document.source}:{result.document.line}:1: {paint.note('note[netguard]')} {notice}")
    if quiet:
        return "\n".join(out) + "\n" if out else ""
    errors, warnings = report.count(Mode.ENFORCE), report.count(Mode.WARN)
    out.append(f"{_count(paint.error, errors, 'error')}, {_count(paint.warning, warnings, 'warning')}, "
               f"{_n(report.count(Mode.AUDIT), 'note')} in "
               f"{_n(len(report.results), 'policy', 'policies')}"
               + (f"; {paint.error(_n(len(report.errors), 'unreadable document'))}" if report.errors else "")
               + (f"; {report.skipped} other document(s) skipped" if report.skipped else ""))
    return "\n".join(out) + "\n"


def _count(style: Callable[[str], str], count: int, word: str) -> str:
    """A count in the summary, coloured only when it is not zero."""
    return style(_n(count, word)) if count else _n(count, word)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def render_json(report: CheckReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n"


def sarif(report: CheckReport) -> dict[str, Any]:
    rules = [{
        "id": g.id, "name": g.id, "shortDescription": {"text": g.title},
        "fullDescription": {"text": " ".join(str(g.description).split())},
        "help": {"text": " ".join(str(g.remediation).split())},
        "defaultConfiguration": {"level": LEVEL.get(g.mode, "none")},
        "properties": {"severity": g.severity, "kinds": list(g.kinds)},
    } for g in report.rules]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for result in report.results:
        for f in result.findings:
            finding = f.applied.finding
            entry: dict[str, Any] = {
                "ruleId": finding.rule, "level": LEVEL.get(f.applied.mode, "note"),
                "message": {"text": f"{finding.path}: {finding.message}. Fix: {finding.fix}" if finding.fix
                            else f"{finding.path}: {finding.message}"},
                "locations": [_location(result.document.source, f.line, f.column, f"{result.label} {finding.path}")],
                "properties": {"mode": f.applied.mode.value, "reason": f.applied.reason, "path": finding.path},
            }
            if finding.rule in index:
                entry["ruleIndex"] = index[finding.rule]
            results.append(entry)
    notifications = [{"level": "error", "message": {"text": e.message},
                      "locations": [_location(e.source, e.line, e.col, "")]} for e in report.errors]
    return {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "netguard", "informationUri": INFORMATION_URI, "rules": rules,
                                "properties": {"policyRevision": report.revision}}},
            "results": results,
            "invocations": [{"executionSuccessful": not report.errors,
                             "toolExecutionNotifications": notifications}],
        }],
    }


def _location(source: str, line: int, column: int, description: str) -> dict[str, Any]:
    location: dict[str, Any] = {"physicalLocation": {
        "artifactLocation": {"uri": source},
        "region": {"startLine": max(line, 1), "startColumn": max(column, 1)},
    }}
    if description:
        location["message"] = {"text": description}
    return location


def render_sarif(report: CheckReport) -> str:
    return json.dumps(sarif(report), indent=2) + "\n"


def render_junit(report: CheckReport) -> str:
    """One testsuite per source file, one testcase per policy; findings in a mode that fails the check
    (enforce; with --fail-on warn also warn) fail it, so the CI's test summary agrees with the exit code."""
    failing = FAIL_ON[report.fail_on]
    suites = ET.Element("testsuites", name="netguard")
    by_source: dict[str, list[Any]] = {}
    for result in report.results:
        by_source.setdefault(result.document.source, []).append(result)
    for err in report.errors:
        by_source.setdefault(err.source, [])
    total_fail = total_err = total = 0
    for source, results in by_source.items():
        suite = ET.SubElement(suites, "testsuite", name=source)
        failures = errors = 0
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=source, name=result.label)
            enforced = [f for f in result.findings if f.applied.mode in failing]
            if enforced:
                failures += 1
                text = "\n".join(f"{source}:{f.line}:{f.column}: {f.applied.line()}" for f in enforced)
                ET.SubElement(case, "failure", message=f"{len(enforced)} guardrail violation(s)",
                              type="netguard").text = text
            others = [f for f in result.findings if f.applied.mode not in failing]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(
                    f"{source}:{f.line}:{f.column}: {f.applied.mode.value}: {f.applied.line()}" for f in others)
        for err in (e for e in report.errors if e.source == source):
            errors += 1
            case = ET.SubElement(suite, "testcase", classname=source, name=f"line {err.line}")
            ET.SubElement(case, "error", message=err.message, type="input").text = (
                f"{err.source}:{err.line}:{err.col}: {err.message}")
        count = len(results) + sum(1 for e in report.errors if e.source == source)
        suite.set("tests", str(count))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        total, total_fail, total_err = total + count, total_fail + failures, total_err + errors
    suites.set("tests", str(total))
    suites.set("failures", str(total_fail))
    suites.set("errors", str(total_err))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "sarif": render_sarif, "junit": render_junit}
