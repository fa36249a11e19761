"""`pmsr demo audit` on the first 12 MovieLens users, with DP at epsilon 1 (the default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from offchain_workers.datasets import MOVIELENS_GENRES, RATING_EDGES, movielens_owner_tables
from offchain_workers.demo.report import audit_report

from .conftest import DemoRun, run_demo

USERS = 12
BOUND = 50


@pytest.fixture(scope="module")
def audit_run() -> DemoRun:
    return run_demo("audit", "--users", USERS, "--json")


@pytest.fixture(scope="module")
def report(audit_run: DemoRun) -> Any:
    assert audit_run.status == 0, audit_run.stderr[-3000:]
    return audit_run.report()


def expected_crosstab() -> np.ndarray:
    """Count each user's first 50 ratings inside the bands and genres, in a plain loop over rows."""
    edges = [float(edge) for edge in RATING_EDGES]
    table = np.zeros((len(edges) - 1, len(MOVIELENS_GENRES)), dtype=int)
    for ratings in movielens_owner_tables(USERS).values():
        counted = 0
        for rating, genre in zip(ratings["rating"], ratings["genre"]):
            if counted == BOUND:
                break
            if genre not in MOVIELENS_GENRES or not edges[0] <= rating <= edges[-1]:
                continue
            band = next(index for index in range(len(edges) - 1) if rating < edges[index + 1] or index == len(edges) - 2)
            table[band, MOVIELENS_GENRES.index(genre)] += 1
            counted += 1
    return table


def test_plaintext_crosstab_counts_bounded_rows(report: Any) -> None:
    crosstab = report["crosstab"]
    assert crosstab["included_owners"] == USERS
    assert crosstab["contribution_bound"] == BOUND
    assert crosstab["plaintext_counts"] == expected_crosstab().tolist()


def test_secure_crosstab_is_noisy_within_bounds(report: Any) -> None:
    crosstab = report["crosstab"]
    assert crosstab["exact"] is False
    secure = np.array(crosstab["counts"])
    assert secure.shape == (len(RATING_EDGES) - 1, len(MOVIELENS_GENRES))
    # Discrete Laplace noise takes integer values, and each cell's scale is 50 ratings / epsilon 1.
    assert np.all(secure == np.round(secure))
    assert crosstab["noise_scale_per_aggregator"] == pytest.approx(BOUND / 1.0)
    # A sum of three draws of scale 50 exceeds 6,000 in magnitude only if one draw exceeds 2,000,
    # which happens with probability 3 x e^-40 (about 1e-17) per cell.
    assert np.max(np.abs(secure - np.array(crosstab["plaintext_counts"]))) < 6_000
    assert crosstab["max_abs_difference"] == pytest.approx(np.max(np.abs(secure - np.array(crosstab["plaintext_counts"]))))


def test_users_and_aggregators_are_paid(report: Any) -> None:
    assert report["owners"] == USERS
    assert report["payments"]["owners"]["paid"] == USERS
    assert report["payments"]["aggregators"]["paid"] == 3
    assert report["gas"]["by_role"]["owners"]["by_call"]["submitShares"]["transactions"] == USERS


def test_text_report_shows_both_tables(report: Any) -> None:
    text = audit_report(report)
    assert "Ratings by genre and rating band" in text
    assert "epsilon 1" in text
    for genre in MOVIELENS_GENRES:
        assert genre in text
