"""docs/architecture.md's module table is checked against the code: every module has a row, and each row's
"may import" column names exactly the package modules the module imports (at the top or lazily). Rows that
say "everything" (the CLI, the Flask app) are the edges. The core stays free of web, server and cluster
libraries, including through what it imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "webhook"
ROW = re.compile(r"^\| `([a-z_]+)\.py` \| (.*) \| (.*) \|$", re.M)
EDGES = ("everything", "all core")
# Pure functions over typed values: no Flask, gunicorn, kubernetes client or HTTP server behind them.
CORE = ("model", "netpolicy", "shape", "selectors", "ports", "identities", "limits", "normalize", "deadline",
        "coverage", "fqdn", "facts", "decide", "requester", "exceptions", "posture", "explain", "attribution",
        "mutate", "verdict_cache")
FORBIDDEN = ("flask", "werkzeug", "gunicorn", "kubernetes")


def modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}


def imports(name: str) -> tuple[set[str], set[str]]:
    """(package modules, top-level external packages) that `name` imports anywhere in its file."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "webhook":
                ours |= {a.name for a in node.names}
            elif node.module.startswith("webhook."):
                ours.add(node.module.split(".")[1])
            else:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("webhook."):
                    ours.add(alias.name.split(".")[1])
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
        documented = {t for t in re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cell)) if t in mods}
        actual = imports(name)[0]
        if documented != actual:
            wrong[name] = {"undocumented": sorted(actual - documented), "not imported": sorted(documented - actual)}
    assert wrong == {}


def test_the_core_reaches_no_web_server_or_cluster_library() -> None:
    for name in CORE:
        seen, todo, reached = {name}, [name], set()
        while todo:
            ours, theirs = imports(todo.pop())
            reached |= theirs
            todo += [m for m in ours - seen]
            seen |= ours
        assert not reached & set(FORBIDDEN), (name, sorted(reached & set(FORBIDDEN)), sorted(seen))
