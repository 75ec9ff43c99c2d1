"""Every guardrail of the catalog, evaluated end to end by the real server over TLS.

The server runs the live policies/ folder with every guardrail in enforce mode, so each bad
sample must be denied by its own guardrail and each good sample must not be denied by it.
Samples that need a requester or an UPDATE/DELETE carry a .request.yaml beside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.certs import CertPaths
from webhook.policies import load_policy_set
from webhook.samples import sample_review

from .conftest import REPO_ROOT, Server, run_server

CATALOG = load_policy_set(REPO_ROOT / "policies")
FIRST_BAD = [(g.id, g.samples("bad")[0]) for g in CATALOG.guardrails]
FIRST_GOOD = [(g.id, g.samples("good")[0]) for g in CATALOG.guardrails]


@pytest.fixture(scope="module")
def catalog_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths) -> Iterator[Server]:
    config = {"rules": {g.id: {"mode": "enforce"} for g in CATALOG.guardrails}}
    with run_server(tmp_path_factory.mktemp("netguard-catalog"), certs, REPO_ROOT / "policies", config) as srv:
        yield srv


@pytest.mark.parametrize(("rule", "sample"), FIRST_BAD, ids=[r for r, _ in FIRST_BAD])
def test_every_guardrail_denies_its_bad_sample_through_the_server(catalog_server: Server, rule: str,
                                                                  sample: Path) -> None:
    response = catalog_server.review("/validate", sample_review(sample))["response"]
    assert response["allowed"] is False
    assert f"[{rule}]" in response["status"]["message"]


@pytest.mark.parametrize(("rule", "sample"), FIRST_GOOD, ids=[r for r, _ in FIRST_GOOD])
def test_no_guardrail_denies_its_good_sample_through_the_server(catalog_server: Server, rule: str,
                                                                sample: Path) -> None:
    response = catalog_server.review("/validate", sample_review(sample))["response"]
    assert f"[{rule}]" not in response.get("status", {}).get("message", "")
