"""The interface every map template implements, and the column requirements it declares."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["ColumnUse", "Template", "RAW_POSTPROCESS"]

# Post-processing every template accepts: the decoded vector, labelled with the schema.
RAW_POSTPROCESS = "raw"

ParamsT = TypeVar("ParamsT")


@dataclass(frozen=True)
class ColumnUse:
    """A column a template reads: the spec field naming it, and the column kinds it accepts.

    `categories` is set when the template matches the column against a declared category list. A
    numeric column then needs every category to be an integer string such as `"3"`.
    """

    field: str
    column: str
    kinds: tuple[str, ...]
    categories: tuple[str, ...] | None = None


class Template(ABC, Generic[ParamsT]):
    """A declarative map: parameters, the owner-side map and the analyst-side post-processing.

    The map runs in three steps that `offchain_workers.mapping` drives. `usable_rows` marks the rows
    the map can use. The first `contributionBound` of those go to `map_rows`, and the output is
    clipped per coordinate before encoding.
    """

    name: ClassVar[str]
    template_id: ClassVar[int]
    # Post-processing names this template accepts besides `raw`; the first is the default.
    postprocess_names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def parse_params(self, raw: Any, field: str = "params") -> ParamsT:
        """Validate the `params` object of a spec and return typed parameters.

        Raises:
            SpecError: naming the offending field under `field`.
        """

    @abstractmethod
    def params_to_json(self, params: ParamsT) -> dict[str, Any]:
        """Return the JSON form of `params`; `parse_params` of it returns equal parameters."""

    @abstractmethod
    def output_names(self, params: ParamsT) -> tuple[str, ...]:
        """Return the names of the L output coordinates, in order (the spec's `schema`)."""

    @abstractmethod
    def column_uses(self, params: ParamsT) -> tuple[ColumnUse, ...]:
        """Return every column the map reads."""

    def usable_rows(self, params: ParamsT, rows: pd.DataFrame) -> NDArray[np.bool_]:
        """Mark the rows the map can use; by default, rows with no missing value in a used column."""
        usable = np.ones(len(rows), dtype=bool)
        for use in self.column_uses(params):
            usable &= ~pd.isna(rows[use.column]).to_numpy(dtype=bool)
        return usable

    @abstractmethod
    def map_rows(self, params: ParamsT, rows: pd.DataFrame) -> NDArray[np.float64]:
        """Return the unclipped real output vector of one owner from usable, bounded rows."""

    @abstractmethod
    def row_l1_bound(self, params: ParamsT) -> Fraction | None:
        """Return the bound on the L1 norm that one row adds to the output, or None if unbounded.

        Count-like templates add 1 to one coordinate per row, so their bound is 1. A template whose
        rows add real values returns None, and only `clip` bounds its sensitivity.
        """

    def l1_sensitivity(
        self, params: ParamsT, clip: Sequence[tuple[Fraction, Fraction]], contribution_bound: int
    ) -> Fraction:
        """Return the L1 sensitivity of one owner's clipped output, in real units.

        Adding or removing one owner changes the sum by that owner's whole output vector, whose L1
        norm is at most the sum over coordinates of max(|low|, |high|). When every clip interval
        contains 0, clipping cannot raise a coordinate's magnitude, so for count-like templates the
        bound is also `row_l1_bound * contributionBound`, and the smaller bound holds.
        """
        bound = sum((max(abs(low), abs(high)) for low, high in clip), Fraction(0))
        per_row = self.row_l1_bound(params)
        if per_row is not None and all(low <= 0 <= high for low, high in clip):
            bound = min(bound, per_row * contribution_bound)
        return bound

    def encoded_l1_sensitivity(
        self, params: ParamsT, clip: Sequence[tuple[Fraction, Fraction]], contribution_bound: int, fractional_bits: int
    ) -> int:
        """Return the L1 sensitivity of one owner's encoded output, in units of 2^-fractional_bits.

        A coordinate clipped to [low, high] encodes to at most round(max(|low|, |high|) * 2^f) in
        magnitude, because rounding to nearest is monotone.
        """
        scale = 1 << fractional_bits
        bound = sum(round(max(abs(low), abs(high)) * scale) for low, high in clip)
        per_row = self.row_l1_bound(params)
        if per_row is not None and all(low <= 0 <= high for low, high in clip):
            bound = min(bound, math.ceil(per_row * contribution_bound * scale))
        return int(bound)

    @abstractmethod
    def postprocess(self, params: ParamsT, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        """Turn the reduced, decoded output vector into the analyst's result."""

    def postprocess_noisy(
        self, params: ParamsT, name: str, values: NDArray[np.float64], noise_sd: float
    ) -> dict[str, Any]:
        """Turn a vector that carries DP noise of standard deviation `noise_sd` per coordinate into the result.

        By default the same as `postprocess`. A template whose post-processing can fail on noise that
        a true vector never has (such as X'X that is no longer positive definite) overrides this.
        """
        return self.postprocess(params, name, values)
