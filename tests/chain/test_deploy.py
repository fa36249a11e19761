"""Deployment: the manifest round trip, and manifests that do not match the chain or the artifact."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from pmsr_chain import (
    ArtifactSet,
    ContractArtifact,
    ContractCall,
    Deployment,
    DeploymentError,
    InvalidInputError,
    ManifestMismatchError,
    MarketClient,
    MarketParameters,
    TransactionSender,
    deploy_market,
    load_deployment,
    load_manifest,
    manifest_path,
    verify_deployment,
    write_manifest,
)
from pmsr_chain.testing import MarketHarness


@pytest.fixture
def market_artifact(artifacts: ArtifactSet) -> ContractArtifact:
    """The session's compiled market, so a source edited during the run does not change it."""
    return artifacts["DataMarket"]


def test_manifest_written_per_chain(deployment: Deployment, data_dir: Path, w3: Web3) -> None:
    path = data_dir / "deployments" / "31337.json"
    assert path == manifest_path(data_dir, 31337)
    document = json.loads(path.read_text())
    assert document["chainId"] == 31337
    assert Web3.to_checksum_address(document["address"]) == deployment.address
    assert document["block"] == deployment.block_number
    assert document["deployer"] == deployment.deployer
    assert document["artifactHash"] == deployment.artifact_hash
    assert document["transactionHash"] == deployment.transaction_hash
    assert document["parameters"]["complaintPeriod"] == deployment.parameters.complaint_period
    receipt = w3.eth.get_transaction_receipt(deployment.transaction_hash)
    assert receipt["contractAddress"] == deployment.address
    assert receipt["blockNumber"] == deployment.block_number


def test_manifest_round_trip(
    deployment: Deployment, data_dir: Path, w3: Web3, market_artifact: ContractArtifact
) -> None:
    assert load_manifest(data_dir, 31337) == deployment
    assert load_deployment(w3, data_dir, artifact=market_artifact) == deployment


def test_contract_holds_manifest_parameters(market: MarketClient, market_parameters: MarketParameters) -> None:
    assert market.parameters() == market_parameters
    assert market.query_count() >= 0


def _write_altered(directory: Path, deployment: Deployment) -> Deployment:
    write_manifest(directory, deployment)
    return load_manifest(directory, deployment.chain_id)


def test_changed_artifact_hash_detected(
    deployment: Deployment, w3: Web3, tmp_path: Path, market_artifact: ContractArtifact
) -> None:
    altered = _write_altered(tmp_path, replace(deployment, artifact_hash="0x" + "ab" * 32))
    with pytest.raises(ManifestMismatchError, match="artifact hash"):
        verify_deployment(w3, altered, market_artifact)
    with pytest.raises(ManifestMismatchError):
        load_deployment(w3, tmp_path, artifact=market_artifact)


def test_address_without_code_detected(
    deployment: Deployment, w3: Web3, tmp_path: Path, market_artifact: ContractArtifact
) -> None:
    altered = _write_altered(tmp_path, replace(deployment, address="0x" + "11" * 20))
    with pytest.raises(ManifestMismatchError, match="no contract code"):
        verify_deployment(w3, altered, market_artifact)


def test_other_contract_at_address_detected(
    deployment: Deployment, w3: Web3, harness: MarketHarness, market_artifact: ContractArtifact
) -> None:
    sender = harness.new_client().sender
    assert sender is not None
    # Creation code whose runtime code is the single byte 0x00: a contract, but not DataMarket.
    creation = bytes.fromhex("600060005360016000f3")
    receipt = sender.send(ContractCall(to=None, data=creation, function="one-byte contract"))
    assert receipt.contract_address is not None
    assert w3.eth.get_code(receipt.contract_address) == b"\x00"
    with pytest.raises(ManifestMismatchError, match="runtime code"):
        verify_deployment(w3, replace(deployment, address=receipt.contract_address), market_artifact)


def test_edited_parameters_detected(deployment: Deployment, w3: Web3, market_artifact: ContractArtifact) -> None:
    edited = replace(deployment, parameters=replace(deployment.parameters, slash_amount=1))
    with pytest.raises(ManifestMismatchError, match="parameters"):
        verify_deployment(w3, edited, market_artifact)


def test_other_chain_id_detected(deployment: Deployment, w3: Web3, market_artifact: ContractArtifact) -> None:
    with pytest.raises(ManifestMismatchError, match="chain 1"):
        verify_deployment(w3, replace(deployment, chain_id=1), market_artifact)


def test_missing_manifest_raises(tmp_path: Path, w3: Web3, market_artifact: ContractArtifact) -> None:
    with pytest.raises(DeploymentError, match="no deployment manifest"):
        load_deployment(w3, tmp_path, artifact=market_artifact)


def test_malformed_manifest_raises(tmp_path: Path, w3: Web3) -> None:
    path = manifest_path(tmp_path, 31337)
    path.parent.mkdir(parents=True)
    path.write_text('{"chainId": 31337}')
    with pytest.raises(DeploymentError, match="malformed"):
        load_manifest(tmp_path, 31337)


def test_second_deployment_gets_own_address(
    harness: MarketHarness, artifacts: ArtifactSet, deployment: Deployment, w3: Web3, tmp_path: Path
, market_artifact: ContractArtifact) -> None:
    client = harness.new_client()
    sender: TransactionSender | None = client.sender
    assert sender is not None
    parameters = MarketParameters(max_aggregators=3, max_output_length=16)
    second = deploy_market(sender, parameters, artifact=market_artifact, data_dir=tmp_path)
    assert second.address != deployment.address
    assert second.deployer == sender.address
    assert load_deployment(w3, tmp_path, artifact=market_artifact) == second


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_owner_stake", 0),
        ("min_aggregator_stake", 0),
        ("slash_amount", 0),
        ("max_aggregators", 1),
        ("max_output_length", 0),
        ("complaint_period", -1),
        ("unbonding_period", 2**256),
    ],
)
def test_invalid_parameters_rejected(field: str, value: int) -> None:
    with pytest.raises(InvalidInputError, match=field):
        MarketParameters(**{field: value})


def test_parameters_json_round_trip() -> None:
    parameters = MarketParameters(complaint_period=60, max_output_length=7)
    document = parameters.to_json()
    assert document["complaintPeriod"] == 60
    assert MarketParameters.from_json(document) == parameters
    with pytest.raises(InvalidInputError, match="unknown"):
        MarketParameters.from_json({**document, "extra": 1})
