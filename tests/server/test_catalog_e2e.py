"""Every guardrail of the catalog, evaluated end to end by the real server over TLS.

The server runs the live policies/ folder with every guardrail in enforce mode, so each bad
sample must be denied by its own guardrail and each good sample must not be denied by it.
Samples that need a requester or an UPDATE/DELETE carry a .request.yaml beside them. This server
watches no cluster, so samples whose request file describes one (`cluster:`) are left to
tests/server/test_cluster_context.py, which serves the cluster from the stand-in API server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook.engine.policies import load_policy_set
from webhook.offline.samples import load_sample, sample_files, sample_review
from webhook.pki.certs import CertPaths

from .conftest import REPO_ROOT, Server, run_server

CATALOG = load_policy_set(REPO_ROOT / "policies")


def _first(rule: str, samples: tuple[Path, ...]) -> Any:
    """The first sample that needs no cluster view; a guardrail without one is skipped, saying where it is tested."""
    for sample in samples:
        if "cluster" not in load_sample(sample)[1]:
            return pytest.param(rule, sample, id=rule)
    return pytest.param(rule, samples[0], id=rule, marks=pytest.mark.skip(
        reason="its samples need a cluster view: tests/server/test_cluster_context.py covers it through the server"))


FIRST_BAD = [_first(g.id, sample_files(g, "bad")) for g in CATALOG.guardrails]
FIRST_GOOD = [_first(g.id, sample_files(g, "good")) for g in CATALOG.guardrails]


@pytest.fixture(scope="module")
def catalog_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths) -> Iterator[Server]:
    config = {"rules": {g.id: {"mode": "enforce"} for g in CATALOG.guardrails}}
    with run_server(tmp_path_factory.mktemp("netguard-catalog"), certs, REPO_ROOT / "policies", config) as srv:
        yield srv


@pytest.mark.parametrize(("rule", "sample"), FIRST_BAD)
def test_every_guardrail_denies_its_bad_sample_through_the_server(catalog_server: Server, rule: str,
                                                                  sample: Path) -> None:
    response = catalog_server.review("/validate", sample_review(sample))["response"]
    assert response["allowed"] is False
    assert f"[{rule}]" in response["status"]["message"]


@pytest.mark.parametrize(("rule", "sample"), FIRST_GOOD)
def test_no_guardrail_denies_its_good_sample_through_the_server(catalog_server: Server, rule: str,
                                                                sample: Path) -> None:
    response = catalog_server.review("/validate", sample_review(sample))["response"]
    assert f"[{rule}]" not in response.get("status", {}).get("message", "")
