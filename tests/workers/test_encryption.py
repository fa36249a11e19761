import dataclasses
import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from eth_abi.packed import encode_packed
from hypothesis import given, settings
from hypothesis import strategies as st

import offchain_workers.encryption as encryption
from pmsr_chain.errors import InvalidInputError, PmsrError
from offchain_workers.encoding import encode_fixed
from offchain_workers.encryption import (
    ShareContext,
    ShareDecryptor,
    _encrypt_share_with_ephemeral,
    ciphertext_length,
    decrypt_share,
    encrypt_share,
    encrypt_shares,
)
from offchain_workers.errors import DecryptionError, EncodingOverflowError
from offchain_workers.keys import AggregatorKeyPair
from offchain_workers.sharing import ShareAccumulator, reconstruct

# RFC 7748, section 6.1: Alice's and Bob's X25519 keys and their shared secret.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
RFC7748_SHARED_SECRET = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# Anvil's first deployment address and first development account: public values.
MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER_OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# Known answer: the share [1, 2^64 - 1, 0x0123456789abcdef] for aggregator index 1, sealed with
# Alice's key as the ephemeral key and Bob's public key as the aggregator key, in the context
# (chain 31337, MARKET, query 7, OWNER). The same bytes came out of an independent pure-Python
# implementation of X25519 (RFC 7748), HKDF (RFC 5869, through hmac) and ChaCha20-Poly1305
# (RFC 8439), written only to produce this vector.
KNOWN_ANSWER_WORDS = [1, 2**64 - 1, 0x0123456789ABCDEF]
KNOWN_ANSWER_KEY = bytes.fromhex("ff9c5784a053704bdd760602606fcbec19daa74fcaf9768cbe4dd6b787e7d259")
KNOWN_ANSWER_CIPHERTEXT = bytes.fromhex(
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    "baeb537dc4626c83bfb18d857b459d7ff852afce08c05a870616d6f594eb495d"
    "72bc3945e7c96a3d"
)


@pytest.fixture(scope="module")
def aggregators() -> list[AggregatorKeyPair]:
    return [AggregatorKeyPair.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def context() -> ShareContext:
    return ShareContext(31337, MARKET, 7, OWNER)


def words(values) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def hkdf_sha256(secret: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 with an empty salt and 32 bytes of output, from RFC 5869 with hmac."""
    pseudo_random_key = hmac.new(b"", secret, hashlib.sha256).digest()
    return hmac.new(pseudo_random_key, info + b"\x01", hashlib.sha256).digest()


# --- published and known-answer vectors ---------------------------------------------------------


def test_rfc7748_public_keys():
    assert AggregatorKeyPair.from_private_bytes(ALICE_PRIVATE).public_key == ALICE_PUBLIC
    assert ShareDecryptor(BOB_PRIVATE).public_key == BOB_PUBLIC


def test_rfc7748_shared_secret_through_share_path():
    context = ShareContext(31337, MARKET, 7, OWNER)

    ciphertext = _encrypt_share_with_ephemeral(words([42]), BOB_PUBLIC, context, 0, ALICE_PRIVATE)

    # The ephemeral key is Alice's, so the AEAD key must derive from the RFC's shared secret.
    assert ciphertext[:32] == ALICE_PUBLIC
    expected_key = hkdf_sha256(RFC7748_SHARED_SECRET, b"pmsr/share/v1" + ALICE_PUBLIC + BOB_PUBLIC)
    plaintext = ChaCha20Poly1305(expected_key).decrypt(bytes(12), ciphertext[32:], context.aad(0))
    assert plaintext == (42).to_bytes(8, "little")


def test_known_answer_ciphertext():
    context = ShareContext(31337, MARKET, 7, OWNER)

    ciphertext = _encrypt_share_with_ephemeral(words(KNOWN_ANSWER_WORDS), BOB_PUBLIC, context, 1, ALICE_PRIVATE)

    assert ciphertext == KNOWN_ANSWER_CIPHERTEXT
    assert hkdf_sha256(RFC7748_SHARED_SECRET, b"pmsr/share/v1" + ALICE_PUBLIC + BOB_PUBLIC) == KNOWN_ANSWER_KEY


def test_known_answer_decrypts_with_bob_key():
    context = ShareContext(31337, MARKET, 7, OWNER)

    share = decrypt_share(KNOWN_ANSWER_CIPHERTEXT, BOB_PRIVATE, context, 1, 3)

    assert [int(word) for word in share] == KNOWN_ANSWER_WORDS


def test_aad_matches_abi_encode_packed(context):
    expected = encode_packed(
        ["uint256", "address", "uint256", "address", "uint8"], [31337, MARKET, 7, OWNER, 2]
    )

    assert context.aad(2) == expected
    assert len(context.aad(2)) == 32 + 20 + 32 + 20 + 1


def test_ciphertext_length_formula():
    assert ciphertext_length(1) == 56
    assert ciphertext_length(3) == len(KNOWN_ANSWER_CIPHERTEXT)
    assert ciphertext_length(256) == 32 + 8 * 256 + 16


# --- round trips --------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    secret=st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=16),
    parties=st.integers(min_value=2, max_value=5),
)
def test_encrypt_shares_round_trip(secret, parties):
    pairs = [AggregatorKeyPair.from_private_bytes(bytes([index + 1]) * 32) for index in range(parties)]
    context = ShareContext(1, MARKET, 99, OWNER)

    ciphertexts = encrypt_shares(words(secret), [pair.public_key for pair in pairs], context)

    assert len(ciphertexts) == parties
    for ciphertext in ciphertexts:
        assert len(ciphertext) == ciphertext_length(len(secret))
    shares = [
        decrypt_share(ciphertext, pair.private_key, context, index, len(secret))
        for index, (ciphertext, pair) in enumerate(zip(ciphertexts, pairs, strict=True))
    ]
    assert [int(word) for word in reconstruct(shares)] == secret


def test_owners_sum_through_decryptors(aggregators):
    inputs = [[1.5, -2.0], [0.25, 4.0], [-3.0, 0.5]]
    decryptors = [pair.decryptor() for pair in aggregators]
    accumulators = [ShareAccumulator(2) for _ in aggregators]

    for owner_index, values in enumerate(inputs):
        owner = bytes([owner_index + 1]) * 20
        context = ShareContext(31337, MARKET, 5, owner)
        submission = encrypt_shares(encode_fixed(values, 16), [pair.public_key for pair in aggregators], context)
        for index, ciphertext in enumerate(submission):
            decryptors[index].decrypt_into(accumulators[index], ciphertext, context, index)

    total = reconstruct([accumulator.total for accumulator in accumulators]).view(np.int64)
    assert [int(word) for word in total] == [int(-1.25 * 2**16), int(2.5 * 2**16)]
    assert all(accumulator.count == 3 for accumulator in accumulators)


def test_each_ciphertext_has_fresh_ephemeral_key(aggregators, context):
    first = encrypt_share(words([5]), aggregators[0].public_key, context, 0)
    second = encrypt_share(words([5]), aggregators[0].public_key, context, 0)

    assert first[:32] != second[:32]
    assert first[32:] != second[32:]


def test_submission_ephemeral_keys_distinct(aggregators, context):
    submission = encrypt_shares(words([1, 2]), [pair.public_key for pair in aggregators], context)

    assert len({ciphertext[:32] for ciphertext in submission}) == len(aggregators)


# --- tampering ----------------------------------------------------------------------------------


def test_every_bit_flip_rejected(aggregators, context):
    ciphertext = encrypt_share(words([7, 8]), aggregators[0].public_key, context, 0)
    decryptor = aggregators[0].decryptor()

    for bit in range(8 * len(ciphertext)):
        tampered = bytearray(ciphertext)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecryptionError):
            decryptor.decrypt(bytes(tampered), context, 0, 2)


@settings(max_examples=100, deadline=None)
@given(
    secret=st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=32),
    data=st.data(),
)
def test_random_bit_flip_rejected(secret, data):
    pair = AggregatorKeyPair.from_private_bytes(BOB_PRIVATE)
    context = ShareContext(10, MARKET, 3, OWNER)
    ciphertext = encrypt_share(words(secret), pair.public_key, context, 4)
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(ciphertext) - 1))

    tampered = bytearray(ciphertext)
    tampered[bit // 8] ^= 1 << (bit % 8)

    with pytest.raises(DecryptionError):
        decrypt_share(bytes(tampered), pair.private_key, context, 4, len(secret))


AAD_CHANGES = {
    "chain_id": lambda context: ShareContext(context.chain_id + 1, context.market, context.query_id, context.owner),
    "market": lambda context: ShareContext(context.chain_id, OTHER_OWNER, context.query_id, context.owner),
    "query_id": lambda context: ShareContext(context.chain_id, context.market, context.query_id + 1, context.owner),
    "owner": lambda context: ShareContext(context.chain_id, context.market, context.query_id, OTHER_OWNER),
}


@pytest.mark.parametrize("field", sorted(AAD_CHANGES))
def test_changed_context_field_rejected(aggregators, context, field):
    ciphertext = encrypt_share(words([1, 2, 3]), aggregators[1].public_key, context, 1)
    other_context = AAD_CHANGES[field](context)

    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_share(ciphertext, aggregators[1].private_key, other_context, 1, 3)


def test_changed_aggregator_index_rejected(aggregators, context):
    ciphertext = encrypt_share(words([1, 2, 3]), aggregators[1].public_key, context, 1)

    for index in (0, 2, 255):
        with pytest.raises(DecryptionError, match="failed authentication"):
            decrypt_share(ciphertext, aggregators[1].private_key, context, index, 3)


@settings(max_examples=50, deadline=None)
@given(
    chain_id=st.integers(min_value=1, max_value=2**256 - 1),
    query_id=st.integers(min_value=0, max_value=2**256 - 1),
    market=st.binary(min_size=20, max_size=20),
    owner=st.binary(min_size=20, max_size=20),
    index=st.integers(min_value=0, max_value=255),
    data=st.data(),
)
def test_any_aad_change_rejected(chain_id, query_id, market, owner, index, data):
    pair = AggregatorKeyPair.from_private_bytes(BOB_PRIVATE)
    original = (chain_id, market, query_id, owner, index)
    ciphertext = encrypt_share(words([9]), pair.public_key, ShareContext(*original[:4]), index)
    changed = data.draw(
        st.tuples(
            st.integers(min_value=1, max_value=2**256 - 1),
            st.binary(min_size=20, max_size=20),
            st.integers(min_value=0, max_value=2**256 - 1),
            st.binary(min_size=20, max_size=20),
            st.integers(min_value=0, max_value=255),
        ).filter(lambda candidate: candidate != original)
    )

    with pytest.raises(DecryptionError):
        decrypt_share(ciphertext, pair.private_key, ShareContext(*changed[:4]), changed[4], 1)


def test_other_aggregator_key_rejected(aggregators, context):
    ciphertext = encrypt_share(words([1, 2, 3]), aggregators[0].public_key, context, 0)

    for other in aggregators[1:]:
        with pytest.raises(DecryptionError, match="failed authentication"):
            decrypt_share(ciphertext, other.private_key, context, 0, 3)


@pytest.mark.parametrize("change", ["truncate", "extend", "empty"])
def test_wrong_ciphertext_length_rejected(aggregators, context, change):
    ciphertext = encrypt_share(words([1, 2]), aggregators[0].public_key, context, 0)
    altered = {"truncate": ciphertext[:-1], "extend": ciphertext + b"\x00", "empty": b""}[change]

    with pytest.raises(DecryptionError, match="needs 64"):
        decrypt_share(altered, aggregators[0].private_key, context, 0, 2)


def test_wrong_declared_length_rejected(aggregators, context):
    ciphertext = encrypt_share(words([1, 2]), aggregators[0].public_key, context, 0)

    with pytest.raises(DecryptionError, match="share of 3 words needs 72"):
        decrypt_share(ciphertext, aggregators[0].private_key, context, 0, 3)


def test_low_order_ephemeral_key_rejected(aggregators, context):
    ciphertext = encrypt_share(words([1]), aggregators[0].public_key, context, 0)
    tampered = bytes(32) + ciphertext[32:]

    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_share(tampered, aggregators[0].private_key, context, 0, 1)


def test_failed_decryption_leaves_accumulator_unchanged(aggregators, context):
    accumulator = ShareAccumulator(1)
    ciphertext = encrypt_share(words([1]), aggregators[0].public_key, context, 0)

    with pytest.raises(DecryptionError):
        aggregators[1].decryptor().decrypt_into(accumulator, ciphertext, context, 0)

    assert accumulator.count == 0
    assert int(accumulator.total[0]) == 0


def test_decryption_error_hierarchy(aggregators, context):
    ciphertext = encrypt_share(words([1]), aggregators[0].public_key, context, 0)

    with pytest.raises(DecryptionError) as raised:
        decrypt_share(ciphertext, aggregators[1].private_key, context, 0, 1)

    assert isinstance(raised.value, PmsrError)
    assert isinstance(raised.value, ValueError)
    assert "query 7" in str(raised.value)
    assert OWNER in str(raised.value)


# --- input validation ---------------------------------------------------------------------------


def test_overflow_rejected_before_sharing(aggregators, context, monkeypatch):
    split_calls = []
    monkeypatch.setattr(encryption, "split", lambda *arguments: split_calls.append(arguments))

    with pytest.raises(EncodingOverflowError, match="max_abs 1024"):
        encrypt_shares(
            encode_fixed([0.5, 1.0, 1000.0], 10, max_abs=1024),
            [pair.public_key for pair in aggregators],
            context,
        )

    assert split_calls == []


def test_duplicate_aggregator_keys_rejected(aggregators, context):
    keys = [aggregators[0].public_key, aggregators[1].public_key, aggregators[0].public_key]

    with pytest.raises(InvalidInputError, match="repeats an earlier key"):
        encrypt_shares(words([1]), keys, context)


def test_single_aggregator_rejected(aggregators, context):
    with pytest.raises(InvalidInputError, match="needs 2..256"):
        encrypt_shares(words([1]), [aggregators[0].public_key], context)


def test_low_order_aggregator_key_rejected(context):
    with pytest.raises(InvalidInputError, match="low-order point"):
        encrypt_share(words([1]), bytes(32), context, 0)


def test_short_aggregator_key_rejected(context):
    with pytest.raises(InvalidInputError, match="32-byte X25519 public key"):
        encrypt_share(words([1]), bytes(31), context, 0)


@pytest.mark.parametrize("index", [-1, 256, 1.0, True])
def test_invalid_aggregator_index_rejected(aggregators, context, index):
    with pytest.raises(InvalidInputError, match="aggregator index"):
        encrypt_share(words([1]), aggregators[0].public_key, context, index)


def test_empty_share_rejected(aggregators, context):
    with pytest.raises(InvalidInputError, match="share length 0"):
        encrypt_share(np.array([], dtype=np.uint64), aggregators[0].public_key, context, 0)


def test_context_accepts_lowercase_and_bytes():
    from_string = ShareContext(1, MARKET.lower(), 0, OWNER.lower())
    from_bytes = ShareContext(1, bytes.fromhex(MARKET[2:]), 0, bytes.fromhex(OWNER[2:]))

    assert from_string == from_bytes
    assert from_string.market_address == MARKET
    assert from_string.owner_address == OWNER


def test_context_replace_rebuilds_aad(context):
    replaced = dataclasses.replace(context, query_id=8)

    assert replaced.aad(0) == ShareContext(31337, MARKET, 8, OWNER).aad(0)
    assert replaced.aad(0) != context.aad(0)


def test_context_rejects_bad_checksum():
    # Swap the case of the first hex letter, leaving the address mixed-case with a wrong checksum.
    letter = next(position for position in range(2, 42) if MARKET[position].isalpha())
    bad_case = MARKET[:letter] + MARKET[letter].swapcase() + MARKET[letter + 1 :]

    with pytest.raises(InvalidInputError, match="checksum"):
        ShareContext(1, bad_case, 0, OWNER)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, MARKET, 1, OWNER), "chain_id 0"),
        ((-1, MARKET, 1, OWNER), "chain_id"),
        ((1, MARKET, 2**256, OWNER), "query_id"),
        ((1, MARKET, -1, OWNER), "query_id"),
        ((1, bytes(19), 1, OWNER), "19 bytes"),
        ((1, MARKET[2:], 1, OWNER), "0x-prefixed"),
        ((1, MARKET, 1, 12345), "type int"),
    ],
)
def test_context_rejects_invalid_fields(arguments, message):
    with pytest.raises(InvalidInputError, match=message):
        ShareContext(*arguments)


def test_decryptor_repr_shows_public_key_only():
    decryptor = ShareDecryptor(BOB_PRIVATE)

    assert BOB_PRIVATE.hex() not in repr(decryptor)
    assert BOB_PUBLIC.hex() in repr(decryptor)
