"""Who last changed an object, as recorded in `netguard.io/last-modified-by`, may not be forged.

/mutate writes the requester's username into the annotation, but its failurePolicy is Ignore: when
it is slow or fails, the object reaches /validate with whatever the client wrote. The audit names
that value as the last modifier, so /validate refuses a value that neither the requester nor the
stored object vouches for. A skipped /mutate then leaves a stale attribution, never a forged one.

The check is about the API request, not the policy: it runs on /validate only (`check` and the
audit have no requester to compare with), always at enforce, and no exception covers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from webhook.core.model import AdmissionRequest, AppliedFinding, Decision, Finding, Mode, Operation, Verdict
from webhook.core.mutate import ANNOTATION_LAST_MODIFIED_BY

ATTRIBUTION_MISMATCH = "attribution-mismatch"  # rule id: the interface users and their automation rely on
PATH = f"metadata.annotations.{ANNOTATION_LAST_MODIFIED_BY}"


def _recorded(obj: Mapping[str, Any] | None) -> str | None:
    """The annotation's value, or None when absent (a malformed object is reported by the review)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    value = annotations.get(ANNOTATION_LAST_MODIFIED_BY) if isinstance(annotations, Mapping) else None
    return None if value is None else str(value)


def mismatch(request: AdmissionRequest) -> Finding | None:
    """The finding when the request writes an attribution that is neither its own user nor the stored one."""
    if request.operation not in (Operation.CREATE, Operation.UPDATE):
        return None
    written = _recorded(request.object)
    if written is None or written == request.user.username:
        return None
    if request.operation is Operation.UPDATE and written == _recorded(request.old_object):
        return None  # unchanged by this request: stale (a skipped /mutate), not forged
    stored = _recorded(request.old_object) if request.operation is Operation.UPDATE else None
    allowed = f"'{request.user.username}' (you)" + (f" or '{stored}' (the stored value)" if stored else "")
    return Finding(
        rule=ATTRIBUTION_MISMATCH, path=PATH, severity="high",
        message=(f"sets {ANNOTATION_LAST_MODIFIED_BY} to '{written}', but the request is made by "
                 f"'{request.user.username}': netguard records who changed a policy, and only {allowed} may "
                 "be written there"),
        fix=f"remove the {ANNOTATION_LAST_MODIFIED_BY} annotation from the manifest (netguard sets it)",
    )


def enforce(request: AdmissionRequest, decision: Decision) -> Decision:
    """`decision` with the mismatch finding added at enforce (never exempted), when there is one."""
    if decision.verdict is Verdict.SKIPPED:
        return decision  # an excluded namespace or kind: netguard does not judge it at all
    finding = mismatch(request)
    if finding is None:
        return decision
    applied = AppliedFinding(finding, Mode.ENFORCE, "attribution is not subject to modes or exceptions")
    return replace(decision, verdict=Verdict.DENIED, findings=(applied, *decision.findings))
