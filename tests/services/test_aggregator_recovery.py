"""Aggregator restarts: crashes at every step, in-process and as a SIGKILLed process, on a real Anvil node.

In-process crashes raise `SimulatedCrash` (a BaseException, so no handler in the service catches it)
at an exact point, abandon the service object without any clean-up write, and build a new service
on the same database, as a process restart would.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aggregator_conftest import (  # noqa: F401 - fixtures are used by name
    AggregatorIdentity,
    SimulatedCrash,
    aggregators,
    build_service,
    encode_values,
    encrypt_for,
    expected_sum,
    propose,
    start_block,
    submit_all,
    sum_spec,
    wait_until,
)

from offchain_workers.aggregator import AccountSource, AggregatorConfig, AggregatorService, MarketSource, Phase, SecretSource
from offchain_workers.encoding import from_le_bytes
from offchain_workers.encryption import ShareContext, encrypt_shares
from offchain_workers.keys import MIN_SCRYPT_N, AggregatorKeyPair
from pmsr_chain import compile_contracts
from pmsr_chain.keystore import import_keystore
from pmsr_chain.types import QueryStatus


class CrashingKeyPair:
    """A key pair whose decryptor raises `SimulatedCrash` on the n-th decryption."""

    def __init__(self, key_pair: AggregatorKeyPair, crash_at: int) -> None:
        self.public_key = key_pair.public_key
        self._decryptor = key_pair.decryptor()
        self._crash_at = crash_at
        self.calls = 0

    def decryptor(self) -> CrashingKeyPair:
        return self

    def decrypt_into(self, *arguments: object) -> None:
        self.calls += 1
        if self.calls == self._crash_at:
            raise SimulatedCrash(f"crash at decryption {self.calls}")
        self._decryptor.decrypt_into(*arguments)  # type: ignore[arg-type]

    def decrypt(self, *arguments: object):  # noqa: ANN201 - forwards to ShareDecryptor.decrypt
        return self._decryptor.decrypt(*arguments)  # type: ignore[arg-type]


def arm_crash(service: AggregatorService, function: str, when: str) -> None:
    """Make `service` crash just before sending `function`, or just after it was mined."""
    sender = service.client.sender
    real_submit = sender.submit

    def submit(call):  # noqa: ANN001, ANN202 - replaces TransactionSender.submit
        if call.function != function:
            return real_submit(call)
        if when == "before":
            raise SimulatedCrash(f"crash before sending {function}")
        sender.wait(real_submit(call))
        raise SimulatedCrash(f"crash after {function} was mined")

    sender.submit = submit


def poll(services: list[AggregatorService], rounds: int = 1) -> None:
    for _ in range(rounds):
        for service in services:
            service.poll_once()


def restart_after_crash(
    services: list[AggregatorService], identity: AggregatorIdentity, database: Path, start: int, function: str, when: str
) -> None:
    """Arm a crash in service 0, poll it until the crash, and replace it with a new service on its database."""
    arm_crash(services[0], function, when)
    with pytest.raises(SimulatedCrash):
        for _ in range(3):
            services[0].poll_once()
    services[0].state.close()
    services[0] = build_service(identity, database, start)


def test_restart_at_every_step(harness, market, aggregators, start_block, tmp_path):
    databases = [tmp_path / f"aggregator-{index}.sqlite" for index in range(3)]
    services = [build_service(identity, path, start_block) for identity, path in zip(aggregators, databases)]
    query = propose(harness, aggregators, sum_spec())
    query_id = query.query_id

    def crash(function: str, when: str) -> None:
        restart_after_crash(services, aggregators[0], databases[0], start_block, function, when)

    crash("acceptQuery", "before")
    assert services[0].state.query(query_id).phase == Phase.ACCEPTING
    crash("acceptQuery", "after")
    poll(services)
    assert market.query_info(query_id).status is QueryStatus.OPEN
    assert services[0].state.query(query_id).phase == Phase.ACCEPTED

    values = [11, 22, 33]
    owners = harness.register_owners(len(values))
    wrong_owner = harness.register_owners(1)[0]
    keys = [identity.key_pair.public_key for identity in aggregators]
    keys[0] = AggregatorKeyPair.generate().public_key
    context = ShareContext(wrong_owner.sender.chain_id, market.address, query_id, wrong_owner.sender.address)
    wrong = encrypt_shares(encode_values([44])[0], keys, context)
    submissions = [encrypt_for(market, query, owner, words, aggregators) for owner, words in zip(owners, encode_values(values))]
    submit_all([*owners, wrong_owner], query, [*submissions, wrong])
    poll(services)

    harness.advance_past(query.params.submit_deadline)
    crash("complain", "before")
    crash("complain", "after")
    poll(services)
    assert market.query_info(query_id).excluded_count == 1

    harness.advance_to_commit_window(query)
    crash("commitAggregate", "before")
    persisted = services[0].state.commitment(query_id)
    assert persisted is not None
    crash("commitAggregate", "after")
    poll(services[1:])
    crash("revealAggregate", "before")
    crash("revealAggregate", "after")
    poll(services[1:])
    assert market.query_info(query_id).status is QueryStatus.PUBLISHED
    crash("claimFee", "before")
    crash("claimFee", "after")
    poll(services, rounds=2)

    assert market.query_result(query_id) == expected_sum(values)
    onchain = market.aggregator_query_state(query_id, aggregators[0].address)
    assert onchain.commitment == persisted.commitment
    assert onchain.fee_claimed
    revealed = {
        event.aggregator: event.share for event in market.events("AggregateRevealed", start_block, filters={"queryId": query_id})
    }
    assert revealed[aggregators[0].address] == tuple(int(word) for word in from_le_bytes(persisted.share, 1))
    assert [service.state.query(query_id).phase for service in services] == [Phase.SETTLED] * 3
    for service in services:
        service.close()


def test_crash_during_ingest_rolls_back(harness, market, aggregators, start_block, tmp_path):
    database = tmp_path / "aggregator-0.sqlite"
    services = [build_service(identity, tmp_path / f"aggregator-{index}.sqlite", start_block) for index, identity in enumerate(aggregators)]
    query = propose(harness, aggregators, sum_spec())
    poll(services)
    services[0].close()

    crashing = CrashingKeyPair(aggregators[0].key_pair, crash_at=4)
    services[0] = AggregatorService(aggregators[0].fresh_client(), crashing, database, start_block=start_block)  # type: ignore[arg-type]
    cursor_before = services[0].state.cursor.load()
    values = [1, 2, 3, 4, 5, 6]
    owners = harness.register_owners(len(values))
    submit_all(owners, query, [encrypt_for(market, query, owner, words, aggregators) for owner, words in zip(owners, encode_values(values))])

    with pytest.raises(SimulatedCrash):
        services[0].poll_once()
    assert services[0].state.accumulator(query.query_id) == (None, 0)
    assert services[0].state.cursor.load() == cursor_before
    services[0].state.close()

    services[0] = build_service(aggregators[0], database, start_block)
    poll(services)
    assert services[0].state.accumulator(query.query_id)[1] == len(values)
    harness.advance_past(query.params.submit_deadline)
    harness.advance_to_commit_window(query)
    poll(services, rounds=3)
    assert market.query_result(query.query_id) == expected_sum(values)
    for service in services:
        service.close()


def test_corrupted_share_abandons_only_that_query(harness, market, aggregators, start_block, tmp_path):
    services = [build_service(identity, tmp_path / f"aggregator-{index}.sqlite", start_block) for index, identity in enumerate(aggregators)]
    query = propose(harness, aggregators, sum_spec())
    poll(services)
    owners = harness.register_owners(2)
    submit_all(owners, query, [encrypt_for(market, query, owner, words, aggregators) for owner, words in zip(owners, encode_values([1, 2]))])
    poll(services)
    harness.advance_past(query.params.submit_deadline)
    harness.advance_to_commit_window(query)
    poll(services)
    other = propose(harness, aggregators, sum_spec())

    # A share of the wrong length (3 bytes for L = 1) must never reach revealAggregate.
    services[0].state.database.execute("UPDATE queries SET share = x'010203' WHERE query_id = ?", (query.query_id,))
    poll(services)

    record = services[0].state.query(query.query_id)
    assert record.phase == Phase.ABANDONED
    assert "3 bytes" in record.reason
    assert not market.aggregator_query_state(query.query_id, aggregators[0].address).revealed
    assert services[0].state.query(other.query_id).phase == Phase.ACCEPTED
    for service in services:
        service.close()


# --- a real process, killed with SIGKILL ------------------------------------------------------------


def write_process_config(identity: AggregatorIdentity, directory: Path, rpc_url: str, market_address: str, start: int) -> Path:
    passphrase_file = directory / "passphrase.txt"
    directory.mkdir(parents=True)
    passphrase_file.write_text("test passphrase\n")
    keystore = import_keystore(directory, "account", identity.client.sender.account.key.hex(), "test passphrase", scrypt_n=2**4)
    identity.key_pair.save(directory / "x25519.json", "test passphrase", scrypt_n=MIN_SCRYPT_N)
    config = AggregatorConfig(
        rpc_url=rpc_url,
        market=MarketSource(address=market_address, artifact=compile_contracts()["DataMarket"].path),
        account=AccountSource(keystore=keystore.path, passphrase_file=passphrase_file),
        key_file=directory / "x25519.json",
        key_passphrase=SecretSource(file=passphrase_file),
        database=directory / "aggregator.sqlite",
        start_block=start,
        poll_interval=0.1,
        block_chunk=2,
    )
    return config.write(directory / "aggregator.json")


def read_row(database: Path, query_id: int) -> sqlite3.Row | None:
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT phase, accumulated_count FROM queries WHERE query_id = ?", (query_id,)).fetchone()
    except sqlite3.OperationalError:
        return None  # the schema is not created yet
    finally:
        connection.close()


def start_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "offchain_workers.aggregator", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )


def test_sigkilled_process_resumes(harness, market, anvil_node, aggregators, start_block, tmp_path):
    directory = tmp_path / "process"
    config = write_process_config(aggregators[0], directory, anvil_node.url, market.address, start_block)
    database = directory / "aggregator.sqlite"
    log = directory / "aggregator.log"
    in_process = [build_service(identity, tmp_path / f"aggregator-{index}.sqlite", start_block) for index, identity in enumerate(aggregators[1:], 1)]
    query = propose(harness, aggregators, sum_spec())
    query_id = query.query_id

    process = start_process(config, log)
    try:
        poll(in_process)
        wait_until(lambda: market.query_info(query_id).status is QueryStatus.OPEN, timeout=60, message="all accepts")

        values = list(range(1, 41))
        owners = harness.register_owners(len(values))
        submissions = [encrypt_for(market, query, owner, words, aggregators) for owner, words in zip(owners, encode_values(values))]
        submit_all(owners[:10], query, submissions[:10])
        wait_until(lambda: (read_row(database, query_id) or {"accumulated_count": 0})["accumulated_count"] > 0, message="first shares")
        submit_all(owners[10:20], query, submissions[10:20])
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed_count = read_row(database, query_id)["accumulated_count"]
        assert 0 < killed_count < len(values)

        submit_all(owners[20:], query, submissions[20:])
        process = start_process(config, log)
        wait_until(lambda: read_row(database, query_id)["accumulated_count"] == len(values), timeout=60, message="all shares")

        harness.advance_past(query.params.submit_deadline)
        harness.advance_to_commit_window(query)
        wait_until(lambda: read_row(database, query_id)["phase"] == "committed", message="the process's commitment")
        process.send_signal(signal.SIGKILL)
        process.wait(10)

        poll(in_process)
        assert market.query_info(query_id).committed_count == 3
        process = start_process(config, log)
        wait_until(lambda: market.aggregator_query_state(query_id, aggregators[0].address).revealed, timeout=60, message="reveal")
        poll(in_process, rounds=2)
        assert market.query_result(query_id) == expected_sum(values)
        wait_until(lambda: read_row(database, query_id)["phase"] == "settled", message="the fee claim")

        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        text = log.read_text()
        assert "stopped" in text
        assert aggregators[0].key_pair.private_key.private_bytes_raw().hex() not in text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for service in in_process:
            service.close()
