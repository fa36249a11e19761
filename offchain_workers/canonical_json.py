"""Strict reading and canonical writing of the float-free JSON that query specs use.

Canonical form: UTF-8 without a byte-order mark, object keys sorted by code point and no whitespace
between tokens. Non-ASCII characters are written as themselves. Strings use only the escapes that
Python's `json` module writes: `\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\b`, `\\f`, and `\\u00XX` for
other control characters.
Values are objects, arrays, strings, booleans and integers; floats, NaN and `null` do not occur.
Integers stay within +-(2^53 - 1), so every JSON parser, JavaScript's included, reads them exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import SpecError

__all__ = ["MAX_SAFE_INTEGER", "MAX_DOCUMENT_BYTES", "load_strict", "dump_canonical"]

MAX_SAFE_INTEGER = 2**53 - 1

# Maximum nesting depth. Specs nest at most four levels, so this limit only stops hostile input.
_MAX_DEPTH = 16

# Largest spec accepted, in bytes. A spec's biggest part is one clip pair per output coordinate, about
# 30 bytes each, so 1 MiB leaves room for 4096 coordinates many times over while bounding the work a
# hostile proposal can cause.
MAX_DOCUMENT_BYTES = 1 << 20

_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def _nesting_depth(raw: bytes) -> int:
    """Return the deepest bracket nesting of JSON bytes, ignoring brackets inside strings.

    It runs before `json.loads`, whose C parser recurses once per level. A document of a few hundred
    thousand `[` overflows the C stack when a library has raised Python's recursion limit (py_ecc,
    imported with the Ethereum packages, raises it to 100000), killing the process with SIGSEGV
    instead of raising RecursionError.
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING_LITERAL.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _FloatLiteral:
    """A float or non-finite literal met while parsing, kept so the caller can report where it was."""

    def __init__(self, text: str) -> None:
        self.text = text


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def load_strict(data: bytes) -> Any:
    """Parse JSON bytes, rejecting floats, NaN, `null`, duplicate keys and unsafe integers.

    Raises:
        SpecError: the bytes are not UTF-8 JSON of the float-free subset; `field` is `document` or
            the path of the offending value.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SpecError("document", type(data).__name__, "expected the spec as UTF-8 bytes")
    raw = bytes(data)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise SpecError("document", f"{len(raw)} bytes", f"spec larger than {MAX_DOCUMENT_BYTES} bytes")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise SpecError("document", raw[:3], "starts with a UTF-8 byte-order mark; remove it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError("document", raw[error.start : error.start + 4], f"invalid UTF-8 at byte {error.start}") from None
    if _nesting_depth(raw) > _MAX_DEPTH:
        raise SpecError("document", text[:20], f"JSON nesting deeper than {_MAX_DEPTH} levels")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_float=_FloatLiteral,
            parse_constant=_FloatLiteral,
        )
    except _DuplicateKeyError as error:
        raise SpecError("document", error.key, "duplicate object key; each key may appear once") from None
    except json.JSONDecodeError as error:
        raise SpecError("document", text[error.pos : error.pos + 20], f"invalid JSON: {error.msg} at character {error.pos}") from None
    except RecursionError:
        raise SpecError("document", text[:20], "JSON nesting is too deep") from None
    _check_value(document, "", 0)
    return document


def dump_canonical(document: Any) -> bytes:
    """Serialise a float-free JSON value in canonical form.

    Raises:
        SpecError: the value contains a float, `None`, a non-string key, an unsafe integer, a lone
            surrogate or a type JSON cannot represent.
    """
    _check_value(document, "", 0)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _check_value(value: Any, path: str, depth: int) -> None:
    field = path or "document"
    if depth > _MAX_DEPTH:
        raise SpecError(field, "...", f"JSON nesting deeper than {_MAX_DEPTH} levels")
    if isinstance(value, _FloatLiteral):
        raise SpecError(field, value.text, "JSON floats are not allowed; write reals as decimal strings such as \"0.5\"")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise SpecError(field, value, f"integer beyond +-{MAX_SAFE_INTEGER}, which JSON parsers may round")
        return
    if isinstance(value, str):
        _check_string(value, field)
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SpecError(field, key, "object keys must be strings")
            _check_string(key, field)
            _check_value(item, f"{path}.{key}" if path else key, depth + 1)
        return
    if value is None:
        raise SpecError(field, None, "null is not allowed; leave the field out or give it a value")
    if isinstance(value, float):
        raise SpecError(field, value, "floats are not allowed; write reals as decimal strings such as \"0.5\"")
    raise SpecError(field, value, f"type {type(value).__name__} has no JSON form in a spec")


def _check_string(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(field, text, "contains a lone surrogate, which UTF-8 cannot encode") from None
