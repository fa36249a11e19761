"""Aggregator services against a real Anvil node: three services in threads, owners driven directly."""

from __future__ import annotations

import logging
import os

from aggregator_conftest import (  # noqa: F401 - fixtures are used by name
    MODULUS,
    aggregators,
    build_service,
    encode_values,
    encrypt_for,
    expected_sum,
    propose,
    running_services,
    start_block,
    submit_all,
    sum_spec,
    wait_for_phase,
    wait_for_status,
    wait_until,
)

from offchain_workers.aggregator import AcceptancePolicy, Phase
from offchain_workers.aggregator.state import ComplaintState
from offchain_workers.encryption import ShareContext, encrypt_shares
from offchain_workers.keys import AggregatorKeyPair
from pmsr_chain.types import QueryStatus, SubmissionState


def run_to_publication(harness, market, services, query, *, excluded: int = 0) -> tuple[int, ...]:
    """Close submissions, wait for the expected exclusions, open the commit window, wait for the result."""
    harness.advance_past(query.params.submit_deadline)
    wait_until(lambda: market.query_info(query.query_id).excluded_count == excluded, message=f"{excluded} exclusions")
    for service in services:
        # Moving the clock to the commit window closes the complaint window, so every complaint goes first.
        wait_until(lambda service=service: not service.state.pending_complaints(query.query_id), message="complaints sent")
    harness.advance_to_commit_window(query)
    wait_for_status(market, query.query_id, QueryStatus.PUBLISHED)
    wait_for_phase(services, query.query_id, Phase.SETTLED)
    return market.query_result(query.query_id)


def test_full_query_publishes_exact_sum(harness, market, aggregators, running_services):
    query = propose(harness, aggregators, sum_spec())
    wait_for_status(market, query.query_id, QueryStatus.OPEN)

    values = [17, -250, 999, 0, 3]
    owners = harness.register_owners(len(values))
    words = encode_values(values)
    submit_all(owners, query, [encrypt_for(market, query, owner, w, aggregators) for owner, w in zip(owners, words)])

    result = run_to_publication(harness, market, running_services, query)

    assert result == expected_sum(values)
    for identity in aggregators:
        state = market.aggregator_query_state(query.query_id, identity.address)
        assert state.revealed
        assert state.fee_claimed
    for service in running_services:
        assert service.state.accumulator(query.query_id)[1] == len(values)


def test_bad_ciphertexts_complained_and_excluded(harness, market, aggregators, running_services):
    query = propose(harness, aggregators, sum_spec())
    wait_for_status(market, query.query_id, QueryStatus.OPEN)

    honest_values = [40, -7, 123]
    honest = harness.register_owners(len(honest_values))
    wrong_key_owner, copier = harness.register_owners(2)
    submissions = [encrypt_for(market, query, owner, w, aggregators) for owner, w in zip(honest, encode_values(honest_values))]

    # Right length, but aggregator 1's share is sealed to a key it does not hold.
    keys = [identity.key_pair.public_key for identity in aggregators]
    keys[1] = AggregatorKeyPair.generate().public_key
    context = ShareContext(wrong_key_owner.sender.chain_id, market.address, query.query_id, wrong_key_owner.sender.address)
    wrong_key = encrypt_shares(encode_values([500])[0], keys, context)
    # The copier replays honest owner 0's bytes; the AAD binds them to that owner, so nothing decrypts.
    copied = list(submissions[0])
    submit_all([*honest, wrong_key_owner, copier], query, [*submissions, wrong_key, copied])

    result = run_to_publication(harness, market, running_services, query, excluded=2)

    assert result == expected_sum(honest_values)
    assert market.submission_state(query.query_id, wrong_key_owner.sender.address) is SubmissionState.EXCLUDED
    assert market.submission_state(query.query_id, copier.sender.address) is SubmissionState.EXCLUDED
    wrong_key_row = running_services[1].state.submission(query.query_id, bytes.fromhex(wrong_key_owner.sender.address[2:]))
    assert wrong_key_row.status == "bad"
    assert wrong_key_row.complaint in (ComplaintState.SENT, ComplaintState.EXCLUDED)
    # The wrong-key owner decrypted at aggregators 0 and 2, which subtracted it after aggregator 1's complaint.
    for index in (0, 2):
        row = running_services[index].state.submission(query.query_id, bytes.fromhex(wrong_key_owner.sender.address[2:]))
        assert row.status == "ok"
        assert running_services[index].state.is_excluded(query.query_id, row.owner)
    complaints = [
        running_services[index].state.submission(query.query_id, bytes.fromhex(copier.sender.address[2:])).complaint
        for index in range(3)
    ]
    assert ComplaintState.SENT in complaints
    assert set(complaints) <= {ComplaintState.SENT, ComplaintState.EXCLUDED}


def test_noise_added_when_epsilon_positive(harness, market, aggregators, running_services):
    query = propose(harness, aggregators, sum_spec(epsilon=1_000_000))
    wait_for_status(market, query.query_id, QueryStatus.OPEN)
    values = [10, 20, 30]
    owners = harness.register_owners(len(values))
    submit_all(owners, query, [encrypt_for(market, query, owner, w, aggregators) for owner, w in zip(owners, encode_values(values))])

    result = run_to_publication(harness, market, running_services, query)

    # Noise scale is 1000 * 2^16 encoded units per aggregator, so an exact result is vanishingly unlikely.
    assert result != expected_sum(values)
    signed = result[0] - MODULUS if result[0] >= MODULUS // 2 else result[0]
    assert abs(signed - expected_sum(values)[0]) < 3 * 50 * 1000 * 2**16


def test_policy_refusals_logged_and_others_served(harness, market, aggregators, start_block, tmp_path, caplog):
    service = build_service(aggregators[0], tmp_path / "aggregator.sqlite", start_block, policy=AcceptancePolicy(min_fee_wei=10**16, max_output_length=4))
    spec = sum_spec()
    low_fee = propose(harness, aggregators, spec, fee_per_aggregator=10**15)
    malformed = propose(harness, aggregators, spec, spec_json=b'{"template": "sum",')
    too_long = propose(harness, aggregators, spec, output_length=8)
    good = propose(harness, aggregators, spec)

    with caplog.at_level(logging.INFO, logger="offchain_workers.aggregator"):
        service.poll_once()
    service.close()

    phases = {query.query_id: service.state.query(query.query_id).phase for query in (low_fee, malformed, too_long, good)}
    assert phases == {
        low_fee.query_id: Phase.REFUSED,
        malformed.query_id: Phase.REFUSED,
        too_long.query_id: Phase.REFUSED,
        good.query_id: Phase.ACCEPTED,
    }
    assert market.aggregator_query_state(good.query_id, aggregators[0].address).accepted
    assert not market.aggregator_query_state(low_fee.query_id, aggregators[0].address).accepted
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"query {low_fee.query_id} refused: fee" in message for message in messages)
    assert any(f"query {malformed.query_id} refused: malformed spec" in message for message in messages)
    assert any(f"query {too_long.query_id} refused: output length 8" in message for message in messages)


def test_concurrency_limit_refuses_extra_query(harness, aggregators, start_block, tmp_path):
    service = build_service(aggregators[0], tmp_path / "aggregator.sqlite", start_block, policy=AcceptancePolicy(max_concurrent_queries=1))
    first = propose(harness, aggregators, sum_spec())
    second = propose(harness, aggregators, sum_spec())

    service.poll_once()
    service.close()

    assert service.state.query(first.query_id).phase == Phase.ACCEPTED
    refused = service.state.query(second.query_id)
    assert refused.phase == Phase.REFUSED
    assert "maximum 1" in refused.reason


def test_reread_events_not_double_counted(harness, market, aggregators, start_block, tmp_path):
    services = [build_service(identity, tmp_path / f"aggregator-{i}.sqlite", start_block) for i, identity in enumerate(aggregators)]
    query = propose(harness, aggregators, sum_spec())
    for service in services:
        service.poll_once()
    values = [5, 6, 7, 8]
    owners = harness.register_owners(len(values))
    submit_all(owners, query, [encrypt_for(market, query, owner, w, aggregators) for owner, w in zip(owners, encode_values(values))])
    for service in services:
        service.poll_once()
    before = [service.state.accumulator(query.query_id) for service in services]

    for service in services:
        # Rewind the cursor to the start and force a re-scan: every event is read twice more.
        service.state.cursor.save(start_block - 1)
        service.rescan(service.state.query(query.query_id))
        service.poll_once()
    after = [service.state.accumulator(query.query_id) for service in services]
    assert after == before
    assert all(count == len(values) for _, count in after)

    harness.advance_past(query.params.submit_deadline)
    harness.advance_to_commit_window(query)
    for _ in range(3):
        for service in services:
            service.poll_once()
    assert market.query_result(query.query_id) == expected_sum(values)
    for service in services:
        service.close()


def test_fresh_database_resumes_accepted_query(harness, market, aggregators, start_block, tmp_path):
    services = [build_service(identity, tmp_path / f"aggregator-{i}.sqlite", start_block) for i, identity in enumerate(aggregators)]
    query = propose(harness, aggregators, sum_spec())
    for service in services:
        service.poll_once()
    values = [1, 2, 3]
    owners = harness.register_owners(len(values))
    submit_all(owners, query, [encrypt_for(market, query, owner, w, aggregators) for owner, w in zip(owners, encode_values(values))])
    for service in services:
        service.poll_once()

    # Aggregator 0 loses its database: the new one finds the acceptance on-chain and re-reads the events.
    services[0].close()
    os.remove(tmp_path / "aggregator-0.sqlite")
    services[0] = build_service(aggregators[0], tmp_path / "aggregator-0-new.sqlite", start_block)
    services[0].poll_once()
    services[0].poll_once()
    assert services[0].state.accumulator(query.query_id)[1] == len(values)

    harness.advance_past(query.params.submit_deadline)
    harness.advance_to_commit_window(query)
    for _ in range(3):
        for service in services:
            service.poll_once()
    assert market.query_result(query.query_id) == expected_sum(values)
    for service in services:
        service.close()

    # A database rebuilt after publication finds the query settled and holds no query open.
    late = build_service(aggregators[1], tmp_path / "aggregator-1-late.sqlite", start_block)
    late.poll_once()
    late.poll_once()
    late.close()
    assert late.state.query(query.query_id).phase == Phase.SETTLED


def test_keeper_flag_cancels_unaccepted_query(harness, market, aggregators, start_block, tmp_path):
    service = build_service(aggregators[0], tmp_path / "aggregator.sqlite", start_block, keeper=True)
    # Only aggregator 0 runs, so the query never opens.
    query = propose(harness, aggregators, sum_spec())
    service.poll_once()
    assert service.state.query(query.query_id).phase == Phase.ACCEPTED

    harness.advance_past(query.params.accept_deadline)
    service.poll_once()
    service.poll_once()
    service.close()

    assert market.query_info(query.query_id).status is QueryStatus.CANCELLED
    assert service.state.query(query.query_id).phase == Phase.CANCELLED
