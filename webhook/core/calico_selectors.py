"""Calico's selector language (projectcalico.org/v3 `selector`, `namespaceSelector`, `serviceAccountSelector`)
parsed, evaluated, and read into the model's `Selector` as sound bounds.

Syntax as Calico tokenizes and parses it (github.com/projectcalico/calico libcalico-go/lib/selector/tokenizer/
tokenizer.go and parser/parser.go; the operators listed in projectcalico/api pkg/apis/projectcalico/v3/
networkpolicy.go, NetworkPolicySpec.Selector): `all()`, `global()`, `has(k)`, `k == 'v'`, `k != 'v'` (also true
when k is absent), `k in {'a', 'b'}`, `k not in {...}` (also true when k is absent), `k contains 's'`,
`k starts with 's'`, `k ends with 's'`, `!`, `&&` (binds tighter than `||`), `||`, parentheses. Labels are
`[a-zA-Z0-9_./-]{1,512}`; strings are in single or double quotes without escapes; whitespace is spaces and tabs.
An empty selector is `all()`.

The model's `Selector` is a conjunction of simple requirements, so an expression with `||`, or with a negated
compound, or a string operator, has no exact equivalent. It is read as two bounds instead (`Bounds`):
`over` matches at least every label set the expression matches (what a peer can reach: sound for the guardrails
that count reach, which then report at worst too much), `under` matches only label sets the expression matches
(what a subject surely selects: sound for default deny, which then credits at worst too little). For a
conjunction of simple terms both are the exact selector. An unparseable selector, or one past the length and
nesting limits, is a ShapeError naming the field: the work is linear in the text and the recursion bounded.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from webhook.core.selectors import Requirement, Selector
from webhook.core.shape import ShapeError

# Bounds on hostile input (a 1 MB selector): Calico sets none but the API server's request size; these are far
# above any hand-written selector and keep parsing linear and the recursion shallow.
MAX_LENGTH = 16384
MAX_DEPTH = 64
_LABEL = re.compile(r"[a-zA-Z0-9_./-]{1,512}")
_WHITESPACE = " \t"


@dataclass(frozen=True)
class Term:
    """A leaf: `op` one of all, global, has, in, notin, contains, startswith, endswith."""

    op: str
    key: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class And:
    exprs: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    exprs: tuple[Expr, ...]


Expr = Term | Not | And | Or
ALL = Term("all")


def evaluate(expr: Expr, labels: Mapping[str, str]) -> bool:
    """The expression on one label set, as Calico's selector evaluates it (global() is true of any label set:
    where it is written decides what it means, see `is_global`)."""
    if isinstance(expr, Not):
        return not evaluate(expr.expr, labels)
    if isinstance(expr, And):
        return all(evaluate(e, labels) for e in expr.exprs)
    if isinstance(expr, Or):
        return any(evaluate(e, labels) for e in expr.exprs)
    value = labels.get(expr.key)
    if expr.op in ("all", "global"):
        return True
    if expr.op == "has":
        return value is not None
    if expr.op == "in":
        return value is not None and value in expr.values
    if expr.op == "notin":
        return value is None or value not in expr.values
    if value is None:
        return False
    needle = expr.values[0]
    return {"contains": needle in value, "startswith": value.startswith(needle),
            "endswith": value.endswith(needle)}[expr.op]


def is_global(expr: Expr) -> bool:
    """`global()` written as the whole selector: in a namespaceSelector, endpoints of no namespace (host endpoints,
    GlobalNetworkSets), per projectcalico/api policy_common.go EntityRule.NamespaceSelector."""
    return isinstance(expr, Term) and expr.op == "global"


# -- parsing ----------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.text, self.path, self.pos = text, path, 0

    def fail(self, problem: str) -> ShapeError:
        return ShapeError(self.path, f"is not a Calico selector: {problem} at character {self.pos + 1} "
                                     f"of {self.text[:60]!r}{'...' if len(self.text) > 60 else ''}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def take(self, word: str) -> bool:
        self.skip()
        if self.text.startswith(word, self.pos):
            self.pos += len(word)
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.take(word):
            raise self.fail(f"expected {word!r}")

    def parse(self) -> Expr:
        self.skip()
        if self.pos == len(self.text):
            return ALL  # the empty selector
        expr = self.disjunction(0)
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("unexpected characters")
        return expr

    def disjunction(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH}")
        items = [self.conjunction(depth)]
        while self.take("||"):
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, depth: int) -> Expr:
        items = [self.unary(depth)]
        while self.take("&&"):
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Expr:
        nots = 0
        while self.take("!"):
            if self.text.startswith("=", self.pos):
                raise self.fail("'!=' needs a label before it")
            nots += 1
        expr: Expr
        if self.take("("):
            expr = self.disjunction(depth + 1)
            self.expect(")")
        else:
            expr = self.term()
        return Not(expr) if nots % 2 else expr

    def term(self) -> Expr:
        for name in ("all", "global"):
            if self.take(f"{name}("):
                self.expect(")")
                return Term(name)
        if self.take("has("):
            key = self.label()
            self.expect(")")
            return Term("has", key)
        key = self.label()
        for word, op in (("==", "in"), ("!=", "notin")):
            if self.take(word):
                return Term(op, key, (self.string(),))
        if self.take("not"):
            self.expect("in")
            return Term("notin", key, self.string_set())
        if self.take("in"):
            return Term("in", key, self.string_set())
        if self.take("contains"):
            return Term("contains", key, (self.string(),))
        for word in ("starts", "ends"):
            if self.take(word):
                self.expect("with")
                return Term(f"{word}with", key, (self.string(),))
        raise self.fail(f"expected an operator after the label {key!r}")

    def label(self) -> str:
        self.skip()
        found = _LABEL.match(self.text, self.pos)
        if found is None:
            raise self.fail("expected a label")
        self.pos = found.end()
        return found.group()

    def string(self) -> str:
        self.skip()
        quote = self.text[self.pos:self.pos + 1]
        if quote not in ("'", '"'):
            raise self.fail("expected a quoted string")
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.fail("unterminated string")
        value = self.text[self.pos + 1:end]
        self.pos = end + 1
        return value

    def string_set(self) -> tuple[str, ...]:
        self.expect("{")
        values: list[str] = []
        if self.take("}"):
            return ()
        values.append(self.string())
        while self.take(","):
            values.append(self.string())
        self.expect("}")
        return tuple(values)


def parse(text: object, path: str) -> Expr:
    """A selector string to an expression; ShapeError names `path` for anything else, whatever the input."""
    if text is None:
        return ALL
    if not isinstance(text, str):
        raise ShapeError(path, f"must be a selector string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ShapeError(path, f"is a selector of {len(text)} characters: netguard reads at most {MAX_LENGTH}")
    return _Parser(text, path).parse()


# -- bounds in the model's Selector --------------------------------------------------------------------------------

# A requirement no label set meets (an In with no values: Selector.matches, selectors.satisfiable): the under
# bound of what cannot be expressed.
NOTHING = Selector((Requirement("projectcalico.org/netguard-unrepresentable", "In", ()),))


@dataclass(frozen=True)
class Bounds:
    over: Selector  # matches every label set the expression matches (and maybe more)
    under: Selector  # matches only label sets the expression matches (maybe fewer)

    @property
    def exact(self) -> bool:
        return self.over == self.under

    @property
    def matches_everything(self) -> bool:
        """Known to match every label set (`all()`, an empty selector, `!has(a) || has(a)`...)."""
        return self.under.empty


def bounds(expr: Expr) -> Bounds:
    """`expr` read as model selectors (see the module docstring). Negations are pushed to the leaves first."""
    return _bounds(expr, False)


def _literal(term: Term, negated: bool) -> Selector | None:
    """A leaf (negated or not) as one exact requirement, or None when the model has no equivalent."""
    if term.op in ("all", "global"):
        return NOTHING if negated else Selector()
    if term.op == "has":
        return Selector((Requirement(term.key, "DoesNotExist" if negated else "Exists"),))
    if term.op in ("in", "notin"):
        positive = (term.op == "in") != negated
        return Selector((Requirement(term.key, "In" if positive else "NotIn", tuple(sorted(set(term.values)))),))
    return None  # contains / starts with / ends with


def _bounds(expr: Expr, negated: bool) -> Bounds:
    if isinstance(expr, Not):
        return _bounds(expr.expr, not negated)
    if isinstance(expr, Term):
        exact = _literal(expr, negated)
        if exact is not None:
            return Bounds(exact, exact)
        # A string operator: true only where the key is present; its negation says nothing the model can hold.
        return Bounds(Selector() if negated else Selector((Requirement(expr.key, "Exists"),)), NOTHING)
    parts = [_bounds(e, negated) for e in expr.exprs]
    conjunction = isinstance(expr, And) != negated  # De Morgan
    if conjunction:
        return Bounds(_conjoin([p.over for p in parts]), _conjoin([p.under for p in parts]))
    # A disjunction: over, the requirements every branch's over bound shares; under, a branch that surely matches
    # everything if there is one, else the first branch whose under bound can match anything.
    possible = [p.over for p in parts if p.over != NOTHING]  # a branch that matches nothing adds nothing
    if not possible:
        return Bounds(NOTHING, NOTHING)
    shared = set(possible[0].requirements)
    for other in possible[1:]:
        shared &= set(other.requirements)
    over = Selector(tuple(r for r in possible[0].requirements if r in shared))
    if any(p.under.empty for p in parts):
        return Bounds(Selector(), Selector())
    under = next((p.under for p in parts if p.under != NOTHING), NOTHING)
    return Bounds(over, under)


def _conjoin(selectors: list[Selector]) -> Selector:
    if any(s == NOTHING for s in selectors):
        return NOTHING
    return Selector(tuple(dict.fromkeys(r for s in selectors for r in s.requirements)))
