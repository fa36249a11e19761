"""Configuration of an owner agent: account, chain endpoint, market, dataset, local policy, state file.

A process hosts a fleet of owners (`FleetConfig`): a real owner runs a fleet of one, and the local
runner hosts many owners per process. The JSON file that `python -m offchain_workers.owner --config`
reads puts the settings the owners share at the top level and lists the owners:

    {
      "rpcUrl": "http://127.0.0.1:8545",
      "market": {"address": "0x...", "manifest": "deployments/31337.json", "artifact": null},
      "dbPath": "owners.sqlite",
      "pollInterval": 1.0,
      "workers": 4,
      "blockChunk": 2000,
      "startBlock": null,
      "receiptTimeout": 120.0,
      "keeper": false,
      "keeperAccount": null,
      "estimateGas": true,
      "fsyncEveryCommit": false,
      "claimWait": 30.0,
      "localPolicy": {"allowedTemplates": ["ols"], "minPriceWei": 0,
                      "maxEpsilonPerQuery": 1000000, "allowedColumns": ["wage"]},
      "owners": [
        {"account": {"devKeys": "owner-keys.json", "address": "0x..."},
         "dataset": {"path": "cps.csv", "format": "csv", "rows": [0, 1]},
         "localPolicy": {...}}
      ]
    }

An account is `{"keystore": PATH, "passphraseEnv": NAME}`, `{"keystore": PATH, "passphraseFile":
PATH}` (V3 keystores, for real keys) or `{"devKeys": PATH, "address": ADDRESS}` (the local
runner's plain-hex throwaway keys). An owner's `localPolicy` replaces the top-level one. Relative
paths are read relative to the directory of the JSON file. `startBlock` null reads events from the
manifest's deployment block, or from block 0 without a manifest.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from web3 import Web3

from pmsr_chain import MARKET_CONTRACT, ContractArtifact, Deployment, MarketClient, load_artifact, verify_deployment
from pmsr_chain.errors import ConfigurationError
from pmsr_chain.keystore import unlock_keystore

from ..templates import TEMPLATES

__all__ = [
    "AccountSource",
    "MarketSource",
    "DatasetSource",
    "LocalPolicy",
    "OwnerConfig",
    "FleetConfig",
    "load_fleet_config",
]

_TABLE_FORMATS = {"csv": (".csv",), "parquet": (".parquet", ".pq")}


# --------------------------------------------------------------------------------------------------
# Accounts


@dataclass(frozen=True)
class AccountSource:
    """Source of an account's private key, which only `load()` reads.

    Set `keystore` with one of `passphrase_env` or `passphrase_file`, or set `dev_keys` with
    `address`. Dev key files hold plain-hex keys and serve only the local runner's throwaway
    accounts on Anvil.
    """

    keystore: Path | None = None
    passphrase_env: str | None = None
    passphrase_file: Path | None = None
    dev_keys: Path | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if (self.keystore is None) == (self.dev_keys is None):
            raise ConfigurationError(
                f"account source {self} must name exactly one of keystore or devKeys"
            )
        if self.keystore is not None and (self.passphrase_env is None) == (self.passphrase_file is None):
            raise ConfigurationError(
                f"keystore account {self.keystore} needs exactly one of passphraseEnv or passphraseFile"
            )
        if self.dev_keys is not None and (self.address is None or not is_address(self.address)):
            raise ConfigurationError(
                f"dev key account in {self.dev_keys} needs the address of its key, got {self.address!r}"
            )

    def load(self) -> LocalAccount:
        """Unlock the account. Raises `ConfigurationError` when the key cannot be read."""
        if self.dev_keys is not None:
            assert self.address is not None
            keys = _dev_keys_by_address(str(Path(self.dev_keys).resolve()))
            account = keys.get(to_checksum_address(self.address))
            if account is None:
                raise ConfigurationError(f"dev key file {self.dev_keys} has no key for {self.address}")
            return account
        assert self.keystore is not None
        return unlock_keystore(Path(self.keystore), self._passphrase())

    def _passphrase(self) -> str:
        if self.passphrase_env is not None:
            value = os.environ.get(self.passphrase_env)
            if value is None:
                raise ConfigurationError(
                    f"environment variable {self.passphrase_env} is not set; export the passphrase of "
                    f"keystore {self.keystore} in it"
                )
            return value
        assert self.passphrase_file is not None
        try:
            return Path(self.passphrase_file).read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigurationError(f"cannot read passphrase file {self.passphrase_file}: {error.strerror}") from None

    def to_json(self) -> dict[str, Any]:
        if self.dev_keys is not None:
            return {"devKeys": str(self.dev_keys), "address": self.address}
        document: dict[str, Any] = {"keystore": str(self.keystore)}
        if self.passphrase_env is not None:
            document["passphraseEnv"] = self.passphrase_env
        else:
            document["passphraseFile"] = str(self.passphrase_file)
        return document

    @classmethod
    def from_json(cls, document: Any, base: Path) -> AccountSource:
        mapping = _mapping(document, "account", {"keystore", "passphraseEnv", "passphraseFile", "devKeys", "address"})
        return cls(
            keystore=_path(mapping.get("keystore"), base),
            passphrase_env=mapping.get("passphraseEnv"),
            passphrase_file=_path(mapping.get("passphraseFile"), base),
            dev_keys=_path(mapping.get("devKeys"), base),
            address=mapping.get("address"),
        )


@lru_cache(maxsize=64)
def _dev_keys_by_address(path: str) -> dict[str, LocalAccount]:
    # A fleet of thousands of owners shares one dev key file, so it is read once per process.
    from ..local.accounts import read_dev_keys

    return {key.address: key.account for key in read_dev_keys(Path(path))}


# --------------------------------------------------------------------------------------------------
# Market and dataset


@dataclass(frozen=True)
class MarketSource:
    """The market contract: an address, a deployment manifest, or both (they must agree).

    `artifact` names a compiled artifact JSON to read the ABI from. Without it the ABI comes from
    `pmsr_chain.load_artifact`, which compiles the contracts when their sources changed.
    """

    address: str | None = None
    manifest: Path | None = None
    artifact: Path | None = None

    def __post_init__(self) -> None:
        if self.address is None and self.manifest is None:
            raise ConfigurationError("market needs an address or a deployment manifest path")
        if self.address is not None and not is_address(self.address):
            raise ConfigurationError(f"market address {self.address!r} is not an address")

    def connect(self, w3: Web3, *, log_chunk_size: int = 2_000) -> tuple[MarketClient, int | None]:
        """Return a read-only client of the market and its deployment block (`None` without a manifest).

        With a manifest, the deployment is verified against the chain and the artifact first.

        Raises:
            ConfigurationError, DeploymentError: the manifest or artifact is unreadable, or they
                disagree with the chain or with `address`.
        """
        artifact = self._artifact()
        deployment_block = None
        address = self.address
        if self.manifest is not None:
            try:
                deployment = Deployment.from_json(json.loads(Path(self.manifest).read_text()))
            except FileNotFoundError:
                raise ConfigurationError(f"deployment manifest {self.manifest} not found") from None
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ConfigurationError(f"deployment manifest {self.manifest} is malformed: {error}") from None
            verify_deployment(w3, deployment, artifact)
            if address is not None and to_checksum_address(address) != deployment.address:
                raise ConfigurationError(
                    f"market address {address} differs from {deployment.address} in manifest {self.manifest}"
                )
            address = deployment.address
            deployment_block = deployment.block_number
        assert address is not None
        return MarketClient(w3, address, artifact.abi, log_chunk_size=log_chunk_size), deployment_block

    def _artifact(self) -> ContractArtifact:
        if self.artifact is None:
            return load_artifact(MARKET_CONTRACT)
        try:
            return ContractArtifact.from_json(json.loads(Path(self.artifact).read_text()), Path(self.artifact))
        except FileNotFoundError:
            raise ConfigurationError(f"contract artifact {self.artifact} not found") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(f"contract artifact {self.artifact} is malformed: {error}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "manifest": None if self.manifest is None else str(self.manifest),
            "artifact": None if self.artifact is None else str(self.artifact),
        }

    @classmethod
    def from_json(cls, document: Any, base: Path) -> MarketSource:
        if isinstance(document, str):
            return cls(address=document)
        mapping = _mapping(document, "market", {"address", "manifest", "artifact"})
        return cls(
            address=mapping.get("address"),
            manifest=_path(mapping.get("manifest"), base),
            artifact=_path(mapping.get("artifact"), base),
        )


@dataclass(frozen=True)
class DatasetSource:
    """An owner's table: a CSV or Parquet file, or the rows `[start, stop)` of one.

    Many owners may share one file with disjoint `rows`; the fleet reads each file once.
    """

    path: Path
    format: str | None = None
    rows: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.format is not None:
            suffixes = _TABLE_FORMATS.get(self.format)
            if suffixes is None:
                raise ConfigurationError(f"dataset format {self.format!r} is unknown; use csv or parquet")
            if Path(self.path).suffix.lower() not in suffixes:
                raise ConfigurationError(
                    f"dataset {self.path} does not end in {' or '.join(suffixes)} but its format is {self.format}; "
                    "rename the file or correct the format"
                )
        if self.rows is not None:
            start, stop = self.rows
            if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop):
                raise ConfigurationError(f"dataset rows {self.rows} must be [start, stop) with 0 <= start < stop")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "rows": None if self.rows is None else list(self.rows),
        }

    @classmethod
    def from_json(cls, document: Any, base: Path) -> DatasetSource:
        if isinstance(document, str):
            return cls(path=_path(document, base))  # type: ignore[arg-type]
        mapping = _mapping(document, "dataset", {"path", "format", "rows"})
        if "path" not in mapping:
            raise ConfigurationError("dataset needs a path")
        rows = mapping.get("rows")
        if rows is not None and (not isinstance(rows, list) or len(rows) != 2):
            raise ConfigurationError(f"dataset rows {rows!r} must be a [start, stop) pair")
        return cls(
            path=_path(mapping["path"], base),  # type: ignore[arg-type]
            format=mapping.get("format"),
            rows=None if rows is None else (rows[0], rows[1]),
        )


# --------------------------------------------------------------------------------------------------
# Local policy


@dataclass(frozen=True)
class LocalPolicy:
    """Checks an owner applies on its own machine on top of its on-chain policy.

    `None` in a field means "no local limit": the on-chain policy alone decides.
    - `allowed_templates`: template names the owner accepts (count, sum, ..., vote).
    - `min_price_wei`: minimum price per query, in wei, on top of the on-chain minimum.
    - `max_epsilon_per_query`: the most epsilon (in millionths) one query may spend, so a single
      query cannot take a large part of the lifetime budget.
    - `allowed_columns`: the columns a query's map and filter may read. A column outside the list
      never leaves the machine, even through a noisy aggregate.
    """

    allowed_templates: frozenset[str] | None = None
    min_price_wei: int = 0
    max_epsilon_per_query: int | None = None
    allowed_columns: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.allowed_templates is not None:
            object.__setattr__(self, "allowed_templates", frozenset(self.allowed_templates))
            unknown = sorted(set(self.allowed_templates) - set(TEMPLATES))
            if unknown:
                raise ConfigurationError(
                    f"allowedTemplates names unknown templates {unknown}; known: {', '.join(sorted(TEMPLATES))}"
                )
        if self.allowed_columns is not None:
            object.__setattr__(self, "allowed_columns", frozenset(self.allowed_columns))
        if isinstance(self.min_price_wei, bool) or not isinstance(self.min_price_wei, int) or self.min_price_wei < 0:
            raise ConfigurationError(f"minPriceWei must be a non-negative integer, got {self.min_price_wei!r}")
        maximum = self.max_epsilon_per_query
        if maximum is not None and (isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 0):
            raise ConfigurationError(f"maxEpsilonPerQuery must be a non-negative integer of millionths, got {maximum!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "allowedTemplates": None if self.allowed_templates is None else sorted(self.allowed_templates),
            "minPriceWei": self.min_price_wei,
            "maxEpsilonPerQuery": self.max_epsilon_per_query,
            "allowedColumns": None if self.allowed_columns is None else sorted(self.allowed_columns),
        }

    @classmethod
    def from_json(cls, document: Any) -> LocalPolicy:
        mapping = _mapping(document, "localPolicy", {"allowedTemplates", "minPriceWei", "maxEpsilonPerQuery", "allowedColumns"})
        templates = mapping.get("allowedTemplates")
        columns = mapping.get("allowedColumns")
        return cls(
            allowed_templates=None if templates is None else frozenset(_strings(templates, "allowedTemplates")),
            min_price_wei=_integer(mapping.get("minPriceWei", 0), "minPriceWei"),
            max_epsilon_per_query=(
                None if mapping.get("maxEpsilonPerQuery") is None
                else _integer(mapping["maxEpsilonPerQuery"], "maxEpsilonPerQuery")
            ),
            allowed_columns=None if columns is None else frozenset(_strings(columns, "allowedColumns")),
        )


# --------------------------------------------------------------------------------------------------
# Owners and fleets


@dataclass(frozen=True)
class OwnerConfig:
    """One data owner: its account, its table, its local policy, and the service it runs in.

    `account` is an unlocked `LocalAccount` (in-process use) or an `AccountSource`; `dataset` is
    a `DatasetSource` or an in-memory pandas table. Only sources can be written to JSON.
    """

    account: LocalAccount | AccountSource
    dataset: DatasetSource | pd.DataFrame = field(compare=False)
    local_policy: LocalPolicy = field(default_factory=LocalPolicy)
    rpc_url: str = "http://127.0.0.1:8545"
    market: MarketSource | None = None
    db_path: Path = Path("owner.sqlite")
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.poll_interval <= 0:
            raise ConfigurationError(f"pollInterval must be positive seconds, got {self.poll_interval}")
        if not isinstance(self.dataset, (DatasetSource, pd.DataFrame)):
            raise ConfigurationError(f"dataset must be a DatasetSource or a pandas DataFrame, got {type(self.dataset).__name__}")

    def load_account(self) -> LocalAccount:
        if isinstance(self.account, AccountSource):
            return self.account.load()
        return self.account


@dataclass(frozen=True)
class FleetConfig:
    """Owners hosted in one process, with the settings of the process.

    Every owner must name the same RPC endpoint, market, state database and poll interval. They
    share one event reader and one thread pool of `workers` threads for maps and submissions.
    `start_block` is the first block whose events are read (default: the manifest's deployment
    block, or 0). With `keeper` the process also calls `cancel` and `fail` when due, from
    `keeper_account` or, without one, from the first owner's account.

    `estimate_gas` (default) estimates every transaction, so a call the contract would reject is
    stopped before it is signed. Turned off, the fleet estimates the first submission of each
    query, the first claim of each number of queries and the first release, and gives the others
    of the same kind that estimate plus `SHARED_GAS_MARGIN` as their gas limit. That halves the
    node's work per submission: on Anvil 1.7.1 with instant mining on a 2-core machine, a
    submission took about 14 ms with its estimate and 7 ms without. A call the contract rejects is then mined and pays
    for its gas, and the receipt check names the error.

    `fsync_every_commit` makes every state commit wait for the disk; see `OwnerState` for why the
    default does not.

    `claim_wait` is the longest time, in seconds, that an owner holds back the claim of a published
    query while another query it submitted to still awaits its result. When that result publishes
    within the wait, one `claimMany` pays both queries, which saves the owner a transaction and its
    gas. Otherwise the published query is claimed alone when the wait ends. An owner with no other
    query awaiting a result claims at once, and 0 turns the wait off. The wait is counted from the
    pass that first found the query published, and starts again after a restart, so a claim is
    delayed by at most `claim_wait` per start of the process, never dropped. The default of 30 s
    suits queries proposed together. The fleet submits to all of them in one pass, and the last
    result then publishes one complaint period and a few blocks later (2 s and 1-second blocks on
    the local market).
    """

    owners: tuple[OwnerConfig, ...]
    workers: int = 4
    block_chunk: int = 2_000
    start_block: int | None = None
    receipt_timeout: float = 120.0
    keeper: bool = False
    keeper_account: LocalAccount | AccountSource | None = None
    estimate_gas: bool = True
    fsync_every_commit: bool = False
    claim_wait: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "owners", tuple(self.owners))
        if not self.owners:
            raise ConfigurationError("a fleet needs at least one owner")
        first = self.owners[0]
        if first.market is None:
            raise ConfigurationError("owner configuration needs a market (address or manifest)")
        for index, owner in enumerate(self.owners[1:], start=1):
            for name in ("rpc_url", "market", "db_path", "poll_interval"):
                if getattr(owner, name) != getattr(first, name):
                    raise ConfigurationError(
                        f"owner {index} has {name} {getattr(owner, name)!r} but owner 0 has {getattr(first, name)!r}; "
                        "owners of one fleet share the endpoint, market, database and poll interval"
                    )
        if self.workers < 1:
            raise ConfigurationError(f"workers must be at least 1, got {self.workers}")
        if self.block_chunk < 1:
            raise ConfigurationError(f"blockChunk must be at least 1 block, got {self.block_chunk}")
        if self.start_block is not None and self.start_block < 0:
            raise ConfigurationError(f"startBlock must be non-negative, got {self.start_block}")
        if self.receipt_timeout <= 0:
            raise ConfigurationError(f"receiptTimeout must be positive seconds, got {self.receipt_timeout}")
        wait = self.claim_wait
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < math.inf:
            raise ConfigurationError(f"claimWait must be a finite number of seconds >= 0, got {self.claim_wait!r}")

    @property
    def rpc_url(self) -> str:
        return self.owners[0].rpc_url

    @property
    def market(self) -> MarketSource:
        market = self.owners[0].market
        assert market is not None
        return market

    @property
    def db_path(self) -> Path:
        return self.owners[0].db_path

    @property
    def poll_interval(self) -> float:
        return self.owners[0].poll_interval

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document `load_fleet_config` reads. Every account and dataset must be a source."""
        owners = []
        for index, owner in enumerate(self.owners):
            if not isinstance(owner.account, AccountSource) or not isinstance(owner.dataset, DatasetSource):
                raise ConfigurationError(
                    f"owner {index} has an in-memory account or table; give an AccountSource and a "
                    "DatasetSource to write the configuration to a file"
                )
            owners.append(
                {"account": owner.account.to_json(), "dataset": owner.dataset.to_json(),
                 "localPolicy": owner.local_policy.to_json()}
            )
        keeper_account = self.keeper_account
        if keeper_account is not None and not isinstance(keeper_account, AccountSource):
            raise ConfigurationError("the keeper account is an in-memory account; give an AccountSource to write it")
        return {
            "rpcUrl": self.rpc_url,
            "market": self.market.to_json(),
            "dbPath": str(self.db_path),
            "pollInterval": self.poll_interval,
            "workers": self.workers,
            "blockChunk": self.block_chunk,
            "startBlock": self.start_block,
            "receiptTimeout": self.receipt_timeout,
            "keeper": self.keeper,
            "keeperAccount": None if keeper_account is None else keeper_account.to_json(),
            "estimateGas": self.estimate_gas,
            "fsyncEveryCommit": self.fsync_every_commit,
            "claimWait": self.claim_wait,
            "owners": owners,
        }

    def write(self, path: Path) -> Path:
        """Write the configuration as JSON to `path` (absolute paths are kept as they are)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, document: Any, base: Path) -> FleetConfig:
        known = {
            "rpcUrl", "market", "dbPath", "pollInterval", "workers", "blockChunk", "startBlock",
            "receiptTimeout", "keeper", "keeperAccount", "estimateGas", "fsyncEveryCommit", "claimWait",
            "localPolicy", "owners",
        }
        mapping = _mapping(document, "configuration", known)
        for key in ("market", "dbPath", "owners"):
            if key not in mapping:
                raise ConfigurationError(f"configuration lacks {key}")
        keeper_account = mapping.get("keeperAccount")
        start_block = mapping.get("startBlock")
        return cls(
            owners=_owners_from_json(mapping, base),
            workers=_integer(mapping.get("workers", 4), "workers"),
            block_chunk=_integer(mapping.get("blockChunk", 2_000), "blockChunk"),
            start_block=None if start_block is None else _integer(start_block, "startBlock"),
            receipt_timeout=float(mapping.get("receiptTimeout", 120.0)),
            keeper=bool(mapping.get("keeper", False)),
            keeper_account=None if keeper_account is None else AccountSource.from_json(keeper_account, base),
            estimate_gas=bool(mapping.get("estimateGas", True)),
            fsync_every_commit=bool(mapping.get("fsyncEveryCommit", False)),
            claim_wait=mapping.get("claimWait", 30.0),
        )


def _owners_from_json(mapping: Mapping[str, Any], base: Path) -> tuple[OwnerConfig, ...]:
    """Build each owner's configuration from its entry and the settings the owners share."""
    market = MarketSource.from_json(mapping["market"], base)
    db_path = _path(mapping["dbPath"], base)
    assert db_path is not None
    rpc_url = str(mapping.get("rpcUrl", "http://127.0.0.1:8545"))
    poll_interval = float(mapping.get("pollInterval", 1.0))
    default_policy = LocalPolicy.from_json(mapping.get("localPolicy") or {})
    if not isinstance(mapping["owners"], list):
        raise ConfigurationError("owners must be a list of {account, dataset, localPolicy} objects")
    owners = []
    for index, entry in enumerate(mapping["owners"]):
        owner = _mapping(entry, f"owners[{index}]", {"account", "dataset", "localPolicy"})
        if "account" not in owner or "dataset" not in owner:
            raise ConfigurationError(f"owners[{index}] needs an account and a dataset")
        policy = LocalPolicy.from_json(owner["localPolicy"]) if owner.get("localPolicy") else default_policy
        owners.append(
            OwnerConfig(
                account=AccountSource.from_json(owner["account"], base),
                dataset=DatasetSource.from_json(owner["dataset"], base),
                local_policy=policy,
                rpc_url=rpc_url,
                market=market,
                db_path=db_path,
                poll_interval=poll_interval,
            )
        )
    return tuple(owners)


def load_fleet_config(path: str | Path) -> FleetConfig:
    """Read a fleet configuration file (format in this module's docstring).

    Raises:
        ConfigurationError: the file is missing, not JSON, or a setting is invalid; the message
            names the setting.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} not found") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"configuration file {path} is unreadable: {error}") from None
    return FleetConfig.from_json(document, path.parent)


# --------------------------------------------------------------------------------------------------
# JSON helpers


def _mapping(document: Any, name: str, known: set[str]) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{name} must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigurationError(f"{name} has unknown keys {unknown}; known keys: {sorted(known)}")
    return document


def _path(value: Any, base: Path) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"expected a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _integer(value: Any, name: str) -> int:
    # Large wei amounts may be written as decimal strings, which JSON tools keep exact.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    return value


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{name} must be a list of strings, got {value!r}")
    return value
