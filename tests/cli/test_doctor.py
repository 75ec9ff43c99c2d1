"""`netguard doctor`: an installation checked from the outside in (issue 11, point 8).

No API server can run here: tests/kube_standin.py replaces a live one. It serves the webhook
configurations as deploy/base ships them (caBundle installed), the serving certificate's Secret, the
Service and its EndpointSlices, and runs admission for dry-run creates by calling netguard's real
/validate (webhook.serve.server.create_app through Flask's test client) where the API server would call the
Service. A healthy installation passes every check; each broken variant fails the check that names
it, with its fix, and exits 1.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube_standin import KubeStandIn, Objects
from webhook import cli, config
from webhook.pki.certs import generate

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "base"
CHECKS = ["webhook-configurations", "failure-policy", "timeouts", "namespace-selector", "ca-bundle", "endpoints",
          "dry-run-review", "dry-run-denial"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def validate() -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """netguard's /validate as the API server would call it."""
    from webhook.serve.server import create_app

    app = create_app(config.from_mapping({"policies_dir": str(REPO / "policies")}))
    client = app.test_client()

    def call(review: dict[str, Any]) -> dict[str, Any]:
        answer = client.post("/validate", json=review)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body: dict[str, Any] = answer.get_json()
        return body

    yield call
    app.extensions["netguard"].engine.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("pki")
    good = generate("netguard", "netguard", root / "good")
    other = generate("netguard", "netguard", root / "other")
    return {"ca": good.ca_cert.read_bytes(), "cert": good.cert.read_bytes(), "other_ca": other.ca_cert.read_bytes()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def healthy(pki: dict[str, bytes]) -> Objects:
    """What `kubectl apply -k deploy/base` creates, after `netguard certs install`, with ready pods."""
    objects = Objects()
    for plural, file in (("validatingwebhookconfigurations", "validating-webhook.yaml"),
                         ("mutatingwebhookconfigurations", "mutating-webhook.yaml")):
        doc = yaml.safe_load((BASE / file).read_text())
        for webhook in doc["webhooks"]:
            webhook["clientConfig"]["caBundle"] = _b64(pki["ca"])
        objects.webhook_configurations[plural] = {doc["metadata"]["name"]: doc}
    objects.services.append(yaml.safe_load((BASE / "service.yaml").read_text()))
    objects.secrets.append({"metadata": {"name": "netguard-tls", "namespace": "netguard"}, "type": "kubernetes.io/tls",
                            "data": {"tls.crt": _b64(pki["cert"]), "tls.key": _b64(b"not read")}})
    objects.endpoint_slices.append({
        "addressType": "IPv4",
        "metadata": {"name": "netguard-x7k2p", "namespace": "netguard",
                     "labels": {"kubernetes.io/service-name": "netguard"}},
        "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True, "serving": True}}
                      for i in (4, 5, 6)]})
    return objects


def _doctor(tmp_path: Path, objects: Objects, admission: Callable[[dict[str, Any]], dict[str, Any]] | None,
            capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, str], KubeStandIn]:
    with KubeStandIn(tmp_path, objects=objects) as standin:
        standin.admission = admission
        code = cli.main(["doctor", "--kubeconfig", str(standin.kubeconfig), *extra])
    out = capsys.readouterr().out
    # (the webhook's own decision log lines go to stdout here too: netguard runs in this process)
    lines = {line.split()[1].rstrip(":"): line for line in out.splitlines()
             if line.split(" ", 1)[0] in ("ok", "FAIL", "skip")}
    assert list(lines) == CHECKS, out
    return code, lines, standin


def test_a_healthy_installation_passes_every_check(tmp_path: Path, pki: dict[str, bytes],
                                                   validate: Callable[[dict[str, Any]], dict[str, Any]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, standin = _doctor(tmp_path, healthy(pki), validate, capsys)
    assert [line.split()[0] for line in lines.values()] == ["ok"] * len(CHECKS), "\n".join(lines.values())
    assert code == 0
    assert "netguard denied an allow-all egress NetworkPolicy" in lines["dry-run-denial"]
    assert "3 ready endpoints" in lines["endpoints"]
    # Through the API server, as dry runs: nothing was created.
    assert [r["request"]["dryRun"] for r in standin.reviews] == [True, True]
    posts = [r for r in standin.requests if r.method == "POST"]
    assert len(posts) == 2 and all(r.query == {"dryRun": "All"} for r in posts)


def _break_missing_configuration(o: Objects, pki: dict[str, bytes]) -> None:
    del o.webhook_configurations["validatingwebhookconfigurations"]


def _break_ca_bundle(o: Objects, pki: dict[str, bytes]) -> None:
    for webhook in o.webhook_configurations["validatingwebhookconfigurations"]["netguard"]["webhooks"]:
        webhook["clientConfig"]["caBundle"] = _b64(pki["other_ca"])


def _break_endpoints(o: Objects, pki: dict[str, bytes]) -> None:
    for item in o.endpoint_slices:
        for endpoint in item["endpoints"]:
            endpoint["conditions"] = {"ready": False, "serving": False}


def _break_namespace_selector(o: Objects, pki: dict[str, bytes]) -> None:
    for webhook in o.webhook_configurations["mutatingwebhookconfigurations"]["netguard"]["webhooks"]:
        webhook["namespaceSelector"]["matchExpressions"][0]["values"] = ["netguard"]


def _break_failure_policy(o: Objects, pki: dict[str, bytes]) -> None:
    for webhook in o.webhook_configurations["validatingwebhookconfigurations"]["netguard"]["webhooks"]:
        webhook["failurePolicy"] = "Ignore"


@pytest.mark.parametrize(("breakage", "failed", "says", "fix"), [
    (_break_missing_configuration, "webhook-configurations", "ValidatingWebhookConfiguration netguard (not found)",
     "kubectl apply -k"),
    (_break_ca_bundle, "ca-bundle", "validate.netguard.io's caBundle does not verify the serving certificate",
     "netguard certs install --ca ca.crt --cluster"),
    (_break_endpoints, "endpoints", "Service netguard/netguard has no ready endpoints", "/readyz"),
    (_break_namespace_selector, "namespace-selector", "mutate.netguard.io does not exclude kube-system",
     "NotIn [kube-system, netguard]"),
    (_break_failure_policy, "failure-policy", "validate.netguard.io has failurePolicy Ignore, expected Fail",
     "validating Fail"),
], ids=["missing-config", "wrong-ca-bundle", "no-endpoints", "kube-system-not-excluded", "validating-ignore"])
def test_each_broken_installation_fails_its_check_with_the_fix(
        breakage: Callable[[Objects, dict[str, bytes]], None], failed: str, says: str, fix: str, tmp_path: Path,
        pki: dict[str, bytes], validate: Callable[[dict[str, Any]], dict[str, Any]],
        capsys: pytest.CaptureFixture[str]) -> None:
    objects = healthy(pki)
    breakage(objects, pki)
    code, lines, _ = _doctor(tmp_path, objects, validate, capsys)
    assert code == 1
    line = lines[failed]
    assert line.startswith(f"FAIL {failed}: "), line
    assert says in line and "; fix: " in line and fix in line.split("; fix: ", 1)[1], line


def test_an_unreachable_webhook_fails_the_dry_run_review_with_what_to_check(
        tmp_path: Path, pki: dict[str, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    """What the placeholder CIDR of the old deploy/base did: configurations, certificate and pods fine, yet
    the API server cannot call netguard, and failing closed it refuses every policy change."""
    code, lines, _ = _doctor(tmp_path, healthy(pki), None, capsys)
    assert code == 1
    assert lines["dry-run-review"].startswith("FAIL dry-run-review: the API server could not call netguard: "
                                              "Internal error occurred: failed calling webhook")
    assert "apiserver-ingress component" in lines["dry-run-review"]
    assert lines["dry-run-denial"].startswith("skip dry-run-denial")
    assert all(lines[c].startswith("ok") for c in CHECKS[:6])


def test_a_webhook_that_does_not_review_the_namespace_fails_the_denial_check(
        tmp_path: Path, pki: dict[str, bytes], validate: Callable[[dict[str, Any]], dict[str, Any]],
        capsys: pytest.CaptureFixture[str]) -> None:
    objects = healthy(pki)
    for webhook in objects.webhook_configurations["validatingwebhookconfigurations"]["netguard"]["webhooks"]:
        webhook["namespaceSelector"]["matchExpressions"][0]["values"] += ["default"]
    code, lines, standin = _doctor(tmp_path, objects, validate, capsys)
    assert code == 1 and standin.reviews == []
    assert lines["dry-run-denial"].startswith("FAIL dry-run-denial: the API server accepted an allow-all egress")
    assert "namespaceSelector select default" in lines["dry-run-denial"]


def test_an_unreadable_secret_fails_the_ca_check_and_says_why(
        tmp_path: Path, pki: dict[str, bytes], validate: Callable[[dict[str, Any]], dict[str, Any]],
        capsys: pytest.CaptureFixture[str]) -> None:
    objects = healthy(pki)
    objects.secrets.clear()
    code, lines, _ = _doctor(tmp_path, objects, validate, capsys)
    assert code == 1
    assert lines["ca-bundle"].startswith('FAIL ca-bundle: cannot read Secret netguard/netguard-tls: '
                                         'secrets "netguard-tls" not found')


def test_an_api_server_that_cannot_be_reached_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with KubeStandIn(tmp_path) as standin:
        kubeconfig = standin.kubeconfig
    code = cli.main(["doctor", "--kubeconfig", str(kubeconfig), "--timeout", "2"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "cannot reach the API server" in captured.err


def test_the_checks_are_pure_over_what_was_read(pki: dict[str, bytes]) -> None:
    """An expired serving certificate is caught without a cluster (the checks take the time as input)."""
    import datetime

    from webhook.cluster import doctor
    from webhook.cluster.api_reader import ApiAnswer

    objects = healthy(pki)
    found = doctor.Installation(name="netguard")
    for kind, plural in doctor.PLURALS.items():
        found.configurations[kind] = ApiAnswer(200, copy.deepcopy(objects.webhook_configurations[plural]["netguard"]),
                                               ())
    found.secret = ApiAnswer(200, objects.secrets[0], ())
    assert doctor.check_ca_bundles(found).ok is True
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3650)
    check = doctor.check_ca_bundles(found, later)
    assert check.ok is False and "is not valid now" in check.detail
