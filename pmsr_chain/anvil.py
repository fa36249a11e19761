"""Embedded Anvil node for development and tests, and the Anvil-only RPC helpers.

`AnvilNode` starts Anvil on a free 127.0.0.1 port, waits until it answers JSON-RPC, and stops it
on `stop()`, on leaving a `with` block, or at interpreter exit. The helpers below (`set_balance`,
`increase_time`, `mine`, `snapshot`, `revert_to_snapshot`) use Anvil's development methods
(`anvil_setBalance`, `evm_increaseTime`, `evm_mine`, `evm_snapshot`, `evm_revert`), which public
networks do not offer.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ._paths import find_anvil
from ._process import exit_with_parent_hook, stop_signals_held
from .errors import AnvilError, InvalidInputError
from .rpc import make_web3, rpc_request
from .transactions import forget_endpoint

__all__ = [
    "DEFAULT_MNEMONIC",
    "DEFAULT_CHAIN_ID",
    "AnvilConfig",
    "AnvilNode",
    "dev_accounts",
    "set_balance",
    "new_funded_account",
    "increase_time",
    "mine",
    "snapshot",
    "revert_to_snapshot",
    "latest_timestamp",
]

logger = logging.getLogger(__name__)

# Anvil's (and Hardhat's) well-known development mnemonic. Its keys are public: use them only on
# local development chains.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337
DEFAULT_DERIVATION_PREFIX = "m/44'/60'/0'/0/"
ETHER = 10**18

_hd_features_lock = threading.Lock()


def _enable_hd_wallet() -> None:
    # eth-account keeps mnemonic derivation behind an explicit opt-in flag.
    with _hd_features_lock:
        Account.enable_unaudited_hdwallet_features()


def dev_accounts(count: int, mnemonic: str = DEFAULT_MNEMONIC) -> list[LocalAccount]:
    """Derive the first `count` accounts of `mnemonic` on the path Anvil uses (`m/44'/60'/0'/0/i`)."""
    if count < 0:
        raise InvalidInputError(f"account count must be non-negative, got {count}")
    _enable_hd_wallet()
    return [Account.from_mnemonic(mnemonic, account_path=f"{DEFAULT_DERIVATION_PREFIX}{i}") for i in range(count)]


@dataclass(frozen=True)
class AnvilConfig:
    """Options for an embedded Anvil node.

    `block_time` of `None` mines one block per transaction as it arrives (instant mining);
    a number of seconds mines on that interval instead. `state_path` loads the chain from that file
    if it exists and writes the chain back to it when the node stops (Anvil's `--state`).
    """

    port: int | None = None
    chain_id: int = DEFAULT_CHAIN_ID
    accounts: int = 10
    balance_ether: int = 10_000
    mnemonic: str = DEFAULT_MNEMONIC
    block_time: float | None = None
    state_path: Path | None = None
    gas_limit: int | None = None
    code_size_limit: int | None = None
    extra_args: tuple[str, ...] = ()
    startup_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise InvalidInputError(f"port must be in 1..65535, got {self.port}")
        if self.chain_id <= 0:
            raise InvalidInputError(f"chain_id must be positive, got {self.chain_id}")
        if self.accounts < 0:
            raise InvalidInputError(f"accounts must be non-negative, got {self.accounts}")
        if self.block_time is not None and self.block_time <= 0:
            raise InvalidInputError(f"block_time must be positive seconds or None for instant mining, got {self.block_time}")

    def command(self, anvil_path: Path, port: int) -> list[str]:
        command = [
            str(anvil_path),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_ether),
            "--mnemonic", self.mnemonic,
        ]
        if self.block_time is not None:
            command += ["--block-time", _format_seconds(self.block_time)]
        if self.state_path is not None:
            command += ["--state", str(self.state_path)]
        if self.gas_limit is not None:
            command += ["--gas-limit", str(self.gas_limit)]
        if self.code_size_limit is not None:
            command += ["--code-size-limit", str(self.code_size_limit)]
        command += list(self.extra_args)
        return command


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Strong references: a node dropped without stop() must still be stopped at exit.
_running_nodes: set[AnvilNode] = set()


@atexit.register
def _stop_running_nodes() -> None:
    for node in list(_running_nodes):
        node.stop()


class AnvilNode:
    """One Anvil process bound to 127.0.0.1.

    Use as a context manager, or call `start()` and `stop()`. Nodes still running at interpreter
    exit are stopped by an `atexit` hook, which lets Anvil write its `--state` file.
    """

    def __init__(self, config: AnvilConfig | None = None, *, log_path: Path | None = None) -> None:
        self.config = config or AnvilConfig()
        self.port: int | None = None
        self._log_path = log_path
        self._log_file: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._web3: Web3 | None = None
        self._accounts: list[LocalAccount] | None = None

    # ----------------------------------------------------------------------------------------------
    # Life cycle

    def __enter__(self) -> AnvilNode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("the Anvil node is not started; call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> AnvilNode:
        """Start Anvil and return once it answers `eth_chainId` with the configured chain id."""
        if self.running:
            return self
        anvil_path = find_anvil()
        # A port picked by probing can be taken by another process before Anvil binds it; retry.
        attempts = 1 if self.config.port is not None else 5
        last_error: AnvilError | None = None
        for _ in range(attempts):
            port = self.config.port or _free_port()
            try:
                self._launch(anvil_path, port)
                return self
            except AnvilError as error:
                last_error = error
                self._terminate()
        assert last_error is not None
        raise last_error

    def _launch(self, anvil_path: Path, port: int) -> None:
        command = self.config.command(anvil_path, port)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "ab")
        output = self._log_file if self._log_file is not None else subprocess.DEVNULL
        logger.info("starting anvil on 127.0.0.1:%d (chain id %d)", port, self.config.chain_id)
        with stop_signals_held():
            self._process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=exit_with_parent_hook(),
            )
        self.port = port
        self._web3 = None
        self._wait_until_ready()
        _running_nodes.add(self)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AnvilError(
                    f"anvil exited with status {self._process.returncode} while starting on port {self.port}"
                    + (f"; see {self._log_path}" if self._log_path else "; pass log_path to see its output")
                )
            try:
                with socket.create_connection(("127.0.0.1", int(self.port or 0)), timeout=0.2):
                    pass
                chain_id = int(rpc_request(self.web3, "eth_chainId", [], retries=0), 16)
            except Exception:  # noqa: BLE001 - any failure before the first answer means "not ready yet"
                time.sleep(0.05)
                continue
            if chain_id != self.config.chain_id:
                raise AnvilError(
                    f"the node on port {self.port} reports chain id {chain_id}, expected {self.config.chain_id}; "
                    "another process may hold the port"
                )
            logger.info("anvil answered on %s", self.url)
            return
        raise AnvilError(f"anvil did not answer on {self.url} within {self.config.startup_timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Anvil with SIGINT (it writes `--state` then), and kill it if it does not exit in time."""
        if self._process is None:
            return
        if self._process.poll() is None:
            logger.info("stopping anvil on %s", self.url)
            try:
                self._process.send_signal(signal.SIGINT)
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("anvil on %s ignored SIGINT for %.0f s; killing it", self.url, timeout)
                self._process.kill()
                self._process.wait(timeout=timeout)
        self._terminate()

    def _terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self.port is not None:
            forget_endpoint(self.url)
        self._process = None
        _running_nodes.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ----------------------------------------------------------------------------------------------
    # Access

    @property
    def web3(self) -> Web3:
        if self._web3 is None:
            self._web3 = make_web3(self.url)
        return self._web3

    @property
    def accounts(self) -> list[LocalAccount]:
        """The funded development accounts that Anvil created from the configured mnemonic."""
        if self._accounts is None:
            self._accounts = dev_accounts(self.config.accounts, self.config.mnemonic)
        return self._accounts

    def new_funded_account(self, balance_wei: int = 100 * ETHER) -> LocalAccount:
        """Create a fresh random account and fund it with `anvil_setBalance` (Anvil only)."""
        return new_funded_account(self.web3, balance_wei)

    def set_balance(self, address: str, balance_wei: int) -> None:
        set_balance(self.web3, address, balance_wei)

    def increase_time(self, seconds: int, *, mine_block: bool = True) -> int:
        return increase_time(self.web3, seconds, mine_block=mine_block)

    def mine(self, blocks: int = 1) -> None:
        mine(self.web3, blocks)

    def snapshot(self) -> str:
        return snapshot(self.web3)

    def revert_to_snapshot(self, snapshot_id: str) -> None:
        revert_to_snapshot(self.web3, snapshot_id)


# --------------------------------------------------------------------------------------------------
# Development RPC helpers (Anvil only)


def set_balance(w3: Web3, address: str, balance_wei: int) -> None:
    """Set `address`'s balance with `anvil_setBalance`. Works on Anvil only."""
    if balance_wei < 0:
        raise InvalidInputError(f"balance must be non-negative wei, got {balance_wei}")
    rpc_request(w3, "anvil_setBalance", [Web3.to_checksum_address(address), hex(balance_wei)])


def new_funded_account(w3: Web3, balance_wei: int = 100 * ETHER) -> LocalAccount:
    """Create an account from 32 CSPRNG bytes and fund it with `anvil_setBalance`. Works on Anvil only."""
    account: LocalAccount = Account.from_key(secrets.token_bytes(32))
    set_balance(w3, account.address, balance_wei)
    return account


def increase_time(w3: Web3, seconds: int, *, mine_block: bool = True) -> int:
    """Move the chain clock forward by `seconds` (`evm_increaseTime`), then mine a block unless told not to.

    Returns the latest block's timestamp afterwards.
    """
    if seconds < 0:
        raise InvalidInputError(f"seconds must be non-negative, got {seconds}")
    rpc_request(w3, "evm_increaseTime", [int(seconds)])
    if mine_block:
        rpc_request(w3, "evm_mine", [])
    return latest_timestamp(w3)


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine `blocks` empty blocks (`evm_mine`)."""
    for _ in range(blocks):
        rpc_request(w3, "evm_mine", [])


def snapshot(w3: Web3) -> str:
    """Record the chain state (`evm_snapshot`) and return the snapshot id for `revert_to_snapshot`."""
    return str(rpc_request(w3, "evm_snapshot", []))


def revert_to_snapshot(w3: Web3, snapshot_id: str) -> None:
    """Restore a snapshot (`evm_revert`).

    Account nonces go back too: call `reset_nonces()` from `pmsr_chain.transactions` afterwards so
    the local nonce managers read them from the chain again.
    """
    if not rpc_request(w3, "evm_revert", [snapshot_id]):
        raise AnvilError(f"evm_revert rejected snapshot {snapshot_id}; a snapshot can be restored only once")


def latest_timestamp(w3: Web3) -> int:
    block: Any = rpc_request(w3, "eth_getBlockByNumber", ["latest", False])
    return int(block["timestamp"], 16)
