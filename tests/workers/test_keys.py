import json
import logging
import os
import stat
import unicodedata

import numpy as np
import pytest

from pmsr_chain.errors import InvalidInputError, PmsrError
from offchain_workers.encryption import ShareContext, decrypt_share, encrypt_share
from offchain_workers.errors import KeyFileError
from offchain_workers.keys import MIN_SCRYPT_N, AggregatorKeyPair

# The lowest accepted cost keeps each save and load to a few milliseconds. Real key files use
# DEFAULT_SCRYPT_N.
TEST_SCRYPT_N = MIN_SCRYPT_N
PASSPHRASE = "correct horse battery staple"
CONTEXT = ShareContext(31337, bytes(range(20)), 1, bytes(range(20, 40)))


@pytest.fixture
def key_path(tmp_path):
    return tmp_path / "aggregator.json"


@pytest.fixture
def saved_pair(key_path):
    pair = AggregatorKeyPair.generate()
    pair.save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    return pair


def rewrite(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_save_load_round_trip(key_path, saved_pair):
    loaded = AggregatorKeyPair.load(key_path, PASSPHRASE)

    assert loaded.public_key == saved_pair.public_key
    ciphertext = encrypt_share(np.array([11, 12], dtype=np.uint64), saved_pair.public_key, CONTEXT, 0)
    share = decrypt_share(ciphertext, loaded.private_key, CONTEXT, 0, 2)
    assert [int(word) for word in share] == [11, 12]


def test_key_file_mode_0600(key_path):
    previous_umask = os.umask(0)
    try:
        AggregatorKeyPair.generate().save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    finally:
        os.umask(previous_umask)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_key_file_format(key_path, saved_pair):
    document = json.loads(key_path.read_text())

    assert document["version"] == 1
    assert document["public_key"] == saved_pair.public_key.hex()
    assert document["kdf"]["name"] == "scrypt"
    assert document["kdf"]["n"] == TEST_SCRYPT_N
    assert len(bytes.fromhex(document["kdf"]["salt"])) == 32
    assert document["cipher"] == {"name": "chacha20-poly1305", "nonce": document["cipher"]["nonce"]}
    assert len(bytes.fromhex(document["ciphertext"])) == 32 + 16


def test_wrong_passphrase_names_file(key_path, saved_pair):
    with pytest.raises(KeyFileError) as raised:
        AggregatorKeyPair.load(key_path, PASSPHRASE + "!")

    assert str(key_path) in str(raised.value)
    assert "passphrase is wrong" in str(raised.value)
    assert isinstance(raised.value, PmsrError)


def test_passphrase_unicode_normalized(key_path):
    composed = unicodedata.normalize("NFC", "caf\u00e9")
    decomposed = unicodedata.normalize("NFD", "caf\u00e9")
    pair = AggregatorKeyPair.generate()
    pair.save(key_path, composed, scrypt_n=TEST_SCRYPT_N)

    assert AggregatorKeyPair.load(key_path, decomposed).public_key == pair.public_key


def flip_ciphertext(document):
    first = "0" if document["ciphertext"][0] != "0" else "1"
    document["ciphertext"] = first + document["ciphertext"][1:]


def replace_public_key(document):
    document["public_key"] = AggregatorKeyPair.generate().public_key.hex()


def double_scrypt_n(document):
    document["kdf"]["n"] *= 2


def flip_nonce(document):
    first = "0" if document["cipher"]["nonce"][0] != "0" else "1"
    document["cipher"]["nonce"] = first + document["cipher"]["nonce"][1:]


@pytest.mark.parametrize("tamper", [flip_ciphertext, replace_public_key, double_scrypt_n, flip_nonce])
def test_tampered_file_rejected(key_path, saved_pair, tamper):
    rewrite(key_path, tamper)

    with pytest.raises(KeyFileError, match="passphrase is wrong or the file was modified"):
        AggregatorKeyPair.load(key_path, PASSPHRASE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda document: document.pop("kdf"), "fields"),
        (lambda document: document.update(version=2), "version 2"),
        (lambda document: document.update(version=True), "version True"),
        (lambda document: document["kdf"].update(n=3 * 2**10), "scrypt parameters"),
        (lambda document: document["kdf"].update(n=2**30), "scrypt parameters"),
        (lambda document: document["kdf"].update(r=1000), "scrypt parameters"),
        (lambda document: document["kdf"].update(n="1024"), "not an integer"),
        (lambda document: document.update(ciphertext="zz"), "ciphertext"),
        (lambda document: document["cipher"].update(nonce="00"), "cipher nonce"),
        (lambda document: document["cipher"].update(name="aes-256-gcm"), "chacha20-poly1305"),
    ],
)
def test_malformed_file_rejected(key_path, saved_pair, change, message):
    rewrite(key_path, change)

    with pytest.raises(KeyFileError, match=message):
        AggregatorKeyPair.load(key_path, PASSPHRASE)


def test_truncated_file_rejected(key_path, saved_pair):
    key_path.write_text(key_path.read_text()[:40])

    with pytest.raises(KeyFileError, match="not valid JSON"):
        AggregatorKeyPair.load(key_path, PASSPHRASE)


def test_missing_file_rejected(tmp_path):
    missing = tmp_path / "absent.json"

    with pytest.raises(KeyFileError, match="not found") as raised:
        AggregatorKeyPair.load(missing, PASSPHRASE)

    assert str(missing) in str(raised.value)


def test_existing_file_not_overwritten(key_path, saved_pair):
    before = key_path.read_bytes()

    with pytest.raises(KeyFileError, match="already exists"):
        AggregatorKeyPair.generate().save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)

    assert key_path.read_bytes() == before


def test_overwrite_replaces_file(key_path, saved_pair):
    replacement = AggregatorKeyPair.generate()

    replacement.save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N, overwrite=True)

    assert AggregatorKeyPair.load(key_path, PASSPHRASE).public_key == replacement.public_key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_save_leaves_no_temporary_files(key_path, saved_pair):
    with pytest.raises(KeyFileError):
        saved_pair.save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)

    assert sorted(path.name for path in key_path.parent.iterdir()) == [key_path.name]


def test_empty_passphrase_rejected(key_path):
    with pytest.raises(InvalidInputError, match="passphrase is empty"):
        AggregatorKeyPair.generate().save(key_path, "", scrypt_n=TEST_SCRYPT_N)

    assert not key_path.exists()


@pytest.mark.parametrize("scrypt_n", [1000, 2**9, 2**23, True])
def test_invalid_scrypt_cost_rejected(key_path, scrypt_n):
    with pytest.raises(InvalidInputError, match="scrypt_n"):
        AggregatorKeyPair.generate().save(key_path, PASSPHRASE, scrypt_n=scrypt_n)


def test_private_key_never_in_repr_or_logs(key_path, caplog):
    pair = AggregatorKeyPair.generate()
    private_hex = pair.private_key.private_bytes_raw().hex()

    with caplog.at_level(logging.DEBUG, logger="offchain_workers"):
        pair.save(key_path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
        loaded = AggregatorKeyPair.load(key_path, PASSPHRASE)

    for text in (repr(pair), str(pair), repr(loaded), repr(pair.private_key), caplog.text):
        assert private_hex not in text
    assert pair.public_key.hex() in repr(pair)


def test_permissive_mode_logs_warning(key_path, saved_pair, caplog):
    key_path.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="offchain_workers.keys"):
        AggregatorKeyPair.load(key_path, PASSPHRASE)

    assert "chmod 600" in caplog.text


@pytest.mark.parametrize("length", [0, 31, 33])
def test_from_private_bytes_rejects_wrong_length(length):
    with pytest.raises(InvalidInputError, match=f"has {length} bytes"):
        AggregatorKeyPair.from_private_bytes(bytes(length))
