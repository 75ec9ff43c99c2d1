"""CheckReport -> SARIF 2.1.0, which code scanning (GitHub, GitLab, Azure DevOps) shows on the lines it names."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from webhook.reports import PLAIN_STYLE, Format, Style
from webhook.reports._shared import LEVEL

if TYPE_CHECKING:
    from webhook.offline.check import CheckReport

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/netguard/netguard"


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


def render_sarif(report: CheckReport, style: Style = PLAIN_STYLE) -> str:
    return json.dumps(sarif(report), indent=2) + "\n"


FORMAT = Format("sarif", "SARIF 2.1.0, for code scanning (findings shown on the lines they name)",
                check=render_sarif)
