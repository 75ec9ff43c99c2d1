"""AuditReport -> JSON, CSV, Markdown, one self-contained HTML page, and wgpolicyk8s.io PolicyReports.

Each format is a pure function of the report, so every output of one audit says the same thing.
Names, paths and messages come from manifests anyone with write access to a namespace can submit:
the HTML escapes all of them (and forbids scripts by CSP besides), the CSV defuses spreadsheet
formulas, and the Markdown escapes the characters that would break a table or open raw HTML.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from webhook.audit import EXPIRING_WITHIN, AuditFinding, AuditReport, ExceptionInForce, PolicyRef, WorkloadGap
from webhook.model import POLICY_KINDS

CLUSTERWIDE = "(clusterwide)"
MODES = ("enforce", "warn", "audit")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
TOP = 10  # rows in each "most rejected" table
MARKDOWN_ITEMS = 30  # names listed in one Markdown table cell before "and N more"

# ---------------------------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class Figure:
    """One posture figure as every human-readable format shows it."""

    key: str
    label: str
    count: int | None  # None: not available (no workloads were read)
    total: int | None  # "of N" (namespaces, workloads), when meaningful
    items: tuple[str, ...]
    tone: str  # "risk": above zero is bad; "soon": above zero needs attention; "info": neutral


def _ref_label(ref: PolicyRef) -> str:
    where = f"{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.name} {CLUSTERWIDE}"
    text = f"{ref.kind} {where}"
    if ref.paths:
        text += ": " + ", ".join(ref.paths)
    return f"{text} ({ref.detail})" if ref.detail else text


def _exception_target(e: ExceptionInForce) -> str:
    if e.namespace:
        return f"{e.namespace}/{e.name}" if e.name else f"namespace {e.namespace}"
    return e.name or "every object"


def _exception_label(e: ExceptionInForce) -> str:
    where = _exception_target(e)
    token = f"token {e.id}, {'spec-bound' if e.bound else 'not bound to a spec'}" if e.id else ""
    extra = "; ".join(x for x in (token, e.ticket, e.reason) if x)
    return f"{', '.join(e.rules)} on {where} until {e.expires.isoformat()}" + (f" ({extra})" if extra else "")


def _workload_label(w: WorkloadGap) -> str:
    return f"{w.kind} {w.namespace}/{w.name}"


def figures(report: AuditReport) -> list[Figure]:
    """The posture figures, in reading order; Markdown and HTML both render this list."""
    p = report.posture
    n = len(p.namespaces)

    def refs(key: str, label: str, items: Sequence[PolicyRef]) -> Figure:
        return Figure(key, label, len(items), None, tuple(_ref_label(r) for r in items), "risk")

    soon = tuple(e for e in p.exceptions if e.expiring_soon)
    available = p.workloads is not None
    return [
        Figure("no_default_deny_ingress", "Namespaces without default deny for ingress",
               len(p.no_default_deny_ingress), n, p.no_default_deny_ingress, "risk"),
        Figure("no_default_deny_egress", "Namespaces without default deny for egress",
               len(p.no_default_deny_egress), n, p.no_default_deny_egress, "risk"),
        refs("internet_ingress_all_ports", "Policies open to the internet for ingress, on every port",
             p.internet_ingress_all_ports),
        refs("internet_ingress_ports_limited", "Policies open to the internet for ingress, on some ports",
             p.internet_ingress_ports_limited),
        refs("internet_egress_all_ports", "Policies open to the internet for egress, on every port",
             p.internet_egress_all_ports),
        refs("internet_egress_ports_limited", "Policies open to the internet for egress, on some ports",
             p.internet_egress_ports_limited),
        refs("all_namespaces", "Policies open to all namespaces", p.all_namespaces),
        refs("metadata", "Policies reaching the cloud metadata address", p.metadata),
        Figure("exceptions", "Exceptions in force", len(p.exceptions), None,
               tuple(_exception_label(e) for e in p.exceptions), "info"),
        Figure("exceptions_expiring", f"Exceptions expiring within {EXPIRING_WITHIN.days} days", len(soon), None,
               tuple(_exception_label(e) for e in soon), "soon"),
        Figure("workloads_without_ingress", "Workloads without an ingress policy",
               len(p.workloads_without_ingress) if available else None, p.workloads,
               tuple(_workload_label(w) for w in p.workloads_without_ingress), "risk"),
        Figure("workloads_without_egress", "Workloads without an egress policy",
               len(p.workloads_without_egress) if available else None, p.workloads,
               tuple(_workload_label(w) for w in p.workloads_without_egress), "risk"),
    ]


def _figure_value(f: Figure) -> str:
    if f.count is None:
        return "not available"
    return f"{f.count} of {f.total}" if f.total is not None else str(f.count)


def _guardrails(report: AuditReport) -> dict[str, Any]:
    return {str(getattr(g, "id", "")): g for g in report.rules}


def _title(guardrail: Any) -> str:
    return str(getattr(guardrail, "title", "") or "")


def _remediation(guardrail: Any) -> str:
    """The folded YAML text of the guardrail's remediation, on one line."""
    return " ".join(str(getattr(guardrail, "remediation", "") or "").split())


def _example(guardrail: Any) -> str:
    metadata = getattr(guardrail, "metadata", None)
    example = metadata.get("example") if isinstance(metadata, Mapping) else None
    return str(example).rstrip() if example else ""


def _namespace(f: AuditFinding) -> str:
    return f.namespace or CLUSTERWIDE


def grouped(findings: Iterable[AuditFinding]) -> list[tuple[str, list[tuple[str, list[AuditFinding]]]]]:
    """Findings by namespace (clusterwide first), then by rule (most severe first), in source order."""
    by_ns: dict[str, dict[str, list[AuditFinding]]] = {}
    for f in findings:
        by_ns.setdefault(_namespace(f), {}).setdefault(f.rule, []).append(f)

    def rule_key(item: tuple[str, list[AuditFinding]]) -> tuple[int, str]:
        rule, items = item
        return min(SEVERITY_RANK.get(f.severity, len(SEVERITY_RANK)) for f in items), rule

    return [(ns, sorted(rules.items(), key=rule_key))
            for ns, rules in sorted(by_ns.items(), key=lambda kv: (kv[0] != CLUSTERWIDE, kv[0]))]


def _top(table: Mapping[str, Mapping[str, int]], keys: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The TOP rows with a count in the first two keys (rejections, warnings), largest first."""
    rows = [(name, [int(counts.get(k, 0)) for k in keys]) for name, counts in table.items()]
    rows = [r for r in rows if any(r[1][:2])]
    rows.sort(key=lambda r: ([-v for v in r[1]], r[0]))
    return rows[:TOP]


DECISION_TABLES = (
    ("Most rejected namespaces", "Namespace", "by_namespace", ("denied", "warned", "exceptions"),
     ("Denied", "Warned", "Exceptions used")),
    ("Most rejected rules", "Rule", "by_rule", ("enforce", "warn", "audit"), ("Rejected", "Warned", "Audited")),
    ("Most rejected requesters", "Requester", "by_requester", ("denied", "warned", "exceptions"),
     ("Denied", "Warned", "Exceptions used")),
)


def _window(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "the whole log"
    return f"{since.isoformat() if since else 'the start of the log'} to {until.isoformat() if until else 'its end'}"


# ---------------------------------------------------------------------------------------------- JSON


def render_json(report: AuditReport) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


# ---------------------------------------------------------------------------------------------- CSV

CSV_FIELDS = ("namespace", "kind", "name", "rule", "severity", "mode", "path", "message", "fix",
              "last_changed_by", "source", "line", "last_changed_from")  # new columns go last
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets: a policy name
# or message like `=HYPERLINK(...)` would run when a reviewer opens the file (OWASP "CSV injection").
# A leading single quote makes the spreadsheet show the text as it is; tab and CR are on OWASP's list too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def render_csv(report: AuditReport) -> str:
    """One row per finding; RFC 4180 (CRLF, quotes doubled, fields with separators quoted)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_FIELDS)
    for f in report.findings:
        writer.writerow([_csv_cell(getattr(f, name)) for name in CSV_FIELDS])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- Markdown

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


def render_markdown(report: AuditReport) -> str:
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
    if report.errors:
        out += ["", "## Unreadable documents", ""]
        out += [f"- {_md(e.source)}:{e.line}:{e.col}: {_md(e.message)}" for e in report.errors]
    if report.decisions is not None:
        d = report.decisions
        out += ["", "## Admission decisions", "",
                f"From the decision log, {_md(_window(d.since, d.until))}.", "",
                "| Decisions | Denied | Warned | Exceptions used | Malformed lines |",
                "|---:|---:|---:|---:|---:|",
                f"| {d.total} | {d.denied} | {d.warned} | {d.exceptions_used} | {d.malformed_lines} |"]
        for heading, column, attr, keys, labels in DECISION_TABLES:
            rows = _top(getattr(d, attr), keys)
            out += ["", f"### {heading}", ""]
            if not rows:
                out.append("None.")
                continue
            out += [f"| {column} | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
            out += [f"| {_md(name)} | " + " | ".join(str(v) for v in values) + " |" for name, values in rows]
    out += ["", "## Findings", ""]
    if not report.findings:
        out.append("No findings.")
    guardrails = _guardrails(report)
    for ns, rules in grouped(report.findings):
        count = sum(len(items) for _, items in rules)
        out += [f"### {_md(ns)} ({count})", ""]
        for rule, items in rules:
            g = guardrails.get(rule)
            title = f": {_md(_title(g))}" if _title(g) else ""
            out += [f"#### {_md(rule)}{title} ({_md(items[0].severity)}, {len(items)})", ""]
            if _remediation(g):
                out += [f"How to fix: {_md(_remediation(g))}", ""]
            for f in items:
                out.append(f"- **{_md(f.kind)} {_md(f.name)}** at {_md_code(f.path)} "
                           f"({_md(f.source)}:{f.line}, {_md(f.mode)}: {_md(f.reason)}): {_md(f.message)}")
                if f.fix:
                    out.append(f"  - Fix: {_md(f.fix)}")
                origin = f" ({_md(f.last_changed_from)})" if f.last_changed_from else ""
                out.append(f"  - Last changed by: {_md(f.last_changed_by)}{origin}")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- HTML

_e = html.escape  # quote=True: safe in text and in double-quoted attributes

MODE_COLOURS = {"enforce": "#c62828", "warn": "#e08600", "audit": "#1e6fd9"}
SEVERITY_COLOURS = {"critical": "#7b1fa2", "high": "#c62828", "medium": "#e08600", "low": "#1e6fd9"}
OTHER_COLOUR = "#78909c"

# No network: a report is opened from disk or a mail attachment, and must render (and leak nothing) offline.
# The CSP forbids every script and remote load, so a name the escaping somehow missed still cannot run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--fg:#1d2330;--muted:#5b6577;--bg:#f6f7f9;--card:#fff;--line:#dde1e7;--risk:#c62828;--ok:#2e7d32;
--soon:#e08600;--info:#1e6fd9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 24px}
header{padding-top:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 12px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.meta{color:var(--muted);margin:0}
.meta code{font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--muted);border-radius:6px;
padding:10px 12px}
.card.risk{border-left-color:var(--risk)}.card.ok{border-left-color:var(--ok)}
.card.soon{border-left-color:var(--soon)}.card.info{border-left-color:var(--info)}
.card .value{font-size:28px;font-weight:650;line-height:1.1}
.card .of{font-size:14px;font-weight:400;color:var(--muted)}
.card .label{color:var(--muted);margin-top:2px}
.card details{margin-top:6px;font-size:12px}
.card ul{margin:4px 0 0;padding-left:18px;max-height:220px;overflow:auto;word-break:break-word}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
.charts .wide{grid-column:1/-1}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px}
figcaption{font-weight:600;margin-bottom:6px}
svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:var(--fg)}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
details.ns{background:var(--card);border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:6px 12px}
details.ns>summary{font-size:16px;font-weight:600;cursor:pointer;padding:4px 0}
details.rule{border-top:1px solid var(--line);padding:6px 0 6px 8px}
details.rule>summary{cursor:pointer;font-weight:600}
.howto{background:#f1f6ff;border:1px solid #d3e1fb;border-radius:4px;padding:8px 10px;margin:8px 0}
.howto p{margin:0 0 6px}
pre{background:#f4f5f7;border:1px solid var(--line);border-radius:4px;padding:8px;overflow:auto;font-size:12px;
margin:6px 0 0}
table{border-collapse:collapse;width:100%;background:var(--card);margin:6px 0}
table.compact{width:auto;min-width:40%}
table.fixed{table-layout:fixed}
th,td{border:1px solid var(--line);padding:5px 7px;text-align:left;vertical-align:top;word-break:break-word}
th{background:#eef0f3;font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff;
background:var(--muted);white-space:nowrap}
.muted{color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:24px}
@media print{body{background:#fff}details>summary{list-style:none}}
"""


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{_e(text)}</span>'


def _mode_badge(mode: str) -> str:
    return _badge(mode, MODE_COLOURS.get(mode, OTHER_COLOUR))


def _severity_badge(severity: str) -> str:
    return _badge(severity, SEVERITY_COLOURS.get(severity, OTHER_COLOUR))


def _card(value: str, label: str, tone: str, *, of: int | None = None, items: Sequence[str] = ()) -> str:
    of_html = f' <span class="of">of {of}</span>' if of is not None else ""
    listing = ""
    if items:
        lis = "".join(f"<li>{_e(i)}</li>" for i in items)
        listing = f"<details><summary>show {len(items)}</summary><ul>{lis}</ul></details>"
    return (f'<div class="card {tone}"><div class="value">{_e(value)}{of_html}</div>'
            f'<div class="label">{_e(label)}</div>{listing}</div>')


def _figure_card(f: Figure) -> str:
    if f.count is None:
        return _card("n/a", f"{f.label} (not available: workloads were not read)", "na")
    tone = f.tone if f.tone == "info" or f.count else "ok"
    return _card(str(f.count), f.label, tone, of=f.total, items=f.items)


def _bar_chart(title: str, rows: Sequence[tuple[str, Sequence[tuple[str, int, str]]]], *, label_w: int = 90,
               bar_w: int = 210, wide: bool = False, legend: str = "") -> str:
    """Horizontal bars, each stacked from (segment name, value, colour); plain SVG, a <title> per segment."""
    cls = ' class="wide"' if wide else ""
    if not rows:
        return f'<figure{cls}><figcaption>{_e(title)}</figcaption><p class="muted">Nothing to chart.</p></figure>'
    row_h, width = 24, label_w + bar_w + 40
    longest = max(sum(v for _, v, _ in segs) for _, segs in rows) or 1
    height = row_h * len(rows) + 6
    parts = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
             f"<title>{_e(title)}</title>"]
    for i, (label, segs) in enumerate(rows):
        y = 3 + i * row_h
        room = label_w // 7  # characters that fit at 12px
        shown = label if len(label) <= room else label[:room - 1] + "\u2026"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end"><title>{_e(label)}</title>'
                     f"{_e(shown)}</text>")
        x = float(label_w)
        total = 0
        for name, value, colour in segs:
            if value <= 0:
                continue
            w = max(bar_w * value / longest, 2.0)
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}" rx="2">'
                         f"<title>{_e(label)}: {value} {_e(name)}</title></rect>")
            x += w
            total += value
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{total}</text>')
    parts.append("</svg>")
    return f"<figure{cls}><figcaption>{_e(title)}</figcaption>{''.join(parts)}{legend}</figure>"


def _legend(entries: Iterable[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class="swatch" style="background:{c}"></i>{_e(n)}</span>' for n, c in entries)
    return f'<div class="legend">{spans}</div>'


def _donut(label: str, covered: int, total: int) -> str:
    """A ring: green share of namespaces with a default deny, red share without."""
    r, c = 42, 2 * math.pi * 42
    parts = [f'<svg role="img" viewBox="0 0 150 130" width="150" height="130"><title>{_e(label)}: '
             f"{covered} of {total} namespaces have a default deny</title>",
             f'<circle cx="75" cy="58" r="{r}" fill="none" stroke="{OTHER_COLOUR if not total else "#c62828"}" '
             f'stroke-width="16"/>']
    if total and covered:
        share = c * covered / total
        parts.append(f'<circle cx="75" cy="58" r="{r}" fill="none" stroke="#2e7d32" stroke-width="16" '
                     f'stroke-dasharray="{share:.2f} {c:.2f}" transform="rotate(-90 75 58)"/>')
    parts.append(f'<text x="75" y="63" text-anchor="middle" style="font-size:15px;font-weight:600">'
                 f"{covered}/{total}</text>")
    parts.append(f'<text x="75" y="122" text-anchor="middle">{_e(label)}</text></svg>')
    return "".join(parts)


def _charts(report: AuditReport) -> str:
    by_rule: dict[str, Counter[str]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, Counter())[f.mode] += 1
    rule_rows = [(rule, [(m, counts[m], MODE_COLOURS[m]) for m in MODES]
                  + [(m, n, OTHER_COLOUR) for m, n in sorted(counts.items()) if m not in MODES])
                 for rule, counts in sorted(by_rule.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))]
    modes = Counter(f.mode for f in report.findings)
    mode_rows = [(m, [(m, modes[m], MODE_COLOURS.get(m, OTHER_COLOUR))])
                 for m in (*MODES, *sorted(set(modes) - set(MODES)))]
    severities = Counter(f.severity for f in report.findings)
    severity_rows = [(s, [(s, severities[s], SEVERITY_COLOURS.get(s, OTHER_COLOUR))])
                     for s in sorted(severities, key=lambda s: (SEVERITY_RANK.get(s, len(SEVERITY_RANK)), s))]
    p = report.posture
    n = len(p.namespaces)
    donuts = (f"<figure><figcaption>Namespaces with a default deny</figcaption>"
              f'<div style="display:flex;gap:12px;flex-wrap:wrap">'
              f"{_donut('ingress', n - len(p.no_default_deny_ingress), n)}"
              f"{_donut('egress', n - len(p.no_default_deny_egress), n)}</div>"
              f"{_legend([('with default deny', '#2e7d32'), ('without', '#c62828')])}</figure>")
    return ('<div class="charts">'
            + _bar_chart("Findings by rule", rule_rows, label_w=300, bar_w=560, wide=True,
                         legend=_legend((m, MODE_COLOURS[m]) for m in MODES))
            + _bar_chart("Findings by mode", mode_rows)
            + _bar_chart("Findings by severity", severity_rows)
            + donuts + "</div>")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (),
           compact: bool = False, widths: Sequence[int] = ()) -> str:
    """Cells are HTML already (callers escape); header text is escaped here; widths in percent."""
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{cell}</td>'
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    cls = ' class="compact"' if compact else (' class="fixed"' if widths else "")
    cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + "</colgroup>" if widths else ""
    return f"<table{cls}>{cols}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _findings_html(report: AuditReport) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    guardrails = _guardrails(report)
    out: list[str] = []
    for ns, rules in grouped(report.findings):
        modes = Counter(f.mode for _, items in rules for f in items)
        count = sum(modes.values())
        by_mode = ", ".join(f"{modes[m]} {m}" for m in MODES if modes[m])
        out.append(f'<details class="ns" open><summary>{_e(ns)} <span class="muted">\u2014 {count} '
                   f'finding{"s" if count != 1 else ""} ({_e(by_mode)})</span></summary>')
        for rule, items in rules:
            g = guardrails.get(rule)
            title = f" \u2014 {_e(_title(g))}" if _title(g) else ""
            out.append(f'<details class="rule"><summary><code>{_e(rule)}</code>{title} '
                       f'{_severity_badge(items[0].severity)} <span class="muted">{len(items)}</span></summary>')
            if _remediation(g) or _example(g):
                out.append('<div class="howto">')
                if _remediation(g):
                    out.append(f"<p><strong>How to fix.</strong> {_e(_remediation(g))}</p>")
                if _example(g):
                    out.append(f"<details><summary>Example</summary><pre><code>{_e(_example(g))}</code></pre></details>")
                out.append("</div>")
            rows = [(f"{_e(f.kind)}<br><strong>{_e(f.name)}</strong>", f"<code>{_e(f.path)}</code>", _e(f.message),
                     _e(f.fix) or '<span class="muted">\u2014</span>',
                     f'{_mode_badge(f.mode)}<br><span class="muted">{_e(f.reason)}</span>', _e(f.last_changed_by),
                     f"<code>{_e(f.source)}:{f.line}</code>") for f in items]
            out.append(_table(("Object", "Path", "Finding", "Fix", "Mode", "Last changed by", "Location"), rows,
                              widths=(15, 14, 25, 19, 9, 9, 9)))
            out.append("</details>")
        out.append("</details>")
    return "".join(out)


def _decisions_html(report: AuditReport) -> str:
    d = report.decisions
    if d is None:
        return ""
    out = ["<h2>Admission decisions</h2>",
           f'<p class="meta">From the webhook\'s decision log, {_e(_window(d.since, d.until))}.</p>',
           '<div class="cards">',
           _card(str(d.total), "Decisions", "info"),
           _card(str(d.denied), "Denied", "risk" if d.denied else "ok"),
           _card(str(d.warned), "Allowed with a warning", "soon" if d.warned else "ok"),
           _card(str(d.exceptions_used), "Exceptions used", "info"),
           _card(str(d.malformed_lines), "Malformed log lines", "soon" if d.malformed_lines else "ok"),
           "</div>"]
    for heading, column, attr, keys, labels in DECISION_TABLES:
        rows = _top(getattr(d, attr), keys)
        out.append(f"<h3>{_e(heading)}</h3>")
        if not rows:
            out.append('<p class="muted">None.</p>')
            continue
        out.append(_table((column, *labels), ([_e(name), *(str(v) for v in values)] for name, values in rows),
                          numeric=range(1, len(labels) + 1), compact=True))
    return "".join(out)


def _exceptions_html(report: AuditReport) -> str:
    items = report.posture.exceptions
    if not items:
        return ""
    rows = [(_e(", ".join(e.rules)), _e(_exception_target(e)),
             _e(e.expires.isoformat()) + (" " + _badge("expiring soon", MODE_COLOURS["warn"]) if e.expiring_soon
                                          else ""),
             _e(e.ticket), _e(e.reason), _e(e.source),
             _e(f"{e.id} ({'spec-bound' if e.bound else 'not bound'})" if e.id else "")) for e in items]
    return "<h2>Exceptions in force</h2>" + _table(
        ("Rules", "Object", "Expires", "Ticket", "Reason", "Granted by", "Token"), rows)


def _errors_html(report: AuditReport) -> str:
    if not report.errors:
        return ""
    rows = [(f"<code>{_e(e.source)}:{e.line}:{e.col}</code>", _e(e.message)) for e in report.errors]
    return "<h2>Unreadable documents</h2>" + _table(("Location", "Problem"), rows)


def render_html(report: AuditReport) -> str:
    """One file, no network: inline CSS, inline SVG charts, <details> groups, no script."""
    modes = Counter(f.mode for f in report.findings)
    stats = [
        _card(str(report.policies), "Policies audited", "info"),
        _card(str(len(report.findings)), "Findings", "risk" if report.findings else "ok"),
        _card(str(modes["enforce"]), "Would be rejected (enforce)", "risk" if modes["enforce"] else "ok"),
        _card(str(modes["warn"]), "Warnings (warn)", "soon" if modes["warn"] else "ok"),
        _card(str(modes["audit"]), "Recorded only (audit)", "info"),
        _card(str(len(report.posture.namespaces)), "Namespaces audited", "info"),
    ]
    if report.errors:
        stats.append(_card(str(len(report.errors)), "Unreadable documents", "risk"))
    return "".join([
        "<!DOCTYPE html>\n",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="netguard">',
        f"<title>netguard audit \u2014 {_e(report.source)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>netguard audit report</h1>",
        f'<p class="meta">Generated {_e(report.generated_at.isoformat())} \u00b7 source {_e(report.source)} '
        f"\u00b7 policy revision <code>{_e(report.policy_revision)}</code></p></header>",
        "<main>",
        '<h2>Summary</h2><div class="cards">', *stats, "</div>",
        '<h2>Posture</h2><div class="cards">', *(_figure_card(f) for f in figures(report)), "</div>",
        "<h2>Charts</h2>", _charts(report),
        _errors_html(report),
        _exceptions_html(report),
        _decisions_html(report),
        "<h2>Findings</h2>", _findings_html(report),
        "</main>",
        f"<footer>netguard audit \u00b7 {len(report.findings)} findings in {report.policies} policies \u00b7 "
        f"policy revision {_e(report.policy_revision)}</footer>",
        "</body></html>\n",
    ])


# ---------------------------------------------------------------------------------------------- PolicyReport

POLICY_REPORT_API = "wgpolicyk8s.io/v1alpha2"
MANAGED_BY = {"app.kubernetes.io/managed-by": "netguard"}
API_VERSIONS = {gvk.kind: gvk.api_version for gvk in POLICY_KINDS}
# enforce: admission would reject it today -> fail. warn and audit are both "requirement not met, not
# blocking": the CRD's `warn` ("not met, not scored"). Audit includes findings an exception excuses;
# `properties.reason` names the exception. Only `fail` results are scored.
RESULT_OF_MODE = {"enforce": "fail", "warn": "warn", "audit": "warn"}
# Kyverno's v1alpha2 CRD allows critical, high, medium, low, info (the original wg-policy v1alpha2 only
# high, medium, low); netguard's severities map one to one, anything else is info.
SEVERITIES = ("critical", "high", "medium", "low")


def _timestamp(when: datetime) -> dict[str, int]:
    """A protobuf Timestamp; a time without a zone is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return {"seconds": math.floor(when.timestamp()), "nanos": when.microsecond * 1000}


def _result(f: AuditFinding, stamp: Mapping[str, int]) -> dict[str, Any]:
    resource: dict[str, str] = {"apiVersion": API_VERSIONS.get(f.kind, ""), "kind": f.kind, "name": f.name}
    if not resource["apiVersion"]:
        del resource["apiVersion"]
    if f.namespace:
        resource["namespace"] = f.namespace
    message = f"{f.path}: {f.message}" + (f". Fix: {f.fix}" if f.fix else "")
    result = RESULT_OF_MODE.get(f.mode, "warn")
    return {
        "policy": f.rule, "rule": f.rule, "category": "netguard",
        "severity": f.severity if f.severity in SEVERITIES else "info",
        "result": result, "message": message, "source": "netguard", "scored": result == "fail",
        "timestamp": dict(stamp), "resources": [resource],
        "properties": {"path": f.path, "last_changed_by": f.last_changed_by, "mode": f.mode, "reason": f.reason,
                       "file": f.source, "line": str(f.line)},
    }


def _report(kind: str, name: str, namespace: str | None, results: list[dict[str, Any]],
            annotations: Mapping[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(MANAGED_BY)
    metadata["annotations"] = dict(annotations)
    counts = Counter(r["result"] for r in results)
    return {"apiVersion": POLICY_REPORT_API, "kind": kind, "metadata": metadata,
            "summary": {k: counts[k] for k in ("pass", "fail", "warn", "error", "skip")}, "results": results}


def policy_reports(report: AuditReport) -> list[dict[str, Any]]:
    """One PolicyReport per audited namespace (empty ones too, so applying them clears fixed findings)
    and one ClusterPolicyReport for clusterwide policies."""
    stamp = _timestamp(report.generated_at)
    annotations = {"netguard.io/policy-revision": report.policy_revision, "netguard.io/source": report.source,
                   "netguard.io/generated-at": report.generated_at.isoformat()}
    by_ns: dict[str, list[dict[str, Any]]] = {ns: [] for ns in report.posture.namespaces}
    cluster: list[dict[str, Any]] = []
    for f in report.findings:
        (by_ns.setdefault(f.namespace, []) if f.namespace else cluster).append(_result(f, stamp))
    docs = [_report("PolicyReport", f"netguard-{ns}", ns, results, annotations)
            for ns, results in sorted(by_ns.items())]
    docs.append(_report("ClusterPolicyReport", "netguard-cluster", None, cluster, annotations))
    return docs


def render_policyreport(report: AuditReport) -> str:
    return yaml.safe_dump_all(policy_reports(report), sort_keys=False, explicit_start=True, allow_unicode=True,
                              width=120)


RENDERERS: dict[str, Callable[[AuditReport], str]] = {
    "json": render_json,
    "csv": render_csv,
    "markdown": render_markdown,
    "html": render_html,
    "policyreport": render_policyreport,
}
