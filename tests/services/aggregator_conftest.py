"""Helpers and fixtures for the aggregator tests, on the session's Anvil node and market.

The owner side is driven directly: owners are registered accounts that encrypt their encoded
values with `encrypt_shares` and call `MarketClient.submit_shares`, so these tests do not depend on
the owner agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from offchain_workers.aggregator import AggregatorService, register_aggregator
from offchain_workers.aggregator.state import Phase
from offchain_workers.encoding import encode_fixed
from offchain_workers.encryption import ShareContext, encrypt_shares
from offchain_workers.keys import AggregatorKeyPair
from offchain_workers.spec import QuerySpec, build_spec
from pmsr_chain import ETHER, MarketClient, TransactionSender, send_all
from pmsr_chain.testing import MarketHarness, OpenQuery
from pmsr_chain.types import QueryStatus, Template

MODULUS = 2**64
FRACTIONAL_BITS = 16


class SimulatedCrash(BaseException):
    """Raised inside a service to stop it at an exact point, like a kill; `except Exception` does not catch it."""


@dataclass(frozen=True)
class AggregatorIdentity:
    """A registered aggregator: its client (with sender) and its X25519 key pair."""

    client: MarketClient
    key_pair: AggregatorKeyPair

    @property
    def address(self) -> str:
        assert self.client.sender is not None
        return self.client.sender.address

    def fresh_client(self) -> MarketClient:
        """Return a new client and sender for the same account, so a test can patch one service's sender."""
        sender = self.client.sender
        assert sender is not None
        return self.client.with_sender(TransactionSender(sender.w3, sender.account, sender.config))


def register_identities(harness: MarketHarness, count: int) -> list[AggregatorIdentity]:
    stake = harness.market.min_aggregator_stake()
    identities = []
    for client in harness.new_clients(count, balance_wei=stake + 100 * ETHER):
        key_pair = AggregatorKeyPair.generate()
        register_aggregator(client, key_pair, stake)
        identities.append(AggregatorIdentity(client, key_pair))
    return identities


def build_service(identity: AggregatorIdentity, database: Path, start_block: int, **settings: object) -> AggregatorService:
    settings.setdefault("poll_interval", 0.05)
    return AggregatorService(identity.fresh_client(), identity.key_pair, database, start_block=start_block, **settings)  # type: ignore[arg-type]


def sum_spec(*, epsilon: int = 0) -> QuerySpec:
    """A one-coordinate `sum` spec over column x clipped to [-1000, 1000]; exact unless `epsilon` > 0."""
    return build_spec(
        "sum",
        {"column": "x"},
        clip=("-1000", "1000"),
        fractional_bits=FRACTIONAL_BITS,
        contribution_bound=1,
        epsilon_millionths=epsilon,
        exact=epsilon == 0,
    )


def propose(
    harness: MarketHarness,
    identities: Sequence[AggregatorIdentity],
    spec: QuerySpec,
    *,
    spec_json: bytes | None = None,
    **overrides: int,
) -> OpenQuery:
    """Propose a query for `spec` naming `identities`, without accepting it (the services accept)."""
    parameters: dict[str, int] = {
        "template": Template(spec.template_id),
        "output_length": spec.output_length,
        "epsilon": spec.epsilon,
        "max_abs_encoded": spec.max_abs_encoded,
        "min_owners": 1,
        "max_owners": 50,
    }
    parameters.update(overrides)
    return harness.propose(
        [identity.client for identity in identities],
        spec_json=spec.to_json_bytes() if spec_json is None else spec_json,
        accept=False,
        **parameters,
    )


def encode_values(values: Sequence[int]) -> list[np.ndarray]:
    return [encode_fixed(np.array([value], dtype=np.float64), FRACTIONAL_BITS) for value in values]


def expected_sum(values: Sequence[int]) -> tuple[int, ...]:
    """Return the exact published result of a sum query over `values`, as uint64 words."""
    return (sum(int(encode_values([value])[0][0]) for value in values) % MODULUS,)


def encrypt_for(
    market: MarketClient, query: OpenQuery, owner: MarketClient, words: np.ndarray, identities: Sequence[AggregatorIdentity]
) -> list[bytes]:
    assert owner.sender is not None
    context = ShareContext(owner.sender.chain_id, market.address, query.query_id, owner.sender.address)
    return encrypt_shares(words, [identity.key_pair.public_key for identity in identities], context)


def submit_all(owners: Sequence[MarketClient], query: OpenQuery, submissions: Sequence[Sequence[bytes]]) -> None:
    """Send every owner's ciphertexts in one batch of transactions."""
    send_all(
        (owner.sender, owner.calls.submit_shares(query.query_id, ciphertexts))  # type: ignore[misc]
        for owner, ciphertexts in zip(owners, submissions, strict=True)
    )


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(0.05)


def wait_for_phase(services: Sequence[AggregatorService], query_id: int, phase: Phase, *, timeout: float = 30.0) -> None:
    def reached() -> bool:
        return all((record := service.state.query(query_id)) is not None and record.phase == phase for service in services)

    wait_until(reached, timeout=timeout, message=f"every aggregator of query {query_id} to reach phase {phase}")


def wait_for_status(market: MarketClient, query_id: int, status: QueryStatus, *, timeout: float = 30.0) -> None:
    wait_until(lambda: market.query_info(query_id).status is status, timeout=timeout, message=f"query {query_id} to be {status.name}")


@pytest.fixture
def aggregators(harness: MarketHarness) -> list[AggregatorIdentity]:
    """Three newly registered aggregators with fresh X25519 keys."""
    return register_identities(harness, 3)


@pytest.fixture
def start_block(market: MarketClient) -> int:
    """The latest block: services built in a test read events from here on."""
    return market.logs.latest_block()


@pytest.fixture
def running_services(tmp_path: Path, aggregators: list[AggregatorIdentity], start_block: int) -> Iterator[list[AggregatorService]]:
    """One service per aggregator, each polling in its own thread; stopped and closed after the test."""
    services = [build_service(identity, tmp_path / f"aggregator-{index}.sqlite", start_block) for index, identity in enumerate(aggregators)]
    for service in services:
        service.start()
    yield services
    for service in services:
        service.close()
