"""Hubble flow exports read as a stream (webhook/offline/flows.py): fields as Hubble writes them, gzip or plain,
bad lines counted rather than fatal, the observed window kept."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

from tests.flowgen import WORLD, endpoint, flow, lines
from webhook.offline.flows import MAX_LINE_BYTES, Endpoint, FlowStats, PolicyRef, read_flows


def _read(data: bytes, **window: datetime) -> tuple[list, FlowStats]:  # type: ignore[type-arg]
    stats = FlowStats()
    return list(read_flows([io.BytesIO(data)], stats, **window)), stats


def test_a_forwarded_egress_flow_is_read_with_every_documented_field() -> None:
    record = flow(names=["example.com"], allowed_by=[{"name": "web-egress", "namespace": "team-a",
                                                      "kind": "CiliumNetworkPolicy"}])
    [read], stats = _read(lines([record]))
    assert (read.verdict, read.direction, read.protocol, read.destination_port) == ("FORWARDED", "EGRESS", "TCP", 443)
    assert (read.source_ip, read.destination_ip) == ("10.0.1.5", "93.184.216.34")
    assert read.source == Endpoint("team-a", "web-1", 12345, {"app": "web", "io.kubernetes.pod.namespace": "team-a"})
    assert read.destination.labels == {"reserved:world": ""}  # never mistaken for a pod label
    assert read.destination_names == ("example.com",)
    assert read.allowed_by == (PolicyRef("CiliumNetworkPolicy", "team-a", "web-egress"),)
    assert read.time == datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
    assert (stats.lines, stats.flows, stats.malformed) == (1, 1, 0)


def test_dns_answers_icmp_and_drops_are_read() -> None:
    records = [flow(protocol="UDP", port=53, dst="10.96.0.10", dns={"query": "api.example.com.", "ips": ["192.0.2.7"]},
                    destination=endpoint("kube-system", "coredns-1", 101, **{"k8s-app": "kube-dns"})),
               flow(protocol="ICMPv4", verdict="DROPPED", drop_reason="POLICY_DENIED", destination=WORLD)]
    [dns, icmp], _ = _read(lines(records))
    assert (dns.dns_query, dns.dns_ips, dns.destination_port) == ("api.example.com", ("192.0.2.7",), 53)
    assert dns.destination.labels["k8s-app"] == "kube-dns"
    assert (icmp.protocol, icmp.destination_port, icmp.verdict, icmp.drop_reason) == (
        "ICMPv4", 0, "DROPPED", "POLICY_DENIED")


def test_an_exporter_file_without_the_envelope_reads_the_same() -> None:
    record = flow()
    assert _read(lines([record["flow"]]))[0] == _read(lines([record]))[0]


def test_gzip_is_recognized_by_its_magic_not_its_name() -> None:
    data = lines([flow(), flow(port=80)])
    plain, _ = _read(data)
    zipped, stats = _read(gzip.compress(data))
    assert zipped == plain and stats.flows == 2


def test_bad_lines_are_counted_and_reading_goes_on() -> None:
    data = b"".join([b"{not json\n", b"\xff\xfe\n", b"[1, 2]\n", b'{"lost_events": {"num_events_lost": 3}}\n',
                     b"x" * (MAX_LINE_BYTES + 10) + b"\n", b"\n", lines([flow()])])
    read, stats = _read(data)
    assert len(read) == 1
    assert (stats.lines, stats.malformed, stats.flows) == (6, 4, 1)  # lost events: not a flow, not malformed


def test_only_flows_in_the_window_are_read_and_the_window_seen_is_kept() -> None:
    times = ["2026-11-30T09:00:00Z", "2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z", "2026-11-30T12:00:00Z"]
    read, stats = _read(lines(flow(time=t) for t in times), since=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
                        until=datetime(2026, 11, 30, 11, 30, tzinfo=UTC))
    assert len(read) == 2 and stats.outside_window == 2
    assert (stats.first, stats.last) == (datetime(2026, 11, 30, 10, tzinfo=UTC), datetime(2026, 11, 30, 11, tzinfo=UTC))


def test_a_large_export_is_streamed_not_held() -> None:
    """Many files one after another, as a generator: nothing is read before it is asked for."""
    stats = FlowStats()
    flows = read_flows((io.BytesIO(lines([flow(port=p)])) for p in range(1, 2001)), stats)
    first = next(flows)
    assert first.destination_port == 1 and stats.flows == 1
    assert sum(1 for _ in flows) == 1999 and stats.flows == 2000


def test_json_fields_of_the_wrong_type_are_ignored_not_fatal() -> None:
    record = flow()
    record["flow"].update({"l4": {"TCP": {"destination_port": "443"}}, "source": ["x"], "destination_names": "a",
                           "is_reply": "yes", "egress_allowed_by": {"name": "x"}})
    [read], stats = _read(json.dumps(record).encode())
    assert (read.destination_port, read.source, read.destination_names, read.is_reply, read.allowed_by) == (
        0, Endpoint(), (), False, ())
    assert stats.malformed == 0


def test_denied_by_and_a_policy_known_only_by_its_labels() -> None:
    """An agent older than Policy.kind wrote only the policy labels Cilium derives kind, name and namespace from."""
    labels = ["k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy", "k8s:io.cilium.k8s.policy.name=web-egress",
              "k8s:io.cilium.k8s.policy.namespace=team-a", "k8s:io.cilium.k8s.policy.uid=62075d2d"]
    records = [flow(allowed_by=[{"name": "web-egress", "namespace": "team-a", "labels": labels, "revision": "7"}]),
               flow(verdict="DROPPED", drop_reason="POLICY_DENY",
                    denied_by=[{"name": "no-world", "kind": "CiliumClusterwideNetworkPolicy"}])]
    [allowed, denied], _ = _read(lines(records))
    assert allowed.allowed_by == (PolicyRef("NetworkPolicy", "team-a", "web-egress"),) and allowed.denied_by == ()
    assert denied.denied_by == (PolicyRef("CiliumClusterwideNetworkPolicy", "", "no-world"),)
    assert denied.drop_reason == "POLICY_DENY"


def test_deprecated_and_unknown_fields_read_as_hubble_meant_them() -> None:
    """The numeric `drop_reason` without `drop_reason_desc`; no traffic_direction: both sides' policies; a bare
    flow with no verdict (VERDICT_UNKNOWN, left out by protojson) is still a flow."""
    old = flow(verdict="DROPPED")
    old["flow"]["drop_reason"] = 133
    unknown = flow(direction="INGRESS", allowed_by=[{"name": "in", "kind": "CiliumNetworkPolicy"}])
    del unknown["flow"]["traffic_direction"]
    unknown["flow"]["egress_allowed_by"] = [{"name": "out", "kind": "CiliumNetworkPolicy"}]
    bare = {k: v for k, v in flow()["flow"].items() if k != "verdict"}
    [dropped, either, verdictless], stats = _read(lines([old, unknown, bare]))
    assert dropped.drop_reason == "POLICY_DENIED"
    assert (either.direction, [p.name for p in either.allowed_by]) == ("", ["in", "out"])
    assert (verdictless.verdict, verdictless.destination_port, stats.malformed) == ("", 443, 0)


def test_exporter_events_are_counted_and_lost_flows_summed() -> None:
    """num_events_lost is a uint64, which protojson writes as a string."""
    data = b"".join([b'{"agent_event": {"type": "AGENT_STARTED"}, "time": "2026-11-30T10:00:00Z"}\n',
                     b'{"debug_event": {}}\n', b'{"lost_events": {"source": "HUBBLE_RING_BUFFER", '
                     b'"num_events_lost": "42"}}\n', b'{"node_status": {}}\n', lines([flow()])])
    read, stats = _read(data)
    assert len(read) == 1 and (stats.events, stats.lost, stats.malformed) == (4, 42, 0)


def test_nesting_deeper_than_any_flow_is_a_bad_line_not_a_crash() -> None:
    stats = FlowStats()
    data = b"[" * 200_000 + b"\n" + b'{"a":' * 100_000 + b"\n" + lines([flow()])
    assert len(list(read_flows([io.BytesIO(data)], stats))) == 1
    assert stats.malformed == 2


def test_endpoint_fields_of_the_wrong_type_read_as_absent() -> None:
    record = {"flow": {"verdict": "FORWARDED", "traffic_direction": "EGRESS",
                       "source": {"identity": {"a": 1}, "labels": [{"x": 1}], "namespace": [1], "pod_name": 7},
                       "destination": {"identity": [1], "labels": "k8s:app=web"}}}
    stats = FlowStats()
    (read,) = read_flows([io.BytesIO(json.dumps(record).encode() + b"\n")], stats)
    assert read.source == Endpoint() and read.destination == Endpoint()
