"""Rego engines behind one protocol: regorus embedded (default) and an OPA server.

Both evaluate the same query, `data.netguard.findings`, over the same input document and
return {package name: [violation, ...]}. The Rego is written once (import rego.v1, no net.*
built-ins) and must give the same results on both.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import regorus
from opa_client import OpaClient

from webhook.config import OpaSettings
from webhook.policies import PolicyLoadError, PolicySet, RegoModule

FINDINGS_RULE = "data.netguard.findings"
RawFindings = dict[str, list[dict[str, Any]]]
_UNDEFINED = '"<undefined>"'


class EngineError(Exception):
    """Evaluation failed (engine error, OPA unreachable or too slow); the decision layer applies on_error."""


class Engine(Protocol):
    name: str

    def evaluate(self, document: Mapping[str, Any]) -> RawFindings: ...

    def close(self) -> None: ...


def clean_error(exc: BaseException) -> str:
    """regorus errors carry a Rust backtrace; keep the location and the message only."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return re.sub(r"\n\s*\|\s*\n", "\n", text)


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
    """regorus, one engine per thread, each compiled from the same sources.

    regoruspy marks its Engine `unsendable` (pyo3): touching one from any thread but its
    creator, even to call clone(), panics and kills the worker. So every thread compiles its
    own engine on first use (about a millisecond for this catalog); the constructor compiles
    once up front so a Rego error stops start-up with the file and line.
    """

    name = "regorus"

    def __init__(self, policies: PolicySet, extra_modules: tuple[RegoModule, ...] = ()) -> None:
        self._modules = policies.modules + extra_modules
        self._local = threading.local()
        self._local.engine = self._compile()

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

    def evaluate(self, document: Mapping[str, Any]) -> RawFindings:
        # A partial object rule is {} when empty; undefined here can only mean empty too,
        # since the policies were compiled in this process.
        return _parse_findings(self.eval_rule(FINDINGS_RULE, document))

    def eval_rule(self, path: str, document: Mapping[str, Any]) -> Any:
        """Evaluate any rule on this thread's engine; undefined is None."""
        engine = self._engine()
        try:
            # set_input_json, not set_input: the Python conversion turns False into 0.
            engine.set_input_json(json.dumps(document))
            raw = engine.eval_rule_as_json(path)
        except RuntimeError as exc:
            raise EngineError(clean_error(exc)) from None
        return None if raw == _UNDEFINED else json.loads(raw)

    def close(self) -> None:
        return None


class OpaEngine:
    """An OPA server reached through opa-python-client (the production option).

    Policies are pushed at start-up (PUT /v1/policies/<id>) unless OPA loads them from a bundle;
    evaluation is POST /v1/data/netguard/findings with a timeout and no retries, so a slow or
    absent OPA becomes an EngineError within the budget instead of a hung admission request.
    """

    name = "opa"

    def __init__(self, policies: PolicySet, settings: OpaSettings) -> None:
        parts = urlsplit(settings.url)
        if not parts.hostname:
            raise EngineError(f"engine.opa.url {settings.url!r} has no host")
        self._kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (443 if parts.scheme == "https" else 8181),
            "ssl": parts.scheme == "https",
            "timeout": settings.timeout_seconds,
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

    def _client(self) -> OpaClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = OpaClient(**self._kwargs)
            self._local.client = client
        return client

    def push(self, policies: PolicySet) -> None:
        client = self._client()
        for module in policies.modules:
            try:
                client.update_policy_from_string(module.text, f"netguard/{module.module_id}", rego_compat=False)
            except Exception as exc:  # connection errors and OPA's compile errors alike
                raise EngineError(f"pushing {module.path} to OPA at {self._url} failed: {exc}") from None

    def evaluate(self, document: Mapping[str, Any]) -> RawFindings:
        try:
            response = self._client().query_rule(dict(document), "netguard", "findings")
        except Exception as exc:  # requests' Timeout/ConnectionError/HTTPError
            raise EngineError(f"OPA at {self._url}: {type(exc).__name__}: {exc}") from None
        if "result" not in response:
            # A partial object rule is {} when empty; no result means OPA does not have the
            # netguard policies (not pushed, bundle missing, OPA restarted): never "no findings".
            raise EngineError(f"OPA at {self._url} has no data.netguard.findings: the netguard policies are not loaded")
        return _parse_findings(response["result"])

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close_connection()


def build_engine(policies: PolicySet, engine_type: str, opa: OpaSettings) -> Engine:
    if engine_type == "opa":
        return OpaEngine(policies, opa)
    return RegorusEngine(policies)
