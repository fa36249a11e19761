"""Ingest `SharesSubmitted` and `ComplaintFiled` logs into the aggregator's state.

`ShareIngestor.apply` runs inside the caller's SQLite transaction. For each new (query, owner) it
inserts the ciphertext row and decrypts the share with this aggregator's key and index k. A share
that decrypts is added into the query's running accumulator; otherwise the row is marked bad for a
complaint. The accumulators touched by a batch are written back before the transaction commits, so
the rows, their statuses and the sums change together or not at all. A row that already exists makes its log a no-op, which is what
makes re-reading a block range safe.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from ..encoding import from_le_bytes, to_le_bytes
from ..encryption import ShareContext, ShareDecryptor, ciphertext_length
from ..errors import DecryptionError
from ..sharing import ShareAccumulator
from .logs import (
    COMPLAINT_FILED_TOPIC,
    SHARES_SUBMITTED_TOPIC,
    MalformedLogError,
    parse_complaint_log,
    parse_shares_log,
    topic_to_uint,
)
from .state import AggregatorState, QueryRecord, SubmissionStatus

__all__ = ["IngestStats", "ShareIngestor", "load_accumulator"]

logger = logging.getLogger(__name__)

_SHARES_TOPIC_HEX = "0x" + SHARES_SUBMITTED_TOPIC.hex()
_COMPLAINT_TOPIC_HEX = "0x" + COMPLAINT_FILED_TOPIC.hex()


@dataclass
class IngestStats:
    """Counts of the changes one batch made."""

    accepted: int = 0  # new rows whose share decrypted and was added
    rejected: int = 0  # new rows marked bad, to be complained about
    duplicates: int = 0  # logs whose row already existed
    exclusions: int = 0  # new exclusions from ComplaintFiled
    skipped: int = 0  # logs of queries not ingested here, or malformed beyond use

    def add(self, other: IngestStats) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.exclusions += other.exclusions
        self.skipped += other.skipped


def load_accumulator(connection: sqlite3.Connection, query: QueryRecord) -> ShareAccumulator:
    """Rebuild a query's accumulator from its row (empty before the first share).

    Raises:
        InvalidInputError: the stored sum does not have `8 * L` bytes (a corrupted database).
    """
    total, count = AggregatorState.load_accumulator(connection, query.query_id)
    if total is None:
        return ShareAccumulator(query.output_length)
    return ShareAccumulator.from_state(from_le_bytes(total, query.output_length), count)


class ShareIngestor:
    """Applies batches of logs for the queries this aggregator ingests."""

    def __init__(self, decryptor: ShareDecryptor, chain_id: int, market: str) -> None:
        self._decryptor = decryptor
        self._chain_id = chain_id
        self._market = bytes.fromhex(to_checksum_address(market)[2:])

    def apply(
        self,
        connection: sqlite3.Connection,
        queries: Mapping[int, QueryRecord],
        logs: Iterable[Mapping[str, Any]],
    ) -> IngestStats:
        """Apply `logs` (in chain order) for `queries` inside the caller's transaction."""
        stats = IngestStats()
        accumulators: dict[int, ShareAccumulator] = {}
        for log in logs:
            topics = log.get("topics") or []
            first = str(topics[0]).lower() if topics else ""
            try:
                if first == _SHARES_TOPIC_HEX:
                    self._apply_shares(connection, queries, log, accumulators, stats)
                elif first == _COMPLAINT_TOPIC_HEX:
                    self._apply_complaint(connection, queries, log, stats)
                else:
                    stats.skipped += 1
            except MalformedLogError as error:
                stats.skipped += 1
                logger.warning("skipping malformed log %s in block %s: %s", log.get("transactionHash"), log.get("blockNumber"), error)
        for query_id, accumulator in accumulators.items():
            AggregatorState.store_accumulator(connection, query_id, to_le_bytes(accumulator.total), accumulator.count)
        return stats

    def _apply_shares(
        self,
        connection: sqlite3.Connection,
        queries: Mapping[int, QueryRecord],
        log: Mapping[str, Any],
        accumulators: dict[int, ShareAccumulator],
        stats: IngestStats,
    ) -> None:
        query_id = topic_to_uint(log["topics"][1])
        query = queries.get(query_id)
        if query is None:
            stats.skipped += 1
            return
        parsed = parse_shares_log(log, query.aggregator_index, query.aggregator_count)
        expected_length = ciphertext_length(query.output_length)

        ciphertext = parsed.ciphertext if parsed.ciphertext is not None else b""
        status = SubmissionStatus.OK
        reason = parsed.problem
        if parsed.ciphertext is None:
            status = SubmissionStatus.BAD
        elif len(ciphertext) != expected_length:
            status = SubmissionStatus.BAD
            reason = f"ciphertext has {len(ciphertext)} bytes but L = {query.output_length} needs {expected_length}"

        inserted = AggregatorState.insert_submission(
            connection,
            query_id=query_id,
            owner=parsed.owner,
            ciphertext=ciphertext,
            status=status,
            reason=reason,
            block_number=parsed.block_number,
            log_index=parsed.log_index,
        )
        if not inserted:
            stats.duplicates += 1
            return

        if status is SubmissionStatus.OK:
            accumulator = accumulators.get(query_id)
            if accumulator is None:
                accumulator = accumulators[query_id] = load_accumulator(connection, query)
            context = ShareContext(self._chain_id, self._market, query_id, parsed.owner)
            try:
                self._decryptor.decrypt_into(accumulator, ciphertext, context, query.aggregator_index)
            except DecryptionError:
                status = SubmissionStatus.BAD
                reason = "ciphertext failed authentication: sealed under another key or for another owner, or modified"
                AggregatorState.mark_bad(connection, query_id, parsed.owner, reason)

        if status is SubmissionStatus.OK:
            stats.accepted += 1
        else:
            stats.rejected += 1
            logger.warning(
                "query %d: submission of owner %s in block %d is bad (%s); it will be complained about",
                query_id, to_checksum_address(parsed.owner), parsed.block_number, reason,
            )

    def _apply_complaint(
        self,
        connection: sqlite3.Connection,
        queries: Mapping[int, QueryRecord],
        log: Mapping[str, Any],
        stats: IngestStats,
    ) -> None:
        complaint = parse_complaint_log(log)
        if complaint.query_id not in queries:
            stats.skipped += 1
            return
        inserted = AggregatorState.insert_exclusion(
            connection,
            query_id=complaint.query_id,
            owner=complaint.owner,
            aggregator=complaint.aggregator,
            block_number=complaint.block_number,
        )
        if inserted:
            stats.exclusions += 1
            logger.info(
                "query %d: owner %s excluded by the complaint of aggregator %s",
                complaint.query_id, to_checksum_address(complaint.owner), to_checksum_address(complaint.aggregator),
            )
        else:
            stats.duplicates += 1
