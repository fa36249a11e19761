"""Persistent state of one aggregator service, in SQLite.

Tables:

- `queries`: one row per query that names this aggregator. It stores the phase (see `Phase`) and
  the facts needed to serve the query (index k, K, L, spec, deadlines). It also stores the running
  accumulator: the sum of the decrypted shares as `8 * L` little-endian bytes, and their count.
  Once prepared, the share to reveal, its salt and its commitment are stored too.
- `submissions`: one row per (query, owner) with this aggregator's ciphertext, whether it
  decrypted (`ok`) or not (`bad`, with the reason) and the state of the complaint about it.
- `exclusions`: owners excluded from a query by any aggregator's complaint (`ComplaintFiled`).
- `block_cursors`: the last block whose events were ingested.

A submission row, its status and the accumulator change in one transaction, so a crash never
counts a share twice or loses one: a re-read event finds its row and changes nothing. The share,
salt and commitment are written in a durable transaction before `commitAggregate` is sent, so a
restarted service reveals exactly what it committed to.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..storage import Database, Migration, SqliteCursor

__all__ = [
    "Phase",
    "ACTIVE_PHASES",
    "IN_FLIGHT_PHASES",
    "INGESTING_PHASES",
    "SubmissionStatus",
    "ComplaintState",
    "QueryRecord",
    "SubmissionRecord",
    "CommitmentRecord",
    "AggregatorState",
]

EVENTS_CURSOR = "market-events"


class Phase(StrEnum):
    """Progress of one query at this aggregator."""

    PROPOSED = "proposed"  # seen in QueryProposed, not yet decided
    REFUSED = "refused"  # the local policy rejected it, or accepting failed
    ACCEPTING = "accepting"  # decided to accept; the acceptQuery transaction may be in flight
    ACCEPTED = "accepted"  # ingesting shares and complaints
    COMMITTING = "committing"  # share, salt and commitment persisted; commitAggregate may be in flight
    COMMITTED = "committed"
    REVEALED = "revealed"
    PUBLISHED = "published"  # result published; the fee is not claimed yet
    SETTLED = "settled"  # fee claimed
    CANCELLED = "cancelled"
    FAILED = "failed"
    ABANDONED = "abandoned"  # a deadline passed before this service could act, or the state is unusable


# Phases of a query this aggregator accepted that is not yet published, cancelled or failed: the
# queries its `maxConcurrentQueries` limit counts.
IN_FLIGHT_PHASES = (Phase.ACCEPTING, Phase.ACCEPTED, Phase.COMMITTING, Phase.COMMITTED, Phase.REVEALED)
# Phases in which the service still has something to do: the in-flight ones and claiming the fee.
ACTIVE_PHASES = (*IN_FLIGHT_PHASES, Phase.PUBLISHED)
# Phases in which SharesSubmitted and ComplaintFiled events of the query are ingested.
INGESTING_PHASES = (Phase.ACCEPTING, Phase.ACCEPTED)


class SubmissionStatus(StrEnum):
    OK = "ok"
    BAD = "bad"


class ComplaintState(StrEnum):
    NONE = "none"  # the ciphertext decrypted; nothing to complain about
    PENDING = "pending"  # to be sent once the complaint window opens
    SENT = "sent"
    EXCLUDED = "excluded"  # another aggregator's complaint already excluded the owner
    MISSED = "missed"  # the complaint window closed before the complaint was sent


_SCHEMA = Migration(
    1,
    (
        """
        CREATE TABLE queries (
            query_id INTEGER PRIMARY KEY,
            phase TEXT NOT NULL,
            reason TEXT,
            aggregator_index INTEGER NOT NULL,
            aggregator_count INTEGER NOT NULL,
            output_length INTEGER NOT NULL,
            spec_json BLOB NOT NULL,
            proposed_block INTEGER NOT NULL,
            accept_deadline INTEGER NOT NULL,
            commit_deadline INTEGER NOT NULL,
            reveal_deadline INTEGER NOT NULL,
            accumulator BLOB,
            accumulated_count INTEGER NOT NULL DEFAULT 0,
            share BLOB,
            salt BLOB,
            commitment BLOB,
            accept_tx TEXT,
            commit_tx TEXT,
            reveal_tx TEXT,
            fee_tx TEXT,
            needs_rescan INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX queries_by_phase ON queries (phase)",
        """
        CREATE TABLE submissions (
            query_id INTEGER NOT NULL REFERENCES queries (query_id),
            owner BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            complaint TEXT NOT NULL,
            complaint_tx TEXT,
            block_number INTEGER NOT NULL,
            log_index INTEGER NOT NULL,
            PRIMARY KEY (query_id, owner)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE exclusions (
            query_id INTEGER NOT NULL,
            owner BLOB NOT NULL,
            aggregator BLOB NOT NULL,
            block_number INTEGER NOT NULL,
            PRIMARY KEY (query_id, owner)
        ) WITHOUT ROWID
        """,
    ),
)


@dataclass(frozen=True)
class QueryRecord:
    """One row of `queries`. The repr leaves out the spec."""

    query_id: int
    phase: Phase
    reason: str | None
    aggregator_index: int
    aggregator_count: int
    output_length: int
    spec_json: bytes = field(repr=False)
    proposed_block: int
    accept_deadline: int
    commit_deadline: int
    reveal_deadline: int
    accumulated_count: int
    needs_rescan: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> QueryRecord:
        return cls(
            query_id=int(row["query_id"]),
            phase=Phase(row["phase"]),
            reason=row["reason"],
            aggregator_index=int(row["aggregator_index"]),
            aggregator_count=int(row["aggregator_count"]),
            output_length=int(row["output_length"]),
            spec_json=bytes(row["spec_json"]),
            proposed_block=int(row["proposed_block"]),
            accept_deadline=int(row["accept_deadline"]),
            commit_deadline=int(row["commit_deadline"]),
            reveal_deadline=int(row["reveal_deadline"]),
            accumulated_count=int(row["accumulated_count"]),
            needs_rescan=bool(row["needs_rescan"]),
        )


@dataclass(frozen=True)
class SubmissionRecord:
    """One row of `submissions`. The repr leaves out the ciphertext."""

    query_id: int
    owner: bytes
    ciphertext: bytes = field(repr=False)
    status: SubmissionStatus
    reason: str | None
    complaint: ComplaintState
    complaint_tx: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SubmissionRecord:
        return cls(
            query_id=int(row["query_id"]),
            owner=bytes(row["owner"]),
            ciphertext=bytes(row["ciphertext"]),
            status=SubmissionStatus(row["status"]),
            reason=row["reason"],
            complaint=ComplaintState(row["complaint"]),
            complaint_tx=row["complaint_tx"],
        )


@dataclass(frozen=True)
class CommitmentRecord:
    """The persisted share to reveal, its salt and its commitment. The repr shows the commitment only."""

    share: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    commitment: bytes


@dataclass(frozen=True)
class SubmissionCounts:
    """Counts of one query's rows, for the check against the on-chain counts before committing."""

    ok: int
    bad: int
    excluded: int  # owners excluded by any complaint, whatever their status here
    excluded_ok: int  # excluded owners whose share is in the accumulator
    bad_not_excluded: int  # owners whose ciphertext failed here but who are still included


class AggregatorState:
    """The aggregator's SQLite database. Methods that take a `connection` run inside the caller's transaction."""

    def __init__(self, path: Path) -> None:
        self.database = Database(Path(path), [_SCHEMA])
        self.cursor = SqliteCursor(self.database, EVENTS_CURSOR)

    @property
    def path(self) -> Path:
        return self.database.path

    def close(self) -> None:
        self.database.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Return a `BEGIN IMMEDIATE` transaction on this thread's connection (see `Database.transaction`)."""
        return self.database.transaction()

    # --- queries ----------------------------------------------------------------------------------

    def insert_proposal(
        self,
        connection: sqlite3.Connection,
        *,
        query_id: int,
        aggregator_index: int,
        aggregator_count: int,
        output_length: int,
        spec_json: bytes,
        proposed_block: int,
        accept_deadline: int,
        commit_deadline: int,
        reveal_deadline: int,
    ) -> bool:
        """Record a proposal naming this aggregator; return False when it was already recorded."""
        cursor = connection.execute(
            "INSERT OR IGNORE INTO queries (query_id, phase, aggregator_index, aggregator_count, output_length, "
            "spec_json, proposed_block, accept_deadline, commit_deadline, reveal_deadline) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                query_id, Phase.PROPOSED.value, aggregator_index, aggregator_count, output_length, spec_json,
                proposed_block, accept_deadline, commit_deadline, reveal_deadline,
            ),
        )
        return cursor.rowcount == 1

    def query(self, query_id: int) -> QueryRecord | None:
        row = self.database.execute("SELECT * FROM queries WHERE query_id = ?", (query_id,)).fetchone()
        return QueryRecord.from_row(row) if row is not None else None

    def queries_in(self, phases: Iterable[Phase]) -> list[QueryRecord]:
        values = [phase.value for phase in phases]
        placeholders = ",".join("?" * len(values))
        rows = self.database.execute(
            f"SELECT * FROM queries WHERE phase IN ({placeholders}) ORDER BY query_id", values
        ).fetchall()
        return [QueryRecord.from_row(row) for row in rows]

    def count_in(self, phases: Iterable[Phase]) -> int:
        values = [phase.value for phase in phases]
        placeholders = ",".join("?" * len(values))
        row = self.database.execute(f"SELECT COUNT(*) AS n FROM queries WHERE phase IN ({placeholders})", values).fetchone()
        return int(row["n"])

    def set_phase(self, query_id: int, phase: Phase, reason: str | None = None, **transactions: str) -> None:
        """Move a query to `phase`; `transactions` sets `accept_tx`, `commit_tx`, `reveal_tx` or `fee_tx`."""
        columns = ["phase = ?", "reason = ?"]
        values: list[object] = [phase.value, reason]
        for name, value in transactions.items():
            if name not in ("accept_tx", "commit_tx", "reveal_tx", "fee_tx"):
                raise ValueError(f"unknown transaction column {name}")
            columns.append(f"{name} = ?")
            values.append(value)
        values.append(query_id)
        self.database.execute(f"UPDATE queries SET {', '.join(columns)} WHERE query_id = ?", values)

    def set_needs_rescan(self, query_id: int, needed: bool) -> None:
        self.database.execute("UPDATE queries SET needs_rescan = ? WHERE query_id = ?", (int(needed), query_id))

    def transaction_hashes(self, query_id: int) -> dict[str, str | None]:
        row = self.database.execute(
            "SELECT accept_tx, commit_tx, reveal_tx, fee_tx FROM queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        return dict(row) if row is not None else {}

    # --- accumulator ------------------------------------------------------------------------------

    @staticmethod
    def load_accumulator(connection: sqlite3.Connection, query_id: int) -> tuple[bytes | None, int]:
        """Return the accumulator bytes (None before the first share) and the count of shares in it."""
        row = connection.execute(
            "SELECT accumulator, accumulated_count FROM queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        if row is None:
            return None, 0
        total = bytes(row["accumulator"]) if row["accumulator"] is not None else None
        return total, int(row["accumulated_count"])

    @staticmethod
    def store_accumulator(connection: sqlite3.Connection, query_id: int, total: bytes, count: int) -> None:
        connection.execute(
            "UPDATE queries SET accumulator = ?, accumulated_count = ? WHERE query_id = ?", (total, count, query_id)
        )

    def accumulator(self, query_id: int) -> tuple[bytes | None, int]:
        return self.load_accumulator(self.database.connection(), query_id)

    # --- submissions ------------------------------------------------------------------------------

    @staticmethod
    def insert_submission(
        connection: sqlite3.Connection,
        *,
        query_id: int,
        owner: bytes,
        ciphertext: bytes,
        status: SubmissionStatus,
        reason: str | None,
        block_number: int,
        log_index: int,
    ) -> bool:
        """Insert a submission row; return False when the (query, owner) row already exists."""
        complaint = ComplaintState.NONE if status is SubmissionStatus.OK else ComplaintState.PENDING
        cursor = connection.execute(
            "INSERT OR IGNORE INTO submissions (query_id, owner, ciphertext, status, reason, complaint, block_number, "
            "log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (query_id, owner, ciphertext, status.value, reason, complaint.value, block_number, log_index),
        )
        return cursor.rowcount == 1

    @staticmethod
    def mark_bad(connection: sqlite3.Connection, query_id: int, owner: bytes, reason: str) -> None:
        connection.execute(
            "UPDATE submissions SET status = ?, reason = ?, complaint = ? WHERE query_id = ? AND owner = ?",
            (SubmissionStatus.BAD.value, reason, ComplaintState.PENDING.value, query_id, owner),
        )

    def submission(self, query_id: int, owner: bytes) -> SubmissionRecord | None:
        row = self.database.execute(
            "SELECT * FROM submissions WHERE query_id = ? AND owner = ?", (query_id, owner)
        ).fetchone()
        return SubmissionRecord.from_row(row) if row is not None else None

    def pending_complaints(self, query_id: int) -> list[SubmissionRecord]:
        rows = self.database.execute(
            "SELECT * FROM submissions WHERE query_id = ? AND complaint = ? ORDER BY block_number, log_index",
            (query_id, ComplaintState.PENDING.value),
        ).fetchall()
        return [SubmissionRecord.from_row(row) for row in rows]

    def set_complaint(self, query_id: int, owner: bytes, state: ComplaintState, transaction_hash: str | None = None) -> None:
        self.database.execute(
            "UPDATE submissions SET complaint = ?, complaint_tx = COALESCE(?, complaint_tx) WHERE query_id = ? AND owner = ?",
            (state.value, transaction_hash, query_id, owner),
        )

    def excluded_ok_submissions(self, query_id: int) -> Iterator[SubmissionRecord]:
        """Yield the decrypted submissions whose owner a complaint excluded, one row at a time."""
        rows = self.database.execute(
            "SELECT s.* FROM submissions AS s JOIN exclusions AS e ON e.query_id = s.query_id AND e.owner = s.owner "
            "WHERE s.query_id = ? AND s.status = ?",
            (query_id, SubmissionStatus.OK.value),
        )
        for row in rows:
            yield SubmissionRecord.from_row(row)

    def submission_counts(self, query_id: int) -> SubmissionCounts:
        row = self.database.execute(
            """
            SELECT
              (SELECT COUNT(*) FROM submissions WHERE query_id = :q AND status = 'ok') AS ok,
              (SELECT COUNT(*) FROM submissions WHERE query_id = :q AND status = 'bad') AS bad,
              (SELECT COUNT(*) FROM exclusions WHERE query_id = :q) AS excluded,
              (SELECT COUNT(*) FROM submissions AS s JOIN exclusions AS e
                 ON e.query_id = s.query_id AND e.owner = s.owner
                 WHERE s.query_id = :q AND s.status = 'ok') AS excluded_ok,
              (SELECT COUNT(*) FROM submissions AS s
                 WHERE s.query_id = :q AND s.status = 'bad'
                 AND NOT EXISTS (SELECT 1 FROM exclusions AS e WHERE e.query_id = s.query_id AND e.owner = s.owner))
                 AS bad_not_excluded
            """,
            {"q": query_id},
        ).fetchone()
        return SubmissionCounts(
            ok=int(row["ok"]),
            bad=int(row["bad"]),
            excluded=int(row["excluded"]),
            excluded_ok=int(row["excluded_ok"]),
            bad_not_excluded=int(row["bad_not_excluded"]),
        )

    # --- exclusions -------------------------------------------------------------------------------

    @staticmethod
    def insert_exclusion(
        connection: sqlite3.Connection, *, query_id: int, owner: bytes, aggregator: bytes, block_number: int
    ) -> bool:
        cursor = connection.execute(
            "INSERT OR IGNORE INTO exclusions (query_id, owner, aggregator, block_number) VALUES (?, ?, ?, ?)",
            (query_id, owner, aggregator, block_number),
        )
        return cursor.rowcount == 1

    def is_excluded(self, query_id: int, owner: bytes) -> bool:
        row = self.database.execute(
            "SELECT 1 FROM exclusions WHERE query_id = ? AND owner = ?", (query_id, owner)
        ).fetchone()
        return row is not None

    # --- commitment -------------------------------------------------------------------------------

    def save_commitment(self, query_id: int, share: bytes, salt: bytes, commitment: bytes) -> None:
        """Persist the share, salt and commitment and move to COMMITTING, in one durable transaction.

        The row keeps the first commitment written: a second call for the same query changes nothing,
        so a restarted service can never commit to a freshly noised share.
        """
        with self.database.transaction() as connection:
            connection.execute(
                "UPDATE queries SET share = ?, salt = ?, commitment = ?, phase = ?, reason = NULL "
                "WHERE query_id = ? AND commitment IS NULL",
                (share, salt, commitment, Phase.COMMITTING.value, query_id),
            )

    def commitment(self, query_id: int) -> CommitmentRecord | None:
        row = self.database.execute(
            "SELECT share, salt, commitment FROM queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        if row is None or row["commitment"] is None:
            return None
        return CommitmentRecord(share=bytes(row["share"]), salt=bytes(row["salt"]), commitment=bytes(row["commitment"]))
