"""The CPS1988 wage study run through the market: the main demo.

Each sampled worker of AER/CPS1988 (28,155 US workers, March 1988 Current Population Survey) is
a data owner holding its own row in its own file. The analyst pays for two queries, the wage
equation `log(wage) ~ experience + experience^2 + education + ethnicity` (an `ols` map) and a
histogram of weekly wages. `run_wage_study` returns a JSON-ready report: the secure results beside
the plaintext computation on the same owners, the time of each phase, the gas and ether each role
spent, and what each owner and aggregator was paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from pmsr_chain import ETHER
from pmsr_chain.errors import InvalidInputError

from .. import datasets
from ..analyst import QueryResult
from ..budget import format_epsilon
from ..dp import noise_scale, result_noise_sd
from ..errors import SingularMatrixError
from ..owner.config import LocalPolicy
from ..spec import QuerySpec
from . import reference
from .ledger import Ledger
from .owner_files import write_row_files
from .phases import PhaseClock
from .session import DemoSession, QueryRequest
from .summary import ledger_summary, phase_summary, query_entry

__all__ = ["WageStudyOptions", "run_wage_study", "DEFAULT_EPSILON_MILLIONTHS"]

logger = logging.getLogger(__name__)

# Epsilon of the regression when the command line gives none: 10, in millionths. Its 22 statistics
# share the noise budget. At 2,000 owners, epsilon 10 keeps the noise on each coefficient within a few
# sampling standard errors, and at epsilon 1 the noise is ten times larger.
DEFAULT_EPSILON_MILLIONTHS = 10_000_000
# Epsilon of the histogram when the command line gives none: 1. One owner changes one count by 1,
# so a count's noise has a standard deviation of about 2.4 at this epsilon.
DEFAULT_HISTOGRAM_EPSILON_MILLIONTHS = 1_000_000


# Local policy of every worker's agent: these two templates, reading only these columns.
OWNER_POLICY = LocalPolicy(
    allowed_templates=frozenset({"ols", "histogram"}),
    allowed_columns=frozenset({"wage", "education", "experience", "ethnicity"}),
)

# From this many owners on, Anvil mines on a 1-second interval only (see `run_wage_study`).
INTERVAL_MINING_OWNERS = 500

# Payment terms of the demo's analyst, in wei.
PRICE_PER_OWNER = ETHER // 1_000
FEE_PER_AGGREGATOR = ETHER // 100


@dataclass(frozen=True)
class WageStudyOptions:
    """Options of `pmsr demo wages`.

    `owners` of None takes every worker; otherwise `seed` picks which workers are sampled.
    `epsilon_millionths` is the regression's epsilon and `histogram_epsilon_millionths` the
    histogram's. Both 0 runs both queries exact: the specs carry the explicit no-noise flag, and
    every owner's policy allows exact queries.
    """

    owners: int | None = 2_000
    epsilon_millionths: int = DEFAULT_EPSILON_MILLIONTHS
    histogram_epsilon_millionths: int = DEFAULT_HISTOGRAM_EPSILON_MILLIONTHS
    aggregators: int = 3
    seed: int = 0
    fleets: int = 2

    def __post_init__(self) -> None:
        if self.owners is not None and not 2 <= self.owners <= datasets.CPS1988_WORKERS:
            raise InvalidInputError(
                f"owner count {self.owners} is invalid; pass 2..{datasets.CPS1988_WORKERS} or all"
            )
        for value in (self.epsilon_millionths, self.histogram_epsilon_millionths):
            if value < 0:
                raise InvalidInputError(f"epsilon {value} millionths is negative; pass 0 for exact queries")
        if self.fleets < 1:
            raise InvalidInputError(f"fleet count {self.fleets} is invalid; pass at least 1")

    @property
    def exact(self) -> bool:
        """Whether both queries run without noise."""
        return self.epsilon_millionths == 0 and self.histogram_epsilon_millionths == 0

    def describe_privacy(self) -> str:
        if self.exact:
            return "exact queries (no noise)"
        regression = format_epsilon(self.epsilon_millionths)
        histogram = format_epsilon(self.histogram_epsilon_millionths)
        if regression == histogram:
            return f"epsilon {regression} per query"
        return f"epsilon {regression} for the regression and {histogram} for the histogram"


def sample_workers(owners: int | None, seed: int) -> pd.DataFrame:
    """Return the CPS1988 rows of the demo's owners: all in table order, or `owners` sampled with `seed`."""
    workers = datasets.load_cps1988()
    if owners is None or owners == len(workers):
        return workers
    return workers.sample(n=owners, random_state=seed).reset_index(drop=True)


def _submit_window(owners: int) -> int:
    # The query closes as soon as every owner has submitted, so a generous window (5 minutes plus
    # a tenth of a second per owner) only matters when an owner never submits.
    return 300 + owners // 10


def _regression_section(
    result: QueryResult, spec: QuerySpec, pooled: pd.DataFrame, aggregators: int
) -> dict[str, Any]:
    section: dict[str, Any] = {
        "query_id": result.query_id,
        "formula": "log(wage) ~ experience + experience^2 + education + ethnicity",
        "included_owners": result.included_owners,
        "exact": spec.exact,
        "epsilon": spec.epsilon / 1_000_000,
        "fractional_bits": spec.fractional_bits,
        "coefficients": None,
        "standard_errors": None,
        "plaintext_coefficients": None,
        "plaintext_standard_errors": None,
        "difference": None,
        "max_abs_difference": None,
        "r_squared": None,
        "plaintext_r_squared": None,
        "error": result.postprocess_error,
    }
    # The last coordinate of the ols output is n, the number of rows summed, so it shows the noise plainly.
    section["published_n"] = float(result.values[-1])
    section["coordinates"] = spec.output_length
    section["raised_eigenvalues"] = (result.output or {}).get("raised_eigenvalues", 0)
    section["noise_sd"] = None
    if not spec.exact:
        # Each aggregator adds discrete Laplace noise of this scale, in the statistics' own units.
        section["noise_scale_per_aggregator"] = noise_scale(spec) / 2**spec.fractional_bits
        section["noise_sd_per_coordinate"] = result_noise_sd(spec, aggregators)
        section["l1_sensitivity"] = float(spec.l1_sensitivity)
        section["aggregators_adding_noise"] = aggregators
        if result.output is not None:
            noise = result.output.get("noise_standard_errors") or {}
            section["noise_sd"] = {name: noise[name] for name in reference.WAGE_TERMS} if noise else None
            section["warning"] = result.output.get("warning")
    try:
        plain = reference.wage_regression(pooled)
    except SingularMatrixError as error:
        section["plaintext_error"] = str(error)
        plain = None
    if plain is not None:
        section["plaintext_coefficients"] = plain.coefficients
        section["plaintext_standard_errors"] = plain.standard_errors
        section["plaintext_r_squared"] = plain.r_squared
    if result.output is not None:
        secure = result.output["coefficients"]
        section["coefficients"] = {name: secure[name] for name in reference.WAGE_TERMS}
        errors = result.output.get("standard_errors")
        section["standard_errors"] = {name: errors[name] for name in reference.WAGE_TERMS} if errors else None
        section["r_squared"] = result.output.get("r_squared")
        if plain is not None:
            difference = {name: secure[name] - plain.coefficients[name] for name in reference.WAGE_TERMS}
            section["difference"] = difference
            section["max_abs_difference"] = max(abs(value) for value in difference.values())
    return section


def _histogram_section(result: QueryResult, pooled: pd.DataFrame, aggregators: int) -> dict[str, Any]:
    output = result.output or {}
    return {
        "epsilon": result.spec.epsilon / 1_000_000,
        "noise_sd_per_count": result_noise_sd(result.spec, aggregators),
        "query_id": result.query_id,
        "column": "wage",
        "unit": "dollars per week",
        "included_owners": result.included_owners,
        "exact": result.spec.exact,
        "edges": list(datasets.WAGE_EDGES),
        "bins": output.get("bins"),
        "counts": output.get("counts"),
        "plaintext_counts": reference.wage_histogram(pooled, datasets.WAGE_EDGES),
        "error": result.postprocess_error,
    }


def _included_rows(ledger: Ledger, query_id: int, session: DemoSession, workers: pd.DataFrame) -> pd.DataFrame:
    positions = session.owner_index()
    rows = sorted(positions[owner][1] for owner in ledger.included_owners(query_id))
    return workers.iloc[rows]


def run_wage_study(options: WageStudyOptions, work_dir: Path, progress: IO[str]) -> dict[str, Any]:
    """Run the wage study on a fresh local market under `work_dir`; print phases on `progress`.

    Raises:
        QueryCancelledError, QueryFailedError, ResultTimeoutError: a query did not publish.
        PmsrError: the chain or a service failed.
    """
    clock = PhaseClock(progress)
    with clock.phase("sampling workers and writing one data file per owner"):
        workers = sample_workers(options.owners, options.seed)
        paths = write_row_files(workers, work_dir / "owner-data", prefix="worker")
    count = len(workers)
    clock.note(f"{count} owners, {options.aggregators} aggregators, {options.describe_privacy()}")

    regression_spec = datasets.wage_equation_spec(
        count, epsilon_millionths=options.epsilon_millionths, aggregators=options.aggregators
    )
    histogram_spec = datasets.wage_histogram_spec(epsilon_millionths=options.histogram_epsilon_millionths)
    requests = [
        QueryRequest("wage equation (ols)", regression_spec, count, count, PRICE_PER_OWNER, FEE_PER_AGGREGATOR),
        QueryRequest("weekly wage histogram", histogram_spec, count, count, PRICE_PER_OWNER, FEE_PER_AGGREGATOR),
    ]

    # For small runs Anvil mines each transaction as it arrives, which keeps every step short. For
    # thousands of owners it mines once a second only, so a burst of submissions shares a few blocks.
    automine = count < INTERVAL_MINING_OWNERS
    with DemoSession(clock, work_dir / "market", aggregators=options.aggregators, automine=automine) as session:
        session.register_aggregators()
        session.register_owners(paths, fleets=options.fleets, local_policy=OWNER_POLICY)
        session.start_services()
        query_ids = session.propose(requests, submit_window=_submit_window(count))
        results = session.follow(query_ids, timeout=_submit_window(count) + 1_800)
        refunds = session.settle(query_ids, timeout=120 + count / 50)
        ledger = session.ledger()
        market_address = session.local.market.address
    regression, histogram = results

    report: dict[str, Any] = {
        "demo": "wages",
        "dataset": "AER/CPS1988",
        "owners": count,
        "aggregators": options.aggregators,
        "seed": None if options.owners is None else options.seed,
        "exact": options.exact,
        "epsilon": options.epsilon_millionths / 1_000_000,
        "histogram_epsilon": options.histogram_epsilon_millionths / 1_000_000,
        "privacy": options.describe_privacy(),
        "market": market_address,
        "ols": _regression_section(
            regression, regression_spec, _included_rows(ledger, regression.query_id, session, workers),
            options.aggregators,
        ),
        "histogram": _histogram_section(
            histogram, _included_rows(ledger, histogram.query_id, session, workers), options.aggregators
        ),
        "queries": [
            query_entry(query_id, request, options.aggregators, refunds[query_id])
            for query_id, request in zip(query_ids, requests)
        ],
    }
    report.update(ledger_summary(ledger, query_ids))
    report["seconds"] = phase_summary(clock)
    report["peak_memory_mb"] = session.peak_rss_mb
    return report

