"""Annotations recording the findings, as a JSON Patch computed by diffing (jsonpatch).

Deterministic (sorted JSON), idempotent on reinvocation (an already-annotated object diffs to
nothing), and only ever adds or replaces the netguard.io/ annotations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch

from webhook.core.decide import ENGINE_ERROR
from webhook.core.model import Decision, Verdict

ANNOTATION_VIOLATIONS = "netguard.io/violations"
ANNOTATION_REVISION = "netguard.io/policy-revision"
# Who made the last change, so the audit can name whom to talk to about a finding.
ANNOTATION_LAST_MODIFIED_BY = "netguard.io/last-modified-by"


def annotations_for(obj: Mapping[str, Any], decision: Decision, revision: str,
                    requester: str = "") -> dict[str, str]:
    existing = (obj.get("metadata") or {}).get("annotations") or {}
    out = {ANNOTATION_REVISION: revision}
    if requester:
        out[ANNOTATION_LAST_MODIFIED_BY] = requester
    if decision.findings or ANNOTATION_VIOLATIONS in existing:  # clear a stale record with []
        out[ANNOTATION_VIOLATIONS] = json.dumps(
            [{"rule": f.finding.rule, "path": f.finding.path, "mode": f.mode.value} for f in decision.findings],
            separators=(",", ":"), sort_keys=True)
    return out


def patch_for(obj: Mapping[str, Any], decision: Decision, revision: str, requester: str = "") -> list[dict[str, Any]]:
    """The JSON Patch that annotates `obj`; empty when there is nothing to change."""
    if decision.verdict in (Verdict.SKIPPED, Verdict.ERROR) or not isinstance(obj.get("metadata"), Mapping):
        return []
    if any(f.finding.rule == ENGINE_ERROR for f in decision.findings):
        return []  # a passing failure is not a fact about the object: record nothing
    annotated = copy.deepcopy(dict(obj))
    metadata = annotated["metadata"] = dict(annotated["metadata"])
    annotations = dict(metadata.get("annotations") or {})
    annotations.update(annotations_for(obj, decision, revision, requester))
    metadata["annotations"] = annotations
    patch: list[dict[str, Any]] = jsonpatch.make_patch(dict(obj), annotated).patch
    return patch
