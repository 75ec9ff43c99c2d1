"""The TLS policy every serving context gets (webhook/serve/tls.py): AEAD-only TLS 1.2, the client CA, start-up checks.

The behaviour on the wire is tested against the real server in tests/server/test_tls_suites.py and
tests/server/test_mtls.py; these pin down the context itself and the pieces that need no server.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from webhook.config import from_mapping
from webhook.core.settings import ConfigError
from webhook.pki.certs import CertPaths, generate
from webhook.serve.tls import MINIMUM_VERSION, ReloadingContext, check_client_ca, client_common_name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate("netguard", "netguard", tmp_path_factory.mktemp("tls-policy"))


def _build(certs: CertPaths) -> ssl.SSLContext:
    # What gunicorn's default factory makes: its default ciphers include the CBC suites.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    return context


def test_tls12_offers_only_ecdhe_with_an_aead_cipher(certs: CertPaths) -> None:
    context = ReloadingContext(str(certs.cert), str(certs.key), lambda: _build(certs)).current()
    assert context.minimum_version == MINIMUM_VERSION == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "TLS 1.2 must stay available (API servers and clients that cannot do 1.3)"
    for cipher in tls12:
        assert cipher["aead"] and cipher["kea"] == "kx-ecdhe", cipher["name"]
    assert any("CHACHA20" in c["name"] for c in tls12) and any("GCM" in c["name"] for c in tls12)
    assert any(c["protocol"] == "TLSv1.3" for c in context.get_ciphers())  # TLS 1.3 untouched


def test_without_a_client_ca_no_certificate_is_asked_for(certs: CertPaths) -> None:
    context = ReloadingContext(str(certs.cert), str(certs.key), lambda: _build(certs)).current()
    assert context.verify_mode is ssl.CERT_NONE


def test_a_client_ca_makes_presented_certificates_verified_and_is_reloaded_when_it_changes(
        certs: CertPaths, tmp_path: Path) -> None:
    other = generate("netguard", "netguard", tmp_path / "other")
    bundle = tmp_path / "client-ca.crt"
    bundle.write_bytes(certs.ca_cert.read_bytes())
    clock = Clock()
    reloading = ReloadingContext(str(certs.cert), str(certs.key), lambda: _build(certs), clock=clock,
                                 client_ca=str(bundle))
    first = reloading.current()
    # Optional at the handshake (probes have no certificate); a certificate presented must verify.
    assert first.verify_mode is ssl.CERT_OPTIONAL
    assert first.cert_store_stats()["x509_ca"] == 1
    bundle.write_bytes(certs.ca_cert.read_bytes() + other.ca_cert.read_bytes())  # a CA rotation: both
    os.utime(bundle, ns=(1, 1))
    clock.now += 5
    second = reloading.current()
    assert second is not first and second.cert_store_stats()["x509_ca"] == 2


def test_check_client_ca_names_the_key_and_the_problem(certs: CertPaths, tmp_path: Path) -> None:
    check_client_ca(str(certs.ca_cert))
    with pytest.raises(ConfigError, match=r"server\.client_ca: cannot load .*missing\.crt"):
        check_client_ca(str(tmp_path / "missing.crt"))
    with pytest.raises(ConfigError, match=r"server\.client_ca: .*no CA certificate"):
        check_client_ca(str(certs.cert))  # the serving certificate is no CA
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"server\.client_ca"):
        check_client_ca(str(garbage))


def test_client_common_name() -> None:
    peer = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver"),))}
    assert client_common_name(peer) == "kube-apiserver"
    assert client_common_name(None) is None and client_common_name({}) is None


def test_the_config_key() -> None:
    assert from_mapping({}).server.client_ca == ""
    assert from_mapping({"server": {"client_ca": "/etc/netguard/client-ca/ca.crt"}}).server.client_ca == \
        "/etc/netguard/client-ca/ca.crt"
    with pytest.raises(ConfigError, match="client_ca"):
        from_mapping({"server": {"client_ca": 1}})
