"""AuditReport -> Markdown, for a pull request, an issue or a wiki page.

Names, paths and messages come from manifests anyone with write access to a namespace can submit: the
characters that would break a table, open raw HTML or a link are escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from webhook.reports import PLAIN_STYLE, Format, Style
from webhook.reports._shared import (
    DECISION_TABLES,
    FLOW_SCOPE,
    Figure,
    figures,
    flow_policies,
    flow_row,
    flow_window,
    grouped,
    guardrails,
    missing_allow,
    rule_remediation,
    rule_title,
    top,
    window,
)

if TYPE_CHECKING:
    from webhook.offline.audit import AuditReport

MARKDOWN_ITEMS = 30  # names listed in one Markdown table cell before "and N more"
_MD_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`|<>[]*_"})


def _md(text: object) -> str:
    """Literal text in Markdown: no table breaks (|), raw HTML (<), links ([]) or emphasis; one line."""
    return " ".join(str(text).split()).translate(_MD_ESCAPES)


def _md_code(text: str) -> str:
    """A code span that survives backticks and pipes inside it."""
    text = " ".join(text.split()).replace("|", "\\|")
    longest = current = 0
    for ch in text:
        current = current + 1 if ch == "`" else 0
        longest = max(longest, current)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_items(items: Sequence[str]) -> str:
    shown = ", ".join(_md(i) for i in items[:MARKDOWN_ITEMS])
    more = len(items) - MARKDOWN_ITEMS
    return shown + (f", and {more} more (see the JSON report)" if more > 0 else "")


def _figure_value(f: Figure) -> str:
    if f.count is None:
        return "not available"
    return f"{f.count} of {f.total}" if f.total is not None else str(f.count)


def _flows_markdown(report: AuditReport) -> list[str]:
    """The traffic evidence (--flows): the window, then per observed policy each allow rule's use."""
    if report.flows is None:
        return []
    observed, unseen = flow_policies(report)
    out = ["", "## Traffic evidence", "", f"From Hubble flows: {_md(flow_window(report.flows.window))}. "
           f"{_md(FLOW_SCOPE)}"]
    for label, evidence, unused in observed:
        out += ["", f"### {_md(label)} ({evidence.subject_flows} flows of its pods)", ""]
        if evidence.rules:
            out += ["| Rule | Allows | Flows | Last seen | Peers observed | Ports observed |",
                    "|---|---|---:|---|---|---|"]
            out += [f"| {_md_code(r.path)} ({_md(r.direction)}) | "
                    + " | ".join(_md(c) for c in flow_row(r, r.path in unused)) + " |" for r in evidence.rules]
        else:
            out.append("No allow rule to match flows to.")
        if evidence.missing:
            out += ["", *(f"- At {_md_code(m.path)}: {_md(missing_allow(m))}." for m in evidence.missing)]
    if unseen:
        out += ["", f"No flow of their pods in the window (their rules are not judged): {_md_items(unseen)}."]
    return out


def render_markdown(report: AuditReport, style: Style = PLAIN_STYLE) -> str:
    by_mode = Counter(f.mode for f in report.findings)
    out = [
        "# netguard audit report",
        "",
        f"- Generated: {_md(report.generated_at.isoformat())}",
        f"- Source: {_md(report.source)}",
        f"- Policy revision: {_md_code(report.policy_revision)}",
        f"- Policies audited: {report.policies}; findings: {len(report.findings)} "
        f"(enforce {by_mode['enforce']}, warn {by_mode['warn']}, audit {by_mode['audit']}); "
        f"unreadable documents: {len(report.errors)}",
        "",
        "## Posture",
        "",
        f"{len(report.posture.namespaces)} namespaces audited.",
        "",
        "| Figure | Count | Where |",
        "|---|---:|---|",
    ]
    for fig in figures(report):
        out.append(f"| {_md(fig.label)} | {_md(_figure_value(fig))} | {_md_items(fig.items)} |")
    out += _flows_markdown(report)
    if report.notices:
        out += ["", "## Not judged", "", "What the audit could not check (no finding either way):", ""]
        out += [f"- **{_md(n.kind)} {_md(n.namespace + '/' if n.namespace else '')}{_md(n.name)}** "
                f"({_md(n.source)}:{n.line}): {_md(n.text)}" for n in report.notices]
    if report.errors:
        out += ["", "## Unreadable documents", ""]
        out += [f"- {_md(e.source)}:{e.line}:{e.col}: {_md(e.message)}" for e in report.errors]
    if report.decisions is not None:
        d = report.decisions
        out += ["", "## Admission decisions", "",
                f"From the decision log, {_md(window(d.since, d.until))}.", "",
                "| Decisions | Denied | Warned | Exceptions used | Malformed lines |",
                "|---:|---:|---:|---:|---:|",
                f"| {d.total} | {d.denied} | {d.warned} | {d.exceptions_used} | {d.malformed_lines} |"]
        for heading, column, attr, keys, labels in DECISION_TABLES:
            rows = top(getattr(d, attr), keys)
            out += ["", f"### {heading}", ""]
            if not rows:
                out.append("None.")
                continue
            out += [f"| {column} | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
            out += [f"| {_md(name)} | " + " | ".join(str(v) for v in values) + " |" for name, values in rows]
    out += ["", "## Findings", ""]
    if not report.findings:
        out.append("No findings.")
    by_id = guardrails(report)
    for ns, rules in grouped(report.findings):
        count = sum(len(items) for _, items in rules)
        out += [f"### {_md(ns)} ({count})", ""]
        for rule, items in rules:
            g = by_id.get(rule)
            heading = f": {_md(rule_title(g))}" if rule_title(g) else ""
            out += [f"#### {_md(rule)}{heading} ({_md(items[0].severity)}, {len(items)})", ""]
            if rule_remediation(g):
                out += [f"How to fix: {_md(rule_remediation(g))}", ""]
            for f in items:
                out.append(f"- **{_md(f.kind)} {_md(f.name)}** at {_md_code(f.path)} "
                           f"({_md(f.source)}:{f.line}, {_md(f.mode)}: {_md(f.reason)}): {_md(f.message)}")
                if f.fix:
                    out.append(f"  - Fix: {_md(f.fix)}")
                origin = f" ({_md(f.last_changed_from)})" if f.last_changed_from else ""
                out.append(f"  - Last changed by: {_md(f.last_changed_by)}{origin}")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


FORMAT = Format("markdown", "posture figures and findings by namespace, for a pull request or a wiki",
                audit=render_markdown)
