"""The only module that imports Flask: routes, decoding at the edge, request context, metrics.

Every admission call ends in exactly one decision log line and a well-formed answer: an
AdmissionReview for a readable request (even if evaluation blew up), a short JSON error with
a 4xx status for a broken call. No stack trace or object body ever reaches the client or log.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

import structlog
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from webhook import admission, config, logs
from webhook.admission import ReviewError
from webhook.decide import engine_failure, engine_failure_kind
from webhook.metrics import Metrics, create_metrics
from webhook.model import AdmissionRequest, Decision, Mode, Operation
from webhook.mutate import patch_for
from webhook.pipeline import Pipeline, build_pipeline, warm_up

log = logs.get_logger("netguard.server")


def create_app(settings: config.Settings | None = None, pipeline: Pipeline | None = None) -> Flask:
    """App factory (gunicorn calls `webhook.server:create_app()`): settings from env when not given."""
    if settings is None:
        settings = pipeline.settings if pipeline else config.load()
    logs.configure(settings.logging.level, settings.logging.format)
    pipeline = pipeline or build_pipeline(settings, isolate=True)  # regorus in processes: the budget holds
    if settings.cluster.enabled and pipeline.cluster is None:
        pipeline = _watch_cluster(pipeline, settings)
    metrics = create_metrics()
    app = Flask("netguard")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["netguard"] = pipeline

    @app.before_request
    def bind_request_context() -> None:
        """Every request, routed or not, logs with its own id and peer (contextvars are per request)."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=(request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16])[:64],
            peer=request.remote_addr, path=request.path[:100])

    @app.post("/validate")
    def validate() -> Response:
        return _admit(pipeline, metrics, mutate=False)

    @app.post("/mutate")
    def mutate() -> Response:
        return _admit(pipeline, metrics, mutate=True)

    @app.post("/v1/check")
    def check_endpoint() -> Response:
        return _check(pipeline)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        # The cluster view gates readiness only until its first complete list: a webhook that has never seen
        # the cluster would judge every request without context. Once synced, a lost watch does not make the
        # pod unready: every replica loses the same API server together, and an unready webhook with
        # failurePolicy Fail blocks every policy change in the cluster, while a stale view only makes the
        # cluster-dependent checks say "unknown" (see cluster_view.py).
        if pipeline.cluster is not None and not pipeline.cluster.synced:
            status = pipeline.cluster.status()
            log.warning("readiness.failed", error="cluster view not synced yet", watches_down=status["watches_down"])
            return jsonify(status="not ready", error="cluster view not synced yet", cluster=status), 503
        try:
            warm_up(pipeline)
        except Exception as exc:  # any failure means "do not send me traffic"
            log.warning("readiness.failed", error=str(exc).splitlines()[0])
            return jsonify(status="not ready", error=str(exc).splitlines()[0]), 503
        return jsonify(status="ready", engine=pipeline.engine.name, policy_revision=pipeline.revision,
                       guardrails=len(pipeline.policies.guardrails),
                       cluster=pipeline.cluster.status() if pipeline.cluster is not None else None), 200

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4; charset=utf-8")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        if request.path in ("/validate", "/mutate"):
            metrics.bad_requests.labels(status=str(status)).inc()
            log.warning("admission.bad_request", status=status, error=exc.name, path=request.path)
        response = jsonify(error=exc.name, status=status)
        if status == 413:
            # The unread body stays on the socket (gunicorn drains only 64 KiB): say we close.
            response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.error("server.unexpected_error", error_type=type(exc).__name__, path=request.path)
        return jsonify(error="internal error", status=500), 500

    return app


def _watch_cluster(pipeline: Pipeline, settings: config.Settings) -> Pipeline:
    """Start the cluster watch for this process. gunicorn calls the app factory in each worker after the fork
    (no preload_app), so every worker has its own view and threads: threads started before a fork would not
    exist in the child."""
    from webhook.cluster_view import ClusterView, Watcher

    view = ClusterView(settings.cluster.stale_after_seconds)
    Watcher(view, settings.cluster).start()
    return replace(pipeline, cluster=view)


def _admit(pipeline: Pipeline, metrics: Metrics, mutate: bool) -> Response:
    endpoint = "mutate" if mutate else "validate"
    started = time.perf_counter()
    read_at = time.monotonic()  # the request's one deadline runs from here (webhook/deadline.py)
    structlog.contextvars.bind_contextvars(endpoint=endpoint)
    settings = pipeline.settings
    try:
        raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
        review = admission.parse_review(
            admission.decode_json(raw, request.content_type, settings.server.max_json_depth))
    except ReviewError as exc:
        metrics.bad_requests.labels(status=str(exc.status)).inc()
        log.warning("admission.bad_request", status=exc.status, error=exc.message)
        return _json_error(exc.status, exc.message)

    decision = _safe_review(pipeline, metrics, review, read_at)
    revision = pipeline.revision
    if mutate:
        writes = review.operation is not Operation.DELETE and review.object is not None
        patch = patch_for(review.object or {}, decision, revision, review.user.username) if writes else []
        body = admission.build_response(admission.Response(uid=review.uid, allowed=True, patch=patch or None))
    else:
        body = admission.build_response(admission.response_for(review.uid, decision, revision))
    elapsed = time.perf_counter() - started
    _record(metrics, endpoint, review, decision, elapsed)
    log.info(
        "admission.decision",
        uid=review.uid, operation=review.operation.value, kind=review.kind.kind, namespace=review.namespace,
        name=review.name, user=review.user.username, groups=list(review.user.groups), dry_run=review.dry_run,
        verdict=decision.verdict.value, allowed=body["response"]["allowed"], rules=list(decision.rule_ids),
        modes={f"{f.finding.rule}@{f.finding.path}": f"{f.mode.value}({f.reason})" for f in decision.findings},
        reason=decision.reason or None, latency_ms=round(elapsed * 1000, 3), policy_revision=revision,
        engine=pipeline.engine.name, patched=bool(body["response"].get("patch")),
        exceptions_used=list(decision.exceptions_used) or None, notices=list(decision.notices) or None,
    )
    resp = Response(_dumps(body), mimetype="application/json")
    return resp


CHECK_MEDIA_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                     "text/plain")


def _check(pipeline: Pipeline) -> Response:
    """POST /v1/check: the same report as `netguard check --format json`; evaluates only, changes nothing."""
    from webhook.check import Requester, check_documents
    from webhook.check_formats import render_json
    from webhook.sources import read_text

    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in CHECK_MEDIA_TYPES:
        return _json_error(415, f"unsupported Content-Type; use one of {', '.join(CHECK_MEDIA_TYPES)}")
    raw = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _json_error(400, f"body is not UTF-8 (byte {exc.start})")
    namespace = request.args.get("namespace") or None
    requester = Requester(request.args.get("user") or "netguard-check",
                          tuple(request.args.getlist("group")) or ("system:authenticated",))
    documents, errors = read_text(text, "<request>")
    report = check_documents(pipeline, documents, errors, namespace=namespace, requester=requester)
    log.info("check.report", documents=len(documents), policies=len(report.results), errors=len(report.errors),
             enforce=report.count(Mode.ENFORCE), user=requester.username)
    return Response(render_json(report), mimetype="application/json")


def _safe_review(pipeline: Pipeline, metrics: Metrics, review: AdmissionRequest,
                 started: float | None = None) -> Decision:
    """A bug in evaluation still yields an answer, following the configured failure policy."""
    try:
        decision = pipeline.review(review, started=started)
    except Exception as exc:
        log.error("admission.evaluation_crashed", error_type=type(exc).__name__, error=str(exc)[:200])
        decision = engine_failure(f"internal error ({type(exc).__name__})", pipeline.settings.engine.on_error)
    kind = engine_failure_kind(decision)
    if kind is not None:
        metrics.engine_errors.labels(engine=pipeline.engine.name, reason=kind).inc()
    return decision


def _record(metrics: Metrics, endpoint: str, review: AdmissionRequest, decision: Decision, elapsed: float) -> None:
    metrics.requests.labels(endpoint=endpoint, kind=review.kind.kind, operation=review.operation.value,
                            verdict=decision.verdict.value).inc()
    metrics.latency.labels(endpoint=endpoint).observe(elapsed)
    if endpoint == "validate":
        for f in decision.findings:
            if f.mode is not Mode.OFF:
                metrics.violations.labels(rule=f.finding.rule, mode=f.mode.value).inc()


def _json_error(status: int, message: str) -> Response:
    return Response(_dumps({"error": message, "status": status}), status=status, mimetype="application/json")


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))
