"""docs/guardrails.md rendered from the guardrails' policy.yaml: one source of truth, checked by a test."""

from __future__ import annotations

from webhook.core.guardrails import PolicySet

HEADER = """# Guardrail catalog

Generated from `policies/*/policy.yaml` by `netguard policies docs > docs/guardrails.md`; a test fails
when this file and the metadata disagree. Modes are the defaults; every one is configurable
(docs/configuration.md).

| guardrail | default mode | severity | kinds | operations |
|---|---|---|---|---|
"""


def render(policies: PolicySet) -> str:
    lines = [HEADER.rstrip("\n")]
    for g in policies.guardrails:
        lines.append(f"| [`{g.id}`](#{g.id}) | {g.mode.value} | {g.severity} | {', '.join(g.kinds)} | "
                     f"{', '.join(o.value for o in g.operations)} |")
    for g in policies.guardrails:
        meta = g.metadata
        lines += ["", f"## {g.id}", "", f"**{g.title}** — {g.mode.value}, {g.severity}", "",
                  " ".join(str(meta["description"]).split())]
        if meta.get("rationale"):
            lines += ["", "*Why:* " + " ".join(str(meta["rationale"]).split())]
        if meta.get("assumptions"):
            lines += ["", "*Semantics and assumptions:*", ""]
            lines += [f"- {' '.join(str(a).split())}" for a in meta["assumptions"]]
        lines += ["", "*Fix:* " + " ".join(str(meta["remediation"]).split())]
        if meta.get("example"):
            lines += ["", "```yaml", str(meta["example"]).rstrip("\n"), "```"]
        if g.parameters:
            lines += ["", "*Parameters (defaults):* " + ", ".join(f"`{k}: {v!r}`" for k, v in g.parameters.items())]
        if not g.grandfather:
            lines += ["", "*UPDATE leniency does not apply:* an existing violation stays enforced on every change."]
        if meta.get("references"):
            lines += ["", "*References:* " + ", ".join(f"<{r}>" for r in meta["references"])]
    return "\n".join(lines) + "\n"
