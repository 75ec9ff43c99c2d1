"""`netguard certs install`: the CA into every webhook's caBundle, in manifest files or in the cluster.

Files mode edits copies of deploy/base's webhook configurations. Cluster mode runs against the
stand-in API server (tests/kube_standin.py: not kube-apiserver, which cannot run here) serving those
same configurations, and checks the JSON Patches it receives.
"""

from __future__ import annotations

import base64
import difflib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import BASE, load_yaml_documents
from tests.kube_standin import KubeStandIn, Objects
from webhook.cli import main
from webhook.cluster.api import ClusterError
from webhook.cluster.webhooks import FIELD_MANAGER, patch_webhook_configurations
from webhook.pki import install
from webhook.pki.certs import CertPaths, generate

WEBHOOK_FILES = ("validating-webhook.yaml", "mutating-webhook.yaml")
PLURALS = {"ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
           "MutatingWebhookConfiguration": "mutatingwebhookconfigurations"}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client honours *_PROXY like kubectl; loopback test traffic must not go to a proxy."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate("netguard", "netguard", tmp_path_factory.mktemp("pki"))


@pytest.fixture
def manifests(tmp_path: Path) -> list[Path]:
    out = []
    for name in WEBHOOK_FILES:
        shutil.copy(BASE / name, tmp_path / name)
        out.append(tmp_path / name)
    return out


def bundle(pki: CertPaths) -> str:
    return base64.b64encode(pki.ca_cert.read_bytes()).decode()


def ca_bundles(docs: list[dict[str, Any]]) -> list[str]:
    return [w["clientConfig"]["caBundle"] for d in docs for w in d.get("webhooks") or []]


# -- files ------------------------------------------------------------------------------------------------


def test_files_get_the_ca_and_nothing_else_changes(pki: CertPaths, manifests: list[Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.read_text() for p in manifests}
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--files", *map(str, manifests)]) == 0
    for path in manifests:
        after = path.read_text()
        docs = load_yaml_documents(path)
        assert ca_bundles(docs) == [bundle(pki)]
        changed = [line for line in difflib.unified_diff(before[path].splitlines(), after.splitlines(), lineterm="")
                   if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
        assert changed == ['-      caBundle: ""', f'+      caBundle: "{bundle(pki)}"']  # comments and all kept
        original = yaml.safe_load(before[path])
        original["webhooks"][0]["clientConfig"]["caBundle"] = bundle(pki)
        assert docs == [original]
    assert capsys.readouterr().err.count(": caBundle set") == 2


def test_a_second_install_changes_nothing(pki: CertPaths, manifests: list[Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--files", *map(str, manifests)]) == 0
    first = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in manifests}
    capsys.readouterr()
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--files", *map(str, manifests)]) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in manifests} == first
    assert capsys.readouterr().err.count("caBundle already set") == 2


MULTI = """\
# several documents, several webhooks, every caBundle shape
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
data: {caBundle: keep-me}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: netguard
webhooks:
  - name: one.netguard.io   # no caBundle yet
    clientConfig:
      service: {name: netguard, namespace: netguard, path: /validate}
    sideEffects: None
  - name: two.netguard.io
    clientConfig:
      caBundle: |
        b2xkLWNh
      url: https://example.com/validate
    sideEffects: None
  - name: three.netguard.io
    clientConfig:
      caBundle:
      service: {name: netguard, namespace: netguard}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: someone-else
webhooks:
  - name: other.example.com
    clientConfig:
      caBundle: b3RoZXI=
"""


def test_every_caBundle_shape_is_set_and_other_documents_are_untouched(pki: CertPaths) -> None:
    out, changes = install.set_ca_bundle_text(MULTI, "multi.yaml", "netguard", bundle(pki))
    assert [(c.webhook, c.changed) for c in changes] == [
        ("one.netguard.io", True), ("two.netguard.io", True), ("three.netguard.io", True)]
    before, after = list(yaml.safe_load_all(MULTI)), list(yaml.safe_load_all(out))
    assert after[0] == before[0] and after[2] == before[2]
    assert ca_bundles([after[1]]) == [bundle(pki)] * 3
    assert [w["clientConfig"].get("url") for w in after[1]["webhooks"]] == [None, "https://example.com/validate", None]
    assert "# no caBundle yet" in out and out.startswith("# several documents")


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: netguard}\n", "no ValidatingWebhookConfiguration or "
     "MutatingWebhookConfiguration named 'netguard'"),
    ("kind: MutatingWebhookConfiguration\nmetadata: {name: netguard}\nwebhooks: []\n", "has no webhooks"),
    ("kind: MutatingWebhookConfiguration\nmetadata: {name: netguard}\nwebhooks:\n- name: a.b.c\n", "no clientConfig"),
    ("kind: MutatingWebhookConfiguration\nmetadata: {name: netguard}\nwebhooks:\n- name: a.b.c\n"
     "  clientConfig: {url: 'https://x'}\n", "add `caBundle: \"\"`"),
    ("kind: [unclosed\n", "not valid YAML"),
])
def test_manifests_that_cannot_take_the_ca_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(install.InstallError, match=r"^f\.yaml") as caught:
        install.set_ca_bundle_text(text, "f.yaml", "netguard", "Y2E=")
    assert message in str(caught.value)


def test_one_bad_file_leaves_every_file_as_it_was(pki: CertPaths, manifests: list[Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "service.yaml"
    shutil.copy(BASE / "service.yaml", other)
    before = {p: p.read_bytes() for p in [*manifests, other]}
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--files", *map(str, manifests), str(other)]) == 2
    assert "service.yaml: no ValidatingWebhookConfiguration" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize(("which", "message"), [
    ("ca_key", "holds a private key; give the CA certificate"),
    ("key", "holds a private key"),
    ("cert", "is not a CA certificate"),
])
def test_anything_but_the_ca_certificate_is_refused(which: str, message: str, pki: CertPaths,
                                                    manifests: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A key given by mistake would be published in a cluster-readable object; a serving cert breaks TLS."""
    before = manifests[0].read_bytes()
    assert main(["certs", "install", "--ca", str(getattr(pki, which)), "--files", str(manifests[0])]) == 2
    assert message in capsys.readouterr().err
    assert manifests[0].read_bytes() == before


def test_the_cluster_options_do_not_go_with_files(pki: CertPaths, manifests: list[Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--files", str(manifests[0]),
                 "--kubeconfig", "k"]) == 2
    assert "--kubeconfig and --context go with --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --files and --cluster are exclusive, one is required
        main(["certs", "install", "--ca", str(pki.ca_cert)])


# -- cluster ----------------------------------------------------------------------------------------------


def _deployed() -> Objects:
    """The stand-in serves the configurations as `kubectl apply -k deploy/base` would have created them."""
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    for name in WEBHOOK_FILES:
        for doc in load_yaml_documents(BASE / name):
            stored.setdefault(PLURALS[doc["kind"]], {})[doc["metadata"]["name"]] = doc
    return Objects(webhook_configurations=stored)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeStandIn]:
    with KubeStandIn(tmp_path / "standin", objects=_deployed()) as standin:
        yield standin


def test_cluster_install_patches_each_configuration_with_a_test_and_an_add_per_webhook(
        pki: CertPaths, cluster: KubeStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--cluster", "--kubeconfig",
                 str(cluster.kubeconfig)]) == 0
    assert [(p.path, p.content_type, p.query, p.body) for p in cluster.patches] == [
        (f"/apis/admissionregistration.k8s.io/v1/{plural}/netguard", "application/json-patch+json",
         {"fieldManager": FIELD_MANAGER},
         [{"op": "test", "path": "/webhooks/0/name", "value": webhook},
          {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle(pki)}])
        for plural, webhook in (("validatingwebhookconfigurations", "validate.netguard.io"),
                                ("mutatingwebhookconfigurations", "mutate.netguard.io"))]
    stored = cluster.objects.webhook_configurations
    assert ca_bundles([stored[p]["netguard"] for p in PLURALS.values()]) == [bundle(pki)] * 2
    err = capsys.readouterr().err
    assert "ValidatingWebhookConfiguration netguard: caBundle set on 1 of 1 webhooks" in err
    assert "MutatingWebhookConfiguration netguard: caBundle set on 1 of 1 webhooks" in err


def test_cluster_install_sends_no_patch_when_the_ca_is_already_there(
        pki: CertPaths, cluster: KubeStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["certs", "install", "--ca", str(pki.ca_cert), "--cluster", "--kubeconfig", str(cluster.kubeconfig)]
    assert main(args) == 0
    assert len(cluster.patches) == 2
    capsys.readouterr()
    assert main(args) == 0
    assert len(cluster.patches) == 2
    assert capsys.readouterr().err.count("caBundle already set on all 1 webhooks") == 2


def test_a_missing_configuration_changes_nothing(pki: CertPaths, cluster: KubeStandIn,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    del cluster.objects.webhook_configurations["mutatingwebhookconfigurations"]["netguard"]
    assert main(["certs", "install", "--ca", str(pki.ca_cert), "--cluster", "--kubeconfig",
                 str(cluster.kubeconfig)]) == 2
    err = capsys.readouterr().err
    assert "MutatingWebhookConfiguration netguard not found" in err and "kubectl apply -k deploy/base" in err
    assert cluster.patches == []  # the validating one, found first, was not patched either


def test_a_forbidden_patch_names_the_permission_needed(pki: CertPaths, tmp_path: Path) -> None:
    with KubeStandIn(tmp_path / "standin", objects=_deployed(),
                     forbidden={"validatingwebhookconfigurations"}) as standin:
        with pytest.raises(ClusterError, match=r"needs get and patch on admissionregistration\.k8s\.io"):
            patch_webhook_configurations("netguard", lambda obj: install.ca_bundle_patch(obj, bundle(pki)),
                                         str(standin.kubeconfig))
        assert standin.patches == []


def test_webhooks_reordered_between_read_and_patch_are_refused_not_patched_at_the_wrong_index(
        pki: CertPaths, cluster: KubeStandIn) -> None:
    stored = cluster.objects.webhook_configurations

    def patch_after_someone_else(obj: dict[str, Any]) -> list[dict[str, Any]]:
        ops = install.ca_bundle_patch(obj, bundle(pki))
        plural = PLURALS[obj["kind"]]
        stored[plural]["netguard"]["webhooks"].insert(0, {"name": "inserted.example.com",
                                                          "clientConfig": {"caBundle": "b3RoZXI="}})
        return ops

    with pytest.raises(ClusterError, match=r"refused \(422\).*run the command again"):
        patch_webhook_configurations("netguard", patch_after_someone_else, str(cluster.kubeconfig))
    webhooks = stored["validatingwebhookconfigurations"]["netguard"]["webhooks"]
    assert [w["clientConfig"]["caBundle"] for w in webhooks] == ["b3RoZXI=", ""]


def test_an_unreachable_api_server_is_reported(pki: CertPaths, tmp_path: Path) -> None:
    standin = KubeStandIn(tmp_path / "standin", objects=_deployed())
    standin.stop()
    with pytest.raises(ClusterError, match="cannot reach the API server"):
        patch_webhook_configurations("netguard", lambda obj: install.ca_bundle_patch(obj, bundle(pki)),
                                     str(standin.kubeconfig), timeout_seconds=5)
