"""CheckReport -> JUnit XML, which every CI shows as a test summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from webhook.reports import PLAIN_STYLE, Format, Style

if TYPE_CHECKING:
    from webhook.offline.check import CheckReport


def render_junit(report: CheckReport, style: Style = PLAIN_STYLE) -> str:
    """One testsuite per source file, one testcase per policy; findings in a mode that fails the check
    (enforce; with --fail-on warn also warn) fail it, so the CI's test summary agrees with the exit code."""
    from webhook.offline.check import FAIL_ON  # here: the registry imports every format, on every command

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


FORMAT = Format("junit", "JUnit XML, for a CI's test summary (a policy with enforced findings fails)",
                check=render_junit)
