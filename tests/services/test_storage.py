import threading

import pytest

from pmsr_chain.errors import ConfigurationError
from offchain_workers.storage import Database, Migration, SqliteCursor

MIGRATIONS = [
    Migration(1, ("CREATE TABLE items (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",)),
    Migration(2, ("ALTER TABLE items ADD COLUMN note TEXT",)),
]


def test_migrations_apply_once(tmp_path):
    database = Database(tmp_path / "state.sqlite", MIGRATIONS)
    database.execute("INSERT INTO items (value, note) VALUES ('a', 'n')")
    database.close()
    reopened = Database(tmp_path / "state.sqlite", MIGRATIONS)
    assert reopened.schema_version() == 2
    assert reopened.execute("SELECT value, note FROM items").fetchall()[0]["note"] == "n"


def test_newer_schema_rejected(tmp_path):
    Database(tmp_path / "state.sqlite", MIGRATIONS).close()
    with pytest.raises(ConfigurationError) as caught:
        Database(tmp_path / "state.sqlite", MIGRATIONS[:1])
    assert "schema version 2" in str(caught.value)


def test_transaction_rolls_back_on_error(tmp_path):
    database = Database(tmp_path / "state.sqlite", MIGRATIONS)
    with pytest.raises(RuntimeError):
        with database.transaction() as connection:
            connection.execute("INSERT INTO items (value) VALUES ('lost')")
            raise RuntimeError("abort")
    assert database.execute("SELECT COUNT(*) AS n FROM items").fetchone()["n"] == 0


def test_threads_write_concurrently(tmp_path):
    database = Database(tmp_path / "state.sqlite", MIGRATIONS)

    def write(prefix: str) -> None:
        for index in range(50):
            with database.transaction() as connection:
                connection.execute("INSERT INTO items (value) VALUES (?)", (f"{prefix}{index}",))

    threads = [threading.Thread(target=write, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert database.execute("SELECT COUNT(*) AS n FROM items").fetchone()["n"] == 200
    database.close()


def test_cursor_persists(tmp_path):
    database = Database(tmp_path / "state.sqlite", MIGRATIONS)
    cursor = SqliteCursor(database, "proposals")
    assert cursor.load() is None
    cursor.save(41)
    cursor.save(42)
    database.close()
    assert SqliteCursor(Database(tmp_path / "state.sqlite", MIGRATIONS), "proposals").load() == 42
