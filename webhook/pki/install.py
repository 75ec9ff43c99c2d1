"""`netguard certs install`: the CA into clientConfig.caBundle of every webhook of netguard's webhook configurations.

The API server trusts exactly the caBundle of a webhook, so it must name the CA that signed the serving
certificate. Two targets, one rule: every webhook of the ValidatingWebhookConfiguration and
MutatingWebhookConfiguration with the given name gets the base64 CA.

- Files (before `kubectl apply`): the caBundle values are replaced where they stand in the text, found
  with PyYAML's composer (node positions), so comments, key order, quoting and other documents survive;
  a PyYAML load/dump round trip would drop every comment. The result is parsed again and must equal the
  input with only those caBundles changed, or nothing is written.
- Cluster (after `kubectl apply`): a JSON Patch per configuration, one `test` of the webhook's name and
  one `add` of its caBundle per webhook (applied by webhook.cluster.kube.patch_webhook_configurations), so a
  configuration whose webhooks were reordered meanwhile is refused instead of patched at the wrong index.

Pure except read_ca_bundle, which reads the CA file and refuses anything but CA certificates.
"""

from __future__ import annotations

import base64
import copy
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


class InstallError(ValueError):
    """The CA or a manifest cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class WebhookChange:
    """One webhook's caBundle: where it is and whether this install changed it."""

    kind: str
    configuration: str
    webhook: str
    changed: bool


def read_ca_bundle(path: Path) -> str:
    """The CA certificate file as a caBundle (base64 of the PEM), after checking it is only CA certificates.

    A private key given by mistake (ca.key) would otherwise be published in a cluster-readable object;
    a serving certificate (tls.crt) would make every call fail TLS.
    """
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        raise InstallError(f"{path} holds a private key; give the CA certificate (ca.crt), never a key")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InstallError(f"{path} is not a PEM certificate (expected the CA certificate, ca.crt)") from None
    for cert in certificates:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise InstallError(f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate; give the CA "
                               "that signed the serving certificate (ca.crt), not the serving certificate")
    return base64.b64encode(data).decode("ascii")


# -- files ------------------------------------------------------------------------------------------------


def _value(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.Node):
            return v
    return None


def _scalar(node: yaml.Node, *keys: str) -> str | None:
    for key in keys:
        found = _value(node, key)
        if found is None:
            return None
        node = found
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _edit_for(client_config: yaml.Node, ca_bundle: str, where: str) -> tuple[int, int, str, bool]:
    """(start, end, replacement, changed) for one webhook's clientConfig."""
    if not isinstance(client_config, yaml.MappingNode):
        raise InstallError(f"{where}: clientConfig is not a mapping")
    quoted = f'"{ca_bundle}"'  # base64 needs no escaping inside double quotes
    node = _value(client_config, "caBundle")
    if node is None:
        if client_config.flow_style or not client_config.value:
            raise InstallError(f"{where}: clientConfig has no caBundle to set; add `caBundle: \"\"` to it")
        first_key = client_config.value[0][0]
        line_start = first_key.start_mark.index - first_key.start_mark.column
        return line_start, line_start, " " * first_key.start_mark.column + f"caBundle: {quoted}\n", True
    if not isinstance(node, yaml.ScalarNode):
        raise InstallError(f"{where}: caBundle is not a string")
    start, end = node.start_mark.index, node.end_mark.index
    if start == end:  # `caBundle:` with no value
        return start, end, " " + quoted, True
    return start, end, quoted, node.value != ca_bundle


def set_ca_bundle_text(text: str, source: str, name: str, ca_bundle: str) -> tuple[str, tuple[WebhookChange, ...]]:
    """`text` (one or more YAML documents) with the caBundle of every webhook of the named configurations set.

    InstallError when the text holds no such configuration, or a webhook's clientConfig cannot take it.
    """
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise InstallError(f"{source}: not valid YAML: {exc}") from None
    edits: list[tuple[int, int, str]] = []
    changes: list[WebhookChange] = []
    for doc in documents:
        kind = _scalar(doc, "kind") if doc is not None else None
        if kind not in WEBHOOK_KINDS or _scalar(doc, "metadata", "name") != name:
            continue
        webhooks = _value(doc, "webhooks")
        if not isinstance(webhooks, yaml.SequenceNode) or not webhooks.value:
            raise InstallError(f"{source}: {kind} {name} has no webhooks")
        for index, item in enumerate(webhooks.value):
            webhook = _scalar(item, "name") or f"webhooks[{index}]"
            where = f"{source}:{item.start_mark.line + 1}: {kind} {name}, webhook {webhook}"
            client_config = _value(item, "clientConfig")
            if client_config is None:
                raise InstallError(f"{where}: no clientConfig")
            start, end, replacement, changed = _edit_for(client_config, ca_bundle, where)
            if text[start:end].endswith("\n"):  # a block scalar's span ends with its line break: keep it
                replacement += "\n" * (len(text[start:end]) - len(text[start:end].rstrip("\n")))
            edits.append((start, end, replacement))
            changes.append(WebhookChange(str(kind), name, webhook, changed))
    if not changes:
        raise InstallError(f"{source}: no {' or '.join(WEBHOOK_KINDS)} named {name!r}")
    out = text
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    _check_only_ca_bundles_changed(text, out, source, name, ca_bundle)
    return out, tuple(changes)


def _check_only_ca_bundles_changed(before: str, after: str, source: str, name: str, ca_bundle: str) -> None:
    """The edited text must parse to the original documents with exactly the caBundles set."""
    expected = [set_ca_bundle_object(doc, name, ca_bundle)[0] for doc in yaml.safe_load_all(before)]
    if list(yaml.safe_load_all(after)) != expected:  # pragma: no cover - a bug in the text edit, never the input
        raise InstallError(f"{source}: editing the caBundle values in place would change more than them; "
                           "nothing written")


def set_ca_bundle_object(obj: Any, name: str, ca_bundle: str) -> tuple[Any, int]:
    """A copy of a decoded manifest with the caBundles set when it is a named configuration; (copy, webhooks)."""
    if not (isinstance(obj, Mapping) and obj.get("kind") in WEBHOOK_KINDS
            and (obj.get("metadata") or {}).get("name") == name):
        return obj, 0
    out = copy.deepcopy(dict(obj))
    for webhook in out.get("webhooks") or []:
        webhook.setdefault("clientConfig", {})["caBundle"] = ca_bundle
    return out, len(out.get("webhooks") or [])


@dataclass(frozen=True)
class FileEdit:
    path: Path
    before: str
    after: str
    changes: tuple[WebhookChange, ...]


def plan_files(paths: list[Path], name: str, ca_bundle: str) -> list[FileEdit]:
    """Every file's new text, computed before any is written: one bad file leaves all of them as they were."""
    edits = []
    for path in paths:
        try:
            before = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InstallError(f"{path}: cannot read: {exc.strerror}") from None
        after, changes = set_ca_bundle_text(before, str(path), name, ca_bundle)
        edits.append(FileEdit(path, before, after, changes))
    return edits


def write_files(edits: list[FileEdit]) -> None:
    """Write the files that changed, each through a temp file and a rename (never half-written)."""
    for edit in edits:
        if edit.after != edit.before:
            tmp = edit.path.with_name(f".{edit.path.name}.netguard-tmp")
            tmp.write_text(edit.after, encoding="utf-8")
            shutil.copymode(edit.path, tmp)
            tmp.replace(edit.path)


# -- cluster ----------------------------------------------------------------------------------------------


def ca_bundle_patch(obj: Mapping[str, Any], ca_bundle: str) -> list[dict[str, Any]]:
    """JSON Patch (RFC 6902) setting every webhook's caBundle that differs; empty when all are already set.

    Each webhook is addressed by index, so its name is tested first: if the list changed since `obj`
    was read, the API server refuses the whole patch (422) instead of writing to the wrong webhook.
    `add` on an existing member replaces it (RFC 6902 section 4.1).
    """
    ops: list[dict[str, Any]] = []
    for index, webhook in enumerate(obj.get("webhooks") or []):
        client_config = webhook.get("clientConfig") or {}
        if client_config.get("caBundle") == ca_bundle:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook.get("name")})
        if "clientConfig" not in webhook:
            ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig", "value": {"caBundle": ca_bundle}})
        else:
            ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": ca_bundle})
    return ops


def patched_webhooks(patch: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> int:
    """How many webhooks a ca_bundle_patch changes (one name test per webhook)."""
    return sum(1 for op in patch if op.get("op") == "test")
