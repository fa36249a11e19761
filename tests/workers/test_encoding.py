import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsr_chain.errors import InvalidInputError, PmsrError
from offchain_workers.encoding import (
    RING_BITS,
    decode_fixed,
    decode_integers,
    encode_fixed,
    encode_integers,
    from_le_bytes,
    to_le_bytes,
)
from offchain_workers.errors import EncodingOverflowError

MODULUS = 2**64


def signed(words: np.ndarray) -> list[int]:
    return [int(word) for word in words.view(np.int64)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), fractional_bits=st.integers(min_value=0, max_value=40))
def test_encode_decode_round_trip_within_half_step(data, fractional_bits):
    # Values whose encoding stays within 2^53 decode exactly, so only rounding error remains.
    limit = 2.0 ** (53 - fractional_bits)
    values = data.draw(
        st.lists(st.floats(min_value=-limit, max_value=limit, allow_nan=False), min_size=1, max_size=32)
    )

    decoded = decode_fixed(encode_fixed(values, fractional_bits), fractional_bits)

    errors = np.abs(decoded - np.array(values))
    assert errors.max() <= 2.0 ** -(fractional_bits + 1)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), min_size=1, max_size=32)
)
def test_encode_integers_round_trip_exact(values):
    words = encode_integers(values)

    assert words.dtype == np.uint64
    assert [int(word) for word in words] == [value % MODULUS for value in values]
    assert [int(value) for value in decode_integers(words)] == values


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.integers(min_value=0, max_value=MODULUS - 1), max_size=64))
def test_le_bytes_round_trip(words):
    array = np.array(words, dtype=np.uint64)

    data = to_le_bytes(array)

    assert len(data) == 8 * len(words)
    assert data == b"".join(word.to_bytes(8, "little") for word in words)
    assert np.array_equal(from_le_bytes(data, len(words)), array)


def test_ring_bits_is_64():
    assert RING_BITS == 64


def test_negative_values_wrap_twos_complement():
    words = encode_fixed([-1.0, -0.5], 1)

    assert [int(word) for word in words] == [MODULUS - 2, MODULUS - 1]


def test_rounding_half_to_even():
    words = encode_fixed([0.5, 1.5, 2.5, -0.5, -1.5, 0.49], 0)

    assert signed(words) == [0, 2, 2, 0, -2, 0]


def test_decode_reads_signed_words():
    words = np.array([MODULUS - 1, 3 << 16, 1 << 63], dtype=np.uint64)

    decoded = decode_fixed(words, 16)

    assert decoded[0] == -(2.0**-16)
    assert decoded[1] == 3.0
    assert decoded[2] == -(2.0**47)


def test_large_python_int_in_mixed_list_exact():
    # numpy would turn this list into float64 and lose the final 1.
    value = 2**60 + 1

    words = encode_fixed([value, 0.5], 0)

    assert signed(words) == [value, 0]


def test_large_float_encodes_exactly():
    value = float(2**60 + 2**10)

    words = encode_fixed([value], 2)

    assert signed(words) == [(2**60 + 2**10) * 4]


def test_decimal_and_fraction_exact():
    words = encode_fixed([Decimal("0.1"), Fraction(1, 3), Decimal("-2.5")], 16)

    assert signed(words) == [round(Fraction(1, 10) * 2**16), round(Fraction(2**16, 3)), -(5 * 2**15)]


def test_integer_dtypes_scaled_exactly():
    values = np.array([-(2**40) - 1, 0, 2**40 + 3], dtype=np.int64)

    words = encode_fixed(values, 20)

    assert signed(words) == [(-(2**40) - 1) << 20, 0, (2**40 + 3) << 20]


def test_boolean_values_encode_as_integers():
    assert signed(encode_fixed(np.array([True, False]), 3)) == [8, 0]


def test_shape_preserved():
    words = encode_fixed(np.ones((2, 3)), 4)

    assert words.shape == (2, 3)
    assert words.dtype == np.uint64


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_rejected(value):
    with pytest.raises(InvalidInputError, match="not finite"):
        encode_fixed([1.0, value], 8)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_non_finite_decimal_rejected(value):
    with pytest.raises(InvalidInputError, match="not finite"):
        encode_fixed([value], 8)


def test_string_values_rejected():
    with pytest.raises(InvalidInputError, match="Decimal"):
        encode_fixed(np.array(["1.5"], dtype=object), 8)


def test_max_abs_boundary():
    # 1.0 at f = 16 encodes to exactly 65536.
    assert signed(encode_fixed([1.0, -1.0], 16, max_abs=65536)) == [65536, -65536]

    with pytest.raises(EncodingOverflowError) as raised:
        encode_fixed([0.5, -1.0 - 2.0**-16], 16, max_abs=65536)

    message = str(raised.value)
    assert "index 1" in message
    assert "-1.0000152587890625" in message
    assert "65537" in message
    assert "max_abs 65536" in message
    assert "2^16" in message


def test_max_abs_float_bound_floors():
    with pytest.raises(EncodingOverflowError, match="max_abs 10"):
        encode_fixed([11], 0, max_abs=10.9)


def test_overflow_error_is_pmsr_and_value_error():
    with pytest.raises(EncodingOverflowError) as raised:
        encode_fixed([1.0], 4, max_abs=1)

    assert isinstance(raised.value, PmsrError)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, OverflowError)


@pytest.mark.parametrize(
    ("values", "fractional_bits"),
    [
        ([2.0**63], 0),
        ([-(2.0**63)], 0),
        ([2.0**47], 16),
        ([1e300], 16),
        ([2**62], 1),
        (np.array([2**63], dtype=np.uint64), 0),
        ([-(2**63)], 0),
        ([Fraction(2**70, 3)], 0),
    ],
)
def test_signed_range_overflow_rejected(values, fractional_bits):
    with pytest.raises(EncodingOverflowError, match="signed 64-bit limit"):
        encode_fixed(values, fractional_bits)


def test_largest_signed_value_accepted():
    assert signed(encode_integers([2**63 - 1, -(2**63) + 1])) == [2**63 - 1, -(2**63) + 1]


def test_encode_integers_rejects_fractions():
    with pytest.raises(InvalidInputError, match="not an integer"):
        encode_integers([1.0, 2.5])

    with pytest.raises(InvalidInputError, match="not an integer"):
        encode_integers([Fraction(1, 2)])


def test_encode_integers_accepts_integral_floats():
    assert signed(encode_integers([3.0, -4.0])) == [3, -4]


@pytest.mark.parametrize("fractional_bits", [-1, 63, 1.5, True])
def test_invalid_fractional_bits_rejected(fractional_bits):
    with pytest.raises(InvalidInputError, match="fractional_bits"):
        encode_fixed([1.0], fractional_bits)


@pytest.mark.parametrize("max_abs", [-1, math.nan, "10"])
def test_invalid_max_abs_rejected(max_abs):
    with pytest.raises(InvalidInputError, match="max_abs"):
        encode_fixed([1.0], 0, max_abs=max_abs)


def test_from_le_bytes_wrong_length_rejected():
    with pytest.raises(InvalidInputError, match="16 bytes but 3 words need 24"):
        from_le_bytes(bytes(16), 3)


def test_from_le_bytes_little_endian_and_writable():
    words = from_le_bytes(bytes([1, 0, 0, 0, 0, 0, 0, 0x80]), 1)

    assert int(words[0]) == 2**63 + 1
    assert words.flags.writeable


def test_to_le_bytes_signed_twos_complement():
    assert to_le_bytes(np.array([-1], dtype=np.int64)) == b"\xff" * 8


def test_to_le_bytes_rejects_floats():
    with pytest.raises(InvalidInputError, match="encode_fixed"):
        to_le_bytes(np.array([1.0]))


def test_to_le_bytes_rejects_out_of_range_ints():
    with pytest.raises(InvalidInputError, match="outside 0..2\\^64-1"):
        to_le_bytes([2**64])


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False), fractional_bits=st.integers(0, 62))
def test_encode_matches_exact_rounding(value, fractional_bits):
    exact = round(Fraction(value) * 2**fractional_bits)

    if abs(exact) >= 2**63:
        with pytest.raises(EncodingOverflowError):
            encode_fixed([value], fractional_bits)
    else:
        assert signed(encode_fixed([value], fractional_bits)) == [exact]
