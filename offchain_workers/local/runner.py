"""`LocalMarket`: a whole PMSR market on one machine, for tests, benchmarks and demos.

    with LocalMarket(data_dir, aggregators=3) as market:      # starts Anvil and deploys DataMarket
        market.start_aggregators()                             # K aggregator processes, registered
        market.add_owners(tables, fleets=2)                    # owners registered, fleets started
        analyst = market.analyst()
        query_id = analyst.propose(spec, price_per_owner=10**15, min_owners=10, max_owners=100)
        result = analyst.wait_for_result(query_id)
        market.kill_aggregator(0); market.start_aggregator(0)  # crash and recover

Every account is a throwaway key generated here, funded with `anvil_setBalance` and stored in a
plain-hex dev key file (mode 0600) under the data directory, so this runner suits only a private
Anvil chain. Aggregators, owner fleets and the keeper run as separate processes (see
`processes.ServiceProcess`), each reading a JSON configuration file that the runner writes with the
services' own configuration classes. The data directory holds:

    deployments/<chainId>.json   deployment manifest
    keys/                        dev key files, aggregator X25519 key files and their passphrases
    data/                        the owners' tables, one CSV per owner (or one per fleet)
    config/  state/  logs/       per-process configuration, SQLite state and log files
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from eth_account.signers.local import LocalAccount
from web3 import Web3

from pmsr_chain import (
    ETHER,
    AnvilConfig,
    AnvilNode,
    Deployment,
    MarketClient,
    MarketParameters,
    OwnerPolicy,
    SenderConfig,
    Template,
    TransactionSender,
    deploy_market,
    increase_time,
    latest_timestamp,
    load_artifact,
    manifest_path,
    market_client,
)
from pmsr_chain.errors import InvalidInputError

from ..aggregator.config import AggregatorConfig, SecretSource
from ..aggregator.policy import AcceptancePolicy
from ..analyst import Analyst
from ..keys import MIN_SCRYPT_N, AggregatorKeyPair
from ..owner.config import AccountSource, DatasetSource, FleetConfig, LocalPolicy, MarketSource, OwnerConfig
from .accounts import (
    DevKey,
    dataset_commitment,
    fund_accounts,
    generate_accounts,
    read_dev_keys,
    register_aggregators,
    register_owners,
    write_dev_keys,
)
from .processes import DEFAULT_STOP_TIMEOUT, ServiceProcess

__all__ = ["LOCAL_PARAMETERS", "AggregatorHandle", "OwnerGroup", "LocalMarket"]

logger = logging.getLogger(__name__)

# Market parameters of a local run. The complaint period is 2 seconds, so a query settles in seconds
# of real time. Stakes and slash are those of a real deployment, so tests see real amounts move.
LOCAL_PARAMETERS = MarketParameters(
    min_owner_stake=ETHER // 100,
    min_aggregator_stake=ETHER,
    unbonding_period=3_600,
    complaint_period=2,
    slash_amount=ETHER // 2,
    max_aggregators=5,
    max_output_length=4_096,
)

# Block gas limit of the local chain. Anvil's default (30 million) fits about 300 submissions a
# block; a large limit lets interval mining take a whole burst of submissions in one block.
LOCAL_GAS_LIMIT = 2_000_000_000

# Word the aggregator, owner-fleet and keeper processes log once they serve ("aggregator 0x...
# started: ...", "owner fleet started: ...", "keeper for market 0x... started from 0x...").
READY_MARKER = " started"

# Ether given to each account for gas, on top of its stake.
_GAS_MONEY = ETHER


@dataclass
class AggregatorHandle:
    """One aggregator of the local market: its address, X25519 key, configuration and process."""

    index: int
    address: str
    encryption_key: bytes
    config: AggregatorConfig
    config_path: Path
    process: ServiceProcess


@dataclass
class OwnerGroup:
    """Owners added by one `add_owners` call: their addresses, table files and fleet processes.

    `fleet_of[i]` is the index in `fleets` of the process hosting owner i.
    """

    index: int
    addresses: list[str]
    key_file: Path
    data_paths: list[Path]
    fleets: list[ServiceProcess] = field(default_factory=list)
    fleet_of: list[int] = field(default_factory=list)


class LocalMarket:
    """Anvil, the deployed market and the service processes of one local market.

    Anvil mines a block every `block_time` seconds, so the chain clock that the services read
    moves on even when no transaction arrives. With `automine` (Anvil's mixed mining) every
    transaction is also mined as it arrives. Without it, transactions wait for the next interval
    block, and a burst of thousands of submissions fits in a few blocks. `poll_interval` is the
    services' event polling interval in seconds. `anvil_args` are added to Anvil's command line,
    for example `("--prune-history", "16")`, which bounds the past states Anvil keeps in memory.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        aggregators: int = 3,
        market_parameters: MarketParameters = LOCAL_PARAMETERS,
        block_time: float = 1.0,
        automine: bool = True,
        poll_interval: float = 0.25,
        keeper: bool = True,
        log_level: str = "INFO",
        anvil_args: Sequence[str] = (),
    ) -> None:
        if aggregators < 2:
            raise InvalidInputError(f"aggregator count {aggregators} is invalid; a market needs at least 2")
        if aggregators > market_parameters.max_aggregators:
            raise InvalidInputError(
                f"aggregator count {aggregators} is above the market's maxAggregators {market_parameters.max_aggregators}"
            )
        self.data_dir = Path(data_dir).resolve()
        self.aggregator_count = aggregators
        self.parameters = market_parameters
        self.block_time = block_time
        self.automine = automine
        self.poll_interval = poll_interval
        self.keeper_enabled = keeper
        self.log_level = log_level
        self.anvil_args = tuple(anvil_args)
        self.node: AnvilNode | None = None
        self.deployment: Deployment | None = None
        self._market: MarketClient | None = None
        self.aggregators: list[AggregatorHandle] = []
        self.groups: list[OwnerGroup] = []
        self.keeper: ServiceProcess | None = None
        self.artifact_path: Path | None = None
        self._fleet_count = 0
        self._extra_accounts = 0

    # ----------------------------------------------------------------------------------------------
    # Life cycle

    def __enter__(self) -> LocalMarket:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalMarket:
        """Start Anvil, deploy `DataMarket` with the manifest in the data directory, and start the keeper."""
        for name in ("keys", "data", "config", "state", "logs"):
            (self.data_dir / name).mkdir(parents=True, exist_ok=True)
        (self.data_dir / "keys").chmod(0o700)
        self.node = AnvilNode(
            AnvilConfig(
                accounts=1, block_time=self.block_time, gas_limit=LOCAL_GAS_LIMIT,
                extra_args=(("--mixed-mining",) if self.automine else ()) + self.anvil_args,
            ),
            log_path=self.data_dir / "logs" / "anvil.log",
        )
        self.node.start()
        artifact = load_artifact("DataMarket")
        # The services read this copy, so a contract edited while the market runs does not make them
        # compile and load an artifact that differs from the deployed code.
        self.artifact_path = self.data_dir / "deployments" / "DataMarket.artifact.json"
        self.artifact_path.parent.mkdir(parents=True, exist_ok=True)
        self.artifact_path.write_bytes(artifact.path.read_bytes())
        deployer = TransactionSender(self.node.web3, self.node.accounts[0])
        self.deployment = deploy_market(deployer, self.parameters, artifact=artifact, data_dir=self.data_dir)
        self._market = market_client(self.node.web3, self.deployment, artifact=artifact)
        logger.info("local market %s deployed on %s", self.deployment.address, self.node.url)
        if self.keeper_enabled:
            self._start_keeper()
        return self

    def stop(self) -> None:
        """Stop every service process (SIGTERM to all, then SIGKILL after a timeout), then Anvil."""
        processes = self.processes()
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + DEFAULT_STOP_TIMEOUT
        for process in processes:
            process.stop(max(0.5, deadline - time.monotonic()))
        if self.node is not None:
            self.node.stop()

    def processes(self) -> list[ServiceProcess]:
        """Return every service process the runner created, running or not."""
        processes = [handle.process for handle in self.aggregators]
        processes += [fleet for group in self.groups for fleet in group.fleets]
        if self.keeper is not None:
            processes.append(self.keeper)
        return processes

    # ----------------------------------------------------------------------------------------------
    # Chain access

    @property
    def w3(self) -> Web3:
        if self.node is None:
            raise InvalidInputError("the local market is not started; call start() or use it as a context manager")
        return self.node.web3

    @property
    def rpc_url(self) -> str:
        assert self.node is not None
        return self.node.url

    @property
    def market(self) -> MarketClient:
        """A read-only client of the market; `market.with_sender(...)` writes."""
        if self._market is None:
            raise InvalidInputError("the local market is not started; call start() or use it as a context manager")
        return self._market

    @property
    def manifest(self) -> Path:
        assert self.deployment is not None
        return manifest_path(self.data_dir, self.deployment.chain_id)

    @property
    def start_block(self) -> int:
        assert self.deployment is not None
        return self.deployment.block_number

    def _market_source(self) -> MarketSource:
        assert self.artifact_path is not None
        return MarketSource(manifest=self.manifest, artifact=self.artifact_path)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every started service process logged that it serves (see `ServiceProcess.wait_ready`)."""
        deadline = time.monotonic() + timeout
        for process in self.processes():
            if process.running:
                process.wait_ready(max(0.0, deadline - time.monotonic()))

    def now(self) -> int:
        """Return the latest block's timestamp."""
        return latest_timestamp(self.w3)

    def increase_time(self, seconds: int) -> int:
        """Move the chain clock forward by `seconds` and mine a block; return the new timestamp."""
        return increase_time(self.w3, seconds)

    def advance_past(self, timestamp: int) -> int:
        """Mine a block with a timestamp after `timestamp`; return the new timestamp."""
        now = self.now()
        if now > timestamp:
            return now
        return increase_time(self.w3, timestamp - now + 1)

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def new_account(self, balance_wei: int = 1_000 * ETHER) -> LocalAccount:
        """Return a fresh funded account whose key is kept in `keys/extra.json` with the others."""
        (account,) = generate_accounts(1)
        fund_accounts(self.w3, [account.address], balance_wei)
        self._extra_accounts += 1
        self._append_keys("extra.json", [DevKey(account)])
        return account

    def client(self, account: LocalAccount) -> MarketClient:
        """Return a market client that sends from `account`."""
        return self.market.with_sender(TransactionSender(self.w3, account, SenderConfig()))

    def analyst(self, balance_wei: int = 10_000 * ETHER) -> Analyst:
        """Return an `Analyst` for a new account funded with `balance_wei`."""
        account = self.new_account(balance_wei)
        return Analyst(self.client(account), start_block=self.start_block, poll_interval=min(self.poll_interval, 0.5))

    def _append_keys(self, name: str, keys: Sequence[DevKey]) -> Path:
        path = self.data_dir / "keys" / name
        existing = read_dev_keys(path) if path.exists() else []
        return write_dev_keys(path, [*existing, *keys])

    # ----------------------------------------------------------------------------------------------
    # Keeper

    def _start_keeper(self) -> None:
        account = self.new_account(100 * ETHER)
        config_path = self.data_dir / "config" / "keeper.json"
        document: dict[str, Any] = {
            "rpcUrl": self.rpc_url,
            "market": self._market_source().to_json(),
            "account": AccountSource(dev_keys=self.data_dir / "keys" / "extra.json", address=account.address).to_json(),
            "dbPath": str(self.data_dir / "state" / "keeper.sqlite"),
            "pollInterval": self.poll_interval,
            "startBlock": self.start_block,
        }
        config_path.write_text(json.dumps(document, indent=2) + "\n")
        self.keeper = ServiceProcess(
            "keeper", "offchain_workers.keeper", config_path, self.data_dir / "logs" / "keeper.log",
            extra_args=("--log-level", self.log_level), cwd=self.data_dir, ready_marker=READY_MARKER,
        )
        self.keeper.start()

    # ----------------------------------------------------------------------------------------------
    # Aggregators

    def start_aggregators(
        self,
        *,
        policy: AcceptancePolicy | None = None,
        policies: Sequence[AcceptancePolicy] | None = None,
        stake: int | None = None,
        start: bool = True,
    ) -> list[AggregatorHandle]:
        """Create, fund and register the K aggregators (in one batch), write their configurations and start them.

        `policies` gives each aggregator its own acceptance policy; otherwise all use `policy`.
        With `start=False` the processes are created but not started (see `start_aggregator`).
        """
        if self.aggregators:
            raise InvalidInputError("the aggregators are already created; use start_aggregator(i) to start one again")
        count = self.aggregator_count
        if policies is not None and len(policies) != count:
            raise InvalidInputError(f"{len(policies)} policies for {count} aggregators; pass one per aggregator")
        stake = self.market.min_aggregator_stake() if stake is None else stake
        accounts = generate_accounts(count)
        key_file = self._append_keys("aggregators.json", [DevKey(account) for account in accounts])
        fund_accounts(self.w3, [account.address for account in accounts], stake + 10 * _GAS_MONEY)

        key_pairs = [AggregatorKeyPair.generate() for _ in range(count)]
        for index, pair in enumerate(key_pairs):
            passphrase_path = self.data_dir / "keys" / f"aggregator-{index}.passphrase"
            _write_secret(passphrase_path, secrets.token_hex(16))
            # The cheapest scrypt cost: a throwaway key on a local chain.
            pair.save(self.data_dir / "keys" / f"aggregator-{index}.x25519.json", passphrase_path.read_text(),
                      scrypt_n=MIN_SCRYPT_N, overwrite=True)
        register_aggregators(self.market, accounts, [pair.public_key for pair in key_pairs], stake=stake)

        for index, (account, pair) in enumerate(zip(accounts, key_pairs)):
            config = AggregatorConfig(
                rpc_url=self.rpc_url,
                market=self._market_source(),
                account=AccountSource(dev_keys=key_file, address=account.address),
                key_file=self.data_dir / "keys" / f"aggregator-{index}.x25519.json",
                key_passphrase=SecretSource(file=self.data_dir / "keys" / f"aggregator-{index}.passphrase"),
                database=self.data_dir / "state" / f"aggregator-{index}.sqlite",
                start_block=self.start_block,
                policy=(policies[index] if policies is not None else policy) or AcceptancePolicy(),
                poll_interval=self.poll_interval,
            )
            config_path = config.write(self.data_dir / "config" / f"aggregator-{index}.json")
            process = ServiceProcess(
                f"aggregator-{index}", "offchain_workers.aggregator", config_path,
                self.data_dir / "logs" / f"aggregator-{index}.log",
                extra_args=("--log-level", self.log_level), cwd=self.data_dir, ready_marker=READY_MARKER,
            )
            self.aggregators.append(AggregatorHandle(index, account.address, pair.public_key, config, config_path, process))
        if start:
            for handle in self.aggregators:
                handle.process.start()
        return self.aggregators

    @property
    def aggregator_addresses(self) -> list[str]:
        return [handle.address for handle in self.aggregators]

    def start_aggregator(self, index: int) -> None:
        """Start aggregator `index` again (after `stop_aggregator` or `kill_aggregator`)."""
        self.aggregators[index].process.start()

    def stop_aggregator(self, index: int, *, kill: bool = False) -> None:
        """Stop aggregator `index` with SIGTERM, or with SIGKILL when `kill` is set."""
        process = self.aggregators[index].process
        process.kill() if kill else process.stop()

    def kill_aggregator(self, index: int) -> None:
        """Kill aggregator `index` with SIGKILL, as a crash would."""
        self.aggregators[index].process.kill()

    def restart_aggregator(self, index: int, *, kill: bool = False) -> None:
        """Stop (or kill) aggregator `index`, then start it again from its database."""
        self.stop_aggregator(index, kill=kill)
        self.start_aggregator(index)

    def aggregator_peak_rss_mb(self) -> list[float | None]:
        """Return each aggregator process's peak RSS in MiB, read from /proc now or at its last stop."""
        return [handle.process.sample_peak_rss() for handle in self.aggregators]

    # ----------------------------------------------------------------------------------------------
    # Owners

    def default_owner_policy(self, **overrides: Any) -> OwnerPolicy:
        """Return an owner policy that joins every template, exact queries too, at any price, for a year.

        The lifetime budget is epsilon 100 (100,000,000 millionths).
        """
        values: dict[str, Any] = {
            "min_price_per_query": 0,
            "epsilon_budget": 100_000_000,
            "template_mask": (1 << len(Template)) - 1,
            "allow_exact": True,
            "expires_at": self.now() + 365 * 24 * 3_600,
        }
        values.update(overrides)
        return OwnerPolicy(**values)

    def register_owner_accounts(self, count: int, *, policy: OwnerPolicy | None = None,
                                stake: int | None = None) -> list[MarketClient]:
        """Register `count` owners that run no agent, and return clients that send from them.

        Tests use them to send crafted submissions with `MarketClient.submit_shares`.
        """
        accounts = generate_accounts(count)
        keys = [DevKey(account, secrets.token_bytes(32)) for account in accounts]
        self._append_keys("extra.json", keys)
        stake = self.market.min_owner_stake() if stake is None else stake
        fund_accounts(self.w3, [key.address for key in keys], stake + _GAS_MONEY)
        commitments = [dataset_commitment(b"", key.dataset_salt or b"") for key in keys]
        register_owners(self.market, keys, policy or self.default_owner_policy(), commitments, stake=stake)
        return [self.client(account) for account in accounts]

    def add_owners(
        self,
        tables: Sequence[pd.DataFrame | Path | str],
        *,
        policy: OwnerPolicy | Sequence[OwnerPolicy] | None = None,
        local_policy: LocalPolicy | None = None,
        fleets: int = 2,
        stake: int | None = None,
        workers: int | None = None,
        estimate_gas: bool = True,
        shared_files: bool = False,
        start: bool = True,
    ) -> OwnerGroup:
        """Create, fund and register one owner per table, then start `fleets` owner processes hosting them.

        `tables` are pandas tables (written to one CSV per owner under `data/`) or paths of
        existing CSV or Parquet files. With `shared_files`, the pandas tables of each fleet go into
        one CSV and each owner reads its row range, which saves one file read per owner. `policy`
        is the on-chain policy of every owner, or one per owner (default: `default_owner_policy`).
        `workers` and `estimate_gas` set the fleets' thread count and gas estimation (see
        `FleetConfig`; None keeps its default thread count).
        """
        if not tables:
            raise InvalidInputError("add_owners needs at least one table")
        count = len(tables)
        fleets = max(1, min(fleets, count))
        group_index = len(self.groups)
        policies = _per_owner(policy, count, self.default_owner_policy)
        stake = self.market.min_owner_stake() if stake is None else stake

        accounts = generate_accounts(count)
        keys = [DevKey(account, secrets.token_bytes(32)) for account in accounts]
        key_file = write_dev_keys(self.data_dir / "keys" / f"owners-{group_index}.json", keys)
        assignment = [index * fleets // count for index in range(count)]
        sources, commitments, data_paths = self._owner_datasets(tables, keys, assignment, group_index, shared_files)

        fund_accounts(self.w3, [key.address for key in keys], stake + _GAS_MONEY)
        started = time.monotonic()
        for owner_policy, members in _group_by_policy(policies):
            register_owners(self.market, [keys[i] for i in members], owner_policy,
                            [commitments[i] for i in members], stake=stake)
        logger.info("registered %d owners in %.1f s", count, time.monotonic() - started)

        group = OwnerGroup(group_index, [key.address for key in keys], key_file, data_paths, fleet_of=assignment)
        for fleet in range(fleets):
            members = [index for index in range(count) if assignment[index] == fleet]
            group.fleets.append(
                self._fleet_process(members, keys, key_file, sources, local_policy, workers, estimate_gas)
            )
        self.groups.append(group)
        if start:
            for process in group.fleets:
                process.start()
        return group

    def _owner_datasets(
        self, tables: Sequence[pd.DataFrame | Path | str], keys: Sequence[DevKey], assignment: Sequence[int],
        group_index: int, shared_files: bool,
    ) -> tuple[list[DatasetSource], list[bytes], list[Path]]:
        directory = self.data_dir / "data" / f"owners-{group_index}"
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        frames = [table for table in tables if isinstance(table, pd.DataFrame)]
        shared = shared_files and len(frames) == len(tables) and all(len(frame) > 0 for frame in frames)
        width = max(5, len(str(len(tables))))
        sources: list[DatasetSource] = []
        commitments: list[bytes] = []
        paths: list[Path] = []
        offsets: dict[int, int] = {}
        shared_parts: dict[int, list[pd.DataFrame]] = {}
        for index, (table, key) in enumerate(zip(tables, keys)):
            assert key.dataset_salt is not None
            if isinstance(table, pd.DataFrame):
                content = table.to_csv(index=False).encode()
                commitments.append(dataset_commitment(content, key.dataset_salt))
                if shared:
                    fleet = assignment[index]
                    path = directory / f"fleet-{fleet}.csv"
                    start = offsets.get(fleet, 0)
                    offsets[fleet] = start + len(table)
                    shared_parts.setdefault(fleet, []).append(table)
                    sources.append(DatasetSource(path, "csv", (start, start + len(table))))
                else:
                    path = directory / f"owner-{index:0{width}d}.csv"
                    path.write_bytes(content)
                    sources.append(DatasetSource(path, "csv"))
            else:
                path = Path(table).resolve()
                commitments.append(dataset_commitment(path.read_bytes(), key.dataset_salt))
                sources.append(DatasetSource(path, "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"))
            paths.append(path)
        for fleet, parts in shared_parts.items():
            pd.concat(parts, ignore_index=True).to_csv(directory / f"fleet-{fleet}.csv", index=False)
        return sources, commitments, paths

    def _fleet_process(
        self, members: Sequence[int], keys: Sequence[DevKey], key_file: Path, sources: Sequence[DatasetSource],
        local_policy: LocalPolicy | None, workers: int | None, estimate_gas: bool,
    ) -> ServiceProcess:
        fleet_index = self._fleet_count
        self._fleet_count += 1
        market_source = self._market_source()
        database = self.data_dir / "state" / f"owners-{fleet_index}.sqlite"
        owners = tuple(
            OwnerConfig(
                account=AccountSource(dev_keys=key_file, address=keys[index].address),
                dataset=sources[index],
                local_policy=local_policy or LocalPolicy(),
                rpc_url=self.rpc_url,
                market=market_source,
                db_path=database,
                poll_interval=self.poll_interval,
            )
            for index in members
        )
        options: dict[str, Any] = {"workers": workers} if workers is not None else {}
        config = FleetConfig(owners=owners, start_block=self.start_block, estimate_gas=estimate_gas, **options)
        config_path = config.write(self.data_dir / "config" / f"owners-{fleet_index}.json")
        return ServiceProcess(
            f"owners-{fleet_index}", "offchain_workers.owner", config_path,
            self.data_dir / "logs" / f"owners-{fleet_index}.log",
            extra_args=("--log-level", self.log_level), cwd=self.data_dir, ready_marker=READY_MARKER,
        )

    @property
    def owner_addresses(self) -> list[str]:
        return [address for group in self.groups for address in group.addresses]

    def fleets(self) -> list[ServiceProcess]:
        return [fleet for group in self.groups for fleet in group.fleets]

    # ----------------------------------------------------------------------------------------------
    # Waiting

    def wait_until(self, condition: Callable[[], bool], timeout: float, *, what: str, interval: float = 0.1) -> None:
        """Poll `condition` until it is true; raise `TimeoutError` naming `what` after `timeout` seconds.

        Before raising, every service process that exited is named with the tail of its log.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{self._exited_processes()}")
            time.sleep(interval)

    def _exited_processes(self) -> str:
        lines = []
        for process in self.processes():
            if process.starts and not process.running and process.returncode not in (None, 0, -9, -15):
                lines.append(f"\n{process.name} exited with status {process.returncode}:\n{process.log_tail()}")
        return "".join(lines)


def _write_secret(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _per_owner(policy: OwnerPolicy | Sequence[OwnerPolicy] | None, count: int,
               default: Callable[[], OwnerPolicy]) -> list[OwnerPolicy]:
    if policy is None:
        return [default()] * count
    if isinstance(policy, OwnerPolicy):
        return [policy] * count
    policies = list(policy)
    if len(policies) != count:
        raise InvalidInputError(f"{len(policies)} owner policies for {count} owners; pass one policy or one per owner")
    return policies


def _group_by_policy(policies: Sequence[OwnerPolicy]) -> list[tuple[OwnerPolicy, list[int]]]:
    groups: dict[OwnerPolicy, list[int]] = {}
    for index, policy in enumerate(policies):
        groups.setdefault(policy, []).append(index)
    return list(groups.items())
