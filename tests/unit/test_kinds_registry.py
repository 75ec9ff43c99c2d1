"""The kind registry (webhook/kinds) is the one list of guarded kinds: it finds the kind modules itself, deploy/
and the schemas agree with it, everything that used to keep its own list derives from it, and lookups match the
API group and the kind together.

deploy/ is read as files (no kustomize build): every ValidatingWebhookConfiguration, MutatingWebhookConfiguration
and ClusterRole written there, outside the generated deploy/base/policies.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from webhook import kinds
from webhook.cluster import cluster_view, kube
from webhook.core import limits, model, reviews
from webhook.core.normalize import normalize
from webhook.core.shape import ShapeError
from webhook.kinds import GroupVersionKind, PolicyKind, Registry
from webhook.offline import sources

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GENERATED = DEPLOY / "base" / "policies"  # deploy/sync_policies.py's copy of the catalog: samples, not manifests
WEBHOOK_CONFIGURATIONS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if GENERATED in path.parents:
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    return docs


def _of_kind(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path, doc in _manifests() if doc.get("kind") == kind]


def _registered() -> set[tuple[str, str, str, str]]:
    return {(k.group, k.version, k.plural, "Namespaced" if k.namespaced else "Cluster") for k in kinds.ALL}


@pytest.mark.parametrize("configuration", WEBHOOK_CONFIGURATIONS)
def test_every_webhook_guards_exactly_the_registered_kinds_at_their_version_and_scope(configuration: str) -> None:
    # Patches of a configuration (the cert-manager overlay's annotation) carry no webhooks: only full ones count.
    found = [(path, webhook) for path, doc in _of_kind(configuration) for webhook in doc.get("webhooks") or ()
             if "rules" in webhook]
    assert found, f"no {configuration} with rules under deploy/"
    for path, webhook in found:
        guarded = {(g, v, r, rule["scope"]) for rule in webhook["rules"] for g in rule["apiGroups"]
                   for v in rule["apiVersions"] for r in rule["resources"]}
        where = f"{path.relative_to(REPO)} {webhook['name']}"
        assert not _registered() - guarded, f"{where} misses {sorted(_registered() - guarded)}"
        assert not guarded - _registered(), f"{where} guards what webhook/kinds does not: {guarded - _registered()}"


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule.get("apiGroups", ()) for r in rule.get("resources", ())
            for v in rule["verbs"]}


@pytest.mark.parametrize(("role_name", "verbs"), [("netguard", ("list", "watch")),  # the cluster view
                                                  ("netguard-audit", ("list",))])  # netguard audit --in-cluster
def test_rbac_lets_netguard_read_every_registered_kind(role_name: str, verbs: tuple[str, ...]) -> None:
    (role,) = [doc for _, doc in _of_kind("ClusterRole") if doc["metadata"]["name"] == role_name]
    needed = {(k.group, k.plural, verb) for k in kinds.ALL for verb in verbs}
    assert needed <= _grants(role), sorted(needed - _grants(role))


def test_no_role_grants_a_policy_resource_the_registry_does_not_know() -> None:
    known = {(k.group, k.plural) for k in kinds.ALL}
    for path, role in _of_kind("ClusterRole"):
        policies = {(g, r) for g, r, _ in _grants(role) if r.endswith("networkpolicies")}
        assert policies <= known, (path.relative_to(REPO), sorted(policies - known))


def _enums(schema: Any) -> list[list[Any]]:
    if isinstance(schema, dict):
        found = [schema["enum"]] if isinstance(schema.get("enum"), list) else []
        return found + [e for value in schema.values() for e in _enums(value)]
    if isinstance(schema, list):
        return [e for value in schema for e in _enums(value)]
    return []


@pytest.mark.parametrize("schema", ["config.schema.json", "policy.schema.json"])
def test_every_kind_enum_written_in_the_schemas_is_the_registry(schema: str) -> None:
    """The schema files keep no list of their own that could fall behind: an enum of kind names written there
    (none today) is held to the registry."""
    enums = _enums(json.loads((REPO / "webhook" / "schemas" / schema).read_text()))
    of_kinds = [e for e in enums if any(isinstance(v, str) and v.endswith("NetworkPolicy") for v in e)]
    assert all(e == [k.kind for k in kinds.ALL] for e in of_kinds), of_kinds


def test_a_guardrails_kinds_may_name_every_registered_kind_and_nothing_else() -> None:
    from webhook.engine import policies

    enum = policies._metadata_schema()["properties"]["kinds"]["items"]["enum"]
    assert sorted(enum) == sorted(kinds.NAMES) and len(enum) == len(kinds.ALL)


# -- discovery ----------------------------------------------------------------------------------------------

HELPERS = {"calico", "kind", "cilium", "npapi", "staged_action"}  # PolicyKind itself; the rule languages; stagedAction


def _modules() -> dict[str, ModuleType]:
    return {m.name: importlib.import_module(f"webhook.kinds.{m.name}") for m in pkgutil.iter_modules(kinds.__path__)}


def test_every_module_of_the_package_is_a_kind_or_a_known_helper() -> None:
    """A kind module that forgot `KIND` would be skipped as a helper and guard nothing: here it fails instead. A
    new helper module is named in HELPERS."""
    modules = _modules()
    assert {name for name, module in modules.items() if not hasattr(module, "KIND")} == HELPERS
    assert {module.KIND for name, module in modules.items() if name not in HELPERS} == set(kinds.ALL)


def test_the_kinds_are_listed_in_their_declared_order() -> None:
    assert [k.order for k in kinds.ALL] == sorted({k.order for k in kinds.ALL})  # ascending, unique
    known = (kinds.NETWORK_POLICY, kinds.CILIUM_NETWORK_POLICY, kinds.CILIUM_CLUSTERWIDE_NETWORK_POLICY)
    assert [k for k in kinds.ALL if k in known] == list(known)  # the order every message and list has had
    assert kinds.discover() == kinds.ALL


# A made-up kind in the NetworkPolicy language, of a group no real kind will have.
THROWAWAY_POLICY = """
    from webhook.core.netpolicy import Flavor
    from webhook.kinds.kind import GroupVersionKind, Phrasing, PolicyKind
    from webhook.kinds.networkpolicy import normalize_spec

    KIND = PolicyKind(
        gvk=GroupVersionKind("throwaway.example", "v1", "ThrowawayPolicy"), plural="throwawaypolicies",
        namespaced=True, optional_crd=True, project="Throwaway", flavor=Flavor.KUBERNETES, normalizer=normalize_spec,
        phrasing=Phrasing(a="a ThrowawayPolicy", subjects_in="in the policy's namespace"), order={order},
    )
"""


def add_module(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str, source: str) -> None:
    """`source` as webhook/kinds/<name>.py, seen through an extra folder on the package's path."""
    (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.setattr(kinds, "__path__", [*kinds.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, f"webhook.kinds.{name}", raising=False)


def test_a_new_kind_is_one_module_listed_at_its_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_policy", THROWAWAY_POLICY.replace("{order}", "25"))
    try:
        found = kinds.discover()
    finally:
        sys.modules.pop("webhook.kinds.throwaway_policy", None)
    (new,) = [k for k in found if k.kind == "ThrowawayPolicy"]
    assert found == tuple(sorted((*kinds.ALL, new), key=lambda k: k.order))
    assert kinds.CILIUM_NETWORK_POLICY.order < new.order < kinds.CILIUM_CLUSTERWIDE_NETWORK_POLICY.order  # between
    assert Registry(found).of({"apiVersion": "throwaway.example/v1", "kind": "ThrowawayPolicy"}) is new


def test_a_module_whose_kind_is_not_a_policy_kind_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_not_a_kind", "KIND = 'ThrowawayPolicy'\n")
    try:
        with pytest.raises(TypeError, match=r"throwaway_not_a_kind\.KIND is a str, not a PolicyKind"):
            kinds.discover()
    finally:
        sys.modules.pop("webhook.kinds.throwaway_not_a_kind", None)


def test_two_kinds_of_one_order_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    add_module(monkeypatch, tmp_path, "throwaway_same_order", THROWAWAY_POLICY.replace("{order}", "20"))
    try:
        with pytest.raises(ValueError, match="two kinds declare the same order"):
            kinds.discover()
    finally:
        sys.modules.pop("webhook.kinds.throwaway_same_order", None)


# -- lookups ------------------------------------------------------------------------------------------------

def test_each_kind_is_found_by_group_and_kind_by_resource_and_by_name() -> None:
    assert kinds.NETWORK_POLICY in kinds.ALL and kinds.CILIUM_CLUSTERWIDE_NETWORK_POLICY in kinds.ALL
    for kind in kinds.ALL:
        assert kinds.lookup(kind.group, kind.kind) is kind
        assert kinds.by_resource(kind.resource) is kind
        assert kind.resource == f"{kind.plural}.{kind.group}"
        assert kinds.named(kind.name) is kind
        assert kinds.of({"apiVersion": kind.api_version, "kind": kind.kind}) is kind
        assert kind in kinds.with_name(kind.kind) and kind in kinds.with_name(kind.name)
    assert {k.kind for k in kinds.ALL} | {k.name for k in kinds.ALL} == kinds.NAMES
    assert len({k.name for k in kinds.ALL}) == len(kinds.ALL)  # the names guardrails and reports use are unique


def test_calicos_network_policy_is_named_with_its_group_beside_the_kubernetes_one() -> None:
    calico = kinds.lookup("projectcalico.org", "NetworkPolicy")
    assert calico is not None and calico.qualified and calico.name == "NetworkPolicy.projectcalico.org"
    assert kinds.NETWORK_POLICY.name == "NetworkPolicy"
    assert kinds.with_name("NetworkPolicy") == (kinds.NETWORK_POLICY, calico)
    # A fragment without apiVersion is the kind named so: Kubernetes', as before Calico's was registered.
    assert kinds.of({"kind": "NetworkPolicy"}) is kinds.NETWORK_POLICY
    policy = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"name": "p"},
              "spec": {"selector": "all()"}}
    assert normalize(policy).kind == "NetworkPolicy.projectcalico.org"


@pytest.mark.parametrize(("group", "kind"), [
    ("crd.antrea.io", "NetworkPolicy"),  # Antrea's own NetworkPolicy
    ("networking.k8s.io", "StagedNetworkPolicy"),  # Calico's staged kinds are guarded in projectcalico.org only
    ("projectcalico.org", "StagedNetworkSet"),  # nor is every Calico kind guarded
    ("", "NetworkPolicy"),  # the core group serves none
    ("cilium.io", "NetworkPolicy"),
    ("networking.k8s.io", "CiliumNetworkPolicy"),
    ("crd.antrea.io", "ClusterNetworkPolicy"),  # neither it nor policy.networking.k8s.io's is guarded yet
])
def test_a_kind_of_the_same_name_in_another_group_is_not_found(group: str, kind: str) -> None:
    assert kinds.lookup(group, kind) is None
    assert kinds.of({"apiVersion": f"{group}/v1" if group else "v1", "kind": kind}) is None


def test_the_version_is_not_part_of_a_kinds_identity() -> None:
    obj = {"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumNetworkPolicy"}
    assert kinds.of(obj) is kinds.CILIUM_NETWORK_POLICY


def test_without_an_api_version_the_kind_alone_decides_only_when_one_registered_kind_has_that_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert kinds.of({"kind": "CiliumClusterwideNetworkPolicy"}) is kinds.CILIUM_CLUSTERWIDE_NETWORK_POLICY
    assert kinds.of({"apiVersion": 2, "kind": "NetworkPolicy"}) is None
    assert kinds.of({"apiVersion": "networking.k8s.io/v1"}) is None
    # Two kinds called NetworkPolicy, neither named so (both qualified, a stand-in for Antrea's beside the
    # Kubernetes one): the kind alone decides nothing. With one named so (the real registry), it is that one.
    k8s = replace(kinds.NETWORK_POLICY, qualified=True)
    other = replace(kinds.NETWORK_POLICY, gvk=GroupVersionKind("crd.antrea.io", "v1beta1", "NetworkPolicy"),
                    qualified=True)
    registry = Registry((*(k for k in kinds.ALL if k.kind != "NetworkPolicy"), k8s, other))
    assert registry.of({"kind": "NetworkPolicy"}) is None
    assert registry.with_name("NetworkPolicy") == (k8s, other)
    assert registry.of({"apiVersion": "crd.antrea.io/v1beta1", "kind": "NetworkPolicy"}) is other
    assert registry.of({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}) is k8s
    assert kinds.of({"kind": "NetworkPolicy"}) is kinds.NETWORK_POLICY
    monkeypatch.setattr(kinds, "REGISTRY", registry)
    monkeypatch.setattr(kinds, "of", registry.of)
    with pytest.raises(ShapeError, match=re.escape("apiVersion is required: NetworkPolicy is a kind of "
                                                   "networking.k8s.io/v1 or crd.antrea.io/v1beta1")):
        normalize({"kind": "NetworkPolicy", "metadata": {"name": "p"}, "spec": {"podSelector": {}}})


def test_a_registry_refuses_a_kind_twice_a_resource_twice_and_a_name_twice() -> None:
    """Resources are keyed on plural.group, so two groups' `networkpolicies` are two resources; but guardrails and
    reports name kinds without their group, so the second NetworkPolicy must declare itself qualified."""
    with pytest.raises(ValueError, match="registered twice"):
        Registry((kinds.NETWORK_POLICY, kinds.NETWORK_POLICY))
    antrea = replace(kinds.NETWORK_POLICY, gvk=GroupVersionKind("crd.antrea.io", "v1beta1", "NetworkPolicy"))
    with pytest.raises(ValueError, match="both named NetworkPolicy: declare the later one qualified"):
        Registry((kinds.NETWORK_POLICY, antrea))
    assert Registry((kinds.NETWORK_POLICY, replace(antrea, qualified=True))).by_resource(
        "networkpolicies.crd.antrea.io") is not None
    same_resource = replace(kinds.NETWORK_POLICY, gvk=GroupVersionKind("networking.k8s.io", "v1", "Other"))
    with pytest.raises(ValueError, match=re.escape("resource networkpolicies.networking.k8s.io is registered twice")):
        Registry((kinds.NETWORK_POLICY, same_resource))


def test_each_kind_is_declared_coherently() -> None:
    for kind in kinds.ALL:
        assert isinstance(kind, PolicyKind)
        named = f"{kind.project} {kind.kind}" if kind.qualified else kind.kind  # "a Calico NetworkPolicy"
        assert kind.phrasing.a == f"{'an' if named[0] in 'AEIOU' else 'a'} {named}"
        assert kind.plural == kind.plural_kind.lower()
        assert kind.collection_path == f"/apis/{kind.group}/{kind.version}/{kind.plural}"
        assert kind.phrasing.subjects_in == ("in the policy's namespace" if kind.namespaced else "in every namespace")
        assert kind.optional_crd == (kind.group not in ("networking.k8s.io",))  # built-in groups are always served


# -- everything derives from the registry ---------------------------------------------------------------------

def test_the_lists_that_used_to_be_written_out_derive_from_the_registry() -> None:
    assert tuple(k.gvk for k in kinds.ALL) == model.POLICY_KINDS
    assert kinds.NAMES == model.POLICY_KIND_NAMES
    assert dict(cluster_view.POLICY_RESOURCES) == {k.resource: k.gvk for k in kinds.ALL}
    assert {k.resource for k in kinds.ALL if k.optional_crd} <= cluster_view.OPTIONAL_RESOURCES
    assert {(k.group, k.plural) for k in kinds.ALL} <= set(kube.REQUIRED_PERMISSIONS)
    assert {k.resource for k in kinds.ALL} <= set(kube.WATCHED)
    for kind in kinds.ALL:
        assert kube.WATCHED[kind.resource].path == kind.collection_path


def _ccnp(api_version: str = "cilium.io/v2") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "c", "namespace": "team-a"}, "spec": {"endpointSelector": {}, "egress": [{}]}}


def test_scope_comes_from_the_registered_kind_not_from_its_name() -> None:
    review = reviews.make_review(_ccnp())["request"]
    assert (review["namespace"], review["resource"]["resource"]) == ("", "ciliumclusterwidenetworkpolicies")
    policy = normalize(_ccnp())
    assert (policy.namespace, policy.clusterwide) == ("", True)
    assert sources.cluster_scoped(_ccnp())
    # The same name in another group is nothing netguard knows: namespaced as written, not counted, not read.
    other = _ccnp("example.com/v1")
    assert not sources.cluster_scoped(other)
    assert reviews.make_review(other)["request"]["namespace"] == "team-a"
    assert list(limits.counts(other)) == []
    with pytest.raises(ShapeError, match=re.escape("apiVersion 'example.com/v1' is not the API group of the "
                                                   "CiliumClusterwideNetworkPolicy netguard guards (cilium.io/v2)")):
        normalize(other)


def test_an_unknown_kind_names_every_registered_one() -> None:
    names = [k.kind for k in kinds.ALL]
    with pytest.raises(ShapeError, match=re.escape(f"kind 'Ingress' is not a {', '.join(names[:-1])} or {names[-1]}")):
        normalize({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}})
