"""Parsing of the amounts and durations that users type on the command line."""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

from .errors import InvalidInputError

__all__ = ["parse_amount", "format_ether", "parse_duration", "format_duration"]

_AMOUNT_UNITS = {
    "wei": 0,
    "gwei": 9,
    "ether": 18,
    "eth": 18,
}
_AMOUNT_PATTERN = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"^\s*(?P<number>[0-9]+)\s*(?P<unit>[smhd]?)\s*$")


def parse_amount(text: str) -> int:
    """Parse `0.01ether`, `10gwei`, `5 wei` or plain wei (`1000`) into an integer number of wei."""
    if text.strip().startswith("-"):
        raise InvalidInputError(f"invalid amount {text!r}: amounts cannot be negative")
    match = _AMOUNT_PATTERN.match(text)
    unit = match.group("unit").lower() if match else ""
    if match is None or unit not in ("", *_AMOUNT_UNITS):
        raise InvalidInputError(
            f"invalid amount {text!r}: write a number with an optional unit, "
            "for example 0.01ether, 10gwei or 1000 (wei)"
        )
    # The default decimal context keeps 28 digits, which rounds large ether amounts with many decimals;
    # a context sized to the input keeps every digit.
    number = match.group("number")
    context = Context(prec=len(number) + 40)
    try:
        value = context.multiply(Decimal(number), Decimal(10) ** _AMOUNT_UNITS.get(unit, 0))
    except InvalidOperation as error:
        raise InvalidInputError(f"invalid amount {text!r}: {error}") from None
    if value != value.to_integral_value():
        raise InvalidInputError(
            f"invalid amount {text!r}: it is not a whole number of wei; use fewer decimal places"
        )
    return int(value)


def format_ether(wei: int) -> str:
    """Format wei as ether with up to 18 decimals and no trailing zeros, e.g. `0.0125 ETH`."""
    sign = "-" if wei < 0 else ""
    whole, fraction = divmod(abs(wei), 10**18)
    text = f"{whole}.{fraction:018d}".rstrip("0").rstrip(".")
    return f"{sign}{text} ETH"


def parse_duration(text: str) -> int:
    """Parse `90s`, `10m`, `2h`, `1d` or plain seconds (`30`) into seconds."""
    match = _DURATION_PATTERN.match(text)
    if match is None:
        raise InvalidInputError(
            f"invalid duration {text!r}: write a whole number with an optional unit s, m, h or d, "
            "for example 90s, 10m or 2h"
        )
    return int(match.group("number")) * _DURATION_UNITS.get(match.group("unit") or "s", 1)


def format_duration(seconds: float) -> str:
    """Format seconds compactly, e.g. `1h 5m 3s` or `2.4s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if minutes or hours:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)
