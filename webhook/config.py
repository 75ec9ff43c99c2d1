"""One YAML configuration file, validated at start-up, plus a few environment overrides.

The schema (schemas/config.schema.json) is the documentation of every key; errors name the
offending key so a typo stops start-up instead of silently changing enforcement.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from webhook.core.limits import Limits
from webhook.core.model import Mode
from webhook.core.settings import (
    POLICIES_FROM_ENV,
    POLICIES_PACKAGED,
    CacheSettings,
    CheckSettings,
    ClusterSettings,
    ConfigError,
    ConfigException,
    EngineSettings,
    ExceptionKey,
    GitopsController,
    LoggingSettings,
    OpaSettings,
    Override,
    PlatformSettings,
    RuleSettings,
    ServerSettings,
    Settings,
    TokenRules,
)

# Environment overrides for deployment knobs only; policy behaviour lives in the file.
ENV_CONFIG = "NETGUARD_CONFIG"
ENV_OVERRIDES = {
    "NETGUARD_BIND": ("server", "bind"),
    "NETGUARD_CHECK_BIND": ("server", "check_bind"),
    "NETGUARD_TLS_CERT": ("server", "tls_cert"),
    "NETGUARD_TLS_KEY": ("server", "tls_key"),
    "NETGUARD_WORKERS": ("server", "workers"),
    "NETGUARD_ENGINE": ("engine", "type"),
    "NETGUARD_OPA_URL": ("engine", "opa", "url"),
    "NETGUARD_OPA_TOKEN": ("engine", "opa", "token"),
    "NETGUARD_LOG_LEVEL": ("logging", "level"),
    "NETGUARD_LOG_FORMAT": ("logging", "format"),
    "NETGUARD_POLICIES_DIR": ("policies_dir",),
}
# NETGUARD_CLUSTER turns the cluster view on: "in-cluster" (the pod's service account) or a kubeconfig path;
# "off" turns it off.
ENV_CLUSTER = "NETGUARD_CLUSTER"


def _schema() -> dict[str, Any]:
    text = resources.files("webhook").joinpath("schemas/config.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(doc: Any, source: str) -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"{source}: {key}: {err.message}")
        raise ConfigError("\n".join(lines))


def _yaml_quirks(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo YAML 1.1 readings nobody means: bare `off` is false, bare 2026-12-31 is a date."""
    def fix(value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {k: fix(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        if value is False and key == "mode":
            return "off"
        if isinstance(value, date):
            return value.isoformat()
        return value

    out: Mapping[str, Any] = fix(doc)
    for section in ("overrides",):  # rule -> mode maps inside overrides
        for item in out.get(section) or []:
            if isinstance(item, dict) and isinstance(item.get("rules"), dict):
                item["rules"] = {k: ("off" if v is False else v) for k, v in item["rules"].items()}
    return out


def from_mapping(doc: Mapping[str, Any], source: str = "(inline)") -> Settings:
    doc = _yaml_quirks(doc)
    validate(doc, source)
    engine = doc.get("engine", {})
    server_doc = dict(doc.get("server", {}))
    check = CheckSettings(**server_doc.pop("check", {}))
    server = ServerSettings(**server_doc, check=check)
    rules = {
        rid: RuleSettings(mode=Mode(r["mode"]) if "mode" in r else None, parameters=r.get("parameters", {}))
        for rid, r in doc.get("rules", {}).items()
    }
    defaults = Settings()
    return Settings(
        policies_dir=doc.get("policies_dir", defaults.policies_dir),
        policies_from=f"config policies_dir in {source}" if "policies_dir" in doc else POLICIES_PACKAGED,
        dry_run=doc.get("dry_run", False),
        excluded_namespaces=tuple(doc.get("excluded_namespaces", defaults.excluded_namespaces)),
        engine=EngineSettings(
            type=engine.get("type", "regorus"), on_error=engine.get("on_error", "deny"),
            opa=OpaSettings(**engine.get("opa", {})),
            budget_seconds=float(engine.get("budget_seconds", defaults.engine.budget_seconds)),
            evaluators=engine.get("evaluators", defaults.engine.evaluators),
        ),
        server=server,
        logging=LoggingSettings(**doc.get("logging", {})),
        rules=rules,
        platform=_platform(doc.get("platform", {})),
        namespace_labels={ns: dict(labels) for ns, labels in doc.get("namespace_labels", {}).items()},
        overrides=tuple(
            Override(namespaces=tuple(o.get("namespaces", ())), namespace_labels=dict(o.get("namespace_labels", {})),
                     rules={k: Mode(v) for k, v in o["rules"].items()}, reason=o.get("reason", ""))
            for o in doc.get("overrides", [])),
        existing_violations=doc.get("updates", {}).get("existing_violations", "warn"),
        exceptions=_granted(doc.get("exceptions", []), source),
        exception_tokens=_token_rules(doc.get("exceptions", [])),
        exception_keys=tuple(ExceptionKey(id=k["id"], public_key=k["public_key"])
                             for k in doc.get("exception_keys", [])),
        cluster=ClusterSettings(**doc.get("cluster", {})),
        limits=Limits(**doc.get("limits", {})),
        cache=CacheSettings(**doc.get("cache", {})),
        source=source,
    )


def _platform(doc: Mapping[str, Any]) -> PlatformSettings:
    defaults = PlatformSettings()
    return PlatformSettings(
        users=tuple(doc.get("users", defaults.users)),
        groups=tuple(doc.get("groups", defaults.groups)),
        gitops_controllers=tuple(GitopsController(username=g["username"], namespaces=tuple(g["namespaces"]))
                                 for g in doc.get("gitops_controllers", [])),
    )


def _granted(section: Any, source: str) -> tuple[ConfigException, ...]:
    """`exceptions:` is the list of grants, or a mapping with them under `granted` (next to the token rules)."""
    items = section.get("granted", []) if isinstance(section, Mapping) else section
    return tuple(ConfigException(rules=tuple(e["rules"]), namespace=e["namespace"], name=e["name"],
                                 expires=_date(e["expires"], source), reason=e["reason"], ticket=e.get("ticket", ""))
                 for e in items)


def _token_rules(section: Any) -> TokenRules:
    if not isinstance(section, Mapping):
        return TokenRules()
    return TokenRules(max_lifetime_days=section.get("max_lifetime_days", TokenRules.max_lifetime_days),
                      revoked=tuple(section.get("revoked", ())))


def _date(text: str, source: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{source}: exceptions: {text!r} is not a valid date (YYYY-MM-DD)") from None


class _BadDate(Exception):
    """An unquoted scalar YAML reads as a timestamp but that is no real day (2027-02-30); `line` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _ConfigLoader(yaml.SafeLoader):
    """safe_load, except that an impossible unquoted date is a ConfigError with its line, not a ValueError."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            text = str(node.value)
            raise _BadDate(f"{text} is not a valid date ({exc}); write YYYY-MM-DD, or if it is text, "
                           f'quote it (quote the date: "{text}")', node.start_mark.line + 1) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)


def _plain_data(doc: Any, source: str, path: tuple[str, ...] = ()) -> Any:
    """The configuration as plain JSON data: an unquoted date (YAML 1.1 reads `expires: 2027-01-01` as a
    datetime.date) becomes its ISO text, which every date key reads (exceptions[].expires) and which is
    exactly what was written; what YAML changed in the reading (a date and time, a date as a mapping key) or
    what is not configuration data (!!binary, !!set) is a ConfigError naming the key, never a TypeError."""
    key = ".".join(path) or "(top level)"
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if isinstance(k, date):
                raise ConfigError(f'{source}: {".".join((*path, str(k)))}: an unquoted date as a key; '
                                  f'quote it (quote the date: "{k}")')
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ConfigError(f"{source}: {key}: a {type(k).__name__} as a key; keys are text")
            out[str(k) if not isinstance(k, str) else k] = _plain_data(v, source, (*path, str(k)))
        return out
    if isinstance(doc, list):
        return [_plain_data(v, source, (*path, str(i))) for i, v in enumerate(doc)]
    if isinstance(doc, datetime):
        raise ConfigError(f"{source}: {key}: YAML reads the unquoted {doc} as a date and time, not text; dates "
                          f'in the configuration are YYYY-MM-DD (quote the date: "{doc}")')
    if isinstance(doc, date):
        return doc.isoformat()
    if doc is None or isinstance(doc, (str, int, float, bool)):
        return doc
    raise ConfigError(f"{source}: {key}: a YAML {type(doc).__name__} is not configuration data; write text, a "
                      "number, true/false, a list or a mapping")


def load(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the file named by `path` or $NETGUARD_CONFIG (none: defaults), then apply env overrides."""
    env = os.environ if env is None else env
    path = path or env.get(ENV_CONFIG) or None
    doc: Any = {}
    source = "(defaults)"
    if path:
        source = str(path)
        try:
            doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_ConfigLoader) or {}  # a SafeLoader
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
        except _BadDate as exc:
            raise ConfigError(f"{path}:{exc.line}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: (top level): the configuration must be a mapping")
    doc = _plain_data(doc, source)  # before the env overrides' copy, which serializes plain data only
    doc = _apply_env(doc, env)
    settings = from_mapping(doc, source)
    if env.get("NETGUARD_POLICIES_DIR"):
        settings = replace(settings, policies_from=POLICIES_FROM_ENV)
    return settings


def _apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))  # deep copy of plain data
    for var, keys in ENV_OVERRIDES.items():
        if var not in env or env[var] == "":
            continue
        value: Any = env[var]
        if keys[-1] == "workers":
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{var}: must be a whole number, got {value!r}") from None
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    cluster = env.get(ENV_CLUSTER, "")
    if cluster:
        section = out.setdefault("cluster", {})
        if cluster == "off":
            section["enabled"] = False
        elif cluster == "in-cluster":
            section.update(enabled=True, in_cluster=True, kubeconfig="")
        else:
            section.update(enabled=True, in_cluster=False, kubeconfig=cluster)
    return out


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
