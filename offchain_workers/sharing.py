"""Additive secret sharing over Z_2^64.

A secret vector x is split into K shares: K-1 vectors drawn uniformly from the operating system's
CSPRNG (`os.urandom`) and a last share `x - sum(others) mod 2^64`. Any K-1 shares are independent
and uniform whatever x is, so a coalition of fewer than K share holders learns nothing about x.
Shares add coordinate-wise, so an aggregator that sums its shares from many owners obtains one
share of the sum of their inputs.

NumPy wraps uint64 array arithmetic modulo 2^64 without warnings. This module only ever adds and
subtracts uint64 arrays (never NumPy scalars, which do warn on overflow), so no value passes
through float.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pmsr_chain.errors import InvalidInputError

from .encoding import WORD_BYTES, _as_word_array

__all__ = [
    "MIN_PARTIES",
    "random_words",
    "split",
    "reconstruct",
    "ShareAccumulator",
]

# One share would be the secret itself.
MIN_PARTIES = 2

_LITTLE_ENDIAN_WORD = np.dtype("<u8")


def random_words(count: int) -> NDArray[np.uint64]:
    """Draw `count` uniform words from `os.urandom`, as a new writable array."""
    _validate_length(count, "count", minimum=0)
    # bytearray makes the buffer writable. Byte order is irrelevant for uniform bytes.
    return np.frombuffer(bytearray(os.urandom(WORD_BYTES * count)), dtype=np.uint64)


def split(secret: ArrayLike, parties: int) -> list[NDArray[np.uint64]]:
    """Split a vector of words into `parties` additive shares that sum to it modulo 2^64.

    The first `parties - 1` shares are uniform random words and the last one is the secret minus
    their sum. Share i goes to party i.

    Raises:
        InvalidInputError: `parties` is below 2, or `secret` is not a non-empty vector of words.
    """
    words = _as_word_array(secret, "secret")
    length = words.shape[0]
    _validate_length(length, "secret length", minimum=1)
    if isinstance(parties, bool) or not isinstance(parties, (int, np.integer)) or parties < MIN_PARTIES:
        raise InvalidInputError(f"parties {parties!r} is invalid; additive sharing needs an int >= {MIN_PARTIES}")

    random_shares = random_words((int(parties) - 1) * length).reshape(int(parties) - 1, length)
    last = np.subtract(words, random_shares.sum(axis=0, dtype=np.uint64))
    return [*random_shares, last]


def reconstruct(shares: Sequence[ArrayLike]) -> NDArray[np.uint64]:
    """Add shares coordinate-wise modulo 2^64 and return the secret.

    Raises:
        InvalidInputError: no shares were given, or they differ in length.
    """
    if len(shares) == 0:
        raise InvalidInputError("no shares to reconstruct from; pass every party's share")
    first = _as_word_array(shares[0], "share 0")
    total = first.copy()
    for index in range(1, len(shares)):
        share = _as_word_array(shares[index], f"share {index}")
        if share.shape != total.shape:
            raise InvalidInputError(
                f"share {index} has length {share.shape[0]} but share 0 has {total.shape[0]}; "
                "all shares of one secret have the same length"
            )
        np.add(total, share, out=total)
    return total


class ShareAccumulator:
    """Running sum modulo 2^64 of equal-length shares, with the number of shares added.

    Not thread-safe: one accumulator belongs to one query and one task.
    """

    __slots__ = ("_total", "_count")

    def __init__(self, length: int) -> None:
        _validate_length(length, "length", minimum=1)
        self._total = np.zeros(int(length), dtype=np.uint64)
        self._count = 0

    @classmethod
    def from_state(cls, total: ArrayLike, count: int) -> ShareAccumulator:
        """Rebuild an accumulator from a saved total and count, for example after a restart."""
        words = _as_word_array(total, "total")
        accumulator = cls(words.shape[0])
        _validate_length(count, "count", minimum=0)
        np.copyto(accumulator._total, words)
        accumulator._count = int(count)
        return accumulator

    @property
    def length(self) -> int:
        return int(self._total.shape[0])

    @property
    def count(self) -> int:
        """Number of shares added so far."""
        return self._count

    @property
    def total(self) -> NDArray[np.uint64]:
        """Copy of the sum so far, modulo 2^64."""
        return self._total.copy()

    def add(self, share: ArrayLike) -> None:
        """Add one share vector of `length` words.

        Raises:
            InvalidInputError: the share is not a vector of `length` words.
        """
        words = _as_word_array(share, "share")
        if words.shape != self._total.shape:
            raise InvalidInputError(
                f"share has length {words.shape[0]} but the accumulator sums vectors of length {self.length}"
            )
        np.add(self._total, words, out=self._total)
        self._count += 1

    def add_le_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Add one share given as `8 * length` little-endian bytes, without an intermediate copy.

        Raises:
            InvalidInputError: `data` is not exactly `8 * length` bytes long.
        """
        view = memoryview(data)
        if view.nbytes != WORD_BYTES * self._total.shape[0]:
            raise InvalidInputError(
                f"share has {view.nbytes} bytes but the accumulator sums vectors of {self.length} words "
                f"({WORD_BYTES * self.length} bytes)"
            )
        np.add(self._total, np.frombuffer(view, dtype=_LITTLE_ENDIAN_WORD), out=self._total)
        self._count += 1

    def __repr__(self) -> str:
        # The total is one aggregator's share of the result and stays out of logs.
        return f"ShareAccumulator(length={self.length}, count={self._count})"


def _validate_length(value: int, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} {value!r} is invalid; pass an int >= {minimum}")
