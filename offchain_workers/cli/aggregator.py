"""`pmsr aggregator register|run|status|exit|withdraw`: an aggregator's stake, key and service.

An aggregator's files live in `<data-dir>/aggregators/<address>/`: `x25519-key.json`, the X25519
key file whose public key is registered on-chain (encrypted with the account's passphrase), and
`aggregator.sqlite`, the service's state.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pmsr_chain.units import format_ether

from .context import Context
from .errors import CliError, amount_option
from .options import add_command, add_group, amount, positive_int
from .output import format_time

__all__ = ["register", "aggregator_dir", "default_key_file"]

KEY_FILE_NAME = "x25519-key.json"
DATABASE_NAME = "aggregator.sqlite"


def aggregator_dir(data_dir: Path, address: str) -> Path:
    return data_dir / "aggregators" / address


def default_key_file(data_dir: Path, address: str) -> Path:
    return aggregator_dir(data_dir, address) / KEY_FILE_NAME


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "aggregator", "register and run an aggregator")

    registration = add_command(
        actions, common, "register", "stake as an aggregator and register a new X25519 key", run_register,
        description="Generate an X25519 key pair, save it encrypted with the account's passphrase, and register "
                    "the public key with a stake. Owners encrypt their shares for this key.",
    )
    registration.add_argument("--stake", type=amount, help="stake to lock (default: the market's minimum)")
    registration.add_argument("--key-file", metavar="FILE",
                              help=f"where to save the key (default <data-dir>/aggregators/ADDRESS/{KEY_FILE_NAME})")
    registration.add_argument("--light-kdf", action="store_true",
                              help="cheap key derivation (scrypt N=4096) for throwaway development keys")

    run = add_command(
        actions, common, "run", "run the aggregator service in the foreground", run_service,
        description="Accept the queries that name this aggregator, decrypt and add its shares, add DP noise, "
                    "commit and reveal on time, and claim the fees. Stop with Ctrl-C; a restart resumes.",
    )
    run.add_argument("--key-file", metavar="FILE", help="the X25519 key file (default: the one `register` saved)")
    run.add_argument("--min-fee", type=amount, default=0, help="lowest fee per query to accept (default 0)")
    run.add_argument("--max-output-length", type=positive_int, default=512,
                     help="largest output length L to accept (default 512)")
    run.add_argument("--max-concurrent", type=positive_int, default=8,
                     help="largest number of unsettled queries served at once (default 8)")
    run.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS",
                     help="seconds between polls of the chain (default 1)")
    run.add_argument("--keeper", action="store_true",
                     help="also cancel or fail queries whose deadlines passed, for anyone")

    add_command(actions, common, "status", "show the aggregator's registration, stake and key", run_status)
    add_command(actions, common, "exit", "begin the exit; the stake unlocks after the unbonding period", run_exit)
    add_command(actions, common, "withdraw", "withdraw the stake once the unbonding period is over", run_withdraw)


# --------------------------------------------------------------------------------------------------
# register


def run_register(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.keys import DEFAULT_SCRYPT_N as KEY_SCRYPT_N
    from offchain_workers.keys import AggregatorKeyPair

    from .wallet import LIGHT_SCRYPT_N

    market = context.market
    address = context.address
    info = market.aggregator_info(address)
    if info.registered:
        raise CliError(
            f"account {address} is already registered as an aggregator with key 0x{info.encryption_key.hex()}; "
            "see `pmsr aggregator status`"
        )
    minimum = market.min_aggregator_stake()
    stake = minimum if args.stake is None else args.stake
    if stake < minimum:
        raise CliError(
            f"stake {format_ether(stake)} is below the market's minimum aggregator stake {format_ether(minimum)}; "
            f"pass --stake {amount_option(minimum)} or more"
        )
    key_file = Path(args.key_file).expanduser() if args.key_file else default_key_file(context.settings.data_dir, address)
    if key_file.exists():
        raise CliError(
            f"key file {key_file} already exists; pass another --key-file, or remove it if no registered aggregator uses it"
        )

    key_pair = AggregatorKeyPair.generate()
    call = market.calls.register_aggregator(key_pair.public_key, stake=stake)
    context.check(call, f"registering with stake {format_ether(stake)}")

    # The key file is written before the registration is sent: an aggregator registered with a key
    # it failed to save could never decrypt a share.
    passphrase = context.passphrase("the aggregator key file")
    scrypt_n = LIGHT_SCRYPT_N if args.light_kdf else KEY_SCRYPT_N
    key_pair.save(key_file, passphrase, scrypt_n=scrypt_n)
    try:
        receipt = context.send(call, f"registering with stake {format_ether(stake)}")
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise

    data = {
        "address": address,
        "stakeWei": str(stake),
        "encryptionKey": "0x" + key_pair.public_key.hex(),
        "keyFile": str(key_file),
        "transactionHash": receipt.transaction_hash,
    }
    context.output.result(
        data,
        f"Registered aggregator {address} with stake {format_ether(stake)}.\n"
        f"public key: 0x{key_pair.public_key.hex()}\nkey file:   {key_file} (encrypted with the account's passphrase)",
    )
    return 0


# --------------------------------------------------------------------------------------------------
# status, exit, withdraw


def _key_file_public_key(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    value = document.get("public_key") if isinstance(document, dict) else None
    return "0x" + value if isinstance(value, str) else None


def _status_address(context: Context) -> str:
    from .wallet import selected_address

    return selected_address(context)


def run_status(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    address = _status_address(context)
    info = market.aggregator_info(address)
    now = context.chain_time()
    unbonding = market.unbonding_period()
    key_file = default_key_file(context.settings.data_dir, address)
    file_key = _key_file_public_key(key_file)
    chain_key = "0x" + info.encryption_key.hex() if info.registered else None
    withdrawable_at = info.exit_requested_at + unbonding if info.exit_requested_at else 0
    data = {
        "address": address,
        "registered": info.registered,
        "stakeWei": str(info.stake),
        "minimumStakeWei": str(market.min_aggregator_stake()),
        "encryptionKey": chain_key,
        "keyFile": str(key_file) if file_key else None,
        "keyFileMatches": (file_key == chain_key) if file_key and chain_key else None,
        "openQueries": info.open_queries,
        "exitRequestedAt": info.exit_requested_at,
        "withdrawableAt": withdrawable_at,
        "chainTime": now,
    }

    def text() -> str:
        if not info.registered:
            return f"{address} is not registered as an aggregator; register with `pmsr aggregator register`."
        if file_key is None:
            key_note = f"no key file at {key_file}"
        elif file_key == chain_key:
            key_note = f"matches {key_file}"
        else:
            key_note = f"DIFFERS from {key_file}: this aggregator cannot decrypt its shares with that file"
        lines = [
            f"aggregator:    {address}",
            f"stake:         {format_ether(info.stake)}",
            f"public key:    {chain_key} ({key_note})",
            f"open queries:  {info.open_queries}",
        ]
        if info.exit_requested_at:
            lines.append(f"exit begun:    {format_time(info.exit_requested_at, now)}")
            lines.append(f"withdrawable:  {format_time(withdrawable_at, now)}")
        return "\n".join(lines)

    context.output.result(data, text)
    return 0


def run_exit(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    receipt = context.send(market.calls.begin_aggregator_exit(), "beginning the exit")
    info = market.aggregator_info(context.address)
    withdrawable_at = info.exit_requested_at + market.unbonding_period()
    context.output.result(
        {"address": context.address, "exitRequestedAt": info.exit_requested_at, "withdrawableAt": withdrawable_at,
         "transactionHash": receipt.transaction_hash},
        f"Aggregator {context.address} began its exit; withdraw the stake with `pmsr aggregator withdraw` "
        f"after {format_time(withdrawable_at)}.",
    )
    return 0


def run_withdraw(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    stake = market.aggregator_info(context.address).stake
    receipt = context.send(market.calls.withdraw_aggregator_stake(), "withdrawing the stake")
    context.output.result(
        {"address": context.address, "amountWei": str(stake), "transactionHash": receipt.transaction_hash},
        f"Withdrew the stake of {format_ether(stake)} to {context.address}.",
    )
    return 0


# --------------------------------------------------------------------------------------------------
# run


def run_service(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.aggregator.policy import AcceptancePolicy
    from offchain_workers.aggregator.service import AggregatorService
    from offchain_workers.keys import AggregatorKeyPair

    market = context.market
    address = context.address
    key_file = Path(args.key_file).expanduser() if args.key_file else default_key_file(context.settings.data_dir, address)
    if not key_file.is_file():
        raise CliError(
            f"no key file at {key_file}; register with `pmsr aggregator register` (it writes the key file), "
            "or pass --key-file"
        )
    info = market.aggregator_info(address)
    if not info.registered:
        raise CliError(f"account {address} is not registered as an aggregator; run `pmsr aggregator register` first")
    key_pair = AggregatorKeyPair.load(key_file, context.passphrase("the aggregator key file"))
    if key_pair.public_key != info.encryption_key:
        raise CliError(
            f"key file {key_file} contains public key 0x{key_pair.public_key.hex()}, but {address} registered "
            f"0x{info.encryption_key.hex()}; pass the --key-file that `pmsr aggregator register` wrote"
        )
    policy = AcceptancePolicy(
        min_fee_wei=args.min_fee, max_output_length=args.max_output_length, max_concurrent_queries=args.max_concurrent
    )
    if args.poll_interval <= 0:
        raise CliError(f"--poll-interval {args.poll_interval} must be a positive number of seconds")

    client = market.with_sender(context.sender)
    database = aggregator_dir(context.settings.data_dir, address) / DATABASE_NAME
    service = AggregatorService(
        client, key_pair, database, policy=policy, start_block=context.deployment.block_number,
        poll_interval=args.poll_interval,
    )
    context.output.notice(
        f"Aggregator {address} is serving market {market.address} (state in {database}); stop it with Ctrl-C."
    )
    lock = aggregator_dir(context.settings.data_dir, address) / "service.lock"
    with context.exclusive_lock(lock, f"an aggregator service for {address}"), context.service_logging(), \
            context.stop_on_signals() as stop:
        keeper_thread = None
        if args.keeper:
            keeper_thread = start_keeper(context, client, service.state.database, stop)
        service.start()
        stop.wait()
        service.stop()
        if keeper_thread is not None:
            keeper_thread.join(timeout=30)
    service.state.close()
    context.output.notice(f"Aggregator {address} stopped; `pmsr aggregator run` resumes where it stopped.")
    return 0


def start_keeper(context: Context, client: Any, database: Any, stop: Any) -> Any:
    """Run a keeper in a thread that ends when `stop` is set; it cancels or fails due queries for anyone."""
    import threading

    from offchain_workers.keeper import Keeper

    keeper = Keeper(client, database=database, start_block=context.deployment.block_number)
    thread = threading.Thread(target=keeper.run, args=(stop,), name="keeper", daemon=True)
    thread.start()
    return thread
