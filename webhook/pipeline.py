"""The one pipeline shared by the webhook, the CLI and the audit.

request -> early exits (named) -> normalize -> facts -> engine -> decide. Built once at
start-up (policies compiled, parameters resolved, engine warmed up); `review` is then a
pure function of the request apart from the engine call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook import decide as decisions
from webhook.config import Settings
from webhook.engine import Engine, EngineError, build_engine
from webhook.facts import FactParams, enrich
from webhook.model import POLICY_KINDS, AdmissionRequest, Decision, Mode, Operation, Verdict
from webhook.normalize import normalize
from webhook.policies import PolicyLoadError, PolicySet, load_policy_set, resolve_parameters
from webhook.shape import ShapeError

SKIP_OPERATIONS = frozenset({Operation.CONNECT})


@dataclass(frozen=True)
class Pipeline:
    settings: Settings
    policies: PolicySet
    engine: Engine
    parameters: Mapping[str, Mapping[str, Any]]
    fact_params: FactParams

    @property
    def revision(self) -> str:
        return self.policies.revision

    def review(self, request: AdmissionRequest) -> Decision:
        skip = self.skip_reason(request)
        if skip:
            return Decision(verdict=Verdict.SKIPPED, reason=skip)
        subject = request.subject
        assert subject is not None  # skip_reason guarantees it
        try:
            policy = enrich(normalize(subject), self.fact_params)
        except ShapeError as exc:
            if request.operation is Operation.DELETE:  # never block removing a broken object
                return Decision(verdict=Verdict.ALLOWED, reason=f"old object unreadable: {exc}")
            return decisions.invalid_object(exc.path, exc.problem)
        old_policy = None
        if request.operation is Operation.UPDATE and request.old_object is not None:
            try:
                old_policy = enrich(normalize(request.old_object), self.fact_params).to_input()
            except ShapeError:
                old_policy = None
        modes = self.modes()
        rules = [g.package_name for g in self.policies.guardrails
                 if modes[g.id][0] is not Mode.OFF and policy.kind in g.kinds and request.operation in g.operations]
        document = {
            "request": {
                "operation": request.operation.value, "user": request.user.as_input(),
                "namespace": request.namespace, "name": request.name, "dry_run": request.dry_run,
                "kind": {"group": request.kind.group, "version": request.kind.version, "kind": request.kind.kind},
            },
            "policy": policy.to_input(),
            "old_policy": old_policy,
            "object": subject,
            "old_object": request.old_object,
            "rules": rules,
            "parameters": self.parameters,
        }
        try:
            raw = self.engine.evaluate(document)
        except EngineError as exc:
            return decisions.engine_failure(str(exc), self.settings.engine.on_error)
        return decisions.decide(decisions.findings_from_raw(raw, self.policies), modes)

    def skip_reason(self, request: AdmissionRequest) -> str:
        """Named early exits, before any evaluation (Gatekeeper's Handle order)."""
        if request.kind not in POLICY_KINDS:
            return f"kind {request.kind} is not guarded"
        if request.operation in SKIP_OPERATIONS:
            return f"operation {request.operation.value} is not evaluated"
        if request.sub_resource:
            return f"subresource {request.sub_resource} is not evaluated"
        if request.namespace and request.namespace in self.settings.excluded_namespaces:
            return f"namespace {request.namespace} is excluded"
        if request.subject is None:
            return "request carries no object"
        return ""

    def modes(self) -> dict[str, tuple[Mode, str]]:
        return {g.id: decisions.resolve_mode(g, self.settings) for g in self.policies.guardrails}


def fact_params(parameters: Mapping[str, Mapping[str, Any]]) -> FactParams:
    """Facts that depend on guardrail parameters (metadata addresses and ports, internet share)."""
    meta = parameters.get("no-metadata-egress", {})
    defaults = FactParams()
    internet = parameters.get("no-internet-egress-without-ports", {})
    return FactParams(
        metadata_ips=tuple(meta.get("addresses", defaults.metadata_ips)),
        metadata_ports=tuple(meta.get("ports", defaults.metadata_ports)),
        internet_coverage=float(internet.get("internet_coverage", defaults.internet_coverage)),
    )


def build_pipeline(settings: Settings, engine: Engine | None = None) -> Pipeline:
    """Load, compile and warm up; raises PolicyLoadError/ConfigError/EngineError with a clear message."""
    policies = load_policy_set(settings.policies_dir)
    parameters = resolve_parameters(policies, settings)
    engine = engine or build_engine(policies, settings.engine.type, settings.engine.opa)
    pipeline = Pipeline(settings=settings, policies=policies, engine=engine, parameters=parameters,
                        fact_params=fact_params(parameters))
    warm_up(pipeline)
    return pipeline


def warm_up(pipeline: Pipeline) -> None:
    """Evaluate every guardrail once: regorus reports unknown functions only at evaluation."""
    from webhook.model import NETWORK_POLICY, UserInfo

    request = AdmissionRequest(
        uid="warm-up", kind=NETWORK_POLICY, operation=Operation.CREATE, user=UserInfo(username="netguard"),
        namespace="warm-up", name="warm-up",
        object={"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "warm-up", "namespace": "warm-up"},
                "spec": {"podSelector": {}, "egress": [{}], "ingress": [{}]}},
    )
    try:
        raw = pipeline.engine.evaluate(_warm_document(pipeline, request))
    except EngineError as exc:
        raise PolicyLoadError(f"policies compiled but failed on a sample evaluation:\n{exc}") from None
    del raw


def _warm_document(pipeline: Pipeline, request: AdmissionRequest) -> dict[str, Any]:
    assert request.object is not None
    policy = enrich(normalize(request.object), pipeline.fact_params)
    return {
        "request": {"operation": request.operation.value, "user": request.user.as_input(),
                    "namespace": request.namespace, "name": request.name, "dry_run": False,
                    "kind": {"group": request.kind.group, "version": request.kind.version,
                             "kind": request.kind.kind}},
        "policy": policy.to_input(), "old_policy": None, "object": request.object, "old_object": None,
        "rules": [g.package_name for g in pipeline.policies.guardrails], "parameters": pipeline.parameters,
    }
