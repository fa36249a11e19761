import os
import stat
import subprocess
from pathlib import Path

import pytest

from pmsr_chain.errors import InvalidInputError
from pmsr_chain.keystore import (
    KeystoreError,
    WrongPassphraseError,
    create_keystore,
    find_keystore,
    import_keystore,
    list_keystores,
    unlock_keystore,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CAST = REPO_ROOT / "node_modules" / ".bin" / "cast"
FAST_SCRYPT = 2**12
# Anvil's first development key: public knowledge, safe to appear in a test.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_create_and_unlock(tmp_path):
    entry = create_keystore(tmp_path, "alice", "correct horse", scrypt_n=FAST_SCRYPT)
    account = unlock_keystore(entry.path, "correct horse")
    assert account.address == entry.address
    assert stat.S_IMODE(os.stat(entry.path).st_mode) == 0o600


def test_wrong_passphrase_rejected(tmp_path):
    entry = create_keystore(tmp_path, "alice", "right", scrypt_n=FAST_SCRYPT)
    with pytest.raises(WrongPassphraseError) as caught:
        unlock_keystore(entry.path, "wrong")
    assert "right" not in str(caught.value)
    assert str(entry.path) in str(caught.value)


def test_existing_file_not_overwritten(tmp_path):
    first = create_keystore(tmp_path, "alice", "pw", scrypt_n=FAST_SCRYPT)
    before = first.path.read_bytes()
    with pytest.raises(KeystoreError):
        create_keystore(tmp_path, "alice", "pw", scrypt_n=FAST_SCRYPT)
    assert first.path.read_bytes() == before


def test_import_private_key(tmp_path):
    entry = import_keystore(tmp_path, "dev", DEV_KEY, "pw", scrypt_n=FAST_SCRYPT)
    assert entry.address == DEV_ADDRESS
    assert unlock_keystore(entry.path, "pw").address == DEV_ADDRESS


@pytest.mark.parametrize("key", ["0x1234", "not hex at all", DEV_KEY + "00"])
def test_import_invalid_key(tmp_path, key):
    with pytest.raises(InvalidInputError) as caught:
        import_keystore(tmp_path, "bad", key, "pw", scrypt_n=FAST_SCRYPT)
    assert key not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_list_and_find(tmp_path):
    alice = create_keystore(tmp_path, "alice", "pw", scrypt_n=FAST_SCRYPT)
    bob = create_keystore(tmp_path, "bob", "pw", scrypt_n=FAST_SCRYPT)
    (tmp_path / "notes.txt").write_text("not a keystore")
    assert [entry.name for entry in list_keystores(tmp_path)] == ["alice", "bob"]
    assert find_keystore(tmp_path, "bob") == bob.path
    assert find_keystore(tmp_path, alice.address.lower()) == alice.path
    with pytest.raises(KeystoreError):
        find_keystore(tmp_path, "carol")


def test_tampered_file_rejected(tmp_path):
    entry = create_keystore(tmp_path, "alice", "pw", scrypt_n=FAST_SCRYPT)
    text = entry.path.read_text()
    mac_start = text.index('"mac": "') + len('"mac": "')
    flipped = "0" if text[mac_start] != "0" else "1"
    entry.path.write_text(text[:mac_start] + flipped + text[mac_start + 1 :])
    with pytest.raises(WrongPassphraseError):
        unlock_keystore(entry.path, "pw")


def test_cast_opens_our_keystore(tmp_path):
    entry = create_keystore(tmp_path, "alice", "pw", scrypt_n=FAST_SCRYPT)
    output = subprocess.run(
        [str(CAST), "wallet", "address", "--keystore", str(entry.path), "--password", "pw"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert output.strip() == entry.address


def test_we_open_cast_keystore(tmp_path):
    output = subprocess.run(
        [str(CAST), "wallet", "new", str(tmp_path), "made-by-cast", "--unsafe-password", "pw"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    address = next(line.split()[-1] for line in output.splitlines() if line.startswith("Address"))
    path = find_keystore(tmp_path, "made-by-cast")
    assert unlock_keystore(path, "pw").address == address
