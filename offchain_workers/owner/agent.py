"""Owner agent: joins queries its owner's policy allows, submits encrypted shares, collects payment.

`OwnerFleet` hosts any number of owners in one process (a real owner runs a fleet of one). It
shares among them one event poll with a persisted cursor, one parse and check of each query's spec,
and one read of each query's state and aggregator keys. It runs the owners' maps, encryptions,
signatures and sends in a thread pool. `OwnerAgent` contains one owner's account, table and local
policy.

One pass (`OwnerFleet.run_once`) does, in order:
1. reconcile decisions left in a sending status by an earlier run with the chain;
2. read new events: record proposed queries and decide on them for every owner, and record
   openings, fills, complaints, publications, cancellations and failures;
3. submit for every joined query that is open, or skip it when its deadline passed or it filled;
4. claim payment for published queries (`claimMany` when an owner has several) and release the
   epsilon of cancelled or failed ones. A claim waits up to `FleetConfig.claim_wait` seconds while
   the owner has another submitted query awaiting its result, so that both are paid in one
   `claimMany` (see `_claims_due`);
5. with a keeper, cancel or fail due queries.

Every transaction's hash is stored before it is sent, so a restart at any point sends nothing twice:
the next run checks `submissionState` and the transaction itself before acting again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray

from pmsr_chain import (
    ContractCall,
    ContractRevertError,
    EventPoller,
    LogReader,
    MarketClient,
    OwnerInfo,
    PendingTransaction,
    QueryStatus,
    Receipt,
    SenderConfig,
    SubmissionState,
    TransactionSender,
    make_web3,
    rpc_request,
    wait_for_all,
)
from pmsr_chain.abi import from_abi_value
from pmsr_chain.errors import (
    InvalidInputError,
    PmsrError,
    RpcError,
    TransactionError,
    TransactionFailedError,
)
from pmsr_chain.events import (
    ComplaintFiled,
    EventRecord,
    OwnerPaid,
    QueryCancelled,
    QueryFailed,
    QueryOpened,
    QueryProposed,
    ResultPublished,
    SubmissionsFilled,
)

from ..encryption import ShareContext, encrypt_shares
from ..errors import EncodingOverflowError, SpecError, TemplateError
from ..mapping import map_owner_data
from ..spec import QuerySpec
from ..tables import column_kinds, load_table
from .config import DatasetSource, FleetConfig, OwnerConfig
from .policy import Decision, Reason, SpecCheck, check_spec, evaluate, reason_for_contract_error
from .state import DecisionRow, OwnerState, QueryPhase, Status, StoredQuery

if TYPE_CHECKING:
    from ..keeper import Keeper

__all__ = ["OwnerAction", "TableCache", "OwnerAgent", "OwnerFleet", "batch_views"]

logger = logging.getLogger(__name__)

OWNER_EVENTS = (
    "QueryProposed", "QueryOpened", "SubmissionsFilled", "ComplaintFiled",
    "ResultPublished", "QueryCancelled", "QueryFailed",
)

# eth_call requests per JSON-RPC batch when reading many owners' views at once.
VIEW_BATCH_SIZE = 200

# Transactions whose receipts one `wait_for_all` call collects; a failed one is then re-read alone.
RECEIPT_CHUNK = 500

# Gas added to a reused estimate (see `FleetConfig.estimate_gas`). Submissions to one query differ
# by a fresh submission word at most, because a zero-to-nonzero SSTORE costs 20,000 more than an
# update, plus the last one's SubmissionsFilled event and closedAt write. Claims and releases differ
# less. 300 submissions with L = 1 and K = 2 used 53,086 to 70,222 gas on Anvil.
SHARED_GAS_MARGIN = 60_000

# Contract refusals that mean "too late or too full", not "the policy forbids it".
_SKIP_REASONS = (Reason.SUBMIT_DEADLINE_PASSED, Reason.QUERY_FULL)
_CLOSED_PHASES = (QueryPhase.PUBLISHED, QueryPhase.CANCELLED, QueryPhase.FAILED, QueryPhase.IGNORED)


@dataclass(frozen=True)
class OwnerAction:
    """One decision or transaction of an owner, as logged; `run_once` returns them for tests and tools.

    `action` is a `Status` value (joined, refused, submitted, skipped, excluded, claimed, released)
    or `error` for a transaction that failed to send and will be retried.
    """

    owner: str
    query_id: int
    action: str
    reason: str = ""
    code: str | None = None
    transaction_hash: str | None = None


def batch_views(market: MarketClient, function: str, argument_lists: Sequence[Sequence[Any]],
                *, block: str = "latest") -> list[Any]:
    """Call a view once per argument list, in JSON-RPC batches; return the decoded values in order.

    Raises:
        RpcError: the node rejected the batch or one call (for example a revert).
    """
    results: list[Any] = []
    for start in range(0, len(argument_lists), VIEW_BATCH_SIZE):
        chunk = argument_lists[start: start + VIEW_BATCH_SIZE]
        requests = [
            ("eth_call", [{"to": market.address, "data": "0x" + market.abi.encode_call(function, list(args)).hex()}, block])
            for args in chunk
        ]
        try:
            responses = market.w3.provider.make_batch_request(requests)  # type: ignore[arg-type]
        except (OSError, ValueError) as error:
            # requests' connection errors derive from OSError, and a garbled response from ValueError.
            raise RpcError(f"batched {function} calls failed: {error}; check that the node is running",
                           method="eth_call") from error
        if not isinstance(responses, list):
            raise RpcError(f"batched {function} calls failed: {responses.get('error')}", method="eth_call")
        for args, response in zip(chunk, responses, strict=True):
            if response.get("error"):
                raise RpcError(f"{function}({', '.join(map(str, args))}) failed: {response['error']}", method="eth_call")
            raw = bytes.fromhex(str(response["result"]).removeprefix("0x"))
            results.append(_decode_view_output(market, function, raw))
    return results


def _decode_view_output(market: MarketClient, function: str, raw: bytes) -> Any:
    """Decode a one-output view, by words when the output is static.

    eth_abi 6.0 took about 0.8 ms to decode one `ownerInfo` on this project's 2-core test machine,
    which is 8 s for a fleet of 10,000 owners. A static output (integers, bools, addresses, fixed bytes and tuples of them) is
    one 32-byte word per field, so reading the words directly takes microseconds. Anything else, or
    data that does not check out, goes to eth_abi.
    """
    outputs = market.abi.functions[function].abi.get("outputs", [])
    if len(outputs) == 1 and _static_words(outputs[0]) * 32 == len(raw):
        fields = _read_static(outputs[0], raw, 0)
        if fields is not None:
            return from_abi_value(outputs[0], fields[0])
    (value,) = market.abi.decode_output(function, raw)
    return value


def _static_words(parameter: Mapping[str, Any]) -> int:
    """Return the words of a static ABI type, or -1 for a dynamic one."""
    declared = parameter["type"]
    if declared == "tuple":
        counts = [_static_words(component) for component in parameter["components"]]
        return -1 if -1 in counts else sum(counts)
    if declared in ("bool", "address") or re.fullmatch(r"u?int\d+|bytes([1-9]|[12]\d|3[0-2])", declared):
        return 1
    return -1


def _read_static(parameter: Mapping[str, Any], raw: bytes, offset: int) -> tuple[Any, int] | None:
    """Read one static value at `offset`; return it and the next offset, or `None` for invalid padding."""
    declared = parameter["type"]
    if declared == "tuple":
        values = []
        for component in parameter["components"]:
            read = _read_static(component, raw, offset)
            if read is None:
                return None
            value, offset = read
            values.append(value)
        return tuple(values), offset
    word = raw[offset: offset + 32]
    number = int.from_bytes(word, "big")
    if declared.startswith("uint"):
        bits = int(declared[4:])
        value: Any = number if number >> bits == 0 else None
    elif declared.startswith("int"):
        bits = int(declared[3:])
        signed = number - (1 << 256) if number >> 255 else number
        value = signed if -(1 << (bits - 1)) <= signed < 1 << (bits - 1) else None
    elif declared == "bool":
        value = {0: False, 1: True}.get(number)
    elif declared == "address":
        value = "0x" + word[12:].hex() if number >> 160 == 0 else None
    else:
        size = int(declared[5:])
        value = word[:size] if not any(word[size:]) else None
    if value is None:
        return None
    return value, offset + 32


# --------------------------------------------------------------------------------------------------
# Tables


class TableCache:
    """Tables read from files, each file once per process; owners holding row ranges of one file share it.

    Column kinds are computed once per file, and a slice of rows reuses its file's kinds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[pd.DataFrame, dict[str, str]]] = {}
        self._resolved: dict[Path, Path] = {}

    def load(self, source: DatasetSource | pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        """Return the table and its column kinds. Raises `TemplateError` for a missing or unreadable file."""
        if isinstance(source, pd.DataFrame):
            return source, dict(column_kinds(source))
        with self._lock:
            # Resolving a path costs a system call per component, so it is done once per path.
            path = self._resolved.get(source.path)
            if path is None:
                path = self._resolved[source.path] = Path(source.path).resolve()
            cached = self._files.get(path)
            if cached is None:
                table = load_table(path)
                cached = self._files[path] = (table, dict(column_kinds(table)))
        table, kinds = cached
        if source.rows is None:
            return table, kinds
        start, stop = source.rows
        if stop > len(table):
            raise TemplateError(f"dataset {path} has {len(table)} rows, fewer than the configured rows [{start}, {stop})")
        return table.iloc[start:stop].reset_index(drop=True), kinds


# --------------------------------------------------------------------------------------------------
# One owner


class OwnerAgent:
    """One data owner: its account and sender, its table (loaded once), its local policy."""

    def __init__(self, config: OwnerConfig, account: LocalAccount, market: MarketClient,
                 sender_config: SenderConfig, tables: TableCache) -> None:
        self.config = config
        self.sender = TransactionSender(market.w3, account, sender_config)
        self.address: str = self.sender.address
        # The call encoders do not depend on the sender, so every owner shares the market's.
        self.calls = market.calls
        self._tables = tables
        self._table: tuple[pd.DataFrame, dict[str, str]] | None = None

    def __repr__(self) -> str:
        return f"OwnerAgent({self.address})"

    def table(self) -> tuple[pd.DataFrame, dict[str, str]]:
        """Return the owner's table and its column kinds, reading the file on first use."""
        if self._table is None:
            self._table = self._tables.load(self.config.dataset)
        return self._table

    def decide(self, check: SpecCheck, query: StoredQuery, owner_info: OwnerInfo, *, now: int,
               min_owner_stake: int, reserved_epsilon: int) -> Decision:
        """Apply the spec check, the on-chain policy and the local policy to one query."""
        if check.refusal is not None:
            return check.refusal
        assert check.spec is not None
        decision = evaluate(
            check.spec, query.params, owner_info, self.config.local_policy, now=now,
            min_owner_stake=min_owner_stake, reserved_epsilon=reserved_epsilon,
        )
        if not decision.accepted:
            return decision
        # The table is read only for an owner whose policies accept the query.
        try:
            _, kinds = self.table()
            check.spec.check_columns(kinds)
        except TemplateError as error:
            return Decision.refuse(Reason.DATASET_UNUSABLE, f"the owner's table cannot be read: {error}")
        except SpecError as error:
            return Decision.refuse(Reason.DATASET_UNUSABLE, f"the owner's table cannot run this map: {error}")
        return decision

    def encoded_output(self, spec: QuerySpec) -> NDArray[np.uint64]:
        """Run the spec's map on the owner's table: filtered, bounded, clipped and encoded words.

        Raises:
            TemplateError, SpecError, EncodingOverflowError: the table cannot run the map.
        """
        table, kinds = self.table()
        return map_owner_data(spec, table, kinds=kinds)

    def submission(self, spec: QuerySpec, query_id: int, aggregator_keys: Sequence[bytes], chain_id: int) -> ContractCall:
        """Build the `submitShares` call: one ciphertext per aggregator, in the query's aggregator order."""
        words = self.encoded_output(spec)
        context = ShareContext(chain_id, self.calls.address, query_id, self.address)
        return self.calls.submit_shares(query_id, encrypt_shares(words, aggregator_keys, context))


# --------------------------------------------------------------------------------------------------
# Fleet


@dataclass
class _Outcome:
    """Result of one owner's transaction in a batch."""

    agent: OwnerAgent
    query_ids: tuple[int, ...]
    pending: PendingTransaction | None = None
    status: Status | None = None
    code: Reason | None = None
    reason: str = ""
    # Queries dropped from the transaction, with the status read from the chain and why.
    resolved: list[tuple[int, Status, str]] = field(default_factory=list)


class OwnerFleet:
    """Many owners in one process: one event poll, one thread pool, one state database.

    NOTE: the event cursor belongs to the database, so an owner added to the configuration of an
    existing database decides only on queries proposed after the cursor. Give it a database of its
    own to have it read older open queries.
    """

    def __init__(self, config: FleetConfig, *, market: MarketClient | None = None,
                 sender_config: SenderConfig | None = None) -> None:
        self.config = config
        deployment_block = None
        if market is None:
            w3 = make_web3(config.rpc_url)
            market, deployment_block = config.market.connect(w3, log_chunk_size=config.block_chunk)
        self.market = market
        self.sender_config = sender_config or SenderConfig(receipt_timeout=config.receipt_timeout)
        self.state = OwnerState(config.db_path, fsync_every_commit=config.fsync_every_commit)
        self.tables = TableCache()
        self.agents: dict[str, OwnerAgent] = {}
        for index, owner in enumerate(config.owners):
            agent = OwnerAgent(owner, owner.load_account(), market, self.sender_config, self.tables)
            if agent.address in self.agents:
                raise PmsrError(f"owner {index} repeats account {agent.address}; each owner needs its own account")
            self.agents[agent.address] = agent
        start_block = config.start_block if config.start_block is not None else (deployment_block or 0)
        reader = LogReader(market.w3, market.address, market.abi, chunk_size=config.block_chunk)
        self._poller = EventPoller(reader, self.state.cursor(), OWNER_EVENTS, start_block=start_block)
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="owner")
        self._specs: dict[int, SpecCheck] = {}
        self._gas_limits: dict[tuple[Any, ...], int] = {}
        # The `time.monotonic()` time at which a pass first found each query published with claims
        # to send. The claims' wait for the owners' other results starts then.
        self._published_seen: dict[int, float] = {}
        self._paid_topic = market.abi.event_topic("OwnerPaid")
        self._min_owner_stake: int | None = None
        self._chain_id: int | None = None
        self.keeper = self._make_keeper(start_block) if config.keeper else None
        logger.info("owner fleet of %d owners on market %s, reading events from block %d",
                    len(self.agents), market.address, start_block)

    def _make_keeper(self, start_block: int) -> Keeper:
        # Imported here because the keeper module imports this package's configuration.
        from ..keeper import Keeper

        account = self.config.keeper_account
        if account is None:
            sender = next(iter(self.agents.values())).sender
        else:
            loaded = account if isinstance(account, LocalAccount) else account.load()
            sender = TransactionSender(self.market.w3, loaded, self.sender_config)
        return Keeper(self.market.with_sender(sender), database=self.state.database, start_block=start_block,
                      block_chunk=self.config.block_chunk)

    # ----------------------------------------------------------------------------------------------
    # Life cycle

    def __enter__(self) -> OwnerFleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.state.close()

    def run(self, stop: threading.Event) -> None:
        """Run passes every `poll_interval` seconds until `stop` is set; a failed pass is logged and retried."""
        interval = self.config.poll_interval
        logger.info("owner fleet started: %d owners, poll interval %.2f s", len(self.agents), interval)
        while not stop.is_set():
            try:
                self.run_once()
            except PmsrError as error:
                logger.error("owner pass failed: %s; retrying in %.2f s", error, interval)
            except Exception:
                # A service keeps serving its other owners; the traceback shows what to fix.
                logger.exception("owner pass failed unexpectedly; retrying in %.2f s", interval)
            stop.wait(interval)
        logger.info("owner fleet stopped")

    def run_once(self) -> list[OwnerAction]:
        """Run one pass (see the module docstring) and return the owners' actions in it."""
        actions: list[OwnerAction] = []
        self._reconcile(actions)
        block = rpc_request(self.market.w3, "eth_getBlockByNumber", ["latest", False])
        now = int(block["timestamp"], 16)
        self._poller.poll(lambda records: self._handle_events(records, now, actions))
        self._submit_joined(now, actions)
        self._settle(actions)
        if self.keeper is not None:
            self.keeper.run_once()
        return actions

    # ----------------------------------------------------------------------------------------------
    # Shared reads

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(rpc_request(self.market.w3, "eth_chainId", []), 16)
        return self._chain_id

    @property
    def min_owner_stake(self) -> int:
        # An immutable of the contract, so one read serves the process.
        if self._min_owner_stake is None:
            self._min_owner_stake = self.market.min_owner_stake()
        return self._min_owner_stake

    def _spec_check(self, query: StoredQuery) -> SpecCheck:
        check = self._specs.get(query.query_id)
        if check is None:
            check = self._specs[query.query_id] = check_spec(query.spec_json, query.spec_hash, query.params)
        return check

    def _log(self, actions: list[OwnerAction], action: OwnerAction, level: int = logging.INFO) -> None:
        actions.append(action)
        detail = ""
        if action.code:
            detail = f" ({action.code}): {action.reason}"
        elif action.reason:
            detail = f": {action.reason}"
        transaction = f" in {action.transaction_hash}" if action.transaction_hash else ""
        logger.log(level, "query %d owner %s: %s%s%s", action.query_id, action.owner, action.action, transaction, detail)

    # ----------------------------------------------------------------------------------------------
    # Events

    def _handle_events(self, records: list[EventRecord], now: int, actions: list[OwnerAction]) -> None:
        owner_infos: dict[str, OwnerInfo] | None = None
        for record in records:
            if isinstance(record, QueryProposed):
                if owner_infos is None:
                    owner_infos = self._owner_infos()
                self._on_proposed(record, now, owner_infos, actions)
            elif isinstance(record, QueryOpened):
                self.state.set_phase(record.query_id, QueryPhase.OPEN)
            elif isinstance(record, SubmissionsFilled):
                self.state.mark_closed(record.query_id)
            elif isinstance(record, ComplaintFiled):
                self._on_complaint(record, actions)
            elif isinstance(record, ResultPublished):
                self.state.set_phase(record.query_id, QueryPhase.PUBLISHED)
            elif isinstance(record, QueryCancelled):
                self.state.set_phase(record.query_id, QueryPhase.CANCELLED)
            elif isinstance(record, QueryFailed):
                self.state.set_phase(record.query_id, QueryPhase.FAILED)

    def _owner_infos(self) -> dict[str, OwnerInfo]:
        addresses = list(self.agents)
        infos = batch_views(self.market, "ownerInfo", [[address] for address in addresses])
        return dict(zip(addresses, infos, strict=True))

    def _on_proposed(self, record: QueryProposed, now: int, owner_infos: dict[str, OwnerInfo],
                     actions: list[OwnerAction]) -> None:
        query_id = record.query_id
        self.state.record_query(query_id, record.spec_json, record.spec_hash, record.params, record.block_number)
        query = self.state.query(query_id)
        assert query is not None
        if query.phase not in (QueryPhase.PROPOSED, QueryPhase.OPEN):
            return
        decided = {row.owner for row in self.state.decisions(query_id=query_id)}
        undecided = [agent for address, agent in self.agents.items() if address not in decided]
        if not undecided:
            return
        if now >= query.params.submit_deadline:
            if not decided:
                self.state.set_phase(query_id, QueryPhase.IGNORED)
            logger.info("query %d: its submit deadline %d passed before the agent read it; %d owners do not join",
                        query_id, query.params.submit_deadline, len(undecided))
            return

        check = self._spec_check(query)
        if check.refusal is not None:
            # Logged once for the fleet: the reason is the same for every owner.
            logger.warning("query %d: refused by all %d owners (%s): %s",
                           query_id, len(undecided), check.refusal.code.value if check.refusal.code else "",
                           check.refusal.reason)
        reserved = self.state.reserved_epsilon()
        epsilon = query.params.epsilon
        rows = []
        for agent in undecided:
            decision = agent.decide(
                check, query, owner_infos[agent.address], now=now, min_owner_stake=self.min_owner_stake,
                reserved_epsilon=reserved.get(agent.address, 0),
            )
            code = decision.code.value if decision.code is not None else None
            status = Status.JOINED if decision.accepted else Status.REFUSED
            rows.append((agent.address, status, code, decision.reason, epsilon))
            action = OwnerAction(agent.address, query_id, status.value, decision.reason, code)
            if check.refusal is None:
                self._log(actions, action)
            else:
                actions.append(action)
        self.state.record_decisions(query_id, rows)

    def _on_complaint(self, record: ComplaintFiled, actions: list[OwnerAction]) -> None:
        if record.owner not in self.agents:
            return
        row = self.state.decision(record.owner, record.query_id)
        if row is None or row.status == Status.EXCLUDED:
            return
        reason = f"aggregator {record.aggregator} complained that the ciphertext did not decrypt"
        self.state.set_status(record.owner, record.query_id, Status.EXCLUDED, reason=reason)
        self._log(actions, OwnerAction(record.owner, record.query_id, Status.EXCLUDED.value, reason),
                  logging.WARNING)

    # ----------------------------------------------------------------------------------------------
    # Submissions

    def _submit_joined(self, now: int, actions: list[OwnerAction]) -> None:
        joined: dict[int, list[DecisionRow]] = defaultdict(list)
        for row in self.state.decisions(statuses=[Status.JOINED]):
            joined[row.query_id].append(row)
        queries = self.state.queries(joined)
        for query_id, rows in sorted(joined.items()):
            query = queries[query_id]
            if query.phase in _CLOSED_PHASES:
                self._skip(rows, Reason.QUERY_CLOSED, f"the query was {query.phase.value} before submission", actions)
            elif now >= query.params.submit_deadline:
                self._skip(rows, Reason.SUBMIT_DEADLINE_PASSED,
                           f"submit deadline {query.params.submit_deadline} passed (now {now})", actions)
            elif query.closed:
                self._skip(rows, Reason.QUERY_FULL, f"the query reached maxOwners {query.params.max_owners}", actions)
            elif query.phase == QueryPhase.OPEN:
                self._submit_query(query, rows, actions)

    def _skip(self, rows: Sequence[DecisionRow], code: Reason, reason: str, actions: list[OwnerAction],
              status: Status = Status.SKIPPED) -> None:
        self.state.set_statuses([(row.owner, row.query_id) for row in rows], status, code=code.value, reason=reason)
        for row in rows:
            self._log(actions, OwnerAction(row.owner, row.query_id, status.value, reason, code.value), logging.WARNING)

    def _submit_query(self, query: StoredQuery, rows: list[DecisionRow], actions: list[OwnerAction]) -> None:
        query_id = query.query_id
        info = self.market.query_info(query_id)
        if info.status != QueryStatus.OPEN:
            # Cancelled or settled in a block after the last events read; the next pass reads the event.
            return
        if info.closed_at != 0 or info.submitted_count >= query.params.max_owners:
            self.state.mark_closed(query_id)
            self._skip(rows, Reason.QUERY_FULL, f"the query reached maxOwners {query.params.max_owners}", actions)
            return
        # Only the open slots are worth a transaction; owners of other processes may still take some.
        slots = query.params.max_owners - info.submitted_count
        if len(rows) > slots:
            self._skip(rows[slots:], Reason.QUERY_FULL,
                       f"only {slots} of maxOwners {query.params.max_owners} slots were open", actions)
            rows = rows[:slots]
        check = self._spec_check(query)
        assert check.spec is not None
        spec = check.spec
        keys = [self.market.aggregator_info(address).encryption_key for address in query.params.aggregators]
        if len(set(keys)) != len(keys):
            # One key holder would receive two shares of every owner and learn more than its share.
            self._skip(rows, Reason.AGGREGATOR_KEYS_INVALID,
                       f"aggregators of the query share an encryption key: {[key.hex() for key in keys]}", actions,
                       Status.REFUSED)
            return

        def send(row: DecisionRow) -> _Outcome:
            return self._send_submission(self.agents[row.owner], spec, query_id, keys)

        self._finish(self._map_first_alone(send, [row for row in rows if row.owner in self.agents]),
                     Status.SUBMITTED, actions)

    def _map_first_alone(self, function: Callable[[Any], _Outcome], items: Sequence[Any]) -> list[_Outcome]:
        """Run `function` over `items` in the pool; without `estimate_gas` the first runs alone, so its
        estimate is the one the others reuse."""
        if self.config.estimate_gas or not items:
            return list(self._pool.map(function, items))
        return [function(items[0]), *self._pool.map(function, items[1:])]

    def _send_submission(self, agent: OwnerAgent, spec: QuerySpec, query_id: int, keys: Sequence[bytes]) -> _Outcome:
        outcome = _Outcome(agent, (query_id,))
        try:
            call = agent.submission(spec, query_id, keys, self.chain_id)
        except EncodingOverflowError:
            # The message of this error quotes the owner's value, which must stay out of logs.
            outcome.status, outcome.code = Status.REFUSED, Reason.DATASET_UNUSABLE
            outcome.reason = "the map's output does not fit the spec's fixed-point encoding"
            return outcome
        except (TemplateError, SpecError) as error:
            outcome.status, outcome.code = Status.REFUSED, Reason.DATASET_UNUSABLE
            outcome.reason = f"the map failed on the owner's table: {error}"
            return outcome
        except InvalidInputError as error:
            # encrypt_shares rejects an aggregator key that is not a usable X25519 public key.
            outcome.status, outcome.code = Status.REFUSED, Reason.AGGREGATOR_KEYS_INVALID
            outcome.reason = f"the shares cannot be encrypted to the query's aggregators: {error}"
            return outcome

        def record(transaction_hash: str) -> None:
            self.state.set_status(agent.address, query_id, Status.SUBMITTING, tx_hash=transaction_hash)

        return self._send(outcome, call, record, ("submitShares", query_id))

    def _send(self, outcome: _Outcome, call: ContractCall, record: Callable[[str], None],
              gas_key: tuple[Any, ...] | None = None) -> _Outcome:
        """Estimate, record and send `call`; turn a revert at estimation into a refusal or skip.

        Without `estimate_gas`, calls that share `gas_key` reuse the first one's estimate (see
        `FleetConfig`), and a revert shows up in the receipt instead.
        """
        try:
            if gas_key is not None and not self.config.estimate_gas:
                limit = self._gas_limits.get(gas_key)
                if limit is None:
                    estimate = outcome.agent.sender.estimate_gas(call)
                    limit = self._gas_limits.setdefault(gas_key, math.ceil(estimate * 1.2) + SHARED_GAS_MARGIN)
                call = dataclasses.replace(call, gas=limit)
            outcome.pending = outcome.agent.sender.submit(call, before_send=record)
        except ContractRevertError as error:
            code = reason_for_contract_error(error.error_name)
            outcome.code = code
            outcome.reason = f"the contract would reject {call.function}: {error}"
            outcome.status = _status_for_revert(call.function, code)
        except (TransactionError, RpcError) as error:
            outcome.reason = f"sending {call.function} failed: {error}; retrying on the next pass"
        return outcome

    def _finish(self, outcomes: Sequence[_Outcome], success: Status, actions: list[OwnerAction]) -> None:
        """Wait for the sent transactions, then store and log every outcome in one database transaction."""
        sent = [outcome for outcome in outcomes if outcome.pending is not None]
        results = _wait_each([outcome.pending for outcome in sent])  # type: ignore[misc]
        for outcome, result in zip(sent, results, strict=True):
            assert outcome.pending is not None
            if isinstance(result, Receipt):
                outcome.status = success
                outcome.reason = self._receipt_note(result)
            elif isinstance(result, TransactionFailedError):
                name = result.revert.error_name if result.revert is not None else None
                outcome.code = reason_for_contract_error(name)
                outcome.status = _status_for_revert(outcome.pending.call.function, outcome.code)
                outcome.reason = f"the transaction reverted on-chain: {result}"
            else:
                # Timed out: the reconciliation of the next pass reads the chain.
                outcome.reason = f"no receipt yet: {result}"

        updates: list[tuple[str, int, Status, str | None, str, str | None]] = []
        logged: list[tuple[OwnerAction, int]] = []
        for outcome in outcomes:
            owner = outcome.agent.address
            transaction = outcome.pending.transaction_hash if outcome.pending is not None else None
            for query_id, status, reason in outcome.resolved:
                updates.append((owner, query_id, status, None, reason, None))
                logged.append((OwnerAction(owner, query_id, status.value, reason), logging.INFO))
            if outcome.status is None:
                for query_id in outcome.query_ids:
                    action = OwnerAction(owner, query_id, "error", outcome.reason, transaction_hash=transaction)
                    logged.append((action, logging.WARNING))
                continue
            code = outcome.code.value if outcome.code is not None else None
            level = logging.INFO if outcome.status == success else logging.WARNING
            for query_id in outcome.query_ids:
                updates.append((owner, query_id, outcome.status, code, outcome.reason, transaction))
                logged.append((OwnerAction(owner, query_id, outcome.status.value, outcome.reason, code, transaction), level))
        self.state.update_many(updates)
        for action, level in logged:
            self._log(actions, action, level)

    def _receipt_note(self, receipt: Receipt) -> str:
        # Only OwnerPaid logs are decoded, because a submission's receipt carries every ciphertext
        # in its SharesSubmitted log and decoding it would only find that nothing was paid.
        paid_logs = [log for log in receipt.logs if log["topics"] and _topic_bytes(log["topics"][0]) == self._paid_topic]
        if not paid_logs:
            return ""
        paid = sum(record.amount for record in self.market.logs.decode_receipt_logs(paid_logs)
                   if isinstance(record, OwnerPaid))
        return f"paid {paid} wei" if paid else ""

    # ----------------------------------------------------------------------------------------------
    # Claims and releases

    def _settle(self, actions: list[OwnerAction]) -> None:
        rows = self.state.decisions(statuses=[Status.SUBMITTED])
        queries = self.state.queries(row.query_id for row in rows)
        published: dict[str, list[int]] = defaultdict(list)
        awaiting: set[str] = set()
        releases: list[tuple[str, int]] = []
        for row in rows:
            if row.owner not in self.agents:
                continue
            phase = queries[row.query_id].phase
            if phase == QueryPhase.PUBLISHED:
                published[row.owner].append(row.query_id)
            elif phase in (QueryPhase.CANCELLED, QueryPhase.FAILED):
                releases.append((row.owner, row.query_id))
            else:
                awaiting.add(row.owner)
        claims = self._claims_due(published, awaiting)
        if not claims and not releases:
            return

        tasks: list[Callable[[], _Outcome]] = []
        for owner, query_ids in claims.items():
            tasks.append(lambda owner=owner, query_ids=query_ids: self._send_claim(self.agents[owner], query_ids))
        claim_count = len(tasks)
        for owner, query_id in releases:
            tasks.append(lambda owner=owner, query_id=query_id: self._send_release(self.agents[owner], query_id))
        outcomes = self._map_first_alone(lambda task: task(), tasks)
        self._finish(outcomes[:claim_count], Status.CLAIMED, actions)
        self._finish(outcomes[claim_count:], Status.RELEASED, actions)

    def _claims_due(self, published: Mapping[str, list[int]], awaiting: set[str]) -> dict[str, list[int]]:
        """Return the claims to send in this pass, from each owner's published, unclaimed queries.

        An owner in `awaiting` has submitted to another query that has not published yet. Its claim
        waits until that query publishes too, or until `claim_wait` seconds have passed since this
        process first found one of its queries published.
        """
        now = time.monotonic()
        current = {query_id for query_ids in published.values() for query_id in query_ids}
        new = current - self._published_seen.keys()
        # Queries with nothing left to claim are dropped, so the map stays as small as the backlog.
        self._published_seen = {query_id: self._published_seen.get(query_id, now) for query_id in current}

        due: dict[str, list[int]] = {}
        waiting_owners: dict[int, int] = defaultdict(int)
        for owner, query_ids in published.items():
            waited = now - min(self._published_seen[query_id] for query_id in query_ids)
            if owner in awaiting and waited < self.config.claim_wait:
                for query_id in query_ids:
                    waiting_owners[query_id] += 1
            else:
                due[owner] = query_ids

        for query_id in sorted(new & waiting_owners.keys()):
            logger.info("query %d: published; %d owners wait up to %.1f s for their other submitted queries "
                        "to publish, then claim them together", query_id, waiting_owners[query_id],
                        self.config.claim_wait)
        return due

    def _send_claim(self, agent: OwnerAgent, query_ids: Sequence[int]) -> _Outcome:
        outcome = _Outcome(agent, tuple(query_ids))
        if len(query_ids) == 1:
            call = agent.calls.claim(query_ids[0])
        else:
            call = agent.calls.claim_many(query_ids)

        def record(transaction_hash: str) -> None:
            self.state.set_statuses([(agent.address, q) for q in query_ids], Status.CLAIMING, tx_hash=transaction_hash)

        self._send(outcome, call, record, ("claim", len(query_ids)))
        if outcome.pending is not None or outcome.code is None:
            return outcome

        # The contract rejected the claim (claimMany fails whole if one query cannot be claimed):
        # read each query's submission state and claim again those still unpaid.
        logger.warning("owner %s: claim of queries %s rejected (%s); reading their submission states",
                       agent.address, list(query_ids), outcome.reason)
        states = batch_views(self.market, "submissionState", [[q, agent.address] for q in query_ids])
        claimable = []
        resolved = []
        for query_id, state in zip(query_ids, states, strict=True):
            status = _status_from_chain(SubmissionState(int(state)), QueryPhase.PUBLISHED)
            if status == Status.SUBMITTED:
                claimable.append(query_id)
            else:
                resolved.append((query_id, status, f"submission state {SubmissionState(int(state)).name.lower()} on chain"))
        if resolved and claimable:
            retry = self._send_claim(agent, claimable)
            retry.resolved.extend(resolved)
            return retry
        outcome.query_ids = tuple(claimable)
        outcome.resolved = resolved
        return outcome

    def _send_release(self, agent: OwnerAgent, query_id: int) -> _Outcome:
        outcome = _Outcome(agent, (query_id,))

        def record(transaction_hash: str) -> None:
            self.state.set_status(agent.address, query_id, Status.RELEASING, tx_hash=transaction_hash)

        self._send(outcome, agent.calls.release_budget(query_id), record, ("releaseBudget",))
        if outcome.pending is None and outcome.code is not None:
            (state,) = batch_views(self.market, "submissionState", [[query_id, agent.address]])
            chain_state = SubmissionState(int(state))
            outcome.query_ids = ()
            outcome.resolved = [(query_id, _status_from_chain(chain_state, QueryPhase.CANCELLED),
                                 f"release rejected; submission state {chain_state.name.lower()} on chain")]
        return outcome

    # ----------------------------------------------------------------------------------------------
    # Reconciliation after a restart

    def _reconcile(self, actions: list[OwnerAction]) -> None:
        """Settle decisions left in a sending status by the chain's `submissionState` and the transaction.

        Within one process a pass finishes its transactions before the next starts, so such rows
        come from a crash or a receipt timeout.
        """
        rows = [row for row in self.state.decisions(statuses=[Status.SUBMITTING, Status.CLAIMING, Status.RELEASING])
                if row.owner in self.agents]
        if not rows:
            return
        states = batch_views(self.market, "submissionState", [[row.query_id, row.owner] for row in rows])
        queries = self.state.queries(row.query_id for row in rows)
        for row, raw_state in zip(rows, states, strict=True):
            chain_state = SubmissionState(int(raw_state))
            pending = row.tx_hash is not None and self._transaction_pending(row.tx_hash)
            phase = queries[row.query_id].phase
            if row.status == Status.SUBMITTING and chain_state == SubmissionState.NONE:
                new_status = Status.SUBMITTING if pending else Status.JOINED
            elif row.status != Status.SUBMITTING and chain_state == SubmissionState.SUBMITTED:
                new_status = row.status if pending else Status.SUBMITTED
            else:
                new_status = _status_from_chain(chain_state, phase)
            if new_status == row.status:
                logger.info("query %d owner %s: transaction %s still pending", row.query_id, row.owner, row.tx_hash)
                continue
            reason = f"after restart: chain state {chain_state.name.lower()}, transaction {row.tx_hash or 'none'}"
            self.state.set_status(row.owner, row.query_id, new_status, reason=reason)
            self._log(actions, OwnerAction(row.owner, row.query_id, new_status.value, reason, transaction_hash=row.tx_hash))

    def _transaction_pending(self, transaction_hash: str) -> bool:
        transaction = rpc_request(self.market.w3, "eth_getTransactionByHash", [transaction_hash])
        return transaction is not None and transaction.get("blockNumber") is None


def _status_for_revert(function: str, code: Reason) -> Status | None:
    """Return the status a rejected transaction leaves, or `None` to keep the decision as it was."""
    if function != "submitShares":
        # A rejected claim or release keeps the submission; its chain state is read separately.
        return None
    if code in _SKIP_REASONS:
        return Status.SKIPPED
    if code == Reason.ALREADY_SUBMITTED:
        return Status.SUBMITTED
    return Status.REFUSED


def _status_from_chain(state: SubmissionState, phase: QueryPhase) -> Status:
    if state == SubmissionState.NONE:
        return Status.JOINED
    if state == SubmissionState.SUBMITTED:
        return Status.SUBMITTED
    if state == SubmissionState.EXCLUDED:
        return Status.EXCLUDED
    return Status.CLAIMED if phase == QueryPhase.PUBLISHED else Status.RELEASED


def _topic_bytes(topic: str | bytes) -> bytes:
    """Return a log topic as bytes. JSON-RPC gives a topic as a 0x-prefixed hex string."""
    if isinstance(topic, bytes):
        return topic
    return bytes.fromhex(topic.removeprefix("0x"))


def _wait_each(pending: Sequence[PendingTransaction]) -> list[Receipt | PmsrError]:
    """Wait for every transaction; return each receipt, or the error of a failed or late one."""
    results: list[Receipt | PmsrError] = []
    for start in range(0, len(pending), RECEIPT_CHUNK):
        chunk = pending[start: start + RECEIPT_CHUNK]
        try:
            results.extend(wait_for_all(chunk))
            continue
        except TransactionError:
            pass
        # One transaction failed or timed out: read the chunk again one by one to tell which.
        for item in chunk:
            try:
                results.append(item.sender.wait(item))
            except TransactionError as error:
                results.append(error)
    return results

