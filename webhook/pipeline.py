"""The one pipeline shared by the webhook, the CLI and the audit.

request -> early exits (named) -> normalize -> facts -> engine -> modes -> Review (the Decision and the
policy it was made on). Built once at start-up (policies compiled, parameters resolved, engine warmed
up); `review` is then a pure function of the request and the cluster snapshot apart from the engine call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from webhook.core import cidr_groups, deadline, exceptions
from webhook.core import decide as decisions
from webhook.core.facts import FactParams, enrich
from webhook.core.guardrails import PolicySet
from webhook.core.limits import check_limits
from webhook.core.model import (
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
from webhook.core.netpolicy import NormalizedPolicy
from webhook.core.normalize import normalize
from webhook.core.requester import classify
from webhook.core.settings import Settings
from webhook.core.shape import ShapeError
from webhook.core.snapshot import DISABLED, ClusterSnapshot, SnapshotSource
from webhook.core.verdict_cache import VerdictCache, request_key
from webhook.engine.engines import TIMEOUT, Engine, EngineError, build_engine
from webhook.engine.policies import PolicyLoadError, load_policy_set, resolve_parameters

SKIP_OPERATIONS = frozenset({Operation.CONNECT})


@dataclass(frozen=True)
class Review:
    """What Pipeline.review concluded and what it read.

    `policy` is the normalized policy the decision was made on, CIDR groups resolved through the snapshot and
    facts attached (the audit's posture figures read it instead of normalizing again). None when no policy was
    built: the request was skipped (decision.verdict skipped), is over a limit (a `limits` denial), cannot be read
    (decision.failure, kind invalid-object), was answered from the verdict cache (decision.cached), or the deadline
    passed in netguard's own code (decision.failure, kind timeout; an engine failure keeps the policy). On DELETE it
    is the old object's.
    """

    decision: Decision
    policy: NormalizedPolicy | None = None


@dataclass(frozen=True)
class Pipeline:
    settings: Settings
    policies: PolicySet
    engine: Engine
    parameters: Mapping[str, Mapping[str, Any]]
    fact_params: FactParams
    config_exemptions: tuple[exceptions.Exemption, ...] = field(default=())
    cluster: SnapshotSource | None = None  # the watched cluster (webhook with cluster.enabled), read from memory
    # Decisions of identical requests (webhook/core/verdict_cache.py); None with cache.enabled false. Mutable and
    # shared by copies made with replace(): it empties itself when asked for another revision or engine.
    cache: VerdictCache | None = field(default=None, compare=False)
    # The guardrails to run by (operation, kind) while no override makes a mode depend on the namespace; per
    # instance (init=False: a copy made with replace() starts empty, as its settings may differ).
    _rules_by_request_kind: dict[tuple[Operation, str, bool], tuple[str, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    @property
    def revision(self) -> str:
        return self.policies.revision

    def snapshot(self) -> ClusterSnapshot:
        return self.cluster.snapshot() if self.cluster is not None else DISABLED

    def review(self, request: AdmissionRequest, snapshot: ClusterSnapshot | None = None, *,
               today: date | None = None, started: float | None = None) -> Review:
        """The one entrance: the webhook, `check`, POST /v1/check and the audit all come in here.

        `snapshot` replaces the pipeline's own cluster view for this request (the audit's inventory, sample
        files, tests); a request reviewed against one is not cached. `started` (time.monotonic()) is when the
        request was read: the one deadline, engine.budget_seconds from then, covers decoding, normalization,
        facts and every evaluation (webhook/core/deadline.py)."""
        expires = (started if started is not None else time.monotonic()) + self.settings.engine.budget_seconds
        with deadline.bounded(expires):
            try:
                return self._review(request, today, snapshot, expires)
            except deadline.DeadlineExceeded as exc:
                return Review(self._engine_failure(EngineError(str(exc), TIMEOUT)))

    def _review(self, request: AdmissionRequest, today: date | None, given: ClusterSnapshot | None,
                expires: float) -> Review:
        skip = self.skip_reason(request)
        if skip:
            return Review(Decision(verdict=Verdict.SKIPPED, reason=skip))
        subject = request.subject
        assert subject is not None  # skip_reason guarantees it
        today = today or date.today()  # once: the key and the exceptions' expiry read the same day
        snapshot = given if given is not None else self.snapshot()
        # The cache first: a hit is content identical to content that passed the limits and was judged (an
        # oversized object is never stored), so the limits need not be counted again (~0.07 ms of a small
        # review). The key serializes the object once, no more than decoding it cost.
        key = self._cache_key(request, today, snapshot) if given is None else None
        if key is not None:
            assert self.cache is not None
            hit = self.cache.get(key, self.revision, self.engine)
            if hit is not None:
                return Review(replace(hit, cached=True))
        over = check_limits(subject, self.settings.limits)  # before any work, on the raw object
        if over is not None:  # not stored in the cache: the next request counts again
            if request.operation is Operation.DELETE:  # never block removing an oversized object
                return Review(Decision(verdict=Verdict.ALLOWED,
                                       reason=f"too large to judge: {over.path}: {over.problem}"))
            return Review(decisions.over_limit(over.path, over.problem, over.fix))
        review = self._evaluate(request, today, snapshot, expires)
        failure = review.decision.failure
        if key is not None and (failure is None or not failure.transient):  # an engine failure is about that moment
            assert self.cache is not None
            self.cache.put(key, review.decision, self.revision, self.engine)
        return review

    def _cache_key(self, request: AdmissionRequest, today: date, snapshot: ClusterSnapshot) -> bytes | None:
        """The verdict cache's key, or None when this request is not to be cached: no cache, or a cluster view
        that is enabled but not usable or has a watch down (age_seconds and notices then change with time)."""
        if self.cache is None:
            return None
        if snapshot.enabled and (not snapshot.usable or snapshot.age_seconds or not snapshot.generation):
            return None
        return request_key(request, today=today, revision=self.revision,
                           config=self.cache.config_digest(self.settings),
                           cluster=snapshot.generation if snapshot.enabled else None, engine=self.engine.name,
                           raw_object=self.policies.reads_raw_object)

    def _evaluate(self, request: AdmissionRequest, today: date, snapshot: ClusterSnapshot,
                  expires: float) -> Review:
        subject = request.subject
        assert subject is not None
        try:
            policy, group_notices = self.model(subject, snapshot)
        except ShapeError as exc:
            if request.operation is Operation.DELETE:  # never block removing a broken object
                return Review(decisions.unreadable_delete(exc.path, exc.problem))
            return Review(decisions.invalid_object(exc.path, exc.problem))
        return Review(self._judge(request, policy, group_notices, today, snapshot, expires), policy)

    def _judge(self, request: AdmissionRequest, policy: NormalizedPolicy, group_notices: tuple[str, ...],
               today: date, snapshot: ClusterSnapshot, expires: float) -> Decision:
        old_policy = self._old_policy(request, snapshot)
        ctx, labels = self._context(request, policy, today, snapshot)
        rules = self._rules_to_run(request.operation, policy.kind, ctx, flows=snapshot.flows is not None)
        ctx = replace(ctx, notices=ctx.notices + group_notices + self._cluster_notices(snapshot, rules))
        context = snapshot.to_input(policy.namespace or request.namespace, policy, request.operation, labels)
        try:
            raw = self.engine.evaluate(self.document(request, policy, old_policy, rules, context), expires)
        except EngineError as exc:
            return self._engine_failure(exc)
        findings = decisions.findings_from_raw(raw, self.policies)
        if old_policy is not None and self._may_be_lenient(findings, ctx):
            try:
                ctx = replace(ctx, previous=self._previous(request, old_policy, rules, context, expires))
            except EngineError as exc:
                return self._engine_failure(exc)
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
                 rules: list[str], cluster: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The engine's input (docs/input.md)."""
        namespace = policy.namespace or request.namespace
        requester = classify(request.user, namespace, self.settings.platform)
        if cluster is None:
            cluster = DISABLED.to_input(namespace, policy, request.operation,
                                        self.settings.namespace_labels.get(namespace, {}))
        policy_input = policy.to_input()
        return {
            "request": {
                "operation": request.operation.value, "user": request.user.as_input(),
                "namespace": request.namespace, "name": request.name, "dry_run": request.dry_run,
                "kind": {"group": request.kind.group, "version": request.kind.version, "kind": request.kind.kind},
            },
            "requester": requester.to_input(),
            "policy": policy_input,
            # _previous passes the old policy as both: built once
            "old_policy": policy_input if old_policy is policy else old_policy.to_input() if old_policy else None,
            # The raw objects only when a rule reads them (PolicySet.reads_raw_object; docs/input.md).
            **({"object": request.subject,
                "old_object": request.old_object if request.operation is Operation.UPDATE else None}
               if self.policies.reads_raw_object else {}),
            "rules": rules,
            "parameters": self.parameters,
            "cluster": cluster,
        }

    def _old_policy(self, request: AdmissionRequest, snapshot: ClusterSnapshot) -> NormalizedPolicy | None:
        if request.operation is not Operation.UPDATE or request.old_object is None:
            return None
        if check_limits(request.old_object, self.settings.limits) is not None:
            return None  # too large to judge: its findings cannot excuse the new object's (an update may shrink it)
        try:
            return self.model(request.old_object, snapshot)[0]
        except ShapeError:
            return None

    def model(self, obj: Mapping[str, Any], snapshot: ClusterSnapshot) -> tuple[NormalizedPolicy, tuple[str, ...]]:
        """The raw object as the guardrails read it: normalized, CIDR groups resolved through the snapshot,
        facts attached; and the notices about what could not be resolved. ShapeError for a malformed object."""
        policy, notices = cidr_groups.resolve(normalize(obj), cidr_groups.snapshot_lookup(snapshot))
        return enrich(policy, self.fact_params), notices

    def _context(self, request: AdmissionRequest, policy: NormalizedPolicy, today: date,
                 snapshot: ClusterSnapshot) -> tuple[decisions.ModeContext, Mapping[str, str]]:
        namespace = policy.namespace or request.namespace
        name = policy.name or request.name
        granted = exceptions.from_annotation(policy.annotations, self.settings.exception_keys, namespace, name,
                                             policy.kind, obj=request.object, rules=self.settings.exception_tokens,
                                             today=today)
        labels, notices = self._namespace_labels(namespace, snapshot)
        ctx = decisions.ModeContext(
            namespace=namespace, name=name, kind=policy.kind, namespace_labels=labels,
            exemptions=self.config_exemptions + granted.exemptions, today=today,
            notices=granted.notices + notices,
        )
        return ctx, labels

    def _namespace_labels(self, namespace: str, snapshot: ClusterSnapshot) -> tuple[Mapping[str, str], tuple[str, ...]]:
        """The namespace's labels from the cluster view when it can be trusted, else from `namespace_labels` in
        the configuration; falling back because the view is stale is told (it may change which override applies)."""
        watched = snapshot.labels(namespace)
        if watched is not None:
            return watched, ()
        configured = self.settings.namespace_labels.get(namespace, {})
        if snapshot.enabled and not snapshot.usable and any(o.namespace_labels for o in self.settings.overrides):
            return configured, (f"{snapshot.status()}: namespace labels for overrides come from the configuration",)
        return configured, ()

    def _cluster_notices(self, snapshot: ClusterSnapshot, rules: list[str]) -> tuple[str, ...]:
        """What the cluster-dependent guardrails that run could not judge, and why."""
        if not snapshot.enabled or snapshot.usable:
            return ()
        # Guardrails that decide from the view (policy.yaml `cluster_view`) stay silent while it cannot be trusted;
        # the requester gets a notice instead (a notice is never a denial, whatever the guardrail's mode).
        return tuple(f"[{g.id}] {snapshot.status()}: {g.cluster_view}" for g in self.policies.guardrails
                     if g.cluster_view and g.package_name in rules)

    def _rules_to_run(self, operation: Operation, kind: str, ctx: decisions.ModeContext, *, flows: bool) -> list[str]:
        if self.settings.overrides:  # a mode may depend on the namespace and its labels
            return self._select_rules(operation, kind, ctx, flows)
        key = (operation, kind, flows)  # the request's kind: a handful of values (skip_reason filters the rest)
        found = self._rules_by_request_kind.get(key)
        if found is None:
            found = self._rules_by_request_kind[key] = tuple(self._select_rules(operation, kind, ctx, flows))
        return list(found)

    def _select_rules(self, operation: Operation, kind: str, ctx: decisions.ModeContext, flows: bool) -> list[str]:
        """The guardrails that apply; those deciding from observed traffic (`evidence: flows`) only with flows (the
        webhook never has them: they would cost every request an evaluation that finds nothing)."""
        return [g.package_name for g in self.policies.guardrails
                if decisions.rule_mode(g, self.settings, ctx)[0] is not Mode.OFF
                and kind in g.kinds and operation in g.operations and (flows or g.evidence != "flows")]

    def _may_be_lenient(self, findings: list[Finding], ctx: decisions.ModeContext) -> bool:
        if self.settings.existing_violations != "warn":
            return False
        return any(self.policies.get(f.rule).grandfather
                   and decisions.rule_mode(self.policies.get(f.rule), self.settings, ctx)[0] is Mode.ENFORCE
                   for f in findings)

    def _engine_failure(self, exc: EngineError) -> Decision:
        engine = self.settings.engine
        return decisions.engine_failure(str(exc), engine.on_error, exc.reason, engine.budget_seconds)

    def _previous(self, request: AdmissionRequest, old_policy: NormalizedPolicy, rules: list[str],
                  cluster: Mapping[str, Any], deadline: float | None = None) -> frozenset[decisions.FindingKey]:
        """The old object's findings: an unchanged violation is not newly blocked (Kyverno's validateOldObject)."""
        assert request.old_object is not None
        old_request = AdmissionRequest(uid=request.uid, kind=request.kind, operation=Operation.UPDATE,
                                       user=request.user, name=request.name, namespace=request.namespace,
                                       object=request.old_object, old_object=request.old_object)
        raw = self.engine.evaluate(self.document(old_request, old_policy, old_policy, rules, cluster), deadline)
        return frozenset(decisions.key(f) for f in decisions.findings_from_raw(raw, self.policies))


def fact_params(policies: PolicySet, parameters: Mapping[str, Mapping[str, Any]]) -> FactParams:
    """Facts that depend on guardrail parameters (metadata addresses and ports, internet share), as each guardrail's
    policy.yaml `facts` declares them: no guardrail id is named here. Unknown fields stop start-up."""
    defaults = FactParams()
    known = {f.name for f in fields(FactParams)}
    values: dict[str, Any] = {}
    for g in policies.guardrails:
        for name, parameter in g.facts.items():
            if name not in known:
                raise PolicyLoadError(f"{g.folder / 'policy.yaml'}: facts: {name!r} is not a fact parameter "
                                      f"(one of {', '.join(sorted(known))})")
            if parameter in parameters.get(g.id, {}):
                default = getattr(defaults, name)
                raw = parameters[g.id][parameter]
                values[name] = tuple(raw) if isinstance(default, tuple) else type(default)(raw)
    return replace(defaults, **values)


def build_pipeline(settings: Settings, engine: Engine | None = None, *, isolate: bool = False) -> Pipeline:
    """Load, compile and warm up; raises PolicyLoadError/ConfigError/EngineError with a clear message.

    `isolate` (the webhook): regorus evaluates in engine.evaluators processes, so engine.budget_seconds
    is kept even by a runaway evaluation; the CLI and the audit evaluate on their own thread.
    """
    policies = load_policy_set(settings.policies_dir)
    parameters = resolve_parameters(policies, settings)
    engine = engine or build_engine(policies, settings.engine.type, settings.engine.opa,
                                    budget_seconds=settings.engine.budget_seconds,
                                    evaluators=settings.engine.evaluators if isolate else 0)
    pipeline = Pipeline(settings=settings, policies=policies, engine=engine, parameters=parameters,
                        fact_params=fact_params(policies, parameters),
                        config_exemptions=exceptions.from_config(settings.exceptions),
                        cache=VerdictCache(settings.cache.max_entries) if settings.cache.enabled else None)
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
    # A synced, empty cluster: the guardrails that read input.cluster run their whole body too.
    snapshot = ClusterSnapshot(synced=True, age_seconds=0.0)
    policy, _ = pipeline.model(WARM_UP_OBJECT, snapshot)
    rules = [g.package_name for g in pipeline.policies.guardrails]
    cluster = snapshot.to_input("warm-up", policy, Operation.CREATE, {})
    try:
        pipeline.engine.evaluate(pipeline.document(request, policy, None, rules, cluster))
    except EngineError as exc:
        raise PolicyLoadError(f"policies compiled but failed on a sample evaluation:\n{exc}") from None
