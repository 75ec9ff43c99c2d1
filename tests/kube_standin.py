"""A stand-in Kubernetes API server for the tests of webhook/cluster/kube.py.

No real API server (kind, k3s, envtest) can run on this machine, so this is NOT kube-apiserver. It
serves, over HTTPS on 127.0.0.1 with a CA from webhook.pki.certs.generate, the few read-only endpoints
that `netguard audit` uses, with recorded objects written the way the API server writes them:

  GET /api, /apis, /apis/{group}/{version}      discovery (APIVersions, APIGroupList, APIResourceList) of
                                                 every group version a registered policy kind is in, and of
                                                 cilium.io/v2alpha1 (recorded entries for cilium.io)
  GET /api/v1/namespaces                         NamespaceList
  GET the collection path of every policy kind of webhook/kinds, all namespaces, from Objects.policies:
      /apis/networking.k8s.io/v1/networkpolicies NetworkPolicyList
      /apis/cilium.io/v2/ciliumnetworkpolicies   CiliumNetworkPolicyList
      /apis/cilium.io/v2/ciliumclusterwidenetworkpolicies
                                                 (a kind registered later is served the same way, empty
                                                 unless a test gives it objects)
  GET /apis/cilium.io/{v2,v2alpha1}/ciliumcidrgroups
                                                 CiliumCIDRGroupList, at the versions in
                                                 `cidr_group_versions` (both by default, as Cilium
                                                 1.18 serves it; ("v2alpha1",) for Cilium 1.14-1.17;
                                                 () for a Cilium without the CRD)
  GET /apis/projectcalico.org/v3/{networksets,globalnetworksets}
                                                 NetworkSetList (all namespaces), GlobalNetworkSetList, from
                                                 Objects.network_sets / .global_network_sets (empty by
                                                 default), served with the CRDs as Calico's kinds are
  GET /api/v1/pods                               PodList (all namespaces); with `Accept: application/json;
                                                 as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (the
                                                 metadata API, any collection) a PartialObjectMetadataList:
                                                 metadata only, as the API server answers it. Resources in
                                                 `metadata_only` refuse a full list with 403 (a test's
                                                 proof that only metadata was asked for: the real server
                                                 has no such switch)
  GET, PATCH /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}
  GET, PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}
                                                 `netguard certs install --cluster`: objects from
                                                 Objects.webhook_configurations; PATCH takes only
                                                 application/json-patch+json (415 otherwise), applies
                                                 it with jsonpatch (a failed `test` is 422, as on the
                                                 real server) and is recorded in `patches`

For `netguard doctor` (webhook/cluster/doctor.py), from Objects.services, .secrets and .endpoint_slices (empty
by default):

  GET /api/v1/namespaces/{ns}/services/{name}    Service (404 NotFound when absent)
  GET /api/v1/namespaces/{ns}/secrets/{name}     Secret (403 when "secrets" is in `forbidden`)
  GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io/service-name=S
                                                 EndpointSliceList (only that equality selector)
  POST /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies?dryRun=All
                                                 a dry-run create (anything else is refused: the stand-in
                                                 stores nothing). Admission as the API server runs it:
                                                 every stored validating webhook whose rules cover
                                                 networkpolicies CREATE and whose namespaceSelector
                                                 selects the namespace's labels is called through
                                                 `admission` (a callable taking the AdmissionReview and
                                                 returning the answer, e.g. netguard's /validate through
                                                 Flask's test client; None: unreachable). A denial is a
                                                 403 "admission webhook ... denied the request: ...",
                                                 warnings become Warning headers, an unreachable webhook
                                                 is a 500 "failed calling webhook" under failurePolicy
                                                 Fail and skipped under Ignore.

As on a real server: lists carry kind/apiVersion and metadata.resourceVersion, built-in items carry
no apiVersion/kind of their own (custom resources do), `limit` pages with an opaque `continue`
token and metadata.remainingItemCount, errors are `Status` objects (401 without the bearer token,
403 Forbidden for resources listed in `forbidden`, 404 NotFound for unknown paths, including
every path of a group that only serves optional CRDs (cilium.io, and the group of any kind whose
`optional_crd` is set) when `crds=False`, 410 Expired for a stale continue token).

So it tests kube.py's use of the official client (auth, TLS, paging, error mapping, raw JSON), not
the API server's own semantics (no selectors, RBAC evaluation or defaulting).

Watches (for the webhook's cluster view): `?watch=true` on a collection streams chunked JSON lines
`{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}` after the given resourceVersion
(without one: synthetic ADDED events for every object first), until `timeoutSeconds` ends the
stream cleanly. One resourceVersion counter for everything, as etcd has. The test drives it:
`push()` changes an object and sends the event, `bookmark()` sends a BOOKMARK to open watches,
`compact()` forgets the history so older resourceVersions get a 410 Expired ERROR event,
`drop_watches()` cuts open watch connections (abruptly, or by ending the chunked stream), and
`refuse = True` cuts every new connection before any answer (an API server gone away).

`page_size` caps every page below the client's `limit` (a server may return fewer items than
asked), so paging is exercised with a handful of objects. `expire_continue_once` answers the
first request carrying a continue token with 410, as after an etcd compaction; `ignore_continue`
serves the first page again and again, as a broken proxy might.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import jsonpatch
import jsonpointer
import yaml
from flask import Flask, Response, request
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from webhook import kinds
from webhook.core.reviews import make_review
from webhook.pki.certs import generate

TOKEN = "standin-token-9f3c1e"  # the bearer token the stand-in accepts and its kubeconfig carries
CONTEXT = "standin"
USER = "system:serviceaccount:netguard:netguard-audit"
RESOURCE_VERSION = "48213"

# -- recorded objects (from a kind cluster with Cilium 1.16; uids and timestamps kept, managedFields dropped) --

NAMESPACES: list[dict[str, Any]] = [
    {"metadata": {"name": "default", "uid": "0b0a7c4e-5d52-4b83-9e1b-2f0b1c7d9a11", "resourceVersion": "41",
                  "creationTimestamp": "2025-03-02T08:14:05Z", "labels": {"kubernetes.io/metadata.name": "default"}},
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    {"metadata": {"name": "kube-system", "uid": "5c1e3b2a-6f0d-4e55-a3f7-1d2e9b8c4f02", "resourceVersion": "11",
                  "creationTimestamp": "2025-03-02T08:14:03Z",
                  "labels": {"kubernetes.io/metadata.name": "kube-system"}},
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    {"metadata": {"name": "team-a", "uid": "9e4f1d6c-2b7a-4c3e-8f5d-6a1b2c3d4e5f", "resourceVersion": "1874",
                  "creationTimestamp": "2025-03-02T08:31:40Z",
                  "labels": {"kubernetes.io/metadata.name": "team-a", "team": "a", "tier": "frontend"},
                  "annotations": {"netguard.io/owner": "team-a@example.com"}},
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    {"metadata": {"name": "team-b", "uid": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", "resourceVersion": "1880",
                  "creationTimestamp": "2025-03-02T08:31:41Z",
                  "labels": {"kubernetes.io/metadata.name": "team-b", "team": "b"}},
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
]

# As stored: the API server has defaulted policyTypes and protocol.
NETWORK_POLICIES: list[dict[str, Any]] = [
    {"metadata": {"name": "default-deny", "namespace": "team-a", "uid": "3a9d2c4b-8e1f-4a6d-b7c5-0e2f4a6c8d10",
                  "resourceVersion": "2210", "generation": 1, "creationTimestamp": "2025-03-02T08:40:12Z"},
     "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    {"metadata": {"name": "web", "namespace": "team-a", "uid": "7b6c5d4e-3f2a-4b1c-9d8e-7f6a5b4c3d2e",
                  "resourceVersion": "2214", "generation": 2, "creationTimestamp": "2025-03-02T08:40:13Z",
                  "labels": {"app.kubernetes.io/part-of": "shop"}},
     "spec": {"podSelector": {"matchLabels": {"app": "web"}},
              "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                           "ports": [{"protocol": "TCP", "port": 8080}]}],
              "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}},
                                  "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}}],
                          "ports": [{"protocol": "TCP", "port": 8443}]}],
              "policyTypes": ["Ingress", "Egress"]}},
    {"metadata": {"name": "allow-dns", "namespace": "team-b", "uid": "c4d3e2f1-0a9b-4c8d-8e7f-6a5b4c3d2e1f",
                  "resourceVersion": "2230", "generation": 1, "creationTimestamp": "2025-03-02T08:41:02Z"},
     "spec": {"podSelector": {},
              "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                  "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                          "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
              "policyTypes": ["Egress"]}},
]

# Custom resources are stored whole: their list items keep apiVersion and kind.
CILIUM_NETWORK_POLICIES: list[dict[str, Any]] = [
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "api-egress", "namespace": "team-b", "uid": "e1d2c3b4-a596-4877-9685-74a3b2c1d0e9",
                  "resourceVersion": "2301", "generation": 1, "creationTimestamp": "2025-03-02T08:45:30Z"},
     "spec": {"endpointSelector": {"matchLabels": {"app": "api"}},
              "egress": [{"toFQDNs": [{"matchName": "payments.example.com"}],
                          "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]},
     "status": {"conditions": [{"lastTransitionTime": "2025-03-02T08:45:30Z", "message": "Policy validation succeeded",
                                "status": "True", "type": "Valid"}]}},
]

CILIUM_CLUSTERWIDE_NETWORK_POLICIES: list[dict[str, Any]] = [
    {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
     "metadata": {"name": "deny-metadata", "uid": "a0b1c2d3-e4f5-4607-8819-2a3b4c5d6e7f", "resourceVersion": "2290",
                  "generation": 1, "creationTimestamp": "2025-03-02T08:44:00Z",
                  "labels": {"netguard.io/baseline": "true"}},
     "spec": {"endpointSelector": {},
              "egressDeny": [{"toCIDR": ["169.254.169.254/32"]}]},
     "status": {"conditions": [{"lastTransitionTime": "2025-03-02T08:44:00Z", "message": "Policy validation succeeded",
                                "status": "True", "type": "Valid"}]}},
]


# Not recorded: written in the shape the API server returns (Cilium 1.18 CRD, cluster-scoped, spec.externalCIDRs).
CILIUM_CIDR_GROUPS: list[dict[str, Any]] = [
    {"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
     "metadata": {"name": "partner-vpn", "uid": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", "resourceVersion": "2280",
                  "generation": 1, "creationTimestamp": "2025-03-02T08:43:10Z", "labels": {"partner": "acme"}},
     "spec": {"externalCIDRs": ["203.0.113.0/24", "2001:db8:1::/48"]}},
]


def _pod(namespace: str, name: str, labels: dict[str, str], owner: tuple[str, str], image: str, uid: str,
         ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generateName": name.rsplit("-", 1)[0] + "-", "namespace": namespace, "uid": uid,
                     "resourceVersion": "3012", "creationTimestamp": "2025-03-02T09:02:11Z", "labels": labels,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                          "uid": "6d5c4b3a-2918-4706-b5a4-93827160f5e4", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": "main", "image": image, "resources": {},
                                 "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "serviceAccountName": "default", "nodeName": "kind-worker", "schedulerName": "default-scheduler",
                 "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {"phase": "Running", "hostIP": "172.18.0.3", "podIP": ip, "podIPs": [{"ip": ip}],
                   "startTime": "2025-03-02T09:02:11Z", "qosClass": "BestEffort"},
    }


PODS: list[dict[str, Any]] = [
    _pod("kube-system", "coredns-7db6d8ff4d-5xk2p", {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
         ("ReplicaSet", "coredns-7db6d8ff4d"), "registry.k8s.io/coredns/coredns:v1.11.1",
         "d3c2b1a0-9f8e-4d7c-a6b5-c4d3e2f1a0b9", "10.244.0.3"),
    _pod("team-a", "web-6b8f9c7d5-q7w2e", {"app": "web", "pod-template-hash": "6b8f9c7d5"},
         ("ReplicaSet", "web-6b8f9c7d5"), "nginx:1.27", "f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f", "10.244.1.7"),
    _pod("team-b", "api-5f7d8c9b6-m3n4p", {"app": "api", "pod-template-hash": "5f7d8c9b6"},
         ("ReplicaSet", "api-5f7d8c9b6"), "ghcr.io/example/api:2.3.1", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
         "10.244.1.9"),
]


@dataclass(frozen=True)
class _Collection:
    list_kind: str
    api_version: str
    group: str  # for Forbidden messages; "" is the core group
    resource: str  # the plural, for messages
    items: tuple[dict[str, Any], ...]
    custom: bool = False  # a custom resource: items keep apiVersion and kind; watch events carry the version watched
    # What tests and the cluster view name it by: a policy kind's `resource` (plural.group: two groups serve
    # networkpolicies); the plural for the others.
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.resource)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    accept: str | None = None


@dataclass(frozen=True)
class RecordedPatch:
    path: str
    content_type: str
    query: dict[str, str]
    body: Any  # the decoded JSON Patch


CILIUM_GROUP = "cilium.io"
CALICO_GROUP = "projectcalico.org"  # its NetworkSets and GlobalNetworkSets, beside the Calico policy kinds
VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")  # of a served resource
RECORDED_DISCOVERY_VERSIONS = ("v2", "v2alpha1")  # cilium.io, the preferred first
# Recorded discovery entries (Cilium 1.16) of cilium.io; ciliumcidrgroups is added at `cidr_group_versions`, and a
# registered kind without an entry here gets a plain one.
RECORDED_DISCOVERY: dict[str, tuple[dict[str, Any], ...]] = {
    "cilium.io/v2": (
        {"name": "ciliumclusterwidenetworkpolicies", "singularName": "ciliumclusterwidenetworkpolicy",
         "namespaced": False, "kind": "CiliumClusterwideNetworkPolicy", "verbs": list(VERBS),
         "shortNames": ["ccnp"], "categories": ["cilium", "ciliumpolicy"], "storageVersionHash": "mFVcv0CMqkU="},
        {"name": "ciliumclusterwidenetworkpolicies/status", "singularName": "", "namespaced": False,
         "kind": "CiliumClusterwideNetworkPolicy", "verbs": ["get", "patch", "update"]},
        {"name": "ciliumnetworkpolicies", "singularName": "ciliumnetworkpolicy", "namespaced": True,
         "kind": "CiliumNetworkPolicy", "verbs": list(VERBS), "shortNames": ["cnp", "ciliumnp"],
         "categories": ["cilium", "ciliumpolicy"], "storageVersionHash": "Zq9dVrrYa7Y="},
        {"name": "ciliumnetworkpolicies/status", "singularName": "", "namespaced": True,
         "kind": "CiliumNetworkPolicy", "verbs": ["get", "patch", "update"]},
    ),
    "cilium.io/v2alpha1": (
        {"name": "ciliumloadbalancerippools", "singularName": "ciliumloadbalancerippool", "namespaced": False,
         "kind": "CiliumLoadBalancerIPPool", "verbs": list(VERBS), "shortNames": ["ippools", "ippool", "lbippool"],
         "categories": ["cilium"]},
    ),
}

WEBHOOK_CONFIGURATION_KINDS = {"validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
                               "mutatingwebhookconfigurations": "MutatingWebhookConfiguration"}


@dataclass
class Objects:
    """What the stand-in serves; defaults are the recorded objects above (deep-copied per stand-in)."""

    namespaces: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(NAMESPACES))
    network_policies: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(NETWORK_POLICIES))
    cilium_network_policies: list[dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(CILIUM_NETWORK_POLICIES))
    cilium_clusterwide_network_policies: list[dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(CILIUM_CLUSTERWIDE_NETWORK_POLICIES))
    pods: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(PODS))
    cilium_cidr_groups: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(CILIUM_CIDR_GROUPS))
    # Calico's projectcalico.org/v3 NetworkSets (namespaced) and GlobalNetworkSets: written, not recorded.
    network_sets: list[dict[str, Any]] = field(default_factory=list)
    global_network_sets: list[dict[str, Any]] = field(default_factory=list)
    # plural (validatingwebhookconfigurations, mutatingwebhookconfigurations) -> name -> object as applied
    webhook_configurations: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # netguard doctor: the webhook's Service, its serving certificate Secret and the Service's EndpointSlices
    services: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    endpoint_slices: list[dict[str, Any]] = field(default_factory=list)
    # Every policy kind of webhook/kinds by resource (plural.group, `PolicyKind.resource`): what the server lists and
    # watches. The three recorded kinds
    # are the lists above (the same objects); a kind without a field of its own is served empty unless given here.
    policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        recorded = {kinds.NETWORK_POLICY.resource: self.network_policies,
                    kinds.CILIUM_NETWORK_POLICY.resource: self.cilium_network_policies,
                    kinds.CILIUM_CLUSTERWIDE_NETWORK_POLICY.resource: self.cilium_clusterwide_network_policies}
        self.policies = {k.resource: self.policies.get(k.resource, recorded.get(k.resource, [])) for k in kinds.ALL}


def _key(item: Mapping[str, Any]) -> str:
    """etcd key order: namespace, then name; what the server pages by."""
    meta = item.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details if details is not None else {}, "code": code}
    return _json(body, code)


def _json(body: Any, status: int = 200) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")) + "\n", status=status, mimetype="application/json")
    response.headers["Audit-Id"] = str(uuid.uuid4())
    response.headers["Cache-Control"] = "no-cache, private"
    return response


def _continue_token(start_key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(RESOURCE_VERSION), "start": start_key + "\x00"},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> str | None:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return None
    start = raw.get("start") if isinstance(raw, dict) else None
    return start if isinstance(start, str) else None


class _TLSPerConnection(ThreadedWSGIServer):
    """werkzeug's threaded server, with each TLS handshake done in its connection's own thread. werkzeug wraps the
    listening socket, so every handshake runs in the one accepting thread: a client that connects and stalls
    holds up every other connection. CI once saw a client's handshake fail while watchers were starting (many
    connections at once); the API server does not serialize handshakes either."""

    HANDSHAKE_SECONDS = 10.0

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.ssl_context
        assert isinstance(context, ssl.SSLContext)
        request.settimeout(self.HANDSHAKE_SECONDS)  # a client that never finishes its hello frees the thread
        try:
            tls = context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # a failed handshake is the client's to report
        tls.settimeout(None)  # then blocking, as werkzeug expects (watch streams are long)
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):  # the plain socket was handed to TLS (detached) when the handshake ran
            super().shutdown_request(request)


class _QuietHandler(WSGIRequestHandler):
    """No access log lines in the test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def write_kubeconfig(path: Path, server: str, ca_pem: bytes | None, token: str = TOKEN,
                     context: str = CONTEXT) -> Path:
    """A kubeconfig like `kind get kubeconfig` writes, with a bearer-token user instead of client certs."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": "netguard-audit", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "netguard-audit"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class KubeStandIn:
    """Serve the stand-in on https://127.0.0.1:<free port> from a background thread until stop().

    `directory` receives the PKI (pki/) and `kubeconfig`, pointing at this server with TOKEN.
    Options may be changed while running (they are read per request).
    """

    def __init__(self, directory: Path, *, crds: bool = True, forbidden: Collection[str] = (),
                 page_size: int | None = None, expire_continue_once: bool = False, ignore_continue: bool = False,
                 objects: Objects | None = None, cidr_group_versions: Sequence[str] = ("v2", "v2alpha1"),
                 metadata_only: Collection[str] = ()) -> None:
        # False: a cluster without the optional CRDs (no Cilium, nor any other kind's whose `optional_crd` is set):
        # their groups are not served at all.
        self.crds = crds
        self.cidr_group_versions = tuple(cidr_group_versions)  # where ciliumcidrgroups is served (with the CRDs)
        self.forbidden = frozenset(forbidden)  # resources answered with 403, e.g. {"pods"}
        self.metadata_only = frozenset(metadata_only)  # resources whose full lists get 403 (metadata API only)
        self.page_size = page_size
        self.expire_continue_once = expire_continue_once
        self.ignore_continue = ignore_continue  # a broken server/proxy that always sends the first page
        self.objects = objects or Objects()
        self.requests: list[RecordedRequest] = []
        self.patches: list[RecordedPatch] = []
        self._lock = threading.Lock()
        self._stopped = False
        self.refuse = False  # cut every new connection before any answer
        # The validating webhook's endpoint for dry-run creates: AdmissionReview in, AdmissionReview out;
        # None: the webhook cannot be reached. `reviews` records what was sent to it.
        self.admission: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.reviews: list[dict[str, Any]] = []
        self._events = threading.Condition()  # guards the watch state below
        self._version = int(RESOURCE_VERSION)
        self._seq = 0
        self._history: list[tuple[int, int, str, dict[str, Any]]] = []  # (seq, resourceVersion, resource, event)
        self._compacted = 0  # resourceVersions below this are gone: watches from them get 410
        self._drops = 0  # incremented by drop_watches(); open streams end when it changes
        self._drop_abrupt = True
        self.watches_open = 0
        self.watches_served = 0
        pki = generate("kubernetes", "default", directory / "pki")
        self.ca_pem = pki.ca_cert.read_bytes()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert, pki.key)
        self._server = _TLSPerConnection("127.0.0.1", 0, self._app(), handler=_QuietHandler)
        self._server.ssl_context = context  # werkzeug reads it for wsgi.url_scheme; the handshakes are ours
        self.url = f"https://127.0.0.1:{self._server.server_port}"
        self.kubeconfig = write_kubeconfig(directory / "kubeconfig", self.url, self.ca_pem)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="kube-standin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent); later connections are refused."""
        if self._stopped:
            return
        self._stopped = True
        with self._events:
            self._events.notify_all()  # open watch streams end
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> KubeStandIn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- the API ---------------------------------------------------------------------------

    def _collections(self) -> dict[str, _Collection]:
        o = self.objects
        return {
            "/api/v1/namespaces": _Collection("NamespaceList", "v1", "", "namespaces", tuple(o.namespaces)),
            # A CRD's objects are custom resources; the built-in kinds are the ones no cluster can lack.
            **{k.collection_path: _Collection(f"{k.kind}List", k.api_version, k.group, k.plural,
                                              tuple(o.policies[k.resource]), custom=k.optional_crd, key=k.resource)
               for k in kinds.ALL},
            "/api/v1/pods": _Collection("PodList", "v1", "", "pods", tuple(o.pods)),
            **{f"/apis/{CILIUM_GROUP}/{v}/ciliumcidrgroups": _Collection(
                "CiliumCIDRGroupList", f"{CILIUM_GROUP}/{v}", CILIUM_GROUP, "ciliumcidrgroups",
                tuple(o.cilium_cidr_groups), custom=True) for v in self.cidr_group_versions},
            **{f"/apis/{CALICO_GROUP}/v3/{plural}": _Collection(
                f"{kind}List", f"{CALICO_GROUP}/v3", CALICO_GROUP, plural, tuple(items), custom=True,
                key=f"{plural}.{CALICO_GROUP}")
               for plural, kind, items in (("networksets", "NetworkSet", o.network_sets),
                                           ("globalnetworksets", "GlobalNetworkSet", o.global_network_sets))},
        }

    def _versions(self) -> dict[str, list[str]]:
        """API group -> the versions it serves, the preferred first: the groups of the registered kinds (those
        of optional CRDs only with `crds`) and, with the CRDs, cilium.io's recorded versions."""
        served: dict[str, list[str]] = {}
        wanted = [(k.group, k.version) for k in kinds.ALL if k.group and (self.crds or not k.optional_crd)]
        for group, version in wanted + ([(CILIUM_GROUP, v) for v in RECORDED_DISCOVERY_VERSIONS] if self.crds else []):
            versions = served.setdefault(group, [])
            versions += [] if version in versions else [version]
        return served

    def _not_installed(self, path: str) -> bool:
        """A path in a group that only optional CRDs bring (without `crds`)."""
        parts = path.split("/")
        return (not self.crds and len(parts) > 2 and parts[1] == "apis"
                and parts[2] in {CILIUM_GROUP, *(k.group for k in kinds.ALL if k.optional_crd)}
                and parts[2] not in {k.group for k in kinds.ALL if not k.optional_crd})

    def _discovery(self, path: str) -> Any:
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}]}
        served = self._versions()
        if path == "/apis":
            groups = [{"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                       "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}
                      for group, versions in served.items()]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        group, _, version = path.removeprefix("/apis/").partition("/")
        if not path.startswith("/apis/") or version not in served.get(group, ()):
            return None
        group_version = f"{group}/{version}"
        resources = list(RECORDED_DISCOVERY.get(group_version, ()))
        names = {r["name"] for r in resources}
        # A registered kind without a recorded entry, written the way the API server lists a resource.
        resources += [{"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced, "kind": k.kind,
                       "verbs": list(VERBS)}
                      for k in kinds.ALL if k.api_version == group_version and k.plural not in names]
        if group == CILIUM_GROUP:
            resources += self._cidr_group_discovery(version)
        if group_version == f"{CALICO_GROUP}/v3":
            resources += [{"name": plural, "singularName": plural[:-1], "namespaced": plural == "networksets",
                           "kind": kind, "verbs": list(VERBS)}
                          for plural, kind in (("networksets", "NetworkSet"), ("globalnetworksets", "GlobalNetworkSet"))
                          if plural not in names]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    def _cidr_group_discovery(self, version: str) -> list[dict[str, Any]]:
        if version not in self.cidr_group_versions:
            return []
        return [{"name": "ciliumcidrgroups", "singularName": "ciliumcidrgroup", "namespaced": False,
                 "kind": "CiliumCIDRGroup", "verbs": list(VERBS), "shortNames": ["ccg"], "categories": ["cilium"]}]

    def _list(self, col: _Collection, query: Mapping[str, str], metadata: bool = False) -> Response:
        if {col.resource, col.key} & self.metadata_only and not metadata:
            return _status(403, "Forbidden", f'{col.resource} is forbidden: User "{USER}" cannot list the full '
                           f'objects of resource "{col.resource}" (stand-in: only the metadata API is allowed)',
                           {"kind": col.resource})
        if {col.resource, col.key} & self.forbidden:
            group = f' in API group "{col.group}"'
            details: dict[str, Any] = {"kind": col.resource}
            if col.group:
                details["group"] = col.group
            return _status(403, "Forbidden", f'{col.resource}{"." + col.group if col.group else ""} is forbidden: '
                           f'User "{USER}" cannot list resource "{col.resource}"{group} at the cluster scope',
                           details)
        items: Sequence[dict[str, Any]] = sorted(col.items, key=_key)
        token = None if self.ignore_continue else query.get("continue")
        if token:
            start = _decode_continue(token)
            if start is None:
                return _status(400, "BadRequest", "continue key is not valid: illegal base64 data")
            with self._lock:
                expire, self.expire_continue_once = self.expire_continue_once, False
            if expire:
                return _status(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter, or use the "
                               "continue token in this response to retrieve the remainder of the results. "
                               "Continuing with the provided token results in an inconsistent list - objects that "
                               "were created, modified, or deleted between the time the first chunk was returned "
                               "and now may show up in the list.")
            items = [i for i in items if _key(i) + "\x00" > start]
        limit = int(query.get("limit") or 0) or len(items)
        if self.page_size:
            limit = min(limit, self.page_size)
        page, rest = items[:limit], items[limit:]
        meta: dict[str, Any] = {"resourceVersion": self.resource_version}
        if rest:
            meta["continue"] = _continue_token(_key(page[-1]))
            meta["remainingItemCount"] = len(rest)
        out = []
        for item in page:
            item = copy.deepcopy(item)
            if metadata:  # the metadata API: each item is a PartialObjectMetadata, nothing but metadata
                item = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]}
            elif not col.custom:  # built-in types: the list says what its items are
                item.pop("apiVersion", None)
                item.pop("kind", None)
            out.append(item)
        if metadata:
            return _json({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                          "items": out})
        return _json({"kind": col.list_kind, "apiVersion": col.api_version, "metadata": meta, "items": out})

    def _app(self) -> Flask:
        app = Flask("kube-standin")

        @app.before_request
        def authenticate() -> Response | None:
            with self._lock:
                self.requests.append(RecordedRequest(request.method, request.path, request.args.to_dict(),
                                                     request.headers.get("Authorization"),
                                                     request.headers.get("Accept")))
            # kube-apiserver's bearer-token authenticator takes the scheme in any case.
            if self.refuse:
                return _cut(request.environ)
            scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or token != TOKEN:
                return _status(401, "Unauthorized", "Unauthorized")
            return None

        @app.get("/<path:path>")
        def get(path: str) -> Response:
            full = "/" + path
            if self._not_installed(full):
                return _status(404, "NotFound", "the server could not find the requested resource")
            discovery = self._discovery(full)
            if discovery is not None:
                return _json(discovery)
            col = self._collections().get(full)
            if col is None:
                return _status(404, "NotFound", "the server could not find the requested resource")
            if request.args.get("watch") in ("true", "1"):
                return self._watch(col, request.args.to_dict(), request.environ)
            return self._list(col, request.args.to_dict(), metadata=_wants_metadata(request.headers.get("Accept")))

        webhook_configuration = "/apis/admissionregistration.k8s.io/v1/<plural>/<name>"

        @app.get(webhook_configuration)
        def get_webhook_configuration(plural: str, name: str) -> Response:
            return self._webhook_configuration(plural, name, "get")

        @app.patch(webhook_configuration)
        def patch_webhook_configuration(plural: str, name: str) -> Response:
            return self._webhook_configuration(plural, name, "patch")

        @app.get("/api/v1/namespaces/<namespace>/<any(services, secrets):plural>/<name>")
        def get_namespaced(namespace: str, plural: str, name: str) -> Response:
            if plural in self.forbidden:
                return _status(403, "Forbidden", f'{plural} "{name}" is forbidden: User "{USER}" cannot get resource '
                               f'"{plural}" in API group "" in the namespace "{namespace}"',
                               {"name": name, "kind": plural})
            items = self.objects.services if plural == "services" else self.objects.secrets
            for item in items:
                meta = item.get("metadata") or {}
                if meta.get("namespace") == namespace and meta.get("name") == name:
                    kind = "Service" if plural == "services" else "Secret"
                    return _json({"kind": kind, "apiVersion": "v1", **copy.deepcopy(item)})
            return _status(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})

        @app.get("/apis/discovery.k8s.io/v1/namespaces/<namespace>/endpointslices")
        def list_endpoint_slices(namespace: str) -> Response:
            key, _, value = (request.args.get("labelSelector") or "").partition("=")
            items = [copy.deepcopy(i) for i in self.objects.endpoint_slices
                     if (i.get("metadata") or {}).get("namespace") == namespace
                     and (not key or ((i.get("metadata") or {}).get("labels") or {}).get(key) == value)]
            return _json({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                          "metadata": {"resourceVersion": self.resource_version}, "items": items})

        @app.post("/apis/networking.k8s.io/v1/namespaces/<namespace>/networkpolicies")
        def create_network_policy(namespace: str) -> Response:
            return self._dry_run_create(namespace)

        return app

    def _dry_run_create(self, namespace: str) -> Response:
        if request.args.get("dryRun") != "All":
            return _status(405, "MethodNotAllowed", "the stand-in only serves dry-run creates (dryRun=All)")
        obj = request.get_json(silent=True)
        if not isinstance(obj, dict):
            return _status(400, "BadRequest", "the body is not a JSON object")
        obj.setdefault("metadata", {})["namespace"] = namespace
        labels = next(((n["metadata"].get("labels") or {}) for n in self.objects.namespaces
                       if n["metadata"]["name"] == namespace), None)
        if labels is None:
            return _status(404, "NotFound", f'namespaces "{namespace}" not found')
        warnings: list[str] = []
        for configuration in list(self.objects.webhook_configurations.get("validatingwebhookconfigurations",
                                                                          {}).values()):
            for webhook in configuration.get("webhooks") or []:
                if not _covers_network_policy_create(webhook) or not _selects(webhook.get("namespaceSelector"),
                                                                              labels):
                    continue
                review = make_review(obj, username="kubernetes-admin", groups=("system:masters",
                                                                               "system:authenticated"),
                                     dry_run=True)
                self.reviews.append(review)
                answer = self.admission(review) if self.admission is not None else None
                if answer is None:
                    if webhook.get("failurePolicy", "Fail") == "Ignore":
                        continue
                    return _status(500, "InternalError", f'Internal error occurred: failed calling webhook '
                                   f'"{webhook["name"]}": failed to call webhook: Post "https://netguard.netguard.svc'
                                   f':443/validate?timeout={webhook.get("timeoutSeconds", 10)}s": dial tcp '
                                   '10.96.142.7:443: connect: connection refused')
                response = answer.get("response") or {}
                warnings += response.get("warnings") or []
                if not response.get("allowed"):
                    status = response.get("status") or {}
                    out = _status(int(status.get("code") or 403), "Forbidden",
                                  f'admission webhook "{webhook["name"]}" denied the request: '
                                  f'{status.get("message", "")}')
                    for warning in warnings:
                        out.headers.add("Warning", f'299 - "{warning}"')
                    return out
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2025-03-02T09:30:00Z")
        out = _json(obj, 201)
        for warning in warnings:
            out.headers.add("Warning", f'299 - "{warning}"')
        return out

    def _webhook_configuration(self, plural: str, name: str, verb: str) -> Response:
        group = "admissionregistration.k8s.io"
        details: dict[str, Any] = {"name": name, "group": group, "kind": plural}
        if plural not in WEBHOOK_CONFIGURATION_KINDS:
            return _status(404, "NotFound", "the server could not find the requested resource")
        if plural in self.forbidden:
            return _status(403, "Forbidden", f'{plural}.{group} "{name}" is forbidden: User "{USER}" cannot {verb} '
                           f'resource "{plural}" in API group "{group}" at the cluster scope', details)
        with self._lock:
            stored = self.objects.webhook_configurations.get(plural, {}).get(name)
            if stored is None:
                return _status(404, "NotFound", f'{plural}.{group} "{name}" not found', details)
            stored.setdefault("apiVersion", f"{group}/v1")
            stored.setdefault("kind", WEBHOOK_CONFIGURATION_KINDS[plural])
            meta = stored.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{plural}/{name}")))
            meta.setdefault("resourceVersion", RESOURCE_VERSION)
            meta.setdefault("generation", 1)
            meta.setdefault("creationTimestamp", "2025-03-02T08:20:00Z")
            if verb == "get":
                return _json(copy.deepcopy(stored))
            content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/json-patch+json":
                return _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: application/json-patch+json (stand-in), got "
                               f"{content_type!r}")
            body = request.get_json(silent=True)
            self.patches.append(RecordedPatch(request.path, content_type, request.args.to_dict(), body))
            try:
                patched = jsonpatch.apply_patch(stored, body)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as exc:
                return _status(422, "Invalid", str(exc))
            patched["metadata"]["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            if patched.get("webhooks") != stored.get("webhooks"):
                patched["metadata"]["generation"] = int(meta["generation"]) + 1
            self.objects.webhook_configurations[plural][name] = patched
            return _json(copy.deepcopy(patched))

    # -- watches ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        with self._events:
            return str(self._version)

    def _items_of(self, resource: str) -> list[dict[str, Any]]:
        lists = {"namespaces": self.objects.namespaces, **self.objects.policies,
                 "ciliumcidrgroups": self.objects.cilium_cidr_groups, "pods": self.objects.pods,
                 f"networksets.{CALICO_GROUP}": self.objects.network_sets,
                 f"globalnetworksets.{CALICO_GROUP}": self.objects.global_network_sets}
        return lists[resource]

    def _record(self, version: int, resource: str, event: dict[str, Any]) -> None:
        self._seq += 1
        self._history.append((self._seq, version, resource, event))

    def push(self, resource: str, event_type: str, obj: dict[str, Any]) -> str:
        """Store a change (ADDED/MODIFIED replace by namespace/name, DELETED removes) and send the event to
        open watches of `resource` (a collection's key: "namespaces", a policy kind's `resource`
        "networkpolicies.networking.k8s.io"); returns its resourceVersion."""
        assert event_type in ("ADDED", "MODIFIED", "DELETED"), event_type
        col = next(c for c in self._collections().values() if c.key == resource)
        obj = copy.deepcopy(obj)
        with self._events:
            self._version += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
            items = self._items_of(resource)
            items[:] = [i for i in items if _key(i) != _key(obj)]
            if event_type != "DELETED":
                items.append(obj)
            kind = col.list_kind.removesuffix("List")
            self._record(self._version, resource,
                         {"type": event_type, "object": {"apiVersion": col.api_version, "kind": kind, **obj}})
            self._events.notify_all()
            return str(self._version)

    def bookmark(self) -> None:
        """A BOOKMARK with the current resourceVersion to every open watch."""
        with self._events:
            for col in {c.key: c for c in self._collections().values()}.values():
                self._record(self._version, col.key, {"type": "BOOKMARK", "object": {
                    "kind": col.list_kind.removesuffix("List"), "apiVersion": col.api_version,
                    "metadata": {"resourceVersion": str(self._version)}}})
            self._events.notify_all()

    def compact(self) -> None:
        """Forget the history (etcd compaction): a watch from an older resourceVersion gets 410 Expired."""
        with self._events:
            self._history.clear()
            self._compacted = self._version
            self._events.notify_all()

    def drop_watches(self, abrupt: bool = True) -> None:
        """End every open watch: abruptly (the connection is cut mid-stream) or cleanly (the stream ends)."""
        with self._events:
            self._drops += 1
            self._drop_abrupt = abrupt
            self._events.notify_all()

    def wait_for_watches(self, count: int, timeout: float = 10.0) -> bool:
        """True once at least `count` watch streams are open."""
        deadline = time.monotonic() + timeout
        with self._events:
            while self.watches_open < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._events.wait(min(remaining, 0.05))
            return True

    def _watch(self, col: _Collection, query: Mapping[str, str], environ: Mapping[str, Any]) -> Response:
        if {col.resource, col.key} & self.forbidden:
            return _status(403, "Forbidden", f'{col.resource} is forbidden: User "{USER}" cannot watch resource '
                           f'"{col.resource}" at the cluster scope', {"kind": col.resource})
        since = query.get("resourceVersion") or ""
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        kind = col.list_kind.removesuffix("List")
        with self._events:
            if since and int(since) < self._compacted:
                gone = {"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f"too old resource version: {since} ({self._compacted})", "reason": "Expired",
                    "code": 410}}
                return Response(_line(gone), mimetype="application/json")
            generation = self._drops
            after = int(since) if since else self._version
            # Replay what happened after `since`, then follow: a cursor over the history's sequence.
            cursor = min((seq for seq, version, _, event in self._history
                          if version > after and event["type"] != "BOOKMARK"), default=self._seq + 1)
            initial = [] if since else [{"type": "ADDED", "object": {"apiVersion": col.api_version, "kind": kind,
                                                                      **copy.deepcopy(i)}}
                                        for i in sorted(self._items_of(col.key), key=_key)]
            self.watches_open += 1
            self.watches_served += 1
            self._events.notify_all()

        def stream() -> Iterator[str]:
            nonlocal cursor
            try:
                yield ""  # werkzeug sends the headers with the first item: answer at once, as the API server does
                for event in initial:
                    yield _line(event)
                while True:
                    with self._events:
                        pending = [e for seq, _, r, e in self._history if seq >= cursor and r == col.key]
                        cursor = self._seq + 1
                        dropped, abrupt = self._drops != generation, self._drop_abrupt
                        if not pending:
                            if dropped and abrupt:
                                _shut(environ)
                                raise ConnectionResetError("the stand-in dropped the watch")
                            if dropped or self._stopped or time.monotonic() >= deadline:
                                return
                            self._events.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                            continue
                    for event in pending:
                        if col.custom and event["type"] != "ERROR":  # served at the version watched, as converted
                            event = {**event, "object": {**event["object"], "apiVersion": col.api_version}}
                        yield _line(event)
            finally:
                with self._events:
                    self.watches_open -= 1
                    self._events.notify_all()

        return Response(stream(), mimetype="application/json")


def _covers_network_policy_create(webhook: Mapping[str, Any]) -> bool:
    return any("networking.k8s.io" in r.get("apiGroups", []) and "networkpolicies" in r.get("resources", [])
               and ("CREATE" in r.get("operations", []) or "*" in r.get("operations", []))
               for r in webhook.get("rules") or [])


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """A namespaceSelector applied to a namespace's labels (missing or empty: every namespace)."""
    if not isinstance(selector, dict):
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _wants_metadata(accept: str | None) -> bool:
    """The metadata API asked for: the first media type of Accept names PartialObjectMetadataList."""
    first = (accept or "").split(",")[0]
    params = {p.strip().partition("=")[0]: p.strip().partition("=")[2] for p in first.split(";")[1:]}
    return params.get("as") == "PartialObjectMetadataList" and params.get("g") == "meta.k8s.io"


def _line(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":")) + "\n"


def _shut(environ: Mapping[str, Any]) -> None:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _cut(environ: Mapping[str, Any]) -> Response:
    """A response that never starts: the connection is shut before any byte of an answer (werkzeug then
    treats it as a dropped connection and stays quiet)."""
    def body() -> Iterator[bytes]:
        _shut(environ)
        raise ConnectionResetError("the stand-in refuses connections")
        yield b""  # pragma: no cover - makes this a generator

    return Response(body(), mimetype="application/json")

