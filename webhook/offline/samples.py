"""Guardrail sample manifests as admission requests.

`samples/<good|bad>/<name>.yaml` is the object; an optional `<name>.request.yaml` beside it says
how it arrives (defaults: CREATE by `alice`, groups [system:authenticated]):

    username: alice
    groups: [team-a]
    operation: UPDATE        # CREATE, UPDATE or DELETE
    old_object: {...}        # the object before the change (UPDATE, DELETE)
    cluster:                 # what netguard's cluster view holds (omit: netguard does not watch the cluster)
      namespaces: {team-a: {team: a}}   # namespace -> labels
      policies: [{...}, ...]            # network policies already in the cluster (any of the three kinds)
      stale: false                      # true: the view lost its watch (cluster-dependent rules must not guess)
      age_seconds: 0                    # how long ago the view was last current
      flows: [{flow: {...}}, ...]       # Hubble flow records (`hubble observe -o jsonpb`): the audit's --flows
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from webhook.core.admission import parse_review
from webhook.core.facts import FactParams, enrich
from webhook.core.flow_evidence import FlowEvidence
from webhook.core.guardrails import Guardrail
from webhook.core.model import AdmissionRequest
from webhook.core.netpolicy import NormalizedPolicy
from webhook.core.normalize import normalize
from webhook.core.reviews import make_review
from webhook.core.snapshot import ClusterSnapshot
from webhook.offline.flow_match import match_flows
from webhook.offline.flows import FlowStats, read_flows

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


def sample_cluster(sample: Path) -> ClusterSnapshot | None:
    """The cluster view the sample is reviewed against, from its request file's `cluster:` key."""
    _, meta = load_sample(sample)
    spec = meta.get("cluster")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError("cluster: must be a mapping")
    namespaces = spec.get("namespaces") or {}
    policies = spec.get("policies") or []
    if not isinstance(namespaces, dict) or not isinstance(policies, list):
        raise ValueError("cluster: namespaces must be a mapping and policies a list")
    labels = {str(ns): {str(k): str(v) for k, v in (ls or {}).items()} for ns, ls in namespaces.items()}
    snapshot = ClusterSnapshot.from_objects(labels, policies, stale=bool(spec.get("stale", False)),
                                            age_seconds=float(spec.get("age_seconds", 0)))
    records = spec.get("flows")
    if records is None:
        return snapshot
    if not isinstance(records, list):
        raise ValueError("cluster: flows must be a list of Hubble flow records")
    others = [enrich(p, FactParams()) for p in snapshot.policies.values()]
    return replace(snapshot, flows=sample_flows(load_sample(sample)[0], records, labels, others))


def sample_flows(obj: dict[str, Any], records: list[Any], namespaces: dict[str, dict[str, str]],
                 others: list[NormalizedPolicy]) -> FlowEvidence:
    """What the flow records say about the sample's own policy, among the cluster's `others`, as `netguard audit
    --flows` works it out."""
    stats = FlowStats()
    export = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in records))  # read as an export is
    flows = read_flows([export], stats)
    return match_flows([enrich(normalize(obj), FactParams()), *others], flows, namespaces, stats)


def sample_files(guardrail: Guardrail, which: str) -> tuple[Path, ...]:
    """A guardrail's sample manifests (`which`: good or bad), in name order; the `<name>.request.yaml` files beside
    them describe requests, not samples."""
    return tuple(sorted(p for p in (guardrail.folder / "samples" / which).glob("*.y*ml")
                        if not p.name.endswith((".request.yaml", ".request.yml"))))
