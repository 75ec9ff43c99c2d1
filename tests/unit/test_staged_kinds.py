"""Calico's staged kinds: read as their enforced counterparts, `stagedAction: Delete` judged for its shape only,
and their findings warned, never denied (PolicyKind.enforced, webhook/core/decide.py), except the requester
rules (grandfather: false), which judge who writes the object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from webhook import kinds
from webhook.config import from_mapping
from webhook.core.decide import STAGED, ModeContext, apply_modes
from webhook.core.model import Finding, Mode, UserInfo, Verdict
from webhook.core.normalize import normalize
from webhook.core.reviews import synthetic_create
from webhook.core.shape import ShapeError
from webhook.core.verdict_cache import VerdictCache
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
ALICE = UserInfo("alice", groups=("team-a", "system:authenticated"))
PLATFORM = UserInfo("platform-admin", groups=("system:masters", "system:authenticated"))
CALICO_EGRESS = {"selector": "app == 'web'", "types": ["Egress"], "egress": [{"action": "Allow"}]}
K8S_EGRESS = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{}]}


def obj(kind: str, spec: Any, namespace: str | None = "team-a", group: str = "projectcalico.org") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": f"{group}/v3" if group == "projectcalico.org" else f"{group}/v1", "kind": kind,
            "metadata": meta, **({} if spec is None else {"spec": spec})}


# -- the kinds and their normalizers ----------------------------------------------------------------------------

def test_the_staged_kinds_are_registered_unenforced_and_the_others_enforced() -> None:
    staged = {k.name for k in kinds.ALL if not k.enforced}
    assert staged == {"StagedNetworkPolicy", "StagedGlobalNetworkPolicy", "StagedKubernetesNetworkPolicy"}
    assert not kinds.named("StagedGlobalNetworkPolicy").namespaced  # type: ignore[union-attr]
    assert kinds.lookup("projectcalico.org", "StagedKubernetesNetworkPolicy").namespaced  # type: ignore[union-attr]


@pytest.mark.parametrize(("staged", "enforced", "spec", "namespace"), [
    ("StagedNetworkPolicy", obj("NetworkPolicy", CALICO_EGRESS), CALICO_EGRESS, "team-a"),
    ("StagedGlobalNetworkPolicy", obj("GlobalNetworkPolicy", CALICO_EGRESS, None), CALICO_EGRESS, None),
    ("StagedKubernetesNetworkPolicy", obj("NetworkPolicy", K8S_EGRESS, group="networking.k8s.io"), K8S_EGRESS,
     "team-a"),
])
@pytest.mark.parametrize("action", [None, "Set"])
def test_set_reads_the_spec_as_the_enforced_counterpart(staged: str, enforced: dict[str, Any], spec: dict[str, Any],
                                                        namespace: str | None, action: str | None) -> None:
    staged_spec = spec | ({"stagedAction": action} if action else {})
    got, want = normalize(obj(staged, staged_spec, namespace)), normalize(enforced)
    assert (got.subjects, got.rules, got.flavor, got.clusterwide) == (
        want.subjects, want.rules, want.flavor, want.clusterwide)
    assert got.kind == staged and got.rules


def test_a_staged_calico_policy_keeps_its_tier_and_order() -> None:
    got = normalize(obj("StagedNetworkPolicy", CALICO_EGRESS | {"tier": "security", "order": 10}))
    assert (got.tier, got.priority) == ("security", 10.0)


@pytest.mark.parametrize("kind", ["StagedNetworkPolicy", "StagedGlobalNetworkPolicy", "StagedKubernetesNetworkPolicy"])
@pytest.mark.parametrize("spec", [{"stagedAction": "Delete"}, CALICO_EGRESS | {"stagedAction": "Delete"}])
def test_delete_means_no_subjects_and_no_rules(kind: str, spec: dict[str, Any]) -> None:
    spec = spec if kind != "StagedKubernetesNetworkPolicy" else {"stagedAction": "Delete"}
    got = normalize(obj(kind, spec))
    assert (got.subjects, got.rules) == ((), ())


@pytest.mark.parametrize(("spec", "path"), [
    ({"stagedAction": "Promote"}, "spec.stagedAction"),
    ({"stagedAction": 1}, "spec.stagedAction"),
    ({"stagedAction": "Delete", "egress": [{"action": "Allow", "protocol": "HTTP"}]}, "spec.egress[0].protocol"),
    ({"stagedAction": "Set", "selector": "app =="}, "spec.selector"),
    (None, "spec"),  # Set (the default) needs a spec, as the enforced kind does
    ("text", "spec"),
])
def test_shape_is_judged_whatever_the_action(spec: Any, path: str) -> None:
    with pytest.raises(ShapeError) as err:
        normalize(obj("StagedNetworkPolicy", spec))
    assert err.value.path == path


# -- the cap ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies")}))


@pytest.fixture
def pipeline(base: Pipeline) -> Pipeline:
    return replace(base, cache=VerdictCache(16))


def verdict_of(pipeline: Pipeline, raw: Mapping[str, Any],
               user: UserInfo = ALICE) -> tuple[Verdict, set[tuple[str, Mode, str]]]:
    decision = pipeline.review(synthetic_create(raw, user=user), None).decision
    return decision.verdict, {(a.finding.rule, a.mode, a.reason) for a in decision.findings}


def test_a_staged_allow_all_is_warned_not_denied(pipeline: Pipeline) -> None:
    enforced, _ = verdict_of(pipeline, obj("NetworkPolicy", CALICO_EGRESS))
    assert enforced is Verdict.DENIED  # the same spec, enforced
    verdict, findings = verdict_of(pipeline, obj("StagedNetworkPolicy", CALICO_EGRESS | {"stagedAction": "Set"}))
    assert verdict is Verdict.WARNED
    assert ("no-allow-all-egress", Mode.WARN, STAGED) in findings
    assert all(mode is not Mode.ENFORCE for _, mode, _ in findings)


def test_a_staged_kubernetes_allow_all_is_warned_not_denied(pipeline: Pipeline) -> None:
    verdict, findings = verdict_of(pipeline, obj("StagedKubernetesNetworkPolicy", K8S_EGRESS))
    assert verdict is Verdict.WARNED and ("no-allow-all-egress", Mode.WARN, STAGED) in findings


def test_a_staged_delete_is_not_judged_for_its_rules(pipeline: Pipeline) -> None:
    verdict, findings = verdict_of(pipeline, obj("StagedNetworkPolicy", CALICO_EGRESS | {"stagedAction": "Delete"}))
    assert (verdict, findings) == (Verdict.ALLOWED, set())


def test_a_team_may_not_write_a_staged_global_policy_but_the_platform_may(pipeline: Pipeline) -> None:
    spec = {"stagedAction": "Delete"}
    verdict, findings = verdict_of(pipeline, obj("StagedGlobalNetworkPolicy", spec, None))
    assert verdict is Verdict.DENIED
    assert {(rule, mode) for rule, mode, _ in findings} == {("cluster-scoped-policy-restricted", Mode.ENFORCE)}
    assert verdict_of(pipeline, obj("StagedGlobalNetworkPolicy", spec, None), PLATFORM)[0] is Verdict.ALLOWED


def test_the_cap_follows_the_kind_and_leaves_requester_rules_alone(pipeline: Pipeline) -> None:
    content = Finding(rule="no-allow-all-egress", path="spec.egress[0]", message="m", fix="f", severity="high")
    requester = Finding(rule="cluster-scoped-policy-restricted", path="metadata", message="m", fix="f",
                        severity="critical")
    settings = from_mapping({})

    def modes(kind: str) -> list[tuple[Mode, str]]:
        decision = apply_modes([content, requester], pipeline.policies, settings, ModeContext(kind=kind))
        return [(a.mode, a.reason) for a in decision.findings]

    assert modes("GlobalNetworkPolicy") == [(Mode.ENFORCE, "default"), (Mode.ENFORCE, "default")]
    assert modes("StagedGlobalNetworkPolicy") == [(Mode.WARN, STAGED), (Mode.ENFORCE, "default")]
    assert modes("NoSuchKind") == [(Mode.ENFORCE, "default"), (Mode.ENFORCE, "default")]


# -- posture ----------------------------------------------------------------------------------------------------

def test_a_staged_default_deny_protects_no_namespace() -> None:
    from webhook.core.snapshot import ClusterSnapshot

    deny_all = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    enforced = obj("NetworkPolicy", deny_all, group="networking.k8s.io")
    staged = obj("StagedKubernetesNetworkPolicy", deny_all)
    assert ClusterSnapshot.from_objects({"team-a": {}}, [enforced]).default_deny("team-a") == {
        "ingress": True, "egress": True}
    assert ClusterSnapshot.from_objects({"team-a": {}}, [staged]).default_deny("team-a") == {
        "ingress": False, "egress": False}
