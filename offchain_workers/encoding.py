"""Fixed-point encoding of real vectors into the ring Z_2^64 that the shares live in.

A real x is encoded as `round(x * 2^f)` (round half to even) in two's complement modulo 2^64, and a
word is decoded by reading it as a signed 64-bit integer and dividing by 2^f. Words travel as
little-endian `uint64`, 8 bytes each.

Precision: a float64 input is exact by definition, and scaling it by 2^f is exact, so its encoding
is the correctly rounded value whatever its size. Python ints, `Fraction` and `Decimal` inputs are
encoded exactly through Python integers instead of being rounded to float64 first. Decoding returns
float64, which is exact while the signed word is at most 2^53 in magnitude. Larger words lose their
low bits in `decode_fixed`, so use `decode_integers` where they matter.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pmsr_chain.errors import InvalidInputError

from .errors import EncodingOverflowError

__all__ = [
    "RING_BITS",
    "WORD_BYTES",
    "MAX_FRACTIONAL_BITS",
    "encode_fixed",
    "decode_fixed",
    "encode_integers",
    "decode_integers",
    "to_le_bytes",
    "from_le_bytes",
]

RING_BITS = 64
WORD_BYTES = RING_BITS // 8

# With f = 62 only |x| < 2 is representable. Larger scales leave no room for a value of magnitude 1.
MAX_FRACTIONAL_BITS = 62

# Largest magnitude of a signed 64-bit word. -2^63 is representable but is rejected too, so that
# every accepted value can be negated without wrapping.
_SIGNED_MAX = (1 << (RING_BITS - 1)) - 1
_FLOAT_SIGNED_LIMIT = float(1 << (RING_BITS - 1))

# Python ints beyond this magnitude lose precision when numpy turns a mixed list into float64.
_FLOAT_EXACT_INT = 1 << 53

_LITTLE_ENDIAN_WORD = np.dtype("<u8")


def encode_fixed(values: ArrayLike, fractional_bits: int, max_abs: float | None = None) -> NDArray[np.uint64]:
    """Encode reals as `round(x * 2^fractional_bits)` modulo 2^64, with the shape of `values`.

    `max_abs` bounds the magnitude of each encoded word (in encoded units, so a bound of 1.0 on the
    real value at f = 16 is `max_abs = 65536`). Magnitudes of 2^63 or more are always rejected.

    Raises:
        InvalidInputError: a value is NaN, infinite or not a real number, or an argument is invalid.
        EncodingOverflowError: a value encodes beyond `max_abs` or beyond a signed 64-bit word.
            Nothing is returned, so no share of a partly valid vector can be produced.
    """
    scale_bits = _validate_fractional_bits(fractional_bits)
    bound = _validate_max_abs(max_abs)
    array = _as_value_array(values)

    kind = array.dtype.kind
    if kind == "f":
        signed = _encode_float_array(array, scale_bits, bound)
    elif kind in "iub":
        signed = _encode_integer_array(array, scale_bits, bound)
    elif kind == "O":
        signed = _encode_object_array(array, scale_bits, bound)
    else:
        raise InvalidInputError(
            f"cannot encode values of dtype {array.dtype}; pass real numbers (float, int, Fraction or Decimal)"
        )
    return signed.view(np.uint64)


def decode_fixed(words: ArrayLike, fractional_bits: int) -> NDArray[np.float64]:
    """Decode words as signed 64-bit integers divided by 2^fractional_bits, as float64.

    The result is exact while a word's signed magnitude is at most 2^53. Beyond that float64
    rounds it to the nearest representable value.
    """
    scale_bits = _validate_fractional_bits(fractional_bits)
    signed = _as_word_array(words, "words", allow_any_shape=True).view(np.int64)
    return np.ldexp(signed.astype(np.float64), -scale_bits)


def encode_integers(values: ArrayLike, max_abs: int | None = None) -> NDArray[np.uint64]:
    """Encode integers exactly in two's complement modulo 2^64 (fixed point with f = 0).

    Integral floats are accepted. Non-integral values raise `InvalidInputError` instead of being
    rounded, because a caller that asks for integers expects no rounding.
    """
    array = _as_value_array(values)
    kind = array.dtype.kind
    if kind == "f":
        finite = np.isfinite(array)
        # Non-finite positions count as integral here so that encode_fixed reports them as not finite.
        integral = ~finite
        np.equal(array, np.trunc(array), out=integral, where=finite)
        if not integral.all():
            index = _first_index(~integral)
            raise InvalidInputError(
                f"value {float(array[index])!r} at index {index} is not an integer; use encode_fixed to round reals"
            )
    elif kind == "O":
        for index in np.ndindex(array.shape):
            number = _object_to_fraction(array[index], index)
            if number.denominator != 1:
                raise InvalidInputError(
                    f"value {array[index]!r} at index {index} is not an integer; use encode_fixed to round reals"
                )
    return encode_fixed(array, 0, max_abs)


def decode_integers(words: ArrayLike) -> NDArray[np.int64]:
    """Read words as signed 64-bit integers, exactly."""
    return _as_word_array(words, "words", allow_any_shape=True).view(np.int64).copy()


def to_le_bytes(words: ArrayLike) -> bytes:
    """Serialise a vector of words as little-endian uint64, 8 bytes per word."""
    array = _as_word_array(words, "words")
    return array.astype(_LITTLE_ENDIAN_WORD, copy=False).tobytes()


def from_le_bytes(data: bytes | bytearray | memoryview, length: int) -> NDArray[np.uint64]:
    """Parse exactly `length` little-endian uint64 words into a new writable array.

    Raises:
        InvalidInputError: `data` is not exactly `8 * length` bytes long.
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise InvalidInputError(f"length {length!r} is invalid; pass the number of words as an int >= 0")
    view = memoryview(data)
    expected = WORD_BYTES * int(length)
    if view.nbytes != expected:
        raise InvalidInputError(
            f"byte string has {view.nbytes} bytes but {length} words need {expected}; "
            "check the vector length the data was written with"
        )
    return np.frombuffer(view, dtype=_LITTLE_ENDIAN_WORD).astype(np.uint64)


# --- validation helpers -------------------------------------------------------------------------


def _validate_fractional_bits(fractional_bits: int) -> int:
    if isinstance(fractional_bits, bool) or not isinstance(fractional_bits, (int, np.integer)):
        raise InvalidInputError(f"fractional_bits {fractional_bits!r} is not an int")
    if not 0 <= fractional_bits <= MAX_FRACTIONAL_BITS:
        raise InvalidInputError(
            f"fractional_bits {fractional_bits} is outside 0..{MAX_FRACTIONAL_BITS}; "
            "choose a scale that leaves room for the values and their sum"
        )
    return int(fractional_bits)


def _validate_max_abs(max_abs: float | None) -> int:
    """Return the bound as an int in encoded units, capped at the signed 64-bit maximum."""
    if max_abs is None:
        return _SIGNED_MAX
    if isinstance(max_abs, bool) or not isinstance(max_abs, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"max_abs {max_abs!r} is not a number")
    if isinstance(max_abs, (int, np.integer)):
        bound = int(max_abs)
    else:
        if math.isnan(max_abs):
            raise InvalidInputError("max_abs is NaN; pass a bound >= 0 in encoded units, or None")
        if math.isinf(max_abs):
            bound = _SIGNED_MAX if max_abs > 0 else -1
        else:
            # Encoded values are integers, so |n| > max_abs exactly when |n| > floor(max_abs).
            bound = math.floor(max_abs)
    if bound < 0:
        raise InvalidInputError(f"max_abs {max_abs!r} is negative; pass a bound >= 0 in encoded units")
    return min(bound, _SIGNED_MAX)


def _as_value_array(values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "f" and not isinstance(values, np.ndarray) and _has_large_python_int(array, values):
        # numpy already rounded a large int of a mixed list to float64, so start again without it.
        array = np.asarray(values, dtype=object)
    return array


def _has_large_python_int(array: np.ndarray, values: ArrayLike) -> bool:
    originals = np.asarray(values, dtype=object)
    if originals.shape != array.shape:
        return False
    for item in originals.flat:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool) and abs(int(item)) > _FLOAT_EXACT_INT:
            return True
    return False


def _first_index(mask: np.ndarray) -> tuple[int, ...] | int:
    """Return the first True position of `mask`, as an int for vectors and a tuple otherwise."""
    flat = int(np.flatnonzero(mask)[0])
    if mask.ndim == 1:
        return flat
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _overflow(value: Any, index: Any, encoded: int | str, scale_bits: int, bound: int) -> EncodingOverflowError:
    if bound >= _SIGNED_MAX:
        limit = f"the signed 64-bit limit {_SIGNED_MAX}"
    else:
        limit = f"max_abs {bound}"
    return EncodingOverflowError(
        f"value {value!r} at index {index} encodes to {encoded} at scale 2^{scale_bits}, beyond {limit}; "
        "clip the value to the query's bounds or use fewer fractional bits"
    )


# --- encoders by input kind ---------------------------------------------------------------------


def _encode_float_array(array: np.ndarray, scale_bits: int, bound: int) -> np.ndarray:
    values = array.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        index = _first_index(~finite)
        raise InvalidInputError(
            f"value {float(values[index])!r} at index {index} is not finite; NaN and inf cannot be encoded"
        )

    # Multiplying by a power of two is exact in binary floating point, except that it may overflow
    # to inf, which the range check below catches.
    with np.errstate(over="ignore"):
        rounded = np.rint(np.ldexp(values, scale_bits))
    too_large = np.abs(rounded) >= _FLOAT_SIGNED_LIMIT
    if too_large.any():
        index = _first_index(too_large)
        raise _overflow(float(values[index]), index, f"{rounded[index]:.6g}", scale_bits, bound)

    # Every value is now an integer below 2^63 in magnitude, so the conversion is exact.
    signed = rounded.astype(np.int64)
    _check_bound(values, signed, scale_bits, bound)
    return signed


def _encode_integer_array(array: np.ndarray, scale_bits: int, bound: int) -> np.ndarray:
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    # NumPy 2 compares integer arrays with out-of-range Python ints exactly.
    limit = _SIGNED_MAX >> scale_bits
    outside = (array > limit) | (array < -limit)
    if outside.any():
        index = _first_index(outside)
        value = int(array[index])
        raise _overflow(value, index, value << scale_bits, scale_bits, bound)
    signed = array.astype(np.int64) * np.int64(1 << scale_bits)
    _check_bound(array, signed, scale_bits, bound)
    return signed


def _encode_object_array(array: np.ndarray, scale_bits: int, bound: int) -> np.ndarray:
    scale = 1 << scale_bits
    signed = np.empty(array.shape, dtype=np.int64)
    for index in np.ndindex(array.shape):
        item = array[index]
        # round() on a Fraction rounds half to even, like numpy's rint on the float path.
        encoded = round(_object_to_fraction(item, index) * scale)
        if abs(encoded) > bound:
            position = index[0] if len(index) == 1 else index
            raise _overflow(item, position, encoded, scale_bits, bound)
        signed[index] = encoded
    return signed


def _object_to_fraction(item: Any, index: Any) -> Fraction:
    if isinstance(item, (bool, np.bool_)):
        return Fraction(int(item))
    if isinstance(item, np.integer):
        return Fraction(int(item))
    if isinstance(item, (float, np.floating)):
        if not math.isfinite(item):
            raise InvalidInputError(f"value {item!r} at index {index} is not finite; NaN and inf cannot be encoded")
        return Fraction(float(item))
    if isinstance(item, Decimal):
        if not item.is_finite():
            raise InvalidInputError(f"value {item!r} at index {index} is not finite; NaN and inf cannot be encoded")
        return Fraction(item)
    if isinstance(item, (int, Fraction)):
        return Fraction(item)
    raise InvalidInputError(
        f"value {item!r} at index {index} has type {type(item).__name__}; pass float, int, Fraction or Decimal "
        "(parse decimal strings with decimal.Decimal first)"
    )


def _check_bound(values: np.ndarray, signed: np.ndarray, scale_bits: int, bound: int) -> None:
    if bound >= _SIGNED_MAX:
        return
    # |signed| < 2^63 here, so np.abs cannot wrap.
    beyond = np.abs(signed) > bound
    if beyond.any():
        index = _first_index(beyond)
        raise _overflow(values[index].item(), index, int(signed[index]), scale_bits, bound)


# --- word arrays --------------------------------------------------------------------------------


def _as_word_array(words: ArrayLike, name: str, *, allow_any_shape: bool = False) -> NDArray[np.uint64]:
    """Return `words` as a native-order uint64 array, reading signed integers as two's complement.

    Raises:
        InvalidInputError: the words are not integers, do not fit 64 bits, or (unless
            `allow_any_shape`) do not form a one-dimensional vector.
    """
    if isinstance(words, np.ndarray) and words.dtype == np.uint64 and words.dtype.isnative:
        array: np.ndarray = words
    else:
        array = _convert_words(words, name)
    if not allow_any_shape and array.ndim != 1:
        raise InvalidInputError(f"{name} has shape {array.shape}; pass a one-dimensional vector of words")
    return array


def _convert_words(words: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(words)
    kind = array.dtype.kind
    if kind == "u":
        return array.astype(np.uint64)
    if kind == "i":
        return array.astype(np.int64).view(np.uint64)
    if kind == "O":
        converted = np.empty(array.shape, dtype=np.uint64)
        for index in np.ndindex(array.shape):
            item = array[index]
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
                raise InvalidInputError(f"{name} contains {item!r}, which is not an integer word")
            if not 0 <= int(item) < (1 << RING_BITS):
                raise InvalidInputError(
                    f"{name} contains {int(item)}, outside 0..2^64-1; reduce it modulo 2^64 or use encode_integers"
                )
            converted[index] = int(item)
        return converted
    raise InvalidInputError(
        f"{name} has dtype {array.dtype}, but words are 64-bit integers; encode reals with encode_fixed first"
    )
