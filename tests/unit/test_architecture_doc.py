"""docs/architecture.md's module table is checked against the code: every module has a row, and each row's
"may import" column names exactly the package modules the module imports (at the top or lazily). Rows that
say "everything" (the CLI, the Flask app) are the edges. The core (core/ and kinds/) stays free of web,
server, cluster, YAML and HTTP libraries, including through what it imports, and does no file I/O itself.
The layering between subpackages is import-linter's contract (pyproject.toml, `make lint`).

Modules of a subpackage are named by their path: `kinds/networkpolicy` (row `kinds/networkpolicy.py`); the
package itself is `kinds` (row `kinds/__init__.py`), which `from webhook import kinds` and `from webhook.kinds
import PolicyKind` import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "webhook"
ROW = re.compile(r"^\| `([a-z_/<>]+?)(?:/__init__)?\.py` \| (.*) \| (.*) \|$", re.M)
# Plug-in modules: a registry finds them by what they define, and one row stands for all of them (`kinds/<kind>.py`),
# naming what any of them may import; so a new kind or output format is its module and its test, no doc edit.
PLUGINS = {"kinds/<kind>": ("kinds", "KIND = "), "reports/<format>": ("reports", "FORMAT = ")}
EDGES = ("everything", "all core")
# Pure functions over typed values: no Flask, gunicorn, kubernetes client, YAML or HTTP behind them.
CORE_PACKAGES = ("core", "kinds")  # every module of these is core
FORBIDDEN = ("flask", "werkzeug", "gunicorn", "kubernetes", "yaml", "requests", "urllib3", "opa_client", "structlog")
# No file, process or network I/O of the core's own: modules it may not import, methods it may not call.
IO_MODULES = ("os", "io", "shutil", "tempfile", "socket", "subprocess", "urllib", "http", "glob")
IO_CALLS = ("open", "read_text", "read_bytes", "write_text", "write_bytes", "glob", "rglob", "iterdir", "mkdir",
            "unlink", "rename", "replace_file", "exists", "is_file", "is_dir", "stat", "touch")
# The one exception, with its reason: the Public Suffix List that publicsuffixlist ships, read once at import
# (core/fqdn.py needs its text to list the private suffixes; the library gives no other way to them).
IO_ALLOWED = {("core/fqdn", "open")}


def core_modules() -> list[str]:
    return sorted(m for m in modules() if m.split("/")[0] in CORE_PACKAGES)


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


def plugins(row: str) -> set[str]:
    """The modules that the plug-in row `row` stands for."""
    package, marker = PLUGINS[row]
    return {f"{package}/{p.stem}" for p in (PACKAGE / package).glob("*.py")
            if any(line.startswith(marker) for line in p.read_text(encoding="utf-8").splitlines())}


def test_every_module_has_one_row_and_every_row_a_module() -> None:
    covered = {m for row in PLUGINS for m in plugins(row)}
    assert sorted(table()) == sorted((modules() - covered) | set(PLUGINS))


def test_a_plugin_row_names_what_its_modules_may_import() -> None:
    mods = modules()
    for row, cell in table().items():
        if row in PLUGINS:
            documented = {t for t in re.findall(r"`([a-z_/]+)`", re.sub(r"\([^)]*\)", "", cell)) if t in mods}
            assert plugins(row), row  # the marker still finds them
            for module in plugins(row):
                assert imports(module)[0] <= documented, (module, sorted(imports(module)[0] - documented))


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
    assert len(core_modules()) > 20  # the layout is what this test thinks it is
    for name in core_modules():
        seen, todo, reached = {name}, [name], set()
        while todo:
            ours, theirs = imports(todo.pop())
            reached |= theirs
            todo += [m for m in ours - seen]
            seen |= ours
        assert not reached & set(FORBIDDEN), (name, sorted(reached & set(FORBIDDEN)), sorted(seen))


def io_uses(name: str, text: str) -> list[tuple[str, str]]:
    """(module, what) for each I/O import or call in `text`, the allowed ones left out."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(name, n) for n in names if n.split(".")[0] in IO_MODULES]
        elif isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called in IO_CALLS and (name, called) not in IO_ALLOWED:
                found.append((name, called))
    return found


def test_the_core_does_no_io_of_its_own() -> None:
    assert [u for name in core_modules() for u in io_uses(name, _source(name).read_text(encoding="utf-8"))] == []


def test_the_io_check_sees_io() -> None:
    """The check above can fail: imports of I/O modules and file calls are caught; the allowed one is not."""
    text = "import os\nfrom pathlib import Path\nwith open('x') as f:\n    Path('y').read_text()\n"
    assert io_uses("core/x", text) == [("core/x", "os"), ("core/x", "open"), ("core/x", "read_text")]
    assert io_uses("core/fqdn", "open('psl')\n") == []


LONG = 400  # lines; a module longer than this says why at its top (its docstring has a "Size:" paragraph)


def test_a_long_module_says_why_it_is_long() -> None:
    unexplained = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > LONG and "Size:" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained[str(path.relative_to(PACKAGE))] = lines
    assert unexplained == {}
