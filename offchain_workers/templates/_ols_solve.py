"""Least squares from the sufficient statistics X'X, X'y, y'y and n."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import SingularMatrixError

# X'X whose Jacobi-scaled form has a smaller eigenvalue ratio than this is treated as singular.
# After scaling, float64 keeps about 16 digits, so at this ratio fewer than 4 remain.
_MIN_EIGENVALUE_RATIO = 1e-12


@dataclass(frozen=True)
class LeastSquaresFit:
    """Coefficients, standard errors and fit statistics of a linear regression."""

    coefficients: NDArray[np.float64]
    standard_errors: NDArray[np.float64] | None
    # Estimated covariance of the coefficients, residual variance times (X'X)^-1; None when n <= p.
    covariance: NDArray[np.float64] | None
    residual_sum_of_squares: float
    residual_variance: float | None
    degrees_of_freedom: float
    r_squared: float | None


def solve_normal_equations(
    xtx: NDArray[np.float64],
    xty: NDArray[np.float64],
    yty: float,
    n: float,
    regressor_names: tuple[str, ...],
    intercept_index: int | None,
) -> LeastSquaresFit:
    """Solve X'X b = X'y and derive standard errors and R-squared.

    X'X is scaled to unit diagonal before solving (Jacobi scaling), which keeps the solve accurate
    when regressors differ in magnitude, such as experience and experience^2. R-squared is centred
    when the model has an intercept and uncentred otherwise. Standard errors need n > p.

    Raises:
        SingularMatrixError: X'X is singular or not positive definite. This happens with collinear
            regressors, too few rows, or DP noise larger than the statistics.
    """
    p = len(regressor_names)
    diagonal = np.diag(xtx).copy()
    if not np.all(np.isfinite(xtx)) or not np.all(np.isfinite(xty)):
        raise SingularMatrixError("X'X or X'y contains a non-finite value, so the reduced vector is invalid; check the decoding")
    nonpositive = [regressor_names[i] for i in range(p) if diagonal[i] <= 0]
    if nonpositive:
        raise SingularMatrixError(
            f"X'X is singular: regressors {nonpositive} are zero in every row (or noise made their sum of squares <= 0); "
            "drop them or check the filter"
        )
    scale = np.sqrt(diagonal)
    scaled = xtx / np.outer(scale, scale)
    eigenvalues = np.linalg.eigvalsh(scaled)
    if eigenvalues[0] <= _MIN_EIGENVALUE_RATIO * eigenvalues[-1]:
        weakest = np.linalg.eigh(scaled)[1][:, 0]
        involved = [regressor_names[i] for i in np.argsort(-np.abs(weakest))[:3] if abs(weakest[i]) > 0.1]
        raise SingularMatrixError(
            f"X'X is singular or not positive definite (eigenvalue ratio {eigenvalues[0] / eigenvalues[-1]:.3g}); "
            f"regressors {involved} are collinear, or there are too few rows for {p} regressors"
        )

    inverse_scaled = np.linalg.inv(scaled)
    coefficients = np.linalg.solve(scaled, xty / scale) / scale
    residual_sum_of_squares = float(yty - coefficients @ xty)
    degrees_of_freedom = float(n - p)

    standard_errors: NDArray[np.float64] | None = None
    covariance: NDArray[np.float64] | None = None
    residual_variance: float | None = None
    if degrees_of_freedom > 0:
        residual_variance = max(residual_sum_of_squares, 0.0) / degrees_of_freedom
        covariance = inverse_scaled / np.outer(scale, scale) * residual_variance
        standard_errors = np.sqrt(np.diag(covariance))

    r_squared: float | None = None
    if intercept_index is not None and n > 0:
        total = float(yty - xty[intercept_index] ** 2 / n)
    else:
        total = float(yty)
    if total > 0 and math.isfinite(total):
        r_squared = 1.0 - residual_sum_of_squares / total

    return LeastSquaresFit(
        coefficients=coefficients,
        standard_errors=standard_errors,
        covariance=covariance,
        residual_sum_of_squares=residual_sum_of_squares,
        residual_variance=residual_variance,
        degrees_of_freedom=degrees_of_freedom,
        r_squared=r_squared,
    )
