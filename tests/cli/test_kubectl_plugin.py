"""`kubectl netguard`: kubectl's flags translated into netguard's, the real commands run through the plugin
(in process, through the installed `kubectl-netguard` script, and through kubectl itself when it is on this
machine), and the krew manifest."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli.test_audit import TEAM_A_ALLOW_ALL, TEAM_B_WEB
from tests.manifests import WEB_INGRESS
from webhook.kubectl_plugin import UsageError, main, translate

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.prefix) / "bin"
GOOD = WEB_INGRESS.replace("{name: web, namespace: team-a}", "{name: web}")  # no namespace: -n gives it
BAD = TEAM_A_ALLOW_ALL


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "k8s" / "web.yaml").write_text(TEAM_B_WEB)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


# -- translation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "expected"), [
    (["check", "-f", "p.yaml"], ["check", "--", "p.yaml"]),
    (["check", "-f", "a.yaml", "--filename", "k8s/", "-f", "-"], ["check", "--", "a.yaml", "k8s/", "-"]),
    (["check", "-fp.yaml", "--filename=q.yaml", "-f=r.yaml"], ["check", "--", "p.yaml", "q.yaml", "r.yaml"]),
    (["check", "-f", "p.yaml", "-n", "team-a"], ["check", "--namespace", "team-a", "--", "p.yaml"]),
    (["-n", "team-a", "check", "-f", "p.yaml"], ["check", "--namespace", "team-a", "--", "p.yaml"]),
    (["check", "--namespace=team-a", "-f", "p.yaml", "-R"], ["check", "--namespace", "team-a", "--", "p.yaml"]),
    # netguard's own options pass through, values included (even one that looks like a kubectl flag)
    (["check", "-f", "p.yaml", "--group", "-n", "--user", "alice"],
     ["check", "--group", "-n", "--user", "alice", "--", "p.yaml"]),
    (["check", "a.yaml", "-f", "b.yaml"], ["check", "--", "a.yaml", "b.yaml"]),  # positional paths too
    (["check", "-f", "p.yaml", "-o", "sarif"], ["check", "--format", "sarif", "--", "p.yaml"]),
    # check and explain never contact a cluster: kubectl's cluster flags are accepted and ignored
    (["check", "-f", "p.yaml", "--context", "prod", "--kubeconfig", "k"], ["check", "--", "p.yaml"]),
    (["explain", "-f", "p.yaml", "-n", "team-a"], ["explain", "--namespace", "team-a", "--", "p.yaml"]),
    (["audit"], ["audit"]),
    (["audit", "-n", "team-b", "--context", "prod", "--kubeconfig", "/k", "-o", "json"],
     ["audit", "--namespace", "team-b", "--context", "prod", "--kubeconfig", "/k", "--format", "json"]),
    (["audit", "-f", "manifests/", "-f", "more.yaml"], ["audit", "--from", "manifests/", "--from", "more.yaml"]),
    (["audit", "-j", "2", "--decisions", "d.jsonl"], ["audit", "-j", "2", "--decisions", "d.jsonl"]),
    (["doctor", "--context", "prod", "-n", "probe"], ["doctor", "--namespace", "probe", "--context", "prod"]),
    (["certs", "install", "--ca", "ca.crt", "--cluster", "--context", "c"],
     ["certs", "install", "--ca", "ca.crt", "--cluster", "--context", "c"]),
    (["baseline", "-n", "team-a", "--allow-dns"], ["baseline", "--allow-dns", "--namespace", "team-a"]),
    (["policies", "list", "-n", "x"], ["policies", "list"]),
    (["exception", "verify", "TOKEN", "--public-key", "k.pub"],
     ["exception", "verify", "--public-key", "k.pub", "--", "TOKEN"]),
    (["check", "--help"], ["check", "--help"]),
    (["version"], ["--version"]),  # kubectl's word for it
    (["--version"], ["--version"]),
])
def test_kubectl_flags_become_netguard_options(argv: list[str], expected: list[str]) -> None:
    assert translate(argv) == expected


@pytest.mark.parametrize(("argv", "message"), [
    (["check"], "must specify -f/--filename"),
    (["explain", "-n", "team-a"], "must specify -f/--filename"),
    (["check", "-f"], "flag needs an argument: -f"),
    (["check", "-f", "p.yaml", "-o", "report.sarif"], "-o/--output takes a format"),
    (["doctor", "-o", "json"], "single output format"),
    (["doctor", "-f", "p.yaml"], "reads no manifests"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_what_cannot_be_translated_is_a_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        translate(argv)


def test_usage_errors_exit_2_in_kubectl_style(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: must specify -f/--filename") and "kubectl netguard --help" in err
    assert main([]) == 2 and "usage: kubectl netguard" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "kubectl netguard check -f policy.yaml" in capsys.readouterr().out


# -- the real commands, through the plugin -------------------------------------------------------------------

def test_check_exit_codes_and_namespace(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(files / "good.yaml")]) == 0
    assert main(["check", "-f", str(files / "bad.yaml")]) == 1
    out = capsys.readouterr().out
    assert "error[no-allow-all-egress]" in out and "NetworkPolicy team-a/allow-all" in out
    # -n: the namespace of manifests that name none
    assert main(["check", "-f", str(files / "good.yaml"), "-n", "team-z", "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["namespace"] for r in report["results"]] == ["team-z"]
    # a folder, several -f, and stdin
    assert main(["check", "-f", str(files / "k8s"), "-f", str(files / "good.yaml"), "-o", "json"]) == 1
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2


def test_check_reads_standard_input_with_dash(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    assert main(["check", "-f", "-"]) == 1
    assert capsys.readouterr().out.startswith("-:11:7: error[no-allow-all-egress]")


def test_explain_through_the_plugin(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(files / "good.yaml"), "-n", "team-a"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("team-a/web (NetworkPolicy") and "pods with app=web" in out


def test_audit_reads_the_current_context_or_the_given_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Against tests/kube_standin.py: with no --kubeconfig, $KUBECONFIG (which kubectl passes on in the
    environment) decides, as for kubectl; -n narrows the audit to one namespace (plus clusterwide policies).

    The first run is a new process, as kubectl starts the plugin: the kubernetes client reads $KUBECONFIG
    once, when it is imported, so changing it inside this test process would prove nothing."""
    from tests.kube_standin import KubeStandIn

    script = BIN / "kubectl-netguard"
    if not script.exists():
        pytest.skip("kubectl-netguard is not installed in this venv: pip install -e . registers it")
    with KubeStandIn(tmp_path) as standin:
        current = subprocess.run([str(script), "audit", "-o", "json"], capture_output=True, text=True,
                                 env={**_env(), "KUBECONFIG": str(standin.kubeconfig)}, timeout=120, check=False)
        assert current.returncode == 0, current.stderr
        everything = json.loads(current.stdout)
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
        assert main(["audit", "--kubeconfig", str(standin.kubeconfig), "-n", "team-b", "-o", "json"]) == 0
        team_b = json.loads(capsys.readouterr().out)
    assert everything["source"].startswith("cluster ") and everything["summary"]["policies"] == 5
    assert team_b["source"].endswith(", namespace team-b")
    assert team_b["summary"]["policies"] == 3  # allow-dns, api-egress and the clusterwide baseline
    assert team_b["posture"]["no_default_deny_ingress"]["namespaces"] == ["team-b"]
    assert {w["namespace"] for w in team_b["posture"]["workloads"]["without_ingress_policy"]} <= {"team-b"}
    assert {f["namespace"] for f in team_b["findings"]} <= {"team-b", ""}


def test_audit_of_files_with_f(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "-f", str(files / "bad.yaml"), "-f", str(files / "k8s"), "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["policies"] == 2


# -- the installed script, and kubectl itself ----------------------------------------------------------------

def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "_ARGCOMPLETE")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_installed_kubectl_netguard_script(files: Path) -> None:
    script = BIN / "kubectl-netguard"
    if not script.exists():
        pytest.skip("kubectl-netguard is not installed in this venv: pip install -e . registers it")
    bad = subprocess.run([str(script), "check", "-f", str(files / "bad.yaml")], capture_output=True, text=True,
                         env=_env(), timeout=120, check=False)
    assert bad.returncode == 1 and "error[no-allow-all-egress]" in bad.stdout
    good = subprocess.run([str(script), "check", "-f", "-"], input=GOOD, capture_output=True, text=True,
                          env=_env(), timeout=120, check=False)
    assert good.returncode == 0, good.stderr


def test_kubectl_finds_and_runs_the_plugin(files: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None or not (BIN / "kubectl-netguard").exists():
        pytest.skip("no kubectl on this machine (or the plugin is not installed)")
    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=_env(), timeout=60,
                            check=False)
    assert str(BIN / "kubectl-netguard") in listed.stdout
    bad = subprocess.run([kubectl, "netguard", "check", "-f", str(files / "bad.yaml"), "-n", "team-a"],
                         capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert bad.returncode == 1 and "error[no-allow-all-egress]" in bad.stdout, bad.stderr
    good = subprocess.run([kubectl, "netguard", "explain", "-f", str(files / "good.yaml")],
                          capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert good.returncode == 0 and "default/web (NetworkPolicy" in good.stdout, good.stderr


# -- the krew manifest ---------------------------------------------------------------------------------------

def test_the_krew_manifest_has_what_krew_requires() -> None:
    """The fields krew validates (krew's `validation.ValidatePlugin`): name = file name, a v-prefixed semver,
    a short description, platforms with a selector, an https uri, a 64-hex sha256 and a bin; the uri and
    sha256 are release-time placeholders, marked as such in the file."""
    path = REPO / "plugins" / "netguard.yaml"
    text = path.read_text()
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == path.stem == "netguard"
    spec = manifest["spec"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"])
    assert spec["version"] == "v" + _project_version()
    assert spec["shortDescription"] and len(spec["shortDescription"]) <= 50 and spec["homepage"].startswith("https://")
    assert spec["platforms"]
    seen = set()
    for platform in spec["platforms"]:
        labels = platform["selector"]["matchLabels"]
        assert labels["os"] in ("linux", "darwin", "windows") and labels["arch"] in ("amd64", "arm64")
        seen.add((labels["os"], labels["arch"]))
        assert platform["uri"].startswith("https://") and spec["version"] in platform["uri"]
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["bin"] == "kubectl-netguard"
        assert any(f["from"] == platform["bin"] for f in platform["files"])
    assert len(seen) == len(spec["platforms"])  # one entry per platform
    assert "filled at release time" in text and "PLACEHOLDER" in text.upper()


def _project_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])
