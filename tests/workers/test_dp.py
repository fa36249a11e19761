import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offchain_workers import dp
from offchain_workers.budget import can_afford, format_epsilon, parse_epsilon, remaining_budget
from offchain_workers.encoding import decode_fixed, encode_fixed
from offchain_workers.errors import PrivacyError, SpecError
from offchain_workers.sharing import reconstruct, split
from offchain_workers.spec import build_spec
from pmsr_chain.errors import InvalidInputError

HISTOGRAM = {"column": "wage", "edges": ["0", "250", "500", "1000", "20000"]}

# Samples for the variance check. The sample variance of discrete Laplace noise has a relative
# standard deviation of about sqrt(5 / n), 1.6% here, so the 10% tolerance is over 6 deviations.
VARIANCE_SAMPLES = 20_000
VARIANCE_TOLERANCE = 0.10


def histogram_spec(epsilon_millionths=1_000_000, bound=4, fractional_bits=0, **overrides):
    return build_spec("histogram", HISTOGRAM, clip=("0", str(bound)), fractional_bits=fractional_bits,
                      contribution_bound=bound, epsilon_millionths=epsilon_millionths, **overrides)


def discrete_laplace_variance(scale):
    """Variance of P(k) proportional to exp(-|k| / scale) over the integers."""
    decay = math.exp(-1 / scale)
    return 2 * decay / (1 - decay) ** 2


# --- scale and privacy accounting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("epsilon", "bound", "fractional_bits"),
    [(1_000_000, 4, 0), (500_000, 1, 0), (100_000, 3, 8), (2_718_281, 7, 16), (100_000_000, 1, 0), (1, 1, 0)],
)
def test_noise_scale_is_sensitivity_over_epsilon(epsilon, bound, fractional_bits):
    spec = histogram_spec(epsilon, bound, fractional_bits)
    noise = dp.make_noise(spec)
    assert noise.sensitivity == bound * 2**fractional_bits
    assert dp.encoded_l1_sensitivity(spec) == noise.sensitivity
    assert noise.scale == pytest.approx(bound * 2**fractional_bits * 1_000_000 / epsilon, rel=1e-12)
    assert dp.noise_scale(spec) == noise.scale


@pytest.mark.parametrize("epsilon", [1, 100_000, 700_000, 1_000_000, 3_000_000, 100_000_000])
def test_privacy_map_returns_epsilon(epsilon):
    spec = histogram_spec(epsilon, bound=3, fractional_bits=4)
    noise = dp.make_noise(spec)
    loss = noise.privacy_loss()
    assert loss <= epsilon / 1_000_000
    assert loss == pytest.approx(epsilon / 1_000_000, rel=1e-9)
    # Twice the sensitivity costs twice the epsilon, so the map really reads the sensitivity.
    assert noise.measurement.map(2 * noise.sensitivity) == pytest.approx(2 * epsilon / 1_000_000, rel=1e-9)


def test_sensitivity_of_spec_in_real_units():
    spec = build_spec("mean", {"column": "wage"}, clip=[("0", "2000"), ("0", "1")], fractional_bits=8,
                      contribution_bound=1, epsilon_millionths=1_000_000)
    assert dp.l1_sensitivity(spec) == 2001
    assert dp.encoded_l1_sensitivity(spec) == 2001 * 256


def test_noise_variance_matches_discrete_laplace():
    spec = histogram_spec(epsilon_millionths=1_000_000, bound=4)
    noise = dp.make_noise(spec)
    samples = noise.sample(VARIANCE_SAMPLES)
    assert samples.dtype == np.int64
    expected = discrete_laplace_variance(noise.scale)
    assert abs(samples.var() / expected - 1) < VARIANCE_TOLERANCE
    assert abs(samples.mean()) < 6 * math.sqrt(expected / VARIANCE_SAMPLES)
    assert len(np.unique(samples)) > 20


def test_noise_scale_grows_as_epsilon_shrinks():
    loose = dp.make_noise(histogram_spec(epsilon_millionths=4_000_000)).sample(VARIANCE_SAMPLES)
    tight = dp.make_noise(histogram_spec(epsilon_millionths=250_000)).sample(VARIANCE_SAMPLES)
    assert tight.var() > 100 * loose.var()


# --- adding noise to shares ---------------------------------------------------------------------


def test_add_noise_wraps_modulo_2_64():
    spec = histogram_spec()
    noise = dp.make_noise(spec)
    share = np.array([0, 2**64 - 1, 2**63, 5], dtype=np.uint64)
    noised = noise.add_to(share)
    assert noised.dtype == np.uint64
    difference = (noised - share).view(np.int64)
    assert np.abs(difference).max() < 60 * noise.scale


def test_noised_aggregate_decodes_near_exact_sum():
    spec = histogram_spec(epsilon_millionths=2_000_000, bound=1, fractional_bits=8)
    values = np.array([120.0, 37.0, 5.0, 1.0])
    shares = split(encode_fixed(values, 8), 3)
    noised = [dp.add_noise(spec, share) for share in shares]
    result = decode_fixed(reconstruct(noised), 8)
    scale = dp.noise_scale(spec) / 256
    assert not np.array_equal(result, values)
    assert np.abs(result - values).max() < 3 * 40 * scale


def test_exact_spec_gets_no_noise():
    spec = histogram_spec(epsilon_millionths=0, exact=True)
    share = np.array([1, 2, 3, 2**64 - 1], dtype=np.uint64)
    assert np.array_equal(dp.add_noise(spec, share), share)
    with pytest.raises(PrivacyError, match="exact"):
        dp.make_noise(spec)


def test_add_noise_rejects_wrong_share():
    spec = histogram_spec()
    with pytest.raises(PrivacyError, match="length 4"):
        dp.add_noise(spec, np.zeros(3, dtype=np.uint64))
    with pytest.raises(PrivacyError, match="uint64"):
        dp.add_noise(spec, np.zeros(4, dtype=np.int64))


def test_epsilon_zero_without_flag_rejected():
    with pytest.raises(SpecError, match="exact") as caught:
        histogram_spec(epsilon_millionths=0)
    assert caught.value.field == "epsilon"
    assert caught.value.value == 0


@pytest.mark.parametrize("epsilon", [-1, 100_000_001])
def test_epsilon_outside_range_rejected(epsilon):
    with pytest.raises(SpecError) as caught:
        histogram_spec(epsilon_millionths=epsilon)
    assert caught.value.field == "epsilon"


def test_noise_headroom_checked():
    spec = build_spec("sum", {"column": "x"}, clip=("0", "1000"), fractional_bits=40, contribution_bound=1,
                      epsilon_millionths=1)
    spec.validate_for_market(1)
    with pytest.raises(PrivacyError, match="wrap"):
        dp.check_noise_headroom(spec, max_owners=1, aggregators=3)
    dp.check_noise_headroom(histogram_spec(), max_owners=1000, aggregators=3)


# --- budget arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millionths"),
    [("0.5", 500_000), ("1", 1_000_000), ("0.1", 100_000), ("0.000001", 1), ("2.500000", 2_500_000), ("100", 100_000_000), ("0", 0)],
)
def test_parse_epsilon_exact(text, millionths):
    assert parse_epsilon(text) == millionths


@pytest.mark.parametrize("text", ["0.0000001", "-1", "1e-3", "abc", "", ".5", "0x1", "1/2", "nan"])
def test_parse_epsilon_rejects(text):
    with pytest.raises(InvalidInputError) as caught:
        parse_epsilon(text)
    assert repr(text) in str(caught.value)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_format_epsilon_round_trips(millionths):
    assert parse_epsilon(format_epsilon(millionths)) == millionths


def test_format_epsilon_examples():
    assert format_epsilon(500_000) == "0.5"
    assert format_epsilon(3_000_000) == "3"
    assert format_epsilon(1) == "0.000001"


def test_budget_arithmetic():
    assert remaining_budget(2_000_000, 500_000) == 1_500_000
    assert can_afford(2_000_000, 500_000, 1_500_000)
    assert not can_afford(2_000_000, 500_000, 1_500_001)
    assert can_afford(1_000_000, 0, 0)
    # An owner may lower its budget below what it already spent.
    assert remaining_budget(1_000_000, 1_500_000) == 0
    assert not can_afford(1_000_000, 1_500_000, 1)
    assert not can_afford(1_000_000, 1_500_000, 0)
    with pytest.raises(InvalidInputError):
        can_afford(1_000_000, 0, -1)
