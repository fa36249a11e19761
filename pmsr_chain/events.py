"""Typed records for every `IDataMarket` event, a chunked log reader and persisted block cursors.

Each event has a frozen dataclass named like the event, with the event's arguments in snake_case
after the log position (`block_number`, `transaction_hash`, `log_index`, `address`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import eth_abi
from eth_utils import to_checksum_address
from web3 import Web3

from .abi import ContractAbi, DecodedEvent, abi_type, snake_case
from .errors import ConfigurationError, InvalidInputError, RpcError
from .rpc import rpc_request
from .types import CancelReason, OwnerPolicy, QueryParams

__all__ = [
    "EventRecord",
    "EVENT_TYPES",
    "to_event_record",
    "LogReader",
    "BlockCursor",
    "MemoryCursor",
    "JsonFileCursor",
    "EventPoller",
    "OwnerRegistered",
    "OwnerPolicyUpdated",
    "OwnerStakeIncreased",
    "OwnerExitBegun",
    "OwnerStakeWithdrawn",
    "AggregatorRegistered",
    "AggregatorKeyRotated",
    "AggregatorStakeIncreased",
    "AggregatorExitBegun",
    "AggregatorStakeWithdrawn",
    "QueryProposed",
    "QueryAccepted",
    "QueryOpened",
    "SharesSubmitted",
    "SubmissionsFilled",
    "ComplaintFiled",
    "AggregateCommitted",
    "AggregateRevealed",
    "ResultPublished",
    "QueryCancelled",
    "QueryFailed",
    "AggregatorSlashed",
    "OwnerPaid",
    "BudgetReleased",
    "AggregatorFeePaid",
    "AnalystRefunded",
]

logger = logging.getLogger(__name__)

@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """Position of a decoded log; every event record extends it with the event's arguments."""

    block_number: int
    transaction_hash: str
    log_index: int
    address: str

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class OwnerRegistered(EventRecord):
    owner: str
    stake: int
    policy: OwnerPolicy
    dataset_commitment: bytes


@dataclass(frozen=True, kw_only=True)
class OwnerPolicyUpdated(EventRecord):
    owner: str
    policy: OwnerPolicy


@dataclass(frozen=True, kw_only=True)
class OwnerStakeIncreased(EventRecord):
    owner: str
    amount: int
    stake: int


@dataclass(frozen=True, kw_only=True)
class OwnerExitBegun(EventRecord):
    owner: str
    withdrawable_at: int


@dataclass(frozen=True, kw_only=True)
class OwnerStakeWithdrawn(EventRecord):
    owner: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class AggregatorRegistered(EventRecord):
    aggregator: str
    stake: int
    encryption_key: bytes


@dataclass(frozen=True, kw_only=True)
class AggregatorKeyRotated(EventRecord):
    aggregator: str
    encryption_key: bytes


@dataclass(frozen=True, kw_only=True)
class AggregatorStakeIncreased(EventRecord):
    aggregator: str
    amount: int
    stake: int


@dataclass(frozen=True, kw_only=True)
class AggregatorExitBegun(EventRecord):
    aggregator: str
    withdrawable_at: int


@dataclass(frozen=True, kw_only=True)
class AggregatorStakeWithdrawn(EventRecord):
    aggregator: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class QueryProposed(EventRecord):
    query_id: int
    analyst: str
    spec_hash: bytes
    params: QueryParams
    spec_json: bytes


@dataclass(frozen=True, kw_only=True)
class QueryAccepted(EventRecord):
    query_id: int
    aggregator: str


@dataclass(frozen=True, kw_only=True)
class QueryOpened(EventRecord):
    query_id: int


@dataclass(frozen=True, kw_only=True)
class SharesSubmitted(EventRecord):
    query_id: int
    owner: str
    ciphertexts: tuple[bytes, ...]  # one per aggregator, in the order of params.aggregators


@dataclass(frozen=True, kw_only=True)
class SubmissionsFilled(EventRecord):
    query_id: int
    closed_at: int


@dataclass(frozen=True, kw_only=True)
class ComplaintFiled(EventRecord):
    query_id: int
    aggregator: str
    owner: str


@dataclass(frozen=True, kw_only=True)
class AggregateCommitted(EventRecord):
    query_id: int
    aggregator: str
    commitment: bytes


@dataclass(frozen=True, kw_only=True)
class AggregateRevealed(EventRecord):
    query_id: int
    aggregator: str
    share: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class ResultPublished(EventRecord):
    query_id: int
    result: tuple[int, ...]  # coordinates modulo 2^64; read as signed 64-bit fixed point
    included_owners: int


@dataclass(frozen=True, kw_only=True)
class QueryCancelled(EventRecord):
    query_id: int
    reason: CancelReason


@dataclass(frozen=True, kw_only=True)
class QueryFailed(EventRecord):
    query_id: int
    slashed_total: int


@dataclass(frozen=True, kw_only=True)
class AggregatorSlashed(EventRecord):
    query_id: int
    aggregator: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class OwnerPaid(EventRecord):
    query_id: int
    owner: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class BudgetReleased(EventRecord):
    query_id: int
    owner: str
    epsilon: int


@dataclass(frozen=True, kw_only=True)
class AggregatorFeePaid(EventRecord):
    query_id: int
    aggregator: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class AnalystRefunded(EventRecord):
    query_id: int
    analyst: str
    amount: int


EVENT_TYPES: dict[str, type[EventRecord]] = {
    cls.__name__: cls
    for cls in (
        OwnerRegistered, OwnerPolicyUpdated, OwnerStakeIncreased, OwnerExitBegun, OwnerStakeWithdrawn,
        AggregatorRegistered, AggregatorKeyRotated, AggregatorStakeIncreased, AggregatorExitBegun,
        AggregatorStakeWithdrawn, QueryProposed, QueryAccepted, QueryOpened, SharesSubmitted,
        SubmissionsFilled, ComplaintFiled, AggregateCommitted, AggregateRevealed, ResultPublished,
        QueryCancelled, QueryFailed, AggregatorSlashed, OwnerPaid, BudgetReleased, AggregatorFeePaid,
        AnalystRefunded,
    )
}
_POSITION_FIELDS = {f.name for f in fields(EventRecord)}


def to_event_record(decoded: DecodedEvent) -> EventRecord:
    """Convert a decoded log to its typed record; raise `ConfigurationError` for an unknown event."""
    record_type = EVENT_TYPES.get(decoded.name)
    if record_type is None:
        raise ConfigurationError(
            f"no record type for event {decoded.name}; add a dataclass for it to pmsr_chain.events"
        )
    arguments = {snake_case(name): value for name, value in decoded.arguments.items()}
    expected = {f.name for f in fields(record_type)} - _POSITION_FIELDS
    if set(arguments) != expected:
        raise ConfigurationError(
            f"event {decoded.name} has arguments {sorted(arguments)} but its record expects {sorted(expected)}; "
            "update pmsr_chain.events to match the ABI"
        )
    return record_type(
        block_number=decoded.block_number,
        transaction_hash=decoded.transaction_hash,
        log_index=decoded.log_index,
        address=decoded.address,
        **arguments,
    )


# --------------------------------------------------------------------------------------------------
# Reading logs


def _is_range_error(error: RpcError) -> bool:
    message = str(error).lower()
    return any(word in message for word in ("range", "too many", "more than", "limit", "exceed"))


class LogReader:
    """Reads one contract's logs in block ranges of at most `chunk_size` blocks and decodes them.

    A node that rejects a range as too large gets it again in halves.
    """

    def __init__(self, w3: Web3, address: str, abi: ContractAbi, *, chunk_size: int = 2_000) -> None:
        if chunk_size < 1:
            raise InvalidInputError(f"chunk_size must be at least 1 block, got {chunk_size}")
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.abi = abi
        self.chunk_size = chunk_size

    def latest_block(self) -> int:
        return int(rpc_request(self.w3, "eth_blockNumber", []), 16)

    def _topics(self, names: Sequence[str] | None, filters: Mapping[str, Any] | None) -> list[Any]:
        if names is None:
            if filters:
                raise InvalidInputError("argument filters need an event name; pass name=...")
            return []
        topics: list[Any] = [["0x" + self.abi.event_topic(name).hex() for name in names]]
        if not filters:
            return topics
        if len(names) != 1:
            raise InvalidInputError(f"argument filters apply to one event at a time, got {list(names)}")
        indexed = self.abi.events[names[0]].indexed
        for parameter in indexed:
            value = filters.get(parameter["name"])
            if value is None:
                topics.append(None)
            else:
                values = value if isinstance(value, (list, tuple, set)) else [value]
                topics.append(["0x" + eth_abi.encode([abi_type(parameter)], [v]).hex() for v in values])
        unknown = set(filters) - {p["name"] for p in indexed}
        if unknown:
            raise InvalidInputError(
                f"{names[0]} has no indexed argument {sorted(unknown)}; indexed: {[p['name'] for p in indexed]}"
            )
        while topics and topics[-1] is None:
            topics.pop()
        return topics

    def read(
        self,
        names: str | Sequence[str] | None,
        from_block: int,
        to_block: int | None = None,
        *,
        filters: Mapping[str, Any] | None = None,
    ) -> list[EventRecord]:
        """Return the events in `[from_block, to_block]` (inclusive; `None` is the latest block).

        `names` is one event name, several, or `None` for every event of the contract. `filters`
        matches indexed arguments by ABI name, for example `{"queryId": 3}`.
        """
        if isinstance(names, str):
            names = [names]
        last = self.latest_block() if to_block is None else to_block
        if from_block < 0 or last < from_block:
            return []
        topics = self._topics(names, filters)
        records: list[EventRecord] = []
        start = from_block
        chunk = self.chunk_size
        while start <= last:
            end = min(start + chunk - 1, last)
            try:
                logs = rpc_request(
                    self.w3, "eth_getLogs",
                    [{"address": self.address, "fromBlock": hex(start), "toBlock": hex(end), "topics": topics}],
                )
            except RpcError as error:
                if chunk > 1 and _is_range_error(error):
                    chunk = max(1, chunk // 2)
                    logger.warning("eth_getLogs rejected %d blocks (%s); trying %d", end - start + 1, error, chunk)
                    continue
                raise
            for log in logs:
                decoded = self.abi.decode_log(log)
                if decoded is not None:
                    records.append(to_event_record(decoded))
            start = end + 1
        records.sort(key=lambda r: (r.block_number, r.log_index))
        return records

    def decode_receipt_logs(self, logs: Iterable[Mapping[str, Any]]) -> list[EventRecord]:
        """Decode the logs of a receipt that this contract emitted, in log order."""
        records = []
        for log in logs:
            if to_checksum_address(log["address"]) != self.address:
                continue
            decoded = self.abi.decode_log(log)
            if decoded is not None:
                records.append(to_event_record(decoded))
        return records


# --------------------------------------------------------------------------------------------------
# Cursors


class BlockCursor(Protocol):
    """Storage for the last block whose events were processed (a JSON file, an SQLite row, ...)."""

    def load(self) -> int | None:
        """Return the last processed block, or `None` before the first save."""

    def save(self, block_number: int) -> None:
        """Record that every event up to and including `block_number` was processed."""


class MemoryCursor:
    """A `BlockCursor` kept in memory, for tests and one-shot reads."""

    def __init__(self, block_number: int | None = None) -> None:
        self._block = block_number

    def load(self) -> int | None:
        return self._block

    def save(self, block_number: int) -> None:
        self._block = block_number


class JsonFileCursor:
    """A `BlockCursor` in a small JSON file (`{"lastBlock": N}`), replaced atomically on each save."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> int | None:
        if not self.path.is_file():
            return None
        try:
            document = json.loads(self.path.read_text())
            return int(document["lastBlock"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ConfigurationError(
                f"cursor file {self.path} is malformed ({error}); delete it to read from the start block"
            ) from error

    def save(self, block_number: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=f".{self.path.name}.", delete=False) as handle:
            json.dump({"lastBlock": block_number}, handle)
            handle.flush()
            os.fsync(handle.fileno())
            temporary = Path(handle.name)
        os.replace(temporary, self.path)


class EventPoller:
    """Reads events after a cursor's block and advances the cursor once a handler processed them.

    Blocks newer than `latest - confirmations` are left for a later poll. A handler that raises
    leaves the cursor where it was, so the same events come again on the next poll.
    """

    def __init__(
        self,
        reader: LogReader,
        cursor: BlockCursor,
        names: str | Sequence[str] | None = None,
        *,
        start_block: int = 0,
        confirmations: int = 0,
    ) -> None:
        if confirmations < 0:
            raise InvalidInputError(f"confirmations must be non-negative, got {confirmations}")
        self.reader = reader
        self.cursor = cursor
        self.names = names
        self.start_block = start_block
        self.confirmations = confirmations

    def poll(self, handler: Callable[[list[EventRecord]], None]) -> int:
        """Hand the new events to `handler`, then save the cursor; return how many events there were."""
        last_done = self.cursor.load()
        start = self.start_block if last_done is None else last_done + 1
        end = self.reader.latest_block() - self.confirmations
        if end < start:
            return 0
        records = self.reader.read(self.names, start, end)
        handler(records)
        self.cursor.save(end)
        return len(records)
