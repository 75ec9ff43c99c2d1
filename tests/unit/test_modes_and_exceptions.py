"""Modes per namespace, dry-run, platform identity, exceptions and UPDATE leniency, through the pipeline."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from webhook.config import from_mapping
from webhook.core import exceptions
from webhook.core.admission import parse_review
from webhook.core.model import Decision, Mode, UserInfo, Verdict
from webhook.core.requester import classify
from webhook.core.reviews import make_review
from webhook.core.settings import GitopsController, PlatformSettings
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
RULE = "no-allow-all-egress"
TODAY = date(2026, 11, 24)


def policy(namespace: str = "team-a", name: str = "web", egress: list[Any] | None = None,
           annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}] if egress is None else egress}}


def pipeline(**config: Any) -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"), **config}))


def review(p: Pipeline, obj: dict[str, Any], **kw: Any) -> Decision:
    return p.review(parse_review(make_review(obj, **kw)), today=TODAY).decision


def mine(decision: Decision) -> list[Any]:
    return [f for f in decision.findings if f.finding.rule == RULE]


def test_a_namespace_glob_override_changes_the_mode_and_says_why() -> None:
    p = pipeline(overrides=[{"namespaces": ["legacy-*"], "rules": {RULE: "warn"}, "reason": "legacy apps, SEC-7"}])
    legacy = mine(review(p, policy("legacy-billing")))
    assert legacy[0].mode is Mode.WARN and legacy[0].reason == "namespace override (legacy apps, SEC-7)"
    assert mine(review(p, policy("team-a")))[0].mode is Mode.ENFORCE


def test_a_namespace_label_override_applies_to_labelled_namespaces_only() -> None:
    p = pipeline(namespace_labels={"team-b": {"env": "dev"}},
                 overrides=[{"namespace_labels": {"env": "dev"}, "rules": {"*": "audit"}}])
    assert mine(review(p, policy("team-b")))[0].mode is Mode.AUDIT
    assert "env=dev" in mine(review(p, policy("team-b")))[0].reason
    assert review(p, policy("team-a")).verdict is Verdict.DENIED


def test_later_overrides_win_and_off_skips_the_rule() -> None:
    p = pipeline(overrides=[{"namespaces": ["*"], "rules": {RULE: "warn"}},
                            {"namespaces": ["sandbox"], "rules": {RULE: "off"}}])
    assert mine(review(p, policy("sandbox"))) == []
    assert mine(review(p, policy("team-a")))[0].mode is Mode.WARN


def test_dry_run_downgrades_enforce_to_warn() -> None:
    decision = review(pipeline(dry_run=True), policy())
    assert decision.allowed and mine(decision)[0].reason == "dry-run"


def test_platform_identity_comes_from_users_groups_and_gitops_mapping() -> None:
    platform = PlatformSettings(users=("root-bot",), groups=("system:masters", "platform"),
                                gitops_controllers=(GitopsController("system:serviceaccount:argocd:app", ("team-*",)),))
    assert classify(UserInfo("bob", groups=("platform",)), "x", platform).platform
    assert classify(UserInfo("root-bot"), "x", platform).platform
    assert not classify(UserInfo("alice", groups=("dev",)), "x", platform).platform
    argo = UserInfo("system:serviceaccount:argocd:app", groups=("system:masters",))
    acting = classify(argo, "team-a", platform)
    assert not acting.platform and acting.acting_for == "team-*"
    assert acting.service_account == ("argocd", "app")
    assert classify(argo, "kube-public", platform).platform


def test_a_config_exception_turns_the_finding_into_audit_and_is_recorded() -> None:
    p = pipeline(exceptions=[{"rules": [RULE], "namespace": "team-a", "name": "web", "expires": "2026-12-31",
                              "reason": "vendor agent", "ticket": "SEC-1"}])
    decision = review(p, policy())
    assert mine(decision)[0].mode is Mode.AUDIT
    assert "SEC-1" in mine(decision)[0].reason
    assert any("SEC-1" in e for e in decision.exceptions_used)
    assert mine(review(p, policy(name="other")))[0].mode is Mode.ENFORCE


def test_an_expired_exception_stops_applying_and_says_when_it_expired() -> None:
    p = pipeline(exceptions=[{"rules": [RULE], "namespace": "team-a", "name": "*", "expires": "2026-11-01",
                              "reason": "old", "ticket": "SEC-2"}])
    finding = mine(review(p, policy()))[0]
    assert finding.mode is Mode.ENFORCE
    assert "exception SEC-2 expired on 2026-11-01" in finding.reason


@pytest.fixture(scope="module")
def signing() -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    return key, {"exception_keys": [{"id": "sec", "public_key": exceptions.public_key_text(key.public_key())}]}


def token(key: Ed25519PrivateKey, **kw: Any) -> str:
    grant = {"rules": [RULE], "namespace": "team-a", "name": "web", "expires": date(2026, 12, 31),
             "reason": "approved", "ticket": "SEC-3", "kind": "NetworkPolicy", "issued": TODAY, **kw}
    return exceptions.sign(key, "sec", **grant)


def test_a_signed_token_on_the_object_grants_the_exception(signing: Any) -> None:
    key, keys = signing
    decision = review(pipeline(**keys), policy(annotations={exceptions.ANNOTATION: token(key)}))
    assert mine(decision)[0].mode is Mode.AUDIT
    assert "signed:sec" in mine(decision)[0].reason
    # The token names one rule: the others still apply.
    assert all(f.mode is Mode.ENFORCE for f in decision.findings if f.finding.rule != RULE)


def test_a_forged_token_is_ignored_and_the_requester_is_told(signing: Any) -> None:
    _, keys = signing
    forged = token(Ed25519PrivateKey.generate())
    decision = review(pipeline(**keys), policy(annotations={exceptions.ANNOTATION: forged}))
    assert decision.verdict is Verdict.DENIED
    assert any("signature does not verify" in n for n in decision.notices)


def test_a_widened_or_extended_token_fails_its_signature(signing: Any) -> None:
    import base64
    import json

    key, keys = signing
    prefix, body, sig = token(key).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    for change in ({"rules": [RULE, "no-internet-egress-without-ports"]}, {"expires": "2099-01-01"}):
        tampered = dict(payload, **change)
        new_body = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
        decision = review(pipeline(**keys), policy(annotations={exceptions.ANNOTATION: f"{prefix}.{new_body}.{sig}"}))
        assert mine(decision)[0].mode is Mode.ENFORCE
        assert any("signature does not verify" in n for n in decision.notices)


def test_a_token_copied_to_another_policy_or_namespace_does_not_apply(signing: Any) -> None:
    key, keys = signing
    p = pipeline(**keys)
    for obj in (policy(name="copy", annotations={exceptions.ANNOTATION: token(key)}),
                policy(namespace="team-b", annotations={exceptions.ANNOTATION: token(key)})):
        decision = review(p, obj)
        assert decision.verdict is Verdict.DENIED
        assert any("was granted for NetworkPolicy team-a/web" in n for n in decision.notices)


def test_an_expired_token_no_longer_applies(signing: Any) -> None:
    key, keys = signing
    obj = policy(annotations={exceptions.ANNOTATION: token(key, expires=date(2026, 1, 1))})
    finding = mine(review(pipeline(**keys), obj))[0]
    assert finding.mode is Mode.ENFORCE and "expired on 2026-01-01" in finding.reason


def test_an_update_that_keeps_an_existing_violation_is_warned_not_denied() -> None:
    p = pipeline()
    old = policy()
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"touched": "yes"}
    decision = review(p, new, operation="UPDATE", old=old)
    assert decision.allowed
    assert mine(decision)[0].mode is Mode.WARN and "already present" in mine(decision)[0].reason


def test_an_update_that_adds_a_violation_is_denied() -> None:
    p = pipeline()
    old = policy(egress=[{"to": [{"podSelector": {}}], "ports": [{"port": 443}]}])
    decision = review(p, policy(), operation="UPDATE", old=old)
    assert decision.verdict is Verdict.DENIED


def test_leniency_can_be_turned_off() -> None:
    p = pipeline(updates={"existing_violations": "enforce"})
    decision = review(p, policy(), operation="UPDATE", old=policy())
    assert decision.verdict is Verdict.DENIED
