"""Hubble flow records read back as evidence (issue 15's input): `hubble observe -o jsonpb` lines
(`{"flow": {...}, "node_name": ..., "time": ...}`) and Hubble Exporter files (the same flow object), plain or gzip.

Field names are Hubble's protojson with proto names (cilium/cilium api/v1/flow/flow.proto, observer.proto):
`verdict`, `traffic_direction`, `IP.source`/`IP.destination`, `l4.TCP|UDP|SCTP.destination_port`,
`l4.ICMPv4|ICMPv6`, `source`/`destination` (`namespace`, `labels` as `k8s:app=web`, `pod_name`, `identity`),
`destination_names`, `l7.dns` (`query`, `ips`), `is_reply`, `ingress_allowed_by`/`egress_allowed_by` and
`ingress_denied_by`/`egress_denied_by` (policy `name`, `namespace`, `kind`) and `drop_reason_desc`. Checked against
real lines (tests/flows/README.md): protojson omits zero values, so an absent `verdict` or `traffic_direction` is the
UNKNOWN enum (or a field mask), and older agents wrote only the deprecated `reply`, `drop_reason` and policy labels.

Read as a stream: one line at a time, never the whole file, so a 1 GB export runs in bounded memory. A line
that is not a flow (malformed JSON, over MAX_LINE_BYTES) is counted, not fatal: an export is evidence, not input
to trust blindly. The Exporter also writes agent, debug and lost-events records: counted as events, not as
malformed, with the flows a lost-events record says were lost summed. Only flows inside the [since, until] window
are yielded; the window the flows actually cover is kept (`FlowStats`), so nothing is called unused outside it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

from webhook.core.flow_evidence import Window
from webhook.offline.decisionlog import parse_timestamp

MAX_LINE_BYTES = 1 << 20  # a flow is a few KB; a longer line is counted as malformed, never held whole
GZIP_MAGIC = b"\x1f\x8b"
L4_PROTOCOLS = ("TCP", "UDP", "SCTP")
ICMP = ("ICMPv4", "ICMPv6")
# The other members of observer.proto's ExportEvent/GetFlowsResponse `response_types` oneof: records, not flows.
EVENTS = ("lost_events", "agent_event", "debug_event", "node_status")
FLOW_FIELDS = ("verdict", "traffic_direction", "IP", "l4", "source", "destination")  # a bare (legacy `-o json`) flow
# flow.proto DropReason numbers for the deprecated numeric `drop_reason`, all an agent older than `drop_reason_desc`
# wrote: the policy ones by name.
DROP_REASONS = {133: "POLICY_DENIED", 181: "POLICY_DENY", 189: "AUTH_REQUIRED"}
# Policy labels Cilium derives Policy kind/name/namespace from (cilium/cilium pkg/k8s/apis/cilium.io/utils/utils.go,
# GetPolicyFromLabels): for an agent that wrote only `labels`, before Policy.kind existed.
POLICY_LABELS = {"k8s:io.cilium.k8s.policy.derived-from": "kind", "k8s:io.cilium.k8s.policy.name": "name",
                 "k8s:io.cilium.k8s.policy.namespace": "namespace"}


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow as Hubble saw it (`k8s:app=web` -> app: web; `reserved:world` -> reserved:world: "")."""

    namespace: str = ""
    pod_name: str = ""
    identity: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[str, frozenset[tuple[str, str]]]:
        """The endpoint as a hashable key (namespace, labels), for caches keyed by who a flow is between; built
        once per object (the reader hands the same object to every flow of a pod). Kept in the instance's
        __dict__: functools.cached_property takes a lock per read on Python 3.11."""
        found: tuple[str, frozenset[tuple[str, str]]] | None = self.__dict__.get("_shape")
        if found is None:
            found = self.__dict__["_shape"] = (self.namespace, frozenset(self.labels.items()))
        return found


@dataclass(frozen=True)
class PolicyRef:
    """A policy Hubble says allowed or denied the flow (it attributes flows to policies, never to rules)."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Flow:
    time: datetime | None
    verdict: str  # FORWARDED, DROPPED, AUDIT, REDIRECTED, ..., or "" (VERDICT_UNKNOWN or masked out)
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
    is_reply: bool = False  # False also when Hubble could not tell (is_reply absent)
    allowed_by: tuple[PolicyRef, ...] = ()  # ingress_allowed_by or egress_allowed_by, as the direction says
    drop_reason: str = ""  # the DropReason name: POLICY_DENIED (no allow), POLICY_DENY (a deny rule), ...
    denied_by: tuple[PolicyRef, ...] = ()  # ingress_denied_by or egress_denied_by (deny rules; AUDIT flows too)


@dataclass
class FlowStats:
    """What was read: lines, flows in the window, those left out, and the window the flows cover. `lost`: flows
    Hubble itself says it dropped from the export (lost-events records), so an absence is weaker evidence."""

    lines: int = 0
    flows: int = 0
    malformed: int = 0
    outside_window: int = 0
    events: int = 0  # agent, debug, node-status and lost-events records: not flows, not malformed
    lost: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def window(self, since: datetime | None = None, until: datetime | None = None) -> Window:
        """What was read, as the evidence states it, with the window asked for."""
        return Window(flows=self.flows, first=self.first, last=self.last, since=since, until=until, lines=self.lines,
                      malformed=self.malformed, outside_window=self.outside_window)

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


_NO_ENDPOINT = Endpoint()
_SEEN_ENDPOINTS: dict[tuple[Any, ...], Endpoint] = {}  # a pod's every flow carries the same endpoint: read it once
_SEEN_MAX, _SEEN_KEY_CHARS = 1 << 12, 4096


def _endpoint(value: Any) -> Endpoint:
    if not isinstance(value, dict):
        return _NO_ENDPOINT
    labels, namespace, pod, identity = (value.get(k) for k in ("labels", "namespace", "pod_name", "identity"))
    key: tuple[Any, ...] | None = None
    if (isinstance(labels, list) and all(isinstance(x, str) for x in labels) and sum(map(len, labels)) < _SEEN_KEY_CHARS
            and all(isinstance(x, str | int | None) for x in (namespace, pod, identity))):
        key = (namespace, pod, identity, *labels)  # hashable, and small: the cache stays bounded whatever the input
        found = _SEEN_ENDPOINTS.get(key)
        if found is not None:
            return found
    found = Endpoint(namespace=namespace if isinstance(namespace, str) else "",
                     pod_name=pod if isinstance(pod, str) else "",
                     identity=identity if isinstance(identity, int) and not isinstance(identity, bool) else 0,
                     labels=_labels(labels))
    if key is not None:
        if len(_SEEN_ENDPOINTS) >= _SEEN_MAX:
            _SEEN_ENDPOINTS.clear()
        _SEEN_ENDPOINTS[key] = found
    return found


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


# JSON objects are dicts: checked as such (isinstance against the Mapping ABC costs a tenth of a flow's parse).
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _policies(value: Any) -> tuple[PolicyRef, ...]:
    """flow.proto `Policy` entries; kind, name and namespace from the policy labels when the fields are absent."""
    out: list[PolicyRef] = []
    for p in value if isinstance(value, list) else ():
        if not isinstance(p, dict):
            continue
        fields = {"kind": p.get("kind"), "name": p.get("name"), "namespace": p.get("namespace")}
        for label in _strings(p.get("labels")):
            key, _, val = label.partition("=")
            if key in POLICY_LABELS and not fields[POLICY_LABELS[key]]:
                fields[POLICY_LABELS[key]] = val
        out.append(PolicyRef(*(str(fields[f] or "") for f in ("kind", "namespace", "name"))))
    return tuple(out)


def _by_direction(flow: Mapping[str, Any], what: str, direction: str) -> tuple[PolicyRef, ...]:
    """`egress_<what>_by` or `ingress_<what>_by` as the direction says; both when Hubble could not tell."""
    sides = {"EGRESS": ("egress",), "INGRESS": ("ingress",)}.get(direction, ("ingress", "egress"))
    return tuple(p for side in sides for p in _policies(flow.get(f"{side}_{what}_by")))


def _is_reply(flow: Mapping[str, Any]) -> bool:
    """`is_reply` is a google.protobuf.BoolValue, a bare JSON bool when set (true or false); an agent older than it
    wrote only the deprecated `reply`, present when true (flow.proto fields 26 and 16)."""
    value = flow.get("is_reply")
    return value if isinstance(value, bool) else flow.get("reply") is True


def _drop_reason(flow: Mapping[str, Any]) -> str:
    """`drop_reason_desc` (the DropReason name), else the deprecated numeric `drop_reason` by name when it is a
    policy one, as its number otherwise."""
    desc, code = flow.get("drop_reason_desc"), flow.get("drop_reason")
    if isinstance(desc, str) and desc:
        return desc
    if isinstance(code, int) and not isinstance(code, bool) and code:
        return DROP_REASONS.get(code, str(code))
    return ""


def _lost(record: Mapping[str, Any]) -> int:
    """LostEvent.num_events_lost, a uint64, which protojson writes as a string."""
    raw = _mapping(record.get("lost_events")).get("num_events_lost")
    try:
        return max(int(raw), 0) if isinstance(raw, int | str) and not isinstance(raw, bool) else 0
    except ValueError:
        return 0


def parse_flow(record: Mapping[str, Any]) -> Flow | None:
    """One decoded line -> a Flow, or None when it holds no flow (a lost-events, agent, debug or node-status record).
    Fields as cilium/cilium api/v1/flow/flow.proto names them (protojson, UseProtoNames: api/v1/flow/flow.pb.json.go);
    a record under `flow` is a flow even with no verdict: VERDICT_UNKNOWN is omitted like every zero value."""
    if isinstance(record.get("flow"), dict):
        flow: Mapping[str, Any] = record["flow"]
    elif any(key in record for key in EVENTS) or not any(key in record for key in FLOW_FIELDS):
        return None
    else:
        flow = record
    ip, l4 = _mapping(flow.get("IP")), _mapping(flow.get("l4"))
    protocol, port = "", 0
    for name in (*L4_PROTOCOLS, *ICMP):
        if isinstance(l4.get(name), dict):
            protocol = name
            raw = l4[name].get("destination_port")
            port = raw if name in L4_PROTOCOLS and isinstance(raw, int) and not isinstance(raw, bool) else 0
            break
    dns = _mapping(_mapping(flow.get("l7")).get("dns"))
    direction = str(flow.get("traffic_direction") or "")
    direction = direction if direction in ("INGRESS", "EGRESS") else ""
    return Flow(
        time=parse_timestamp(flow.get("time") or record.get("time")), verdict=str(flow.get("verdict") or ""),
        direction=direction,
        source_ip=str(ip.get("source") or ""), destination_ip=str(ip.get("destination") or ""),
        protocol=protocol, destination_port=port,
        source=_endpoint(flow.get("source")), destination=_endpoint(flow.get("destination")),
        destination_names=_strings(flow.get("destination_names")),
        dns_query=str(dns.get("query") or "").rstrip("."), dns_ips=_strings(dns.get("ips")),
        is_reply=_is_reply(flow), allowed_by=_by_direction(flow, "allowed", direction),
        drop_reason=_drop_reason(flow), denied_by=_by_direction(flow, "denied", direction))


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
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than any flow
                stats.malformed += 1
                continue
            flow = parse_flow(record) if isinstance(record, dict) else None
            if flow is None:
                if isinstance(record, dict) and any(key in record for key in EVENTS):  # not a flow, fine
                    stats.events += 1
                    stats.lost += _lost(record)
                else:
                    stats.malformed += 1
                continue
            if flow.time is not None and ((since and flow.time < since) or (until and flow.time > until)):
                stats.outside_window += 1
                continue
            stats.flows += 1
            stats.saw(flow.time)
            yield flow
