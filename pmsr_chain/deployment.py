"""Deploy `DataMarket`, record the deployment in a per-chain manifest, and verify a manifest.

A manifest lives at `<data dir>/deployments/<chainId>.json` and records what was deployed where:
chain id, address, block, deployer, artifact hash, constructor parameters and transaction hash.
`verify_deployment` checks a manifest against the chain and the current artifact before a client
trusts the address.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eth_abi
from eth_utils import to_checksum_address
from web3 import Web3

from ._paths import repository_root
from .abi import ContractAbi, abi_type
from .client import MarketClient
from .compiler import ContractArtifact, load_artifact
from .errors import ConfigurationError, DeploymentError, ManifestMismatchError
from .parameters import MarketParameters
from .rpc import rpc_request
from .transactions import ContractCall, TransactionSender

__all__ = [
    "MARKET_CONTRACT",
    "Deployment",
    "default_data_dir",
    "manifest_path",
    "deploy_market",
    "write_manifest",
    "load_manifest",
    "verify_deployment",
    "load_deployment",
    "market_client",
]

logger = logging.getLogger(__name__)

MARKET_CONTRACT = "DataMarket"
DATA_DIR_ENV = "PMSR_DATA_DIR"


def default_data_dir() -> Path:
    """Return `$PMSR_DATA_DIR`, or `.pmsr` in the repository."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else repository_root() / ".pmsr"


def manifest_path(data_dir: Path, chain_id: int) -> Path:
    return Path(data_dir) / "deployments" / f"{chain_id}.json"


@dataclass(frozen=True)
class Deployment:
    """One deployed market, as recorded in its manifest."""

    chain_id: int
    address: str
    block_number: int
    deployer: str
    artifact_hash: str
    parameters: MarketParameters
    transaction_hash: str
    contract: str = MARKET_CONTRACT

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "contract": self.contract,
            "address": self.address,
            "block": self.block_number,
            "deployer": self.deployer,
            "artifactHash": self.artifact_hash,
            "parameters": self.parameters.to_json(),
            "transactionHash": self.transaction_hash,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Deployment:
        return cls(
            chain_id=int(document["chainId"]),
            address=to_checksum_address(document["address"]),
            block_number=int(document["block"]),
            deployer=to_checksum_address(document["deployer"]),
            artifact_hash=str(document["artifactHash"]),
            parameters=MarketParameters.from_json(document["parameters"]),
            transaction_hash=str(document["transactionHash"]),
            contract=str(document.get("contract", MARKET_CONTRACT)),
        )


def _creation_code(artifact: ContractArtifact, parameters: MarketParameters) -> bytes:
    if not artifact.is_deployable:
        raise DeploymentError(f"{artifact.name} has no bytecode (abstract contract or interface); deploy a concrete contract")
    constructor = ContractAbi(artifact.abi).constructor
    if constructor is None:
        raise DeploymentError(f"{artifact.name} has no constructor, but DataMarket takes seven parameters")
    types = [abi_type(p) for p in constructor["inputs"]]
    arguments = parameters.constructor_arguments()
    if len(types) != len(arguments):
        raise DeploymentError(
            f"{artifact.name}'s constructor takes {len(types)} arguments, MarketParameters has {len(arguments)}; "
            "update MarketParameters to match the contract"
        )
    return artifact.bytecode + eth_abi.encode(types, arguments)


def deploy_market(
    sender: TransactionSender,
    parameters: MarketParameters | None = None,
    *,
    artifact: ContractArtifact | None = None,
    data_dir: Path | None = None,
) -> Deployment:
    """Deploy `DataMarket` from `sender` and wait for the receipt.

    The manifest is written to `data_dir` when one is given. A constructor that would revert raises
    `ContractRevertError` with the decoded error (for example `InvalidConstructorArgument`).
    """
    parameters = parameters or MarketParameters()
    artifact = artifact or load_artifact(MARKET_CONTRACT)
    call = ContractCall(
        to=None,
        data=_creation_code(artifact, parameters),
        function=f"{artifact.name} constructor",
        abi=ContractAbi(artifact.abi),
    )
    receipt = sender.send(call)
    if receipt.contract_address is None:
        raise DeploymentError(f"deployment transaction {receipt.transaction_hash} created no contract")
    deployment = Deployment(
        chain_id=sender.chain_id,
        address=receipt.contract_address,
        block_number=receipt.block_number,
        deployer=sender.address,
        artifact_hash=artifact.artifact_hash,
        parameters=parameters,
        transaction_hash=receipt.transaction_hash,
        contract=artifact.name,
    )
    logger.info(
        "deployed %s at %s on chain %d in block %d (gas %d)",
        artifact.name, deployment.address, deployment.chain_id, deployment.block_number, receipt.gas_used,
    )
    if data_dir is not None:
        write_manifest(data_dir, deployment)
    return deployment


def write_manifest(data_dir: Path, deployment: Deployment) -> Path:
    """Write the manifest for `deployment.chain_id` atomically (sorted keys) and return its path."""
    path = manifest_path(data_dir, deployment.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps(deployment.to_json(), sort_keys=True, indent=2) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(content)
        temporary = Path(handle.name)
    os.replace(temporary, path)
    return path


def load_manifest(data_dir: Path, chain_id: int) -> Deployment:
    """Read the manifest of `chain_id`; raise `DeploymentError` when it is missing or malformed."""
    path = manifest_path(data_dir, chain_id)
    if not path.is_file():
        raise DeploymentError(f"no deployment manifest for chain {chain_id} at {path}; run `pmsr deploy` first")
    try:
        return Deployment.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DeploymentError(f"deployment manifest {path} is malformed ({error}); deploy again") from error


def _masked(code: bytes, ranges: tuple[tuple[int, int], ...]) -> bytes:
    buffer = bytearray(code)
    for start, length in ranges:
        buffer[start: start + length] = bytes(length)
    return bytes(buffer)


def verify_deployment(w3: Web3, deployment: Deployment, artifact: ContractArtifact | None = None) -> None:
    """Check a manifest against the chain and the artifact; raise `ManifestMismatchError` on any difference.

    It compares the chain id, checks that the address has code, and compares the manifest's
    artifact hash with the current artifact. It then compares the runtime code with the
    artifact's (immutables masked) and the constructor parameters with the contract's views.
    """
    artifact = artifact or load_artifact(deployment.contract)
    chain_id = int(rpc_request(w3, "eth_chainId", []), 16)
    if chain_id != deployment.chain_id:
        raise ManifestMismatchError(f"manifest is for chain {deployment.chain_id}, but the node is chain {chain_id}")
    code = bytes.fromhex(rpc_request(w3, "eth_getCode", [deployment.address, "latest"]).removeprefix("0x"))
    if not code:
        raise ManifestMismatchError(
            f"no contract code at {deployment.address} on chain {chain_id}; the chain was reset or the manifest "
            "is stale: deploy again"
        )
    if deployment.artifact_hash != artifact.artifact_hash:
        raise ManifestMismatchError(
            f"manifest artifact hash {deployment.artifact_hash} differs from the compiled {artifact.name} "
            f"({artifact.artifact_hash}); the contract changed since deployment: deploy again"
        )
    expected = artifact.deployed_bytecode
    if len(code) != len(expected) or _masked(code, artifact.immutable_ranges) != _masked(expected, artifact.immutable_ranges):
        raise ManifestMismatchError(
            f"runtime code at {deployment.address} ({len(code)} bytes) is not the compiled {artifact.name} "
            f"({len(expected)} bytes); deploy again"
        )
    on_chain = MarketClient(w3, deployment.address, artifact.abi).parameters()
    if on_chain != deployment.parameters:
        raise ManifestMismatchError(
            f"manifest parameters {deployment.parameters} differ from the contract's {on_chain}; the manifest was edited"
        )


def load_deployment(w3: Web3, data_dir: Path | None = None, *, artifact: ContractArtifact | None = None) -> Deployment:
    """Load the manifest for `w3`'s chain from `data_dir` and verify it (see `verify_deployment`)."""
    data_dir = data_dir or default_data_dir()
    chain_id = int(rpc_request(w3, "eth_chainId", []), 16)
    deployment = load_manifest(data_dir, chain_id)
    verify_deployment(w3, deployment, artifact)
    return deployment


def market_client(
    w3: Web3, deployment: Deployment, sender: TransactionSender | None = None, *, artifact: ContractArtifact | None = None
) -> MarketClient:
    """Return a `MarketClient` for a deployment, with the ABI of its artifact."""
    artifact = artifact or load_artifact(deployment.contract)
    if artifact.artifact_hash != deployment.artifact_hash:
        raise ConfigurationError(
            f"artifact {artifact.artifact_hash} does not match deployment {deployment.artifact_hash}; deploy again"
        )
    return MarketClient(w3, deployment.address, artifact.abi, sender)
