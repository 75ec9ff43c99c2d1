"""Port numbers and port sets, read the way the API server and the CNI read them.

Two jobs, both pure:

- `parse_cilium_port` mirrors how Cilium reads `toPorts[].ports[].port`: Go's
  `strconv.ParseUint(s, 0, 16)` (cilium/cilium pkg/policy/api/rule_validation.go,
  `PortProtocol.sanitize`, and pkg/policy/l4.go), so `"0x50"`, `"0o120"`, `"0120"` (octal)
  and `"8_0"` are all port 80. The CRD's pattern does not stop these spellings, so a guardrail
  that compared strings would be walked around. A string that is not a number is a named port
  only if it is an IANA service name (pkg/iana `IsSvcName`); anything else Cilium refuses, and
  so do we, with an error naming the field.
- `PortSet` is the union of a rule's port entries per protocol. "Every port" is judged on
  the union, not entry by entry: `TCP 1-79` + `TCP 81-65535` opens every port but one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

MAX_PORT = 65535
L4_PROTOCOLS = ("TCP", "UDP", "SCTP")  # the protocols that have ports; Cilium's ANY stands for all three

# RFC 6335 section 5.1 service names, as Kubernetes' IsValidPortName and Cilium's iana.IsSvcName
# check them: 1-15 characters of [a-z0-9-] (Cilium: either case), a letter somewhere, no leading,
# trailing or doubled hyphen.
_SVC_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9]|-(?=[a-zA-Z0-9]))*$")


class PortSyntaxError(ValueError):
    """The text is neither a port number nor a service name."""


def is_service_name(text: str) -> bool:
    return (0 < len(text) <= 15 and text.isascii() and _SVC_NAME.match(text) is not None
            and any(c.isalpha() for c in text))


def _underscore_ok(text: str) -> bool:
    """Go's strconv.underscoreOK: `_` only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    hexadecimal = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexadecimal = 2, "0", text[1].lower() == "x"
    for ch in text[i:]:
        if ch.isascii() and (ch.isdigit() or (hexadecimal and ch.lower() in "abcdef")):
            saw = "0"
            continue
        if ch == "_":
            if saw != "0":
                return False
            saw = "_"
            continue
        if saw == "_":
            return False
        saw = "!"
    return saw != "_"


def parse_go_uint16(text: str) -> int:
    """`strconv.ParseUint(text, 0, 16)`: base from the prefix (0b, 0o, 0x, leading 0 = octal), `_`
    separators allowed, ASCII digits only, no sign, no spaces; PortSyntaxError otherwise."""
    if not text:
        raise PortSyntaxError("empty")
    body, base = text, 10
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            body, base = text[2:], {"b": 2, "o": 8, "x": 16}[prefix]
        else:
            body, base = text[1:], 8
    value = 0
    underscores = False
    for ch in body:
        if ch == "_":
            underscores = True
            continue
        if not ch.isascii() or not ch.isalnum():
            raise PortSyntaxError(f"invalid character {ch!r}")
        digit = int(ch, 36)
        if digit >= base:
            raise PortSyntaxError(f"invalid digit {ch!r} for base {base}")
        value = value * base + digit
        if value > MAX_PORT:
            raise PortSyntaxError("out of range (more than 65535)")
    if underscores and not _underscore_ok(text):
        raise PortSyntaxError("misplaced '_'")
    return value


@dataclass(frozen=True)
class CiliumPort:
    number: int | None  # None: a named port
    name: str = ""


def parse_cilium_port(text: str) -> CiliumPort:
    """A Cilium port string as Cilium reads it; PortSyntaxError for what Cilium would refuse."""
    try:
        return CiliumPort(parse_go_uint16(text))
    except PortSyntaxError as exc:
        if is_service_name(text):
            return CiliumPort(None, text.lower())
        raise PortSyntaxError(f"{text[:40]!r} is not a port number (1-65535, as Go's ParseUint reads it) "
                              f"or a port name: {exc}") from None


Interval = tuple[int, int]


def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


@dataclass(frozen=True)
class PortSet:
    """Numeric ports per L4 protocol, merged; named ports kept apart (they resolve per pod)."""

    ranges: tuple[tuple[str, tuple[Interval, ...]], ...] = ()
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[tuple[str, int | None, int | None, str]]) -> PortSet:
        """From (protocol, start, end, name) entries; start None = every port of the protocol, protocol ANY = all."""
        by_protocol: dict[str, list[Interval]] = {}
        names: list[str] = []
        for protocol, start, end, name in entries:
            if name:
                names.append(f"{protocol}/{name}")
                continue
            span = (1, MAX_PORT) if start is None else (start, end if end is not None else start)
            for proto in (L4_PROTOCOLS if protocol == "ANY" else (protocol,)):
                if proto in L4_PROTOCOLS:
                    by_protocol.setdefault(proto, []).append(span)
        return cls(tuple(sorted((p, merge(r)) for p, r in by_protocol.items())), tuple(sorted(set(names))))

    @classmethod
    def everything(cls) -> PortSet:
        return cls(tuple((p, ((1, MAX_PORT),)) for p in L4_PROTOCOLS))

    def union(self, other: PortSet) -> PortSet:
        by_protocol = {p: list(r) for p, r in self.ranges}
        for p, r in other.ranges:
            by_protocol.setdefault(p, []).extend(r)
        return PortSet(tuple(sorted((p, merge(r)) for p, r in by_protocol.items())),
                       tuple(sorted(set(self.names) | set(other.names))))

    def _counts(self) -> dict[str, int]:
        """Open ports per protocol, counted once: a set is shared by every rule with the same entries
        (port_set) and asked for its coverage several times. Kept in the instance's __dict__
        (functools.cached_property takes a lock per read on Python 3.11)."""
        counts: dict[str, int] | None = self.__dict__.get("_counted")
        if counts is None:
            counts = {}
            for p, r in self.ranges:
                counts[p] = counts.get(p, 0) + sum(e - s + 1 for s, e in r)
            self.__dict__["_counted"] = counts
        return counts

    def count(self, protocol: str) -> int:
        return self._counts().get(protocol, 0)

    def coverage(self) -> float:
        """The largest share of 1-65535 open for any one protocol."""
        counts = self._counts()
        return max((counts.get(p, 0) for p in L4_PROTOCOLS), default=0) / MAX_PORT

    def every_port(self, threshold: float) -> bool:
        return self.coverage() >= threshold

    def open_protocol(self, threshold: float) -> str:
        """The protocol whose ports count as every port ("" if none)."""
        for p in L4_PROTOCOLS:
            if self.count(p) / MAX_PORT >= threshold:
                return p
        return ""

    def allows(self, protocol: str, port: int) -> bool:
        return any(s <= port <= e for p, r in self.ranges if p == protocol for s, e in r)

    @property
    def empty(self) -> bool:
        return not self.ranges and not self.names


PortEntry = tuple[str, int | None, int | None, str]  # (protocol, start, end, name), as PortSet.of reads them
# Rules repeat a few port lists (TCP 443, UDP+TCP 53) across a policy and across requests: the sets of
# short lists are kept, keyed on the entries themselves (all a PortSet depends on). Longer lists are
# rare and would make the cache heavy, so they are merged each time.
_CACHED_ENTRIES = 8


@lru_cache(maxsize=2048)
def _cached_port_set(entries: tuple[PortEntry, ...]) -> PortSet:
    return PortSet.of(entries)


def port_set(entries: tuple[PortEntry, ...]) -> PortSet:
    """PortSet.of, shared between equal short entry lists (a PortSet is immutable)."""
    return _cached_port_set(entries) if len(entries) <= _CACHED_ENTRIES else PortSet.of(entries)
