"""The guardrail catalog as values: each guardrail's metadata and Rego, the set the engine compiles, and the
static entry point generated from it. Pure: reading policies/ is webhook/engine/policies.py's job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from webhook.core.model import Mode, Operation

PACKAGE_PREFIX = "guardrails"


@dataclass(frozen=True)
class RegoModule:
    path: Path
    text: str
    package: str

    @property
    def module_id(self) -> str:
        """A stable id for OPA's /v1/policies/<id> (folder/file, no extension)."""
        return f"{self.path.parent.name}/{self.path.stem}"


@dataclass(frozen=True)
class Guardrail:
    id: str
    title: str
    severity: str
    mode: Mode
    kinds: tuple[str, ...]
    operations: tuple[Operation, ...]
    description: str
    remediation: str
    folder: Path
    rule: RegoModule
    tests: RegoModule
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    grandfather: bool = True  # may an UPDATE keep a violation the object already had (with a warning)
    # Decides from the cluster view: what the requester is told is unknown while the view cannot be trusted.
    cluster_view: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)  # FactParams field -> this guardrail's parameter
    # What the guardrail decides from besides the object: "flows" (observed traffic, `audit --flows`); without it
    # the guardrail is not evaluated at all (the webhook never has flows).
    evidence: str = ""


    @cached_property
    def package_name(self) -> str:
        return self.id.replace("-", "_")


@dataclass(frozen=True)
class PolicySet:
    root: Path
    guardrails: tuple[Guardrail, ...]
    library: tuple[RegoModule, ...]
    revision: str

    def get(self, rule_id: str) -> Guardrail:
        for g in self.guardrails:
            if g.id == rule_id:
                return g
        raise KeyError(rule_id)

    @property
    def modules(self) -> tuple[RegoModule, ...]:
        """Everything the production engine compiles (tests excluded)."""
        return self.library + tuple(g.rule for g in self.guardrails)

    @cached_property
    def by_package(self) -> Mapping[str, Guardrail]:
        return MappingProxyType({g.package_name: g for g in self.guardrails})  # read on every review: built once

    @cached_property
    def reads_raw_object(self) -> bool:
        """Does any production module read the raw object (input.object / input.old_object)? Only then
        does the engine input carry it beside the normalized model (for a big Cilium policy it was half of
        the ~120 KB input). Deliberately broad: a false "reads" costs bytes, a missed one hides data."""
        return any(_RAW_OBJECT.search(m.text) for m in self.modules)


STATIC_FINDINGS_PACKAGE = "netguard.static"


def static_findings_module(policies: PolicySet) -> RegoModule:
    """data.netguard.static.findings: data.netguard.findings (policies/lib/netguard.rego) written out with one
    rule per guardrail, generated from the catalog so a new guardrail folder is in it without an edit.

    Why: regorus evaluates `data.guardrails[name]` with `name` a variable by evaluating every guardrail
    package, whichever `input.rules` names (measured on a small NetworkPolicy: 2.0 ms against 0.7 ms for
    this form). The guardrails are the same on both engines; only the entry point differs, and
    tests/policies/test_static_findings.py holds the two to the same answers. Plain Rego: OPA compiles it too.
    The `name :=` in the body, not a constant key in the head: regorus's eval_rule refuses a rule whose head
    has a constant key ("not a valid rule path").
    """
    lines = ["package " + STATIC_FINDINGS_PACKAGE, "", "import rego.v1", ""]
    for package in sorted(g.package_name for g in policies.guardrails):
        lines += [f"findings[name] := data.{PACKAGE_PREFIX}.{package}.violation if {{",
                  f'\tname := "{package}"', "\tname in input.rules", "}", ""]
    return RegoModule(path=policies.root / "lib" / "static_findings.rego", text="\n".join(lines),
                      package=STATIC_FINDINGS_PACKAGE)


_RAW_OBJECT = re.compile(r'\binput\s*\.\s*(?:old_)?object\b|"(?:old_)?object"|\bwalk\s*\(\s*input\b')
