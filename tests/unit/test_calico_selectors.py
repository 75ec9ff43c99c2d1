"""Calico's selector language (webhook/core/calico_selectors.py): parsing, bounded work on hostile input, and the
bounds in the model's Selector held against an evaluator of this test's own on random label sets."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core import calico_selectors as cs
from webhook.core.calico_selectors import ALL, And, Expr, Not, Or, Term
from webhook.core.selectors import Requirement, Selector
from webhook.core.shape import ShapeError

KEYS = ("app", "tier", "env")
VALUES = ("a", "b", "c")


def oracle(expr: Expr, labels: Mapping[str, str]) -> bool:
    """Calico's meaning, written independently of the module's evaluate (libcalico-go/lib/selector/parser)."""
    match expr:
        case Not(inner):
            return not oracle(inner, labels)
        case And(items):
            return all(oracle(e, labels) for e in items)
        case Or(items):
            return any(oracle(e, labels) for e in items)
        case Term("all") | Term("global"):
            return True
        case Term("has", key):
            return key in labels
        case Term("in", key, values):
            return labels.get(key) in values
        case Term("notin", key, values):
            return labels.get(key) not in values
        case Term("contains", key, (needle,)):
            return key in labels and needle in labels[key]
        case Term("startswith", key, (needle,)):
            return key in labels and labels[key].startswith(needle)
        case Term("endswith", key, (needle,)):
            return key in labels and labels[key].endswith(needle)
    raise AssertionError(expr)


def render(expr: Expr) -> str:
    """The expression in Calico's syntax, parenthesised everywhere."""
    match expr:
        case Not(inner):
            return f"!({render(inner)})"
        case And(items):
            return " && ".join(f"({render(e)})" for e in items)
        case Or(items):
            return " || ".join(f"({render(e)})" for e in items)
        case Term("all"):
            return "all()"
        case Term("has", key):
            return f"has({key})"
        case Term("in", key, (value,)):
            return f"{key} == '{value}'"
        case Term("notin", key, (value,)):
            return f'{key} != "{value}"'
        case Term(op, key, values) if op in ("in", "notin"):
            words = "in" if op == "in" else "not in"
            return f"{key} {words} {{{', '.join(repr(v) for v in values)}}}"
        case Term("contains", key, (value,)):
            return f"{key} contains '{value}'"
        case Term(op, key, (value,)):
            return f"{key} {op[:-4]} with '{value}'"
    raise AssertionError(expr)


terms = st.one_of(
    st.just(ALL),
    st.builds(lambda k: Term("has", k), st.sampled_from(KEYS)),
    st.builds(lambda op, k, vs: Term(op, k, tuple(vs)), st.sampled_from(("in", "notin")), st.sampled_from(KEYS),
              st.lists(st.sampled_from(VALUES), min_size=1, max_size=3)),
    st.builds(lambda op, k, v: Term(op, k, (v,)), st.sampled_from(("contains", "startswith", "endswith")),
              st.sampled_from(KEYS), st.sampled_from(VALUES)),
)
exprs = st.recursive(terms, lambda inner: st.one_of(
    st.builds(Not, inner),
    st.builds(lambda xs: And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
), max_leaves=8)
label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from((*VALUES, "ab", "ca")), max_size=3)


@settings(max_examples=400, deadline=None)
@given(exprs, st.lists(label_sets, min_size=1, max_size=8))
def test_the_bounds_hold_on_random_label_sets(expr: Expr, samples: list[dict[str, str]]) -> None:
    parsed = cs.parse(render(expr), "spec.selector")
    found = cs.bounds(parsed)
    for labels in samples:
        truth = oracle(expr, labels)
        assert cs.evaluate(parsed, labels) == truth  # parse(render(e)) means e
        if truth:
            assert found.over.matches(labels)  # over: at least what it matches
        if found.under.matches(labels):
            assert truth  # under: only what it matches
        if found.exact:
            assert found.over.matches(labels) == truth


@pytest.mark.parametrize(("text", "requirements"), [
    ("", ()),
    ("all()", ()),
    ("app == 'web'", (Requirement("app", "In", ("web",)),)),
    ('app != "web"', (Requirement("app", "NotIn", ("web",)),)),
    ("has(app) && !has(debug)", (Requirement("app", "Exists"), Requirement("debug", "DoesNotExist"))),
    ("tier in {'b', 'a'} && env not in {'dev'}", (Requirement("tier", "In", ("a", "b")),
                                                   Requirement("env", "NotIn", ("dev",)))),
    ("!(app == 'web' || app == 'api')", (Requirement("app", "NotIn", ("web",)), Requirement("app", "NotIn", ("api",)))),
    ("  app=='web'\t&&\ttier=='db'  ", (Requirement("app", "In", ("web",)), Requirement("tier", "In", ("db",)))),
])
def test_conjunctions_of_simple_terms_are_exact(text: str, requirements: tuple[Requirement, ...]) -> None:
    found = cs.bounds(cs.parse(text, "spec.selector"))
    assert found.exact and found.over == Selector(requirements)


def test_a_disjunction_is_bounded_from_both_sides() -> None:
    found = cs.bounds(cs.parse("(env == 'prod' && app == 'web') || (env == 'prod' && app == 'api')", "s"))
    assert found.over == Selector((Requirement("env", "In", ("prod",)),))  # what both branches require
    assert found.under == Selector((Requirement("env", "In", ("prod",)), Requirement("app", "In", ("web",))))
    tautology = cs.bounds(cs.parse("all() || app == 'x'", "s"))
    assert tautology.matches_everything and tautology.over.empty
    loose = cs.bounds(cs.parse("app == 'x' || tier == 'y'", "s"))
    assert loose.over.empty and not loose.matches_everything  # reaches anything, selects surely only app=x


def test_string_operators_bound_to_presence_and_nothing() -> None:
    found = cs.bounds(cs.parse("app contains 'we'", "s"))
    assert found.over == Selector((Requirement("app", "Exists"),)) and found.under == cs.NOTHING
    assert not found.under.matches({"app": "web"})
    assert cs.bounds(cs.parse("!(app starts with 'w')", "s")).over.empty


def test_global_is_recognised_only_as_the_whole_selector() -> None:
    assert cs.is_global(cs.parse("global()", "s"))
    assert not cs.is_global(cs.parse("global() && has(a)", "s"))


@pytest.mark.parametrize(("text", "problem"), [
    ("app = 'web'", "expected an operator"),
    ("app == web", "expected a quoted string"),
    ("app == 'web", "unterminated string"),
    ("has(app", "expected ')'"),
    ("(app == 'a'", "expected ')'"),
    ("app == 'a' &&", "expected a label"),
    ("app in {'a',}", "expected a quoted string"),
    ("app == 'a' junk", "unexpected characters"),
    ("!= 'a'", "'!=' needs a label"),
    ("app starts 'a'", "expected 'with'"),
])
def test_a_broken_selector_is_an_error_naming_the_field(text: str, problem: str) -> None:
    with pytest.raises(ShapeError, match=re.escape(problem)) as caught:
        cs.parse(text, "spec.ingress[0].source.selector")
    assert caught.value.path == "spec.ingress[0].source.selector"


@pytest.mark.parametrize("value", [3, ["a"], {"a": 1}, True])
def test_a_selector_that_is_not_a_string_is_an_error(value: object) -> None:
    with pytest.raises(ShapeError, match="must be a selector string"):
        cs.parse(value, "spec.selector")


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "all()" + ")" * 100_000,  # deep nesting: refused before any recursion limit
    "a == 'x' && " * 90_000 + "all()",  # a 1 MB selector
    "!" * 1_000_000 + "all()",
])
def test_hostile_selectors_are_refused_quickly(text: str) -> None:
    start = time.monotonic()
    with pytest.raises(ShapeError):
        cs.parse(text, "spec.selector")
    assert time.monotonic() - start < 1.0


def test_nesting_is_limited_but_ordinary_depth_is_fine() -> None:
    deep = "(" * cs.MAX_DEPTH + "has(a)" + ")" * cs.MAX_DEPTH
    assert cs.bounds(cs.parse(deep, "s")).exact
    with pytest.raises(ShapeError, match="nested deeper"):
        cs.parse("(" * (cs.MAX_DEPTH + 2) + "has(a)" + ")" * (cs.MAX_DEPTH + 2), "s")
    negations = cs.parse("!" * 1001 + "has(a)", "s")  # a chain of ! is read in a loop, not by recursion
    assert negations == Not(Term("has", "a"))
