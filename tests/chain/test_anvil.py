"""The embedded Anvil node: dev accounts, state persistence, mining modes and receipt waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmsr_chain import (
    AnvilConfig,
    AnvilNode,
    ContractCall,
    InvalidInputError,
    RpcError,
    SenderConfig,
    TransactionSender,
    TransactionTimeoutError,
    dev_accounts,
    make_web3,
    rpc_request,
)


def test_dev_accounts_match_node(anvil_node: AnvilNode) -> None:
    node_accounts = rpc_request(anvil_node.web3, "eth_accounts", [])
    derived = [account.address for account in anvil_node.accounts]
    assert [a.lower() for a in node_accounts] == [a.lower() for a in derived]
    assert derived[0] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert len(dev_accounts(3)) == 3


def test_node_on_loopback_with_chain_id(anvil_node: AnvilNode) -> None:
    assert anvil_node.url.startswith("http://127.0.0.1:")
    assert anvil_node.web3.eth.chain_id == 31337
    assert anvil_node.running


def test_new_funded_account(anvil_node: AnvilNode) -> None:
    account = anvil_node.new_funded_account(12345)
    assert anvil_node.web3.eth.get_balance(account.address) == 12345
    assert account.address not in {a.address for a in anvil_node.accounts}


def test_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "chain-state.json"
    config = AnvilConfig(accounts=1, state_path=state, chain_id=4242)
    with AnvilNode(config) as first:
        account = first.new_funded_account(777)
        address = account.address
    assert state.is_file()
    with AnvilNode(config) as second:
        assert second.web3.eth.get_balance(address) == 777
        assert second.web3.eth.chain_id == 4242


def test_stop_ends_process() -> None:
    node = AnvilNode(AnvilConfig(accounts=1)).start()
    url = node.url
    node.stop()
    assert not node.running
    with pytest.raises(RpcError, match="check that the node is running"):
        rpc_request(make_web3(url), "eth_chainId", [], retries=0)


def test_receipt_timeout_without_mining() -> None:
    with AnvilNode(AnvilConfig(accounts=1, extra_args=("--no-mining",))) as node:
        sender = TransactionSender(node.web3, node.accounts[0], SenderConfig(receipt_timeout=0.5))
        pending = sender.submit(ContractCall(to=node.accounts[0].address, data=b"", value=1, function="transfer"))
        with pytest.raises(TransactionTimeoutError) as caught:
            sender.wait(pending)
        assert caught.value.transaction_hash == pending.transaction_hash
        rpc_request(node.web3, "evm_mine", [])
        assert sender.wait(pending).status == 1


def test_block_time_with_confirmations() -> None:
    with AnvilNode(AnvilConfig(accounts=1, block_time=1)) as node:
        sender = TransactionSender(node.web3, node.accounts[0], SenderConfig(confirmations=1, receipt_timeout=20))
        receipt = sender.transfer(node.accounts[0].address, 1)
        assert receipt.status == 1
        assert node.web3.eth.block_number >= receipt.block_number + 1


def test_invalid_config_rejected() -> None:
    with pytest.raises(InvalidInputError, match="block_time"):
        AnvilConfig(block_time=0)
    with pytest.raises(InvalidInputError, match="port"):
        AnvilConfig(port=70000)


def test_restart_on_same_port_resets_nonces() -> None:
    """A restarted node starts from nonce 0; the sender must not reuse the old node's nonces."""
    first = AnvilNode(AnvilConfig(accounts=1)).start()
    port = first.port
    assert port is not None
    sender = TransactionSender(first.web3, first.accounts[0], SenderConfig(receipt_timeout=5))
    sender.transfer(first.accounts[0].address, 1)
    sender.transfer(first.accounts[0].address, 1)
    first.stop()

    with AnvilNode(AnvilConfig(accounts=1, port=port, chain_id=777)) as second:
        again = TransactionSender(second.web3, second.accounts[0], SenderConfig(receipt_timeout=5))
        receipt = again.transfer(second.accounts[0].address, 1)
        assert receipt.status == 1
        assert second.web3.eth.get_transaction(receipt.transaction_hash)["nonce"] == 0
        assert second.web3.eth.get_transaction(receipt.transaction_hash)["chainId"] == 777
