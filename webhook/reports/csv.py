"""AuditReport -> CSV, one row per finding, for a spreadsheet; formulas in names and messages defused."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from webhook.reports import PLAIN_STYLE, Format, Style

if TYPE_CHECKING:
    from webhook.offline.audit import AuditReport

CSV_FIELDS = ("namespace", "kind", "name", "rule", "severity", "mode", "path", "message", "fix",
              "last_changed_by", "source", "line", "last_changed_from")  # new columns go last
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets: a policy name
# or message like `=HYPERLINK(...)` would run when a reviewer opens the file (OWASP "CSV injection").
# A leading single quote makes the spreadsheet show the text as it is; tab and CR are on OWASP's list too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def render_csv(report: AuditReport, style: Style = PLAIN_STYLE) -> str:
    """One row per finding; RFC 4180 (CRLF, quotes doubled, fields with separators quoted)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_FIELDS)
    for f in report.findings:
        writer.writerow([_csv_cell(getattr(f, name)) for name in CSV_FIELDS])
    return out.getvalue()


FORMAT = Format("csv", "one row per finding, for a spreadsheet", audit=render_csv)
