"""Chain side of PMSR market: contracts, Anvil, deployment, transactions and events.

Typical use against a local chain:

    from pmsr_chain import AnvilNode, TransactionSender, deploy_market, market_client

    with AnvilNode() as node:
        deployer = TransactionSender(node.web3, node.accounts[0])
        deployment = deploy_market(deployer)
        market = market_client(node.web3, deployment, deployer)
        print(market.parameters())
"""

from .abi import ContractAbi
from .anvil import (
    DEFAULT_CHAIN_ID,
    DEFAULT_MNEMONIC,
    AnvilConfig,
    AnvilNode,
    dev_accounts,
    increase_time,
    latest_timestamp,
    mine,
    new_funded_account,
    revert_to_snapshot,
    set_balance,
    snapshot,
)
from .client import MarketCalls, MarketClient, ProposedQuery, aggregate_commitment, spec_hash
from .compiler import ArtifactSet, CompilerSettings, ContractArtifact, compile_contracts, load_artifact
from .deployment import (
    MARKET_CONTRACT,
    Deployment,
    default_data_dir,
    deploy_market,
    load_deployment,
    load_manifest,
    manifest_path,
    market_client,
    verify_deployment,
    write_manifest,
)
from .errors import (
    AnvilError,
    CompilationError,
    ConfigurationError,
    ContractRevertError,
    DeploymentError,
    InvalidInputError,
    ManifestMismatchError,
    PmsrError,
    RpcError,
    TransactionError,
    TransactionFailedError,
    TransactionTimeoutError,
)
from .events import (
    EVENT_TYPES,
    BlockCursor,
    EventPoller,
    EventRecord,
    JsonFileCursor,
    LogReader,
    MemoryCursor,
)
from .parameters import ETHER, MarketParameters
from .rpc import RetryPolicy, make_web3, rpc_request
from .transactions import (
    GWEI,
    ContractCall,
    FeePolicy,
    NonceManager,
    PendingTransaction,
    Receipt,
    SenderConfig,
    TransactionSender,
    forget_endpoint,
    nonce_manager,
    reset_nonces,
    send_all,
    wait_for_all,
)
from .types import (
    AggregatorInfo,
    AggregatorQueryState,
    CancelReason,
    OwnerInfo,
    OwnerPolicy,
    QueryInfo,
    QueryParams,
    QueryStatus,
    SubmissionState,
    Template,
    ciphertext_length,
)

__all__ = [
    # compiling
    "ArtifactSet", "CompilerSettings", "ContractArtifact", "compile_contracts", "load_artifact",
    # Anvil
    "DEFAULT_CHAIN_ID", "DEFAULT_MNEMONIC", "AnvilConfig", "AnvilNode", "dev_accounts", "increase_time",
    "latest_timestamp", "mine", "new_funded_account", "revert_to_snapshot", "set_balance", "snapshot",
    # deployment
    "MARKET_CONTRACT", "Deployment", "default_data_dir", "deploy_market", "load_deployment", "load_manifest",
    "manifest_path", "market_client", "verify_deployment", "write_manifest", "MarketParameters", "ETHER",
    # client and types
    "ContractAbi", "MarketCalls", "MarketClient", "ProposedQuery", "aggregate_commitment", "spec_hash",
    "AggregatorInfo", "AggregatorQueryState", "CancelReason", "OwnerInfo", "OwnerPolicy", "QueryInfo",
    "QueryParams", "QueryStatus", "SubmissionState", "Template", "ciphertext_length",
    # events
    "EVENT_TYPES", "BlockCursor", "EventPoller", "EventRecord", "JsonFileCursor", "LogReader", "MemoryCursor",
    # transactions
    "GWEI", "ContractCall", "FeePolicy", "NonceManager", "PendingTransaction", "Receipt", "SenderConfig",
    "TransactionSender", "forget_endpoint", "nonce_manager", "reset_nonces", "send_all", "wait_for_all",
    "RetryPolicy", "make_web3", "rpc_request",
    # errors
    "AnvilError", "CompilationError", "ConfigurationError", "ContractRevertError", "DeploymentError",
    "InvalidInputError", "ManifestMismatchError", "PmsrError", "RpcError", "TransactionError",
    "TransactionFailedError", "TransactionTimeoutError",
]
