"""Terminal manners: colour only on a terminal, and only when the user has not asked for none.

`color_enabled` is the one decision, for every command that colours its text output:

- `--color always` colours, `--color never` does not (a flag given for one run beats the environment);
- `--color auto` (the default) colours only when the stream is a terminal, `NO_COLOR` is unset or empty
  (https://no-color.org: any non-empty value turns colour off) and `TERM` is not `dumb`.

`Paint` wraps text in ANSI SGR codes when enabled and returns it unchanged otherwise, so a renderer
writes the same characters either way: `strip(painted) == plain` (a test holds that).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

COLOR_CHOICES = ("auto", "always", "never")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESET = "\x1b[0m"
_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def color_enabled(stream: TextIO, choice: str = "auto", environ: Mapping[str, str] | None = None) -> bool:
    """Whether text written to `stream` should be coloured (see the module docstring)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def strip(text: str) -> str:
    """`text` without ANSI colour codes."""
    return ANSI.sub("", text)


@dataclass(frozen=True)
class Paint:
    """Styles text with ANSI codes when `enabled`; the identity otherwise."""

    enabled: bool = False

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        return "\x1b[" + ";".join(_CODES[s] for s in styles) + "m" + text + _RESET

    # What a finding's level looks like, wherever a level is printed (check, doctor).
    def error(self, text: str) -> str:
        return self(text, "bold", "red")

    def warning(self, text: str) -> str:
        return self(text, "bold", "yellow")

    def note(self, text: str) -> str:
        return self(text, "dim")

    def ok(self, text: str) -> str:
        return self(text, "green")

    def dim(self, text: str) -> str:
        return self(text, "dim")

    def bold(self, text: str) -> str:
        return self(text, "bold")


PLAIN = Paint(False)


def paint_for(stream: TextIO, choice: str = "auto", environ: Mapping[str, str] | None = None) -> Paint:
    return Paint(color_enabled(stream, choice, environ))
