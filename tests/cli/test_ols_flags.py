"""`pmsr query propose --template ols` flags: DP queries standardize their terms from --clip."""

from __future__ import annotations

from fractions import Fraction

import pytest

from offchain_workers import datasets
from offchain_workers.cli.errors import CliError
from offchain_workers.cli.query_spec import spec_from_flags
from offchain_workers.mapping import postprocess

COLUMNS = ["log(wage)", "experience", "experience^2", "education", "ethnicity=afam"]
CLIP = "log(wage)=3.9:9.9,experience=-4:63,experience^2=0:3969,education=0:18"


def ols_from_flags(*, exact: bool):
    return spec_from_flags(template="ols", columns=COLUMNS, bins=None, clip=CLIP, row_filter=None,
                           contribution_bound=1, fractional_bits=30, epsilon=None if exact else 1_000_000,
                           exact=exact)


def test_dp_terms_are_standardized_from_clip() -> None:
    terms = ols_from_flags(exact=False).params
    assert (terms.response.center, terms.response.scale) == ("6.9", "3")
    assert (terms.terms[0].center, terms.terms[0].scale) == ("29.5", "33.5")
    assert (terms.terms[1].center, terms.terms[1].scale) == ("29.5", "33.5")
    assert (terms.terms[2].center, terms.terms[2].scale) == ("9", "9")


def test_dp_statistics_are_bounded_by_one() -> None:
    spec = ols_from_flags(exact=False)
    for pair in spec.clip:
        assert -1 <= Fraction(pair.low) <= Fraction(pair.high) <= 1, pair
    assert spec.l1_sensitivity == 22


def test_exact_terms_stay_unstandardized() -> None:
    spec = ols_from_flags(exact=True)
    assert not spec.params.standardized
    assert spec.schema[1] == "XtX[intercept,experience]"


def test_standardized_and_raw_flags_fit_alike() -> None:
    rows = datasets.load_cps1988().sample(n=300, random_state=2)
    results = []
    for spec in (ols_from_flags(exact=True), ols_from_flags(exact=False)):
        statistics = spec.template_impl.map_rows(spec.params, rows)
        results.append(postprocess(spec, statistics)["coefficients"])
    raw, standardized = results
    assert set(raw) == set(standardized)
    for name, value in raw.items():
        assert standardized[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_power_without_its_base_stays_raw() -> None:
    spec = spec_from_flags(template="ols", columns=["log(wage)", "experience^2"], bins=None,
                           clip="log(wage)=3.9:9.9,experience^2=0:3969", row_filter=None, contribution_bound=1,
                           fractional_bits=30, epsilon=1_000_000, exact=False)
    term = spec.params.terms[0]
    assert term.center is None
    assert term.scale is None
    # Without experience itself the range of experience^2 cannot set a centre, so the term is left as it is.
    assert spec.schema[-3] == "Xty[experience^2,(log(wage)-6.9)/3]"


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        ("log(wage)=3.9:9.9,experience=5:5,experience^2=0:3969,education=0:18", "has no width"),
        ("log(wage)=3.9:9.9,experience=-1000000000000000:1000000000000000,experience^2=0:1,education=0:18",
         "half-width between"),
    ],
)
def test_dp_clip_that_cannot_standardize_names_the_range(clip: str, message: str) -> None:
    with pytest.raises(CliError, match=message) as caught:
        spec_from_flags(template="ols", columns=COLUMNS, bins=None, clip=clip, row_filter=None, contribution_bound=1,
                        fractional_bits=30, epsilon=1_000_000, exact=False)
    assert "--clip gives experience the range" in str(caught.value)

