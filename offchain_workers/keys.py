"""Aggregator X25519 key pairs and their passphrase-encrypted key files.

A key file is a small JSON document:

    {"version": 1, "type": "pmsr-aggregator-x25519", "public_key": HEX,
     "kdf": {"name": "scrypt", "n": N, "r": R, "p": P, "salt": HEX},
     "cipher": {"name": "chacha20-poly1305", "nonce": HEX}, "ciphertext": HEX}

The 32-byte private key is encrypted with ChaCha20-Poly1305 under a key that scrypt derives from
the passphrase. The AAD is every field except `ciphertext`, serialised as compact JSON with sorted
keys, so changing the public key or the KDF parameters makes decryption fail just like a wrong
passphrase. Files are written with mode 0600 through a temporary file and an atomic link or
rename. Private keys never appear in a repr, a message or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pmsr_chain.errors import InvalidInputError

from .encryption import PUBLIC_KEY_BYTES, ShareDecryptor
from .errors import KeyFileError

__all__ = [
    "KEY_FILE_VERSION",
    "DEFAULT_SCRYPT_N",
    "MIN_SCRYPT_N",
    "AggregatorKeyPair",
]

logger = logging.getLogger(__name__)

KEY_FILE_VERSION = 1
_KEY_FILE_TYPE = "pmsr-aggregator-x25519"

# scrypt cost of new key files: 2**18 with r = 8 is geth's "standard" keystore setting. It needs
# 256 MiB and took 0.7 s to unlock on one AMD EPYC core (cryptography 50). Lower values suit only
# test keys, because they make offline passphrase guessing cheaper.
DEFAULT_SCRYPT_N = 2**18
MIN_SCRYPT_N = 2**10
_SCRYPT_R = 8
_SCRYPT_P = 1

# Limits on parameters read from a file, so that a crafted file cannot make loading allocate
# unbounded memory or run for hours. 2**22 with r = 8 needs 4 GiB.
_MAX_SCRYPT_N = 2**22
_MAX_SCRYPT_R = 32
_MAX_SCRYPT_P = 16
_MAX_SCRYPT_MEMORY = 4 * 2**30
_SALT_BYTES = 32
_NONCE_BYTES = 12
_MAX_FILE_BYTES = 64 * 1024


class AggregatorKeyPair:
    """An aggregator's X25519 key pair. Its repr shows the public key only."""

    __slots__ = ("_private_key", "_public_key")

    def __init__(self, private_key: X25519PrivateKey) -> None:
        if not isinstance(private_key, X25519PrivateKey):
            raise InvalidInputError(
                f"private key of type {type(private_key).__name__} is invalid; pass an X25519PrivateKey"
            )
        self._private_key = private_key
        self._public_key = private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> AggregatorKeyPair:
        """Generate a key pair from the operating system's CSPRNG (through OpenSSL)."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> AggregatorKeyPair:
        """Load a key pair from the 32 raw bytes of an X25519 private key."""
        if not isinstance(private_bytes, (bytes, bytearray)) or len(private_bytes) != PUBLIC_KEY_BYTES:
            # Only the length is reported, because the value is key material.
            length = len(private_bytes) if isinstance(private_bytes, (bytes, bytearray)) else "no"
            raise InvalidInputError(f"X25519 private key has {length} bytes; it needs exactly 32 raw bytes")
        return cls(X25519PrivateKey.from_private_bytes(bytes(private_bytes)))

    @property
    def public_key(self) -> bytes:
        """The 32-byte X25519 public key that the aggregator registers on-chain."""
        return self._public_key

    @property
    def private_key(self) -> X25519PrivateKey:
        """The private key object. Its repr shows no key material."""
        return self._private_key

    def decryptor(self) -> ShareDecryptor:
        """Return a `ShareDecryptor` bound to this key pair."""
        return ShareDecryptor(self._private_key)

    def save(
        self,
        path: str | os.PathLike[str],
        passphrase: str | bytes,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        overwrite: bool = False,
    ) -> Path:
        """Encrypt the private key under `passphrase` and write it to `path` with mode 0600.

        Raises:
            InvalidInputError: the passphrase is empty or `scrypt_n` is not a power of two in
                range.
            KeyFileError: `path` exists and `overwrite` is false, or the file cannot be written.
        """
        target = Path(path)
        secret = _passphrase_bytes(passphrase)
        if not secret:
            raise InvalidInputError("passphrase is empty; choose a non-empty passphrase for the key file")
        _validate_scrypt_n(scrypt_n)

        header: dict[str, Any] = {
            "version": KEY_FILE_VERSION,
            "type": _KEY_FILE_TYPE,
            "public_key": self._public_key.hex(),
            "kdf": {
                "name": "scrypt",
                "n": int(scrypt_n),
                "r": _SCRYPT_R,
                "p": _SCRYPT_P,
                "salt": secrets.token_bytes(_SALT_BYTES).hex(),
            },
            "cipher": {"name": "chacha20-poly1305", "nonce": secrets.token_bytes(_NONCE_BYTES).hex()},
        }
        file_key = _derive_file_key(secret, header["kdf"])
        ciphertext = ChaCha20Poly1305(file_key).encrypt(
            bytes.fromhex(header["cipher"]["nonce"]),
            self._private_key.private_bytes_raw(),
            _header_aad(header),
        )
        document = {**header, "ciphertext": ciphertext.hex()}
        _write_private_file(target, json.dumps(document, indent=2, sort_keys=True) + "\n", overwrite=overwrite)
        logger.info("saved aggregator key file %s for public key %s", target, self._public_key.hex())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: str | bytes) -> AggregatorKeyPair:
        """Read a key file written by `save` and decrypt it with `passphrase`.

        Raises:
            KeyFileError: the file is missing, unreadable or malformed, the passphrase is wrong,
                or the file was modified. The message names the file.
        """
        source = Path(path)
        document = _read_key_file(source)
        header, ciphertext = _parse_key_file(source, document)

        file_key = _derive_file_key(_passphrase_bytes(passphrase), header["kdf"])
        try:
            private_bytes = ChaCha20Poly1305(file_key).decrypt(
                bytes.fromhex(header["cipher"]["nonce"]), ciphertext, _header_aad(header)
            )
        except InvalidTag:
            raise KeyFileError(
                f"cannot decrypt key file {source}: the passphrase is wrong or the file was modified"
            ) from None

        pair = cls.from_private_bytes(private_bytes)
        if pair.public_key.hex() != header["public_key"]:
            raise KeyFileError(
                f"key file {source} declares public key {header['public_key']} but contains the key of "
                f"{pair.public_key.hex()}"
            )
        return pair

    def __repr__(self) -> str:
        return f"AggregatorKeyPair(public_key={self._public_key.hex()})"


# --- key file helpers ---------------------------------------------------------------------------


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    if isinstance(passphrase, str):
        # NFKC makes the same passphrase typed on different keyboards or systems produce the same bytes.
        return unicodedata.normalize("NFKC", passphrase).encode("utf-8")
    if isinstance(passphrase, (bytes, bytearray)):
        return bytes(passphrase)
    raise InvalidInputError(f"passphrase has type {type(passphrase).__name__}; pass str or bytes")


def _validate_scrypt_n(scrypt_n: int) -> None:
    if (
        isinstance(scrypt_n, bool)
        or not isinstance(scrypt_n, int)
        or not MIN_SCRYPT_N <= scrypt_n <= _MAX_SCRYPT_N
        or scrypt_n & (scrypt_n - 1)
    ):
        raise InvalidInputError(
            f"scrypt_n {scrypt_n!r} is invalid; pass a power of two in {MIN_SCRYPT_N}..{_MAX_SCRYPT_N}"
        )


def _derive_file_key(passphrase: bytes, kdf: dict[str, Any]) -> bytes:
    scrypt = Scrypt(salt=bytes.fromhex(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"])
    return scrypt.derive(passphrase)


def _header_aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _read_key_file(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found; create one with AggregatorKeyPair.save") from None
    except OSError as error:
        raise KeyFileError(f"cannot read key file {path}: {error.strerror}") from None

    if len(data) > _MAX_FILE_BYTES:
        raise KeyFileError(f"key file {path} is larger than {_MAX_FILE_BYTES} bytes, so it is not a key file")
    if stat.S_IMODE(mode) & 0o077:
        logger.warning(
            "key file %s has mode %o, readable by other users; restrict it with chmod 600", path, stat.S_IMODE(mode)
        )
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeyFileError(f"key file {path} is not valid JSON: {error}") from None


def _parse_key_file(path: Path, document: Any) -> tuple[dict[str, Any], bytes]:
    """Validate the structure and limits of a key file and split it into header and ciphertext."""

    def invalid(detail: str) -> KeyFileError:
        return KeyFileError(f"key file {path} is invalid: {detail}")

    if not isinstance(document, dict):
        raise invalid("the top level is not a JSON object")
    expected_fields = {"version", "type", "public_key", "kdf", "cipher", "ciphertext"}
    if set(document) != expected_fields:
        raise invalid(f"fields {sorted(document)} differ from {sorted(expected_fields)}")
    if type(document["version"]) is not int or document["version"] != KEY_FILE_VERSION or document["type"] != _KEY_FILE_TYPE:
        raise invalid(
            f"version {document['version']!r} and type {document['type']!r} are not "
            f"{KEY_FILE_VERSION} and {_KEY_FILE_TYPE!r}"
        )

    kdf = document["kdf"]
    if not isinstance(kdf, dict) or set(kdf) != {"name", "n", "r", "p", "salt"} or kdf["name"] != "scrypt":
        raise invalid("kdf is not an scrypt object with n, r, p and salt")
    for name in ("n", "r", "p"):
        if isinstance(kdf[name], bool) or not isinstance(kdf[name], int):
            raise invalid(f"kdf parameter {name} = {kdf[name]!r} is not an integer")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    if (
        not MIN_SCRYPT_N <= n <= _MAX_SCRYPT_N
        or n & (n - 1)
        or not 1 <= r <= _MAX_SCRYPT_R
        or not 1 <= p <= _MAX_SCRYPT_P
        or 128 * n * r > _MAX_SCRYPT_MEMORY
    ):
        raise invalid(f"scrypt parameters n={n}, r={r}, p={p} are outside the accepted limits")

    cipher = document["cipher"]
    if not isinstance(cipher, dict) or set(cipher) != {"name", "nonce"} or cipher["name"] != "chacha20-poly1305":
        raise invalid("cipher is not a chacha20-poly1305 object with a nonce")

    _hex_field(kdf["salt"], _SALT_BYTES, "kdf salt", invalid)
    _hex_field(cipher["nonce"], _NONCE_BYTES, "cipher nonce", invalid)
    _hex_field(document["public_key"], PUBLIC_KEY_BYTES, "public_key", invalid)
    ciphertext = _hex_field(document["ciphertext"], PUBLIC_KEY_BYTES + 16, "ciphertext", invalid)

    header = {name: value for name, value in document.items() if name != "ciphertext"}
    return header, ciphertext


def _hex_field(value: Any, size: int, name: str, invalid: Callable[[str], KeyFileError]) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or value != value.lower():
        raise invalid(f"{name} is not {size} bytes of lowercase hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise invalid(f"{name} is not {size} bytes of lowercase hex") from None


def _write_private_file(path: Path, text: str, *, overwrite: bool) -> None:
    """Write `text` to `path` with mode 0600, atomically, so no reader sees a partial file."""
    if not overwrite and path.exists():
        raise KeyFileError(f"key file {path} already exists; choose another path or pass overwrite=True")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-aggregator-key-")
    except OSError as error:
        raise KeyFileError(f"cannot write key file {path}: {error.strerror}") from None

    temporary = Path(temporary_name)
    try:
        # mkstemp already creates the file with mode 0600. fchmod states it and ignores the umask.
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            # os.link fails when the target exists, so a file created meanwhile is never replaced.
            os.link(temporary, path)
        _fsync_directory(path.parent)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; choose another path or pass overwrite=True") from None
    except OSError as error:
        raise KeyFileError(f"cannot write key file {path}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
