"""Typed access to untyped manifests: each helper names the field path when the shape is wrong.

A request whose object has an unexpected shape (``spec.egress: "all"``) must become a
well-formed denial that names the field, so every read of manifest data goes through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ShapeError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path
        self.problem = problem


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def expect_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(path, f"must be an object, got {type_name(value)}")
    return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def optional_mapping(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return {} if value is None else expect_mapping(value, join(path, key))


def expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ShapeError(path, f"must be a list, got {type_name(value)}")
    return value


def optional_list(parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = parent.get(key)
    return [] if value is None else expect_list(value, join(path, key))


def expect_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(path, f"must be a string, got {type_name(value)}")
    return value


def optional_str(parent: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
    value = parent.get(key)
    return default if value is None else expect_str(value, join(path, key))
