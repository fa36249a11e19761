"""`count`: the number of rows that pass the filter (template id 0)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._params import read_object
from .base import ColumnUse, Template

__all__ = ["CountParams", "CountTemplate"]


@dataclass(frozen=True)
class CountParams:
    """`count` takes no parameters; its JSON form is `{}`."""


class CountTemplate(Template[CountParams]):
    """Output `[count]`: the owner's rows that pass the filter, at most `contributionBound`."""

    name = "count"
    template_id = 0
    postprocess_names = ("count",)

    def parse_params(self, raw: Any, field: str = "params") -> CountParams:
        read_object(raw, field, required=())
        return CountParams()

    def params_to_json(self, params: CountParams) -> dict[str, Any]:
        return {}

    def output_names(self, params: CountParams) -> tuple[str, ...]:
        return ("count",)

    def column_uses(self, params: CountParams) -> tuple[ColumnUse, ...]:
        return ()

    def map_rows(self, params: CountParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        return np.array([len(rows)], dtype=np.float64)

    def row_l1_bound(self, params: CountParams) -> Fraction | None:
        return Fraction(1)

    def postprocess(self, params: CountParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        return {"count": float(values[0])}
