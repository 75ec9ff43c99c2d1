"""ReloadingContext: a renewed certificate is served at the next handshake; a bad one never breaks TLS.

A small TLS server on loopback wraps every connection with the context it got at start, as a
server that never asks again would: the switch to a new certificate must come from the
handshake hook itself. The clock is injected, so "a second later" costs no sleep.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.secret_volume import SecretVolume
from webhook.pki.certs import CertPaths, generate
from webhook.serve.tls import CHECK_INTERVAL, MINIMUM_VERSION, ReloadingContext


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += CHECK_INTERVAL + 0.01


@pytest.fixture(scope="module")
def ca_a(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate("netguard", "netguard", tmp_path_factory.mktemp("ca-a"))


@pytest.fixture(scope="module")
def ca_b(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate("netguard", "netguard", tmp_path_factory.mktemp("ca-b"))


@pytest.fixture(scope="module")
def trust_both(tmp_path_factory: pytest.TempPathFactory, ca_a: CertPaths, ca_b: CertPaths) -> Path:
    bundle = tmp_path_factory.mktemp("bundle") / "ca.crt"
    bundle.write_bytes(ca_a.ca_cert.read_bytes() + ca_b.ca_cert.read_bytes())
    return bundle


def files(certs: CertPaths) -> dict[str, bytes]:
    return {"tls.crt": certs.cert.read_bytes(), "tls.key": certs.key.read_bytes()}


def der(certs: CertPaths) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certs.cert.read_text())


def build_from(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class TlsServer:
    """Accepts on 127.0.0.1 and answers each connection with one line, always wrapping with `context`."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.server_names: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            try:
                with self._context.wrap_socket(raw, server_side=True) as tls:
                    self.server_names.append(tls.server_hostname)
                    tls.sendall(b"ok\n")
            except (OSError, ssl.SSLError):
                raw.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def peer_certificate(self, ca: Path, host: str = "localhost") -> bytes:
        """The certificate the server presents; `host` 127.0.0.1 sends no SNI (RFC 6066: no IP literals)."""
        client = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.recv(3) == b"ok\n"
            cert = tls.getpeercert(binary_form=True)
            assert cert is not None
            return cert


@pytest.fixture
def volume(tmp_path: Path, ca_a: CertPaths) -> SecretVolume:
    return SecretVolume(tmp_path / "secret", files(ca_a))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reloading(volume: SecretVolume, clock: Clock) -> ReloadingContext:
    cert, key = volume.path("tls.crt"), volume.path("tls.key")
    return ReloadingContext(str(cert), str(key), lambda: build_from(cert, key), clock=clock)


@pytest.fixture
def server(reloading: ReloadingContext) -> Iterator[TlsServer]:
    srv = TlsServer(reloading.current())
    yield srv
    srv.stop()


def test_a_swapped_secret_is_served_at_the_next_handshake_after_the_check_interval(
        volume: SecretVolume, clock: Clock, server: TlsServer, ca_a: CertPaths, ca_b: CertPaths,
        trust_both: Path, reloading: ReloadingContext) -> None:
    assert server.peer_certificate(trust_both) == der(ca_a)
    volume.update(files(ca_b))
    assert server.peer_certificate(trust_both) == der(ca_a)  # not looked at again within the interval
    clock.tick()
    with capture_logs() as logs:
        assert server.peer_certificate(trust_both) == der(ca_b)
    assert server.peer_certificate(ca_b.ca_cert) == der(ca_b)  # a client that trusts only the new CA
    assert reloading.reloads == 1
    assert [entry["event"] for entry in logs] == ["tls.certificate_reloaded"]
    assert logs[0]["not_after"] and logs[0]["serial"]


def test_a_client_that_sends_no_server_name_also_gets_the_new_certificate(
        volume: SecretVolume, clock: Clock, server: TlsServer, ca_b: CertPaths, trust_both: Path) -> None:
    volume.update(files(ca_b))
    clock.tick()
    assert server.peer_certificate(trust_both, host="127.0.0.1") == der(ca_b)
    assert server.server_names[-1] is None  # the hook ran without SNI


def test_files_replaced_by_rename_are_picked_up(tmp_path: Path, clock: Clock, ca_a: CertPaths, ca_b: CertPaths,
                                                trust_both: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(ca_a.cert.read_bytes())
    key.write_bytes(ca_a.key.read_bytes())
    reloading = ReloadingContext(str(cert), str(key), lambda: build_from(cert, key), clock=clock)
    server = TlsServer(reloading.current())
    try:
        for name, source in (("tls.key", ca_b.key), ("tls.crt", ca_b.cert)):
            (tmp_path / f".{name}.new").write_bytes(source.read_bytes())
            os.replace(tmp_path / f".{name}.new", tmp_path / name)
        clock.tick()
        assert server.peer_certificate(trust_both) == der(ca_b)
    finally:
        server.stop()


def test_a_certificate_whose_key_has_not_arrived_keeps_the_old_one_until_it_has(
        tmp_path: Path, clock: Clock, ca_a: CertPaths, ca_b: CertPaths, trust_both: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(ca_a.cert.read_bytes())
    key.write_bytes(ca_a.key.read_bytes())
    reloading = ReloadingContext(str(cert), str(key), lambda: build_from(cert, key), clock=clock)
    server = TlsServer(reloading.current())
    try:
        cert.write_bytes(ca_b.cert.read_bytes())  # the new certificate, the old key: they do not match
        clock.tick()
        with capture_logs() as logs:
            assert server.peer_certificate(trust_both) == der(ca_a)
            clock.tick()
            assert server.peer_certificate(trust_both) == der(ca_a)
        assert [entry["event"] for entry in logs] == ["tls.certificate_reload_failed"]  # warned once
        assert logs[0]["log_level"] == "warning"
        key.write_bytes(ca_b.key.read_bytes())
        clock.tick()
        assert server.peer_certificate(trust_both) == der(ca_b)
    finally:
        server.stop()


def test_a_half_written_certificate_never_breaks_a_handshake(
        tmp_path: Path, clock: Clock, ca_a: CertPaths, ca_b: CertPaths, trust_both: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(ca_a.cert.read_bytes())
    key.write_bytes(ca_a.key.read_bytes())
    reloading = ReloadingContext(str(cert), str(key), lambda: build_from(cert, key), clock=clock)
    server = TlsServer(reloading.current())
    try:
        pem = ca_b.cert.read_bytes()
        cert.write_bytes(pem[: len(pem) // 2])
        clock.tick()
        with capture_logs() as logs:
            assert server.peer_certificate(trust_both) == der(ca_a)
        assert [entry["event"] for entry in logs] == ["tls.certificate_reload_failed"]
        cert.unlink()  # gone for a moment
        clock.tick()
        assert server.peer_certificate(trust_both) == der(ca_a)
        cert.write_bytes(pem)
        key.write_bytes(ca_b.key.read_bytes())
        clock.tick()
        assert server.peer_certificate(trust_both) == der(ca_b)
    finally:
        server.stop()


def test_every_context_requires_tls_1_2(reloading: ReloadingContext, volume: SecretVolume, clock: Clock,
                                        ca_b: CertPaths) -> None:
    first = reloading.current()
    volume.update(files(ca_b))
    clock.tick()
    second = reloading.current()
    assert second is not first
    assert first.minimum_version == second.minimum_version == MINIMUM_VERSION


def test_an_unusable_certificate_at_start_up_stops_start_up(tmp_path: Path, ca_a: CertPaths) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("not a certificate\n", encoding="utf-8")
    key.write_bytes(ca_a.key.read_bytes())
    with pytest.raises(ssl.SSLError):
        ReloadingContext(str(cert), str(key), lambda: build_from(cert, key))
