"""Guardrail sample manifests as admission requests.

`samples/<good|bad>/<name>.yaml` is the object; an optional `<name>.request.yaml` beside it says
how it arrives (defaults: CREATE by `alice`, groups [system:authenticated]):

    username: alice
    groups: [team-a]
    operation: UPDATE        # CREATE, UPDATE or DELETE
    old_object: {...}        # the object before the change (UPDATE, DELETE)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from webhook.admission import parse_review
from webhook.model import AdmissionRequest
from webhook.reviews import make_review

DEFAULT_USER = "alice"
DEFAULT_GROUPS = ("system:authenticated",)


def request_file(sample: Path) -> Path:
    return sample.with_name(sample.name.rsplit(".", 1)[0] + ".request.yaml")


def load_sample(sample: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = yaml.safe_load(sample.read_text(encoding="utf-8"))
    meta_path = request_file(sample)
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return obj, meta or {}


def sample_review(sample: Path) -> dict[str, Any]:
    """The AdmissionReview the API server would send for this sample."""
    obj, meta = load_sample(sample)
    operation = str(meta.get("operation", "CREATE"))
    old = meta.get("old_object")
    return make_review(None if operation == "DELETE" else obj, operation=operation,
                       old=obj if operation == "DELETE" and old is None else old,
                       username=str(meta.get("username", DEFAULT_USER)),
                       groups=tuple(meta.get("groups", DEFAULT_GROUPS)))


def sample_request(sample: Path) -> AdmissionRequest:
    return parse_review(sample_review(sample))
