import pytest
from hypothesis import given, strategies as st

from pmsr_chain.errors import InvalidInputError
from pmsr_chain.units import format_duration, format_ether, parse_amount, parse_duration


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("0.01ether", 10**16),
        ("1 ether", 10**18),
        ("1ETH", 10**18),
        ("10gwei", 10 * 10**9),
        ("1.5gwei", 1_500_000_000),
        ("1000", 1000),
        ("7wei", 7),
        ("0", 0),
    ],
)
def test_parse_amount_units(text, wei):
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["-1", "-0.5ether", "abc", "1.5", "0.1wei", "1 dollars", "", "1e18"])
def test_parse_amount_rejects(text):
    with pytest.raises(InvalidInputError) as caught:
        parse_amount(text)
    assert repr(text) in str(caught.value)


@given(st.integers(min_value=0, max_value=10**30))
def test_format_ether_round_trips(wei):
    assert parse_amount(format_ether(wei).removesuffix(" ETH") + "ether") == wei


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("30", 30)]
)
def test_parse_duration_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5s", "1.5h", "10 minutes", "", "h"])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidInputError):
        parse_duration(text)


def test_format_duration_forms():
    assert format_duration(2.44) == "2.4s"
    assert format_duration(3903) == "1h 5m 3s"


def test_parse_amount_keeps_every_digit():
    """Regression: the default 28-digit decimal context rounded this amount down by one wei."""
    assert parse_amount("10000000000.000000000000000001ether") == 10**28 + 1
