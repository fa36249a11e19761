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
