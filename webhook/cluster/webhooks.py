"""Patching the webhook configurations (`netguard certs install`): the CA into each webhook's caBundle with a JSON Patch
sent as a field manager of its own, reporting which were patched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes

from webhook.cluster.api import ApiError, ClusterError, Conn, Resource, api_client, call_api, get_object

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


def _webhook_failure(conn: Conn, verb: str, res: Resource, name: str, err: ApiError) -> ClusterError:
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


def _send_patch(conn: Conn, res: Resource, fetch: Callable[..., Any], **kwargs: Any) -> None:
    """One PATCH; ApiError for an error status, ClusterError when there is no answer."""
    call_api(conn, f"PATCH {conn.host}{res.path}", fetch, **kwargs).release_conn()


def patch_webhook_configurations(name: str, make_patch: Callable[[dict[str, Any]], list[dict[str, Any]]],
                                 kubeconfig: str | None = None, context: str | None = None, *,
                                 timeout_seconds: float = 30) -> list[PatchResult]:
    """Read the Validating and Mutating webhook configurations `name`, then JSON-patch each with make_patch(obj).

    Both are read before either is patched, so a missing one (ClusterError) changes nothing; a
    configuration whose patch is empty is not written.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    client, _ = api_client(kubeconfig, context, in_cluster=False)
    with client:
        conn = Conn(host=str(client.configuration.host), timeout=float(timeout_seconds))
        api = kubernetes.client.AdmissionregistrationV1Api(client)
        calls = {
            "ValidatingWebhookConfiguration": (api.read_validating_webhook_configuration,
                                               api.patch_validating_webhook_configuration),
            "MutatingWebhookConfiguration": (api.read_mutating_webhook_configuration,
                                             api.patch_mutating_webhook_configuration),
        }
        current: list[tuple[Resource, dict[str, Any]]] = []
        for kind, plural in WEBHOOK_CONFIGURATION_RESOURCES.items():
            res = Resource(plural, f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}", kind,
                            "admissionregistration.k8s.io/v1")
            try:
                current.append((res, get_object(conn, res, calls[kind][0], name=name)))
            except ApiError as e:
                raise _webhook_failure(conn, "GET", res, name, e) from None
        results = []
        for res, obj in current:
            ops = make_patch(obj)
            if ops:
                try:
                    _send_patch(conn, res, calls[res.kind][1], name=name, body=ops, field_manager=FIELD_MANAGER,
                                _content_type=JSON_PATCH)
                except ApiError as e:
                    raise _webhook_failure(conn, "PATCH", res, name, e) from None
            results.append(PatchResult(res.kind, name, len(obj.get("webhooks") or []), tuple(ops)))
    return results
