"""Encryption of one owner's shares to the query's aggregators.

Each share is sealed for one aggregator with a fresh ephemeral X25519 key:

    ciphertext = ephemeral_public_key (32 bytes) || ChaCha20-Poly1305(key, nonce, share, aad)
    key   = HKDF-SHA256(X25519(ephemeral, aggregator_key), salt = empty,
                        info = b"pmsr/share/v1" || ephemeral_public_key || aggregator_key, 32 bytes)
    nonce = 12 zero bytes
    aad   = abi.encodePacked(uint256 chainId, address market, uint256 queryId, address owner, uint8 k)

The share is `8 * L` bytes of little-endian uint64, so a ciphertext is `32 + 8 * L + 16` bytes, the
length the market contract checks on submission. The AAD binds a ciphertext to one chain, market,
query, owner and aggregator position, so it is worthless if replayed anywhere else.

Every decryption failure raises `DecryptionError`. No function here returns None or False for a
ciphertext that does not authenticate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import is_checksum_address, to_checksum_address
from numpy.typing import ArrayLike, NDArray

from pmsr_chain.errors import InvalidInputError

from .encoding import WORD_BYTES, _as_word_array, to_le_bytes
from .errors import DecryptionError
from .sharing import ShareAccumulator, split

__all__ = [
    "SHARE_KDF_LABEL",
    "PUBLIC_KEY_BYTES",
    "TAG_BYTES",
    "MAX_AGGREGATORS",
    "ShareContext",
    "ShareDecryptor",
    "ciphertext_length",
    "encrypt_share",
    "encrypt_shares",
    "decrypt_share",
]

SHARE_KDF_LABEL = b"pmsr/share/v1"
PUBLIC_KEY_BYTES = 32
TAG_BYTES = 16
ADDRESS_BYTES = 20

# The aggregator's position k is a uint8 in the AAD, so a query has at most 256 aggregators.
MAX_AGGREGATORS = 256

# A constant nonce is safe only because every ciphertext has its own ephemeral key, hence its own
# ChaCha20-Poly1305 key: no (key, nonce) pair is ever used twice.
_ZERO_NONCE = bytes(12)
_UINT256_LIMIT = 1 << 256
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def ciphertext_length(length: int) -> int:
    """Return the byte length of the ciphertext of a share of `length` words: `32 + 8 * L + 16`."""
    _validate_share_length(length)
    return PUBLIC_KEY_BYTES + WORD_BYTES * int(length) + TAG_BYTES


@dataclass(frozen=True, init=False)
class ShareContext:
    """The submission a ciphertext belongs to: chain, market contract, query and owner.

    `market` and `owner` accept 20 raw bytes or a hex address string. A mixed-case string must
    carry a valid EIP-55 checksum, while an all-lowercase or all-uppercase one has none to check.
    Both are stored as 20 bytes.
    """

    chain_id: int
    market: bytes
    query_id: int
    owner: bytes
    _aad_prefix: bytes = field(init=False, repr=False, compare=False)

    def __init__(self, chain_id: int, market: bytes | str, query_id: int, owner: bytes | str) -> None:
        chain = _validate_uint256(chain_id, "chain_id")
        if chain == 0:
            raise InvalidInputError("chain_id 0 is invalid; pass the EIP-155 chain id of the market's chain")
        query = _validate_uint256(query_id, "query_id")
        market_bytes = _address_bytes(market, "market")
        owner_bytes = _address_bytes(owner, "owner")

        object.__setattr__(self, "chain_id", chain)
        object.__setattr__(self, "market", market_bytes)
        object.__setattr__(self, "query_id", query)
        object.__setattr__(self, "owner", owner_bytes)
        # abi.encodePacked pads uint256 to 32 bytes and packs an address as its 20 bytes.
        prefix = chain.to_bytes(32, "big") + market_bytes + query.to_bytes(32, "big") + owner_bytes
        object.__setattr__(self, "_aad_prefix", prefix)

    @property
    def market_address(self) -> str:
        """EIP-55 checksum form of `market`."""
        return to_checksum_address(self.market)

    @property
    def owner_address(self) -> str:
        """EIP-55 checksum form of `owner`."""
        return to_checksum_address(self.owner)

    def aad(self, aggregator_index: int) -> bytes:
        """Return the 105-byte AAD for the aggregator at zero-based position `aggregator_index`."""
        return self._aad_prefix + bytes((_validate_aggregator_index(aggregator_index),))

    def __repr__(self) -> str:
        return (
            f"ShareContext(chain_id={self.chain_id}, market={self.market_address}, "
            f"query_id={self.query_id}, owner={self.owner_address})"
        )


def encrypt_share(
    share_words: ArrayLike,
    aggregator_public_key: bytes,
    context: ShareContext,
    aggregator_index: int,
) -> bytes:
    """Encrypt one share for the aggregator at position `aggregator_index`, with a fresh ephemeral key.

    `aggregator_index` is the aggregator's zero-based position in the query's aggregator list,
    which is also the position of this ciphertext in the submission.

    Raises:
        InvalidInputError: the share is not a non-empty vector of words, the index is outside
            0..255, or the public key is not a usable 32-byte X25519 key.
    """
    return _encrypt_share_with_ephemeral(
        share_words, aggregator_public_key, context, aggregator_index, X25519PrivateKey.generate()
    )


def encrypt_shares(
    secret_words: ArrayLike,
    aggregator_public_keys: Sequence[bytes],
    context: ShareContext,
) -> list[bytes]:
    """Split an owner's encoded output into K shares and encrypt share k to aggregator k.

    The result is the owner's whole submission, in the order of `aggregator_public_keys`.

    Raises:
        InvalidInputError: fewer than 2 or more than 256 keys, a repeated key (one key holder
            would get two shares), an unusable key, or a secret that is not a vector of words.
    """
    keys = _load_aggregator_keys(aggregator_public_keys)
    words = _as_word_array(secret_words, "secret_words")
    shares = split(words, len(keys))
    return [
        _seal(to_le_bytes(share), key, key_bytes, context.aad(index), X25519PrivateKey.generate())
        for index, (share, (key, key_bytes)) in enumerate(zip(shares, keys, strict=True))
    ]


class ShareDecryptor:
    """One aggregator's private key, loaded once, for decrypting many shares.

    Prefer it to `decrypt_share` in a loop: it derives the public key a single time, and
    `decrypt_into` adds the plaintext into an accumulator without building an array per share.
    """

    __slots__ = ("_private_key", "_public_key")

    def __init__(self, private_key: X25519PrivateKey | bytes) -> None:
        self._private_key = _load_private_key(private_key)
        self._public_key = self._private_key.public_key().public_bytes_raw()

    @property
    def public_key(self) -> bytes:
        """The aggregator's 32-byte X25519 public key."""
        return self._public_key

    def decrypt_bytes(
        self,
        ciphertext: bytes | bytearray | memoryview,
        context: ShareContext,
        aggregator_index: int,
        length: int,
    ) -> bytes:
        """Decrypt a share of `length` words and return its `8 * length` little-endian bytes.

        Raises:
            DecryptionError: wrong ciphertext length, or the ciphertext does not authenticate
                under this key and this context (wrong key, wrong AAD or modified bytes).
        """
        view = memoryview(ciphertext)
        expected = ciphertext_length(length)
        if view.nbytes != expected:
            raise DecryptionError(
                f"ciphertext for query {context.query_id} from owner {context.owner_address} has "
                f"{view.nbytes} bytes but a share of {length} words needs {expected}"
            )
        aad = context.aad(aggregator_index)

        ephemeral_public = bytes(view[:PUBLIC_KEY_BYTES])
        try:
            shared_secret = self._private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        except ValueError as error:
            # OpenSSL rejects a low-order ephemeral point, whose shared secret would be all zero.
            raise self._authentication_error(context, aggregator_index) from error

        key = _derive_key(shared_secret, ephemeral_public, self._public_key)
        try:
            return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, view[PUBLIC_KEY_BYTES:], aad)
        except InvalidTag as error:
            raise self._authentication_error(context, aggregator_index) from error

    def decrypt(
        self,
        ciphertext: bytes | bytearray | memoryview,
        context: ShareContext,
        aggregator_index: int,
        length: int,
    ) -> NDArray[np.uint64]:
        """Decrypt a share of `length` words into a new uint64 array.

        Raises:
            DecryptionError: as `decrypt_bytes`.
        """
        plaintext = self.decrypt_bytes(ciphertext, context, aggregator_index, length)
        return np.frombuffer(plaintext, dtype="<u8").astype(np.uint64)

    def decrypt_into(
        self,
        accumulator: ShareAccumulator,
        ciphertext: bytes | bytearray | memoryview,
        context: ShareContext,
        aggregator_index: int,
    ) -> None:
        """Decrypt a share of `accumulator.length` words and add it into `accumulator`.

        Nothing is added when decryption fails.

        Raises:
            DecryptionError: as `decrypt_bytes`.
        """
        plaintext = self.decrypt_bytes(ciphertext, context, aggregator_index, accumulator.length)
        accumulator.add_le_bytes(plaintext)

    @staticmethod
    def _authentication_error(context: ShareContext, aggregator_index: int) -> DecryptionError:
        return DecryptionError(
            f"ciphertext for query {context.query_id} from owner {context.owner_address} failed "
            f"authentication at aggregator index {aggregator_index}: it was sealed under another key or "
            "context, or it was modified"
        )

    def __repr__(self) -> str:
        return f"ShareDecryptor(public_key={self._public_key.hex()})"


def decrypt_share(
    ciphertext: bytes | bytearray | memoryview,
    aggregator_private_key: X25519PrivateKey | bytes,
    context: ShareContext,
    aggregator_index: int,
    length: int,
) -> NDArray[np.uint64]:
    """Decrypt one share of `length` words sealed for this aggregator and context.

    Raises:
        DecryptionError: wrong ciphertext length, wrong key, wrong AAD or modified bytes. A
            failure always raises; the function never returns a partial or empty result.
    """
    return ShareDecryptor(aggregator_private_key).decrypt(ciphertext, context, aggregator_index, length)


# --- private helpers ----------------------------------------------------------------------------


def _encrypt_share_with_ephemeral(
    share_words: ArrayLike,
    aggregator_public_key: bytes,
    context: ShareContext,
    aggregator_index: int,
    ephemeral_private_key: X25519PrivateKey | bytes,
) -> bytes:
    """Encrypt a share with a given ephemeral key, for known-answer tests.

    Production code never calls this with a chosen key: reusing an ephemeral key for the same
    aggregator repeats the (key, nonce) pair and breaks ChaCha20-Poly1305.
    """
    words = _as_word_array(share_words, "share_words")
    _validate_share_length(words.shape[0])
    ((key, key_bytes),) = _load_aggregator_keys([aggregator_public_key], minimum=1)
    ephemeral = _load_private_key(ephemeral_private_key)
    return _seal(to_le_bytes(words), key, key_bytes, context.aad(aggregator_index), ephemeral)


def _seal(
    plaintext: bytes,
    aggregator_key: X25519PublicKey,
    aggregator_key_bytes: bytes,
    aad: bytes,
    ephemeral: X25519PrivateKey,
) -> bytes:
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    try:
        shared_secret = ephemeral.exchange(aggregator_key)
    except ValueError as error:
        raise InvalidInputError(
            f"aggregator public key {aggregator_key_bytes.hex()} is a low-order point with no usable shared "
            "secret; the aggregator must register a key generated by X25519"
        ) from error
    key = _derive_key(shared_secret, ephemeral_public, aggregator_key_bytes)
    return ephemeral_public + ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, plaintext, aad)


def _derive_key(shared_secret: bytes, ephemeral_public: bytes, aggregator_public: bytes) -> bytes:
    # HKDF objects are single-use, so each ciphertext gets a new one.
    kdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"",
        info=b"".join((SHARE_KDF_LABEL, ephemeral_public, aggregator_public)),
    )
    return kdf.derive(shared_secret)


def _load_aggregator_keys(
    public_keys: Sequence[bytes], *, minimum: int = 2
) -> list[tuple[X25519PublicKey, bytes]]:
    if isinstance(public_keys, (bytes, bytearray, str)):
        raise InvalidInputError("aggregator_public_keys must be a sequence of 32-byte keys, not a single value")
    if not minimum <= len(public_keys) <= MAX_AGGREGATORS:
        raise InvalidInputError(
            f"{len(public_keys)} aggregator keys given; a submission needs {minimum}..{MAX_AGGREGATORS}"
        )
    loaded: list[tuple[X25519PublicKey, bytes]] = []
    seen: set[bytes] = set()
    for index, public_key in enumerate(public_keys):
        if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != PUBLIC_KEY_BYTES:
            raise InvalidInputError(
                f"aggregator key {index} is {public_key!r}; pass the registered 32-byte X25519 public key as bytes"
            )
        key_bytes = bytes(public_key)
        if key_bytes in seen:
            raise InvalidInputError(
                f"aggregator key {index} ({key_bytes.hex()}) repeats an earlier key, so one key holder would "
                "receive two shares; every aggregator of a query needs its own key"
            )
        seen.add(key_bytes)
        loaded.append((X25519PublicKey.from_public_bytes(key_bytes), key_bytes))
    return loaded


def _load_private_key(private_key: X25519PrivateKey | bytes) -> X25519PrivateKey:
    if isinstance(private_key, X25519PrivateKey):
        return private_key
    if isinstance(private_key, (bytes, bytearray)) and len(private_key) == PUBLIC_KEY_BYTES:
        return X25519PrivateKey.from_private_bytes(bytes(private_key))
    # The message names the type only, because the value may be key material.
    raise InvalidInputError(
        f"private key of type {type(private_key).__name__} is invalid; pass an X25519PrivateKey or its 32 raw bytes"
    )


def _validate_share_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise InvalidInputError(f"share length {length!r} is invalid; pass the number of words as an int >= 1")


def _validate_aggregator_index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < MAX_AGGREGATORS:
        raise InvalidInputError(
            f"aggregator index {index!r} is invalid; pass the zero-based position in the query's "
            f"aggregator list, 0..{MAX_AGGREGATORS - 1}"
        )
    return int(index)


def _validate_uint256(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < _UINT256_LIMIT:
        raise InvalidInputError(f"{name} {value!r} is invalid; pass an int in 0..2^256-1")
    return int(value)


def _address_bytes(address: bytes | str, name: str) -> bytes:
    if isinstance(address, (bytes, bytearray)):
        if len(address) != ADDRESS_BYTES:
            raise InvalidInputError(f"{name} address has {len(address)} bytes; an address is 20 bytes")
        return bytes(address)
    if isinstance(address, str):
        if _HEX_ADDRESS.fullmatch(address) is None:
            raise InvalidInputError(f"{name} address {address!r} is not a 0x-prefixed 40-digit hex address")
        digits = address[2:]
        if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
            # The message does not suggest the corrected form, which would defeat the checksum.
            raise InvalidInputError(
                f"{name} address {address!r} has an invalid EIP-55 checksum; check it for a typing error"
            )
        return bytes.fromhex(digits)
    raise InvalidInputError(f"{name} address {address!r} has type {type(address).__name__}; pass bytes or a hex string")
