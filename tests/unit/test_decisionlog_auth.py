"""Decision log lines count for the audit only when their caller was authenticated (issue 11, point 2)."""

from __future__ import annotations

import json
from typing import Any

from webhook.offline.decisionlog import read_decisions


def line(**fields: Any) -> str:
    base = {"event": "admission.decision", "endpoint": "validate", "kind": "NetworkPolicy", "operation": "CREATE",
            "allowed": True, "verdict": "allowed", "modes": {}, "namespace": "team-a", "name": "web",
            "timestamp": "2026-11-01T10:00:00Z"}
    return json.dumps({**base, **fields})


LINES = [
    line(user="alice", authenticated=True, client_cn="kube-apiserver", verdict="denied", allowed=False),
    line(user="mallory", authenticated=False, timestamp="2026-11-02T10:00:00Z"),  # posted to the port directly
    line(user="old", timestamp="2026-11-03T10:00:00Z"),  # written before the field existed
    line(user="odd", authenticated="true", timestamp="2026-11-04T10:00:00Z"),  # only JSON true counts
]


def test_unauthenticated_lines_are_skipped_and_counted_by_default() -> None:
    stats = read_decisions(LINES)
    assert stats.total == 1 and stats.denied == 1 and stats.unauthenticated_lines == 3
    assert list(stats.by_requester) == ["alice"]
    assert stats.last_changed == {}  # alice's CREATE was denied: nobody changed the object
    assert stats.to_json()["unauthenticated_lines"] == 3


def test_a_forged_line_never_becomes_the_last_modifier() -> None:
    stats = read_decisions([line(user="alice", authenticated=True),
                            line(user="mallory", groups=["system:masters"], timestamp="2026-11-05T00:00:00Z")])
    assert stats.last_changed[("NetworkPolicy", "team-a", "web")][0] == "alice"


def test_include_unauthenticated_reads_every_line() -> None:
    stats = read_decisions(LINES, include_unauthenticated=True)
    assert stats.total == 4 and stats.unauthenticated_lines == 0
    assert set(stats.by_requester) == {"alice", "mallory", "old", "odd"}
