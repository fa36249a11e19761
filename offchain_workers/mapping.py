"""Running a spec's map on an owner's table, and post-processing the reduced result.

The owner side runs `map_owner_data(spec, table)`. It filters the rows, keeps the rows the template
can use and takes the first `contributionBound` of them. It maps those to a real vector of length L,
clips each coordinate to the spec's bounds and encodes the vector in Z_2^64. The clip and the row bound are what make
the DP sensitivity true, so they run here on the owner's machine.

The analyst side runs `postprocess(spec, decoded)` on the reduced vector, decoded to reals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .encoding import encode_fixed
from .errors import TemplateError
from .spec import ClipRange, QuerySpec
from .tables import column_kind
from .templates import RAW_POSTPROCESS

__all__ = ["select_rows", "map_owner_values", "map_owner_data", "postprocess"]

logger = logging.getLogger(__name__)


def select_rows(spec: QuerySpec, table: pd.DataFrame, *, kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Return the rows the map uses: filtered, usable for the template, at most `contributionBound`.

    The rows kept are the first ones in table order, so the same table always gives the same output.
    `kinds` are the table's column kinds as `tables.column_kinds` returns them, for a caller that
    has them already. Without them, the columns the spec reads are classified here.

    Raises:
        SpecError: the table lacks a column the spec needs, or a column has the wrong kind.
        FilterSyntaxError: the filter names an unknown column or mixes kinds.
    """
    if not isinstance(table, pd.DataFrame):
        raise TemplateError(f"expected a pandas DataFrame, got {type(table).__name__}; load files with tables.load_table")
    spec.check_columns(kinds if kinds is not None else _used_column_kinds(spec, table))

    rows = table
    if spec.row_filter is not None:
        rows = rows.loc[spec.row_filter.evaluate(rows)]
    usable = spec.template_impl.usable_rows(spec.params, rows)
    rows = rows.loc[usable]
    selected = rows.iloc[: spec.contribution_bound]
    logger.debug(
        "template %s: %d rows, %d pass the filter and are usable, %d kept under contributionBound %d",
        spec.template,
        len(table),
        len(rows),
        len(selected),
        spec.contribution_bound,
    )
    return selected


def map_owner_values(spec: QuerySpec, table: pd.DataFrame, *, kinds: Mapping[str, str] | None = None) -> NDArray[np.float64]:
    """Return one owner's real output vector of length L, clipped per coordinate. `kinds` as in `select_rows`.

    Raises:
        SpecError, FilterSyntaxError: as `select_rows`.
        TemplateError: the map produced a non-finite value.
    """
    rows = select_rows(spec, table, kinds=kinds)
    values = spec.template_impl.map_rows(spec.params, rows)
    if values.shape != (spec.output_length,):
        raise TemplateError(f"template {spec.template} returned {values.shape[0]} values, expected {spec.output_length}")
    if not np.all(np.isfinite(values)):
        raise TemplateError(f"template {spec.template} produced a non-finite value; check the table for infinite entries")
    low, high = _clip_arrays(spec.clip)
    return np.clip(values, low, high)


def map_owner_data(spec: QuerySpec, table: pd.DataFrame, *, kinds: Mapping[str, str] | None = None) -> NDArray[np.uint64]:
    """Return one owner's encoded output: `map_owner_values` in fixed point, ready to be split into shares.

    Every word is at most `spec.max_abs_encoded` in signed magnitude. `kinds` as in `select_rows`.
    """
    values = map_owner_values(spec, table, kinds=kinds)
    return encode_fixed(values, spec.fractional_bits, max_abs=spec.max_abs_encoded)


def postprocess(spec: QuerySpec, decoded: ArrayLike, *, noise_sd: float | None = None) -> dict[str, Any]:
    """Turn the reduced, decoded vector into the analyst's result, as the spec's `postprocess` field selects.

    `raw` returns `{"schema": [...], "values": [...]}`; each template's own post-processing is
    described in its module. `noise_sd` is the standard deviation of the DP noise on each
    coordinate in real units (`dp.result_noise_sd`); when it is given and positive, the template may
    adjust for noise that no true vector has.

    Raises:
        TemplateError: the vector has the wrong length, or the template cannot compute a result
            (`SingularMatrixError` for a regression without a unique solution).
    """
    values = np.asarray(decoded, dtype=np.float64)
    if values.shape != (spec.output_length,):
        raise TemplateError(f"result vector has shape {values.shape}, but the spec declares {spec.output_length} values")
    if spec.postprocess == RAW_POSTPROCESS:
        return {"schema": list(spec.schema), "values": [float(value) for value in values]}
    if noise_sd is not None and noise_sd > 0:
        return spec.template_impl.postprocess_noisy(spec.params, spec.postprocess, values, noise_sd)
    return spec.template_impl.postprocess(spec.params, spec.postprocess, values)


def _used_column_kinds(spec: QuerySpec, table: pd.DataFrame) -> dict[str, str]:
    """Return column kinds for the check, classifying only the columns the spec reads.

    Classifying a text column scans it, so the other columns are listed by name as `other`.
    """
    used = {use.column for use in spec.template_impl.column_uses(spec.params)}
    if spec.row_filter is not None:
        used.update(spec.row_filter.columns)
    return {
        name: column_kind(table[name]) if name in used else "other"
        for name in table.columns
        if isinstance(name, str)
    }


@functools.lru_cache(maxsize=64)
def _clip_arrays(clip: tuple[ClipRange, ...]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return the low and high float bounds of `clip`, read-only because every owner's map shares them."""
    low = np.array([_float_toward_zero(bounds.low_value) for bounds in clip], dtype=np.float64)
    high = np.array([_float_toward_zero(bounds.high_value) for bounds in clip], dtype=np.float64)
    low.flags.writeable = False
    high.flags.writeable = False
    return low, high


def _float_toward_zero(value: Fraction) -> float:
    """Return the float nearest to `value` whose magnitude is not above |value|.

    A clipped value then never encodes beyond `max_abs_encoded`, which uses the exact bound.
    """
    result = float(value)
    if abs(Fraction(result)) > abs(value):
        result = float(np.nextafter(result, 0.0))
    return result
