"""The cipher policy of both listeners, seen by real clients over loopback (issue 11, point 5).

TLS 1.2 offers only ECDHE with an AEAD cipher (AES-GCM, ChaCha20-Poly1305): a client that can only
speak a CBC suite is refused at the handshake. TLS 1.3 is what a default client gets. The admission
listener and the /v1/check listener share the policy.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.server.conftest import HOSTNAME, Server

# The serving certificate is ECDSA P-256 (webhook/pki/certs.py), so the suites are the ECDSA ones.
CBC_SUITES = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA",
              "ECDHE-ECDSA-AES256-SHA")
AEAD_SUITES = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305")


def _client(server: Server, *, tls12_ciphers: str | None = None) -> ssl.SSLContext:
    context = server.ssl_context()
    if tls12_ciphers is not None:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(tls12_ciphers)
    return context


def _handshake(server: Server, context: ssl.SSLContext) -> tuple[str | None, str | None]:
    """(TLS version, cipher name) of a completed handshake; raises ssl.SSLError when refused."""
    with socket.create_connection((server.host, server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
        cipher = tls.cipher()
        return tls.version(), cipher[0] if cipher else None


@pytest.fixture(params=["admission", "check"])
def listener(request: pytest.FixtureRequest, server: Server) -> Server:
    return server if request.param == "admission" else server.check_listener()


@pytest.mark.parametrize("suite", CBC_SUITES)
def test_a_tls12_client_with_only_a_cbc_suite_is_refused(listener: Server, suite: str) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(listener, _client(listener, tls12_ciphers=suite))


@pytest.mark.parametrize("suite", AEAD_SUITES)
def test_a_tls12_client_with_an_aead_suite_is_served(listener: Server, suite: str) -> None:
    assert _handshake(listener, _client(listener, tls12_ciphers=suite)) == ("TLSv1.2", suite)


def test_a_tls12_client_offering_cbc_and_aead_gets_aead(listener: Server) -> None:
    offered = ":".join(CBC_SUITES + AEAD_SUITES)
    version, cipher = _handshake(listener, _client(listener, tls12_ciphers=offered))
    assert version == "TLSv1.2" and cipher in AEAD_SUITES


def test_a_default_client_negotiates_tls13(listener: Server) -> None:
    version, _cipher = _handshake(listener, _client(listener))
    assert version == "TLSv1.3"

