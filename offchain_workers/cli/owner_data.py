"""Summary of an owner's data file as queries read it: the row count and the kind of each column.

`pmsr owner register` accepts any table, because it cannot know which columns future queries need.
It prints this summary so that the owner can check, for example, for a column read as text because
one value is not a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CliError

__all__ = ["ColumnSummary", "DatasetSummary", "read_dataset"]


@dataclass(frozen=True)
class ColumnSummary:
    """One column of an owner's data file as queries see it; `kind` is number, text or other."""

    name: str
    kind: str
    present: int
    missing: int
    # Present values that do not read as numbers; a text column with few of these may hold a typo.
    non_numeric: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "missing": self.missing, "nonNumeric": self.non_numeric}

    def describe(self) -> str:
        details = [self.kind]
        if self.kind == "text" and self.non_numeric < self.present:
            details.append(f"{self.non_numeric} of {self.present} values are not numbers")
        if self.missing:
            details.append(f"{self.missing} missing")
        return f"{self.name} ({', '.join(details)})"


@dataclass(frozen=True)
class DatasetSummary:
    """Summary of an owner's data file as queries read it: the row count and each column's kind."""

    path: Path
    table_format: str
    rows: int
    columns: tuple[ColumnSummary, ...]

    def lines(self) -> list[str]:
        described = ", ".join(column.describe() for column in self.columns) or "none"
        lines = [f"rows:            {self.rows}", f"columns:         {described}"]
        kinds = {column.kind for column in self.columns}
        if "text" in kinds:
            lines.append(
                "note: queries read text columns only in filters, as categories (crosstab, vote labels) and as ols "
                "dummies COLUMN=LEVEL; sum, mean, histogram bins and ols terms need number columns"
            )
        if "other" in kinds:
            lines.append("note: no query reads columns of kind other (true/false, dates, or values of mixed types)")
        return lines


# Column kinds as `offchain_workers.tables.column_kind` names them, in the words shown to owners.
_KIND_NAMES = {"number": "number", "string": "text", "other": "other"}


def _column_summary(name: Any, series: Any, rows: int) -> ColumnSummary:
    import pandas as pd

    from offchain_workers.tables import column_kind

    # Columns with names that are not strings (possible in Parquet) are invisible to queries.
    kind = _KIND_NAMES[column_kind(series)] if isinstance(name, str) else "other"
    missing = int(series.isna().sum())
    present = rows - missing
    numbers = present if kind == "number" else int(pd.to_numeric(series, errors="coerce").notna().sum())
    return ColumnSummary(str(name), kind, present, missing, present - numbers)


def read_dataset(path_text: str, columns: list[str] | None) -> DatasetSummary:
    """Read an owner's data file and summarize it; raise when it has no rows or lacks a column in `columns`."""
    from offchain_workers.tables import load_table

    path = Path(path_text).expanduser().resolve()
    table = load_table(path)
    if len(table) == 0:
        raise CliError(f"data file {path} has no rows; an owner needs at least one row")
    for column in columns or ():
        if column not in table.columns:
            raise CliError(
                f"column {column!r} in --columns is not in {path} (columns: {', '.join(map(str, table.columns))})"
            )
    summary = tuple(_column_summary(name, table[name], len(table)) for name in table.columns)
    table_format = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    return DatasetSummary(path, table_format, len(table), summary)
