"""`pmsr wallet new|import|list|address|balance|fund`: V3 keystores in `<data-dir>/keystores`.

Keystores are the standard JSON files of geth and `cast wallet`, so `cast wallet list --dir
<data-dir>/keystores` lists them as well. The passphrase comes from `--password-file`, the
environment variable `PMSR_PASSWORD`, or a prompt; it is never printed or logged, and neither is
a private key.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from pmsr_chain.keystore import (
    DEFAULT_SCRYPT_N,
    create_keystore,
    find_keystore,
    import_keystore,
    list_keystores,
)
from pmsr_chain.transactions import ContractCall
from pmsr_chain.units import format_ether

from .context import Context, parse_address, read_secret_file
from .errors import CliError
from .options import add_command, add_group, amount
from .output import format_table

__all__ = ["register", "LIGHT_SCRYPT_N", "resolve_address"]

# scrypt cost of `--light-kdf` keystores, the value geth's `--lightkdf` uses: about 4 ms to unlock
# instead of about 1 s, and as much cheaper to guess offline. For throwaway development keys only.
LIGHT_SCRYPT_N = 2**12


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "wallet", "create, import and use V3 keystores")

    new = add_command(actions, common, "new", "create a keystore with a new random key", run_new)
    new.add_argument("name", help="keystore name (the file is <data-dir>/keystores/NAME.json)")
    new.add_argument("--light-kdf", action="store_true",
                     help="cheap key derivation (scrypt N=4096) for throwaway development keys")

    imported = add_command(actions, common, "import", "save an existing private key as a keystore", run_import)
    imported.add_argument("name", help="keystore name")
    imported.add_argument("--private-key-file", metavar="FILE",
                          help="file holding the hex private key, or - for stdin (default: a prompt)")
    imported.add_argument("--light-kdf", action="store_true",
                          help="cheap key derivation (scrypt N=4096) for throwaway development keys")

    add_command(actions, common, "list", "list the keystores in the data directory", run_list)

    address = add_command(actions, common, "address", "print the address of a keystore", run_address)
    address.add_argument("name", nargs="?", help="keystore name, path or address (default: the selected account)")

    balance = add_command(actions, common, "balance", "print the balance of an account", run_balance)
    balance.add_argument("account", nargs="?", help="address or keystore name (default: the selected account)")

    fund = add_command(actions, common, "fund", "send ether from the selected account", run_fund,
                       description="Send ether from the selected account (--keystore or --dev-account) to an "
                                   "address or a keystore.")
    fund.add_argument("recipient", help="address or keystore name")
    fund.add_argument("amount", type=amount, help="amount, e.g. 10ether, 5gwei or wei")


def _scrypt_n(args: argparse.Namespace) -> int:
    return LIGHT_SCRYPT_N if args.light_kdf else DEFAULT_SCRYPT_N


def _entry_data(name: str, address: str | None, path: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "path": str(path)}


def _check_new_name(context: Context, name: str) -> None:
    path = context.settings.keystore_dir / f"{name}.json"
    if path.exists():
        raise CliError(f"keystore {name!r} already exists at {path}; choose another name")


def run_new(context: Context, args: argparse.Namespace) -> int:
    _check_new_name(context, args.name)
    passphrase = context.passphrase(f"new keystore {args.name}", confirm=True)
    if not passphrase:
        raise CliError("the passphrase is empty; choose a non-empty passphrase")
    entry = create_keystore(context.settings.keystore_dir, args.name, passphrase, scrypt_n=_scrypt_n(args))
    context.output.result(
        _entry_data(entry.name, entry.address, entry.path),
        f"Created keystore {entry.name} for {entry.address}\nfile: {entry.path}",
    )
    return 0


def _read_private_key(args: argparse.Namespace) -> str:
    if args.private_key_file == "-":
        return sys.stdin.readline().strip()
    if args.private_key_file:
        return read_secret_file(args.private_key_file, "private key").strip()
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("Private key (hex): ").strip()
    raise CliError("no private key: pass --private-key-file FILE (or - for stdin), or run in a terminal to be prompted")


def run_import(context: Context, args: argparse.Namespace) -> int:
    _check_new_name(context, args.name)
    private_key = _read_private_key(args)
    passphrase = context.passphrase(f"new keystore {args.name}", confirm=True)
    if not passphrase:
        raise CliError("the passphrase is empty; choose a non-empty passphrase")
    entry = import_keystore(
        context.settings.keystore_dir, args.name, private_key, passphrase, scrypt_n=_scrypt_n(args)
    )
    context.output.result(
        _entry_data(entry.name, entry.address, entry.path),
        f"Imported keystore {entry.name} for {entry.address}\nfile: {entry.path}",
    )
    return 0


def run_list(context: Context, args: argparse.Namespace) -> int:
    directory = context.settings.keystore_dir
    entries = list_keystores(directory)
    data = [_entry_data(entry.name, entry.address, entry.path) for entry in entries]

    def text() -> str:
        if not entries:
            return f"No keystores in {directory}; create one with `pmsr wallet new NAME`."
        return format_table(["NAME", "ADDRESS", "FILE"], [[e.name, e.address or "?", e.path] for e in entries])

    context.output.result(data, text)
    return 0


def _keystore_address(context: Context, name: str) -> str:
    path = find_keystore(context.settings.keystore_dir, name)
    for entry in list_keystores(path.parent):
        if entry.path == path and entry.address is not None:
            return entry.address
    # A keystore that does not declare its address has to be unlocked to learn it.
    from pmsr_chain.keystore import unlock_keystore

    return str(unlock_keystore(path, context.passphrase(f"keystore {path.name}")).address)


def selected_address(context: Context) -> str:
    """Return the address of the selected account, without unlocking a keystore that declares it."""
    settings = context.settings
    if settings.dev_account is not None:
        return context.address
    if settings.keystore is None:
        context.keystore_path()  # raises the "no account selected" error
    assert settings.keystore is not None
    return _keystore_address(context, settings.keystore)


def resolve_address(context: Context, text: str, what: str) -> str:
    """Read an address, or the address of a keystore given by name."""
    if text.startswith(("0x", "0X")):
        return parse_address(text, what)
    keystore_dir = context.settings.keystore_dir
    if not (keystore_dir / f"{text}.json").is_file() and not (keystore_dir / text).is_file():
        raise CliError(
            f"invalid {what} {text!r}: neither an address (0x and 40 hex digits) nor a keystore in {keystore_dir}"
        )
    return _keystore_address(context, text)


def run_address(context: Context, args: argparse.Namespace) -> int:
    address = _keystore_address(context, args.name) if args.name else selected_address(context)
    context.output.result({"address": address}, address)
    return 0


def run_balance(context: Context, args: argparse.Namespace) -> int:
    address = resolve_address(context, args.account, "account") if args.account else selected_address(context)
    balance = context.balance(address)
    context.output.result(
        {"address": address, "balanceWei": str(balance), "chainId": context.chain_id},
        f"{address}: {format_ether(balance)}",
    )
    return 0


def run_fund(context: Context, args: argparse.Namespace) -> int:
    recipient = resolve_address(context, args.recipient, "recipient")
    if args.amount == 0:
        raise CliError("amount 0 sends nothing; pass an amount such as 10ether")
    call = ContractCall(to=recipient, data=b"", value=args.amount, function="transfer")
    receipt = context.send(call, f"sending {format_ether(args.amount)}")
    balance = context.balance(recipient)
    context.output.result(
        {
            "from": context.address,
            "to": recipient,
            "amountWei": str(args.amount),
            "transactionHash": receipt.transaction_hash,
            "balanceWei": str(balance),
        },
        f"Sent {format_ether(args.amount)} from {context.address} to {recipient} "
        f"(transaction {receipt.transaction_hash}); its balance is now {format_ether(balance)}.",
    )
    return 0
