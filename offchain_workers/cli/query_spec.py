"""Query specs from `pmsr query propose` flags or from a spec file.

The flags cover the templates count, sum, mean, histogram and ols. Crosstab and vote need a spec
file. `--clip` bounds one row's values, and `--contribution-bound` the rows of one owner. The clip
of each output coordinate for one owner is derived from the two, so the bounds that make the DP
sensitivity true follow from what the analyst states about one row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from offchain_workers.budget import format_epsilon
from offchain_workers.canonical_json import MAX_DOCUMENT_BYTES
from offchain_workers.decimal_strings import MAX_DECIMAL_LENGTH as MAX_NUMBER_CHARACTERS
from offchain_workers.decimal_strings import format_decimal
from offchain_workers.encoding import MAX_FRACTIONAL_BITS
from offchain_workers.errors import SpecError
from offchain_workers.spec import ENCODED_SUM_LIMIT, MAX_EPSILON_MILLIONTHS, QuerySpec, build_spec
from offchain_workers.templates.ols import MAX_SCALE, MAX_SCALE_TEXT, MIN_SCALE, MIN_SCALE_TEXT, power_interval

from .errors import CliError
from .options import QUOTE_LIMIT, quoted

__all__ = ["FLAG_TEMPLATES", "load_spec_file", "spec_from_flags", "parse_bins"]

FLAG_TEMPLATES = ("count", "sum", "mean", "histogram", "ols")
MAX_BINS = 4096

# What fits in a spec number of at most MAX_NUMBER_CHARACTERS characters, for numbers without a fraction.
_LENGTH_RANGE = f"use numbers strictly between -1e{MAX_NUMBER_CHARACTERS - 1} and 1e{MAX_NUMBER_CHARACTERS - 1}"

# The flag that sets each spec field, by the field's leading name, for errors from `build_spec`.
_FLAG_OF_FIELD = {
    "params": "--columns",
    "clip": "--clip",
    "filter": "--filter",
    "epsilon": "--epsilon",
    "exact": "--exact",
    "fractionalBits": "--fractional-bits",
    "contributionBound": "--contribution-bound",
}

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
        raise CliError(f"invalid {option} value {quoted(text)}: expected a decimal number such as 2.5") from None
    if not value.is_finite():
        raise CliError(f"invalid {option} value {quoted(text)}: expected a finite number")
    return Fraction(value)


def _range(text: str, option: str) -> tuple[Fraction, Fraction]:
    low_text, separator, high_text = text.partition(":")
    if not separator:
        raise CliError(f"invalid {option} range {quoted(text)}: write LOW:HIGH, for example 0:100")
    low, high = _number(low_text, option), _number(high_text, option)
    if low > high:
        raise CliError(f"invalid {option} range {quoted(text)}: LOW is above HIGH")
    return low, high


def _scientific(value: Fraction) -> str:
    """Write `value` with three significant digits, e.g. `1.00e+400`, however large it is."""
    return f"{Decimal(value.numerator) / Decimal(value.denominator):.2e}"


def _check_bin_lengths(text: str, numbers: Sequence[tuple[str, Fraction]], fix: str) -> list[str]:
    """Write labelled numbers as spec decimals; one longer than a spec number allows raises, quoting `text`."""
    written = []
    for label, number in numbers:
        number_text = format_decimal(number, "--bins")
        if len(number_text) > MAX_NUMBER_CHARACTERS:
            raise CliError(
                f"invalid --bins {quoted(text)}: {label} ({_scientific(number)}) takes {len(number_text)} characters "
                f"written out in full, but a spec number takes at most {MAX_NUMBER_CHARACTERS}; {fix}"
            )
        written.append(number_text)
    return written


def parse_bins(text: str) -> list[str]:
    """Histogram edges: `0,250,500,1000`, or `START:STOP:COUNT` for COUNT equal bins."""
    parts = text.split(":")
    if len(parts) == 3:
        start, stop = _number(parts[0], "--bins"), _number(parts[1], "--bins")
        try:
            count = int(parts[2])
        except ValueError:
            raise CliError(f"invalid --bins {quoted(text)}: COUNT in START:STOP:COUNT must be a whole number") from None
        if not 1 <= count <= MAX_BINS or stop <= start:
            raise CliError(f"invalid --bins {quoted(text)}: need START < STOP and 1 <= COUNT <= {MAX_BINS}")
        _check_bin_lengths(text, [("START", start), ("STOP", stop)], _LENGTH_RANGE)
        width = (stop - start) / count
        edges = [(f"edge {index + 1}", start + width * index) for index in range(count + 1)]
        try:
            return _check_bin_lengths(
                text, edges, "choose START, STOP and COUNT whose edges need fewer digits, or list the edges"
            )
        except SpecError:
            raise CliError(
                f"invalid --bins {quoted(text)}: the bin width {width} is not a finite decimal; "
                "choose START, STOP and COUNT so that it is, or list the edges"
            ) from None
    edges = [(f"edge {index + 1}", _number(edge, "--bins")) for index, edge in enumerate(text.split(","))]
    return _check_bin_lengths(text, edges, _LENGTH_RANGE)


def _owner_range(low: Fraction, high: Fraction, bound: int) -> tuple[Fraction, Fraction]:
    """Return the range of a sum of up to `bound` values in [low, high], since an owner may have fewer rows, or none."""
    return min(Fraction(0), low * bound), max(Fraction(0), high * bound)


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


def _ols_spec_arguments(
    columns: list[str], clip: str | None, bound: int, intercept: bool, standardize: bool = False
) -> tuple[dict[str, Any], list[tuple[Fraction, Fraction]]]:
    if len(columns) < (1 if intercept else 2):
        raise CliError("ols needs --columns RESPONSE,TERM,...: the response first, then the regressors")
    response = _ols_term(columns[0])
    if "level" in response:
        raise CliError(f"the response {columns[0]!r} of ols must be numeric, not a COLUMN=LEVEL dummy")
    terms = [_ols_term(text) for text in columns[1:]]
    names = [_term_name(response), *(_term_name(term) for term in terms)]
    dummies = {_term_name(term) for term in terms if "level" in term}
    bounds = _ols_bounds(clip, names, dummies)
    if standardize:
        bounds = _standardize(response, terms, bounds, intercept)

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


def _standardize(
    response: dict[str, Any], terms: list[dict[str, Any]], bounds: dict[str, tuple[Fraction, Fraction]], intercept: bool
) -> dict[str, tuple[Fraction, Fraction]]:
    """Map each numeric term whose column range is known onto [-1, 1], in place, and return the new term ranges.

    A DP query adds the same noise to every statistic. One statistic of large magnitude, such as x^4
    for x up to 60, therefore forces noise that drowns the small ones. Standardized terms keep every
    statistic within 1 per row. The range of `COLUMN` (power 1) gives the centre and scale of every
    power of that column. A term is centred only where the model keeps the result the same
    regression: an intercept, and every lower power of the column. The analyst still gets
    coefficients of the unstandardized terms.
    """
    ranges = dict(bounds)
    base_ranges = {
        (term["column"], term["transform"]): bounds[_term_name(term)]
        for term in [response, *terms]
        if "level" not in term and term["power"] == 1
    }
    powers: dict[tuple[str, str], set[int]] = {}
    for term in terms:
        if "level" not in term:
            powers.setdefault((term["column"], term["transform"]), set()).add(term["power"])

    for term in [response, *terms]:
        if "level" in term:
            continue
        key = (term["column"], term["transform"])
        if key not in base_ranges:
            continue
        low, high = base_ranges[key]
        center, scale = (low + high) / 2, (high - low) / 2
        name = _term_name(term)
        if scale <= 0:
            raise CliError(
                f"--clip gives {name} the range {format_decimal(low)}:{format_decimal(high)}, which has no width; a DP "
                "regression maps each term onto [-1, 1] by its range, so give LOW < HIGH"
            )
        if term is response:
            centred = intercept and term["power"] == 1
        else:
            centred = intercept and set(range(1, term["power"])) <= powers.get(key, set())
        if not centred:
            center, scale = Fraction(0), max(abs(low), abs(high))
        if not MIN_SCALE <= scale <= MAX_SCALE or abs(center) > MAX_SCALE:
            raise CliError(
                f"--clip gives {name} the range {format_decimal(low)}:{format_decimal(high)}; a DP regression maps "
                f"each term onto [-1, 1] by its range, which needs a half-width between {MIN_SCALE_TEXT} and "
                f"{MAX_SCALE_TEXT} and a midpoint within {MAX_SCALE_TEXT} of 0; rescale the column or narrow the range"
            )
        if center != 0:
            term["center"] = format_decimal(center, "--clip")
        term["scale"] = format_decimal(scale, "--clip")
        ranges[name] = power_interval((low - center) / scale, (high - center) / scale, term["power"])
    return ranges


def _largest_fractional_bits(magnitude: Fraction) -> int | None:
    """Return the most fractional bits at which `magnitude` encodes below 2^62, or None when even 0 bits fail."""
    for bits in range(MAX_FRACTIONAL_BITS, -1, -1):
        if round(magnitude * 2**bits) < ENCODED_SUM_LIMIT:
            return bits
    return None


def _smallest_fractional_bits(magnitude: Fraction) -> int | None:
    """Return the fewest fractional bits at which `magnitude` encodes to 1 or more, or None when 62 bits fail."""
    for bits in range(MAX_FRACTIONAL_BITS + 1):
        if round(magnitude * 2**bits) >= 1:
            return bits
    return None


def _check_encoding(
    template: str, owner_pairs: list[tuple[Fraction, Fraction]], clip: str | None, fractional_bits: int, bound: int
) -> None:
    """Raise, naming the flags, when one owner's output encodes to 0 or to 2^62 or more; the market rejects both."""
    magnitude = max(max(abs(low), abs(high)) for low, high in owner_pairs)
    encoded = round(magnitude * 2**fractional_bits)
    if encoded == 0:
        bits = _smallest_fractional_bits(magnitude)
        more_bits = f" or pass --fractional-bits {bits} or more" if bits is not None else ""
        raise CliError(
            f"invalid --clip {quoted(clip or '')}: every bound rounds to 0 in steps of 2^-{fractional_bits} "
            f"(--fractional-bits {fractional_bits}), so each owner's value would encode as 0; widen --clip{more_bits}"
        )
    if encoded < ENCODED_SUM_LIMIT:
        return

    bits = _largest_fractional_bits(magnitude)
    fewer_bits = f"pass --fractional-bits {bits} or less" if bits is not None else ""
    if clip is None:
        # count and histogram: the output is a row count, at most the contribution bound.
        raise CliError(
            f"--contribution-bound {bound} at --fractional-bits {fractional_bits} lets one owner's count encode to "
            f"{bound} x 2^{fractional_bits}, which reaches 2^62; {fewer_bits}"
        )

    # A row value (or, for ols, a product of two row values) up to this magnitude encodes below 2^62.
    largest = (ENCODED_SUM_LIMIT - 1) // (bound << fractional_bits)
    rows = "one row" if bound == 1 else f"up to {bound} rows"
    if template == "ols":
        problem = (
            f"ols sums products of two ranges (such as x*x, x*y and y*y) over {rows}, and the largest "
            f"product, {_scientific(magnitude / bound)}, encodes to 2^62 or more at --fractional-bits {fractional_bits}"
        )
        fixes = [f"narrow --clip so that every product is at most {largest}"] if largest >= 1 else []
    else:
        total = "value" if bound == 1 else f"sum over {rows}"
        problem = f"one owner's {total} encodes to 2^62 or more at --fractional-bits {fractional_bits}"
        fixes = [f"keep |LOW| and |HIGH| at most {largest}"] if largest >= 1 else []

    if fewer_bits:
        fixes.append(fewer_bits)
    raise CliError(f"invalid --clip {quoted(clip)}: {problem}; {', or '.join(fixes)}")


def _clip_strings(owner_pairs: list[tuple[Fraction, Fraction]], clip: str | None) -> list[tuple[str, str]]:
    """Write one owner's clip as spec decimals; a bound longer than a spec number allows raises, quoting `clip`."""
    written = [(format_decimal(low), format_decimal(high)) for low, high in owner_pairs]
    longest = max(len(text) for pair in written for text in pair)
    if longest > MAX_NUMBER_CHARACTERS:
        raise CliError(
            f"invalid --clip {quoted(clip or '')}: one owner's clip takes {longest} characters written out in full, "
            f"but a spec number takes at most {MAX_NUMBER_CHARACTERS}; round LOW and HIGH to fewer decimal places"
        )
    return written


def _flag_error(error: SpecError, typed: Mapping[str, str | None]) -> str:
    """Rewrite an error of `build_spec` so that it names the flag and quotes what the user typed."""
    field = error.field
    flag = "--bins" if field.startswith("params.edges") else _FLAG_OF_FIELD.get(re.split(r"[.\[]", field)[0])
    if flag is None:
        return f"the query flags make an invalid spec: {error}"
    value = typed.get(flag)
    quoted_value = f" {quoted(value)}" if value else ""
    if value is not None and error.value == value:
        return f"invalid {flag}{quoted_value}: {error.reason}"
    field_value = repr(error.value)
    if len(field_value) > QUOTE_LIMIT:
        field_value = field_value[:QUOTE_LIMIT] + "..."
    return f"invalid {flag}{quoted_value}: spec field {field} = {field_value} is invalid: {error.reason}"


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
    if epsilon is not None and epsilon > MAX_EPSILON_MILLIONTHS:
        raise CliError(
            f"--epsilon {format_epsilon(epsilon)} is above the largest accepted epsilon "
            f"{format_epsilon(MAX_EPSILON_MILLIONTHS)}, beyond which DP noise gives no meaningful privacy"
        )
    columns = columns or []
    bound = contribution_bound

    params: dict[str, Any]
    owner_pairs: list[tuple[Fraction, Fraction]]
    if template == "count":
        if columns:
            raise CliError("count takes no --columns; select rows with --filter")
        params, owner_pairs = {}, [(Fraction(0), Fraction(bound))]
    elif template in ("sum", "mean", "histogram"):
        if len(columns) != 1:
            raise CliError(f"{template} needs exactly one column in --columns, got {len(columns)}")
        params = {"column": columns[0]}
        if template == "histogram":
            if bins is None:
                raise CliError("histogram needs --bins, e.g. 0,250,500,1000 or 0:1000:4")
            params["edges"] = parse_bins(bins)
            owner_pairs = [(Fraction(0), Fraction(bound))]
        else:
            if clip is None:
                raise CliError(f"{template} needs --clip LOW:HIGH, the range of one row's {columns[0]}")
            low, high = _range(clip, "--clip")
            owner_pairs = [_owner_range(low, high, bound)]
            if template == "mean":
                owner_pairs.append((Fraction(0), Fraction(bound)))
    else:
        params, owner_pairs = _ols_spec_arguments(columns, clip, bound, intercept, standardize=not exact)
    _check_encoding(template, owner_pairs, clip, fractional_bits, bound)
    owner_clip: Any = _clip_strings(owner_pairs, clip)
    if template in ("count", "histogram"):
        # One pair that build_spec repeats for every coordinate (one per bin for a histogram).
        owner_clip = owner_clip[0]

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
        typed = {"--columns": ",".join(columns), "--clip": clip, "--filter": row_filter, "--bins": bins}
        raise CliError(_flag_error(error, typed)) from None
