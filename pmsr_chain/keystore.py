"""Ethereum V3 keystore files: create, import, list and unlock.

The files are the standard JSON format that geth and `cast wallet` read and write (scrypt or PBKDF2
key derivation, AES-128-CTR, keccak MAC), so a keystore made here opens in `cast` and one made by
`cast wallet new` opens here. Private keys never reach a log or a repr.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_hex_address, to_checksum_address

from .errors import InvalidInputError, PmsrError

__all__ = [
    "KeystoreError",
    "WrongPassphraseError",
    "KeystoreEntry",
    "DEFAULT_SCRYPT_N",
    "create_keystore",
    "import_keystore",
    "list_keystores",
    "find_keystore",
    "unlock_keystore",
]

logger = logging.getLogger(__name__)

# scrypt cost parameter of new keystores. 2**18 is geth's "standard" setting (about 1 s and 256 MiB
# to unlock). Tests and bulk local set-ups may pass a lower value, which weakens the file against
# offline guessing and suits only throwaway development keys.
DEFAULT_SCRYPT_N = 2**18


class KeystoreError(PmsrError, OSError):
    """A keystore file is missing, unreadable or malformed."""


class WrongPassphraseError(PmsrError, ValueError):
    """The passphrase does not unlock the keystore."""


@dataclass(frozen=True)
class KeystoreEntry:
    """A keystore file and the address it declares (None when the file omits it)."""

    path: Path
    address: str | None

    @property
    def name(self) -> str:
        return self.path.stem


def _write_private_file(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to `path` with mode 0600, atomically, refusing to overwrite."""
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists; choose another name or remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-keystore-")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # os.link fails if the target appeared meanwhile, so a concurrent writer is never clobbered.
        os.link(temporary, path)
    except FileExistsError as error:
        raise KeystoreError(f"keystore {path} already exists; choose another name") from error
    finally:
        os.unlink(temporary)


def _keystore_path(directory: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise InvalidInputError(
            f"invalid keystore name {name!r}: use letters, digits, '-' or '_', not a path"
        )
    return directory / f"{name}.json"


def _encrypt(private_key: bytes, passphrase: str, scrypt_n: int) -> dict[str, Any]:
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
        raise InvalidInputError(f"invalid scrypt cost {scrypt_n}: it must be a power of two")
    return Account.encrypt(private_key, passphrase, kdf="scrypt", iterations=scrypt_n)


def create_keystore(
    directory: Path, name: str, passphrase: str, *, scrypt_n: int = DEFAULT_SCRYPT_N
) -> KeystoreEntry:
    """Generate a private key from the OS CSPRNG and save it as `<directory>/<name>.json`."""
    path = _keystore_path(Path(directory), name)
    private_key = secrets.token_bytes(32)
    account = Account.from_key(private_key)
    _write_private_file(path, _encrypt(private_key, passphrase, scrypt_n))
    logger.info("created keystore %s for %s", path, account.address)
    return KeystoreEntry(path, account.address)


def import_keystore(
    directory: Path,
    name: str,
    private_key_hex: str,
    passphrase: str,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> KeystoreEntry:
    """Save an existing hex private key as `<directory>/<name>.json`."""
    text = private_key_hex.strip().removeprefix("0x")
    try:
        private_key = bytes.fromhex(text)
    except ValueError:
        private_key = b""
    if len(private_key) != 32:
        # The key itself is never echoed: only its length is.
        raise InvalidInputError(
            f"invalid private key: expected 64 hex digits, got {len(text)} characters"
        )
    account = Account.from_key(private_key)
    path = _keystore_path(Path(directory), name)
    _write_private_file(path, _encrypt(private_key, passphrase, scrypt_n))
    logger.info("imported keystore %s for %s", path, account.address)
    return KeystoreEntry(path, account.address)


def _read_keystore_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise KeystoreError(f"keystore {path} not found; list keystores with `pmsr wallet list`") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeystoreError(f"keystore {path} is not readable JSON: {error}") from error
    crypto = payload.get("crypto", payload.get("Crypto")) if isinstance(payload, dict) else None
    if not isinstance(crypto, dict) or payload.get("version") != 3:
        raise KeystoreError(f"keystore {path} is not a version 3 keystore file")
    return payload


def _declared_address(payload: dict[str, Any]) -> str | None:
    address = payload.get("address")
    if isinstance(address, str):
        candidate = address if address.startswith("0x") else "0x" + address
        if is_hex_address(candidate):
            return to_checksum_address(candidate)
    return None


def list_keystores(directory: Path) -> list[KeystoreEntry]:
    """List the readable V3 keystores in `directory`, sorted by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            payload = _read_keystore_json(path)
        except KeystoreError:
            logger.debug("skipping %s: not a V3 keystore", path)
            continue
        entries.append(KeystoreEntry(path, _declared_address(payload)))
    return entries


def find_keystore(directory: Path, name_or_path: str) -> Path:
    """Resolve a keystore given as a path, a name in `directory`, or an address it declares."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    for by_name in (Path(directory) / f"{name_or_path}.json", Path(directory) / name_or_path):
        if by_name.is_file():
            return by_name
    if is_hex_address(name_or_path):
        wanted = to_checksum_address(name_or_path)
        for entry in list_keystores(Path(directory)):
            if entry.address == wanted:
                return entry.path
    raise KeystoreError(
        f"keystore {name_or_path!r} not found in {directory}; "
        "pass a file path, or create one with `pmsr wallet new`"
    )


def unlock_keystore(path: Path, passphrase: str) -> LocalAccount:
    """Decrypt a keystore and return the account, raising WrongPassphraseError on a bad passphrase."""
    payload = _read_keystore_json(Path(path))
    try:
        private_key = Account.decrypt(payload, passphrase)
    except ValueError as error:
        # eth-keyfile raises ValueError("MAC mismatch") for a wrong passphrase.
        if "MAC mismatch" in str(error):
            raise WrongPassphraseError(
                f"wrong passphrase for keystore {path}; check PMSR_PASSWORD or the passphrase file"
            ) from None
        raise KeystoreError(f"keystore {path} could not be decrypted: {error}") from None
    account: LocalAccount = Account.from_key(private_key)
    declared = _declared_address(payload)
    if declared is not None and declared != account.address:
        raise KeystoreError(
            f"keystore {path} declares address {declared} but contains the key of {account.address}"
        )
    return account
