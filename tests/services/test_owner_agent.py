"""The owner agent end to end on Anvil, against aggregators driven by direct contract calls."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offchain_workers.encoding import decode_fixed, encode_fixed
from offchain_workers.owner import (
    AccountSource,
    DatasetSource,
    FleetConfig,
    LocalPolicy,
    MarketSource,
    OwnerConfig,
    OwnerFleet,
    Status,
    batch_views,
    load_fleet_config,
)
from offchain_workers.owner.state import OwnerState
from pmsr_chain import QueryStatus, SubmissionState, TransactionSender
from pmsr_chain.events import OwnerPaid, SharesSubmitted
from pmsr_chain.keystore import import_keystore


VALUES = [1.5, -2.25, 10.0]


def _submissions(market, query_id: int, owner: str) -> int:
    return sum(
        1 for record in market.events("SharesSubmitted", 0, filters={"queryId": query_id})
        if isinstance(record, SharesSubmitted) and record.owner == owner
    )


def _actions(actions, action: str) -> list:
    return [item for item in actions if item.action == action]


def test_fleet_submits_and_claims(harness, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners(VALUES)
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    price = 10**15
    query_id = analyst.propose(sum_spec(), price_per_owner=price, min_owners=3, max_owners=5,
                               fee_per_aggregator=10**16, aggregators=aggregators.addresses)

    joined = fleet.run_once()
    assert {item.owner for item in _actions(joined, "joined")} == set(owners.addresses)
    assert _actions(joined, "submitted") == []  # the query is not open yet

    aggregators.accept(query_id)
    submitted = fleet.run_once()
    assert {item.owner for item in _actions(submitted, "submitted")} == set(owners.addresses)
    for owner in owners.addresses:
        assert market.submission_state(query_id, owner) == SubmissionState.SUBMITTED

    aggregators.publish(query_id)
    balances = {owner: harness.balance(owner) for owner in owners.addresses}
    claimed = fleet.run_once()
    assert {item.owner for item in _actions(claimed, "claimed")} == set(owners.addresses)
    for owner in owners.addresses:
        assert market.submission_state(query_id, owner) == SubmissionState.SETTLED
        assert fleet.state.decision(owner, query_id).status == Status.CLAIMED
        # The claim pays the price minus the claim's gas.
        assert balances[owner] < harness.balance(owner) < balances[owner] + price

    result = analyst.result(query_id)
    expected = decode_fixed(encode_fixed(np.array(VALUES), 16), 16).sum()
    assert result.values[0] == pytest.approx(expected, abs=2**-16)
    assert result.output == {"sum": pytest.approx(sum(VALUES), abs=2**-15)}
    assert fleet.run_once() == []


def test_fleet_claims_many_in_one_transaction(market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners([2.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    queries = [
        analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=2,
                        aggregators=aggregators.addresses)
        for _ in range(2)
    ]
    fleet.run_once()
    for query_id in queries:
        aggregators.accept(query_id)
    fleet.run_once()
    for query_id in queries:
        aggregators.publish(query_id)

    actions = _actions(fleet.run_once(), "claimed")
    assert sorted(item.query_id for item in actions) == sorted(queries)
    # One claimMany transaction paid both queries.
    assert len({item.transaction_hash for item in actions}) == 1
    receipt = market.w3.eth.get_transaction_receipt(actions[0].transaction_hash)
    paid = [event for event in market.logs.decode_receipt_logs(receipt["logs"]) if isinstance(event, OwnerPaid)]
    assert sorted(event.query_id for event in paid) == sorted(queries)


def test_fleet_skips_after_deadline(harness, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners([1.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses, accept_window=60, submit_window=60)
    assert _actions(fleet.run_once(), "joined")
    aggregators.accept(query_id)
    harness.advance_past(market.query_info(query_id).params.submit_deadline)

    skipped = _actions(fleet.run_once(), "skipped")
    assert [item.code for item in skipped] == ["submit_deadline_passed"]
    assert market.submission_state(query_id, owners.addresses[0]) == SubmissionState.NONE


def test_fleet_skips_full_query(market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners([1.0, 2.0, 3.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    fleet.run_once()
    aggregators.accept(query_id)

    actions = fleet.run_once()
    assert len(_actions(actions, "submitted")) == 2
    assert [item.code for item in _actions(actions, "skipped")] == ["query_full"]
    assert market.query_info(query_id).submitted_count == 2


def test_restart_after_send_does_not_resubmit(harness, market, aggregators, make_owners, analyst, monkeypatch, sum_spec):
    owners = make_owners([4.0])
    owner = owners.addresses[0]
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    fleet = owners.fleet(market)
    fleet.run_once()
    aggregators.accept(query_id)

    # The process dies after the transaction was sent but before the agent stored "submitted".
    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(OwnerState, "update_many", crash)
    with pytest.raises(KeyboardInterrupt):
        fleet.run_once()
    monkeypatch.undo()
    fleet.close()
    stored = OwnerState(owners.config.db_path)
    row = stored.decision(owner, query_id)
    assert row.status == Status.SUBMITTING
    assert row.tx_hash is not None
    stored.close()
    assert _submissions(market, query_id, owner) == 1

    restarted = owners.fleet(market)
    try:
        actions = restarted.run_once()
        assert [item.action for item in actions] == ["submitted"]
        assert restarted.run_once() == []
    finally:
        restarted.close()
    assert _submissions(market, query_id, owner) == 1


def test_restart_before_send_submits_once(market, aggregators, make_owners, analyst, monkeypatch, sum_spec):
    owners = make_owners([4.0])
    owner = owners.addresses[0]
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    fleet = owners.fleet(market)
    fleet.run_once()
    aggregators.accept(query_id)

    # The process dies after the hash was stored but before eth_sendRawTransaction.
    original = TransactionSender.submit

    def submit_then_crash(self, call, *, before_send=None):
        def record_then_crash(transaction_hash):
            before_send(transaction_hash)
            raise KeyboardInterrupt("simulated crash")

        return original(self, call, before_send=record_then_crash)

    monkeypatch.setattr(TransactionSender, "submit", submit_then_crash)
    with pytest.raises(KeyboardInterrupt):
        fleet.run_once()
    monkeypatch.undo()
    fleet.close()
    assert _submissions(market, query_id, owner) == 0

    restarted = owners.fleet(market)
    try:
        actions = restarted.run_once()
        assert [item.action for item in actions] == ["joined", "submitted"]
        assert restarted.run_once() == []
    finally:
        restarted.close()
    assert _submissions(market, query_id, owner) == 1
    assert market.submission_state(query_id, owner) == SubmissionState.SUBMITTED


def test_fleet_releases_budget_after_cancel(harness, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners([1.0, 2.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    epsilon = 500_000
    query_id = analyst.propose(sum_spec(epsilon=epsilon, bound="100"), price_per_owner=0, min_owners=3, max_owners=4,
                               aggregators=aggregators.addresses, submit_window=60)
    fleet.run_once()
    aggregators.accept(query_id)
    fleet.run_once()
    owner = owners.addresses[0]
    assert market.owner_info(owner).epsilon_used == epsilon

    harness.advance_past(market.query_info(query_id).params.submit_deadline)
    market.with_sender(analyst.market.sender).cancel(query_id)
    released = _actions(fleet.run_once(), "released")
    assert {item.owner for item in released} == set(owners.addresses)
    assert market.owner_info(owner).epsilon_used == 0
    assert market.submission_state(query_id, owner) == SubmissionState.SETTLED


def test_fleet_marks_excluded_owner(harness, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    owners = make_owners([1.0, 2.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    fleet.run_once()
    aggregators.accept(query_id)
    fleet.run_once()
    excluded = owners.addresses[1]
    aggregators.aggregators[0].client.complain(query_id, excluded)

    actions = fleet.run_once()
    assert [(item.owner, item.action) for item in actions] == [(excluded, "excluded")]
    aggregators.publish(query_id)
    claimed = fleet.run_once()
    assert [item.owner for item in _actions(claimed, "claimed")] == [owners.addresses[0]]
    assert fleet.state.decision(excluded, query_id).status == Status.EXCLUDED
    assert analyst.result(query_id).values[0] == pytest.approx(1.0)


def test_fleet_config_json_round_trip(tmp_path, market):
    config = FleetConfig(
        owners=tuple(
            OwnerConfig(
                account=AccountSource(dev_keys=tmp_path / "keys.json", address="0x" + f"{index + 1:040x}"),
                dataset=DatasetSource(tmp_path / "table.csv", "csv", (index, index + 1)),
                local_policy=LocalPolicy(allowed_templates=frozenset({"sum"}), max_epsilon_per_query=10),
                rpc_url="http://127.0.0.1:1",
                market=MarketSource(address=market.address),
                db_path=tmp_path / "owners.sqlite",
            )
            for index in range(2)
        ),
        workers=3,
        start_block=7,
    )
    path = config.write(tmp_path / "fleet.json")
    loaded = load_fleet_config(path)
    assert loaded == config
    assert json.loads(path.read_text())["owners"][1]["dataset"]["rows"] == [1, 2]


def test_owner_process_stops_on_sigterm(tmp_path, harness, market, aggregators, analyst, deployment, sum_spec):
    # A real owner: V3 keystore, CSV table, configuration file, its own process.
    client = harness.register_owners(1)[0]
    passphrase = "correct horse"
    entry = import_keystore(tmp_path / "keys", "owner", client.sender.account.key.hex(), passphrase, scrypt_n=2**10)  # type: ignore[union-attr]
    (tmp_path / "table.csv").write_text("x,y\n3.25,1\n")
    artifact = Path(__file__).resolve().parents[2] / "build" / "artifacts" / "DataMarket.json"
    config = FleetConfig(
        owners=(
            OwnerConfig(
                account=AccountSource(keystore=entry.path, passphrase_env="OWNER_PASSPHRASE"),
                dataset=DatasetSource(tmp_path / "table.csv"),
                rpc_url=market.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
                market=MarketSource(address=market.address, artifact=artifact),
                db_path=tmp_path / "owner.sqlite",
                poll_interval=0.1,
            ),
        ),
        start_block=harness.w3.eth.block_number,
    )
    config_path = config.write(tmp_path / "owner.json")
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    aggregators.accept(query_id)
    environment = {**os.environ, "OWNER_PASSPHRASE": passphrase}
    process = subprocess.Popen(
        [sys.executable, "-m", "offchain_workers.owner", "--config", str(config_path)],
        env=environment, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while market.submission_state(query_id, client.sender.address) == SubmissionState.NONE:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the owner process did not submit within 30 s"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert f"query {query_id} owner {client.sender.address}: submitted" in errors
    assert "owner fleet stopped" in errors
    assert passphrase not in errors


def test_fleet_without_estimates_reuses_gas(harness, market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0, 2.0, 3.0])
    config = dataclasses.replace(owners.config, estimate_gas=False)
    fleet = OwnerFleet(config, market=market)
    try:
        query_id = analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=5,
                                   aggregators=aggregators.addresses)
        fleet.run_once()
        aggregators.accept(query_id)
        # The third owner raises its price after joining: only the contract can stop it now.
        owners.clients[2].update_owner_policy(harness.default_policy(min_price_per_query=10**16))

        actions = fleet.run_once()
        assert [(item.action, item.code) for item in actions] == [
            ("submitted", None), ("submitted", None), ("refused", "price_below_minimum"),
        ]
        # The refused submission was mined and reverted, so its receipt names the error.
        assert "reverted on-chain" in actions[2].reason
        receipt = market.w3.eth.get_transaction_receipt(actions[2].transaction_hash)
        assert receipt["status"] == 0
        limits = {market.w3.eth.get_transaction(item.transaction_hash)["gas"] for item in actions}
        assert len(limits) == 1

        aggregators.publish(query_id)
        claimed = fleet.run_once()
        assert sorted(item.owner for item in claimed if item.action == "claimed") == sorted(owners.addresses[:2])
    finally:
        fleet.close()


def test_owners_share_one_table_file(tmp_path, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    path = tmp_path / "shared.csv"
    path.write_text("x,y\n1.25,0\n2.5,0\n-7,0\n")
    sources = [DatasetSource(path, "csv", (0, 1)), DatasetSource(path, "csv", (1, 3))]
    owners = make_owners([0.0, 0.0], tables=sources)
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    # contributionBound 2 lets the second owner contribute both of its rows.
    spec = dataclasses.replace(sum_spec(), contribution_bound=2)
    query_id = analyst.propose(spec, price_per_owner=0, min_owners=2, max_owners=2, aggregators=aggregators.addresses)
    fleet.run_once()
    aggregators.accept(query_id)
    assert len(_actions(fleet.run_once(), "submitted")) == 2
    aggregators.publish(query_id)
    assert analyst.result(query_id).values[0] == pytest.approx(1.25 + 2.5 - 7)
    assert len(fleet.tables._files) == 1


def test_fleet_runs_keeper_when_configured(harness, market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0])
    fleet = OwnerFleet(dataclasses.replace(owners.config, keeper=True), market=market)
    try:
        query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                                   aggregators=aggregators.addresses, accept_window=30)
        fleet.run_once()
        harness.advance_past(market.query_info(query_id).params.accept_deadline)
        assert fleet.run_once() == []  # the keeper runs last in a pass
        assert market.query_info(query_id).status == QueryStatus.CANCELLED
        # The owner had joined; the next pass reads the cancellation and skips the query.
        actions = fleet.run_once()
        assert [(item.action, item.code) for item in actions] == [("skipped", "query_closed")]
        assert fleet.state.decision(owners.addresses[0], query_id).status == Status.SKIPPED
    finally:
        fleet.close()


def test_batch_views_match_single_calls(harness, market, aggregators, analyst, sum_spec):
    owners = harness.register_owners(2, policy=harness.default_policy(min_price_per_query=7, allow_exact=False))
    owners[1].begin_owner_exit()
    stranger = harness.new_client().sender.address
    addresses = [owner.sender.address for owner in owners] + [stranger]
    query_id = analyst.propose(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    infos = batch_views(market, "ownerInfo", [[address] for address in addresses])
    assert infos == [market.owner_info(address) for address in addresses]
    assert infos[0].policy.min_price_per_query == 7
    assert infos[1].exit_requested_at > 0
    assert not infos[2].registered
    states = batch_views(market, "submissionState", [[query_id, address] for address in addresses])
    assert states == [SubmissionState.NONE] * 3
    assert isinstance(states[0], SubmissionState)
    (query,) = batch_views(market, "queryInfo", [[query_id]])
    assert query == market.query_info(query_id)
