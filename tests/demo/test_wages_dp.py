"""`pmsr demo wages` with differential privacy: the default epsilons, and DP results against plaintext."""

from __future__ import annotations

import math
from typing import Any

import pytest

from offchain_workers.datasets import wage_equation_spec, wage_histogram_spec
from offchain_workers.demo.report import wage_report
from offchain_workers.dp import result_noise_sd

from .conftest import run_demo

TERMS = ("intercept", "experience", "experience^2", "education", "ethnicity_afam")


def _report(*arguments: object) -> Any:
    result = run_demo("wages", *arguments, "--json")
    assert result.status == 0, result.stderr[-3000:]
    return result.report()


@pytest.fixture(scope="module")
def default_run() -> Any:
    return _report("--owners", 40, "--seed", 3)


@pytest.fixture(scope="module")
def weak_noise_run() -> Any:
    # At epsilon 40 the noise on each statistic (standard deviation 1.35) is small beside 600
    # workers' statistics: the smallest eigenvalue of X'X is about 12, above the floor of 6 where
    # the post-processing would start to shrink coefficients. So the secure coefficients must land
    # near the plaintext ones, within a few of the reported noise standard deviations.
    return _report("--owners", 600, "--seed", 5, "--epsilon", "40")


def test_default_epsilons_are_stated(default_run: Any) -> None:
    assert default_run["exact"] is False
    assert default_run["epsilon"] == 10
    assert default_run["histogram_epsilon"] == 1
    assert default_run["ols"]["epsilon"] == 10
    assert default_run["histogram"]["epsilon"] == 1
    assert default_run["privacy"] == "epsilon 10 for the regression and 1 for the histogram"
    assert "epsilon 10 for the regression and 1 for the histogram" in wage_report(default_run)


def test_noise_figures_follow_from_the_specs(default_run: Any) -> None:
    ols = default_run["ols"]
    regression = wage_equation_spec(40, epsilon_millionths=10_000_000)
    assert ols["noise_sd_per_coordinate"] == pytest.approx(result_noise_sd(regression, 3), rel=1e-9)
    assert ols["l1_sensitivity"] == pytest.approx(22, abs=0.02)
    histogram = wage_histogram_spec(epsilon_millionths=1_000_000)
    # Discrete Laplace noise of scale 1 has variance 2e/(e-1)^2; three aggregators add three of them.
    expected = math.sqrt(3 * 2 * math.e / (math.e - 1) ** 2)
    assert default_run["histogram"]["noise_sd_per_count"] == pytest.approx(expected, rel=1e-9)
    assert result_noise_sd(histogram, 3) == pytest.approx(expected, rel=1e-9)
    # The published n is 40 plus the noise of three aggregators.
    assert abs(ols["published_n"] - 40) < 10 * ols["noise_sd_per_coordinate"]


def test_default_report_gives_coefficients_and_their_noise(default_run: Any) -> None:
    ols = default_run["ols"]
    assert set(ols["coefficients"]) == set(TERMS)
    assert set(ols["noise_sd"]) == set(TERMS)
    assert all(value > 0 for value in ols["noise_sd"].values())
    text = wage_report(default_run)
    assert "DP NOISE SD" in text
    assert "standardized to [-1, 1]" in text


def test_small_dp_run_is_flagged_unreliable(default_run: Any) -> None:
    # Forty workers give X'X eigenvalues below 1, far under the noise floor of about 24 at epsilon 10.
    ols = default_run["ols"]
    assert ols["raised_eigenvalues"] >= 1
    assert "the coefficients are biased" in ols["warning"]
    assert "WARNING: this DP regression is not reliable" in wage_report(default_run)


def test_weak_noise_coefficients_are_near_plaintext(weak_noise_run: Any) -> None:
    ols = weak_noise_run["ols"]
    assert ols["exact"] is False
    assert ols["error"] is None
    assert ols["raised_eigenvalues"] == 0
    assert ols["warning"] is None
    for term in TERMS:
        spread = ols["noise_sd"][term]
        assert spread > 0, term
        assert abs(ols["coefficients"][term] - ols["plaintext_coefficients"][term]) < 6 * spread, term
    histogram = weak_noise_run["histogram"]
    for secure, plain in zip(histogram["counts"], histogram["plaintext_counts"]):
        assert abs(secure - plain) <= 1
