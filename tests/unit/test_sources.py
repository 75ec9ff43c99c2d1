"""Reading manifests from files, folders, stdin and request bodies, with the position of every field."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from webhook.offline import sources
from webhook.offline.sources import Document, SourceError, read_paths, read_text

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test with libyaml and with the pure-Python parser: their marks and errors differ."""
    monkeypatch.setattr(sources, "_Loader", request.param)
    yield


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


POLICIES = """\
# two policies, one file
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web   # the first
  labels:
    netguard.io/baseline: "true"
spec:
  podSelector: {}
  egress:
  - to:
    - podSelector: {}
    - ipBlock:
        cidr: 0.0.0.0/0
  - ports: [{port: 53, protocol: UDP}]
---
# the second starts after a comment
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns}
specs:
  - endpointSelector: {}
    egress:
      - toEntities: [world]
"""


@pytest.mark.usefixtures("loader")
def test_nested_fields_are_positioned_at_their_keys_in_a_multi_document_file(tmp_path: Path) -> None:
    path = write(tmp_path / "policies.yaml", POLICIES)
    docs, errors = read_paths([path])
    assert errors == []
    first, second = docs
    assert (first.source, first.index, first.line) == (path, 0, 2)
    assert first.obj["spec"]["egress"][0]["to"][1] == {"ipBlock": {"cidr": "0.0.0.0/0"}}
    assert first.positions["spec"] == (8, 1)
    assert first.positions["metadata.name"] == (5, 3)
    assert first.positions["spec.egress"] == (10, 3)
    assert first.positions["spec.egress[0]"] == (11, 5)
    assert first.positions["spec.egress[0].to[1]"] == (13, 7)
    assert first.positions["spec.egress[0].to[1].ipBlock.cidr"] == (14, 9)
    assert first.positions["spec.egress[1].ports[0].protocol"] == (15, 24)
    assert first.positions['metadata.labels["netguard.io/baseline"]'] == (7, 5)
    assert (second.index, second.line) == (1, 18)
    assert second.positions["metadata.name"] == (20, 12)
    assert second.positions["specs[0]"] == (22, 5)
    assert second.positions["specs[0].egress[0].toEntities[0]"] == (24, 22)


@pytest.mark.usefixtures("loader")
def test_a_list_document_is_expanded_into_its_items() -> None:
    text = """\
apiVersion: v1
kind: List
metadata: {}
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: a}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: b
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
  - kind: NetworkPolicy
    metadata: {name: c}
"""
    docs, errors = read_text(text, "cluster.yaml")
    assert errors == []
    assert [(d.index, d.line, d.obj["metadata"]["name"]) for d in docs] == [(0, 5, "a"), (1, 8, "b"), (2, 16, "c")]
    assert docs[1].positions == {"apiVersion": (8, 3), "kind": (9, 3), "metadata": (10, 3), "metadata.name": (11, 5)}
    assert docs[2].positions["metadata.name"] == (17, 16)


def test_an_empty_list_gives_no_documents_and_a_bad_item_is_reported_alone() -> None:
    assert read_text("kind: List\nitems: []\n", "-") == ([], [])
    docs, errors = read_text("kind: List\nitems:\n- just text\n- {kind: NetworkPolicy}\n", "x.yaml")
    assert [d.obj for d in docs] == [{"kind": "NetworkPolicy"}]
    assert errors == [SourceError("x.yaml", 3, 3, "a List item must be an object, got the scalar 'just text'")]


@pytest.mark.usefixtures("loader")
def test_a_json_file_is_read_with_positions_even_when_indented_with_tabs(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.json",
                 '{\n\t"kind": "NetworkPolicy",\n\t"spec": {\n\t\t"egress": [{"to": []}]\n\t}\n}\n')
    docs, errors = read_paths([path])
    assert errors == []
    assert docs[0].obj == {"kind": "NetworkPolicy", "spec": {"egress": [{"to": []}]}}
    assert docs[0].positions["spec.egress[0].to"] == (4, 15)


def test_a_json_file_holding_an_array_is_an_error_not_a_list_of_documents(tmp_path: Path) -> None:
    path = write(tmp_path / "many.json", '[{"kind": "NetworkPolicy"}, {"kind": "NetworkPolicy"}]')
    docs, errors = read_paths([path])
    assert docs == []
    assert [(e.source, e.line, e.col) for e in errors] == [(path, 1, 1)]
    assert '"kind": "List"' in errors[0].message


def test_a_dash_reads_stdin() -> None:
    docs, errors = read_paths(["-"], stdin=io.StringIO("kind: NetworkPolicy\nspec: {}\n"))
    assert errors == []
    assert [(d.source, d.index, d.obj, d.positions["spec"]) for d in docs] == [
        ("-", 0, {"kind": "NetworkPolicy", "spec": {}}, (2, 1))]


def test_a_folder_is_read_recursively_in_sorted_order_skipping_other_and_hidden_files(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", "name: b\n")
    write(tmp_path / "a" / "z.yml", "name: a/z\n")
    write(tmp_path / "a" / "c.json", '{"name": "a/c"}')
    write(tmp_path / "README.md", "name: readme\n")
    write(tmp_path / "notes.txt", "name: notes\n")
    write(tmp_path / ".git" / "config.yaml", "name: git\n")
    write(tmp_path / ".hidden.yaml", "name: hidden\n")
    docs, errors = read_paths([str(tmp_path)])
    assert errors == []
    assert [d.obj["name"] for d in docs] == ["a/c", "a/z", "b"]
    assert docs[0].source == str(tmp_path / "a" / "c.json")


def test_a_folder_without_manifests_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "kind: NetworkPolicy\n")
    assert read_paths([str(tmp_path)]) == ([], [SourceError(str(tmp_path), 0, 0,
                                                            "no .yaml, .yml, .json files in this folder")])


@pytest.mark.usefixtures("loader")
def test_a_syntax_error_keeps_the_documents_before_it_and_other_files(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.yaml", "name: one\n---\nname: two\n---\nname: {three\n---\nname: four\n")
    good = write(tmp_path / "good.yaml", "name: five\n")
    docs, errors = read_paths([broken, good])
    assert [(d.source, d.obj["name"]) for d in docs] == [(broken, "one"), (broken, "two"), (good, "five")]
    assert len(errors) == 1
    assert (errors[0].source, errors[0].line) == (broken, 6)
    assert errors[0].message.startswith("invalid YAML: ")


def test_a_document_that_is_not_an_object_is_an_error_and_the_next_one_is_still_read() -> None:
    docs, errors = read_text("kind: A\n---\n# a list\n- kind: B\n---\njust text\n---\nkind: C\n", "x.yaml")
    assert [d.obj["kind"] for d in docs] == ["A", "C"]
    assert [d.index for d in docs] == [0, 1]
    assert errors == [SourceError("x.yaml", 4, 1, "a manifest must be an object, got a list"),
                      SourceError("x.yaml", 6, 1, "a manifest must be an object, got the scalar 'just text'")]


def test_empty_documents_are_skipped() -> None:
    docs, errors = read_text("---\n# nothing\n---\nkind: A\n---\n~\n---\n", "x.yaml")
    assert errors == []
    assert [(d.index, d.line, d.obj) for d in docs] == [(0, 4, {"kind": "A"})]
    assert read_text("", "x.yaml") == ([], [])


def test_a_missing_path_is_an_error_without_a_position(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    docs, errors = read_paths([missing, "-"], stdin=io.StringIO("kind: A\n"))
    assert [d.obj for d in docs] == [{"kind": "A"}]
    assert errors == [SourceError(missing, 0, 0, "no such file or folder")]


def test_bytes_that_are_not_utf8_are_reported_at_their_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("kind: A\nname: caf\u00e9\n".encode("latin-1"))
    docs, errors = read_paths([str(path)])
    assert docs == []
    assert errors == [SourceError(str(path), 2, 10, "not UTF-8: byte 0xe9 at offset 17")]


def test_a_utf16_file_gets_a_hint_and_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("kind: A\n".encode("utf-16"))
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("kind: A\n".encode("utf-8-sig"))
    docs, errors = read_paths([str(utf16), str(bom)])
    assert [(d.source, d.obj, d.positions["kind"]) for d in docs] == [(str(bom), {"kind": "A"}, (1, 1))]
    assert [(e.source, e.line, e.col) for e in errors] == [(str(utf16), 1, 1)]
    assert "UTF-16" in errors[0].message


@pytest.mark.usefixtures("loader")
def test_control_characters_are_reported_where_they_are() -> None:
    docs, errors = read_text("kind: A\nname: \u00e9\u00e9x\x01\n", "x.yaml")
    assert docs == []
    assert [(e.line, e.col) for e in errors] == [(2, 10)]
    assert "U+0001" in errors[0].message


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n" for a, b in zip("abcdefgh", "bcdefghi",
                                                                                                strict=True))


@pytest.mark.usefixtures("loader")
def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    started = time.monotonic()
    docs, errors = read_text(BOMB + "---\nkind: After\n", "bomb.yaml")
    assert time.monotonic() - started < 10
    assert [d.obj for d in docs] == [{"kind": "After"}]
    assert len(errors) == 1
    assert errors[0].message == "aliases expand this document beyond the node limit"


def test_aliases_within_the_limits_are_expanded_and_merge_keys_apply() -> None:
    text = "ports: &p [{port: 53}]\negress:\n- ports: *p\nbase: &b {a: 1, b: 2}\nmerged:\n  <<: *b\n  b: 3\n"
    docs, errors = read_text(text, "x.yaml")
    assert errors == []
    assert docs[0].obj["egress"] == [{"ports": [{"port": 53}]}]
    assert docs[0].obj["merged"] == {"a": 1, "b": 3}
    assert docs[0].positions["egress[0].ports"] == (3, 3)
    assert docs[0].positions["merged.b"] == (7, 3)


def test_too_many_aliases_a_self_reference_or_an_undefined_alias_are_refused() -> None:
    many = "a: &a x\nb: [" + ", ".join(["*a"] * (sources.MAX_ALIASES + 1)) + "]\n"
    assert [e.message for e in read_text(many, "x")[1]] == [f"more than {sources.MAX_ALIASES} aliases in one document"]
    assert read_text("a: &a [1, *a]\n", "x")[1] == [
        SourceError("x", 1, 11, "alias *a refers to a node that contains it")]
    assert read_text("a: *nope\n", "x")[1] == [SourceError("x", 1, 4, "undefined alias *nope")]


@pytest.mark.usefixtures("loader")
def test_deep_nesting_is_refused_before_the_parser_slows_down() -> None:
    started = time.monotonic()
    depth = 2_000_000
    docs, errors = read_text("kind: A\n---\n" + "[" * depth + "]" * depth, "deep.yaml")
    assert time.monotonic() - started < 10
    assert [d.obj for d in docs] == [{"kind": "A"}]
    assert errors == [
        SourceError("deep.yaml", 3, sources.MAX_DEPTH + 1, f"nested deeper than {sources.MAX_DEPTH} levels")]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_BYTES", 64)
    big = write(tmp_path / "big.yaml", "kind: A\n" + "# padding\n" * 10)
    small = write(tmp_path / "small.yaml", "kind: B\n")
    docs, errors = read_paths([big, small])
    assert [d.obj for d in docs] == [{"kind": "B"}]
    assert [(e.source, e.line) for e in errors] == [(big, 0)]
    assert read_text("x" * 65, "<request>")[1][0].message.startswith("larger than")


def test_keys_with_dots_slashes_or_brackets_are_quoted_in_paths() -> None:
    text = 'metadata:\n  labels:\n    app.kubernetes.io/name: web\n    plain: x\n    "a[0]": y\n'
    docs, _ = read_text(text, "x.yaml")
    assert set(docs[0].positions) == {"metadata", "metadata.labels", 'metadata.labels["app.kubernetes.io/name"]',
                                      "metadata.labels.plain", 'metadata.labels["a[0]"]'}


def test_scalars_take_the_json_view_kubernetes_takes_of_yaml() -> None:
    text = "port: 80\nenabled: yes\nnone: ~\nratio: 1.5\nwhen: 2024-01-01\n80: x\ntrue: y\nodd: !custom z\n"
    docs, _ = read_text(text, "x")
    assert docs[0].obj == {"port": 80, "enabled": True, "none": None, "ratio": 1.5, "when": "2024-01-01", "80": "x",
                           "true": "y", "odd": "z"}


def test_position_falls_back_to_the_nearest_written_parent_then_the_document_start() -> None:
    docs, _ = read_text("\n\nkind: A\nmetadata:\n  labels:\n    netguard.io/baseline: 'true'\nspec:\n  egress: []\n",
                        "x.yaml")
    doc: Document = docs[0]
    assert doc.position("spec.egress") == (8, 3)
    assert doc.position("spec.egress[3].to[0]") == (8, 3)
    assert doc.position("spec.ingress") == (7, 1)
    assert doc.position('metadata.labels["netguard.io/baseline"]') == (6, 5)
    assert doc.position("metadata.labels.netguard.io/baseline") == (6, 5)  # paths written unquoted still match
    assert doc.position('metadata.labels["other.io/x"]') == (5, 3)
    assert doc.position("status") == (3, 1)
    assert doc.position("") == (3, 1)
