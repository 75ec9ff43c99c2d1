"""policies/ ships as ConfigMaps: the copy in deploy/ is current, and the pods see exactly the catalog.

deploy/base/policies/ holds a generated copy of policies/ (Kustomize reads only files below a
kustomization) plus generated ConfigMap and volume definitions, and the webhook configurations and
ClusterRoles hold rules generated from webhook/kinds (deploy/sync_kinds.py, between marker lines);
`make deploy-policies` refreshes them and the first test fails until it is run. The mount tests mount the
built ConfigMaps the way kubelet
does (a hidden `..<timestamp>/` folder, a `..data` symlink to it and symlinks to each top-level entry)
and load the result with netguard's own loader, so a missing, renamed or extra file shows up as a
different policy revision.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, REPO, build, one
from tests.opa_standin import OpaStandIn
from webhook import config, kinds
from webhook.core.admission import parse_review
from webhook.core.model import Verdict
from webhook.core.reviews import make_review
from webhook.engine.policies import load_policy_set
from webhook.offline.samples import sample_files
from webhook.pipeline import build_pipeline

LAST_APPLIED_LIMIT = 262144  # bytes of annotations: what client-side `kubectl apply` stores per object


def _sync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_policies", DEPLOY / "sync_policies.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _sync()


def test_deploy_holds_a_current_copy_of_policies_and_current_generated_files() -> None:
    problems = sync.stale(sync.render(sync.catalog_files()))
    assert problems == [], "run `make deploy-policies`:\n" + "\n".join(problems)


def test_a_changed_added_or_removed_policy_file_is_reported_as_stale() -> None:
    files = sync.catalog_files()
    changed = dict(files)
    changed["lib/helpers.rego"] = files["lib/helpers.rego"] + b"\n# edited\n"
    assert "deploy/base/policies/catalog/lib/helpers.rego: out of date" in sync.stale(sync.render(changed))
    added = {**files, "lib/new.rego": b"package netguard.lib.new\n"}
    assert "deploy/base/policies/catalog/lib/new.rego: missing" in sync.stale(sync.render(added))
    removed = {k: v for k, v in files.items() if k != "lib/helpers.rego"}
    assert "deploy/base/policies/catalog/lib/helpers.rego: not in policies/" in sync.stale(sync.render(removed))


# -- the blocks generated from webhook/kinds ------------------------------------------------------------------

KIND_FILES = ("deploy/base/validating-webhook.yaml", "deploy/base/mutating-webhook.yaml", "deploy/base/rbac.yaml",
              "deploy/overlays/audit-cronjob/audit.yaml")
# A made-up kind, of a group no real kind will have.
THROWAWAY = replace(kinds.NETWORK_POLICY, gvk=kinds.GroupVersionKind("throwaway.example", "v1", "ThrowawayPolicy"),
                    plural="throwawaypolicies", optional_crd=True, project="Throwaway", order=1000)


def _rendered(registered: tuple[kinds.PolicyKind, ...]) -> dict[str, Any]:
    """The generated files for `registered` (relative path -> YAML documents)."""
    out = sync.render(sync.catalog_files(), registered)
    return {f: [d for d in yaml.safe_load_all(out[REPO / f]) if d] for f in KIND_FILES}


def _webhook_rules(doc: dict[str, Any]) -> set[tuple[str, str, str, str, tuple[str, ...]]]:
    return {(r["apiGroups"][0], r["apiVersions"][0], r["resources"][0], r["scope"], tuple(r["operations"]))
            for r in doc["webhooks"][0]["rules"]}


def _role_grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def test_a_kind_added_to_or_removed_from_the_registry_makes_the_generated_rules_stale() -> None:
    for registered in ((*kinds.ALL, THROWAWAY), kinds.ALL[:-1]):
        problems = sync.stale(sync.render(sync.catalog_files(), registered))
        assert sorted(problems) == sorted(f"{f}: out of date" for f in KIND_FILES)


def test_the_generated_rules_name_a_new_kind_everywhere_the_registered_ones_are() -> None:
    docs, today = _rendered((*kinds.ALL, THROWAWAY)), _rendered(kinds.ALL)
    rule = ("throwaway.example", "v1", "throwawaypolicies", "Namespaced")
    validating, mutating, rbac, audit = KIND_FILES
    # Exactly the new kind's rules are added; the registered kinds' and everything else's stay as they are.
    assert _webhook_rules(docs[validating][0]) - _webhook_rules(today[validating][0]) == {
        (*rule, ("CREATE", "UPDATE", "DELETE"))}
    assert _webhook_rules(docs[mutating][0]) - _webhook_rules(today[mutating][0]) == {(*rule, ("CREATE", "UPDATE"))}
    grant = ("throwaway.example", "throwawaypolicies")
    assert _role_grants(docs[rbac]) - _role_grants(today[rbac]) == {(*grant, "list"), (*grant, "watch")}
    assert _role_grants(docs[audit]) - _role_grants(today[audit]) == {(*grant, "list")}
    for path in KIND_FILES:
        assert len(docs[path]) == len(today[path])


def test_an_edit_inside_a_block_is_undone_and_the_hand_written_lines_around_it_are_kept() -> None:
    path = REPO / KIND_FILES[2]
    text = path.read_text(encoding="utf-8")
    edited = text.replace("resources: [networkpolicies]", "resources: [networkpolicies, pods]")
    edited = edited.replace("# Exactly what", "# Exactly (edited by hand) what")
    assert edited.count("(edited by hand)") == 1 and "networkpolicies, pods" in edited
    block = sync.sync_kinds.BLOCKS[2]
    assert block.path == path
    spliced = sync.sync_kinds.splice(edited, block.name, block.lines(kinds.ALL), KIND_FILES[2])
    assert spliced == text.replace("# Exactly what", "# Exactly (edited by hand) what")


@pytest.mark.parametrize("marker", ["begin", "end"])
def test_a_lost_marker_stops_the_sync_naming_the_file(marker: str) -> None:
    path = REPO / KIND_FILES[0]
    text = path.read_text(encoding="utf-8").replace(f"# netguard:{marker} webhook-rules", "# (marker deleted)")
    with pytest.raises(SystemExit, match=f"{KIND_FILES[0]}: expected one block between"):
        sync.sync_kinds.splice(text, "webhook-rules", [], KIND_FILES[0])


def test_make_deploy_policies_runs_on_a_python_without_the_venv() -> None:
    """The Makefile runs the sync with the first Python on PATH: the kind registry it imports needs only the
    standard library (-S: no site-packages, -I: no PYTHONPATH or script folder on sys.path)."""
    result = subprocess.run([sys.executable, "-I", "-S", str(DEPLOY / "sync_policies.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


# -- the catalog as mounted -----------------------------------------------------------------------------------

def kubelet_mount(target: Path, volume: dict[str, Any], config_maps: dict[str, dict[str, Any]]) -> Path:
    """Write a projected ConfigMap volume the way kubelet's atomic writer lays it out."""
    payload = target / "..2026_01_01_00_00_00.000000001"
    tops = set()
    for source in volume["projected"]["sources"]:
        data = config_maps[source["configMap"]["name"]]["data"]
        for item in source["configMap"]["items"]:
            path = payload / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]], encoding="utf-8")
            tops.add(item["path"].split("/")[0])
    (target / "..data").symlink_to(payload.name)
    for top in tops:
        (target / top).symlink_to(f"..data/{top}")
    return target


def _mounted(docs: list[dict[str, Any]], volume_name: str, target: Path, kind: str = "Deployment") -> Path:
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    workload = one(docs, kind)
    pod = workload["spec"]["template"]["spec"] if kind == "Deployment" else \
        workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == volume_name)
    return kubelet_mount(target, volume, config_maps)


def _visible_files(root: Path) -> dict[str, bytes]:
    """What a reader that skips hidden names sees (netguard's loader, OPA with --ignore=.*)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath, name)
                out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


@pytest.mark.parametrize(("target", "kind"), [("base", "Deployment"), ("overlays/audit-cronjob", "CronJob")])
def test_the_mounted_configmaps_are_the_catalog_with_the_same_revision(target: str, kind: str,
                                                                        tmp_path: Path) -> None:
    root = _mounted(build(target), "policies", tmp_path / "policies", kind)
    assert _visible_files(root) == sync.catalog_files(REPO / "policies")
    mounted, repo = load_policy_set(root), load_policy_set(REPO / "policies")
    assert mounted.revision == repo.revision
    assert [g.id for g in mounted.guardrails] == [g.id for g in repo.guardrails]


def test_every_configmap_fits_client_side_apply_and_the_object_size_limit() -> None:
    sizes = {d["metadata"]["name"]: len(json.dumps(d)) for d in build("base") if d["kind"] == "ConfigMap"}
    assert len(sizes) == len(sync._folders(sync.catalog_files())) + 1  # one per folder, plus netguard-config
    assert max(sizes.values()) < LAST_APPLIED_LIMIT // 2, sizes  # room to grow before kubectl apply breaks
    assert sum(sizes.values()) > 100_000  # the whole catalog, not a stub


def test_opa_loads_exactly_the_modules_netguard_compiles_and_decides_the_same(tmp_path: Path) -> None:
    """The opa-sidecar overlay: OPA loads its projection from disk (push_policies false).

    OPA cannot run here: the stand-in (tests/opa_standin.py, regorus behind OPA's REST API) is given
    the files OPA would load from /policies with `--ignore=.*` (every visible .rego, by path), which
    is what OPA does with a directory argument; netguard then runs with the overlay's configuration.
    """
    docs = build("overlays/opa-sidecar")
    opa_root = _mounted(docs, "opa-policies", tmp_path / "opa")
    netguard_root = _mounted(docs, "policies", tmp_path / "netguard")
    policies = load_policy_set(netguard_root)
    loaded = _visible_files(opa_root)
    assert all(name.endswith(".rego") and "/" not in name for name in loaded)  # flat: OPA reads symlinked files
    assert sorted(t.decode() for t in loaded.values()) == sorted(m.text for m in policies.modules)

    config_map = next(v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
                      if v["name"] == "config")["configMap"]["name"]
    overlay = yaml.safe_load(one(docs, "ConfigMap", config_map)["data"]["config.yaml"])
    with OpaStandIn() as opa:
        import requests

        for name, text in loaded.items():
            response = requests.put(f"{opa.url}/v1/policies/policies/{name}", data=text, timeout=10)
            assert response.status_code == 200, response.text
        overlay["engine"]["opa"]["url"] = opa.url
        overlay["policies_dir"] = str(netguard_root)
        pipeline = build_pipeline(config.from_mapping(overlay))  # compiles nothing itself; warms up through OPA
        try:
            assert not [r for r in opa.requests if r[0] == "PUT" and "/netguard/" in r[1]]  # nothing pushed
            bad = sample_files(policies.get("no-allow-all-egress"), "bad")[0]
            obj = yaml.safe_load(bad.read_text(encoding="utf-8"))
            decision = pipeline.review(parse_review(make_review(obj, namespace="team-a"))).decision
            assert decision.verdict is Verdict.DENIED
            assert "no-allow-all-egress" in {f.finding.rule for f in decision.findings}
        finally:
            pipeline.engine.close()
