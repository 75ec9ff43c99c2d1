"""Self-signed CA and serving certificate for the webhook's TLS endpoint.

The API server only calls admission webhooks over HTTPS and trusts exactly the CA given in the
webhook configuration's caBundle, so a private CA per install is enough; no public PKI needed.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.pki.secret_files import PRIVATE_MODE, PUBLIC_MODE, fsync_dir, write_atomic

CA_COMMON_NAME = "netguard-ca"
# Tolerates clock skew between the host that generates the certificates and the API server.
BACKDATE = timedelta(minutes=5)

_DIR_MODE = 0o700
# RFC 1123 label: what Kubernetes accepts for Service and Namespace names.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class CertPaths:
    """Where generate() put each PEM file, so callers need not rebuild the names."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


class CertsExistError(Exception):
    """A private key is already there; replacing it would break the caBundle already deployed."""


def _paths(out_dir: Path) -> CertPaths:
    return CertPaths(
        ca_cert=out_dir / "ca.crt", ca_key=out_dir / "ca.key",
        cert=out_dir / "tls.crt", key=out_dir / "tls.key",
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS8: what Kubernetes TLS secrets, gunicorn and the ssl module all load as-is.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _build_ca(now: datetime, ca_days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=ca_days))
        # path_length=0: this CA may sign only leaf certificates, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        # Harmless on a self-signed root and expected by strict verifiers (Python 3.13's X509_STRICT).
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _build_serving(
    service: str,
    namespace: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: datetime,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    svc = f"{service}.{namespace}.svc"
    # Every name the API server (or a port-forward / local test) may use to reach the Service.
    sans: list[x509.GeneralName] = [
        x509.DNSName(service),
        x509.DNSName(f"{service}.{namespace}"),
        x509.DNSName(svc),
        x509.DNSName(f"{svc}.cluster.local"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, svc)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def generate(
    service: str,
    namespace: str,
    out_dir: Path,
    *,
    force: bool = False,
    days: int = 365,
    ca_days: int = 3650,
    now: datetime | None = None,
) -> CertPaths:
    """Create a CA and a serving certificate for `service.namespace.svc` and write them as PEM files.

    Refuses (CertsExistError) to replace an existing ca.key or tls.key unless force is set, and checks
    that before touching the disk, so a refused run leaves the directory exactly as it was.
    `now` is injectable so tests can pin the validity window; it must be timezone-aware.
    """
    for label, value in (("service", service), ("namespace", namespace)):
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{label} {value!r} is not a valid DNS label (RFC 1123)")
    if days < 1 or ca_days < days:
        raise ValueError(f"need 1 <= days <= ca_days, got days={days}, ca_days={ca_days}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    paths = _paths(out_dir)
    if not force:
        for existing in (paths.ca_key, paths.key):
            if os.path.lexists(existing):
                raise CertsExistError(
                    f"{existing} already exists; pass --force to overwrite it (this replaces the CA, "
                    "so the webhook configuration's caBundle must be updated too)"
                )

    ca_key, ca_cert = _build_ca(now, ca_days)
    key, cert = _build_serving(service, namespace, ca_key, ca_cert, now, days)

    try:
        out_dir.mkdir(mode=_DIR_MODE, parents=True)
    except FileExistsError:
        if not out_dir.is_dir():
            raise NotADirectoryError(f"{out_dir} exists and is not a directory") from None

    pem = serialization.Encoding.PEM
    # CA first: a reader that picks up the new tls.crt can then already find the CA that signed it. Every file
    # goes through secret_files: atomic, its final mode from creation, never written through a symlink.
    write_atomic(paths.ca_key, _key_pem(ca_key), mode=PRIVATE_MODE, force=force)
    write_atomic(paths.ca_cert, ca_cert.public_bytes(pem), mode=PUBLIC_MODE, force=True)
    write_atomic(paths.key, _key_pem(key), mode=PRIVATE_MODE, force=force)
    write_atomic(paths.cert, cert.public_bytes(pem), mode=PUBLIC_MODE, force=True)
    fsync_dir(out_dir)
    return paths


def ca_bundle(ca_cert_path: Path) -> str:
    """Base64 of the CA PEM file, the form a webhook configuration's caBundle field expects."""
    return base64.b64encode(ca_cert_path.read_bytes()).decode("ascii")


def describe(cert_path: Path) -> dict[str, object]:
    """The fields an operator checks after generating (names, expiry), for CLI output and tests."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    if isinstance(cn, bytes):
        cn = cn.decode("utf-8", "replace")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns_names: list[str] = []
        ips: list[str] = []
    else:
        dns_names = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return {
        "subject_cn": cn,
        "dns_names": dns_names,
        "ip_addresses": ips,
        "not_valid_after": cert.not_valid_after_utc.isoformat(),
    }
