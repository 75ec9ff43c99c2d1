"""The verdict cache: an identical request reuses the decision, anything the decision depends on is in the key,
engine failures are never kept, the LRU is bounded and counted, and the configuration turns it off."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from webhook.cluster.cluster_view import RESOURCES, ClusterView
from webhook.config import from_mapping
from webhook.core import exceptions
from webhook.core.admission import parse_review
from webhook.core.model import AdmissionRequest, Decision, Verdict
from webhook.core.reviews import make_review
from webhook.core.settings import ConfigError, Settings
from webhook.core.snapshot import ClusterSnapshot
from webhook.core.verdict_cache import EVICT, HIT, MISS, VerdictCache
from webhook.engine.engines import ERROR, TIMEOUT, EngineError
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2026, 6, 1)


class Counting:
    """The real engine, counting evaluations; `fail` makes the next ones raise."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self.calls = 0
        self.fail: EngineError | None = None
        self._lock = threading.Lock()

    def evaluate(self, document: Mapping[str, Any], deadline: float | None = None) -> Any:
        with self._lock:
            self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self.engine.evaluate(document, deadline)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"),
                                        "namespace_labels": {"team-a": {"tier": "app"}}}))


@pytest.fixture
def pipeline(base: Pipeline) -> Pipeline:
    """The module's pipeline with its own cache and a counting engine."""
    return replace(base, engine=Counting(base.engine), cache=VerdictCache(64))


def calls(p: Pipeline) -> int:
    assert isinstance(p.engine, Counting)
    return p.engine.calls


def netpol(name: str = "web", namespace: str = "team-a", egress: list[Any] | None = None,
           labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {"app": "web"}),
                            "annotations": dict(annotations or {})}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                     "egress": [{}] if egress is None else egress}}


def request(obj: Mapping[str, Any] | None = None, **kw: Any) -> AdmissionRequest:
    return parse_review(make_review(netpol() if obj is None else obj, **kw))


def review(p: Pipeline, req: AdmissionRequest | None = None, today: date = TODAY) -> Decision:
    return p.review(req or request(), today=today).decision


# -- hits --------------------------------------------------------------------------------------------------


def test_an_identical_request_with_another_uid_gets_the_same_decision_without_evaluating(pipeline: Pipeline) -> None:
    first = review(pipeline, request(uid="one"))
    assert calls(pipeline) == 1 and not first.cached
    second = review(pipeline, request(uid="two"))
    assert calls(pipeline) == 1, "a hit must not evaluate"
    assert second.cached and second == first  # `cached` is not part of equality
    assert second.verdict is Verdict.DENIED and second.findings == first.findings


def test_server_bookkeeping_in_metadata_does_not_change_the_key(pipeline: Pipeline) -> None:
    review(pipeline)
    stamped = netpol()
    stamped["metadata"].update(resourceVersion="42", generation=3, uid="abc", creationTimestamp="2026-01-01T00:00:00Z",
                               managedFields=[{"manager": "argocd", "operation": "Apply"}])
    assert review(pipeline, request(stamped)).cached


def test_when_a_rule_reads_the_raw_object_the_whole_object_is_keyed(pipeline: Pipeline) -> None:
    assert not pipeline.policies.reads_raw_object  # the catalog reads the normalized model only
    reading = replace(pipeline, policies=replace(pipeline.policies))
    reading.policies.__dict__["reads_raw_object"] = True  # the cached_property's slot
    review(reading)
    stamped = netpol()
    stamped["metadata"]["resourceVersion"] = "42"
    assert not review(reading, request(stamped)).cached
    assert review(reading, request(stamped)).cached


# -- misses: everything the decision depends on is in the key ----------------------------------------------


def _changed(field: str) -> Callable[[], AdmissionRequest]:
    def spec() -> AdmissionRequest:
        return request(netpol(egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]))

    def labels() -> AdmissionRequest:
        return request(netpol(labels={"app": "web", "netguard.io/baseline": "true"}))

    def annotations() -> AdmissionRequest:
        return request(netpol(annotations={"netguard.io/violations": "[]"}))

    def exception_token() -> AdmissionRequest:
        return request(netpol(annotations={exceptions.ANNOTATION: "not-a-valid-token"}))

    def name() -> AdmissionRequest:
        return request(netpol(name="other"))

    def namespace() -> AdmissionRequest:
        return request(netpol(namespace="team-b"))

    def user() -> AdmissionRequest:
        return request(username="bob")

    def groups() -> AdmissionRequest:
        return request(groups=("system:authenticated", "system:masters"))

    def operation() -> AdmissionRequest:
        return request(operation="UPDATE", old=netpol())

    def old_object() -> AdmissionRequest:
        return request(operation="UPDATE", old=netpol(egress=[]))

    def dry_run() -> AdmissionRequest:
        return request(dry_run=True)

    return locals()[field]  # type: ignore[no-any-return]


@pytest.mark.parametrize("field", ["spec", "labels", "annotations", "exception_token", "name", "namespace", "user",
                                   "groups", "operation", "old_object", "dry_run"])
def test_a_change_of_anything_the_decision_reads_is_a_miss(pipeline: Pipeline, field: str) -> None:
    if field == "old_object":
        review(pipeline, _changed("operation")())  # the UPDATE with the same old object is cached
        assert review(pipeline, _changed("operation")()).cached
    else:
        review(pipeline)
    before = calls(pipeline)
    changed = review(pipeline, _changed(field)())
    assert not changed.cached and calls(pipeline) > before
    assert review(pipeline, _changed(field)()).cached  # and is cached in its turn


def test_another_day_is_a_miss_because_exceptions_expire_by_date(pipeline: Pipeline) -> None:
    review(pipeline, today=date(2026, 6, 1))
    assert not review(pipeline, today=date(2026, 6, 2)).cached
    assert review(pipeline, today=date(2026, 6, 2)).cached


def test_another_configuration_is_a_miss(pipeline: Pipeline) -> None:
    review(pipeline)
    dry = replace(pipeline, settings=replace(pipeline.settings, dry_run=True))  # shares the cache
    decision = review(dry)
    assert not decision.cached and decision.verdict is Verdict.WARNED
    assert review(dry).cached and review(pipeline).cached


def test_another_policy_revision_is_a_miss_and_empties_the_cache(pipeline: Pipeline) -> None:
    review(pipeline)
    assert pipeline.cache is not None and len(pipeline.cache) == 1
    revised = replace(pipeline, policies=replace(pipeline.policies, revision="0123456789ab"))
    assert not review(revised).cached
    assert len(pipeline.cache) == 1  # only the new revision's entry is left
    assert not review(pipeline).cached  # back to the first revision: evaluated again


def test_another_engine_empties_the_cache(pipeline: Pipeline, base: Pipeline) -> None:
    review(pipeline)
    other = replace(pipeline, engine=Counting(base.engine))
    assert not review(other).cached


# -- the cluster view --------------------------------------------------------------------------------------


def synced_view(**labels: str) -> ClusterView:
    view = ClusterView(60)
    view.replace("namespaces", [{"metadata": {"name": "team-a", "labels": labels}}])
    for resource in RESOURCES[1:]:
        view.replace(resource, [])
    return view


def test_every_change_of_the_cluster_view_is_a_miss(pipeline: Pipeline) -> None:
    view = synced_view(tier="app")
    watched = replace(pipeline, cluster=view)
    review(watched)
    assert review(watched).cached
    generation = view.generation
    view.mark_live("namespaces")  # liveness alone changes nothing
    assert view.generation == generation and review(watched).cached
    view.apply("namespaces", "MODIFIED", {"metadata": {"name": "team-a", "labels": {"tier": "legacy"}}})
    assert view.generation > generation and view.snapshot().generation == view.generation
    assert not review(watched).cached
    view.apply("networkpolicies.networking.k8s.io", "ADDED", netpol(name="deny", egress=[]))
    assert not review(watched).cached


def test_generations_are_unique_across_views() -> None:
    assert synced_view().generation != synced_view().generation


def test_an_enabled_view_that_cannot_be_trusted_is_never_cached(pipeline: Pipeline) -> None:
    view = ClusterView(60)  # not synced
    unsynced = replace(pipeline, cluster=view)
    assert not review(unsynced).cached and not review(unsynced).cached
    now = [0.0]
    view = ClusterView(60, clock=lambda: now[0])
    for resource in RESOURCES:
        view.replace(resource, [])
    down = replace(pipeline, cluster=view)
    view.mark_down("namespaces", "connection refused")
    now[0] = 5.0  # a watch down, not stale yet: age_seconds changes with every request
    assert not review(down).cached and not review(down).cached
    assert calls(pipeline) == 4


def test_an_explicit_snapshot_is_not_cached(pipeline: Pipeline) -> None:
    snapshot = ClusterSnapshot.from_objects({"team-a": {}}, [])
    req = request()
    assert not pipeline.review(req, today=TODAY, snapshot=snapshot).decision.cached
    assert not pipeline.review(req, today=TODAY, snapshot=snapshot).decision.cached


# -- never cached --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [TIMEOUT, ERROR])
@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_engine_failures_are_never_cached(pipeline: Pipeline, reason: str, on_error: str) -> None:
    settings = replace(pipeline.settings, engine=replace(pipeline.settings.engine, on_error=on_error))
    p = replace(pipeline, settings=settings)
    assert isinstance(p.engine, Counting)
    p.engine.fail = EngineError("evaluation failed", reason)
    assert review(p).reason.startswith(f"engine {reason}")
    assert review(p).reason.startswith(f"engine {reason}") and calls(p) == 2
    p.engine.fail = None
    recovered = review(p)
    assert not recovered.cached and recovered.verdict is Verdict.DENIED and calls(p) == 3
    assert review(p).cached


def test_a_deadline_passed_is_not_cached(pipeline: Pipeline) -> None:
    expired = pipeline.review(request(), today=TODAY, started=0.0).decision  # the budget ran out long ago
    assert expired.reason.startswith("engine timeout")
    assert not review(pipeline).cached


def test_objects_over_a_limit_are_never_stored_and_skipped_requests_do_not_touch_the_cache(
        pipeline: Pipeline) -> None:
    """The cache is asked before the limits are counted (a hit is content that passed them), so an oversized
    object is a miss each time, and is denied each time: its denial is never stored."""
    assert pipeline.cache is not None
    huge = netpol(egress=[{}] * (pipeline.settings.limits.max_rules + 1))
    for _ in range(2):
        decision = review(pipeline, request(huge))
        assert decision.reason.startswith("over a limit") and not decision.cached
    skipped = request(namespace="kube-system", obj=netpol(namespace="kube-system"))
    assert review(pipeline, skipped).verdict is Verdict.SKIPPED
    assert len(pipeline.cache) == 0 and pipeline.cache.misses == 2 and pipeline.cache.hits == 0


# -- the LRU, its metrics, the configuration ----------------------------------------------------------------


def test_the_least_recently_used_entry_is_evicted_at_max_entries_and_counted(pipeline: Pipeline) -> None:
    events: list[str] = []
    cache = VerdictCache(2, observer=events.append)
    p = replace(pipeline, cache=cache)
    a, b, c = (request(netpol(name=n)) for n in "abc")
    review(p, a)
    review(p, b)
    assert review(p, a).cached  # a is now the most recently used
    review(p, c)  # evicts b
    assert len(cache) == 2 and cache.evictions == 1
    assert review(p, a).cached and review(p, c).cached
    assert not review(p, b).cached  # evicts a
    assert events == [MISS, MISS, HIT, MISS, EVICT, HIT, HIT, MISS, EVICT]
    assert (cache.hits, cache.misses, cache.evictions) == (3, 4, 2)


def test_the_eviction_and_hit_metrics_are_exported(base: Pipeline) -> None:
    from webhook.serve.server import create_app

    p = replace(base, cache=VerdictCache(1))
    client = create_app(p.settings, p).test_client()
    for name in ("a", "a", "b"):
        reply = client.post("/validate", json=make_review(netpol(name=name)))
        assert reply.status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    for result, count in (("hit", 1.0), ("miss", 2.0), ("evict", 1.0)):
        assert f'netguard_verdict_cache_total{{result="{result}"}} {count}' in metrics


def test_disabled_by_configuration() -> None:
    settings = from_mapping({"policies_dir": str(REPO / "policies"), "cache": {"enabled": False}})
    p = build_pipeline(settings)
    assert p.cache is None
    assert not review(p).cached and not review(p).cached


def test_the_cache_section_defaults_and_is_validated() -> None:
    assert Settings().cache.enabled and Settings().cache.max_entries == 4096
    assert from_mapping({"cache": {"max_entries": 10}}).cache.max_entries == 10
    with pytest.raises(ConfigError, match=r"cache\.max_entries"):
        from_mapping({"cache": {"max_entries": 0}})
    with pytest.raises(ConfigError, match="cache: Additional properties are not allowed"):
        from_mapping({"cache": {"size": 10}})


def test_a_hit_returns_a_decision_the_caller_cannot_corrupt(pipeline: Pipeline) -> None:
    obj = netpol()
    first = review(pipeline, request(copy.deepcopy(obj)))
    obj["spec"]["egress"] = []  # the caller's object changing later does not touch the entry
    assert review(pipeline, request(netpol())) == first


def test_an_integer_past_64_bits_keys_through_the_fallback_and_still_tells_objects_apart(pipeline: Pipeline) -> None:
    """orjson refuses integers past 64 bits, which a request may carry in a field netguard does not read; the
    key falls back to the standard library instead of failing, and the value still counts in it."""
    def with_extra(value: int) -> AdmissionRequest:
        obj = netpol()
        obj["spec"]["x-extra"] = value
        return request(obj)

    big = 2**70
    first = review(pipeline, with_extra(big))
    assert not first.cached and review(pipeline, with_extra(big)).cached
    assert not review(pipeline, with_extra(big + 1)).cached
