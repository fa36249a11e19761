"""Measure share encryption at an owner and decryption plus accumulation at an aggregator.

Operations, each timed on one CPU core (the process pins itself to one core where the OS allows):

- `share_encrypt`: one owner's whole submission, `encrypt_shares`: split an L-word vector into K
  shares and encrypt each to its aggregator with a fresh ephemeral key.
- `decrypt_accumulate`: one ciphertext at an aggregator: build the submission's `ShareContext`,
  decrypt with a `ShareDecryptor` (X25519, HKDF-SHA256, ChaCha20-Poly1305) and add the share into
  a `ShareAccumulator`.
- `primitive_decrypt`: the floor under `decrypt_accumulate` at L = 1: load the ephemeral public
  key, one X25519 exchange, and one ChaCha20-Poly1305 decryption keyed directly by the shared
  secret, with no KDF, validation or accumulation.

Each rate is the best of `--repeats` rounds of at least `--seconds` each, with the operations
interleaved between rounds so that a slow spell of the machine hits all of them.

    python benchmarks/crypto.py            # table
    python benchmarks/crypto.py --json     # JSON list of {"op", "L", "K", "per_second", "machine"}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cryptography
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain_workers.encoding import encode_fixed  # noqa: E402
from offchain_workers.encryption import ShareContext, encrypt_shares  # noqa: E402
from offchain_workers.keys import AggregatorKeyPair  # noqa: E402
from offchain_workers.sharing import ShareAccumulator  # noqa: E402

LENGTHS = (1, 16, 256)
PARTIES = 3
CHAIN_ID = 31337
MARKET = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
QUERY_ID = 1
# Distinct ciphertexts per measured operation, reused cyclically. Each has its own owner and
# ephemeral key, as in a real query.
POOL_SIZE = 256


def owner_address(index: int) -> bytes:
    return (index + 1).to_bytes(20, "big")


def machine_info() -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu_model,
        "cores_used": 1,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[0]})


def measure(operation: Callable[[int], None], seconds: float) -> float:
    """Return calls per second of `operation(i)` over at least `seconds`, in batches of POOL_SIZE."""
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for index in range(POOL_SIZE):
            operation(index)
        calls += POOL_SIZE
        elapsed = time.perf_counter() - start
    return calls / elapsed


def share_encrypt_operation(length: int, public_keys: list[bytes]) -> Callable[[int], None]:
    rng = np.random.default_rng(1)  # benchmark inputs only, never shares or keys
    secret = encode_fixed(rng.uniform(-1000.0, 1000.0, size=length), 16)
    contexts = [ShareContext(CHAIN_ID, MARKET, QUERY_ID, owner_address(index)) for index in range(POOL_SIZE)]

    def operation(index: int) -> None:
        encrypt_shares(secret, public_keys, contexts[index])

    return operation


def decrypt_accumulate_operation(length: int, aggregators: list[AggregatorKeyPair]) -> Callable[[int], None]:
    rng = np.random.default_rng(2)
    public_keys = [pair.public_key for pair in aggregators]
    ciphertexts = []
    for index in range(POOL_SIZE):
        context = ShareContext(CHAIN_ID, MARKET, QUERY_ID, owner_address(index))
        secret = encode_fixed(rng.uniform(-1000.0, 1000.0, size=length), 16)
        ciphertexts.append(encrypt_shares(secret, public_keys, context)[0])
    owners = [owner_address(index) for index in range(POOL_SIZE)]
    decryptor = aggregators[0].decryptor()
    accumulator = ShareAccumulator(length)

    def operation(index: int) -> None:
        context = ShareContext(CHAIN_ID, MARKET, QUERY_ID, owners[index])
        decryptor.decrypt_into(accumulator, ciphertexts[index], context, 0)

    return operation


def primitive_decrypt_operation() -> Callable[[int], None]:
    private_key = X25519PrivateKey.generate()
    public_key = private_key.public_key()
    nonce = bytes(12)
    aad = bytes(105)
    ephemeral_keys = []
    bodies = []
    for _ in range(POOL_SIZE):
        ephemeral = X25519PrivateKey.generate()
        shared_secret = ephemeral.exchange(public_key)
        ephemeral_keys.append(ephemeral.public_key().public_bytes_raw())
        bodies.append(ChaCha20Poly1305(shared_secret).encrypt(nonce, bytes(8), aad))

    def operation(index: int) -> None:
        shared_secret = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_keys[index]))
        ChaCha20Poly1305(shared_secret).decrypt(nonce, bodies[index], aad)

    return operation


def run(seconds: float, repeats: int) -> list[dict[str, Any]]:
    aggregators = [AggregatorKeyPair.generate() for _ in range(PARTIES)]
    public_keys = [pair.public_key for pair in aggregators]

    operations: list[tuple[str, int, int, Callable[[int], None]]] = []
    for length in LENGTHS:
        operations.append(("share_encrypt", length, PARTIES, share_encrypt_operation(length, public_keys)))
    for length in LENGTHS:
        operations.append(("decrypt_accumulate", length, PARTIES, decrypt_accumulate_operation(length, aggregators)))
    operations.append(("primitive_decrypt", 1, 1, primitive_decrypt_operation()))

    best = [0.0] * len(operations)
    for _ in range(repeats):
        for position, (_, _, _, operation) in enumerate(operations):
            best[position] = max(best[position], measure(operation, seconds))

    machine = machine_info()
    return [
        {"op": name, "L": length, "K": parties, "per_second": round(rate, 1), "machine": machine}
        for (name, length, parties, _), rate in zip(operations, best, strict=True)
    ]


def print_table(records: list[dict[str, Any]]) -> None:
    print(f"{'op':<20} {'L':>4} {'K':>2} {'per second':>12} {'microseconds':>13}")
    for record in records:
        rate = record["per_second"]
        print(f"{record['op']:<20} {record['L']:>4} {record['K']:>2} {rate:>12,.0f} {1e6 / rate:>13.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of records instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum duration of one round, in seconds")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per operation; the best round counts")
    parser.add_argument("--output", type=Path, help="also write the JSON records to this file")
    arguments = parser.parse_args()

    pin_to_one_core()
    records = run(arguments.seconds, arguments.repeats)

    primitive = next(record for record in records if record["op"] == "primitive_decrypt")
    decrypt_one = next(record for record in records if record["op"] == "decrypt_accumulate" and record["L"] == 1)
    ratio = decrypt_one["per_second"] / primitive["per_second"]
    machine = records[0]["machine"]
    print(
        f"machine: {machine['cpu']}, Python {machine['python']}, cryptography {machine['cryptography']}, "
        f"numpy {machine['numpy']}, 1 core",
        file=sys.stderr,
    )
    print(f"decrypt_accumulate at L=1 runs at {ratio:.0%} of primitive_decrypt", file=sys.stderr)

    if arguments.output is not None:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    if arguments.json:
        print(json.dumps(records, indent=2))
    else:
        print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
