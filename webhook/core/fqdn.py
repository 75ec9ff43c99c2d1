"""What a Cilium toFQDNs selector can reach: registrable domains and cloud metadata hosts.

Pure functions over strings (no I/O but reading the Public Suffix List bundled with the
`publicsuffixlist` package once), so the webhook can hand the Rego two facts per FQDN peer:

* `wildcard_reach(pattern)`: can the pattern match a name whose registrable domain (eTLD+1)
  is picked by the wildcard? Then anyone who registers a domain there (a `.com` domain, an S3
  bucket, a `github.io` site, an Azure storage account) gets a host the pod may connect to.
* `metadata_host(name, pattern)`: the cloud instance-metadata host name the selector reaches.

Cilium's matchPattern semantics, as implemented in cilium/cilium
`pkg/fqdn/matchpattern/matchpattern.go` (`ToAnchoredRegexp`, `escapeRegexpCharacters`,
`isDNSWildcard`) and documented on `FQDNSelector.MatchPattern` in `pkg/policy/api/fqdn.go`:

* The pattern is trimmed and lower-cased; names are compared in FQDN form (`Sanitize` adds
  the trailing dot), so a trailing dot in the pattern changes nothing.
* A pattern made only of stars (`*`, `**`, `*.`, `**.`) matches every name: the regex is
  `(^([-a-zA-Z0-9_]+[.])+$)|(^[.]$)` (`isDNSWildcard`).
* A leading run of two or more stars followed by a dot (`**.example.com`) matches one or more
  whole labels: `dnsWildcardREGroup` = `[-a-zA-Z0-9_]+([.][-a-zA-Z0-9_]+){0,}[.]` (the
  "subdomain wildcard specifier prefix", added after the 1.x-era `*`-only syntax).
* Any other run of stars is one `[-a-zA-Z0-9_]*` (`allowedDNSCharsREGroup`): zero or more
  characters inside ONE label; it never crosses a dot. So `*.internal` matches `x.internal`
  but not `metadata.google.internal`, and `**` in the middle of a pattern is a single `*`.
* Cilium rejects patterns longer than 255 characters (`MaxFQDNLength`) and characters outside
  `[-a-zA-Z0-9_.*]`; this module does not rely on that and stays bounded on any input.

Registrability comes from the Public Suffix List (https://publicsuffix.org/list/, ICANN and
private sections, the algorithm at https://github.com/publicsuffix/list/wiki/Format, as
implemented by `publicsuffixlist.PublicSuffixList._countpublic`: exception rules first, then
wildcard rules, then exact rules, longest match wins, unknown TLDs are public), plus
`EXTRA_PUBLIC_SUFFIX_RULES` for multi-tenant cloud namespaces the PSL does not list.

Size: just over 400 lines: Cilium's matchpattern rules and the Public Suffix List lookups they need, with the
citations that justify them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

# Multi-tenant names the bundled PSL (publicsuffixlist 1.1.2.20261023) does not list although
# any Azure customer picks the leftmost label: storage account endpoints are
# `<account>.blob|dfs|file|queue|table.core.windows.net` and the static website endpoint is
# `<account>.<zone>.web.core.windows.net`; accounts created with Azure DNS zone endpoints get
# `<account>.<zone>.<service>.storage.azure.net`. Source: Microsoft Learn, "Storage account
# overview", section "Storage account endpoints"
# (https://learn.microsoft.com/azure/storage/common/storage-account-overview). PSL syntax.
EXTRA_PUBLIC_SUFFIX_RULES: Final[tuple[str, ...]] = (
    "blob.core.windows.net",
    "dfs.core.windows.net",
    "file.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
    "*.web.core.windows.net",
    "*.blob.storage.azure.net",
    "*.dfs.storage.azure.net",
    "*.file.storage.azure.net",
    "*.queue.storage.azure.net",
    "*.table.storage.azure.net",
    "*.web.storage.azure.net",
)

# DNS names that resolve to a cloud instance-metadata service from inside a VM (and so from a
# pod whose egress is not otherwise restricted):
# * Google Cloud: `metadata.google.internal` and the short `metadata` (resolved through the
#   VM's `google.internal` search domain), https://cloud.google.com/compute/docs/metadata/querying-metadata
#   and .../troubleshooting/troubleshoot-metadata-server; `metadata.goog` is the alias GCP SDKs
#   and SSRF deny lists carry (`.goog` is Google's brand TLD, so no one else can hold it).
# * AWS EC2: `instance-data` / `instance-data.ec2.internal` resolve to 169.254.169.254 through the
#   Amazon-provided VPC resolver (EC2 User Guide, "Instance metadata and user data").
# Azure IMDS (169.254.169.254), Alibaba (100.100.100.200), Oracle, OpenStack and DigitalOcean
# document only the link-local address, no DNS name; those are caught by the metadata_ips
# CIDR facts. `metadata.azure.com` is NOT the Azure IMDS and is left out.
METADATA_HOSTS: Final[tuple[str, ...]] = (
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data.ec2.internal",
    "instance-data",
)

# Characters one `*` stands for (allowedDNSCharsREGroup in matchpattern.go).
_DNS_CHARS: Final[frozenset[str]] = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_STARS: Final[re.Pattern[str]] = re.compile(r"\*+")
_MULTI_PREFIX: Final[re.Pattern[str]] = re.compile(r"^\*{2,}\.")
_MAX_LABEL: Final[int] = 63  # RFC 1035 section 2.3.4; longer labels never occur in DNS names
_ATTACKER: Final[str] = "attacker"


@dataclass(frozen=True)
class WildcardReach:
    """How far a matchPattern's wildcard reaches.

    public: some name the pattern matches has a registrable domain (eTLD+1) that contains a
      label filled by the wildcard, so its owner is whoever registers it, not the policy author.
    suffix: for messages: the public suffix (PSL rule, e.g. `s3.amazonaws.com`,
      `*.compute.amazonaws.com`) under which the wildcard picks the registrable label; "" when
      the pattern matches every name. For a pattern that is not public, its fixed right part.
    example: one concrete name the pattern matches that anyone could register
      (`attacker.s3.amazonaws.com`); "" when not public.
    """

    public: bool
    suffix: str
    example: str


# -- Public Suffix List ------------------------------------------------------------------------


class _Node:
    """One suffix of the PSL trie, keyed by labels right to left (`com` -> `amazonaws` -> `s3`)."""

    __slots__ = ("children", "exact", "exception", "exceptions", "ordered", "wild")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.ordered: tuple[tuple[str, _Node], ...] = ()
        self.exceptions: tuple[str, ...] = ()  # children that are `!` rules
        self.exact = False  # `s` is a rule
        self.wild = False  # `*.s` is a rule (and, implicitly, `s` itself)
        self.exception = False  # `!s` is a rule: `s` is registrable after all

    def finish(self) -> None:
        # Rules first and short labels first, so the first witness found is a short, readable one.
        self.ordered = tuple(sorted(self.children.items(),
                                    key=lambda kv: (not (kv[1].exact or kv[1].wild), len(kv[0]), kv[0])))
        self.exceptions = tuple(label for label, child in self.ordered if child.exception)
        for child in self.children.values():
            child.finish()


def _rule_lines() -> Iterator[str]:
    with open(PSLFILE, encoding="utf-8") as psl:
        yield from psl
    yield from EXTRA_PUBLIC_SUFFIX_RULES


@lru_cache(maxsize=1)
def public_suffix_list() -> PublicSuffixList:
    """The bundled PSL plus EXTRA_PUBLIC_SUFFIX_RULES, for eTLD+1 look-ups consistent with this module."""
    return PublicSuffixList(list(_rule_lines()))


@lru_cache(maxsize=1)
def _trie() -> _Node:
    """The PSL as a suffix trie: built once, then every look-up is a bounded walk."""
    root = _Node()
    for line in _rule_lines():
        rule = line.lower().split(" ")[0].strip()
        if not rule or rule.startswith("//"):
            continue
        try:
            rule = ("!" if rule.startswith("!") else "") + encode_idn(rule.lstrip("!"))
        except UnicodeError:
            continue
        exception = rule.startswith("!")
        rule = rule.lstrip("!")
        wild = rule.startswith("*.")
        if wild:
            rule = rule[2:]
        node = root
        for label in reversed(rule.split(".")):
            node = node.children.setdefault(label, _Node())
        if exception:
            node.exception = True
        elif wild:
            node.wild = True
        else:
            node.exact = True
    root.finish()
    return root


# -- matchPattern parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Label:
    """One pattern label: literal text, or literal pieces around `*` runs (a template)."""

    pieces: tuple[str, ...]  # one piece for a literal; n+1 pieces around n star runs
    literal_len: int = 0  # characters outside the stars: a shorter label cannot match

    @property
    def wild(self) -> bool:
        return len(self.pieces) > 1

    @property
    def text(self) -> str:
        return "*".join(self.pieces)

    def matches(self, label: str) -> bool:
        """Glob match: each `*` is `[-a-z0-9_]*` inside the label. Linear-ish, no regex backtracking."""
        if not self.wild:
            return label == self.pieces[0]
        if len(label) > _MAX_LABEL or self.literal_len > len(label):
            return False
        head, *middle, tail = self.pieces
        if not (label.startswith(head) and label.endswith(tail)) or len(head) + len(tail) > len(label):
            return False
        pos, end = len(head), len(label) - len(tail)
        gaps: list[str] = []
        for piece in middle:
            found = label.find(piece, pos, end)
            if found < 0:
                return False
            gaps.append(label[pos:found])
            pos = found + len(piece)
        gaps.append(label[pos:end])
        return all(c in _DNS_CHARS for gap in gaps for c in gap)

    def fill(self, word: str, avoid: Collection[str] = ()) -> str:
        """A label this template matches, `word` in its first star, not one of `avoid`."""
        if not self.wild:
            return self.pieces[0]
        rest = "".join(self.pieces[1:])
        for attempt in range(len(avoid) + 1):
            label = self.pieces[0] + (word if attempt == 0 else f"{word}{attempt}") + rest
            if label not in avoid:
                return label
        raise AssertionError("unreachable: more attempts than avoided labels")


@dataclass(frozen=True)
class _Pattern:
    """A parsed matchPattern; `labels` right to left (index = distance from the TLD)."""

    labels: tuple[_Label, ...]
    multi: bool  # leading `**.`: one or more arbitrary labels left of `labels`
    match_all: bool
    matches_nothing: bool

    @property
    def fixed(self) -> int:
        """How many labels on the right no wildcard touches (the registrant-fixing part)."""
        for i, label in enumerate(self.labels):
            if label.wild:
                return i
        return len(self.labels)

    @property
    def is_wildcard(self) -> bool:
        return self.match_all or self.multi or any(label.wild for label in self.labels)


def _normalize_name(name: str) -> str:
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def _label(text: str) -> _Label:
    pieces = tuple(_STARS.split(text))
    return _Label(pieces, sum(map(len, pieces)))


_ANY_LABEL: Final[_Label] = _Label(("", ""))  # a label `**.` supplies


@lru_cache(maxsize=4096)
def _parse(pattern: str) -> _Pattern:
    text = _normalize_name(pattern)
    if text and set(text) == {"*"}:  # isDNSWildcard: `*`, `**`, `*.`, `**.`
        return _Pattern((), multi=False, match_all=True, matches_nothing=False)
    multi = bool(_MULTI_PREFIX.match(text))
    if multi:
        text = text[text.index(".") + 1:]
    parts = text.split(".")
    labels = tuple(_label(part) for part in reversed(parts))
    # An empty label (`a..com`, a bare ``) is in no DNS name; neither is an over-long literal one.
    nothing = any(not part or (len(part) > _MAX_LABEL and "*" not in part) for part in parts)
    return _Pattern(labels, multi=multi, match_all=False, matches_nothing=nothing)


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether Cilium's matchPattern `pattern` selects the DNS name `name` (see module docstring)."""
    parsed = _parse(pattern)
    labels = _normalize_name(name).split(".")
    if parsed.matches_nothing or not all(labels) or any(len(label) > _MAX_LABEL for label in labels):
        return False
    if parsed.match_all:
        return all(set(label) <= _DNS_CHARS for label in labels)
    rev = labels[::-1]
    n = len(parsed.labels)
    if (len(rev) <= n) if parsed.multi else (len(rev) != n):  # `**.` adds one label or more
        return False
    if not all(p.matches(label) for p, label in zip(parsed.labels, rev, strict=False)):
        return False
    return all(set(label) <= _DNS_CHARS for label in rev[n:])


# -- wildcard reach ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Suffix:
    """The public suffix a name has so far: its label count and the PSL rule text behind it."""

    length: int
    rule: str


@dataclass(frozen=True)
class _Witness:
    labels: tuple[str, ...]  # right to left, as chosen by the search
    fresh_at: int  # position of a label made up by the search (-1: none), not a PSL label
    fresh_avoid: Collection[str]  # PSL labels that fresh label must differ from
    suffix: _Suffix


class _Search:
    """Depth-first walk of the PSL trie along the pattern, right to left.

    A name's public suffix only depends on the trie path its labels spell, so at a wildcard
    position the only labels worth trying are the trie children the template matches, plus one
    made-up label that leaves the trie (which also dodges every `!` exception). Each trie node is
    visited at most once (positions are right-aligned, so a node has one position), and once the
    path leaves the trie the verdict is settled in O(1): work is bounded by the trie, not by the
    pattern's length.
    """

    def __init__(self, pattern: _Pattern) -> None:
        self.p = pattern
        self.n = len(pattern.labels)
        self.fixed = pattern.fixed

    def run(self) -> _Witness | None:
        if not self.p.multi and self.n <= max(self.fixed, 1):
            return None  # L > PS >= max(fixed, 1) is impossible with exactly n labels
        return self._visit(0, _trie(), None, None, ())

    def _settled(self, ps: _Suffix, length: int) -> bool:
        """A name of `length` labels with public suffix `ps` has a wildcard-chosen registrant."""
        return self.fixed <= ps.length < length

    def _visit(self, d: int, node: _Node | None, ext: _Suffix | None, end: _Suffix | None,
               chosen: tuple[str, ...]) -> _Witness | None:
        """`d` labels chosen; `ext`/`end`: the public suffix if the name goes on / stops here."""
        if d > 0 and node is None:  # off the trie: no longer rule can match any more
            assert ext is not None
            longest = None if self.p.multi else self.n
            if self.fixed <= ext.length and (longest is None or longest > ext.length):
                return _Witness(chosen, -1, frozenset(), ext)
            return None
        if d >= self.n:
            assert end is not None
            if d > self.n or not self.p.multi:  # the name may stop here
                if self._settled(end, d):
                    return _Witness(chosen, -1, frozenset(), end)
                if not self.p.multi:
                    return None
        template = self.p.labels[d] if d < self.n else _ANY_LABEL
        assert node is not None
        if not template.wild:
            return self._step(d, node, ext, chosen, template.pieces[0], fresh=False)
        if d == 0 and template.matches("com"):  # a readable example: prefer .com for a wildcard TLD
            found = self._step(d, node, ext, chosen, "com", fresh=False)
            if found:
                return found
        made_up = template.fill(_ATTACKER, node.children)
        found = self._step(d, node, ext, chosen, made_up, fresh=True)
        if found:
            return found
        # On the last label of a pattern without `**.`, a child that is no `!` rule ends the name
        # on its own public suffix (exact, `*.`: not registrable) or on the one the made-up label
        # already had: only exception children can still change the verdict.
        last = not self.p.multi and d + 1 == self.n
        for label in node.exceptions if last else (label for label, _ in node.ordered):
            if template.matches(label):
                found = self._step(d, node, ext, chosen, label, fresh=False)
                if found:
                    return found
        return None

    def _step(self, d: int, node: _Node, ext: _Suffix | None, chosen: tuple[str, ...], label: str,
              *, fresh: bool) -> _Witness | None:
        child = node.children.get(label)
        depth = d + 1
        labels = (*chosen, label)
        text = ".".join(reversed(labels))
        if child is not None and child.exception:
            parent = ".".join(reversed(chosen))
            new_ext = new_end = _Suffix(depth - 1, parent)
        elif child is not None and child.wild:
            new_ext, new_end = _Suffix(depth + 1, "*." + text), _Suffix(depth, text)
        elif child is not None and child.exact:
            new_ext = new_end = _Suffix(depth, text)
        else:  # no rule here; a TLD nobody listed is public (the PSL default rule `*`)
            new_ext = new_end = ext if ext is not None else _Suffix(1, label)
        found = self._visit(depth, child, new_ext, new_end, labels)
        if found is not None and fresh and found.fresh_at < 0:
            return _Witness(found.labels, d, node.children.keys(), found.suffix)
        return found


def _complete(pattern: _Pattern, witness: _Witness) -> str:
    """Turn a witness path into a full example name: `attacker` in the registrable label."""
    ps = witness.suffix.length
    labels = list(witness.labels)
    if 0 <= witness.fresh_at < ps:  # a made-up label inside the public suffix (under a `*.` rule)
        template = pattern.labels[witness.fresh_at] if witness.fresh_at < len(pattern.labels) else _ANY_LABEL
        labels[witness.fresh_at] = template.fill("tenant", witness.fresh_avoid)
    for pos in range(len(labels), len(pattern.labels)):
        labels.append(pattern.labels[pos].fill(_ATTACKER if pos == ps else "www"))
    if pattern.multi and len(labels) <= len(pattern.labels):
        labels.append(_ATTACKER if len(labels) == ps else "www")
    while len(labels) <= ps:  # only reachable with `**.`: give the suffix a registrable label
        labels.append(_ATTACKER)
    return ".".join(reversed(labels))


@lru_cache(maxsize=4096)
def wildcard_reach(pattern: str) -> WildcardReach:
    """Whether a toFQDNs matchPattern lets anyone, by registering a domain, become a peer.

    The rule: the pattern is a wildcard over a public suffix if ANY name it matches has a
    registrable domain (PSL eTLD+1) containing a label the wildcard filled. That covers `*`,
    `*.com`, `api-*.co.uk`, `*.github.io`, `*.s3.amazonaws.com`, and also the spellings whose
    last wildcard sits left of a fixed part that is not itself public: `**.amazonaws.com` and
    `*.*.amazonaws.com` both match `attacker.s3.amazonaws.com` (the wildcard produces the public
    suffix `s3.amazonaws.com`, then the registrable label). `*.example.com`, `**.example.com`
    and `foo.*.example.com` stay inside example.com. Case and a trailing dot do not matter.
    Bounded: a trie walk (see _Search), cached per pattern.
    """
    parsed = _parse(pattern)
    if parsed.match_all:
        return WildcardReach(public=True, suffix="", example=f"{_ATTACKER}.com")
    fixed = ".".join(label.pieces[0] for label in reversed(parsed.labels[:parsed.fixed]))
    if parsed.matches_nothing or not parsed.is_wildcard:
        return WildcardReach(public=False, suffix=fixed, example="")
    witness = _Search(parsed).run()
    if witness is None:
        return WildcardReach(public=False, suffix=fixed, example="")
    return WildcardReach(public=True, suffix=witness.suffix.rule, example=_complete(parsed, witness))


def metadata_host(name: str, pattern: str) -> str:
    """The first of METADATA_HOSTS a toFQDNs matchName or matchPattern selects, "" if none.

    matchName compares exactly (case and a trailing dot aside); matchPattern uses Cilium's
    matching, so `*` and `**.internal` reach `metadata.google.internal`, `metadata.*` reaches
    `metadata.goog`, while `*.internal` reaches none (a `*` stays inside one label).
    """
    if name.strip():
        wanted = _normalize_name(name)
        return wanted if wanted in METADATA_HOSTS else ""
    if pattern.strip():
        for host in METADATA_HOSTS:
            if pattern_matches(pattern, host):
                return host
    return ""
