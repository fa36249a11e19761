"""The recommender audit: how MovieLens users rate each genre, counted under differential privacy.

Each of the 671 users of dslabs/movielens (100,004 ratings) is a data owner holding their own
rating history in their own file. The analyst, auditing a recommender, requests a crosstab of
rating band by genre (the first genre listed for the movie). Every user contributes at most
`contribution_bound` ratings, which bounds one user's influence on the table, so the aggregators'
Laplace noise makes the published table differentially private for each user's whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from pmsr_chain import ETHER
from pmsr_chain.errors import InvalidInputError

from .. import datasets
from ..budget import format_epsilon
from ..dp import noise_scale
from ..owner.config import LocalPolicy
from . import reference
from .phases import PhaseClock
from .session import DemoSession, QueryRequest
from .summary import ledger_summary, phase_summary, query_entry

__all__ = ["AuditOptions", "run_audit"]

# Local policy of every user's agent: counting queries that read only the rating and the genre.
OWNER_POLICY = LocalPolicy(
    allowed_templates=frozenset({"count", "histogram", "crosstab"}), allowed_columns=frozenset({"rating", "genre"})
)

PRICE_PER_OWNER = ETHER // 1_000
FEE_PER_AGGREGATOR = ETHER // 100


@dataclass(frozen=True)
class AuditOptions:
    """Options of `pmsr demo audit`; `users` of None takes all 671 users."""

    users: int | None = None
    epsilon_millionths: int = 1_000_000
    contribution_bound: int = 50
    aggregators: int = 3
    fleets: int = 2

    def __post_init__(self) -> None:
        if self.users is not None and not 2 <= self.users <= datasets.MOVIELENS_USERS:
            raise InvalidInputError(f"user count {self.users} is invalid; pass 2..{datasets.MOVIELENS_USERS}")
        if self.contribution_bound < 1:
            raise InvalidInputError(f"contribution bound {self.contribution_bound} is invalid; pass at least 1 rating")
        if self.epsilon_millionths < 0:
            raise InvalidInputError(f"epsilon {self.epsilon_millionths} millionths is negative; pass 0 for an exact query")


def run_audit(options: AuditOptions, work_dir: Path, progress: IO[str]) -> dict[str, Any]:
    """Run the audit on a fresh local market under `work_dir`; print phases on `progress`."""
    clock = PhaseClock(progress)
    with clock.phase("loading the users' rating histories"):
        histories = list(datasets.movielens_owner_tables(options.users).values())
    count = len(histories)
    exact = options.epsilon_millionths == 0
    clock.note(f"{count} users holding {sum(len(table) for table in histories):,} ratings, {options.aggregators} "
               f"aggregators, " + ("an exact query" if exact else f"epsilon {format_epsilon(options.epsilon_millionths)}"))
    spec = datasets.movielens_crosstab_spec(
        contribution_bound=options.contribution_bound, epsilon_millionths=options.epsilon_millionths
    )
    request = QueryRequest("rating band by genre crosstab", spec, count, count, PRICE_PER_OWNER, FEE_PER_AGGREGATOR)

    with DemoSession(clock, work_dir / "market", aggregators=options.aggregators) as session:
        session.register_aggregators()
        session.register_owners(histories, fleets=options.fleets, local_policy=OWNER_POLICY)
        session.start_services()
        (query_id,) = session.propose([request], submit_window=300 + count)
        (result,) = session.follow([query_id], timeout=2_400 + count)
        refunds = session.settle([query_id], timeout=300)
        ledger = session.ledger()
        positions = session.owner_index()
        market_address = session.local.market.address

    included = sorted(positions[owner][1] for owner in ledger.included_owners(query_id))
    plaintext = reference.rating_crosstab(
        [histories[index] for index in included], rating_edges=datasets.RATING_EDGES,
        genres=datasets.MOVIELENS_GENRES, contribution_bound=options.contribution_bound,
    )
    output = result.output or {}
    secure = np.asarray(output["counts"], dtype=np.float64) if "counts" in output else None
    crosstab: dict[str, Any] = {
        "query_id": query_id,
        "rows": list(spec.params.rows.labels),
        "columns": list(spec.params.columns.labels),
        "row_column": "rating",
        "column_column": "genre",
        "counts": secure.tolist() if secure is not None else None,
        "plaintext_counts": plaintext.tolist(),
        "included_owners": result.included_owners,
        "contribution_bound": options.contribution_bound,
        "exact": spec.exact,
        "error": result.postprocess_error,
    }
    if secure is not None:
        crosstab["max_abs_difference"] = float(np.max(np.abs(secure - plaintext)))
        crosstab["total_abs_difference"] = float(np.sum(np.abs(secure - plaintext)))
    if not spec.exact:
        crosstab["noise_scale_per_aggregator"] = noise_scale(spec) / 2**spec.fractional_bits
        crosstab["l1_sensitivity"] = float(spec.l1_sensitivity)
    report: dict[str, Any] = {
        "demo": "audit",
        "dataset": "dslabs/movielens",
        "owners": count,
        "ratings": int(sum(len(table) for table in histories)),
        "aggregators": options.aggregators,
        "exact": exact,
        "epsilon": options.epsilon_millionths / 1_000_000,
        "market": market_address,
        "crosstab": crosstab,
        "queries": [query_entry(query_id, request, options.aggregators, refunds[query_id])],
    }
    report.update(ledger_summary(ledger, [query_id]))
    report["seconds"] = phase_summary(clock)
    report["peak_memory_mb"] = session.peak_rss_mb
    return report

