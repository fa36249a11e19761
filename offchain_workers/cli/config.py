"""Settings resolution: command-line options, then environment variables, then `config.toml`.

| setting | option | environment variable | `config.toml` key | default |
| --- | --- | --- | --- | --- |
| data directory | `--data-dir` | `PMSR_DATA_DIR` | (none: the file lives in it) | `~/.pmsr` |
| JSON-RPC URL | `--rpc` | `PMSR_RPC_URL` | `rpc` | the chain of `pmsr chain up` (running or stopped), else `http://127.0.0.1:8545` |
| keystore | `--keystore` | `PMSR_KEYSTORE` | `keystore` | none |
| passphrase file | `--password-file` | (`PMSR_PASSWORD` contains the passphrase itself) | `password_file` | none |

`config.toml` is read with `tomllib`; an unknown key is an error, so a typo never goes unnoticed.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CliError

__all__ = [
    "DATA_DIR_ENV",
    "RPC_URL_ENV",
    "KEYSTORE_ENV",
    "PASSWORD_ENV",
    "DEFAULT_RPC_URL",
    "CONFIG_FILE_NAME",
    "Settings",
    "default_data_dir",
    "read_config_file",
    "resolve_settings",
    "node_record_path",
]

DATA_DIR_ENV = "PMSR_DATA_DIR"
RPC_URL_ENV = "PMSR_RPC_URL"
KEYSTORE_ENV = "PMSR_KEYSTORE"
PASSWORD_ENV = "PMSR_PASSWORD"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
CONFIG_FILE_NAME = "config.toml"

# Keys `config.toml` may set, with their expected TOML type.
_CONFIG_KEYS: dict[str, type] = {"rpc": str, "keystore": str, "password_file": str}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one command; each `*_source` names where its value came from."""

    data_dir: Path
    data_dir_source: str
    rpc_url: str
    rpc_source: str
    keystore: str | None
    keystore_source: str | None
    password_file: Path | None
    password_file_source: str | None
    dev_account: int | None
    json: bool
    debug: bool

    @property
    def keystore_dir(self) -> Path:
        return self.data_dir / "keystores"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME


def default_data_dir() -> Path:
    return Path.home() / ".pmsr"


def node_record_path(data_dir: Path) -> Path:
    """Return the file in which `pmsr chain up` records the Anvil it started (pid, port, URL)."""
    return data_dir / "chain" / "node.json"


def read_config_file(path: Path) -> dict[str, Any]:
    """Read `config.toml`; a missing file is an empty configuration."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise CliError(f"config file {path} is not valid TOML: {error}; fix or remove it") from None
    except OSError as error:
        raise CliError(f"cannot read config file {path}: {error.strerror}") from None
    for key, value in document.items():
        expected = _CONFIG_KEYS.get(key)
        if expected is None:
            raise CliError(
                f"unknown key {key!r} in config file {path}; known keys are {', '.join(sorted(_CONFIG_KEYS))}"
            )
        if not isinstance(value, expected):
            raise CliError(f"key {key!r} in config file {path} must be a {expected.__name__}, got {value!r}")
    return document


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _local_chain(data_dir: Path) -> tuple[str, str] | None:
    """Return the URL of the chain `pmsr chain up` runs, or last ran, from this data directory, with a source label."""
    url = _read_json(node_record_path(data_dir)).get("url")
    if isinstance(url, str):
        return url, "the chain of `pmsr chain up`"
    port = _read_json(data_dir / "chain" / "settings.json").get("port")
    if isinstance(port, int):
        return f"http://127.0.0.1:{port}", "the chain of `pmsr chain up`, which is stopped"
    return None


def resolve_settings(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting from parsed options (`--rpc` is `options["rpc"]`), `environ` and `config.toml`."""
    environ = os.environ if environ is None else environ

    if options.get("data_dir"):
        data_dir, data_dir_source = Path(options["data_dir"]), "--data-dir"
    elif environ.get(DATA_DIR_ENV):
        data_dir, data_dir_source = Path(environ[DATA_DIR_ENV]), DATA_DIR_ENV
    else:
        data_dir, data_dir_source = default_data_dir(), "default"
    data_dir = data_dir.expanduser()
    config_path = data_dir / CONFIG_FILE_NAME
    config = read_config_file(config_path)

    if options.get("rpc"):
        rpc_url, rpc_source = options["rpc"], "--rpc"
    elif environ.get(RPC_URL_ENV):
        rpc_url, rpc_source = environ[RPC_URL_ENV], RPC_URL_ENV
    elif "rpc" in config:
        rpc_url, rpc_source = config["rpc"], str(config_path)
    elif (local := _local_chain(data_dir)) is not None:
        rpc_url, rpc_source = local
    else:
        rpc_url, rpc_source = DEFAULT_RPC_URL, "default"

    keystore: str | None
    if options.get("keystore"):
        keystore, keystore_source = options["keystore"], "--keystore"
    elif environ.get(KEYSTORE_ENV):
        keystore, keystore_source = environ[KEYSTORE_ENV], KEYSTORE_ENV
    elif "keystore" in config:
        keystore, keystore_source = config["keystore"], str(config_path)
    else:
        keystore, keystore_source = None, None

    password_file: Path | None = None
    password_file_source: str | None = None
    if options.get("password_file"):
        password_file, password_file_source = Path(options["password_file"]).expanduser(), "--password-file"
    elif "password_file" in config:
        configured = Path(config["password_file"]).expanduser()
        password_file = configured if configured.is_absolute() else data_dir / configured
        password_file_source = str(config_path)

    dev_account = options.get("dev_account")
    return Settings(
        data_dir=data_dir,
        data_dir_source=data_dir_source,
        rpc_url=rpc_url,
        rpc_source=rpc_source,
        keystore=keystore,
        keystore_source=keystore_source,
        password_file=password_file,
        password_file_source=password_file_source,
        dev_account=int(dev_account) if dev_account is not None else None,
        json=bool(options.get("json")),
        debug=bool(options.get("debug")),
    )
