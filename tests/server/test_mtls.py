"""Mutual TLS on the admission listener (issue 11, point 2): `server.client_ca` set.

A real server on loopback; the clients are what the API server would be (a certificate signed by the
client CA), a scanner (no certificate) and an impostor (a certificate from another CA). The kubelet's
probes present no certificate either, and must keep working.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.server.conftest import HOSTNAME, Server, run_server
from webhook.core.reviews import make_review
from webhook.offline.decisionlog import read_decisions
from webhook.pki.certs import CertPaths

API_SERVER_CN = "kube-apiserver-netguard-client"


@dataclass(frozen=True)
class Client:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(directory: Path, cn: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "client-ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_client(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str) -> Client:
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    client = Client(directory / "client.crt", directory / "client.key")
    client.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    client.key.write_bytes(_key_pem(key))
    return client


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mtls-pki")
    ca_path, ca_key, ca_cert = make_ca(root / "trusted", "netguard-client-ca")
    _other_path, other_key, other_cert = make_ca(root / "other", "netguard-client-ca")  # same name, other key
    return {"client_ca": ca_path,
            "api_server": make_client(root / "api-server", ca_key, ca_cert, API_SERVER_CN),
            "impostor": make_client(root / "impostor", other_key, other_cert, API_SERVER_CN)}


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths, policies: Path,
                pki: dict[str, Any]) -> Iterator[Server]:
    config = {"server": {"client_ca": str(pki["client_ca"])}}
    with run_server(tmp_path_factory.mktemp("netguard-mtls"), certs, policies, config) as srv:
        yield srv


def _context(server: Server, client: Client | None) -> ssl.SSLContext:
    context = server.ssl_context()
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def _post(server: Server, path: str, doc: Any, client: Client | None) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection(server.host, server.port, context=_context(server, client), timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
        with conn.getresponse() as resp:
            return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _get(server: Server, path: str) -> int:
    conn = http.client.HTTPSConnection(server.host, server.port, context=server.ssl_context(), timeout=10)
    try:
        conn.request("GET", path)
        with conn.getresponse() as resp:
            resp.read()
            return resp.status
    finally:
        conn.close()


def _review(name: str) -> dict[str, Any]:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": "team-a"},
           "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}
    return make_review(obj, uid=str(uuid.uuid4()), username="alice", groups=("team-a",))


def _decision_lines(server: Server, uid: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    return server.wait_for_log(lambda line: line.get("event") == "admission.decision" and line.get("uid") == uid,
                               timeout=timeout)


def test_the_api_server_with_a_certificate_from_the_client_ca_is_served_and_logged_as_authenticated(
        mtls_server: Server, pki: dict[str, Any]) -> None:
    review = _review("allow-all")
    status, body = _post(mtls_server, "/validate", review, pki["api_server"])
    assert status == 200 and body["response"]["allowed"] is False  # evaluated: the guardrails deny it
    [line] = _decision_lines(mtls_server, review["request"]["uid"])
    assert line["authenticated"] is True and line["client_cn"] == API_SERVER_CN


def test_mutate_needs_the_certificate_too(mtls_server: Server, pki: dict[str, Any]) -> None:
    review = _review("mutated")
    assert _post(mtls_server, "/mutate", review, pki["api_server"])[0] == 200
    status, body = _post(mtls_server, "/mutate", _review("anonymous"), None)
    assert status == 401 and "client certificate" in body["error"]


def test_a_caller_without_a_certificate_is_refused_for_admission_and_nothing_is_logged_as_a_decision(
        mtls_server: Server) -> None:
    review = _review("anonymous")
    status, body = _post(mtls_server, "/validate", review, None)
    assert status == 401 and body["status"] == 401 and "client certificate" in body["error"]
    assert _decision_lines(mtls_server, review["request"]["uid"], timeout=1.0) == []


def test_a_certificate_from_another_ca_is_refused_at_the_handshake(mtls_server: Server, pki: dict[str, Any]) -> None:
    review = _review("impostor")
    # TLS 1.3: the client's handshake may complete before the server has checked its certificate, so the
    # refusal (an "unknown ca" alert) can arrive on the first read instead.
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _post(mtls_server, "/validate", review, pki["impostor"])
    # The other CA has the trusted CA's name: OpenSSL finds the trusted one and the signature fails (an
    # alert "decrypt error"; a CA of another name gets "unknown ca").
    with pytest.raises(ssl.SSLError, match=r"(?i)alert"):
        context = _context(mtls_server, pki["impostor"])
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # the verdict within the handshake itself
        with socket.create_connection((mtls_server.host, mtls_server.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=HOSTNAME):
            pass
    assert _decision_lines(mtls_server, review["request"]["uid"], timeout=1.0) == []


def test_probes_and_metrics_need_no_certificate(mtls_server: Server) -> None:
    """The kubelet's HTTPS probes present no client certificate: they must keep passing."""
    assert _get(mtls_server, "/healthz") == 200
    assert _get(mtls_server, "/readyz") == 200
    assert _get(mtls_server, "/metrics") == 200


def test_the_check_listener_is_not_affected(mtls_server: Server) -> None:
    """CI and portals call /v1/check without a client certificate; client_ca is the admission listener's."""
    check = mtls_server.check_listener()
    reply = check.post("/v1/check", b"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                    b"metadata: {name: x, namespace: team-a}\nspec: {podSelector: {}}\n",
                       content_type="application/yaml")
    assert reply.status == 200


def test_without_client_ca_decisions_are_logged_as_unauthenticated(server: Server) -> None:
    review = _review("plain")
    assert server.review("/validate", review)["response"]["uid"] == review["request"]["uid"]
    [line] = _decision_lines(server, review["request"]["uid"])
    assert line["authenticated"] is False and line.get("client_cn") is None


def test_the_audit_counts_only_authenticated_decisions_by_default(mtls_server: Server, server: Server,
                                                                   pki: dict[str, Any]) -> None:
    """The decision logs of both servers together: the unauthenticated lines are evidence of nothing."""
    authenticated, forged = _review("from-api-server"), _review("forged")
    forged["request"]["userInfo"] = {"username": "mallory", "groups": ["system:authenticated"]}
    assert _post(mtls_server, "/validate", authenticated, pki["api_server"])[0] == 200
    assert server.review("/validate", forged)["response"]["uid"] == forged["request"]["uid"]
    assert _decision_lines(mtls_server, authenticated["request"]["uid"])
    assert _decision_lines(server, forged["request"]["uid"])
    lines = [json.dumps(line) for line in mtls_server.log_lines() + server.log_lines()]

    stats = read_decisions(lines)
    assert "mallory" not in stats.by_requester and stats.by_requester["alice"]["denied"] >= 1
    assert stats.unauthenticated_lines >= 1
    everything = read_decisions(lines, include_unauthenticated=True)
    assert everything.by_requester["mallory"]["denied"] == 1
    assert everything.total == stats.total + stats.unauthenticated_lines
