"""The verdict cache over the real server (gunicorn, two workers, TLS): identical requests with other uids get
the same answer, the decision log says `cached: true` on a hit, the metrics count it, and what stays per
request (uid, warnings, the patch) is still per request."""

from __future__ import annotations

import uuid
from typing import Any

from webhook.core.reviews import make_review

from .conftest import Server, metric

WORKERS = 2  # the session server's; the cache is per worker process


def violating(name: str) -> dict[str, Any]:
    """Allows all egress: denied by no-allow-all-egress with a finding (so mutate has a patch to write)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}


def decision_lines(server: Server, uids: list[str]) -> dict[str, dict[str, Any]]:
    """The decision line of each uid (the workers write as they answer: wait for all of them)."""
    wanted = set(uids)
    server.wait_for_log(lambda _: len({line.get("uid") for line in server.log_lines()} & wanted) == len(wanted))
    by_uid = {line["uid"]: line for line in server.log_lines()
              if line.get("event") == "admission.decision" and line.get("uid") in wanted}
    assert set(by_uid) == wanted
    return by_uid


def cache_metric(server: Server, result: str) -> float:
    return metric(server, "netguard_verdict_cache_total", result=result)


def test_identical_requests_are_answered_from_the_cache_with_their_own_uid(server: Server) -> None:
    obj = violating(f"cached-{uuid.uuid4().hex[:8]}")  # content no other test sends
    hits_before = cache_metric(server, "hit")
    uids = [str(uuid.uuid4()) for _ in range(2 * WORKERS + 1)]  # some worker sees it at least twice
    answers = [server.review("/validate", make_review(obj, uid=uid))["response"] for uid in uids]
    for uid, answer in zip(uids, answers, strict=True):
        assert answer["uid"] == uid
        assert answer["allowed"] is False
        assert {k: v for k, v in answer.items() if k != "uid"} == {k: v for k, v in answers[0].items() if k != "uid"}
    lines = decision_lines(server, uids)
    assert lines[uids[0]]["cached"] is False  # the first one is evaluated
    cached = [uid for uid in uids if lines[uid]["cached"] is True]
    assert len(cached) >= len(uids) - WORKERS  # all but each worker's first
    for uid in cached:
        line, first = lines[uid], lines[uids[0]]
        assert (line["verdict"], line["rules"], line["modes"]) == (first["verdict"], first["rules"], first["modes"])
    assert cache_metric(server, "hit") >= hits_before + len(cached)
    assert cache_metric(server, "miss") >= 1


def test_mutate_computes_its_patch_per_request_on_a_hit(server: Server) -> None:
    obj = violating(f"cached-mutate-{uuid.uuid4().hex[:8]}")
    uids = [str(uuid.uuid4()) for _ in range(2 * WORKERS + 1)]
    answers = [server.review("/mutate", make_review(obj, uid=uid))["response"] for uid in uids]
    assert all(a["allowed"] is True and a["patch"] == answers[0]["patch"] for a in answers)
    assert all(a["uid"] == uid for a, uid in zip(answers, uids, strict=True))
    lines = decision_lines(server, uids)
    assert any(lines[uid]["cached"] for uid in uids) and all(lines[uid]["patched"] for uid in uids)


def test_a_dry_run_request_is_its_own_entry(server: Server) -> None:
    obj = violating(f"cached-dry-{uuid.uuid4().hex[:8]}")
    plain = [str(uuid.uuid4()) for _ in range(2 * WORKERS + 1)]
    for uid in plain:  # the plain request is cached (in one worker or both)
        server.review("/validate", make_review(obj, uid=uid))
    dry = str(uuid.uuid4())
    server.review("/validate", make_review(obj, uid=dry, dry_run=True))
    assert decision_lines(server, [dry])[dry]["cached"] is False
