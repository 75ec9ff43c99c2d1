"""webhook/core/ports.py: Cilium port strings read like Go's strconv.ParseUint(s, 0, 16), and port sets judged
on the union of their entries (so "every port" cannot be spelled as several ranges)."""

from __future__ import annotations

import pytest

from webhook.core.normalize import normalize
from webhook.core.ports import (
    MAX_PORT,
    CiliumPort,
    PortSet,
    PortSyntaxError,
    is_service_name,
    parse_cilium_port,
    parse_go_uint16,
)
from webhook.core.shape import ShapeError

# What strconv.ParseUint(s, 0, 16) returns for each text (None: an error).
GO_PARSE_UINT = [
    ("80", 80),
    ("0x50", 80),
    ("0X50", 80),
    ("0o120", 80),
    ("0O120", 80),
    ("0120", 80),  # a leading 0 is octal
    ("0b1010000", 80),
    ("0B1010000", 80),
    ("8_0", 80),  # underscores only with base 0, between digits
    ("0x_50", 80),  # ... or right after a base prefix
    ("0_120", 80),
    ("65535", 65535),
    ("0xffff", 65535),
    ("0xFFFF", 65535),
    ("0", 0),
    ("00", 0),
    ("0x0", 0),
    ("_80", None),
    ("80_", None),
    ("8__0", None),
    ("0x50_", None),
    ("+80", None),
    ("-80", None),
    (" 80", None),
    ("80 ", None),
    ("²", None),  # str.isdigit() is True, Go refuses it
    ("٨٠", None),  # Arabic-Indic digits
    ("\uff18\uff10", None),  # full-width digits
    ("65536", None),
    ("0x10000", None),
    ("99999999999999999999", None),
    ("0x", None),
    ("0b", None),
    ("0o", None),
    ("", None),
    ("08", None),  # 8 is not an octal digit
    ("0b102", None),
    ("0x5g", None),
    ("1e3", None),
    ("80.0", None),
]


@pytest.mark.parametrize(("text", "expected"), GO_PARSE_UINT, ids=[repr(t) for t, _ in GO_PARSE_UINT])
def test_parse_go_uint16_mirrors_go_parse_uint(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(PortSyntaxError):
            parse_go_uint16(text)
    else:
        assert parse_go_uint16(text) == expected


@pytest.mark.parametrize("name", ["http", "https", "dns-tcp", "metrics", "a1", "HTTP", "x" * 15, "h-t-t-p"])
def test_service_names(name: str) -> None:
    assert is_service_name(name)


@pytest.mark.parametrize("text", ["", "80", "-http", "http-", "ht--tp", "x" * 16, "ht tp", "ht_tp", "hëllo", "²",
                                  "0x50!", "http/tcp"])
def test_not_service_names(text: str) -> None:
    assert not is_service_name(text)


def test_a_cilium_port_is_a_number_when_go_reads_one_and_a_name_otherwise() -> None:
    assert parse_cilium_port("0x50") == CiliumPort(80)
    assert parse_cilium_port("8_0") == CiliumPort(80)
    assert parse_cilium_port("HTTP") == CiliumPort(None, "http")
    # "0xg" is no number; as a service name (letters and digits) Cilium takes it for a named port.
    assert parse_cilium_port("0xg") == CiliumPort(None, "0xg")
    assert parse_cilium_port("0x") == CiliumPort(None, "0x")
    for text in ("²", "+80", " 80", "_80", "65536", "8__0"):
        with pytest.raises(PortSyntaxError, match="not a port number"):
            parse_cilium_port(text)


def cnp_port(port: object, **extra: object) -> dict[str, object]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
            "spec": {"endpointSelector": {}, "egress": [{"toCIDR": ["169.254.169.254/32"], "toPorts": [
                {"ports": [{"port": port, "protocol": "TCP", **extra}]}]}]}}


@pytest.mark.parametrize("text", ["0x50", "0X50", "0o120", "0120", "0b1010000", "8_0", "0x_50"])
def test_normalize_reads_cilium_port_spellings_as_port_80(text: str) -> None:
    port = normalize(cnp_port(text)).rules[0].ports[0]
    assert (port.start, port.name) == (80, "")


@pytest.mark.parametrize("text", ["0", "00", "0x0", "0b0"])
def test_cilium_port_zero_in_any_spelling_is_every_port(text: str) -> None:
    port = normalize(cnp_port(text)).rules[0].ports[0]
    assert port.start is None and port.name == ""


@pytest.mark.parametrize("text", ["²", "٨٠", "+80", " 80", "_80", "80_", "8__0", "65536", "0x50_"])
def test_normalize_refuses_what_cilium_refuses_naming_the_field(text: str) -> None:
    with pytest.raises(ShapeError) as err:
        normalize(cnp_port(text))
    assert err.value.path == "spec.egress[0].toPorts[0].ports[0].port"


def test_kubernetes_ports_are_numbers_or_names_never_go_spellings() -> None:
    def k8s(port: object) -> dict[str, object]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
                "spec": {"podSelector": {}, "egress": [{"ports": [{"port": port}]}]}}

    assert normalize(k8s("80")).rules[0].ports[0].start == 80
    assert normalize(k8s("http")).rules[0].ports[0].name == "http"
    for text in ("²", "٨٠", "8_0x"):
        with pytest.raises(ShapeError):
            normalize(k8s(text))


# --- PortSet -----------------------------------------------------------------------------------

def ports(*entries: tuple[str, int | None, int | None]) -> PortSet:
    return PortSet.of((proto, start, end, "") for proto, start, end in entries)


def test_split_ranges_are_merged_per_protocol() -> None:
    s = ports(("TCP", 1, 79), ("TCP", 81, 65535))
    assert s.ranges == (("TCP", ((1, 79), (81, 65535))),)
    assert s.count("TCP") == MAX_PORT - 1
    assert s.every_port(0.9) and s.open_protocol(0.9) == "TCP"
    assert not s.allows("TCP", 80) and s.allows("TCP", 81)


def test_adjacent_and_overlapping_ranges_merge() -> None:
    assert ports(("UDP", 1, 32767), ("UDP", 32768, 65535)).ranges == (("UDP", ((1, 65535),)),)
    assert ports(("TCP", 10, 20), ("TCP", 15, 30), ("TCP", 31, None)).ranges == (("TCP", ((10, 31),)),)


def test_no_port_is_every_port_of_the_protocol_and_any_is_every_l4_protocol() -> None:
    assert ports(("TCP", None, None)).coverage() == 1.0
    s = ports(("ANY", 1024, 65535))
    assert {p for p, _ in s.ranges} == {"TCP", "UDP", "SCTP"}
    assert s.every_port(0.9) and not s.every_port(0.99)


def test_coverage_is_per_protocol_never_summed_across_protocols() -> None:
    s = ports(("TCP", 1, 40000), ("UDP", 40001, 65535))
    assert s.coverage() == pytest.approx(40000 / MAX_PORT)
    assert not s.every_port(0.9) and s.open_protocol(0.9) == ""


def test_a_few_ports_are_not_every_port() -> None:
    s = ports(("TCP", 443, None), ("TCP", 8443, None))
    assert s.count("TCP") == 2 and not s.every_port(0.9)


def test_icmp_and_named_ports_open_no_numeric_port() -> None:
    s = PortSet.of([("ICMP", None, None, ""), ("TCP", None, None, "http")])
    assert s.ranges == () and s.names == ("TCP/http",) and s.coverage() == 0.0
    assert PortSet().empty and not s.empty


def test_union_adds_sets_up() -> None:
    low, high = ports(("TCP", 1, 32767)), ports(("TCP", 32768, 65535))
    assert not low.every_port(0.9) and not high.every_port(0.9)
    both = low.union(high)
    assert both.ranges == (("TCP", ((1, 65535),)),) and both.every_port(1.0)
    assert low.union(PortSet()) == low
    assert PortSet.everything().coverage() == 1.0


def test_port_set_shares_equal_short_lists_and_counts_long_ones_alike() -> None:
    from webhook.core.ports import PortSet, port_set
    short = (("TCP", 80, None, ""), ("ANY", 1000, 2000, ""), ("UDP", None, None, ""))
    assert port_set(short) is port_set(tuple(short)) and port_set(short) == PortSet.of(short)
    long = tuple(("TCP", p, None, "") for p in range(1, 40, 2))
    assert port_set(long) == PortSet.of(long) and port_set(long).count("TCP") == 20
