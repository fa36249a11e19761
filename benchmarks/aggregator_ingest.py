"""Measure how fast one aggregator service ingests the submissions of one query from a real Anvil node.

The script starts its own Anvil node, deploys the market, registers three aggregators and
`--owners` owners, and has every owner submit real ciphertexts (`encrypt_shares`) to one `sum`
query (L = 1, K = 3). It then times one `AggregatorService.poll_once` of aggregator 0 that reads
every `SharesSubmitted` log in bounded ranges, decrypts each share and stores rows and sums in
SQLite. It also times the three ways to decode one `SharesSubmitted` log on logs fetched from the
node: web3's contract events, `ContractAbi.decode_log` with `to_event_record`, and the aggregator's
own decoder.

    python benchmarks/aggregator_ingest.py                  # 10,000 owners, table
    python benchmarks/aggregator_ingest.py --owners 2000 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cryptography
import numpy as np
from eth_account import Account
from web3 import Web3

# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain_workers.aggregator import AggregatorService, Phase, register_aggregator  # noqa: E402
from offchain_workers.aggregator.logs import SHARES_SUBMITTED_TOPIC, fetch_logs, parse_shares_log, uint_topic  # noqa: E402
from offchain_workers.encoding import encode_fixed  # noqa: E402
from offchain_workers.encryption import ShareContext, encrypt_shares  # noqa: E402
from offchain_workers.keys import AggregatorKeyPair  # noqa: E402
from offchain_workers.local.accounts import fund_accounts, generate_accounts  # noqa: E402
from offchain_workers.spec import build_spec  # noqa: E402
from pmsr_chain import (  # noqa: E402
    ETHER,
    AnvilConfig,
    AnvilNode,
    MarketParameters,
    ContractCall,
    PendingTransaction,
    SenderConfig,
    TransactionSender,
    compile_contracts,
    deploy_market,
    market_client,
    rpc_request,
    wait_for_all,
)
from pmsr_chain.events import to_event_record  # noqa: E402
from pmsr_chain.testing import MarketHarness  # noqa: E402
from pmsr_chain.types import Template  # noqa: E402

AGGREGATORS = 3
SEND_BATCH = 250
DECODE_SAMPLE = 1000
# Thousands of transactions wait in one batch, which takes minutes on a busy machine.
SLOW_NODE = SenderConfig(receipt_timeout=1800)
PARAMETERS = MarketParameters(
    min_owner_stake=ETHER // 100,
    min_aggregator_stake=ETHER,
    unbonding_period=24 * 3600,
    complaint_period=600,
    slash_amount=ETHER // 2,
    max_aggregators=5,
    max_output_length=512,
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
    return {
        "cpu": cpu_model,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def send_presigned(w3: Web3, items: list[tuple[Any, ContractCall]], nonce: int) -> None:
    """Sign each (account, call) with `nonce` and the call's preset gas, send them in JSON-RPC batches, and wait.

    Anvil's automine mines a block per arriving transaction, but a burst leaves most of a batch in
    the pool until the next arrival. So `evm_mine` empties the pool after every batch, about 300 of
    these transactions per 30M-gas block.
    """
    chain_id = int(w3.eth.chain_id)
    block = w3.eth.get_block("latest")
    fees = {"maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9, "maxPriorityFeePerGas": 10**9}
    pending = []
    for start in range(0, len(items), SEND_BATCH):
        chunk = items[start:start + SEND_BATCH]
        raws = []
        for account, call in chunk:
            transaction = {
                "chainId": chain_id, "nonce": nonce, "gas": call.gas, "value": call.value, "data": call.data,
                "to": call.to, "type": 2, **fees,
            }
            raws.append(bytes(Account.sign_transaction(transaction, account.key).raw_transaction))
        responses = w3.provider.make_batch_request([("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws])
        for (account, call), raw, response in zip(chunk, raws, responses):
            if response.get("error"):
                raise RuntimeError(f"{call.function} from {account.address} failed: {response['error']}")
            sender = TransactionSender(w3, account, SLOW_NODE)
            pending.append(PendingTransaction(response["result"], nonce, call, sender, raw, time.monotonic()))
        while int(rpc_request(w3, "txpool_status", [])["pending"], 16) > 0:
            rpc_request(w3, "evm_mine", [])
    wait_for_all(pending)


def time_decoders(w3: Web3, market, artifact_abi, query_id: int, start_block: int) -> dict[str, float]:
    """Return microseconds per log for each decoder, on up to DECODE_SAMPLE real logs."""
    logs = fetch_logs(w3, market.address, ["0x" + SHARES_SUBMITTED_TOPIC.hex(), uint_topic(query_id)], start_block, w3.eth.block_number)
    logs = logs[:DECODE_SAMPLE]
    event = w3.eth.contract(abi=artifact_abi).events.SharesSubmitted()

    def per_log(function) -> float:
        started = time.perf_counter()
        for log in logs:
            function(log)
        return (time.perf_counter() - started) / len(logs) * 1e6

    return {
        "web3_process_log_us": per_log(lambda log: event.process_log(log)),
        "contract_abi_decode_us": per_log(lambda log: to_event_record(market.abi.decode_log(log))),
        "hand_decoder_us": per_log(lambda log: parse_shares_log(log, 0, AGGREGATORS)),
    }


def run(owner_count: int) -> dict[str, Any]:
    artifact = compile_contracts()["DataMarket"]
    with tempfile.TemporaryDirectory() as directory, AnvilNode(AnvilConfig(accounts=1)) as node:
        w3 = node.web3
        deployment = deploy_market(TransactionSender(w3, node.accounts[0]), PARAMETERS, artifact=artifact, data_dir=Path(directory))
        market = market_client(w3, deployment, artifact=artifact)
        harness = MarketHarness(market)

        clients = harness.new_clients(AGGREGATORS, balance_wei=10 * ETHER)
        keys = [AggregatorKeyPair.generate() for _ in clients]
        for client, key in zip(clients, keys):
            register_aggregator(client, key, PARAMETERS.min_aggregator_stake)
        spec = build_spec("sum", {"column": "x"}, clip=("-1000", "1000"), fractional_bits=16, contribution_bound=1,
                          epsilon_millionths=0, exact=True)
        query = harness.propose(
            clients, spec_json=spec.to_json_bytes(), accept=False, template=Template.SUM, output_length=1, epsilon=0,
            max_abs_encoded=spec.max_abs_encoded, min_owners=1, max_owners=owner_count, submit_window=30 * 24 * 3600,
        )
        service = AggregatorService(clients[0], keys[0], Path(directory) / "aggregator.sqlite",
                                    start_block=market.logs.latest_block())
        service.poll_once()
        for client in clients[1:]:
            client.accept_query(query.query_id)
        assert service.state.query(query.query_id).phase == Phase.ACCEPTED

        setup_started = time.monotonic()
        accounts = generate_accounts(owner_count)
        fund_accounts(w3, [account.address for account in accounts], 10 * ETHER)
        policy = harness.default_policy()
        registrations = [market.calls.register_owner(policy, secrets.token_bytes(32), stake=PARAMETERS.min_owner_stake) for _ in accounts]
        registration_gas = int(TransactionSender(w3, accounts[0]).estimate_gas(registrations[0]) * 1.3)
        send_presigned(w3, [(account, replace(call, gas=registration_gas)) for account, call in zip(accounts, registrations)], 0)

        values = encode_fixed(np.arange(owner_count, dtype=np.float64) % 100, 16)
        public_keys = [key.public_key for key in keys]
        chain_id = int(w3.eth.chain_id)
        submissions = [
            market.calls.submit_shares(
                query.query_id,
                encrypt_shares(values[index:index + 1], public_keys, ShareContext(chain_id, market.address, query.query_id, account.address)),
            )
            for index, account in enumerate(accounts)
        ]
        submission_gas = int(TransactionSender(w3, accounts[0]).estimate_gas(submissions[0]) * 1.3)
        send_presigned(w3, [(account, replace(call, gas=submission_gas)) for account, call in zip(accounts, submissions)], 1)
        del submissions
        setup_seconds = time.monotonic() - setup_started

        rss_before = peak_rss_mib()
        started = time.perf_counter()
        service.poll_once()
        seconds = time.perf_counter() - started
        rss_after = peak_rss_mib()
        _, count = service.state.accumulator(query.query_id)
        if count != owner_count:
            raise RuntimeError(f"ingested {count} shares, expected {owner_count}")
        decoders = time_decoders(w3, market, artifact.abi, query.query_id, 0)
        service.close()

    return {
        "op": "aggregator_ingest",
        "owners": owner_count,
        "L": 1,
        "K": AGGREGATORS,
        "seconds": round(seconds, 3),
        "per_second": round(owner_count / seconds, 1),
        "peak_rss_growth_mib": round(rss_after - rss_before, 1),
        "setup_seconds": round(setup_seconds, 1),
        **{name: round(value, 1) for name, value in decoders.items()},
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=10_000, help="owners submitting to the query (default 10000)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(arguments.owners)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return
    for name, value in result.items():
        if name != "machine":
            print(f"{name:>24}: {value}")


if __name__ == "__main__":
    main()
