"""Fixtures for the service tests: aggregators with real X25519 keys driven by direct contract calls,
owners with in-memory tables, and owner fleets on the session's Anvil market.

The aggregator side here is deliberately independent of the aggregator service: it reads
`SharesSubmitted` events, decrypts each share with the library, sums, commits and reveals through
`MarketClient`, so the owner agent is checked against the protocol itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offchain_workers.analyst import Analyst
from offchain_workers.encryption import ShareContext
from offchain_workers.keys import AggregatorKeyPair
from offchain_workers.owner import FleetConfig, LocalPolicy, MarketSource, OwnerConfig, OwnerFleet
from offchain_workers.sharing import ShareAccumulator
from offchain_workers.spec import QuerySpec, build_spec
from pmsr_chain import ETHER, MarketClient, OwnerPolicy, aggregate_commitment, send_all
from pmsr_chain.events import ComplaintFiled, SharesSubmitted
from pmsr_chain.testing import MarketHarness


def address_of(client: MarketClient) -> str:
    assert client.sender is not None
    return client.sender.address


@dataclass
class KeyedAggregator:
    """A registered aggregator with its X25519 key pair."""

    client: MarketClient
    keys: AggregatorKeyPair

    @property
    def address(self) -> str:
        return address_of(self.client)


class AggregatorDriver:
    """Plays the K aggregators of queries with plain contract calls and the library's decryption."""

    def __init__(self, harness: MarketHarness, aggregators: Sequence[KeyedAggregator]) -> None:
        self.harness = harness
        self.market = harness.market
        self.aggregators = list(aggregators)

    @property
    def addresses(self) -> list[str]:
        return [aggregator.address for aggregator in self.aggregators]

    def accept(self, query_id: int) -> None:
        send_all((a.client.sender, a.client.calls.accept_query(query_id)) for a in self.aggregators)  # type: ignore[misc]

    def aggregate_shares(self, query_id: int) -> list[np.ndarray]:
        """Decrypt every included owner's share for each aggregator and return the K sums."""
        info = self.market.query_info(query_id)
        length = info.params.output_length
        excluded = {
            record.owner for record in self.market.events("ComplaintFiled", 0, filters={"queryId": query_id})
            if isinstance(record, ComplaintFiled)
        }
        sums = [ShareAccumulator(length) for _ in self.aggregators]
        chain_id = self.market.sender.chain_id if self.market.sender else self.harness.w3.eth.chain_id
        for record in self.market.events("SharesSubmitted", 0, filters={"queryId": query_id}):
            assert isinstance(record, SharesSubmitted)
            if record.owner in excluded:
                continue
            context = ShareContext(chain_id, self.market.address, query_id, record.owner)
            for index, (aggregator, ciphertext) in enumerate(zip(self.aggregators, record.ciphertexts, strict=True)):
                aggregator.keys.decryptor().decrypt_into(sums[index], ciphertext, context, index)
        return [accumulator.total for accumulator in sums]

    def commit_and_reveal(self, query_id: int, shares: Sequence[np.ndarray]) -> None:
        """Move past the complaint window, then commit and reveal `shares[k]` from aggregator k."""
        window_end = self.market.complaint_window_end(query_id)
        if window_end == 0:
            window_end = self.market.query_info(query_id).params.submit_deadline + self.market.complaint_period()
        self.harness.advance_past(window_end)
        salts = [secrets.token_bytes(32) for _ in self.aggregators]
        words = [[int(word) for word in share] for share in shares]
        for aggregator, share, salt in zip(self.aggregators, words, salts, strict=True):
            aggregator.client.commit_aggregate(
                query_id, aggregate_commitment(query_id, aggregator.address, share, salt)
            )
        for aggregator, share, salt in zip(self.aggregators, words, salts, strict=True):
            aggregator.client.reveal_aggregate(query_id, share, salt)

    def publish(self, query_id: int) -> None:
        """Aggregate without noise and publish: the result is the exact sum of the included owners."""
        self.commit_and_reveal(query_id, self.aggregate_shares(query_id))


@pytest.fixture()
def make_aggregators(harness: MarketHarness):
    """Register `count` new aggregators with real X25519 keys and return their driver."""

    def make(count: int = 2) -> AggregatorDriver:
        stake = harness.market.min_aggregator_stake()
        clients = harness.new_clients(count, balance_wei=stake + 100 * ETHER)
        keys = [AggregatorKeyPair.generate() for _ in clients]
        send_all(
            (client.sender, client.calls.register_aggregator(key.public_key, stake=stake))  # type: ignore[misc]
            for client, key in zip(clients, keys, strict=True)
        )
        return AggregatorDriver(harness, [KeyedAggregator(c, k) for c, k in zip(clients, keys, strict=True)])

    return make


@pytest.fixture()
def aggregators(make_aggregators) -> AggregatorDriver:
    return make_aggregators(2)


def make_sum_spec(column: str = "x", *, epsilon: int = 0, fractional_bits: int = 16, bound: str = "1000") -> QuerySpec:
    """Return a `sum` spec over one column, exact unless `epsilon` is given."""
    return build_spec(
        "sum", {"column": column}, clip=(f"-{bound}", bound), fractional_bits=fractional_bits,
        contribution_bound=1, epsilon_millionths=epsilon, exact=epsilon == 0,
    )


@pytest.fixture()
def sum_spec():
    """The `make_sum_spec` builder (test modules here are not a package, so they get helpers as fixtures)."""
    return make_sum_spec


@dataclass
class Owners:
    """Registered owners, their tables and the fleet configuration that hosts them."""

    clients: list[MarketClient]
    tables: list[pd.DataFrame]
    config: FleetConfig

    @property
    def addresses(self) -> list[str]:
        return [address_of(client) for client in self.clients]

    def fleet(self, market: MarketClient) -> OwnerFleet:
        return OwnerFleet(self.config, market=market)


@pytest.fixture()
def make_owners(harness: MarketHarness, tmp_path: Path):
    """Register owners holding one row each and build their fleet configuration.

    The fleet reads events from the current block, so earlier tests' queries stay out of it.
    """
    counter = iter(range(1_000))

    def make(
        values: Sequence[float],
        *,
        policy: OwnerPolicy | None = None,
        local_policy: LocalPolicy | None = None,
        tables: Sequence[pd.DataFrame] | None = None,
        db_path: Path | None = None,
        workers: int = 4,
    ) -> Owners:
        clients = harness.register_owners(len(values), policy=policy)
        tables = list(tables) if tables is not None else [pd.DataFrame({"x": [value], "y": [1.0]}) for value in values]
        market = harness.market
        path = db_path or tmp_path / f"owners-{next(counter)}.sqlite"
        configs = tuple(
            OwnerConfig(
                account=client.sender.account,  # type: ignore[union-attr]
                dataset=table,
                local_policy=local_policy or LocalPolicy(),
                rpc_url=market.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
                market=MarketSource(address=market.address),
                db_path=path,
                poll_interval=0.2,
            )
            for client, table in zip(clients, tables, strict=True)
        )
        start = harness.w3.eth.block_number + 1
        return Owners(clients, tables, FleetConfig(owners=configs, workers=workers, start_block=start))

    return make


@pytest.fixture()
def analyst(harness: MarketHarness) -> Analyst:
    return Analyst(harness.new_client(balance_wei=1_000 * ETHER), poll_interval=0.05)


@pytest.fixture()
def open_fleets() -> Iterator[list[OwnerFleet]]:
    """Collects fleets a test opens and closes them at the end."""
    fleets: list[OwnerFleet] = []
    yield fleets
    for fleet in fleets:
        fleet.close()
