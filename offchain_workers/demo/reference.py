"""Plaintext references: what each demo query computes, done directly on the pooled raw data.

These run in the demo process only, to show the secure result beside the result a trusted party
holding every row would compute. They are written independently of the map templates (the regression
uses numpy's SVD least squares on the design matrix, not the normal equations), so agreement between
the two is a real check of the whole pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..errors import SingularMatrixError

__all__ = [
    "WAGE_TERMS",
    "RegressionFit",
    "wage_regression",
    "wage_histogram",
    "rating_crosstab",
    "majority_vote",
]

# Regressors of log(wage) ~ experience + experience^2 + education + ethnicity, named as the ols
# template names them (the dummy is 1 for African-American workers, 0 for Caucasian ones).
WAGE_TERMS = ("intercept", "experience", "experience^2", "education", "ethnicity_afam")


@dataclass(frozen=True)
class RegressionFit:
    """Least-squares coefficients with classical (homoskedastic) standard errors."""

    coefficients: dict[str, float]
    standard_errors: dict[str, float]
    n: int
    r_squared: float


def _wage_design(workers: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    experience = workers["experience"].to_numpy(dtype=np.float64)
    education = workers["education"].to_numpy(dtype=np.float64)
    african_american = (workers["ethnicity"].astype(str) == "afam").to_numpy(dtype=np.float64)
    design = np.column_stack([np.ones(len(workers)), experience, experience**2, education, african_american])
    return design, np.log(workers["wage"].to_numpy(dtype=np.float64))


def wage_regression(workers: pd.DataFrame) -> RegressionFit:
    """Fit the wage equation on `workers` (CPS1988 columns) by SVD least squares.

    Raises:
        SingularMatrixError: the design has fewer independent rows than regressors (for example a
            sample without any African-American worker).
    """
    design, response = _wage_design(workers)
    rows, columns = design.shape
    coefficients, _, rank, singular_values = np.linalg.lstsq(design, response, rcond=None)
    if rank < columns or rows <= columns:
        raise SingularMatrixError(
            f"the wage equation has {columns} regressors but the {rows} workers give rank {rank}; "
            "sample more workers (or another --seed) so that both ethnicities appear"
        )
    residuals = response - design @ coefficients
    residual_variance = float(residuals @ residuals) / (rows - columns)
    # (X'X)^-1 from the SVD X = U S V': V S^-2 V', which avoids forming X'X.
    _, _, right = np.linalg.svd(design, full_matrices=False)
    covariance = (right.T / singular_values**2) @ right * residual_variance
    centred = response - response.mean()
    return RegressionFit(
        coefficients=dict(zip(WAGE_TERMS, (float(value) for value in coefficients))),
        standard_errors=dict(zip(WAGE_TERMS, (float(value) for value in np.sqrt(np.diag(covariance))))),
        n=rows,
        r_squared=1.0 - float(residuals @ residuals) / float(centred @ centred),
    )


def wage_histogram(workers: pd.DataFrame, edges: Sequence[str]) -> list[int]:
    """Count weekly wages per bin; bins are [a, b) and the last one [a, b], as numpy.histogram does."""
    counts, _ = np.histogram(workers["wage"].to_numpy(dtype=np.float64), bins=[float(edge) for edge in edges])
    return [int(count) for count in counts]


def rating_crosstab(
    users: Iterable[pd.DataFrame],
    *,
    rating_edges: Sequence[str],
    genres: Sequence[str],
    contribution_bound: int,
) -> NDArray[np.int64]:
    """Count ratings per (rating band, genre) cell, at most `contribution_bound` ratings per user.

    Each user keeps their first `contribution_bound` ratings that fall inside the bands and the
    genres, in the order of their own table: the rows the secure query counts too, so that the two
    tables differ only by the DP noise.
    """
    edges = np.array([float(edge) for edge in rating_edges])
    table = np.zeros((len(edges) - 1, len(genres)), dtype=np.int64)
    genre_index = {genre: position for position, genre in enumerate(genres)}
    for ratings in users:
        values = ratings["rating"].to_numpy(dtype=np.float64)
        band = np.searchsorted(edges, values, side="right") - 1
        band[values == edges[-1]] = len(edges) - 2
        column = ratings["genre"].map(genre_index).to_numpy(dtype=np.float64, na_value=np.nan)
        usable = (band >= 0) & (band < len(edges) - 1) & ~np.isnan(column)
        kept = np.flatnonzero(usable)[:contribution_bound]
        np.add.at(table, (band[kept], column[kept].astype(np.int64)), 1)
    return table


def majority_vote(predictions: NDArray[np.int64], classes: int) -> NDArray[np.int64]:
    """Return each question's most predicted class; `predictions` is models x questions.

    A tie goes to the lowest class number, as in the vote template's post-processing.
    """
    votes = np.zeros((predictions.shape[1], classes), dtype=np.int64)
    for row in predictions:
        votes[np.arange(len(row)), row] += 1
    return np.argmax(votes, axis=1)
