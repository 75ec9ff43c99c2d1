"""AuditReport -> wgpolicyk8s.io PolicyReports: one per audited namespace and one ClusterPolicyReport, to apply
to a cluster where Policy Reporter or a dashboard reads them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from webhook import kinds
from webhook.reports import PLAIN_STYLE, Format, Style

if TYPE_CHECKING:
    from webhook.offline.audit import AuditFinding, AuditReport

POLICY_REPORT_API = "wgpolicyk8s.io/v1alpha2"
MANAGED_BY = {"app.kubernetes.io/managed-by": "netguard"}
# A finding's kind is the name netguard gives the kind (Calico's NetworkPolicy is "NetworkPolicy.projectcalico.org");
# the report names the resource by its real kind and apiVersion.
RESOURCES = {k.name: (k.kind, k.api_version) for k in kinds.ALL}
# enforce: admission would reject it today -> fail. warn and audit are both "requirement not met, not
# blocking": the CRD's `warn` ("not met, not scored"). Audit includes findings an exception excuses;
# `properties.reason` names the exception. Only `fail` results are scored.
RESULT_OF_MODE = {"enforce": "fail", "warn": "warn", "audit": "warn"}
# Kyverno's v1alpha2 CRD allows critical, high, medium, low, info (the original wg-policy v1alpha2 only
# high, medium, low); netguard's severities map one to one, anything else is info.
SEVERITIES = ("critical", "high", "medium", "low")


def _timestamp(when: datetime) -> dict[str, int]:
    """A protobuf Timestamp; a time without a zone is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return {"seconds": math.floor(when.timestamp()), "nanos": when.microsecond * 1000}


def _result(f: AuditFinding, stamp: Mapping[str, int]) -> dict[str, Any]:
    kind, api_version = RESOURCES.get(f.kind, (f.kind, ""))
    resource: dict[str, str] = {"apiVersion": api_version, "kind": kind, "name": f.name}
    if not resource["apiVersion"]:
        del resource["apiVersion"]
    if f.namespace:
        resource["namespace"] = f.namespace
    message = f"{f.path}: {f.message}" + (f". Fix: {f.fix}" if f.fix else "")
    result = RESULT_OF_MODE.get(f.mode, "warn")
    return {
        "policy": f.rule, "rule": f.rule, "category": "netguard",
        "severity": f.severity if f.severity in SEVERITIES else "info",
        "result": result, "message": message, "source": "netguard", "scored": result == "fail",
        "timestamp": dict(stamp), "resources": [resource],
        "properties": {"path": f.path, "last_changed_by": f.last_changed_by, "mode": f.mode, "reason": f.reason,
                       "file": f.source, "line": str(f.line)},
    }


def _report(kind: str, name: str, namespace: str | None, results: list[dict[str, Any]],
            annotations: Mapping[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(MANAGED_BY)
    metadata["annotations"] = dict(annotations)
    counts = Counter(r["result"] for r in results)
    return {"apiVersion": POLICY_REPORT_API, "kind": kind, "metadata": metadata,
            "summary": {k: counts[k] for k in ("pass", "fail", "warn", "error", "skip")}, "results": results}


def policy_reports(report: AuditReport) -> list[dict[str, Any]]:
    """One PolicyReport per audited namespace (empty ones too, so applying them clears fixed findings)
    and one ClusterPolicyReport for clusterwide policies."""
    stamp = _timestamp(report.generated_at)
    annotations = {"netguard.io/policy-revision": report.policy_revision, "netguard.io/source": report.source,
                   "netguard.io/generated-at": report.generated_at.isoformat()}
    by_ns: dict[str, list[dict[str, Any]]] = {ns: [] for ns in report.posture.namespaces}
    cluster: list[dict[str, Any]] = []
    for f in report.findings:
        (by_ns.setdefault(f.namespace, []) if f.namespace else cluster).append(_result(f, stamp))
    docs = [_report("PolicyReport", f"netguard-{ns}", ns, results, annotations)
            for ns, results in sorted(by_ns.items())]
    docs.append(_report("ClusterPolicyReport", "netguard-cluster", None, cluster, annotations))
    return docs


def render_policyreport(report: AuditReport, style: Style = PLAIN_STYLE) -> str:
    return yaml.safe_dump_all(policy_reports(report), sort_keys=False, explicit_start=True, allow_unicode=True,
                              width=120)


FORMAT = Format("policyreport", "wgpolicyk8s.io PolicyReports (YAML), one per namespace, to kubectl apply",
                audit=render_policyreport)
