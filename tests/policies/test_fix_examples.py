"""A fix never recommends what another guardrail rejects.

Every guardrail's `example` (policy.yaml, shown in docs/guardrails.md and the audit report) is one
complete manifest that demonstrates its fix. Each example goes through the whole catalog in the real
pipeline, as a team member's CREATE, and must come out without any finding: no denial, no warning,
no audit record. The fix texts (the `fix` of every violation, and each `remediation`) are checked
against a short denylist of recommendations that some guardrail rejects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policies.conftest import POLICIES, SETTINGS
from webhook import kinds
from webhook.core.admission import parse_review
from webhook.core.guardrails import Guardrail
from webhook.core.model import Decision, Mode, Verdict
from webhook.core.reviews import make_review
from webhook.core.snapshot import ClusterSnapshot
from webhook.engine.policies import load_policy_set
from webhook.offline.baseline import BaselineOptions, baseline_objects
from webhook.offline.samples import sample_cluster, sample_files, sample_request
from webhook.pipeline import Pipeline

CATALOG = load_policy_set(POLICIES)
GUARDRAILS = CATALOG.guardrails
IDS = [g.id for g in GUARDRAILS]
ENGINES = ("regorus", "opa")
# The example's author: a team member, the person a fix text is written for (not the platform team,
# whose requests several guardrails let through); for a cluster-scoped kind, which only the platform team may
# write (cluster-scoped-policy-restricted), the platform team.
TEAM_USER, TEAM_GROUPS = "alice", ("team-a", "system:authenticated")
PLATFORM_USER, PLATFORM_GROUPS = "platform-admin", ("system:masters",)

# Guardrails whose example may still draw findings, with the guardrails allowed to report it and why.
# Keep this minimal: an entry means the catalog gives advice that another of its rules complains about.
# (None today: explicit-policy-types, the usual suspect, is satisfied by writing policyTypes out, and
# namespace-has-default-deny is judged below against a namespace that has the platform's baseline.)
EXCEPTIONS: dict[str, dict[str, str]] = {}


@pytest.fixture
def pipelines(embedded_pipeline: Pipeline, opa_pipeline: Pipeline) -> dict[str, Pipeline]:
    return {"regorus": embedded_pipeline, "opa": opa_pipeline}


def example(guardrail: Guardrail) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(str(guardrail.metadata.get("example", ""))))
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{guardrail.id}: example must be one manifest"
    return docs[0]


def review(pipeline: Pipeline, obj: dict[str, Any], cluster: ClusterSnapshot | None = None) -> Decision:
    kind = kinds.of(obj)
    user, groups = (TEAM_USER, TEAM_GROUPS) if kind is None or kind.namespaced else (PLATFORM_USER, PLATFORM_GROUPS)
    request = parse_review(make_review(obj, username=user, groups=groups))
    decision = pipeline.review(request, snapshot=cluster).decision
    assert decision.verdict not in (Verdict.SKIPPED, Verdict.ERROR), decision.reason
    return decision


def assert_clean(guardrail: Guardrail, decision: Decision) -> None:
    enforced = [f.line() for f in decision.findings if f.mode is Mode.ENFORCE]
    assert decision.verdict is Verdict.ALLOWED and not enforced, f"{guardrail.id}: example denied: {enforced}"
    allowed = EXCEPTIONS.get(guardrail.id, {})
    others = [f.line() for f in decision.findings if f.finding.rule not in allowed]
    assert not others, f"{guardrail.id}: the example draws findings: {others}"


@pytest.mark.parametrize("guardrail", GUARDRAILS, ids=IDS)
def test_example_is_one_complete_manifest(guardrail: Guardrail) -> None:
    obj = example(guardrail)
    kind = kinds.of(obj)
    assert kind is not None, f"{guardrail.id}: example {obj.get('apiVersion')} {obj.get('kind')} is not a guarded kind"
    assert obj.get("apiVersion") == kind.api_version
    metadata = obj.get("metadata") or {}
    assert metadata.get("name"), f"{guardrail.id}: example needs metadata.name"
    if kind.namespaced:
        assert metadata.get("namespace"), f"{guardrail.id}: example needs metadata.namespace"
        assert metadata["namespace"] not in SETTINGS.excluded_namespaces
    assert isinstance(obj.get("spec") or obj.get("specs"), (dict, list))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("guardrail", GUARDRAILS, ids=IDS)
def test_example_passes_the_whole_catalog(pipelines: dict[str, Pipeline], engine: str, guardrail: Guardrail) -> None:
    """As `netguard check` sees it: no cluster view."""
    assert_clean(guardrail, review(pipelines[engine], example(guardrail)))


@pytest.mark.parametrize("guardrail", GUARDRAILS, ids=IDS)
def test_example_passes_in_a_watched_namespace(embedded_pipeline: Pipeline, guardrail: Guardrail) -> None:
    """As the webhook with the cluster view sees it, so the cluster-dependent guardrails run too.

    The namespace holds the platform's default-deny baseline, which is where a team writes its
    policies; namespace-has-default-deny's own example is the default deny, so it must pass in an
    empty namespace.
    """
    obj = example(guardrail)
    namespace = str(obj["metadata"].get("namespace") or "team-a")
    existing = [] if guardrail.id == "namespace-has-default-deny" else baseline_objects(BaselineOptions(namespace))
    cluster = ClusterSnapshot.from_objects({namespace: {}}, existing)
    assert_clean(guardrail, review(embedded_pipeline, obj, cluster))


def test_exceptions_name_real_guardrails() -> None:
    for rule, allowed in EXCEPTIONS.items():
        assert rule in IDS and set(allowed) <= set(IDS), (rule, allowed)


# Recommendations another guardrail rejects, matched case-insensitively in fix texts. A deliberately
# simple denylist: a regular expression cannot tell advice from a warning, so fix texts name what to
# write and leave these constructs out, even in "instead of ..." clauses.
FORBIDDEN = {
    r"\b(from|to)?entit(y|ies)\b[^.;()]{0,30}?\b(cluster|all|world)\b":
        "the cluster/all/world entities (no-all-namespaces-peer, internet-*, no-metadata-egress)",
    r"0\.0\.0\.0/0|::/0": "the whole internet (internet-*, no-internet-*-without-ports, no-broad-cidr)",
    r"namespaceSelector:?\s*\{\s*\}": "every namespace (no-all-namespaces-peer)",
    r"matchPattern:?\s*\"?\*\"?(?![.\w])|\*\.(com|net|org|io)\b": "a wildcard FQDN (no-fqdn-wildcard)",
    r"enableDefaultDeny[^;]{0,40}?\bfalse\b": "opting out of default deny (no-default-deny-opt-out)",
}
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|`([^`]*)`')
HEAD = re.compile(r"^([a-z_][a-z0-9_]*)\b")


def static_fix_texts(rule: Path) -> list[str]:
    """String literals of `"fix": ...` lines and of the helper rules named fix*/hint that build them."""
    texts: list[str] = []
    in_helper = False
    for line in rule.read_text(encoding="utf-8").splitlines():
        head = HEAD.match(line)
        if head:
            in_helper = head.group(1).startswith(("fix", "hint"))
        elif line and not line[0].isspace() and not line.startswith("}"):
            in_helper = False
        if in_helper or '"fix"' in line:
            texts += [a or b for a, b in STRING.findall(line)]
    return texts


def rendered_fix_texts(pipeline: Pipeline) -> list[str]:
    """The fix texts as requesters read them: every sample through the pipeline."""
    texts = []
    for guardrail in GUARDRAILS:
        for which in ("good", "bad"):
            for path in sample_files(guardrail, which):
                decision = pipeline.review(sample_request(path), snapshot=sample_cluster(path)).decision
                texts += [f.finding.fix for f in decision.findings]
    return texts


def offences(text: str) -> list[str]:
    return [why for pattern, why in FORBIDDEN.items() if re.search(pattern, text, re.IGNORECASE)]


@pytest.mark.parametrize("guardrail", GUARDRAILS, ids=IDS)
def test_fix_strings_recommend_nothing_another_guardrail_rejects(guardrail: Guardrail) -> None:
    fixes = static_fix_texts(guardrail.rule.path)
    assert fixes, f"{guardrail.rule.path}: no fix text found (has the rule's layout changed?)"
    texts = [*fixes, " ".join(guardrail.remediation.split())]
    found = {text: offences(text) for text in texts if offences(text)}
    assert not found, f"{guardrail.id}: {found}"


def test_rendered_fix_texts_recommend_nothing_another_guardrail_rejects(embedded_pipeline: Pipeline) -> None:
    texts = set(rendered_fix_texts(embedded_pipeline))
    assert texts
    found = {text: offences(text) for text in sorted(texts) if offences(text)}
    assert not found, found


@pytest.mark.parametrize(("text", "caught"), [
    ("name the sources (fromEndpoints, fromEntities such as cluster, or a narrow CIDR)", True),
    ("the sources that must connect (a load balancer's CIDRs, fromEntities cluster)", True),
    ("use toCIDRSet 0.0.0.0/0 with that except", True),
    ("allow namespaceSelector: {} with a podSelector", True),
    ('use matchPattern "*" for the proxy', True),
    ("a pattern on a public suffix such as *.com", True),
    ("set enableDefaultDeny.egress to false", True),
    ("name the namespaces: namespaceSelector.matchLabels {kubernetes.io/metadata.name: <ns>}", False),
    ("use matchName for the exact hosts, or a pattern under a domain you control (*.example.com)", False),
    ("remove enableDefaultDeny.ingress (it defaults to true when the entry has ingress rules)", False),
    ("replace the entity with toEndpoints/fromEndpoints that name the namespaces", False),
])
def test_the_denylist_catches_what_it_should(text: str, caught: bool) -> None:
    assert bool(offences(text)) is caught
