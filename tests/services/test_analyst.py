"""Analyst API on Anvil: propose with the exact escrow, follow, read the result, take the refund."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from offchain_workers.analyst import (
    Analyst,
    AnalystError,
    QueryCancelledError,
    ResultNotPublishedError,
    ResultTimeoutError,
)
from offchain_workers.errors import PrivacyError, SpecError
from offchain_workers.spec import build_spec
from pmsr_chain import QueryStatus
from pmsr_chain.errors import InvalidInputError

PRICE = 2 * 10**15
FEE = 10**16
PHASES = ["accepting", "submitting", "complaints", "committing", "revealing", "published"]


def _mean_spec():
    return build_spec("mean", {"column": "x"}, clip=[("-100", "100"), ("0", "1")], fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True)


def test_propose_escrows_exact_payment(harness, market, aggregators, analyst, sum_spec):
    before = harness.balance(analyst.address)
    now = harness.now()
    query_id = analyst.propose(sum_spec(), price_per_owner=PRICE, min_owners=2, max_owners=7, fee_per_aggregator=FEE,
                               aggregators=aggregators.addresses, accept_window=100, submit_window=200,
                               commit_window=300, reveal_window=400)
    info = market.query_info(query_id)
    payment = PRICE * 7 + FEE * 2
    assert info.escrow == payment
    assert info.analyst == analyst.address
    spent = before - harness.balance(analyst.address)
    assert payment < spent < payment + 10**16  # the rest is the proposal's gas
    params = info.params
    assert now < params.accept_deadline <= now + 100 + 2
    assert params.submit_deadline == params.accept_deadline + 200
    assert params.commit_deadline == params.submit_deadline + market.complaint_period() + 300
    assert params.reveal_deadline == params.commit_deadline + 400
    assert params.max_abs_encoded == sum_spec().max_abs_encoded
    assert analyst.spec(query_id) == sum_spec()


def test_propose_rejects_invalid_requests(harness, market, aggregators, analyst, sum_spec):
    count = market.query_count()
    wide = build_spec("sum", {"column": "x"}, clip=("-1000000", "1000000"), fractional_bits=40,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    with pytest.raises(SpecError, match="2\\^62"):
        analyst.propose(wide, price_per_owner=0, min_owners=1, max_owners=10**5, aggregators=aggregators.addresses)
    noisy = build_spec("sum", {"column": "x"}, clip=("-1000", "1000"), fractional_bits=40,
                       contribution_bound=1, epsilon_millionths=1, exact=False)
    with pytest.raises(PrivacyError, match="wrap"):
        analyst.propose(noisy, price_per_owner=0, min_owners=1, max_owners=2, aggregators=aggregators.addresses)
    with pytest.raises(InvalidInputError, match="min_owners"):
        analyst.propose(sum_spec(), price_per_owner=0, min_owners=3, max_owners=2, aggregators=aggregators.addresses)
    with pytest.raises(InvalidInputError, match="QuerySpec"):
        analyst.propose(sum_spec().to_dict(), price_per_owner=0, min_owners=1, max_owners=2,
                        aggregators=aggregators.addresses)
    stranger = harness.new_client().sender.address
    with pytest.raises(AnalystError, match="not registered"):
        analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                        aggregators=[aggregators.addresses[0], stranger])
    poor = Analyst(harness.new_client(balance_wei=10**15))
    with pytest.raises(AnalystError, match="escrow is"):
        poor.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=2, aggregators=aggregators.addresses)
    assert market.query_count() == count  # nothing reached the chain


def test_auto_selects_usable_aggregators(harness, market, make_aggregators, analyst, sum_spec):
    driver = make_aggregators(2)
    exiting = driver.aggregators[1]
    exiting.client.begin_aggregator_exit()
    chosen = analyst.select_aggregators(market.max_aggregators())
    assert exiting.address not in chosen
    assert len(chosen) == market.max_aggregators()
    assert len(analyst.select_aggregators()) == market.max_aggregators()
    with pytest.raises(InvalidInputError, match="aggregator count 1"):
        analyst.select_aggregators(1)
    for address in chosen:
        info = market.aggregator_info(address)
        assert info.registered and info.exit_requested_at == 0
    with pytest.raises(AnalystError, match="exiting"):
        analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2, aggregators=driver.addresses)
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2, aggregator_count=3)
    assert len(market.query_info(query_id).params.aggregators) == 3
    assert exiting.address not in market.query_info(query_id).params.aggregators


def test_wait_for_result_reports_progress_and_result(harness, market, aggregators, make_owners, analyst, open_fleets):
    values = [10.0, -4.0, 30.0]
    owners = make_owners(values, tables=[pd.DataFrame({"x": [value]}) for value in values])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(_mean_spec(), price_per_owner=PRICE, min_owners=3, max_owners=5, fee_per_aggregator=FEE,
                               aggregators=aggregators.addresses)
    seen = []
    outcome = {}

    def wait() -> None:
        outcome["result"] = analyst.wait_for_result(query_id, timeout=60, progress=seen.append)

    waiter = threading.Thread(target=wait)
    waiter.start()
    fleet.run_once()
    aggregators.accept(query_id)
    fleet.run_once()
    harness.advance_past(market.query_info(query_id).params.submit_deadline)
    aggregators.publish(query_id)
    waiter.join(timeout=60)
    assert not waiter.is_alive()

    phases = [progress.phase for progress in seen]
    assert phases[0] == "accepting"
    assert phases[-1] == "published"
    assert [phase for phase in PHASES if phase in phases] == list(dict.fromkeys(phases))
    assert seen[-1].submitted == 3

    result = outcome["result"]
    assert result.query_id == query_id
    assert result.included_owners == 3
    assert result.exact
    assert len(result.words) == 2
    assert result.values.tolist() == [36.0, 3.0]
    assert result.words[1] == 3 * 2**16
    assert result.output == {"sum": 36.0, "count": 3.0, "mean": 12.0}
    assert analyst.result(query_id).as_dict()["words"] == [str(word) for word in result.words]

    # Two of the five owner slots went unused.
    assert analyst.refund(query_id) == 2 * PRICE
    assert [item.action for item in fleet.run_once()].count("claimed") == 3


def test_cancelled_query_raises_and_refunds(harness, market, aggregators, analyst, sum_spec):
    query_id = analyst.propose(sum_spec(), price_per_owner=PRICE, min_owners=1, max_owners=3, fee_per_aggregator=FEE,
                               aggregators=aggregators.addresses, accept_window=30)
    harness.advance_past(market.query_info(query_id).params.accept_deadline)
    market.with_sender(harness.new_client().sender).cancel(query_id)
    with pytest.raises(QueryCancelledError, match="not accepted") as caught:
        analyst.wait_for_result(query_id, timeout=10)
    assert caught.value.query_id == query_id
    with pytest.raises(ResultNotPublishedError, match="cancelled"):
        analyst.result(query_id)
    assert analyst.refund(query_id) == PRICE * 3 + FEE * 2
    assert market.query_info(query_id).status == QueryStatus.CANCELLED


def test_wait_for_result_times_out(aggregators, analyst, sum_spec):
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    with pytest.raises(ResultTimeoutError, match=f"query {query_id} has no result after"):
        analyst.wait_for_result(query_id, timeout=0.2)


def test_spec_read_from_event(harness, aggregators, analyst, sum_spec):
    query_id = analyst.propose(sum_spec("y"), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    other = Analyst(harness.new_client())
    assert other.spec(query_id) == sum_spec("y")
    with pytest.raises(AnalystError, match="no QueryProposed event"):
        other.spec(10**9)


def test_auto_takes_every_usable_aggregator(harness, market, make_aggregators, sum_spec):
    # Registrations before start_block are out of sight, so only the three below are candidates.
    start = harness.w3.eth.block_number + 1
    driver = make_aggregators(3)
    analyst = Analyst(harness.new_client(), start_block=start)
    assert sorted(analyst.select_aggregators()) == sorted(driver.addresses)
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2)
    assert sorted(market.query_info(query_id).params.aggregators) == sorted(driver.addresses)
    with pytest.raises(AnalystError, match="3 usable aggregators are registered but the query needs 4"):
        analyst.select_aggregators(4)
