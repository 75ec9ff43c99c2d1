"""CheckReport -> text, like a compiler: `path:LINE:COL: error[rule] message`, then the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from webhook.core.model import Mode
from webhook.reports import PLAIN_STYLE, Format, Style
from webhook.reports._shared import LEVEL

if TYPE_CHECKING:
    from webhook.offline.check import CheckReport


def render_text(report: CheckReport, style: Style = PLAIN_STYLE) -> str:
    """One line per finding, notice and input error, then a summary line.

    `style.paint` colours the level (error red, warning yellow, note dim) on a terminal; stripped of its codes
    the text is the same. `style.quiet` leaves out the summary line: only findings, notices and input errors.
    """
    paint = style.paint
    out: list[str] = []
    levels = {"error": paint.error, "warning": paint.warning, "note": paint.note}
    for err in report.errors:
        out.append(f"{err.source}:{err.line}:{err.col}: {paint.error('error[input]')} {err.message}")
    for result in report.results:
        for f in result.findings:
            finding = f.applied.finding
            level = LEVEL.get(f.applied.mode, "note")
            mode = f"{f.applied.mode.value}: {f.applied.reason}"
            out.append(f"{result.document.source}:{f.line}:{f.column}: {levels[level](f'{level}[{finding.rule}]')} "
                       f"{finding.path}: {finding.message} ({result.label}; {mode})")
            if finding.fix:
                out.append(f"  {paint.bold('fix:')} {finding.fix}")
        for notice in result.decision.notices:
            out.append(f"{result.document.source}:{result.document.line}:1: {paint.note('note[netguard]')} {notice}")
    if style.quiet:
        return "\n".join(out) + "\n" if out else ""
    errors, warnings = report.count(Mode.ENFORCE), report.count(Mode.WARN)
    # Every `note` line above: audit-mode findings and what could not be judged (notices).
    notes = report.count(Mode.AUDIT) + sum(len(r.decision.notices) for r in report.results)
    out.append(f"{_count(paint.error, errors, 'error')}, {_count(paint.warning, warnings, 'warning')}, "
               f"{_n(notes, 'note')} in "
               f"{_n(len(report.results), 'policy', 'policies')}"
               + (f"; {paint.error(_n(len(report.errors), 'unreadable document'))}" if report.errors else "")
               + (f"; {report.skipped} other document(s) skipped" if report.skipped else ""))
    return "\n".join(out) + "\n"


def _count(style: Callable[[str], str], count: int, word: str) -> str:
    """A count in the summary, coloured only when it is not zero."""
    return style(_n(count, word)) if count else _n(count, word)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


FORMAT = Format("text", "one line per finding, like a compiler (path:line:col), coloured on a terminal",
                check=render_text)
