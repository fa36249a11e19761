"""Measure one whole query on a local market: N owners, K aggregator processes, real Anvil.

Each run starts a fresh `LocalMarket` (Anvil with interval blocks, K aggregator processes, owner
fleets, a keeper), registers N CPS1988 workers as owners, proposes one exact query and waits for the
published result. With L = 1 the query is the sum of weekly wages; with L > 1 it is a histogram of
wages in L equal bins over [0, 20000]. Setup (accounts, funding, registration, process start-up) is
timed apart from the query itself.

One JSON record per run, with:

- `seconds`: from just before `proposeQuery` is sent to the moment the result is seen published.
  `phases` gives the times of the query's opening (all K accepted), the last submission, the last
  commit and the publication, as seen by polling `queryInfo` every 100 ms;
- `owner_seconds_per_submission`: the submission phase (opening to last submission) times the
  number of fleet processes, divided by N: the wall-clock time one owner process spends per
  submission, RPC round trips included;
- `gas_total`: gas used by every block from the proposal's to the publication's (the interval
  blocks between them hold only this query's transactions), and `gas_per_submission`, the median
  over 20 `submitShares` receipts;
- `aggregator_peak_rss_mb`: the largest `VmHWM` of the aggregator processes, read from /proc right
  after publication;
- `correct`: the published words equal the sum of every owner's encoded output, computed in plain
  text from the same rows;
- `cpu_seconds`: CPU time (user plus system, from /proc) that Anvil, the aggregators, the owner
  fleets, the keeper and this process used between the proposal and the publication. On a machine
  with C cores, their sum over `seconds` shows how busy the cores were.

    python benchmarks/e2e.py --owners 1000 --json
    python benchmarks/e2e.py --owners 1000 --owners 10000 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain_workers.datasets import cps1988_owner_tables  # noqa: E402
from offchain_workers.encoding import encode_fixed  # noqa: E402
from offchain_workers.local.processes import read_cpu_seconds  # noqa: E402
from offchain_workers.local_market import LocalMarket  # noqa: E402
from offchain_workers.spec import QuerySpec, build_spec  # noqa: E402
from pmsr_chain import QueryStatus  # noqa: E402
from pmsr_chain.rpc import rpc_request  # noqa: E402

SUM_FRACTIONAL_BITS = 16
# Seconds between two `queryInfo` reads of the phase monitor: the resolution of `seconds`.
MONITOR_INTERVAL = 0.1
GAS_SAMPLE = 20


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
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "load_average_1m_at_start": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def query_spec(length: int) -> QuerySpec:
    if length == 1:
        return build_spec("sum", {"column": "wage"}, clip=("0", "20000"), fractional_bits=SUM_FRACTIONAL_BITS,
                          contribution_bound=1, epsilon_millionths=0, exact=True)
    step = 20_000 / length
    edges = [f"{index * step:.4f}".rstrip("0").rstrip(".") for index in range(length + 1)]
    return build_spec("histogram", {"column": "wage", "edges": edges}, clip=("0", "1"), fractional_bits=0,
                      contribution_bound=1, epsilon_millionths=0, exact=True)


def expected_words(spec: QuerySpec, wages: np.ndarray) -> list[int]:
    """Return the sum of every owner's encoded output modulo 2^64, computed in plain text."""
    if spec.template == "sum":
        encoded = encode_fixed(np.clip(wages, 0, 20_000), spec.fractional_bits)
        return [int(np.sum(encoded, dtype=np.uint64))]
    edges = np.array([float(edge) for edge in spec.params.axis.edges], dtype=np.float64)
    counts, _ = np.histogram(wages, bins=edges)
    return [int(count) for count in counts]


class PhaseMonitor(threading.Thread):
    """Thread that polls `queryInfo` and records the wall-clock time each phase is first seen."""

    def __init__(self, market: LocalMarket, query_id: int, owners: int, started: float) -> None:
        super().__init__(daemon=True)
        self.market = market
        self.query_id = query_id
        self.owners = owners
        self.started = started
        self.times: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        aggregators = self.market.aggregator_count
        while not self.done.is_set():
            info = self.market.market.query_info(self.query_id)
            now = time.monotonic() - self.started
            marks = {
                "opened": info.status != QueryStatus.PROPOSED,
                "submitted": info.submitted_count >= self.owners,
                "committed": info.committed_count >= aggregators,
                "published": info.status == QueryStatus.PUBLISHED,
            }
            for name, reached in marks.items():
                if reached and name not in self.times:
                    self.times[name] = round(now, 3)
            if info.status in (QueryStatus.PUBLISHED, QueryStatus.CANCELLED, QueryStatus.FAILED):
                return
            time.sleep(MONITOR_INTERVAL)


def child_pids(executable_suffix: str) -> list[int]:
    """Return the ids of this process's children whose executable path ends with `executable_suffix`."""
    parent = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if fields[1] == parent and command.endswith(executable_suffix):
            found.append(int(entry.name))
    return found


def cpu_snapshot(market: LocalMarket) -> dict[str, float]:
    """Return the CPU seconds used so far by each role of the market, and by this process."""
    def total(values: list[float | None]) -> float:
        return sum(value or 0.0 for value in values)

    snapshot = {
        "anvil": total([read_cpu_seconds(pid) for pid in child_pids("anvil")]),
        "aggregators": total([handle.process.cpu_seconds() for handle in market.aggregators]),
        "owner_fleets": total([fleet.cpu_seconds() for fleet in market.fleets()]),
        "keeper": total([market.keeper.cpu_seconds()] if market.keeper is not None else []),
        "benchmark": time.process_time(),
    }
    return snapshot


def gas_between(market: LocalMarket, first_block: int, last_block: int) -> int:
    requests = [("eth_getBlockByNumber", [hex(number), False]) for number in range(first_block, last_block + 1)]
    total = 0
    for start in range(0, len(requests), 500):
        for response in market.w3.provider.make_batch_request(requests[start:start + 500]):  # type: ignore[arg-type]
            total += int(response["result"]["gasUsed"], 16)
    return total


def run_once(owners: int, arguments: argparse.Namespace) -> dict[str, Any]:
    spec = query_spec(arguments.length)
    tables = cps1988_owner_tables(owners, seed=arguments.seed)
    wages = np.array([float(table["wage"].iloc[0]) for table in tables])
    with tempfile.TemporaryDirectory(prefix="pmsr-e2e-") as directory:
        setup_started = time.monotonic()
        market = LocalMarket(
            Path(directory), aggregators=arguments.aggregators, block_time=arguments.block_time,
            automine=arguments.automine, poll_interval=arguments.poll_interval, log_level=arguments.log_level,
        )
        with market:
            market.start_aggregators()
            market.add_owners(tables, fleets=arguments.fleets, workers=arguments.workers,
                              estimate_gas=arguments.estimate_gas, shared_files=not arguments.per_owner_files)
            market.wait_ready(timeout=600)
            analyst = market.analyst()
            setup_seconds = time.monotonic() - setup_started
            if arguments.keep_logs:
                print(f"logs in {directory}/logs", file=sys.stderr)

            cpu_before = cpu_snapshot(market)
            started = time.monotonic()
            query_id = analyst.propose(
                spec, price_per_owner=10**12, min_owners=owners, max_owners=owners, fee_per_aggregator=10**15,
                aggregators=market.aggregator_addresses, accept_window=600, submit_window=3_600,
                commit_window=3_600, reveal_window=3_600,
            )
            monitor = PhaseMonitor(market, query_id, owners, started)
            monitor.start()
            monitor.join(arguments.timeout)
            seconds = time.monotonic() - started
            cpu_after = cpu_snapshot(market)
            peak_rss = market.aggregator_peak_rss_mb()
            monitor.done.set()
            result = analyst.result(query_id)
            if "published" in monitor.times:
                seconds = monitor.times["published"]

            proposed = market.market.events("QueryProposed", market.start_block, filters={"queryId": query_id})[0]
            published = market.market.events("ResultPublished", proposed.block_number, filters={"queryId": query_id})[0]
            submissions = market.market.events("SharesSubmitted", proposed.block_number, filters={"queryId": query_id})
            gas_total = gas_between(market, proposed.block_number, published.block_number)
            sample = [
                int(rpc_request(market.w3, "eth_getTransactionReceipt", [record.transaction_hash])["gasUsed"], 16)
                for record in submissions[:GAS_SAMPLE]
            ]
            times = monitor.times
            times.setdefault("published", round(seconds, 3))
            submit_phase = times.get("submitted", seconds) - times.get("opened", 0.0)
            if arguments.keep_logs:
                input("press Enter to stop the market and delete its directory ")
    return {
        "owners": owners,
        "aggregators": arguments.aggregators,
        "L": spec.output_length,
        "template": spec.template,
        "fleets": arguments.fleets,
        "seconds": round(seconds, 3),
        "phases": times,
        "setup_seconds": round(setup_seconds, 3),
        "owner_seconds_per_submission": round(submit_phase * arguments.fleets / owners, 6),
        "gas_total": gas_total,
        "gas_per_submission": int(statistics.median(sample)) if sample else None,
        "aggregator_peak_rss_mb": round(max(value or 0.0 for value in peak_rss), 1),
        "cpu_seconds": {role: round(cpu_after[role] - cpu_before[role], 2) for role in cpu_before},
        "correct": list(result.words) == expected_words(spec, wages) and result.included_owners == owners,
        "estimate_gas": arguments.estimate_gas,
        "block_time": arguments.block_time,
        "automine": arguments.automine,
        "machine": machine_info(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, action="append", help="owner count per run (repeat for several runs); default 1000")
    parser.add_argument("--aggregators", type=int, default=3, help="K, aggregator processes (default 3)")
    parser.add_argument("--length", type=int, default=1, help="L, output coordinates: 1 is a sum, more a histogram (default 1)")
    parser.add_argument("--fleets", type=int, default=2, help="owner fleet processes (default 2)")
    parser.add_argument("--workers", type=int, help="threads per owner fleet (default: the fleet's own default)")
    parser.add_argument("--estimate-gas", action=argparse.BooleanOptionalAction, default=True,
                        help="estimate every owner transaction (default); without it a fleet reuses the first estimate")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds between Anvil's interval blocks (default 1)")
    parser.add_argument("--automine", action=argparse.BooleanOptionalAction, default=False,
                        help="also mine each transaction as it arrives (Anvil mixed mining); default off")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="services' polling interval in seconds (default 0.25)")
    parser.add_argument("--per-owner-files", action="store_true", help="one CSV per owner instead of one per fleet")
    parser.add_argument("--seed", type=int, default=1988, help="seed of the CPS1988 sample (public data)")
    parser.add_argument("--timeout", type=float, default=1_800.0, help="seconds to wait for a result (default 1800)")
    parser.add_argument("--log-level", default="INFO", help="log level of the service processes (default INFO)")
    parser.add_argument("--keep-logs", action="store_true", help="pause before deleting the market directory")
    parser.add_argument("--json", action="store_true", help="print one JSON record per run")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    for owners in arguments.owners or [1_000]:
        record = run_once(owners, arguments)
        if arguments.json:
            print(json.dumps(record), flush=True)
        else:
            print(f"{owners} owners, K = {record['aggregators']}, L = {record['L']}: {record['seconds']:.1f} s "
                  f"(phases {record['phases']}), {record['owner_seconds_per_submission'] * 1000:.1f} ms per "
                  f"submission per fleet, gas {record['gas_total']}, aggregator peak RSS "
                  f"{record['aggregator_peak_rss_mb']} MiB, correct {record['correct']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
