"""The webhook's decision log (JSON lines of `admission.decision`) read back for the audit.

Only the fields the webhook writes are read; other lines (startup, bad requests) are skipped, and
a malformed line is counted, not fatal: a log is evidence, not input to trust blindly.

Anyone who can reach the admission port can post an AdmissionReview with any userInfo, and it is
logged like the API server's. A line counts only when its caller was authenticated (`authenticated:
true`: a client certificate verified against `server.client_ca`, webhook/serve/worker.py); other lines,
including those written before the field existed, are skipped and counted (`unauthenticated_lines`),
unless `include_unauthenticated` (`netguard audit --include-unauthenticated`) reads them all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DECISION_EVENT = "admission.decision"


@dataclass(frozen=True)
class DecisionStats:
    since: datetime | None
    until: datetime | None
    total: int
    denied: int
    warned: int
    exceptions_used: int
    malformed_lines: int
    unauthenticated_lines: int = 0  # skipped: the caller was not authenticated (without include_unauthenticated)
    by_namespace: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # ns -> {denied, warned, exceptions}
    by_rule: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # rule -> {enforce, warn, audit}
    by_requester: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # (kind, ns, name) -> (user, groups) as the API server sent them, for the audit's requester
    last_changed: Mapping[tuple[str, str, str], tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "total": self.total, "denied": self.denied, "warned": self.warned,
                "exceptions_used": self.exceptions_used, "malformed_lines": self.malformed_lines,
                "unauthenticated_lines": self.unauthenticated_lines,
                "by_namespace": {k: dict(v) for k, v in self.by_namespace.items()},
                "by_rule": {k: dict(v) for k, v in self.by_rule.items()},
                "by_requester": {k: dict(v) for k, v in self.by_requester.items()}}


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time as logs write it ("Z" or an offset; Hubble's nanoseconds kept to microseconds), else None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_decisions(lines: Iterable[str], since: datetime | None = None,
                   until: datetime | None = None, *, include_unauthenticated: bool = False) -> DecisionStats:
    total = denied = warned = exceptions = malformed = unauthenticated = 0
    by_ns: dict[str, Counter[str]] = {}
    by_rule: dict[str, Counter[str]] = {}
    by_user: dict[str, Counter[str]] = {}
    last: dict[tuple[str, str, str], tuple[datetime | None, str, tuple[str, ...]]] = {}
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            malformed += 1
            continue
        if not isinstance(entry, dict) or entry.get("event") != DECISION_EVENT or entry.get("endpoint") == "mutate":
            continue
        when = parse_timestamp(entry.get("timestamp"))
        if (since and when and when < since) or (until and when and when > until):
            continue
        if entry.get("authenticated") is not True and not include_unauthenticated:
            unauthenticated += 1  # anyone reaching the port could have written it: evidence of nothing
            continue
        total += 1
        verdict = str(entry.get("verdict", ""))
        ns = str(entry.get("namespace") or "(clusterwide)")
        user = str(entry.get("user") or "(unknown)")
        used = entry.get("exceptions_used") or []
        counts = {"denied": verdict == "denied", "warned": verdict == "warned", "exceptions": len(used)}
        denied += counts["denied"]
        warned += counts["warned"]
        exceptions += counts["exceptions"]
        for table, bucket_key in ((by_ns, ns), (by_user, user)):
            table.setdefault(bucket_key, Counter()).update({k: int(v) for k, v in counts.items()})
        modes = entry.get("modes") or {}
        if isinstance(modes, dict):
            for rule_at, mode in modes.items():
                rule = str(rule_at).split("@", 1)[0]
                by_rule.setdefault(rule, Counter())[str(mode).split("(", 1)[0]] += 1
        if entry.get("allowed") and entry.get("operation") in ("CREATE", "UPDATE"):
            obj_key = (str(entry.get("kind", "")), str(entry.get("namespace") or ""), str(entry.get("name", "")))
            previous = last.get(obj_key)
            if previous is None or (when and (previous[0] is None or when >= previous[0])):
                groups = entry.get("groups")
                last[obj_key] = (when, user, tuple(str(g) for g in groups) if isinstance(groups, list) else ())
    return DecisionStats(since=since, until=until, total=total, denied=denied, warned=warned,
                         exceptions_used=exceptions, malformed_lines=malformed,
                         unauthenticated_lines=unauthenticated,
                         by_namespace={k: dict(v) for k, v in sorted(by_ns.items())},
                         by_rule={k: dict(v) for k, v in sorted(by_rule.items())},
                         by_requester={k: dict(v) for k, v in sorted(by_user.items())},
                         last_changed={k: (v[1], v[2]) for k, v in last.items()})
