"""The Dockerfile read the way `docker build` reads it, for tests that cannot build images (no engine here).

Handles what netguard's Dockerfile uses: stages (FROM ... AS name), line continuations, comment lines,
ENV KEY=VALUE with $VAR expansion, USER, WORKDIR, EXPOSE, COPY/ADD with --flags, and ENTRYPOINT/CMD,
which must be in exec form (a JSON array: the process is PID 1 and receives SIGTERM itself).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    copies: list[tuple[dict[str, str], list[str], str]] = field(default_factory=list)  # (flags, sources, dest)


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions with continuation lines joined; comment lines dropped (also inside continuations)."""
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            yield current.strip()
        current = ""
    if current.strip():
        yield current.strip()


def _exec_form(args: str, instruction: str) -> list[str]:
    try:
        value = json.loads(args)
    except ValueError:
        raise AssertionError(f"{instruction} must be in exec form (a JSON array), got {args!r}") from None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), value)


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in _logical_lines(text):
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
            continue
        assert stages, f"{instruction} before FROM"
        stage = stages[-1]
        stage.instructions.append((instruction, args))
        if instruction == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV must use KEY=VALUE, got {item!r}"
                stage.env[key] = _expand(value, stage.env)
        elif instruction == "USER":
            stage.user = args
        elif instruction == "WORKDIR":
            stage.workdir = args
        elif instruction == "ENTRYPOINT":
            stage.entrypoint, stage.cmd = _exec_form(args, instruction), []  # ENTRYPOINT resets CMD
        elif instruction == "CMD":
            stage.cmd = _exec_form(args, instruction)
        elif instruction == "EXPOSE":
            stage.expose += args.split()
        elif instruction in ("COPY", "ADD"):
            words = shlex.split(args)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            stage.copies.append((flags, paths[:-1], paths[-1]))
    return stages


def final_stage() -> Stage:
    return parse_dockerfile(DOCKERFILE.read_text())[-1]
