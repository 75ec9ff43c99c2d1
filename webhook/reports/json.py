"""CheckReport or AuditReport -> JSON: the report's own `to_json()`, for scripts (and POST /v1/check)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from webhook.reports import PLAIN_STYLE, Format, Style

if TYPE_CHECKING:
    from webhook.offline.audit import AuditReport
    from webhook.offline.check import CheckReport


def render_json(report: CheckReport | AuditReport, style: Style = PLAIN_STYLE) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


FORMAT = Format("json", "every field of the report as JSON, for scripts", check=render_json, audit=render_json)
