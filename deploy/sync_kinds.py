"""The registered policy kinds in deploy/'s webhook configurations and ClusterRoles, generated from webhook/kinds.

Run by deploy/sync_policies.py (`make deploy-policies`). webhook/kinds is the one list of guarded kinds; the
rules that name them in deploy/ are written between two marker comment lines, so the rest of each file (its
comments, the rules for other resources) stays as written by hand:

    # netguard:begin <block> (generated from webhook/kinds by `make deploy-policies`: do not edit)
    ...
    # netguard:end <block>

The generated lines take the indentation of the begin line. tests/deploy/test_policies_sync.py fails while a
block is stale; tests/unit/test_kinds_registry.py and tests/deploy/test_manifests.py check what the files say.
The registry is imported from this checkout. It imports only the standard library, so `make deploy-policies`
runs on any Python >= 3.11 without the venv; tests/deploy/test_policies_sync.py runs the sync that way to keep it so.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from webhook.kinds import PolicyKind

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
MARK = "# netguard:"
_HARMLESS = "harmless where not installed (RBAC may name resources that do not exist)."
_PLAIN = re.compile(r"^[a-zA-Z][-.a-zA-Z0-9]*$")  # written as a plain YAML scalar; anything else is quoted
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # plain, these would not be strings


class Block(NamedTuple):
    """One generated block: the file, the name on its markers, and its lines for a sequence of kinds."""

    path: Path
    name: str
    lines: Callable[[Sequence[PolicyKind]], list[str]]


def _flow(values: Sequence[str]) -> str:
    """A YAML flow sequence of strings."""
    return "[" + ", ".join(v if _PLAIN.match(v) and v.lower() not in _YAML_WORDS else f'"{v}"' for v in values) + "]"


def webhook_rules(operations: Sequence[str]) -> Callable[[Sequence[PolicyKind]], list[str]]:
    """One rule per kind: its group, the version netguard reads (matchPolicy: Equivalent sends the others
    converted to it), its plural and scope (the API server matches a rule's scope against the resource's)."""
    def lines(kinds: Sequence[PolicyKind]) -> list[str]:
        out = []
        for kind in kinds:
            out += [f"- apiGroups: {_flow([kind.group])}", f"  apiVersions: {_flow([kind.version])}",
                    f"  resources: {_flow([kind.plural])}", f"  operations: {_flow(operations)}",
                    f"  scope: {'Namespaced' if kind.namespaced else 'Cluster'}"]
        return out
    return lines


def rbac_rules(verbs: Sequence[str]) -> Callable[[Sequence[PolicyKind]], list[str]]:
    """One rule per API group, its kinds' plurals in registry order (RBAC names no version)."""
    def lines(kinds: Sequence[PolicyKind]) -> list[str]:
        groups: dict[str, list[PolicyKind]] = {}
        for kind in kinds:
            groups.setdefault(kind.group, []).append(kind)
        out = []
        for group, members in groups.items():
            if all(k.optional_crd for k in members):
                projects = " and ".join(dict.fromkeys(k.project for k in members))
                out.append(f"# {projects} CRDs: {_HARMLESS}")
            out += [f"- apiGroups: {_flow([group])}", f"  resources: {_flow([k.plural for k in members])}",
                    f"  verbs: {_flow(verbs)}"]
        return out
    return lines


BLOCKS = (
    Block(DEPLOY / "base" / "validating-webhook.yaml", "webhook-rules", webhook_rules(("CREATE", "UPDATE", "DELETE"))),
    # /mutate never patches a DELETE, so the API server is not asked to send one.
    Block(DEPLOY / "base" / "mutating-webhook.yaml", "webhook-rules", webhook_rules(("CREATE", "UPDATE"))),
    Block(DEPLOY / "base" / "rbac.yaml", "policy-kinds", rbac_rules(("list", "watch"))),  # the cluster view
    Block(DEPLOY / "overlays" / "audit-cronjob" / "audit.yaml", "policy-kinds", rbac_rules(("list",))),  # the audit
)


def registered() -> tuple[PolicyKind, ...]:
    """webhook/kinds' registry, imported from this checkout (not from an installed netguard)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from webhook import kinds

    return kinds.ALL


def splice(text: str, name: str, lines: Sequence[str], where: str) -> str:
    """`text` with the block `name` holding `lines`; the markers must be there once, the end after the begin."""
    pattern = re.compile(rf"^([ \t]*){re.escape(MARK)}begin {re.escape(name)}(?:[ \t][^\n]*)?\n.*?"
                         rf"^[ \t]*{re.escape(MARK)}end {re.escape(name)}[ \t]*\n", re.M | re.S)
    found = list(pattern.finditer(text))
    if len(found) != 1:
        raise SystemExit(f"{where}: expected one block between `{MARK}begin {name}` and `{MARK}end {name}` lines, "
                         f"found {len(found)}; put the markers back around the generated lines")
    indent = found[0].group(1)
    block = [f"{MARK}begin {name} (generated from webhook/kinds by `make deploy-policies`: do not edit)",
             *lines, f"{MARK}end {name}"]
    start, end = found[0].span()
    return text[:start] + "".join(f"{indent}{line}\n" for line in block) + text[end:]


def render(kinds: Sequence[PolicyKind] | None = None) -> dict[Path, bytes]:
    """Each file with a block, its blocks written for `kinds` (the registry's by default)."""
    kinds = registered() if kinds is None else kinds
    texts: dict[Path, str] = {}
    for block in BLOCKS:
        text = texts.get(block.path) or block.path.read_text(encoding="utf-8")
        texts[block.path] = splice(text, block.name, block.lines(kinds), str(block.path.relative_to(REPO)))
    return {path: text.encode() for path, text in texts.items()}
