"""docs/architecture.md's module table is checked against the code: every module has a row, and each row's
"may import" column names exactly the package modules the module imports (at the top or lazily). Rows that
say "everything" (the CLI, the Flask app) are the edges. The core stays free of web, server and cluster
libraries, including through what it imports.

Modules of a subpackage are named by their path: `kinds/networkpolicy` (row `kinds/networkpolicy.py`); the
package itself is `kinds` (row `kinds/__init__.py`), which `from webhook import kinds` and `from webhook.kinds
import PolicyKind` import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "webhook"
ROW = re.compile(r"^\| `([a-z_/]+?)(?:/__init__)?\.py` \| (.*) \| (.*) \|$", re.M)
EDGES = ("everything", "all core")
# Pure functions over typed values: no Flask, gunicorn, kubernetes client or HTTP server behind them.
CORE = ("model", "netpolicy", "shape", "selectors", "ports", "identities", "limits", "normalize", "deadline",
        "coverage", "fqdn", "facts", "decide", "requester", "exceptions", "posture", "explain", "attribution",
        "mutate", "verdict_cache", "kinds")
CORE_PACKAGES = ("kinds",)  # every module of these is core too
FORBIDDEN = ("flask", "werkzeug", "gunicorn", "kubernetes")


def modules() -> set[str]:
    """`normalize`, and for each subpackage `kinds` and `kinds/networkpolicy`."""
    found = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    for init in PACKAGE.glob("*/__init__.py"):
        package = init.parent.name
        found |= {package} | {f"{package}/{p.stem}" for p in init.parent.glob("*.py") if p.name != "__init__.py"}
    return found


def _source(name: str) -> Path:
    package = PACKAGE / name / "__init__.py"
    return package if package.exists() else PACKAGE / f"{name}.py"


def _ours(dotted: str, mods: set[str]) -> str:
    """The module `webhook.kinds.cilium` names (`kinds/cilium`), or the package it is in (`webhook.x.y` -> `x`)."""
    path = "/".join(dotted.split(".")[1:])
    return path if path in mods else path.split("/")[0]


def imports(name: str) -> tuple[set[str], set[str]]:
    """(package modules, top-level external packages) that `name` imports anywhere in its file."""
    mods = modules()
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(_source(name).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "webhook":
                ours |= {a.name for a in node.names}
            elif node.module.startswith("webhook."):
                base = _ours(node.module, mods)
                # `from webhook.kinds import cilium` imports the submodule; `... import PolicyKind`, the package.
                ours |= {f"{base}/{a.name}" if f"{base}/{a.name}" in mods else base for a in node.names}
            else:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("webhook."):
                    ours.add(_ours(alias.name, mods))
                else:
                    theirs.add(alias.name.split(".")[0])
    return ours - {name}, theirs


def table() -> dict[str, str]:
    return {m.group(1): m.group(3) for m in ROW.finditer((REPO / "docs" / "architecture.md").read_text())}


def test_every_module_has_one_row_and_every_row_a_module() -> None:
    assert sorted(table()) == sorted(modules())


def test_each_row_names_exactly_the_package_modules_it_imports() -> None:
    mods = modules()
    wrong = {}
    for name, cell in table().items():
        if any(edge in cell for edge in EDGES) or name not in mods:
            continue
        documented = {t for t in re.findall(r"`([a-z_/]+)`", re.sub(r"\([^)]*\)", "", cell)) if t in mods}
        actual = imports(name)[0]
        if documented != actual:
            wrong[name] = {"undocumented": sorted(actual - documented), "not imported": sorted(documented - actual)}
    assert wrong == {}


def test_the_core_reaches_no_web_server_or_cluster_library() -> None:
    core = set(CORE) | {m for m in modules() if m.split("/")[0] in CORE_PACKAGES}
    for name in sorted(core):
        seen, todo, reached = {name}, [name], set()
        while todo:
            ours, theirs = imports(todo.pop())
            reached |= theirs
            todo += [m for m in ours - seen]
            seen |= ours
        assert not reached & set(FORBIDDEN), (name, sorted(reached & set(FORBIDDEN)), sorted(seen))
