"""The catalog travels with the package: the built wheel, installed into a fresh venv, works from any folder.

The wheel is built from exactly what the Dockerfile's builder stage copies (pyproject.toml, README.md, webhook/,
policies/), in a temporary copy: an in-tree build would reuse build/lib, where a guardrail deleted from policies/
would linger. It is built offline (--no-build-isolation --no-index, with the setuptools of the dev extras).

The fresh venv gets the wheel with --no-deps; its dependencies come from this test's own venv through a `.pth`
file naming that venv's site-packages. A plain path line in a .pth adds the folder to sys.path without running
the .pth files inside it, so the editable install of this checkout (a .pth and an import finder there) stays
out: `webhook` is imported from the wheel (asserted below, via the catalog's path). The test is about the
wheel's own contents; downloading every dependency a second time would only make it slow and need a network.

The commands then run from a team's repository that has a policies/ folder of its own, unrelated to netguard,
and from a folder without one: neither may change which catalog is used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.manifests import ALLOW_ALL_EGRESS, WEB_INGRESS
from webhook.engine.policies import _catalog_files, load_policy_set

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_policy_set(REPO / "policies")



@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    team_repo: Path  # has k8s/ and an unrelated policies/ folder
    elsewhere: Path  # an empty folder

    def run(self, *args: str, cwd: Path | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith("NETGUARD_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        clean["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
        return subprocess.run([str(self.venv / "bin" / "netguard"), *args], cwd=cwd or self.team_repo,
                              input=stdin, capture_output=True, text=True, timeout=60, env={**clean, **(env or {})})


def _build_wheel(out: Path, work: Path) -> Path:
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (77, 0), (
        f"setuptools {setuptools.__version__} cannot build a wheel on its own; the dev extras ask for >= 77 "
        "(make venv, or pip install -e '.[dev]')")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("webhook", "policies"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "-w", str(out), str(source)],
                   check=True, capture_output=True, text=True, timeout=120, cwd=work)
    wheels = sorted(out.glob("netguard-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _fresh_venv(venv: Path, wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "netguard-test-dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel-install")
    wheel = _build_wheel(root / "dist", root)
    _fresh_venv(root / "venv", wheel)
    team = root / "my-team-repo"
    (team / "k8s").mkdir(parents=True)
    (team / "k8s" / "allow-all.yaml").write_text(ALLOW_ALL_EGRESS)
    (team / "k8s" / "web.yaml").write_text(WEB_INGRESS)
    # The team's own, unrelated policies/ folder: with ./policies as the default, every command would fail here
    # ("policies/quota: missing rule.rego") or, worse, quietly use the wrong rules.
    (team / "policies" / "quota").mkdir(parents=True)
    (team / "policies" / "quota" / "policy.yaml").write_text("kind: ResourceQuota\n")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel=wheel, venv=root / "venv", team_repo=team, elsewhere=elsewhere)


def test_the_wheel_carries_the_whole_catalog_and_nothing_else_at_the_top(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
    assert {n.split("/")[0] for n in names} == {"webhook", next(n.split("/")[0] for n in names
                                                                if ".dist-info/" in n)}
    packaged = {n.removeprefix("webhook/catalog/") for n in names if n.startswith("webhook/catalog/")}
    assert packaged == {str(p.relative_to(REPO / "policies")) for p in _catalog_files(REPO / "policies")}
    assert {"webhook/schemas/config.schema.json", "webhook/schemas/policy.schema.json", "webhook/py.typed"} <= set(
        names)


def test_version_and_policies_path_name_the_packaged_catalog_with_the_checkouts_revision(
        installed: Installed) -> None:
    for cwd in (installed.team_repo, installed.elsewhere):
        version = installed.run("--version", cwd=cwd)
        assert version.returncode == 0, version.stderr
        assert re.fullmatch(rf"netguard \d+\.\d+\.\d+\S* \(catalog {CATALOG.revision}\)\n", version.stdout), \
            version.stdout
        path = installed.run("policies", "path", cwd=cwd)
        assert path.returncode == 0, path.stderr
        fields = dict(line.split(":", 1) for line in path.stdout.splitlines())
        fields = {k: v.strip() for k, v in fields.items()}
        catalog = Path(fields["catalog"])
        assert catalog.is_relative_to(installed.venv.resolve()) and catalog.parts[-2:] == ("webhook", "catalog")
        assert fields["from"].startswith("packaged")
        assert fields["revision"] == CATALOG.revision  # same files, same revision, installed or checked out
        assert fields["guardrails"] == str(len(CATALOG.guardrails))


def test_the_commands_run_from_a_team_repository_with_its_own_policies_folder(installed: Installed) -> None:
    listed = installed.run("policies", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [g.id for g in CATALOG.guardrails]

    tested = installed.run("policies", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f"{len(CATALOG.guardrails)} guardrails: all checks passed" in tested.stdout

    checked = installed.run("check", "k8s/", "--format", "json")
    assert checked.returncode == 1, checked.stderr  # an enforced violation
    report = json.loads(checked.stdout)
    assert report["summary"]["policies"] == 2
    assert {f["rule"] for r in report["results"] for f in r["findings"]} >= {"no-allow-all-egress"}
    assert installed.run("check", "k8s/web.yaml").returncode == 0

    explained = installed.run("explain", "k8s/allow-all.yaml")
    assert explained.returncode == 0, explained.stderr
    assert "team-a/allow-all" in explained.stdout

    baseline = installed.run("baseline", "--namespace", "team-a", "--allow-dns")
    assert baseline.returncode == 0, baseline.stderr
    assert [d["metadata"]["labels"]["netguard.io/baseline"] for d in yaml.safe_load_all(baseline.stdout)]
    as_platform = installed.run("check", "-", "--group", "system:masters", stdin=baseline.stdout)
    assert as_platform.returncode == 0, as_platform.stdout + as_platform.stderr

    audited = installed.run("audit", "--from", "k8s/", "--format", "json", "--jobs", "1")
    assert audited.returncode == 0, audited.stderr
    audit = json.loads(audited.stdout)
    assert audit["summary"]["policies"] == 2
    assert "no-allow-all-egress" in json.dumps(audit["findings"])


def test_a_folder_without_policies_gets_the_same_answers(installed: Installed) -> None:
    manifest = installed.elsewhere / "allow-all.yaml"
    manifest.write_text(ALLOW_ALL_EGRESS)
    checked = installed.run("check", str(manifest), cwd=installed.elsewhere)
    assert checked.returncode == 1 and "error[no-allow-all-egress]" in checked.stdout, checked.stdout + checked.stderr


def test_the_flag_and_the_environment_still_choose_another_catalog(installed: Installed, tmp_path: Path) -> None:
    one = tmp_path / "catalog"
    shutil.copytree(REPO / "policies" / "lib", one / "lib")
    shutil.copytree(REPO / "policies" / "no-allow-all-ingress", one / "no-allow-all-ingress")
    revision = load_policy_set(one).revision

    by_env = installed.run("policies", "path", env={"NETGUARD_POLICIES_DIR": str(one)})
    assert by_env.returncode == 0, by_env.stderr
    assert f"catalog:    {one.resolve()}\nfrom:       env NETGUARD_POLICIES_DIR\nrevision:   {revision}\n" in \
        by_env.stdout
    version = installed.run("--version", env={"NETGUARD_POLICIES_DIR": str(one)})
    assert f"(catalog {revision} from env NETGUARD_POLICIES_DIR)" in version.stdout

    # The flag wins over the environment. Only no-allow-all-ingress is in that catalog: allow-all egress passes.
    by_flag = installed.run("check", "k8s/allow-all.yaml", "--policies", str(one),
                            env={"NETGUARD_POLICIES_DIR": "policies"})
    assert by_flag.returncode == 0, by_flag.stdout + by_flag.stderr
    listed = installed.run("policies", "list", "--policies", str(one), env={"NETGUARD_POLICIES_DIR": "policies"})
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["no-allow-all-ingress"]

    config = tmp_path / "netguard.yaml"
    config.write_text(f"policies_dir: {one}\n")
    by_config = installed.run("policies", "path", "--config", str(config))
    assert f"from:       config policies_dir in {config}" in by_config.stdout

    # The team's own policies/ folder is used only when asked for, and then it is refused as a catalog.
    asked = installed.run("policies", "list", "--policies", "policies")
    assert asked.returncode == 2 and "policies/quota: missing rule.rego" in asked.stderr
