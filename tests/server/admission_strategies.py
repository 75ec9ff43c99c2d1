"""Hypothesis strategies for hostile AdmissionReview bodies, written as raw JSON text.

Python's `json` cannot write a lone surrogate escape or a duplicate key, and writes numbers only
in its own spelling, so a generated document is a tree of plain JSON values plus two wire-level
node types: `Raw` (JSON text emitted verbatim: `"\\ud800"`, `1e400`, `-0`, 4,301 digits) and
`Pairs` (an object whose keys may repeat). `encode` turns such a tree into the body that is sent.

The policy objects start from every sample manifest under policies/ (all three kinds, every field
the guardrails read) and from the oracle's generators, then get 1-3 mutations: a wrong type, an
unknown field, a huge list, deep nesting, an odd string, a duplicate key, a number of any size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.oracle import strategies as oracle_strategies
from webhook.core.reviews import make_review

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
JSON_DEPTH_LIMIT = 64  # ServerSettings.max_json_depth's default: deeper is a 400
MAX_LIST_BYTES = 256 * 1024  # a huge list stays far below the 3 MiB body limit


# --- wire-level nodes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text written verbatim (a number or a string literal with escapes)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object written key by key: keys may repeat (a decoder keeps the last one)."""

    items: tuple[tuple[str | Raw, Any], ...]


class Named(dict):  # type: ignore[type-arg]
    """A document with a short repr (hypothesis prints an explicit example; a huge repr is a warning)."""

    def __init__(self, name: str, doc: dict[str, Any]) -> None:
        super().__init__(doc)
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def encode(value: Any) -> str:
    """The tree as JSON text (compact; `ensure_ascii` off so odd Unicode travels as UTF-8)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    # Iterative would be safer, but the trees are bounded (< 200 levels) and this reads better.
    if isinstance(value, Raw):
        out.append(value.text)
    elif isinstance(value, Pairs):
        out.append("{")
        for i, (key, item) in enumerate(value.items):
            if i:
                out.append(",")
            out.append(key.text if isinstance(key, Raw) else json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, dict):
        _encode(Pairs(tuple(value.items())), out)
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))


# --- leaves ---------------------------------------------------------------------------------------

ODD_STRINGS = (
    "", " ", "\u0000", "a\u0000b", "\u202eevil\u202c", "\u200b", "\u200d", "\ufeff", "\u2028", "\u2029",
    "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "e\u0301", "\U0001f600",
    "\U0010ffff", "\ufffe", "\uffff", "\x7f", "\t\n\r", "../../etc/passwd", "%s%n%x", "{{.}}", "${jndi:x}",
    "0.0.0.0/0", "::/0", "169.254.169.254/32", "*", "**", "world", "reserved:world", "k8s:app", "TCP", "ANY",
    "80", "0x50", "65536", "-1", "Ingress", "Egress", "NetworkPolicy", "CiliumNetworkPolicy", "true", "null",
    "x" * 300, "\u0130", "\u212a", "ǅ", "ß", "ﬀ", "\ud7ff", "\ue000", "A" * 63 + "\u200b",
)
RAW_STRINGS = (
    r'"\ud800"', r'"\udfff"', r'"a\udc00b"', r'"\udc00\ud800"', r'"\ud800\ud800"', r'"\uD83D"',  # lone
    r'"\ud83d\ude00"', r'"\uD83D\uDE00"', r'"\u0000"', r'"\u202e"', r'"\/"', r'"\b\f\n\r\t"', r'"\"\\"',
)
LONE_SURROGATE_RAW = frozenset(RAW_STRINGS[:6])
RAW_NUMBERS = (
    "1e400", "-1e400", "1e-400", "-0", "-0.0", "0e0", "1E+2", "1.0", "80.0", "80.5", "443e0", "0.000001",
    "1" + "0" * 4299,  # 4,300 digits: the most CPython decodes by default
    "-" + "9" * 4300,
    "9" * 4301,  # one digit too many: a ValueError in json.loads, so a 400
    "1." + "0" * 5000,  # a long float is not limited
    "123456789012345678901234567890", "18446744073709551616", "-9223372036854775809", "9007199254740993",
)
INTS = st.one_of(
    st.integers(-3, 70000),
    st.sampled_from((0, 1, 80, 443, 65535, 65536, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, -(2**63))),
    st.integers(-(2**200), 2**200),
)
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from((0.5, 80.0, -0.0, 1e308)))


def odd_strings() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=12),
        st.builds(lambda a, b: a + b, st.sampled_from(ODD_STRINGS), st.sampled_from(ODD_STRINGS)),
        st.sampled_from(RAW_STRINGS).map(Raw),
    )


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(INTS, FLOATS, st.sampled_from(RAW_NUMBERS).map(Raw))


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), numbers(), odd_strings())


def keys() -> st.SearchStrategy[str | Raw]:
    return st.one_of(st.sampled_from(("x", "spec", "egress", "toPorts", "port", "matchLabels", "kind", "")),
                     odd_strings())


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value, including wire-level nodes (duplicate keys, raw text)."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=6), children, max_size=4),
            st.lists(st.tuples(keys(), children), max_size=4).map(lambda items: Pairs(tuple(items))),
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: Any, as_object: bool) -> Any:
    for _ in range(depth):
        leaf = {"a": leaf} if as_object else [leaf]
    return leaf


# --- policy objects --------------------------------------------------------------------------------


def _load_samples() -> tuple[dict[str, Any], ...]:
    found = []
    for path in sorted((REPO_ROOT / "policies").glob("*/samples/*/*.yaml")):
        if path.name.endswith(".request.yaml"):
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):  # someone may be editing a sample right now
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") in POLICY_KINDS:
                try:
                    found.append(json.loads(json.dumps(doc)))  # plain JSON data only
                except (TypeError, ValueError):
                    continue
    return tuple(found)


SAMPLES = _load_samples()
# A minimal policy of each kind, in case the samples cannot be read.
MINIMAL: tuple[dict[str, Any], ...] = (
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "team-a"},
     "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "team-a"},
     "spec": {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "p"},
     "specs": [{"endpointSelector": {}, "ingress": [{"fromCIDR": ["0.0.0.0/0"]}]}]},
)


def valid_looking_policies() -> st.SearchStrategy[dict[str, Any]]:
    """Policies an engineer could write: the catalog's samples and the oracle's generators."""
    return st.one_of(st.sampled_from(SAMPLES or MINIMAL), st.sampled_from(MINIMAL), oracle_strategies.policies())


Path_ = tuple[str | int, ...]


def _paths(node: Any, here: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield here, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*here, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*here, i))


def _replace(root: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(root, dict):
        out = dict(root)
        out[head] = _replace(root[head], rest, value)
        return out
    out_list = list(root)
    out_list[head] = _replace(root[head], rest, value)  # type: ignore[index]
    return out_list


MUTATIONS = ("wrong type", "unknown field", "delete", "huge list", "deep", "odd string", "duplicate key", "number",
             "null")


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_list: int, max_mutations: int = 3) -> Any:
    """`doc` with 1..max_mutations changes anywhere below its root (the root stays an object)."""
    for _ in range(draw(st.integers(1, max_mutations))):
        candidates = [(p, n) for p, n in _paths(doc) if not isinstance(n, (Raw, Pairs))]
        if not candidates:  # the root became a Pairs
            break
        path, node = draw(st.sampled_from(candidates))
        kind = draw(st.sampled_from(MUTATIONS))
        new: Any
        if kind == "unknown field" and isinstance(node, dict):
            new = {**node, draw(st.one_of(st.text(max_size=8), st.sampled_from(ODD_STRINGS))): draw(json_values())}
        elif kind == "duplicate key" and isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            items = list(node.items())
            extra = (key, draw(json_values()))
            # before: the decoder keeps the original; after: the odd value wins
            new = Pairs(tuple([extra, *items] if draw(st.booleans()) else [*items, extra]))
        elif kind == "delete" and path and isinstance(path[-1], str):
            parent_path = path[:-1]
            parent = dict(_get(doc, parent_path))
            del parent[path[-1]]
            path, new = parent_path, parent
        elif kind == "huge list":
            count = draw(st.integers(max_list // 4, max_list))
            element = node if not isinstance(node, list) or not node else node[0]
            size = len(encode(element)) + 1
            new = [element] * max(1, min(count, MAX_LIST_BYTES // size))
        elif kind == "deep":
            new = nested(draw(st.integers(1, 90)), node, draw(st.booleans()))
        elif kind == "odd string":
            new = draw(odd_strings())
        elif kind == "number":
            new = draw(numbers())
        elif kind == "null":
            new = None
        else:
            new = draw(json_values())
        if not path and not isinstance(new, (dict, Pairs)):
            continue  # request.object must stay an object for the call to be readable
        doc = _replace(doc, path, new)
    return doc


def _get(root: Any, path: Path_) -> Any:
    for part in path:
        root = root[part]
    return root


# --- reviews ---------------------------------------------------------------------------------------

USERS = ("alice", "system:serviceaccount:argocd:argocd-application-controller", "system:admin", "")
GROUPS = (("system:authenticated",), ("system:masters", "system:authenticated"), ())
NAMESPACES = (None, "team-a", "kube-system", "", "team-\u202eb")


@st.composite
def policy_reviews(draw: st.DrawFn, max_list: int) -> dict[str, Any]:
    """An intact AdmissionReview envelope (as the API server sends it) around a mutated policy object.

    request.kind comes from the unmutated policy, as the API server takes it from the URL."""
    original = draw(valid_looking_policies())
    obj = draw(st.one_of(st.just(original), mutated(original, max_list))) if draw(st.integers(0, 4)) else original
    operation = draw(st.sampled_from(OPERATIONS))
    old = None
    if operation in ("UPDATE", "DELETE"):
        old_original = draw(st.one_of(st.just(original), valid_looking_policies()))
        old = draw(st.one_of(st.just(old_original), mutated(old_original, max_list)))
    review = make_review(original, operation="UPDATE" if operation == "DELETE" else operation,
                         username=draw(st.sampled_from(USERS)), groups=draw(st.sampled_from(GROUPS)),
                         namespace=draw(st.sampled_from(NAMESPACES)), uid=draw(uids()),
                         dry_run=draw(st.booleans()))
    request = review["request"]
    request["operation"] = operation
    request["object"] = None if operation == "DELETE" else obj
    request["oldObject"] = old
    return review


def uids() -> st.SearchStrategy[str]:
    return st.one_of(st.uuids().map(str), st.sampled_from(("x", "\u202e\u200b", "a\u0000b", "\U0001f600", "é" * 40)))


# Envelope fields whose wrong value makes the call unreadable: the answer must be a 400.
ENVELOPE_REQUIRED: tuple[Path_, ...] = (
    ("apiVersion",), ("kind",), ("request",), ("request", "uid"), ("request", "operation"), ("request", "kind"),
)
# Other envelope fields: a wrong value may be tolerated (200) or refused (400), never a 5xx.
ENVELOPE_OTHER: tuple[Path_, ...] = (
    ("request", "kind", "group"), ("request", "kind", "version"), ("request", "kind", "kind"),
    ("request", "resource"), ("request", "requestKind"), ("request", "name"), ("request", "namespace"),
    ("request", "userInfo"), ("request", "userInfo", "username"), ("request", "userInfo", "groups"),
    ("request", "userInfo", "extra"), ("request", "userInfo", "uid"), ("request", "object"),
    ("request", "oldObject"), ("request", "dryRun"), ("request", "subResource"), ("request", "options"),
)
VALID_OPERATIONS = frozenset(OPERATIONS)


def breaks_envelope(path: Path_, value: Any) -> bool:
    """Whether `value` at required envelope `path` is certainly not what the API server sends."""
    if isinstance(value, (Raw, Pairs)):
        return path != ("request", "kind") or isinstance(value, Raw)  # Raw strings/numbers are never the value
    if path == ("apiVersion",):
        return bool(value != "admission.k8s.io/v1")
    if path == ("kind",):
        return bool(value != "AdmissionReview")
    if path == ("request",) or path == ("request", "kind"):
        return not isinstance(value, dict)
    if path == ("request", "uid"):
        return not isinstance(value, str) or not value
    if path == ("request", "operation"):
        return not isinstance(value, str) or value not in VALID_OPERATIONS
    raise AssertionError(path)


@st.composite
def broken_envelopes(draw: st.DrawFn) -> tuple[Any, bool]:
    """(document, certainly broken) for a valid review with one envelope field changed."""
    review: dict[str, Any] = make_review(draw(st.sampled_from(MINIMAL)), uid=draw(uids()))
    required = draw(st.booleans())
    path = draw(st.sampled_from(ENVELOPE_REQUIRED if required else ENVELOPE_OTHER))
    value = draw(st.one_of(json_values(), st.just(None), st.sampled_from(("", "v1", "admission.k8s.io/v1beta1",
                                                                           "AdmissionReview", "CREATE", "create"))))
    delete = draw(st.integers(0, 5)) == 0
    parent = _get(review, path[:-1])
    if delete:
        parent.pop(path[-1], None)
        broken = required
    else:
        parent[path[-1]] = value
        broken = required and breaks_envelope(path, value)
    return review, broken


CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;",
                 " application/json ", "text/plain", "application/yaml", "application/jsonx", "application/*",
                 "multipart/form-data; boundary=x", "", "application/json\u00e9")


def is_json_media_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not JSON, are truncated, or are JSON of the wrong shape."""
    valid = json.dumps(make_review(MINIMAL[0], uid="raw")).encode()
    return st.one_of(
        st.binary(max_size=64),
        st.integers(1, len(valid) - 1).map(lambda n: valid[:n]),
        st.sampled_from((b"\xef\xbb\xbf" + valid, valid.replace(b'"raw"', b'"\xff"'), b"\xc0\xaf", b"NaN",
                         b"Infinity", b"[" * 64 + b"]" * 64, b"[" * 65 + b"]" * 65, b"{}", b"null", b"0",
                         b'{"kind":"AdmissionReview"}', valid + b"garbage", b" " + valid + b"\n",
                         valid.replace(b'"raw"', b"NaN"), valid.replace(b'"raw"', b"-Infinity"))),
        json_values().map(lambda v: encode(v).encode("utf-8", "surrogatepass")),
    )


@st.composite
def many_entries_policies(draw: st.DrawFn, max_entries: int) -> dict[str, Any]:
    """A policy with many *distinct* rules or specs entries (a repeated element is cheap to judge):
    CIDRs, ports and selectors differ per entry; `overlap` keys make some selectors compatible."""
    n = draw(st.integers(2, max_entries))
    kind = draw(st.sampled_from(POLICY_KINDS))
    overlap = draw(st.integers(1, n))

    def cidr(i: int) -> str:
        return f"{1 + i % 223}.{(i // 223) % 256}.0.0/16"

    if kind == "NetworkPolicy":
        rules = [{"to": [{"ipBlock": {"cidr": cidr(i), "except": [cidr(i).replace(".0.0/16", ".1.0/24")]}}],
                  "ports": [{"port": 1 + i % 65000, "endPort": 1 + i % 65000 + i % 7}]} for i in range(n)]
        return {"apiVersion": "networking.k8s.io/v1", "kind": kind, "metadata": {"name": "many", "namespace": "team-a"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": rules}}
    specs = [{"endpointSelector": {"matchLabels": {f"k{i % overlap}": f"v{i}"}},
              "egress": [{"toCIDR": [cidr(i)], "toPorts": [{"ports": [{"port": str(1 + i % 65000)}]}]}]}
             for i in range(n)]
    meta: dict[str, Any] = {"name": "many"}
    if kind == "CiliumNetworkPolicy":
        meta["namespace"] = "team-a"
    return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "specs": specs}
