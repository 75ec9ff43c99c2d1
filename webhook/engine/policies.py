"""Load policies/ into an immutable PolicySet: metadata validated, Rego read, revision hashed.

Each guardrail folder is complete or start-up stops: policy.yaml, rule.rego, rule_test.rego,
samples/good and samples/bad (the gatekeeper-library layout, checked like its CI does).
Compilation itself happens in the engine; this module never evaluates anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from webhook import kinds
from webhook.core.guardrails import PACKAGE_PREFIX, Guardrail, PolicySet, RegoModule
from webhook.core.model import Mode, Operation
from webhook.core.settings import ConfigError, Settings

_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)\s*$", re.MULTILINE)


class PolicyLoadError(Exception):
    """A guardrail folder is incomplete or invalid; the message names the file."""


def _metadata_schema() -> dict[str, Any]:
    """policy.schema.json with `kinds` limited to the registered kinds (webhook/kinds): the registry is the one list."""
    schema: dict[str, Any] = json.loads(
        resources.files("webhook").joinpath("schemas/policy.schema.json").read_text())
    schema["properties"]["kinds"]["items"]["enum"] = [k.name for k in kinds.ALL]  # "NetworkPolicy.projectcalico.org"
    return schema


def _read_module(path: Path, expected_package: str | None = None) -> RegoModule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"{path}: cannot read: {exc}") from None
    match = _PACKAGE_RE.search(text)
    if not match:
        raise PolicyLoadError(f"{path}:1: no package declaration")
    package = match.group(1)
    if expected_package is not None and package != expected_package:
        line = text[: match.start()].count("\n") + 1
        raise PolicyLoadError(f"{path}:{line}: package must be {expected_package}, found {package}")
    if "import rego.v1" not in text:
        raise PolicyLoadError(f"{path}: must `import rego.v1` so it runs unchanged on OPA and regorus")
    return RegoModule(path=path, text=text, package=package)


def catalog_revision(root: str | Path) -> str:
    """The revision load_policy_set(root) would give, without loading it (for `netguard --version`)."""
    root = Path(root)
    if not root.is_dir():
        raise PolicyLoadError(f"{root}: policies folder not found")
    return _revision_of(root)


def load_policy_set(root: str | Path) -> PolicySet:
    root = Path(root)
    if not root.is_dir():
        raise PolicyLoadError(f"{root}: policies folder not found")
    validator = jsonschema.Draft202012Validator(_metadata_schema())
    library = tuple(_read_module(p) for p in sorted((root / "lib").glob("*.rego"))
                    if not p.name.endswith("_test.rego"))
    guardrails = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "lib" and not p.name.startswith(".")):
        guardrails.append(_load_guardrail(folder, validator))
    if not guardrails:
        raise PolicyLoadError(f"{root}: no guardrail folders")
    return PolicySet(root=root, guardrails=tuple(guardrails), library=library, revision=_revision_of(root))


def _catalog_files(root: Path) -> list[Path]:
    """The .rego and .yaml files below root, hidden names skipped, symlinked folders followed.

    A ConfigMap volume (deploy/) holds each file twice: in kubelet's hidden `..<timestamp>/` folder
    and through the symlinked folders pointing into it; the revision must be the same as for policies/.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and Path(f).suffix in (".rego", ".yaml", ".yml")]
    return sorted(found)


def _load_guardrail(folder: Path, validator: jsonschema.Draft202012Validator) -> Guardrail:
    meta_path = folder / "policy.yaml"
    for required in (meta_path, folder / "rule.rego", folder / "rule_test.rego"):
        if not required.is_file():
            raise PolicyLoadError(f"{folder}: missing {required.name}")
    for which in ("good", "bad"):
        if not any((folder / "samples" / which).glob("*.y*ml")):
            raise PolicyLoadError(f"{folder}: samples/{which}/ needs at least one manifest")
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyLoadError(f"{meta_path}: not valid YAML: {exc}") from None
    except ValueError as exc:  # an unquoted timestamp that is no real day (2027-02-30)
        raise PolicyLoadError(f"{meta_path}: not valid YAML: {exc} (quote dates)") from None
    errors = list(validator.iter_errors(meta))
    if errors:
        first = errors[0]
        key = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise PolicyLoadError(f"{meta_path}: {key}: {first.message}")
    if meta["id"] != folder.name:
        raise PolicyLoadError(f"{meta_path}: id {meta['id']!r} must match the folder name {folder.name!r}")
    package = f"{PACKAGE_PREFIX}.{meta['id'].replace('-', '_')}"
    return Guardrail(
        id=meta["id"], title=meta["title"], severity=meta["severity"], mode=Mode(meta["mode"]),
        kinds=tuple(meta["kinds"]),
        operations=tuple(Operation(o) for o in meta.get("operations", ["CREATE", "UPDATE"])),
        description=meta["description"], remediation=meta["remediation"], folder=folder,
        rule=_read_module(folder / "rule.rego", package),
        tests=_read_module(folder / "rule_test.rego", f"{package}_test"),
        parameters=meta.get("parameters", {}) or {}, metadata=meta,
        grandfather=bool(meta.get("grandfather", True)), cluster_view=str(meta.get("cluster_view", "")),
        facts=dict(meta.get("facts") or {}), evidence=str(meta.get("evidence", "")),
    )


def resolve_parameters(policies: PolicySet, settings: Settings) -> dict[str, dict[str, Any]]:
    """Metadata defaults overlaid with config; unknown rules or parameters stop start-up."""
    known = {g.id for g in policies.guardrails}
    for rid in settings.rules:
        if rid not in known:
            raise ConfigError(f"{settings.source}: rules.{rid}: no such guardrail (known: {', '.join(sorted(known))})")
    resolved: dict[str, dict[str, Any]] = {}
    for g in policies.guardrails:
        params = dict(g.parameters)
        overrides = settings.rules.get(g.id)
        for key, value in (overrides.parameters if overrides else {}).items():
            if key not in params:
                raise ConfigError(f"{settings.source}: rules.{g.id}.parameters.{key}: unknown parameter "
                                  f"(known: {', '.join(sorted(params)) or 'none'})")
            if type(value) is not type(params[key]) and not (
                    isinstance(value, (int, float)) and isinstance(params[key], (int, float))
                    and not isinstance(value, bool)):
                raise ConfigError(f"{settings.source}: rules.{g.id}.parameters.{key}: must be "
                                  f"{type(params[key]).__name__}, got {type(value).__name__}")
            params[key] = value
        resolved[g.id] = params
    return resolved


# The last good catalog (docs/operations.md#readiness-and-the-last-good-catalog). Each gunicorn worker loads and
# compiles policies_dir when it starts (no preload_app), so a rule file broken on disk after start would stop
# every worker that restarts, and gunicorn's master stops the whole server when a worker cannot boot. A worker
# that built a pipeline (compiled and warmed up) copies that catalog's files into a private folder the master
# made at start ($NETGUARD_LAST_GOOD_CATALOG, mode 0700, removed at exit); a worker that cannot build from
# policies_dir builds from that copy instead and says so. On disk, not in the master's memory: the master never
# compiles, so only a worker knows that a catalog compiled, and it must outlive that worker.
LAST_GOOD_ENV = "NETGUARD_LAST_GOOD_CATALOG"
_CURRENT = "current"
_LOCATION = re.compile(r"-->\s*(?P<file>\S+?):(?P<line>\d+):\d+")
_REGO_ERROR = re.compile(r"^error:\s*(?P<message>.+)$", re.MULTILINE)


def error_summary(message: str) -> str:
    """A catalog error on one line, `<file>:<line>: <error>` when the message locates it (regorus' `--> file:l:c`
    ... `error: msg`); the first non-empty line of anything else (PolicyLoadError messages start with the file)."""
    location, error = _LOCATION.search(message), _REGO_ERROR.search(message)
    if location and error:
        return f"{location.group('file')}:{location.group('line')}: {error.group('message').strip()}"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else message)


def save_last_good(policies: PolicySet, store: str | Path) -> bool:
    """Keep a copy of this compiled catalog's files as the last good one; False when the files on disk changed
    since they were loaded (the copy would not be what compiled) or the store cannot be written."""
    store = Path(store)
    target = store / policies.revision
    try:
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=store))
            for path in _catalog_files(policies.root):
                copy = staging / path.relative_to(policies.root)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
            if _revision_of(staging) != policies.revision:  # changed on disk meanwhile
                shutil.rmtree(staging, ignore_errors=True)
                return False
            try:
                staging.rename(target)
            except OSError:  # another worker saved the same revision first
                shutil.rmtree(staging, ignore_errors=True)
        pointer = store / f".{_CURRENT}-{os.getpid()}"
        pointer.write_text(policies.revision, encoding="utf-8")
        pointer.replace(store / _CURRENT)
    except OSError:
        return False
    return True


def last_good_root(store: str | Path) -> Path | None:
    """The folder of the last good catalog saved in `store`, if any."""
    try:
        revision = (Path(store) / _CURRENT).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    root = Path(store) / revision
    return root if revision and root.is_dir() else None


def _revision_of(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _catalog_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
