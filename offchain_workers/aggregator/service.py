"""The aggregator service: reads the market's events into SQLite and drives each query to its payout.

One poll reads the new blocks in bounded ranges: proposals naming this aggregator, and the
`SharesSubmitted` and `ComplaintFiled` events of the queries it serves. Each range is stored in one
SQLite transaction together with the block cursor. Then `QueryDriver` advances every open query. A
restart resumes from the cursor and the per-query phases in the database.

`AggregatorService.run` polls until `stop()` is called; `start()` runs it in a thread, which is how
tests host several aggregators in one process.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import eth_abi.exceptions
from web3 import Web3

from pmsr_chain.client import MarketClient
from pmsr_chain.errors import ConfigurationError, PmsrError, RpcError, TransactionError
from pmsr_chain.events import QueryProposed, to_event_record
from pmsr_chain.rpc import make_web3, rpc_request
from pmsr_chain.transactions import SenderConfig, TransactionSender

from ..keys import AggregatorKeyPair
from .config import AggregatorConfig
from .ingest import IngestStats, ShareIngestor
from .lifecycle import ChainClock, QueryDriver
from .logs import COMPLAINT_FILED_TOPIC, QUERY_PROPOSED_TOPIC, SHARES_SUBMITTED_TOPIC, fetch_logs, uint_topic
from .policy import AcceptancePolicy
from .state import ACTIVE_PHASES, INGESTING_PHASES, AggregatorState, Phase, QueryRecord

__all__ = ["AggregatorService"]

logger = logging.getLogger(__name__)

# Blocks in the first `eth_getLogs` range of a poll loop; later ranges grow up to `block_chunk`.
INITIAL_CHUNK = 64

_PROPOSAL_TOPICS = ["0x" + QUERY_PROPOSED_TOPIC.hex()]
_SHARE_TOPICS = ["0x" + SHARES_SUBMITTED_TOPIC.hex(), "0x" + COMPLAINT_FILED_TOPIC.hex()]
# Errors a log could cause while being decoded as a proposal; the proposal is skipped, not fatal.
_PROPOSAL_DECODE_ERRORS = (eth_abi.exceptions.DecodingError, PmsrError, ValueError, TypeError, KeyError, OverflowError)


class AggregatorService:
    """One aggregator: its market client (with a sender), its X25519 key and its database.

    `start_block` is where reading begins on a fresh database (the market's deployment block).
    `block_chunk` is the largest block range per `eth_getLogs` request. Ranges start at
    `INITIAL_CHUNK` blocks and double while a range returns fewer than a quarter of
    `max_logs_per_request` logs. A range that returns more halves the next one, so each batch and
    the memory it needs stay bounded even when the service catches up on blocks full of
    submissions. With `keeper`, each poll also calls `cancel` and `fail` on due queries of the
    market (see `offchain_workers.keeper`), paid from this aggregator's account.
    """

    def __init__(
        self,
        client: MarketClient,
        key_pair: AggregatorKeyPair,
        database: Path,
        *,
        policy: AcceptancePolicy | None = None,
        start_block: int = 0,
        poll_interval: float = 1.0,
        block_chunk: int = 1000,
        max_logs_per_request: int = 2000,
        confirmations: int = 0,
        keeper: bool = False,
    ) -> None:
        if client.sender is None:
            raise ConfigurationError("the aggregator's MarketClient needs a sender; build it with sender=...")
        if block_chunk < 1 or max_logs_per_request < 1 or confirmations < 0 or poll_interval <= 0:
            raise ConfigurationError(
                f"invalid settings: block_chunk {block_chunk}, max_logs_per_request {max_logs_per_request}, "
                f"confirmations {confirmations}, poll_interval {poll_interval}"
            )
        self.client = client
        self.w3: Web3 = client.w3
        self.address: str = client.sender.address
        self.public_key = key_pair.public_key
        self.policy = policy or AcceptancePolicy()
        self.start_block = start_block
        self.poll_interval = poll_interval
        self.block_chunk = block_chunk
        self.max_logs_per_request = max_logs_per_request
        self.confirmations = confirmations
        self.state = AggregatorState(database)
        self._decryptor = key_pair.decryptor()
        self._chunk = min(block_chunk, INITIAL_CHUNK)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._driver: QueryDriver | None = None
        self._chain_id: int | None = None
        self._ingestor: ShareIngestor | None = None
        self._keeper: Any = None
        if keeper:
            # Imported here because only services that run a keeper need it.
            from ..keeper import Keeper

            self._keeper = Keeper(client, database=self.state.database, start_block=start_block, block_chunk=block_chunk)

    @classmethod
    def from_config(cls, config: AggregatorConfig) -> AggregatorService:
        """Build a service from a configuration: unlock the account and key file, connect, open the database.

        Raises:
            ConfigurationError, DeploymentError, KeyFileError: a key, the manifest or the artifact
                cannot be read, or the manifest disagrees with the chain.
            RpcError: the node cannot be reached.
        """
        w3 = make_web3(config.rpc_url)
        account = config.account.load()
        key_pair = config.load_key_pair()
        market, deployment_block = config.market.connect(w3, log_chunk_size=config.block_chunk)
        client = market.with_sender(TransactionSender(w3, account, SenderConfig(receipt_timeout=config.receipt_timeout)))
        start_block = config.start_block if config.start_block is not None else deployment_block or 0
        return cls(
            client,
            key_pair,
            config.database,
            policy=config.policy,
            start_block=start_block,
            poll_interval=config.poll_interval,
            block_chunk=config.block_chunk,
            max_logs_per_request=config.max_logs_per_request,
            confirmations=config.confirmations,
            keeper=config.keeper,
        )

    # --- running ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until `stop()`; log and retry every error a poll raises."""
        logger.info(
            "aggregator %s started: market %s, database %s, poll interval %.2f s",
            self.address, self.client.address, self.state.path, self.poll_interval,
        )
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (RpcError, TransactionError) as error:
                logger.warning("poll failed: %s; retrying in %.2f s", error, self.poll_interval)
            except PmsrError as error:
                logger.error("poll failed: %s; retrying in %.2f s", error, self.poll_interval)
            except Exception:
                logger.exception("poll failed; retrying in %.2f s", self.poll_interval)
            self._stop.wait(self.poll_interval)
        logger.info("aggregator %s stopped", self.address)

    def start(self) -> threading.Thread:
        """Run the service in a daemon thread and return the thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"aggregator {self.address} is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"aggregator-{self.address[:10]}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the poll loop to stop and wait for its thread, if `start()` started one."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("aggregator %s did not stop within %.1f s", self.address, timeout or 0)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop and close the database."""
        self.stop()
        self.state.close()

    def __enter__(self) -> AggregatorService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- one poll ---------------------------------------------------------------------------------

    def check_registration(self) -> None:
        """Check that this account is a registered aggregator whose on-chain key is this key file's.

        Raises:
            ConfigurationError: the registered key differs, so no share sent to it could be decrypted.
        """
        info = self.client.aggregator_info(self.address)
        if not info.registered:
            logger.warning(
                "aggregator %s is not registered on market %s; register it with register_aggregator, "
                "until then no query names it", self.address, self.client.address,
            )
            return
        if info.encryption_key != self.public_key:
            raise ConfigurationError(
                f"aggregator {self.address} is registered with key {info.encryption_key.hex()} but the key file holds "
                f"{self.public_key.hex()}; load the registered key file or rotate the key on-chain"
            )

    def poll_once(self) -> ChainClock:
        """Ingest new events and advance every open query once; return the clock it used."""
        driver = self._ensure_driver()
        head = rpc_request(self.w3, "eth_getBlockByNumber", ["latest", False])
        head_block, head_time = int(head["number"], 16), int(head["timestamp"], 16)
        target = head_block - self.confirmations
        ingested = self._ingest_until(target)
        if ingested == head_block:
            ingested_time = head_time
        else:
            block = rpc_request(self.w3, "eth_getBlockByNumber", [hex(max(ingested, 0)), False])
            ingested_time = int(block["timestamp"], 16)
        clock = ChainClock(head_block, head_time, ingested, ingested_time)

        for query in self.state.queries_in((Phase.PROPOSED, *ACTIVE_PHASES)):
            if self.stopping:
                break
            try:
                driver.step(query, clock)
            except (PmsrError, sqlite3.Error) as error:
                logger.error("query %d: step in phase %s failed: %s", query.query_id, query.phase, error)
            except Exception:
                logger.exception("query %d: step in phase %s failed", query.query_id, query.phase)
        if self._keeper is not None and not self.stopping:
            try:
                self._keeper.run_once()
            except PmsrError as error:
                logger.error("keeper pass failed: %s; retrying on the next poll", error)
        return clock

    def _ensure_driver(self) -> QueryDriver:
        if self._driver is None:
            self.check_registration()
            self._chain_id = int(rpc_request(self.w3, "eth_chainId", []), 16)
            self._ingestor = ShareIngestor(self._decryptor, self._chain_id, self.client.address)
            self._driver = QueryDriver(
                self.client,
                self.state,
                self._decryptor,
                self.policy,
                chain_id=self._chain_id,
                complaint_period=self.client.complaint_period(),
                rescan=self.rescan,
            )
        return self._driver

    # --- ingesting --------------------------------------------------------------------------------

    def _ingest_until(self, target: int) -> int:
        """Ingest every block up to `target` in bounded ranges; return the last block ingested."""
        assert self._ingestor is not None
        last = self.state.cursor.load()
        start = self.start_block if last is None else last + 1
        while start <= target and not self.stopping:
            end = min(start + self._chunk - 1, target)
            queries = {query.query_id: query for query in self.state.queries_in(INGESTING_PHASES)}
            proposals = fetch_logs(self.w3, self.client.address, [_PROPOSAL_TOPICS], start, end)
            share_logs: list[Mapping[str, Any]] = []
            if queries:
                topics = [_SHARE_TOPICS, [uint_topic(query_id) for query_id in queries]]
                share_logs = fetch_logs(self.w3, self.client.address, topics, start, end)
            with self.state.transaction() as connection:
                for log in proposals:
                    self._record_proposal(connection, log)
                stats = self._ingestor.apply(connection, queries, share_logs)
                self.state.cursor.save(end)
            self._log_batch(start, end, stats)
            self._adapt_chunk(len(proposals) + len(share_logs))
            start = end + 1
        return start - 1

    def _adapt_chunk(self, log_count: int) -> None:
        if log_count > self.max_logs_per_request and self._chunk > 1:
            self._chunk = max(1, self._chunk // 2)
            logger.debug("%d logs in one range; reading %d blocks per request from now on", log_count, self._chunk)
        elif log_count < self.max_logs_per_request // 4 and self._chunk < self.block_chunk:
            self._chunk = min(self.block_chunk, self._chunk * 2)

    def _record_proposal(self, connection: sqlite3.Connection, log: Mapping[str, Any]) -> None:
        try:
            decoded = self.client.abi.decode_log(log)
            record = to_event_record(decoded) if decoded is not None else None
        except _PROPOSAL_DECODE_ERRORS as error:
            logger.warning("skipping undecodable QueryProposed log %s: %s", log.get("transactionHash"), error)
            return
        if not isinstance(record, QueryProposed):
            return
        params = record.params
        if self.address not in params.aggregators:
            return
        inserted = self.state.insert_proposal(
            connection,
            query_id=record.query_id,
            aggregator_index=params.aggregators.index(self.address),
            aggregator_count=len(params.aggregators),
            output_length=params.output_length,
            spec_json=bytes(record.spec_json),
            proposed_block=record.block_number,
            accept_deadline=params.accept_deadline,
            commit_deadline=params.commit_deadline,
            reveal_deadline=params.reveal_deadline,
        )
        if inserted:
            logger.info(
                "query %d proposed in block %d names this aggregator at index %d of %d",
                record.query_id, record.block_number, params.aggregators.index(self.address), len(params.aggregators),
            )

    def rescan(self, query: QueryRecord) -> IngestStats:
        """Read a query's SharesSubmitted and ComplaintFiled events again, from its proposal block to the cursor.

        Rows already stored make their logs no-ops, so a re-scan only adds what was missed.
        """
        assert self._ingestor is not None
        total = IngestStats()
        last = self.state.cursor.load()
        end_block = query.proposed_block if last is None else last
        topics = [_SHARE_TOPICS, [uint_topic(query.query_id)]]
        start = query.proposed_block
        while start <= end_block:
            end = min(start + self.block_chunk - 1, end_block)
            logs = fetch_logs(self.w3, self.client.address, topics, start, end)
            with self.state.transaction() as connection:
                total.add(self._ingestor.apply(connection, {query.query_id: query}, logs))
            start = end + 1
        self.state.set_needs_rescan(query.query_id, False)
        logger.info(
            "query %d: re-scanned blocks %d..%d: %d new shares, %d new bad submissions, %d new exclusions, %d already stored",
            query.query_id, query.proposed_block, end_block, total.accepted, total.rejected, total.exclusions, total.duplicates,
        )
        return total

    @staticmethod
    def _log_batch(start: int, end: int, stats: IngestStats) -> None:
        if stats.accepted or stats.rejected or stats.exclusions:
            logger.info(
                "blocks %d..%d: %d shares added, %d bad submissions, %d exclusions, %d already stored",
                start, end, stats.accepted, stats.rejected, stats.exclusions, stats.duplicates,
            )
