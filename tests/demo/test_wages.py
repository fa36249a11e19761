"""`pmsr demo wages` on 20 CPS1988 workers, exact: the secure regression and histogram against plaintext.

The sample of seed 0 contains two African-American workers, so every regressor of the wage equation
varies and the regression has a unique solution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from offchain_workers.datasets import WAGE_EDGES
from offchain_workers.demo.report import wage_report
from offchain_workers.demo.wages import FEE_PER_AGGREGATOR, PRICE_PER_OWNER, sample_workers

from .conftest import DemoRun, run_demo

OWNERS = 20
SEED = 0
TERMS = ("intercept", "experience", "experience^2", "education", "ethnicity_afam")


@pytest.fixture(scope="module")
def plot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plot") / "wages.png"


@pytest.fixture(scope="module")
def wages_run(plot_path: Path) -> DemoRun:
    return run_demo("wages", "--owners", OWNERS, "--seed", SEED, "--epsilon", "0", "--json", "--plot", plot_path)


@pytest.fixture(scope="module")
def report(wages_run: DemoRun) -> Any:
    assert wages_run.status == 0, wages_run.stderr[-3000:]
    return wages_run.report()


def plaintext_fit() -> np.ndarray:
    """Fit least squares on the same 20 workers, here with numpy's SVD-based `lstsq` on the raw columns."""
    workers = sample_workers(OWNERS, SEED)
    experience = workers["experience"].to_numpy(float)
    design = np.column_stack([
        np.ones(OWNERS), experience, experience**2, workers["education"].to_numpy(float),
        (workers["ethnicity"] == "afam").to_numpy(float),
    ])
    coefficients, *_ = np.linalg.lstsq(design, np.log(workers["wage"].to_numpy(float)), rcond=None)
    return coefficients


def test_stdout_is_one_json_object(wages_run: DemoRun) -> None:
    assert wages_run.status == 0
    assert isinstance(wages_run.report(), dict)
    assert wages_run.stdout.lstrip().startswith("{")


def test_progress_goes_to_stderr(wages_run: DemoRun) -> None:
    for phase in ("==> starting chain", "==> registering owners", "==> submitting", "==> aggregating",
                  "==> publishing", "==> paying"):
        assert phase in wages_run.stderr
    assert "==>" not in wages_run.stdout
    # The submitting phase closes with its final count: two queries, one submission per owner each.
    assert f"{2 * OWNERS}/{2 * OWNERS}" in wages_run.stderr


def test_secure_coefficients_match_plaintext(report: Any) -> None:
    ols = report["ols"]
    assert ols["exact"] is True
    assert ols["included_owners"] == OWNERS
    assert set(ols["coefficients"]) == set(TERMS)
    assert set(ols["plaintext_coefficients"]) == set(TERMS)
    for term in TERMS:
        assert ols["coefficients"][term] == pytest.approx(ols["plaintext_coefficients"][term], abs=1e-6), term
    assert ols["max_abs_difference"] < 1e-6


def test_plaintext_coefficients_match_numpy(report: Any) -> None:
    expected = plaintext_fit()
    for term, value in zip(TERMS, expected):
        assert report["ols"]["plaintext_coefficients"][term] == pytest.approx(value, abs=1e-9), term


def test_histogram_counts_match_plaintext(report: Any) -> None:
    histogram = report["histogram"]
    expected, _ = np.histogram(sample_workers(OWNERS, SEED)["wage"], bins=[float(edge) for edge in WAGE_EDGES])
    assert histogram["plaintext_counts"] == expected.tolist()
    assert histogram["counts"] == [float(count) for count in expected]
    assert sum(histogram["counts"]) == OWNERS


def test_report_counts_owners_and_seconds(report: Any) -> None:
    assert report["owners"] == OWNERS
    assert report["aggregators"] == 3
    assert report["exact"] is True
    phases = report["seconds"]["phases"]
    assert "registering owners" in phases
    assert report["seconds"]["total"] >= sum(phases.values()) - 1.0


def test_gas_by_role(report: Any) -> None:
    roles = report["gas"]["by_role"]
    assert roles["owners"]["accounts"] == OWNERS
    # Each owner registers and submits to two queries.
    owner_calls = roles["owners"]["by_call"]
    assert owner_calls["registerOwner"]["transactions"] == OWNERS
    assert owner_calls["submitShares"]["transactions"] == 2 * OWNERS
    assert roles["aggregators"]["by_call"]["revealAggregate"]["transactions"] == 2 * 3
    assert roles["analyst"]["by_call"]["proposeQuery"]["transactions"] == 2
    assert roles["analyst"]["by_call"]["refund"]["transactions"] == 2
    assert report["gas"]["total"] == sum(role["gas"] for role in roles.values())
    assert report["gas"]["reverted_transactions"] == 0


def test_everyone_is_paid(report: Any) -> None:
    owners = report["payments"]["owners"]
    assert owners["paid"] == OWNERS
    assert owners["per_owner_wei"]["min"] == str(2 * PRICE_PER_OWNER)
    assert owners["per_owner_wei"]["max"] == str(2 * PRICE_PER_OWNER)
    aggregators = report["payments"]["aggregators"]
    assert aggregators["paid"] == 3
    assert set(aggregators["per_aggregator_wei"].values()) == {str(2 * FEE_PER_AGGREGATOR)}
    # Every owner submitted, so no owner slot is left for the analyst to take back.
    assert report["payments"]["analyst"]["refund_wei"] == "0"


def test_text_report_explains_the_run(report: Any) -> None:
    text = wage_report(report)
    assert "No aggregator saw any owner's data" in text
    assert "ethnicity_afam" in text
    assert "[2000,20000]" in text
    assert "submitShares" in text
    assert "aggregators paid 0.02 ETH each" in text


def test_plot_is_a_png_figure(report: Any, plot_path: Path) -> None:
    assert report["plot"] == str(plot_path)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(plot_path)
    height, width = image.shape[:2]
    assert width >= 1000
    assert height >= 600
    # A blank canvas has one colour; the figure's bars and markers add many.
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 50


def test_invalid_owner_count_is_a_usage_error() -> None:
    result = run_demo("wages", "--owners", "1")
    assert result.status == 2
    assert "invalid owner count 1" in result.stderr
    assert result.stdout == ""


def test_plot_must_be_png() -> None:
    result = run_demo("wages", "--owners", "5", "--plot", "figure.jpg")
    assert result.status == 1
    assert "must name a .png file" in result.stderr


def test_plot_directory_is_checked_first(tmp_path: Path) -> None:
    result = run_demo("wages", "--owners", "5", "--plot", tmp_path / "missing" / "wages.png")
    assert result.status == 1
    assert "does not exist" in result.stderr
    assert "==>" not in result.stderr


def test_seed_out_of_range_is_a_usage_error() -> None:
    result = run_demo("wages", "--seed", "-1")
    assert result.status == 2
    assert "invalid seed -1" in result.stderr


def test_workdir_on_a_file_is_rejected(tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    result = run_demo("wages", "--owners", "5", "--workdir", existing)
    assert result.status == 1
    assert "--workdir" in result.stderr
    assert "is a file" in result.stderr
    assert existing.read_text() == "keep me"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--plot", ".png", "must name a .png file"),
        ("--workdir", "", "--workdir is empty"),
    ],
)
def test_odd_paths_are_rejected_before_the_run(option: str, value: str, message: str) -> None:
    result = run_demo("wages", "--owners", "5", option, value)
    assert result.status == 1
    assert message in result.stderr
    assert "==>" not in result.stderr


def test_plot_under_a_file_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = run_demo("wages", "--owners", "5", "--plot", blocker / "x.png")
    assert result.status == 1
    assert "is a file, not a directory" in result.stderr
