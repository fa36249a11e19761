"""When the owner fleet claims: after the owner's other pending results, in one claimMany."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import pytest

from offchain_workers.owner import (
    AccountSource,
    DatasetSource,
    FleetConfig,
    MarketSource,
    OwnerConfig,
    OwnerFleet,
    Status,
    load_fleet_config,
)
from pmsr_chain import SubmissionState
from pmsr_chain.errors import ConfigurationError


def _claims(actions) -> list[tuple[str, int, str | None]]:
    return sorted((item.owner, item.query_id, item.transaction_hash) for item in actions if item.action == "claimed")


def _fleet(owners, market, **changes) -> OwnerFleet:
    return OwnerFleet(dataclasses.replace(owners.config, **changes), market=market)


def _propose_two(analyst, aggregators, sum_spec, *, second_max_owners: int) -> list[int]:
    """Propose two exact sum queries: the first for two owners, the second for `second_max_owners`."""
    return [
        analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=max_owners,
                        aggregators=aggregators.addresses)
        for max_owners in (2, second_max_owners)
    ]


def _submit(fleet: OwnerFleet, aggregators, queries: list[int]) -> None:
    fleet.run_once()
    for query_id in queries:
        aggregators.accept(query_id)
    fleet.run_once()


def test_claim_waits_for_other_result(market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0, 2.0])
    both, first_only = owners.addresses
    fleet = _fleet(owners, market, claim_wait=600.0)
    try:
        # The second query takes one owner, so only the first owner awaits two results.
        queries = _propose_two(analyst, aggregators, sum_spec, second_max_owners=1)
        _submit(fleet, aggregators, queries)
        assert market.submission_state(queries[1], both) == SubmissionState.SUBMITTED
        assert market.submission_state(queries[1], first_only) == SubmissionState.NONE

        aggregators.publish(queries[0])
        claimed = _claims(fleet.run_once())
        # The owner with nothing else pending claims at once, and the other owner's claim waits.
        assert [(owner, query_id) for owner, query_id, _ in claimed] == [(first_only, queries[0])]
        assert fleet.state.decision(both, queries[0]).status == Status.SUBMITTED
        assert market.submission_state(queries[0], both) == SubmissionState.SUBMITTED

        aggregators.publish(queries[1])
        claimed = _claims(fleet.run_once())
        assert [(owner, query_id) for owner, query_id, _ in claimed] == sorted((both, query_id) for query_id in queries)
        # One claimMany transaction paid both queries.
        assert len({transaction for _, _, transaction in claimed}) == 1
        for query_id in queries:
            assert market.submission_state(query_id, both) == SubmissionState.SETTLED
    finally:
        fleet.close()


def test_held_claim_sent_alone_after_wait(market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0])
    (owner,) = owners.addresses
    wait = 0.5
    fleet = _fleet(owners, market, claim_wait=wait)
    try:
        queries = _propose_two(analyst, aggregators, sum_spec, second_max_owners=2)
        _submit(fleet, aggregators, queries)
        aggregators.publish(queries[0])
        held_at = time.monotonic()
        assert _claims(fleet.run_once()) == []

        time.sleep(wait - (time.monotonic() - held_at) + 0.1)
        claimed = _claims(fleet.run_once())
        assert [(item_owner, query_id) for item_owner, query_id, _ in claimed] == [(owner, queries[0])]
        assert market.submission_state(queries[0], owner) == SubmissionState.SETTLED
        assert market.submission_state(queries[1], owner) == SubmissionState.SUBMITTED
    finally:
        fleet.close()


def test_held_claim_survives_restart(market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0])
    (owner,) = owners.addresses
    wait = 0.5
    fleet = _fleet(owners, market, claim_wait=wait)
    queries = _propose_two(analyst, aggregators, sum_spec, second_max_owners=2)
    _submit(fleet, aggregators, queries)
    aggregators.publish(queries[0])
    assert _claims(fleet.run_once()) == []
    fleet.close()

    # The wait starts again in the new process, and the claim is still sent once it ends.
    restarted = _fleet(owners, market, claim_wait=wait)
    try:
        started = time.monotonic()
        assert _claims(restarted.run_once()) == []
        assert restarted.state.decision(owner, queries[0]).status == Status.SUBMITTED
        time.sleep(wait - (time.monotonic() - started) + 0.1)
        claimed = _claims(restarted.run_once())
        assert [(item_owner, query_id) for item_owner, query_id, _ in claimed] == [(owner, queries[0])]
        assert market.submission_state(queries[0], owner) == SubmissionState.SETTLED
    finally:
        restarted.close()


def test_zero_claim_wait_claims_at_once(market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0])
    (owner,) = owners.addresses
    fleet = _fleet(owners, market, claim_wait=0)
    try:
        queries = _propose_two(analyst, aggregators, sum_spec, second_max_owners=2)
        _submit(fleet, aggregators, queries)
        aggregators.publish(queries[0])
        claimed = _claims(fleet.run_once())
        assert [(item_owner, query_id) for item_owner, query_id, _ in claimed] == [(owner, queries[0])]
    finally:
        fleet.close()


def test_claim_many_reuses_gas_without_estimates(market, aggregators, make_owners, analyst, sum_spec):
    owners = make_owners([1.0, 2.0, 3.0])
    fleet = _fleet(owners, market, estimate_gas=False)
    try:
        queries = [
            analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=3,
                            aggregators=aggregators.addresses)
            for _ in range(2)
        ]
        _submit(fleet, aggregators, queries)
        for query_id in queries:
            aggregators.publish(query_id)
        claimed = _claims(fleet.run_once())
        assert len(claimed) == 6
        transactions = {transaction for _, _, transaction in claimed}
        assert len(transactions) == 3
        limits = {market.w3.eth.get_transaction(transaction)["gas"] for transaction in transactions}
        assert len(limits) == 1
        for owner in owners.addresses:
            for query_id in queries:
                assert market.submission_state(query_id, owner) == SubmissionState.SETTLED
    finally:
        fleet.close()


def _offline_owner(tmp_path, market) -> OwnerConfig:
    return OwnerConfig(
        account=AccountSource(dev_keys=tmp_path / "keys.json", address="0x" + "1" * 40),
        dataset=DatasetSource(tmp_path / "table.csv", "csv"),
        market=MarketSource(address=market.address),
        db_path=tmp_path / "owners.sqlite",
    )


@pytest.mark.parametrize("wait", [-1.0, math.inf, math.nan, True, "5"])
def test_fleet_config_rejects_invalid_claim_wait(tmp_path, market, wait):
    with pytest.raises(ConfigurationError, match="claimWait"):
        FleetConfig(owners=(_offline_owner(tmp_path, market),), claim_wait=wait)


def test_fleet_config_json_claim_wait(tmp_path, market):
    config = FleetConfig(owners=(_offline_owner(tmp_path, market),), claim_wait=2.5)
    path = config.write(tmp_path / "fleet.json")
    assert json.loads(path.read_text())["claimWait"] == 2.5
    assert load_fleet_config(path).claim_wait == 2.5

    document = json.loads(path.read_text())
    del document["claimWait"]
    assert FleetConfig.from_json(document, tmp_path).claim_wait == 30.0
