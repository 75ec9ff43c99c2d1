"""The output formats of `netguard check` and `netguard audit`: one module per format in this package.

A format module defines `FORMAT = Format(...)`: its `--format` name, a one-line description for `--help`, and a
renderer for each report it renders (a CheckReport, an AuditReport, or both). The registry finds the formats by
listing this package, not from a list kept by hand, so a new format is one new module (and its test): the CLI's
choices and help follow. Modules whose name starts with `_` are helpers, not formats.

The CLI reads the registry to build its parser, on every command, so format modules stay cheap to import: they
import `check` and `audit` (and through them the pipeline) only for type checking or inside a renderer.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from webhook.terminal import PLAIN, Paint

if TYPE_CHECKING:
    from webhook.offline.audit import AuditReport
    from webhook.offline.check import CheckReport

CHECK, AUDIT = "check", "audit"


@dataclass(frozen=True)
class Style:
    """How a format for people may dress its text (colour, no summary); formats for machines ignore it."""

    paint: Paint = PLAIN
    quiet: bool = False


PLAIN_STYLE = Style()


@dataclass(frozen=True)
class Format:
    """One output format; `check` and `audit` render that report, None where the format does not."""

    name: str
    description: str
    check: Callable[[CheckReport, Style], str] | None = None
    audit: Callable[[AuditReport, Style], str] | None = None

    def renders(self, report: str) -> bool:
        return getattr(self, report) is not None


@cache
def registered() -> tuple[Format, ...]:
    """Every format module's FORMAT, by name; cached (`registered.cache_clear()` looks again)."""
    found: list[Format] = []
    for module in pkgutil.iter_modules(__path__, f"{__name__}."):
        if module.name.rsplit(".", 1)[1].startswith("_"):
            continue
        fmt = getattr(importlib.import_module(module.name), "FORMAT", None)
        if not isinstance(fmt, Format):  # a format that forgot FORMAT would vanish from --format unnoticed
            raise TypeError(f"{module.name} is a format module but defines no FORMAT = Format(...)")
        found.append(fmt)
    for report in (CHECK, AUDIT):
        names = [f.name for f in found if f.renders(report)]
        if len(names) != len(set(names)):
            raise ValueError(f"two formats named alike render the {report} report: {sorted(names)}")
    return tuple(sorted(found, key=lambda f: f.name))


def formats(report: str) -> dict[str, Format]:
    """The formats that render `report` (CHECK or AUDIT), by name: the CLI's `--format` choices."""
    if report not in (CHECK, AUDIT):
        raise ValueError(f"no such report: {report!r}")
    return {f.name: f for f in registered() if f.renders(report)}


def help_text(report: str, default: str) -> str:
    """`--format`'s help: every format of `report` with its description."""
    listing = "; ".join(f"{f.name}{' (default)' if f.name == default else ''}: {f.description}"
                        for f in formats(report).values())
    return "report format: " + listing.replace("%", "%%")  # argparse %-formats help strings


def render_check(name: str, report: CheckReport, style: Style = PLAIN_STYLE) -> str:
    render = formats(CHECK)[name].check
    if render is None:  # not reached: formats(CHECK) holds only formats that render it
        raise KeyError(name)
    return render(report, style)


def render_audit(name: str, report: AuditReport, style: Style = PLAIN_STYLE) -> str:
    render = formats(AUDIT)[name].audit
    if render is None:
        raise KeyError(name)
    return render(report, style)
