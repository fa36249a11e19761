"""Compiling: deterministic artifacts, foundry.toml settings, rebuild only when an input changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pmsr_chain import ArtifactSet, CompilationError, compile_contracts
from pmsr_chain._paths import repository_root
from pmsr_chain.compiler import CompilerSettings, read_compiler_settings

SMALL_CONTRACT = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract Counter {
    uint256 public count;
    function increment() external { count += 1; }
}
"""


@pytest.fixture
def small_root(tmp_path: Path) -> Path:
    """A throwaway repository with one small contract, sharing the real compiler install."""
    root = tmp_path / "repo"
    (root / "contracts" / "test").mkdir(parents=True)
    (root / "contracts" / "Counter.sol").write_text(SMALL_CONTRACT)
    # Sources under contracts/test are Foundry tests: this one would fail to compile if included.
    (root / "contracts" / "test" / "Broken.t.sol").write_text("this is not Solidity")
    (root / "foundry.toml").write_text((repository_root() / "foundry.toml").read_text())
    os.symlink(repository_root() / "scripts", root / "scripts")
    os.symlink(repository_root() / "node_modules", root / "node_modules")
    return root


def test_market_artifact_has_abi_and_bytecode(artifacts: ArtifactSet) -> None:
    market = artifacts["DataMarket"]
    names = {item.get("name") for item in market.abi}
    assert {"proposeQuery", "submitShares", "QueryProposed", "BudgetExceeded"} <= names
    assert market.bytecode
    assert market.deployed_bytecode
    assert market.artifact_hash.startswith("0x")
    assert len(market.artifact_hash) == 66
    assert market.path == artifacts.directory / "DataMarket.json"


def test_artifact_file_is_canonical_json(artifacts: ArtifactSet) -> None:
    raw = artifacts["DataMarket"].path.read_text()
    document = json.loads(raw)
    assert raw == json.dumps(document, sort_keys=True, indent=2) + "\n"
    assert not any("time" in key.lower() or "date" in key.lower() for key in document)
    assert document["compiler"]["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert document["compiler"]["settings"]["evmVersion"] == "cancun"


def test_test_sources_are_not_compiled(artifacts: ArtifactSet) -> None:
    sources = {artifact.source for artifact in artifacts.contracts.values()}
    assert all(not source.startswith("contracts/test/") for source in sources)


def test_settings_follow_foundry_toml() -> None:
    assert read_compiler_settings() == CompilerSettings(optimizer=True, optimizer_runs=200, evm_version="cancun")


def test_rebuild_only_on_change(small_root: Path) -> None:
    first = compile_contracts(small_root)
    assert first.rebuilt
    artifact_path = first["Counter"].path
    first_bytes = artifact_path.read_bytes()
    first_mtime = artifact_path.stat().st_mtime_ns

    unchanged = compile_contracts(small_root)
    assert not unchanged.rebuilt
    assert unchanged.inputs_hash == first.inputs_hash
    assert artifact_path.stat().st_mtime_ns == first_mtime
    assert unchanged["Counter"].artifact_hash == first["Counter"].artifact_hash

    source = small_root / "contracts" / "Counter.sol"
    source.write_text(SMALL_CONTRACT.replace("count += 1", "count += 2"))
    edited = compile_contracts(small_root)
    assert edited.rebuilt
    assert edited.inputs_hash != first.inputs_hash
    assert edited["Counter"].artifact_hash != first["Counter"].artifact_hash

    source.write_text(SMALL_CONTRACT)
    restored = compile_contracts(small_root)
    assert restored.rebuilt
    assert artifact_path.read_bytes() == first_bytes


def test_settings_change_triggers_rebuild(small_root: Path) -> None:
    first = compile_contracts(small_root)
    config = small_root / "foundry.toml"
    config.write_text(config.read_text().replace("optimizer_runs = 200", "optimizer_runs = 1000"))
    changed = compile_contracts(small_root)
    assert changed.rebuilt
    assert changed.inputs_hash != first.inputs_hash
    assert json.loads(changed["Counter"].path.read_text())["compiler"]["settings"]["optimizer"]["runs"] == 1000


def test_forced_builds_are_byte_identical(small_root: Path) -> None:
    first = compile_contracts(small_root, force=True)
    first_bytes = first["Counter"].path.read_bytes()
    second = compile_contracts(small_root, force=True)
    assert second.rebuilt
    assert second["Counter"].path.read_bytes() == first_bytes


def test_removed_contract_loses_its_artifact(small_root: Path) -> None:
    (small_root / "contracts" / "Extra.sol").write_text(SMALL_CONTRACT.replace("Counter", "Extra"))
    with_extra = compile_contracts(small_root)
    extra_path = with_extra["Extra"].path
    assert extra_path.is_file()
    (small_root / "contracts" / "Extra.sol").unlink()
    without_extra = compile_contracts(small_root)
    assert "Extra" not in without_extra.contracts
    assert not extra_path.exists()


def test_syntax_error_raises_compilation_error(small_root: Path) -> None:
    (small_root / "contracts" / "Counter.sol").write_text(SMALL_CONTRACT.replace("count += 1;", "count += ;"))
    with pytest.raises(CompilationError, match="Counter.sol"):
        compile_contracts(small_root)
