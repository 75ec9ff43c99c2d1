"""Rego engines behind one protocol: regorus embedded (default) and an OPA server.

Both evaluate the same query, `data.netguard.findings`, over the same input document and
return {package name: [violation, ...]}. The Rego is written once (import rego.v1, no net.*
built-ins) and must give the same results on both.

The webhook evaluates under a deadline (engine.budget_seconds): regorus in evaluator processes
that are killed past it (webhook/engine/evalpool.py), OPA with an HTTP timeout cut to it. Failures are
EngineErrors with a reason (timeout, unreachable, error) that the decision layer and the
metrics use.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson
import regorus
import requests

from webhook.core.guardrails import STATIC_FINDINGS_PACKAGE, PolicySet, RegoModule, static_findings_module
from webhook.core.settings import OpaSettings
from webhook.engine import evalpool
from webhook.engine.policies import PolicyLoadError

if TYPE_CHECKING:
    import opa_client

FINDINGS_RULE = "data.netguard.findings"
STATIC_FINDINGS_RULE = f"data.{STATIC_FINDINGS_PACKAGE}.findings"  # what regorus evaluates (policies.py)
RawFindings = dict[str, list[dict[str, Any]]]
_UNDEFINED = '"<undefined>"'


# Why an evaluation failed: the `reason` label of netguard_engine_errors_total.
TIMEOUT, UNREACHABLE, ERROR = "timeout", "unreachable", "error"


class EngineError(Exception):
    """Evaluation failed (engine error, OPA unreachable or too slow); the decision layer applies on_error."""

    def __init__(self, message: str, reason: str = ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class Engine(Protocol):
    name: str

    def evaluate(self, document: Mapping[str, Any], deadline: float | None = None) -> RawFindings:
        """Findings by package; `deadline` (time.monotonic()) bounds the wait where the engine can keep it."""
        ...

    def close(self) -> None: ...


def clean_error(exc: BaseException) -> str:
    """regorus errors carry a Rust backtrace; keep the location and the message only."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return re.sub(r"\n\s*\|\s*\n", "\n", text)


def input_json(document: Mapping[str, Any]) -> bytes:
    """The engine input as JSON: orjson (a 110 KB Cilium input in 0.14 ms against 1.8 ms for json.dumps),
    the standard library for what orjson refuses (an integer past 64 bits, which a request may carry)."""
    try:
        return orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def _parse_findings(raw: Any) -> RawFindings:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EngineError(f"{FINDINGS_RULE} returned {type(raw).__name__}, expected an object")
    out: RawFindings = {}
    for package, violations in raw.items():
        if not isinstance(violations, list):
            raise EngineError(f"guardrails.{package}.violation must be a set of objects")
        out[str(package)] = [v for v in violations if isinstance(v, dict)]
        if len(out[str(package)]) != len(violations):
            raise EngineError(f"guardrails.{package}.violation must contain objects with path and msg")
    return out


class RegorusEngine:
    """regorus, one engine per thread, each compiled from the same sources; or a pool of evaluator processes.

    regoruspy marks its Engine `unsendable` (pyo3): touching one from any thread but its
    creator, even to call clone(), panics and kills the worker. So every thread compiles its
    own engine on first use (about a millisecond for this catalog); the constructor compiles
    once up front so a Rego error stops start-up with the file and line.

    In-thread evaluation cannot keep a deadline: regorus holds the GIL until it is done, so not
    even a waiting thread runs. The CLI and the audit accept that; the webhook passes
    `evaluators` > 0 and evaluates in that many processes (evalpool), which it can stop.
    """

    name = "regorus"

    def __init__(self, policies: PolicySet, extra_modules: tuple[RegoModule, ...] = (), *,
                 evaluators: int = 0, default_timeout: float = 2.0) -> None:
        self._modules = (*policies.modules, static_findings_module(policies), *extra_modules)
        self._local = threading.local()
        self._local.engine = self._compile()
        self._default_timeout = default_timeout  # a call without a deadline (warm-up, readiness)
        self._pool = (evalpool.EvaluatorPool([(str(m.path), m.text) for m in self._modules], evaluators)
                      if evaluators > 0 else None)

    def _compile(self) -> Any:
        engine = regorus.Engine()
        for module in self._modules:
            try:
                engine.add_policy(str(module.path), module.text)
            except RuntimeError as exc:
                raise PolicyLoadError(f"Rego compile error:\n{clean_error(exc)}") from None
        return engine

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = self._compile()
        return engine

    def evaluate(self, document: Mapping[str, Any], deadline: float | None = None) -> RawFindings:
        # A partial object rule is {} when empty; undefined here can only mean empty too,
        # since the policies were compiled in this process.
        return _parse_findings(self.eval_rule(STATIC_FINDINGS_RULE, document, deadline))

    def eval_rule(self, path: str, document: Mapping[str, Any], deadline: float | None = None) -> Any:
        """Evaluate any rule (in an evaluator process, or on this thread's engine); undefined is None."""
        # set_input_json, not set_input: the Python conversion turns False into 0.
        text = input_json(document)
        if self._pool is not None:
            raw = self._pooled(path, text, deadline)
        else:
            engine = self._engine()
            try:
                engine.set_input_json(text.decode())
                raw = engine.eval_rule_as_json(path)
            except RuntimeError as exc:
                raise EngineError(clean_error(exc)) from None
        return None if raw == _UNDEFINED else json.loads(raw)

    def _pooled(self, path: str, text: bytes, deadline: float | None) -> str:
        assert self._pool is not None
        timeout = self._default_timeout if deadline is None else deadline - time.monotonic()
        if timeout <= 0:
            raise EngineError("no time left in the budget for regorus", TIMEOUT)
        try:
            return self._pool.evaluate(path, text, timeout)
        except evalpool.EvaluatorBusy:
            raise EngineError(f"all {self._pool.size} regorus evaluators of this worker stayed busy until the "
                              "deadline", TIMEOUT) from None
        except evalpool.EvaluatorTimeout:
            raise EngineError("regorus was still evaluating at the deadline; its evaluator was stopped and replaced",
                              TIMEOUT) from None
        except evalpool.EvaluatorDied as exc:
            raise EngineError(f"regorus evaluator failed: {exc}") from None
        except evalpool.EvaluatorFailed as exc:
            raise EngineError(clean_error(exc)) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class OpaEngine:
    """An OPA server reached through opa-python-client (the production option).

    Policies are pushed at start-up (PUT /v1/policies/<id>) unless OPA loads them from a bundle;
    evaluation is POST /v1/data/netguard/findings with a timeout and no retries, so a slow or
    absent OPA becomes an EngineError within the budget instead of a hung admission request.
    The timeout is opa.timeout_seconds cut to what is left of the budget; requests applies it to
    the connect and to each read, so a stalled connect followed by a slow answer can take up to
    twice that (a sidecar on loopback connects or refuses at once).
    """

    name = "opa"

    def __init__(self, policies: PolicySet, settings: OpaSettings, budget_seconds: float | None = None) -> None:
        parts = urlsplit(settings.url)
        if not parts.hostname:
            raise EngineError(f"engine.opa.url {settings.url!r} has no host")
        self._timeout = min(settings.timeout_seconds, budget_seconds or settings.timeout_seconds)
        self._kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (443 if parts.scheme == "https" else 8181),
            "ssl": parts.scheme == "https",
            "timeout": self._timeout,
            "retries": 0,
        }
        if settings.token:
            self._kwargs["token"] = settings.token
        if settings.ca_file and parts.scheme == "https":
            self._kwargs["ssl"] = settings.ca_file  # requests' verify= accepts a CA path
        self._local = threading.local()
        self._url = settings.url
        if settings.push_policies:
            self.push(policies)

    def _client(self) -> opa_client.OpaClient:
        client = getattr(self._local, "client", None)
        if client is None:
            import opa_client  # lazily: ~0.17 s of aiohttp imports that every CLI run paid for regorus

            client = opa_client.OpaClient(**self._kwargs)
            self._local.client = client
        return client

    def push(self, policies: PolicySet) -> None:
        client = self._client()
        for module in policies.modules:
            try:
                client.update_policy_from_string(module.text, f"netguard/{module.module_id}", rego_compat=False)
            except Exception as exc:  # connection errors and OPA's compile errors alike
                raise EngineError(f"pushing {module.path} to OPA at {self._url} failed: {exc}") from None

    def evaluate(self, document: Mapping[str, Any], deadline: float | None = None) -> RawFindings:
        client = self._client()
        client.timeout = self._timeout  # this thread's client: no other request sees the change
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"no time left to ask OPA at {self._url}", TIMEOUT)
            client.timeout = min(self._timeout, left)
        try:
            response = client.query_rule(dict(document), "netguard", "findings")
        except Exception as exc:  # requests' Timeout/ConnectionError/HTTPError
            raise EngineError(f"OPA at {self._url}: {_opa_cause(exc)}", _opa_reason(exc)) from None
        if "result" not in response:
            # A partial object rule is {} when empty; no result means OPA does not have the
            # netguard policies (not pushed, bundle missing, OPA restarted): never "no findings".
            raise EngineError(f"OPA at {self._url} has no data.netguard.findings: the netguard policies are not loaded")
        return _parse_findings(response["result"])

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close_connection()


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"'()]+)")


def _opa_cause(exc: Exception) -> str:
    """Short enough for a kubectl warning (256 characters): requests' texts repeat the URL twice."""
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection within the timeout ({name})"
    if isinstance(exc, requests.ConnectionError):
        found = _ERRNO.search(str(exc))
        return f"unreachable, {found.group(1).strip().lower() if found else 'connection failed'} ({name})"
    if isinstance(exc, requests.Timeout):
        return f"no answer within the timeout ({name})"
    return f"{name}: {str(exc)[:160]}"


def _opa_reason(exc: Exception) -> str:
    """A connect that timed out is unreachable (no OPA there), a read that timed out is slow."""
    if isinstance(exc, requests.ConnectionError):  # ConnectTimeout is both; it lands here
        return UNREACHABLE
    if isinstance(exc, requests.Timeout):
        return TIMEOUT
    return ERROR


def build_engine(policies: PolicySet, engine_type: str, opa: OpaSettings, *, budget_seconds: float | None = None,
                 evaluators: int = 0) -> Engine:
    """`evaluators` > 0: regorus in that many processes, so `budget_seconds` can be kept (the webhook)."""
    if engine_type == "opa":
        return OpaEngine(policies, opa, budget_seconds)
    return RegorusEngine(policies, evaluators=evaluators, default_timeout=budget_seconds or 2.0)
