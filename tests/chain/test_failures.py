"""Failure paths: cancel for missing acceptance or too few owners, fail with slashing, complaints."""

from __future__ import annotations

import pytest

from pmsr_chain import (
    CancelReason,
    ContractRevertError,
    MarketClient,
    QueryStatus,
    SubmissionState,
    aggregate_commitment,
)
from pmsr_chain.events import (
    AggregatorSlashed,
    BudgetReleased,
    ComplaintFiled,
    QueryCancelled,
    QueryFailed,
    ResultPublished,
)
from pmsr_chain.testing import MarketHarness, OpenQuery

PRICE = 10**15
FEE = 10**16
EPSILON = 250_000


def _address(client: MarketClient) -> str:
    assert client.sender is not None
    return client.sender.address


def _escrow(query: OpenQuery) -> int:
    return query.params.required_payment


def _refund_delta(harness: MarketHarness, query: OpenQuery) -> int:
    """Ask for the analyst's refund and return the wei it received (gas added back)."""
    before = harness.balance(_address(query.analyst))
    receipt = query.analyst.refund(query.query_id)
    return harness.balance(_address(query.analyst)) - before + receipt.fee_wei


def test_cancel_when_not_all_accepted(harness: MarketHarness) -> None:
    aggregators = harness.register_aggregators(3)
    query = harness.propose(aggregators, accept=False, price_per_owner=PRICE, fee_per_aggregator=FEE)
    aggregators[0].accept_query(query.query_id)
    aggregators[1].accept_query(query.query_id)
    assert harness.market.aggregator_info(_address(aggregators[0])).open_queries == 1

    bystander = harness.new_client()
    with pytest.raises(ContractRevertError) as early:
        bystander.cancel(query.query_id)
    assert early.value.error_name == "NotYetDue"
    assert early.value.arguments["dueAfter"] == query.params.accept_deadline

    harness.advance_past(query.params.accept_deadline)
    receipt = bystander.cancel(query.query_id)
    (cancelled,) = [e for e in harness.market.receipt_events(receipt) if isinstance(e, QueryCancelled)]
    assert cancelled.reason == CancelReason.NOT_ACCEPTED
    assert harness.market.query_info(query.query_id).status == QueryStatus.CANCELLED
    for aggregator in aggregators:
        assert harness.market.aggregator_info(_address(aggregator)).open_queries == 0

    assert _refund_delta(harness, query) == _escrow(query)
    assert harness.market.query_info(query.query_id).escrow == 0


def test_cancel_when_too_few_owners(harness: MarketHarness) -> None:
    aggregators = harness.register_aggregators(2)
    owners = harness.register_owners(2)
    query = harness.propose(
        aggregators, min_owners=3, max_owners=5, price_per_owner=PRICE, fee_per_aggregator=FEE, epsilon=EPSILON
    )
    harness.submit_random(query, owners)
    assert harness.market.owner_info(_address(owners[0])).epsilon_used == EPSILON

    harness.advance_past(query.params.submit_deadline)
    receipt = harness.new_client().cancel(query.query_id)
    (cancelled,) = [e for e in harness.market.receipt_events(receipt) if isinstance(e, QueryCancelled)]
    assert cancelled.reason == CancelReason.TOO_FEW_OWNERS
    assert harness.market.query_info(query.query_id).status == QueryStatus.CANCELLED

    assert _refund_delta(harness, query) == _escrow(query)

    for owner in owners:
        receipt = owner.release_budget(query.query_id)
        (released,) = [e for e in harness.market.receipt_events(receipt) if isinstance(e, BudgetReleased)]
        assert released.epsilon == EPSILON
        info = harness.market.owner_info(_address(owner))
        assert info.epsilon_used == 0
        assert info.open_submissions == 0
        assert harness.market.submission_state(query.query_id, _address(owner)) == SubmissionState.SETTLED


def test_fail_after_missed_commit_slashes(harness: MarketHarness) -> None:
    slash = harness.market.slash_amount()
    aggregators = harness.register_aggregators(3)
    owners = harness.register_owners(2)
    query = harness.propose(aggregators, min_owners=2, max_owners=4, price_per_owner=PRICE, fee_per_aggregator=FEE,
                            epsilon=EPSILON)
    harness.submit_random(query, owners)
    harness.advance_past(query.params.submit_deadline)
    harness.advance_to_commit_window(query)
    for aggregator in aggregators[:2]:
        aggregator.commit_aggregate(query.query_id, b"\x01" * 32)
    missing = _address(aggregators[2])
    stake_before = harness.market.aggregator_info(missing).stake

    with pytest.raises(ContractRevertError) as early:
        harness.new_client().fail(query.query_id)
    assert early.value.error_name == "NotYetDue"

    harness.advance_past(query.params.commit_deadline)
    receipt = harness.new_client().fail(query.query_id)
    events = harness.market.receipt_events(receipt)
    slashed = [e for e in events if isinstance(e, AggregatorSlashed)]
    assert [(e.aggregator, e.amount) for e in slashed] == [(missing, slash)]
    (failed,) = [e for e in events if isinstance(e, QueryFailed)]
    assert failed.slashed_total == slash
    info = harness.market.query_info(query.query_id)
    assert info.status == QueryStatus.FAILED
    assert info.slashed == slash
    assert harness.market.aggregator_info(missing).stake == stake_before - slash
    for committed in aggregators[:2]:
        assert harness.market.aggregator_info(_address(committed)).stake == harness.market.min_aggregator_stake()

    assert _refund_delta(harness, query) == _escrow(query) + slash
    for owner in owners:
        owner.release_budget(query.query_id)
        assert harness.market.owner_info(_address(owner)).epsilon_used == 0
    with pytest.raises(ContractRevertError) as no_pay:
        owners[0].claim(query.query_id)
    assert no_pay.value.error_name == "WrongQueryStatus"


def test_fail_after_missed_reveal_slashes(harness: MarketHarness) -> None:
    slash = harness.market.slash_amount()
    aggregators = harness.register_aggregators(3)
    owners = harness.register_owners(2)
    query = harness.propose(aggregators, min_owners=1, max_owners=2, price_per_owner=PRICE, fee_per_aggregator=FEE,
                            epsilon=EPSILON)
    harness.submit_random(query, owners)
    # maxOwners reached: submissions closed early, so the complaint window starts now.
    assert harness.market.query_info(query.query_id).closed_at > 0
    harness.advance_to_commit_window(query)
    shares = [[7], [8], [9]]
    salts = [bytes([k + 1]) * 32 for k in range(3)]
    for aggregator, share, salt in zip(aggregators, shares, salts):
        aggregator.commit_aggregate(query.query_id, aggregate_commitment(query.query_id, _address(aggregator), share, salt))
    for aggregator, share, salt in list(zip(aggregators, shares, salts))[:2]:
        aggregator.reveal_aggregate(query.query_id, share, salt)
    silent = _address(aggregators[2])
    stake_before = harness.market.aggregator_info(silent).stake

    harness.advance_past(query.params.reveal_deadline)
    receipt = harness.new_client().fail(query.query_id)
    slashed = [e for e in harness.market.receipt_events(receipt) if isinstance(e, AggregatorSlashed)]
    assert [(e.aggregator, e.amount) for e in slashed] == [(silent, slash)]
    assert harness.market.aggregator_info(silent).stake == stake_before - slash
    assert harness.market.query_info(query.query_id).status == QueryStatus.FAILED
    assert harness.market.query_result(query.query_id) == ()
    assert _refund_delta(harness, query) == _escrow(query) + slash


def test_complaint_excludes_owner_and_refund_covers_it(harness: MarketHarness) -> None:
    aggregators = harness.register_aggregators(2)
    owners = harness.register_owners(4)
    max_owners = 6
    query = harness.propose(aggregators, min_owners=2, max_owners=max_owners, price_per_owner=PRICE,
                            fee_per_aggregator=FEE, epsilon=EPSILON)
    harness.submit_random(query, owners)
    accused = _address(owners[3])

    with pytest.raises(ContractRevertError) as too_early:
        aggregators[0].complain(query.query_id, accused)
    assert too_early.value.error_name == "SubmissionsStillOpen"

    harness.advance_past(query.params.submit_deadline)
    receipt = aggregators[0].complain(query.query_id, accused)
    events = harness.market.receipt_events(receipt)
    (complaint,) = [e for e in events if isinstance(e, ComplaintFiled)]
    assert (complaint.aggregator, complaint.owner) == (_address(aggregators[0]), accused)
    (released,) = [e for e in events if isinstance(e, BudgetReleased)]
    assert (released.owner, released.epsilon) == (accused, EPSILON)
    assert harness.market.submission_state(query.query_id, accused) == SubmissionState.EXCLUDED
    assert harness.market.owner_info(accused).epsilon_used == 0
    assert harness.market.query_info(query.query_id).excluded_count == 1

    harness.advance_to_commit_window(query)
    _, reveals = harness.commit_and_reveal(query, [[5], [6]])
    (published,) = [e for e in harness.market.receipt_events(reveals[-1]) if isinstance(e, ResultPublished)]
    assert published.included_owners == 3
    assert published.result == (11,)

    with pytest.raises(ContractRevertError) as excluded_claim:
        owners[3].claim(query.query_id)
    assert excluded_claim.value.error_name == "NotSubmitted"
    assert excluded_claim.value.arguments["state"] == SubmissionState.EXCLUDED
    for owner in owners[:3]:
        owner.claim(query.query_id)

    assert _refund_delta(harness, query) == PRICE * (max_owners - 3)
