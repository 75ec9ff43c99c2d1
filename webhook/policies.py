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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from webhook.config import ConfigError, Settings
from webhook.model import Mode, Operation

PACKAGE_PREFIX = "guardrails"
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)\s*$", re.MULTILINE)


class PolicyLoadError(Exception):
    """A guardrail folder is incomplete or invalid; the message names the file."""


@dataclass(frozen=True)
class RegoModule:
    path: Path
    text: str
    package: str

    @property
    def module_id(self) -> str:
        """A stable id for OPA's /v1/policies/<id> (folder/file, no extension)."""
        return f"{self.path.parent.name}/{self.path.stem}"


@dataclass(frozen=True)
class Guardrail:
    id: str
    title: str
    severity: str
    mode: Mode
    kinds: tuple[str, ...]
    operations: tuple[Operation, ...]
    description: str
    remediation: str
    folder: Path
    rule: RegoModule
    tests: RegoModule
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    grandfather: bool = True  # may an UPDATE keep a violation the object already had (with a warning)
    # Decides from the cluster view: what the requester is told is unknown while the view cannot be trusted.
    cluster_view: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)  # FactParams field -> this guardrail's parameter


    @cached_property
    def package_name(self) -> str:
        return self.id.replace("-", "_")

    def samples(self, which: str) -> tuple[Path, ...]:
        """Sample manifests; `<name>.request.yaml` beside one describes the request (user, operation, old)."""
        return tuple(sorted(p for p in (self.folder / "samples" / which).glob("*.y*ml")
                            if not p.name.endswith((".request.yaml", ".request.yml"))))


@dataclass(frozen=True)
class PolicySet:
    root: Path
    guardrails: tuple[Guardrail, ...]
    library: tuple[RegoModule, ...]
    revision: str

    def get(self, rule_id: str) -> Guardrail:
        for g in self.guardrails:
            if g.id == rule_id:
                return g
        raise KeyError(rule_id)

    @property
    def modules(self) -> tuple[RegoModule, ...]:
        """Everything the production engine compiles (tests excluded)."""
        return self.library + tuple(g.rule for g in self.guardrails)

    @cached_property
    def by_package(self) -> Mapping[str, Guardrail]:
        return MappingProxyType({g.package_name: g for g in self.guardrails})  # read on every review: built once

    @cached_property
    def reads_raw_object(self) -> bool:
        """Does any production module read the raw object (input.object / input.old_object)? Only then
        does the engine input carry it beside the normalized model (for a big Cilium policy it was half of
        the ~120 KB input). Deliberately broad: a false "reads" costs bytes, a missed one hides data."""
        return any(_RAW_OBJECT.search(m.text) for m in self.modules)


STATIC_FINDINGS_PACKAGE = "netguard.static"


def static_findings_module(policies: PolicySet) -> RegoModule:
    """data.netguard.static.findings: data.netguard.findings (policies/lib/netguard.rego) written out with one
    rule per guardrail, generated from the catalog so a new guardrail folder is in it without an edit.

    Why: regorus evaluates `data.guardrails[name]` with `name` a variable by evaluating every guardrail
    package, whichever `input.rules` names (measured on a small NetworkPolicy: 2.0 ms against 0.7 ms for
    this form). The guardrails are the same on both engines; only the entry point differs, and
    tests/policies/test_static_findings.py holds the two to the same answers. Plain Rego: OPA compiles it too.
    The `name :=` in the body, not a constant key in the head: regorus's eval_rule refuses a rule whose head
    has a constant key ("not a valid rule path").
    """
    lines = ["package " + STATIC_FINDINGS_PACKAGE, "", "import rego.v1", ""]
    for package in sorted(g.package_name for g in policies.guardrails):
        lines += [f"findings[name] := data.{PACKAGE_PREFIX}.{package}.violation if {{",
                  f'\tname := "{package}"', "\tname in input.rules", "}", ""]
    return RegoModule(path=policies.root / "lib" / "static_findings.rego", text="\n".join(lines),
                      package=STATIC_FINDINGS_PACKAGE)


_RAW_OBJECT = re.compile(r'\binput\s*\.\s*(?:old_)?object\b|"(?:old_)?object"|\bwalk\s*\(\s*input\b')


def _metadata_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("webhook").joinpath("schemas/policy.schema.json").read_text())
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


CATALOG_PACKAGE_DIR = "catalog"  # webhook/catalog in a wheel: the top-level policies/ (pyproject.toml package-dir)


def packaged_catalog() -> Path:
    """The catalog that ships with netguard, whatever the working directory: a team's repository may have a
    policies/ folder of its own, so the default is never looked up relative to the current directory.

    Installed from a wheel (pip, pipx) it is the package data `webhook/catalog`, which the build maps from the
    top-level policies/; run from a source checkout (an editable install, `make run`, PYTHONPATH) it is that
    checkout's policies/ itself, beside webhook/. Either way the files and so the revision are the same. When
    neither exists the wheel's location is returned, and loading it says "policies folder not found".
    """
    package = resources.files("webhook")
    installed = Path(str(package)) / CATALOG_PACKAGE_DIR
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "policies").is_dir():
        return checkout / "policies"
    return installed


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
        facts=dict(meta.get("facts") or {}),
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
