"""Reading an owner's local table and classifying its columns for spec validation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd

from .errors import TemplateError

__all__ = ["ColumnKind", "load_table", "column_kind", "column_kinds"]

logger = logging.getLogger(__name__)

ColumnKind = Literal["number", "string", "other"]


def load_table(path: str | Path) -> pd.DataFrame:
    """Read an owner's table from a CSV file, or from a Parquet file when pyarrow is installed.

    The format follows the suffix: `.parquet` or `.pq` reads Parquet, anything else CSV.

    Raises:
        TemplateError: the file is missing or unreadable, or Parquet is requested without pyarrow.
    """
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"table file {str(path)!r} not found; pass the path of a CSV or Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise TemplateError(
                    f"reading {str(path)!r} needs pyarrow, which is not installed; "
                    "install pyarrow or convert the table to CSV"
                ) from None
            table = pd.read_parquet(path, engine="pyarrow")
        else:
            table = pd.read_csv(path)
    except TemplateError:
        raise
    except (OSError, ValueError) as error:
        raise TemplateError(f"could not read table {str(path)!r}: {error}") from error
    logger.debug("read table %s with %d rows and %d columns", path, len(table), len(table.columns))
    return table


def column_kind(series: pd.Series) -> ColumnKind:
    """Classify a column as `number` (integer or float), `string` (text) or `other`.

    Booleans, dates and mixed columns are `other`, which no filter or template accepts.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "other"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            return "string"
    return "other"


def column_kinds(table: pd.DataFrame) -> dict[str, ColumnKind]:
    """Return the kind of every column whose name is a string, keyed by name."""
    return {str(name): column_kind(table[name]) for name in table.columns if isinstance(name, str)}
