"""A stand-in OPA server for the tests: OPA's REST API evaluated by the embedded regorus engine.

No OPA binary can be installed or run on this machine, so this is NOT OPA. It implements the
part of OPA's REST API that netguard's OpaEngine (opa-python-client) uses, with OPA's
request and response shapes, and evaluates with regorus:

  PUT    /v1/policies/<id>   body = Rego text; 200 `{}`, or 400 with OPA's error JSON
                             `{"code": "invalid_parameter", "message": ..., "errors": [...]}`
  GET    /v1/policies        `{"result": [{"id", "raw", "ast": {"package": ...}}, ...]}`
  GET    /v1/policies/<id>   `{"result": {...}}` or 404
  DELETE /v1/policies/<id>   200 `{}` or 404
  POST   /v1/data/<path>     `{"input": ...}` -> `{"result": <value>}`; "result" omitted when undefined
  GET    /health             200 `{}`

So it tests netguard's OPA client path (HTTP, JSON, module ids, error handling) and the
portability of the Rego across a second evaluator run the OPA way, not OPA's own semantics.
Compile checks cover what regorus reports when a module is added (syntax errors); OPA also
rejects unknown functions at compile time, which regorus only reports at evaluation (500).

regorus' Engine is pyo3-unsendable (usable only on the thread that created it) and the server
is threaded, so every request builds its own engine from the stored module texts (about a
millisecond for the netguard catalog).

Fault injection for failure-mode tests, both applied to /v1/data only and changeable while
running: `delay_seconds` sleeps before answering (cut short by stop()), `fail_status` answers
that HTTP status with an OPA-shaped error body instead of evaluating.
"""

from __future__ import annotations

import json
import re
import threading
from types import TracebackType
from typing import Any

import regorus
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

_UNDEFINED = '"<undefined>"'
_LOCATION_RE = re.compile(r"-->\s*(?P<file>.+?):(?P<row>\d+):(?P<col>\d+)")
_ERROR_RE = re.compile(r"^error:\s*(?P<message>.+)$", re.MULTILINE)
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)\s*$", re.MULTILINE)
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _clean(exc: BaseException) -> str:
    return str(exc).split("Stack backtrace:", 1)[0].strip()


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _opa_error(code: str, message: str, status: int, errors: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return _json(body, status)


def _parse_error_detail(policy_id: str, exc: BaseException) -> dict[str, Any]:
    """regorus' `--> file:row:col ... error: msg` as one entry of OPA's `errors` list."""
    text = _clean(exc)
    message = _ERROR_RE.search(text)
    detail: dict[str, Any] = {"code": "rego_parse_error", "message": message.group("message") if message else text}
    location = _LOCATION_RE.search(text)
    if location:
        detail["location"] = {"file": policy_id, "row": int(location.group("row")),
                              "col": int(location.group("col"))}
    return detail


def _package_ast(text: str) -> dict[str, Any]:
    """Just enough AST for opa-python-client's get_policies_info: the package path terms."""
    match = _PACKAGE_RE.search(text)
    parts = match.group(1).split(".") if match else []
    terms = [{"type": "var", "value": "data"}] + [{"type": "string", "value": p} for p in parts]
    return {"package": {"path": terms}}


class _QuietHandler(WSGIRequestHandler):
    """No access log lines in the test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class OpaStandIn:
    """Serve the stand-in on 127.0.0.1:<free port> from a background thread until stop().

    Usable as a context manager or from a pytest fixture (`yield standin; standin.stop()`).
    """

    def __init__(self, *, delay_seconds: float = 0.0, fail_status: int | None = None) -> None:
        self.delay_seconds = delay_seconds
        self.fail_status = fail_status
        self._modules: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order, for assertions
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval so stop() (shutdown waits for the next poll) takes milliseconds.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="opa-standin", daemon=True)
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent); later connections are refused."""
        if self._stopping.is_set():
            return
        self._stopping.set()  # wakes requests sleeping in delay_seconds
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpaStandIn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def modules(self) -> dict[str, str]:
        with self._lock:
            return dict(self._modules)

    # -- evaluation ------------------------------------------------------------------------

    @staticmethod
    def _engine(modules: dict[str, str]) -> Any:
        """A fresh engine on the calling thread; raises (policy id, error) on a compile error."""
        engine = regorus.Engine()
        for policy_id, text in sorted(modules.items()):
            try:
                engine.add_policy(policy_id, text)
            except RuntimeError as exc:
                raise _CompileError(policy_id, exc) from None
        return engine

    @staticmethod
    def _evaluate(engine: Any, path: str) -> tuple[bool, Any]:
        """OPA's document lookup: (defined, value). Rules via eval_rule (false stays false);
        packages and missing paths via a query, where no result means undefined."""
        segments = [s for s in path.split("/") if s]
        ref = "data" + "".join(f".{s}" if _IDENT_RE.match(s) else f"[{json.dumps(s)}]" for s in segments)
        try:
            raw = engine.eval_rule_as_json(ref)
        except RuntimeError as exc:
            if "not a valid rule path" not in str(exc):
                raise
        else:
            return (False, None) if raw == _UNDEFINED else (True, json.loads(raw))
        rows = json.loads(engine.eval_query_as_json(ref)).get("result") or []
        if not rows:
            return False, None
        return True, rows[0]["expressions"][0]["value"]

    # -- the REST API ----------------------------------------------------------------------

    def _app(self) -> Flask:
        app = Flask("opa-standin")

        @app.before_request
        def record() -> None:
            with self._lock:
                self.requests.append((request.method, request.path))

        @app.get("/health")
        def health() -> Response:
            return _json({})

        @app.get("/v1/policies")
        @app.get("/v1/policies/")
        def list_policies() -> Response:
            with self._lock:
                items = sorted(self._modules.items())
            return _json({"result": [{"id": pid, "raw": text, "ast": _package_ast(text)} for pid, text in items]})

        @app.get("/v1/policies/<path:policy_id>")
        def get_policy(policy_id: str) -> Response:
            with self._lock:
                text = self._modules.get(policy_id)
            if text is None:
                return _opa_error("resource_not_found", f'storage_not_found_error: policy id "{policy_id}"', 404)
            return _json({"result": {"id": policy_id, "raw": text, "ast": _package_ast(text)}})

        @app.put("/v1/policies/<path:policy_id>")
        def put_policy(policy_id: str) -> Response:
            text = request.get_data(as_text=True)
            # OPA compiles the new module together with the stored ones and keeps the old
            # store when that fails; the lock makes check-and-store one step.
            with self._lock:
                candidate = dict(self._modules)
                candidate[policy_id] = text
                try:
                    self._engine(candidate)
                except _CompileError as exc:
                    return _opa_error("invalid_parameter", "error(s) occurred while compiling module(s)", 400,
                                      [_parse_error_detail(exc.policy_id, exc.cause)])
                self._modules = candidate
            return _json({})

        @app.delete("/v1/policies/<path:policy_id>")
        def delete_policy(policy_id: str) -> Response:
            with self._lock:
                if policy_id not in self._modules:
                    return _opa_error("resource_not_found", f'storage_not_found_error: policy id "{policy_id}"',
                                      404)
                del self._modules[policy_id]
            return _json({})

        @app.post("/v1/data")
        @app.post("/v1/data/<path:path>")
        def data(path: str = "") -> Response:
            if self.delay_seconds > 0 and self._stopping.wait(self.delay_seconds):
                return _opa_error("internal_error", "server shutting down", 503)
            if self.fail_status is not None:
                return _opa_error("internal_error", f"injected failure (HTTP {self.fail_status})", self.fail_status)
            body = request.get_json(silent=True) if request.content_length else {}
            if not isinstance(body, dict):
                return _opa_error("invalid_parameter", "body must be a JSON object with an optional input", 400)
            try:
                engine = self._engine(self.modules)
                if "input" in body:
                    engine.set_input_json(json.dumps(body["input"]))
                defined, value = self._evaluate(engine, path)
            except _CompileError as exc:
                return _opa_error("internal_error", f"{exc.policy_id}: {_clean(exc.cause)}", 500)
            except RuntimeError as exc:
                return _opa_error("internal_error", _clean(exc), 500)
            return _json({"result": value} if defined else {})

        return app


class _CompileError(Exception):
    def __init__(self, policy_id: str, cause: BaseException) -> None:
        super().__init__(policy_id)
        self.policy_id = policy_id
        self.cause = cause
