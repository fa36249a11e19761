import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsr_chain.errors import InvalidInputError
from offchain_workers.sharing import ShareAccumulator, random_words, reconstruct, split

MODULUS = 2**64
words_strategy = st.lists(st.integers(min_value=0, max_value=MODULUS - 1), min_size=1, max_size=64)

# Chi-square uniformity test over 256 bins (255 degrees of freedom) at significance 1e-6.
# CHI_SQUARE_CRITICAL = scipy.stats.chi2.isf(1e-6, 255) = 377.078..., checked against scipy below
# when scipy is installed. A correct CSPRNG exceeds it with probability 1e-6 per statistic, and
# test_split_shares_uniform computes 6 statistics, so by the union bound it fails falsely in at
# most 6 of a million runs. The shares come from os.urandom, which cannot be seeded, so the
# statistic differs on every run and this rate is the whole story.
CHI_SQUARE_SIGNIFICANCE = 1e-6
CHI_SQUARE_DEGREES = 255
CHI_SQUARE_CRITICAL = 377.078
UNIFORMITY_SAMPLES = 32_768  # 128 expected per bin, far above the usual minimum of 5


def as_words(values):
    return np.array(values, dtype=np.uint64)


def chi_square_statistic(bins: np.ndarray) -> float:
    counts = np.bincount(bins, minlength=256).astype(np.float64)
    expected = bins.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


@settings(max_examples=200, deadline=None)
@given(secret=words_strategy, parties=st.integers(min_value=2, max_value=8))
def test_split_reconstruct_round_trip(secret, parties):
    words = as_words(secret)

    shares = split(words, parties)

    assert len(shares) == parties
    for share in shares:
        assert share.dtype == np.uint64
        assert share.shape == words.shape
    assert np.array_equal(reconstruct(shares), words)


@settings(max_examples=100, deadline=None)
@given(
    inputs=st.integers(min_value=1, max_value=8).flatmap(
        lambda length: st.lists(
            st.lists(st.integers(min_value=0, max_value=MODULUS - 1), min_size=length, max_size=length),
            min_size=1,
            max_size=10,
        )
    ),
    parties=st.integers(min_value=2, max_value=8),
)
def test_aggregated_shares_sum_inputs(inputs, parties):
    length = len(inputs[0])
    accumulators = [ShareAccumulator(length) for _ in range(parties)]

    for owner_input in inputs:
        for accumulator, share in zip(accumulators, split(as_words(owner_input), parties), strict=True):
            accumulator.add(share)

    expected = [sum(column) % MODULUS for column in zip(*inputs, strict=True)]
    result = reconstruct([accumulator.total for accumulator in accumulators])
    assert [int(word) for word in result] == expected
    for accumulator in accumulators:
        assert accumulator.count == len(inputs)


def test_wrapping_arithmetic_emits_no_warnings():
    secret = as_words([MODULUS - 1] * 16)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shares = split(secret, 5)
        accumulator = ShareAccumulator(16)
        for _ in range(3):
            for share in shares:
                accumulator.add(share)
        total = accumulator.total

    # Three copies of 2^64 - 1 sum to 2^64 - 3 modulo 2^64.
    assert np.array_equal(total, as_words([MODULUS - 3] * 16))


def test_split_shares_uniform():
    """Any K-1 of the K shares of a fixed secret are uniform, jointly and one by one.

    With K = 3, each pair of shares is tested on the joint distribution of the low 4 bits of both
    (256 bins), and each share alone on its low 8 bits (256 bins). The pair that includes the last
    share, which is computed from the secret, is the case that matters most.
    """
    secret = np.full(UNIFORMITY_SAMPLES, 0x0123456789ABCDEF, dtype=np.uint64)
    shares = split(secret, 3)
    low_bytes = [(share & np.uint64(0xFF)).astype(np.int64) for share in shares]

    for first, second in itertools.combinations(range(3), 2):
        joint = (low_bytes[first] & 0xF) * 16 + (low_bytes[second] & 0xF)
        statistic = chi_square_statistic(joint)
        assert statistic < CHI_SQUARE_CRITICAL, f"shares {first} and {second}: chi-square {statistic:.1f}"

    for index in range(3):
        statistic = chi_square_statistic(low_bytes[index])
        assert statistic < CHI_SQUARE_CRITICAL, f"share {index}: chi-square {statistic:.1f}"


def test_chi_square_rejects_dependent_pair():
    share = random_words(UNIFORMITY_SAMPLES)
    low = (share & np.uint64(0xF)).astype(np.int64)

    # Two copies of one uniform share fill only the 16 diagonal bins.
    assert chi_square_statistic(low * 16 + low) > CHI_SQUARE_CRITICAL


def test_chi_square_critical_value_matches_scipy():
    stats = pytest.importorskip("scipy.stats")

    assert stats.chi2.isf(CHI_SQUARE_SIGNIFICANCE, CHI_SQUARE_DEGREES) == pytest.approx(CHI_SQUARE_CRITICAL, abs=1e-3)


def test_split_draws_fresh_randomness():
    secret = as_words([7, 8, 9, 10])

    first = split(secret, 2)
    second = split(secret, 2)

    # Equal 256-bit random shares would happen with probability 2^-256.
    assert not np.array_equal(first[0], second[0])


def test_split_returns_writable_independent_arrays():
    shares = split(as_words([1, 2, 3]), 3)

    shares[0][0] = 0

    assert shares[0].flags.writeable
    assert shares[1].shape == (3,)


@pytest.mark.parametrize("parties", [0, 1, -3, 2.0, True])
def test_split_rejects_invalid_parties(parties):
    with pytest.raises(InvalidInputError, match="parties"):
        split(as_words([1]), parties)


def test_split_rejects_empty_secret():
    with pytest.raises(InvalidInputError, match="secret length"):
        split(np.array([], dtype=np.uint64), 3)


def test_split_rejects_float_secret():
    with pytest.raises(InvalidInputError, match="encode_fixed"):
        split(np.array([1.5]), 3)


def test_reconstruct_rejects_mismatched_lengths():
    with pytest.raises(InvalidInputError, match="share 1 has length 2"):
        reconstruct([as_words([1, 2, 3]), as_words([1, 2])])


def test_reconstruct_rejects_no_shares():
    with pytest.raises(InvalidInputError, match="no shares"):
        reconstruct([])


def test_accumulator_rejects_wrong_length():
    accumulator = ShareAccumulator(3)

    with pytest.raises(InvalidInputError, match="length 2"):
        accumulator.add(as_words([1, 2]))

    assert accumulator.count == 0


def test_accumulator_le_bytes_matches_add():
    share = as_words([1, MODULUS - 1, 0x0102030405060708])
    by_array = ShareAccumulator(3)
    by_bytes = ShareAccumulator(3)

    by_array.add(share)
    by_bytes.add_le_bytes(share.astype("<u8").tobytes())

    assert np.array_equal(by_array.total, by_bytes.total)
    assert by_bytes.count == 1


def test_accumulator_rejects_wrong_byte_count():
    accumulator = ShareAccumulator(2)

    with pytest.raises(InvalidInputError, match="15 bytes"):
        accumulator.add_le_bytes(bytes(15))

    assert accumulator.count == 0


def test_accumulator_total_is_copy():
    accumulator = ShareAccumulator(2)
    accumulator.add(as_words([5, 6]))

    total = accumulator.total
    total[0] = 0

    assert int(accumulator.total[0]) == 5


def test_accumulator_from_state_resumes():
    accumulator = ShareAccumulator(2)
    accumulator.add(as_words([5, MODULUS - 1]))

    resumed = ShareAccumulator.from_state(accumulator.total, accumulator.count)
    resumed.add(as_words([1, 2]))

    assert [int(word) for word in resumed.total] == [6, 1]
    assert resumed.count == 2


def test_accumulator_repr_hides_total():
    accumulator = ShareAccumulator(1)
    accumulator.add(as_words([123456789]))

    assert "123456789" not in repr(accumulator)
    assert repr(accumulator) == "ShareAccumulator(length=1, count=1)"
