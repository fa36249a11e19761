"""`mean`: the sum and the count of a numeric column, divided after the reduce (template id 2)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._params import read_object, read_string
from .base import ColumnUse, Template

__all__ = ["MeanParams", "MeanTemplate"]


@dataclass(frozen=True)
class MeanParams:
    """JSON form: `{"column": NAME}`."""

    column: str


class MeanTemplate(Template[MeanParams]):
    """Output `[sum(column), count]`; post-processing returns `sum / count`.

    The clip of each coordinate bounds the sensitivity, so the sum's clip should be the column's
    per-row range times `contributionBound`, and the count's clip `[0, contributionBound]`.
    """

    name = "mean"
    template_id = 2
    postprocess_names = ("mean",)

    def parse_params(self, raw: Any, field: str = "params") -> MeanParams:
        obj = read_object(raw, field, required=("column",))
        return MeanParams(read_string(obj["column"], f"{field}.column"))

    def params_to_json(self, params: MeanParams) -> dict[str, Any]:
        return {"column": params.column}

    def output_names(self, params: MeanParams) -> tuple[str, ...]:
        return (f"sum({params.column})", "count")

    def column_uses(self, params: MeanParams) -> tuple[ColumnUse, ...]:
        return (ColumnUse("params.column", params.column, ("number",)),)

    def map_rows(self, params: MeanParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        values = rows[params.column].to_numpy(dtype=np.float64)
        return np.array([values.sum(), len(values)], dtype=np.float64)

    def row_l1_bound(self, params: MeanParams) -> Fraction | None:
        return None

    def postprocess(self, params: MeanParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        total, count = float(values[0]), float(values[1])
        # With DP noise the count can reach zero or below, and then no mean exists.
        mean = total / count if count > 0 else None
        return {"sum": total, "count": count, "mean": mean}
