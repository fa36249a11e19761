"""Keeper: cancel and fail due queries on Anvil, with the refunds and slashes they cause."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from offchain_workers.keeper import Keeper
from offchain_workers.storage import Database
from pmsr_chain import ETHER, QueryStatus, SubmissionState, aggregate_commitment
from pmsr_chain.testing import random_ciphertexts

PRICE = 10**15
FEE = 10**16


def _keeper(harness, **options) -> Keeper:
    return Keeper(harness.new_client(), start_block=harness.w3.eth.block_number + 1, **options)


def _propose(analyst, aggregators, sum_spec, **options) -> int:
    settings = {"price_per_owner": PRICE, "min_owners": 2, "max_owners": 4, "fee_per_aggregator": FEE,
                "aggregators": aggregators.addresses, "accept_window": 60, "submit_window": 60}
    settings.update(options)
    return analyst.propose(sum_spec(), **settings)


def _refund_and_check(harness, analyst, query_id: int, expected: int) -> None:
    before = harness.balance(analyst.address)
    refunded = analyst.refund(query_id)
    assert refunded == expected
    receipt_fee = before + refunded - harness.balance(analyst.address)
    assert 0 < receipt_fee < 10**16  # the difference is the refund transaction's gas


def test_keeper_cancels_query_not_accepted(harness, market, aggregators, analyst, sum_spec):
    keeper = _keeper(harness)
    query_id = _propose(analyst, aggregators, sum_spec)
    aggregators.aggregators[0].client.accept_query(query_id)
    escrow = PRICE * 4 + FEE * 2

    assert keeper.run_once() == []
    assert query_id in keeper.watched
    harness.advance_past(market.query_info(query_id).params.accept_deadline)
    actions = keeper.run_once()
    assert [(item.query_id, item.action, item.succeeded) for item in actions] == [(query_id, "cancel", True)]
    assert "1 of 2 aggregators accepted" in actions[0].reason
    assert market.query_info(query_id).status == QueryStatus.CANCELLED
    assert query_id not in keeper.watched
    # The accepting aggregator is free again, and the analyst gets the whole escrow back.
    assert market.aggregator_info(aggregators.addresses[0]).open_queries == 0
    _refund_and_check(harness, analyst, query_id, escrow)
    assert keeper.run_once() == []


def test_keeper_cancels_query_with_too_few_owners(harness, market, aggregators, analyst, make_owners, sum_spec,
                                                  open_fleets):
    owners = make_owners([5.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    keeper = _keeper(harness)
    query_id = _propose(analyst, aggregators, sum_spec)
    fleet.run_once()
    aggregators.accept(query_id)
    fleet.run_once()
    assert market.query_info(query_id).submitted_count == 1

    assert keeper.run_once() == []  # submissions are still open
    harness.advance_past(market.query_info(query_id).params.submit_deadline)
    actions = keeper.run_once()
    assert [(item.action, item.succeeded) for item in actions] == [("cancel", True)]
    assert "1 owners included, fewer than minOwners 2" in actions[0].reason
    assert market.query_info(query_id).status == QueryStatus.CANCELLED

    owner = owners.addresses[0]
    assert [item.action for item in fleet.run_once()] == ["released"]
    assert market.submission_state(query_id, owner) == SubmissionState.SETTLED
    assert market.owner_info(owner).epsilon_used == 0
    _refund_and_check(harness, analyst, query_id, PRICE * 4 + FEE * 2)


def test_keeper_fails_query_with_missed_commit(harness, market, make_aggregators, analyst, sum_spec):
    # Aggregators of their own: one of them is slashed here.
    aggregators = make_aggregators(2)
    keeper = _keeper(harness)
    query_id = _propose(analyst, aggregators, sum_spec)
    aggregators.accept(query_id)
    owners = harness.register_owners(2)
    params = market.query_info(query_id).params
    for owner in owners:
        owner.submit_shares(query_id, random_ciphertexts(params.output_length, 2))
    harness.advance_past(params.submit_deadline + market.complaint_period())
    committer = aggregators.aggregators[0]
    committer.client.commit_aggregate(query_id, aggregate_commitment(query_id, committer.address, [0], secrets.token_bytes(32)))
    late = aggregators.addresses[1]
    stake_before = market.aggregator_info(late).stake

    assert keeper.run_once() == []  # the commit window is still open
    harness.advance_past(params.commit_deadline)
    actions = keeper.run_once()
    assert [(item.action, item.succeeded) for item in actions] == [("fail", True)]
    assert "1 of 2 aggregators committed" in actions[0].reason
    info = market.query_info(query_id)
    assert info.status == QueryStatus.FAILED
    slash = market.slash_amount()
    assert market.aggregator_info(late).stake == stake_before - slash
    assert market.aggregator_info(committer.address).stake == market.min_aggregator_stake()
    _refund_and_check(harness, analyst, query_id, PRICE * 4 + FEE * 2 + slash)
    for owner in owners:
        owner.release_budget(query_id)
        assert market.submission_state(query_id, owner.sender.address) == SubmissionState.SETTLED


def test_keeper_reports_contract_refusal(harness, market, aggregators, analyst, sum_spec):
    # Another caller can settle a query between the keeper's read and its transaction.
    keeper = _keeper(harness)
    query_id = _propose(analyst, aggregators, sum_spec)
    harness.advance_past(market.query_info(query_id).params.accept_deadline)
    analyst.market.cancel(query_id)
    action = keeper._send(query_id, "cancel", "not accepted")
    assert not action.succeeded
    assert action.transaction_hash is None
    assert "NothingToCancel" in action.error


def test_keeper_state_survives_restart(tmp_path, harness, market, aggregators, analyst, sum_spec):
    database = Database(tmp_path / "keeper.sqlite", [])
    start = harness.w3.eth.block_number + 1
    keeper = Keeper(harness.new_client(), database=database, start_block=start)
    query_id = _propose(analyst, aggregators, sum_spec)
    keeper.run_once()
    database.close()

    reopened = Database(tmp_path / "keeper.sqlite", [])
    restarted = Keeper(harness.new_client(), database=reopened, start_block=start)
    assert query_id in restarted.watched
    harness.advance_past(market.query_info(query_id).params.accept_deadline)
    assert [item.action for item in restarted.run_once()] == ["cancel"]
    reopened.close()


def test_keeper_process_cancels_and_stops(tmp_path, harness, market, aggregators, analyst, sum_spec):
    account = harness.new_client(balance_wei=10 * ETHER).sender.account
    keys = tmp_path / "keeper-keys.json"
    keys.write_text(json.dumps({
        "type": "pmsr-local-dev-keys", "version": 1, "note": "test",
        "keys": [{"address": account.address, "privateKey": account.key.hex(), "datasetSalt": None}],
    }))
    keys.chmod(0o600)
    artifact = Path(__file__).resolve().parents[2] / "build" / "artifacts" / "DataMarket.json"
    config = tmp_path / "keeper.json"
    config.write_text(json.dumps({
        "rpcUrl": market.w3.provider.endpoint_uri,
        "market": {"address": market.address, "artifact": str(artifact)},
        "account": {"devKeys": str(keys), "address": account.address},
        "pollInterval": 0.1,
        "startBlock": harness.w3.eth.block_number + 1,
    }))
    query_id = _propose(analyst, aggregators, sum_spec)
    harness.advance_past(market.query_info(query_id).params.accept_deadline)
    process = subprocess.Popen([sys.executable, "-m", "offchain_workers.keeper", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while market.query_info(query_id).status != QueryStatus.CANCELLED:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the keeper process did not cancel within 30 s"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert f"query {query_id}: cancel sent" in errors
    assert account.key.hex() not in errors
