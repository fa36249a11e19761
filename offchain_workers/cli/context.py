"""What a command works with: the node, the market from the manifest, the signing account.

Everything is resolved lazily, so a command that needs no chain (`pmsr wallet new`) never connects,
and one that only reads never prompts for a passphrase. `Context.send` checks a transaction before
signing it: a call that would revert or that the account cannot pay for fails with one line and
sends nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from web3 import Web3

from pmsr_chain._paths import repository_root
from pmsr_chain.anvil import dev_accounts, latest_timestamp
from pmsr_chain.client import MarketClient
from pmsr_chain.compiler import ContractArtifact, load_artifact
from pmsr_chain.deployment import Deployment, load_manifest, manifest_path, market_client, verify_deployment
from pmsr_chain.errors import ManifestMismatchError, RpcError, TransactionError
from pmsr_chain.keystore import find_keystore, unlock_keystore
from pmsr_chain.rpc import make_web3, rpc_request
from pmsr_chain.transactions import ContractCall, Receipt, TransactionSender
from pmsr_chain.units import format_ether

from .config import PASSWORD_ENV, Settings
from .errors import CliError
from .output import Output

__all__ = ["Context", "parse_address", "read_secret_file"]

logger = logging.getLogger(__name__)

# Wall-clock limit of one JSON-RPC request from the command line.
RPC_TIMEOUT_SECONDS = 30.0


def parse_address(text: str, what: str = "address") -> str:
    """Return `text` as a checksummed address; reject bad hex and a mixed-case checksum that does not match."""
    candidate = text.strip()
    if not candidate.startswith(("0x", "0X")) or not is_hex_address(candidate):
        raise CliError(f"invalid {what} {text!r}: expected 0x followed by 40 hexadecimal digits")
    digits = candidate[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(candidate):
        raise CliError(
            f"invalid {what} {candidate}: its mixed-case EIP-55 checksum does not match; "
            "check the address for a typo and copy it again"
        )
    return to_checksum_address(candidate)


def read_secret_file(path: Path, what: str) -> str:
    """Read a passphrase or key file, dropping one trailing line break."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} file {path} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {what} file {path}: {error}") from None
    return text.removesuffix("\n").removesuffix("\r")


class Context:
    """Lazily resolved resources of one command invocation."""

    def __init__(self, settings: Settings, output: Output, *, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.output = output
        self.environ = os.environ if environ is None else environ
        self._passphrase: str | None = None

    # ----------------------------------------------------------------------------------------------
    # Node

    @cached_property
    def web3(self) -> Web3:
        url = self.settings.rpc_url
        if not url.startswith(("http://", "https://")):
            raise CliError(
                f"invalid JSON-RPC URL {url!r} (from {self.settings.rpc_source}): only http:// and https:// URLs are supported"
            )
        w3 = make_web3(url, timeout=RPC_TIMEOUT_SECONDS)
        try:
            self._chain_id = int(rpc_request(w3, "eth_chainId", [], retries=0), 16)
        except RpcError as error:
            reason = "connection refused" if "refused" in str(error).lower() else str(error).split(";")[0]
            raise CliError(
                f"cannot reach the JSON-RPC node at {url} (from {self.settings.rpc_source}): {reason}; "
                "start a local chain with `pmsr chain up`, or pass --rpc URL"
            ) from None
        return w3

    @property
    def chain_id(self) -> int:
        self.web3  # noqa: B018 - connecting reads the chain id
        return self._chain_id

    def chain_time(self) -> int:
        """Return the latest block's timestamp, the clock the contract checks deadlines against."""
        return latest_timestamp(self.web3)

    def balance(self, address: str) -> int:
        return int(rpc_request(self.web3, "eth_getBalance", [address, "latest"]), 16)

    def nonce(self, address: str) -> int:
        return int(rpc_request(self.web3, "eth_getTransactionCount", [address, "latest"]), 16)

    def is_anvil(self) -> bool:
        try:
            version = str(rpc_request(self.web3, "web3_clientVersion", [], retries=0))
        except RpcError:
            return False
        return "anvil" in version.lower()

    # ----------------------------------------------------------------------------------------------
    # Market

    @property
    def deployments_dir(self) -> Path:
        return self.settings.data_dir / "deployments"

    @cached_property
    def deployment(self) -> Deployment:
        """The market on the connected chain, from its manifest, verified against the chain."""
        chain_id = self.chain_id
        url = self.settings.rpc_url
        path = manifest_path(self.settings.data_dir, chain_id)
        if not path.is_file():
            others = sorted(p.stem for p in self.deployments_dir.glob("*.json") if p.stem != str(chain_id))
            if others:
                raise CliError(
                    f"no market deployed on chain {chain_id} (the node at {url}): {self.deployments_dir} has "
                    f"manifests only for chain {', '.join(others)}; pass the --rpc of that chain, or run `pmsr deploy`"
                )
            raise CliError(
                f"no market deployed on chain {chain_id} (the node at {url}): no manifest at {path}; "
                "run `pmsr deploy`, or pass the --data-dir that holds the manifest"
            )
        deployment = load_manifest(self.settings.data_dir, chain_id)
        try:
            verify_deployment(self.web3, deployment, self.artifact(deployment))
        except ManifestMismatchError as error:
            raise CliError(f"deployment manifest {path} does not match the node at {url}: {error}") from None
        return deployment

    @cached_property
    def market(self) -> MarketClient:
        """A client of the market that reads, and sends from the selected account once one is unlocked."""
        return market_client(self.web3, self.deployment, artifact=self.artifact(self.deployment))

    def artifact(self, deployment: Deployment) -> ContractArtifact:
        """Return the compiled artifact of the deployed contract.

        The stored artifact is used when its hash is the manifest's: `load_artifact` would first run
        the Node.js solc shim to learn the compiler version, about a second per command. The
        manifest's artifact hash and `verify_deployment`'s runtime-code comparison still tie the ABI
        to the code on chain.
        """
        path = repository_root() / "build" / "artifacts" / f"{deployment.contract}.json"
        try:
            stored = ContractArtifact.from_json(json.loads(path.read_text()), path)
        except (OSError, ValueError, KeyError, TypeError):
            stored = None
        if stored is not None and stored.artifact_hash == deployment.artifact_hash:
            return stored
        return load_artifact(deployment.contract)

    def signed_market(self) -> MarketClient:
        return self.market.with_sender(self.sender)

    # ----------------------------------------------------------------------------------------------
    # Accounts

    def passphrase(self, target: str, *, confirm: bool = False) -> str:
        """Return the passphrase for `target`: `--password-file`, then `PMSR_PASSWORD`, then a prompt.

        The passphrase is kept in memory for the rest of the command (an aggregator's key file uses
        the same one as its account), and never printed or logged.
        """
        if self._passphrase is not None:
            return self._passphrase
        settings = self.settings
        if settings.password_file is not None and settings.password_file_source == "--password-file":
            secret = read_secret_file(settings.password_file, "passphrase")
        elif self.environ.get(PASSWORD_ENV) is not None:
            secret = self.environ[PASSWORD_ENV]
        elif settings.password_file is not None:
            secret = read_secret_file(settings.password_file, "passphrase")
        elif sys.stdin is not None and sys.stdin.isatty():
            secret = getpass.getpass(f"Passphrase for {target}: ")
            if confirm and getpass.getpass("Repeat the passphrase: ") != secret:
                raise CliError("the two passphrases differ; run the command again")
        else:
            raise CliError(
                f"no passphrase for {target}: set {PASSWORD_ENV}, pass --password-file FILE, or run in a terminal"
            )
        self._passphrase = secret
        return secret

    def keystore_path(self) -> Path:
        name = self.settings.keystore
        if name is None:
            raise CliError(
                "no account selected: pass --keystore NAME (see `pmsr wallet list`), set PMSR_KEYSTORE, "
                "or on a local Anvil chain pass --dev-account N"
            )
        return find_keystore(self.settings.keystore_dir, name)

    @cached_property
    def account(self) -> LocalAccount:
        """The signing account: an Anvil development account or an unlocked keystore."""
        settings = self.settings
        if settings.dev_account is not None:
            if settings.keystore is not None and settings.keystore_source == "--keystore":
                raise CliError("pass either --keystore or --dev-account, not both")
            if settings.dev_account < 0:
                raise CliError(f"invalid --dev-account {settings.dev_account}: use an index 0, 1, 2, ...")
            if not self.is_anvil():
                raise CliError(
                    f"--dev-account signs with Anvil's public test keys, but the node at {settings.rpc_url} is not "
                    "Anvil; pass --keystore NAME"
                )
            return dev_accounts(settings.dev_account + 1)[settings.dev_account]
        path = self.keystore_path()
        return unlock_keystore(path, self.passphrase(f"keystore {path.name}"))

    @cached_property
    def sender(self) -> TransactionSender:
        return TransactionSender(self.web3, self.account)

    @property
    def address(self) -> str:
        return to_checksum_address(self.account.address)

    def _max_fee_per_gas(self) -> int:
        block: Any = rpc_request(self.web3, "eth_getBlockByNumber", ["latest", False])
        fees = self.sender.config.fees
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return int(rpc_request(self.web3, "eth_gasPrice", []), 16)
        return int(base_fee, 16) * fees.base_fee_multiplier + fees.priority_fee_wei

    def require_funds(self, value: int, action: str, *, gas_fee: int | None = None) -> None:
        """Raise unless the account has `value` wei plus `gas_fee`. The message gives the balance and the amount needed."""
        address = self.address
        balance = self.balance(address)
        needed = value + (gas_fee or 0)
        if balance >= needed and (gas_fee is not None or balance > value or value == 0):
            return
        if gas_fee is None:
            need = f"{format_ether(value)} plus gas"
        elif value:
            need = f"{format_ether(needed)} ({format_ether(value)} plus up to {format_ether(gas_fee)} for gas)"
        else:
            need = f"up to {format_ether(gas_fee)} for gas"
        raise CliError(
            f"insufficient funds: account {address} has {format_ether(balance)} but {action} needs {need}; "
            f"fund it with `pmsr wallet fund {address} AMOUNT`"
        )

    def check(self, call: ContractCall, action: str) -> None:
        """Raise unless `call` would succeed from the selected account and the account can pay for it.

        A call that would revert raises `ContractRevertError` (decoded); a shortfall raises a
        `CliError` with the balance and the amount needed. Nothing is signed or sent.
        """
        sender = self.sender
        self.require_funds(call.value, action)
        try:
            gas = sender.estimate_gas(call)
        except TransactionError as error:
            if "insufficient funds" in str(error).lower():
                self.require_funds(call.value + 1, action)
            raise
        gas_with_margin = int(gas * (1 + sender.config.gas_margin)) + 1
        self.require_funds(call.value, action, gas_fee=gas_with_margin * self._max_fee_per_gas())

    def send(self, call: ContractCall, action: str) -> Receipt:
        """Check (see `check`) and send one transaction from the selected account; wait for its receipt."""
        self.check(call, action)
        logger.info("sending %s from %s", call.function, self.address)
        return self.sender.send(call)

    # ----------------------------------------------------------------------------------------------
    # Long-running commands

    @contextlib.contextmanager
    def service_logging(self) -> Iterator[None]:
        """Log the services' decisions (INFO) to stderr while a `run` command runs."""
        root = logging.getLogger()
        previous = root.level
        if not self.settings.debug:
            root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.setLevel(previous)

    @contextlib.contextmanager
    def stop_on_signals(self) -> Iterator[threading.Event]:
        """Yield an event that SIGINT or SIGTERM sets, so a service stops after its current step."""
        stop = threading.Event()
        if threading.current_thread() is not threading.main_thread():
            yield stop
            return

        def request_stop(signal_number: int, _frame: object) -> None:
            logger.info("received %s; stopping after the current step", signal.Signals(signal_number).name)
            stop.set()

        previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield stop
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    @contextlib.contextmanager
    def exclusive_lock(self, path: Path, what: str) -> Iterator[None]:
        """Hold an exclusive lock on `path`, so two processes never run the same service for one account."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CliError(f"{what} is already running (lock {path}); stop the other process first") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
