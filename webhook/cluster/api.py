"""The calls every reader of the API server shares: the client from a kubeconfig or the pod's service account,
timeouts and retries, one GET, paged lists, discovery, and the wording of failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

PAGE_SIZE = 500


# Retry refused/reset connections briefly, but never a read: a timed-out list would otherwise cost
# several timeouts, and a list that got an answer is not worth repeating.
RETRIES = urllib3.Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.2)


class ClusterError(Exception):
    """The cluster could not be read; the message names the call, the server and the cause."""


class NotAllowed(ClusterError):
    """403: the credentials may not list the resource (a caller may read on without an optional one)."""


@dataclass(frozen=True)
class Resource:
    what: str  # for messages: "NetworkPolicies"
    path: str  # the collection's URL path, for messages
    kind: str  # the item kind, filled in where the list omits it
    api_version: str


class ApiError(Exception):
    """The API server answered with an error status; callers decide what it means for them."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Conn:
    host: str
    timeout: float

    def fail(self, res: Resource, err: ApiError) -> ClusterError:
        call = f"GET {self.host}{res.path}"
        if err.status == 401:
            return ClusterError(f"the API server at {self.host} rejected the credentials (401 Unauthorized) "
                                f"listing {res.what} ({call}): {err.message}; check the token or certificate "
                                "of the kubeconfig user (or the service account)")
        if err.status == 403:
            return NotAllowed(f"not allowed to list {res.what} ({call}): {err.message}; netguard audit needs "
                                f"cluster-wide list on {res.what}")
        return ClusterError(f"listing {res.what} failed ({call}): {err.status} {err.message}")


def status_message(status: int, reason: str, body: str | None) -> str:
    """The Status object's message when the server sent one, else the HTTP reason."""
    try:
        decoded = json.loads(body or "")
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return str(decoded["message"])
    return reason or f"HTTP {status}"


def transport_reason(exc: BaseException, timeout: float) -> str:
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS failed ({reason}); check the certificate-authority of the cluster in the kubeconfig"
    # Before TimeoutError: urllib3 makes NewConnectionError a subclass of ConnectTimeoutError.
    if isinstance(reason, urllib3.exceptions.NewConnectionError) and isinstance(reason.__cause__, OSError):
        return reason.__cause__.strerror or str(reason.__cause__)
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(reason)


def call_api(conn: Conn, call: str, fetch: Callable[..., Any], **kwargs: Any) -> Any:
    """One raw API call; ApiError for an error status, ClusterError when there is no answer."""
    try:
        return fetch(**kwargs, _preload_content=False, _request_timeout=conn.timeout)
    except kubernetes.client.ApiException as e:
        status = int(e.status or 0)
        if status == 0:  # the client's own wrapping of a TLS error
            raise ClusterError(f"cannot reach the API server at {conn.host} ({call}): "
                               f"{str(e.reason).replace(chr(10), ': ')}") from None
        raise ApiError(status, status_message(status, str(e.reason or ""), e.body)) from None
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"cannot reach the API server at {conn.host} ({call}): "
                           f"{transport_reason(e, conn.timeout)}") from None


def get_object(conn: Conn, res: Resource, fetch: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """One GET, JSON-decoded; ApiError for an error status, ClusterError when there is no answer."""
    call = f"GET {conn.host}{res.path}"
    response = call_api(conn, call, fetch, **kwargs)
    try:
        data = response.data
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"reading the answer to {call} failed: {transport_reason(e, conn.timeout)}") from None
    finally:
        response.release_conn()
    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise ClusterError(f"{call} did not answer with a Kubernetes JSON object; is {conn.host} an API server?")
    return decoded


def list_all(conn: Conn, res: Resource, fetch: Callable[..., Any], *, versions: list[str] | None = None,
          **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a collection, page by page, with apiVersion/kind set on each (lists omit them).

    An error status ends the list with ApiError (the caller knows whether it is fatal). `versions`,
    when given, receives the list's resourceVersion (of its first page: the snapshot a watch resumes from).
    """
    items: list[dict[str, Any]] = []
    token: str | None = None
    restarted = False
    while True:
        try:
            page = get_object(conn, res, fetch, **kwargs, limit=PAGE_SIZE, _continue=token)
        except ApiError as e:
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


def served_in(conn: Conn, api: Any, group: str, version: str) -> frozenset[str]:
    """Every resource name `group`/`version` serves (discovery); empty when that group version does not exist."""
    res = Resource(f"the {group}/{version} API (discovery)", f"/apis/{group}/{version}", "APIResourceList", "v1")
    try:
        body = get_object(conn, res, api.get_api_resources, group=group, version=version)
    except ApiError as e:
        if e.status == 404:
            return frozenset()
        raise conn.fail(res, e) from None
    resources = body.get("resources")
    if not isinstance(resources, list):
        return frozenset()
    return frozenset(str(r.get("name")) for r in resources if isinstance(r, dict))


def api_client(kubeconfig: str | None, context: str | None, in_cluster: bool) -> tuple[Any, str]:
    """A private ApiClient (no global client configuration is touched) and a label for the cluster."""
    configuration = kubernetes.client.Configuration()
    configuration.retries = RETRIES
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
