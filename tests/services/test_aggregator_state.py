"""Aggregator state, log decoding, ingestion, policy and configuration, without a chain.

Logs are built as `eth_getLogs` returns them, with real ciphertexts from `encrypt_shares`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace

import eth_abi
import numpy as np
import pytest

from offchain_workers.aggregator import AcceptancePolicy, AggregatorConfig, AggregatorState, Phase, evaluate_proposal, load_config
from offchain_workers.aggregator.config import SecretSource
from offchain_workers.aggregator.ingest import ShareIngestor
from offchain_workers.aggregator.logs import (
    COMPLAINT_FILED_TOPIC,
    QUERY_PROPOSED_TOPIC,
    SHARES_SUBMITTED_TOPIC,
    MalformedLogError,
    extract_ciphertext,
    fetch_logs,
    parse_shares_log,
    uint_topic,
)
from offchain_workers.aggregator.state import ComplaintState, SubmissionStatus
from offchain_workers.encryption import ShareContext, ciphertext_length, encrypt_shares
from offchain_workers.keys import AggregatorKeyPair
from offchain_workers.spec import build_spec
from offchain_workers.spec import spec_hash as keccak_spec
from pmsr_chain import ContractAbi, compile_contracts
from pmsr_chain.errors import ConfigurationError
from pmsr_chain.types import QueryParams

CHAIN_ID = 31337
MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
QUERY_ID = 7
LENGTH = 2
KEYS = [AggregatorKeyPair.generate() for _ in range(3)]
AGGREGATOR_INDEX = 1


def owner_bytes() -> bytes:
    return secrets.token_bytes(20)


def shares_log(owner: bytes, ciphertexts: list[bytes], *, block: int = 10, index: int = 0, query_id: int = QUERY_ID,
               address: str = MARKET, data: bytes | None = None) -> dict:
    encoded = eth_abi.encode(["bytes[]"], [ciphertexts]) if data is None else data
    return {
        "address": address.lower(),
        "topics": ["0x" + SHARES_SUBMITTED_TOPIC.hex(), uint_topic(query_id), "0x" + bytes(12).hex() + owner.hex()],
        "data": "0x" + encoded.hex(),
        "blockNumber": hex(block),
        "logIndex": hex(index),
        "transactionHash": "0x" + secrets.token_bytes(32).hex(),
    }


def complaint_log(owner: bytes, aggregator: bytes, *, block: int = 20) -> dict:
    return {
        "address": MARKET.lower(),
        "topics": [
            "0x" + COMPLAINT_FILED_TOPIC.hex(), uint_topic(QUERY_ID),
            "0x" + bytes(12).hex() + aggregator.hex(), "0x" + bytes(12).hex() + owner.hex(),
        ],
        "data": "0x",
        "blockNumber": hex(block),
        "logIndex": "0x0",
        "transactionHash": "0x" + secrets.token_bytes(32).hex(),
    }


def encrypt(owner: bytes, words: list[int], keys: list[bytes] | None = None) -> list[bytes]:
    context = ShareContext(CHAIN_ID, MARKET, QUERY_ID, owner)
    return encrypt_shares(np.array(words, dtype=np.uint64), keys or [key.public_key for key in KEYS], context)


def share_of(ciphertexts: list[bytes], owner: bytes) -> np.ndarray:
    context = ShareContext(CHAIN_ID, MARKET, QUERY_ID, owner)
    return KEYS[AGGREGATOR_INDEX].decryptor().decrypt(ciphertexts[AGGREGATOR_INDEX], context, AGGREGATOR_INDEX, LENGTH)


@pytest.fixture
def state(tmp_path):
    state = AggregatorState(tmp_path / "aggregator.sqlite")
    with state.transaction() as connection:
        state.insert_proposal(
            connection, query_id=QUERY_ID, aggregator_index=AGGREGATOR_INDEX, aggregator_count=3, output_length=LENGTH,
            spec_json=b"{}", proposed_block=1, accept_deadline=100, commit_deadline=200, reveal_deadline=300,
        )
    state.set_phase(QUERY_ID, Phase.ACCEPTED)
    yield state
    state.close()


@pytest.fixture
def ingestor() -> ShareIngestor:
    return ShareIngestor(KEYS[AGGREGATOR_INDEX].decryptor(), CHAIN_ID, MARKET)


def ingest(state: AggregatorState, ingestor: ShareIngestor, logs: list[dict]):
    with state.transaction() as connection:
        return ingestor.apply(connection, {QUERY_ID: state.query(QUERY_ID)}, logs)


def accumulated(state: AggregatorState) -> tuple[list[int], int]:
    total, count = state.accumulator(QUERY_ID)
    words = np.frombuffer(total, dtype="<u8").tolist() if total is not None else [0] * LENGTH
    return words, count


# --- log decoding ---------------------------------------------------------------------------------


def test_topics_match_contract_abi():
    abi = ContractAbi(compile_contracts()["DataMarket"].abi)
    assert abi.event_topic("SharesSubmitted") == SHARES_SUBMITTED_TOPIC
    assert abi.event_topic("ComplaintFiled") == COMPLAINT_FILED_TOPIC
    assert abi.event_topic("QueryProposed") == QUERY_PROPOSED_TOPIC


def test_extract_ciphertext_returns_element():
    elements = [b"a" * 48, b"bb" * 40, b"c" * 5]
    data = eth_abi.encode(["bytes[]"], [elements])
    assert [extract_ciphertext(data, index, 3) for index in range(3)] == elements


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: data[:40], "fewer than the 64"),
        (lambda data: (10**6).to_bytes(32, "big") + data[32:], "offset"),
        (lambda data: data[:32] + (5).to_bytes(32, "big") + data[64:], "5 ciphertexts"),
        (lambda data: data[:-64], "outside"),
    ],
    ids=["truncated", "offset-out-of-range", "wrong-count", "element-past-end"],
)
def test_extract_ciphertext_rejects_malformed(mutate, message):
    data = eth_abi.encode(["bytes[]"], [[b"x" * 64, b"y" * 64, b"z" * 64]])
    with pytest.raises(MalformedLogError, match=message):
        extract_ciphertext(mutate(data), 1, 3)


def test_extract_ciphertext_rejects_huge_length():
    data = bytearray(eth_abi.encode(["bytes[]"], [[b"x" * 64, b"y" * 64, b"z" * 64]]))
    # The first element's length word sits after the head (32), count (32) and three offsets (96).
    data[160:192] = (2**255).to_bytes(32, "big")
    with pytest.raises(MalformedLogError, match="outside"):
        extract_ciphertext(bytes(data), 0, 3)


def test_parse_shares_log_keeps_owner_of_bad_data():
    owner = owner_bytes()
    parsed = parse_shares_log(shares_log(owner, [], data=b"\x01" * 10), AGGREGATOR_INDEX, 3)
    assert parsed.owner == owner
    assert parsed.ciphertext is None
    assert "fewer than the 64" in parsed.problem


def test_parse_shares_log_rejects_bad_owner_topic():
    log = shares_log(owner_bytes(), [b"x"] * 3)
    log["topics"][2] = "0x" + "ff" * 32
    with pytest.raises(MalformedLogError, match="not an ABI-encoded address"):
        parse_shares_log(log, AGGREGATOR_INDEX, 3)


class FakeProvider:
    """Returns fixed `eth_getLogs` results, as a node or proxy could."""

    def __init__(self, logs):
        self.logs = logs

    def make_request(self, method, params):
        assert method == "eth_getLogs"
        return {"result": self.logs}


class FakeWeb3:
    def __init__(self, logs):
        self.provider = FakeProvider(logs)


def test_fetch_logs_drops_other_contracts(caplog):
    owner = owner_bytes()
    ours = shares_log(owner, encrypt(owner, [1, 2]))
    foreign = shares_log(owner, encrypt(owner, [1, 2]), address="0x" + "12" * 20)
    logs = fetch_logs(FakeWeb3([foreign, ours]), MARKET, [], 1, 5)  # type: ignore[arg-type]
    assert logs == [ours]
    assert "only market" in caplog.text


# --- ingestion ------------------------------------------------------------------------------------


def test_ingest_accumulates_and_ignores_rereads(state, ingestor):
    owners = [owner_bytes() for _ in range(4)]
    submissions = [encrypt(owner, [index + 1, 2**64 - 1 - index]) for index, owner in enumerate(owners)]
    logs = [shares_log(owner, ciphertexts, block=10 + index) for index, (owner, ciphertexts) in enumerate(zip(owners, submissions))]

    first = ingest(state, ingestor, logs[:3])
    second = ingest(state, ingestor, logs)
    again = ingest(state, ingestor, logs)

    expected = np.zeros(LENGTH, dtype=np.uint64)
    for owner, ciphertexts in zip(owners, submissions):
        expected += share_of(ciphertexts, owner)
    assert accumulated(state) == (expected.tolist(), 4)
    assert (first.accepted, second.accepted, second.duplicates) == (3, 1, 3)
    assert (again.accepted, again.duplicates) == (0, 4)


def test_ingest_marks_bad_ciphertexts(state, ingestor):
    good, wrong_length, wrong_key, copier = (owner_bytes() for _ in range(4))
    good_ciphertexts = encrypt(good, [5, 6])
    short = [c[:-1] for c in encrypt(wrong_length, [1, 1])]
    other_keys = [key.public_key for key in KEYS]
    other_keys[AGGREGATOR_INDEX] = AggregatorKeyPair.generate().public_key
    foreign_key = encrypt(wrong_key, [1, 1], other_keys)
    logs = [
        shares_log(good, good_ciphertexts, block=10),
        shares_log(wrong_length, short, block=11),
        shares_log(wrong_key, foreign_key, block=12),
        shares_log(copier, good_ciphertexts, block=13),
    ]

    stats = ingest(state, ingestor, logs)

    assert (stats.accepted, stats.rejected) == (1, 3)
    assert accumulated(state) == (share_of(good_ciphertexts, good).tolist(), 1)
    short_row = state.submission(QUERY_ID, wrong_length)
    assert short_row.status == SubmissionStatus.BAD
    assert f"needs {ciphertext_length(LENGTH)}" in short_row.reason
    for owner in (wrong_key, copier):
        row = state.submission(QUERY_ID, owner)
        assert row.status == SubmissionStatus.BAD
        assert "failed authentication" in row.reason
    assert {row.owner for row in state.pending_complaints(QUERY_ID)} == {wrong_length, wrong_key, copier}
    assert state.submission(QUERY_ID, good).complaint == ComplaintState.NONE


def test_ingest_records_exclusions_and_skips_other_queries(state, ingestor):
    owner, other_owner = owner_bytes(), owner_bytes()
    ciphertexts = encrypt(owner, [3, 4])
    logs = [
        shares_log(owner, ciphertexts),
        shares_log(other_owner, encrypt(other_owner, [1, 1]), query_id=QUERY_ID + 1),
        complaint_log(owner, owner_bytes()),
    ]
    stats = ingest(state, ingestor, logs)
    assert (stats.accepted, stats.exclusions, stats.skipped) == (1, 1, 1)
    assert state.is_excluded(QUERY_ID, owner)
    assert [row.owner for row in state.excluded_ok_submissions(QUERY_ID)] == [owner]
    counts = state.submission_counts(QUERY_ID)
    assert (counts.ok, counts.bad, counts.excluded, counts.excluded_ok) == (1, 0, 1, 1)


def test_failed_batch_changes_nothing(state, ingestor):
    owners = [owner_bytes() for _ in range(3)]
    logs = [shares_log(owner, encrypt(owner, [1, 1]), block=10 + i) for i, owner in enumerate(owners)]
    with pytest.raises(RuntimeError), state.transaction() as connection:
        ingestor.apply(connection, {QUERY_ID: state.query(QUERY_ID)}, logs)
        state.cursor.save(12)
        raise RuntimeError("crash before commit")
    assert accumulated(state) == ([0, 0], 0)
    assert state.submission(QUERY_ID, owners[0]) is None
    assert state.cursor.load() is None
    ingest(state, ingestor, logs)
    assert accumulated(state)[1] == 3


def test_commitment_written_once(state):
    state.save_commitment(QUERY_ID, b"\x01" * 16, b"\x02" * 32, b"\x03" * 32)
    state.save_commitment(QUERY_ID, b"\x09" * 16, b"\x08" * 32, b"\x07" * 32)
    record = state.commitment(QUERY_ID)
    assert (record.share, record.salt, record.commitment) == (b"\x01" * 16, b"\x02" * 32, b"\x03" * 32)
    assert state.query(QUERY_ID).phase == Phase.COMMITTING
    assert "01" * 16 not in repr(record)


# --- policy ---------------------------------------------------------------------------------------


AGGREGATOR = "0x" + "ab" * 20
SPEC = build_spec("sum", {"column": "x"}, clip=("-10", "10"), fractional_bits=8, contribution_bound=1, epsilon_millionths=500_000)


def params(**overrides) -> QueryParams:
    base = QueryParams(
        template_id=SPEC.template_id, output_length=SPEC.output_length, epsilon=SPEC.epsilon, price_per_owner=1,
        min_owners=1, max_owners=100, aggregators=("0x" + "01" * 20, AGGREGATOR), fee_per_aggregator=10**16,
        accept_deadline=1000, submit_deadline=2000, commit_deadline=3000, reveal_deadline=4000,
        max_abs_encoded=SPEC.max_abs_encoded,
    )
    return replace(base, **overrides)


def decide(policy=AcceptancePolicy(), *, spec_json=None, spec_hash=None, active=0, now=500, **overrides):
    spec_bytes = SPEC.to_json_bytes() if spec_json is None else spec_json
    return evaluate_proposal(
        policy, aggregator=params().aggregators[1], params=params(**overrides), spec_json=spec_bytes,
        onchain_spec_hash=keccak_spec(spec_bytes) if spec_hash is None else spec_hash, active_queries=active, now=now,
    )


def test_policy_accepts_valid_proposal():
    decision = decide()
    assert decision.accepted
    assert decision.aggregator_index == 1
    assert decision.spec == SPEC


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"aggregators": ("0x" + "01" * 20, "0x" + "02" * 20)}, "is not assigned"),
        ({"now": 1001}, "accept deadline 1000 passed"),
        ({"policy": AcceptancePolicy(min_fee_wei=10**17)}, "below the minimum"),
        ({"policy": AcceptancePolicy(max_output_length=1), "output_length": 2}, "output length 2 is above the maximum 1"),
        ({"policy": AcceptancePolicy(max_concurrent_queries=2), "active": 2}, "2 queries in flight"),
        ({"spec_hash": b"\x00" * 32}, "spec hash mismatch"),
        ({"spec_json": b"{\"template\": 5"}, "malformed spec"),
        ({"epsilon": 1_000_000}, "epsilon is 1000000 on-chain but 500000 in the spec"),
        ({"max_abs_encoded": 1}, "maxAbsEncoded"),
    ],
    ids=["not-assigned", "deadline", "fee", "length", "concurrency", "hash", "malformed", "epsilon", "bound"],
)
def test_policy_refusal_reasons(arguments, reason):
    decision = decide(**arguments)
    assert not decision.accepted
    assert reason in decision.reason


def test_policy_refuses_noise_that_could_wrap():
    wide = build_spec("sum", {"column": "x"}, clip=("-1000000", "1000000"), fractional_bits=40, contribution_bound=1,
                      epsilon_millionths=1)
    decision = evaluate_proposal(
        AcceptancePolicy(), aggregator=params().aggregators[1],
        params=params(epsilon=1, max_abs_encoded=wide.max_abs_encoded, max_owners=1),
        spec_json=wide.to_json_bytes(), onchain_spec_hash=wide.hash, active_queries=0, now=0,
    )
    assert not decision.accepted
    assert "unsafe noise bound" in decision.reason


# --- configuration --------------------------------------------------------------------------------


def base_document(**changes) -> dict:
    document = {
        "rpcUrl": "http://127.0.0.1:8545",
        "market": {"address": MARKET},
        "account": {"devKeys": "keys.json", "address": "0x" + "cd" * 20},
        "encryptionKey": {"path": "x25519.json", "passphraseFile": "secret.txt"},
        "dbPath": "aggregator.sqlite",
    }
    document.update(changes)
    return document


def test_config_file_resolves_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("file secret\n")
    document = base_document(
        market={"address": MARKET.lower(), "manifest": None},
        account={"keystore": "keys/account.json", "passphraseEnv": "AGGREGATOR_TEST_PASSPHRASE"},
        dbPath="state/aggregator.sqlite",
        startBlock=12,
        policy={"minFeeWei": "5", "maxOutputLength": 16, "maxConcurrentQueries": 2},
        pollInterval=0.25,
        keeper=True,
    )
    path = tmp_path / "aggregator.json"
    path.write_text(json.dumps(document))

    config = load_config(path)

    assert config.start_block == 12
    assert config.database == tmp_path / "state" / "aggregator.sqlite"
    assert config.account.keystore == tmp_path / "keys" / "account.json"
    assert config.account.passphrase_env == "AGGREGATOR_TEST_PASSPHRASE"
    assert config.key_file == tmp_path / "x25519.json"
    assert config.key_passphrase.read() == "file secret"
    assert config.policy == AcceptancePolicy(5, 16, 2)
    assert config.poll_interval == 0.25
    assert config.keeper is True
    assert AggregatorConfig.from_json(config.to_json(), tmp_path) == config


def test_config_written_private(tmp_path):
    config = AggregatorConfig.from_json(base_document(), tmp_path)
    path = config.write(tmp_path / "out" / "aggregator.json")
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rpcUrl": "ws://x"}, "rpcUrl"),
        ({"market": {"address": "0x1234"}}, "not an address"),
        ({"pollInterval": 0}, "pollInterval"),
        ({"blockChunk": 0}, "blockChunk"),
        ({"startBlock": -1}, "startBlock"),
        ({"keeper": "yes"}, "keeper"),
        ({"policy": {"maxOutputLength": 0}}, "max_output_length"),
        ({"policy": {"minFee": 1}}, "unknown keys"),
        ({"surprise": 1}, "unknown keys"),
        ({"dbPath": ""}, "dbPath"),
        ({"encryptionKey": {"path": "k.json"}}, "exactly one of passphraseEnv or passphraseFile"),
        ({"encryptionKey": {"path": "k.json", "passphraseEnv": "A", "passphraseFile": "b"}}, "exactly one of"),
    ],
)
def test_config_rejects_invalid_values(tmp_path, change, message):
    with pytest.raises(ConfigurationError, match=message):
        AggregatorConfig.from_json(base_document(**change), tmp_path)


def test_missing_passphrase_named(tmp_path, monkeypatch):
    monkeypatch.delenv("AGGREGATOR_UNSET_VARIABLE", raising=False)
    with pytest.raises(ConfigurationError, match="AGGREGATOR_UNSET_VARIABLE is not set"):
        SecretSource(env="AGGREGATOR_UNSET_VARIABLE").read()
    with pytest.raises(ConfigurationError, match="cannot read passphrase file"):
        SecretSource(file=tmp_path / "absent.txt").read()
