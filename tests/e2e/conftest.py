"""Helpers for the end-to-end tests: each module starts its own `LocalMarket` (own Anvil, real
aggregator, owner-fleet and keeper processes) and drives it through the analyst API.

Nothing is mocked. Chain time moves with Anvil's interval blocks (one a second) and, to reach a
deadline without waiting, with `evm_increaseTime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest

from offchain_workers.analyst import Analyst
from offchain_workers.local_market import LocalMarket
from offchain_workers.spec import QuerySpec
from pmsr_chain import QueryInfo, QueryStatus

PRICE_PER_OWNER = 10**15
FEE_PER_AGGREGATOR = 10**16

# Seconds of wall-clock time a phase may take on a loaded 2-core machine before a test gives up.
PHASE_TIMEOUT = 120.0


@contextmanager
def running_market(tmp_path_factory: pytest.TempPathFactory, name: str, **options: object) -> Iterator[LocalMarket]:
    """Start a `LocalMarket` in a fresh directory; on failure, print the tail of every service log."""
    directory = tmp_path_factory.mktemp(name)
    market = LocalMarket(directory, **options)  # type: ignore[arg-type]
    try:
        market.start()
        yield market
    except BaseException:
        for process in market.processes():
            print(f"--- {process.name} ({process.log_path}):\n{process.log_tail(40)}")
        raise
    finally:
        market.stop()


def propose(
    analyst: Analyst,
    market: LocalMarket,
    spec: QuerySpec,
    owners: int,
    *,
    aggregators: Sequence[str] | None = None,
    min_owners: int | None = None,
    accept_window: int = 120,
    submit_window: int = 300,
    commit_window: int = 300,
    reveal_window: int = 300,
) -> int:
    """Propose `spec` for exactly `owners` owners (unless `min_owners` is lower) on the market's aggregators."""
    return analyst.propose(
        spec,
        price_per_owner=PRICE_PER_OWNER,
        min_owners=owners if min_owners is None else min_owners,
        max_owners=owners,
        fee_per_aggregator=FEE_PER_AGGREGATOR,
        aggregators=list(aggregators) if aggregators is not None else market.aggregator_addresses,
        accept_window=accept_window,
        submit_window=submit_window,
        commit_window=commit_window,
        reveal_window=reveal_window,
    )


def wait_for_info(market: LocalMarket, query_id: int, condition: Callable[[QueryInfo], bool], what: str,
                  timeout: float = PHASE_TIMEOUT) -> QueryInfo:
    """Poll `queryInfo` until `condition` is true and return the info."""
    latest: list[QueryInfo] = []

    def check() -> bool:
        latest[:] = [market.market.query_info(query_id)]
        return condition(latest[0])

    market.wait_until(check, timeout, what=f"query {query_id}: {what}")
    return latest[0]


def wait_for_status(market: LocalMarket, query_id: int, status: QueryStatus, timeout: float = PHASE_TIMEOUT) -> QueryInfo:
    return wait_for_info(market, query_id, lambda info: info.status == status, f"status {status.name}", timeout)


def wage_design(workers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return the design matrix and response of log(wage) ~ experience + experience^2 + education + afam."""
    experience = workers["experience"].to_numpy(dtype=float)
    design = np.column_stack(
        [
            np.ones(len(workers)),
            experience,
            experience**2,
            workers["education"].to_numpy(dtype=float),
            (workers["ethnicity"] == "afam").to_numpy(dtype=float),
        ]
    )
    return design, np.log(workers["wage"].to_numpy(dtype=float))


def plaintext_wage_coefficients(workers: pd.DataFrame) -> np.ndarray:
    design, response = wage_design(workers)
    coefficients, _, rank, _ = np.linalg.lstsq(design, response, rcond=None)
    assert rank == design.shape[1], "the sample must identify every coefficient"
    return coefficients
