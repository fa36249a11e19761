"""Keeper: calls `cancel` and `fail` on queries whose deadlines have made them due.

The contract lets anyone settle a stalled query, so no party can hold funds by going silent. The
keeper watches every proposed query (from `QueryProposed` events, with a persisted cursor) until it
is published, cancelled or failed, and on each pass compares the query's views with the latest
block's timestamp:

- not every aggregator accepted by `acceptDeadline`: `cancel` (the analyst is refunded in full);
- submissions closed (`submitDeadline` passed or `maxOwners` reached) with fewer than `minOwners`
  included owners: `cancel`;
- an aggregator missed `commitDeadline`, or every aggregator committed but one missed
  `revealDeadline`: `fail` (the late aggregators are slashed to the analyst).

Run it alone with `python -m offchain_workers.keeper --config keeper.json`, where the JSON contains
`rpcUrl`, `market` (as in the owner configuration), `account`, and optionally `dbPath`,
`pollInterval`, `startBlock` and `blockChunk`. The owner fleet also runs one when its
configuration sets `keeper`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmsr_chain import (
    ContractRevertError,
    EventPoller,
    LogReader,
    MarketClient,
    MemoryCursor,
    QueryInfo,
    QueryStatus,
    SenderConfig,
    TransactionSender,
    latest_timestamp,
    make_web3,
)
from pmsr_chain.errors import ConfigurationError, PmsrError, RpcError, TransactionError
from pmsr_chain.events import QueryCancelled, QueryFailed, QueryProposed, ResultPublished

from .owner.config import AccountSource, MarketSource
from .storage import Database, SqliteCursor

__all__ = ["KeeperAction", "Keeper", "KeeperConfig", "due_action", "main"]

logger = logging.getLogger(__name__)

KEEPER_EVENTS = ("QueryProposed", "ResultPublished", "QueryCancelled", "QueryFailed")
_TERMINAL = (QueryStatus.PUBLISHED, QueryStatus.CANCELLED, QueryStatus.FAILED)


@dataclass(frozen=True)
class KeeperAction:
    """One `cancel` or `fail` the keeper sent, or tried to send (`error` set)."""

    query_id: int
    action: str
    reason: str
    transaction_hash: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def due_action(info: QueryInfo, now: int) -> tuple[str, str] | None:
    """Return `("cancel" | "fail", reason)` when the contract would accept that call at time `now`.

    `now` is a block timestamp; the call is mined in a later block, so the contract's
    `block.timestamp > deadline` holds whenever `now > deadline` does.
    """
    params = info.params
    aggregators = len(params.aggregators)
    if info.status == QueryStatus.PROPOSED:
        if now > params.accept_deadline:
            return "cancel", (
                f"{info.accepted_count} of {aggregators} aggregators accepted by the accept deadline {params.accept_deadline}"
            )
        return None
    if info.status != QueryStatus.OPEN:
        return None
    closed = info.closed_at != 0 or now > params.submit_deadline
    if not closed:
        return None
    included = info.included_count
    if included < params.min_owners:
        return "cancel", f"{included} owners included, fewer than minOwners {params.min_owners}"
    if info.committed_count < aggregators:
        if now > params.commit_deadline:
            return "fail", (
                f"{info.committed_count} of {aggregators} aggregators committed by the commit deadline {params.commit_deadline}"
            )
        return None
    if info.revealed_count < aggregators and now > params.reveal_deadline:
        return "fail", (
            f"{info.revealed_count} of {aggregators} aggregators revealed by the reveal deadline {params.reveal_deadline}"
        )
    return None


class Keeper:
    """Watches unsettled queries and sends `cancel` or `fail` when due, from `market.sender`.

    With a `database`, the watched queries and the event cursor persist across restarts, in tables
    next to the owner's or aggregator's own state. Without one they are kept in memory and rebuilt
    from `start_block`.
    """

    def __init__(
        self,
        market: MarketClient,
        *,
        database: Database | None = None,
        start_block: int = 0,
        block_chunk: int = 2_000,
        cursor_name: str = "keeper-events",
    ) -> None:
        if market.sender is None:
            raise ConfigurationError("the keeper needs a market client with a sender to pay for cancel and fail")
        self.market = market
        self.database = database
        reader = LogReader(market.w3, market.address, market.abi, chunk_size=block_chunk)
        if database is not None:
            database.execute("CREATE TABLE IF NOT EXISTS keeper_queries (query_id INTEGER PRIMARY KEY)")
            cursor: Any = SqliteCursor(database, cursor_name)
            rows = database.execute("SELECT query_id FROM keeper_queries").fetchall()
            self._watched = {int(row["query_id"]) for row in rows}
        else:
            cursor = MemoryCursor()
            self._watched = set()
        self._poller = EventPoller(reader, cursor, KEEPER_EVENTS, start_block=start_block)

    @property
    def watched(self) -> frozenset[int]:
        """Query ids the keeper still follows."""
        return frozenset(self._watched)

    def watch(self, query_id: int) -> None:
        self._watched.add(query_id)
        if self.database is not None:
            self.database.execute("INSERT OR IGNORE INTO keeper_queries (query_id) VALUES (?)", (query_id,))

    def _unwatch(self, query_id: int) -> None:
        self._watched.discard(query_id)
        if self.database is not None:
            self.database.execute("DELETE FROM keeper_queries WHERE query_id = ?", (query_id,))

    def _handle_events(self, records: Sequence[Any]) -> None:
        for record in records:
            if isinstance(record, QueryProposed):
                self.watch(record.query_id)
            elif isinstance(record, (ResultPublished, QueryCancelled, QueryFailed)):
                self._unwatch(record.query_id)

    def run_once(self) -> list[KeeperAction]:
        """Read new events, then cancel or fail every watched query that is due. Return the actions taken."""
        self._poller.poll(self._handle_events)
        now = latest_timestamp(self.market.w3)
        actions = []
        for query_id in sorted(self._watched):
            info = self.market.query_info(query_id)
            if info.status in _TERMINAL:
                self._unwatch(query_id)
                continue
            due = due_action(info, now)
            if due is None:
                continue
            action = self._send(query_id, *due)
            actions.append(action)
            if action.succeeded:
                self._unwatch(query_id)
        return actions

    def _send(self, query_id: int, action: str, reason: str) -> KeeperAction:
        try:
            receipt = self.market.cancel(query_id) if action == "cancel" else self.market.fail(query_id)
        except ContractRevertError as error:
            # Another keeper, or a party to the query, may have settled it first.
            logger.info("query %d: %s not accepted by the contract (%s); another caller may have settled it",
                        query_id, action, error.error_name)
            return KeeperAction(query_id, action, reason, error=str(error))
        except (TransactionError, RpcError) as error:
            logger.warning("query %d: sending %s failed: %s; retrying on the next pass", query_id, action, error)
            return KeeperAction(query_id, action, reason, error=str(error))
        logger.info("query %d: %s sent in %s: %s", query_id, action, receipt.transaction_hash, reason)
        return KeeperAction(query_id, action, reason, receipt.transaction_hash)

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Call `run_once` every `poll_interval` seconds until `stop` is set."""
        logger.info("keeper for market %s started from %s", self.market.address, self.market.sender.address)  # type: ignore[union-attr]
        while not stop.is_set():
            try:
                self.run_once()
            except PmsrError as error:
                logger.error("keeper pass failed: %s; retrying in %.1f s", error, poll_interval)
            except Exception:
                logger.exception("keeper pass failed unexpectedly; retrying in %.1f s", poll_interval)
            stop.wait(poll_interval)
        logger.info("keeper for market %s stopped", self.market.address)


# --------------------------------------------------------------------------------------------------
# Stand-alone process


@dataclass(frozen=True)
class KeeperConfig:
    """Settings of a stand-alone keeper process."""

    rpc_url: str
    market: MarketSource
    account: AccountSource
    db_path: Path | None = None
    poll_interval: float = 1.0
    start_block: int | None = None
    block_chunk: int = 2_000

    @classmethod
    def load(cls, path: str | Path) -> KeeperConfig:
        path = Path(path)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigurationError(f"configuration file {path} not found") from None
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigurationError(f"configuration file {path} is unreadable: {error}") from None
        known = {"rpcUrl", "market", "account", "dbPath", "pollInterval", "startBlock", "blockChunk"}
        if not isinstance(document, dict) or set(document) - known:
            raise ConfigurationError(f"keeper configuration {path} must be an object with keys among {sorted(known)}")
        for key in ("market", "account"):
            if key not in document:
                raise ConfigurationError(f"keeper configuration {path} lacks {key}")
        base = path.parent
        db_path = document.get("dbPath")
        if db_path is not None:
            db_path = Path(db_path) if Path(db_path).is_absolute() else base / db_path
        return cls(
            rpc_url=str(document.get("rpcUrl", "http://127.0.0.1:8545")),
            market=MarketSource.from_json(document["market"], base),
            account=AccountSource.from_json(document["account"], base),
            db_path=db_path,
            poll_interval=float(document.get("pollInterval", 1.0)),
            start_block=document.get("startBlock"),
            block_chunk=int(document.get("blockChunk", 2_000)),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offchain_workers.keeper",
        description="Call cancel and fail on queries whose deadlines have made them due.",
    )
    parser.add_argument("--config", required=True, type=Path, help="keeper configuration JSON file")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING); default INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = KeeperConfig.load(arguments.config)
        w3 = make_web3(config.rpc_url)
        market, deployment_block = config.market.connect(w3, log_chunk_size=config.block_chunk)
        sender = TransactionSender(w3, config.account.load(), SenderConfig())
        database = Database(config.db_path, []) if config.db_path is not None else None
    except PmsrError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start_block = config.start_block if config.start_block is not None else (deployment_block or 0)
    keeper = Keeper(market.with_sender(sender), database=database, start_block=start_block, block_chunk=config.block_chunk)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    keeper.run(stop, config.poll_interval)
    if database is not None:
        database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
