"""One demo run on a local market, phase by phase: chain, services, owners, queries, payments.

`DemoSession` drives a `LocalMarket` (Anvil, the deployed contract, aggregator and owner-fleet
processes) and names every step on a `PhaseClock`, so the person watching can follow each step and
its duration. The session acts as the analyst. Everything else happens in the service processes,
as on a real deployment. Owners decide, map and submit. Aggregators accept, decrypt, sum, add
noise, commit and reveal. Owners and aggregators then claim their payment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pmsr_chain import QueryStatus
from pmsr_chain.errors import PmsrError
from pmsr_chain.rpc import rpc_request

from ..aggregator.policy import AcceptancePolicy
from ..analyst import Analyst, QueryResult, ResultTimeoutError
from ..local.processes import read_cpu_seconds, read_peak_rss_mb
from ..local_market import LocalMarket, OwnerGroup
from ..owner.config import LocalPolicy
from ..spec import QuerySpec
from .ledger import Ledger, read_ledger
from .phases import PhaseClock

__all__ = ["QueryRequest", "DemoSession", "ServiceExitedError", "QUERY_PHASES"]

logger = logging.getLogger(__name__)

# Phases a query goes through as the demo names them, from the analyst's `QueryProgress.phase`.
QUERY_PHASES = {
    "accepting": "accepting (aggregators accept the queries)",
    "submitting": "submitting (owners run the map and send encrypted shares)",
    "complaints": "aggregating (aggregators decrypt their shares and sum them)",
    "committing": "aggregating (aggregators decrypt their shares and sum them)",
    "revealing": "publishing (aggregators reveal their sums; the contract adds them)",
    "published": "published",
}
_PHASE_ORDER = ("accepting", "submitting", "complaints", "committing", "revealing", "published")

_POLL_SECONDS = 0.5

# Past states Anvil keeps in memory. The services read only the latest state (blocks, receipts and
# logs stay available), and with Anvil 1.7.1's default history the demo with all 28,155 workers
# grew Anvil to 13 GB of memory before the run ended.
ANVIL_STATES_KEPT = 16


class ServiceExitedError(PmsrError, RuntimeError):
    """A service process of the demo's market exited while the demo needed it."""


@dataclass(frozen=True)
class QueryRequest:
    """A query the analyst proposes: its spec and market terms (wei amounts)."""

    label: str
    spec: QuerySpec
    max_owners: int
    min_owners: int
    price_per_owner: int
    fee_per_aggregator: int


def _total(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _largest(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _child_pid(executable_suffix: str) -> int | None:
    """Return the id of a child of this process whose executable path ends with `executable_suffix`."""
    parent = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in parentheses may contain spaces; the parent id follows it.
            parent_id = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if parent_id == parent and command.endswith(executable_suffix):
            return int(entry.name)
    return None


class _LogCounter:
    """Counts one market event per query id (its first indexed argument), reading new blocks each call."""

    def __init__(self, market: LocalMarket, event: str, from_block: int) -> None:
        self.market = market
        self.topic = "0x" + market.market.abi.event_topic(event).hex()
        self.next_block = from_block
        self.counts: Counter[int] = Counter()

    def poll(self) -> Counter[int]:
        latest = int(rpc_request(self.market.w3, "eth_blockNumber", []), 16)
        if latest >= self.next_block:
            logs = rpc_request(self.market.w3, "eth_getLogs", [{
                "address": self.market.market.address, "fromBlock": hex(self.next_block), "toBlock": hex(latest),
                "topics": [self.topic],
            }])
            for log in logs:
                topics = log["topics"]
                self.counts[int(topics[1], 16) if len(topics) > 1 else 0] += 1
            self.next_block = latest + 1
        return self.counts

    def total(self) -> int:
        return sum(self.poll().values())


class DemoSession:
    """A local market plus the analyst, with every step timed on `clock`.

    `work_dir` receives the market's data directory (keys, owner files, service logs). Use it as a
    context manager: leaving it stops every process and Anvil.
    """

    def __init__(
        self,
        clock: PhaseClock,
        work_dir: Path,
        *,
        aggregators: int = 3,
        block_time: float = 1.0,
        automine: bool = True,
        poll_interval: float = 0.25,
    ) -> None:
        self.clock = clock
        self.work_dir = Path(work_dir)
        self.local = LocalMarket(
            self.work_dir, aggregators=aggregators, block_time=block_time, automine=automine,
            poll_interval=poll_interval, anvil_args=("--prune-history", str(ANVIL_STATES_KEPT)),
        )
        self.analyst: Analyst | None = None
        self.owner_groups: list[OwnerGroup] = []
        self.first_block = 0
        self.peak_rss_mb: dict[str, float] = {}
        self._anvil_pid: int | None = None

    # ----------------------------------------------------------------------------------------------
    # Setting up

    def __enter__(self) -> DemoSession:
        self.clock.cpu_sampler = self.cpu_seconds
        with self.clock.phase("starting chain and deploying the market"):
            self.local.start()
        self.first_block = max(0, self.local.start_block - 1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.clock.end()
        self.peak_rss_mb = self.peak_memory()
        with self.clock.phase("stopping services and chain"):
            self.local.stop()
        self.clock.cpu_sampler = None

    def peak_memory(self) -> dict[str, float]:
        """Return the peak resident memory in MiB of Anvil and of the largest process of each service role."""
        if self._anvil_pid is None:
            self.cpu_seconds()
        samples = {
            "anvil": read_peak_rss_mb(self._anvil_pid) if self._anvil_pid is not None else None,
            "aggregator": _largest(handle.process.sample_peak_rss() for handle in self.local.aggregators),
            "owner fleet": _largest(fleet.sample_peak_rss() for fleet in self.local.fleets()),
        }
        return {role: round(value, 1) for role, value in samples.items() if value is not None}

    def cpu_seconds(self) -> dict[str, float]:
        """Return the CPU seconds (user plus system) used so far by each role's running processes.

        Anvil is found among this process's children; `demo` is this process (analyst and reports).
        """
        if self._anvil_pid is None and self.local.node is not None and self.local.node.running:
            self._anvil_pid = _child_pid("anvil")
        samples = {
            "anvil": read_cpu_seconds(self._anvil_pid) if self._anvil_pid is not None else None,
            "aggregators": _total(handle.process.cpu_seconds() for handle in self.local.aggregators),
            "owner fleets": _total(fleet.cpu_seconds() for fleet in self.local.fleets()),
            "keeper": self.local.keeper.cpu_seconds() if self.local.keeper is not None else None,
            "demo": time.process_time(),
        }
        return {role: value for role, value in samples.items() if value is not None}

    def register_aggregators(self, policy: AcceptancePolicy | None = None) -> list[str]:
        """Register the K aggregators (stake and X25519 key) and start their processes.

        `policy` is every aggregator's local acceptance policy (default: the service's defaults).
        """
        count = self.local.aggregator_count
        with self.clock.phase(f"registering {count} aggregators"):
            self.local.start_aggregators(policy=policy)
        return self.local.aggregator_addresses

    def register_owners(
        self, tables: Sequence[pd.DataFrame | Path], *, fleets: int = 2, local_policy: LocalPolicy | None = None
    ) -> OwnerGroup:
        """Register one owner per table or CSV file (stake, policy, one data file each); start the owner fleets.

        `local_policy` is what every owner's agent checks on its own machine on top of the on-chain policy.
        The fleets reuse one gas estimate per kind of call instead of estimating every transaction
        (`FleetConfig.estimate_gas`), which halves Anvil's work per submission. A call the contract
        rejects is then mined, and the ledger counts it as reverted.
        """
        counter = _LogCounter(self.local, "OwnerRegistered", self.local.w3.eth.block_number + 1)
        stop = threading.Event()
        with self.clock.phase("registering owners", total=len(tables)) as progress:

            def watch() -> None:
                while not stop.wait(_POLL_SECONDS):
                    progress.update(counter.total())

            watcher = threading.Thread(target=watch, name="owner-registrations", daemon=True)
            watcher.start()
            try:
                group = self.local.add_owners(list(tables), fleets=fleets, local_policy=local_policy, estimate_gas=False)
            finally:
                stop.set()
                watcher.join()
            progress.update(counter.total())
        self.owner_groups.append(group)
        return group

    def start_services(self) -> None:
        """Wait until every aggregator, owner fleet and the keeper logged that it serves.

        Raises:
            ServiceExitedError: a service process exited instead.
        """
        with self.clock.phase("starting services (aggregators, owner fleets, keeper)"):
            self.local.wait_ready()
            self.check_processes()
        self.analyst = self.local.analyst()

    def check_processes(self) -> None:
        """Raise `ServiceExitedError`, with the end of its log, for a started service process that is no longer running."""
        for process in self.local.processes():
            if process.starts and not process.running:
                raise ServiceExitedError(
                    f"{process.name} exited with status {process.returncode}; the last lines of {process.log_path}:\n"
                    f"{process.log_tail(3)}"
                )

    # ----------------------------------------------------------------------------------------------
    # Queries

    def propose(self, requests: Sequence[QueryRequest], *, submit_window: int) -> list[int]:
        """Propose every query from the analyst's account; return their ids in order."""
        assert self.analyst is not None, "call start_services() first"
        query_ids = []
        with self.clock.phase("proposing (the analyst escrows payment for each query)"):
            for request in requests:
                query_id = self.analyst.propose(
                    request.spec, price_per_owner=request.price_per_owner, min_owners=request.min_owners,
                    max_owners=request.max_owners, fee_per_aggregator=request.fee_per_aggregator,
                    aggregators=self.local.aggregator_addresses, accept_window=300, submit_window=submit_window,
                    commit_window=600, reveal_window=600,
                )
                self.clock.note(f"query {query_id}: {request.label}")
                query_ids.append(query_id)
        return query_ids

    def follow(self, query_ids: Sequence[int], *, timeout: float) -> list[QueryResult]:
        """Follow the queries through accepting, submitting, aggregating and publishing; return the results.

        Raises:
            QueryCancelledError, QueryFailedError: a query settled without a result.
            ResultTimeoutError: the queries were not all published within `timeout` seconds.
        """
        assert self.analyst is not None
        deadline = time.monotonic() + timeout
        total_owners = 0
        for query_id in query_ids:
            total_owners += self.local.market.query_info(query_id).params.max_owners
        names = list(dict.fromkeys(QUERY_PHASES[phase] for phase in _PHASE_ORDER))
        current = -1
        progress = None
        while True:
            states = [self.analyst.progress(query_id) for query_id in query_ids]
            for state in states:
                if state.status in (QueryStatus.CANCELLED, QueryStatus.FAILED):
                    # wait_for_result raises the analyst's error, which names the reason and the refund.
                    self.analyst.wait_for_result(state.query_id, timeout=0)
            slowest = min(states, key=lambda state: _PHASE_ORDER.index(state.phase))
            reached = names.index(QUERY_PHASES[slowest.phase])
            submitted = sum(state.submitted for state in states)
            detail = (f"{sum(s.accepted for s in states)}/{sum(s.aggregators for s in states)} accepts, "
                      f"{sum(s.revealed for s in states)} reveals")
            # A phase shorter than one poll is still named, with the time it was seen for.
            while current < reached:
                if progress is not None:
                    # The closing line of a phase shows its final count.
                    progress.update(submitted, detail)
                current += 1
                if names[current] == QUERY_PHASES["published"]:
                    break
                submitting = names[current] == QUERY_PHASES["submitting"]
                progress = self.clock.begin(names[current], total=total_owners if submitting else None)
            if slowest.phase == "published":
                break
            if progress is not None:
                progress.update(submitted, detail)
            self.check_processes()
            if time.monotonic() >= deadline:
                raise ResultTimeoutError(
                    f"queries {list(query_ids)} were not all published within {timeout:.0f} s; the slowest is "
                    f"{slowest}. The service logs are under {self.work_dir / 'logs'}"
                )
            time.sleep(_POLL_SECONDS)
        self.clock.end()
        return [self.analyst.result(query_id) for query_id in query_ids]

    def settle(self, query_ids: Sequence[int], *, timeout: float) -> dict[int, int]:
        """Wait for owners' claims and aggregators' fee claims, then take the analyst's refunds.

        Returns the refund of each query in wei. Owners and aggregators claim on their own; when
        some have not claimed within `timeout` seconds, the demo notes it and goes on.
        """
        assert self.analyst is not None
        included = {query_id: self.local.market.query_info(query_id).included_count for query_id in query_ids}
        fees_due = {query_id: len(self.local.market.query_info(query_id).params.aggregators) for query_id in query_ids}
        owner_claims = _LogCounter(self.local, "OwnerPaid", self.first_block)
        fee_claims = _LogCounter(self.local, "AggregatorFeePaid", self.first_block)
        total = sum(included.values()) + sum(fees_due.values())
        deadline = time.monotonic() + timeout
        with self.clock.phase("paying (owners claim, aggregators claim fees, the analyst takes the rest)",
                              total=total) as progress:
            while True:
                claimed = owner_claims.poll()
                fees = fee_claims.poll()
                done = sum(min(claimed[q], included[q]) for q in query_ids) + sum(min(fees[q], fees_due[q]) for q in query_ids)
                progress.update(done, "owner claims and aggregator fees")
                if done >= total:
                    break
                self.check_processes()
                if time.monotonic() >= deadline:
                    self.clock.note(f"{total - done} claims still missing after {timeout:.0f} s; they stay claimable")
                    break
                time.sleep(_POLL_SECONDS)
            refunds = {query_id: self.analyst.refund(query_id) for query_id in query_ids}
        return refunds

    # ----------------------------------------------------------------------------------------------
    # Accounting

    def roles(self) -> dict[str, str]:
        """Map every account the demo created to its role."""
        roles = {self.local.node.accounts[0].address: "deployer"} if self.local.node is not None else {}
        roles.update({address: "aggregators" for address in self.local.aggregator_addresses})
        roles.update({address: "owners" for address in self.local.owner_addresses})
        if self.analyst is not None:
            roles[self.analyst.address] = "analyst"
        return roles

    def ledger(self) -> Ledger:
        """Read every receipt since the deployment: gas and fees by role, submissions and payments."""
        with self.clock.phase("reading receipts (gas and payments by role)"):
            return read_ledger(self.local.w3, self.local.market.address, self.local.market.abi, self.roles(),
                               self.first_block)

    def owner_index(self) -> dict[str, tuple[int, int]]:
        """Map each owner address to (group index, position in that group's tables)."""
        return {
            address: (group.index, position)
            for group in self.owner_groups
            for position, address in enumerate(group.addresses)
        }
