"""Session fixtures shared by every suite: one real Anvil node and one deployed market.

Tests stay independent by using fresh accounts (`harness.new_client()`) and fresh queries, never by
restarting the node. A test that must rewind the chain uses `evm_snapshot`/`evm_revert` and then
calls `pmsr_chain.reset_nonces()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from pmsr_chain import (
    ETHER,
    AnvilConfig,
    AnvilNode,
    ArtifactSet,
    Deployment,
    MarketClient,
    MarketParameters,
    TransactionSender,
    compile_contracts,
    deploy_market,
    market_client,
)
from pmsr_chain.testing import MarketHarness

# Parameters of the session's market: short periods so tests move the clock by minutes, not days.
TEST_PARAMETERS = MarketParameters(
    min_owner_stake=ETHER // 100,
    min_aggregator_stake=ETHER,
    unbonding_period=24 * 3600,
    complaint_period=600,
    slash_amount=ETHER // 2,
    max_aggregators=5,
    max_output_length=512,
)


@pytest.fixture(scope="session")
def artifacts() -> ArtifactSet:
    """The compiled contracts (rebuilt only when a source changed)."""
    return compile_contracts()


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """One Anvil process for the whole session, on a free 127.0.0.1 port, instant mining."""
    log_path = tmp_path_factory.mktemp("anvil") / "anvil.log"
    with AnvilNode(AnvilConfig(accounts=10), log_path=log_path) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil_node: AnvilNode) -> Web3:
    return anvil_node.web3


@pytest.fixture(scope="session")
def deployer(anvil_node: AnvilNode) -> TransactionSender:
    """Sender for Anvil's first development account, which deploys the market."""
    return TransactionSender(anvil_node.web3, anvil_node.accounts[0])


@pytest.fixture(scope="session")
def market_parameters() -> MarketParameters:
    return TEST_PARAMETERS


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's data directory; the deployment manifest is written under it."""
    return tmp_path_factory.mktemp("pmsr-data")


@pytest.fixture(scope="session")
def deployment(
    deployer: TransactionSender, market_parameters: MarketParameters, artifacts: ArtifactSet, data_dir: Path
) -> Deployment:
    """The market deployed once per session, with its manifest in `data_dir`."""
    return deploy_market(deployer, market_parameters, artifact=artifacts["DataMarket"], data_dir=data_dir)


@pytest.fixture(scope="session")
def market(w3: Web3, deployment: Deployment, artifacts: ArtifactSet) -> MarketClient:
    """A read-only client of the session's market; `market.with_sender(...)` writes."""
    return market_client(w3, deployment, artifact=artifacts["DataMarket"])


@pytest.fixture(scope="session")
def harness(market: MarketClient) -> MarketHarness:
    """Builds scenarios (funded accounts, aggregators, owners, queries) on the session's market."""
    return MarketHarness(market)
