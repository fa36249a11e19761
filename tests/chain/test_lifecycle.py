"""A full query driven from Python: register, propose, accept, submit, commit, reveal, pay out."""

from __future__ import annotations

import secrets

from pmsr_chain import MarketClient, QueryStatus, SubmissionState
from pmsr_chain.events import (
    AggregateCommitted,
    AggregateRevealed,
    AggregatorFeePaid,
    AnalystRefunded,
    OwnerPaid,
    QueryOpened,
    ResultPublished,
    SharesSubmitted,
)
from pmsr_chain.testing import MarketHarness, OpenQuery, random_ciphertexts, split_additive
from pmsr_chain.types import ciphertext_length

MODULUS = 2**64
OUTPUT_LENGTH = 4
OWNER_COUNT = 5
MAX_OWNERS = 8
PRICE = 3 * 10**15
FEE = 2 * 10**16
EPSILON = 500_000


def _address(client: MarketClient) -> str:
    assert client.sender is not None
    return client.sender.address


def test_full_query_lifecycle(harness: MarketHarness) -> None:
    market = harness.market
    aggregators = harness.register_aggregators(3)
    owners = harness.register_owners(OWNER_COUNT)
    analyst = harness.new_client()
    contract_balance_before = harness.balance(market.address)

    # Propose: the analyst pays exactly price * maxOwners + fee * K, plus gas.
    params = harness.query_params(
        aggregators, output_length=OUTPUT_LENGTH, min_owners=3, max_owners=MAX_OWNERS,
        price_per_owner=PRICE, fee_per_aggregator=FEE, epsilon=EPSILON,
    )
    escrow = PRICE * MAX_OWNERS + FEE * 3
    assert params.required_payment == escrow
    analyst_before = harness.balance(_address(analyst))
    proposed = analyst.propose_query(params, b'{"template":"sum"}')
    query_id = proposed.query_id
    assert harness.balance(_address(analyst)) == analyst_before - escrow - proposed.receipt.fee_wei
    assert harness.balance(market.address) == contract_balance_before + escrow
    info = market.query_info(query_id)
    assert info.status == QueryStatus.PROPOSED
    assert info.analyst == _address(analyst)
    assert info.params == params
    assert info.escrow == escrow

    # Accept: the third acceptance opens the query.
    receipts = [aggregator.accept_query(query_id) for aggregator in aggregators]
    assert not any(isinstance(e, QueryOpened) for e in market.receipt_events(receipts[1]))
    assert any(isinstance(e, QueryOpened) for e in market.receipt_events(receipts[2]))
    assert market.query_info(query_id).status == QueryStatus.OPEN
    assert market.ciphertext_length(query_id) == ciphertext_length(OUTPUT_LENGTH) == 32 + 8 * OUTPUT_LENGTH + 16

    # Submit: each owner's vector is split into three additive shares, one per aggregator.
    values = [[secrets.randbelow(MODULUS) for _ in range(OUTPUT_LENGTH)] for _ in owners]
    shares_by_owner = [split_additive(vector, 3) for vector in values]
    sent_ciphertexts = {}
    for owner in owners:
        ciphertexts = random_ciphertexts(OUTPUT_LENGTH, 3)
        sent_ciphertexts[_address(owner)] = tuple(ciphertexts)
        owner.submit_shares(query_id, ciphertexts)
    submitted = market.events("SharesSubmitted", proposed.receipt.block_number, filters={"queryId": query_id})
    assert [e.owner for e in submitted if isinstance(e, SharesSubmitted)] == [_address(o) for o in owners]
    for event in submitted:
        assert isinstance(event, SharesSubmitted)
        assert event.ciphertexts == sent_ciphertexts[event.owner]
    for owner in owners:
        assert market.submission_state(query_id, _address(owner)) == SubmissionState.SUBMITTED
        owner_info = market.owner_info(_address(owner))
        assert owner_info.epsilon_used == EPSILON
        assert owner_info.open_submissions == 1
    assert market.query_info(query_id).submitted_count == OWNER_COUNT

    # Commit after the complaint window, then reveal: the result is the sum modulo 2^64.
    query = OpenQuery(query_id, params, analyst, tuple(aggregators))
    harness.advance_past(params.submit_deadline)
    harness.advance_to_commit_window(query)
    aggregate_shares = [
        [sum(owner_shares[k][i] for owner_shares in shares_by_owner) % MODULUS for i in range(OUTPUT_LENGTH)]
        for k in range(3)
    ]
    commits, reveals = harness.commit_and_reveal(query, aggregate_shares)
    expected_result = tuple(sum(vector[i] for vector in values) % MODULUS for i in range(OUTPUT_LENGTH))
    assert any(isinstance(e, AggregateCommitted) for e in market.receipt_events(commits[0]))
    revealed = [e for r in reveals for e in market.receipt_events(r) if isinstance(e, AggregateRevealed)]
    assert [e.share for e in revealed] == [tuple(s) for s in aggregate_shares]
    published = [e for e in market.receipt_events(reveals[-1]) if isinstance(e, ResultPublished)]
    assert len(published) == 1
    assert published[0].result == expected_result
    assert published[0].included_owners == OWNER_COUNT
    assert market.query_result(query_id) == expected_result
    assert market.query_info(query_id).status == QueryStatus.PUBLISHED

    # Owners claim their price; balances move by exactly price minus gas.
    for owner in owners:
        before = harness.balance(_address(owner))
        receipt = owner.claim(query_id)
        assert harness.balance(_address(owner)) == before + PRICE - receipt.fee_wei
        (paid,) = [e for e in market.receipt_events(receipt) if isinstance(e, OwnerPaid)]
        assert paid.amount == PRICE
        assert market.submission_state(query_id, _address(owner)) == SubmissionState.SETTLED
        assert market.owner_info(_address(owner)).open_submissions == 0

    # Aggregators claim their fee.
    for aggregator in aggregators:
        before = harness.balance(_address(aggregator))
        receipt = aggregator.claim_fee(query_id)
        assert harness.balance(_address(aggregator)) == before + FEE - receipt.fee_wei
        (fee_paid,) = [e for e in market.receipt_events(receipt) if isinstance(e, AggregatorFeePaid)]
        assert fee_paid.amount == FEE
        assert market.aggregator_query_state(query_id, _address(aggregator)).fee_claimed

    # The analyst gets back the price of the owners who did not take part.
    unused = PRICE * (MAX_OWNERS - OWNER_COUNT)
    before = harness.balance(_address(analyst))
    receipt = analyst.refund(query_id)
    assert harness.balance(_address(analyst)) == before + unused - receipt.fee_wei
    (refunded,) = [e for e in market.receipt_events(receipt) if isinstance(e, AnalystRefunded)]
    assert refunded.amount == unused
    final = market.query_info(query_id)
    assert final.escrow == 0
    assert final.analyst_refunded
    assert harness.balance(market.address) == contract_balance_before

