"""`crosstab`: row counts per cell of a two-way table (template id 4)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._axes import Axis
from ._params import read_object
from .base import ColumnUse, Template

__all__ = ["CrosstabParams", "CrosstabTemplate"]


@dataclass(frozen=True)
class CrosstabParams:
    """JSON form: `{"rows": AXIS, "columns": AXIS}`.

    Each axis is `{"column": NAME, "categories": [TEXT, ...]}` for a text or integer column, or
    `{"column": NAME, "edges": [DECIMAL, ...]}` to bin a numeric column. A row that falls outside
    either axis is not usable and does not count towards `contributionBound`.
    """

    rows: Axis
    columns: Axis


class CrosstabTemplate(Template[CrosstabParams]):
    """Output: the R x C table of counts, row-major (row label first)."""

    name = "crosstab"
    template_id = 4
    postprocess_names = ("table",)

    def parse_params(self, raw: Any, field: str = "params") -> CrosstabParams:
        obj = read_object(raw, field, required=("rows", "columns"))
        return CrosstabParams(Axis.parse(obj["rows"], f"{field}.rows"), Axis.parse(obj["columns"], f"{field}.columns"))

    def params_to_json(self, params: CrosstabParams) -> dict[str, Any]:
        return {"rows": params.rows.to_json(), "columns": params.columns.to_json()}

    def output_names(self, params: CrosstabParams) -> tuple[str, ...]:
        return tuple(
            f"{params.rows.column}={row};{params.columns.column}={column}"
            for row in params.rows.labels
            for column in params.columns.labels
        )

    def column_uses(self, params: CrosstabParams) -> tuple[ColumnUse, ...]:
        return (params.rows.column_use(), params.columns.column_use())

    def usable_rows(self, params: CrosstabParams, rows: pd.DataFrame) -> NDArray[np.bool_]:
        return (params.rows.index(rows) >= 0) & (params.columns.index(rows) >= 0)

    def map_rows(self, params: CrosstabParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        width = len(params.columns.labels)
        cells = params.rows.index(rows) * width + params.columns.index(rows)
        return np.bincount(cells, minlength=len(params.rows.labels) * width).astype(np.float64)

    def row_l1_bound(self, params: CrosstabParams) -> Fraction | None:
        return Fraction(1)

    def postprocess(self, params: CrosstabParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        table = values.reshape(len(params.rows.labels), len(params.columns.labels))
        return {
            "rows": list(params.rows.labels),
            "columns": list(params.columns.labels),
            "counts": [[float(value) for value in row] for row in table],
        }
