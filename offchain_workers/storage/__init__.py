"""SQLite persistence shared by the owner agent and the aggregator service."""

from .sqlite import Database, Migration, SqliteCursor

__all__ = ["Database", "Migration", "SqliteCursor"]
