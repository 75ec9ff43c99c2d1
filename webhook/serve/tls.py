"""The serving certificate follows its files: a renewed certificate is served without a restart.

cert-manager (or `netguard certs install`) renews the Secret, and the kubelet updates the mounted
files by writing a new timestamped directory and renaming a `..data` symlink over the old one,
so tls.crt and tls.key change together, atomically. Other tools replace each file by rename, or
rewrite it in place. ReloadingContext keeps one server SSLContext and, at most once per
`interval`, compares the files' identity (inode, size, mtime, following symlinks); when they
changed it loads them into a new SSLContext. The check runs in the TLS handshake (sni_callback,
called for every ClientHello, with server_name None when the client sends no SNI, e.g. when it
connects to an IP address) and the handshake switches to the new context at once.

A load that fails (a half-written file, a certificate whose key has not arrived yet) keeps the
old context and logs a warning; the next check tries again. Connections already open keep
their session: a rotation never fails a request in flight. Only a certificate that cannot be
loaded at start-up stops the server.

Every context gets the same cipher policy: TLS 1.2 or newer; in TLS 1.2 only ECDHE key exchange with
an AEAD cipher (AES-GCM, ChaCha20-Poly1305), no CBC suite; TLS 1.3 (all AEAD) whenever the client
offers it, which OpenSSL always prefers. With a client CA (`server.client_ca`, the admission
listener only) the context asks every client for a certificate and verifies one that is presented
against that CA, failing the handshake when it does not chain to it (CERT_OPTIONAL: the kubelet's
probes present none, so a missing certificate is refused per path by the app, not here). The CA
bundle is watched like the certificate: a new bundle is used from the next handshake.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webhook import logs

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# TLS 1.2 suites: ECDHE + AEAD only. OpenSSL's TLS 1.3 suites (all AEAD) are set apart and not affected.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
CHECK_INTERVAL = 1.0  # seconds between looks at the files; a renewal is served within this time

FileState = tuple[tuple[int, int, int, int], ...]  # (device, inode, size, mtime_ns) per file

log = logs.get_logger("netguard.tls")


def _file_state(paths: tuple[str, ...]) -> FileState:
    states = []
    for path in paths:
        st = os.stat(path)  # follows tls.crt -> ..data/tls.crt -> ..2026_01_01_00_00_00.1/tls.crt
        states.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(states)


def describe(cert_path: str) -> dict[str, Any]:
    """Serial, subject and expiry of the (first) certificate in the file, for the log."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return {"serial": format(cert.serial_number, "x"), "subject": cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.isoformat()}


class ReloadingContext:
    """A server SSLContext that is rebuilt by `build` when the certificate or key file changes.

    `build` makes a complete context from the files (gunicorn's default factory: certificate,
    key, client-certificate settings, ciphers, ALPN); this class adds the TLS 1.2 minimum, the
    cipher policy, the client CA (when given) and the handshake hook. Thread-safe: handshakes run
    on gunicorn's worker threads.
    """

    def __init__(self, cert: str, key: str, build: Callable[[], ssl.SSLContext], *,
                 interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 client_ca: str = "") -> None:
        self._paths = (cert, key, client_ca) if client_ca else (cert, key)
        self._client_ca = client_ca
        self._build = build
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _file_state(self._paths)
        self._context = self._make()  # an unusable certificate at start-up stops start-up
        self._next_check = clock() + interval
        self._failed: FileState | None = None  # the file state whose load failed (warned once)
        self.reloads = 0

    def _make(self) -> ssl.SSLContext:
        context = self._build()
        context.minimum_version = MINIMUM_VERSION
        context.set_ciphers(TLS12_CIPHERS)
        if self._client_ca:
            context.load_verify_locations(cafile=self._client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL  # a certificate presented must verify; none: the app decides
        context.sni_callback = self._on_client_hello
        return context

    def current(self) -> ssl.SSLContext:
        """The context for a new connection: the latest one that loaded."""
        if self._clock() < self._next_check:
            return self._context
        with self._lock:
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self._interval
                self._check()
            return self._context

    def _check(self) -> None:
        try:
            state = _file_state(self._paths)
        except OSError as exc:
            self._warn_once(None, f"cannot read {exc.filename}: {exc.strerror}")
            return
        if state == self._state:
            return
        try:
            context = self._make()
            info = describe(self._paths[0])
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._warn_once(state, str(exc) or type(exc).__name__)
            return
        # The files may have changed again while loading; then the state differs next time and
        # they are loaded again, which is harmless.
        self._context, self._state, self._failed = context, state, None
        self.reloads += 1
        log.info("tls.certificate_reloaded", cert=self._paths[0], **info)

    def _warn_once(self, state: FileState | None, error: str) -> None:
        if state is None or state != self._failed:
            log.warning("tls.certificate_reload_failed", cert=self._paths[0], key=self._paths[1], error=error,
                        keeping="the certificate loaded before")
        self._failed = state

    def _on_client_hello(self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                         context: ssl.SSLContext) -> None:
        """Every new connection, with or without SNI: switch it to the latest certificate."""
        try:
            fresh = self.current()
            if fresh is not context:
                sock.context = fresh
        except Exception as exc:  # never fail a handshake over a reload: serve what we have
            log.warning("tls.certificate_check_failed", error=str(exc) or type(exc).__name__)


_contexts: dict[tuple[str, str, str], ReloadingContext] = {}
_contexts_lock = threading.Lock()


def server_context(cert: str, key: str, build: Callable[[], ssl.SSLContext], client_ca: str = "") -> ssl.SSLContext:
    """The current context for these files in this process (gunicorn asks once per connection); with
    `client_ca`, one that verifies the client certificates presented against it (a context of its own)."""
    reloading = _contexts.get((cert, key, client_ca))
    if reloading is None:
        with _contexts_lock:
            reloading = _contexts.get((cert, key, client_ca))
            if reloading is None:
                reloading = _contexts[(cert, key, client_ca)] = ReloadingContext(cert, key, build, client_ca=client_ca)
    return reloading.current()


def check_client_ca(path: str) -> None:
    """server.client_ca loads as a bundle with at least one CA certificate; a ConfigError naming it if not."""
    from webhook.core.settings import ConfigError

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.client_ca: cannot load {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not context.cert_store_stats().get("x509_ca"):
        raise ConfigError(f"server.client_ca: {path} holds no CA certificate (basicConstraints CA:TRUE)")


def client_common_name(peer: dict[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (ssl.SSLSocket.getpeercert()), None without one."""
    for rdn in (peer or {}).get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                return str(value)
    return None
