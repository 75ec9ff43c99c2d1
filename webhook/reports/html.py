"""AuditReport -> one self-contained HTML page: summary cards, posture, SVG charts, flows, findings by namespace.

Names, paths and messages come from manifests anyone with write access to a namespace can submit: every one
is escaped, and the page's CSP forbids scripts besides.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from webhook.reports import PLAIN_STYLE, Format, Style
from webhook.reports._shared import (
    DECISION_TABLES,
    FLOW_SCOPE,
    MODES,
    SEVERITY_RANK,
    Figure,
    exception_target,
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

_e = html.escape  # quote=True: safe in text and in double-quoted attributes

MODE_COLOURS = {"enforce": "#c62828", "warn": "#e08600", "audit": "#1e6fd9"}
SEVERITY_COLOURS = {"critical": "#7b1fa2", "high": "#c62828", "medium": "#e08600", "low": "#1e6fd9"}
OTHER_COLOUR = "#78909c"
USE_W, USE_COLOURS = 160, {"flows": "#1e6fd9", "uncertain": "#9ec1f0"}  # a rule's use bar: px, the busiest rule

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


def _example(guardrail: Any) -> str:
    metadata = getattr(guardrail, "metadata", None)
    example = metadata.get("example") if isinstance(metadata, Mapping) else None
    return str(example).rstrip() if example else ""


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
    by_id = guardrails(report)
    out: list[str] = []
    for ns, rules in grouped(report.findings):
        modes = Counter(f.mode for _, items in rules for f in items)
        count = sum(modes.values())
        by_mode = ", ".join(f"{modes[m]} {m}" for m in MODES if modes[m])
        out.append(f'<details class="ns" open><summary>{_e(ns)} <span class="muted">\u2014 {count} '
                   f'finding{"s" if count != 1 else ""} ({_e(by_mode)})</span></summary>')
        for rule, items in rules:
            g = by_id.get(rule)
            heading = f" \u2014 {_e(rule_title(g))}" if rule_title(g) else ""
            out.append(f'<details class="rule"><summary><code>{_e(rule)}</code>{heading} '
                       f'{_severity_badge(items[0].severity)} <span class="muted">{len(items)}</span></summary>')
            if rule_remediation(g) or _example(g):
                out.append('<div class="howto">')
                if rule_remediation(g):
                    out.append(f"<p><strong>How to fix.</strong> {_e(rule_remediation(g))}</p>")
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


def _use_bar(path: str, flows: int, uncertain: int, busiest: int, judged: bool) -> str:
    """A rule's flows as a bar on a track, scaled to `busiest` (its policy's busiest rule); grey when not judged."""
    parts = [f'<svg role="img" viewBox="0 0 {USE_W} 12" width="{USE_W}" height="12"><title>{_e(path)}: {flows} '
             f'flows{f" (+{uncertain} uncertain)" if uncertain else ""}; its policy\'s busiest rule: {busiest}</title>'
             f'<rect width="{USE_W}" height="12" fill="#eef0f3" stroke="#dde1e7" rx="2"/>']
    x = 0.0
    for name, value in (("flows", flows), ("uncertain", uncertain)):
        if value > 0:
            w, colour = max(USE_W * value / max(busiest, 1), 2.0), USE_COLOURS[name] if judged else OTHER_COLOUR
            parts.append(f'<rect class="use-{name}" x="{x:.1f}" width="{w:.1f}" height="12" fill="{colour}" rx="2"/>')
            x += w
    return "".join(parts) + "</svg>"


def _flows_html(report: AuditReport) -> str:
    """Per observed policy, each allow rule's use as a bar scaled to the busiest rule of the same policy."""
    if report.flows is None:
        return ""
    observed, unseen = flow_policies(report)
    out = ["<h2>Traffic evidence</h2>",
           f'<p class="meta">From Hubble flows: {_e(flow_window(report.flows.window))}. {_e(FLOW_SCOPE)} Each bar '
           "compares a rule's flows with the busiest rule of the same policy.</p>"]
    for label, evidence, unused in observed:
        out.append(f'<details class="ns" open><summary>{_e(label)} <span class="muted">\u2014 '
                   f"{evidence.subject_flows} flows of its pods</span></summary>")
        busiest, rows = max((r.flows + r.uncertain for r in evidence.rules), default=0), []
        for r in evidence.rules:
            allows, use, seen, peers, ports = (_e(c) for c in flow_row(r, r.path in unused))
            use = f"0 {_badge('unused', MODE_COLOURS['warn'])}" if r.path in unused else use
            cells = (f"<code>{_e(r.path)}</code> {_e(r.direction)}", allows,
                     _use_bar(r.path, r.flows, r.uncertain, busiest, r.judged) + use, seen, peers, ports)
            rows.append(cells if r.judged else tuple(f'<span class="muted">{c}</span>' for c in cells))
        out.append(_table(("Rule", "Allows", "Flows", "Last seen", "Peers observed", "Ports observed"), rows,
                          widths=(13, 20, 21, 12, 22, 12)) if rows else "<p>No allow rule to match flows to.</p>")
        out += [*(f"<p><code>{_e(m.path)}</code>: {_e(missing_allow(m))}.</p>" for m in evidence.missing), "</details>"]
    if unseen:
        out.append(f"<details><summary>No flow of their pods in the window (their rules are not judged): "
                   f"{len(unseen)} policies</summary><ul>{''.join(f'<li>{_e(u)}</li>' for u in unseen)}</ul></details>")
    return "".join(out)


def _decisions_html(report: AuditReport) -> str:
    d = report.decisions
    if d is None:
        return ""
    out = ["<h2>Admission decisions</h2>",
           f'<p class="meta">From the webhook\'s decision log, {_e(window(d.since, d.until))}.</p>',
           '<div class="cards">',
           _card(str(d.total), "Decisions", "info"),
           _card(str(d.denied), "Denied", "risk" if d.denied else "ok"),
           _card(str(d.warned), "Allowed with a warning", "soon" if d.warned else "ok"),
           _card(str(d.exceptions_used), "Exceptions used", "info"),
           _card(str(d.malformed_lines), "Malformed log lines", "soon" if d.malformed_lines else "ok"),
           "</div>"]
    for heading, column, attr, keys, labels in DECISION_TABLES:
        rows = top(getattr(d, attr), keys)
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
    rows = [(_e(", ".join(e.rules)), _e(exception_target(e)),
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


def _notices_html(report: AuditReport) -> str:
    if not report.notices:
        return ""
    rows = [(_e(f"{n.kind} {n.namespace + '/' if n.namespace else ''}{n.name}"),
             f"<code>{_e(n.source)}:{n.line}</code>", _e(n.text)) for n in report.notices]
    return ("<h2>Not judged</h2><p>What the audit could not check (no finding either way).</p>"
            + _table(("Policy", "Location", "Notice"), rows))


def render_html(report: AuditReport, style: Style = PLAIN_STYLE) -> str:
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
        _flows_html(report),
        _errors_html(report),
        _notices_html(report),
        _exceptions_html(report),
        _decisions_html(report),
        "<h2>Findings</h2>", _findings_html(report),
        "</main>",
        f"<footer>netguard audit \u00b7 {len(report.findings)} findings in {report.policies} policies \u00b7 "
        f"policy revision {_e(report.policy_revision)}</footer>",
        "</body></html>\n",
    ])


FORMAT = Format("html", "one self-contained page (charts, no script, no network), for people", audit=render_html)
