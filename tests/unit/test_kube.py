"""webhook.cluster.kube: a live cluster read into an Inventory, against the stand-in API server
(tests/kube_standin.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.kube_standin import TOKEN, KubeStandIn, Objects, write_kubeconfig
from webhook import kinds
from webhook.cluster.api import PAGE_SIZE, ClusterError
from webhook.cluster.kube import NO_CILIUM, PODS_FORBIDDEN, load_inventory
from webhook.core.normalize import normalize
from webhook.offline.inventory import Namespace, Workload
from webhook.pki.certs import generate

StandInFactory = Callable[..., KubeStandIn]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client honours *_PROXY like kubectl; loopback test traffic must not go to a proxy."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_standin(tmp_path: Path) -> Iterator[StandInFactory]:
    started: list[KubeStandIn] = []

    def make(**options: Any) -> KubeStandIn:
        directory = tmp_path / f"standin-{len(started)}"
        directory.mkdir()
        started.append(KubeStandIn(directory, **options))
        return started[-1]

    yield make
    for standin in started:
        standin.stop()


@pytest.fixture
def standin(make_standin: StandInFactory) -> KubeStandIn:
    return make_standin()


def _load(standin: KubeStandIn, **options: Any) -> Any:
    return load_inventory(str(standin.kubeconfig), **options)


def test_namespaces_are_read_with_their_labels(standin: KubeStandIn) -> None:
    inventory = _load(standin)
    assert inventory.namespaces == (
        Namespace("default", {"kubernetes.io/metadata.name": "default"}),
        Namespace("kube-system", {"kubernetes.io/metadata.name": "kube-system"}),
        Namespace("team-a", {"kubernetes.io/metadata.name": "team-a", "team": "a", "tier": "frontend"}),
        Namespace("team-b", {"kubernetes.io/metadata.name": "team-b", "team": "b"}),
    )


def test_policies_of_all_three_kinds_are_read_with_api_version_and_kind_filled_in(standin: KubeStandIn) -> None:
    inventory = _load(standin)
    assert [(d.index, d.source, d.obj["apiVersion"], d.obj["kind"], d.line) for d in inventory.policies] == [
        (0, "cluster:NetworkPolicy/team-a/default-deny", "networking.k8s.io/v1", "NetworkPolicy", 0),
        (1, "cluster:NetworkPolicy/team-a/web", "networking.k8s.io/v1", "NetworkPolicy", 0),
        (2, "cluster:NetworkPolicy/team-b/allow-dns", "networking.k8s.io/v1", "NetworkPolicy", 0),
        (3, "cluster:CiliumNetworkPolicy/team-b/api-egress", "cilium.io/v2", "CiliumNetworkPolicy", 0),
        (4, "cluster:CiliumClusterwideNetworkPolicy/deny-metadata", "cilium.io/v2",
         "CiliumClusterwideNetworkPolicy", 0),
    ]
    web = inventory.policies[1].obj
    # The API's own JSON, not the client's models: camelCase keys, nothing renamed or dropped.
    assert web["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    assert web["metadata"]["creationTimestamp"] == "2025-03-02T08:40:13Z"
    assert inventory.policies[3].obj["spec"]["egress"][0]["toFQDNs"] == [{"matchName": "payments.example.com"}]
    assert all(d.positions == {} for d in inventory.policies)
    assert inventory.errors == ()


def test_every_policy_document_normalizes(standin: KubeStandIn) -> None:
    inventory = _load(standin)
    normalized = [normalize(d.obj) for d in inventory.policies]
    assert [(p.kind, p.namespace, p.name) for p in normalized] == [
        ("NetworkPolicy", "team-a", "default-deny"),
        ("NetworkPolicy", "team-a", "web"),
        ("NetworkPolicy", "team-b", "allow-dns"),
        ("CiliumNetworkPolicy", "team-b", "api-egress"),
        ("CiliumClusterwideNetworkPolicy", "", "deny-metadata"),
    ]


def test_calicos_networkpolicies_are_read_beside_the_kubernetes_ones(make_standin: StandInFactory) -> None:
    """Both groups serve networkpolicies: the reader keys them on plural.group and lists each at its own path."""
    calico = kinds.lookup("projectcalico.org", "NetworkPolicy")
    assert calico is not None
    web = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
           "metadata": {"name": "web", "namespace": "team-a", "resourceVersion": "7"},
           "spec": {"selector": "app == 'web'", "ingress": [{"action": "Allow"}]}}
    standin = make_standin(objects=Objects(policies={calico.resource: [web]}))
    inventory = _load(standin)
    assert [(d.source, d.obj["apiVersion"]) for d in inventory.policies if d.obj["kind"] == "NetworkPolicy"] == [
        ("cluster:NetworkPolicy/team-a/default-deny", "networking.k8s.io/v1"),
        ("cluster:NetworkPolicy/team-a/web", "networking.k8s.io/v1"),
        ("cluster:NetworkPolicy/team-b/allow-dns", "networking.k8s.io/v1"),
        ("cluster:NetworkPolicy.projectcalico.org/team-a/web", "projectcalico.org/v3"),
    ]
    assert len(standin.requests_to("/apis/projectcalico.org/v3/networkpolicies")) == 1


def test_the_source_names_the_context_and_the_server(standin: KubeStandIn) -> None:
    inventory = _load(standin)
    assert inventory.source == f"cluster standin ({standin.url})"


def test_every_list_is_paged_with_the_continue_token_the_server_returned(make_standin: StandInFactory) -> None:
    standin = make_standin(page_size=3)
    inventory = _load(standin)
    assert len(inventory.namespaces) == 4
    first, second = standin.requests_to("/api/v1/namespaces")
    assert first.query == {"limit": str(PAGE_SIZE)}
    assert second.query["limit"] == str(PAGE_SIZE)
    assert second.query["continue"]  # the token the first page carried, passed back unchanged
    pods = standin.requests_to("/api/v1/pods")
    assert len(pods) == 1 and inventory.workloads is not None and len(inventory.workloads) == 3
    assert len(standin.requests_to("/apis/networking.k8s.io/v1/networkpolicies")) == 1


def test_pages_of_one_item_still_yield_every_object_exactly_once(make_standin: StandInFactory) -> None:
    standin = make_standin(page_size=1)
    inventory = _load(standin)
    assert [n.name for n in inventory.namespaces] == ["default", "kube-system", "team-a", "team-b"]
    assert len(inventory.policies) == 5
    assert len(standin.requests_to("/apis/networking.k8s.io/v1/networkpolicies")) == 3
    tokens = [r.query.get("continue") for r in standin.requests_to("/api/v1/namespaces")]
    assert tokens[0] is None and len(set(tokens[1:])) == 3


def test_an_expired_continue_token_restarts_the_list_from_a_new_snapshot(make_standin: StandInFactory) -> None:
    standin = make_standin(page_size=2, expire_continue_once=True)
    inventory = _load(standin)
    assert [n.name for n in inventory.namespaces] == ["default", "kube-system", "team-a", "team-b"]
    assert [r.query.get("continue") is not None for r in standin.requests_to("/api/v1/namespaces")] == [
        False, True, False, True]


def test_a_server_that_repeats_its_continue_token_is_an_error_not_an_endless_loop(
        make_standin: StandInFactory) -> None:
    standin = make_standin(page_size=2, ignore_continue=True)
    with pytest.raises(ClusterError, match=r"/api/v1/namespaces returned the same continue token twice$"):
        _load(standin)
    assert len(standin.requests_to("/api/v1/namespaces")) == 2


def test_every_request_carries_the_kubeconfig_bearer_token(standin: KubeStandIn) -> None:
    _load(standin)
    assert len(standin.requests) >= 6
    assert {r.authorization for r in standin.requests} == {f"Bearer {TOKEN}"}


def test_without_the_optional_crds_only_built_in_policies_are_read_and_the_source_says_so(
        make_standin: StandInFactory) -> None:
    standin = make_standin(crds=False)  # no Cilium, nor any other optional kind of webhook/kinds
    inventory = _load(standin)
    assert {d.obj["kind"] for d in inventory.policies} == {"NetworkPolicy"}
    assert len(inventory.policies) == 3
    assert NO_CILIUM in inventory.source
    # Discovery only, once per version: where the policy kinds and CiliumCIDRGroups would be served.
    assert [r.path for r in standin.requests if r.path.startswith("/apis/cilium.io")] == [
        "/apis/cilium.io/v2", "/apis/cilium.io/v2alpha1"]
    # No CRD, no objects: what rules may name is known to be nothing, not "not read".
    assert inventory.address_sets == ()
    assert inventory.cidr_groups_known and inventory.network_sets_known


def test_cidr_groups_and_calico_network_sets_are_read_for_the_rules_that_name_them(
        make_standin: StandInFactory) -> None:
    ns_set = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet",
              "metadata": {"name": "partners", "namespace": "team-a", "labels": {"role": "partner"}},
              "spec": {"nets": ["198.51.100.0/24"]}}
    global_set = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                  "metadata": {"name": "everything", "labels": {"scope": "world"}}, "spec": {"nets": ["0.0.0.0/0"]}}
    standin = make_standin(objects=Objects(network_sets=[ns_set], global_network_sets=[global_set]))
    inventory = _load(standin)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in inventory.address_sets) == [
        ("CiliumCIDRGroup", "partner-vpn"), ("GlobalNetworkSet", "everything"), ("NetworkSet", "partners")]
    assert inventory.cidr_groups_known and inventory.network_sets_known
    assert inventory.source == f"cluster standin ({standin.url})"


@pytest.mark.parametrize(("resource", "what", "cidr_known", "sets_known"), [
    ("ciliumcidrgroups", "CiliumCIDRGroups", False, True),
    ("globalnetworksets", "Calico GlobalNetworkSets", True, False)])
def test_address_lists_the_audit_may_not_read_are_said_not_judged_and_the_audit_goes_on(
        make_standin: StandInFactory, resource: str, what: str, cidr_known: bool, sets_known: bool) -> None:
    standin = make_standin(forbidden={resource})
    inventory = _load(standin)
    assert (inventory.cidr_groups_known, inventory.network_sets_known) == (cidr_known, sets_known)
    assert inventory.source == (f"cluster standin ({standin.url}; not allowed to list {what}: references to "
                                "them not judged)")
    assert len(inventory.policies) == 5


def test_pods_become_one_workload_each_with_their_labels(standin: KubeStandIn) -> None:
    inventory = _load(standin)
    assert inventory.workloads == (
        Workload("kube-system", "Pod", "coredns-7db6d8ff4d-5xk2p", {"k8s-app": "kube-dns",
                                                                    "pod-template-hash": "7db6d8ff4d"}),
        Workload("team-a", "Pod", "web-6b8f9c7d5-q7w2e", {"app": "web", "pod-template-hash": "6b8f9c7d5"}),
        Workload("team-b", "Pod", "api-5f7d8c9b6-m3n4p", {"app": "api", "pod-template-hash": "5f7d8c9b6"}),
    )


def test_forbidden_pods_leave_workloads_unavailable_instead_of_failing(make_standin: StandInFactory) -> None:
    standin = make_standin(forbidden={"pods"})
    inventory = _load(standin)
    assert inventory.workloads is None
    assert inventory.source == f"cluster standin ({standin.url}; {PODS_FORBIDDEN})"
    assert len(inventory.policies) == 5
    assert len(standin.requests_to("/api/v1/pods")) == 1


def test_workloads_are_not_listed_when_not_wanted(standin: KubeStandIn) -> None:
    inventory = _load(standin, include_workloads=False)
    assert inventory.workloads is None
    assert standin.requests_to("/api/v1/pods") == []


@pytest.mark.parametrize(("resource", "what"), [("namespaces", "namespaces"),
                                                ("networkpolicies", "NetworkPolicies"),
                                                ("ciliumnetworkpolicies", "CiliumNetworkPolicies")])
def test_forbidden_namespaces_or_policies_stop_the_audit_with_the_permission_it_needs(
        make_standin: StandInFactory, resource: str, what: str) -> None:
    standin = make_standin(forbidden={resource})
    with pytest.raises(ClusterError) as caught:
        _load(standin)
    message = str(caught.value)
    assert message.startswith(f"not allowed to list {what} (GET {standin.url}/")
    assert f'cannot list resource "{resource}"' in message  # the API server's own explanation
    assert f"needs cluster-wide list on {what}" in message


def test_a_refused_connection_raises_cluster_error_naming_the_url(standin: KubeStandIn) -> None:
    standin.stop()  # the kubeconfig now points at a port nobody listens on
    with pytest.raises(ClusterError) as caught:
        _load(standin)
    assert str(caught.value) == (f"cannot reach the API server at {standin.url} "
                                 f"(GET {standin.url}/api/v1/namespaces): Connection refused")


def test_a_rejected_token_raises_cluster_error_about_the_credentials(standin: KubeStandIn, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "wrong-token", standin.url, standin.ca_pem, token="expired")
    with pytest.raises(ClusterError, match=r"^the API server at https://127\.0\.0\.1:\d+ rejected the credentials "
                                           r"\(401 Unauthorized\) listing namespaces .*: Unauthorized; check"):
        load_inventory(str(kubeconfig))


def test_a_server_certificate_from_another_ca_raises_cluster_error_about_tls(standin: KubeStandIn,
                                                                               tmp_path: Path) -> None:
    other_ca = generate("kubernetes", "default", tmp_path / "other").ca_cert.read_bytes()
    kubeconfig = write_kubeconfig(tmp_path / "other-ca", standin.url, other_ca)
    with pytest.raises(ClusterError) as caught:
        load_inventory(str(kubeconfig))
    message = str(caught.value)
    assert message.startswith(f"cannot reach the API server at {standin.url} (GET {standin.url}/api/v1/namespaces)")
    assert "CERTIFICATE_VERIFY_FAILED" in message and "certificate-authority" in message
    assert standin.requests == []


def test_a_server_that_never_answers_fails_after_the_timeout(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never speaks TLS
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, None)
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"^cannot reach the API server at .* no answer within 0\.3s$"):
            load_inventory(str(kubeconfig), timeout_seconds=0.3)
    assert time.monotonic() - started < 2.5  # one timeout per attempt, not several reads


def test_a_missing_kubeconfig_raises_cluster_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"^cannot load the kubeconfig .*missing: "):
        load_inventory(str(tmp_path / "missing"))


def test_an_unknown_context_raises_cluster_error(standin: KubeStandIn) -> None:
    with pytest.raises(ClusterError, match=r"cannot load the kubeconfig .*prod"):
        _load(standin, context="prod")


def test_loading_leaves_the_global_client_configuration_alone(standin: KubeStandIn) -> None:
    before = kubernetes.client.Configuration.get_default_copy().host
    _load(standin)
    assert kubernetes.client.Configuration.get_default_copy().host == before != standin.url



def test_in_cluster_the_service_account_token_and_ca_are_used(standin: KubeStandIn, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "ca.crt").write_bytes(standin.ca_pem)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", standin.url.rsplit(":", 1)[1])
    inventory = load_inventory(in_cluster=True)
    assert inventory.source == f"cluster in-cluster ({standin.url})"
    assert len(inventory.policies) == 5
    # The Python client's in-cluster loader writes the scheme in lower case; the API server accepts either.
    assert {r.authorization for r in standin.requests} == {f"bearer {TOKEN}"}


def test_in_cluster_outside_a_pod_raises_cluster_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match=r"^cannot load the in-cluster service account: Service host/port"):
        load_inventory(in_cluster=True)
