"""reviews.synthetic_create: the request `check`, POST /v1/check and the audit review, built directly, is the one
parse_review(make_review(...)) decodes, so the shortcut past the dict round trip can never drift from it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from webhook.core.admission import ReviewError, parse_review
from webhook.core.model import AdmissionRequest, Operation, UserInfo
from webhook.core.reviews import make_review, synthetic_create
from webhook.offline.sources import read_paths

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path("/work/shared/corpus")  # public manifests (SOURCES.md there); the repo's own samples when absent
USERS = (UserInfo("netguard-check", groups=("system:authenticated",)), UserInfo("alice"),
         UserInfo("bob", groups=("team-a", "system:authenticated")))
ODD = [  # shapes a corpus may not hold: what the pure function must get exactly as the round trip does
    {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "cw"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": None, "namespace": None}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": "not a mapping"},
    {"apiVersion": "v1", "kind": "NetworkPolicy"},
    {"apiVersion": "networking.k8s.io/", "kind": "NetworkPolicy", "metadata": {"name": "x"}},  # no version
    {"apiVersion": "", "kind": "NetworkPolicy"},
    {"apiVersion": "networking.k8s.io/v1", "kind": "", "metadata": {"name": "x"}},
    {"kind": "NetworkPolicy", "metadata": {"name": 5, "namespace": 7}},
]


def objects() -> Iterator[Mapping[str, Any]]:
    root = CORPUS if CORPUS.is_dir() else REPO / "policies"
    documents, _ = read_paths([str(root)])
    assert len(documents) > 50, root
    for doc in documents:
        yield doc.obj
        yield doc.in_namespace("team-a").obj
    yield from ODD


def round_trip(obj: Mapping[str, Any], user: UserInfo, namespace: str | None) -> AdmissionRequest | str:
    try:
        return parse_review(make_review(obj, username=user.username, groups=user.groups, namespace=namespace,
                                        uid="uid"))
    except ReviewError as exc:
        return exc.message


def direct(obj: Mapping[str, Any], user: UserInfo, namespace: str | None) -> AdmissionRequest | str:
    try:
        return synthetic_create(obj, user=user, namespace=namespace, uid="uid")
    except ReviewError as exc:
        return exc.message


def test_the_direct_request_is_the_round_trip_over_the_corpus() -> None:
    compared = 0
    for obj in objects():
        for user in USERS:
            for namespace in (None, "", "team-a"):
                assert direct(obj, user, namespace) == round_trip(obj, user, namespace), (obj, user, namespace)
                compared += 1
    assert compared > 1000


def test_a_direct_request_is_a_create_of_a_copy() -> None:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web"}}
    request = synthetic_create(obj, user=USERS[0], namespace="team-a")
    assert request.operation is Operation.CREATE and request.subject == obj and request.subject is not obj
    assert request.uid and request.uid != synthetic_create(obj, user=USERS[0]).uid  # a new uid each time


def test_an_api_version_without_a_version_is_refused_as_the_round_trip_refuses_it() -> None:
    with pytest.raises(ReviewError, match=r"request\.kind needs version and kind"):
        synthetic_create({"apiVersion": "cilium.io/", "kind": "CiliumNetworkPolicy"}, user=USERS[0])
