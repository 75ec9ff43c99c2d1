"""A Hubble flow generator: `hubble observe -o jsonpb` lines with the documented protojson fields (proto names,
cilium/cilium api/v1/flow/flow.proto), for the flow-evidence tests. Written here, not recorded: every field a
test relies on is set on purpose. Shaped like the real lines in tests/flows/: zero values (identity 0, no names)
left out as protojson leaves them out; `is_reply`, a BoolValue, written as a bare bool."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def endpoint(namespace: str = "", pod: str = "", identity: int = 0, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": [f"k8s:{k}={v}" for k, v in labels.items()]}
    if identity:
        out["identity"] = identity
    if namespace:
        out["namespace"] = namespace
        out["labels"].append(f"k8s:io.kubernetes.pod.namespace={namespace}")
    if pod:
        out["pod_name"] = pod
    return out


WORLD = {"identity": 2, "labels": ["reserved:world"]}


def flow(*, time: str = "2026-11-30T10:00:00.123456789Z", verdict: str = "FORWARDED", direction: str = "EGRESS",
         src: str = "10.0.1.5", dst: str = "93.184.216.34", protocol: str = "TCP", port: int = 443,
         source: Mapping[str, Any] | None = None, destination: Mapping[str, Any] | None = None,
         names: Iterable[str] = (), dns: Mapping[str, Any] | None = None, is_reply: bool = False,
         allowed_by: Iterable[Mapping[str, Any]] = (), denied_by: Iterable[Mapping[str, Any]] = (),
         drop_reason: str = "", node: str = "kind-worker") -> dict[str, Any]:
    """One `hubble observe -o jsonpb` record."""
    l4: dict[str, Any] = ({protocol: {"source_port": 40000, "destination_port": port}}
                          if protocol in ("TCP", "UDP", "SCTP") else {protocol: {"type": 8}} if protocol else {})
    body: dict[str, Any] = {
        "time": time, "verdict": verdict, "IP": {"source": src, "destination": dst, "ipVersion": "IPv4"},
        "l4": l4, "source": dict(source or endpoint("team-a", "web-1", 12345, app="web")),
        "destination": dict(destination or WORLD), "Type": "L7" if dns else "L3_L4", "node_name": node,
        "traffic_direction": direction, "is_reply": is_reply,
    }
    if names := list(names):
        body["destination_names"] = names
    if dns is not None:
        body["l7"] = {"type": "RESPONSE", "dns": dict(dns)}
    side = "egress" if direction == "EGRESS" else "ingress"
    if allowed_by := list(allowed_by):
        body[f"{side}_allowed_by"] = allowed_by
    if denied_by := list(denied_by):
        body[f"{side}_denied_by"] = denied_by
    if drop_reason:
        body["drop_reason_desc"] = drop_reason
    return {"flow": body, "node_name": node, "time": time}


def lines(records: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)
