"""Reading GoRules JDM decision tables, and the small algebra validation needs over their condition cells.

A JDM file is a graph; ours are `input -> one decisionTableNode -> output`, one table per file, so each opens
on its own in the ZEN editor. A condition cell is a ZEN unary expression on the column's field (`$`):
`"城乡建设"`, `"a", "b"`, `>= 0.8`, `[0..6]`, `contains($, "违建")` … Cells we can read exactly (literal lists,
numeric intervals and comparisons) become `Values` / `Interval`; anything else is `Opaque` and is only ever
compared by its text. That is enough to find rows that can never fire, rows that overlap, and gaps.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

# --- conditions ---------------------------------------------------------------------------------------------

Literal_ = str | float | bool


@dataclass(frozen=True)
class AnyValue:
    """An empty cell: matches everything."""


@dataclass(frozen=True)
class Values:
    items: frozenset[Literal_]


@dataclass(frozen=True)
class Interval:
    lo: float = -math.inf
    lo_closed: bool = False
    hi: float = math.inf
    hi_closed: bool = False

    def contains(self, x: float) -> bool:
        above = x > self.lo or (self.lo_closed and x == self.lo)
        below = x < self.hi or (self.hi_closed and x == self.hi)
        return above and below

    def covers(self, other: Interval) -> bool:
        lo_ok = self.lo < other.lo or (self.lo == other.lo and (self.lo_closed or not other.lo_closed))
        hi_ok = self.hi > other.hi or (self.hi == other.hi and (self.hi_closed or not other.hi_closed))
        return lo_ok and hi_ok

    def meets(self, other: Interval) -> bool:
        if self.lo > other.hi or other.lo > self.hi:
            return False
        if self.lo == other.hi:
            return self.lo_closed and other.hi_closed
        if other.lo == self.hi:
            return other.lo_closed and self.hi_closed
        return True


@dataclass(frozen=True)
class Opaque:
    text: str


Condition = AnyValue | Values | Interval | Opaque
ANY = AnyValue()

_NUMBER = r"-?\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?"  # 1_000 as ZEN (and float()) read it
_INTERVAL = re.compile(rf"^([\[(])\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*([\])])$")
_COMPARISON = re.compile(rf"^(<=|>=|<|>|==)\s*({_NUMBER})$")


def _split_top_level(cell: str) -> list[str]:
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    i = 0
    while i < len(cell):
        ch = cell[i]
        if quote:  # ZEN strings have no escapes: the next quote of the same kind ends one
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cell[start:i].strip())
            start = i + 1
        i += 1
    parts.append(cell[start:].strip())
    return parts


def _literal(item: str) -> tuple[bool, Literal_]:
    # read as ZEN reads it: the text between the quotes, backslashes included (ZEN has no escapes)
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'" and item[0] not in item[1:-1]:
        return True, item[1:-1]
    if re.fullmatch(_NUMBER, item):
        return True, float(item)
    if item in ("true", "false"):
        return True, item == "true"
    return False, ""


def parse_condition(cell: str) -> Condition:
    text = " ".join(cell.split())
    if not text:
        return ANY
    if m := _INTERVAL.match(text):
        return Interval(float(m.group(2)), m.group(1) == "[", float(m.group(3)), m.group(4) == "]")
    if m := _COMPARISON.match(text):
        op, x = m.group(1), float(m.group(2))
        if op == "==":
            return Values(frozenset([x]))
        return {
            "<": Interval(hi=x), "<=": Interval(hi=x, hi_closed=True),
            ">": Interval(lo=x), ">=": Interval(lo=x, lo_closed=True),
        }[op]
    items: list[Literal_] = []
    for part in _split_top_level(text):
        ok, value = _literal(part)
        if not ok:
            return Opaque(text)
        items.append(value)
    return Values(frozenset(items))


# --- cells that ZEN compiles but reads otherwise than a person (or json.loads) does -------------------------

# ZEN strings run to the next quote of their kind: there are no escapes
_TOKEN = re.compile(r"""(?P<string>"[^"]*"|'[^']*'|`[^`]*`)|(?P<number>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)"""
                    r"|(?P<name>[A-Za-z_$#][\w$]*)|(?P<other>\S)")
ZEN_WORDS = frozenset({"$", "$root", "#", "true", "false", "null", "and", "or", "not", "in"})
_REGEX_FUNCTIONS = frozenset({"matches", "extract"})  # their pattern argument needs its backslashes
_ESCAPE = ("ZEN reads no escapes in strings (\\u57ce stays those six characters, never 城), so it never equals "
           "the text it spells: write the characters themselves")


def _tokens(cell: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(cell)]


def _bare_names(tokens: list[tuple[str, str]]) -> list[str]:
    """The names ZEN reads as variables of the case: no ZEN word, no function called, no member after a dot."""
    return [text for i, (kind, text) in enumerate(tokens)
            if kind == "name" and text not in ZEN_WORDS and (not i or tokens[i - 1][1] != ".")
            and (i + 1 == len(tokens) or tokens[i + 1][1] != "(")]


def referenced_fields(cell: str) -> set[str]:
    """The case fields a condition reads by name (`confidence`, `$root.confidence`), besides its column's `$`."""
    tokens = _tokens(cell)
    rooted = {tokens[i + 2][1] for i, (_, text) in enumerate(tokens[:-2])
              if text == "$root" and tokens[i + 1][1] == "." and tokens[i + 2][0] == "name"}
    return rooted | set(_bare_names(tokens))


def condition_problems(cell: str, fields: Collection[str] = ()) -> list[str]:
    """Why a condition that ZEN compiles would not test what it says: a backslash escape in a string, or a
    bare word (`emergency`) that is none of the case's `fields`, which ZEN reads as a variable (null), not as
    the text."""
    tokens = _tokens(cell)
    problems: list[str] = []
    calls: list[str] = []  # per open bracket, the function it calls ("" for none)
    for i, (kind, text) in enumerate(tokens):
        before = tokens[i - 1] if i else ("", "")
        if text in ("(", "["):
            calls.append(before[1] if text == "(" and before[0] == "name" else "")
        elif text in (")", "]") and calls:
            calls.pop()
        elif kind == "string" and "\\" in text and not (calls and calls[-1] in _REGEX_FUNCTIONS):
            problems.append(f"string {text} has a backslash: {_ESCAPE}")
    for text in _bare_names(tokens):
        if text not in fields:
            problems.append(f"{text} is not quoted: ZEN reads a bare word as a variable (null here), not as "
                            f"text, so the row would not match {text}; write \"{text}\"")
    return problems


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the numbers ZEN reads")
    return value


def _bare_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number but a bare word to ZEN (null)")


def output_literal(cell: str) -> Any:
    """The value of an output cell: a JSON literal that ZEN reads as the same value; ValueError says why not
    (json.JSONDecodeError when it is no literal at all)."""
    if "\\" in cell:
        raise ValueError(_ESCAPE)
    return json.loads(cell, parse_constant=_bare_constant, parse_float=_finite)


def _number(x: Literal_) -> float | None:
    return x if isinstance(x, float) else None


def covers(a: Condition, b: Condition) -> bool:
    """Every value b accepts, a accepts too (so with a earlier in a first-hit table, b never decides)."""
    if isinstance(a, AnyValue):
        return True
    if isinstance(b, AnyValue):
        return False
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        return isinstance(a, Opaque) and isinstance(b, Opaque) and a.text == b.text
    if isinstance(a, Values):
        return isinstance(b, Values) and b.items <= a.items
    if isinstance(b, Interval):
        return a.covers(b)
    numbers = [_number(x) for x in b.items]
    return all(n is not None and a.contains(n) for n in numbers)


def may_overlap(a: Condition, b: Condition) -> bool:
    """Some value could satisfy both (True when it cannot be told)."""
    if isinstance(a, AnyValue | Opaque) or isinstance(b, AnyValue | Opaque):
        return True
    if isinstance(a, Values) and isinstance(b, Values):
        return bool(a.items & b.items)
    if isinstance(a, Interval) and isinstance(b, Interval):
        return a.meets(b)
    interval, values = (a, b) if isinstance(a, Interval) else (b, a)
    assert isinstance(interval, Interval) and isinstance(values, Values)
    return any((n := _number(x)) is not None and interval.contains(n) for x in values.items)


def matches(cond: Condition, value: Literal_) -> bool | None:
    """Does the condition accept this value? None when it cannot be told."""
    if isinstance(cond, AnyValue):
        return True
    if isinstance(cond, Opaque):
        return None
    if isinstance(cond, Values):
        return value in cond.items
    n = _number(value)
    return n is not None and cond.contains(n)


# --- tables -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    id: str
    name: str
    field: str


@dataclass
class Row:
    index: int  # 0-based position in the table
    uid: str  # JDM `_id`
    description: str
    cells: dict[str, str]  # input field -> cell text (non-empty only)
    conditions: dict[str, Condition]  # input field -> parsed (fields with empty cells are absent: ANY)
    outputs: dict[str, Any] = field(default_factory=dict)  # output field -> literal value (empty cells absent)

    @property
    def rule_id(self) -> str | None:
        value = self.outputs.get("rule_id")
        return value if isinstance(value, str) else None

    @property
    def label(self) -> str:
        return f"{self.rule_id or self.uid or '?'} (#{self.index + 1})"

    def condition(self, field_name: str) -> Condition:
        return self.conditions.get(field_name, ANY)


@dataclass
class DecisionTable:
    file: str
    node_name: str
    hit_policy: str
    inputs: list[Column]
    outputs: list[Column]
    rows: list[Row]
    graph: dict[str, Any]

    @property
    def input_fields(self) -> list[str]:
        return [c.field for c in self.inputs]

    @property
    def output_fields(self) -> list[str]:
        return [c.field for c in self.outputs]
