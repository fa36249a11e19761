"""`sum`: the sum of a numeric column over the rows that pass the filter (template id 1)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._params import read_object, read_string
from .base import ColumnUse, Template

__all__ = ["SumParams", "SumTemplate"]


@dataclass(frozen=True)
class SumParams:
    """JSON form: `{"column": NAME}`."""

    column: str


class SumTemplate(Template[SumParams]):
    """Output `[sum(column)]` over the owner's first `contributionBound` rows with a value."""

    name = "sum"
    template_id = 1
    postprocess_names = ("sum",)

    def parse_params(self, raw: Any, field: str = "params") -> SumParams:
        obj = read_object(raw, field, required=("column",))
        return SumParams(read_string(obj["column"], f"{field}.column"))

    def params_to_json(self, params: SumParams) -> dict[str, Any]:
        return {"column": params.column}

    def output_names(self, params: SumParams) -> tuple[str, ...]:
        return (f"sum({params.column})",)

    def column_uses(self, params: SumParams) -> tuple[ColumnUse, ...]:
        return (ColumnUse("params.column", params.column, ("number",)),)

    def map_rows(self, params: SumParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        values = rows[params.column].to_numpy(dtype=np.float64)
        return np.array([values.sum()], dtype=np.float64)

    def row_l1_bound(self, params: SumParams) -> Fraction | None:
        return None

    def postprocess(self, params: SumParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        return {"sum": float(values[0])}
