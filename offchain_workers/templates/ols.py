"""`ols`: sufficient statistics of a linear regression, solved after the reduce (template id 5).

An owner's output is X'X (upper triangle, row-major), X'y, y'y and n over its rows. Summed over
owners these are the statistics of the pooled regression, so the analyst gets the same
coefficients as a regression on all the owners' rows, up to fixed-point rounding and DP noise.

A numeric term may be standardized, `((transform(column) - center) / scale) ** power`. With every
term and the response mapped into [-1, 1], each of the statistics is bounded by 1 per row, so the
L1 sensitivity is the number of coordinates and the DP noise is as small, relative to the
statistics, as the mechanism allows. The fitted model is the same model in other units: the
post-processing converts the coefficients and their covariance back to the unstandardized terms.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..decimal_strings import parse_decimal
from ..errors import SpecError, TemplateError
from ._axes import category_index
from ._ols_solve import LeastSquaresFit, solve_normal_equations
from ._params import read_bool, read_choice, read_int, read_list, read_object, read_string
from .base import ColumnUse, Template

__all__ = ["OlsParams", "NumericTerm", "DummyTerm", "OlsTemplate", "TRANSFORMS", "power_interval"]

MAX_TERMS = 64
MAX_POWER = 4

# Bounds on a term's `center` and `scale`. Within them every weight of the unstandardizing map is at
# most 6 * (10^12)^4 / (10^-12)^4, about 10^97, far inside the range of a float.
MIN_SCALE_TEXT = "0.000000000001"
MAX_SCALE_TEXT = "1000000000000"
MIN_SCALE = Fraction(1, 10**12)
MAX_SCALE = Fraction(10**12)

# Transforms a term or the response may apply to a column before raising it to `power`.
TRANSFORMS = {
    "identity": lambda values: values,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
}


@dataclass(frozen=True)
class NumericTerm:
    """`((transform(column) - center) / scale) ** power`.

    JSON form: `{"column": NAME, "power": 1..4, "transform": NAME}`, with the optional decimal strings
    `"center"` (default 0) and `"scale"` (default 1, positive). `center` and `scale` hold the
    canonical strings, or None when the JSON leaves the field out.
    """

    column: str
    power: int
    transform: str
    center: str | None = None
    scale: str | None = None

    @property
    def standardized(self) -> bool:
        return self.center is not None or self.scale is not None

    # Cached because every owner's map reads them. `cached_property` stores the value in the
    # instance's __dict__ directly, which a frozen dataclass allows.
    @functools.cached_property
    def center_value(self) -> Fraction:
        return Fraction(0) if self.center is None else parse_decimal(self.center, "center")

    @functools.cached_property
    def scale_value(self) -> Fraction:
        return Fraction(1) if self.scale is None else parse_decimal(self.scale, "scale")

    @functools.cached_property
    def _shift(self) -> tuple[float, float]:
        return float(self.center_value), float(self.scale_value)

    @property
    def raw(self) -> NumericTerm:
        """The same term without `center` and `scale`."""
        return NumericTerm(self.column, self.power, self.transform)

    @property
    def name(self) -> str:
        base = self.column if self.transform == "identity" else f"{self.transform}({self.column})"
        if self.standardized:
            center = self.center_value
            if center > 0:
                base = f"{base}-{self.center}"
            elif center < 0:
                base = f"{base}+{self.center[1:]}"
            base = f"({base})" if self.scale is None else f"({base})/{self.scale}"
            if self.power > 1:
                base = f"({base})"
        return base if self.power == 1 else f"{base}^{self.power}"

    def values(self, rows: pd.DataFrame) -> NDArray[np.float64]:
        column = rows[self.column].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            base = TRANSFORMS[self.transform](column)
        if self.standardized:
            center, scale = self._shift
            base = (base - center) / scale
        return base**self.power


@dataclass(frozen=True)
class DummyTerm:
    """1 where `column` equals `level`, else 0. JSON form: `{"column": NAME, "level": TEXT}`."""

    column: str
    level: str

    @property
    def name(self) -> str:
        return f"{self.column}_{self.level}"

    @property
    def raw(self) -> DummyTerm:
        return self

    @property
    def standardized(self) -> bool:
        return False

    def values(self, rows: pd.DataFrame) -> NDArray[np.float64]:
        return (category_index(rows[self.column], (self.level,)) == 0).astype(np.float64)


Term = NumericTerm | DummyTerm


@dataclass(frozen=True)
class OlsParams:
    """JSON form: `{"intercept": BOOL, "response": NUMERIC_TERM, "terms": [TERM, ...]}`.

    For the wage equation log(wage) ~ experience + experience^2 + education + ethnicity:
    response `{"column": "wage", "power": 1, "transform": "log"}`, and terms for experience (power
    1 and 2), education, and the dummy `{"column": "ethnicity", "level": "afam"}`.

    `regressor_names` name the terms as the owners compute them, standardized where the spec says
    so; `raw_regressor_names` name the unstandardized terms whose coefficients the analyst gets.
    """

    intercept: bool
    response: NumericTerm
    terms: tuple[Term, ...]

    @property
    def regressor_names(self) -> tuple[str, ...]:
        names = tuple(term.name for term in self.terms)
        return ("intercept", *names) if self.intercept else names

    @property
    def raw_regressor_names(self) -> tuple[str, ...]:
        names = tuple(term.raw.name for term in self.terms)
        return ("intercept", *names) if self.intercept else names

    @property
    def standardized(self) -> bool:
        return self.response.standardized or any(term.standardized for term in self.terms)

    def unstandardizing_map(self) -> tuple[NDArray[np.float64], float, float]:
        """Return `(T, s, c)` such that the unstandardized coefficients are `s * T.T @ b + c * e0`.

        Row i of T writes standardized regressor i as a combination of the unstandardized regressors
        (a binomial expansion for a centred power). The standardized response is `(y - c) / s`, so
        `y = s * y_std + c`, and `c` lands on the intercept `e0`. `parse_params` has checked that
        every expansion only uses regressors the model has.
        """
        raw_index = {name: index for index, name in enumerate(self.raw_regressor_names)}
        size = len(raw_index)
        transform = np.zeros((size, size), dtype=np.float64)
        offset = 1 if self.intercept else 0
        if self.intercept:
            transform[0, 0] = 1.0
        for row, term in enumerate(self.terms, start=offset):
            for column, weight in _expansion(term):
                transform[row, raw_index[column]] += weight
        response = self.response
        scale = float(response.scale_value) ** response.power
        return transform, scale, float(response.center_value)


def power_interval(low: Fraction, high: Fraction, power: int) -> tuple[Fraction, Fraction]:
    """Return the range of `x ** power` for x in [low, high]; an even power of a range around 0 starts at 0."""
    ends = (low**power, high**power)
    if power % 2 == 0 and low < 0 < high:
        return Fraction(0), max(ends)
    return min(ends), max(ends)


def _expansion(term: Term) -> list[tuple[str, float]]:
    """Write a term as `[(unstandardized regressor name, weight), ...]`; "intercept" stands for 1."""
    if not isinstance(term, NumericTerm) or not term.standardized:
        return [(term.raw.name, 1.0)]
    center, scale = term.center_value, term.scale_value
    parts = []
    for power in range(term.power + 1):
        weight = Fraction(math.comb(term.power, power)) * (-center) ** (term.power - power) / scale**term.power
        if weight == 0:
            continue
        name = "intercept" if power == 0 else NumericTerm(term.column, power, term.transform).name
        parts.append((name, float(weight)))
    return parts


def _parse_term(raw: Any, field: str) -> Term:
    if isinstance(raw, dict) and "level" in raw:
        obj = read_object(raw, field, required=("column", "level"))
        return DummyTerm(read_string(obj["column"], f"{field}.column"), read_string(obj["level"], f"{field}.level"))
    return _parse_numeric_term(raw, field)


def _parse_numeric_term(raw: Any, field: str) -> NumericTerm:
    obj = read_object(raw, field, required=("column", "power", "transform"), optional=("center", "scale"))
    center = obj.get("center")
    scale = obj.get("scale")
    if center is not None:
        parse_decimal(center, f"{field}.center")
    if scale is not None:
        value = parse_decimal(scale, f"{field}.scale")
        if not MIN_SCALE <= value <= MAX_SCALE:
            raise SpecError(f"{field}.scale", scale, f"must be between {MIN_SCALE_TEXT} and {MAX_SCALE_TEXT}")
    if center is not None and abs(parse_decimal(center, f"{field}.center")) > MAX_SCALE:
        raise SpecError(f"{field}.center", center, f"must be between -{MAX_SCALE_TEXT} and {MAX_SCALE_TEXT}")
    return NumericTerm(
        read_string(obj["column"], f"{field}.column"),
        read_int(obj["power"], f"{field}.power", 1, MAX_POWER),
        read_choice(obj["transform"], f"{field}.transform", TRANSFORMS),
        center,
        scale,
    )


def _term_to_json(term: Term) -> dict[str, Any]:
    if isinstance(term, DummyTerm):
        return {"column": term.column, "level": term.level}
    obj: dict[str, Any] = {"column": term.column, "power": term.power, "transform": term.transform}
    if term.center is not None:
        obj["center"] = term.center
    if term.scale is not None:
        obj["scale"] = term.scale
    return obj


def _check_standardization(params: OlsParams, field: str) -> None:
    """Check that the standardized model is the unstandardized model in other units.

    A centred term expands into lower powers of the same column and a constant, so those must be
    regressors too. A centred response needs an intercept to absorb the centre, and power 1 so that
    it stays an affine function of the unstandardized response.
    """
    raw_names = params.raw_regressor_names
    seen: set[str] = set()
    for index, name in enumerate(raw_names):
        if name in seen:
            term_index = index - 1 if params.intercept else index
            raise SpecError(f"{field}.terms[{term_index}]", name, "duplicate regressor; list each term once")
        seen.add(name)
    for index, term in enumerate(params.terms):
        for needed, _ in _expansion(term):
            if needed not in seen:
                missing = "an intercept" if needed == "intercept" else f"the term {needed}"
                raise SpecError(
                    f"{field}.terms[{index}].center", term.center if isinstance(term, NumericTerm) else None,
                    f"a centred {term.name} expands into {missing}, which the model lacks; add it or drop the center",
                )
    response = params.response
    if response.center_value != 0:
        if not params.intercept:
            raise SpecError(f"{field}.response.center", response.center, "a centred response needs intercept true")
        if response.power != 1:
            raise SpecError(f"{field}.response.center", response.center, "a centred response must have power 1")


class OlsTemplate(Template[OlsParams]):
    """Output: X'X upper triangle (row-major), X'y, y'y and n, for p regressors: p(p+1)/2 + p + 2 values."""

    name = "ols"
    template_id = 5
    postprocess_names = ("ols",)

    def parse_params(self, raw: Any, field: str = "params") -> OlsParams:
        obj = read_object(raw, field, required=("intercept", "response", "terms"))
        intercept = read_bool(obj["intercept"], f"{field}.intercept")
        response = _parse_numeric_term(obj["response"], f"{field}.response")
        items = read_list(obj["terms"], f"{field}.terms", min_length=0 if intercept else 1, max_length=MAX_TERMS)
        terms = tuple(_parse_term(item, f"{field}.terms[{index}]") for index, item in enumerate(items))
        params = OlsParams(intercept, response, terms)
        _check_standardization(params, field)
        return params

    def params_to_json(self, params: OlsParams) -> dict[str, Any]:
        return {
            "intercept": params.intercept,
            "response": _term_to_json(params.response),
            "terms": [_term_to_json(term) for term in params.terms],
        }

    def output_names(self, params: OlsParams) -> tuple[str, ...]:
        regressors = params.regressor_names
        y = params.response.name
        names = [
            f"XtX[{regressors[i]},{regressors[j]}]" for i in range(len(regressors)) for j in range(i, len(regressors))
        ]
        names += [f"Xty[{regressor},{y}]" for regressor in regressors]
        names += [f"yty[{y}]", "n"]
        return tuple(names)

    def column_uses(self, params: OlsParams) -> tuple[ColumnUse, ...]:
        uses = [ColumnUse("params.response.column", params.response.column, ("number",))]
        for index, term in enumerate(params.terms):
            field = f"params.terms[{index}].column"
            if isinstance(term, DummyTerm):
                uses.append(ColumnUse(field, term.column, ("string", "number"), (term.level,)))
            else:
                uses.append(ColumnUse(field, term.column, ("number",)))
        return tuple(uses)

    def usable_rows(self, params: OlsParams, rows: pd.DataFrame) -> NDArray[np.bool_]:
        usable = super().usable_rows(params, rows)
        # A transform outside its domain (log of 0 or a negative wage) leaves a non-finite value,
        # and such a row cannot enter the regression.
        usable &= np.isfinite(params.response.values(rows))
        for term in params.terms:
            usable &= np.isfinite(term.values(rows))
        return usable

    def _design(self, params: OlsParams, rows: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        columns = [term.values(rows) for term in params.terms]
        if params.intercept:
            columns.insert(0, np.ones(len(rows), dtype=np.float64))
        design = np.column_stack(columns) if columns else np.empty((len(rows), 0))
        return design, params.response.values(rows)

    def map_rows(self, params: OlsParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        design, response = self._design(params, rows)
        xtx = design.T @ design
        upper = xtx[np.triu_indices(design.shape[1])]
        xty = design.T @ response
        return np.concatenate([upper, xty, [response @ response, float(len(rows))]]).astype(np.float64)

    def row_l1_bound(self, params: OlsParams) -> Fraction | None:
        return None

    def postprocess(self, params: OlsParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        xtx, xty, yty, n = _statistics(params, values)
        return _report(params, _solve(params, xtx, xty, yty, n), n)

    def postprocess_noisy(
        self, params: OlsParams, name: str, values: NDArray[np.float64], noise_sd: float
    ) -> dict[str, Any]:
        """Solve noisy statistics, first raising X'X's eigenvalues to a floor set by the noise.

        Noise of standard deviation `noise_sd` on each entry of a p x p X'X moves its eigenvalues by
        up to about `2 * noise_sd * sqrt(p)`, so a smaller eigenvalue carries no information and can
        even be negative. Raising it to that floor (a ridge along the directions the noise
        swamps) always leaves a positive definite matrix, and when every eigenvalue is above the
        floor the statistics are used unchanged. Post-processing spends no privacy.

        Besides the usual fields the result has `noise_standard_errors`, how far the noise moves
        each coefficient, `raised_eigenvalues`, and a `warning` when the ridge was needed.
        """
        report, raised = _solve_noisy(params, values, noise_sd)
        if report["r_squared"] is not None and not 0.0 <= report["r_squared"] <= 1.0:
            # Noise on y'y can push R-squared out of [0, 1], where it means nothing.
            report["r_squared"] = None
        if not report["residual_variance"]:
            # Noise on y'y can leave no residual at all, and standard errors of 0 would claim a perfect fit.
            report["standard_errors"] = None
            report["residual_variance"] = None
        report["noise_standard_errors"] = _noise_spread(params, values, noise_sd)
        report["raised_eigenvalues"] = raised
        if raised:
            report["warning"] = (
                f"the DP noise swamped {raised} of the {len(report['regressors'])} directions of X'X, so they were "
                "damped (a ridge): the coefficients are biased, in unstandardized units not necessarily toward "
                "zero, by more than the standard errors and noise estimates show. Use more owners or a larger "
                "epsilon for a usable fit"
            )
        return report


# Re-noised solves behind `noise_standard_errors`.
NOISE_DRAWS = 400


def _solve_noisy(params: OlsParams, values: NDArray[np.float64], noise_sd: float) -> tuple[dict[str, Any], int]:
    xtx, xty, yty, n = _statistics(params, values)
    floor = 2.0 * noise_sd * math.sqrt(len(xty))
    eigenvalues, vectors = np.linalg.eigh(xtx)
    raised = int((eigenvalues < floor).sum())
    if raised:
        xtx = (vectors * np.maximum(eigenvalues, floor)) @ vectors.T
    return _report(params, _solve(params, xtx, xty, yty, n), n), raised


def _noise_spread(params: OlsParams, values: NDArray[np.float64], noise_sd: float) -> dict[str, float] | None:
    """Estimate each coefficient's standard deviation under the DP noise by solving re-noised statistics.

    The draws are Gaussian with the noise's standard deviation: a sum of K Laplace noises is close
    to it, and the spread of a coefficient depends mainly on the noise's variance. The draws only
    simulate public noise, so they need no CSPRNG. They are seeded from the published values, so
    the same result always gives the same estimate.
    """
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).digest()[:8], "little")
    generator = np.random.default_rng(seed)
    draws = []
    for _ in range(NOISE_DRAWS):
        noisy = values + generator.normal(0.0, noise_sd, size=len(values))
        try:
            report, _ = _solve_noisy(params, noisy, noise_sd)
        except TemplateError:
            continue
        draws.append([report["coefficients"][name] for name in report["regressors"]])
    if len(draws) < 2:
        return None
    spread = np.std(np.array(draws), axis=0, ddof=1)
    return dict(zip(params.raw_regressor_names, (float(value) for value in spread)))


def _statistics(params: OlsParams, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float]:
    p = len(params.regressor_names)
    triangle = p * (p + 1) // 2
    xtx = np.zeros((p, p), dtype=np.float64)
    xtx[np.triu_indices(p)] = values[:triangle]
    xtx = xtx + np.triu(xtx, 1).T
    xty = np.asarray(values[triangle : triangle + p], dtype=np.float64)
    return xtx, xty, float(values[triangle + p]), float(values[triangle + p + 1])


def _solve(
    params: OlsParams, xtx: NDArray[np.float64], xty: NDArray[np.float64], yty: float, n: float
) -> LeastSquaresFit:
    return solve_normal_equations(xtx, xty, yty, n, params.regressor_names, 0 if params.intercept else None)


def _report(params: OlsParams, fit: LeastSquaresFit, n: float) -> dict[str, Any]:
    """Return the analyst's result in unstandardized units."""
    coefficients = fit.coefficients
    covariance = fit.covariance
    residual_variance = fit.residual_variance
    if params.standardized:
        transform, scale, center = params.unstandardizing_map()
        coefficients = scale * (transform.T @ coefficients)
        if params.intercept:
            coefficients[0] += center
        if covariance is not None:
            covariance = scale**2 * (transform.T @ covariance @ transform)
        if residual_variance is not None:
            residual_variance *= scale**2
    regressors = params.raw_regressor_names
    errors = None
    if covariance is not None:
        errors = dict(zip(regressors, (float(value) for value in np.sqrt(np.maximum(np.diag(covariance), 0.0)))))
    return {
        "response": params.response.raw.name,
        "regressors": list(regressors),
        "coefficients": dict(zip(regressors, (float(value) for value in coefficients))),
        "standard_errors": errors,
        "r_squared": fit.r_squared,
        "residual_variance": residual_variance,
        "degrees_of_freedom": fit.degrees_of_freedom,
        "n": n,
    }
