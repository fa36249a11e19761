"""`ols`: sufficient statistics of a linear regression, solved after the reduce (template id 5).

An owner's output is X'X (upper triangle, row-major), X'y, y'y and n over its rows. Summed over
owners these are the statistics of the pooled regression, so the analyst gets the same
coefficients as a regression on all the owners' rows, up to fixed-point rounding and DP noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..errors import SpecError
from ._axes import category_index
from ._ols_solve import solve_normal_equations
from ._params import read_bool, read_choice, read_int, read_list, read_object, read_string
from .base import ColumnUse, Template

__all__ = ["OlsParams", "NumericTerm", "DummyTerm", "OlsTemplate", "TRANSFORMS"]

MAX_TERMS = 64
MAX_POWER = 4

# Transforms a term or the response may apply to a column before raising it to `power`.
TRANSFORMS = {
    "identity": lambda values: values,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
}


@dataclass(frozen=True)
class NumericTerm:
    """`transform(column) ** power`. JSON form: `{"column": NAME, "power": 1..4, "transform": NAME}`."""

    column: str
    power: int
    transform: str

    @property
    def name(self) -> str:
        base = self.column if self.transform == "identity" else f"{self.transform}({self.column})"
        return base if self.power == 1 else f"{base}^{self.power}"

    def values(self, rows: pd.DataFrame) -> NDArray[np.float64]:
        column = rows[self.column].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return TRANSFORMS[self.transform](column) ** self.power


@dataclass(frozen=True)
class DummyTerm:
    """1 where `column` equals `level`, else 0. JSON form: `{"column": NAME, "level": TEXT}`."""

    column: str
    level: str

    @property
    def name(self) -> str:
        return f"{self.column}_{self.level}"

    def values(self, rows: pd.DataFrame) -> NDArray[np.float64]:
        return (category_index(rows[self.column], (self.level,)) == 0).astype(np.float64)


Term = NumericTerm | DummyTerm


@dataclass(frozen=True)
class OlsParams:
    """JSON form: `{"intercept": BOOL, "response": NUMERIC_TERM, "terms": [TERM, ...]}`.

    For the wage equation log(wage) ~ experience + experience^2 + education + ethnicity:
    response `{"column": "wage", "power": 1, "transform": "log"}`, and terms for experience (power
    1 and 2), education, and the dummy `{"column": "ethnicity", "level": "afam"}`.
    """

    intercept: bool
    response: NumericTerm
    terms: tuple[Term, ...]

    @property
    def regressor_names(self) -> tuple[str, ...]:
        names = tuple(term.name for term in self.terms)
        return ("intercept", *names) if self.intercept else names


def _parse_term(raw: Any, field: str) -> Term:
    if isinstance(raw, dict) and "level" in raw:
        obj = read_object(raw, field, required=("column", "level"))
        return DummyTerm(read_string(obj["column"], f"{field}.column"), read_string(obj["level"], f"{field}.level"))
    return _parse_numeric_term(raw, field)


def _parse_numeric_term(raw: Any, field: str) -> NumericTerm:
    obj = read_object(raw, field, required=("column", "power", "transform"))
    return NumericTerm(
        read_string(obj["column"], f"{field}.column"),
        read_int(obj["power"], f"{field}.power", 1, MAX_POWER),
        read_choice(obj["transform"], f"{field}.transform", TRANSFORMS),
    )


def _term_to_json(term: Term) -> dict[str, Any]:
    if isinstance(term, DummyTerm):
        return {"column": term.column, "level": term.level}
    return {"column": term.column, "power": term.power, "transform": term.transform}


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

        seen: set[str] = set()
        for index, name in enumerate(params.regressor_names):
            if name in seen:
                term_index = index - 1 if intercept else index
                raise SpecError(f"{field}.terms[{term_index}]", name, "duplicate regressor; list each term once")
            seen.add(name)
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
        regressors = params.regressor_names
        p = len(regressors)
        triangle = p * (p + 1) // 2
        xtx = np.zeros((p, p), dtype=np.float64)
        xtx[np.triu_indices(p)] = values[:triangle]
        xtx = xtx + np.triu(xtx, 1).T
        xty = values[triangle : triangle + p]
        yty, n = float(values[triangle + p]), float(values[triangle + p + 1])

        fit = solve_normal_equations(xtx, xty, yty, n, regressors, 0 if params.intercept else None)
        errors = fit.standard_errors
        return {
            "response": params.response.name,
            "regressors": list(regressors),
            "coefficients": dict(zip(regressors, (float(value) for value in fit.coefficients))),
            "standard_errors": (
                dict(zip(regressors, (float(value) for value in errors))) if errors is not None else None
            ),
            "r_squared": fit.r_squared,
            "residual_variance": fit.residual_variance,
            "degrees_of_freedom": fit.degrees_of_freedom,
            "n": n,
        }
