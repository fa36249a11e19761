"""Reverts are caught at gas estimation and decoded into named errors with their arguments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import solcx
from web3 import Web3

from pmsr_chain import (
    ContractAbi,
    ContractCall,
    ContractRevertError,
    MarketClient,
    QueryStatus,
    TransactionFailedError,
    TransactionSender,
)
from pmsr_chain._paths import find_solc
from pmsr_chain.reverts import revert_error_from_data
from pmsr_chain.testing import MarketHarness, random_ciphertexts

THROWER_SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract Thrower {
    error Custom(uint256 amount, address caller);
    uint256 public calls;
    function withReason(bool fail) external { calls += 1; require(!fail, "reason text"); }
    function overflow(uint8 x) external { calls += 1; uint8 y = x + 255; calls += y; }
    function custom() external { calls += 1; revert Custom(7, msg.sender); }
}
"""


def _sender(client: MarketClient) -> TransactionSender:
    assert client.sender is not None
    return client.sender


@contextmanager
def nothing_sent(w3: Web3, sender: TransactionSender) -> Iterator[None]:
    """Assert that the block does not reveal a sent transaction: same nonce, block and balance."""
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    block = w3.eth.block_number
    balance = w3.eth.get_balance(sender.address)
    yield
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    assert w3.eth.block_number == block
    assert w3.eth.get_balance(sender.address) == balance


def test_budget_exceeded_named_with_arguments(harness: MarketHarness, w3: Web3) -> None:
    aggregators = harness.register_aggregators(2)
    (owner,) = harness.register_owners(1, policy=harness.default_policy(epsilon_budget=1_000_000))
    first = harness.propose(aggregators, epsilon=600_000)
    second = harness.propose(aggregators, epsilon=600_000)
    owner.submit_shares(first.query_id, random_ciphertexts(1, 2))

    with nothing_sent(w3, _sender(owner)), pytest.raises(ContractRevertError) as caught:
        owner.submit_shares(second.query_id, random_ciphertexts(1, 2))
    error = caught.value
    address = _sender(owner).address
    assert error.function == "submitShares"
    assert error.error_name == "BudgetExceeded"
    assert error.arguments == {"owner": address, "epsilonUsed": 600_000, "epsilon": 600_000, "budget": 1_000_000}
    assert str(error) == (
        f"submitShares reverted: BudgetExceeded(owner={address}, epsilonUsed=600000, epsilon=600000, budget=1000000)"
    )
    assert error.transaction_hash is None


def test_stake_too_low(harness: MarketHarness, w3: Web3) -> None:
    client = harness.new_client()
    minimum = harness.market.min_owner_stake()
    with nothing_sent(w3, _sender(client)), pytest.raises(ContractRevertError) as caught:
        client.register_owner(harness.default_policy(), b"\x00" * 32, stake=minimum - 1)
    assert caught.value.error_name == "StakeTooLow"
    assert caught.value.arguments == {"provided": minimum - 1, "minimum": minimum}
    assert "registerOwner reverted: StakeTooLow(provided=" in str(caught.value)


def test_wrong_ciphertext_length(harness: MarketHarness, w3: Web3) -> None:
    aggregators = harness.register_aggregators(2)
    (owner,) = harness.register_owners(1)
    query = harness.propose(aggregators, output_length=3)
    expected = 32 + 8 * 3 + 16
    ciphertexts = [bytes(expected), bytes(expected - 1)]
    with nothing_sent(w3, _sender(owner)), pytest.raises(ContractRevertError) as caught:
        owner.submit_shares(query.query_id, ciphertexts)
    assert caught.value.error_name == "WrongCiphertextLength"
    assert caught.value.arguments == {"index": 1, "length": expected - 1, "expected": expected}


def test_wrong_payment(harness: MarketHarness, w3: Web3) -> None:
    aggregators = harness.register_aggregators(2)
    analyst = harness.new_client()
    params = harness.query_params(aggregators)
    with nothing_sent(w3, _sender(analyst)), pytest.raises(ContractRevertError) as caught:
        analyst.propose_query(params, b"{}", payment=params.required_payment - 1)
    assert caught.value.error_name == "WrongPayment"
    assert caught.value.arguments == {"sent": params.required_payment - 1, "required": params.required_payment}


def test_enum_arguments_decoded(harness: MarketHarness, w3: Web3) -> None:
    aggregators = harness.register_aggregators(2)
    query = harness.propose(aggregators)
    with nothing_sent(w3, _sender(query.analyst)), pytest.raises(ContractRevertError) as caught:
        query.analyst.refund(query.query_id)
    assert caught.value.error_name == "WrongQueryStatus"
    assert caught.value.arguments["queryId"] == query.query_id
    assert caught.value.arguments["actual"] is QueryStatus.OPEN
    assert caught.value.arguments["expected"] is QueryStatus.PUBLISHED
    assert "actual=OPEN, expected=PUBLISHED" in str(caught.value)


def test_query_not_found(harness: MarketHarness, w3: Web3) -> None:
    client = harness.new_client()
    with nothing_sent(w3, _sender(client)), pytest.raises(ContractRevertError) as caught:
        client.cancel(10**9)
    assert caught.value.error_name == "QueryNotFound"
    assert caught.value.arguments == {"queryId": 10**9}


def test_not_assigned_aggregator(harness: MarketHarness, w3: Web3) -> None:
    aggregators = harness.register_aggregators(3)
    query = harness.propose(aggregators[:2], accept=False)
    outsider = aggregators[2]
    with nothing_sent(w3, _sender(outsider)), pytest.raises(ContractRevertError) as caught:
        outsider.accept_query(query.query_id)
    assert caught.value.error_name == "NotAssignedAggregator"
    assert caught.value.arguments == {"queryId": query.query_id, "caller": _sender(outsider).address}


@pytest.fixture(scope="module")
def thrower_abi() -> tuple[list, bytes]:  # type: ignore[type-arg]
    output = solcx.compile_standard(
        {
            "language": "Solidity",
            "sources": {"Thrower.sol": {"content": THROWER_SOURCE}},
            "settings": {"outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
        },
        solc_binary=find_solc(),
    )
    compiled = output["contracts"]["Thrower.sol"]["Thrower"]
    return compiled["abi"], bytes.fromhex(compiled["evm"]["bytecode"]["object"])


@pytest.fixture
def thrower(harness: MarketHarness, thrower_abi: tuple[list, bytes]) -> tuple[TransactionSender, ContractAbi, str]:  # type: ignore[type-arg]
    abi_list, bytecode = thrower_abi
    sender = _sender(harness.new_client())
    receipt = sender.send(ContractCall(to=None, data=bytecode, function="Thrower constructor"))
    assert receipt.contract_address is not None
    return sender, ContractAbi(abi_list), receipt.contract_address


def _thrower_call(abi: ContractAbi, address: str, function: str, *arguments: object, gas: int | None = None) -> ContractCall:
    return ContractCall(to=address, data=abi.encode_call(function, list(arguments)), function=function, abi=abi, gas=gas)


def test_error_string_decoded(thrower: tuple[TransactionSender, ContractAbi, str], w3: Web3) -> None:
    sender, abi, address = thrower
    with nothing_sent(w3, sender), pytest.raises(ContractRevertError) as caught:
        sender.send(_thrower_call(abi, address, "withReason", True))
    assert caught.value.error_name == "Error"
    assert caught.value.arguments == {"reason": "reason text"}
    assert str(caught.value) == 'withReason reverted: Error("reason text")'


def test_panic_decoded(thrower: tuple[TransactionSender, ContractAbi, str], w3: Web3) -> None:
    sender, abi, address = thrower
    with nothing_sent(w3, sender), pytest.raises(ContractRevertError) as caught:
        sender.send(_thrower_call(abi, address, "overflow", 1))
    assert caught.value.error_name == "Panic"
    assert caught.value.arguments["code"] == 0x11
    assert str(caught.value) == "overflow reverted: Panic(0x11: arithmetic overflow or underflow)"


def test_other_contract_custom_error(thrower: tuple[TransactionSender, ContractAbi, str], w3: Web3) -> None:
    sender, abi, address = thrower
    with nothing_sent(w3, sender), pytest.raises(ContractRevertError) as caught:
        sender.send(_thrower_call(abi, address, "custom"))
    assert caught.value.error_name == "Custom"
    assert caught.value.arguments == {"amount": 7, "caller": sender.address}


def test_on_chain_revert_raises_failed_with_reason(thrower: tuple[TransactionSender, ContractAbi, str], w3: Web3) -> None:
    sender, abi, address = thrower
    # An explicit gas limit skips estimation, so the reverting call is mined with status 0.
    with pytest.raises(TransactionFailedError) as caught:
        sender.send(_thrower_call(abi, address, "custom", gas=100_000))
    receipt = w3.eth.get_transaction_receipt(caught.value.transaction_hash)
    assert receipt["status"] == 0
    assert caught.value.revert is not None
    assert caught.value.revert.error_name == "Custom"
    assert caught.value.revert.arguments == {"amount": 7, "caller": sender.address}


def test_unknown_selector_reported_in_words() -> None:
    error = revert_error_from_data("someCall", bytes.fromhex("deadbeef") + bytes(32), ContractAbi([]))
    assert error.error_name is None
    assert str(error) == "someCall reverted: unknown error with selector 0xdeadbeef (36 bytes of revert data)"
    empty = revert_error_from_data("someCall", b"", None)
    assert "no revert data" in str(empty)
