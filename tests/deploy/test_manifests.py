"""deploy/: every manifest validates against the Kubernetes schemas, and the pieces agree with each other and the code.

No cluster runs here, so "validates" means kubernetes-validate's strict JSON schemas for Kubernetes
1.34 (unknown fields are errors, as with `kubectl apply --validate=strict`), plus small hand-written
schemas for the two cert-manager kinds it has no schema for. The cross-checks hold what a schema
cannot: the Service reaches the pods, the webhooks call routes that exist, RBAC is exactly what the
code calls, the namespace exclusions agree with the configuration.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import (
    BASE,
    BUILDS,
    DEPLOY,
    KUBERNETES_VERSION,
    REPO,
    build,
    containers,
    load_yaml_documents,
    one,
    pod_specs,
)
from tests.deploy.dockerfile import final_stage
from webhook import cli, config, kinds
from webhook.cluster import kube
from webhook.core.model import POLICY_KINDS
from webhook.core.settings import Settings

# cert-manager kinds (CRDs: kubernetes-validate has no schema for them): what deploy/ uses, strictly.
_ISSUER_REF = {"type": "object", "required": ["name"], "additionalProperties": False,
               "properties": {"name": {"type": "string"}, "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                              "group": {"const": "cert-manager.io"}}}
_META = {"type": "object", "required": ["name"],
         "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("cert-manager.io/v1", "Issuer"): {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": _META, "spec": {
            "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
            "properties": {"selfSigned": {"type": "object"},
                           "ca": {"type": "object", "required": ["secretName"], "additionalProperties": False,
                                  "properties": {"secretName": {"type": "string"}}}}}}},
    ("cert-manager.io/v1", "Certificate"): {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": _META, "spec": {
            "type": "object", "required": ["secretName", "issuerRef"], "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string"}, "isCA": {"type": "boolean"}, "commonName": {"type": "string"},
                "duration": {"type": "string", "pattern": "^[0-9]+h$"},
                "renewBefore": {"type": "string", "pattern": "^[0-9]+h$"},
                "dnsNames": {"type": "array", "items": {"type": "string"}},
                "usages": {"type": "array", "items": {"enum": ["server auth", "client auth", "digital signature",
                                                               "key encipherment"]}},
                "privateKey": {"type": "object", "additionalProperties": False, "properties": {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]}, "size": {"type": "integer"},
                    "rotationPolicy": {"enum": ["Never", "Always"]}}},
                "issuerRef": _ISSUER_REF}}}},
    # What deploy/components/apiserver-ingress-cilium uses of Cilium's CRD, strictly.
    ("cilium.io/v2", "CiliumNetworkPolicy"): {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": _META, "spec": {
            "type": "object", "required": ["endpointSelector"], "additionalProperties": False,
            "properties": {
                "endpointSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "ingress": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
                "egress": {"type": "array", "items": {"$ref": "#/$defs/rule"}}}}},
        "$defs": {
            "selector": {"type": "object", "additionalProperties": False, "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "entities": {"type": "array", "items": {"enum": [
                "all", "world", "cluster", "host", "remote-node", "kube-apiserver", "ingress", "init", "health",
                "unmanaged", "world-ipv4", "world-ipv6"]}},
            "rule": {"type": "object", "additionalProperties": False, "properties": {
                "fromEntities": {"$ref": "#/$defs/entities"}, "toEntities": {"$ref": "#/$defs/entities"},
                "fromEndpoints": {"type": "array", "items": {"$ref": "#/$defs/selector"}},
                "toEndpoints": {"type": "array", "items": {"$ref": "#/$defs/selector"}},
                "toPorts": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["ports"], "properties": {
                        "ports": {"type": "array", "items": {
                            "type": "object", "required": ["port"], "additionalProperties": False,
                            "properties": {"port": {"type": "string", "pattern": "^[0-9]+$"},
                                           "protocol": {"enum": ["TCP", "UDP", "SCTP", "ANY"]}}}}}}}}},
        },
    },
}
NAMESPACE = "netguard"
# kubernetes-validate re-reads its schema files (megabytes of JSON) for every object; they never change.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


def validate(doc: dict[str, Any]) -> None:
    """Raise when `doc` is not a valid object; a kind without a schema is an error, not a pass."""
    schema = CRD_SCHEMAS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(doc)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _kustomizations() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("kustomization.yaml") if "catalog" not in p.parts)


def _referenced(kustomization: Path) -> dict[str, set[Path]]:
    """Files a kustomization names: resources (files only), patches, generator files."""
    doc = load_yaml_documents(kustomization)[0]
    here = kustomization.parent
    out: dict[str, set[Path]] = {"resources": set(), "patches": set(), "generated": set()}
    for entry in doc.get("resources") or []:
        if (here / entry).is_file():
            out["resources"].add((here / entry).resolve())
    for patch in doc.get("patches") or []:
        if "path" in patch:
            out["patches"].add((here / patch["path"]).resolve())
    for generator in doc.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            out["generated"].add((here / entry.split("=", 1)[-1]).resolve())
    return out


RESOURCE_FILES = sorted({p for k in _kustomizations() for p in _referenced(k)["resources"]})


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=[str(p.relative_to(DEPLOY)) for p in RESOURCE_FILES])
def test_every_resource_file_validates_on_its_own(path: Path) -> None:
    docs = load_yaml_documents(path)
    assert docs
    for doc in docs:
        validate(doc)


def test_every_yaml_file_under_deploy_is_used_by_a_kustomization() -> None:
    """Patches are partial objects, checked through the builds below; an unreferenced file is dead or misnamed."""
    used = set()
    for k in _kustomizations():
        used |= {k.resolve()} | set().union(*_referenced(k).values())
    files = {p.resolve() for p in DEPLOY.rglob("*.yaml") if "catalog" not in p.relative_to(DEPLOY).parts}
    assert sorted(str(p.relative_to(REPO)) for p in files - used) == []


@pytest.mark.parametrize("target", BUILDS)
def test_each_kustomize_build_validates(target: str) -> None:
    docs = build(target)
    assert len(docs) > 10
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"deploy/{target}: {doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")


def test_the_validator_rejects_a_misspelled_field_and_an_unknown_kind() -> None:
    deployment = one(build("base"), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = broken["spec"]["template"]["spec"][
        "containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}})
    certificate = one(build("overlays/cert-manager"), "Certificate", "netguard-tls")
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    with pytest.raises(jsonschema.ValidationError):
        validate(certificate)


# -- the pieces agree ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return build("base")


@pytest.fixture(scope="module")
def routes() -> dict[str, set[str]]:
    """URL rule -> methods of the app gunicorn serves (webhook.serve.server.create_app)."""
    from webhook.serve.server import create_app

    settings = config.from_mapping({"policies_dir": str(REPO / "policies")})
    app = create_app(settings)
    app.extensions["netguard"].engine.close()  # only the routing table is needed
    return {rule.rule: set(rule.methods or ()) for rule in app.url_map.iter_rules()}


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment", "netguard")["spec"]["template"]["spec"]
    return spec


def _container(docs: list[dict[str, Any]], name: str = "netguard") -> dict[str, Any]:
    return next(c for c in containers(_pod(docs)) if c["name"] == name)


def _base_settings() -> Settings:
    with (BASE / "config.yaml").open(encoding="utf-8") as handle:
        return config.from_mapping(yaml.safe_load(handle), "deploy/base/config.yaml")


def test_the_service_selects_the_webhook_pods_on_the_https_port(base: list[dict[str, Any]]) -> None:
    service, deployment = one(base, "Service", "netguard"), one(base, "Deployment", "netguard")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port, check = service["spec"]["ports"]
    assert port["port"] == 443 and check["port"] == 8444
    container_ports = {p["name"]: p["containerPort"] for p in _container(base)["ports"]}
    assert container_ports[port["targetPort"]] == 8443
    assert container_ports[check["targetPort"]] == 8444
    assert _base_settings().server.bind.endswith(":8443")
    assert _base_settings().server.check_bind.endswith(":8444")


def test_webhooks_call_the_service_on_routes_the_app_serves(base: list[dict[str, Any]],
                                                            routes: dict[str, set[str]]) -> None:
    service = one(base, "Service", "netguard")
    expected = {"ValidatingWebhookConfiguration": "/validate", "MutatingWebhookConfiguration": "/mutate"}
    for kind, path in expected.items():
        for webhook in one(base, kind, "netguard")["webhooks"]:
            target = webhook["clientConfig"]["service"]
            assert (target["name"], target["namespace"], target["port"]) == (
                service["metadata"]["name"], service["metadata"]["namespace"], service["spec"]["ports"][0]["port"])
            assert target["path"] == path
            assert "POST" in routes[path]


def test_probes_use_routes_the_app_serves_over_https(base: list[dict[str, Any]], routes: dict[str, set[str]]) -> None:
    container = _container(base)
    probes = {name: container[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in probes.values():
        get = probe["httpGet"]
        assert get["scheme"] == "HTTPS" and get["port"] == "https"
        assert "GET" in routes[get["path"]]
    assert "GET" in routes["/metrics"]  # scraped through the same Service port


def test_webhook_rules_cover_exactly_the_kinds_netguard_guards(base: list[dict[str, Any]]) -> None:
    guarded = {(k.group, k.version, k.plural) for k in kinds.ALL}
    assert {(k.group, k.version) for k in kinds.ALL} == {(k.group, k.version) for k in POLICY_KINDS}
    namespaced = {k.plural: k.namespaced for k in kinds.ALL}
    operations = {"ValidatingWebhookConfiguration": {"CREATE", "UPDATE", "DELETE"},
                  # /mutate never patches a DELETE, so the API server is not asked to send one.
                  "MutatingWebhookConfiguration": {"CREATE", "UPDATE"}}
    for kind, ops in operations.items():
        (webhook,) = one(base, kind, "netguard")["webhooks"]
        covered = set()
        for rule in webhook["rules"]:
            assert set(rule["operations"]) == ops
            covered |= {(g, v, r) for g in rule["apiGroups"] for v in rule["apiVersions"] for r in rule["resources"]}
            scopes = {"Namespaced" if namespaced.get(r, True) else "Cluster" for r in rule["resources"]}
            assert [rule["scope"]] == sorted(scopes)
        assert covered == guarded


def test_webhook_failure_policies_timeouts_and_versions(base: list[dict[str, Any]]) -> None:
    (validating,) = one(base, "ValidatingWebhookConfiguration", "netguard")["webhooks"]
    (mutating,) = one(base, "MutatingWebhookConfiguration", "netguard")["webhooks"]
    assert validating["failurePolicy"] == "Fail"
    assert mutating["failurePolicy"] == "Ignore"
    assert mutating["reinvocationPolicy"] == "IfNeeded"
    for webhook in (validating, mutating):
        assert webhook["timeoutSeconds"] <= 5
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["sideEffects"] == "None"
        assert webhook["matchPolicy"] == "Equivalent"
        assert webhook["clientConfig"]["caBundle"] == ""  # a placeholder: certs install or cert-manager sets it
    # netguard answers (on_error) before the API server gives up on it, and OPA's timeout fits too.
    assert _base_settings().engine.budget_seconds < min(validating["timeoutSeconds"], mutating["timeoutSeconds"])
    opa = config.from_mapping(yaml.safe_load((DEPLOY / "overlays/opa-sidecar/config.yaml").read_text()))
    assert opa.engine.opa.timeout_seconds < min(validating["timeoutSeconds"], mutating["timeoutSeconds"])


def test_the_webhooks_skip_kube_system_and_netguards_namespace_as_the_configuration_does(
        base: list[dict[str, Any]]) -> None:
    namespace = one(base, "Namespace")["metadata"]["name"]
    assert namespace == NAMESPACE
    excluded = set(_base_settings().excluded_namespaces)
    assert excluded == {"kube-system", namespace}
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (webhook,) = one(base, kind, "netguard")["webhooks"]
        assert webhook["namespaceSelector"] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(excluded)}]}
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                      "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
    for target in BUILDS:
        for doc in build(target):
            expected = None if doc["kind"] in cluster_scoped else namespace
            assert doc["metadata"].get("namespace") == expected, (target, doc["kind"], doc["metadata"]["name"])


def test_the_webhook_watches_the_cluster_through_its_service_account(base: list[dict[str, Any]]) -> None:
    env = {e["name"]: e["value"] for e in _container(base)["env"]}
    settings = config.load(str(BASE / "config.yaml"), env=env)
    assert settings.cluster.enabled and settings.cluster.in_cluster
    assert not _base_settings().cluster.enabled  # the image's default configuration needs no cluster
    assert _pod(base).get("automountServiceAccountToken", True) is True


def test_rbac_grants_the_webhook_exactly_the_list_and_watch_its_cluster_view_makes(base: list[dict[str, Any]]) -> None:
    binding = one(base, "ClusterRoleBinding", "netguard")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": _pod(base)["serviceAccountName"],
                                    "namespace": NAMESPACE}]
    role = one(base, "ClusterRole", binding["roleRef"]["name"])
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    # WATCHED is keyed on plural.group (two groups serve networkpolicies); RBAC names the group and the plural,
    # the last segment of the collection path.
    watched = {(res.api_version.rpartition("/")[0], res.path.rpartition("/")[2]) for res in kube.WATCHED.values()}
    assert granted == {(g, r, v) for g, r in watched for v in ("list", "watch")}
    assert not any(rule.get("resourceNames") or rule.get("nonResourceURLs") for rule in role["rules"])
    assert [d["metadata"]["name"] for d in base if d["kind"] in ("Role", "RoleBinding")] == []


def test_rbac_grants_the_audit_exactly_its_lists_and_the_report_writes() -> None:
    docs = build("overlays/audit-cronjob")
    cronjob = one(docs, "CronJob", "netguard-audit")
    account = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    binding = one(docs, "ClusterRoleBinding", "netguard-audit")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    role = one(docs, "ClusterRole", binding["roleRef"]["name"])
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    reads = {(g, r, "list") for g, r in kube.REQUIRED_PERMISSIONS}
    writes = {("wgpolicyk8s.io", r, v) for r in ("policyreports", "clusterpolicyreports")
              for v in ("get", "create", "patch")}
    assert granted == reads | writes


def test_every_container_is_locked_down(base: list[dict[str, Any]]) -> None:
    user = final_stage().user
    for target in BUILDS:
        for name, pod in pod_specs(build(target)):
            where = f"deploy/{target} {name}"
            pod_context = pod.get("securityContext") or {}
            assert pod_context.get("runAsNonRoot") is True, where
            assert f"{pod_context['runAsUser']}:{pod_context['runAsGroup']}" == user, where
            assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
            assert not any("hostPath" in v for v in pod.get("volumes") or []), where
            for container in containers(pod):
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, (where, container["name"])
                assert context["readOnlyRootFilesystem"] is True, (where, container["name"])
                assert context["capabilities"] == {"drop": ["ALL"]}, (where, container["name"])
                assert context.get("privileged", False) is False, (where, container["name"])
                assert context["seccompProfile"] == {"type": "RuntimeDefault"}, (where, container["name"])
                assert context.get("runAsNonRoot", True) is True, (where, container["name"])
                assert "resources" in container and container["resources"]["limits"]["memory"], where


def test_images_are_pinned_never_latest() -> None:
    for target in BUILDS:
        for name, pod in pod_specs(build(target)):
            for container in containers(pod):
                image = container["image"]
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                assert "@sha256:" in image or (tag and tag != "latest"), f"deploy/{target} {name}: {image}"
    netguard_images = {c["image"] for target in BUILDS for _, pod in pod_specs(build(target)) for c in containers(pod)
                       if c["name"] in ("netguard", "audit")}
    assert len(netguard_images) == 1, netguard_images  # the audit runs the webhook's image (one version)


def test_the_deployment_is_highly_available_and_drains_before_stopping(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment", "netguard")
    pod = _pod(base)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hostname = [t for t in pod["topologySpreadConstraints"] if t["topologyKey"] == "kubernetes.io/hostname"]
    assert hostname and hostname[0]["maxSkew"] == 1 and hostname[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert hostname[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    pdb = one(base, "PodDisruptionBudget", "netguard")
    assert pdb["spec"]["minAvailable"] == 2 and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(base, "PriorityClass", pod["priorityClassName"])["value"] > 0
    # Drain: the preStop sleep, then SIGTERM and gunicorn's graceful timeout, all inside the grace period.
    sleep = _container(base)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= 5
    assert pod["terminationGracePeriodSeconds"] > sleep + _base_settings().server.graceful_timeout_seconds


def test_the_only_writable_path_is_an_emptydir_at_tmp_and_every_mount_has_a_volume() -> None:
    for target in BUILDS:
        for name, pod in pod_specs(build(target)):
            volumes = {v["name"]: v for v in pod.get("volumes") or []}
            for container in containers(pod):
                for mount in container.get("volumeMounts") or []:
                    assert mount["name"] in volumes, (target, name, mount)
                    volume = volumes[mount["name"]]
                    writable = not mount.get("readOnly", False)
                    if writable:
                        assert "emptyDir" in volume, (target, name, mount)
                    if mount["mountPath"] == "/tmp":
                        assert "emptyDir" in volume and writable
    pod = _pod(build("base"))
    tmp = next(m for m in _container(build("base"))["volumeMounts"] if m["mountPath"] == "/tmp")
    assert next(v for v in pod["volumes"] if v["name"] == tmp["name"])["emptyDir"]["sizeLimit"]


def test_the_container_reads_the_paths_the_image_configures(base: list[dict[str, Any]]) -> None:
    """Config, policies and TLS are mounted where the image's ENV points; the Secret is netguard-tls."""
    env = final_stage().env
    mounts = {m["mountPath"]: m for m in _container(base)["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod(base)["volumes"]}
    assert mounts[env["NETGUARD_CONFIG"]]["subPath"] == "config.yaml"
    config_map = volumes[mounts[env["NETGUARD_CONFIG"]]["name"]]["configMap"]["name"]
    assert "config.yaml" in one(base, "ConfigMap", config_map)["data"]
    assert "projected" in volumes[mounts[env["NETGUARD_POLICIES_DIR"]]["name"]]
    tls_dir = str(Path(env["NETGUARD_TLS_CERT"]).parent)
    assert str(Path(env["NETGUARD_TLS_KEY"]).parent) == tls_dir
    secret = volumes[mounts[tls_dir]["name"]]["secret"]
    assert secret["secretName"] == "netguard-tls" and secret["defaultMode"] == 0o440
    assert _pod(base)["securityContext"]["fsGroup"] == _pod(base)["securityContext"]["runAsGroup"]
    # Every ConfigMap a pod reads is in the build (the TLS Secret is created by the operator or cert-manager).
    for target in BUILDS:
        docs = build(target)
        names = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
        for _, pod in pod_specs(docs):
            for volume in pod.get("volumes") or []:
                sources = [volume] if "configMap" in volume else (volume.get("projected") or {}).get("sources", [])
                refs = [s["configMap"]["name"] for s in sources if "configMap" in s]
                assert set(refs) <= names, (target, volume["name"])


def test_cert_manager_issues_the_names_the_api_server_calls_and_injects_the_ca() -> None:
    docs = build("overlays/cert-manager")
    service = one(docs, "Service", "netguard")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    serving = one(docs, "Certificate", "netguard-tls")
    assert serving["spec"]["dnsNames"] == [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    tls_volume = next(v for v in _pod(docs)["volumes"] if v["name"] == "tls")
    assert serving["spec"]["secretName"] == tls_volume["secret"]["secretName"]
    issuer = one(docs, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca = one(docs, "Certificate", issuer["spec"]["ca"]["secretName"])
    assert ca["spec"]["isCA"] is True
    one(docs, "Issuer", ca["spec"]["issuerRef"]["name"])
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        annotations = one(docs, kind, "netguard")["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == f"{namespace}/{serving['metadata']['name']}"


def test_the_opa_sidecar_is_local_only_and_netguard_points_at_it() -> None:
    docs = build("overlays/opa-sidecar")
    pod = _pod(docs)
    opa = next(c for c in pod["initContainers"] if c["name"] == "opa")
    assert opa["restartPolicy"] == "Always"  # a native sidecar: up before netguard starts, stopped after it
    assert "--addr=127.0.0.1:8181" in opa["args"] and "--ignore=.*" in opa["args"]
    diagnostic = next(a for a in opa["args"] if a.startswith("--diagnostic-addr="))
    diagnostic_port = int(diagnostic.rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in opa["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert opa[probe]["httpGet"]["path"] == "/health"
        assert ports[opa[probe]["httpGet"]["port"]] == diagnostic_port
    env = {e["name"]: e["value"] for e in _container(docs)["env"]}
    assert env["NETGUARD_ENGINE"] == "opa" and env["NETGUARD_OPA_URL"] == "http://127.0.0.1:8181"
    mount = next(m for m in opa["volumeMounts"] if m["mountPath"] == opa["args"][-1])
    assert mount["name"] == "opa-policies"
    config_map = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"]
    settings = config.from_mapping(yaml.safe_load(one(docs, "ConfigMap", config_map)["data"]["config.yaml"]))
    assert settings.engine.type == "opa" and settings.engine.opa.push_policies is False
    assert settings.engine.opa.url == env["NETGUARD_OPA_URL"]


def test_the_opa_overlay_configuration_differs_from_the_base_only_in_the_engine() -> None:
    base_doc = yaml.safe_load((BASE / "config.yaml").read_text())
    opa_doc = yaml.safe_load((DEPLOY / "overlays/opa-sidecar/config.yaml").read_text())
    assert {k: v for k, v in opa_doc.items() if k != "engine"} == {k: v for k, v in base_doc.items() if k != "engine"}
    assert opa_doc["engine"]["on_error"] == base_doc["engine"]["on_error"]


def test_the_audit_cronjob_writes_reports_the_apply_container_reads() -> None:
    docs = build("overlays/audit-cronjob")
    cronjob = one(docs, "CronJob", "netguard-audit")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (audit,), (apply,) = pod["initContainers"], pod["containers"]
    assert audit["command"] == ["netguard"]
    args = cli._parser().parse_args(audit["args"])  # arguments netguard really accepts
    assert (args.command, args.in_cluster, args.format) == ("audit", True, "policyreport")
    assert not args.from_paths
    report = str(args.output)
    assert apply["command"] == ["kubectl"] and apply["args"][:2] == ["apply", "--server-side"]
    assert apply["args"][apply["args"].index("-f") + 1] == report

    def mount_of(container: dict[str, Any]) -> str:
        return next(m["name"] for m in container["volumeMounts"] if report.startswith(m["mountPath"] + "/"))

    assert mount_of(audit) == mount_of(apply)
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mount_of(audit))
    # The audit judges with the webhook's configuration and policies.
    deployment_volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    audit_volumes = {v["name"]: v for v in pod["volumes"]}
    assert audit_volumes["policies"] == deployment_volumes["policies"]
    assert audit_volumes["config"] == deployment_volumes["config"]


def test_the_image_tag_in_deploy_matches_the_package_version() -> None:
    kustomization = load_yaml_documents(BASE / "kustomization.yaml")[0]
    (image,) = [i for i in kustomization["images"] if i["name"] == "netguard"]
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert version and image["newTag"] == version.group(1)
