"""Manifests from files, folders, stdin or a request body, with the source position of every field.

`netguard check` and `netguard audit --from` report findings as ``path:LINE:COL``, so reading keeps,
for each document, a map from netguard field paths (``spec.egress[0].to[1].ipBlock.cidr``) to
1-based (line, column). A mapping entry is placed at its *key* (what a compiler-style message points
at, also when the value is a block below it); a sequence item at the item's first character.

Documents are composed here from PyYAML's event stream rather than with ``yaml.compose_all``:
libyaml's composer recurses in C and crashes the interpreter on deeply nested input, and both
parsers slow down quadratically with flow nesting, so depth, node and alias limits are enforced
while the events arrive. A problem stops the rest of *that* file (PyYAML cannot resume after a
syntax error); the documents before it and every other file still come back.

Scalars follow the JSON view Kubernetes takes of YAML: null, booleans, integers, floats and strings
are typed as YAML 1.1 says; timestamps, binary and custom tags keep their text, so ``obj`` is
always JSON-serializable. Mapping keys become strings. Duplicate keys keep the last value.

Size: over 400 lines because YAML reading with positions, its limits (size, aliases, depth) and List expansion
must share one loader to keep positions right; the rest of the package sees only `Document`.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from webhook import kinds
from webhook.offline import fanout

MAX_BYTES = 10 * 1024 * 1024  # per file (and per stdin or request text)
MAX_NODES = 1_000_000  # nodes written in one document: bounds the time; a big `kubectl get -A -o yaml` has far fewer
MAX_ALIAS_NODES = 200_000  # nodes aliases may add on top of those written ("billion laughs")
MAX_ALIASES = 1_000  # alias uses per document
MAX_DEPTH = 100  # nesting per document; Kubernetes objects need a few dozen at most
EXTENSIONS = (".yaml", ".yml", ".json")

# The C parser when PyYAML was built with libyaml; same events, ten times faster.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCTOR = SafeConstructor()
_TYPED_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str"))
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class SourceError:
    """A source that could not be read; line 0 (col 0) when there is no position."""

    source: str
    line: int
    col: int
    message: str


DEFAULT_NAMESPACE = "default"


def cluster_scoped(obj: Mapping[str, Any]) -> bool:
    """Whether kubectl would apply the object without a namespace: a Namespace, or a cluster-scoped policy kind."""
    if obj.get("kind") == "Namespace":
        return True
    kind = kinds.of(obj)
    return kind is not None and not kind.namespaced


@dataclass(frozen=True)
class Document:
    source: str  # file path as given, "-" for stdin, "<request>" for HTTP
    index: int  # 0-based among the documents returned for that source (List items count each)
    obj: dict[str, Any]
    line: int  # 1-based line where this document (or List item) starts
    positions: Mapping[str, tuple[int, int]]  # field path -> (line, col), 1-based

    def position(self, path: str) -> tuple[int, int]:
        """Where `path` was written, else where its nearest written parent was, else the document start.

        Paths built without quoting (``spec.podSelector.matchLabels.app.kubernetes.io/name``) match the
        quoted form recorded here (``...matchLabels["app.kubernetes.io/name"]``).
        """
        while path:
            hit = self.positions.get(path) or self._loose.get(_loose(path))
            if hit is not None:
                return hit
            path = _parent(path)
        return (self.line, 1)

    @property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""

    def in_namespace(self, namespace: str | None = None) -> Document:
        """The object as kubectl would apply it: a namespaced object without metadata.namespace goes to
        `namespace` (kubectl's context namespace), else "default". Cluster-scoped kinds stay as they are."""
        meta = self.obj.get("metadata")
        if not isinstance(meta, Mapping) or self.namespace or cluster_scoped(self.obj):
            return self
        return replace(self, obj={**self.obj, "metadata": {**meta, "namespace": namespace or DEFAULT_NAMESPACE}})

    @cached_property
    def _loose(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for path, where in self.positions.items():
            out.setdefault(_loose(path), where)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        # A mappingproxy does not pickle (the audit's worker processes send documents back): the fields
        # go as they are, with the positions as a plain dict, and come back read-only.
        return _document, (self.source, self.index, self.obj, self.line, dict(self.positions))


def _document(source: str, index: int, obj: dict[str, Any], line: int,
              positions: dict[str, tuple[int, int]]) -> Document:
    return Document(source, index, obj, line, MappingProxyType(positions))


class _Stop(Exception):
    """What is wrong, at a node or mark: skips the document, or ends the stream when raised while composing."""

    def __init__(self, node_or_mark: Any, message: str) -> None:
        super().__init__(message)
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        self.line = mark.line + 1 if mark is not None else 0
        self.col = mark.column + 1 if mark is not None else 0
        self.message = message


# --- reading sources ----------------------------------------------------------------------------

def read_paths(paths: Sequence[str], stdin: TextIO | None = None, *,
               jobs: int = 1) -> tuple[list[Document], list[SourceError]]:
    """Every document in the given files, folders (recursively) and "-" (stdin), in order.

    `jobs` > 1 (the audit): the files are read and parsed in that many forked processes
    (webhook/offline/fanout.py); documents and errors are the same, in the same order."""
    docs: list[Document] = []
    errors: list[SourceError] = []
    if jobs > 1:
        items = [item for given in paths for item in _texts(given, stdin, read_files=False)]
        pending = [(source, text) for source, text, error in items if error is None]
        with fanout.ordered(_read_one, pending, len(pending), jobs) as parsed:
            for _, _, error in items:
                got, failed = ([], [error]) if error is not None else next(parsed)
                docs += got
                errors += failed
        return docs, errors
    for source, text, error in (item for given in paths for item in _texts(given, stdin)):
        if error is not None:
            errors.append(error)
            continue
        got, failed = read_text(text or "", source)
        docs += got
        errors += failed
    return docs, errors


def _read_one(pending: Sequence[tuple[str, str | None]], i: int) -> tuple[list[Document], list[SourceError]]:
    source, text = pending[i]
    if text is None:  # a file, read here
        source, text, error = next(_file(source))
        if error is not None:
            return [], [error]
    return read_text(text or "", source)


def read_text(text: str, source: str) -> tuple[list[Document], list[SourceError]]:
    """The documents of one YAML or JSON text; `source` names it in documents and errors."""
    if len(text) > MAX_BYTES:
        return [], [SourceError(source, 0, 0, f"larger than {MAX_BYTES // (1024 * 1024)} MiB")]
    text = text.removeprefix("\ufeff")
    is_json = source.lower().endswith(".json")
    if is_json:
        # JSON allows tabs between tokens, which the pure-Python YAML scanner rejects; a tab
        # inside a JSON string must be escaped, so this changes no value and no column.
        text = text.replace("\t", " ")
    docs: list[Document] = []
    errors: list[SourceError] = []
    try:
        for root in _compose(text):
            _documents(root, source, is_json, docs, errors)
    except _Stop as stop:
        errors.append(SourceError(source, stop.line, stop.col, stop.message))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = f"{exc.problem} ({exc.context})" if exc.context else str(exc.problem)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        errors.append(SourceError(source, line, col, f"invalid YAML: {what}"))
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        if _Loader is not yaml.SafeLoader:  # libyaml counts bytes of the UTF-8 text
            offset = len(text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line, col = _line_col(text, offset)
        errors.append(SourceError(source, line, col, f"invalid YAML: {exc.reason} (U+{char:04X})"))
    except yaml.YAMLError as exc:
        errors.append(SourceError(source, 0, 0, f"invalid YAML: {exc}"))
    return docs, errors


def _texts(given: str, stdin: TextIO | None,
           read_files: bool = True) -> Iterator[tuple[str, str | None, SourceError | None]]:
    """(source, text, None) or (source, "", what is wrong) per file; with `read_files` false a file's text is
    None, to be read later (stdin is read all the same)."""
    if given == "-":
        stream = sys.stdin if stdin is None else stdin
        try:
            text = stream.read(MAX_BYTES + 1)
        except UnicodeDecodeError as exc:
            yield given, "", SourceError(given, 0, 0, f"not UTF-8: {exc.reason}")
            return
        yield given, text, None
        return
    path = Path(given)
    if path.is_dir():
        files = _manifest_files(path)
        if not files:
            yield given, "", SourceError(given, 0, 0, f"no {', '.join(EXTENSIONS)} files in this folder")
        for rel in files:
            yield from _file(os.path.join(given, rel)) if read_files else [(os.path.join(given, rel), None, None)]
    elif path.exists():
        yield from _file(given) if read_files else [(given, None, None)]
    else:
        yield given, "", SourceError(given, 0, 0, "no such file or folder")


def _manifest_files(folder: Path) -> list[str]:
    """Manifest files below `folder`, relative and sorted; hidden files and folders (.git) are skipped."""
    found: list[tuple[str, ...]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder).parts
        found += [(*rel, f) for f in files if not f.startswith(".") and f.lower().endswith(EXTENSIONS)]
    return [os.path.join(*parts) for parts in sorted(found)]


def _file(source: str) -> Iterator[tuple[str, str, SourceError | None]]:
    try:
        with open(source, "rb") as handle:  # not Path.stat: a FIFO or /dev/stdin has no size
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        yield source, "", SourceError(source, 0, 0, exc.strerror or str(exc))
        return
    if len(data) > MAX_BYTES:
        yield source, "", SourceError(source, 0, 0, f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1  # in bytes: the line is not text
        hint = " (it starts with a UTF-16 byte-order mark; save it as UTF-8)" if data[:2] in (
            b"\xff\xfe", b"\xfe\xff") else ""
        yield source, "", SourceError(source, line, col,
                                      f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}{hint}")
        return
    yield source, text, None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --- composing nodes from events ----------------------------------------------------------------

@dataclass
class _Root:
    node: Node
    written: int  # nodes written in the document, the base of the alias budget


def _compose(text: str) -> Iterator[_Root]:
    """Each document's root node, composed without recursion and within the limits."""
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, DocumentStartEvent):
                yield _compose_document(loader)
            elif isinstance(event, StreamEndEvent):
                return
    finally:
        loader.dispose()


def _compose_document(loader: Any) -> _Root:
    anchors: dict[str, Node] = {}
    stack: list[Node] = []
    open_ids: set[int] = set()
    keys: list[Node | None] = []  # per open mapping: the key waiting for its value
    root: Node | None = None
    written = aliases = 0
    while True:
        event = loader.get_event()
        what = type(event)  # the parsers emit exactly these classes; most events are scalars
        node: Node
        if what is ScalarEvent or what is MappingStartEvent or what is SequenceStartEvent:
            written += 1
            if written > MAX_NODES:
                raise _Stop(event.start_mark, f"more than {MAX_NODES} nodes in one document")
            start: Any = event.start_mark  # a C or a Python Mark: both have line and column
            if what is ScalarEvent:
                tag = event.tag if event.tag not in (None, "!") else _scalar_tag(loader, event.value, event.implicit)
                node = ScalarNode(tag, event.value, start, None, event.style)
                if event.anchor is not None:
                    anchors[event.anchor] = node
            else:
                if len(stack) >= MAX_DEPTH:
                    raise _Stop(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
                kind = SequenceNode if what is SequenceStartEvent else MappingNode
                tag = event.tag if event.tag not in (None, "!") else loader.resolve(kind, None, event.implicit)
                node = kind(tag, [], start, None, event.flow_style)
                if event.anchor is not None:
                    anchors[event.anchor] = node
                stack.append(node)
                open_ids.add(id(node))
                keys.append(None)
                continue
        elif what is MappingEndEvent or what is SequenceEndEvent:
            node = stack.pop()
            open_ids.discard(id(node))
            keys.pop()
        elif what is AliasEvent:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Stop(event.start_mark, f"more than {MAX_ALIASES} aliases in one document")
            if event.anchor not in anchors:
                raise _Stop(event.start_mark, f"undefined alias *{event.anchor}")
            node = anchors[event.anchor]
            if id(node) in open_ids:
                raise _Stop(event.start_mark, f"alias *{event.anchor} refers to a node that contains it")
        elif isinstance(event, DocumentEndEvent):
            if root is None:  # the parser always gives a document a node; stay total all the same
                raise _Stop(event.start_mark, "a document without content")
            return _Root(root, written)
        else:  # no parser emits anything else inside a document
            raise _Stop(event.start_mark, f"unexpected {what.__name__} in a document")
        if not stack:
            root = node
        elif type(stack[-1]) is SequenceNode:
            stack[-1].value.append(node)
        elif keys[-1] is None:
            keys[-1] = node
        else:
            stack[-1].value.append((keys[-1], node))
            keys[-1] = None


_RESOLVED: dict[tuple[str, Any], str] = {}  # (plain scalar, implicit) -> tag; the same words recur in every manifest
_RESOLVED_MAX = 65_536


def _scalar_tag(loader: Any, value: str, implicit: Any) -> str:
    """loader.resolve for a scalar: the tag depends on the text and `implicit` only (no path resolvers)."""
    key = (value, implicit)
    tag = _RESOLVED.get(key)
    if tag is None:
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        tag = _RESOLVED[key] = loader.resolve(ScalarNode, value, implicit)
    return tag


# --- documents from nodes -----------------------------------------------------------------------

def _documents(root: _Root, source: str, is_json: bool, docs: list[Document], errors: list[SourceError]) -> None:
    """Append the document (or, for a List, each of its items) to `docs`, or what is wrong with it to `errors`."""
    node = root.node
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return  # an empty document, e.g. after a trailing `---`
    builder = _Builder(root.written + MAX_ALIAS_NODES)
    try:
        if not isinstance(node, MappingNode):
            if is_json and isinstance(node, SequenceNode):
                raise _Stop(node, 'a JSON file holds one object, not a list; write several as '
                                  '{"apiVersion": "v1", "kind": "List", "items": [...]}')
            raise _Stop(node, f"a manifest must be an object, got {_kind_name(node)}")
        items = _list_items(node)
    except _Stop as stop:
        errors.append(SourceError(source, stop.line, stop.col, stop.message))
        return
    for item in [node] if items is None else items:
        try:
            if not isinstance(item, MappingNode):
                raise _Stop(item, f"a List item must be an object, got {_kind_name(item)}")
            positions: dict[str, tuple[int, int]] = {}
            obj = builder.build(item, "", positions, 0)
        except _Stop as stop:
            errors.append(SourceError(source, stop.line, stop.col, stop.message))
            continue
        docs.append(Document(source, len(docs), obj, item.start_mark.line + 1, MappingProxyType(positions)))


def _list_items(node: MappingNode) -> list[Node] | None:
    """The item nodes of a `kind: List` (or any `*List` with items), else None."""
    fields = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
    kind, items = fields.get("kind"), fields.get("items")
    if not isinstance(kind, ScalarNode) or not str(kind.value).endswith("List") or items is None:
        return None
    if isinstance(items, ScalarNode) and items.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(items, SequenceNode):
        raise _Stop(items, f"items of a {kind.value} must be a list, got {_kind_name(items)}")
    return list(items.value)


def _kind_name(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "an object"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the scalar {str(node.value)[:40]!r}"


class _Builder:
    """Python values from nodes, recording positions; counts every node built to bound alias expansion."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def build(self, node: Node, path: str, positions: dict[str, tuple[int, int]], depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _Stop(node, "aliases expand this document beyond the node limit")
        if depth > MAX_DEPTH:  # aliases can nest deeper than what was written
            raise _Stop(node, f"aliases nest this document deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            return _scalar(node)
        deeper = depth + 1
        if isinstance(node, SequenceNode):
            out: list[Any] = []
            for i, item in enumerate(node.value):
                where = sys.intern(f"{path}[{i}]")  # the same paths recur in every document: one string each
                positions[where] = _at(item)
                if type(item) is ScalarNode and self.budget > 0 and deeper <= MAX_DEPTH:
                    self.budget -= 1  # build() for a scalar within the limits, without the call
                    out.append(_scalar(item))
                else:
                    out.append(self.build(item, where, positions, deeper))
            return out
        merged: dict[str, Any] = {}
        explicit: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag == _MERGE_TAG:
                # `<<: *base` or `<<: [*a, *b]`: written keys win, then earlier sources.
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in reversed(sources):
                    if not isinstance(source, MappingNode):
                        raise _Stop(source, "a merge key (<<) takes an object or a list of objects")
                    merged.update(self.build(source, path, positions, depth))
            else:
                explicit.append((key, value))
        for key, value in explicit:
            name = sys.intern(_key(key))
            where = sys.intern(_join(path, name))
            positions[where] = _at(key)
            if type(value) is ScalarNode and self.budget > 0 and deeper <= MAX_DEPTH:
                self.budget -= 1  # as in the sequence above
                merged[name] = _scalar(value)
            else:
                merged[name] = self.build(value, where, positions, deeper)
        return merged


def _at(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _scalar(node: ScalarNode) -> Any:
    if node.tag == _STR_TAG:
        return node.value  # what SafeConstructor.construct_yaml_str returns
    if node.tag in _TYPED_TAGS:
        try:
            value = _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        except (ValueError, yaml.constructor.ConstructorError):
            return node.value  # `!!int abc`: keep the text
        if isinstance(value, float) and not math.isfinite(value):
            # .inf, .nan, 1e400: no JSON (and no API server) carries them
            raise _Stop(node, f"{node.value[:40]!r} is not a finite number")
        return value
    return node.value


def _key(node: Node) -> str:
    if type(node) is ScalarNode and node.tag == _STR_TAG:
        return str(node.value)
    if not isinstance(node, ScalarNode):
        raise _Stop(node, "a mapping key must be a string, not " + _kind_name(node))
    value = _scalar(node)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if isinstance(value, (str, int)) else str(node.value)


# --- field paths --------------------------------------------------------------------------------

_QUOTE = re.compile(r'[./\[\]"]')
_TOKEN = re.compile(r'\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([^.\[\]]+)')


def _join(path: str, key: str) -> str:
    """`spec` + `egress` -> `spec.egress`; keys with dots or slashes as `labels["netguard.io/x"]`."""
    if key and not _QUOTE.search(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _tokens(path: str) -> list[tuple[int, str, str]] | None:
    """(offset, "[i]" or "", key or index) per segment; None when `path` is not in netguard's syntax."""
    out: list[tuple[int, str, str]] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            return None
        index, quoted, plain = match.groups()
        if index is not None:
            out.append((pos, "[i]", index))
        elif quoted is not None:
            try:
                out.append((pos, "", str(json.loads(quoted))))
            except ValueError:
                return None
        else:
            out.append((pos, "", plain))
        pos = match.end()
    return out


def _parent(path: str) -> str:
    tokens = _tokens(path)
    if tokens:
        return path[:tokens[-1][0]]
    return path[:max(path.rfind("."), path.rfind("["), 0)]


def _loose(path: str) -> str:
    """The path with keys unquoted, so `a["b.c"]` and `a.b.c` compare equal."""
    tokens = _tokens(path)
    if tokens is None:
        return path
    return "".join(f"[{text}]" if kind else f".{text}" if i else text for i, (_, kind, text) in enumerate(tokens))
