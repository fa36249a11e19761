"""Query specs from `pmsr query propose` flags or from a spec file.

The flags cover the templates count, sum, mean, histogram and ols. Crosstab and vote need a spec
file. `--clip` bounds one row's values, and `--contribution-bound` the rows of one owner. The clip
of each output coordinate for one owner is derived from the two, so the bounds that make the DP
sensitivity true follow from what the analyst states about one row.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from offchain_workers.canonical_json import MAX_DOCUMENT_BYTES
from offchain_workers.decimal_strings import format_decimal
from offchain_workers.errors import SpecError
from offchain_workers.spec import QuerySpec, build_spec

from .errors import CliError

__all__ = ["FLAG_TEMPLATES", "load_spec_file", "spec_from_flags", "parse_bins"]

FLAG_TEMPLATES = ("count", "sum", "mean", "histogram", "ols")
MAX_BINS = 4096

_TERM = re.compile(r"^(?:(?P<transform>log|log1p|sqrt)\((?P<inner>[^()^=]+)\)|(?P<plain>[^()^=]+))(?:\^(?P<power>[1-4]))?$")


def load_spec_file(path_text: str) -> QuerySpec:
    """Read and validate a spec file; an invalid field raises a `CliError` that names the file and the field."""
    path = Path(path_text).expanduser()
    try:
        with path.open("rb") as handle:
            # One byte past the limit is enough to reject an oversized file without reading it all.
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise CliError(f"spec file {path} not found; check the path") from None
    except OSError as error:
        raise CliError(f"cannot read spec file {path}: {error.strerror}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CliError(f"spec file {path} is larger than {MAX_DOCUMENT_BYTES} bytes; is it the right file?")
    try:
        # Any JSON layout is accepted; the proposal sends the canonical bytes.
        return QuerySpec.from_json_bytes(data, require_canonical=False)
    except SpecError as error:
        raise CliError(f"spec file {path}: {error}") from None


def _number(text: str, option: str) -> Fraction:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CliError(f"invalid {option} value {text!r}: expected a decimal number such as 2.5") from None
    if not value.is_finite():
        raise CliError(f"invalid {option} value {text!r}: expected a finite number")
    return Fraction(value)


def _range(text: str, option: str) -> tuple[Fraction, Fraction]:
    low_text, separator, high_text = text.partition(":")
    if not separator:
        raise CliError(f"invalid {option} range {text!r}: write LOW:HIGH, for example 0:100")
    low, high = _number(low_text, option), _number(high_text, option)
    if low > high:
        raise CliError(f"invalid {option} range {text!r}: LOW is above HIGH")
    return low, high


def parse_bins(text: str) -> list[str]:
    """Histogram edges: `0,250,500,1000`, or `START:STOP:COUNT` for COUNT equal bins."""
    parts = text.split(":")
    if len(parts) == 3:
        start, stop = _number(parts[0], "--bins"), _number(parts[1], "--bins")
        try:
            count = int(parts[2])
        except ValueError:
            raise CliError(f"invalid --bins {text!r}: COUNT in START:STOP:COUNT must be a whole number") from None
        if not 1 <= count <= MAX_BINS or stop <= start:
            raise CliError(f"invalid --bins {text!r}: need START < STOP and 1 <= COUNT <= {MAX_BINS}")
        edges = [start + (stop - start) * index / count for index in range(count + 1)]
        try:
            return [format_decimal(edge, "--bins") for edge in edges]
        except SpecError:
            raise CliError(
                f"invalid --bins {text!r}: the bin width {(stop - start) / count} is not a finite decimal; "
                "choose START, STOP and COUNT so that it is, or list the edges"
            ) from None
    return [format_decimal(_number(edge, "--bins"), "--bins") for edge in text.split(",")]


def _owner_range(low: Fraction, high: Fraction, bound: int) -> tuple[str, str]:
    """Return the range of a sum of up to `bound` values in [low, high], since an owner may have fewer rows, or none."""
    return format_decimal(min(Fraction(0), low * bound)), format_decimal(max(Fraction(0), high * bound))


def _product_range(a: tuple[Fraction, Fraction], b: tuple[Fraction, Fraction], same: bool) -> tuple[Fraction, Fraction]:
    if same:
        low, high = a
        top = max(low * low, high * high)
        bottom = Fraction(0) if low <= 0 <= high else min(low * low, high * high)
        return bottom, top
    products = [x * y for x in a for y in b]
    return min(products), max(products)


def _ols_term(text: str) -> dict[str, Any]:
    column, equals, level = text.partition("=")
    if equals:
        if not column.strip() or not level.strip():
            raise CliError(f"invalid --columns term {text!r}: write COLUMN=LEVEL for a dummy variable")
        return {"column": column.strip(), "level": level.strip()}
    match = _TERM.match(text.strip())
    if match is None:
        raise CliError(
            f"invalid --columns term {text!r}: write COLUMN, COLUMN^2, log(COLUMN), sqrt(COLUMN) or COLUMN=LEVEL"
        )
    transform = match.group("transform") or "identity"
    name = (match.group("inner") or match.group("plain")).strip()
    return {"column": name, "power": int(match.group("power") or 1), "transform": transform}


def _term_name(term: dict[str, Any]) -> str:
    if "level" in term:
        return f"{term['column']}_{term['level']}"
    base = term["column"] if term["transform"] == "identity" else f"{term['transform']}({term['column']})"
    return base if term["power"] == 1 else f"{base}^{term['power']}"


def _ols_bounds(clip: str | None, names: list[str], dummies: set[str]) -> dict[str, tuple[Fraction, Fraction]]:
    """Per-term row bounds from `--clip LOW:HIGH` (every numeric term) or `NAME=LOW:HIGH,...`."""
    if clip is None:
        raise CliError("ols needs --clip: LOW:HIGH for every term and the response, or NAME=LOW:HIGH,... per term")
    bounds: dict[str, tuple[Fraction, Fraction]] = {name: (Fraction(0), Fraction(1)) for name in dummies}
    if "=" not in clip:
        shared = _range(clip, "--clip")
        bounds.update({name: shared for name in names if name not in dummies})
        return bounds
    for item in clip.split(","):
        name, _, text = item.partition("=")
        if name.strip() not in names:
            raise CliError(f"--clip names {name.strip()!r}, which is not a term; the terms are {', '.join(names)}")
        bounds[name.strip()] = _range(text, "--clip")
    missing = [name for name in names if name not in bounds]
    if missing:
        raise CliError(f"--clip gives no range for {', '.join(missing)}; add NAME=LOW:HIGH for each")
    return bounds


def _ols_spec_arguments(columns: list[str], clip: str | None, bound: int, intercept: bool) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    if len(columns) < (1 if intercept else 2):
        raise CliError("ols needs --columns RESPONSE,TERM,...: the response first, then the regressors")
    response = _ols_term(columns[0])
    if "level" in response:
        raise CliError(f"the response {columns[0]!r} of ols must be numeric, not a COLUMN=LEVEL dummy")
    terms = [_ols_term(text) for text in columns[1:]]
    names = [_term_name(response), *(_term_name(term) for term in terms)]
    dummies = {_term_name(term) for term in terms if "level" in term}
    bounds = _ols_bounds(clip, names, dummies)

    regressors = [bounds[_term_name(term)] for term in terms]
    if intercept:
        regressors.insert(0, (Fraction(1), Fraction(1)))
    response_range = bounds[names[0]]
    clip_pairs = []
    for i in range(len(regressors)):
        for j in range(i, len(regressors)):
            clip_pairs.append(_product_range(regressors[i], regressors[j], i == j))
    clip_pairs += [_product_range(regressor, response_range, False) for regressor in regressors]
    clip_pairs.append(_product_range(response_range, response_range, True))
    clip_pairs.append((Fraction(1), Fraction(1)))
    owner_clip = [_owner_range(low, high, bound) for low, high in clip_pairs]
    params = {"intercept": intercept, "response": response, "terms": terms}
    return params, owner_clip


def spec_from_flags(
    *,
    template: str,
    columns: list[str] | None,
    bins: str | None,
    clip: str | None,
    row_filter: str | None,
    contribution_bound: int,
    fractional_bits: int,
    epsilon: int | None,
    exact: bool,
    intercept: bool = True,
) -> QuerySpec:
    """Build a spec from `pmsr query propose` flags; a missing or invalid flag raises `CliError` naming it."""
    if template not in FLAG_TEMPLATES:
        raise CliError(f"template {template!r} needs a spec file (--spec FILE); flags cover {', '.join(FLAG_TEMPLATES)}")
    if exact and epsilon is not None:
        raise CliError("pass either --epsilon or --exact, not both")
    if not exact and epsilon is None:
        raise CliError("pass --epsilon (for example 1.0), or --exact for a noise-free query")
    if epsilon == 0:
        raise CliError("--epsilon 0 would add no noise; pass --exact for a noise-free query, or a positive epsilon")
    columns = columns or []
    bound = contribution_bound

    params: dict[str, Any]
    owner_clip: Any
    if template == "count":
        if columns:
            raise CliError("count takes no --columns; select rows with --filter")
        params, owner_clip = {}, ("0", str(bound))
    elif template in ("sum", "mean", "histogram"):
        if len(columns) != 1:
            raise CliError(f"{template} needs exactly one column in --columns, got {len(columns)}")
        params = {"column": columns[0]}
        if template == "histogram":
            if bins is None:
                raise CliError("histogram needs --bins, e.g. 0,250,500,1000 or 0:1000:4")
            params["edges"] = parse_bins(bins)
            owner_clip = ("0", str(bound))
        else:
            if clip is None:
                raise CliError(f"{template} needs --clip LOW:HIGH, the range of one row's {columns[0]}")
            low, high = _range(clip, "--clip")
            owner_clip = [_owner_range(low, high, bound)]
            if template == "mean":
                owner_clip.append(("0", str(bound)))
    else:
        params, owner_clip = _ols_spec_arguments(columns, clip, bound, intercept)

    try:
        return build_spec(
            template,
            params,
            clip=owner_clip,
            fractional_bits=fractional_bits,
            contribution_bound=bound,
            epsilon_millionths=0 if exact else int(epsilon or 0),
            exact=exact,
            filter=row_filter,
        )
    except SpecError as error:
        raise CliError(f"the query flags make an invalid spec: {error}") from None
