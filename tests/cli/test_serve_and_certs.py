"""`netguard serve` refuses to start on bad configuration or policies; `netguard certs` writes keys safely."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from webhook.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webhook.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture
def certs_dir(tmp_path: Path) -> Path:
    assert main(["certs", "generate", "--out", str(tmp_path / "certs")]) == 0
    return tmp_path / "certs"


def serve_env(certs_dir: Path, **extra: str) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(NETGUARD_TLS_CERT=str(certs_dir / "tls.crt"), NETGUARD_TLS_KEY=str(certs_dir / "tls.key"), **extra)
    return env


def test_check_only_loads_everything_and_exits_zero(certs_dir: Path) -> None:
    result = run_cli("serve", "--check-only", env=serve_env(certs_dir))
    assert result.returncode == 0, result.stderr
    assert "guardrails, revision" in result.stderr


def test_a_rego_syntax_error_stops_start_up_with_file_and_line(certs_dir: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    rule = policies / "no-allow-all-egress" / "rule.rego"
    rule.write_text(rule.read_text().replace("rule.facts.allows_everything", "rule.facts.allows_everything ==", 1))
    result = run_cli("serve", "--check-only", "--policies", str(policies), env=serve_env(certs_dir))
    assert result.returncode == 2
    assert "no-allow-all-egress/rule.rego:" in result.stderr
    assert "Stack backtrace" not in result.stderr


def test_an_unknown_function_is_caught_at_start_up_not_on_the_first_request(certs_dir: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    rule = policies / "no-allow-all-egress" / "rule.rego"
    rule.write_text(rule.read_text().replace("rule.facts.allows_everything", "no_such_function(rule)", 1))
    result = run_cli("serve", "--check-only", "--policies", str(policies), env=serve_env(certs_dir))
    assert result.returncode == 2
    assert "no_such_function" in result.stderr and "rule.rego:" in result.stderr


def test_a_configuration_typo_stops_start_up_naming_the_key(certs_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text("rules:\n  no-allow-all-egress:\n    mdoe: warn\n")
    result = run_cli("serve", "--check-only", "--config", str(config), env=serve_env(certs_dir))
    assert result.returncode == 2
    assert "rules.no-allow-all-egress" in result.stderr and "mdoe" in result.stderr


def test_missing_tls_files_are_reported_with_the_fix(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, NETGUARD_TLS_CERT=str(tmp_path / "nope.crt"), NETGUARD_TLS_KEY=str(tmp_path / "nope.key"))
    result = run_cli("serve", "--check-only", env=env)
    assert result.returncode == 2 and "netguard certs generate" in result.stderr


def test_certs_generate_prints_the_ca_bundle_and_refuses_to_overwrite(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["certs", "generate", "--service", "ng", "--namespace", "sec", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().startswith("LS0t")  # base64 of "-----BEGIN"
    assert "ng.sec.svc" in captured.err
    before = (out / "tls.key").read_bytes()
    assert main(["certs", "generate", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "tls.key").read_bytes() == before
    assert main(["certs", "generate", "--out", str(out), "--force"]) == 0
    assert (out / "tls.key").read_bytes() != before


def test_certs_generate_force_never_follows_a_symlink_and_leaves_keys_0600(tmp_path: Path) -> None:
    import stat

    out = tmp_path / "c"
    out.mkdir()
    target = tmp_path / "elsewhere.key"
    (out / "tls.key").symlink_to(target)  # dangling
    (out / "ca.key").write_text("old")
    (out / "ca.key").chmod(0o644)
    assert main(["certs", "generate", "--out", str(out)]) == 2
    assert not target.exists()
    assert main(["certs", "generate", "--out", str(out), "--force"]) == 0
    assert not target.exists() and not (out / "tls.key").is_symlink()
    for name in ("tls.key", "ca.key"):
        assert stat.S_IMODE((out / name).lstat().st_mode) == 0o600
