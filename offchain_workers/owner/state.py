"""The owner agent's SQLite state: the queries it saw and every owner's decision on each.

One row per (owner, query) records the status below, the refusal code and reason, the epsilon the
decision reserves and the hash of the last transaction sent for it. The hash is written BEFORE the
transaction is sent (statuses ending in -ing), so after a crash the agent finds every transaction it
may have sent and checks it against the chain instead of sending again.

Statuses of a decision:
- `refused`: the policy or the contract rejected the query (`code`, `reason`).
- `joined`: the policy accepts; waiting for the query to open. Reserves the query's epsilon.
- `submitting`: a submission is signed and its hash recorded; it may be on its way. Reserves epsilon.
- `submitted`: the submission is on-chain.
- `skipped`: joined but not submitted (deadline passed, query full, or the query closed first).
- `excluded`: an aggregator complained; the chain released the epsilon and pays nothing.
- `claiming` / `claimed`: the payment of a published query is being claimed / was claimed.
- `releasing` / `released`: the epsilon of a cancelled or failed query is being released / was released.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pmsr_chain.types import QueryParams

from ..storage import Database, Migration, SqliteCursor

__all__ = ["Status", "QueryPhase", "StoredQuery", "DecisionRow", "OwnerState", "RESERVING_STATUSES"]


class Status(str, Enum):
    REFUSED = "refused"
    JOINED = "joined"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXCLUDED = "excluded"
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    RELEASING = "releasing"
    RELEASED = "released"


class QueryPhase(str, Enum):
    """A query's state as the agent last saw it in events."""

    PROPOSED = "proposed"
    OPEN = "open"
    PUBLISHED = "published"
    CANCELLED = "cancelled"
    FAILED = "failed"
    IGNORED = "ignored"  # seen after its submit deadline: no owner decides on it


# Decisions whose epsilon the chain does not count yet, but the agent must.
RESERVING_STATUSES = (Status.JOINED, Status.SUBMITTING)

_MIGRATIONS = [
    Migration(
        1,
        (
            """CREATE TABLE queries (
                query_id INTEGER PRIMARY KEY,
                phase TEXT NOT NULL,
                spec_json BLOB NOT NULL,
                spec_hash BLOB NOT NULL,
                params TEXT NOT NULL,
                closed INTEGER NOT NULL DEFAULT 0,
                block_number INTEGER NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE decisions (
                owner TEXT NOT NULL,
                query_id INTEGER NOT NULL,
                status TEXT NOT NULL,
                code TEXT,
                reason TEXT NOT NULL DEFAULT '',
                epsilon INTEGER NOT NULL DEFAULT 0,
                tx_hash TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (owner, query_id)
            )""",
            "CREATE INDEX decisions_by_status ON decisions (status, query_id)",
        ),
    )
]


@dataclass(frozen=True)
class StoredQuery:
    query_id: int
    phase: QueryPhase
    spec_json: bytes
    spec_hash: bytes
    params: QueryParams
    closed: bool
    block_number: int


@dataclass(frozen=True)
class DecisionRow:
    owner: str
    query_id: int
    status: Status
    code: str | None
    reason: str
    epsilon: int
    tx_hash: str | None


def params_to_json(params: QueryParams) -> str:
    return json.dumps(list(params.to_abi()))


def params_from_json(text: str) -> QueryParams:
    return QueryParams.from_abi(json.loads(text))


class _StateDatabase(Database):
    """A `Database` whose connections use `synchronous=NORMAL` unless `fsync_every_commit`."""

    def __init__(self, path: Path, *, fsync_every_commit: bool) -> None:
        self._synchronous = "FULL" if fsync_every_commit else "NORMAL"
        self._tuned = threading.local()
        super().__init__(path, _MIGRATIONS)

    def connection(self) -> sqlite3.Connection:
        connection = super().connection()
        if getattr(self._tuned, "connection", None) is not connection:
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            self._tuned.connection = connection
        return connection


class OwnerState:
    """The state database of one fleet (one file, many owners). Safe to use from several threads.

    By default commits do not wait for fsync (WAL with `synchronous=NORMAL`): a commit survives a
    crash or SIGKILL of the process, and only an operating-system crash or power loss can undo the
    last ones. That is enough here, because the chain itself rejects a second submission
    (`AlreadySubmitted`) or claim (`NotSubmitted`), and a restart reads `submissionState`. Waiting
    for fsync adds one disk flush per owner per transaction, which took 3 to 10 ms each on this
    project's 2-core test machine while Anvil ran. `fsync_every_commit=True` restores it.
    """

    def __init__(self, path: Path, *, fsync_every_commit: bool = False) -> None:
        self.database = _StateDatabase(Path(path), fsync_every_commit=fsync_every_commit)

    def close(self) -> None:
        self.database.close()

    def cursor(self, name: str = "owner-events") -> SqliteCursor:
        return SqliteCursor(self.database, name)

    # ----------------------------------------------------------------------------------------------
    # Queries

    def record_query(
        self, query_id: int, spec_json: bytes, spec_hash: bytes, params: QueryParams, block_number: int,
        phase: QueryPhase = QueryPhase.PROPOSED,
    ) -> bool:
        """Store a proposed query; return False when it was already stored (a re-read event)."""
        cursor = self.database.execute(
            "INSERT OR IGNORE INTO queries (query_id, phase, spec_json, spec_hash, params, block_number, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (query_id, phase.value, bytes(spec_json), bytes(spec_hash), params_to_json(params), block_number, time.time()),
        )
        return cursor.rowcount == 1

    def set_phase(self, query_id: int, phase: QueryPhase) -> None:
        self.database.execute(
            "UPDATE queries SET phase = ?, updated_at = ? WHERE query_id = ?", (phase.value, time.time(), query_id)
        )

    def mark_closed(self, query_id: int) -> None:
        self.database.execute("UPDATE queries SET closed = 1, updated_at = ? WHERE query_id = ?", (time.time(), query_id))

    def query(self, query_id: int) -> StoredQuery | None:
        row = self.database.execute("SELECT * FROM queries WHERE query_id = ?", (query_id,)).fetchone()
        return None if row is None else _stored_query(row)

    def queries(self, query_ids: Iterable[int]) -> dict[int, StoredQuery]:
        result = {}
        for query_id in set(query_ids):
            stored = self.query(query_id)
            if stored is not None:
                result[query_id] = stored
        return result

    # ----------------------------------------------------------------------------------------------
    # Decisions

    def record_decisions(self, query_id: int, rows: Sequence[tuple[str, Status, str | None, str, int]]) -> int:
        """Insert `(owner, status, code, reason, epsilon)` rows; an existing decision is kept. Return rows added."""
        now = time.time()
        with self.database.transaction() as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO decisions (owner, query_id, status, code, reason, epsilon, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(owner, query_id, status.value, code, reason, epsilon, now, now) for owner, status, code, reason, epsilon in rows],
            )
            return connection.total_changes - before

    def decision(self, owner: str, query_id: int) -> DecisionRow | None:
        row = self.database.execute(
            "SELECT * FROM decisions WHERE owner = ? AND query_id = ?", (owner, query_id)
        ).fetchone()
        return None if row is None else _decision_row(row)

    def decisions(
        self, *, query_id: int | None = None, owner: str | None = None, statuses: Iterable[Status] | None = None
    ) -> list[DecisionRow]:
        clauses, values = [], []
        if query_id is not None:
            clauses.append("query_id = ?")
            values.append(query_id)
        if owner is not None:
            clauses.append("owner = ?")
            values.append(owner)
        if statuses is not None:
            status_values = [Status(status).value for status in statuses]
            clauses.append(f"status IN ({', '.join('?' for _ in status_values)})")
            values.extend(status_values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.database.execute(f"SELECT * FROM decisions{where} ORDER BY query_id, rowid", values).fetchall()
        return [_decision_row(row) for row in rows]

    def reserved_epsilon(self) -> dict[str, int]:
        """Return, per owner, the epsilon of decisions the chain does not count yet (joined or submitting)."""
        placeholders = ", ".join("?" for _ in RESERVING_STATUSES)
        rows = self.database.execute(
            f"SELECT owner, SUM(epsilon) AS reserved FROM decisions WHERE status IN ({placeholders}) GROUP BY owner",
            [status.value for status in RESERVING_STATUSES],
        ).fetchall()
        return {row["owner"]: int(row["reserved"]) for row in rows}

    def set_status(
        self, owner: str, query_id: int, status: Status, *, code: str | None = None, reason: str | None = None,
        tx_hash: str | None = None,
    ) -> None:
        self.set_statuses([(owner, query_id)], status, code=code, reason=reason, tx_hash=tx_hash)

    def set_statuses(
        self, keys: Iterable[tuple[str, int]], status: Status, *, code: str | None = None, reason: str | None = None,
        tx_hash: str | None = None,
    ) -> None:
        """Set the status of several decisions in one transaction; `None` keeps a field's value."""
        now = time.time()
        with self.database.transaction() as connection:
            connection.executemany(
                "UPDATE decisions SET status = ?, code = COALESCE(?, code), reason = COALESCE(?, reason), "
                "tx_hash = COALESCE(?, tx_hash), updated_at = ? WHERE owner = ? AND query_id = ?",
                [(status.value, code, reason, tx_hash, now, owner, query_id) for owner, query_id in keys],
            )

    def update_many(self, rows: Sequence[tuple[str, int, Status, str | None, str, str | None]]) -> None:
        """Apply `(owner, query_id, status, code, reason, tx_hash)` updates in one transaction.

        A `None` code or transaction hash keeps the stored value; an empty reason keeps the stored one.
        """
        if not rows:
            return
        now = time.time()
        with self.database.transaction() as connection:
            connection.executemany(
                "UPDATE decisions SET status = ?, code = COALESCE(?, code), reason = COALESCE(NULLIF(?, ''), reason), "
                "tx_hash = COALESCE(?, tx_hash), updated_at = ? WHERE owner = ? AND query_id = ?",
                [(status.value, code, reason, tx_hash, now, owner, query_id)
                 for owner, query_id, status, code, reason, tx_hash in rows],
            )

    def status_counts(self, query_id: int | None = None) -> dict[Status, int]:
        where, values = ("WHERE query_id = ?", [query_id]) if query_id is not None else ("", [])
        rows = self.database.execute(
            f"SELECT status, COUNT(*) AS n FROM decisions {where} GROUP BY status", values
        ).fetchall()
        return {Status(row["status"]): int(row["n"]) for row in rows}


def _stored_query(row: sqlite3.Row) -> StoredQuery:
    return StoredQuery(
        query_id=int(row["query_id"]),
        phase=QueryPhase(row["phase"]),
        spec_json=bytes(row["spec_json"]),
        spec_hash=bytes(row["spec_hash"]),
        params=params_from_json(row["params"]),
        closed=bool(row["closed"]),
        block_number=int(row["block_number"]),
    )


def _decision_row(row: sqlite3.Row) -> DecisionRow:
    return DecisionRow(
        owner=row["owner"],
        query_id=int(row["query_id"]),
        status=Status(row["status"]),
        code=row["code"],
        reason=row["reason"],
        epsilon=int(row["epsilon"]),
        tx_hash=row["tx_hash"],
    )
