"""Failure paths end to end: unaccepted queries, too few owners, absent aggregators, misbehaving owners.

One local market with four aggregators: 0..2 accept every query, 3 rejects any fee below 1 ether.
Aggregators stake 3 ether, so one slash of 0.5 ether leaves them eligible for the next test. Ten
CPS1988 workers run owner agents in two fleets; two more registered owners run no agent, and the
misbehaving-owner test sends their crafted submissions directly. The keeper process settles every
stalled query; the tests only move the chain clock past the deadline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from offchain_workers.aggregator.policy import AcceptancePolicy
from offchain_workers.analyst import Analyst
from offchain_workers.datasets import cps1988_owner_tables, wage_histogram_spec
from offchain_workers.encryption import ShareContext, encrypt_shares
from offchain_workers.keys import AggregatorKeyPair
from offchain_workers.local_market import LocalMarket
from offchain_workers.mapping import map_owner_data
from offchain_workers.spec import build_spec
from offchain_workers.local.runner import LOCAL_PARAMETERS
from pmsr_chain import ETHER, ContractRevertError, MarketClient, QueryStatus, SubmissionState
from pmsr_chain.events import ComplaintFiled, SharesSubmitted

from .conftest import PHASE_TIMEOUT, propose, running_market, wait_for_info, wait_for_status

OWNERS = 10
# Aggregators must complain within this many seconds of the last submission. Longer than the
# runner's 2 seconds, so a service poll delayed on a loaded machine still lands in the window.
COMPLAINT_PERIOD = 5
AGGREGATOR_STAKE = 3 * ETHER
REJECTING_FEE = ETHER
SUM_FRACTIONAL_BITS = 16


@dataclass
class Session:
    market: LocalMarket
    analyst: Analyst
    workers: pd.DataFrame
    rogues: list[MarketClient]

    @property
    def client(self) -> MarketClient:
        return self.market.market

    def stakes(self) -> list[int]:
        return [self.client.aggregator_info(address).stake for address in self.market.aggregator_addresses]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    parameters = dataclasses.replace(LOCAL_PARAMETERS, complaint_period=COMPLAINT_PERIOD)
    with running_market(tmp_path_factory, "failures", aggregators=4, market_parameters=parameters) as market:
        policies = [AcceptancePolicy()] * 3 + [AcceptancePolicy(min_fee_wei=REJECTING_FEE)]
        market.start_aggregators(policies=policies, stake=AGGREGATOR_STAKE)
        tables = cps1988_owner_tables(OWNERS, seed=88)
        market.add_owners(tables, fleets=2)
        rogues = market.register_owner_accounts(2)
        market.wait_ready()
        yield Session(market, market.analyst(), pd.concat(tables, ignore_index=True), rogues)


def test_unaccepted_query_cancelled(session: Session) -> None:
    market, client = session.market, session.client
    stakes = session.stakes()
    chosen = [market.aggregator_addresses[i] for i in (0, 1, 3)]
    query_id = propose(session.analyst, market, wage_histogram_spec(), OWNERS, aggregators=chosen, accept_window=30)
    params = client.query_info(query_id).params

    wait_for_info(market, query_id, lambda info: info.accepted_count == 2, "two aggregators accepted")
    market.advance_past(params.accept_deadline)
    info = wait_for_status(market, query_id, QueryStatus.CANCELLED)

    assert client.aggregator_query_state(query_id, chosen[2]).accepted is False
    assert info.submitted_count == 0
    assert info.slashed == 0
    assert session.analyst.refund(query_id) == params.required_payment
    assert session.stakes() == stakes


def test_too_few_owners_cancelled(session: Session) -> None:
    market, client = session.market, session.client
    epsilon = 500_000
    spec = wage_histogram_spec(epsilon_millionths=epsilon)
    owners = market.owner_addresses
    used_before = {owner: client.owner_info(owner).epsilon_used for owner in owners}
    query_id = propose(session.analyst, market, spec, OWNERS + 2, min_owners=OWNERS + 1,
                       aggregators=market.aggregator_addresses[:3])
    params = client.query_info(query_id).params

    wait_for_info(market, query_id, lambda info: info.submitted_count == OWNERS, "every owner submitted")
    for owner in owners:
        assert client.owner_info(owner).epsilon_used == used_before[owner] + epsilon
    market.advance_past(params.submit_deadline)
    wait_for_status(market, query_id, QueryStatus.CANCELLED)
    assert session.analyst.refund(query_id) == params.required_payment

    def budgets_released() -> bool:
        return all(client.submission_state(query_id, owner) == SubmissionState.SETTLED for owner in owners)

    market.wait_until(budgets_released, PHASE_TIMEOUT, what="every owner to release its budget")
    for owner in owners:
        assert client.owner_info(owner).epsilon_used == used_before[owner]


def test_absent_before_commit_slashed(session: Session) -> None:
    market, client = session.market, session.client
    slash = client.slash_amount()
    query_id = propose(session.analyst, market, wage_histogram_spec(), OWNERS, aggregators=market.aggregator_addresses[:3])
    params = client.query_info(query_id).params

    wait_for_status(market, query_id, QueryStatus.OPEN)
    market.stop_aggregator(0)
    stakes = session.stakes()
    wait_for_info(market, query_id, lambda info: info.committed_count == 2, "aggregators 1 and 2 committed")
    market.advance_past(params.commit_deadline)
    info = wait_for_status(market, query_id, QueryStatus.FAILED)

    assert info.slashed == slash
    assert session.stakes() == [stakes[0] - slash, *stakes[1:]]
    analyst_before = market.balance(session.analyst.address)
    refund = session.analyst.refund(query_id)
    assert refund == params.required_payment + slash
    assert market.balance(session.analyst.address) > analyst_before + refund - ETHER // 100
    market.start_aggregator(0)


def test_absent_before_reveal_slashed(session: Session) -> None:
    market, client = session.market, session.client
    slash = client.slash_amount()
    addresses = market.aggregator_addresses
    query_id = propose(session.analyst, market, wage_histogram_spec(), OWNERS, aggregators=addresses[:3])
    params = client.query_info(query_id).params

    # With aggregator 0 stopped no aggregator can reveal, so aggregator 2 can be stopped between
    # its commit and its reveal.
    wait_for_status(market, query_id, QueryStatus.OPEN)
    market.stop_aggregator(0)
    market.wait_until(lambda: client.aggregator_query_state(query_id, addresses[2]).committed, PHASE_TIMEOUT,
                      what="aggregator 2 to commit")
    market.stop_aggregator(2)
    market.start_aggregator(0)
    wait_for_info(market, query_id, lambda info: info.committed_count == 3 and info.revealed_count == 2,
                  "aggregators 0 and 1 revealed")
    stakes = session.stakes()
    market.advance_past(params.reveal_deadline)
    info = wait_for_status(market, query_id, QueryStatus.FAILED)

    assert info.slashed == slash
    assert session.stakes() == [stakes[0], stakes[1], stakes[2] - slash, stakes[3]]
    assert session.analyst.refund(query_id) == params.required_payment + slash
    market.start_aggregator(2)


def test_misbehaving_owners_excluded(session: Session) -> None:
    market, client = session.market, session.client
    spec = build_spec("sum", {"column": "wage"}, clip=("0", "20000"), fractional_bits=SUM_FRACTIONAL_BITS,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    query_id = propose(session.analyst, market, spec, OWNERS + 2, min_owners=OWNERS,
                       aggregators=market.aggregator_addresses[:3])
    wait_for_info(market, query_id, lambda info: info.submitted_count == OWNERS, "every honest owner submitted")
    wrong_key, copier = session.rogues

    # Right length, right AAD, but sealed to keys no aggregator holds.
    assert wrong_key.sender is not None and copier.sender is not None
    context = ShareContext(wrong_key.sender.chain_id, client.address, query_id, wrong_key.sender.address)
    words = map_owner_data(spec, session.workers.iloc[:1])
    strangers = [AggregatorKeyPair.generate().public_key for _ in range(3)]
    wrong_key.submit_shares(query_id, encrypt_shares(words, strangers, context))
    # An honest owner's ciphertexts, whose AAD names that owner, not the copier.
    honest = client.events("SharesSubmitted", market.start_block, filters={"queryId": query_id})[0]
    assert isinstance(honest, SharesSubmitted)
    copier.submit_shares(query_id, list(honest.ciphertexts))

    result = session.analyst.wait_for_result(query_id, timeout=PHASE_TIMEOUT)

    rogue_addresses = {wrong_key.sender.address, copier.sender.address}
    complaints = client.events("ComplaintFiled", market.start_block, filters={"queryId": query_id})
    assert {record.owner for record in complaints if isinstance(record, ComplaintFiled)} == rogue_addresses
    for rogue in (wrong_key, copier):
        assert client.submission_state(query_id, rogue.sender.address) == SubmissionState.EXCLUDED  # type: ignore[union-attr]
        with pytest.raises(ContractRevertError):
            rogue.claim(query_id)
    assert result.included_owners == OWNERS
    tolerance = OWNERS / 2 ** (SUM_FRACTIONAL_BITS + 1)
    assert abs(result.output["sum"] - float(np.sum(session.workers["wage"]))) <= tolerance
