"""Throwaway accounts of a local market: generation, dev key files, funding and registration.

DEV KEYS ONLY. The key files written here contain private keys in plain hex, readable only by their
owner (mode 0600). The local runner creates thousands of accounts on a private Anvil chain and
starts services that must load them without a passphrase prompt. Never put a key that holds
real value in such a file: real owners and aggregators keep their keys in V3 keystores
(`pmsr_chain.keystore`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from pmsr_chain import (
    ContractCall,
    MarketClient,
    PendingTransaction,
    Receipt,
    SenderConfig,
    TransactionSender,
    nonce_manager,
    send_all,
    wait_for_all,
)
from pmsr_chain.errors import ConfigurationError, InvalidInputError, RpcError, TransactionError
from pmsr_chain.rpc import rpc_request
from pmsr_chain.types import OwnerPolicy

__all__ = [
    "DEV_KEYS_TYPE",
    "DevKey",
    "generate_accounts",
    "write_dev_keys",
    "read_dev_keys",
    "fund_accounts",
    "send_from_fresh_accounts",
    "dataset_commitment",
    "register_owners",
    "register_aggregators",
]

logger = logging.getLogger(__name__)

DEV_KEYS_TYPE = "pmsr-local-dev-keys"
_DEV_KEYS_VERSION = 1
_DEV_KEYS_NOTE = (
    "Throwaway keys of a local PMSR market on a private Anvil chain, in plain hex. "
    "Never fund these addresses on a public network; real keys belong in V3 keystores."
)

# Requests per JSON-RPC batch when funding accounts.
FUNDING_BATCH_SIZE = 500

# Signed transactions per JSON-RPC batch in `send_from_fresh_accounts`.
SEND_BATCH_SIZE = 200
_PRIORITY_FEE = 10**9

# Added to the measured gas of the first registration: later registrations write the same number of
# fresh storage slots, so they cost the same within a few hundred gas.
_REGISTRATION_GAS_MARGIN = 1.25


@dataclass(frozen=True)
class DevKey:
    """One account of a dev key file. Its repr shows the address only."""

    account: LocalAccount
    dataset_salt: bytes | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def __repr__(self) -> str:
        return f"DevKey(address={self.address})"


def generate_accounts(count: int) -> list[LocalAccount]:
    """Return `count` new accounts whose keys are 32 bytes from the operating system's CSPRNG."""
    if count < 0:
        raise InvalidInputError(f"account count {count} is invalid; pass a non-negative integer")
    return [Account.from_key(secrets.token_bytes(32)) for _ in range(count)]


def write_dev_keys(path: Path, keys: Sequence[DevKey]) -> Path:
    """Write `keys` to a JSON dev key file with mode 0600, atomically.

    Layout: `{"type": "pmsr-local-dev-keys", "version": 1, "note": ..., "keys": [{"address": ...,
    "privateKey": HEX, "datasetSalt": HEX or null}, ...]}`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "type": DEV_KEYS_TYPE,
        "version": _DEV_KEYS_VERSION,
        "note": _DEV_KEYS_NOTE,
        "keys": [
            {
                "address": key.address,
                "privateKey": key.account.key.hex(),
                "datasetSalt": key.dataset_salt.hex() if key.dataset_salt is not None else None,
            }
            for key in keys
        ],
    }
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates the file with mode 0600, so the keys are never readable by others.
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_dev_keys(path: Path) -> list[DevKey]:
    """Read a dev key file written by `write_dev_keys`.

    Raises:
        ConfigurationError: the file is missing, malformed, readable by other users, or an address
            does not match its key. The message names the file but never a key.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        document: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"dev key file {path} not found; the local runner writes it when it creates accounts") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"dev key file {path} is unreadable ({error.__class__.__name__})") from None
    if mode & 0o077:
        raise ConfigurationError(f"dev key file {path} has mode {oct(mode & 0o777)}; run chmod 600 on it")
    if not isinstance(document, dict) or document.get("type") != DEV_KEYS_TYPE or not isinstance(document.get("keys"), list):
        raise ConfigurationError(f"{path} is not a dev key file (type {DEV_KEYS_TYPE!r} with a keys list)")
    keys = []
    for index, entry in enumerate(document["keys"]):
        try:
            account = Account.from_key(bytes.fromhex(str(entry["privateKey"]).removeprefix("0x")))
            salt = bytes.fromhex(entry["datasetSalt"]) if entry.get("datasetSalt") else None
            declared = to_checksum_address(entry["address"])
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(f"entry {index} of dev key file {path} is malformed") from None
        if account.address != declared:
            raise ConfigurationError(f"entry {index} of dev key file {path} declares {declared} but its key belongs to another address")
        keys.append(DevKey(account, salt))
    return keys


def fund_accounts(w3: Web3, addresses: Sequence[str], balance_wei: int, *, batch_size: int = FUNDING_BATCH_SIZE) -> None:
    """Set every address's balance to `balance_wei` with `anvil_setBalance`, in JSON-RPC batches (Anvil only).

    Raises:
        RpcError: the node rejected a request; the message names the address.
    """
    if balance_wei < 0:
        raise InvalidInputError(f"balance {balance_wei} wei is invalid; pass a non-negative amount")
    for start in range(0, len(addresses), batch_size):
        chunk = [to_checksum_address(address) for address in addresses[start : start + batch_size]]
        requests = [("anvil_setBalance", [address, hex(balance_wei)]) for address in chunk]
        responses = w3.provider.make_batch_request(requests)  # type: ignore[arg-type]
        if not isinstance(responses, list):
            raise RpcError(f"batched anvil_setBalance failed: {responses.get('error')}", method="anvil_setBalance")
        for address, response in zip(chunk, responses):
            if response.get("error"):
                raise RpcError(
                    f"anvil_setBalance for {address} failed: {response['error']}; is the node Anvil?",
                    method="anvil_setBalance",
                )
    logger.info("funded %d accounts with %d wei each", len(addresses), balance_wei)


def dataset_commitment(data: bytes, salt: bytes) -> bytes:
    """Return keccak256(salt || data), the owner's on-chain commitment to its dataset file.

    The 32-byte random salt stops anyone from finding a small dataset (one worker's row) by hashing
    guesses. The owner keeps the salt to open the commitment later.
    """
    if len(salt) != 32:
        raise InvalidInputError(f"dataset salt has {len(salt)} bytes; it needs 32")
    return keccak(salt + data)


def _fee_fields(w3: Web3) -> dict[str, int]:
    block = rpc_request(w3, "eth_getBlockByNumber", ["latest", False])
    base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
    # Twice the base fee survives several blocks of base-fee rises while the batch is mined.
    return {"maxFeePerGas": 2 * base_fee + _PRIORITY_FEE, "maxPriorityFeePerGas": _PRIORITY_FEE}


def send_from_fresh_accounts(
    w3: Web3, items: Sequence[tuple[LocalAccount, ContractCall]], *, sender_config: SenderConfig | None = None
) -> list[Receipt]:
    """Send one transaction from each of `items`' accounts, all with nonce 0, in JSON-RPC batches.

    For accounts this module just generated, which have sent nothing yet: signing with nonce 0
    skips one nonce request per account, and a batch carries `SEND_BATCH_SIZE` transactions in one
    HTTP request. Every call needs its `gas` set. Receipts are collected by
    `pmsr_chain.wait_for_all`, which also raises for a reverted transaction.
    """
    if not items:
        return []
    chain_id = int(rpc_request(w3, "eth_chainId", []), 16)
    fees = _fee_fields(w3)
    pending: list[PendingTransaction] = []
    for start in range(0, len(items), SEND_BATCH_SIZE):
        chunk = items[start : start + SEND_BATCH_SIZE]
        signed = []
        for account, call in chunk:
            if call.gas is None or call.to is None:
                raise InvalidInputError(f"{call.function} needs a target and a preset gas to be sent from a fresh account")
            transaction = {
                "chainId": chain_id, "nonce": 0, "gas": call.gas, "value": call.value, "data": call.data,
                "to": call.to, "type": 2, **fees,
            }
            signed.append(bytes(Account.sign_transaction(transaction, account.key).raw_transaction))
        responses = w3.provider.make_batch_request(  # type: ignore[arg-type]
            [("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in signed]
        )
        if not isinstance(responses, list):
            raise RpcError(f"batched eth_sendRawTransaction failed: {responses.get('error')}", method="eth_sendRawTransaction")
        sent_at = time.monotonic()
        for (account, call), raw, response in zip(chunk, signed, responses):
            if response.get("error"):
                raise TransactionError(f"sending {call.function} from {account.address} failed: {response['error']}")
            sender = TransactionSender(w3, account, sender_config)
            pending.append(PendingTransaction(response["result"], 0, call, sender, raw, sent_at))
    receipts = wait_for_all(pending)
    # The process-wide nonce managers of these accounts may have read nonce 0 before; make them read again.
    for account, _ in items:
        manager = nonce_manager(w3, account.address)
        with manager.lock:
            manager.resync()
    return receipts


def register_owners(
    market: MarketClient,
    keys: Sequence[DevKey],
    policy: OwnerPolicy,
    commitments: Sequence[bytes],
    *,
    stake: int,
    sender_config: SenderConfig | None = None,
) -> list[Receipt]:
    """Register every owner with `policy` and `stake`, sending all transactions before waiting.

    The owners' accounts must be fresh (nonce 0). The first registration is estimated and mined
    alone; the rest reuse its gas with a margin, which skips one estimate per owner, and go out in
    JSON-RPC batches (see `send_from_fresh_accounts`).
    """
    if len(keys) != len(commitments):
        raise InvalidInputError(f"{len(keys)} owners but {len(commitments)} dataset commitments; pass one per owner")
    if not keys:
        return []
    first = TransactionSender(market.w3, keys[0].account, sender_config).send(market.calls.register_owner(policy, commitments[0], stake=stake))
    gas = math.ceil(first.gas_used * _REGISTRATION_GAS_MARGIN)
    pairs = []
    for key, commitment in zip(keys[1:], commitments[1:]):
        call = market.calls.register_owner(policy, commitment, stake=stake)
        pairs.append((key.account, replace(call, gas=gas)))
    receipts = [first, *send_from_fresh_accounts(market.w3, pairs, sender_config=sender_config)]
    logger.info("registered %d owners (gas %d each)", len(receipts), first.gas_used)
    return receipts


def register_aggregators(
    market: MarketClient,
    accounts: Sequence[LocalAccount],
    encryption_keys: Sequence[bytes],
    *,
    stake: int,
    sender_config: SenderConfig | None = None,
) -> list[Receipt]:
    """Register each aggregator with its X25519 public key and `stake`, all transactions in one batch."""
    if len(accounts) != len(encryption_keys):
        raise InvalidInputError(f"{len(accounts)} aggregators but {len(encryption_keys)} keys; pass one key each")
    pairs = [
        (TransactionSender(market.w3, account, sender_config), market.calls.register_aggregator(key, stake=stake))
        for account, key in zip(accounts, encryption_keys)
    ]
    receipts = send_all(pairs)
    logger.info("registered %d aggregators", len(receipts))
    return receipts
