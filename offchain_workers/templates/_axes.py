"""Assigning rows to bins (numeric edges) or to declared categories, shared by several templates.

Bins follow numpy.histogram: bin i is [edges[i], edges[i+1]) and the last bin also includes its right
edge. A value outside the edges, or a value that matches no declared category, gets index -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..decimal_strings import is_canonical_integer
from ..errors import SpecError
from ._params import read_categories, read_edges, read_object, read_string
from .base import ColumnUse


def bin_labels(edges: tuple[str, ...]) -> tuple[str, ...]:
    """Return `[a,b)` labels for each bin, with `[a,b]` for the last one."""
    labels = [f"[{edges[i]},{edges[i + 1]})" for i in range(len(edges) - 2)]
    labels.append(f"[{edges[-2]},{edges[-1]}]")
    return tuple(labels)


def bin_index(values: NDArray[np.float64], edges: tuple[Fraction, ...]) -> NDArray[np.int64]:
    """Return the bin of each value, or -1 for values outside the edges or NaN."""
    bounds = np.array([float(edge) for edge in edges], dtype=np.float64)
    index = np.searchsorted(bounds, values, side="right").astype(np.int64) - 1
    index[values == bounds[-1]] = len(bounds) - 2
    index[(index < 0) | (index >= len(bounds) - 1) | np.isnan(values)] = -1
    return index


def category_index(series: pd.Series, categories: tuple[str, ...]) -> NDArray[np.int64]:
    """Return the position of each value in `categories`, or -1 when it matches none.

    Text columns match the category strings exactly. Numeric columns match categories written as
    integers: the value 3 (or 3.0) matches `"3"`.
    """
    index = np.full(len(series), -1, dtype=np.int64)
    present = ~pd.isna(series).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        for position, category in enumerate(categories):
            if is_canonical_integer(category):
                index[present & (values == float(int(category))) & (index < 0)] = position
        return index
    values = series.to_numpy(dtype=object)
    for position, category in enumerate(categories):
        matches = np.asarray(values == category, dtype=bool) & present & (index < 0)
        index[matches] = position
    return index


@dataclass(frozen=True)
class Axis:
    """One axis of a table: a column with declared categories, or a numeric column with bin edges.

    JSON form: `{"column": NAME, "categories": [TEXT, ...]}` or `{"column": NAME, "edges": [DECIMAL, ...]}`.
    `path` is the axis's path in the spec, used in error messages.
    """

    column: str
    categories: tuple[str, ...] | None
    edges: tuple[str, ...] | None
    edge_values: tuple[Fraction, ...] | None = field(compare=False)
    path: str = field(compare=False)

    @classmethod
    def parse(cls, raw: Any, path: str) -> Axis:
        obj = read_object(raw, path, required=("column",), optional=("categories", "edges"))
        column = read_string(obj["column"], f"{path}.column")
        if ("categories" in obj) == ("edges" in obj):
            raise SpecError(
                path, raw, "an axis takes exactly one of 'categories' (text or integer column) or 'edges' (numeric column)"
            )
        if "categories" in obj:
            return cls(column, read_categories(obj["categories"], f"{path}.categories"), None, None, path)
        edges, values = read_edges(obj["edges"], f"{path}.edges")
        return cls(column, None, edges, values, path)

    def to_json(self) -> dict[str, Any]:
        if self.categories is not None:
            return {"column": self.column, "categories": list(self.categories)}
        return {"column": self.column, "edges": list(self.edges or ())}

    @property
    def labels(self) -> tuple[str, ...]:
        """Category names, or bin labels such as `[0,250)`."""
        if self.categories is not None:
            return self.categories
        return bin_labels(self.edges or ())

    def column_use(self) -> ColumnUse:
        if self.categories is not None:
            return ColumnUse(f"{self.path}.column", self.column, ("string", "number"), self.categories)
        return ColumnUse(f"{self.path}.column", self.column, ("number",))

    def index(self, rows: pd.DataFrame) -> NDArray[np.int64]:
        """Return each row's position on the axis, or -1 for rows that fall on no label."""
        series = rows[self.column]
        if self.categories is not None:
            return category_index(series, self.categories)
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return bin_index(values, self.edge_values or ())
