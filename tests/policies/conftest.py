"""Shared fixtures: the real catalog, both pipelines, and a stand-in OPA server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.opa_standin import OpaStandIn
from webhook.core.guardrails import PolicySet
from webhook.core.settings import EngineSettings, OpaSettings, Settings
from webhook.engine.engines import OpaEngine
from webhook.engine.policies import load_policy_set
from webhook.pipeline import Pipeline, build_pipeline

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
SETTINGS = Settings(policies_dir=str(POLICIES))


def opa_settings(standin: OpaStandIn, timeout: float = 2) -> OpaSettings:
    return OpaSettings(url=standin.url, timeout_seconds=timeout)


def copy_catalog(tmp_path: Path) -> Path:
    """A private copy of policies/ to break on purpose."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policy_set(POLICIES)


@pytest.fixture
def standin() -> Iterator[OpaStandIn]:
    with OpaStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def embedded_pipeline() -> Pipeline:
    return build_pipeline(SETTINGS)


@pytest.fixture(scope="module")
def opa_pipeline() -> Iterator[Pipeline]:
    """The same catalog evaluated over HTTP by the stand-in, through OpaEngine."""
    with OpaStandIn() as server:
        settings = replace(SETTINGS, engine=EngineSettings(type="opa", opa=opa_settings(server)))
        engine = OpaEngine(load_policy_set(POLICIES), settings.engine.opa)
        try:
            yield build_pipeline(settings, engine=engine)
        finally:
            engine.close()
