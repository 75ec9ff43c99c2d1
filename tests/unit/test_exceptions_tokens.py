"""Signed exception tokens: kind required, spec binding, maximum lifetime, revocation, token ids (issue 11.3)."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from webhook.config import from_mapping
from webhook.core import exceptions
from webhook.core.admission import parse_review
from webhook.core.model import Decision, Mode
from webhook.core.reviews import make_review
from webhook.core.settings import ConfigError
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
RULE = "no-allow-all-egress"
TODAY = date(2026, 11, 24)
KEY = Ed25519PrivateKey.generate()
KEYS = {"exception_keys": [{"id": "sec", "public_key": exceptions.public_key_text(KEY.public_key())}]}
SPEC: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}


def policy(kind: str = "NetworkPolicy", spec: dict[str, Any] | None = None, token: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "legacy", "namespace": "team-a"}
    if token:
        meta["annotations"] = {exceptions.ANNOTATION: token}
    if kind == "NetworkPolicy":
        return {"apiVersion": "networking.k8s.io/v1", "kind": kind, "metadata": meta, "spec": spec or SPEC}
    return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta,
            "spec": spec or {"endpointSelector": {}, "egress": [{"toEntities": ["all"]}]}}


def sign(**kw: Any) -> str:
    grant: dict[str, Any] = {"rules": [RULE], "namespace": "team-a", "name": "legacy", "kind": "NetworkPolicy",
                             "expires": date(2026, 12, 31), "reason": "vendor", "ticket": "SEC-11",
                             "issued": TODAY, **kw}
    return exceptions.sign(KEY, "sec", **grant)


def pipeline(**config: Any) -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"), **KEYS, **config}))


@pytest.fixture(scope="module")
def default() -> Pipeline:
    return pipeline()


def finding(p: Pipeline, obj: dict[str, Any]) -> tuple[Any, Decision]:
    decision = p.review(parse_review(make_review(obj)), today=TODAY).decision
    return next(f for f in decision.findings if f.finding.rule == RULE), decision


def resign(payload_change: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """A token signed by the trusted key over a payload edited by hand (what an old netguard signed)."""
    body = sign().split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload.update(payload_change)
    for k in drop:
        payload.pop(k, None)
    raw = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(KEY.sign(b"netguard-exception-v1." + raw.encode())).rstrip(b"=").decode()
    return f"ngx1.{raw}.{sig}"


def test_signing_requires_a_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        sign(kind="")


def test_a_token_for_a_networkpolicy_does_not_exempt_the_cilium_policy_of_the_same_name(default: Pipeline) -> None:
    f, decision = finding(default, policy("CiliumNetworkPolicy", token=sign()))
    assert f.mode is Mode.ENFORCE
    assert any("granted for NetworkPolicy team-a/legacy" in n for n in decision.notices)
    assert finding(default, policy(token=sign()))[0].mode is Mode.AUDIT


def test_an_old_token_without_a_kind_no_longer_applies_and_says_why(default: Pipeline) -> None:
    f, decision = finding(default, policy(token=resign({}, drop=("kind",))))
    assert f.mode is Mode.ENFORCE
    assert "names no kind" in f.reason
    assert any("names no kind" in n and "--kind" in n for n in decision.notices)


def test_a_spec_bound_token_stops_applying_when_the_spec_changes(default: Pipeline) -> None:
    token = sign(spec_digest=exceptions.spec_digest(policy()))
    assert finding(default, policy(token=token))[0].mode is Mode.AUDIT
    widened = dict(SPEC, egress=[{}, {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    f, decision = finding(default, policy(spec=widened, token=token))
    assert f.mode is Mode.ENFORCE
    assert "no longer applies: the policy's spec changed since the token was signed" in f.reason
    assert any("spec changed since the token was signed" in n for n in decision.notices)


def test_the_spec_digest_is_sha256_of_canonical_json_of_spec_and_specs() -> None:
    import hashlib

    obj = policy(spec={"podSelector": {}, "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]})
    canonical = json.dumps({"spec": obj["spec"]}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert exceptions.spec_digest(obj) == hashlib.sha256(canonical.encode()).hexdigest()
    reordered = dict(reversed(list(obj["spec"].items())))
    assert exceptions.spec_digest(dict(obj, spec=reordered)) == exceptions.spec_digest(obj)
    assert exceptions.spec_digest(dict(obj, specs=[{}])) != exceptions.spec_digest(obj)


def test_a_token_living_longer_than_the_maximum_no_longer_applies(default: Pipeline) -> None:
    f, _ = finding(default, policy(token=sign(expires=date(2027, 3, 1))))  # 97 days after it was issued
    assert f.mode is Mode.ENFORCE
    assert "exceptions.max_lifetime_days (90)" in f.reason
    longer = pipeline(exceptions={"max_lifetime_days": 120})
    assert finding(longer, policy(token=sign(expires=date(2027, 3, 1))))[0].mode is Mode.AUDIT


def test_without_an_issue_date_the_lifetime_counts_from_today(default: Pipeline) -> None:
    f, _ = finding(default, policy(token=resign({"expires": "2099-12-31"}, drop=("iat",))))
    assert f.mode is Mode.ENFORCE and "exceptions.max_lifetime_days (90)" in f.reason
    assert finding(default, policy(token=resign({}, drop=("iat",))))[0].mode is Mode.AUDIT


def test_a_revoked_token_does_not_apply_and_says_so() -> None:
    token = sign()
    p = pipeline(exceptions={"revoked": [exceptions.token_id(token)]})
    f, decision = finding(p, policy(token=token))
    assert f.mode is Mode.ENFORCE and f"token {exceptions.token_id(token)} is revoked" in f.reason
    assert any("revoked" in n for n in decision.notices)
    assert finding(p, policy(token=sign(ticket="SEC-12")))[0].mode is Mode.AUDIT


def test_the_token_id_is_stable_and_survives_re_encoding_of_the_signature() -> None:
    token = sign()
    assert exceptions.token_id(token) == exceptions.token_id(sign())
    assert len(exceptions.token_id(token)) == 16
    assert exceptions.token_id(token + "=") == exceptions.token_id(token)
    assert exceptions.token_id(sign(ticket="other")) != exceptions.token_id(token)


def test_the_exceptions_section_takes_the_old_list_or_a_mapping() -> None:
    grant = {"rules": [RULE], "namespace": "a", "name": "b", "expires": "2026-12-31", "reason": "r"}
    old = from_mapping({"exceptions": [grant]})
    new = from_mapping({"exceptions": {"granted": [grant], "max_lifetime_days": 30, "revoked": ["0123456789abcdef"]}})
    assert old.exceptions == new.exceptions and len(new.exceptions) == 1
    assert old.exception_tokens.max_lifetime_days == 90 and old.exception_tokens.revoked == ()
    assert new.exception_tokens.max_lifetime_days == 30 and new.exception_tokens.revoked == ("0123456789abcdef",)
    with pytest.raises(ConfigError, match="max_lifetime_days"):
        from_mapping({"exceptions": {"max_lifetime_days": 0}})
    with pytest.raises(ConfigError, match="exceptions"):
        from_mapping({"exceptions": {"maxlifetime": 3}})


def test_the_audit_lists_tokens_by_id_bound_or_not_with_their_expiry(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli import main

    bound = sign(expires=date.today(), issued=date.today(), spec_digest=exceptions.spec_digest(policy()))
    loose = sign(expires=date.today(), issued=date.today(), name="other")
    other = dict(policy(token=loose), metadata={"name": "other", "namespace": "team-a",
                                                "annotations": {exceptions.ANNOTATION: loose}})
    (tmp_path / "a.json").write_text(json.dumps(policy(token=bound)))
    (tmp_path / "b.json").write_text(json.dumps(other))
    config = tmp_path / "netguard.json"
    config.write_text(json.dumps({"policies_dir": str(REPO / "policies"), **KEYS}))
    main(["audit", "--from", str(tmp_path / "a.json"), "--from", str(tmp_path / "b.json"), "--config", str(config),
          "--format", "json"])
    items = json.loads(capsys.readouterr().out)["posture"]["exceptions"]["items"]
    got = {(i["id"], i["bound"], i["expires"]) for i in items}
    assert got == {(exceptions.token_id(bound), True, date.today().isoformat()),
                   (exceptions.token_id(loose), False, date.today().isoformat())}
    main(["audit", "--from", str(tmp_path / "a.json"), "--config", str(config), "--format", "markdown"])
    assert f"token {exceptions.token_id(bound)}, spec-bound" in capsys.readouterr().out
