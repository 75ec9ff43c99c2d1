"""admission.k8s.io/v1 AdmissionReview in (strict decoding) and out (build_response).

No web framework here: the server hands in raw bytes and a content type and gets back an
AdmissionRequest or a ReviewError that already carries the HTTP status to answer with.
A broken webhook *call* is an HTTP error; a bad *object* is a well-formed denial (kopf's
split), so only the transport layer sees ReviewError.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.model import (
    AdmissionRequest,
    Decision,
    GroupVersionKind,
    Mode,
    Operation,
    UserInfo,
    Verdict,
)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

# kube-apiserver truncates a single warning over 256 characters and drops warnings once
# 4096 characters have been added in total (admission webhook docs, "Response" section).
MAX_WARNING_CHARS = 256
MAX_WARNINGS_TOTAL = 4096
DEFAULT_MAX_DEPTH = 64


class ReviewError(Exception):
    """The webhook call itself is broken: answer with an HTTP error, not an AdmissionReview."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_json(raw: bytes, content_type: str | None, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Bytes from the wire to a JSON value, refusing what a real API server never sends."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ReviewError(415, f"unsupported Content-Type {_clip(content_type or '(none)')}; use application/json")
    if not raw:
        raise ReviewError(400, "empty request body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReviewError(400, f"request body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ReviewError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer past sys.get_int_max_str_digits()
        raise ReviewError(400, f"malformed JSON: {_clip(str(exc), 80)}") from None
    except RecursionError:
        # CPython's decoder guards its recursion, so a hostile body ends here, not in a crash.
        raise ReviewError(400, f"JSON nested deeper than {max_depth} levels") from None
    # A value cannot nest deeper than the brackets its text holds (those inside strings only add to the
    # count), so the walk runs only for bodies that could be too deep: typical reviews skip it (~0.1 ms).
    if raw.count(b"{") + raw.count(b"[") > max_depth and _too_deep(value, max_depth):
        raise ReviewError(400, f"JSON nested deeper than {max_depth} levels")
    if "\\ud" in text.lower():  # only then can an escape have produced a lone surrogate
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ReviewError(400, "JSON string holds a lone UTF-16 surrogate escape") from None
    return value


def _finite_float(text: str) -> float:
    """1e400 decodes to infinity, which the engine's JSON cannot carry; Go's decoder (the API server's)
    refuses numbers beyond float64 too."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {_clip(text, 40)} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; no API server sends them."""
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(value: Any, limit: int) -> bool:
    """Iterative depth check: no recursion, stops at the first branch over the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _clip(value: Any, limit: int = 60) -> str:
    """A client value for an error message: repr, bounded, so nothing huge is echoed or logged."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_review(doc: Any) -> AdmissionRequest:
    """A decoded JSON value to an AdmissionRequest, or ReviewError(400) naming what is wrong."""
    if not isinstance(doc, Mapping):
        raise ReviewError(400, "body is not a JSON object")
    if doc.get("kind") != KIND:
        raise ReviewError(400, f"kind must be {KIND}, got {_clip(doc.get('kind'))}")
    if doc.get("apiVersion") != API_VERSION:
        raise ReviewError(400, f"apiVersion must be {API_VERSION}, got {_clip(doc.get('apiVersion'))}")
    req = doc.get("request")
    if not isinstance(req, Mapping):
        raise ReviewError(400, "request is missing or not an object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(400, "request.uid is missing or empty")
    try:
        operation = Operation(str(req.get("operation")))
    except ValueError:
        raise ReviewError(400, f"request.operation {_clip(req.get('operation'))} is not one of "
                               f"{', '.join(o.value for o in Operation)}") from None
    return AdmissionRequest(
        uid=uid,
        kind=_gvk(req.get("kind"), "request.kind"),
        operation=operation,
        user=_user(req.get("userInfo")),
        name=_optional_str(req, "name"),
        namespace=_optional_str(req, "namespace"),
        object=_optional_object(req, "object"),
        old_object=_optional_object(req, "oldObject"),
        dry_run=req.get("dryRun") is True,
        sub_resource=_optional_str(req, "subResource"),
    )


def _gvk(value: Any, where: str) -> GroupVersionKind:
    if not isinstance(value, Mapping):
        raise ReviewError(400, f"{where} is missing or not an object")
    parts = []
    for key in ("group", "version", "kind"):
        part = value.get(key, "")
        if not isinstance(part, str):
            raise ReviewError(400, f"{where}.{key} must be a string")
        parts.append(part)
    if not parts[1] or not parts[2]:
        raise ReviewError(400, f"{where} needs version and kind")
    return GroupVersionKind(*parts)


def _user(value: Any) -> UserInfo:
    if value is None:
        return UserInfo()
    if not isinstance(value, Mapping):
        raise ReviewError(400, "request.userInfo is not an object")
    groups = value.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ReviewError(400, "request.userInfo.groups must be a list of strings")
    extra_raw = value.get("extra") or {}
    if not isinstance(extra_raw, Mapping):
        raise ReviewError(400, "request.userInfo.extra must be an object")
    extra = {str(k): tuple(str(x) for x in v) for k, v in extra_raw.items() if isinstance(v, list)}
    username = value.get("username", "")
    uid = value.get("uid", "")
    if not isinstance(username, str) or not isinstance(uid, str):
        raise ReviewError(400, "request.userInfo.username and uid must be strings")
    return UserInfo(username=username, uid=uid, groups=tuple(groups), extra=extra)


def _optional_str(req: Mapping[str, Any], key: str) -> str:
    value = req.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(400, f"request.{key} must be a string")
    return value


def _optional_object(req: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = req.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ReviewError(400, f"request.{key} must be an object or null")
    return value


@dataclass(frozen=True)
class Response:
    """The fields of AdmissionResponse netguard sets, before serialization."""

    uid: str
    allowed: bool
    message: str = ""
    code: int = 403
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] | None = None
    patch: Sequence[Mapping[str, Any]] | None = None


def response_for(uid: str, decision: Decision, revision: str) -> Response:
    """Map a Decision onto the AdmissionResponse fields: deny text, warnings, audit annotations."""
    denied = decision.by_mode(Mode.ENFORCE)
    message = ""
    if not decision.allowed:
        lines = [f.line() for f in denied]
        count = len(lines)
        message = (f"netguard denied this request: {count} guardrail violation{'s' if count != 1 else ''} "
                   f"(policy revision {revision}):\n" + "\n".join(f"- {line}" for line in lines))
        if decision.reason:
            message += f"\n({decision.reason})"
    warnings = fit_warnings(
        [f.short() for f in decision.by_mode(Mode.WARN)]
        + [f"netguard: {n}" for n in decision.notices]
        + ([f"netguard: {decision.reason}"] if decision.reason and decision.verdict is Verdict.ERROR else [])
    )
    audit = {}
    if decision.findings:
        audit["violations"] = json.dumps(
            [{"rule": f.finding.rule, "path": f.finding.path, "mode": f.mode.value, "reason": f.reason}
             for f in decision.findings],
            separators=(",", ":"), sort_keys=True,
        )
        audit["policy-revision"] = revision
    if decision.exceptions_used:
        audit["exceptions-used"] = json.dumps(list(decision.exceptions_used), separators=(",", ":"))
    return Response(uid=uid, allowed=decision.allowed, message=message, warnings=warnings,
                    audit_annotations=audit or None)


def fit_warnings(warnings: Sequence[str]) -> tuple[str, ...]:
    """Keep each warning within the API server's limits and say how many were cut."""
    kept: list[str] = []
    total = 0
    for i, text in enumerate(warnings):
        text = " ".join(text.split())  # warnings must be one line
        if len(text) > MAX_WARNING_CHARS:
            text = text[: MAX_WARNING_CHARS - 1] + "…"
        room = MAX_WARNINGS_TOTAL - total - 64  # leave room for the "more" line
        if len(text) > room:
            kept.append(f"netguard: {len(warnings) - i} more warning(s) omitted; see the audit annotations")
            break
        kept.append(text)
        total += len(text)
    return tuple(kept)


def build_response(resp: Response) -> dict[str, Any]:
    """The AdmissionReview JSON the API server expects back (uid echoed, patch base64)."""
    body: dict[str, Any] = {"uid": resp.uid, "allowed": resp.allowed}
    if not resp.allowed:
        body["status"] = {"code": resp.code, "reason": "Forbidden", "message": resp.message}
    if resp.warnings:
        body["warnings"] = list(resp.warnings)
    if resp.audit_annotations:
        body["auditAnnotations"] = dict(resp.audit_annotations)
    if resp.patch:
        raw = json.dumps(list(resp.patch), separators=(",", ":"), sort_keys=True).encode()
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(raw).decode("ascii")
    return {"apiVersion": API_VERSION, "kind": KIND, "response": body}
