"""Audit renderers: what a security lead, a spreadsheet and a PolicyReport consumer get from one audit."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.core.guardrails import Guardrail
from webhook.engine.policies import load_policy_set
from webhook.offline.audit import AuditFinding, AuditReport, ExceptionInForce, PolicyRef, Posture, WorkloadGap
from webhook.offline.decisionlog import DecisionStats
from webhook.offline.sources import SourceError
from webhook.reports import AUDIT, formats, render_audit
from webhook.reports.csv import render_csv
from webhook.reports.html import render_html
from webhook.reports.json import render_json
from webhook.reports.markdown import render_markdown
from webhook.reports.policyreport import render_policyreport

REPO = Path(__file__).resolve().parents[2]
XSS = "<script>alert(1)</script>"
GENERATED = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)


@cache
def guardrails() -> tuple[Guardrail, ...]:
    return load_policy_set(REPO / "policies").guardrails


def finding(**changes: Any) -> AuditFinding:
    base = AuditFinding(
        kind="NetworkPolicy", namespace="payments", name="allow-all", source="policies/payments.yaml", line=12,
        rule="no-allow-all-egress", severity="high", mode="enforce", reason="default", path="spec.egress[0]",
        message="allows egress to every destination on every port",
        fix="name the destinations this workload calls", last_changed_by="alice@example.com")
    return dataclasses.replace(base, **changes)


FINDINGS = (
    finding(),
    finding(name=XSS, rule="internet-egress", severity="medium", mode="warn", line=40, path="spec.egress[1]",
            message="=HYPERLINK(\"http://evil.example\", \"click\") reaches 0.0.0.0/0 | on TCP/443",
            fix="-use toFQDNs", last_changed_by="@ops"),
    finding(kind="CiliumClusterwideNetworkPolicy", namespace="", name="world-egress", source="-", line=3,
            rule="cluster-scoped-policy-restricted", severity="critical", mode="enforce",
            path="specs[0].egress[0]", message="a clusterwide policy reaches the world",
            fix="", last_changed_by="unknown"),
    finding(kind="CiliumNetworkPolicy", namespace="shop", name="web", line=7, rule="no-broad-cidr",
            severity="medium", mode="audit", reason="exception TICKET-1 (config, until 2026-03-10)",
            path="specs[1].egress[0].toCIDR[0]", message='a /8 "is" broad,\nsplit over two lines',
            fix="+narrow the CIDR", last_changed_by="bob"),
)

POSTURE = Posture(
    namespaces=("payments", "shop", "staging"),
    no_default_deny_ingress=("shop", "staging"),
    no_default_deny_egress=("staging",),
    internet_egress_all_ports=(PolicyRef("NetworkPolicy", "payments", "allow-all", ("spec.egress[0]",)),),
    internet_egress_ports_limited=(PolicyRef("CiliumNetworkPolicy", "shop", "web|api", ("specs[0].egress[0]",),
                                             "specs[0].egress[0]: TCP/443"),),
    internet_ingress_all_ports=(),
    internet_ingress_ports_limited=(),
    all_namespaces=(PolicyRef("CiliumClusterwideNetworkPolicy", "", "world-egress", ("specs[0].egress[0]",)),),
    metadata=(PolicyRef("NetworkPolicy", "payments", "allow-all", ("spec.egress[0]",), "169.254.169.254"),),
    exceptions=(
        ExceptionInForce(("no-broad-cidr",), "shop", "web", date(2026, 3, 10), "migration", "TICKET-1", "config",
                         True),
        ExceptionInForce(("internet-egress",), "payments", "", date(2026, 9, 1), "card processor", "TICKET-2",
                         "signed:k1", False),
    ),
    workloads=7,
    workloads_without_ingress=(WorkloadGap("staging", "Deployment", "api"),),
    workloads_without_egress=(),
)

DECISIONS = DecisionStats(
    since=datetime(2026, 2, 1, tzinfo=UTC), until=None, total=40, denied=5, warned=7, exceptions_used=2,
    malformed_lines=1,
    by_namespace={"payments": {"denied": 4, "warned": 1, "exceptions": 0},
                  "quiet": {"denied": 0, "warned": 0, "exceptions": 0},
                  "shop": {"denied": 1, "warned": 6, "exceptions": 2}},
    by_rule={"internet-egress": {"warn": 6}, "no-allow-all-egress": {"enforce": 4, "warn": 0, "audit": 0},
             "no-broad-cidr": {"audit": 3}},
    by_requester={"alice@example.com": {"denied": 4, "warned": 0, "exceptions": 0},
                  "system:serviceaccount:argocd:argocd-application-controller": {"denied": 1, "warned": 7,
                                                                                   "exceptions": 2}},
)


def report(**changes: Any) -> AuditReport:
    base = AuditReport(generated_at=GENERATED, source="cluster kind-dev", policy_revision="rev-3f2a",
                       findings=FINDINGS, posture=POSTURE, decisions=DECISIONS,
                       errors=(SourceError("policies/broken.yaml", 4, 3, "mapping values are not allowed here"),),
                       policies=9, rules=guardrails())
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------------------------------------- JSON


def test_the_json_report_is_to_json_indented() -> None:
    text = render_json(report())
    assert json.loads(text) == report().to_json()
    assert text.startswith('{\n  "netguard"')


# ---------------------------------------------------------------------------------------------- CSV


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_csv_has_a_header_and_one_row_per_finding() -> None:
    text = render_csv(report())
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == ["namespace", "kind", "name", "rule", "severity", "mode", "path", "message", "fix",
                                 "last_changed_by", "source", "line", "last_changed_from"]
    rows = list(reader)
    assert [(r["namespace"], r["name"], r["rule"], r["mode"]) for r in rows] == [
        (f.namespace, f.name, f.rule, f.mode) for f in FINDINGS]
    assert rows[0] == {"namespace": "payments", "kind": "NetworkPolicy", "name": "allow-all",
                       "rule": "no-allow-all-egress", "severity": "high", "mode": "enforce", "path": "spec.egress[0]",
                       "message": "allows egress to every destination on every port",
                       "fix": "name the destinations this workload calls", "last_changed_by": "alice@example.com",
                       "source": "policies/payments.yaml", "line": "12", "last_changed_from": ""}


def test_csv_fields_with_quotes_commas_and_newlines_are_quoted_as_rfc_4180_says() -> None:
    text = render_csv(report())
    assert text.endswith("\r\n") and text.count("\r\n") == len(FINDINGS) + 1  # and the header
    assert '"a /8 ""is"" broad,\nsplit over two lines"' in text
    assert csv_rows(text)[3]["message"] == 'a /8 "is" broad,\nsplit over two lines'


def test_csv_cells_a_spreadsheet_would_run_as_formulas_start_with_a_quote() -> None:
    rows = csv_rows(render_csv(report()))
    assert rows[1]["message"].startswith("'=HYPERLINK(")
    assert rows[1]["fix"] == "'-use toFQDNs"
    assert rows[1]["last_changed_by"] == "'@ops"
    assert rows[3]["fix"] == "'+narrow the CIDR"
    assert rows[2]["source"] == "'-"
    assert rows[0]["message"] == FINDINGS[0].message  # ordinary text is left alone


# ---------------------------------------------------------------------------------------------- Markdown


def test_the_markdown_names_the_report_and_shows_every_posture_figure() -> None:
    text = render_markdown(report())
    assert text.startswith("# netguard audit report\n")
    assert "- Generated: 2026-03-01T09:30:15.250000+00:00" in text
    assert "- Source: cluster kind-dev" in text and "- Policy revision: `rev-3f2a`" in text
    for row in (
        "| Namespaces without default deny for ingress | 2 of 3 | shop, staging |",
        "| Namespaces without default deny for egress | 1 of 3 | staging |",
        "| Policies open to the internet for ingress, on every port | 0 |  |",
        "| Policies open to the internet for egress, on every port | 1 | NetworkPolicy payments/allow-all: "
        "spec.egress\\[0\\] |",
        "| Policies open to all namespaces | 1 | CiliumClusterwideNetworkPolicy world-egress (clusterwide): "
        "specs\\[0\\].egress\\[0\\] |",
        "| Exceptions in force | 2 | no-broad-cidr on shop/web until 2026-03-10 (TICKET-1; migration), "
        "internet-egress on namespace payments until 2026-09-01 (TICKET-2; card processor) |",
        "| Exceptions expiring within 14 days | 1 | no-broad-cidr on shop/web until 2026-03-10 (TICKET-1; migration) |",
        "| Workloads without an ingress policy | 1 of 7 | Deployment staging/api |",
        "| Workloads without an egress policy | 0 of 7 |  |",
    ):
        assert row in text


def test_markdown_says_workload_figures_are_not_available_when_workloads_were_not_read() -> None:
    posture = dataclasses.replace(POSTURE, workloads=None, workloads_without_ingress=())
    text = render_markdown(report(posture=posture))
    assert "| Workloads without an ingress policy | not available |  |" in text
    assert "| Workloads without an egress policy | not available |  |" in text


def test_markdown_escapes_pipes_so_a_name_cannot_add_table_columns() -> None:
    text = render_markdown(report())
    row = next(line for line in text.splitlines() if line.startswith("| Policies open to the internet for egress, "
                                                                      "on some ports |"))
    assert "web\\|api" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # three cells


def test_markdown_groups_findings_by_namespace_then_by_rule() -> None:
    text = render_markdown(report())
    findings = text[text.index("## Findings"):]
    headings = [line for line in findings.splitlines() if line.startswith("###")]
    assert headings == [
        "### (clusterwide) (1)",
        "#### cluster-scoped-policy-restricted: Only the platform team manages cluster-scoped policies "
        "(critical, 1)",
        "### payments (2)",
        "#### no-allow-all-egress: No egress rule that allows everything (high, 1)",  # high before medium
        "#### internet-egress: Egress to the whole internet, even on limited ports (medium, 1)",
        "### shop (1)",
        "#### no-broad-cidr: No broad CIDR peers (medium, 1)",
    ]
    payments = findings[findings.index("### payments"):findings.index("### shop")]
    assert ("- **NetworkPolicy allow-all** at `spec.egress[0]` (policies/payments.yaml:12, enforce: default): "
            "allows egress to every destination on every port") in payments
    assert "  - Fix: name the destinations this workload calls" in payments
    assert "  - Last changed by: alice@example.com" in payments
    assert "How to fix: Name the destinations the workload needs (podSelector / namespaceSelector, toEndpoints, " \
        "toFQDNs, or narrow CIDRs) and the ports it uses (ports / toPorts)." in payments


def test_markdown_has_a_decision_section_only_when_the_log_was_read() -> None:
    text = render_markdown(report())
    section = text[text.index("## Admission decisions"):text.index("## Findings")]
    assert "| 40 | 5 | 7 | 2 | 1 |" in section
    namespaces = section[section.index("### Most rejected namespaces"):section.index("### Most rejected rules")]
    assert namespaces.index("| payments | 4 | 1 | 0 |") < namespaces.index("| shop | 1 | 6 | 2 |")
    assert "quiet" not in namespaces  # nothing rejected or warned there
    rules = section[section.index("### Most rejected rules"):section.index("### Most rejected requesters")]
    assert "| no-allow-all-egress | 4 | 0 | 0 |" in rules and "no-broad-cidr" not in rules
    assert "| system:serviceaccount:argocd:argocd-application-controller | 1 | 7 | 2 |" in section
    assert "## Admission decisions" not in render_markdown(report(decisions=None))


def test_decision_tables_list_only_the_ten_most_rejected() -> None:
    many = {f"team-{i:02d}": {"denied": i, "warned": 0, "exceptions": 0} for i in range(1, 13)}
    text = render_markdown(report(decisions=dataclasses.replace(DECISIONS, by_namespace=many)))
    listed = re.findall(r"^\| (team-\d+) \|", text, re.M)
    assert listed == [f"team-{i:02d}" for i in range(12, 2, -1)]


# ---------------------------------------------------------------------------------------------- HTML

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TagBalance(HTMLParser):
    """Every element opened is closed in order (void elements and self-closed SVG shapes aside)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parsed(text: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(text)
    parser.close()
    return parser


def test_the_html_is_one_valid_html5_page() -> None:
    text = render_html(report())
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
    assert re.search(r"<title>netguard audit \u2014 cluster kind-dev</title>", text)
    page = parsed(text)
    assert page.problems == [] and page.stack == []
    assert page.tags["html"] == page.tags["head"] == page.tags["body"] == 1


def test_the_html_loads_nothing_from_the_network() -> None:
    text = render_html(report())
    assert not re.search(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(", text, re.I)
    assert "@import" not in text
    assert not re.search(r"<(?:script|link|iframe|object|embed|img)\b", text, re.I)
    assert "http-equiv=\"Content-Security-Policy\" content=\"default-src &#x27;none&#x27;" in text
    # the only "http" in the page is the escaped message text from the manifest
    assert text.count("http") == text.count("&quot;http://evil.example") + 1  # + http-equiv


def test_the_html_escapes_names_and_messages_from_manifests() -> None:
    text = render_html(report())
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "=HYPERLINK(&quot;http://evil.example&quot;, &quot;click&quot;)" in text
    assert "a /8 &quot;is&quot; broad," in text


def test_the_html_shows_the_posture_figures_as_cards_and_charts() -> None:
    text = render_html(report())
    cards = {label: value for value, label in re.findall(
        r'<div class="value">([^<]+)(?: <span class="of">[^<]*</span>)?</div><div class="label">([^<]+)</div>', text)}
    assert cards["Namespaces without default deny for ingress"] == "2"
    assert cards["Namespaces without default deny for egress"] == "1"
    assert cards["Policies open to the internet for egress, on every port"] == "1"
    assert cards["Policies reaching the cloud metadata address"] == "1"
    assert cards["Exceptions expiring within 14 days"] == "1"
    assert cards["Workloads without an ingress policy"] == "1"
    assert "<li>CiliumClusterwideNetworkPolicy world-egress (clusterwide): specs[0].egress[0]</li>" in text
    assert text.count("<svg") == 5  # by rule, by mode, by severity, two default-deny rings
    assert '<figcaption>Findings by rule</figcaption>' in text
    assert "<title>no-allow-all-egress: 1 enforce</title>" in text
    assert "1/3" in text and "2/3" in text  # namespaces with a default deny, ingress and egress


def test_the_html_says_when_workloads_were_not_read() -> None:
    text = render_html(report(posture=dataclasses.replace(POSTURE, workloads=None, workloads_without_ingress=())))
    assert "Workloads without an ingress policy (not available: workloads were not read)" in text


def test_the_html_groups_findings_with_the_fix_and_who_changed_them_last() -> None:
    text = render_html(report())
    findings = text[text.index("<h2>Findings</h2>"):]
    groups = re.findall(r'<details class="ns" open><summary>([^<]+) <span', findings)
    assert groups == ["(clusterwide)", "payments", "shop"]
    payments = findings[findings.index("<summary>payments"):findings.index("<summary>shop")]
    assert payments.index("<code>no-allow-all-egress</code>") < payments.index("<code>internet-egress</code>")
    assert ("<strong>How to fix.</strong> Name the destinations the workload needs (podSelector / namespaceSelector, "
            "toEndpoints, toFQDNs, or narrow CIDRs) and the ports it uses (ports / toPorts).</p>") in payments
    assert "<td>name the destinations this workload calls</td>" in payments
    assert "<td>alice@example.com</td>" in payments
    assert "<summary>Example</summary><pre><code>" in payments
    assert "<code>policies/payments.yaml:12</code>" in payments


def test_the_html_has_a_decision_section_only_when_the_log_was_read() -> None:
    text = render_html(report())
    section = text[text.index("<h2>Admission decisions</h2>"):text.index("<h2>Findings</h2>")]
    assert '<div class="value">40</div><div class="label">Decisions</div>' in section
    assert "<tr><td>payments</td><td class=num>4</td><td class=num>1</td><td class=num>0</td></tr>" in section
    assert "quiet" not in section
    assert "Admission decisions" not in render_html(report(decisions=None))


# ---------------------------------------------------------------------------------------------- PolicyReport


def policy_reports(r: AuditReport | None = None) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(render_policyreport(r or report())))


def test_policyreports_are_one_per_namespace_and_one_for_the_cluster() -> None:
    docs = policy_reports()
    assert [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs] == [
        ("PolicyReport", "netguard-payments", "payments"),
        ("PolicyReport", "netguard-shop", "shop"),
        ("PolicyReport", "netguard-staging", "staging"),
        ("ClusterPolicyReport", "netguard-cluster", None),
    ]
    for doc in docs:
        assert doc["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
        assert doc["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "netguard"}
        assert doc["metadata"]["annotations"]["netguard.io/policy-revision"] == "rev-3f2a"
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert [r["resources"][0]["name"] for r in by_name["netguard-payments"]["results"]] == ["allow-all", XSS]
    assert by_name["netguard-staging"]["results"] == []  # audited and clean: applying it clears old findings
    assert [r["policy"] for r in by_name["netguard-cluster"]["results"]] == ["cluster-scoped-policy-restricted"]


def test_policyreport_summaries_count_the_results_by_outcome() -> None:
    for doc in policy_reports():
        counts = Counter(r["result"] for r in doc["results"])
        assert doc["summary"] == {k: counts[k] for k in ("pass", "fail", "warn", "error", "skip")}
    by_name = {d["metadata"]["name"]: d for d in policy_reports()}
    assert by_name["netguard-payments"]["summary"] == {"pass": 0, "fail": 1, "warn": 1, "error": 0, "skip": 0}


def test_every_policyreport_result_has_the_fields_the_crd_and_its_consumers_read() -> None:
    results = [r for doc in policy_reports() for r in doc["results"]]
    assert len(results) == len(FINDINGS)
    for r in results:
        assert {"policy", "rule", "category", "severity", "result", "message", "source", "scored", "timestamp",
                "resources", "properties"} <= set(r)
        assert r["source"] == "netguard" and r["category"] == "netguard" and r["policy"] == r["rule"]
        assert r["severity"] in {"critical", "high", "medium", "low", "info"}
        assert r["result"] in {"pass", "fail", "warn", "error", "skip"}
        assert r["scored"] is (r["result"] == "fail")
        assert r["timestamp"] == {"seconds": int(GENERATED.timestamp()), "nanos": 250_000_000}
        assert all(isinstance(v, str) for v in r["properties"].values())
    by_name = {r["resources"][0]["name"]: r for r in results}
    assert by_name["allow-all"]["result"] == "fail"  # enforce
    assert by_name[XSS]["result"] == "warn"  # warn
    assert by_name["web"]["result"] == "warn"  # audit: not met, not blocking
    assert by_name["web"]["properties"]["reason"].startswith("exception TICKET-1")
    assert by_name["allow-all"]["message"] == ("spec.egress[0]: allows egress to every destination on every port. "
                                               "Fix: name the destinations this workload calls")
    assert by_name["allow-all"]["properties"]["path"] == "spec.egress[0]"
    assert by_name["allow-all"]["properties"]["last_changed_by"] == "alice@example.com"
    assert by_name["allow-all"]["resources"] == [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                                  "name": "allow-all", "namespace": "payments"}]
    assert by_name["web"]["resources"][0]["apiVersion"] == "cilium.io/v2"
    assert by_name["world-egress"]["resources"] == [{"apiVersion": "cilium.io/v2",
                                                     "kind": "CiliumClusterwideNetworkPolicy", "name": "world-egress"}]
    assert by_name["world-egress"]["severity"] == "critical"
    assert by_name["world-egress"]["message"] == "specs[0].egress[0]: a clusterwide policy reaches the world"


def test_an_unknown_severity_is_reported_as_info() -> None:
    docs = policy_reports(report(findings=(finding(severity="catastrophic"),)))
    assert docs[0]["results"][0]["severity"] == "info"


# ---------------------------------------------------------------------------------------------- all formats


@pytest.mark.parametrize("fmt", sorted(formats(AUDIT)))
def test_an_empty_audit_renders_in_every_format(fmt: str) -> None:
    empty = Posture(namespaces=(), no_default_deny_ingress=(), no_default_deny_egress=(), internet_egress_all_ports=(),
                    internet_egress_ports_limited=(), internet_ingress_all_ports=(),
                    internet_ingress_ports_limited=(), all_namespaces=(), metadata=(), exceptions=())
    text = render_audit(fmt, AuditReport(generated_at=datetime(2026, 3, 1), source="files none",
                                         policy_revision="r", findings=(), posture=empty))
    assert text.endswith("\n")
    if fmt == "html":
        assert "<p>No findings.</p>" in text and parsed(text).problems == []
    if fmt == "markdown":
        assert "No findings." in text and "Admission decisions" not in text
    if fmt == "policyreport":
        docs = list(yaml.safe_load_all(text))
        assert [d["kind"] for d in docs] == ["ClusterPolicyReport"]
        assert docs[0]["results"] == [] and set(docs[0]["summary"].values()) == {0}


def test_renderers_cover_the_five_audit_formats() -> None:
    assert set(formats(AUDIT)) == {"json", "csv", "markdown", "html", "policyreport"}
