"""Send transactions signed with local keys: nonces, EIP-1559 fees, gas estimation, receipts.

A `TransactionSender` signs with an eth-account key (libsecp256k1 through coincurve) and sends
raw transactions. Each call is first estimated: a call that would revert raises
`ContractRevertError` there, before a nonce is taken or anything is signed or sent.

Nonces come from one `NonceManager` per (endpoint, account), shared by every sender in the
process, so any number of threads may send from one account. The manager holds a lock while it
signs and sends, keeps the next nonce locally, and reads it from the chain again after a
nonce error.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from .abi import ContractAbi
from .errors import (
    ContractRevertError,
    InvalidInputError,
    RpcError,
    TransactionError,
    TransactionFailedError,
    TransactionTimeoutError,
)
from .reverts import extract_revert_data, revert_error_from_data
from .rpc import DEFAULT_RETRY, RetryPolicy, rpc_request

__all__ = [
    "GWEI",
    "FeePolicy",
    "SenderConfig",
    "ContractCall",
    "Receipt",
    "PendingTransaction",
    "NonceManager",
    "TransactionSender",
    "nonce_manager",
    "reset_nonces",
    "forget_endpoint",
    "wait_for_all",
    "send_all",
]

logger = logging.getLogger(__name__)

GWEI = 10**9
# Receipts requested in one JSON-RPC batch by `wait_for_all`.
RECEIPT_BATCH_SIZE = 100


@dataclass(frozen=True)
class FeePolicy:
    """EIP-1559 fee choice: `maxFeePerGas = baseFee * base_fee_multiplier + priority_fee_wei`.

    Doubling the base fee keeps a transaction valid through several full blocks of base-fee rises
    (each block can raise it by 12.5%). A chain without `baseFeePerGas` gets a legacy `gasPrice`
    from `eth_gasPrice`. Quotes are reused for `refresh_seconds` to save a request per transaction.
    A transaction rejected for a fee below the base fee is re-quoted and sent again.
    """

    priority_fee_wei: int = 1 * GWEI
    base_fee_multiplier: int = 2
    max_fee_cap_wei: int | None = None
    refresh_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.priority_fee_wei < 0:
            raise InvalidInputError(f"priority_fee_wei must be non-negative, got {self.priority_fee_wei}")
        if self.base_fee_multiplier < 1:
            raise InvalidInputError(f"base_fee_multiplier must be at least 1, got {self.base_fee_multiplier}")
        if self.max_fee_cap_wei is not None and self.max_fee_cap_wei < self.priority_fee_wei:
            raise InvalidInputError(
                f"max_fee_cap_wei {self.max_fee_cap_wei} is below priority_fee_wei {self.priority_fee_wei}"
            )


@dataclass(frozen=True)
class SenderConfig:
    """Gas, confirmation and waiting settings of a `TransactionSender`.

    `confirmations` counts blocks after the one holding the transaction (0 suits Anvil's instant
    mining; public chains want several). While waiting, a transaction the node no longer has in
    its pool or chain is broadcast again every `rebroadcast_seconds`.
    """

    gas_margin: float = 0.2
    confirmations: int = 0
    receipt_timeout: float = 120.0
    poll_interval: float = 0.02
    rebroadcast_seconds: float = 10.0
    fees: FeePolicy = field(default_factory=FeePolicy)
    retry: RetryPolicy = DEFAULT_RETRY

    def __post_init__(self) -> None:
        if not 0 <= self.gas_margin <= 10:
            raise InvalidInputError(f"gas_margin must be in 0..10 (0.2 adds 20%), got {self.gas_margin}")
        if self.confirmations < 0:
            raise InvalidInputError(f"confirmations must be non-negative, got {self.confirmations}")
        if self.receipt_timeout <= 0 or self.poll_interval <= 0:
            raise InvalidInputError(
                f"receipt_timeout and poll_interval must be positive, got {self.receipt_timeout}, {self.poll_interval}"
            )


@dataclass(frozen=True)
class ContractCall:
    """One transaction to send: target (`None` deploys `data` as creation code), calldata and value.

    `function` names the call in messages and `abi` decodes its custom errors. Setting `gas` skips
    estimation, and with it the revert check before sending: use it only for calls known to pass.
    """

    to: str | None
    data: bytes
    value: int = 0
    function: str = "transaction"
    abi: ContractAbi | None = None
    gas: int | None = None

    def __post_init__(self) -> None:
        if self.value < 0:
            raise InvalidInputError(f"value must be non-negative wei, got {self.value}")
        if self.to is not None:
            object.__setattr__(self, "to", to_checksum_address(self.to))


@dataclass(frozen=True)
class Receipt:
    """A mined transaction's receipt, with its raw logs for `ContractAbi.decode_log`."""

    transaction_hash: str
    block_number: int
    status: int
    gas_used: int
    effective_gas_price: int
    sender: str
    contract_address: str | None
    logs: tuple[Mapping[str, Any], ...]

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price

    @classmethod
    def from_rpc(cls, raw: Mapping[str, Any]) -> Receipt:
        contract = raw.get("contractAddress")
        return cls(
            transaction_hash=raw["transactionHash"],
            block_number=int(raw["blockNumber"], 16),
            status=int(raw["status"], 16),
            gas_used=int(raw["gasUsed"], 16),
            effective_gas_price=int(raw.get("effectiveGasPrice") or "0x0", 16),
            sender=to_checksum_address(raw["from"]),
            contract_address=to_checksum_address(contract) if contract else None,
            logs=tuple(raw.get("logs", [])),
        )


@dataclass
class PendingTransaction:
    """A sent transaction awaiting its receipt; `sender.wait(pending)` or `wait_for_all` finishes it."""

    transaction_hash: str
    nonce: int
    call: ContractCall
    sender: TransactionSender
    raw_transaction: bytes
    sent_at: float


class NonceManager:
    """Next-nonce bookkeeping for one account on one endpoint.

    `lock` is held by the sender from reading the nonce until the node accepted the transaction, so
    nonces are handed out in order with no gap even under many threads.
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.lock = threading.Lock()
        self._next: int | None = None

    def peek(self) -> int:
        """Return the nonce the next transaction will use. The caller must hold `lock`."""
        if self._next is None:
            self._next = int(rpc_request(self.w3, "eth_getTransactionCount", [self.address, "pending"]), 16)
        return self._next

    def advance(self) -> None:
        """Record that the node accepted the nonce from `peek`. The caller must hold `lock`."""
        assert self._next is not None
        self._next += 1

    def resync(self) -> None:
        """Forget the local nonce; the next `peek` reads the chain's pending count."""
        self._next = None


_managers: dict[tuple[str, str], NonceManager] = {}
_managers_lock = threading.Lock()


def _endpoint(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", id(w3.provider)))


def nonce_manager(w3: Web3, address: str) -> NonceManager:
    """Return the process-wide `NonceManager` of `address` on `w3`'s endpoint."""
    key = (_endpoint(w3), to_checksum_address(address))
    with _managers_lock:
        manager = _managers.get(key)
        if manager is None:
            manager = _managers[key] = NonceManager(w3, address)
        return manager


def reset_nonces() -> None:
    """Make every nonce manager read its nonce from the chain again (after `evm_revert`, say)."""
    with _managers_lock:
        managers = list(_managers.values())
    for manager in managers:
        with manager.lock:
            manager.resync()


@dataclass
class _FeeQuote:
    fields: dict[str, int]
    block_gas_limit: int
    fetched_at: float


class _FeeCache:
    """Fee quotes per endpoint and policy, shared by the senders of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotes: dict[tuple[str, FeePolicy], _FeeQuote] = {}

    def forget(self, endpoint: str) -> None:
        with self._lock:
            for key in [key for key in self._quotes if key[0] == endpoint]:
                del self._quotes[key]

    def quote(self, w3: Web3, policy: FeePolicy, *, refresh: bool = False) -> _FeeQuote:
        key = (_endpoint(w3), policy)
        now = time.monotonic()
        with self._lock:
            cached = self._quotes.get(key)
            if cached is not None and not refresh and now - cached.fetched_at < policy.refresh_seconds:
                return cached
        block = rpc_request(w3, "eth_getBlockByNumber", ["latest", False])
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            fee_fields = {"gasPrice": int(rpc_request(w3, "eth_gasPrice", []), 16)}
        else:
            max_fee = int(base_fee, 16) * policy.base_fee_multiplier + policy.priority_fee_wei
            if policy.max_fee_cap_wei is not None:
                max_fee = min(max_fee, policy.max_fee_cap_wei)
            fee_fields = {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": min(policy.priority_fee_wei, max_fee)}
        quote = _FeeQuote(fee_fields, int(block["gasLimit"], 16), now)
        with self._lock:
            self._quotes[key] = quote
        return quote


_fee_cache = _FeeCache()
_chain_ids: dict[str, int] = {}


def forget_endpoint(url: str) -> None:
    """Drop the nonces, chain id and fee quotes cached for `url`.

    Call it when the node behind `url` stops: a new node on the same port starts from other nonces,
    and a stale local nonce would leave transactions waiting in its pool for a gap to fill.
    """
    with _managers_lock:
        for key in [key for key in _managers if key[0] == url]:
            del _managers[key]
    _chain_ids.pop(url, None)
    _fee_cache.forget(url)


def _is_nonce_error(message: str) -> bool:
    lowered = message.lower()
    return "nonce" in lowered and any(word in lowered for word in ("too low", "too high", "already", "invalid"))


def _is_fee_error(message: str) -> bool:
    lowered = message.lower()
    return "base fee" in lowered or "basefee" in lowered or "underpriced" in lowered


class TransactionSender:
    """Signs and sends transactions from one local key; thread-safe.

    The key never leaves the process and is never logged.
    """

    def __init__(self, w3: Web3, account: LocalAccount, config: SenderConfig | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.config = config or SenderConfig()
        self.address: str = to_checksum_address(account.address)
        self.nonces = nonce_manager(w3, self.address)

    def __repr__(self) -> str:
        return f"TransactionSender({self.address} on {_endpoint(self.w3)})"

    @property
    def chain_id(self) -> int:
        endpoint = _endpoint(self.w3)
        if endpoint not in _chain_ids:
            _chain_ids[endpoint] = int(rpc_request(self.w3, "eth_chainId", []), 16)
        return _chain_ids[endpoint]

    def balance(self) -> int:
        return int(rpc_request(self.w3, "eth_getBalance", [self.address, "latest"]), 16)

    # ----------------------------------------------------------------------------------------------
    # Estimation

    def _call_object(self, call: ContractCall) -> dict[str, Any]:
        request: dict[str, Any] = {"from": self.address, "data": "0x" + call.data.hex(), "value": hex(call.value)}
        if call.to is not None:
            request["to"] = call.to
        return request

    def estimate_gas(self, call: ContractCall) -> int:
        """Return the node's gas estimate; raise `ContractRevertError` if the call would revert."""
        try:
            return int(rpc_request(self.w3, "eth_estimateGas", [self._call_object(call)], policy=self.config.retry), 16)
        except RpcError as error:
            raise self._classify_estimation_error(call, error) from None

    def _classify_estimation_error(self, call: ContractCall, error: RpcError) -> Exception:
        revert_data = extract_revert_data(error.data)
        message = str(error).lower()
        if revert_data is not None or error.code == 3 or "revert" in message:
            revert = revert_error_from_data(call.function, revert_data or b"", call.abi)
            logger.info("%s from %s would revert at estimation: %s", call.function, self.address, revert)
            return revert
        hint = ""
        if "CreateContractSizeLimit" in str(error):
            hint = " (the runtime code exceeds the 24,576-byte limit of EIP-170; shrink the contract)"
        return TransactionError(f"gas estimation for {call.function} from {self.address} failed: {error}{hint}")

    # ----------------------------------------------------------------------------------------------
    # Sending

    def submit(self, call: ContractCall, *, before_send: Callable[[str], None] | None = None) -> PendingTransaction:
        """Estimate, sign and send `call` without waiting for its receipt.

        `before_send` receives the hash of the signed transaction before it is sent, so a caller can
        record the hash durably first. It is called again with the new hash when a nonce or fee
        error makes the sender sign again. An exception it raises stops the send.
        """
        quote = _fee_cache.quote(self.w3, self.config.fees)
        if call.gas is not None:
            gas = call.gas
        else:
            estimate = self.estimate_gas(call)
            gas = min(math.ceil(estimate * (1 + self.config.gas_margin)), quote.block_gas_limit)
        refreshed_fees = False
        nonce_retries = 3
        with self.nonces.lock:
            while True:
                nonce = self.nonces.peek()
                raw = self._sign(call, nonce, gas, quote.fields)
                if before_send is not None:
                    before_send("0x" + keccak(raw).hex())
                try:
                    transaction_hash = rpc_request(
                        self.w3, "eth_sendRawTransaction", ["0x" + raw.hex()], policy=self.config.retry
                    )
                except RpcError as error:
                    message = str(error)
                    if _is_nonce_error(message) and nonce_retries > 0:
                        logger.warning("nonce %d of %s rejected (%s); reading it from the chain", nonce, self.address, message)
                        nonce_retries -= 1
                        self.nonces.resync()
                        continue
                    if _is_fee_error(message) and not refreshed_fees:
                        logger.warning("fee of %s rejected (%s); quoting again", call.function, message)
                        refreshed_fees = True
                        quote = _fee_cache.quote(self.w3, self.config.fees, refresh=True)
                        continue
                    raise TransactionError(
                        f"sending {call.function} from {self.address} with nonce {nonce} failed: {message}"
                    ) from error
                self.nonces.advance()
                break
        logger.debug("sent %s %s from %s nonce %d gas %d", call.function, transaction_hash, self.address, nonce, gas)
        return PendingTransaction(transaction_hash, nonce, call, self, raw, time.monotonic())

    def _sign(self, call: ContractCall, nonce: int, gas: int, fee_fields: Mapping[str, int]) -> bytes:
        transaction: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": gas,
            "value": call.value,
            "data": call.data,
            **fee_fields,
        }
        if call.to is not None:
            transaction["to"] = call.to
        if "maxFeePerGas" in fee_fields:
            transaction["type"] = 2
        signed = Account.sign_transaction(transaction, self.account.key)
        return bytes(signed.raw_transaction)

    def send(self, call: ContractCall) -> Receipt:
        """Estimate, sign, send and wait for the receipt of `call`."""
        return self.wait(self.submit(call))

    def send_batch(self, calls: Iterable[ContractCall]) -> list[Receipt]:
        """Send every call without waiting in between, then wait for all receipts (in call order)."""
        pending = [self.submit(call) for call in calls]
        return wait_for_all(pending)

    def transfer(self, to: str, value_wei: int) -> Receipt:
        """Send `value_wei` to `to` in a plain transfer."""
        return self.send(ContractCall(to=to, data=b"", value=value_wei, function="transfer"))

    # ----------------------------------------------------------------------------------------------
    # Receipts

    def wait(self, pending: PendingTransaction) -> Receipt:
        """Wait for `pending`'s receipt and confirmations; raise if it timed out or reverted."""
        return wait_for_all([pending])[0]

    def _check_receipt(self, pending: PendingTransaction, receipt: Receipt) -> Receipt:
        if receipt.status == 1:
            return receipt
        revert = self._replay_revert(pending, receipt)
        detail = str(revert) if revert is not None else f"{pending.call.function} reverted on-chain"
        raise TransactionFailedError(
            f"transaction {receipt.transaction_hash} failed in block {receipt.block_number}: {detail}",
            transaction_hash=receipt.transaction_hash,
            revert=revert,
        )

    def _replay_revert(self, pending: PendingTransaction, receipt: Receipt) -> ContractRevertError | None:
        # Replaying on the parent block's state is exact when the transaction was the first in its
        # block (always so under instant mining) and an approximation otherwise.
        parent = hex(max(receipt.block_number - 1, 0))
        try:
            rpc_request(self.w3, "eth_call", [self._call_object(pending.call), parent])
        except RpcError as error:
            data = extract_revert_data(error.data)
            return revert_error_from_data(
                pending.call.function, data or b"", pending.call.abi, transaction_hash=receipt.transaction_hash
            )
        return None


def _fetch_receipts(w3: Web3, hashes: Sequence[str]) -> list[Mapping[str, Any] | None]:
    if len(hashes) == 1:
        return [rpc_request(w3, "eth_getTransactionReceipt", [hashes[0]])]
    responses = w3.provider.make_batch_request([("eth_getTransactionReceipt", [h]) for h in hashes])  # type: ignore[list-item]
    if not isinstance(responses, list):
        raise RpcError(f"batched eth_getTransactionReceipt failed: {responses.get('error')}", method="eth_getTransactionReceipt")
    results: list[Mapping[str, Any] | None] = []
    for response in responses:
        if response.get("error"):
            raise RpcError(f"eth_getTransactionReceipt failed: {response['error']}", method="eth_getTransactionReceipt")
        results.append(response.get("result"))
    return results


def _rebroadcast_if_dropped(pending: PendingTransaction, now: float) -> None:
    sender = pending.sender
    if now - pending.sent_at < sender.config.rebroadcast_seconds:
        return
    pending.sent_at = now
    if rpc_request(sender.w3, "eth_getTransactionByHash", [pending.transaction_hash]) is not None:
        return
    logger.warning("transaction %s is unknown to the node; broadcasting it again", pending.transaction_hash)
    try:
        rpc_request(sender.w3, "eth_sendRawTransaction", ["0x" + pending.raw_transaction.hex()])
    except RpcError as error:
        logger.warning("re-broadcast of %s failed: %s", pending.transaction_hash, error)


def wait_for_all(pending: Sequence[PendingTransaction]) -> list[Receipt]:
    """Wait for the receipts of `pending` (any senders on one endpoint), returned in the same order.

    Receipts are fetched in JSON-RPC batches. Raises `TransactionTimeoutError` for the first
    transaction past its sender's `receipt_timeout`, and `TransactionFailedError` for the first
    mined with status 0, after every receipt was collected.
    """
    if not pending:
        return []
    w3 = pending[0].sender.w3
    receipts: list[Receipt | None] = [None] * len(pending)
    waiting = list(range(len(pending)))
    started = time.monotonic()
    while waiting:
        found_any = False
        still_waiting: list[int] = []
        for offset in range(0, len(waiting), RECEIPT_BATCH_SIZE):
            chunk = waiting[offset: offset + RECEIPT_BATCH_SIZE]
            raw_receipts = _fetch_receipts(w3, [pending[i].transaction_hash for i in chunk])
            for index, raw in zip(chunk, raw_receipts):
                if raw is None or raw.get("blockNumber") is None:
                    still_waiting.append(index)
                else:
                    receipts[index] = Receipt.from_rpc(raw)
                    found_any = True
        waiting = still_waiting
        if not waiting:
            break
        now = time.monotonic()
        for index in waiting:
            item = pending[index]
            if now - started > item.sender.config.receipt_timeout:
                raise TransactionTimeoutError(
                    f"no receipt for {item.call.function} {item.transaction_hash} (nonce {item.nonce} from "
                    f"{item.sender.address}) after {item.sender.config.receipt_timeout:.0f} s; "
                    "check that the node is mining, or raise receipt_timeout",
                    transaction_hash=item.transaction_hash,
                )
            _rebroadcast_if_dropped(item, now)
        if not found_any:
            time.sleep(min(pending[i].sender.config.poll_interval for i in waiting))

    finished = [r for r in receipts if r is not None]
    assert len(finished) == len(pending)
    _wait_for_confirmations(pending, finished, started)
    for item, receipt in zip(pending, finished):
        item.sender._check_receipt(item, receipt)
    return finished


def _wait_for_confirmations(pending: Sequence[PendingTransaction], receipts: Sequence[Receipt], started: float) -> None:
    needed = max((p.sender.config.confirmations for p in pending), default=0)
    if needed == 0:
        return
    w3 = pending[0].sender.w3
    target = max(r.block_number for r in receipts) + needed
    timeout = max(p.sender.config.receipt_timeout for p in pending)
    while int(rpc_request(w3, "eth_blockNumber", []), 16) < target:
        if time.monotonic() - started > timeout:
            raise TransactionTimeoutError(
                f"block {target} ({needed} confirmations) not reached after {timeout:.0f} s",
                transaction_hash=receipts[-1].transaction_hash,
            )
        time.sleep(pending[0].sender.config.poll_interval)
    # NOTE: receipts are not re-read after the confirmations, so a reorg deeper than the block of a
    # receipt goes unnoticed; fine for Anvil and for confirmation depths beyond reorg depth.


def send_all(items: Iterable[tuple[TransactionSender, ContractCall]]) -> list[Receipt]:
    """Send each `(sender, call)` without waiting, then wait for every receipt (in input order).

    For many accounts on one endpoint, for example one submission per owner.
    """
    pending = [sender.submit(call) for sender, call in items]
    return wait_for_all(pending)
