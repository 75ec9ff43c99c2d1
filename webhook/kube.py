"""Read a live cluster into an Inventory: namespaces, network policies (Kubernetes and Cilium), pods.

The only module that imports the kubernetes client, so the rest of netguard stays testable without
a cluster. Lists are fetched raw (`_preload_content=False`) and JSON-decoded: the client's models
would rename fields to snake_case and drop the ones they do not know (a newer Cilium's), while
normalize() and the Rego catalog read the API's own JSON.

Permissions needed (what deploy/ RBAC must grant), all cluster-wide `list`: namespaces, every policy
kind of the registry (webhook/kinds: networking.k8s.io networkpolicies; cilium.io ciliumnetworkpolicies
and ciliumclusterwidenetworkpolicies, read when their CRDs are installed), and pods (optional: without it
the audit reports workloads as not available). Discovery (/apis/cilium.io/v2, where an optional CRD is
looked up) is allowed to every authenticated user by the default system:discovery role.

Pods are read through the metadata API (`Accept: application/json;as=PartialObjectMetadataList;
g=meta.k8s.io;v=v1`): the audit needs only their namespace, name and labels, so it never fetches or
holds pod specs (environment variables, commands, images). RBAC cannot express that difference (the
verb is `list` on `pods` either way); the reduction is in what netguard asks for, see docs/operations.md.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

from webhook import kinds
from webhook.inventory import Inventory, Namespace, Workload
from webhook.selectors import NAMESPACE_NAME_LABEL
from webhook.sources import Document

PAGE_SIZE = 500
CILIUM_GROUP = "cilium.io"  # of CiliumCIDRGroups (the policy kinds' groups are in webhook/kinds)
PODS_FORBIDDEN = "not allowed to list pods: workloads not available"
# The metadata API: the list answered as a PartialObjectMetadataList (metadata only, no spec or status).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# (apiGroup, resource) pairs load_inventory lists, cluster-wide, verb "list"; pods are optional.
REQUIRED_PERMISSIONS = (("", "namespaces"), *((k.group, k.plural) for k in kinds.ALL), ("", "pods"))
# Retry refused/reset connections briefly, but never a read: a timed-out list would otherwise cost
# several timeouts, and a list that got an answer is not worth repeating.
_RETRIES = urllib3.Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.2)


class ClusterError(Exception):
    """The cluster could not be read; the message names the call, the server and the cause."""


@dataclass(frozen=True)
class _Resource:
    what: str  # for messages: "NetworkPolicies"
    path: str  # the collection's URL path, for messages
    kind: str  # the item kind, filled in where the list omits it
    api_version: str


_NAMESPACES = _Resource("namespaces", "/api/v1/namespaces", "Namespace", "v1")
# Every policy kind, by plural: listed (and watched) through the generic API of its group and version, which
# serves built-in kinds the same JSON as their typed clients would, and CRDs alike.
_POLICIES = {k.plural: _Resource(k.plural_kind, k.collection_path, k.kind, k.api_version) for k in kinds.ALL}
_PODS = _Resource("pods", "/api/v1/pods", "Pod", "v1")
# CiliumCIDRGroup (see webhook/cluster_view.py for the sources): cilium.io/v2 since Cilium 1.18, cilium.io/v2alpha1
# (deprecated from 1.18) before; the cluster view reads the first of these the cluster serves.
CIDR_GROUPS = "ciliumcidrgroups"
CIDR_GROUP_VERSIONS = ("v2", "v2alpha1")
_CIDR_GROUPS = {version: _Resource("CiliumCIDRGroups", f"/apis/{CILIUM_GROUP}/{version}/{CIDR_GROUPS}",
                                   "CiliumCIDRGroup", f"{CILIUM_GROUP}/{version}")
                for version in CIDR_GROUP_VERSIONS}


class _ApiError(Exception):
    """The API server answered with an error status; callers decide what it means for them."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Conn:
    host: str
    timeout: float

    def fail(self, res: _Resource, err: _ApiError) -> ClusterError:
        call = f"GET {self.host}{res.path}"
        if err.status == 401:
            return ClusterError(f"the API server at {self.host} rejected the credentials (401 Unauthorized) "
                                f"listing {res.what} ({call}): {err.message}; check the token or certificate "
                                "of the kubeconfig user (or the service account)")
        if err.status == 403:
            return ClusterError(f"not allowed to list {res.what} ({call}): {err.message}; netguard audit needs "
                                f"cluster-wide list on {res.what}")
        return ClusterError(f"listing {res.what} failed ({call}): {err.status} {err.message}")


def _status_message(status: int, reason: str, body: str | None) -> str:
    """The Status object's message when the server sent one, else the HTTP reason."""
    try:
        decoded = json.loads(body or "")
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return str(decoded["message"])
    return reason or f"HTTP {status}"


def _transport_reason(exc: BaseException, timeout: float) -> str:
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS failed ({reason}); check the certificate-authority of the cluster in the kubeconfig"
    # Before TimeoutError: urllib3 makes NewConnectionError a subclass of ConnectTimeoutError.
    if isinstance(reason, urllib3.exceptions.NewConnectionError) and isinstance(reason.__cause__, OSError):
        return reason.__cause__.strerror or str(reason.__cause__)
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(reason)


def _call(conn: _Conn, call: str, fetch: Callable[..., Any], **kwargs: Any) -> Any:
    """One raw API call; _ApiError for an error status, ClusterError when there is no answer."""
    try:
        return fetch(**kwargs, _preload_content=False, _request_timeout=conn.timeout)
    except kubernetes.client.ApiException as e:
        status = int(e.status or 0)
        if status == 0:  # the client's own wrapping of a TLS error
            raise ClusterError(f"cannot reach the API server at {conn.host} ({call}): "
                               f"{str(e.reason).replace(chr(10), ': ')}") from None
        raise _ApiError(status, _status_message(status, str(e.reason or ""), e.body)) from None
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"cannot reach the API server at {conn.host} ({call}): "
                           f"{_transport_reason(e, conn.timeout)}") from None


def _get(conn: _Conn, res: _Resource, fetch: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """One GET, JSON-decoded; _ApiError for an error status, ClusterError when there is no answer."""
    call = f"GET {conn.host}{res.path}"
    response = _call(conn, call, fetch, **kwargs)
    try:
        data = response.data
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"reading the answer to {call} failed: {_transport_reason(e, conn.timeout)}") from None
    finally:
        response.release_conn()
    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise ClusterError(f"{call} did not answer with a Kubernetes JSON object; is {conn.host} an API server?")
    return decoded


def _list(conn: _Conn, res: _Resource, fetch: Callable[..., Any], *, versions: list[str] | None = None,
          **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a collection, page by page, with apiVersion/kind set on each (lists omit them).

    An error status ends the list with _ApiError (the caller knows whether it is fatal). `versions`,
    when given, receives the list's resourceVersion (of its first page: the snapshot a watch resumes from).
    """
    items: list[dict[str, Any]] = []
    token: str | None = None
    restarted = False
    while True:
        try:
            page = _get(conn, res, fetch, **kwargs, limit=PAGE_SIZE, _continue=token)
        except _ApiError as e:
            if e.status == 410 and token and not restarted:
                # The continue token expired (a long list, etcd compaction): start over once, from a new snapshot.
                items, token, restarted = [], None, True
                continue
            raise
        if versions is not None and token is None:
            first = page.get("metadata")
            versions[:] = [str(first.get("resourceVersion") or "")] if isinstance(first, dict) else [""]
        for item in page.get("items") or ():
            if isinstance(item, dict):
                items.append({"apiVersion": item.get("apiVersion", res.api_version),
                              "kind": item.get("kind", res.kind), **item})
        meta = page.get("metadata")
        previous, token = token, meta.get("continue") if isinstance(meta, dict) else None
        if not token:
            return items
        if token == previous:  # a server (or proxy) ignoring `continue` would page forever
            raise ClusterError(f"GET {conn.host}{res.path} returned the same continue token twice")


def _list_required(conn: _Conn, res: _Resource, fetch: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    try:
        return _list(conn, res, fetch, **kwargs)
    except _ApiError as e:
        raise conn.fail(res, e) from None


def _meta(obj: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels = meta.get("labels")
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), labels


def _served_in(conn: _Conn, api: Any, group: str, version: str) -> frozenset[str]:
    """Every resource name `group`/`version` serves (discovery); empty when that group version does not exist."""
    res = _Resource(f"the {group}/{version} API (discovery)", f"/apis/{group}/{version}", "APIResourceList", "v1")
    try:
        body = _get(conn, res, api.get_api_resources, group=group, version=version)
    except _ApiError as e:
        if e.status == 404:
            return frozenset()
        raise conn.fail(res, e) from None
    resources = body.get("resources")
    if not isinstance(resources, list):
        return frozenset()
    return frozenset(str(r.get("name")) for r in resources if isinstance(r, dict))


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


def _client(kubeconfig: str | None, context: str | None, in_cluster: bool) -> tuple[Any, str]:
    """A private ApiClient (no global client configuration is touched) and a label for the cluster."""
    configuration = kubernetes.client.Configuration()
    configuration.retries = _RETRIES
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return kubernetes.client.ApiClient(configuration), "in-cluster"
        if context is None:
            _, current = kubernetes.config.list_kube_config_contexts(kubeconfig)  # type: ignore[no-untyped-call]
            label = str(current.get("name", "")) if isinstance(current, dict) else ""
        else:
            label = context
        # persist_config=False: a read-only audit never rewrites the user's kubeconfig (token refreshes).
        client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, persist_config=False, client_configuration=configuration)
        return client, label
    except (kubernetes.config.ConfigException, OSError, ValueError) as e:
        where = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
        raise ClusterError(f"cannot load the {where}: {e}") from None


def load_inventory(kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = False,
                   include_workloads: bool = True, timeout_seconds: float = 30) -> Inventory:
    """List namespaces, all network policies and (if allowed) pods of the cluster into an Inventory.

    Namespaces and policies are required (ClusterError without them: an audit of a partial set
    would report a wrong posture); Cilium kinds are read only when their CRDs are served, and a
    403 on pods yields workloads=None ("not available") rather than a failure.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    client, label = _client(kubeconfig, context, in_cluster)
    with client:
        conn = _Conn(host=str(client.configuration.host), timeout=float(timeout_seconds))
        core = kubernetes.client.CoreV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)

        namespaces = []
        for obj in _list_required(conn, _NAMESPACES, core.list_namespace):
            _, name, labels = _meta(obj)
            namespaces.append(Namespace(name, {NAMESPACE_NAME_LABEL: name, **labels}))

        objects: list[dict[str, Any]] = []
        served: dict[tuple[str, str], frozenset[str]] = {}  # discovery, once per group version
        absent = []
        for kind in kinds.ALL:
            if kind.optional_crd:
                if (kind.group, kind.version) not in served:
                    served[kind.group, kind.version] = _served_in(conn, custom, kind.group, kind.version)
                if kind.plural not in served[kind.group, kind.version]:
                    absent.append(kind)
                    continue
            objects += _list_required(conn, _POLICIES[kind.plural], custom.list_cluster_custom_object,
                                      group=kind.group, version=kind.version, plural=kind.plural)
        policies = []
        for index, obj in enumerate(objects):
            ns, name, _ = _meta(obj)
            ref = f"{ns}/{name}" if ns else name
            policies.append(Document(source=f"cluster:{obj['kind']}/{ref}", index=index, obj=obj, line=0,
                                     positions={}))

        notes = [conn.host, *_crd_notes(tuple(absent))]

        workloads: tuple[Workload, ...] | None = None
        if include_workloads:
            try:
                # Metadata only: namespace, name and labels are all the audit reads from a pod.
                pods = _list(conn, _PODS, core.list_pod_for_all_namespaces, _headers={"Accept": METADATA_LIST})
            except _ApiError as e:
                if e.status != 403:
                    raise conn.fail(_PODS, e) from None
                notes.append(PODS_FORBIDDEN)
            else:
                workloads = tuple(Workload(ns, "Pod", name, labels) for ns, name, labels in map(_meta, pods))

    return Inventory(source=f"cluster {label} ({'; '.join(notes)})", namespaces=tuple(namespaces),
                     policies=tuple(policies), workloads=workloads)


# -- watching: the webhook's cluster view (webhook/cluster_view.py) ------------------------------------
#
# Permissions (what deploy/ RBAC must grant the webhook's service account), all cluster-wide `list` and
# `watch`: namespaces, every policy kind of the registry (webhook/kinds; those of optional CRDs when
# installed) and, when Cilium is installed, cilium.io ciliumcidrgroups (RBAC names no version, so the one rule
# covers v2 and v2alpha1). Discovery of /apis/cilium.io/v2 and /apis/cilium.io/v2alpha1 is allowed to every
# authenticated user by the default system:discovery role.

# Watched resource -> what is read (ciliumcidrgroups: its newest version; ClusterReader.served picks the one served).
WATCHED: dict[str, _Resource] = {"namespaces": _NAMESPACES, **_POLICIES,
                                 CIDR_GROUPS: _CIDR_GROUPS[CIDR_GROUP_VERSIONS[0]]}
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


def _watch_failure(conn: _Conn, res: _Resource, verb: str, err: _ApiError) -> ClusterError:
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

    def __init__(self, client: Any, timeout_seconds: float = WATCH_LIST_TIMEOUT_SECONDS) -> None:
        self._client = client
        self.conn = _Conn(host=str(client.configuration.host), timeout=float(timeout_seconds))
        self._core = kubernetes.client.CoreV1Api(client)
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._versions: dict[str, str] = {}  # ciliumcidrgroups -> the cilium.io version served() found it in
        self._active: Any = None  # the HTTP response of the watch being read, for interrupt()
        self._interrupted = False
        self._lock = threading.Lock()

    def _fetch(self, resource: str) -> tuple[_Resource, Callable[..., Any], dict[str, Any]]:
        res = WATCHED[resource]
        if resource == "namespaces":
            return res, self._core.list_namespace, {}
        if resource == CIDR_GROUPS:
            version = self._versions.get(resource, CIDR_GROUP_VERSIONS[0])
            return _CIDR_GROUPS[version], self._custom.list_cluster_custom_object, {
                "group": CILIUM_GROUP, "version": version, "plural": resource}
        kind = kinds.by_plural(resource)
        assert kind is not None  # WATCHED holds namespaces, CIDR groups and the registry's plurals
        return res, self._custom.list_cluster_custom_object, {"group": kind.group, "version": kind.version,
                                                              "plural": resource}

    def served(self, resource: str) -> bool:
        """Built-in resources always; a policy kind of an optional CRD only when it is installed (discovery).
        CiliumCIDRGroups in the first of CIDR_GROUP_VERSIONS that serves them, which later lists and watches then
        use (the Watcher asks again before every list, so an upgrade of Cilium is followed)."""
        if resource == CIDR_GROUPS:
            for version in CIDR_GROUP_VERSIONS:
                if CIDR_GROUPS in _served_in(self.conn, self._custom, CILIUM_GROUP, version):
                    self._versions[resource] = version
                    return True
            return False
        kind = kinds.by_plural(resource)
        return kind is None or not kind.optional_crd or resource in _served_in(self.conn, self._custom, kind.group,
                                                                                kind.version)

    def list(self, resource: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of `resource` (apiVersion/kind set) and the list's resourceVersion."""
        res, fetch, kwargs = self._fetch(resource)
        versions: list[str] = []
        try:
            items = _list(self.conn, res, fetch, versions=versions, **kwargs)
        except _ApiError as e:
            raise _watch_failure(self.conn, res, "list", e) from None
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
            message = _status_message(status, str(e.reason or ""), e.body if isinstance(e.body, str) else None)
            raise _watch_failure(self.conn, res, "watch", _ApiError(status, message)) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            if not opened:
                raise ClusterError(f"cannot reach the API server at {self.conn.host} ({call}): "
                                   f"{_transport_reason(e, read_timeout)}") from None
            reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason else e
            raise WatchBrokeOff(f"{call} broke off: {_transport_reason(e, read_timeout)}",
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
    client, _ = _client(kubeconfig, None, in_cluster)
    return ClusterReader(client, timeout_seconds)


# -- installing the CA: `netguard certs install --cluster` (webhook/install.py computes the patches) ------
#
# Permissions (the person running it, not netguard's service account): get and patch on
# admissionregistration.k8s.io validatingwebhookconfigurations and mutatingwebhookconfigurations.

WEBHOOK_CONFIGURATION_RESOURCES = {
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
}
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "netguard-certs-install"


@dataclass(frozen=True)
class PatchResult:
    kind: str
    name: str
    webhooks: int  # in the configuration
    patch: tuple[dict[str, Any], ...]  # the JSON Patch sent; empty: nothing to change, no PATCH request


def _webhook_failure(conn: _Conn, verb: str, res: _Resource, name: str, err: _ApiError) -> ClusterError:
    call = f"{verb} {conn.host}{res.path}"
    if err.status == 404:
        return ClusterError(f"{res.kind} {name} not found ({call}); apply the manifests first "
                            "(kubectl apply -k deploy/base), or pass --name")
    if err.status == 403:
        return ClusterError(f"not allowed to {verb.lower()} {res.kind} {name} ({call}): {err.message}; installing "
                            f"the CA needs get and patch on admissionregistration.k8s.io {res.what}")
    if err.status == 401:
        return ClusterError(f"the API server at {conn.host} rejected the credentials (401 Unauthorized) "
                            f"({call}): {err.message}")
    if err.status == 422:
        return ClusterError(f"{call} was refused (422): {err.message}; the webhooks changed while installing: "
                            "run the command again")
    return ClusterError(f"{call} failed: {err.status} {err.message}")


def _send_patch(conn: _Conn, res: _Resource, fetch: Callable[..., Any], **kwargs: Any) -> None:
    """One PATCH; _ApiError for an error status, ClusterError when there is no answer."""
    _call(conn, f"PATCH {conn.host}{res.path}", fetch, **kwargs).release_conn()


def patch_webhook_configurations(name: str, make_patch: Callable[[dict[str, Any]], list[dict[str, Any]]],
                                 kubeconfig: str | None = None, context: str | None = None, *,
                                 timeout_seconds: float = 30) -> list[PatchResult]:
    """Read the Validating and Mutating webhook configurations `name`, then JSON-patch each with make_patch(obj).

    Both are read before either is patched, so a missing one (ClusterError) changes nothing; a
    configuration whose patch is empty is not written.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    client, _ = _client(kubeconfig, context, in_cluster=False)
    with client:
        conn = _Conn(host=str(client.configuration.host), timeout=float(timeout_seconds))
        api = kubernetes.client.AdmissionregistrationV1Api(client)
        calls = {
            "ValidatingWebhookConfiguration": (api.read_validating_webhook_configuration,
                                               api.patch_validating_webhook_configuration),
            "MutatingWebhookConfiguration": (api.read_mutating_webhook_configuration,
                                             api.patch_mutating_webhook_configuration),
        }
        current: list[tuple[_Resource, dict[str, Any]]] = []
        for kind, plural in WEBHOOK_CONFIGURATION_RESOURCES.items():
            res = _Resource(plural, f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}", kind,
                            "admissionregistration.k8s.io/v1")
            try:
                current.append((res, _get(conn, res, calls[kind][0], name=name)))
            except _ApiError as e:
                raise _webhook_failure(conn, "GET", res, name, e) from None
        results = []
        for res, obj in current:
            ops = make_patch(obj)
            if ops:
                try:
                    _send_patch(conn, res, calls[res.kind][1], name=name, body=ops, field_manager=FIELD_MANAGER,
                                _content_type=JSON_PATCH)
                except _ApiError as e:
                    raise _webhook_failure(conn, "PATCH", res, name, e) from None
            results.append(PatchResult(res.kind, name, len(obj.get("webhooks") or []), tuple(ops)))
    return results


# -- reading an installation: `netguard doctor` (webhook/doctor.py judges what is read) ---------------------
#
# Permissions (the person running it): get on the two webhook configurations, on services and secrets in
# netguard's namespace, list on discovery.k8s.io endpointslices there, and create on networkpolicies in the
# namespace the dry-run review uses (dryRun=All: nothing is stored).


@dataclass(frozen=True)
class ApiAnswer:
    status: int  # HTTP status
    body: dict[str, Any]  # the decoded JSON object ({} when the answer was not one)
    warnings: tuple[str, ...]  # Warning headers (admission webhooks' warnings arrive there)


class ApiReader:
    """Raw JSON requests to the API server of a kubeconfig context, for `netguard doctor`.

    An error status is an answer (doctor judges it); ClusterError only when there is no answer at all.
    """

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, *,
                 timeout_seconds: float = 15) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self._client, self.label = _client(kubeconfig, context, in_cluster=False)
        self.conn = _Conn(host=str(self._client.configuration.host), timeout=float(timeout_seconds))

    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: dict[str, Any] | None = None) -> ApiAnswer:
        call = f"{method} {self.conn.host}{path}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self._client.param_serialize(method, path, query_params=query or [], header_params=headers,
                                              body=body, auth_settings=["BearerToken"])
        try:
            response = self._client.call_api(*params, _request_timeout=self.conn.timeout)
            status, data = int(response.status), response.read()
            raw_headers = response.headers
        except kubernetes.client.ApiException as e:
            if not e.status:
                raise ClusterError(f"cannot reach the API server at {self.conn.host} ({call}): "
                                   f"{str(e.reason).replace(chr(10), ': ')}") from None
            status, data, raw_headers = int(e.status), e.body, e.headers
        except urllib3.exceptions.HTTPError as e:
            raise ClusterError(f"cannot reach the API server at {self.conn.host} ({call}): "
                               f"{_transport_reason(e, self.conn.timeout)}") from None
        try:
            decoded = json.loads(data or b"")
        except ValueError:
            decoded = None
        if status == 401:
            raise ClusterError(f"the API server at {self.conn.host} rejected the credentials (401 Unauthorized) "
                               f"({call}); check the kubeconfig user's token or certificate")
        warnings: tuple[str, ...] = ()
        if raw_headers is not None:
            getlist = getattr(raw_headers, "getlist", None)
            found = getlist("Warning") if callable(getlist) else [raw_headers.get("Warning")]
            warnings = tuple(str(w) for w in found if w)
        return ApiAnswer(status, decoded if isinstance(decoded, dict) else {}, warnings)

    def close(self) -> None:
        self._client.close()
