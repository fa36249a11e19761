"""Errors raised by the off-chain workers.

Every class derives from `pmsr_chain.errors.PmsrError` and from the matching built-in exception, so
a caller that catches `ValueError` also catches an overflow or a failed decryption.
"""

from __future__ import annotations

from pmsr_chain.errors import PmsrError

__all__ = [
    "EncodingOverflowError",
    "DecryptionError",
    "KeyFileError",
]


class EncodingOverflowError(PmsrError, OverflowError, ValueError):
    """A real value does not fit the fixed-point encoding at the requested scale and bound."""


class DecryptionError(PmsrError, ValueError):
    """A share ciphertext failed authentication, has the wrong length, or was sealed for other data.

    Apart from a wrong length, the message cannot name the failed check, because the AEAD tag
    does not distinguish a wrong key from a wrong AAD or a modified ciphertext.
    """


class KeyFileError(PmsrError, ValueError):
    """An aggregator key file is missing, unreadable, malformed, or the passphrase is wrong."""


# --- query specs, row filters, map templates and differential privacy ---------------------------

__all__ += [
    "SpecError",
    "FilterSyntaxError",
    "TemplateError",
    "SingularMatrixError",
    "PrivacyError",
]

# Maximum length of the repr of an offending value quoted in an error message.
_MAX_VALUE_REPR = 120


def _short_repr(value: object) -> str:
    text = repr(value)
    if len(text) <= _MAX_VALUE_REPR:
        return text
    return text[: _MAX_VALUE_REPR - 3] + "..."


class SpecError(PmsrError, ValueError):
    """A query spec field is missing or invalid.

    `field` is the field's path in the spec JSON (for example `params.edges[2]`), `value` the
    offending value and `reason` what is wrong with it and how to fix it.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid spec field {field} = {_short_repr(value)}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class FilterSyntaxError(SpecError):
    """A row filter is outside the filter grammar, names an unknown column or mixes types.

    `position` is the 0-based character offset in the filter text where the problem starts.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__("filter", text, f"{reason} at position {position}")
        self.position = position


class TemplateError(PmsrError, ValueError):
    """A map template could not read an owner's table, run its map or post-process a result."""


class SingularMatrixError(TemplateError):
    """The reduced X'X of a regression is singular or not positive definite, so it has no solution."""


class PrivacyError(PmsrError, ValueError):
    """A differential-privacy request is invalid: noise for an exact query, or an epsilon out of range."""
