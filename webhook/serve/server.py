"""The only module that imports Flask: routes, decoding at the edge, request context, metrics.

Every admission call ends in exactly one decision log line and a well-formed answer: an
AdmissionReview for a readable request (even if evaluation blew up), a short JSON error with
a 4xx status for a broken call. No stack trace or object body ever reaches the client or log.

Size: just over 400 lines: every route of the admission and check listeners with its decoding and error
handling, the one module that imports Flask.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from webhook import config, logs
from webhook.core import admission, attribution
from webhook.core.admission import ReviewError
from webhook.core.decide import ENGINE_FAILURE_KINDS, engine_failure
from webhook.core.model import AdmissionRequest, Decision, Mode, Operation, UserInfo
from webhook.core.mutate import patch_for
from webhook.core.settings import CheckSettings, ConfigError, ServerSettings, Settings
from webhook.engine.engines import EngineError
from webhook.engine.policies import LAST_GOOD_ENV, PolicyLoadError, error_summary, last_good_root, save_last_good
from webhook.pipeline import Pipeline, build_pipeline, warm_up
from webhook.serve.metrics import CACHE_RESULTS, Metrics, create_metrics, kind_label

log = logs.get_logger("netguard.server")

# Set by webhook/serve/worker.py in each request's environ: which listener it came in on, and how long the
# complete request waited for a thread. Without them (another server, Flask's test client) a request
# counts as an admission-listener request that did not wait.
LISTENER, QUEUE_WAIT = "netguard.listener", "netguard.queue_wait"
# Set by webhook/serve/worker.py when server.client_ca is set: the connection's client certificate verified against it,
# and its subject CN. Without them (no client_ca, another server, Flask's test client) a caller is unauthenticated.
AUTHENTICATED, CLIENT_CN = "netguard.authenticated", "netguard.client_cn"
ADMISSION_PATHS = ("/validate", "/mutate")
ADMISSION_LISTENER, CHECK_LISTENER = "admission", "check"
CHECK_LISTENER_PATHS = ("/v1/check", "/healthz")
OVERLOADED = "netguard is overloaded"
_TIMEOUT_PARAM = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> Flask:
    """App factory (gunicorn calls `webhook.serve.server:create_app()`): settings from env when not given."""
    if settings is None:
        settings = pipeline.settings if pipeline else config.load()
    logs.configure(settings.logging.level, settings.logging.format)
    catalog: CatalogFallback | None = None
    if pipeline is None:  # regorus in processes: the budget holds
        pipeline, catalog = _build_with_last_good(settings)
    if settings.cluster.enabled and pipeline.cluster is None:
        pipeline = _watch_cluster(pipeline, settings)
    metrics = create_metrics()
    if catalog is not None:  # counted once per worker start on the last good catalog
        metrics.catalog_load_errors.labels(fallback="last_good").inc()
        metrics.catalog_last_good.labels(revision=catalog.revision).set(1)
    if pipeline.cache is not None:  # this app's metrics count the cache (the last app made, with a shared pipeline)
        for result in CACHE_RESULTS:
            metrics.verdict_cache.labels(result=result)  # every series present from the start
        pipeline.cache.observer = lambda result: metrics.verdict_cache.labels(result=result).inc()
    app = Flask("netguard")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["netguard"] = pipeline
    app.extensions["netguard.metrics"] = metrics  # the worker counts connections it cuts
    checker = _CheckEngine(pipeline)
    app.extensions["netguard.check"] = checker

    @app.before_request
    def bind_request_context() -> None:
        """Every request, routed or not, logs with its own id and peer (contextvars are per request)."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            # 64 random bits, as uuid4().hex[:16] gave, at a fraction of its cost
            request_id=(request.headers.get("X-Request-Id") or os.urandom(8).hex())[:64],
            peer=request.remote_addr, path=request.path[:100])

    @app.before_request
    def route_by_listener() -> Response | None:
        """/v1/check only on the check listener (its own threads and limits); admission never there."""
        listener = request.environ.get(LISTENER, ADMISSION_LISTENER)
        if listener == CHECK_LISTENER and request.path not in CHECK_LISTENER_PATHS:
            return _json_error(404, "not found: this is the /v1/check listener (server.check_bind); admission "
                                    "and metrics are served on server.bind")
        if listener != CHECK_LISTENER and request.path == "/v1/check":
            where = settings.server.check_bind or "off: server.check_bind is empty"
            return _json_error(404, f"POST /v1/check moved to its own listener, server.check_bind ({where}; "
                                    "port 8444 by default); this port serves admission only")
        return None

    @app.before_request
    def require_client_certificate() -> Response | None:
        """With server.client_ca, admission calls only from a caller whose certificate verified (the API server);
        the TLS handshake accepts callers without one, since the kubelet's probes (/healthz, /readyz) and metrics
        scrapes on this port present none."""
        if not settings.server.client_ca or request.path not in ADMISSION_PATHS or _authenticated():
            return None
        metrics.bad_requests.labels(status="401").inc()
        log.warning("admission.unauthenticated", status=401, path=request.path)
        return _json_error(401, "a client certificate signed by server.client_ca is required for admission calls")

    @app.post("/validate")
    def validate() -> Response:
        return _admit(pipeline, metrics, mutate=False)

    @app.post("/mutate")
    def mutate() -> Response:
        return _admit(pipeline, metrics, mutate=True)

    @app.post("/v1/check")
    def check_endpoint() -> Response:
        return _check(checker.pipeline(), settings.server.check)

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
        # Readiness follows engine.on_error: with `allow`, an engine that does not answer (OPA down, every
        # evaluator busy or failing) is answered by allowing every request with a warning, which is what the
        # operator chose; a 503 would take every replica out of the Service together and leave the API server's
        # failurePolicy (Fail) to refuse every change instead. With `deny` the pod is not ready, as before.
        # A worker serving the last good catalog stays ready and says so (`warnings`, `catalog_error`).
        warnings = [catalog.notice] if catalog is not None else []
        details = {"catalog_error": catalog.error} if catalog is not None else {}
        try:
            warm_up(pipeline)
        except Exception as exc:  # any failure means "do not send me traffic", unless failing open is configured
            failed = _engine_error(exc)
            error = str(failed or exc).splitlines()[0] if str(failed or exc) else type(exc).__name__
            if failed is None or pipeline.settings.engine.on_error != "allow":
                log.warning("readiness.failed", error=error)
                return jsonify(status="not ready", error=error, warnings=warnings, **details), 503
            log.warning("readiness.failing_open", error=error, reason=failed.reason)
            warnings.append(f"engine {failed.reason}; failing open (engine.on_error: allow)")
            details["engine_error"] = error
        return jsonify(status="ready", engine=pipeline.engine.name, policy_revision=pipeline.revision,
                       guardrails=len(pipeline.policies.guardrails),
                       cluster=pipeline.cluster.status() if pipeline.cluster is not None else None,
                       warnings=warnings, **details), 200

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


def _engine_error(exc: BaseException) -> EngineError | None:
    """The engine failure behind a failed readiness evaluation: warm_up raises PolicyLoadError while handling
    the EngineError (its `from None` hides it from tracebacks, not from __context__)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None or isinstance(seen, EngineError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class CatalogFallback:
    """This worker serves the last good catalog because policies_dir did not load or compile when it started."""

    revision: str
    error: str  # <file>:<line>: <error>

    @property
    def notice(self) -> str:
        return f"serving last good catalog {self.revision}; {self.error}"


def _build_with_last_good(settings: Settings) -> tuple[Pipeline, CatalogFallback | None]:
    """This worker's pipeline from policies_dir, saved as the last good catalog; or, when policies_dir does not
    load or compile, from the last good catalog a worker saved before (webhook/engine/policies.py, LAST_GOOD_ENV), with
    the error logged and counted. Without one (the first start, or outside gunicorn) the error stops the worker
    as before: `netguard serve` compiled the catalog before starting gunicorn, so that is a change since."""
    store = os.environ.get(LAST_GOOD_ENV, "")
    try:
        pipeline = build_pipeline(settings, isolate=True)
    except (PolicyLoadError, ConfigError) as exc:
        error = error_summary(str(exc))
        root = last_good_root(store) if store else None
        fallback: Pipeline | None = None
        if root is not None:
            try:
                fallback = build_pipeline(replace(settings, policies_dir=str(root)), isolate=True)
            except (PolicyLoadError, ConfigError) as again:
                log.error("catalog.last_good_failed", error=error_summary(str(again)), last_good=str(root))
        if fallback is None:
            log.error("catalog.load_failed", error=error, policies_dir=settings.policies_dir, serving_revision=None)
            create_metrics().catalog_load_errors.labels(fallback="none").inc()
            raise
        log.error("catalog.load_failed", error=error, policies_dir=settings.policies_dir,
                  serving_revision=fallback.revision, last_good=str(root))
        return fallback, CatalogFallback(fallback.revision, error)
    if store and not save_last_good(pipeline.policies, store):
        log.warning("catalog.last_good_not_saved", revision=pipeline.revision, store=store,
                    reason="the catalog changed on disk while it was loaded, or the store is not writable")
    return pipeline, None


def _watch_cluster(pipeline: Pipeline, settings: Settings) -> Pipeline:
    """Start the cluster watch for this process. gunicorn calls the app factory in each worker after the fork
    (no preload_app), so every worker has its own view and threads: threads started before a fork would not
    exist in the child."""
    from webhook.cluster.cluster_view import ClusterView, Watcher

    view = ClusterView(settings.cluster.stale_after_seconds)
    Watcher(view, settings.cluster).start()
    return replace(pipeline, cluster=view)


def _admit(pipeline: Pipeline, metrics: Metrics, mutate: bool) -> Response:
    endpoint = "mutate" if mutate else "validate"
    started = time.perf_counter()
    # The request's one deadline (webhook/core/deadline.py) runs from when its head was complete: the time it
    # waited for a thread (worker.py) counts against it.
    read_at = time.monotonic() - float(request.environ.get(QUEUE_WAIT) or 0.0)
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

    waited = _overloaded(settings.server)
    if waited is not None:
        metrics.shed.labels(endpoint=endpoint).inc()
        decision = engine_failure(f"{OVERLOADED} (the request waited {waited:.1f} s for a worker thread); "
                                  "retry", settings.engine.on_error, kind="overloaded")
    else:
        decision = _safe_review(pipeline, metrics, review, read_at)
    if not mutate:
        decision = attribution.enforce(review, decision)
    revision = pipeline.revision
    if mutate:
        writes = review.operation is not Operation.DELETE and review.object is not None and waited is None
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
        cached=decision.cached, authenticated=_authenticated(),
        client_cn=request.environ.get(CLIENT_CN) if _authenticated() else None,
    )
    resp = Response(_dumps(body), mimetype="application/json")
    return resp


def _authenticated() -> bool:
    """The caller presented a client certificate that verified against server.client_ca (webhook/serve/worker.py)."""
    return request.environ.get(AUTHENTICATED) is True


def _overloaded(server: ServerSettings) -> float | None:
    """The time this request waited for a thread, when that is past its share of the call's deadline.

    The deadline is the API server's `?timeout=` (it adds the webhook's timeoutSeconds to every
    call), else server.request_deadline_seconds. A request that waited that long could not be
    evaluated in what is left, and answering it at once frees the thread for the next one.
    """
    waited = float(request.environ.get(QUEUE_WAIT) or 0.0)
    if waited <= 0:
        return None
    deadline = server.request_deadline_seconds
    match = _TIMEOUT_PARAM.match(request.args.get("timeout", ""))
    if match:
        value = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]
        deadline = min(max(value, 0.1), 60.0)
    return waited if waited > server.shed_queue_fraction * deadline else None


class _CheckEngine:
    """The pipeline of POST /v1/check: admission's, with its own regorus evaluator processes (made on first use),
    so a long check never holds the evaluators admission waits for. OPA is shared (it is its own server)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._admission = pipeline
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()

    def pipeline(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                settings = self._admission.settings
                if self._admission.engine.name == "regorus":
                    from webhook.engine.engines import RegorusEngine

                    engine = RegorusEngine(self._admission.policies, evaluators=settings.server.check.evaluators,
                                           default_timeout=settings.engine.budget_seconds)
                    # Its own verdict cache too: a large check cannot evict admission's entries.
                    cache = self._admission.cache.sibling() if self._admission.cache is not None else None
                    self._pipeline = replace(self._admission, engine=engine, cache=cache)
                else:
                    self._pipeline = self._admission
            return self._pipeline

    def close(self) -> None:
        with self._lock:
            if self._pipeline is not None and self._pipeline is not self._admission:
                self._pipeline.engine.close()
            self._pipeline = None


CHECK_MEDIA_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                     "text/plain")


def _check(pipeline: Pipeline, limits: CheckSettings) -> Response:
    """POST /v1/check: the same report as `netguard check --format json`; evaluates only, changes nothing.

    Within server.check limits: body bytes, documents, total time (checked between documents, so at
    most one evaluation budget over) and answer size; past one, a 413 or 503 naming the limit.
    """
    from webhook.offline.check import DEFAULT_GROUPS, DEFAULT_USER, check_documents
    from webhook.offline.sources import read_text
    from webhook.reports.json import render_json

    started = time.monotonic()
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in CHECK_MEDIA_TYPES:
        return _json_error(415, f"unsupported Content-Type; use one of {', '.join(CHECK_MEDIA_TYPES)}")
    too_large = f"body larger than server.check.max_body_bytes ({limits.max_body_bytes} bytes); send fewer documents"
    if (request.content_length or 0) > limits.max_body_bytes:
        return _closing(_json_error(413, too_large))
    raw = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    if len(raw) > limits.max_body_bytes:  # a chunked body
        return _closing(_json_error(413, too_large))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _json_error(400, f"body is not UTF-8 (byte {exc.start})")
    namespace = request.args.get("namespace") or None
    requester = UserInfo(request.args.get("user") or DEFAULT_USER,
                         groups=tuple(request.args.getlist("group")) or DEFAULT_GROUPS)
    documents, errors = read_text(text, "<request>")
    if len(documents) > limits.max_documents:
        return _json_error(413, f"{len(documents)} documents, more than server.check.max_documents "
                                f"({limits.max_documents}); split them over several calls")
    report = check_documents(pipeline, [], errors, namespace=namespace, requester=requester)
    results, problems, skipped = list(report.results), list(report.errors), report.skipped
    for index, document in enumerate(documents):
        if time.monotonic() - started > limits.timeout_seconds:
            log.warning("check.time_limit", documents=len(documents), checked=index, user=requester.username)
            return _json_error(503, f"the check took longer than server.check.timeout_seconds "
                                    f"({limits.timeout_seconds} s) after {index} of {len(documents)} documents; "
                                    "send fewer documents per call")
        part = check_documents(pipeline, [document], namespace=namespace, requester=requester)
        results.extend(part.results)
        problems.extend(part.errors)
        skipped += part.skipped
    report = replace(report, results=tuple(results), errors=tuple(problems), skipped=skipped)
    body = render_json(report).encode()
    log.info("check.report", documents=len(documents), policies=len(report.results), errors=len(report.errors),
             enforce=report.count(Mode.ENFORCE), user=requester.username, bytes=len(body))
    if len(body) > limits.max_response_bytes:
        return _json_error(413, f"the report would be {len(body)} bytes, more than server.check.max_response_bytes "
                                f"({limits.max_response_bytes}); send fewer documents per call")
    return Response(body, mimetype="application/json")


def _closing(response: Response) -> Response:
    """The unread body stays on the socket: say we close."""
    response.headers["Connection"] = "close"
    return response


def _safe_review(pipeline: Pipeline, metrics: Metrics, review: AdmissionRequest,
                 started: float | None = None) -> Decision:
    """A bug in evaluation still yields an answer, following the configured failure policy."""
    try:
        decision = pipeline.review(review, started=started).decision
    except Exception as exc:
        log.error("admission.evaluation_crashed", error_type=type(exc).__name__, error=str(exc)[:200])
        decision = engine_failure(f"internal error ({type(exc).__name__})", pipeline.settings.engine.on_error)
    failure = decision.failure
    if failure is not None and failure.kind in ENGINE_FAILURE_KINDS:  # overloaded is counted as shed, where decided
        metrics.engine_errors.labels(engine=pipeline.engine.name, reason=failure.kind).inc()
    return decision


def _record(metrics: Metrics, endpoint: str, review: AdmissionRequest, decision: Decision, elapsed: float) -> None:
    metrics.requests.labels(endpoint=endpoint, kind=kind_label(review.kind.group, review.kind.kind),
                            operation=review.operation.value, verdict=decision.verdict.value).inc()
    metrics.latency.labels(endpoint=endpoint).observe(elapsed)
    if endpoint == "validate":
        for f in decision.findings:
            if f.mode is not Mode.OFF:
                metrics.violations.labels(rule=f.finding.rule, mode=f.mode.value).inc()


def _json_error(status: int, message: str) -> Response:
    return Response(_dumps({"error": message, "status": status}), status=status, mimetype="application/json")


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))
