"""`pmsr chain up|down|status`: a local Anvil chain that runs in the background.

The chain lives in `<data-dir>/chain/`. `state.json` is Anvil's state file: it is loaded at start
and written every few seconds and at shutdown, so a restart keeps deployments and balances.
`settings.json` keeps the chain's settings for the next start, `node.json` records the running
process (pid, port, URL) and `anvil.log` collects Anvil's output. Other commands find the chain's
URL in `node.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import node_record_path
from .context import Context
from .errors import CliError
from .options import add_command, add_group, duration, non_negative_int, positive_int
from .output import format_table

__all__ = ["register", "ChainFiles", "read_node_record", "node_is_running"]

DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
DEFAULT_BLOCK_TIME = 1
DEFAULT_ACCOUNTS = 10
DEFAULT_BALANCE_ETHER = 10_000
# Anvil also writes its state file on this interval, so a crash loses at most this much.
STATE_INTERVAL_SECONDS = 5
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0

# Anvil processes this Python process started (in-process tests call `main` directly); kept so
# that stopping one also reaps it.
_started: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ChainFiles:
    directory: Path

    @classmethod
    def of(cls, data_dir: Path) -> ChainFiles:
        return cls(data_dir / "chain")

    @property
    def record(self) -> Path:
        return node_record_path(self.directory.parent)

    @property
    def settings(self) -> Path:
        return self.directory / "settings.json"

    @property
    def state(self) -> Path:
        return self.directory / "state.json"

    @property
    def log(self) -> Path:
        return self.directory / "anvil.log"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "chain", "run a local Anvil chain in the background")

    up = add_command(actions, common, "up", "start the local chain (or report the one running)", run_up)
    up.add_argument("--port", type=positive_int, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT})")
    up.add_argument("--chain-id", type=positive_int, help=f"chain id (default {DEFAULT_CHAIN_ID})")
    up.add_argument("--block-time", type=duration, metavar="DURATION",
                    help=f"mine a block every DURATION, or 0 for a block per transaction (default {DEFAULT_BLOCK_TIME}s)")
    up.add_argument("--accounts", type=non_negative_int, help=f"development accounts to fund (default {DEFAULT_ACCOUNTS})")
    up.add_argument("--balance", type=positive_int, metavar="ETHER",
                    help=f"balance of each development account in ether (default {DEFAULT_BALANCE_ETHER})")
    up.add_argument("--fresh", action="store_true", help="discard the saved chain state and start from block 0")

    add_command(actions, common, "down", "stop the local chain and save its state", run_down)
    add_command(actions, common, "status", "say whether the local chain runs, and where", run_status)


# --------------------------------------------------------------------------------------------------
# Process bookkeeping


def read_node_record(files: ChainFiles) -> dict[str, Any] | None:
    try:
        record = json.loads(files.record.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _process_alive(pid: int) -> bool:
    started = _started.get(pid)
    if started is not None:
        return started.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat_path = Path(f"/proc/{pid}/stat")
    if stat_path.exists():
        try:
            # The third field of /proc/PID/stat is the state; Z is a zombie waiting to be reaped.
            return stat_path.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def _is_anvil_process(pid: int) -> bool:
    """Return whether `pid` still runs Anvil, so that a recycled pid never receives our signal."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return _process_alive(pid)
    try:
        return b"anvil" in cmdline.read_bytes()
    except OSError:
        return False


def node_is_running(files: ChainFiles) -> dict[str, Any] | None:
    """Return the node record when its process is alive and still Anvil, else None."""
    record = read_node_record(files)
    if record is None:
        return None
    pid = record["pid"]
    if _process_alive(pid) and _is_anvil_process(pid):
        return record
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server does: connections of a stopped node lingering in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


# --------------------------------------------------------------------------------------------------
# Settings kept between starts


def _load_saved_settings(files: ChainFiles) -> dict[str, Any]:
    try:
        saved = json.loads(files.settings.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _chain_settings(files: ChainFiles, args: argparse.Namespace) -> dict[str, Any]:
    saved = _load_saved_settings(files) if files.state.exists() and not args.fresh else {}
    if saved and args.chain_id is not None and args.chain_id != saved.get("chainId"):
        raise CliError(
            f"the saved chain state {files.state} is for chain id {saved.get('chainId')}, not {args.chain_id}; "
            "pass --fresh to discard it and start a new chain"
        )
    chosen = {
        "port": args.port if args.port is not None else saved.get("port", DEFAULT_PORT),
        "chainId": args.chain_id if args.chain_id is not None else saved.get("chainId", DEFAULT_CHAIN_ID),
        "blockTime": args.block_time if args.block_time is not None else saved.get("blockTime", DEFAULT_BLOCK_TIME),
        "accounts": args.accounts if args.accounts is not None else saved.get("accounts", DEFAULT_ACCOUNTS),
        "balanceEther": args.balance if args.balance is not None else saved.get("balanceEther", DEFAULT_BALANCE_ETHER),
    }
    return chosen


def _anvil_command(files: ChainFiles, settings: dict[str, Any]) -> list[str]:
    from pmsr_chain.anvil import AnvilConfig
    from pmsr_chain._paths import find_anvil

    config = AnvilConfig(
        port=settings["port"],
        chain_id=settings["chainId"],
        accounts=settings["accounts"],
        balance_ether=settings["balanceEther"],
        block_time=settings["blockTime"] or None,
        state_path=files.state,
        extra_args=("--state-interval", str(STATE_INTERVAL_SECONDS)),
    )
    return config.command(find_anvil(), settings["port"])


def _write_json(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, chain_id: int, files: ChainFiles) -> None:
    from pmsr_chain.rpc import make_web3, rpc_request

    w3 = make_web3(url, timeout=2.0)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(
                f"anvil exited with status {process.returncode} while starting: {_log_tail(files.log)}; see {files.log}"
            )
        try:
            answered = int(rpc_request(w3, "eth_chainId", [], retries=0), 16)
        except Exception:  # noqa: BLE001 - any failure before the first answer means "not ready yet"
            time.sleep(0.1)
            continue
        if answered != chain_id:
            raise CliError(f"the node at {url} reports chain id {answered}, expected {chain_id}; another process uses the port")
        return
    raise CliError(f"anvil did not respond on {url} within {STARTUP_TIMEOUT_SECONDS:.0f} s; see {files.log}")


def _stop_process(pid: int) -> bool:
    """Send SIGINT (Anvil saves its state then), wait, and kill as a last resort; True if it exited cleanly."""
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        started = _started.get(pid)
        if started is not None:
            try:
                started.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            _started.pop(pid, None)
            return True
        if not _process_alive(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    started = _started.pop(pid, None)
    if started is not None:
        started.wait()
    return False


# --------------------------------------------------------------------------------------------------
# Commands


def _accounts_table(context: Context, count: int) -> tuple[list[dict[str, Any]], str]:
    from pmsr_chain.anvil import dev_accounts
    from pmsr_chain.units import format_ether

    rows = []
    for index, account in enumerate(dev_accounts(count)):
        rows.append({"index": index, "address": account.address, "balanceWei": str(context.balance(account.address))})
    table = format_table(
        ["N", "ADDRESS", "BALANCE"], [[row["index"], row["address"], format_ether(int(row["balanceWei"]))] for row in rows]
    )
    return rows, table


def _report_running(context: Context, record: dict[str, Any], files: ChainFiles, headline: str) -> None:
    accounts, table = _accounts_table(context, int(record.get("accounts", DEFAULT_ACCOUNTS)))
    data = {**record, "running": True, "developmentAccounts": accounts}

    def text() -> str:
        lines = [
            headline,
            f"RPC URL:     {record['url']}",
            f"chain id:    {record['chainId']}",
            f"state file:  {files.state}",
            f"log file:    {files.log}",
            "",
            "Development accounts (Anvil's public test keys; sign with --dev-account N):",
            table,
        ]
        return "\n".join(lines)

    context.output.result(data, text)


def run_up(context: Context, args: argparse.Namespace) -> int:
    files = ChainFiles.of(context.settings.data_dir)
    files.directory.mkdir(parents=True, exist_ok=True)

    running = node_is_running(files)
    if running is not None:
        context = _context_for(context, running["url"])
        _report_running(context, running, files, f"Anvil is already running (pid {running['pid']}).")
        return 0

    settings = _chain_settings(files, args)
    port = settings["port"]
    if not _port_free(port):
        raise CliError(f"port {port} on 127.0.0.1 is in use (another node?); pass --port N or stop the other process")
    if args.fresh:
        files.state.unlink(missing_ok=True)

    command = _anvil_command(files, settings)
    url = f"http://127.0.0.1:{port}"
    with files.log.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    _started[process.pid] = process
    try:
        _wait_until_ready(process, url, settings["chainId"], files)
    except BaseException:
        if process.poll() is None:
            _stop_process(process.pid)
        raise

    record = {**settings, "pid": process.pid, "url": url, "startedAt": int(time.time())}
    _write_json(files.settings, settings)
    _write_json(files.record, record)
    context = _context_for(context, url)
    _report_running(context, record, files, f"Anvil is running in the background (pid {process.pid}).")
    return 0


def _context_for(context: Context, url: str) -> Context:
    """Return a context reading from `url`, the chain this command started or found."""
    from dataclasses import replace

    return Context(replace(context.settings, rpc_url=url, rpc_source="the local chain"), context.output, environ=context.environ)


def run_down(context: Context, args: argparse.Namespace) -> int:
    files = ChainFiles.of(context.settings.data_dir)
    record = read_node_record(files)
    running = node_is_running(files)
    if running is None:
        files.record.unlink(missing_ok=True)
        context.output.result(
            {"running": False, "stopped": False, "stateFile": str(files.state)},
            f"The local chain is not running (state file: {files.state}).",
        )
        return 0
    assert record is not None
    clean = _stop_process(record["pid"])
    files.record.unlink(missing_ok=True)
    if not clean:
        raise CliError(
            f"anvil (pid {record['pid']}) ignored SIGINT for {STOP_TIMEOUT_SECONDS:.0f} s and was killed; "
            f"its state in {files.state} may be up to {STATE_INTERVAL_SECONDS} s old"
        )
    context.output.result(
        {"running": False, "stopped": True, "pid": record["pid"], "stateFile": str(files.state)},
        f"Stopped Anvil (pid {record['pid']}); chain state saved to {files.state}.",
    )
    return 0


def run_status(context: Context, args: argparse.Namespace) -> int:
    files = ChainFiles.of(context.settings.data_dir)
    running = node_is_running(files)
    if running is None:
        context.output.result(
            {"running": False, "stateFile": str(files.state), "stateSaved": files.state.exists()},
            f"The local chain is not running. Start it with `pmsr chain up`"
            + (f" (it resumes from {files.state})." if files.state.exists() else "."),
        )
        return 0

    context = _context_for(context, running["url"])
    from pmsr_chain.rpc import rpc_request

    block = int(rpc_request(context.web3, "eth_blockNumber", []), 16)
    chain_time = context.chain_time()
    manifest = context.settings.data_dir / "deployments" / f"{running['chainId']}.json"
    market: str | None = None
    if manifest.is_file():
        try:
            market = json.loads(manifest.read_text()).get("address")
        except (OSError, ValueError):
            market = None
    data = {**running, "running": True, "blockNumber": block, "chainTime": chain_time, "market": market}

    def text() -> str:
        lines = [
            f"The local chain is running (pid {running['pid']}).",
            f"RPC URL:     {running['url']}",
            f"chain id:    {running['chainId']}",
            f"block:       {block}",
            f"market:      {market or 'not deployed (run `pmsr deploy`)'}",
        ]
        return "\n".join(lines)

    context.output.result(data, text)
    return 0
