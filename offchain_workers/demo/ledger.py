"""Gas, ether and payments of a demo run, read back from the chain's receipts.

Every transaction of a local market is in some block, so `read_ledger` reads the receipts of a
block range (`eth_getBlockReceipts`, in JSON-RPC batches) and sums gas and fees by the sender's
role. It names each transaction by the first market event it emitted (`SharesSubmitted` is a
`submitShares` call), which needs no calldata. The same pass collects, from the event topics and
one-word data fields only, which owners submitted to each query, the complaints, and every payment:
`OwnerPaid`, `AggregatorFeePaid` and `AnalystRefunded`. The large `SharesSubmitted` data (the
ciphertexts) is never decoded.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from pmsr_chain import ContractAbi
from pmsr_chain.errors import RpcError

__all__ = ["ActionSpending", "RoleSpending", "Ledger", "read_ledger", "ROLE_ORDER"]

logger = logging.getLogger(__name__)

# Blocks per JSON-RPC batch. A block of a large run holds thousands of receipts, so batches stay small.
RECEIPT_BATCH_SIZE = 50

# Roles in report order; a sender the caller did not name is `other`.
ROLE_ORDER = ("deployer", "aggregators", "owners", "analyst", "keeper", "other")

# The market function a transaction called, known from the first market event it emitted.
_ACTION_BY_EVENT = {
    "OwnerRegistered": "registerOwner",
    "OwnerPolicyUpdated": "updateOwnerPolicy",
    "AggregatorRegistered": "registerAggregator",
    "QueryProposed": "proposeQuery",
    "QueryAccepted": "acceptQuery",
    "SharesSubmitted": "submitShares",
    "ComplaintFiled": "complain",
    "AggregateCommitted": "commitAggregate",
    "AggregateRevealed": "revealAggregate",
    "QueryCancelled": "cancel",
    "QueryFailed": "fail",
    "OwnerPaid": "claim",
    "BudgetReleased": "releaseBudget",
    "AggregatorFeePaid": "claimFee",
    "AnalystRefunded": "refund",
}


@dataclass
class ActionSpending:
    """Transactions of one kind: how many, their total gas and their total fee in wei."""

    transactions: int = 0
    gas: int = 0
    wei: int = 0

    def add(self, gas: int, wei: int) -> None:
        self.transactions += 1
        self.gas += gas
        self.wei += wei

    @property
    def mean_gas(self) -> float:
        return self.gas / self.transactions if self.transactions else 0.0


@dataclass
class RoleSpending(ActionSpending):
    """Transactions sent by one role, in total and per market function."""

    accounts: set[str] = field(default_factory=set)
    by_action: dict[str, ActionSpending] = field(default_factory=dict)

    def record(self, sender: str, action: str, gas: int, wei: int) -> None:
        self.add(gas, wei)
        self.accounts.add(sender)
        self.by_action.setdefault(action, ActionSpending()).add(gas, wei)


@dataclass
class Ledger:
    """Gas, submissions and payments found in the receipts of blocks `first_block..last_block`.

    Payments are in wei, keyed by query id and then by payee address (checksummed).
    """

    first_block: int
    last_block: int
    spending: dict[str, RoleSpending]
    submitters: dict[int, set[str]]
    complaints: dict[int, set[str]]
    owner_payments: dict[int, dict[str, int]]
    fee_payments: dict[int, dict[str, int]]
    refunds: dict[int, int]
    reverted: int

    def included_owners(self, query_id: int) -> set[str]:
        """Owners whose shares entered the query's result: submitted and not excluded by a complaint."""
        return self.submitters.get(query_id, set()) - self.complaints.get(query_id, set())

    def paid_to_owners(self) -> dict[str, int]:
        """Total wei each owner was paid, over every query."""
        totals: dict[str, int] = defaultdict(int)
        for payments in self.owner_payments.values():
            for owner, amount in payments.items():
                totals[owner] += amount
        return dict(totals)

    def paid_to_aggregators(self) -> dict[str, int]:
        """Total fee in wei each aggregator was paid, over every query."""
        totals: dict[str, int] = defaultdict(int)
        for payments in self.fee_payments.values():
            for aggregator, amount in payments.items():
                totals[aggregator] += amount
        return dict(totals)

    @property
    def total_gas(self) -> int:
        return sum(role.gas for role in self.spending.values())

    @property
    def total_wei(self) -> int:
        return sum(role.wei for role in self.spending.values())


def _address_topic(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def _batches(first: int, last: int, size: int) -> Iterator[range]:
    for start in range(first, last + 1, size):
        yield range(start, min(start + size, last + 1))


def _block_receipts(w3: Web3, blocks: range) -> list[list[Mapping[str, Any]]]:
    requests = [("eth_getBlockReceipts", [hex(number)]) for number in blocks]
    try:
        responses = w3.provider.make_batch_request(requests)  # type: ignore[arg-type]
    except (OSError, ValueError) as error:
        # requests' connection errors derive from OSError, and a garbled response from ValueError.
        raise RpcError(
            f"batched eth_getBlockReceipts for blocks {blocks.start}..{blocks.stop - 1} failed: {error}; "
            "check that the node is running", method="eth_getBlockReceipts",
        ) from error
    if not isinstance(responses, list):
        raise RpcError(f"batched eth_getBlockReceipts failed: {responses.get('error')}", method="eth_getBlockReceipts")
    receipts = []
    for number, response in zip(blocks, responses, strict=True):
        if response.get("error"):
            raise RpcError(f"eth_getBlockReceipts({number}) failed: {response['error']}", method="eth_getBlockReceipts")
        receipts.append(response.get("result") or [])
    return receipts


def read_ledger(
    w3: Web3,
    market_address: str,
    abi: ContractAbi,
    roles: Mapping[str, str],
    first_block: int,
    last_block: int | None = None,
    *,
    batch_size: int = RECEIPT_BATCH_SIZE,
) -> Ledger:
    """Read the receipts of blocks `first_block..last_block` (default: the latest) into a `Ledger`.

    `roles` maps sender addresses (any case) to a role name from `ROLE_ORDER`.

    Raises:
        RpcError: the node does not support `eth_getBlockReceipts` (Anvil and geth do).
    """
    market = to_checksum_address(market_address)
    role_of = {to_checksum_address(address): role for address, role in roles.items()}
    event_by_topic = {"0x" + abi.event_topic(name).hex(): name for name in abi.events}
    last = int(w3.eth.block_number) if last_block is None else last_block

    spending: dict[str, RoleSpending] = {}
    submitters: dict[int, set[str]] = defaultdict(set)
    complaints: dict[int, set[str]] = defaultdict(set)
    owner_payments: dict[int, dict[str, int]] = defaultdict(dict)
    fee_payments: dict[int, dict[str, int]] = defaultdict(dict)
    refunds: dict[int, int] = {}
    reverted = 0

    for blocks in _batches(first_block, last, batch_size):
        for receipts in _block_receipts(w3, blocks):
            for receipt in receipts:
                sender = to_checksum_address(receipt["from"])
                gas = int(receipt["gasUsed"], 16)
                wei = gas * int(receipt["effectiveGasPrice"], 16)
                action = "deploy" if receipt.get("contractAddress") else "other"
                if int(receipt["status"], 16) == 0:
                    reverted += 1
                    action = "reverted"
                for log in receipt["logs"]:
                    if to_checksum_address(log["address"]) != market or not log["topics"]:
                        continue
                    topics: Sequence[str] = log["topics"]
                    name = event_by_topic.get(topics[0])
                    if name is None:
                        continue
                    if action == "other":
                        action = _ACTION_BY_EVENT.get(name, "other")
                    query_id = int(topics[1], 16) if len(topics) > 1 else 0
                    if name == "SharesSubmitted":
                        submitters[query_id].add(_address_topic(topics[2]))
                    elif name == "ComplaintFiled":
                        complaints[query_id].add(_address_topic(topics[3]))
                    elif name == "OwnerPaid":
                        owner_payments[query_id][_address_topic(topics[2])] = int(log["data"], 16)
                    elif name == "AggregatorFeePaid":
                        fee_payments[query_id][_address_topic(topics[2])] = int(log["data"], 16)
                    elif name == "AnalystRefunded":
                        refunds[query_id] = int(log["data"], 16)
                role = role_of.get(sender, "other")
                spending.setdefault(role, RoleSpending()).record(sender, action, gas, wei)
    logger.debug("read receipts of blocks %d..%d: %d reverted", first_block, last, reverted)
    return Ledger(
        first_block=first_block,
        last_block=last,
        spending=spending,
        submitters=dict(submitters),
        complaints=dict(complaints),
        owner_payments=dict(owner_payments),
        fee_payments=dict(fee_payments),
        refunds=refunds,
        reverted=reverted,
    )
