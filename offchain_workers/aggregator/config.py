"""Configuration of an aggregator service, read from a JSON file.

A configuration file looks like this (relative paths are resolved against the file's directory):

    {
      "rpc_url": "http://127.0.0.1:8545",
      "market": {"manifest": "deployments/31337.json"},
      "account": {"keystore": "keys/aggregator.json", "passphrase": {"env": "AGGREGATOR_PASSPHRASE"}},
      "encryption_key": {"path": "keys/aggregator-x25519.json", "passphrase": {"file": "secret.txt"}},
      "database": "aggregator.sqlite",
      "policy": {"min_fee_wei": 0, "max_output_length": 512, "max_concurrent_queries": 8},
      "poll_interval": 1.0,
      "block_chunk": 1000,
      "confirmations": 0
    }

`market` is either `{"manifest": PATH}` (a deployment manifest, whose block is the first block
read) or `{"address": ADDRESS, "start_block": N}`. `account` is either a V3 keystore with a
passphrase, or `{"dev_keys": PATH, "index": I}`, an entry of the local runner's plain-hex dev key
file, which suits only throwaway accounts on a private Anvil chain. A passphrase is
`{"env": NAME}`, `{"file": PATH}` or `{"value": TEXT}`; `value` puts the secret in the config
file itself and suits only throwaway local set-ups.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from pmsr_chain.errors import ConfigurationError
from pmsr_chain.keystore import unlock_keystore

from ..keys import AggregatorKeyPair
from .policy import AcceptancePolicy

__all__ = ["SecretSource", "AccountSource", "AggregatorConfig", "load_config"]

# Secret files larger than this are not passphrase files.
_MAX_SECRET_FILE_BYTES = 4096


@dataclass(frozen=True)
class SecretSource:
    """Where a passphrase comes from: an environment variable, a file, or the literal `value`.

    The repr names the source, never the secret.
    """

    env: str | None = None
    file: Path | None = None
    value: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        given = [name for name in ("env", "file", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigurationError(
                f"a passphrase source needs exactly one of env, file or value, got {given or 'none'}"
            )

    @classmethod
    def from_json(cls, document: Any, base: Path, field_name: str) -> SecretSource:
        if not isinstance(document, Mapping):
            raise ConfigurationError(
                f"{field_name} must be an object such as {{\"env\": \"NAME\"}} or {{\"file\": \"PATH\"}}"
            )
        unknown = set(document) - {"env", "file", "value"}
        if unknown:
            raise ConfigurationError(f"{field_name} has unknown keys {sorted(unknown)}; use env, file or value")
        for key in ("env", "file", "value"):
            if key in document and not isinstance(document[key], str):
                raise ConfigurationError(f"{field_name}.{key} must be a string")
        file = document.get("file")
        return cls(
            env=document.get("env"),
            file=_resolve(base, file) if file is not None else None,
            value=document.get("value"),
        )

    def to_json(self) -> dict[str, str]:
        if self.env is not None:
            return {"env": self.env}
        if self.file is not None:
            return {"file": str(self.file)}
        return {"value": str(self.value)}

    def read(self) -> str:
        """Return the passphrase.

        Raises:
            ConfigurationError: the variable is unset or the file is missing or unreadable.
        """
        if self.env is not None:
            secret = os.environ.get(self.env)
            if secret is None:
                raise ConfigurationError(f"environment variable {self.env} is not set; export the passphrase in it")
            return secret
        if self.file is not None:
            try:
                data = self.file.read_bytes()[: _MAX_SECRET_FILE_BYTES + 1]
            except OSError as error:
                raise ConfigurationError(f"cannot read passphrase file {self.file}: {error.strerror}") from None
            if len(data) > _MAX_SECRET_FILE_BYTES:
                raise ConfigurationError(f"passphrase file {self.file} is larger than {_MAX_SECRET_FILE_BYTES} bytes")
            # A trailing newline is what editors and `echo` add; it is not part of the passphrase.
            return data.decode("utf-8").rstrip("\r\n")
        assert self.value is not None
        return self.value


@dataclass(frozen=True)
class AccountSource:
    """Where the aggregator's Ethereum key comes from: a V3 keystore, or an entry of a dev key file."""

    keystore: Path | None = None
    passphrase: SecretSource | None = None
    dev_keys: Path | None = None
    index: int = 0

    def __post_init__(self) -> None:
        if (self.keystore is None) == (self.dev_keys is None):
            raise ConfigurationError("account needs exactly one of keystore (with passphrase) or dev_keys")
        if self.keystore is not None and self.passphrase is None:
            raise ConfigurationError(f"account keystore {self.keystore} needs a passphrase source")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ConfigurationError(f"account index {self.index!r} is invalid; pass a non-negative integer")

    @classmethod
    def from_json(cls, document: Any, base: Path) -> AccountSource:
        if not isinstance(document, Mapping):
            raise ConfigurationError("account must be an object with keystore and passphrase, or dev_keys and index")
        unknown = set(document) - {"keystore", "passphrase", "dev_keys", "index"}
        if unknown:
            raise ConfigurationError(f"account has unknown keys {sorted(unknown)}")
        keystore = document.get("keystore")
        dev_keys = document.get("dev_keys")
        passphrase = document.get("passphrase")
        return cls(
            keystore=_resolve(base, _string(keystore, "account.keystore")) if keystore is not None else None,
            passphrase=SecretSource.from_json(passphrase, base, "account.passphrase") if passphrase is not None else None,
            dev_keys=_resolve(base, _string(dev_keys, "account.dev_keys")) if dev_keys is not None else None,
            index=document.get("index", 0),
        )

    def to_json(self) -> dict[str, Any]:
        if self.keystore is not None:
            assert self.passphrase is not None
            return {"keystore": str(self.keystore), "passphrase": self.passphrase.to_json()}
        return {"dev_keys": str(self.dev_keys), "index": self.index}

    def load(self) -> LocalAccount:
        """Unlock the account.

        Raises:
            ConfigurationError: the file is missing or malformed, or the index is out of range.
            WrongPassphraseError: the passphrase does not unlock the keystore.
        """
        if self.keystore is not None:
            assert self.passphrase is not None
            return unlock_keystore(self.keystore, self.passphrase.read())
        # Imported here because only local set-ups use dev key files.
        from ..local.accounts import read_dev_keys

        assert self.dev_keys is not None
        keys = read_dev_keys(self.dev_keys)
        if self.index >= len(keys):
            raise ConfigurationError(
                f"account index {self.index} is out of range: dev key file {self.dev_keys} holds {len(keys)} keys"
            )
        return keys[self.index].account


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything an aggregator process needs to run.

    `poll_interval` is in seconds. `block_chunk` is the largest block range read with one
    `eth_getLogs` request; the service shrinks the range while a range returns more than
    `max_logs_per_request` logs, so memory stays bounded. `confirmations` is the number of blocks
    behind the latest that events are read up to (0 on Anvil, several on a public chain).
    """

    rpc_url: str
    market_address: str
    account: AccountSource
    key_file: Path
    key_passphrase: SecretSource
    database: Path
    start_block: int = 0
    policy: AcceptancePolicy = field(default_factory=AcceptancePolicy)
    poll_interval: float = 1.0
    block_chunk: int = 1000
    max_logs_per_request: int = 2000
    confirmations: int = 0
    receipt_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not isinstance(self.rpc_url, str) or not self.rpc_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"rpc_url {self.rpc_url!r} is invalid; pass an http:// or https:// JSON-RPC URL")
        if not isinstance(self.market_address, str) or not is_address(self.market_address):
            raise ConfigurationError(f"market address {self.market_address!r} is not an address")
        object.__setattr__(self, "market_address", to_checksum_address(self.market_address))
        _check_int("start_block", self.start_block, 0)
        _check_positive_number("poll_interval", self.poll_interval)
        _check_int("block_chunk", self.block_chunk, 1)
        _check_int("max_logs_per_request", self.max_logs_per_request, 1)
        _check_int("confirmations", self.confirmations, 0)
        _check_positive_number("receipt_timeout", self.receipt_timeout)

    def load_account(self) -> LocalAccount:
        return self.account.load()

    def load_key_pair(self) -> AggregatorKeyPair:
        """Decrypt the X25519 key file.

        Raises:
            KeyFileError: the file is missing or malformed, or the passphrase is wrong.
        """
        return AggregatorKeyPair.load(self.key_file, self.key_passphrase.read())

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form that `load_config` reads, with absolute paths."""
        return {
            "rpc_url": self.rpc_url,
            "market": {"address": self.market_address, "start_block": self.start_block},
            "account": self.account.to_json(),
            "encryption_key": {"path": str(self.key_file), "passphrase": self.key_passphrase.to_json()},
            "database": str(self.database),
            "policy": self.policy.to_json(),
            "poll_interval": self.poll_interval,
            "block_chunk": self.block_chunk,
            "max_logs_per_request": self.max_logs_per_request,
            "confirmations": self.confirmations,
            "receipt_timeout": self.receipt_timeout,
        }

    def write(self, path: Path) -> Path:
        """Write the configuration to `path` as JSON, with mode 0600 because it may name secrets."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        return path

    @classmethod
    def from_json(cls, document: Any, base: Path) -> AggregatorConfig:
        """Build a configuration from a parsed JSON object; relative paths are resolved against `base`.

        Raises:
            ConfigurationError: a missing, unknown or invalid field, named in the message.
        """
        if not isinstance(document, Mapping):
            raise ConfigurationError("an aggregator configuration must be a JSON object")
        known = {
            "rpc_url", "market", "account", "encryption_key", "database", "policy", "poll_interval",
            "block_chunk", "max_logs_per_request", "confirmations", "receipt_timeout",
        }
        unknown = set(document) - known
        if unknown:
            raise ConfigurationError(f"unknown configuration keys {sorted(unknown)}; known keys: {sorted(known)}")
        for required in ("rpc_url", "market", "account", "encryption_key", "database"):
            if required not in document:
                raise ConfigurationError(f"configuration key {required!r} is missing")

        market_address, start_block = _read_market(document["market"], base)
        encryption_key = document["encryption_key"]
        if not isinstance(encryption_key, Mapping) or set(encryption_key) != {"path", "passphrase"}:
            raise ConfigurationError("encryption_key must be an object with exactly path and passphrase")
        optional = {
            name: document[name]
            for name in ("poll_interval", "block_chunk", "max_logs_per_request", "confirmations", "receipt_timeout")
            if name in document
        }
        return cls(
            rpc_url=document["rpc_url"],
            market_address=market_address,
            start_block=start_block,
            account=AccountSource.from_json(document["account"], base),
            key_file=_resolve(base, _string(encryption_key["path"], "encryption_key.path")),
            key_passphrase=SecretSource.from_json(encryption_key["passphrase"], base, "encryption_key.passphrase"),
            database=_resolve(base, _string(document["database"], "database")),
            policy=AcceptancePolicy.from_json(document.get("policy", {})),
            **optional,
        )


def load_config(path: str | os.PathLike[str]) -> AggregatorConfig:
    """Read an aggregator configuration file.

    Raises:
        ConfigurationError: the file is missing, is not JSON, or holds an invalid field.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {source} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"configuration file {source} is unreadable or not JSON: {error}") from None
    return AggregatorConfig.from_json(document, source.resolve().parent)


def _read_market(document: Any, base: Path) -> tuple[str, int]:
    if not isinstance(document, Mapping):
        raise ConfigurationError("market must be {\"manifest\": PATH} or {\"address\": ADDRESS, \"start_block\": N}")
    if "manifest" in document:
        if set(document) != {"manifest"}:
            raise ConfigurationError("market with a manifest takes no other keys; the manifest gives the address and block")
        manifest_path = _resolve(base, _string(document["manifest"], "market.manifest"))
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            return to_checksum_address(manifest["address"]), int(manifest["block"])
        except FileNotFoundError:
            raise ConfigurationError(f"deployment manifest {manifest_path} not found; deploy the market first") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(f"deployment manifest {manifest_path} is malformed: {error!r}") from None
    unknown = set(document) - {"address", "start_block"}
    if unknown or "address" not in document:
        raise ConfigurationError(f"market needs address (and optionally start_block), got keys {sorted(document)}")
    return _string(document["address"], "market.address"), document.get("start_block", 0)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} {value!r} is invalid; pass an integer >= {minimum}")


def _check_positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} {value!r} is invalid; pass a positive number of seconds")
