"""Hubble flow records read back as evidence (issue 15's input): `hubble observe -o jsonpb` lines
(`{"flow": {...}, "node_name": ..., "time": ...}`) and Hubble Exporter files (the same flow object), plain or gzip.

Field names are Hubble's protojson with proto names (cilium/cilium api/v1/flow/flow.proto, observer.proto):
`verdict`, `traffic_direction`, `IP.source`/`IP.destination`, `l4.TCP|UDP|SCTP.destination_port`,
`l4.ICMPv4|ICMPv6`, `source`/`destination` (`namespace`, `labels` as `k8s:app=web`, `pod_name`, `identity`),
`destination_names`, `l7.dns` (`query`, `ips`), `is_reply`, `ingress_allowed_by`/`egress_allowed_by` (policy
`name`, `namespace`, `kind`) and `drop_reason_desc`.

Read as a stream: one line at a time, never the whole file, so a 1 GB export runs in bounded memory. A line
that is not a flow (malformed JSON, a lost-events record, over MAX_LINE_BYTES) is counted, not fatal: an export
is evidence, not input to trust blindly. Only flows inside the [since, until] window are yielded; the window
the flows actually cover is kept (`FlowStats`), so nothing is called unused outside it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

from webhook.offline.decisionlog import parse_timestamp

MAX_LINE_BYTES = 1 << 20  # a flow is a few KB; a longer line is counted as malformed, never held whole
GZIP_MAGIC = b"\x1f\x8b"
L4_PROTOCOLS = ("TCP", "UDP", "SCTP")
ICMP = ("ICMPv4", "ICMPv6")


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow as Hubble saw it (`k8s:app=web` -> app: web; `reserved:world` -> reserved:world: "")."""

    namespace: str = ""
    pod_name: str = ""
    identity: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyRef:
    """A policy Hubble says allowed the flow (it attributes flows to policies, never to rules)."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Flow:
    time: datetime | None
    verdict: str  # FORWARDED, DROPPED, AUDIT, ...
    direction: str  # INGRESS, EGRESS, or "" when Hubble could not tell
    source_ip: str
    destination_ip: str
    protocol: str  # TCP, UDP, SCTP, ICMPv4, ICMPv6, or "" (L3 only)
    destination_port: int  # 0 for ICMP and L3-only flows
    source: Endpoint
    destination: Endpoint
    destination_names: tuple[str, ...] = ()  # DNS names Cilium saw resolve to the destination
    dns_query: str = ""  # l7.dns.query, without the trailing dot
    dns_ips: tuple[str, ...] = ()
    is_reply: bool = False
    allowed_by: tuple[PolicyRef, ...] = ()  # ingress_allowed_by or egress_allowed_by, as the direction says
    drop_reason: str = ""


@dataclass
class FlowStats:
    """What was read: lines, flows in the window, those left out, and the window the flows cover."""

    lines: int = 0
    flows: int = 0
    malformed: int = 0
    outside_window: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def saw(self, when: datetime | None) -> None:
        if when is None:
            return
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


def _labels(value: Any) -> dict[str, str]:
    """Hubble's `source:key=value` labels: Kubernetes ones (`k8s:`) by their key, others (`reserved:world`,
    `cidr:...`) keep their source in the key, so they never pass for a pod label."""
    out: dict[str, str] = {}
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, str):
            continue
        head, sep, rest = item.partition(":")
        if sep and "=" not in head and head == "k8s":
            item = rest
        key, _, val = item.partition("=")
        if key:
            out[key] = val
    return out


def _endpoint(value: Any) -> Endpoint:
    if not isinstance(value, Mapping):
        return Endpoint()
    identity = value.get("identity")
    return Endpoint(namespace=str(value.get("namespace") or ""), pod_name=str(value.get("pod_name") or ""),
                    identity=identity if isinstance(identity, int) and not isinstance(identity, bool) else 0,
                    labels=_labels(value.get("labels")))


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_flow(record: Mapping[str, Any]) -> Flow | None:
    """One decoded line -> a Flow, or None when it holds no flow (a lost-events or node-status record)."""
    flow = record.get("flow") if isinstance(record.get("flow"), Mapping) else record
    if not isinstance(flow, Mapping) or "verdict" not in flow:
        return None
    ip, l4 = _mapping(flow.get("IP")), _mapping(flow.get("l4"))
    protocol, port = "", 0
    for name in (*L4_PROTOCOLS, *ICMP):
        if isinstance(l4.get(name), Mapping):
            protocol = name
            raw = l4[name].get("destination_port")
            port = raw if name in L4_PROTOCOLS and isinstance(raw, int) and not isinstance(raw, bool) else 0
            break
    dns = _mapping(_mapping(flow.get("l7")).get("dns"))
    direction = str(flow.get("traffic_direction") or "")
    allowed = flow.get("egress_allowed_by" if direction == "EGRESS" else "ingress_allowed_by")
    return Flow(
        time=parse_timestamp(flow.get("time") or record.get("time")), verdict=str(flow.get("verdict") or ""),
        direction=direction if direction in ("INGRESS", "EGRESS") else "",
        source_ip=str(ip.get("source") or ""), destination_ip=str(ip.get("destination") or ""),
        protocol=protocol, destination_port=port,
        source=_endpoint(flow.get("source")), destination=_endpoint(flow.get("destination")),
        destination_names=_strings(flow.get("destination_names")),
        dns_query=str(dns.get("query") or "").rstrip("."), dns_ips=_strings(dns.get("ips")),
        is_reply=flow.get("is_reply") is True,
        allowed_by=tuple(PolicyRef(str(p.get("kind") or ""), str(p.get("namespace") or ""), str(p.get("name") or ""))
                         for p in (allowed if isinstance(allowed, list) else ()) if isinstance(p, Mapping)),
        drop_reason=str(flow.get("drop_reason_desc") or ""))


def open_export(stream: IO[bytes]) -> IO[bytes]:
    """The stream itself, or its gzip decompression when it starts with the gzip magic (read lazily)."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, stream))
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered))
    return cast(IO[bytes], buffered)


def _lines(stream: IO[bytes], stats: FlowStats) -> Iterator[bytes]:
    """Lines of at most MAX_LINE_BYTES; a longer one is skipped to its end, counted as malformed."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            stats.lines += 1
            stats.malformed += 1
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
            continue
        yield line


def read_flows(streams: Iterable[IO[bytes]], stats: FlowStats, since: datetime | None = None,
               until: datetime | None = None) -> Iterator[Flow]:
    """Every flow of the exports, in file order, within [since, until]; `stats` counts as it goes."""
    for stream in streams:
        for line in _lines(open_export(stream), stats):
            if not line.strip():
                continue
            stats.lines += 1
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                stats.malformed += 1
                continue
            flow = parse_flow(record) if isinstance(record, Mapping) else None
            if flow is None:
                if not (isinstance(record, Mapping) and "lost_events" in record):  # lost events: not a flow, fine
                    stats.malformed += 1
                continue
            if flow.time is not None and ((since and flow.time < since) or (until and flow.time > until)):
                stats.outside_window += 1
                continue
            stats.flows += 1
            stats.saw(flow.time)
            yield flow
