"""Prometheus metrics, one registry per app (a fresh app in a test starts from zero).

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR is set by the gunicorn config
before the workers start, and /metrics aggregates every worker's files.

Every label value comes from a finite set netguard defines, never from the request as sent:
`kind` is the name netguard gives a guarded kind (`NetworkPolicy.projectcalico.org` for Calico's, which would
otherwise count as Kubernetes') or `other` (`kind_label`), `operation` and `verdict` are enums,
`rule` a guardrail id of the loaded catalog (or a pseudo-rule), `status` an HTTP status netguard
answers with. docs/operations.md lists each metric's label values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from webhook import kinds

CUT_PHASES = ("handshake", "head", "body", "idle_evicted")  # webhook/serve/worker.py
CACHE_RESULTS = ("hit", "miss", "evict")  # webhook/core/verdict_cache.py
CATALOG_FALLBACKS = ("last_good", "none")  # a worker's catalog load failed: it serves the last good one, or stops


def kind_label(group: str, kind: str) -> str:
    """A request's kind as a label: the registered kind of that group and kind by its netguard name, or `other`
    (a finite set). The group decides: Calico's NetworkPolicy is not Kubernetes'."""
    known = kinds.lookup(group, kind)
    return known.name if known is not None else "other"


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    violations: Counter
    engine_errors: Counter
    bad_requests: Counter
    shed: Counter
    connections_cut: Counter
    verdict_cache: Counter
    catalog_load_errors: Counter
    catalog_last_good: Gauge

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


def create_metrics() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        requests=Counter("netguard_admission_requests_total", "Admission requests answered",
                         ["endpoint", "kind", "operation", "verdict"], registry=registry),
        latency=Histogram("netguard_admission_duration_seconds", "Time to answer an admission request",
                          ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry),
        violations=Counter("netguard_violations_total", "Guardrail findings by rule and applied mode",
                           ["rule", "mode"], registry=registry),
        engine_errors=Counter("netguard_engine_errors_total",
                              "Admission requests answered by engine.on_error: reason timeout (over the budget), "
                              "unreachable (OPA) or error", ["engine", "reason"], registry=registry),
        bad_requests=Counter("netguard_bad_requests_total", "Webhook calls rejected before evaluation",
                             ["status"], registry=registry),
        shed=Counter("netguard_shed_total", "Admission requests answered with engine.on_error without evaluation "
                     "because they waited too long for a worker thread (overloaded)", ["endpoint"],
                     registry=registry),
        connections_cut=Counter("netguard_connections_cut_total",
                                "Connections closed by a time limit (phase handshake, head, body) or as the oldest "
                                "idle one under pressure (idle_evicted)", ["phase"], registry=registry),
        verdict_cache=Counter("netguard_verdict_cache_total",
                              "Verdict cache lookups (hit, miss) and entries evicted as least recently used (evict)",
                              ["result"], registry=registry),
        catalog_load_errors=Counter("netguard_catalog_load_errors_total",
                                    "Worker starts whose catalog (policies_dir) did not load or compile: fallback "
                                    "last_good (served the last good catalog) or none (there was none; the worker "
                                    "stopped)", ["fallback"], registry=registry),
        # 1 for the revision a live worker serves as the last good catalog because policies_dir is broken; no
        # series while every worker serves policies_dir (a dead worker's value goes with it: livemax).
        catalog_last_good=Gauge("netguard_catalog_last_good_revision",
                                "Workers serving the last good catalog of this revision instead of a broken "
                                "policies_dir", ["revision"], registry=registry, multiprocess_mode="livemax"),
    )
