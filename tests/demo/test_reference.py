"""The demos' plaintext references, owner files and formatting, without a chain."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offchain_workers.datasets import load_cps1988
from offchain_workers.demo.owner_files import OwnerFileError, write_row_files
from offchain_workers.demo.reference import (
    WAGE_TERMS,
    majority_vote,
    rating_crosstab,
    wage_histogram,
    wage_regression,
)
from offchain_workers.demo.report import format_eth, histogram_bars
from offchain_workers.errors import SingularMatrixError


def test_wage_regression_matches_normal_equations() -> None:
    workers = load_cps1988()
    experience = workers["experience"].to_numpy(float)
    design = np.column_stack([
        np.ones(len(workers)), experience, experience**2, workers["education"].to_numpy(float),
        (workers["ethnicity"] == "afam").to_numpy(float),
    ])
    response = np.log(workers["wage"].to_numpy(float))
    coefficients = np.linalg.solve(design.T @ design, design.T @ response)
    residuals = response - design @ coefficients
    variance = residuals @ residuals / (len(workers) - design.shape[1])
    errors = np.sqrt(np.diag(np.linalg.inv(design.T @ design)) * variance)

    fit = wage_regression(workers)
    assert fit.n == 28_155
    for term, value, error in zip(WAGE_TERMS, coefficients, errors):
        assert fit.coefficients[term] == pytest.approx(value, rel=1e-8), term
        assert fit.standard_errors[term] == pytest.approx(error, rel=1e-6), term
    # One more year of education raises the weekly wage by about 8.6 percent.
    assert 0.08 < fit.coefficients["education"] < 0.09


def test_wage_regression_without_both_ethnicities_is_singular() -> None:
    workers = load_cps1988()
    white = workers[workers["ethnicity"] == "cauc"].head(30)
    with pytest.raises(SingularMatrixError, match="rank 4"):
        wage_regression(white)


def test_wage_histogram_includes_the_last_edge() -> None:
    workers = pd.DataFrame({"wage": [0.0, 249.99, 250.0, 500.0]})
    assert wage_histogram(workers, ["0", "250", "500"]) == [2, 2]


def test_rating_crosstab_keeps_first_usable_ratings() -> None:
    user = pd.DataFrame({
        "rating": [5.0, 1.0, 3.0, 4.0, 0.5],
        "genre": ["Horror", "Drama", "Drama", "Comedy", "Drama"],
    })
    # Horror is outside the genres, so the first two usable ratings are Drama 1.0 and Drama 3.0.
    table = rating_crosstab([user], rating_edges=["0.5", "2.5", "5"], genres=["Comedy", "Drama"], contribution_bound=2)
    assert table.tolist() == [[0, 1], [0, 1]]
    everything = rating_crosstab([user], rating_edges=["0.5", "2.5", "5"], genres=["Comedy", "Drama"],
                                 contribution_bound=10)
    assert everything.tolist() == [[0, 2], [1, 1]]


def test_majority_vote_breaks_ties_low() -> None:
    predictions = np.array([[1, 2, 0], [2, 2, 1], [1, 0, 1], [2, 0, 0]])
    assert majority_vote(predictions, 3).tolist() == [1, 0, 0]


def test_row_files_hold_one_row_each(tmp_path: Path) -> None:
    table = pd.DataFrame({"wage": [354.94, 123.46], "region": ["south", "north, east"], "parttime": ["no", "yes"]})
    paths = write_row_files(table, tmp_path / "owners")
    assert len(paths) == 2
    for index, path in enumerate(paths):
        read = pd.read_csv(path)
        assert read.to_dict("records") == [table.iloc[index].to_dict()]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "owners").stat().st_mode) == 0o700


def test_row_files_reject_line_breaks(tmp_path: Path) -> None:
    table = pd.DataFrame({"note": ["one\ntwo"]})
    with pytest.raises(OwnerFileError, match="line break"):
        write_row_files(table, tmp_path)


def test_format_eth() -> None:
    assert format_eth(0) == "0 ETH"
    assert format_eth(10**18) == "1 ETH"
    assert format_eth(18_714_292_801_663_755) == "0.018714 ETH"
    assert format_eth("2000000000000000") == "0.002 ETH"
    assert format_eth(1_234) == "1.2e-15 ETH"


def test_histogram_bars_scale_to_the_peak() -> None:
    text = histogram_bars(["a", "b"], [10.0, 5.0], [10, 5])
    lines = text.splitlines()
    assert lines[1].endswith("#" * 40)
    assert lines[2].endswith(" " + "#" * 20)
