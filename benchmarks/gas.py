"""Measure the gas of the market's main calls on a fresh Anvil node.

For every output length L in (1, 16, 256) and aggregator count K in (2, 3, 5), one query with three
owners is run to publication, and the receipts give the gas of:

- `registerOwner`: the third owner registered for that query;
- `proposeQuery`: the query's proposal (spec JSON of L schema entries);
- `submitShares`: the third submission, a typical owner (the first one to a query also pays for
  the query's first submission slot);
- `commitAggregate`: the last of the K commits;
- `revealAggregate`: the K-th reveal, which adds the shares and publishes the result;
- `claim`: the second owner's claim.

Two more queries at L = 1, K = 3 with 10 and 1,000 owners measure `revealAggregate` and `claim`
(the 6th owner's claim) against the number of owners, which settlement must not loop over.

Ciphertexts, salts and dataset commitments are random bytes, and calldata costs 4 gas per zero
byte against 16 per other byte, so a figure can move by some tens of gas between runs. Gas does not
depend on the machine, but the run time does: 58 s on an idle 2-core machine and 107 s on the same
machine under other load, most of it spent on the 1,000-owner query, whose transactions are sent
in batches.

    python benchmarks/gas.py            # table
    python benchmarks/gas.py --json     # JSON list of {"call", "L", "K", "gas", "machine"} (+ "owners")
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pmsr_chain import (  # noqa: E402
    ETHER,
    AnvilConfig,
    AnvilNode,
    MarketClient,
    MarketParameters,
    Receipt,
    TransactionSender,
    compile_contracts,
    deploy_market,
    market_client,
)
from pmsr_chain._paths import find_anvil  # noqa: E402
from pmsr_chain.testing import MarketHarness, OpenQuery, example_spec_json, split_additive  # noqa: E402

LENGTHS = (1, 16, 256)
AGGREGATOR_COUNTS = (2, 3, 5)
OWNERS_PER_QUERY = 3
SCALING_OWNER_COUNTS = (10, 1_000)
SCALING_LENGTH = 1
SCALING_AGGREGATORS = 3

PARAMETERS = MarketParameters(
    min_owner_stake=ETHER // 100,
    min_aggregator_stake=ETHER,
    unbonding_period=24 * 3600,
    complaint_period=60,
    slash_amount=ETHER // 2,
    max_aggregators=5,
    max_output_length=256,
)


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
    anvil_version = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "anvil": anvil_version.splitlines()[0].strip() if anvil_version else "unknown",
        "platform": platform.platform(),
    }


def _address(client: MarketClient) -> str:
    assert client.sender is not None
    return client.sender.address


def _run_to_publication(harness: MarketHarness, query: OpenQuery, owners: list[MarketClient]) -> tuple[list[Receipt], list[Receipt], list[Receipt]]:
    """Submit from every owner, commit and reveal; return (submit, commit, reveal) receipts."""
    submits = harness.submit_random(query, owners)
    harness.advance_to_commit_window(query)
    length = query.params.output_length
    # Random nonzero values, because storing a zero word costs less gas than storing a nonzero one.
    values = [secrets.randbelow(2**64 - 1) + 1 for _ in range(length)]
    shares = split_additive(values, len(query.aggregators))
    commits, reveals = harness.commit_and_reveal(query, shares)
    return submits, commits, reveals


def measure_grid(harness: MarketHarness) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for length in LENGTHS:
        for count in AGGREGATOR_COUNTS:
            aggregators = harness.register_aggregators(count)
            owners = harness.register_owners(OWNERS_PER_QUERY)
            register_receipt = _last_registration(harness, owners[-1])
            spec = example_spec_json(length)
            query = harness.propose(
                aggregators, spec_json=spec, output_length=length,
                min_owners=OWNERS_PER_QUERY, max_owners=OWNERS_PER_QUERY,
            )
            propose_receipt = _proposal_receipt(harness, query)
            submits, commits, reveals = _run_to_publication(harness, query, owners)
            claim_receipts = [owner.claim(query.query_id) for owner in owners]
            for call, receipt in (
                ("registerOwner", register_receipt),
                ("proposeQuery", propose_receipt),
                ("submitShares", submits[2]),
                ("commitAggregate", commits[-1]),
                ("revealAggregate", reveals[-1]),
                ("claim", claim_receipts[1]),
            ):
                records.append({"call": call, "L": length, "K": count, "gas": receipt.gas_used})
            logging.info("L=%d K=%d measured", length, count)
    return records


def _last_registration(harness: MarketHarness, owner: MarketClient) -> Receipt:
    (event,) = harness.market.events("OwnerRegistered", 0, filters={"owner": _address(owner)})
    return _receipt(harness, event.transaction_hash)


def _proposal_receipt(harness: MarketHarness, query: OpenQuery) -> Receipt:
    (event,) = harness.market.events("QueryProposed", 0, filters={"queryId": query.query_id})
    return _receipt(harness, event.transaction_hash)


def _receipt(harness: MarketHarness, transaction_hash: str) -> Receipt:
    raw = harness.w3.provider.make_request("eth_getTransactionReceipt", [transaction_hash])  # type: ignore[arg-type]
    return Receipt.from_rpc(raw["result"])


def measure_scaling(harness: MarketHarness) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for owner_count in SCALING_OWNER_COUNTS:
        started = time.monotonic()
        aggregators = harness.register_aggregators(SCALING_AGGREGATORS)
        owners = harness.register_owners(owner_count)
        query = harness.propose(
            aggregators, output_length=SCALING_LENGTH, min_owners=owner_count, max_owners=owner_count,
        )
        _, _, reveals = _run_to_publication(harness, query, owners)
        claims = [owner.claim(query.query_id) for owner in owners[:6]]
        shape = {"owners": owner_count, "L": SCALING_LENGTH, "K": SCALING_AGGREGATORS}
        records.append({"call": "revealAggregate", **shape, "gas": reveals[-1].gas_used})
        records.append({"call": "claim", **shape, "gas": claims[5].gas_used})
        logging.info("%d-owner query measured in %.1f s", owner_count, time.monotonic() - started)
    return records


def print_table(records: list[dict[str, Any]]) -> None:
    print(f"{'call':<18}{'owners':>8}{'L':>6}{'K':>4}{'gas':>12}")
    for record in records:
        owners = record.get("owners", OWNERS_PER_QUERY)
        print(f"{record['call']:<18}{owners:>8}{record['L']:>6}{record['K']:>4}{record['gas']:>12,}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure DataMarket gas per call on a fresh Anvil node.")
    parser.add_argument("--json", action="store_true", help="print a JSON list of records instead of a table")
    parser.add_argument("--verbose", action="store_true", help="log progress to stderr")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO if arguments.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")

    started = time.monotonic()
    artifacts = compile_contracts()
    with AnvilNode(AnvilConfig(accounts=1)) as node:
        deployer = TransactionSender(node.web3, node.accounts[0])
        deployment = deploy_market(deployer, PARAMETERS, artifact=artifacts["DataMarket"])
        harness = MarketHarness(market_client(node.web3, deployment, artifact=artifacts["DataMarket"]))
        records = measure_grid(harness) + measure_scaling(harness)

    machine = machine_info()
    for record in records:
        record["machine"] = machine
    if arguments.json:
        print(json.dumps(records, indent=2))
    else:
        print_table(records)
    print(f"measured {len(records)} calls in {time.monotonic() - started:.0f} s on {machine['cpu']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
