"""Configuration: one validated YAML file plus deployment overrides from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.config import load
from webhook.core.model import Mode
from webhook.core.settings import ConfigError
from webhook.engine.policies import load_policy_set, resolve_parameters

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "netguard.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_apply_without_a_file() -> None:
    settings = load(None, env={})
    assert settings.engine.type == "regorus"
    assert settings.server.max_body_bytes == 3 * 1024 * 1024
    assert "kube-system" in settings.excluded_namespaces


def test_the_evaluation_budget_defaults_below_the_webhook_timeout(tmp_path: Path) -> None:
    assert load(None, env={}).engine.budget_seconds == 2.0  # the webhook configurations say timeoutSeconds: 5
    engine = load(write(tmp_path, "engine: {budget_seconds: 0.5, evaluators: 3}\n"), env={}).engine
    assert (engine.budget_seconds, engine.evaluators) == (0.5, 3)


def test_a_file_sets_modes_and_parameters(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "dry_run: true\nrules:\n  no-allow-all-egress:\n    mode: warn\n"), env={})
    assert settings.dry_run is True
    assert settings.rules["no-allow-all-egress"].mode is Mode.WARN


@pytest.mark.parametrize(("text", "fragment"), [
    ("enigne: {type: opa}\n", "(top level): Additional properties are not allowed ('enigne'"),
    ("engine: {type: wasm}\n", "engine.type: 'wasm' is not one of"),
    ("rules: {no-allow-all-egress: {mode: block}}\n", "rules.no-allow-all-egress.mode: 'block' is not one of"),
    ("server: {max_body_bytes: 10}\n", "server.max_body_bytes: 10 is less than the minimum"),
    ("engine: {budget_seconds: 0}\n", "engine.budget_seconds: 0 is less than or equal to the minimum of 0"),
    ("engine: {budget_seconds: 10}\n", "engine.budget_seconds: 10 is greater than or equal to the maximum of 10"),
    ("engine: {evaluators: 0}\n", "engine.evaluators: 0 is less than the minimum of 1"),
    ("- a list\n", "(top level)"),
])
def test_invalid_files_are_rejected_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert fragment in str(err.value)
    assert "netguard.yaml" in str(err.value)


def test_unreadable_or_broken_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "missing.yaml"), env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(write(tmp_path, "rules: [\n"), env={})


def test_environment_overrides_deployment_knobs(tmp_path: Path) -> None:
    env = {"NETGUARD_BIND": "127.0.0.1:9443", "NETGUARD_ENGINE": "opa", "NETGUARD_OPA_URL": "http://opa:8181",
           "NETGUARD_WORKERS": "3", "NETGUARD_LOG_LEVEL": "debug",
           "NETGUARD_CONFIG": write(tmp_path, "dry_run: true\n")}
    settings = load(None, env=env)
    assert settings.server.bind == "127.0.0.1:9443"
    assert settings.engine.type == "opa" and settings.engine.opa.url == "http://opa:8181"
    assert settings.server.workers == 3 and settings.logging.level == "debug"
    assert settings.dry_run is True


def test_environment_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"engine\.type"):
        load(None, env={"NETGUARD_ENGINE": "wasm"})
    with pytest.raises(ConfigError, match="NETGUARD_WORKERS"):
        load(None, env={"NETGUARD_WORKERS": "many"})


def test_rule_settings_must_name_known_guardrails_and_parameters(tmp_path: Path) -> None:
    policies = load_policy_set(REPO / "policies")
    with pytest.raises(ConfigError, match=r"rules\.no-such-rule: no such guardrail"):
        resolve_parameters(policies, load(write(tmp_path, "rules: {no-such-rule: {mode: off}}\n"), env={}))
    bad_param = "rules: {no-internet-egress-without-ports: {parameters: {coverage: 1}}}\n"
    with pytest.raises(ConfigError, match="unknown parameter"):
        resolve_parameters(policies, load(write(tmp_path, bad_param), env={}))
    bad_type = "rules: {no-internet-egress-without-ports: {parameters: {internet_coverage: high}}}\n"
    with pytest.raises(ConfigError, match="must be float"):
        resolve_parameters(policies, load(write(tmp_path, bad_type), env={}))


def test_an_unquoted_yaml_off_is_read_as_the_off_mode(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "rules:\n  no-allow-all-egress:\n    mode: off\n"), env={})
    assert settings.rules["no-allow-all-egress"].mode is Mode.OFF
