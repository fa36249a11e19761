"""Privacy-budget arithmetic in millionths of epsilon, the unit the contract stores.

Epsilon 1.0 is 1_000_000 millionths. Converting through `Decimal` keeps "0.1" exactly 100_000,
which a float conversion would not guarantee.
"""

from __future__ import annotations

import re
from decimal import Decimal

from pmsr_chain.errors import InvalidInputError

__all__ = [
    "MILLIONTHS_PER_EPSILON",
    "MAX_UINT64",
    "parse_epsilon",
    "format_epsilon",
    "remaining_budget",
    "can_afford",
]

MILLIONTHS_PER_EPSILON = 1_000_000

# The contract stores budgets and epsilons as uint64.
MAX_UINT64 = 2**64 - 1

_EPSILON_TEXT = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")


def parse_epsilon(text: str) -> int:
    """Parse a decimal epsilon such as `"0.5"` into millionths (500000), exactly.

    Raises:
        InvalidInputError: not a non-negative decimal, more than 6 decimal places, or beyond uint64.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"epsilon {text!r} must be a string such as \"0.5\", not {type(text).__name__}")
    stripped = text.strip()
    match = _EPSILON_TEXT.fullmatch(stripped)
    if match is None:
        raise InvalidInputError(f"invalid epsilon {text!r}: write a non-negative decimal such as 0.5 or 2")
    fraction = match.group("fraction") or ""
    if len(fraction.rstrip("0")) > 6:
        raise InvalidInputError(
            f"invalid epsilon {text!r}: more than 6 decimal places; epsilon is stored in millionths, so round it"
        )
    millionths = Decimal(stripped) * MILLIONTHS_PER_EPSILON
    result = int(millionths)
    if result > MAX_UINT64:
        raise InvalidInputError(f"invalid epsilon {text!r}: {result} millionths does not fit in uint64")
    return result


def format_epsilon(millionths: int) -> str:
    """Format millionths as a decimal epsilon without trailing zeros: 500000 -> `"0.5"`."""
    _check_millionths("epsilon", millionths)
    whole, fraction = divmod(millionths, MILLIONTHS_PER_EPSILON)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{fraction:06d}".rstrip("0")


def remaining_budget(total: int, used: int) -> int:
    """Return the unspent budget `total - used` in millionths, or 0 when nothing is left.

    `used` can exceed `total` on-chain, because an owner may lower the budget of its policy below
    what it has already spent.
    """
    _check_millionths("total", total)
    _check_millionths("used", used)
    return max(total - used, 0)


def can_afford(total: int, used: int, epsilon: int) -> bool:
    """Return whether a query costing `epsilon` millionths fits in the unspent budget.

    This mirrors the contract's check at submission: `used + epsilon <= total`.
    """
    _check_millionths("total", total)
    _check_millionths("used", used)
    _check_millionths("epsilon", epsilon)
    # An owner whose spending already exceeds a lowered budget cannot join even an exact query.
    return used + epsilon <= total


def _check_millionths(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} {value!r} must be an integer number of millionths")
    if not 0 <= value <= MAX_UINT64:
        raise InvalidInputError(f"{name} {value} millionths is outside 0..2^64-1")
