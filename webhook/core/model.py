"""The typed vocabulary every layer shares: requests, findings, decisions.

Everything here is a frozen dataclass or an enum so the core pipeline is made of pure
functions from values to values; only the edges (server, cli, kube) build these from
untyped input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from webhook import kinds
from webhook.kinds import GroupVersionKind as GroupVersionKind  # defined with the kinds, re-exported

JSON = Any  # a value json.loads can return
JSONObject = Mapping[str, Any]


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


class Mode(StrEnum):
    """What a guardrail's finding does to the request (Gatekeeper's enforcementAction)."""

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"
    OFF = "off"


class Verdict(StrEnum):
    """One result vocabulary for logs, metrics and reports."""

    ALLOWED = "allowed"  # no finding at all
    WARNED = "warned"  # allowed, with warn-mode findings
    AUDITED = "audited"  # allowed, only audit-mode findings
    DENIED = "denied"  # at least one enforce-mode finding
    SKIPPED = "skipped"  # not a kind or operation we evaluate
    ERROR = "error"  # the engine failed; the outcome follows the failure policy


# The guarded kinds, as admission compares them (request.kind): derived from the registry (webhook/kinds).
NETWORK_POLICY = kinds.NETWORK_POLICY.gvk
POLICY_KINDS = tuple(k.gvk for k in kinds.ALL)
POLICY_KIND_NAMES = kinds.NAMES  # the `kind` field alone: a first filter, never an identity (see webhook/kinds)


PolicyKey = tuple[str, str, str]  # (kind, namespace, name); namespace "" for clusterwide policies


@dataclass(frozen=True)
class UserInfo:
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        return {"username": self.username, "groups": list(self.groups)}


@dataclass(frozen=True)
class AdmissionRequest:
    """An admission.k8s.io/v1 AdmissionReview request, decoded once at the edge."""

    uid: str
    kind: GroupVersionKind
    operation: Operation
    user: UserInfo
    name: str = ""
    namespace: str = ""
    object: JSONObject | None = None
    old_object: JSONObject | None = None
    dry_run: bool = False
    sub_resource: str = ""

    @property
    def subject(self) -> JSONObject | None:
        """The object the decision is about: the old one on DELETE, else the new one."""
        return self.old_object if self.operation is Operation.DELETE else self.object


@dataclass(frozen=True)
class Finding:
    """One violation reported by one guardrail, before modes are applied."""

    rule: str
    path: str
    message: str
    fix: str = ""
    severity: str = "medium"


@dataclass(frozen=True)
class AppliedFinding:
    """A finding with the mode that applied to it and the reason for that mode."""

    finding: Finding
    mode: Mode
    reason: str = "default"

    def line(self) -> str:
        fix = f" Fix: {self.finding.fix}." if self.finding.fix else ""
        head = f"[{self.finding.rule}] {self.finding.path}: {self.finding.message}."
        return f"{head}{fix} ({self.mode.value}: {self.reason})"

    def short(self) -> str:
        """One line for kubectl warnings: no fix text, the mode's reason kept."""
        return f"[{self.finding.rule}] {self.finding.path}: {self.finding.message} ({self.mode.value}: {self.reason})"


INVALID_OBJECT = "invalid-object"  # Failure.kind of an object that cannot be read (and its denial's pseudo-rule)


@dataclass(frozen=True)
class Failure:
    """Why the guardrails did not judge the object, typed so that no caller parses `reason` or matches a rule id.

    `kind` is INVALID_OBJECT (the object does not match its API schema: `path` names the field, `problem` what is
    wrong with it) or an engine failure: timeout, unreachable, error or overloaded (`path` "(evaluation)",
    `problem` what the requester is told).
    """

    kind: str
    problem: str
    path: str = ""

    @property
    def transient(self) -> bool:
        """About the moment (the engine), not the object: not cached, and the same object may pass a retry."""
        return self.kind != INVALID_OBJECT


@dataclass(frozen=True)
class Decision:
    """What netguard concluded about one object: the single value every exit path reads."""

    verdict: Verdict
    findings: tuple[AppliedFinding, ...] = ()
    reason: str = ""  # why the request was skipped or errored, for the log
    notices: tuple[str, ...] = ()  # things the requester should know (ignored exception tokens, ...)
    exceptions_used: tuple[str, ...] = ()
    # Set when the guardrails did not judge the object: it cannot be read (decide.invalid_object), or they could not
    # be evaluated (decide.engine_failure).
    failure: Failure | None = None
    # Served from the verdict cache (webhook/core/verdict_cache.py): for the decision log; not part of equality.
    cached: bool = field(default=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.verdict is not Verdict.DENIED

    def by_mode(self, mode: Mode) -> tuple[AppliedFinding, ...]:
        return tuple(f for f in self.findings if f.mode is mode)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(sorted({f.finding.rule for f in self.findings}))
