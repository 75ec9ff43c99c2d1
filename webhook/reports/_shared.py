"""What more than one format says the same way: a check finding's level, and the audit's posture figures,
findings grouping, decision tables and traffic evidence (Markdown and HTML both lay them out)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from webhook.core.flow_evidence import iso, port_label
from webhook.core.model import Mode, PolicyKey

if TYPE_CHECKING:
    from webhook.core.flow_evidence import MissingAllow, PolicyEvidence, RuleUsage, Window
    from webhook.offline.audit import AuditFinding, AuditReport, ExceptionInForce, PolicyRef, WorkloadGap

# ---------------------------------------------------------------------------------------------- check

LEVEL = {Mode.ENFORCE: "error", Mode.WARN: "warning", Mode.AUDIT: "note"}  # compiler and SARIF levels

# ---------------------------------------------------------------------------------------------- audit

CLUSTERWIDE = "(clusterwide)"
MODES = ("enforce", "warn", "audit")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
TOP = 10  # rows in each "most rejected" table


@dataclass(frozen=True)
class Figure:
    """One posture figure as every human-readable format shows it."""

    key: str
    label: str
    count: int | None  # None: not available (no workloads were read)
    total: int | None  # "of N" (namespaces, workloads), when meaningful
    items: tuple[str, ...]
    tone: str  # "risk": above zero is bad; "soon": above zero needs attention; "info": neutral


def _ref_label(ref: PolicyRef) -> str:
    where = f"{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.name} {CLUSTERWIDE}"
    text = f"{ref.kind} {where}"
    if ref.paths:
        text += ": " + ", ".join(ref.paths)
    return f"{text} ({ref.detail})" if ref.detail else text


def exception_target(e: ExceptionInForce) -> str:
    if e.namespace:
        return f"{e.namespace}/{e.name}" if e.name else f"namespace {e.namespace}"
    return e.name or "every object"


def _exception_label(e: ExceptionInForce) -> str:
    where = exception_target(e)
    token = f"token {e.id}, {'spec-bound' if e.bound else 'not bound to a spec'}" if e.id else ""
    extra = "; ".join(x for x in (token, e.ticket, e.reason) if x)
    return f"{', '.join(e.rules)} on {where} until {e.expires.isoformat()}" + (f" ({extra})" if extra else "")


def _workload_label(w: WorkloadGap) -> str:
    return f"{w.kind} {w.namespace}/{w.name}"


def figures(report: AuditReport) -> list[Figure]:
    """The posture figures, in reading order; Markdown and HTML both render this list."""
    from webhook.offline.audit import EXPIRING_WITHIN  # here: the registry imports every format, on every command

    p = report.posture
    n = len(p.namespaces)

    def refs(key: str, label: str, items: Sequence[PolicyRef]) -> Figure:
        return Figure(key, label, len(items), None, tuple(_ref_label(r) for r in items), "risk")

    soon = tuple(e for e in p.exceptions if e.expiring_soon)
    available = p.workloads is not None
    return [
        Figure("no_default_deny_ingress", "Namespaces without default deny for ingress",
               len(p.no_default_deny_ingress), n, p.no_default_deny_ingress, "risk"),
        Figure("no_default_deny_egress", "Namespaces without default deny for egress",
               len(p.no_default_deny_egress), n, p.no_default_deny_egress, "risk"),
        refs("internet_ingress_all_ports", "Policies open to the internet for ingress, on every port",
             p.internet_ingress_all_ports),
        refs("internet_ingress_ports_limited", "Policies open to the internet for ingress, on some ports",
             p.internet_ingress_ports_limited),
        refs("internet_egress_all_ports", "Policies open to the internet for egress, on every port",
             p.internet_egress_all_ports),
        refs("internet_egress_ports_limited", "Policies open to the internet for egress, on some ports",
             p.internet_egress_ports_limited),
        refs("all_namespaces", "Policies open to all namespaces", p.all_namespaces),
        refs("metadata", "Policies reaching the cloud metadata address", p.metadata),
        Figure("exceptions", "Exceptions in force", len(p.exceptions), None,
               tuple(_exception_label(e) for e in p.exceptions), "info"),
        Figure("exceptions_expiring", f"Exceptions expiring within {EXPIRING_WITHIN.days} days", len(soon), None,
               tuple(_exception_label(e) for e in soon), "soon"),
        Figure("workloads_without_ingress", "Workloads without an ingress policy",
               len(p.workloads_without_ingress) if available else None, p.workloads,
               tuple(_workload_label(w) for w in p.workloads_without_ingress), "risk"),
        Figure("workloads_without_egress", "Workloads without an egress policy",
               len(p.workloads_without_egress) if available else None, p.workloads,
               tuple(_workload_label(w) for w in p.workloads_without_egress), "risk"),
    ]


def guardrails(report: AuditReport) -> dict[str, Any]:
    """The report's guardrails by id."""
    return {str(getattr(g, "id", "")): g for g in report.rules}


def rule_title(guardrail: Any) -> str:
    return str(getattr(guardrail, "title", "") or "")


def rule_remediation(guardrail: Any) -> str:
    """The folded YAML text of the guardrail's remediation, on one line."""
    return " ".join(str(getattr(guardrail, "remediation", "") or "").split())


def _namespace(f: AuditFinding) -> str:
    return f.namespace or CLUSTERWIDE


def grouped(findings: Iterable[AuditFinding]) -> list[tuple[str, list[tuple[str, list[AuditFinding]]]]]:
    """Findings by namespace (clusterwide first), then by rule (most severe first), in source order."""
    by_ns: dict[str, dict[str, list[AuditFinding]]] = {}
    for f in findings:
        by_ns.setdefault(_namespace(f), {}).setdefault(f.rule, []).append(f)

    def rule_key(item: tuple[str, list[AuditFinding]]) -> tuple[int, str]:
        rule, items = item
        return min(SEVERITY_RANK.get(f.severity, len(SEVERITY_RANK)) for f in items), rule

    return [(ns, sorted(rules.items(), key=rule_key))
            for ns, rules in sorted(by_ns.items(), key=lambda kv: (kv[0] != CLUSTERWIDE, kv[0]))]


def top(table: Mapping[str, Mapping[str, int]], keys: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The TOP rows with a count in the first two keys (rejections, warnings), largest first."""
    rows = [(name, [int(counts.get(k, 0)) for k in keys]) for name, counts in table.items()]
    rows = [r for r in rows if any(r[1][:2])]
    rows.sort(key=lambda r: ([-v for v in r[1]], r[0]))
    return rows[:TOP]


DECISION_TABLES = (
    ("Most rejected namespaces", "Namespace", "by_namespace", ("denied", "warned", "exceptions"),
     ("Denied", "Warned", "Exceptions used")),
    ("Most rejected rules", "Rule", "by_rule", ("enforce", "warn", "audit"), ("Rejected", "Warned", "Audited")),
    ("Most rejected requesters", "Requester", "by_requester", ("denied", "warned", "exceptions"),
     ("Denied", "Warned", "Exceptions used")),
)


def window(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "the whole log"
    return f"{since.isoformat() if since else 'the start of the log'} to {until.isoformat() if until else 'its end'}"


# ---------------------------------------------------------------------------------------------- flows

UNUSED_RULE = "unused-rule"
FLOW_SCOPE = ("A rule is judged on these flows alone: none is called unused for traffic outside this window, "
              "nor in a policy whose pods never appeared in it. Uncertain: flows a rule may have carried (a flow "
              "could not settle it: a named port, a service), which keep it from being called unused.")


def _instant(when: datetime | None) -> str:
    return iso(when) or "never"


def flow_window(w: Window) -> str:
    """The flows read, for a sentence: the time they cover, the window asked for, the lines left out."""
    asked = " ".join(f"{word} {_instant(when)}" for word, when in (("since", w.since), ("until", w.until)) if when)
    return (f"{w.describe()}{f' (window asked: {asked})' if asked else ''}; "
            f"{w.malformed} line{'s' if w.malformed != 1 else ''} malformed, {w.outside_window} outside the window")


def policy_label(key: PolicyKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name} {CLUSTERWIDE}"


def flow_policies(report: AuditReport) -> tuple[list[tuple[str, PolicyEvidence, frozenset[str]]], list[str]]:
    """(label, evidence, paths of its rules the unused-rule guardrail reported) of each policy whose pods the flows
    saw, and the labels of those they never saw. Unused is what the guardrail found (its mode, its parameters),
    never worked out again here."""
    assert report.flows is not None
    reported: dict[PolicyKey, set[str]] = {}
    for f in report.findings:
        if f.rule == UNUSED_RULE:
            reported.setdefault((f.kind, f.namespace, f.name), set()).add(f.path)
    ordered = sorted(report.flows.policies.items())
    return ([(policy_label(k), e, frozenset(reported.get(k, ()))) for k, e in ordered if e.observed],
            [policy_label(k) for k, e in ordered if not e.observed])


def rule_use(rule: RuleUsage, unused: bool) -> str:
    """A rule's use in words: "6", "0, unused", "2 (+1 uncertain)", "0; not judged: <why>"."""
    text = str(rule.flows) + (f" (+{rule.uncertain} uncertain)" if rule.uncertain else "")
    if not rule.judged:
        return f"{text}; not judged: {rule.not_judged or 'a flow cannot be matched to its peers'}"
    return f"{text}, unused" if unused else text


def flow_row(rule: RuleUsage, unused: bool) -> tuple[str, str, str, str, str]:
    """What a rule allows, its use (rule_use), when it was last seen, and the peers and ports observed (capped:
    "and more")."""
    peers = ", ".join(sorted(p.describe() for p in rule.peers)) or "none"
    ports = ", ".join(port_label(p) for p in rule.ports) or "none"
    return (rule.allows, rule_use(rule, unused), _instant(rule.last_seen),
            peers + (", and more" if rule.more_peers else ""), ports + (", and more" if rule.more_ports else ""))


def missing_allow(m: MissingAllow) -> str:
    """Dropped flows one obvious allow would have passed (the dropped-needed finding has the rule to add)."""
    return (f"{m.flows} dropped {m.direction} flows needed {m.what} (from {', '.join(m.sources) or 'its pods'}, "
            f"last {_instant(m.last_seen)}), and no rule allows it")
