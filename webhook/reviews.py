"""Build AdmissionReview requests the way the API server sends them.

Used where no API server is involved: the CLI's synthetic requests, the tests, the
benchmarks and the README sample. One builder, so they all exercise the same shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from webhook.admission import API_VERSION, KIND

_RESOURCES = {
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    "CiliumNetworkPolicy": ("cilium.io", "v2", "ciliumnetworkpolicies"),
    "CiliumClusterwideNetworkPolicy": ("cilium.io", "v2", "ciliumclusterwidenetworkpolicies"),
}


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
    resource = _RESOURCES.get(kind, (group, version, kind.lower() + "s"))[2]
    meta = subject.get("metadata")
    if not isinstance(meta, Mapping):  # malformed: let normalization name the field
        meta = {}
    if namespace is None:
        namespace = "" if kind == "CiliumClusterwideNetworkPolicy" else str(meta.get("namespace", ""))
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
