"""webhook.pki.certs: the generated CA and serving certificate are what the API server will accept."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.pki.certs import CertPaths, CertsExistError, ca_bundle, describe, generate

TIMEOUT = 2.0


@pytest.fixture
def paths(tmp_path: Path) -> CertPaths:
    return generate("netguard", "netguard-system", tmp_path / "certs")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_writes_the_four_pem_files_into_a_private_directory(paths: CertPaths, tmp_path: Path) -> None:
    out = tmp_path / "certs"
    assert paths == CertPaths(out / "ca.crt", out / "ca.key", out / "tls.crt", out / "tls.key")
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_serving_cert_has_exactly_the_service_names_and_loopback_as_sans(paths: CertPaths) -> None:
    cert = _cert(paths.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "netguard",
        "netguard.netguard-system",
        "netguard.netguard-system.svc",
        "netguard.netguard-system.svc.cluster.local",
        "localhost",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert len(list(san)) == 7
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "netguard.netguard-system.svc"


def test_serving_cert_is_a_server_auth_leaf_and_not_a_ca(paths: CertPaths) -> None:
    ext = _cert(paths.cert).extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_ca_may_sign_only_leaf_certificates(paths: CertPaths) -> None:
    ca = _cert(paths.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "netguard-ca"
    assert ca.issuer == ca.subject
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature


def test_serving_cert_is_signed_by_the_generated_ca(paths: CertPaths) -> None:
    ca, cert = _cert(paths.ca_cert), _cert(paths.cert)
    cert.verify_directly_issued_by(ca)
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.serial_number != ca.serial_number


def test_both_private_keys_are_unencrypted_pkcs8_ec_p256_matching_their_certs(paths: CertPaths) -> None:
    for key_path, cert_path in ((paths.ca_key, paths.ca_cert), (paths.key, paths.cert)):
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, not "EC PRIVATE KEY"
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert key.public_key() == _cert(cert_path).public_key()


def test_private_keys_are_mode_0600(paths: CertPaths) -> None:
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600


def test_private_keys_are_created_0600_not_chmodded_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("chmod after writing leaves a window where the key is readable")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old_umask = os.umask(0)  # the mode must come from os.open itself, not from a lucky umask
    try:
        paths = generate("svc", "ns", tmp_path / "out")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600


def test_validity_starts_five_minutes_before_now_and_lasts_the_requested_days(tmp_path: Path) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    paths = generate("svc", "ns", tmp_path, now=now, days=30, ca_days=90)
    ca, cert = _cert(paths.ca_cert), _cert(paths.cert)
    assert cert.not_valid_before_utc == now - timedelta(minutes=5)
    assert cert.not_valid_after_utc == now + timedelta(days=30)
    assert ca.not_valid_after_utc == now + timedelta(days=90)


@pytest.mark.parametrize("existing", ["ca.key", "tls.key"])
def test_refuses_to_overwrite_an_existing_key_without_force_and_writes_nothing(
    tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).write_bytes(b"precious")
    before = _snapshot(tmp_path)
    with pytest.raises(CertsExistError, match=r"--force") as excinfo:
        generate("svc", "ns", tmp_path)
    assert str(tmp_path / existing) in str(excinfo.value)
    assert _snapshot(tmp_path) == before


def test_overwrites_with_force_and_the_new_pair_still_verifies(paths: CertPaths) -> None:
    old = _snapshot(paths.ca_cert.parent)
    new_paths = generate("netguard", "netguard-system", paths.ca_cert.parent, force=True)
    assert new_paths == paths
    new = _snapshot(paths.ca_cert.parent)
    assert sorted(new) == sorted(old)  # no temp files left behind
    assert all(new[name] != old[name] for name in old)
    _cert(paths.cert).verify_directly_issued_by(_cert(paths.ca_cert))
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600


def test_rejects_names_that_are_not_dns_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="service"):
        generate("Bad_Name", "ns", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_ca_bundle_is_single_line_base64_of_the_ca_pem(paths: CertPaths) -> None:
    bundle = ca_bundle(paths.ca_cert)
    assert "\n" not in bundle
    assert base64.b64decode(bundle, validate=True) == paths.ca_cert.read_bytes()


def test_describe_reports_names_and_expiry(tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    paths = generate("svc", "ns", tmp_path, now=now, days=10)
    assert describe(paths.cert) == {
        "subject_cn": "svc.ns.svc",
        "dns_names": ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local", "localhost"],
        "ip_addresses": ["127.0.0.1", "::1"],
        "not_valid_after": "2030-01-11T00:00:00+00:00",
    }
    assert describe(paths.ca_cert)["subject_cn"] == "netguard-ca"
    assert describe(paths.ca_cert)["dns_names"] == []


@contextmanager
def _tls_server(paths: CertPaths) -> Iterator[int]:
    """Serve one TLS connection on loopback, echoing one message; yields the port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths.cert, paths.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(TIMEOUT)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(16))
        except OSError:  # includes ssl.SSLError: the client rejecting our certificate
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert not thread.is_alive()


def _client_context(paths: CertPaths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def test_real_tls_handshake_on_loopback_succeeds_with_hostname_checking(paths: CertPaths) -> None:
    with (
        _tls_server(paths) as port,
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        _client_context(paths).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"ping")
        assert tls.recv(16) == b"ping"
        peer = tls.getpeercert()
        assert peer is not None
        assert ("DNS", "netguard.netguard-system.svc") in peer["subjectAltName"]


def test_tls_handshake_fails_for_a_hostname_not_in_the_cert(paths: CertPaths) -> None:
    with (
        _tls_server(paths) as port,
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname"),
    ):
        _client_context(paths).wrap_socket(raw, server_hostname="wrong.example")
