"""The pre-commit hook `netguard-check` (.pre-commit-hooks.yaml), run by pre-commit itself.

`pre-commit try-repo` installs this repository the way a team's pre-commit does (`language: python`: the
repository and its dependencies pip-installed into a fresh virtual environment, no checkout beside it, so the
package must carry its catalog), then runs the hook in a throwaway git repository with one good and one bad
policy. try-repo takes a repository's committed files (plus changes to tracked ones), so the hook runs from
a throwaway commit of this working tree (`git ls-files` of tracked and untracked, not ignored, files): this
repository's own git state is only read.

Slow (a fresh environment: ~50-100 s, mostly pip) and it needs the package index, which CI reaches; pip is
given constraints.txt, so it resolves without backtracking to the versions CI tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cli.test_check import ALLOW_ALL, GOOD
from tests.cli.test_check_fail_on import WARN_ONLY

ROOT = Path(__file__).resolve().parents[2]
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "netguard tests", "GIT_AUTHOR_EMAIL": "tests@netguard.invalid",
                "GIT_COMMITTER_NAME": "netguard tests", "GIT_COMMITTER_EMAIL": "tests@netguard.invalid"}


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout


def clean_env(home: Path) -> dict[str, str]:
    """No netguard variables (the hook must find the packaged catalog on its own), no global git config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NETGUARD_", "GIT_", "PRE_COMMIT")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **GIT_IDENTITY, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "PRE_COMMIT_HOME": str(home / "pre-commit-cache"),  # a fresh hook environment, removed with tmp_path
            "PIP_CONSTRAINT": str(ROOT / "constraints.txt"), "PIP_NO_COMPILE": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def hook_repository(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A one-commit copy of this working tree: what a team's pre-commit would clone at a tag."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    copy = tmp_path / "netguard-repo"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    git(copy, "init", "-q", env=env)
    git(copy, "add", "-A", env=env)
    git(copy, "commit", "-q", "-m", "netguard under test", env=env)
    return copy, git(copy, "rev-parse", "HEAD", env=env).strip()


def team_repository(tmp_path: Path, env: dict[str, str]) -> Path:
    """A team's repository: a good and a bad policy under k8s/, a warn-only one, and a file that is no YAML."""
    team = tmp_path / "team-repo"
    (team / "k8s").mkdir(parents=True)
    (team / "k8s" / "good.yaml").write_text(GOOD, encoding="utf-8")
    (team / "k8s" / "bad.yaml").write_text(ALLOW_ALL, encoding="utf-8")
    (team / "k8s" / "warn.yaml").write_text(WARN_ONLY, encoding="utf-8")
    (team / "README.md").write_text("# team\n", encoding="utf-8")
    # pre-commit's own config is YAML but no manifest: the hook's default `exclude` keeps it out.
    (team / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    git(team, "init", "-q", env=env)
    git(team, "add", "-A", env=env)
    git(team, "commit", "-q", "-m", "policies", env=env)
    return team


def try_repo(team: Path, repo: Path, ref: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(repo), "netguard-check",
                           "--ref", ref, "--verbose", *args], cwd=team, env=env, capture_output=True, text=True,
                          timeout=540)
    return done.returncode, done.stdout + done.stderr


def test_the_hook_definition() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "netguard-check"
    assert hook["entry"] == "netguard check"  # text output: the default format
    assert hook["language"] == "python" and hook["types"] == ["yaml"]
    assert not hook.get("additional_dependencies") and "args" not in hook
    exclude = re.compile(hook["exclude"])
    for never_a_manifest in (".pre-commit-config.yaml", ".gitlab-ci.yml", ".github/workflows/ci.yaml"):
        assert exclude.search(never_a_manifest), never_a_manifest
    for manifest in ("k8s/policy.yaml", "deploy/.github/x.yaml", "apps/.gitlab-ci.yml.d/p.yaml"):
        assert not exclude.search(manifest), manifest
    subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                   check=True, capture_output=True, timeout=60)


@pytest.mark.timeout(600)
def test_pre_commit_try_repo_fails_on_the_bad_policy_only(tmp_path: Path) -> None:
    """One try-repo run (each installs a fresh environment: it keeps no cache between runs) over all files."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    repo, ref = hook_repository(tmp_path, env)
    team = team_repository(tmp_path, env)
    started = time.monotonic()
    code, out = try_repo(team, repo, ref, env, "--all-files")
    print(f"pre-commit try-repo (installing the hook environment, then the hook): {time.monotonic() - started:.0f} s")
    assert "policies folder not found" not in out, out  # the installed package found its own catalog
    assert code == 1, out
    assert "netguard check" in out and "Failed" in out and "exit code: 1" in out
    assert "k8s/bad.yaml:11:7: error[no-allow-all-egress]" in out
    assert "k8s/good.yaml" not in out  # no finding
    assert "k8s/warn.yaml" in out and "warning[internet-egress]" in out  # shown; warnings alone do not fail
    assert "error[input]" not in out, out  # neither README.md nor .pre-commit-config.yaml reached netguard
