"""Standardized ols terms, noisy post-processing and the noise estimates the analyst reads."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain_workers import datasets
from offchain_workers.dp import discrete_laplace_variance, make_noise, result_noise_sd
from offchain_workers.errors import SpecError
from offchain_workers.mapping import map_owner_values, postprocess
from offchain_workers.spec import build_spec
from offchain_workers.templates.ols import OlsTemplate

OWNERS = 400

RAW_EQUATION = {
    "intercept": True,
    "response": {"column": "wage", "power": 1, "transform": "log"},
    "terms": [
        {"column": "experience", "power": 1, "transform": "identity"},
        {"column": "experience", "power": 2, "transform": "identity"},
        {"column": "education", "power": 1, "transform": "identity"},
        {"column": "ethnicity", "level": "afam"},
    ],
}


@pytest.fixture(scope="module")
def workers():
    return datasets.load_cps1988().sample(n=OWNERS, random_state=7).reset_index(drop=True)


def pooled_statistics(spec, rows):
    """Sum every owner's output, one row per owner, as the secure reduce does (without encoding)."""
    return sum(map_owner_values(spec, rows.iloc[[index]]) for index in range(len(rows)))


def ols_spec(params, *, epsilon_millionths=0, clip=("-16000000", "16000000"), fractional_bits=24):
    return build_spec("ols", params, clip=clip, fractional_bits=fractional_bits, contribution_bound=1,
                      epsilon_millionths=epsilon_millionths, exact=epsilon_millionths == 0)


def standardized(centers, scales, response=("6.875", "2.97")):
    equation = {
        "intercept": True,
        "response": {**RAW_EQUATION["response"], "center": response[0], "scale": response[1]},
        "terms": [
            {**RAW_EQUATION["terms"][0], "center": centers[0], "scale": scales[0]},
            {**RAW_EQUATION["terms"][1], "center": centers[0], "scale": scales[0]},
            {**RAW_EQUATION["terms"][2], "center": centers[1], "scale": scales[1]},
            RAW_EQUATION["terms"][3],
        ],
    }
    return equation


def test_standardized_terms_give_the_unstandardized_fit(workers):
    raw = postprocess(ols_spec(RAW_EQUATION), pooled_statistics(ols_spec(RAW_EQUATION), workers))
    spec = ols_spec(datasets.WAGE_EQUATION)
    result = postprocess(spec, pooled_statistics(spec, workers))

    assert result["regressors"] == raw["regressors"] == ["intercept", "experience", "experience^2", "education",
                                                         "ethnicity_afam"]
    assert result["response"] == "log(wage)"
    for name in raw["regressors"]:
        assert result["coefficients"][name] == pytest.approx(raw["coefficients"][name], rel=1e-9, abs=1e-12)
        assert result["standard_errors"][name] == pytest.approx(raw["standard_errors"][name], rel=1e-9)
    assert result["r_squared"] == pytest.approx(raw["r_squared"], rel=1e-9)
    assert result["residual_variance"] == pytest.approx(raw["residual_variance"], rel=1e-9)
    assert result["n"] == OWNERS


def test_standardized_statistics_stay_within_one(workers):
    spec = datasets.wage_equation_spec(datasets.CPS1988_WORKERS)
    every = datasets.load_cps1988()
    rows = np.stack([map_owner_values(spec, every.iloc[[index]]) for index in range(0, len(every), 37)])

    assert np.abs(rows).max() <= 1.0
    assert float(spec.l1_sensitivity) == pytest.approx(22, abs=0.02)
    assert spec.fractional_bits == 40


@settings(max_examples=25, deadline=None)
@given(
    centers=st.tuples(st.integers(-40, 80), st.integers(-10, 30)),
    scales=st.tuples(st.integers(1, 100), st.integers(1, 40)),
    response_center=st.integers(-5, 15),
)
def test_any_centre_and_scale_give_the_same_coefficients(workers, centers, scales, response_center):
    raw_spec = ols_spec(RAW_EQUATION)
    raw = postprocess(raw_spec, pooled_statistics(raw_spec, workers.iloc[:60]))
    spec = ols_spec(standardized([str(value) for value in centers], [str(value) for value in scales],
                                 (str(response_center), "3")), clip=("-1000000000000", "1000000000000"), fractional_bits=0)
    values = sum(map_owner_values(spec, workers.iloc[[index]]) for index in range(60))
    result = postprocess(spec, values)

    for name in raw["regressors"]:
        assert result["coefficients"][name] == pytest.approx(raw["coefficients"][name], rel=1e-6, abs=1e-9)


def test_standardized_term_json_round_trips_and_omits_defaults():
    template = OlsTemplate()
    params = template.parse_params(datasets.WAGE_EQUATION)
    assert template.params_to_json(params) == datasets.WAGE_EQUATION
    assert template.params_to_json(template.parse_params(RAW_EQUATION)) == RAW_EQUATION
    assert params.regressor_names[1] == "(experience-29.5)/33.5"
    assert params.regressor_names[2] == "((experience-29.5)/33.5)^2"
    assert params.raw_regressor_names[2] == "experience^2"
    negative = template.parse_params({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][0], "center": "-4"}]})
    assert negative.regressor_names[1] == "(experience+4)"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][1], "center": "30"}]},
         "params.terms[0].center", "expands into the term experience"),
        ({**RAW_EQUATION, "intercept": False, "terms": [{**RAW_EQUATION["terms"][0], "center": "30"}]},
         "params.terms[0].center", "expands into an intercept"),
        ({**RAW_EQUATION, "intercept": False, "response": {**RAW_EQUATION["response"], "center": "6"}},
         "params.response.center", "needs intercept true"),
        ({**RAW_EQUATION, "response": {"column": "wage", "power": 2, "transform": "log", "center": "6"}},
         "params.response.center", "power 1"),
        ({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][0], "scale": "0"}]},
         "params.terms[0].scale", "must be between"),
        ({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][0], "scale": "2.50"}]},
         "params.terms[0].scale", "canonical"),
        ({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][0], "scale": "0.0000000000001"}]},
         "params.terms[0].scale", "between 0.000000000001 and"),
        ({**RAW_EQUATION, "terms": [{**RAW_EQUATION["terms"][0], "center": "-1000000000001"}]},
         "params.terms[0].center", "between -1000000000000 and"),
        ({**RAW_EQUATION, "terms": [RAW_EQUATION["terms"][0], {**RAW_EQUATION["terms"][0], "scale": "2"}]},
         "params.terms[1]", "duplicate regressor"),
    ],
)
def test_invalid_standardization_is_rejected(params, field, message):
    with pytest.raises(SpecError, match=message) as caught:
        OlsTemplate().parse_params(params)
    assert caught.value.field == field


def test_noisy_postprocess_repairs_a_matrix_noise_made_indefinite(workers):
    spec = ols_spec(datasets.WAGE_EQUATION)
    values = pooled_statistics(spec, workers)
    exact = postprocess(spec, values)

    # Small noise: every eigenvalue of X'X stays above the floor, so the result is the exact one.
    calm = postprocess(spec, values, noise_sd=1e-9)
    assert calm["raised_eigenvalues"] == 0
    assert calm["coefficients"] == pytest.approx(exact["coefficients"], rel=1e-12)

    # Subtract enough from the experience^4 entry (index 9) that X'X has a negative eigenvalue.
    broken = values.copy()
    broken[9] -= values[9] * 1.5
    assert np.linalg.eigvalsh(_square(broken))[0] < 0
    repaired = postprocess(spec, broken, noise_sd=2.0)
    assert repaired["raised_eigenvalues"] >= 1
    assert all(math.isfinite(value) for value in repaired["coefficients"].values())


def _square(values):
    xtx = np.zeros((5, 5))
    xtx[np.triu_indices(5)] = values[:15]
    return xtx + np.triu(xtx, 1).T


def test_result_noise_sd_matches_the_sampled_noise():
    spec = datasets.wage_equation_spec(2_000, epsilon_millionths=10_000_000)
    draws = make_noise(spec).sample(20_000) / 2**spec.fractional_bits
    # One aggregator's noise; the standard error of a sample SD over 20,000 Laplace draws is about 0.9%.
    assert np.std(draws) == pytest.approx(result_noise_sd(spec, 1), rel=0.05)
    assert result_noise_sd(spec, 3) == pytest.approx(result_noise_sd(spec, 1) * math.sqrt(3), rel=1e-12)
    assert result_noise_sd(datasets.wage_equation_spec(2_000), 3) == 0.0


def test_noise_standard_errors_match_repeated_noise(workers):
    spec = datasets.wage_equation_spec(OWNERS, epsilon_millionths=40_000_000)
    values = pooled_statistics(spec, workers)
    noise_sd = result_noise_sd(spec, 3)
    scale = noise_sd / math.sqrt(6)
    generator = np.random.default_rng(3)
    # Publish the same statistics many times, each with three aggregators' Laplace noise. At this
    # epsilon no eigenvalue comes near the ridge floor, so the plain solve is the noisy one.
    solved = []
    for _ in range(600):
        noisy = values + generator.laplace(0.0, scale, size=(3, len(values))).sum(axis=0)
        solved.append(list(postprocess(spec, noisy)["coefficients"].values()))
    observed = np.std(np.array(solved), axis=0, ddof=1)

    estimate = postprocess(spec, values, noise_sd=noise_sd)
    assert estimate["raised_eigenvalues"] == 0
    assert "warning" not in estimate
    for index, name in enumerate(estimate["regressors"]):
        assert estimate["noise_standard_errors"][name] == pytest.approx(observed[index], rel=0.15), name


def test_ridge_adds_a_warning(workers):
    spec = datasets.wage_equation_spec(OWNERS, epsilon_millionths=100_000)
    result = postprocess(spec, pooled_statistics(spec, workers), noise_sd=result_noise_sd(spec, 3))
    assert result["raised_eigenvalues"] >= 1
    assert "the coefficients are biased" in result["warning"]
    # The estimate is seeded from the published values, so reading the result again repeats it.
    again = postprocess(spec, pooled_statistics(spec, workers), noise_sd=result_noise_sd(spec, 3))
    assert again["noise_standard_errors"] == result["noise_standard_errors"]
    assert result["r_squared"] is None or 0 <= result["r_squared"] <= 1


@pytest.mark.parametrize("scale", [1e6, 1e12, 1e17, 1e20])
def test_discrete_laplace_variance_at_large_scales(scale):
    # Far above 1 the discrete Laplace variance approaches the continuous one, 2 * scale^2.
    assert discrete_laplace_variance(scale) == pytest.approx(2 * scale**2, rel=1e-6)


def test_result_noise_sd_at_tiny_epsilon():
    spec = datasets.wage_equation_spec(20, epsilon_millionths=1)
    expected = math.sqrt(3 * 2) * float(spec.l1_sensitivity) * 1_000_000
    assert result_noise_sd(spec, 3) == pytest.approx(expected, rel=1e-6)
