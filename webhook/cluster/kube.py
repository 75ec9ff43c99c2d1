"""Read a live cluster into an Inventory: namespaces, network policies (Kubernetes and Cilium), pods.

The only module that imports the kubernetes client, so the rest of netguard stays testable without
a cluster. Lists are fetched raw (`_preload_content=False`) and JSON-decoded: the client's models
would rename fields to snake_case and drop the ones they do not know (a newer Cilium's), while
normalize() and the Rego catalog read the API's own JSON.

Permissions needed (what deploy/ RBAC must grant), all cluster-wide `list`: namespaces, every policy
kind of the registry (webhook/kinds: networking.k8s.io networkpolicies; cilium.io ciliumnetworkpolicies
and ciliumclusterwidenetworkpolicies, read when their CRDs are installed), pods (optional: without it
the audit reports workloads as not available), and the named address lists rules refer to: cilium.io
ciliumcidrgroups, projectcalico.org networksets and globalnetworksets (optional: without them references to
them are reported as not judged). Discovery (/apis/cilium.io/v2, where an optional CRD is
looked up) is allowed to every authenticated user by the default system:discovery role.

Pods are read through the metadata API (`Accept: application/json;as=PartialObjectMetadataList;
g=meta.k8s.io;v=v1`): the audit needs only their namespace, name and labels, so it never fetches or
holds pod specs (environment variables, commands, images). RBAC cannot express that difference (the
verb is `list` on `pods` either way); the reduction is in what netguard asks for, see docs/operations.md.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import urllib3

from webhook import kinds
from webhook.cluster.api import (
    ApiError,
    ClusterError,
    Conn,
    NotAllowed,
    Resource,
    api_client,
    list_all,
    served_in,
    status_message,
    transport_reason,
)
from webhook.core.selectors import NAMESPACE_NAME_LABEL
from webhook.core.snapshot import object_meta
from webhook.offline.inventory import Inventory, Namespace, Workload
from webhook.offline.sources import Document

CILIUM_GROUP = "cilium.io"  # of CiliumCIDRGroups (the policy kinds' groups are in webhook/kinds)
PODS_FORBIDDEN = "not allowed to list pods: workloads not available"
# The metadata API: the list answered as a PartialObjectMetadataList (metadata only, no spec or status).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# (apiGroup, resource) pairs load_inventory lists, cluster-wide, verb "list"; pods are optional.
REQUIRED_PERMISSIONS = (("", "namespaces"), *((k.group, k.plural) for k in kinds.ALL), ("", "pods"),
                        ("cilium.io", "ciliumcidrgroups"), ("projectcalico.org", "networksets"),
                        ("projectcalico.org", "globalnetworksets"))


_NAMESPACES = Resource("namespaces", "/api/v1/namespaces", "Namespace", "v1")
# Every policy kind, by resource (plural.group: `PolicyKind.resource`, as two groups serve networkpolicies):
# listed (and watched) through the generic API of its group and version, which
# serves built-in kinds the same JSON as their typed clients would, and CRDs alike.
_POLICIES = {k.resource: Resource(f"{k.project} {k.plural_kind}" if k.qualified else k.plural_kind,
                                   k.collection_path, k.kind, k.api_version) for k in kinds.ALL}
_PODS = Resource("pods", "/api/v1/pods", "Pod", "v1")
# CiliumCIDRGroup (see webhook/cluster/cluster_view.py for the sources): cilium.io/v2 since Cilium 1.18,
# cilium.io/v2alpha1 (deprecated from 1.18) before; the cluster view reads the first of these the cluster serves.
CIDR_GROUPS = "ciliumcidrgroups"
CIDR_GROUP_VERSIONS = ("v2", "v2alpha1")
_CIDR_GROUPS = {version: Resource("CiliumCIDRGroups", f"/apis/{CILIUM_GROUP}/{version}/{CIDR_GROUPS}",
                                   "CiliumCIDRGroup", f"{CILIUM_GROUP}/{version}")
                for version in CIDR_GROUP_VERSIONS}
# Calico's NetworkSet (namespaced) and GlobalNetworkSet (cluster-scoped), projectcalico.org/v3: the address lists a
# Calico rule's selector may pick by their labels (see webhook/core/cidr_groups.py). Served by the Calico API server
# (or as CRDs); watched when served, keyed like the policy kinds (plural.group).
CALICO_GROUP, CALICO_VERSION = "projectcalico.org", "v3"
NETWORK_SETS = "networksets.projectcalico.org"
GLOBAL_NETWORK_SETS = "globalnetworksets.projectcalico.org"
_NETWORK_SETS = {resource: Resource(f"Calico {kind}s",
                                    f"/apis/{CALICO_GROUP}/{CALICO_VERSION}/{resource.split('.')[0]}",
                                    kind, f"{CALICO_GROUP}/{CALICO_VERSION}")
                 for resource, kind in ((NETWORK_SETS, "NetworkSet"), (GLOBAL_NETWORK_SETS, "GlobalNetworkSet"))}


def _crd_notes(absent: tuple[kinds.PolicyKind, ...]) -> list[str]:
    """What the source says about policy kinds whose CRD the cluster does not serve: a project none of whose
    kinds is served in one note, others kind by kind; and, when no optional kind was read, which were."""
    optional = [k for k in kinds.ALL if k.optional_crd]
    notes = []
    for project in dict.fromkeys(k.project for k in absent):
        missing = [k for k in absent if k.project == project]
        if len(missing) == sum(k.project == project for k in optional):
            notes.append(f"{project} CRDs not installed")
        else:
            notes += [f"{k.kind} CRD not installed" for k in missing]
    if notes and len(absent) == len(optional):
        read = " and ".join(f"{k.project} {k.plural_kind}" for k in kinds.ALL if not k.optional_crd)
        notes[-1] += f": only {read} were read"
    return notes


# The source's note when no optional policy CRD is installed (a cluster without Cilium).
NO_CILIUM = "; ".join(_crd_notes(tuple(k for k in kinds.ALL if k.optional_crd)))


def load_inventory(kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = False,
                   include_workloads: bool = True, timeout_seconds: float = 30) -> Inventory:
    """List namespaces, all network policies and (if allowed) pods of the cluster into an Inventory.

    Namespaces and policies are required (ClusterError without them: an audit of a partial set
    would report a wrong posture); Cilium kinds are read only when their CRDs are served, and a
    403 on pods yields workloads=None ("not available") rather than a failure.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    client, label = api_client(kubeconfig, context, in_cluster)
    with client:
        # The same reader as the webhook's cluster view (one way to list, page and discover), with the audit's
        # wording for failures.
        reader = ClusterReader(client, timeout_seconds, audit=True)
        namespaces = []
        for obj in reader.list("namespaces")[0]:
            _, name, labels = object_meta(obj)
            namespaces.append(Namespace(name, {NAMESPACE_NAME_LABEL: name, **labels}))

        objects: list[dict[str, Any]] = []
        absent = []
        for kind in kinds.ALL:
            if not reader.served(kind.resource):
                absent.append(kind)
                continue
            objects += reader.list(kind.resource)[0]
        policies = []
        for index, obj in enumerate(objects):
            ns, name, _ = object_meta(obj)
            ref = f"{ns}/{name}" if ns else name
            known = kinds.of(obj)  # named as netguard names it: Calico's NetworkPolicy is not Kubernetes'
            policies.append(Document(source=f"cluster:{known.name if known else obj['kind']}/{ref}", index=index,
                                     obj=obj, line=0,
                                     positions={}))

        notes = [reader.conn.host, *_crd_notes(tuple(absent))]
        address_sets, complete = _address_sets(reader, notes)

        workloads: tuple[Workload, ...] | None = None
        if include_workloads:
            pods = reader.pod_metadata()
            if pods is None:
                notes.append(PODS_FORBIDDEN)
            else:
                workloads = tuple(Workload(ns, "Pod", name, labels) for ns, name, labels in map(object_meta, pods))

    return Inventory(source=f"cluster {label} ({'; '.join(notes)})", namespaces=tuple(namespaces),
                     policies=tuple(policies), workloads=workloads, address_sets=tuple(address_sets),
                     cidr_groups_known=complete[CIDR_GROUPS],
                     network_sets_known=complete[NETWORK_SETS] and complete[GLOBAL_NETWORK_SETS])


def _address_sets(reader: ClusterReader, notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """CiliumCIDRGroups and Calico (Global)NetworkSets, and whether each was read in full: a CRD not served has no
    objects (known); one the credentials may not list is not known, said in `notes`, and the audit goes on."""
    objects: list[dict[str, Any]] = []
    known: dict[str, bool] = {}
    for resource in (CIDR_GROUPS, NETWORK_SETS, GLOBAL_NETWORK_SETS):
        known[resource] = True
        try:
            objects += reader.list(resource)[0] if reader.served(resource) else []
        except NotAllowed:
            known[resource] = False
            notes.append(f"not allowed to list {WATCHED[resource].what}: references to them not judged")
    return objects, known


# -- watching: the webhook's cluster view (webhook/cluster/cluster_view.py) ------------------------------------
#
# Permissions (what deploy/ RBAC must grant the webhook's service account), all cluster-wide `list` and
# `watch`: namespaces, every policy kind of the registry (webhook/kinds; those of optional CRDs when
# installed) and, when Cilium is installed, cilium.io ciliumcidrgroups (RBAC names no version, so the one rule
# covers v2 and v2alpha1); when Calico is, projectcalico.org networksets and globalnetworksets. Discovery of
# /apis/cilium.io/v2 and /apis/cilium.io/v2alpha1 is allowed to every
# authenticated user by the default system:discovery role.

# Watched resource -> what is read (ciliumcidrgroups: its newest version; ClusterReader.served picks the one served).
WATCHED: dict[str, Resource] = {"namespaces": _NAMESPACES, **_POLICIES,
                                 CIDR_GROUPS: _CIDR_GROUPS[CIDR_GROUP_VERSIONS[0]], **_NETWORK_SETS}
WATCH_GRACE_SECONDS = 10  # a watch window plus this before the client stops waiting for the server to end it
WATCH_LIST_TIMEOUT_SECONDS = 30.0


class WatchExpired(ClusterError):
    """410 Gone: the resourceVersion the watch resumed from is too old (etcd compacted it): list again."""


class WatchBrokeOff(ClusterError):
    """An open watch stream ended in an error. Unless it `timed_out` (nothing arrived for longer than the
    window: the connection may have been dead for a while), everything up to that moment was received."""

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def _watch_failure(conn: Conn, res: Resource, verb: str, err: ApiError) -> ClusterError:
    call = f"{verb.upper()} {conn.host}{res.path}"
    if err.status == 401:
        return ClusterError(f"the API server at {conn.host} rejected the credentials (401 Unauthorized) "
                            f"({call}): {err.message}")
    if err.status == 403:
        return ClusterError(f"not allowed to {verb} {res.what} ({call}): {err.message}; the cluster view needs "
                            f"cluster-wide list and watch on {res.what}")
    return ClusterError(f"{call} failed: {err.status} {err.message}")


class ClusterReader:
    """Lists and watches namespaces, network policies and CIDR groups as raw JSON; one per watcher thread.

    `watch` uses the client's watch.Watch().stream with the list's resourceVersion and a server-side
    timeout, so every watch ends by itself and the caller decides whether to resume or list again.
    """

    def __init__(self, client: Any, timeout_seconds: float = WATCH_LIST_TIMEOUT_SECONDS, *,
                 audit: bool = False) -> None:
        """`audit`: failures say what `netguard audit` needs (list), not what the cluster view needs (list, watch)."""
        self._client = client
        self.conn = Conn(host=str(client.configuration.host), timeout=float(timeout_seconds))
        self._audit = audit
        # An audit reads once: discovery of a group version is asked once. The watcher asks before every list, so
        # a Cilium installed or upgraded later is followed.
        self._discovered: dict[tuple[str, str], frozenset[str]] | None = {} if audit else None
        self._core = kubernetes.client.CoreV1Api(client)
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._versions: dict[str, str] = {}  # ciliumcidrgroups -> the cilium.io version served() found it in
        self._active: Any = None  # the HTTP response of the watch being read, for interrupt()
        self._interrupted = False
        self._lock = threading.Lock()

    def _fetch(self, resource: str) -> tuple[Resource, Callable[..., Any], dict[str, Any]]:
        res = WATCHED[resource]
        if resource == "namespaces":
            return res, self._core.list_namespace, {}
        if resource == CIDR_GROUPS:
            version = self._versions.get(resource, CIDR_GROUP_VERSIONS[0])
            return _CIDR_GROUPS[version], self._custom.list_cluster_custom_object, {
                "group": CILIUM_GROUP, "version": version, "plural": resource}
        if resource in _NETWORK_SETS:
            return res, self._custom.list_cluster_custom_object, {
                "group": CALICO_GROUP, "version": CALICO_VERSION, "plural": resource.split(".")[0]}
        kind = kinds.by_resource(resource)
        assert kind is not None  # WATCHED holds namespaces, CIDR groups, network sets and the registry's resources
        return res, self._custom.list_cluster_custom_object, {"group": kind.group, "version": kind.version,
                                                              "plural": kind.plural}

    def served(self, resource: str) -> bool:
        """Built-in resources always; a policy kind of an optional CRD only when it is installed (discovery).
        CiliumCIDRGroups in the first of CIDR_GROUP_VERSIONS that serves them, which later lists and watches then
        use (the Watcher asks again before every list, so an upgrade of Cilium is followed)."""
        if resource == CIDR_GROUPS:
            for version in CIDR_GROUP_VERSIONS:
                if CIDR_GROUPS in self._served_plurals(CILIUM_GROUP, version):
                    self._versions[resource] = version
                    return True
            return False
        if resource in _NETWORK_SETS:
            return resource.split(".")[0] in self._served_plurals(CALICO_GROUP, CALICO_VERSION)
        kind = kinds.by_resource(resource)
        return kind is None or not kind.optional_crd or kind.plural in self._served_plurals(kind.group, kind.version)

    def _served_plurals(self, group: str, version: str) -> frozenset[str]:
        if self._discovered is None:
            return served_in(self.conn, self._custom, group, version)
        if (group, version) not in self._discovered:
            self._discovered[group, version] = served_in(self.conn, self._custom, group, version)
        return self._discovered[group, version]

    def pod_metadata(self) -> list[dict[str, Any]] | None:
        """Every pod's metadata (namespace, name, labels: all the audit reads of a pod; never specs), or None when
        the credentials may not list pods (the audit then says workloads are not available)."""
        try:
            return list_all(self.conn, _PODS, self._core.list_pod_for_all_namespaces,
                            _headers={"Accept": METADATA_LIST})
        except ApiError as e:
            if e.status != 403:
                raise self.conn.fail(_PODS, e) from None
            return None

    def list(self, resource: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of `resource` (apiVersion/kind set) and the list's resourceVersion."""
        res, fetch, kwargs = self._fetch(resource)
        versions: list[str] = []
        try:
            items = list_all(self.conn, res, fetch, versions=versions, **kwargs)
        except ApiError as e:
            raise (self.conn.fail(res, e) if self._audit else _watch_failure(self.conn, res, "list", e)) from None
        return items, (versions[0] if versions else "")

    def watch(self, resource: str, resource_version: str,
              timeout_seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events after `resource_version` until the server ends the window.

        WatchExpired on 410 (as a status or an ERROR event); ClusterError when the stream cannot be
        opened; WatchBrokeOff when it breaks off (reset, truncated chunk, read timeout, undecodable line).
        """
        res, fetch, kwargs = self._fetch(resource)
        call = f"WATCH {self.conn.host}{res.path}"
        read_timeout = float(timeout_seconds + WATCH_GRACE_SECONDS)
        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]

        opened = False

        def untyped(**params: Any) -> Any:  # no return type to find: events stay raw JSON (see below)
            nonlocal opened
            response = fetch(**params)
            opened = True
            with self._lock:
                self._active, interrupted = response, self._interrupted
            if interrupted:  # interrupt() came while the request was on its way
                _shut(response)
            return response

        try:
            # The client deserializes watched objects into models named by the list function's return
            # type (renaming fields, dropping unknown ones), and with deserialize=False it fails on ERROR
            # events (KeyError 'raw_object', client 37.0). A function without a return type gets neither:
            # raw objects, and ERROR events raised as ApiException (410 included, as timeout_seconds is set).
            for event in watch.stream(  # type: ignore[no-untyped-call]
                    untyped, **kwargs, resource_version=resource_version or None,
                    timeout_seconds=int(timeout_seconds), allow_watch_bookmarks=True,
                    _request_timeout=(self.conn.timeout, read_timeout)):
                obj = event.get("raw_object") if isinstance(event, dict) else None
                if isinstance(obj, dict):
                    yield str(event.get("type")), {"apiVersion": obj.get("apiVersion", res.api_version),
                                                   "kind": obj.get("kind", res.kind), **obj}
        except kubernetes.client.ApiException as e:
            status = int(e.status or 0)
            if status == 410:
                raise WatchExpired(f"{call}: resourceVersion {resource_version} is too old (410 Gone)") from None
            if status == 0:
                raise ClusterError(f"cannot reach the API server at {self.conn.host} ({call}): "
                                   f"{str(e.reason).replace(chr(10), ': ')}") from None
            message = status_message(status, str(e.reason or ""), e.body if isinstance(e.body, str) else None)
            raise _watch_failure(self.conn, res, "watch", ApiError(status, message)) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            if not opened:
                raise ClusterError(f"cannot reach the API server at {self.conn.host} ({call}): "
                                   f"{transport_reason(e, read_timeout)}") from None
            reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason else e
            raise WatchBrokeOff(f"{call} broke off: {transport_reason(e, read_timeout)}",
                                timed_out=isinstance(reason, urllib3.exceptions.TimeoutError)) from None
        finally:
            with self._lock:
                self._active = None

    def interrupt(self) -> None:
        """From another thread, for good (the reader is being closed): end the watch being read now and any
        watch about to start. Its socket is shut, so the blocked read fails at once (closing would not wake it)."""
        with self._lock:
            active, self._interrupted = self._active, True
        _shut(active)

    def close(self) -> None:
        self._client.close()
        self._client.rest_client.pool_manager.clear()


def _shut(response: Any) -> None:
    """Shut the socket under a streaming urllib3 response: on the connection while it is kept alive, else (the
    server said Connection: close, so http.client handed the socket to the response) under its file. Best
    effort: without a socket the watch ends with its window."""
    if response is None:
        return
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is None:
        sock = getattr(getattr(getattr(getattr(response, "_fp", None), "fp", None), "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def open_reader(kubeconfig: str | None = None, *, in_cluster: bool = False,
                timeout_seconds: float = WATCH_LIST_TIMEOUT_SECONDS) -> ClusterReader:
    """A ClusterReader on the kubeconfig's current context or the in-cluster service account."""
    client, _ = api_client(kubeconfig, None, in_cluster)
    return ClusterReader(client, timeout_seconds)


# -- installing the CA: `netguard certs install --cluster` (webhook/pki/install.py computes the patches) ------
#
# Permissions (the person running it, not netguard's service account): get and patch on
# admissionregistration.k8s.io validatingwebhookconfigurations and mutatingwebhookconfigurations.


# -- reading an installation: `netguard doctor` (webhook/cluster/doctor.py judges what is read) ---------------------
#
# Permissions (the person running it): get on the two webhook configurations, on services and secrets in
# netguard's namespace, list on discovery.k8s.io endpointslices there, and create on networkpolicies in the
# namespace the dry-run review uses (dryRun=All: nothing is stored).


