"""Configuration of an aggregator service, read from a JSON file.

The file uses the account and market forms of the owner agent's configuration
(`offchain_workers.owner.config`), so one runner writes both. Relative paths are read relative to
the file's directory:

    {
      "rpcUrl": "http://127.0.0.1:8545",
      "market": {"manifest": "deployments/31337.json", "artifact": null},
      "account": {"keystore": "keys/aggregator.json", "passphraseEnv": "AGGREGATOR_PASSPHRASE"},
      "encryptionKey": {"path": "keys/aggregator-x25519.json", "passphraseFile": "x25519-passphrase.txt"},
      "dbPath": "aggregator.sqlite",
      "startBlock": null,
      "policy": {"minFeeWei": 0, "maxOutputLength": 512, "maxConcurrentQueries": 8},
      "pollInterval": 1.0,
      "blockChunk": 1000,
      "maxLogsPerRequest": 2000,
      "confirmations": 0,
      "receiptTimeout": 120.0,
      "keeper": false
    }

`market` is `{"address": ...}`, `{"manifest": ...}` or both, with an optional `artifact` to read
the ABI from. `account` is a V3 keystore with `passphraseEnv` or `passphraseFile`, or
`{"devKeys": PATH, "address": ADDRESS}` for the local runner's throwaway keys. The X25519 key
file's passphrase comes from `passphraseEnv` or `passphraseFile` in the same way. `startBlock`
null reads events from the manifest's deployment block, or from block 0 without a manifest. With
`keeper` the service also calls `cancel` and `fail` on due queries, from its own account.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmsr_chain.errors import ConfigurationError

from ..keys import AggregatorKeyPair
from ..owner.config import AccountSource, MarketSource
from .policy import AcceptancePolicy

__all__ = ["AccountSource", "MarketSource", "SecretSource", "AggregatorConfig", "load_config"]

# Passphrase files larger than this are not passphrase files.
_MAX_SECRET_FILE_BYTES = 4096


@dataclass(frozen=True)
class SecretSource:
    """Where a passphrase comes from: the environment variable `env` or the file `file`."""

    env: str | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ConfigurationError("a passphrase needs exactly one of passphraseEnv or passphraseFile")

    def read(self) -> str:
        """Return the passphrase.

        Raises:
            ConfigurationError: the variable is unset, or the file is missing, unreadable or too large.
        """
        if self.env is not None:
            secret = os.environ.get(self.env)
            if secret is None:
                raise ConfigurationError(f"environment variable {self.env} is not set; export the passphrase in it")
            return secret
        assert self.file is not None
        try:
            data = self.file.read_bytes()[: _MAX_SECRET_FILE_BYTES + 1]
        except OSError as error:
            raise ConfigurationError(f"cannot read passphrase file {self.file}: {error.strerror}") from None
        if len(data) > _MAX_SECRET_FILE_BYTES:
            raise ConfigurationError(f"passphrase file {self.file} is larger than {_MAX_SECRET_FILE_BYTES} bytes")
        # A trailing newline is what editors and `echo` add; it is not part of the passphrase.
        return data.decode("utf-8").rstrip("\r\n")

    def to_json(self) -> dict[str, str]:
        return {"passphraseEnv": self.env} if self.env is not None else {"passphraseFile": str(self.file)}


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything an aggregator process needs to run.

    `poll_interval` and `receipt_timeout` are in seconds. `block_chunk` is the largest block range
    read with one `eth_getLogs` request, and the service halves the range while a range returns
    more than `max_logs_per_request` logs, so memory stays bounded. `confirmations` is how many
    blocks behind the latest block events are read (0 on Anvil, several on a public chain).
    """

    rpc_url: str
    market: MarketSource
    account: AccountSource
    key_file: Path
    key_passphrase: SecretSource
    database: Path
    start_block: int | None = None
    policy: AcceptancePolicy = field(default_factory=AcceptancePolicy)
    poll_interval: float = 1.0
    block_chunk: int = 1000
    max_logs_per_request: int = 2000
    confirmations: int = 0
    receipt_timeout: float = 120.0
    keeper: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rpc_url, str) or not self.rpc_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"rpcUrl {self.rpc_url!r} is invalid; pass an http:// or https:// JSON-RPC URL")
        if self.start_block is not None:
            _check_int("startBlock", self.start_block, 0)
        _check_seconds("pollInterval", self.poll_interval)
        _check_int("blockChunk", self.block_chunk, 1)
        _check_int("maxLogsPerRequest", self.max_logs_per_request, 1)
        _check_int("confirmations", self.confirmations, 0)
        _check_seconds("receiptTimeout", self.receipt_timeout)
        if not isinstance(self.keeper, bool):
            raise ConfigurationError(f"keeper {self.keeper!r} is invalid; pass true or false")

    def load_key_pair(self) -> AggregatorKeyPair:
        """Decrypt the X25519 key file.

        Raises:
            ConfigurationError: the passphrase cannot be read.
            KeyFileError: the file is missing or malformed, or the passphrase is wrong.
        """
        return AggregatorKeyPair.load(self.key_file, self.key_passphrase.read())

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form that `load_config` reads."""
        return {
            "rpcUrl": self.rpc_url,
            "market": self.market.to_json(),
            "account": self.account.to_json(),
            "encryptionKey": {"path": str(self.key_file), **self.key_passphrase.to_json()},
            "dbPath": str(self.database),
            "startBlock": self.start_block,
            "policy": self.policy.to_json(),
            "pollInterval": self.poll_interval,
            "blockChunk": self.block_chunk,
            "maxLogsPerRequest": self.max_logs_per_request,
            "confirmations": self.confirmations,
            "receiptTimeout": self.receipt_timeout,
            "keeper": self.keeper,
        }

    def write(self, path: Path) -> Path:
        """Write the configuration to `path` as JSON with mode 0600."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        return path

    @classmethod
    def from_json(cls, document: Any, base: Path) -> AggregatorConfig:
        """Build a configuration from a parsed JSON object, reading relative paths against `base`.

        Raises:
            ConfigurationError: a missing, unknown or invalid field, named in the message.
        """
        mapping = _mapping(document, "aggregator configuration", {*_REQUIRED_KEYS, *_SCALAR_KEYS, "policy"})
        for name in _REQUIRED_KEYS:
            if name not in mapping:
                raise ConfigurationError(f"configuration key {name!r} is missing")
        key = _mapping(mapping["encryptionKey"], "encryptionKey", {"path", "passphraseEnv", "passphraseFile"})
        if "path" not in key:
            raise ConfigurationError("encryptionKey needs a path")
        scalars = {attribute: mapping[name] for name, attribute in _SCALAR_KEYS.items() if name in mapping}
        return cls(
            rpc_url=mapping["rpcUrl"],
            market=MarketSource.from_json(mapping["market"], base),
            account=AccountSource.from_json(mapping["account"], base),
            key_file=_path(key["path"], base, "encryptionKey.path"),
            key_passphrase=SecretSource(
                env=key.get("passphraseEnv"),
                file=_path(key["passphraseFile"], base, "encryptionKey.passphraseFile") if "passphraseFile" in key else None,
            ),
            database=_path(mapping["dbPath"], base, "dbPath"),
            policy=AcceptancePolicy.from_json(mapping.get("policy", {})),
            **scalars,
        )


_REQUIRED_KEYS = ("rpcUrl", "market", "account", "encryptionKey", "dbPath")
# Optional JSON keys with a plain value, and the attribute each sets.
_SCALAR_KEYS = {
    "startBlock": "start_block",
    "pollInterval": "poll_interval",
    "blockChunk": "block_chunk",
    "maxLogsPerRequest": "max_logs_per_request",
    "confirmations": "confirmations",
    "receiptTimeout": "receipt_timeout",
    "keeper": "keeper",
}


def load_config(path: str | os.PathLike[str]) -> AggregatorConfig:
    """Read an aggregator configuration file.

    Raises:
        ConfigurationError: the file is missing, is not JSON, or has an invalid field.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {source} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"configuration file {source} is unreadable or not JSON: {error}") from None
    return AggregatorConfig.from_json(document, source.resolve().parent)


def _mapping(document: Any, name: str, known: set[str]) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{name} must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigurationError(f"{name} has unknown keys {unknown}; known keys: {sorted(known)}")
    return document


def _path(value: Any, base: Path, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} {value!r} is invalid; pass an integer >= {minimum}")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} {value!r} is invalid; pass a positive number of seconds")
