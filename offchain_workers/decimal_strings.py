"""Canonical decimal strings: how a query spec writes real numbers without JSON floats.

A canonical decimal string has an optional minus sign, an integer part without leading zeros and an
optional fractional part without trailing zeros, for example `0`, `-12`, `0.5` or `1800.25`. `-0`,
`01`, `1.0`, `.5`, `1e3` and `+1` are not canonical. Each rational number with a terminating decimal
expansion has exactly one canonical string, so two specs that mean the same bounds hash the same.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from .errors import SpecError

__all__ = ["MAX_DECIMAL_LENGTH", "parse_decimal", "format_decimal", "is_canonical_integer"]

_CANONICAL_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?")
_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")

# Maximum length of a decimal string, which keeps exact arithmetic on spec values cheap.
MAX_DECIMAL_LENGTH = 64


def parse_decimal(text: object, field: str) -> Fraction:
    """Parse a canonical decimal string into an exact `Fraction`.

    Raises:
        SpecError: `text` is not a string or not in canonical form; the error names `field`.
    """
    if not isinstance(text, str):
        raise SpecError(
            field, text, f"expected a decimal string such as \"1.5\", got {type(text).__name__}; write the number in quotes"
        )
    if len(text) > MAX_DECIMAL_LENGTH or _CANONICAL_DECIMAL.fullmatch(text) is None or text == "-0":
        raise SpecError(
            field,
            text,
            "not a canonical decimal string; write digits with an optional '-' and '.', "
            "without leading zeros, trailing fractional zeros, exponents or '-0' (for example \"-2.5\")",
        )
    return Fraction(Decimal(text))


def is_canonical_integer(text: str) -> bool:
    """Return whether `text` is an integer in canonical form, such as `"3"` or `"-12"`."""
    return _CANONICAL_INTEGER.fullmatch(text) is not None and text != "-0"


def format_decimal(value: int | Fraction | Decimal | str, field: str = "value") -> str:
    """Return the canonical decimal string of an exact number.

    Accepts ints, `Decimal`, `Fraction` with a terminating decimal expansion, and decimal strings
    in any notation `Decimal` reads (`"1.50"` becomes `"1.5"`). Floats are rejected because their
    binary value is rarely the decimal the caller meant; pass `"0.1"` rather than `0.1`.

    Raises:
        SpecError: the value is a float, not finite or has no terminating decimal expansion.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise SpecError(field, value, "floats are not accepted; pass the number as a decimal string such as \"0.1\"")
    if isinstance(value, str):
        try:
            number = Fraction(Decimal(value.strip()))
        except (ArithmeticError, ValueError):
            raise SpecError(field, value, "not a decimal number") from None
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise SpecError(field, value, "not a finite number")
        number = Fraction(value)
    elif isinstance(value, (int, Fraction)):
        number = Fraction(value)
    else:
        raise SpecError(field, value, f"expected an int, Decimal, Fraction or decimal string, got {type(value).__name__}")
    return _fraction_to_text(number, field)


def _fraction_to_text(number: Fraction, field: str) -> str:
    denominator = number.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        raise SpecError(field, str(number), "has no terminating decimal expansion; round it to a decimal first")

    digits = max(twos, fives)
    scaled = abs(number) * 10**digits
    whole, fraction = divmod(int(scaled), 10**digits) if digits else (int(scaled), 0)
    sign = "-" if number < 0 else ""
    if digits == 0:
        return f"{sign}{whole}"
    fraction_text = f"{fraction:0{digits}d}".rstrip("0")
    return f"{sign}{whole}.{fraction_text}" if fraction_text else f"{sign}{whole}"
