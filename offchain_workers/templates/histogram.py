"""`histogram`: row counts per bin of a numeric column (template id 3)."""

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

__all__ = ["HistogramParams", "HistogramTemplate"]


@dataclass(frozen=True)
class HistogramParams:
    """JSON form: `{"column": NAME, "edges": [DECIMAL, ...]}` with strictly increasing edges.

    Bin i is `[edges[i], edges[i+1])`, and the last bin also includes its right edge, as in
    numpy.histogram. Rows outside the edges are not usable and do not count towards
    `contributionBound`.
    """

    axis: Axis


class HistogramTemplate(Template[HistogramParams]):
    """Output: one count per bin."""

    name = "histogram"
    template_id = 3
    postprocess_names = ("histogram",)

    def parse_params(self, raw: Any, field: str = "params") -> HistogramParams:
        read_object(raw, field, required=("column", "edges"))
        return HistogramParams(Axis.parse(raw, field))

    def params_to_json(self, params: HistogramParams) -> dict[str, Any]:
        return params.axis.to_json()

    def output_names(self, params: HistogramParams) -> tuple[str, ...]:
        return tuple(f"{params.axis.column}{label}" for label in params.axis.labels)

    def column_uses(self, params: HistogramParams) -> tuple[ColumnUse, ...]:
        return (params.axis.column_use(),)

    def usable_rows(self, params: HistogramParams, rows: pd.DataFrame) -> NDArray[np.bool_]:
        return params.axis.index(rows) >= 0

    def map_rows(self, params: HistogramParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        bins = params.axis.index(rows)
        return np.bincount(bins, minlength=len(params.axis.labels)).astype(np.float64)

    def row_l1_bound(self, params: HistogramParams) -> Fraction | None:
        return Fraction(1)

    def postprocess(self, params: HistogramParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        counts = [float(value) for value in values]
        # DP noise can push a count below zero; the proportions treat such a bin as empty.
        clamped = np.maximum(values, 0.0)
        total = float(clamped.sum())
        normalized = [float(value) / total for value in clamped] if total > 0 else [0.0] * len(counts)
        return {
            "edges": list(params.axis.edges or ()),
            "bins": list(params.axis.labels),
            "counts": counts,
            "normalized": normalized,
        }
