"""Row filters: a small expression language parsed by hand and evaluated column-wise.

Grammar (keywords are lowercase):

    filter     := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                | column ["not"] "in" "(" literal ("," literal)* [","] ")"
    operand    := column | literal
    literal    := number | string

A column is a name of letters, digits and underscores that does not start with a digit or with two
underscores. Numbers are decimal with an optional leading '-' (`12`, `-0.5`). Strings are single-
or double-quoted, with `\\\\`, `\\"` and `\\'` as the only escapes. A comparison names at least one
column, and both sides have the same kind (number or string).

Nothing in a filter is executed: the parser builds a tree of the nodes below, and evaluation
compares numpy arrays. A row with a missing value in any column the filter names never matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Union, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .errors import FilterSyntaxError
from .tables import column_kind

__all__ = ["RowFilter", "parse_filter", "MAX_FILTER_LENGTH"]

MAX_FILTER_LENGTH = 2000

# Maximum nesting depth of parentheses and `not`, which bounds the parser's recursion.
_MAX_DEPTH = 50

_KEYWORDS = frozenset({"and", "or", "not", "in"})
_COMPARISONS: dict[str, Callable[[object, object], object]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Comparison with the sides swapped: `3 < x` is evaluated as `x > 3`.
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_WHITESPACE = " \t\r\n"

# Characters that start a construct outside the grammar, with the reason given for each.
_REJECTED_CHARACTERS = {
    ".": "attribute access is not supported",
    "[": "subscripts are not supported",
    "]": "subscripts are not supported",
    "=": "assignment is not supported; use == to compare",
    "!": "'!' is only valid in '!='; use 'not' to negate",
    "&": "use 'and' to combine conditions",
    "|": "use 'or' to combine conditions",
    "~": "use 'not' to negate",
}


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # name, keyword, number, string, op, "(", ")", ",", end
    text: str
    position: int
    value: object = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in _WHITESPACE:
            index += 1
            continue
        if char in "(),":
            tokens.append(_Token(char, char, index))
            index += 1
            continue
        two = text[index : index + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(_Token("op", two, index))
            index += 2
            continue
        if char in "<>":
            tokens.append(_Token("op", char, index))
            index += 1
            continue
        if char in "\"'":
            token, index = _read_string(text, index)
            tokens.append(token)
            continue
        number = _NUMBER.match(text, index)
        if number is not None:
            tokens.append(_Token("number", number.group(), index, _number_value(number.group())))
            index = number.end()
            if index < len(text) and (text[index].isalnum() or text[index] == "_"):
                raise FilterSyntaxError(text, index, f"unexpected character {text[index]!r} after a number")
            continue
        name = _NAME.match(text, index)
        if name is not None:
            word = name.group()
            if word.startswith("__"):
                raise FilterSyntaxError(text, index, f"name {word!r} starts with '__', which is not allowed")
            tokens.append(_Token("keyword" if word in _KEYWORDS else "name", word, index))
            index = name.end()
            continue
        reason = _REJECTED_CHARACTERS.get(char, "it is not part of the filter grammar")
        raise FilterSyntaxError(text, index, f"unexpected character {char!r}: {reason}")
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[_Token, int]:
    quote = text[start]
    index = start + 1
    characters: list[str] = []
    while index < len(text):
        char = text[index]
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in ("\\", '"', "'"):
                raise FilterSyntaxError(text, index, "invalid escape in string; only \\\\, \\\" and \\' are allowed")
            characters.append(escaped)
            index += 2
            continue
        if char == quote:
            value = "".join(characters)
            return _Token("string", text[start : index + 1], start, value), index + 1
        characters.append(char)
        index += 1
    raise FilterSyntaxError(text, start, "unterminated string")


def _number_value(text: str) -> int | float:
    if "." in text:
        return float(Decimal(text))
    return int(text)


# --- syntax tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    position: int


@dataclass(frozen=True)
class _Literal:
    value: int | float | str
    position: int

    @property
    def kind(self) -> str:
        return "string" if isinstance(self.value, str) else "number"


_Operand = Union[_Column, _Literal]


@dataclass(frozen=True)
class _Compare:
    operator: str
    left: _Operand
    right: _Operand
    position: int


@dataclass(frozen=True)
class _Membership:
    column: _Column
    values: tuple[_Literal, ...]
    negated: bool
    position: int


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _And:
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    operands: tuple[_Node, ...]


_Node = Union[_Compare, _Membership, _Not, _And, _Or]


# --- parser -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def error(self, token: _Token, reason: str) -> FilterSyntaxError:
        return FilterSyntaxError(self.text, token.position, reason)

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.current.kind == "keyword" and self.current.text == word

    def expect(self, kind: str, description: str) -> _Token:
        if self.current.kind != kind:
            raise self.error(self.current, f"expected {description}, found {_describe(self.current)}")
        return self.advance()

    def parse(self) -> _Node:
        node = self.parse_or()
        if self.current.kind != "end":
            raise self.error(self.current, f"expected 'and', 'or' or the end of the filter, found {_describe(self.current)}")
        return node

    def parse_or(self) -> _Node:
        operands = [self.parse_and()]
        while self.at_keyword("or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else _Or(tuple(operands))

    def parse_and(self) -> _Node:
        operands = [self.parse_not()]
        while self.at_keyword("and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else _And(tuple(operands))

    def parse_not(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(self.current, f"nesting deeper than {_MAX_DEPTH} levels")
        try:
            if self.at_keyword("not"):
                self.advance()
                return _Not(self.parse_not())
            if self.current.kind == "(":
                self.advance()
                node = self.parse_or()
                self.expect(")", "')'")
                return node
            return self.parse_comparison()
        finally:
            self.depth -= 1

    def parse_comparison(self) -> _Node:
        left = self.parse_operand()
        token = self.current
        if token.kind == "op":
            self.advance()
            right = self.parse_operand()
            if isinstance(left, _Literal) and isinstance(right, _Literal):
                raise self.error(token, "a comparison must name at least one column")
            return _Compare(token.text, left, right, token.position)
        negated = False
        if self.at_keyword("not"):
            self.advance()
            negated = True
            if not self.at_keyword("in"):
                raise self.error(self.current, f"expected 'in' after 'not', found {_describe(self.current)}")
        if self.at_keyword("in"):
            if not isinstance(left, _Column):
                raise self.error(token, "the left side of 'in' must be a column")
            self.advance()
            return _Membership(left, self.parse_literal_list(), negated, token.position)
        raise self.error(token, f"expected a comparison operator or 'in', found {_describe(token)}")

    def parse_operand(self) -> _Operand:
        token = self.current
        if token.kind == "name":
            self.advance()
            if self.current.kind == "(":
                raise self.error(token, f"function calls are not supported ({token.text!r} is followed by '(')")
            return _Column(token.text, token.position)
        if token.kind in ("number", "string"):
            self.advance()
            return _Literal(token.value, token.position)  # type: ignore[arg-type]
        raise self.error(token, f"expected a column name or a literal, found {_describe(token)}")

    def parse_literal_list(self) -> tuple[_Literal, ...]:
        self.expect("(", "'(' to open the list after 'in'")
        values: list[_Literal] = []
        while True:
            token = self.current
            if token.kind not in ("number", "string"):
                raise self.error(token, f"expected a literal in the 'in' list, found {_describe(token)}")
            self.advance()
            values.append(_Literal(token.value, token.position))  # type: ignore[arg-type]
            if self.current.kind == ",":
                self.advance()
                if self.current.kind == ")":
                    break
                continue
            break
        self.expect(")", "',' or ')' in the 'in' list")
        kinds = {value.kind for value in values}
        if len(kinds) > 1:
            raise self.error(values[0], "an 'in' list mixes numbers and strings")
        return tuple(values)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    return repr(token.text)


# --- evaluation ---------------------------------------------------------------------------------


def _walk(node: _Node):
    if isinstance(node, (_And, _Or)):
        for operand in node.operands:
            yield from _walk(operand)
    elif isinstance(node, _Not):
        yield from _walk(node.operand)
    else:
        yield node


@dataclass(frozen=True)
class RowFilter:
    """A parsed row filter. Build it with `parse_filter`."""

    text: str
    _root: _Node

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the columns the filter reads, in order of first appearance."""
        names: dict[str, None] = {}
        for leaf in _walk(self._root):
            for column in _leaf_columns(leaf):
                names.setdefault(column.name, None)
        return tuple(names)

    def check_columns(self, kinds: Mapping[str, str]) -> None:
        """Check that every column exists with a kind that matches what it is compared with.

        `kinds` maps column names to `number`, `string` or `other` (see `tables.column_kinds`).

        Raises:
            FilterSyntaxError: an unknown column, a column of kind `other`, or a number compared
                with a string.
        """
        for leaf in _walk(self._root):
            for column in _leaf_columns(leaf):
                if column.name not in kinds:
                    known = ", ".join(sorted(kinds)) or "none"
                    raise FilterSyntaxError(
                        self.text, column.position, f"unknown column {column.name!r} (the table has: {known})"
                    )
                if kinds[column.name] not in ("number", "string"):
                    raise FilterSyntaxError(
                        self.text, column.position, f"column {column.name!r} is neither numeric nor text"
                    )
            self._check_leaf_kinds(leaf, kinds)

    def _check_leaf_kinds(self, leaf: _Node, kinds: Mapping[str, str]) -> None:
        if isinstance(leaf, _Compare):
            left_kind = _operand_kind(leaf.left, kinds)
            right_kind = _operand_kind(leaf.right, kinds)
            if left_kind != right_kind:
                raise FilterSyntaxError(self.text, leaf.position, f"compares a {left_kind} with a {right_kind}")
        elif isinstance(leaf, _Membership):
            column_type = kinds[leaf.column.name]
            value_type = leaf.values[0].kind
            if column_type != value_type:
                raise FilterSyntaxError(
                    self.text, leaf.position, f"column {leaf.column.name!r} holds {column_type}s but the list holds {value_type}s"
                )

    def evaluate(self, table: pd.DataFrame) -> NDArray[np.bool_]:
        """Return the boolean mask of the rows of `table` that match.

        Raises:
            FilterSyntaxError: as `check_columns`, against the columns of `table`.
        """
        referenced = set(self.columns)
        kinds = {
            str(name): column_kind(table[name]) if name in referenced else "other"
            for name in table.columns
            if isinstance(name, str)
        }
        self.check_columns(kinds)

        known = np.ones(len(table), dtype=bool)
        for name in self.columns:
            known &= ~pd.isna(table[name]).to_numpy(dtype=bool)
        arrays = {name: _column_array(table[name], kinds[name]) for name in self.columns}
        return _evaluate(self._root, arrays) & known


def _leaf_columns(leaf: _Node) -> list[_Column]:
    if isinstance(leaf, _Compare):
        return [side for side in (leaf.left, leaf.right) if isinstance(side, _Column)]
    if isinstance(leaf, _Membership):
        return [leaf.column]
    return []


def _operand_kind(operand: _Operand, kinds: Mapping[str, str]) -> str:
    if isinstance(operand, _Column):
        return kinds[operand.name]
    return operand.kind


def _column_array(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "string":
        # Missing entries become "" here; the `known` mask removes their rows afterwards.
        return series.where(~pd.isna(series), "").astype(str).to_numpy(dtype=object)
    return series.to_numpy()


def _evaluate(node: _Node, arrays: Mapping[str, np.ndarray]) -> NDArray[np.bool_]:
    if isinstance(node, _Or):
        result = _evaluate(node.operands[0], arrays)
        for operand in node.operands[1:]:
            result = result | _evaluate(operand, arrays)
        return result
    if isinstance(node, _And):
        result = _evaluate(node.operands[0], arrays)
        for operand in node.operands[1:]:
            result = result & _evaluate(operand, arrays)
        return result
    if isinstance(node, _Not):
        return ~_evaluate(node.operand, arrays)
    if isinstance(node, _Membership):
        values = arrays[node.column.name]
        matched = np.isin(values, [literal.value for literal in node.values])
        return ~matched if node.negated else matched
    return _evaluate_compare(node, arrays)


def _evaluate_compare(node: _Compare, arrays: Mapping[str, np.ndarray]) -> NDArray[np.bool_]:
    left, right, symbol = node.left, node.right, node.operator
    if isinstance(left, _Literal):
        left, right, symbol = right, left, _MIRRORED[symbol]
    # The parser rejects literal-to-literal comparisons, so `left` is a column here.
    values = arrays[cast(_Column, left).name]
    other = arrays[right.name] if isinstance(right, _Column) else right.value
    with np.errstate(invalid="ignore"):
        return np.asarray(_COMPARISONS[symbol](values, other), dtype=bool)


def parse_filter(text: str) -> RowFilter:
    """Parse filter text into a `RowFilter`; it does not check column names (see `check_columns`).

    Raises:
        FilterSyntaxError: the text is outside the grammar; the error carries the position.
    """
    if not isinstance(text, str):
        raise FilterSyntaxError(repr(text), 0, "a filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(text, MAX_FILTER_LENGTH, f"filter longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise FilterSyntaxError(text, 0, "empty filter; leave the filter out to keep every row")
    return RowFilter(text, _Parser(text).parse())
