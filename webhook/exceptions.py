"""Exceptions: granted in configuration, or carried on the object as a signed token.

A token binds rule ids, namespace, kind and name, and an expiry date, signed with Ed25519 by
the security team (`netguard exception sign`). netguard verifies it against the public keys in
its configuration, so an app team can attach a granted exception but cannot forge it, widen it
to other rules, move it to another policy or extend it.

Token: "ngx1." + base64url(canonical JSON payload) + "." + base64url(signature over
"netguard-exception-v1." + the payload part).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from webhook.config import ConfigException, ExceptionKey

ANNOTATION = "netguard.io/exception"
PREFIX = "ngx1"
_CONTEXT = b"netguard-exception-v1."


class TokenError(ValueError):
    """The token is malformed, not signed by a trusted key, or does not fit this object."""


@dataclass(frozen=True)
class Exemption:
    source: str  # "config" or "signed:<key id>"
    rules: tuple[str, ...]
    namespace: str
    name: str
    expires: date
    reason: str
    ticket: str = ""
    kind: str = ""

    def covers(self, rule: str, namespace: str, name: str, kind: str = "") -> bool:
        return ((rule in self.rules or "*" in self.rules) and fnmatchcase(namespace, self.namespace)
                and fnmatchcase(name, self.name) and (not self.kind or self.kind == kind))

    def label(self) -> str:
        ref = self.ticket or self.reason[:40]
        return f"exception {ref} ({self.source}, until {self.expires.isoformat()})"

    def expired(self, today: date) -> bool:
        return today > self.expires


def from_config(items: Iterable[ConfigException]) -> tuple[Exemption, ...]:
    return tuple(Exemption("config", e.rules, e.namespace, e.name, e.expires, e.reason, e.ticket) for e in items)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(text: str) -> Ed25519PublicKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(private_key: Ed25519PrivateKey, key_id: str, *, rules: Sequence[str], namespace: str, name: str,
         expires: date, reason: str, ticket: str = "", kind: str = "") -> str:
    payload = {"v": 1, "kid": key_id, "rules": sorted(set(rules)), "namespace": namespace, "name": name,
               "kind": kind, "expires": expires.isoformat(), "reason": reason, "ticket": ticket}
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    signature = private_key.sign(_CONTEXT + body.encode("ascii"))
    return f"{PREFIX}.{body}.{_b64(signature)}"


def verify(token: str, keys: Sequence[ExceptionKey]) -> Exemption:
    """A token to the Exemption it grants, or TokenError saying why it cannot be trusted."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not a netguard exception token (expected ngx1.<payload>.<signature>)")
    try:
        payload: Any = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise TokenError("token is not valid base64url/JSON") from None
    if not isinstance(payload, dict):
        raise TokenError("token payload is not an object")
    key_id = str(payload.get("kid", ""))
    candidates = [k for k in keys if k.id == key_id]
    if not candidates:
        raise TokenError(f"token signed with unknown key {key_id!r}")
    for key in candidates:
        try:
            load_public_key(key.public_key).verify(signature, _CONTEXT + parts[1].encode("ascii"))
            break
        except (InvalidSignature, ValueError):
            continue
    else:
        raise TokenError("signature does not verify: the token was altered or not signed by the security team")
    try:
        return Exemption(
            source=f"signed:{key_id}", rules=tuple(str(r) for r in payload["rules"]),
            namespace=str(payload["namespace"]), name=str(payload["name"]),
            expires=date.fromisoformat(str(payload["expires"])), reason=str(payload.get("reason", "")),
            ticket=str(payload.get("ticket", "")), kind=str(payload.get("kind", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise TokenError("token payload lacks rules, namespace, name or a valid expires date") from None


@dataclass(frozen=True)
class ObjectExemptions:
    """What the object's annotation grants, and any problem worth telling the requester."""

    exemptions: tuple[Exemption, ...] = ()
    notices: tuple[str, ...] = ()


def from_annotation(annotations: Mapping[str, str], keys: Sequence[ExceptionKey], namespace: str, name: str,
                    kind: str) -> ObjectExemptions:
    token = annotations.get(ANNOTATION)
    if not token:
        return ObjectExemptions()
    try:
        exemption = verify(token, keys)
    except TokenError as exc:
        return ObjectExemptions(notices=(f"{ANNOTATION} ignored: {exc}",))
    if not (fnmatchcase(namespace, exemption.namespace) and fnmatchcase(name, exemption.name)
            and (not exemption.kind or exemption.kind == kind)):
        where = f"{exemption.kind or 'policy'} {exemption.namespace}/{exemption.name}"
        return ObjectExemptions(notices=(f"{ANNOTATION} ignored: the token was granted for {where}, "
                                         f"not {kind} {namespace}/{name}",))
    return ObjectExemptions(exemptions=(exemption,))
