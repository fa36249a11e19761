"""Strict readers for template parameters in parsed spec JSON; each error names the field path."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from fractions import Fraction
from typing import Any

from ..decimal_strings import parse_decimal
from ..errors import SpecError

MAX_NAME_LENGTH = 256
MAX_LIST_LENGTH = 4096


def read_object(raw: Any, field: str, required: Collection[str], optional: Collection[str] = ()) -> Mapping[str, Any]:
    """Return `raw` as a mapping after checking that it has every required key and no unknown key."""
    if not isinstance(raw, Mapping):
        raise SpecError(field, raw, f"expected a JSON object, got {type(raw).__name__}")
    for key in raw:
        if key not in required and key not in optional:
            allowed = ", ".join(sorted([*required, *optional])) or "no fields"
            raise SpecError(f"{field}.{key}", raw[key], f"unknown field; this object takes {allowed}")
    for key in required:
        if key not in raw:
            raise SpecError(f"{field}.{key}", None, "missing required field")
    return raw


def read_string(raw: Any, field: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Return `raw` as a non-empty string of at most `max_length` characters."""
    if not isinstance(raw, str):
        raise SpecError(field, raw, f"expected a string, got {type(raw).__name__}")
    if not raw:
        raise SpecError(field, raw, "must not be empty")
    if len(raw) > max_length:
        raise SpecError(field, raw, f"longer than {max_length} characters")
    return raw


def read_choice(raw: Any, field: str, choices: Collection[str]) -> str:
    """Return `raw` if it is one of `choices`."""
    text = read_string(raw, field)
    if text not in choices:
        raise SpecError(field, raw, f"expected one of {', '.join(sorted(choices))}")
    return text


def read_int(raw: Any, field: str, minimum: int, maximum: int) -> int:
    """Return `raw` as an integer in `minimum..maximum`; booleans are not integers here."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SpecError(field, raw, f"expected an integer, got {type(raw).__name__}")
    if not minimum <= raw <= maximum:
        raise SpecError(field, raw, f"must be between {minimum} and {maximum}")
    return raw


def read_bool(raw: Any, field: str) -> bool:
    """Return `raw` if it is a JSON boolean."""
    if not isinstance(raw, bool):
        raise SpecError(field, raw, f"expected true or false, got {type(raw).__name__}")
    return raw


def read_list(raw: Any, field: str, min_length: int = 1, max_length: int = MAX_LIST_LENGTH) -> list[Any]:
    """Return `raw` as a list with `min_length..max_length` items."""
    if not isinstance(raw, list):
        raise SpecError(field, raw, f"expected a JSON array, got {type(raw).__name__}")
    if not min_length <= len(raw) <= max_length:
        raise SpecError(field, raw, f"expected between {min_length} and {max_length} items, got {len(raw)}")
    return raw


def read_categories(raw: Any, field: str) -> tuple[str, ...]:
    """Return a declared category list: distinct non-empty strings, in the order given."""
    items = read_list(raw, field)
    categories = tuple(read_string(item, f"{field}[{index}]") for index, item in enumerate(items))
    seen: set[str] = set()
    for index, category in enumerate(categories):
        if category in seen:
            raise SpecError(f"{field}[{index}]", category, "duplicate category; list each category once")
        seen.add(category)
    return categories


def read_edges(raw: Any, field: str) -> tuple[tuple[str, ...], tuple[Fraction, ...]]:
    """Return bin edges as canonical decimal strings and their exact values, strictly increasing."""
    items = read_list(raw, field, min_length=2, max_length=MAX_LIST_LENGTH + 1)
    values = tuple(parse_decimal(item, f"{field}[{index}]") for index, item in enumerate(items))
    for index in range(1, len(values)):
        if values[index] <= values[index - 1]:
            raise SpecError(
                f"{field}[{index}]",
                items[index],
                f"bin edges must be strictly increasing, but it is not above {items[index - 1]!r}",
            )
    return tuple(items), values
