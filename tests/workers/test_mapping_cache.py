"""The map's cached spec values and the column kinds a caller passes in."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from offchain_workers.errors import SpecError
from offchain_workers.mapping import _clip_arrays, map_owner_data, map_owner_values
from offchain_workers.spec import ClipRange, QuerySpec, build_spec
from offchain_workers.tables import column_kinds

TABLE = pd.DataFrame({"x": [7.5, -3.0], "group": ["a", "b"]})


def _sum_spec(bound: str) -> QuerySpec:
    return build_spec("sum", {"column": "x"}, clip=(f"-{bound}", bound), fractional_bits=8,
                      contribution_bound=2, epsilon_millionths=0, exact=True)


def test_spec_caches_clip_values():
    spec = QuerySpec.from_json_bytes(_sum_spec("2.5").to_json_bytes())

    assert spec.clip_bounds == ((Fraction(-5, 2), Fraction(5, 2)),)
    assert spec.clip_bounds is spec.clip_bounds
    assert spec.max_abs_encoded == 640
    assert spec.clip[0].magnitude is spec.clip[0].magnitude


def test_replaced_spec_recomputes_clip_values():
    spec = _sum_spec("2.5")
    assert spec.max_abs_encoded == 640
    wider = dataclasses.replace(spec, clip=(ClipRange("-5", "5"),))

    assert wider.clip_bounds == ((Fraction(-5), Fraction(5)),)
    assert wider.max_abs_encoded == 1280
    assert spec.max_abs_encoded == 640


def test_clip_arrays_shared_and_read_only():
    spec = _sum_spec("2.5")
    low, high = _clip_arrays(spec.clip)

    assert _clip_arrays(_sum_spec("2.5").clip)[0] is low
    assert low.tolist() == [-2.5]
    assert high.tolist() == [2.5]
    with pytest.raises(ValueError):
        low[0] = 0.0


def test_specs_with_other_clip_not_shared():
    # The table's two rows sum to 4.5, so the clip bound alone decides the output.
    assert map_owner_values(_sum_spec("1"), TABLE).tolist() == [1.0]
    assert map_owner_values(_sum_spec("4"), TABLE).tolist() == [4.0]
    assert map_owner_values(_sum_spec("1"), TABLE).tolist() == [1.0]


def test_map_with_given_kinds_matches():
    spec = _sum_spec("100")
    kinds = dict(column_kinds(TABLE))

    words = map_owner_data(spec, TABLE, kinds=kinds)

    np.testing.assert_array_equal(words, map_owner_data(spec, TABLE))
    assert words.tolist() == [round(4.5 * 2**8)]


def test_map_checks_given_kinds():
    spec = _sum_spec("100")

    with pytest.raises(SpecError, match="params.column"):
        map_owner_data(spec, TABLE, kinds={"x": "string", "group": "string"})
    with pytest.raises(SpecError, match="column not found"):
        map_owner_data(spec, TABLE, kinds={"group": "string"})
