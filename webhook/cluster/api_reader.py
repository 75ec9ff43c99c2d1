"""Raw reads of the API server for `netguard doctor`: any path, the answer's status and JSON, never a model;
the doctor's checks are pure functions over what this returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

from webhook.cluster.api import ClusterError, Conn, api_client, transport_reason


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
        self._client, self.label = api_client(kubeconfig, context, in_cluster=False)
        self.conn = Conn(host=str(self._client.configuration.host), timeout=float(timeout_seconds))

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
                               f"{transport_reason(e, self.conn.timeout)}") from None
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
