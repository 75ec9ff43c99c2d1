"""Label selectors, read for what they match rather than for how they are spelled.

A selector built only from negative requirements (NotIn, DoesNotExist) or from Exists on a
key every namespace carries matches every namespace not explicitly excluded, including
namespaces created tomorrow: the guardrails treat it as "open", the same as `{}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.shape import ShapeError, expect_list, expect_mapping, expect_str

# Set on every namespace by the API server since Kubernetes 1.21 (NamespaceDefaultLabelName).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Cilium's label for a pod's namespace; sources (k8s:, any:) are stripped before comparing.
CILIUM_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
CILIUM_NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
ALWAYS_PRESENT_NAMESPACE_KEYS = frozenset({NAMESPACE_NAME_LABEL, CILIUM_NAMESPACE_LABEL,
                                           CILIUM_NAMESPACE_LABELS_PREFIX + NAMESPACE_NAME_LABEL})
_SOURCES = ("k8s:", "any:", "container:", "unspec:")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_OPERATOR_BY_LOWER = {op.lower(): op for op in OPERATORS}


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selector:
    """A LabelSelector with Cilium label sources stripped and matchLabels turned into In."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def weight(self) -> int:
        """About the bytes a cache holding this selector keeps: the characters of its keys and values,
        plus one per requirement and value (neither the number of values nor their length is limited,
        so caches keep only light selectors)."""
        return sum(1 + len(r.key) + sum(1 + len(v) for v in r.values) for r in self.requirements)

    def keyed(self, key: str) -> tuple[Requirement, ...]:
        return tuple(r for r in self.requirements if r.key == key)

    def without(self, *keys: str) -> Selector:
        return Selector(tuple(r for r in self.requirements if r.key not in keys and
                              not r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX)))

    def is_open(self, always_present: frozenset[str] = ALWAYS_PRESENT_NAMESPACE_KEYS) -> bool:
        """True if the selector matches everything except what it names explicitly."""
        return all(
            r.operator in ("NotIn", "DoesNotExist") or (r.operator == "Exists" and r.key in always_present)
            for r in self.requirements
        )

    def excluded_values(self, key: str) -> tuple[str, ...]:
        return tuple(sorted({v for r in self.keyed(key) if r.operator == "NotIn" for v in r.values}))

    def pinned_values(self, key: str) -> tuple[str, ...] | None:
        """The values `key` must take (intersection of In requirements), or None if unpinned."""
        pinned: set[str] | None = None
        for r in self.keyed(key):
            if r.operator == "In":
                pinned = set(r.values) if pinned is None else pinned & set(r.values)
        return None if pinned is None else tuple(sorted(pinned))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes label-selector semantics (an empty selector matches everything)."""
        for r in self.requirements:
            present = r.key in labels
            if r.operator == "In" and not (present and labels[r.key] in r.values):
                return False
            if r.operator == "NotIn" and present and labels[r.key] in r.values:
                return False
            if r.operator == "Exists" and not present:
                return False
            if r.operator == "DoesNotExist" and present:
                return False
        return True

    def namespace_part(self) -> Selector:
        """The requirements about the namespace (Cilium's namespace label and namespace-label keys)."""
        return Selector(tuple(r for r in self.requirements if r.key == CILIUM_NAMESPACE_LABEL
                              or r.key.startswith(CILIUM_NAMESPACE_LABELS_PREFIX)))

    def pod_part(self) -> Selector:
        """The requirements about the pod itself."""
        return self.without(CILIUM_NAMESPACE_LABEL)

    def to_input(self) -> dict[str, Any]:
        return {
            "empty": self.empty,
            "open": self.is_open(),
            "requirements": [{"key": r.key, "operator": r.operator, "values": list(r.values)}
                             for r in self.requirements],
        }


def strip_source(key: str) -> str:
    """The key without its Cilium label source; the reserved source keeps its `reserved:` prefix, in
    every spelling Cilium's parseSource accepts (pkg/labels/labels.go): `reserved:world`,
    `$world` and `reserved.world` are one key."""
    if key.startswith("$"):
        return "reserved:" + key[1:]
    if key.startswith("reserved.") and ":" not in key:
        return "reserved:" + key[len("reserved."):]
    for source in _SOURCES:
        if key.startswith(source):
            return key[len(source):]
    return key


def parse_selector(value: Any, path: str) -> Selector:
    """A LabelSelector object to a Selector; ShapeError names the field on malformed input."""
    if value is None:
        return Selector()
    obj = expect_mapping(value, path)
    reqs: list[Requirement] = []
    labels = obj.get("matchLabels")
    if labels is not None:
        for k, v in expect_mapping(labels, f"{path}.matchLabels").items():
            reqs.append(Requirement(strip_source(str(k)), "In", (_label_value(v, f"{path}.matchLabels.{k}"),)))
    exprs = obj.get("matchExpressions")
    if exprs is not None:
        for i, item in enumerate(expect_list(exprs, f"{path}.matchExpressions")):
            where = f"{path}.matchExpressions[{i}]"
            expr = expect_mapping(item, where)
            key = expect_str(expr.get("key"), f"{where}.key")
            raw_op = expect_str(expr.get("operator"), f"{where}.operator")
            # Case-insensitive: Cilium's own examples write `operator: in`, and the label
            # library it converts to uses lowercase operators; read them as what they mean.
            op = _OPERATOR_BY_LOWER.get(raw_op.lower())
            if op is None:
                raise ShapeError(f"{where}.operator", f"must be one of {', '.join(OPERATORS)}, got {raw_op!r}")
            raw_values = expr.get("values") or []
            values = tuple(_label_value(x, f"{where}.values") for x in expect_list(raw_values, f"{where}.values"))
            reqs.append(Requirement(strip_source(key), op, values))
    return Selector(tuple(reqs))


def _label_value(value: Any, path: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ShapeError(path, "label values must be strings")
    return str(value)


def selector_from_labels(labels: Mapping[str, str]) -> Selector:
    return Selector(tuple(Requirement(k, "In", (v,)) for k, v in labels.items()))


def satisfiable(requirements: tuple[Requirement, ...] | list[Requirement]) -> bool:
    """Can one label set meet every requirement? (Used to tell whether two `specs` entries can select
    the same pod: their selectors' conjunction is satisfiable.) Key by key: In sets intersect minus
    NotIn values, Exists/In exclude DoesNotExist. An In with no values matches nothing."""
    by_key: dict[str, list[Requirement]] = {}
    for r in requirements:
        by_key.setdefault(r.key, []).append(r)
    for reqs in by_key.values():
        allowed: set[str] | None = None
        excluded: set[str] = set()
        present = absent = False
        for r in reqs:
            if r.operator == "In":
                allowed = set(r.values) if allowed is None else allowed & set(r.values)
                present = True
            elif r.operator == "NotIn":
                excluded |= set(r.values)
            elif r.operator == "Exists":
                present = True
            else:
                absent = True
        if present and absent:
            return False
        if allowed is not None and not allowed - excluded:
            return False
    return True
