"""`netguard exception keygen|sign|verify` and `netguard policies test|list`."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import yaml

from webhook.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_keygen_sign_verify_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exception", "keygen", "--out", str(tmp_path), "--id", "sec-2026"]) == 0
    snippet = yaml.safe_load(capsys.readouterr().out)
    assert snippet["exception_keys"][0]["id"] == "sec-2026"
    key = tmp_path / "netguard-exception.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["exception", "sign", "--key", str(key), "--key-id", "sec-2026", "--rule", "no-broad-cidr",
                 "--namespace", "team-a", "--name", "legacy", "--expires", "2099-12-31", "--reason", "vendor",
                 "--ticket", "SEC-9"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ngx1.")
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(snippet))
    assert main(["exception", "verify", token, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: rules no-broad-cidr") and "team-a/legacy" in out and "SEC-9" in out


def test_verify_rejects_a_token_from_another_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["exception", "keygen", "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert main(["exception", "sign", "--key", str(tmp_path / "a" / "netguard-exception.key"), "--rule", "x",
                 "--namespace", "n", "--name", "p", "--expires", "2099-01-01", "--reason", "r"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["exception", "verify", token, "--public-key", str(tmp_path / "b" / "netguard-exception.pub")]) == 2
    assert "signature does not verify" in capsys.readouterr().err


def test_verify_reports_an_expired_token_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exception", "keygen", "--out", str(tmp_path)]) == 0
    assert main(["exception", "sign", "--key", str(tmp_path / "netguard-exception.key"), "--rule", "x",
                 "--namespace", "n", "--name", "p", "--expires", "2020-01-01", "--reason", "r"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
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
    from webhook.catalog_docs import render
    from webhook.policies import load_policy_set

    expected = render(load_policy_set(REPO / "policies"))
    actual = (REPO / "docs" / "guardrails.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/guardrails.md is stale: run `netguard policies docs > docs/guardrails.md`"
