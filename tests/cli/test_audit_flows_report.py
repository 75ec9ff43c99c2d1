"""`netguard audit --flows` as people read it: the traffic evidence section of the Markdown and HTML reports (the
window, per rule its flows, last seen, peers and ports; HTML bars scaled to the busiest rule of the policy), the
unused-rule finding in every audit format, untrusted names and labels escaped, nothing of it without --flows.
Flows come from tests/flowgen.py (the documented Hubble fields)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flowgen import endpoint, flow, lines
from webhook import reports
from webhook.cli import main

EVIL = "evil-<script>alert(1)</script>|x"  # a policy name from an untrusted manifest
HOSTILE = "<script>alert(2)</script>|y"  # a label value a Hubble flow reports for a peer

WEB = endpoint("team-a", "web-1", 1001, app="web")
API = endpoint("team-a", "api-1", 1003, app="api")
CACHE = endpoint("team-a", "cache-1", 1004, app="cache")
INTRUDER = endpoint("team-a", "tool-1", 1005, app=HOSTILE)


def _egress(app: str, port: int) -> dict[str, Any]:
    return {"to": [{"podSelector": {"matchLabels": {"app": app}}}], "ports": [{"protocol": "TCP", "port": port}]}


POLICIES = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "web-egress", "namespace": "team-a"},
     "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
              "egress": [_egress("api", 8080), _egress("cache", 6379), _egress("db", 5432)]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": EVIL, "namespace": "team-a"},
     "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
              "ingress": [{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 80}]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "web-services", "namespace": "team-a"},
     "spec": {"endpointSelector": {"matchLabels": {"app": "web"}},
              "egress": [{"toServices": [{"k8sService": {"serviceName": "api", "namespace": "team-a"}}]}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "batch", "namespace": "team-b"},
     "spec": {"podSelector": {"matchLabels": {"app": "batch"}}, "policyTypes": ["Egress"],
              "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}},
]

FLOWS = [
    # web-egress: 4 flows to api (spec.egress[0]), 2 to cache (spec.egress[1]), none to db (spec.egress[2])
    *(flow(time=f"2026-11-30T10:0{i}:00Z", source=WEB, destination=API, dst="10.0.1.9", port=8080) for i in range(4)),
    *(flow(time=f"2026-11-30T10:0{i}:00Z", source=WEB, destination=CACHE, dst="10.0.1.10", port=6379)
      for i in (4, 5)),
    # the evil-named policy's one rule: a peer whose label value is markup
    flow(time="2026-11-30T10:06:00Z", direction="INGRESS", source=INTRUDER, destination=WEB, src="10.0.1.11",
         dst="10.0.1.5", port=80),
    # outside --since/--until
    flow(time="2026-11-30T12:00:00Z", source=WEB, destination=API, dst="10.0.1.9", port=8080),
]
SINCE, UNTIL = "2026-11-30T09:00:00Z", "2026-11-30T11:00:00Z"
PERIOD = "7 flows from 2026-11-30T10:00:00Z to 2026-11-30T10:06:00Z"
ASKED = f"(window asked: since {SINCE} until {UNTIL}); 1 line malformed, 1 outside the window"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "policies.yaml").write_text(yaml.safe_dump_all(POLICIES), encoding="utf-8")
    return root


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    path = tmp_path / "flows.jsonl"
    path.write_bytes(lines(FLOWS) + b"{not json\n")
    return path


def audit(folder: Path, fmt: str, out: Path, *extra: str) -> str:
    assert main(["audit", "--from", str(folder), *extra, "--format", fmt, "--jobs", "1", "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def with_flows(folder: Path, flows: Path, fmt: str, tmp_path: Path) -> str:
    return audit(folder, fmt, tmp_path / f"report.{fmt}", "--flows", str(flows), "--since", SINCE, "--until", UNTIL)


def section(page: str) -> str:
    """The HTML traffic evidence section."""
    start = page.index("<h2>Traffic evidence</h2>")
    return page[start:page.index("<h2>", start + 1)]


def policy_block(page: str, name: str) -> str:
    (block,) = [b for b in section(page).split('<details class="ns"')[1:] if f"team-a/{name} <span" in b]
    return block


def test_json_carries_the_window_and_every_rule(folder: Path, flows: Path, tmp_path: Path) -> None:
    report = json.loads(with_flows(folder, flows, "json", tmp_path))
    window = report["flows"]["window"]
    assert (window["flows"], window["since"], window["until"]) == (7, SINCE, UNTIL)
    assert (window["malformed"], window["outside_window"]) == (1, 1)
    (web,) = [p for p in report["flows"]["policies"] if p["name"] == "web-egress"]
    assert [(r["path"], r["flows"]) for r in web["rules"]] == [
        ("spec.egress[0]", 4), ("spec.egress[1]", 2), ("spec.egress[2]", 0)]


def test_markdown_states_the_window_and_each_rule(folder: Path, flows: Path, tmp_path: Path) -> None:
    md = with_flows(folder, flows, "markdown", tmp_path)
    traffic = md[md.index("## Traffic evidence"):md.index("## Findings")]
    assert md.index("## Posture") < md.index("## Traffic evidence")
    assert f"From Hubble flows: {PERIOD} {ASKED}." in traffic  # nothing in it needs a Markdown escape
    assert "none is called unused for traffic outside this window" in traffic
    assert "### NetworkPolicy team-a/web-egress (7 flows of its pods)" in traffic
    assert "| Rule | Allows | Flows | Last seen | Peers observed | Ports observed |" in traffic
    rows = {line.split(" | ")[0]: line for line in traffic.splitlines() if line.startswith("| `spec.")}
    assert "| 4 | 2026-11-30T10:03:00Z | team-a/app=api | TCP/8080 |" in rows["| `spec.egress[0]` (egress)"]
    assert "| 2 | 2026-11-30T10:05:00Z | team-a/app=cache | TCP/6379 |" in rows["| `spec.egress[1]` (egress)"]
    assert "| 0, unused | never | none | none |" in rows["| `spec.egress[2]` (egress)"]
    assert "not judged: it names services" in traffic  # web-services: its toServices rule
    assert "No flow of their pods in the window (their rules are not judged): NetworkPolicy team-b/batch." in traffic


def test_html_states_the_window_and_each_rule(folder: Path, flows: Path, tmp_path: Path) -> None:
    page = with_flows(folder, flows, "html", tmp_path)
    traffic = section(page)
    assert page.index("<h2>Posture</h2>") < page.index("<h2>Traffic evidence</h2>") < page.index("<h2>Findings</h2>")
    assert f"From Hubble flows: {PERIOD} {ASKED}." in traffic
    assert "busiest rule of the same policy" in traffic
    web = policy_block(page, "web-egress")
    assert "team-a/app=api" in web and "TCP/8080" in web and "2026-11-30T10:03:00Z" in web
    assert "team-a/app=cache" in web and "TCP/6379" in web
    services = policy_block(page, "web-services")
    assert '<span class="muted">' in services and "not judged: it names services" in services
    assert "team-b/batch" in traffic.split("No flow of their pods in the window")[1]


def bars(block: str) -> dict[str, float]:
    """Each rule's used width in its bar (0 for an empty track)."""
    found = {}
    for path, body in re.findall(r"<svg[^>]*><title>(spec\.[a-z]+\[\d+\]):(.*?)</svg>", block):
        used = re.search(r'class="use-flows" x="[\d.]+" width="([\d.]+)"', body)
        found[path] = float(used.group(1)) if used else 0.0
    return found


def test_html_bars_are_proportional_to_the_busiest_rule_of_the_policy(folder: Path, flows: Path,
                                                                      tmp_path: Path) -> None:
    page = with_flows(folder, flows, "html", tmp_path)
    web = policy_block(page, "web-egress")
    widths = bars(web)
    assert widths["spec.egress[0]"] > 0
    assert widths["spec.egress[1]"] == pytest.approx(widths["spec.egress[0]"] / 2)  # 2 flows of the busiest's 4
    assert widths["spec.egress[2]"] == 0.0
    db_row = web.split("<title>spec.egress[2]:")[1].split("</tr>")[0]
    assert ">unused</span>" in db_row  # the empty bar is marked unused
    # the evil-named policy's only rule is its own busiest: a full bar, whatever web-egress carried
    evil = policy_block(page, "evil-&lt;script&gt;alert(1)&lt;/script&gt;|x")
    assert bars(evil) == {"spec.ingress[0]": widths["spec.egress[0]"]}


@pytest.mark.parametrize("fmt", sorted(reports.formats(reports.AUDIT)))
def test_the_unused_rule_finding_appears_in_every_audit_format(folder: Path, flows: Path, tmp_path: Path,
                                                               fmt: str) -> None:
    out = with_flows(folder, flows, fmt, tmp_path)
    assert "unused-rule" in out and "web-egress" in out and "spec.egress[2]" in out
    if fmt == "json":
        (unused,) = [f for f in json.loads(out)["findings"] if f["rule"] == "unused-rule"]
        assert (unused["name"], unused["path"]) == ("web-egress", "spec.egress[2]")


def test_untrusted_names_and_labels_are_escaped(folder: Path, flows: Path, tmp_path: Path) -> None:
    page = with_flows(folder, flows, "html", tmp_path)
    assert "<script" not in page
    traffic = section(page)
    assert "team-a/evil-&lt;script&gt;alert(1)&lt;/script&gt;|x" in traffic  # the policy's heading
    assert "team-a/app=&lt;script&gt;alert(2)&lt;/script&gt;|y" in traffic  # the peer its rule carried
    md = with_flows(folder, flows, "markdown", tmp_path)
    assert re.findall(r"(?<!\\)<", md) == []  # no raw HTML: every < escaped
    traffic_md = md[md.index("## Traffic evidence"):md.index("## Findings")]
    assert r"### NetworkPolicy team-a/evil-\<script\>alert(1)\</script\>\|x" in traffic_md
    assert r"team-a/app=\<script\>alert(2)\</script\>\|y" in traffic_md
    for row in (line for line in traffic_md.splitlines() if line.startswith("| `spec.")):
        assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six cells: no unescaped pipe splits one


def test_without_flows_no_traffic_section(folder: Path, tmp_path: Path) -> None:
    assert "Traffic evidence" not in audit(folder, "markdown", tmp_path / "r.md")
    assert "Traffic evidence" not in audit(folder, "html", tmp_path / "r.html")
    assert json.loads(audit(folder, "json", tmp_path / "r.json"))["flows"] is None
