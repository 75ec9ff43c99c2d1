"""The report formats' registry: every format module in webhook/reports/ is found, renders its reports, and is what
`netguard check --format` and `netguard audit --format` offer; a new format is one module (a test below adds one
at run time and sees the CLI offer and use it)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from webhook import cli, reports
from webhook.core.model import AppliedFinding, Decision, Finding, Mode, Verdict
from webhook.offline.audit import AuditFinding, AuditReport, Posture
from webhook.offline.check import CheckReport, DocumentResult, LocatedFinding
from webhook.offline.sources import Document, SourceError
from webhook.reports import AUDIT, CHECK, Format, formats, registered, render_audit, render_check

RULE = "no-allow-all-egress"


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Each test looks in the package afresh, and leaves no format of its own behind."""
    registered.cache_clear()
    yield
    registered.cache_clear()


def check_report() -> CheckReport:
    doc = Document(source="p.yaml", index=0, obj={}, line=1, positions={})
    finding = AppliedFinding(Finding(RULE, "spec.egress[0]", "allows egress everywhere", fix="name them"), Mode.ENFORCE)
    result = DocumentResult(doc, "NetworkPolicy", "team-a", "open", Decision(Verdict.DENIED, (finding,)),
                            (LocatedFinding(finding, 7, 5),))
    return CheckReport(results=(result,), errors=(SourceError("bad.yaml", 2, 1, "not YAML"),), skipped=1,
                       revision="r1", engine="regorus")


def audit_report() -> AuditReport:
    finding = AuditFinding(kind="NetworkPolicy", namespace="team-a", name="open", source="p.yaml", line=7, rule=RULE,
                           severity="high", mode="enforce", reason="default", path="spec.egress[0]",
                           message="allows egress everywhere", fix="name them", last_changed_by="alice")
    posture = Posture(namespaces=("team-a",), no_default_deny_ingress=("team-a",), no_default_deny_egress=(),
                      internet_egress_all_ports=(), internet_egress_ports_limited=(), internet_ingress_all_ports=(),
                      internet_ingress_ports_limited=(), all_namespaces=(), metadata=(), exceptions=())
    return AuditReport(generated_at=datetime(2026, 3, 1, tzinfo=UTC), source="files p.yaml", policy_revision="r1",
                       findings=(finding,), posture=posture, policies=1)


def format_option(command: str) -> argparse.Action:
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in sub.choices[command]._actions if "--format" in a.option_strings)


# ---------------------------------------------------------------------------------------------- the registry


def test_the_package_holds_the_nine_renderings_of_the_two_reports() -> None:
    assert set(formats(CHECK)) == {"text", "json", "sarif", "junit"}
    assert set(formats(AUDIT)) == {"html", "json", "csv", "markdown", "policyreport"}
    assert formats(CHECK)["json"] is formats(AUDIT)["json"]  # one module renders both


@pytest.mark.parametrize("name", sorted(formats(CHECK)))
def test_every_check_format_renders_a_check_report(name: str) -> None:
    text = render_check(name, check_report())
    assert text.endswith("\n") and RULE in text


@pytest.mark.parametrize("name", sorted(formats(AUDIT)))
def test_every_audit_format_renders_an_audit_report(name: str) -> None:
    text = render_audit(name, audit_report())
    assert text.endswith("\n") and RULE in text


def test_every_format_has_a_one_line_description_and_renders_something() -> None:
    for fmt in registered():
        assert fmt.description and "\n" not in fmt.description, fmt.name
        assert fmt.check or fmt.audit, fmt.name


def test_the_registry_imports_no_report_machinery() -> None:
    """The CLI lists the formats on every command (`netguard serve` too): finding them must not pull in the
    pipeline, check or audit, which cost a few hundred milliseconds to import."""
    code = ("import sys, webhook.reports as r; r.registered(); "
            "print(sorted(m for m in ('webhook.pipeline', 'webhook.offline.check', 'webhook.offline.audit') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("command, report, default", [("check", CHECK, "text"), ("audit", AUDIT, "markdown")])
def test_the_cli_offers_exactly_the_registered_formats(command: str, report: str, default: str) -> None:
    option = format_option(command)
    assert list(option.choices or ()) == list(formats(report))
    assert option.default == default
    for fmt in formats(report).values():
        assert f"{fmt.name}{' (default)' if fmt.name == default else ''}: {fmt.description}" in str(option.help)


# ---------------------------------------------------------------------------------------------- a new format


def add_module(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str, source: str) -> None:
    """`source` as webhook/reports/<name>.py, seen through an extra folder on the package's path."""
    (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.setattr(reports, "__path__", [*reports.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, f"webhook.reports.{name}", raising=False)


def test_a_new_format_is_one_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_count", """
        from webhook.reports import Format

        def render(report, style):
            return f"{len(report.results)} policies, {len(report.errors)} unreadable\\n"

        FORMAT = Format("count", "how many policies were checked", check=render)
    """)
    try:
        assert "count" in formats(CHECK) and "count" not in formats(AUDIT)
        option = format_option("check")
        assert "count" in (option.choices or ()) and "count: how many policies were checked" in str(option.help)
        assert "count" not in (format_option("audit").choices or ())
        assert render_check("count", check_report()) == "1 policies, 1 unreadable\n"
        manifest = tmp_path / "np.yaml"
        manifest.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\n"
                            "spec: {podSelector: {}, policyTypes: [Ingress]}\n", encoding="utf-8")
        assert cli.main(["check", str(manifest), "--format", "count"]) == 0
        assert capsys.readouterr().out == "1 policies, 0 unreadable\n"
    finally:
        sys.modules.pop("webhook.reports.throwaway_count", None)


def test_a_module_that_forgot_its_format_is_refused_not_skipped(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_nothing", "def render(report, style):\n    return ''\n")
    try:
        with pytest.raises(TypeError, match=r"throwaway_nothing.*FORMAT"):
            registered()
    finally:
        sys.modules.pop("webhook.reports.throwaway_nothing", None)


def test_a_helper_module_is_not_a_format(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "_throwaway_helper", "X = 1\n")
    assert set(formats(CHECK)) == {"text", "json", "sarif", "junit"}


def test_two_formats_of_one_name_for_one_report_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_text", """
        from webhook.reports import Format

        FORMAT = Format("text", "another text", check=lambda report, style: "")
    """)
    try:
        with pytest.raises(ValueError, match="text"):
            registered()
    finally:
        sys.modules.pop("webhook.reports.throwaway_text", None)


def test_a_format_is_a_plain_value() -> None:
    fmt = Format("x", "y", audit=lambda report, style: "")
    assert fmt.renders(AUDIT) and not fmt.renders(CHECK)
