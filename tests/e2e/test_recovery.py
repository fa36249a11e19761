"""Crash recovery end to end: an aggregator killed with SIGKILL mid-query, twice, still yields the exact result.

The first kill lands during accumulation. Half of the owners have submitted and the aggregator
has stored and summed their shares, and the other half submit while it is down. The second
kill lands between its commit and its reveal. After each restart the aggregator resumes from its
SQLite database and the chain, and the published OLS coefficients must equal numpy's least
squares on the same workers, which fails if any share was counted twice or lost.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from offchain_workers.datasets import cps1988_owner_tables, wage_equation_spec
from pmsr_chain import QueryStatus

from .conftest import PHASE_TIMEOUT, plaintext_wage_coefficients, propose, running_market, wait_for_info, wait_for_status

OWNERS = 40
# Seconds the victim gets to read and store the first half's shares before it is killed.
INGEST_SECONDS = 1.5


def test_killed_aggregator_recovers(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_market(tmp_path_factory, "recovery", aggregators=3) as market:
        market.start_aggregators()
        tables = cps1988_owner_tables(OWNERS, seed=1234)
        group = market.add_owners(tables, fleets=2, start=False)
        first_fleet, second_fleet = group.fleets
        first_fleet.start()
        market.wait_ready()
        analyst = market.analyst()
        client = market.market
        victim = market.aggregator_addresses[1]
        half = group.fleet_of.count(0)

        query_id = propose(analyst, market, wage_equation_spec(OWNERS), OWNERS)
        wait_for_info(market, query_id, lambda info: info.submitted_count == half, "the first fleet submitted")
        time.sleep(INGEST_SECONDS)
        market.kill_aggregator(1)
        # Aggregator 0 stops before the query closes, so it cannot commit, and no aggregator can
        # reveal while the victim commits and is killed again.
        market.stop_aggregator(0)
        second_fleet.start()
        wait_for_info(market, query_id, lambda info: info.submitted_count == OWNERS, "every owner submitted")
        market.start_aggregator(1)
        market.wait_until(lambda: client.aggregator_query_state(query_id, victim).committed, PHASE_TIMEOUT,
                          what="the restarted aggregator to commit")
        market.kill_aggregator(1)
        assert client.query_info(query_id).revealed_count == 0
        market.start_aggregator(0)
        wait_for_info(market, query_id, lambda info: info.committed_count == 3, "aggregator 0 committed")
        market.start_aggregator(1)
        wait_for_status(market, query_id, QueryStatus.PUBLISHED)
        result = analyst.result(query_id)

        assert market.aggregators[1].process.starts == 3
        assert result.included_owners == OWNERS
        expected = plaintext_wage_coefficients(pd.concat(tables, ignore_index=True))
        secure = np.array([result.output["coefficients"][name] for name in result.output["regressors"]])
        np.testing.assert_allclose(secure, expected, rtol=0, atol=1e-6)
