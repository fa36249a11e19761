"""Owner and aggregator registry calls through the client: policy, top-ups, key rotation, exits."""

from __future__ import annotations

import pytest

from pmsr_chain import ContractRevertError, MarketClient
from pmsr_chain.events import (
    AggregatorExitBegun,
    AggregatorKeyRotated,
    AggregatorStakeWithdrawn,
    OwnerExitBegun,
    OwnerPolicyUpdated,
    OwnerStakeIncreased,
    OwnerStakeWithdrawn,
)
from pmsr_chain.testing import MarketHarness


def _address(client: MarketClient) -> str:
    assert client.sender is not None
    return client.sender.address


def test_owner_policy_top_up_and_exit(harness: MarketHarness) -> None:
    market = harness.market
    (owner,) = harness.register_owners(1)
    address = _address(owner)
    minimum = market.min_owner_stake()
    info = market.owner_info(address)
    assert info.registered
    assert info.stake == minimum

    policy = harness.default_policy(min_price_per_query=123, template_mask=0b10, allow_exact=False)
    receipt = owner.update_owner_policy(policy)
    (updated,) = [e for e in market.receipt_events(receipt) if isinstance(e, OwnerPolicyUpdated)]
    assert updated.policy == policy
    assert market.owner_info(address).policy == policy

    receipt = owner.top_up_owner_stake(5)
    (increased,) = [e for e in market.receipt_events(receipt) if isinstance(e, OwnerStakeIncreased)]
    assert (increased.amount, increased.stake) == (5, minimum + 5)

    receipt = owner.begin_owner_exit()
    (exit_begun,) = [e for e in market.receipt_events(receipt) if isinstance(e, OwnerExitBegun)]
    assert exit_begun.withdrawable_at == harness.now() + market.unbonding_period()
    with pytest.raises(ContractRevertError) as early:
        owner.withdraw_owner_stake()
    assert early.value.error_name == "UnbondingNotOver"
    assert early.value.arguments["withdrawableAt"] == exit_begun.withdrawable_at

    harness.advance_past(exit_begun.withdrawable_at)
    before = harness.balance(address)
    receipt = owner.withdraw_owner_stake()
    assert harness.balance(address) == before + minimum + 5 - receipt.fee_wei
    (withdrawn,) = [e for e in market.receipt_events(receipt) if isinstance(e, OwnerStakeWithdrawn)]
    assert withdrawn.amount == minimum + 5
    assert market.owner_info(address).stake == 0


def test_aggregator_key_rotation_and_exit(harness: MarketHarness) -> None:
    market = harness.market
    (aggregator,) = harness.register_aggregators(1)
    address = _address(aggregator)
    stake = market.min_aggregator_stake()

    new_key = bytes(range(1, 33))
    receipt = aggregator.rotate_aggregator_key(new_key)
    (rotated,) = [e for e in market.receipt_events(receipt) if isinstance(e, AggregatorKeyRotated)]
    assert rotated.encryption_key == new_key
    assert market.aggregator_info(address).encryption_key == new_key

    aggregator.top_up_aggregator_stake(7)
    assert market.aggregator_info(address).stake == stake + 7

    with pytest.raises(ContractRevertError) as invalid:
        aggregator.rotate_aggregator_key(bytes(32))
    assert invalid.value.error_name == "InvalidEncryptionKey"

    receipt = aggregator.begin_aggregator_exit()
    (exit_begun,) = [e for e in market.receipt_events(receipt) if isinstance(e, AggregatorExitBegun)]
    assert market.aggregator_info(address).exit_requested_at > 0
    harness.advance_past(exit_begun.withdrawable_at)
    receipt = aggregator.withdraw_aggregator_stake()
    (withdrawn,) = [e for e in market.receipt_events(receipt) if isinstance(e, AggregatorStakeWithdrawn)]
    assert withdrawn.amount == stake + 7


def test_claim_many_pays_each_query(harness: MarketHarness) -> None:
    aggregators = harness.register_aggregators(2)
    (owner,) = harness.register_owners(1)
    price = 10**15
    queries = [harness.propose(aggregators, min_owners=1, max_owners=1, price_per_owner=price) for _ in range(2)]
    for query in queries:
        harness.submit_random(query, [owner])
        harness.advance_to_commit_window(query)
        harness.commit_and_reveal(query, [[1], [2]])

    before = harness.balance(_address(owner))
    receipt = owner.claim_many([q.query_id for q in queries])
    assert harness.balance(_address(owner)) == before + 2 * price - receipt.fee_wei
    assert harness.market.owner_info(_address(owner)).open_submissions == 0
