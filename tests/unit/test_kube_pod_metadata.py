"""The audit reads pods through the metadata API only (issue 11, point 7).

The stand-in (tests/kube_standin.py) replaces a live API server: it answers the metadata API's
`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` with a
PartialObjectMetadataList, as kube-apiserver does, and with `metadata_only={"pods"}` refuses a full
pod list (a switch the real server does not have: it proves that netguard never asked for one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube_standin import KubeStandIn
from webhook.cluster.kube import METADATA_LIST, load_inventory
from webhook.offline.inventory import Workload


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[KubeStandIn]:
    with KubeStandIn(tmp_path, metadata_only={"pods"}, page_size=2) as server:
        yield server


def test_pods_are_listed_as_partial_object_metadata_and_still_give_the_workloads(standin: KubeStandIn) -> None:
    inventory = load_inventory(str(standin.kubeconfig))
    assert inventory.workloads == (
        Workload("kube-system", "Pod", "coredns-7db6d8ff4d-5xk2p", {"k8s-app": "kube-dns",
                                                                    "pod-template-hash": "7db6d8ff4d"}),
        Workload("team-a", "Pod", "web-6b8f9c7d5-q7w2e", {"app": "web", "pod-template-hash": "6b8f9c7d5"}),
        Workload("team-b", "Pod", "api-5f7d8c9b6-m3n4p", {"app": "api", "pod-template-hash": "5f7d8c9b6"}),
    )
    pods = standin.requests_to("/api/v1/pods")
    assert len(pods) == 2  # paged: the metadata API pages like any list
    assert {r.accept for r in pods} == {METADATA_LIST}


def test_only_pods_use_the_metadata_api(standin: KubeStandIn) -> None:
    """Policies and namespaces are read whole (the guardrails read their specs)."""
    load_inventory(str(standin.kubeconfig))
    others = [r for r in standin.requests if r.path != "/api/v1/pods"]
    assert others and all("PartialObjectMetadata" not in (r.accept or "") for r in others)


def test_the_standin_refuses_a_full_pod_list_when_metadata_only(standin: KubeStandIn) -> None:
    """The proof is real: a full list is refused, so the first test passes only through the metadata API."""
    import requests

    answer = requests.get(f"{standin.url}/api/v1/pods", headers={"Authorization": "Bearer standin-token-9f3c1e"},
                          verify=str(standin.kubeconfig.parent / "pki" / "ca.crt"), timeout=5)
    assert answer.status_code == 403
    metadata = requests.get(f"{standin.url}/api/v1/pods",
                            headers={"Authorization": "Bearer standin-token-9f3c1e", "Accept": METADATA_LIST},
                            verify=str(standin.kubeconfig.parent / "pki" / "ca.crt"), timeout=5)
    assert metadata.status_code == 200
    body = metadata.json()
    assert body["kind"] == "PartialObjectMetadataList"
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in body["items"])
