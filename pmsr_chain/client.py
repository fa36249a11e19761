"""Typed client for a deployed `DataMarket`: one method per contract function.

`MarketCalls` encodes each write function into a `ContractCall` without sending it (for batches
through `send_all` or `TransactionSender.send_batch`). `MarketClient` sends those calls with its
`TransactionSender` and waits for the receipt, reads the views into the dataclasses of
`pmsr_chain.types`, and reads events through a `LogReader`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from .abi import ContractAbi
from .errors import ConfigurationError, InvalidInputError, RpcError
from .events import EventRecord, LogReader, QueryProposed
from .parameters import MarketParameters
from .reverts import extract_revert_data, revert_error_from_data
from .rpc import rpc_request
from .transactions import ContractCall, Receipt, TransactionSender
from .types import (
    AggregatorInfo,
    AggregatorQueryState,
    OwnerInfo,
    OwnerPolicy,
    QueryInfo,
    QueryParams,
    SubmissionState,
    to_bytes32,
)

__all__ = ["MarketCalls", "MarketClient", "ProposedQuery", "aggregate_commitment", "spec_hash"]

UINT64_MAX = 2**64 - 1


def spec_hash(spec_json: bytes) -> bytes:
    """Return keccak256 of the spec bytes, as `proposeQuery` computes it on-chain."""
    return keccak(spec_json)


def aggregate_commitment(query_id: int, aggregator: str, share: Sequence[int], salt: bytes) -> bytes:
    """Return `keccak256(abi.encode(queryId, aggregator, share, salt))` with `share` a `uint64[]`."""
    for index, value in enumerate(share):
        if not 0 <= value <= UINT64_MAX:
            raise InvalidInputError(f"share[{index}] = {value} is outside uint64; reduce it modulo 2^64")
    encoded = eth_abi.encode(
        ["uint256", "address", "uint64[]", "bytes32"],
        [query_id, to_checksum_address(aggregator), list(share), to_bytes32(salt, "salt")],
    )
    return keccak(encoded)


@dataclass(frozen=True)
class ProposedQuery:
    """Result of `propose_query`: the new id, the on-chain spec hash and the receipt."""

    query_id: int
    spec_hash: bytes
    receipt: Receipt


class MarketCalls:
    """Encoders for every state-changing `DataMarket` function; each returns an unsent `ContractCall`."""

    def __init__(self, address: str, abi: ContractAbi) -> None:
        self.address = to_checksum_address(address)
        self.abi = abi

    def _call(self, function: str, arguments: Sequence[Any], value: int = 0) -> ContractCall:
        return ContractCall(
            to=self.address,
            data=self.abi.encode_call(function, arguments),
            value=value,
            function=function,
            abi=self.abi,
        )

    # Owners
    def register_owner(self, policy: OwnerPolicy, dataset_commitment: bytes, *, stake: int) -> ContractCall:
        return self._call("registerOwner", [policy, to_bytes32(dataset_commitment, "dataset_commitment")], stake)

    def update_owner_policy(self, policy: OwnerPolicy) -> ContractCall:
        return self._call("updateOwnerPolicy", [policy])

    def top_up_owner_stake(self, amount: int) -> ContractCall:
        return self._call("topUpOwnerStake", [], amount)

    def begin_owner_exit(self) -> ContractCall:
        return self._call("beginOwnerExit", [])

    def withdraw_owner_stake(self) -> ContractCall:
        return self._call("withdrawOwnerStake", [])

    # Aggregators
    def register_aggregator(self, encryption_key: bytes, *, stake: int) -> ContractCall:
        return self._call("registerAggregator", [to_bytes32(encryption_key, "encryption_key")], stake)

    def rotate_aggregator_key(self, encryption_key: bytes) -> ContractCall:
        return self._call("rotateAggregatorKey", [to_bytes32(encryption_key, "encryption_key")])

    def top_up_aggregator_stake(self, amount: int) -> ContractCall:
        return self._call("topUpAggregatorStake", [], amount)

    def begin_aggregator_exit(self) -> ContractCall:
        return self._call("beginAggregatorExit", [])

    def withdraw_aggregator_stake(self) -> ContractCall:
        return self._call("withdrawAggregatorStake", [])

    # Queries
    def propose_query(self, params: QueryParams, spec_json: bytes, *, payment: int | None = None) -> ContractCall:
        """Encode `proposeQuery`; `payment` defaults to exactly `params.required_payment`."""
        value = params.required_payment if payment is None else payment
        return self._call("proposeQuery", [params, bytes(spec_json)], value)

    def accept_query(self, query_id: int) -> ContractCall:
        return self._call("acceptQuery", [query_id])

    def submit_shares(self, query_id: int, ciphertexts: Sequence[bytes]) -> ContractCall:
        return self._call("submitShares", [query_id, [bytes(c) for c in ciphertexts]])

    def complain(self, query_id: int, owner: str) -> ContractCall:
        return self._call("complain", [query_id, to_checksum_address(owner)])

    def commit_aggregate(self, query_id: int, commitment: bytes) -> ContractCall:
        return self._call("commitAggregate", [query_id, to_bytes32(commitment, "commitment")])

    def reveal_aggregate(self, query_id: int, share: Sequence[int], salt: bytes) -> ContractCall:
        return self._call("revealAggregate", [query_id, list(share), to_bytes32(salt, "salt")])

    def cancel(self, query_id: int) -> ContractCall:
        return self._call("cancel", [query_id])

    def fail(self, query_id: int) -> ContractCall:
        return self._call("fail", [query_id])

    # Payouts
    def claim(self, query_id: int) -> ContractCall:
        return self._call("claim", [query_id])

    def claim_many(self, query_ids: Sequence[int]) -> ContractCall:
        return self._call("claimMany", [list(query_ids)])

    def release_budget(self, query_id: int) -> ContractCall:
        return self._call("releaseBudget", [query_id])

    def claim_fee(self, query_id: int) -> ContractCall:
        return self._call("claimFee", [query_id])

    def refund(self, query_id: int) -> ContractCall:
        return self._call("refund", [query_id])


class MarketClient:
    """A `DataMarket` at `address`, read through `w3` and written through `sender`.

    Write methods send one transaction and return its `Receipt` once mined; a call that would
    revert raises `ContractRevertError` before anything is sent. Views take an optional block
    (`"latest"` by default).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: ContractAbi | Sequence[Mapping[str, Any]],
        sender: TransactionSender | None = None,
        *,
        log_chunk_size: int = 2_000,
    ) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.abi = abi if isinstance(abi, ContractAbi) else ContractAbi(abi)
        self.sender = sender
        self.calls = MarketCalls(self.address, self.abi)
        self.logs = LogReader(w3, self.address, self.abi, chunk_size=log_chunk_size)

    def with_sender(self, sender: TransactionSender) -> MarketClient:
        """Return a client for the same market that sends from `sender`."""
        return MarketClient(self.w3, self.address, self.abi, sender, log_chunk_size=self.logs.chunk_size)

    def _send(self, call: ContractCall) -> Receipt:
        if self.sender is None:
            raise ConfigurationError(
                f"{call.function} needs a transaction sender; build the client with sender=... or use with_sender()"
            )
        return self.sender.send(call)

    # ----------------------------------------------------------------------------------------------
    # Owners

    def register_owner(self, policy: OwnerPolicy, dataset_commitment: bytes, *, stake: int) -> Receipt:
        return self._send(self.calls.register_owner(policy, dataset_commitment, stake=stake))

    def update_owner_policy(self, policy: OwnerPolicy) -> Receipt:
        return self._send(self.calls.update_owner_policy(policy))

    def top_up_owner_stake(self, amount: int) -> Receipt:
        return self._send(self.calls.top_up_owner_stake(amount))

    def begin_owner_exit(self) -> Receipt:
        return self._send(self.calls.begin_owner_exit())

    def withdraw_owner_stake(self) -> Receipt:
        return self._send(self.calls.withdraw_owner_stake())

    # ----------------------------------------------------------------------------------------------
    # Aggregators

    def register_aggregator(self, encryption_key: bytes, *, stake: int) -> Receipt:
        return self._send(self.calls.register_aggregator(encryption_key, stake=stake))

    def rotate_aggregator_key(self, encryption_key: bytes) -> Receipt:
        return self._send(self.calls.rotate_aggregator_key(encryption_key))

    def top_up_aggregator_stake(self, amount: int) -> Receipt:
        return self._send(self.calls.top_up_aggregator_stake(amount))

    def begin_aggregator_exit(self) -> Receipt:
        return self._send(self.calls.begin_aggregator_exit())

    def withdraw_aggregator_stake(self) -> Receipt:
        return self._send(self.calls.withdraw_aggregator_stake())

    # ----------------------------------------------------------------------------------------------
    # Queries

    def propose_query(self, params: QueryParams, spec_json: bytes, *, payment: int | None = None) -> ProposedQuery:
        """Propose a query, escrowing `params.required_payment` unless `payment` is given."""
        receipt = self._send(self.calls.propose_query(params, spec_json, payment=payment))
        for record in self.logs.decode_receipt_logs(receipt.logs):
            if isinstance(record, QueryProposed):
                return ProposedQuery(record.query_id, record.spec_hash, receipt)
        raise ConfigurationError(f"proposeQuery transaction {receipt.transaction_hash} emitted no QueryProposed event")

    def accept_query(self, query_id: int) -> Receipt:
        return self._send(self.calls.accept_query(query_id))

    def submit_shares(self, query_id: int, ciphertexts: Sequence[bytes]) -> Receipt:
        return self._send(self.calls.submit_shares(query_id, ciphertexts))

    def complain(self, query_id: int, owner: str) -> Receipt:
        return self._send(self.calls.complain(query_id, owner))

    def commit_aggregate(self, query_id: int, commitment: bytes) -> Receipt:
        return self._send(self.calls.commit_aggregate(query_id, commitment))

    def reveal_aggregate(self, query_id: int, share: Sequence[int], salt: bytes) -> Receipt:
        return self._send(self.calls.reveal_aggregate(query_id, share, salt))

    def cancel(self, query_id: int) -> Receipt:
        return self._send(self.calls.cancel(query_id))

    def fail(self, query_id: int) -> Receipt:
        return self._send(self.calls.fail(query_id))

    # ----------------------------------------------------------------------------------------------
    # Payouts

    def claim(self, query_id: int) -> Receipt:
        return self._send(self.calls.claim(query_id))

    def claim_many(self, query_ids: Sequence[int]) -> Receipt:
        return self._send(self.calls.claim_many(query_ids))

    def release_budget(self, query_id: int) -> Receipt:
        return self._send(self.calls.release_budget(query_id))

    def claim_fee(self, query_id: int) -> Receipt:
        return self._send(self.calls.claim_fee(query_id))

    def refund(self, query_id: int) -> Receipt:
        return self._send(self.calls.refund(query_id))

    # ----------------------------------------------------------------------------------------------
    # Views

    def _view(self, function: str, arguments: Sequence[Any] = (), block: int | str = "latest") -> Any:
        data = self.abi.encode_call(function, arguments)
        block_id = hex(block) if isinstance(block, int) else block
        try:
            result = rpc_request(self.w3, "eth_call", [{"to": self.address, "data": "0x" + data.hex()}, block_id])
        except RpcError as error:
            revert_data = extract_revert_data(error.data)
            if revert_data is not None or error.code == 3:
                raise revert_error_from_data(function, revert_data or b"", self.abi) from None
            raise
        raw = bytes.fromhex(result.removeprefix("0x"))
        if not raw:
            raise ConfigurationError(f"{function} returned no data: is there a DataMarket at {self.address}?")
        (value,) = self.abi.decode_output(function, raw)
        return value

    def min_owner_stake(self, block: int | str = "latest") -> int:
        return int(self._view("minOwnerStake", (), block))

    def min_aggregator_stake(self, block: int | str = "latest") -> int:
        return int(self._view("minAggregatorStake", (), block))

    def unbonding_period(self, block: int | str = "latest") -> int:
        return int(self._view("unbondingPeriod", (), block))

    def complaint_period(self, block: int | str = "latest") -> int:
        return int(self._view("complaintPeriod", (), block))

    def slash_amount(self, block: int | str = "latest") -> int:
        return int(self._view("slashAmount", (), block))

    def max_aggregators(self, block: int | str = "latest") -> int:
        return int(self._view("maxAggregators", (), block))

    def max_output_length(self, block: int | str = "latest") -> int:
        return int(self._view("maxOutputLength", (), block))

    def parameters(self, block: int | str = "latest") -> MarketParameters:
        """Read all seven constructor parameters."""
        return MarketParameters(
            min_owner_stake=self.min_owner_stake(block),
            min_aggregator_stake=self.min_aggregator_stake(block),
            unbonding_period=self.unbonding_period(block),
            complaint_period=self.complaint_period(block),
            slash_amount=self.slash_amount(block),
            max_aggregators=self.max_aggregators(block),
            max_output_length=self.max_output_length(block),
        )

    def query_count(self, block: int | str = "latest") -> int:
        return int(self._view("queryCount", (), block))

    def owner_info(self, owner: str, block: int | str = "latest") -> OwnerInfo:
        result: OwnerInfo = self._view("ownerInfo", [to_checksum_address(owner)], block)
        return result

    def aggregator_info(self, aggregator: str, block: int | str = "latest") -> AggregatorInfo:
        result: AggregatorInfo = self._view("aggregatorInfo", [to_checksum_address(aggregator)], block)
        return result

    def query_info(self, query_id: int, block: int | str = "latest") -> QueryInfo:
        result: QueryInfo = self._view("queryInfo", [query_id], block)
        return result

    def submission_state(self, query_id: int, owner: str, block: int | str = "latest") -> SubmissionState:
        return SubmissionState(self._view("submissionState", [query_id, to_checksum_address(owner)], block))

    def aggregator_query_state(self, query_id: int, aggregator: str, block: int | str = "latest") -> AggregatorQueryState:
        result: AggregatorQueryState = self._view("aggregatorQueryState", [query_id, to_checksum_address(aggregator)], block)
        return result

    def complaint_window_end(self, query_id: int, block: int | str = "latest") -> int:
        """End of the complaint window, or 0 while submissions are open."""
        return int(self._view("complaintWindowEnd", [query_id], block))

    def query_result(self, query_id: int, block: int | str = "latest") -> tuple[int, ...]:
        """Return the published result, coordinates modulo 2^64 (empty before publication)."""
        return tuple(int(v) for v in self._view("queryResult", [query_id], block))

    def ciphertext_length(self, query_id: int, block: int | str = "latest") -> int:
        return int(self._view("ciphertextLength", [query_id], block))

    # ----------------------------------------------------------------------------------------------
    # Events

    def events(
        self,
        name: str | Sequence[str] | None,
        from_block: int = 0,
        to_block: int | None = None,
        *,
        filters: Mapping[str, Any] | None = None,
    ) -> list[EventRecord]:
        """Return decoded events of this market in `[from_block, to_block]`, read in bounded ranges.

        `name` is an event name, a list of names or `None` for all; `filters` matches indexed
        arguments by ABI name, for example `{"queryId": 3}`.
        """
        return self.logs.read(name, from_block, to_block, filters=filters)

    def receipt_events(self, receipt: Receipt) -> list[EventRecord]:
        """Decode the events this market emitted in `receipt`."""
        return self.logs.decode_receipt_logs(receipt.logs)
