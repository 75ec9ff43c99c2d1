"""toFQDNs reach: which matchPatterns let anyone who registers a domain become a peer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.fqdn import METADATA_HOSTS, metadata_host, pattern_matches, public_suffix_list, wildcard_reach

PUBLIC = [
    # (pattern, suffix, example)
    ("*", "", "attacker.com"),
    ("**", "", "attacker.com"),
    ("*.", "", "attacker.com"),
    ("*.com", "com", "attacker.com"),
    ("*.CO.UK.", "co.uk", "attacker.co.uk"),
    ("api-*.co.uk", "co.uk", "api-attacker.co.uk"),
    ("api-*.com", "com", "api-attacker.com"),
    ("*.github.io", "github.io", "attacker.github.io"),
    ("*.s3.amazonaws.com", "s3.amazonaws.com", "attacker.s3.amazonaws.com"),
    ("**.amazonaws.com", "s3.amazonaws.com", "attacker.s3.amazonaws.com"),
    ("***.amazonaws.com", "s3.amazonaws.com", "attacker.s3.amazonaws.com"),
    ("*.*.amazonaws.com", "s3.amazonaws.com", "attacker.s3.amazonaws.com"),
    ("foo.*.amazonaws.com", "s3.amazonaws.com", "foo.s3.amazonaws.com"),
    ("*.*.compute.amazonaws.com", "*.compute.amazonaws.com", "attacker.tenant.compute.amazonaws.com"),
    ("*.blob.core.windows.net", "blob.core.windows.net", "attacker.blob.core.windows.net"),
    ("*.*.web.core.windows.net", "*.web.core.windows.net", "attacker.tenant.web.core.windows.net"),
    ("example.*", "com", "example.com"),
    ("www.*", "com", "www.com"),
    ("city.*.jp", "jp", "city.attacker.jp"),
    ("x.**.com", "com", "x.attacker.com"),
    ("**foo.com", "com", "attackerfoo.com"),  # `**` not followed by a dot is one in-label `*`
    ("*.internal", "internal", "attacker.internal"),  # unlisted TLDs are public (PSL default rule)
    ("*.foo.ck", "*.ck", "attacker.foo.ck"),  # foo.ck is public by the `*.ck` rule
    ("*.ck", "ck", "www.ck"),  # the `!www.ck` exception is registrable, picked by the wildcard
]

PUBLIC_NO_EXAMPLE_CHECK = ["**.core.windows.net", "*.*.*.*.*.*.amazonaws.com", "*-*.*.*.jp"]

FINE = [
    # (pattern, fixed suffix)
    ("*.example.com", "example.com"),
    ("**.example.com", "example.com"),
    ("*.*.example.com", "example.com"),
    ("foo.*.example.com", "example.com"),
    ("api.*.example.com", "example.com"),
    ("*.api.example.com.", "api.example.com"),
    ("*.amazonaws.com", "amazonaws.com"),  # x.amazonaws.com is amazonaws.com's or itself a suffix
    ("*.compute.amazonaws.com", "compute.amazonaws.com"),  # region.compute... is itself a suffix
    ("*.core.windows.net", "core.windows.net"),
    ("*.windows.net", "windows.net"),
    ("*.web.core.windows.net", "web.core.windows.net"),
    ("*.cluster.local", "cluster.local"),
    ("**.svc.cluster.local", "svc.cluster.local"),
    ("API.Example.COM", "api.example.com"),  # no wildcard at all
    ("a*", ""),  # single-label names are TLDs: nothing registrable
    ("", ""),
    ("a..*.com", "com"),  # an empty label matches no name
]


@pytest.mark.parametrize(("pattern", "suffix", "example"), PUBLIC)
def test_public_patterns(pattern: str, suffix: str, example: str) -> None:
    reach = wildcard_reach(pattern)
    assert (reach.public, reach.suffix, reach.example) == (True, suffix, example)


@pytest.mark.parametrize("pattern", [p for p, _, _ in PUBLIC] + PUBLIC_NO_EXAMPLE_CHECK)
def test_example_is_matched_and_registrable_through_the_wildcard(pattern: str) -> None:
    reach = wildcard_reach(pattern)
    assert reach.public
    assert pattern_matches(pattern, reach.example)
    registrable = public_suffix_list().privatesuffix(reach.example)
    assert registrable is not None
    assert len(registrable.split(".")) > fixed_labels(pattern)


@pytest.mark.parametrize(("pattern", "suffix"), FINE)
def test_patterns_within_one_registrant(pattern: str, suffix: str) -> None:
    assert wildcard_reach(pattern) == wildcard_reach(pattern)  # cached, deterministic
    reach = wildcard_reach(pattern)
    assert (reach.public, reach.suffix, reach.example) == (False, suffix, "")


def test_azure_storage_endpoints_are_public_suffixes() -> None:
    reach = wildcard_reach("**.core.windows.net")
    assert reach.public
    assert reach.suffix.endswith(".core.windows.net")
    assert reach.example.startswith("attacker.")


# -- Cilium's matching ---------------------------------------------------------------------------


def cilium_regex(pattern: str) -> re.Pattern[str]:
    """Reference: cilium/cilium pkg/fqdn/matchpattern/matchpattern.go ToAnchoredRegexp, in Python."""
    pattern = pattern.strip().lower()
    dns = "[-a-zA-Z0-9_]"
    body = pattern[:-1] if pattern.endswith(".") else pattern
    if body and set(body) == {"*"}:
        return re.compile(f"(^({dns}+[.])+$)|(^[.]$)")
    if not pattern.endswith("."):
        pattern += "."  # matchpattern.Sanitize -> dns.FQDN
    out, i = "", 0
    stars = len(pattern) - len(pattern.lstrip("*"))
    if stars >= 2 and pattern[stars:stars + 1] == ".":
        out, i = f"({dns}+([.]{dns}+){{0,}})[.]", stars + 1
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            while i + 1 < len(pattern) and pattern[i + 1] == "*":
                i += 1
            out += f"{dns}*"
        else:
            out += "[.]" if c == "." else re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


VOCAB = ["com", "net", "uk", "co", "jp", "kawasaki", "city", "ck", "www", "amazonaws", "s3", "compute",
         "us-east-1", "github", "io", "example", "core", "windows", "blob", "web", "z13", "internal", "google",
         "metadata", "goog", "ec2", "instance-data", "attacker", "api-attacker", "a-b"]
TEMPLATES = ["*", "*", "*", "a*", "*-attacker", "s*", "c*m", "*o*"]
label_st = st.sampled_from(VOCAB)
pattern_label_st = st.one_of(label_st, st.sampled_from(TEMPLATES))


@st.composite
def patterns(draw: st.DrawFn) -> str:
    labels = draw(st.lists(pattern_label_st, min_size=1, max_size=5))
    prefix = "**." if draw(st.booleans()) else ""
    return prefix + ".".join(labels)


def fixed_labels(pattern: str) -> int:
    labels = pattern.strip().lower().rstrip(".").split(".")
    if all(set(label) <= {"*"} for label in labels if label) and "*" in pattern:
        return 0
    wild = [i for i, label in enumerate(labels) if "*" in label]
    return len(labels) - wild[-1] - 1 if wild else len(labels)


def expansions(draw: st.DrawFn, pattern: str) -> str:
    """One concrete name the pattern matches, wildcards filled from VOCAB or with `attacker`."""
    labels = pattern.split(".")
    out: list[str] = []
    if labels[0] == "**":
        out += draw(st.lists(label_st, min_size=1, max_size=3))
        labels = labels[1:]
    for label in labels:
        if "*" not in label:
            out.append(label)
            continue
        regex = re.compile("^" + ".*".join(map(re.escape, label.split("*"))) + "$")
        options = [v for v in VOCAB if regex.match(v)] + [label.replace("*", "attacker", 1).replace("*", "")]
        out.append(draw(st.sampled_from(options)))
    return ".".join(out)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_not_public_means_no_expansion_reaches_a_wildcard_registrant(data: st.DataObject) -> None:
    pattern = data.draw(patterns())
    reach = wildcard_reach(pattern)
    psl = public_suffix_list()
    if reach.public:
        assert pattern_matches(pattern, reach.example)
        registrable = psl.privatesuffix(reach.example)
        assert registrable is not None and len(registrable.split(".")) > fixed_labels(pattern)
        return
    for _ in range(8):
        name = expansions(data.draw, pattern)
        assert cilium_regex(pattern).match(name + "."), (pattern, name)
        registrable = psl.privatesuffix(name)
        if registrable is None:
            continue  # the name is itself a public suffix: nobody registers it
        # The registrable domain lies inside the fixed labels, so no wildcard-filled (attacker) label is in it.
        fixed = fixed_labels(pattern)
        fixed_part = ".".join(name.split(".")[-fixed:]) if fixed else ""
        assert fixed_part == registrable or fixed_part.endswith("." + registrable), (pattern, name, registrable)


@settings(max_examples=300, deadline=None)
@given(patterns(), st.lists(label_st, min_size=1, max_size=6))
def test_pattern_matches_agrees_with_ciliums_regex(pattern: str, labels: list[str]) -> None:
    name = ".".join(labels)
    assert pattern_matches(pattern, name) == bool(cilium_regex(pattern).match(name + "."))


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", False),  # `*` stays inside one label
    ("**.example.com", "a.b.example.com", True),
    ("**.example.com", "example.com", False),  # `**.` needs at least one label
    ("*example.com", "myexample.com", True),
    ("*example.com", "my.example.com", False),
    ("EXAMPLE.com.", "example.COM", True),
    ("*", "anything.at.all", True),
    ("a.**.com", "a.b.c.com", False),  # `**` in the middle is a single `*`
    ("a.**.com", "a.b.com", True),
])
def test_pattern_matches(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected
    assert bool(cilium_regex(pattern).match(name.lower().rstrip(".") + ".")) is expected


# -- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "public"), [
    ("*." * 5000 + "com", True),
    ("a." * 1000 + "*.amazonaws.com", True),
    ("*.a" * 1000 + ".example.com", False),
    ("*a" * 5000 + ".amazonaws.com", False),
    ("**." + "*" * 9990 + ".amazonaws.com", True),
    ("x" * 10_000, False),
    ("*" * 10_000, True),
    ("." * 10_000, False),
])
def test_huge_patterns_are_bounded(pattern: str, public: bool) -> None:
    assert wildcard_reach(pattern).public is public
    pattern_matches(pattern, "attacker.s3.amazonaws.com")
    metadata_host("", pattern)


# -- metadata hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "pattern", "host"), [
    ("metadata.google.internal", "", "metadata.google.internal"),
    ("Metadata.Google.Internal.", "", "metadata.google.internal"),
    ("metadata", "", "metadata"),
    ("instance-data.ec2.internal", "", "instance-data.ec2.internal"),
    ("metadata.goog", "", "metadata.goog"),
    ("api.example.com", "", ""),
    ("", "*", "metadata.google.internal"),
    ("", "**.internal", "metadata.google.internal"),
    ("", "*.google.internal", "metadata.google.internal"),
    ("", "*.*.internal", "metadata.google.internal"),
    ("", "metadata.*", "metadata.goog"),
    ("", "*.ec2.internal", "instance-data.ec2.internal"),
    ("", "instance-*", "instance-data"),
    ("", "meta*", "metadata"),
    ("", "*.internal", ""),  # one label under .internal: the metadata names have two
    ("", "*.example.com", ""),
    ("", "", ""),
])
def test_metadata_host(name: str, pattern: str, host: str) -> None:
    assert metadata_host(name, pattern) == host
    assert host == "" or host in METADATA_HOSTS
