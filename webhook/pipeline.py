"""The one pipeline shared by the webhook, the CLI and the audit.

request -> early exits (named) -> normalize -> facts -> engine -> modes -> Decision. Built once
at start-up (policies compiled, parameters resolved, engine warmed up); `review` is then a pure
function of the request apart from the engine call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from webhook import decide as decisions
from webhook import exceptions
from webhook.config import Settings
from webhook.engine import Engine, EngineError, build_engine
from webhook.facts import FactParams, enrich
from webhook.model import (
    NETWORK_POLICY,
    POLICY_KINDS,
    AdmissionRequest,
    Decision,
    Finding,
    Mode,
    Operation,
    UserInfo,
    Verdict,
)
from webhook.netpolicy import NormalizedPolicy
from webhook.normalize import normalize
from webhook.policies import PolicyLoadError, PolicySet, load_policy_set, resolve_parameters
from webhook.requester import classify
from webhook.shape import ShapeError

SKIP_OPERATIONS = frozenset({Operation.CONNECT})


@dataclass(frozen=True)
class Pipeline:
    settings: Settings
    policies: PolicySet
    engine: Engine
    parameters: Mapping[str, Mapping[str, Any]]
    fact_params: FactParams
    config_exemptions: tuple[exceptions.Exemption, ...] = field(default=())

    @property
    def revision(self) -> str:
        return self.policies.revision

    def review(self, request: AdmissionRequest, today: date | None = None) -> Decision:
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
        old_policy = self._old_policy(request)
        ctx = self._context(request, policy, today or date.today())
        rules = self._rules_to_run(request.operation, policy.kind, ctx)
        try:
            raw = self.engine.evaluate(self.document(request, policy, old_policy, rules))
        except EngineError as exc:
            return decisions.engine_failure(str(exc), self.settings.engine.on_error)
        findings = decisions.findings_from_raw(raw, self.policies)
        if old_policy is not None and self._may_be_lenient(findings, ctx):
            try:
                ctx = replace(ctx, previous=self._previous(request, old_policy, rules))
            except EngineError as exc:
                return decisions.engine_failure(str(exc), self.settings.engine.on_error)
        return decisions.apply_modes(findings, self.policies, self.settings, ctx)

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

    def document(self, request: AdmissionRequest, policy: NormalizedPolicy, old_policy: NormalizedPolicy | None,
                 rules: list[str]) -> dict[str, Any]:
        """The engine's input (docs/input.md)."""
        namespace = policy.namespace or request.namespace
        requester = classify(request.user, namespace, self.settings.platform)
        return {
            "request": {
                "operation": request.operation.value, "user": request.user.as_input(),
                "namespace": request.namespace, "name": request.name, "dry_run": request.dry_run,
                "kind": {"group": request.kind.group, "version": request.kind.version, "kind": request.kind.kind},
            },
            "requester": requester.to_input(),
            "policy": policy.to_input(),
            "old_policy": old_policy.to_input() if old_policy else None,
            "object": request.subject,
            "old_object": request.old_object if request.operation is Operation.UPDATE else None,
            "rules": rules,
            "parameters": self.parameters,
        }

    def _old_policy(self, request: AdmissionRequest) -> NormalizedPolicy | None:
        if request.operation is not Operation.UPDATE or request.old_object is None:
            return None
        try:
            return enrich(normalize(request.old_object), self.fact_params)
        except ShapeError:
            return None

    def _context(self, request: AdmissionRequest, policy: NormalizedPolicy, today: date) -> decisions.ModeContext:
        namespace = policy.namespace or request.namespace
        name = policy.name or request.name
        granted = exceptions.from_annotation(policy.annotations, self.settings.exception_keys, namespace, name,
                                             policy.kind)
        ctx = decisions.ModeContext(
            namespace=namespace, name=name, kind=policy.kind,
            namespace_labels=self.settings.namespace_labels.get(namespace, {}),
            exemptions=self.config_exemptions + granted.exemptions, today=today, notices=granted.notices,
        )
        return ctx

    def _rules_to_run(self, operation: Operation, kind: str, ctx: decisions.ModeContext) -> list[str]:
        return [g.package_name for g in self.policies.guardrails
                if decisions.rule_mode(g, self.settings, ctx)[0] is not Mode.OFF
                and kind in g.kinds and operation in g.operations]

    def _may_be_lenient(self, findings: list[Finding], ctx: decisions.ModeContext) -> bool:
        if self.settings.existing_violations != "warn":
            return False
        return any(self.policies.get(f.rule).grandfather
                   and decisions.rule_mode(self.policies.get(f.rule), self.settings, ctx)[0] is Mode.ENFORCE
                   for f in findings)

    def _previous(self, request: AdmissionRequest, old_policy: NormalizedPolicy,
                  rules: list[str]) -> frozenset[decisions.FindingKey]:
        """The old object's findings: an unchanged violation is not newly blocked (Kyverno's validateOldObject)."""
        assert request.old_object is not None
        old_request = AdmissionRequest(uid=request.uid, kind=request.kind, operation=Operation.UPDATE,
                                       user=request.user, name=request.name, namespace=request.namespace,
                                       object=request.old_object, old_object=request.old_object)
        raw = self.engine.evaluate(self.document(old_request, old_policy, old_policy, rules))
        return frozenset(decisions.key(f) for f in decisions.findings_from_raw(raw, self.policies))

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
                        fact_params=fact_params(parameters),
                        config_exemptions=exceptions.from_config(settings.exceptions))
    warm_up(pipeline)
    return pipeline


WARM_UP_OBJECT = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "warm-up", "namespace": "warm-up"},
                  "spec": {"podSelector": {}, "egress": [{}], "ingress": [{}]}}


def warm_up(pipeline: Pipeline) -> None:
    """Evaluate every guardrail once: regorus reports unknown functions only at evaluation."""
    request = AdmissionRequest(uid="warm-up", kind=NETWORK_POLICY, operation=Operation.CREATE,
                               user=UserInfo(username="netguard"), namespace="warm-up", name="warm-up",
                               object=WARM_UP_OBJECT)
    policy = enrich(normalize(WARM_UP_OBJECT), pipeline.fact_params)
    rules = [g.package_name for g in pipeline.policies.guardrails]
    try:
        pipeline.engine.evaluate(pipeline.document(request, policy, None, rules))
    except EngineError as exc:
        raise PolicyLoadError(f"policies compiled but failed on a sample evaluation:\n{exc}") from None
