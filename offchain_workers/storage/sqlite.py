"""A small SQLite wrapper: one connection per thread, versioned schema, durable transactions.

Services keep their protocol state here so that a restart, even after SIGKILL, resumes from what was
committed. `transaction()` commits on success and rolls back on any exception, and the database runs
in WAL mode with `synchronous=FULL`, so a committed transaction survives a crash of the process or
the machine before the next step (for example before a commitment is sent on-chain).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pmsr_chain.errors import ConfigurationError

__all__ = ["Database", "Migration", "SqliteCursor"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """SQL statements that move the schema from `version - 1` to `version`."""

    version: int
    statements: tuple[str, ...]


class Database:
    """A SQLite file with a versioned schema, safe to use from several threads."""

    def __init__(self, path: Path, migrations: Sequence[Migration], *, busy_timeout_ms: int = 30_000):
        self.path = Path(path)
        self._migrations = sorted(migrations, key=lambda migration: migration.version)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Each connection serves only the thread that opened it. check_same_thread is off so that
            # close() may release every connection from whichever thread shuts the service down.
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one `BEGIN IMMEDIATE` transaction: commit on success, roll back on error."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def execute(self, sql: str, parameters: Sequence[object] | dict[str, object] = ()) -> sqlite3.Cursor:
        """Run one statement in autocommit mode."""
        return self.connection().execute(sql, parameters)

    def close(self) -> None:
        """Close every connection this object opened, from any thread."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def schema_version(self) -> int:
        row = self.execute("SELECT version FROM schema_version").fetchone()
        return int(row["version"]) if row else 0

    def _migrate(self) -> None:
        with self.transaction() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            current = int(row["version"]) if row else 0
            if row is None:
                connection.execute("INSERT INTO schema_version (version) VALUES (0)")
            latest = self._migrations[-1].version if self._migrations else 0
            if current > latest:
                raise ConfigurationError(
                    f"database {self.path} has schema version {current}, newer than this program's "
                    f"{latest}; upgrade the program or use another --data-dir"
                )
            for migration in self._migrations:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    connection.execute(statement)
                connection.execute("UPDATE schema_version SET version = ?", (migration.version,))
                logger.info("migrated %s to schema version %d", self.path, migration.version)


class SqliteCursor:
    """A persisted block cursor (the last block fully processed) stored under a name.

    It has the `load()`/`save(block)` shape of the cursors in `pmsr_chain.events`.
    """

    _MIGRATION = (
        "CREATE TABLE IF NOT EXISTS block_cursors (name TEXT PRIMARY KEY, block INTEGER NOT NULL)"
    )

    def __init__(self, database: Database, name: str):
        self._database = database
        self._name = name
        database.execute(self._MIGRATION)

    def load(self) -> int | None:
        row = self._database.execute(
            "SELECT block FROM block_cursors WHERE name = ?", (self._name,)
        ).fetchone()
        return int(row["block"]) if row else None

    def save(self, block_number: int) -> None:
        self._database.execute(
            "INSERT INTO block_cursors (name, block) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET block = excluded.block",
            (self._name, block_number),
        )
