"""`netguard check --fail-on enforce|warn`: which findings fail the check (exit 1); input errors stay exit 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli.test_check import ALLOW_ALL, GOOD, run, write
from webhook.cli import main

# Egress to the whole internet on TCP/443 only: internet-egress and no-broad-cidr warn, nothing is enforced.
WARN_ONLY = GOOD.replace("name: web-to-db", "name: web-to-internet-https").replace(
    "podSelector:\n            matchLabels: {app: db}", "ipBlock: {cidr: 0.0.0.0/0}").replace("port: 5432", "port: 443")


def test_the_warn_only_sample_warns_and_enforces_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "warn.yaml", WARN_ONLY)), "--format", "json"], capsys)
    summary = json.loads(out)["summary"]
    assert (summary["enforce"], summary["warn"] > 0, code) == (0, True, 0)


@pytest.mark.parametrize(("text", "fail_on", "expected"), [
    (GOOD, "enforce", 0), (GOOD, "warn", 0),
    (WARN_ONLY, "enforce", 0), (WARN_ONLY, "warn", 1),
    (ALLOW_ALL, "enforce", 1), (ALLOW_ALL, "warn", 1),
])
def test_fail_on_sets_which_findings_exit_one(text: str, fail_on: str, expected: int, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "p.yaml", text)), "--fail-on", fail_on], capsys)
    assert code == expected, out


def test_the_default_is_enforce(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "warn.yaml", WARN_ONLY))], capsys)
    assert code == 0 and "warning[internet-egress]" in out


@pytest.mark.parametrize("fail_on", ["enforce", "warn"])
def test_an_input_error_is_exit_two_whatever_fail_on_says(fail_on: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "warn.yaml", WARN_ONLY)
    write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    code, _, _ = run([str(tmp_path), "--fail-on", fail_on], capsys)
    assert code == 2


@pytest.mark.parametrize("fmt", ["json", "sarif", "junit", "text"])
def test_every_format_exits_the_same_and_json_says_why(fmt: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "warn.yaml", WARN_ONLY)
    code, out, _ = run([str(path), "--fail-on", "warn", "--format", fmt], capsys)
    assert code == 1
    if fmt == "json":
        summary = json.loads(out)["summary"]
        assert (summary["exit_code"], summary["fail_on"], summary["enforce"]) == (1, "warn", 0)


def test_the_report_file_is_written_before_the_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "warn.yaml", WARN_ONLY)
    report = tmp_path / "netguard.sarif"
    code, out, _ = run([str(path), "--fail-on", "warn", "--format", "sarif", "-o", str(report)], capsys)
    assert code == 1 and out == ""
    levels = {r["level"] for r in json.loads(report.read_text())["runs"][0]["results"]}
    assert levels == {"warning"}


def test_an_unknown_fail_on_value_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["check", str(write(tmp_path, "p.yaml", GOOD)), "--fail-on", "audit"])
    assert exited.value.code == 2
    assert "--fail-on" in capsys.readouterr().err


def test_junit_fails_the_test_cases_that_fail_the_check(tmp_path: Path) -> None:
    """With --fail-on warn a warning fails its JUnit test case, so GitLab's summary agrees with the exit code."""
    path = tmp_path / "warn.yaml"
    path.write_text(WARN_ONLY)
    for fail_on, failures in (("enforce", "0"), ("warn", "1")):
        out = tmp_path / f"{fail_on}.xml"
        main(["check", str(path), "--format", "junit", "--fail-on", fail_on, "-o", str(out)])
        assert ET.parse(out).getroot().get("failures") == failures, fail_on
