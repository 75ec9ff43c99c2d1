"""The catalog layout (gatekeeper-library style) and the loader's errors when it is broken."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policies.conftest import POLICIES, SETTINGS, copy_catalog
from webhook import kinds
from webhook.engine.engines import RegorusEngine
from webhook.engine.policies import PolicyLoadError, load_policy_set

FOLDERS = sorted(p for p in POLICIES.iterdir() if p.is_dir() and p.name != "lib")
SAMPLE_FILES = sorted(p for folder in FOLDERS for p in (folder / "samples").glob("*/*")
                      if p.is_file() and not p.name.endswith(".request.yaml"))
REQUEST_FILES = sorted(p for folder in FOLDERS for p in (folder / "samples").glob("*/*.request.yaml"))
REQUEST_KEYS = {"username", "groups", "operation", "old_object", "cluster"}
KINDS = {
    "NetworkPolicy": "networking.k8s.io/v1",
    "CiliumNetworkPolicy": "cilium.io/v2",
    "CiliumClusterwideNetworkPolicy": "cilium.io/v2",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1alpha2",
}
PACKAGE_RE = re.compile(r"^package\s+(\S+)\s*$", re.MULTILINE)


def _rel(path: Path) -> str:
    return str(path.relative_to(POLICIES))


def test_there_are_guardrails() -> None:
    assert FOLDERS
    assert (POLICIES / "lib").is_dir()


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_folder_is_complete(folder: Path) -> None:
    for name in ("policy.yaml", "rule.rego", "rule_test.rego"):
        assert (folder / name).is_file(), f"{folder.name}: missing {name}"
    for which in ("good", "bad"):
        manifests = list((folder / "samples" / which).glob("*.y*ml"))
        assert manifests, f"{folder.name}: samples/{which}/ is empty"
    strays = [p.name for p in (folder / "samples").glob("*/*") if p.suffix not in (".yaml", ".yml")]
    assert not strays, f"{folder.name}: samples that the loader would ignore: {strays}"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_ids_and_packages_match_the_folder(folder: Path) -> None:
    meta = yaml.safe_load((folder / "policy.yaml").read_text(encoding="utf-8"))
    assert meta["id"] == folder.name
    package = "guardrails." + folder.name.replace("-", "_")
    assert PACKAGE_RE.findall((folder / "rule.rego").read_text(encoding="utf-8")) == [package]
    assert PACKAGE_RE.findall((folder / "rule_test.rego").read_text(encoding="utf-8")) == [f"{package}_test"]


@pytest.mark.parametrize("path", REQUEST_FILES, ids=[_rel(p) for p in REQUEST_FILES])
def test_request_files_belong_to_a_sample_and_use_known_keys(path: Path) -> None:
    sample = path.with_name(path.name.removesuffix(".request.yaml") + ".yaml")
    assert sample.is_file(), f"{_rel(path)} describes no sample"
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(meta, dict) and set(meta) <= REQUEST_KEYS, f"unknown keys: {set(meta) - REQUEST_KEYS}"
    assert meta.get("operation", "CREATE") in ("CREATE", "UPDATE", "DELETE")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[_rel(p) for p in SAMPLE_FILES])
def test_sample_is_one_manifest_of_a_guarded_kind(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert len(docs) == 1, "one manifest per sample file"
    obj = docs[0]
    assert isinstance(obj, dict)
    # Group and kind (two groups serve a NetworkPolicy), at the version netguard reads; guardrails list kinds by
    # the name netguard gives them (Calico's NetworkPolicy is NetworkPolicy.projectcalico.org).
    kind = kinds.of(obj)
    assert kind is not None, f"kind {obj.get('kind')!r} of {obj.get('apiVersion')!r} is not guarded"
    assert obj.get("apiVersion") == kind.api_version
    assert obj.get("metadata", {}).get("name")
    guardrail = yaml.safe_load((path.parents[2] / "policy.yaml").read_text(encoding="utf-8"))
    assert kind.name in guardrail["kinds"], "the guardrail does not evaluate this kind"
    # A sample in an excluded namespace would be skipped and a good one would pass vacuously.
    assert obj.get("metadata", {}).get("namespace") not in SETTINGS.excluded_namespaces


def _remove(name: str) -> Callable[[Path], Path]:
    def breaker(folder: Path) -> Path:
        target = folder / name
        target.unlink()
        return folder
    return breaker


def _empty_samples(which: str) -> Callable[[Path], Path]:
    def breaker(folder: Path) -> Path:
        for sample in (folder / "samples" / which).iterdir():
            sample.unlink()
        return folder
    return breaker


def _write(name: str, transform: Callable[[str], str]) -> Callable[[Path], Path]:
    def breaker(folder: Path) -> Path:
        target = folder / name
        target.write_text(transform(target.read_text(encoding="utf-8")), encoding="utf-8")
        return target
    return breaker


def _meta(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def transform(text: str) -> str:
        meta = yaml.safe_load(text)
        change(meta)
        return yaml.safe_dump(meta)
    return transform


BREAKAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing policy.yaml": (_remove("policy.yaml"), "missing policy.yaml"),
    "missing rule.rego": (_remove("rule.rego"), "missing rule.rego"),
    "missing rule_test.rego": (_remove("rule_test.rego"), "missing rule_test.rego"),
    "no good samples": (_empty_samples("good"), "samples/good/"),
    "no bad samples": (_empty_samples("bad"), "samples/bad/"),
    "policy.yaml not YAML": (_write("policy.yaml", lambda t: t + "\nkinds: [unclosed\n"), "not valid YAML"),
    "unknown severity": (_write("policy.yaml", _meta(lambda m: m.update(severity="extreme"))), "severity"),
    "unknown key": (_write("policy.yaml", _meta(lambda m: m.update(colour="red"))), "colour"),
    "missing title": (_write("policy.yaml", _meta(lambda m: m.pop("title"))), "title"),
    # The schema's kinds enum comes from the kind registry (webhook/kinds): a kind it does not hold is refused,
    # also one of the same name in another API group, which a guardrail's `kinds:` cannot tell apart.
    "unknown kind": (_write("policy.yaml", _meta(lambda m: m.update(kinds=["NetworkPolicy", "FirewallPolicy"]))),
                     "FirewallPolicy"),
    "id not the folder": (_write("policy.yaml", _meta(lambda m: m.update(id="other-name"))), "other-name"),
    "wrong package": (_write("rule.rego", lambda t: t.replace("package guardrails.", "package wrong.", 1)),
                      "package must be"),
    "no rego.v1": (_write("rule.rego", lambda t: t.replace("import rego.v1", "")), "import rego.v1"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_folder_stops_loading_with_the_file_named(tmp_path: Path, breakage: str) -> None:
    root = copy_catalog(tmp_path)
    folder = root / FOLDERS[0].name
    breaker, expected = BREAKAGES[breakage]
    named = breaker(folder)

    with pytest.raises(PolicyLoadError) as excinfo:
        load_policy_set(root)
    message = str(excinfo.value)
    assert str(named) in message
    assert expected in message


def test_rego_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    rule = root / FOLDERS[0].name / "rule.rego"
    lines = rule.read_text(encoding="utf-8").splitlines()
    lines.append("")
    lines.append("broken if {")
    lines.append("\tx := ")
    lines.append("}")
    rule.write_text("\n".join(lines) + "\n", encoding="utf-8")
    broken_line = len(lines) - 1  # 1-based line of `x := `; a parser may point at the `}` after it

    policies = load_policy_set(root)  # the loader does not compile
    with pytest.raises(PolicyLoadError) as excinfo:
        RegorusEngine(policies)
    message = str(excinfo.value)
    match = re.search(re.escape(str(rule)) + r":(\d+)", message)
    assert match, message
    assert int(match.group(1)) in (broken_line, broken_line + 1)
    assert "Stack backtrace" not in message
