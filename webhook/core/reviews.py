"""Build AdmissionReview requests the way the API server sends them.

Used where no API server is involved: the CLI's synthetic requests, the tests, the
benchmarks and the README sample. One builder, so they all exercise the same shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from webhook import kinds
from webhook.core.admission import API_VERSION, KIND, ReviewError
from webhook.core.model import AdmissionRequest, GroupVersionKind, Operation, UserInfo


def _namespace(obj: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """request.namespace as the API server sets it: none for a cluster-scoped kind."""
    kind = kinds.of(obj)
    return "" if kind is not None and not kind.namespaced else str(meta.get("namespace", ""))


def make_review(
    obj: Mapping[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    username: str = "alice",
    groups: Sequence[str] = ("system:authenticated",),
    namespace: str | None = None,
    uid: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """An AdmissionReview request for `obj` (for DELETE pass the object as `old`)."""
    subject = obj if obj is not None else old
    if subject is None:
        raise ValueError("make_review needs an object or an old object")
    kind = str(subject.get("kind", ""))
    api_version = str(subject.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    policy_kind = kinds.of(subject)
    resource = policy_kind.plural if policy_kind is not None else kind.lower() + "s"
    meta = subject.get("metadata")
    if not isinstance(meta, Mapping):  # malformed: let normalization name the field
        meta = {}
    if namespace is None:
        namespace = _namespace(subject, meta)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": str(meta.get("name", "")),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": username, "groups": list(groups)},
            "object": dict(obj) if obj is not None else None,
            "oldObject": dict(old) if old is not None else None,
            "dryRun": dry_run,
            "options": None,
        },
    }


def synthetic_create(obj: Mapping[str, Any], *, user: UserInfo, namespace: str | None = None,
                     uid: str | None = None) -> AdmissionRequest:
    """The CREATE of `obj` by `user` that `netguard check`, POST /v1/check and the audit review: the request
    parse_review(make_review(obj, username=..., groups=..., namespace=...)) decodes, built without the dict
    round trip (tests/unit/test_reviews.py holds the two equal over a corpus of manifests). ReviewError where
    parse_review refuses that review: an apiVersion without a version."""
    kind = str(obj.get("kind", ""))
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    if not version or not kind:
        raise ReviewError(400, "request.kind needs version and kind")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):  # malformed: let normalization name the field
        meta = {}
    if namespace is None:
        namespace = _namespace(obj, meta)
    return AdmissionRequest(uid=uid or str(uuid.uuid4()), kind=GroupVersionKind(group, version, kind),
                            operation=Operation.CREATE, user=user, name=str(meta.get("name", "")),
                            namespace=namespace, object=dict(obj))
