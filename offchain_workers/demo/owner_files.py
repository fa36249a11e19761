"""Owners' data files for the demos: one CSV file per owner, written fast for thousands of owners.

Formatting a one-row pandas table per owner costs about a millisecond each, which for all 28,155
CPS1988 workers adds up to most of a minute. `write_row_files` formats the whole table once with
pandas (so quoting and number formats are pandas' own) and writes each row under the header into
its own file.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pandas as pd

from pmsr_chain.errors import PmsrError

__all__ = ["OwnerFileError", "write_row_files"]

logger = logging.getLogger(__name__)


class OwnerFileError(PmsrError, ValueError):
    """An owner's data cannot be written as one CSV file per owner."""


def _private_directory(directory: Path) -> Path:
    # The files hold owners' raw data, so only the user running the demo may read them.
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def write_row_files(table: pd.DataFrame, directory: Path, *, prefix: str = "owner") -> list[Path]:
    """Write each row of `table` to its own CSV file (header plus that row); return the paths in row order.

    Raises:
        OwnerFileError: a value contains a line break, so a row would span several CSV lines.
    """
    directory = _private_directory(directory)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    lines = buffer.getvalue().split("\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    if len(rows) != len(table):
        raise OwnerFileError(
            f"{len(table)} rows formatted as {len(rows)} CSV lines: a value contains a line break; "
            "pass such tables to LocalMarket.add_owners as DataFrames"
        )
    width = max(5, len(str(len(rows))))
    paths = []
    for index, row in enumerate(rows):
        path = directory / f"{prefix}-{index:0{width}d}.csv"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(f"{header}\n{row}\n")
        paths.append(path)
    logger.info("wrote %d one-row owner files to %s", len(paths), directory)
    return paths

