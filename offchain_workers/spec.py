"""Query specs: building, validating and canonicalising the JSON whose keccak256 is `specHash`.

A spec is canonical JSON (see `canonical_json`) with these fields:

| field | JSON type | meaning |
| --- | --- | --- |
| `version` | integer | spec format version, 1 |
| `template` | string | map template name: count, sum, mean, histogram, crosstab, ols or vote |
| `params` | object | the template's parameters |
| `filter` | string, optional | row filter (see `filters`); absent means every row |
| `schema` | array of strings | names of the L output coordinates, as the template derives them |
| `clip` | array of [low, high] | per-coordinate bounds of one owner's output, as decimal strings |
| `fractionalBits` | integer | fixed-point scale 2^f of the encoding |
| `contributionBound` | integer | maximum number of rows one owner contributes |
| `epsilon` | integer | DP epsilon in millionths (1000000 = 1.0); 0 only when `exact` is true |
| `exact` | boolean | true for a noise-free query, which requires `epsilon` 0 |
| `postprocess` | string | what the analyst's result is computed as, or `raw` |

The contract enforces part of a spec through `QueryParams`: template id, output length, epsilon and
`maxAbsEncoded`. `QuerySpec.contract_params` returns those values so callers can compare them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from eth_utils import keccak

from .canonical_json import dump_canonical, load_strict
from .decimal_strings import format_decimal, is_canonical_integer, parse_decimal
from .encoding import MAX_FRACTIONAL_BITS
from .errors import SpecError
from .filters import RowFilter, parse_filter
from .templates import RAW_POSTPROCESS, Template, get_template

__all__ = [
    "SPEC_VERSION",
    "MAX_EPSILON_MILLIONTHS",
    "MAX_OUTPUT_LENGTH",
    "MAX_CONTRIBUTION_BOUND",
    "ENCODED_SUM_LIMIT",
    "ClipRange",
    "QuerySpec",
    "build_spec",
    "spec_hash",
]

logger = logging.getLogger(__name__)

SPEC_VERSION = 1

# Epsilon 100 (in millionths). Larger values give no meaningful privacy.
MAX_EPSILON_MILLIONTHS = 100_000_000

# Maximum output length of a spec. The contract also applies its own `maxOutputLength`.
MAX_OUTPUT_LENGTH = 65_536

MAX_CONTRIBUTION_BOUND = 1_000_000

# The contract rejects `maxOwners * maxAbsEncoded >= 2**62`, so that the sum of all owners' encoded
# values stays below 2^62 in magnitude and K aggregators' noise has room before it wraps 2^63.
ENCODED_SUM_LIMIT = 2**62

_REQUIRED_FIELDS = frozenset(
    {
        "version",
        "template",
        "params",
        "schema",
        "clip",
        "fractionalBits",
        "contributionBound",
        "epsilon",
        "exact",
        "postprocess",
    }
)
_OPTIONAL_FIELDS = frozenset({"filter"})


def spec_hash(spec_json: bytes) -> bytes:
    """Return keccak256 of the spec bytes, equal to the contract's `keccak256(specJson)`."""
    return keccak(bytes(spec_json))


@dataclass(frozen=True)
class ClipRange:
    """Bounds [low, high] of one output coordinate, as canonical decimal strings.

    The parsed values are cached on first use, because an owner fleet maps one spec for thousands
    of owners and would otherwise parse every bound again for each of them.
    """

    low: str
    high: str

    @functools.cached_property
    def low_value(self) -> Fraction:
        return parse_decimal(self.low, "clip.low")

    @functools.cached_property
    def high_value(self) -> Fraction:
        return parse_decimal(self.high, "clip.high")

    @functools.cached_property
    def magnitude(self) -> Fraction:
        """The largest |x| for x in [low, high]."""
        return max(abs(self.low_value), abs(self.high_value))


@dataclass(frozen=True)
class QuerySpec:
    """A validated query spec. Build one with `build_spec` or `QuerySpec.from_json_bytes`.

    `params` contains the template's typed parameters (for example `OlsParams`). Every field is
    checked on construction, and an invalid one raises `SpecError` naming it.
    """

    template: str
    params: Any
    schema: tuple[str, ...]
    clip: tuple[ClipRange, ...]
    fractional_bits: int
    contribution_bound: int
    epsilon: int
    exact: bool
    postprocess: str
    filter: str | None = None
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if self.version != SPEC_VERSION:
            raise SpecError("version", self.version, f"unsupported spec version; this library reads version {SPEC_VERSION}")
        template = get_template(self.template)
        self._check_params(template)
        expected_schema = template.output_names(self.params)
        if len(expected_schema) > MAX_OUTPUT_LENGTH:
            raise SpecError("schema", len(expected_schema), f"output length above the maximum {MAX_OUTPUT_LENGTH}")
        if tuple(self.schema) != expected_schema:
            raise SpecError(
                "schema", list(self.schema), f"does not match the template's output names {list(expected_schema)}"
            )
        if len(set(self.schema)) != len(self.schema):
            raise SpecError("schema", list(self.schema), "output names must be distinct")
        self._check_clip()
        _check_int("fractionalBits", self.fractional_bits, 0, MAX_FRACTIONAL_BITS)
        _check_int("contributionBound", self.contribution_bound, 1, MAX_CONTRIBUTION_BOUND)
        self._check_privacy()
        allowed = (*template.postprocess_names, RAW_POSTPROCESS)
        if self.postprocess not in allowed:
            raise SpecError("postprocess", self.postprocess, f"expected one of {', '.join(allowed)} for template {self.template}")
        if self.filter is not None:
            parse_filter(self.filter)
        if self.max_abs_encoded >= ENCODED_SUM_LIMIT:
            self._raise_encoded_bound(1)

    def _check_params(self, template: Template) -> None:
        # Parameters built in Python rather than parsed must survive a round trip through JSON,
        # which runs the template's own validation on them.
        try:
            document = template.params_to_json(self.params)
        except (AttributeError, TypeError):
            raise SpecError("params", self.params, f"not parameters of template {template.name}") from None
        if template.parse_params(document, "params") != self.params:
            raise SpecError("params", self.params, f"not valid parameters of template {template.name}")

    def _check_clip(self) -> None:
        if len(self.clip) != len(self.schema):
            raise SpecError("clip", len(self.clip), f"expected one [low, high] pair per output coordinate, {len(self.schema)} in all")
        for index, bounds in enumerate(self.clip):
            if not isinstance(bounds, ClipRange):
                raise SpecError(f"clip[{index}]", bounds, "expected a ClipRange")
            low = parse_decimal(bounds.low, f"clip[{index}][0]")
            high = parse_decimal(bounds.high, f"clip[{index}][1]")
            if low > high:
                raise SpecError(f"clip[{index}]", [bounds.low, bounds.high], "low bound above high bound")

    def _check_privacy(self) -> None:
        if not isinstance(self.exact, bool):
            raise SpecError("exact", self.exact, "expected true or false")
        _check_int("epsilon", self.epsilon, 0, MAX_EPSILON_MILLIONTHS)
        if self.exact and self.epsilon != 0:
            raise SpecError("epsilon", self.epsilon, "an exact (noise-free) query must have epsilon 0")
        if not self.exact and self.epsilon == 0:
            raise SpecError(
                "epsilon",
                self.epsilon,
                "epsilon must be in (0, 100] (1..100000000 millionths); set \"exact\": true for a noise-free query",
            )

    # --- derived values ---------------------------------------------------------------------------

    @property
    def template_impl(self) -> Template:
        """The `Template` object that maps and post-processes this spec."""
        return get_template(self.template)

    @property
    def template_id(self) -> int:
        """The template id the contract uses (count = 0 ... vote = 6)."""
        return self.template_impl.template_id

    @property
    def output_length(self) -> int:
        """L, the number of output coordinates."""
        return len(self.schema)

    # The spec is frozen, so values derived from its fields are computed once and cached.

    @functools.cached_property
    def clip_bounds(self) -> tuple[tuple[Fraction, Fraction], ...]:
        """Exact (low, high) bounds per coordinate."""
        return tuple((bounds.low_value, bounds.high_value) for bounds in self.clip)

    @functools.cached_property
    def max_abs_encoded(self) -> int:
        """Bound on |encoded coordinate| for one owner: max over coordinates of round(max(|low|, |high|) * 2^f).

        Rounding to nearest is monotone, so no clipped value encodes beyond this bound.
        """
        scale = 1 << self.fractional_bits
        return max((round(bounds.magnitude * scale) for bounds in self.clip), default=0)

    @functools.cached_property
    def row_filter(self) -> RowFilter | None:
        """The parsed filter, or None when every row is kept."""
        return parse_filter(self.filter) if self.filter is not None else None

    @property
    def l1_sensitivity(self) -> Fraction:
        """L1 sensitivity of one owner's output in real units, from `clip` and `contributionBound`."""
        return self.template_impl.l1_sensitivity(self.params, self.clip_bounds, self.contribution_bound)

    @property
    def encoded_l1_sensitivity(self) -> int:
        """L1 sensitivity of one owner's encoded output, in units of 2^-fractionalBits."""
        return self.template_impl.encoded_l1_sensitivity(
            self.params, self.clip_bounds, self.contribution_bound, self.fractional_bits
        )

    def contract_params(self) -> dict[str, int]:
        """Return the `QueryParams` fields the contract enforces for this spec, keyed by their Solidity names."""
        return {
            "templateId": self.template_id,
            "outputLength": self.output_length,
            "epsilon": self.epsilon,
            "maxAbsEncoded": self.max_abs_encoded,
        }

    # --- checks against a market and a dataset ----------------------------------------------------

    def validate_for_market(self, max_owners: int) -> None:
        """Check the contract's bound `max_owners * maxAbsEncoded < 2**62`.

        Raises:
            SpecError: naming the widest `clip` entry, when the bound is reached.
        """
        if isinstance(max_owners, bool) or not isinstance(max_owners, int) or max_owners < 1:
            raise SpecError("maxOwners", max_owners, "expected an integer >= 1")
        if max_owners * self.max_abs_encoded >= ENCODED_SUM_LIMIT:
            self._raise_encoded_bound(max_owners)

    def _raise_encoded_bound(self, max_owners: int) -> None:
        widest = max(range(len(self.clip)), key=lambda index: self.clip[index].magnitude)
        bounds = self.clip[widest]
        raise SpecError(
            f"clip[{widest}]",
            [bounds.low, bounds.high],
            f"maxOwners {max_owners} * maxAbsEncoded {self.max_abs_encoded} reaches 2^62 at fractionalBits "
            f"{self.fractional_bits}; narrow the clip bounds, lower fractionalBits or lower maxOwners",
        )

    def check_columns(self, kinds: Mapping[str, str]) -> None:
        """Check the template's columns and the filter against a dataset's column kinds.

        `kinds` maps column names to `number`, `string` or `other`, as `tables.column_kinds` returns.

        Raises:
            SpecError: a missing column or a column of the wrong kind, naming the spec field.
            FilterSyntaxError: the filter names an unknown column or compares mismatched kinds.
        """
        known = ", ".join(sorted(kinds)) or "none"
        for use in self.template_impl.column_uses(self.params):
            if use.column not in kinds:
                raise SpecError(use.field, use.column, f"column not found in the dataset (columns: {known})")
            kind = kinds[use.column]
            if kind not in use.kinds:
                raise SpecError(use.field, use.column, f"column holds {kind} values but this field needs {' or '.join(use.kinds)}")
            if use.categories is not None and kind == "number":
                for category in use.categories:
                    if not is_canonical_integer(category):
                        raise SpecError(
                            use.field,
                            use.column,
                            f"numeric column cannot match category {category!r}; categories of a numeric column are integers such as \"3\"",
                        )
        if self.row_filter is not None:
            self.row_filter.check_columns(kinds)

    # --- JSON -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict with the spec's field names."""
        document: dict[str, Any] = {
            "version": self.version,
            "template": self.template,
            "params": self.template_impl.params_to_json(self.params),
            "schema": list(self.schema),
            "clip": [[bounds.low, bounds.high] for bounds in self.clip],
            "fractionalBits": self.fractional_bits,
            "contributionBound": self.contribution_bound,
            "epsilon": self.epsilon,
            "exact": self.exact,
            "postprocess": self.postprocess,
        }
        if self.filter is not None:
            document["filter"] = self.filter
        return document

    def to_json_bytes(self) -> bytes:
        """Return the canonical JSON bytes: the `specJson` to propose and hash."""
        return dump_canonical(self.to_dict())

    @property
    def hash(self) -> bytes:
        """keccak256 of the canonical bytes, the contract's `specHash`."""
        return spec_hash(self.to_json_bytes())

    @classmethod
    def from_dict(cls, document: Any) -> QuerySpec:
        """Validate a parsed spec document.

        Raises:
            SpecError: an unknown, missing or invalid field, named with its path.
        """
        if not isinstance(document, Mapping):
            raise SpecError("document", document, "expected a JSON object")
        for key in document:
            if key not in _REQUIRED_FIELDS and key not in _OPTIONAL_FIELDS:
                raise SpecError(key, document[key], f"unknown field; a spec has {', '.join(sorted(_REQUIRED_FIELDS | _OPTIONAL_FIELDS))}")
        for key in sorted(_REQUIRED_FIELDS):
            if key not in document:
                raise SpecError(key, None, "missing required field")

        _check_int("version", document["version"], SPEC_VERSION, SPEC_VERSION)
        template = get_template(document["template"])
        params = template.parse_params(document["params"], "params")
        schema = _read_string_list(document["schema"], "schema")
        clip = _read_clip(document["clip"])
        if "filter" in document and not isinstance(document["filter"], str):
            raise SpecError("filter", document["filter"], "expected a string; leave the field out to keep every row")
        postprocess = document["postprocess"]
        if not isinstance(postprocess, str):
            raise SpecError("postprocess", postprocess, "expected a string")
        return cls(
            template=template.name,
            params=params,
            schema=schema,
            clip=clip,
            fractional_bits=document["fractionalBits"],
            contribution_bound=document["contributionBound"],
            epsilon=document["epsilon"],
            exact=document["exact"],
            postprocess=postprocess,
            filter=document.get("filter"),
            version=document["version"],
        )

    @classmethod
    def from_json_bytes(cls, data: bytes, *, require_canonical: bool = True) -> QuerySpec:
        """Parse and validate spec bytes, such as the `specJson` of a `QueryProposed` event.

        With `require_canonical` (the default) the bytes must equal the spec's canonical form, so
        that one spec has exactly one `specHash`.

        Raises:
            SpecError: invalid JSON, a float, a duplicate key, an invalid field, or non-canonical bytes.
        """
        spec = cls.from_dict(load_strict(data))
        if require_canonical:
            canonical = spec.to_json_bytes()
            if canonical != bytes(data):
                offset = _first_difference(canonical, bytes(data))
                raise SpecError(
                    "document",
                    bytes(data)[max(0, offset - 10) : offset + 20].decode("utf-8", "replace"),
                    f"not in canonical form from byte {offset} (keys sorted, no whitespace, canonical decimals); "
                    "serialise it with QuerySpec.to_json_bytes",
                )
        return spec


def build_spec(
    template: str,
    params: Mapping[str, Any],
    *,
    clip: Sequence[tuple[Any, Any]] | tuple[Any, Any],
    fractional_bits: int,
    contribution_bound: int,
    epsilon_millionths: int,
    exact: bool = False,
    postprocess: str | None = None,
    filter: str | None = None,  # noqa: A002 - the spec field is called filter
) -> QuerySpec:
    """Build a spec from Python values; the schema comes from the template.

    `clip` is one (low, high) pair for every coordinate, or a sequence of L pairs. Bounds are
    ints, `Decimal`, `Fraction` or decimal strings; floats are rejected. `postprocess` defaults to
    the template's own post-processing. Convert epsilon with `budget.parse_epsilon("0.5")`.

    Raises:
        SpecError: any invalid value, named with its spec field.
    """
    implementation = get_template(template)
    typed_params = implementation.parse_params(dict(params), "params")
    schema = implementation.output_names(typed_params)
    if _is_single_pair(clip):
        pairs = [clip] * len(schema)
    else:
        pairs = list(clip)  # type: ignore[arg-type]
    clip_ranges = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise SpecError(f"clip[{index}]", pair, "expected a (low, high) pair")
        clip_ranges.append(
            ClipRange(format_decimal(pair[0], f"clip[{index}][0]"), format_decimal(pair[1], f"clip[{index}][1]"))
        )
    return QuerySpec(
        template=implementation.name,
        params=typed_params,
        schema=schema,
        clip=tuple(clip_ranges),
        fractional_bits=fractional_bits,
        contribution_bound=contribution_bound,
        epsilon=epsilon_millionths,
        exact=exact,
        postprocess=postprocess if postprocess is not None else implementation.postprocess_names[0],
        filter=filter,
    )


def _is_single_pair(clip: Any) -> bool:
    return (
        isinstance(clip, (tuple, list))
        and len(clip) == 2
        and all(isinstance(bound, (int, str, Decimal, Fraction, float)) for bound in clip)
    )


def _check_int(field: str, value: Any, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, value, f"expected an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise SpecError(field, value, f"must be between {minimum} and {maximum}")


def _read_string_list(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise SpecError(field, raw, "expected an array of strings")
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise SpecError(f"{field}[{index}]", item, "expected a string")
    return tuple(raw)


def _read_clip(raw: Any) -> tuple[ClipRange, ...]:
    if not isinstance(raw, list):
        raise SpecError("clip", raw, "expected an array of [low, high] pairs of decimal strings")
    ranges = []
    for index, pair in enumerate(raw):
        if not isinstance(pair, list) or len(pair) != 2:
            raise SpecError(f"clip[{index}]", pair, "expected a [low, high] pair of decimal strings")
        parse_decimal(pair[0], f"clip[{index}][0]")
        parse_decimal(pair[1], f"clip[{index}][1]")
        ranges.append(ClipRange(pair[0], pair[1]))
    return tuple(ranges)


def _first_difference(left: bytes, right: bytes) -> int:
    for offset, (a, b) in enumerate(zip(left, right)):
        if a != b:
            return offset
    return min(len(left), len(right))
