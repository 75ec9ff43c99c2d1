"""Exceptions: granted in configuration, or carried on the object as a signed token.

A token binds rule ids, namespace, kind and name, its issue date and expiry, and optionally a
digest of the policy's spec, signed with Ed25519 by the security team (`netguard exception sign`).
netguard verifies it against the public keys in its configuration, so an app team can attach a
granted exception but cannot forge it, widen it to other rules, move it to another policy or kind,
extend it or (when spec-bound) keep it after widening the policy. A signature cannot be withdrawn,
so the configuration's token rules (exceptions.max_lifetime_days, exceptions.revoked) bound what a
valid token can still do; a token that fails them, or names no kind (signed before kind was
required), still matches its policy but no longer applies, and the finding says why.

Token: "ngx1." + base64url(canonical JSON payload) + "." + base64url(signature over
"netguard-exception-v1." + the payload part). Its id is the first 16 hex digits of SHA-256 of the
payload part, the exact bytes the signature covers, so no re-encoding of a valid token changes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from fnmatch import fnmatchcase
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from webhook.core.settings import ConfigException, ExceptionKey, TokenRules

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
    token_id: str = ""  # signed tokens only
    spec_digest: str = ""  # the bound spec's digest (spec_digest()); "" when not bound
    issued: date | None = None  # signed tokens only; None for tokens signed before issue dates
    lapsed: str = ""  # why a validly signed token for this object no longer applies; "" when it does

    def covers(self, rule: str, namespace: str, name: str, kind: str = "") -> bool:
        return ((rule in self.rules or "*" in self.rules) and fnmatchcase(namespace, self.namespace)
                and fnmatchcase(name, self.name) and (not self.kind or self.kind == kind))

    def label(self) -> str:
        ref = self.ticket or self.reason[:40]
        token = f", token {self.token_id}" if self.token_id else ""
        return f"exception {ref} ({self.source}{token}, until {self.expires.isoformat()})"

    def expired(self, today: date) -> bool:
        return today > self.expires

    def applies(self, today: date) -> bool:
        return not self.lapsed and not self.expired(today)

    def lapse(self, today: date) -> str:
        """Why it does not apply, for the finding's reason."""
        ref = self.ticket or self.reason[:40]
        if self.lapsed:
            return f"exception {ref} no longer applies: {self.lapsed}"
        return f"exception {ref} expired on {self.expires}"


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


def spec_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of canonical JSON (sorted keys, no whitespace, non-ASCII kept) of
    {"spec": ..., "specs": ...} with only the keys the object has: everything a policy allows."""
    content = {key: obj[key] for key in ("spec", "specs") if key in obj}
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def token_id(token: str) -> str:
    """The token's id (revocation, audit): 16 hex digits of SHA-256 of the signed payload part."""
    parts = token.strip().split(".")
    signed = parts[1] if len(parts) == 3 else token.strip()
    return hashlib.sha256(signed.encode("utf-8", "replace")).hexdigest()[:16]


def lifetime_problem(expires: date, issued: date | None, today: date, max_days: int) -> str:
    """Why an expiry is past the allowed lifetime ("" if it is not): counted from the issue date, or from today
    for a token without one (or one dated in the future, which must not buy extra time)."""
    start = issued if issued is not None and issued <= today else today
    if (expires - start).days <= max_days:
        return ""
    since = f"it was issued on {start}" if start == issued else f"today ({today})"
    return f"it expires on {expires}, more than exceptions.max_lifetime_days ({max_days}) after {since}"


def sign(private_key: Ed25519PrivateKey, key_id: str, *, rules: Sequence[str], namespace: str, name: str,
         kind: str, expires: date, reason: str, ticket: str = "", issued: date | None = None,
         spec_digest: str = "") -> str:
    """A token; `kind` is required (a token for one kind must not exempt another of the same name), and a
    non-empty `spec_digest` binds the policy's content. The lifetime cap is the caller's (it has the config)."""
    if not kind:
        raise ValueError("an exception token must name the policy's kind (--kind, e.g. NetworkPolicy)")
    payload = {"v": 1, "kid": key_id, "rules": sorted(set(rules)), "namespace": namespace, "name": name,
               "kind": kind, "expires": expires.isoformat(), "reason": reason, "ticket": ticket,
               "iat": (issued or date.today()).isoformat()}
    if spec_digest:
        payload["spec"] = spec_digest
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
            token_id=token_id(token), spec_digest=str(payload.get("spec", "")),
            issued=date.fromisoformat(str(payload["iat"])) if "iat" in payload else None,
        )
    except (KeyError, TypeError, ValueError):
        raise TokenError("token payload lacks rules, namespace, name or a valid expires date") from None


def lapse_reason(exemption: Exemption, rules: TokenRules, today: date, obj: Mapping[str, Any] | None) -> str:
    """Why a validly signed token for this object no longer applies ("" if it does): revoked, no kind, past
    the maximum lifetime, or (spec-bound) the spec changed. `obj` None: the spec cannot be checked."""
    if exemption.token_id in rules.revoked:
        return f"token {exemption.token_id} is revoked (exceptions.revoked)"
    if not exemption.kind:
        return ("the token names no kind (signed before netguard required one); ask the security team for a "
                "new token signed with --kind")
    too_long = lifetime_problem(exemption.expires, exemption.issued, today, rules.max_lifetime_days)
    if too_long:
        return too_long
    if exemption.spec_digest:
        now = spec_digest(obj) if obj is not None else "(unknown)"
        if now != exemption.spec_digest:
            return (f"the policy's spec changed since the token was signed (signed for spec sha256 "
                    f"{exemption.spec_digest[:12]}, now {now[:12]}); ask for a new token for the new spec")
    return ""


@dataclass(frozen=True)
class ObjectExemptions:
    """What the object's annotation grants, and any problem worth telling the requester."""

    exemptions: tuple[Exemption, ...] = ()
    notices: tuple[str, ...] = ()


def from_annotation(annotations: Mapping[str, str], keys: Sequence[ExceptionKey], namespace: str, name: str,
                    kind: str, *, obj: Mapping[str, Any] | None = None, rules: TokenRules | None = None,
                    today: date | None = None) -> ObjectExemptions:
    """The exemption the object's token grants. A token for this object that no longer applies is kept with
    `lapsed` set, so the findings it would have covered say why; `obj` is the raw object (spec binding)."""
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
    lapsed = lapse_reason(exemption, rules or TokenRules(), today or date.today(), obj)
    if lapsed:
        exemption = replace(exemption, lapsed=lapsed)
        return ObjectExemptions(exemptions=(exemption,),
                                notices=(f"{ANNOTATION} ignored: {exemption.lapse(today or date.today())}",))
    return ObjectExemptions(exemptions=(exemption,))
