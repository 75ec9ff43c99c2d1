"""`netguard exception keygen|sign|verify` and `netguard policies test|list`."""

from __future__ import annotations

import shutil
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from webhook.cli import main

REPO = Path(__file__).resolve().parents[2]
SOON = (date.today() + timedelta(days=30)).isoformat()


def test_keygen_sign_verify_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exception", "keygen", "--out", str(tmp_path), "--id", "sec-2026"]) == 0
    snippet = yaml.safe_load(capsys.readouterr().out)
    assert snippet["exception_keys"][0]["id"] == "sec-2026"
    key = tmp_path / "netguard-exception.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["exception", "sign", "--key", str(key), "--key-id", "sec-2026", "--rule", "no-broad-cidr",
                 "--namespace", "team-a", "--name", "legacy", "--kind", "NetworkPolicy", "--expires", SOON,
                 "--reason", "vendor", "--ticket", "SEC-9"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ngx1.")
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(snippet))
    assert main(["exception", "verify", token, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: id ") and "rules no-broad-cidr" in out and "team-a/legacy" in out
    assert "SEC-9" in out


def test_verify_rejects_a_token_from_another_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["exception", "keygen", "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert main(["exception", "sign", "--key", str(tmp_path / "a" / "netguard-exception.key"), "--rule", "x",
                 "--namespace", "n", "--name", "p", "--kind", "NetworkPolicy", "--expires", SOON,
                 "--reason", "r"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["exception", "verify", token, "--public-key", str(tmp_path / "b" / "netguard-exception.pub")]) == 2
    assert "signature does not verify" in capsys.readouterr().err


def test_verify_reports_an_expired_token_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives import serialization

    from webhook.core import exceptions

    assert main(["exception", "keygen", "--out", str(tmp_path)]) == 0
    assert main(["exception", "sign", "--key", str(tmp_path / "netguard-exception.key"), "--rule", "x",
                 "--namespace", "n", "--name", "p", "--kind", "NetworkPolicy", "--expires", "2020-01-01",
                 "--reason", "r"]) == 2  # signing refuses a past expiry; one signed back then:
    key = serialization.load_pem_private_key((tmp_path / "netguard-exception.key").read_bytes(), password=None)
    token = exceptions.sign(key, "security", rules=["x"], namespace="n", name="p",  # type: ignore[arg-type]
                            kind="NetworkPolicy", expires=date(2020, 1, 1), reason="r", issued=date(2019, 12, 1))
    capsys.readouterr()
    assert main(["exception", "verify", token, "--public-key", str(tmp_path / "netguard-exception.pub")]) == 1
    assert capsys.readouterr().out.startswith("EXPIRED")


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    assert main(["exception", "keygen", "--out", str(tmp_path)]) == 0
    assert main(["exception", "keygen", "--out", str(tmp_path)]) == 2


def test_policies_test_passes_on_the_catalog_and_fails_on_a_misfiled_sample(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies", "test", "--policies", str(REPO / "policies")]) == 0
    assert "all checks passed" in capsys.readouterr().out
    copy = tmp_path / "policies"
    shutil.copytree(REPO / "policies", copy)
    bad = copy / "no-allow-all-egress" / "samples" / "bad" / "k8s-empty-egress-rule.yaml"
    bad.rename(copy / "no-allow-all-egress" / "samples" / "good" / "misfiled.yaml")
    assert main(["policies", "test", "--policies", str(copy)]) == 1
    assert "FAIL sample no-allow-all-egress: good/misfiled.yaml" in capsys.readouterr().out


def test_policies_list_shows_every_guardrail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies", "list", "--policies", str(REPO / "policies")]) == 0
    out = capsys.readouterr().out
    assert "no-allow-all-egress" in out and "enforce" in out


def test_the_catalog_document_matches_the_guardrail_metadata() -> None:
    from webhook.engine.policies import load_policy_set
    from webhook.offline.catalog_docs import render

    expected = render(load_policy_set(REPO / "policies"))
    actual = (REPO / "docs" / "guardrails.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/guardrails.md is stale: run `netguard policies docs > docs/guardrails.md`"


def test_keygen_force_over_a_world_readable_file_leaves_the_key_0600(tmp_path: Path) -> None:
    key = tmp_path / "netguard-exception.key"
    key.write_text("old")
    key.chmod(0o644)
    assert main(["exception", "keygen", "--out", str(tmp_path), "--force"]) == 0
    assert stat.S_IMODE(key.lstat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_keygen_never_follows_a_symlink_at_the_key_path(tmp_path: Path) -> None:
    key, target = tmp_path / "netguard-exception.key", tmp_path / "elsewhere" / "stolen.key"
    target.parent.mkdir()
    key.symlink_to(target)  # dangling
    assert main(["exception", "keygen", "--out", str(tmp_path)]) == 2  # it is there: refused without --force
    assert not target.exists()
    assert main(["exception", "keygen", "--out", str(tmp_path), "--force"]) == 0
    assert not target.exists() and not key.is_symlink()
    assert stat.S_IMODE(key.lstat().st_mode) == 0o600


def _signed(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    if not (tmp_path / "netguard-exception.key").exists():
        assert main(["exception", "keygen", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    code = main(["exception", "sign", "--key", str(tmp_path / "netguard-exception.key"), "--rule", "x",
                 "--namespace", "n", "--name", "p", "--reason", "r", *extra])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def test_sign_requires_a_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _signed(tmp_path, capsys, "--expires", "2099-01-01")
    assert exc.value.code == 2
    assert "--kind" in capsys.readouterr().err


def test_sign_refuses_an_expiry_beyond_the_maximum_lifetime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import date, timedelta

    far = (date.today() + timedelta(days=91)).isoformat()
    code, out, err = _signed(tmp_path, capsys, "--kind", "NetworkPolicy", "--expires", far)
    assert code == 2 and not out
    assert "exceptions.max_lifetime_days (90)" in err
    config = tmp_path / "netguard.yaml"
    config.write_text("exceptions: {max_lifetime_days: 120}\n")
    code, out, err = _signed(tmp_path, capsys, "--kind", "NetworkPolicy", "--expires", far, "--config", str(config))
    assert code == 0 and out.startswith("ngx1.")


def test_sign_shows_the_token_id_and_binds_the_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import date, timedelta

    from webhook.core import exceptions

    manifest = tmp_path / "policy.yaml"
    manifest.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\n"
                        "spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}\n")
    soon = (date.today() + timedelta(days=30)).isoformat()
    code, token, err = _signed(tmp_path, capsys, "--kind", "NetworkPolicy", "--expires", soon,
                               "--bind-spec", str(manifest))
    assert code == 0
    assert f"token id {exceptions.token_id(token)}" in err and "bound to the spec" in err
    assert main(["exception", "verify", token, "--public-key", str(tmp_path / "netguard-exception.pub")]) == 0
    out = capsys.readouterr().out
    assert f"id {exceptions.token_id(token)}" in out and "spec sha256" in out
