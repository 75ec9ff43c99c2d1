"""Which catalog the commands use by default, and `netguard policies path` / `netguard --version` saying so.

The order: --policies, then $NETGUARD_POLICIES_DIR, then policies_dir in the configuration file, else the catalog
packaged with netguard; never ./policies. tests/cli/test_wheel_install.py runs the same from an installed wheel.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from webhook import config, packaged
from webhook.cli import main, version_line
from webhook.core.settings import POLICIES_FROM_ENV, POLICIES_PACKAGED, Settings
from webhook.engine.policies import PolicyLoadError, catalog_revision, load_policy_set
from webhook.packaged import packaged_catalog

REPO = Path(__file__).resolve().parents[2]
REVISION = load_policy_set(REPO / "policies").revision


@pytest.fixture
def team_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is a team's repository with a policies/ folder that is not a netguard catalog."""
    for var in ("NETGUARD_POLICIES_DIR", "NETGUARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "policies" / "quota").mkdir(parents=True)
    (tmp_path / "policies" / "quota" / "policy.yaml").write_text("kind: ResourceQuota\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def test_from_a_checkout_the_packaged_catalog_is_the_checkouts_policies_whatever_the_directory(
        team_repo: Path) -> None:
    assert packaged_catalog() == REPO / "policies"
    settings = config.load()
    assert Path(settings.policies_dir) == REPO / "policies" and settings.policies_from == POLICIES_PACKAGED
    assert Settings().policies_dir == str(REPO / "policies")
    assert catalog_revision(settings.policies_dir) == REVISION


def test_an_installed_package_uses_its_own_catalog_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages" / "webhook"
    (site / "catalog").mkdir(parents=True)
    monkeypatch.setattr(packaged.resources, "files", lambda package: site)
    assert packaged_catalog() == site / "catalog"
    # Neither a wheel's catalog nor a checkout beside the module: the wheel's place, which then does not load.
    (site / "catalog").rmdir()
    monkeypatch.setattr(packaged, "__file__", str(site / "packaged.py"))
    assert packaged_catalog() == site / "catalog"
    with pytest.raises(PolicyLoadError, match="policies folder not found"):
        catalog_revision(packaged_catalog())


def test_env_config_and_flag_each_override_and_say_so(team_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = team_repo / "other-catalog"
    shutil.copytree(REPO / "policies" / "lib", other / "lib")
    shutil.copytree(REPO / "policies" / "no-broad-cidr", other / "no-broad-cidr")
    revision = load_policy_set(other).revision
    conf = team_repo / "netguard.yaml"
    conf.write_text(f"policies_dir: {other}\n")

    assert config.load(str(conf)).policies_from == f"config policies_dir in {conf}"
    env_settings = config.load(str(conf), env={"NETGUARD_POLICIES_DIR": str(REPO / "policies")})
    assert env_settings.policies_from == POLICIES_FROM_ENV
    assert env_settings.policies_dir == str(REPO / "policies")

    assert main(["policies", "path", "--config", str(conf)]) == 0
    assert _fields(capsys.readouterr().out) == {"catalog": str(other), "from": f"config policies_dir in {conf}",
                                                "revision": revision, "guardrails": "1"}
    assert main(["policies", "path", "--config", str(conf), "--policies", str(REPO / "policies")]) == 0
    shown = _fields(capsys.readouterr().out)
    assert shown["from"] == "flag --policies" and shown["revision"] == REVISION

    assert main(["policies", "path"]) == 0
    shown = _fields(capsys.readouterr().out)
    assert shown == {"catalog": str(REPO / "policies"), "from": shown["from"], "revision": REVISION,
                     "guardrails": str(len(load_policy_set(REPO / "policies").guardrails))}
    assert re.fullmatch(r"packaged \(installed with netguard \S+\)", shown["from"])


def test_policies_path_names_the_folder_even_when_it_does_not_load(
        team_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies", "path", "--policies", "policies"]) == 2
    out, err = capsys.readouterr()
    assert out == f"catalog:    {team_repo / 'policies'}\nfrom:       flag --policies\n"
    assert "policies/quota: missing rule.rego" in err


def test_version_names_the_package_and_the_catalog_revision(
        team_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(rf"netguard \S+ \(catalog {REVISION}\)\n", capsys.readouterr().out)
    monkeypatch.setenv("NETGUARD_POLICIES_DIR", str(team_repo / "missing"))
    assert re.fullmatch(r"netguard \S+ \(catalog unavailable: .*missing: policies folder not found\)", version_line())


def test_check_and_the_catalog_commands_ignore_the_working_directorys_policies_folder(
        team_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = team_repo / "allow-all.yaml"
    manifest.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                        "metadata: {name: a, namespace: team-a}\nspec: {podSelector: {}, egress: [{}]}\n")
    assert main(["check", str(manifest)]) == 1
    assert "error[no-allow-all-egress]" in capsys.readouterr().out
    assert main(["policies", "list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(load_policy_set(REPO / "policies").guardrails)
