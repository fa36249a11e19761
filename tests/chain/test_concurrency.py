"""Many senders at once, and many threads sending from one account, with no nonce error."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from eth_account import Account
from web3 import Web3

from pmsr_chain import MarketClient, Receipt, TransactionSender, rpc_request
from pmsr_chain.events import SubmissionsFilled
from pmsr_chain.testing import MarketHarness, random_ciphertexts

OWNER_COUNT = 200
ONE_SENDER_TRANSACTIONS = 50
THREADS = 8


def _sender(client: MarketClient) -> TransactionSender:
    assert client.sender is not None
    return client.sender


def test_200_owners_submit_concurrently(harness: MarketHarness) -> None:
    aggregators = harness.register_aggregators(2)
    owners = harness.register_owners(OWNER_COUNT)
    query = harness.propose(aggregators, min_owners=OWNER_COUNT, max_owners=OWNER_COUNT)

    def submit(owner: MarketClient) -> Receipt:
        return owner.submit_shares(query.query_id, random_ciphertexts(1, 2))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        receipts = list(pool.map(submit, owners))

    assert len(receipts) == OWNER_COUNT
    assert all(r.status == 1 for r in receipts)
    assert {r.sender for r in receipts} == {_sender(o).address for o in owners}
    info = harness.market.query_info(query.query_id)
    assert info.submitted_count == OWNER_COUNT
    assert info.closed_at > 0
    filled = harness.market.events("SubmissionsFilled", receipts[0].block_number, filters={"queryId": query.query_id})
    assert len(filled) == 1 and isinstance(filled[0], SubmissionsFilled)


def test_50_transactions_from_one_sender_in_threads(harness: MarketHarness, w3: Web3) -> None:
    (owner,) = harness.register_owners(1)
    sender = _sender(owner)
    stake_before = harness.market.owner_info(sender.address).stake
    nonce_before = w3.eth.get_transaction_count(sender.address)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        receipts = list(pool.map(lambda _: owner.top_up_owner_stake(1), range(ONE_SENDER_TRANSACTIONS)))

    assert all(r.status == 1 for r in receipts)
    nonces = sorted(w3.eth.get_transaction(r.transaction_hash)["nonce"] for r in receipts)
    assert nonces == list(range(nonce_before, nonce_before + ONE_SENDER_TRANSACTIONS))
    assert w3.eth.get_transaction_count(sender.address) == nonce_before + ONE_SENDER_TRANSACTIONS
    assert harness.market.owner_info(sender.address).stake == stake_before + ONE_SENDER_TRANSACTIONS


def test_batch_from_one_sender_waits_for_all(harness: MarketHarness, w3: Web3) -> None:
    (owner,) = harness.register_owners(1)
    sender = _sender(owner)
    nonce_before = w3.eth.get_transaction_count(sender.address)
    receipts = sender.send_batch(owner.calls.top_up_owner_stake(2) for _ in range(20))
    assert [w3.eth.get_transaction(r.transaction_hash)["nonce"] for r in receipts] == list(
        range(nonce_before, nonce_before + 20)
    )
    assert all(r.status == 1 for r in receipts)


def test_nonce_resync_after_outside_transaction(
    harness: MarketHarness, w3: Web3, caplog: pytest.LogCaptureFixture
) -> None:
    (owner,) = harness.register_owners(1)
    sender = _sender(owner)
    owner.top_up_owner_stake(1)  # the manager now tracks the next nonce locally

    # A transaction signed and sent outside the manager makes its local nonce stale.
    outside_nonce = w3.eth.get_transaction_count(sender.address)
    signed = Account.sign_transaction(
        {"chainId": sender.chain_id, "nonce": outside_nonce, "to": sender.address, "value": 0, "gas": 21_000,
         "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2},
        sender.account.key,
    )
    rpc_request(w3, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])

    with caplog.at_level(logging.WARNING, logger="pmsr_chain.transactions"):
        receipt = owner.top_up_owner_stake(1)
    assert receipt.status == 1
    assert w3.eth.get_transaction(receipt.transaction_hash)["nonce"] == outside_nonce + 1
    assert any(f"nonce {outside_nonce} of {sender.address} rejected" in r.getMessage() for r in caplog.records)
