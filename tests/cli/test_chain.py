"""`pmsr chain up|down|status`: Anvil in the background, and its state across a restart."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import PMSR, assert_one_line_error, file_state, free_port, run_cli, subprocess_environment


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = {"PMSR_DATA_DIR": str(tmp_path / "data"), "PMSR_PASSWORD": "chain test"}
    yield environment
    run_cli("chain", "down", env=environment)


def test_chain_restart_keeps_market_and_balances(env: dict[str, str]) -> None:
    port = free_port()
    # A subprocess shows that Anvil outlives the command that started it.
    started = subprocess.run(
        [str(PMSR), "chain", "up", "--port", str(port), "--block-time", "0", "--accounts", "3", "--json"],
        env=subprocess_environment(env), capture_output=True, text=True, timeout=120,
    )
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    assert record["url"] == f"http://127.0.0.1:{port}"
    assert [account["balanceWei"] for account in record["developmentAccounts"]] == [str(10_000 * 10**18)] * 3

    status = run_cli("chain", "status", "--json", env=env)
    assert status.json()["running"] is True
    assert status.json()["pid"] == record["pid"]
    again = run_cli("chain", "up", env=env)
    assert f"already running (pid {record['pid']})" in again.stdout

    assert run_cli("deploy", "--dev-account", "0", env=env).status == 0
    assert run_cli("wallet", "new", "keeper", "--light-kdf", env=env).status == 0
    assert run_cli("wallet", "fund", "keeper", "3ether", "--dev-account", "0", env=env).status == 0

    stopped = run_cli("chain", "down", "--json", env=env)
    assert stopped.json()["stopped"] is True
    after_stop = run_cli("chain", "status", "--json", env=env).json()
    assert after_stop["running"] is False
    assert after_stop["stateSaved"] is True
    assert_one_line_error(run_cli("query", "list", env=env), f"127.0.0.1:{port}", "pmsr chain up")

    restarted = run_cli("chain", "up", "--json", env=env)
    assert restarted.status == 0, restarted
    assert restarted.json()["url"] == record["url"]
    balance = run_cli("wallet", "balance", "keeper", "--json", env=env).json()
    assert balance["balanceWei"] == str(3 * 10**18)
    # The manifest still verifies: the market's code and parameters survived the restart.
    assert run_cli("query", "list", "--json", env=env).json() == []
    assert run_cli("chain", "status", "--json", env=env).json()["market"] is not None

    # The saved state belongs to chain 31337: another chain id needs --fresh, and nothing changes.
    assert run_cli("chain", "down", env=env).status == 0
    chain_dir = Path(env["PMSR_DATA_DIR"]) / "chain"
    before = file_state(chain_dir)
    changed = run_cli("chain", "up", "--chain-id", "1337", env=env)
    assert_one_line_error(changed, "chain id 31337, not 1337", "--fresh")
    assert file_state(chain_dir) == before
    assert run_cli("chain", "status", "--json", env=env).json()["running"] is False


def test_chain_down_when_not_running(env: dict[str, str]) -> None:
    result = run_cli("chain", "down", env=env)

    assert result.status == 0
    assert "not running" in result.stdout
